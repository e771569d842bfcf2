// Helpers for the TCP-variants suite (issue 17): per-namespace sysctls, kernel counters (nstat),
// the Python peers of topo/apps/variant-peer.py (TFO, MPTCP, connect-and-close probes) and what a
// capture says about the SYNs a host really got.
import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import type { Host } from './netns.ts';
import type { Capture } from './capture.ts';
import { stop } from './exec.ts';
import { blobSha } from '../../topo/apps/blob.mjs';
import { Logger, type LogLevel } from '../../controller/log.ts';
import type { ParsedFrame } from '../../controller/packet/index.ts';

const APPS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'topo', 'apps');
export const PEER = join(APPS, 'variant-peer.py');
/** Debian's interpreter (DESIGN.md §6: the first python3 on PATH may be another one). */
export const PYTHON = '/usr/bin/python3';
export const RULES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'snort-rules', 'migrate.rules');

export const TCPOPT_MPTCP = 30;
export const TCPOPT_TFO = 34;

export { blobSha };

/**
 * Sets sysctls (`key=value`) in a namespace; resolves with a function that puts the old values
 * back (call it in `finally`).
 */
export async function sysctls(h: Host, kv: string[]): Promise<() => Promise<void>> {
  const old: string[] = [];
  const restore = async () => { for (const k of old.reverse()) await h.exec(['sysctl', '-qw', k], { allowFail: true }); };
  try {
    for (const e of kv) {
      const key = e.slice(0, e.indexOf('='));
      const was = (await h.exec(['sysctl', '-n', key])).stdout.trim().replace(/\s+/g, ' ');
      old.push(`${key}=${was}`);
      await h.exec(['sysctl', '-qw', e]);
    }
  } catch (e) { await restore(); throw e; }
  return restore;
}

/** Sets eth0's MTU in a namespace; resolves with the function that restores it. */
export async function mtu(h: Host, n: number): Promise<() => Promise<void>> {
  const was = /mtu (\d+)/.exec((await h.exec(['ip', 'link', 'show', 'eth0'])).stdout)![1];
  await h.exec(['ip', 'link', 'set', 'eth0', 'mtu', String(n)]);
  return async () => { await h.exec(['ip', 'link', 'set', 'eth0', 'mtu', was], { allowFail: true }); };
}

/** The namespace's kernel counters (nstat absolute values, history untouched). */
export async function nstat(h: Host): Promise<Record<string, number>> {
  const out = (await h.exec(['nstat', '-asz'])).stdout;
  const r: Record<string, number> = {};
  for (const l of out.split('\n')) {
    const m = /^(\w+)\s+(\d+)/.exec(l);
    if (m) r[m[1]] = Number(m[2]);
  }
  return r;
}

/** Counter changes between two nstat readings, for the named counters. */
export function delta(before: Record<string, number>, after: Record<string, number>, names: string[]): Record<string, number> {
  return Object.fromEntries(names.map((n) => {
    assert.ok(n in after, `the kernel has no counter ${n}`);
    return [n, (after[n] ?? 0) - (before[n] ?? 0)];
  }));
}

export interface PeerResult {
  ok: boolean; error?: string; local: string; first: string; servers: Record<string, number>;
  upBytes: number; upSha: string; echoSha: string; blobSha?: string; mptcp: boolean;
}

export interface TransferOptions {
  first: string; upload?: number; blob?: number; seed?: number; tfo?: 'none' | 'sendto' | 'connect'; mptcp?: boolean; timeoutS?: number;
}

/** One connection from `h` to the service with the Python client; fails with the client's error. */
export async function transfer(h: Host, o: TransferOptions, service = { ip: '10.0.0.1', port: 5001 }): Promise<PeerResult & { port: number }> {
  const args = ['client', '--host', service.ip, '--port', String(service.port), '--first', o.first, '--upload', String(o.upload ?? 0),
    '--blob', String(o.blob ?? 0), '--seed', String(o.seed ?? 1), '--tfo', o.tfo ?? 'none', '--timeout', String(o.timeoutS ?? 20), ...(o.mptcp ? ['--mptcp'] : [])];
  const r = await h.exec([PYTHON, PEER, ...args], { allowFail: true, timeoutMs: ((o.timeoutS ?? 20) + 30) * 1000 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let res: PeerResult;
  try { res = JSON.parse(last); } catch { throw new Error(`variant-peer client printed no result (exit ${r.code}): ${r.stdout} ${r.stderr}`); }
  if (!res.ok) throw new Error(`client failed: ${res.error}`);
  return { ...res, port: Number(res.local.split(':')[1]) };
}

/** Asserts a transfer arrived intact both ways and was served by `server` alone. */
export function assertIntact(r: PeerResult, server: string, o: TransferOptions): void {
  assert.equal(r.first, `${server} ${o.first}`, 'the reply to the first segment');
  assert.deepEqual(Object.keys(r.servers), [server], `every reply came from ${server}: ${JSON.stringify(r.servers)}`);
  if (o.upload) {
    assert.ok(r.upBytes >= o.upload, `uploaded ${r.upBytes} bytes`);
    assert.equal(r.echoSha, r.upSha, 'the echo of the upload has the sha256 of what was sent');
  }
  if (o.blob) assert.equal(r.blobSha, blobSha(o.seed ?? 1, o.blob), 'the download has the expected sha256');
}

export interface ProbeResult { ok: number; failed: number; eofs: number; errors: string[]; maxEofMs: number }

/** `count` connect-and-close probes from `h`, one after the other. */
export async function probes(h: Host, count: number, close: 'fin' | 'rst', service = { ip: '10.0.0.1', port: 5001 }): Promise<ProbeResult> {
  const r = await h.exec([PYTHON, PEER, 'probe', '--host', service.ip, '--port', String(service.port), '--count', String(count), '--close', close, '--timeout', '10'],
    { allowFail: true, timeoutMs: count * 12000 + 30000 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try { return JSON.parse(last); } catch { throw new Error(`variant-peer probe printed no result (exit ${r.code}): ${r.stdout} ${r.stderr}`); }
}

/** A Python echo server (same line protocol as echo-server.mjs, no BLOB), optionally on an MPTCP socket. */
export class PyEcho {
  private constructor(readonly proc: ChildProcess) {}
  static async start(h: Host, name: string, port: number, opts: { mptcp?: boolean } = {}): Promise<PyEcho> {
    const proc = h.spawn([PYTHON, PEER, 'server', '--name', name, '--port', String(port), ...(opts.mptcp ? ['--mptcp'] : [])]);
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    const first = createInterface({ input: proc.stdout! });
    const exited = once(proc, 'exit').then(([code]) => { throw new Error(`variant-peer server in ${h.name} exited ${code}: ${err.trim()}`); });
    await Promise.race([once(first, 'line'), exited]);
    exited.catch(() => {});
    return new PyEcho(proc);
  }
  stop(): Promise<void> { return stop(this.proc, 1000); }
}

/** What a captured SYN (or SYN-ACK) carried. */
export interface SynView {
  src: string; dst: string; sport: number; dport: number; ack: boolean; ece: boolean; cwr: boolean; len: number; payload: string;
  mss?: number; wscale?: number; sack: boolean; timestamps: boolean; tfo?: { cookieLength: number }; mptcp: boolean;
}

export function synOf(f: ParsedFrame): SynView | undefined {
  const { ipv4, tcp } = f;
  if (!ipv4 || !tcp || !tcp.flagSet.syn) return undefined;
  const unknown = (t: number) => tcp.options.find((o) => o.kind === 'unknown' && o.type === t) as { data: Buffer } | undefined;
  const tfo = unknown(TCPOPT_TFO);
  return {
    src: ipv4.src, dst: ipv4.dst, sport: tcp.srcPort, dport: tcp.dstPort, ack: tcp.flagSet.ack, ece: tcp.flagSet.ece, cwr: tcp.flagSet.cwr,
    len: f.payload.length, payload: f.payload.toString('latin1'),
    mss: (tcp.options.find((o) => o.kind === 'mss') as { value: number } | undefined)?.value,
    wscale: (tcp.options.find((o) => o.kind === 'wscale') as { shift: number } | undefined)?.shift,
    sack: tcp.options.some((o) => o.kind === 'sack_permitted'), timestamps: tcp.options.some((o) => o.kind === 'timestamp'),
    ...(tfo ? { tfo: { cookieLength: tfo.data.length } } : {}), mptcp: !!unknown(TCPOPT_MPTCP),
  };
}

/** The SYNs (and SYN-ACKs) in a capture, of one client port when given. */
export function syns(cap: Capture, clientPort?: number): SynView[] {
  return cap.frames().map(synOf).filter((s): s is SynView => !!s && (clientPort === undefined || s.sport === clientPort || s.dport === clientPort));
}

/** Every TCP payload a capture holds from `src` (e.g. the client's bytes reaching a server), concatenated. */
export function payloadFrom(cap: Capture, src: string, clientPort?: number): string {
  return cap.frames().filter((f) => f.ipv4?.src === src && f.tcp && (clientPort === undefined || f.tcp.srcPort === clientPort || f.tcp.dstPort === clientPort))
    .map((f) => f.payload.toString('latin1')).join('');
}

/**
 * Counts the controller's log lines (every Logger in this process) whose message matches `re`,
 * until `stop()`; they are still written as usual.
 */
export function watchLog(re: RegExp, level: LogLevel = 'warn'): { lines: string[]; stop: () => void } {
  const lines: string[] = [];
  const original = Logger.prototype.log;
  Logger.prototype.log = function (this: Logger, l: LogLevel, msg: string, fields?: Record<string, unknown>) {
    if (l === level && re.test(msg)) lines.push(`${msg} ${JSON.stringify(fields ?? {})}`);
    return original.call(this, l, msg, fields);
  };
  return { lines, stop: () => { Logger.prototype.log = original; } };
}
