// Benchmarks on the real test bed (test/lib/handoff-net.ts: OVS bridge, controller in-process,
// client 10.0.0.2, server1 10.0.0.1, server2 10.0.0.3, server3 10.0.0.4 in namespaces):
//  - datapath: bulk TCP throughput (iperf3) of a FORWARDed connection, a migrated one on the
//    patched fast path, the same with the datapath feature switched off (slow path), and a
//    migrated one relayed through the controller by a stock switch;
//  - setup: connection setup rate through the interception path (FORWARD, MIGRATE) vs a port
//    the controller does not intercept;
//  - latency: verdict → first byte of server 2's reply at the client, and held → released,
//    with the built-in matcher and with a live Suricata on the mirror port.
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { startLiveSuricata } from '../../topo/lib/suricata.ts';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HandoffBed, SERVICE, IDS_PORT } from '../lib/handoff-net.ts';
import { PATCHED_PREFIX, STOCK_PREFIX, supportsSeqActions } from '../lib/ovs.ts';
import { waitFor, run } from '../lib/exec.ts';
import type { Host } from '../lib/netns.ts';
import { progress, sleep, nowMs, median, quantile, mean } from './lib/util.ts';
import { parseServices, type ServiceConfig } from '../../controller/handoff/service-config.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const CLIENT = join(HERE, 'apps', 'bench-client.mjs');
const APPS = join(ROOT, 'topo', 'apps');
export const RULES = join(ROOT, 'snort-rules', 'migrate.rules');
const NO_MATCH_RULES = join(ROOT, 'snort-rules', 'no-match.rules');
const IPERF_PORT = 5201;
export const PLAIN_PORT = 5002;

export async function patchedAvailable(): Promise<boolean> { return supportsSeqActions(PATCHED_PREFIX); }

// ------------------------------------------------------------------ datapath throughput

export interface DatapathOptions { seconds: number; rounds: number; directions: Array<'download' | 'upload'>; relay: boolean }
export type DpMode = 'forward' | 'forwardct' | 'fastpath' | 'migratect' | 'slowpath' | 'relay';
export interface DpRun { mode: DpMode; direction: string; round: number; gbps: number; retransmits: number; check: string }
export interface DatapathResult {
  options: DatapathOptions; patched: boolean; runs: DpRun[]; notes: string[];
  mean: Partial<Record<DpMode, Record<string, number>>>;
  ratios: { fastOverForward?: number; fastOverSlow?: number; fastOverRelay?: number; conntrackOverForward?: number; migrateConntrackOverFast?: number; perDirection: Record<string, { fastOverForward?: number; fastOverSlow?: number; fastOverRelay?: number; conntrackOverForward?: number; migrateConntrackOverFast?: number }> };
}

function iperfBackends(): Record<string, unknown> {
  return {
    port: IPERF_PORT, verdictTimeoutMs: 5000,
    backends: [
      { name: 'server1', address: '10.0.0.1', port: IPERF_PORT },
      { name: 'server2', address: '10.0.0.3', port: IPERF_PORT },
      { name: 'server3', address: '10.0.0.4', port: IPERF_PORT },
    ],
  };
}

/** (e)'s and (f)'s service: the iperf3 servers on another port, verdicts kept in conntrack (forwardVia, migrateVia). */
const IPERF_CT_PORT = 5202;

async function startIperfServers(bed: HandoffBed, port = IPERF_PORT, names: readonly string[] = ['server1', 'server2']): Promise<void> {
  for (const name of names) {
    const h = bed.servers[name]!;
    h.spawn(['iperf3', '-s', '-p', String(port)]);
    await waitFor(async () => (await h.exec(['ss', '-Hltn', `sport = :${port}`])).stdout.includes(String(port)), `iperf3 in ${name} on port ${port}`);
  }
}


async function iperf(client: Host, seconds: number, download: boolean, port = IPERF_PORT): Promise<{ gbps: number; retransmits: number }> {
  const args = ['iperf3', '-c', SERVICE.ip, '-p', String(port), '-t', String(seconds), '-J', ...(download ? ['-R'] : [])];
  const r = await client.exec(args, { timeoutMs: (seconds + 30) * 1000, allowFail: true });
  if (r.code === 128 && !r.stdout) throw new Error(`iperf3 did not finish within ${seconds + 30} s (killed)`);
  let j: { error?: string; end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } } };
  try { j = JSON.parse(r.stdout); } catch { throw new Error(`iperf3 output unreadable (exit ${r.code}): ${r.stderr.slice(0, 300)}`); }
  if (j.error || !j.end?.sum_received) throw new Error(`iperf3 failed: ${j.error ?? 'no results'}`);
  return { gbps: j.end.sum_received.bits_per_second / 1e9, retransmits: j.end.sum_sent?.retransmits ?? 0 };
}

/** One run; a failure is recorded in `notes` (with what the engine saw) and the others go on. */
async function dpTry(bed: HandoffBed, res: DatapathResult, mode: DpMode, seconds: number, direction: 'download' | 'upload', round: number): Promise<void> {
  try { res.runs.push(await dpRun(bed, mode, seconds, direction, round)); } catch (e) {
    const conns = bed.engine.connections().map((c) => `${c.client} ${c.phase} on ${c.backend}`).join('; ');
    const note = `${mode} ${direction} round ${round} failed: ${(e as Error).message} (engine stats ${JSON.stringify(bed.engine.stats)}; connections then: ${conns || 'none'})`;
    res.notes.push(note);
    progress(`  ${note}`);
    await sleep(2000);
  }
}

async function dpRun(bed: HandoffBed, mode: DpMode, seconds: number, direction: 'download' | 'upload', round: number): Promise<DpRun> {
  const verdict = mode === 'forward' || mode === 'forwardct' ? 'FORWARD' : 'MIGRATE';
  const stop = bed.autoVerdict(verdict);
  let migrated = 0;
  let forwarded = 0;
  const onM = () => { migrated++; };
  const onF = () => { forwarded++; };
  bed.engine.on('migrated', onM);
  bed.engine.on('forwarded', onF);
  try {
    const p = iperf(bed.client, seconds, direction === 'download', mode === 'forwardct' || mode === 'migratect' ? IPERF_CT_PORT : IPERF_PORT);
    p.catch(() => undefined); // awaited below; keeps a failure during the sleep from being unhandled
    // Look at the datapath halfway through: which actions do the megaflows carry?
    await sleep(Math.min(seconds * 500, 4000));
    const dump = await bed.ovs.appctl('dpctl/dump-flows').catch(() => '');
    const r = await p;
    const slow = /slow_path\(action\)/.test(dump);
    const shifted = /(inc|dec)_tcp_(seq|ack)\(/.test(dump);
    const tracked = /\bct\(.*zone=/.test(dump);
    const check = `${verdict} → ${migrated} migrated, ${forwarded} forwarded; datapath: ${mode === 'relay' ? `${bed.engine.stats.relayed} packets relayed so far` : slow ? 'slow_path(action) megaflows' : mode === 'migratect' ? (shifted && tracked ? 'ct(zone, nat), recirculation and inc/dec_tcp_* in megaflows' : 'no ct or shift in megaflows') : shifted ? 'inc/dec_tcp_* in megaflows' : mode === 'forwardct' ? (tracked ? 'ct(zone) and recirculation in megaflows' : 'no ct in megaflows') : 'plain output megaflows'}`;
    const expectOk = mode === 'forward' ? forwarded >= 2 && !shifted : mode === 'forwardct' ? forwarded >= 2 && tracked && !shifted : mode === 'fastpath' ? migrated >= 2 && shifted && !slow : mode === 'migratect' ? migrated >= 2 && shifted && tracked && !slow : mode === 'slowpath' ? migrated >= 2 && slow : migrated >= 2;
    if (!expectOk) throw new Error(`${mode} run did not look like ${mode}: ${check}`);
    progress(`  datapath ${mode.padEnd(8)} ${direction.padEnd(8)} round ${round}: ${r.gbps.toFixed(3)} Gbit/s, ${r.retransmits} retransmits (${check})`);
    return { mode, direction, round, ...r, check };
  } finally {
    stop();
    bed.engine.off('migrated', onM);
    bed.engine.off('forwarded', onF);
    await sleep(500); // both iperf3 connections closed, flows gone
  }
}

export async function runDatapath(o: DatapathOptions): Promise<DatapathResult> {
  const patched = await patchedAvailable();
  const res: DatapathResult = { options: o, patched, runs: [], notes: [], mean: {}, ratios: { perDirection: {} } };
  progress(`datapath: iperf3 ${o.seconds} s per run, ${o.rounds} round(s), ${o.directions.join(' + ')}; patched OVS ${patched ? 'found' : 'NOT installed'} under ${PATCHED_PREFIX}`);
  if (!patched) res.notes.push(`The patched OVS (inc/dec_tcp_seq/ack) was not installed under ${PATCHED_PREFIX} when this ran: (a) was measured on stock OVS, (b) and (c) were not measured. Run ovs-patch/build.sh and rerun \`npm run bench -- --only datapath\`.`);
  let bed: HandoffBed | undefined;
  try {
    // (e) and (f): connections kept in conntrack for the whole run, so that the megaflows checked
    // halfway show ct's actions (by default one gets its flows after handoff.conntrackFlowsAfterMs,
    // its segments still passing ct).
    bed = await HandoffBed.create({ prefix: patched ? PATCHED_PREFIX : STOCK_PREFIX, services: iperfBackends(), handoff: { conntrackFlowsAfterMs: 0 } });
    await startIperfServers(bed);
    await addConntrackTwin(bed, IPERF_CT_PORT);
    await startIperfServers(bed, IPERF_CT_PORT);
    const dpid = bed.controller.switches[0]!.describe();
    progress(`  bed up (${bed.ovs.prefix}), switch mode ${bed.engine.modeOf(dpid)}`);
    for (let round = 1; round <= o.rounds; round++) {
      for (const dir of o.directions) {
        await dpTry(bed, res, 'forward', o.seconds, dir, round);
        await dpTry(bed, res, 'forwardct', o.seconds, dir, round);
        if (!patched) continue;
        await dpTry(bed, res, 'fastpath', o.seconds, dir, round);
        await dpTry(bed, res, 'migratect', o.seconds, dir, round);
        await bed.ovs.appctl('dpif/set-dp-features', bed.bridge, 'tcp_seq_ack_action', 'false');
        try { await dpTry(bed, res, 'slowpath', o.seconds, dir, round); } finally {
          await bed.ovs.appctl('dpif/set-dp-features', bed.bridge, 'tcp_seq_ack_action', 'true');
        }
      }
    }
  } finally { await bed?.destroy(); }
  if (o.relay) {
    try {
      bed = await HandoffBed.create({ prefix: STOCK_PREFIX, services: iperfBackends() });
      await startIperfServers(bed);
      progress(`  stock OVS bed up (${STOCK_PREFIX}), switch mode ${bed.engine.modeOf(bed.controller.switches[0]!.describe())}`);
      for (const dir of o.directions) {
        await dpTry(bed, res, 'relay', o.seconds, dir, 1);
      }
    } finally { await bed?.destroy(); }
  }
  for (const r of res.runs) {
    const m = (res.mean[r.mode] ??= {});
    const xs = res.runs.filter((x) => x.mode === r.mode && x.direction === r.direction).map((x) => x.gbps);
    m[r.direction] = mean(xs);
  }
  const overall = (mode: DpMode) => { const xs = res.runs.filter((x) => x.mode === mode).map((x) => x.gbps); return xs.length ? mean(xs) : undefined; };
  const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);
  // Ratios over the directions measured for both modes (relay runs once per direction).
  for (const dir of o.directions) {
    const g = (m: DpMode) => res.mean[m]?.[dir];
    res.ratios.perDirection[dir] = { fastOverForward: ratio(g('fastpath'), g('forward')), fastOverSlow: ratio(g('fastpath'), g('slowpath')), fastOverRelay: ratio(g('fastpath'), g('relay')), conntrackOverForward: ratio(g('forwardct'), g('forward')), migrateConntrackOverFast: ratio(g('migratect'), g('fastpath')) };
  }
  res.ratios.conntrackOverForward = ratio(overall('forwardct'), overall('forward'));
  res.ratios.migrateConntrackOverFast = ratio(overall('migratect'), overall('fastpath'));
  res.ratios.fastOverForward = ratio(overall('fastpath'), overall('forward'));
  res.ratios.fastOverSlow = ratio(overall('fastpath'), overall('slowpath'));
  res.ratios.fastOverRelay = ratio(overall('fastpath'), overall('relay'));
  return res;
}

// ------------------------------------------------------------------ connection setup rate

/** `rounds`: the modes alternate, `connections / rounds` each per round (default 1). */
export interface SetupOptions { connections: number; concurrency: number; rounds?: number }
export interface SetupResult { options: SetupOptions; prefix: string; switchMode: string; rates: Record<string, { ratePerSec: number; ok: number; failed: number; servers: Record<string, number>; errors: string[] }>; ratios: { forwardOverPlain?: number; migrateOverPlain?: number; forwardConntrackOverPlain?: number; migrateConntrackOverPlain?: number } }

/** §3's modes for a service with forwardVia and migrateVia 'conntrack'. */
export const FORWARD_CT = 'FORWARD, conntrack';
export const MIGRATE_CT = 'MIGRATE, conntrack';

/** The port of §3's second service, the same echo servers with forwardVia and migrateVia 'conntrack'. */
export const CONNTRACK_PORT = 5003;

/** The verdict, port and first line of a §3/§6 mode. */
export function modeTraffic(mode: string, ctPort: number): { verdict: 'plain' | 'FORWARD' | 'MIGRATE'; port: number; line: string } {
  const verdict = mode === 'plain' ? 'plain' : mode.startsWith('MIGRATE') ? 'MIGRATE' : 'FORWARD';
  const port = mode === 'plain' ? PLAIN_PORT : mode === FORWARD_CT || mode === MIGRATE_CT ? ctPort : SERVICE.port;
  return { verdict, port, line: verdict === 'MIGRATE' ? 'please migrate' : 'hello' };
}

/**
 * Adds a second service to the bed, the first one on CONNTRACK_PORT with `forwardVia` and `migrateVia: "conntrack"`
 * (a config reload, as an operator would), and server 1's echo server on that port. Once, before
 * any measurement: switching a service between flows and conntrack at every round stalled a few
 * handshakes now and then (docs/benchmarks.md, "FORWARD verdicts in conntrack").
 */
export async function addConntrackService(bed: HandoffBed): Promise<number> {
  await addConntrackTwin(bed, CONNTRACK_PORT);
  await startPlainEcho(bed, CONNTRACK_PORT);
  await startPlainEcho(bed, CONNTRACK_PORT, 'server2');
  return CONNTRACK_PORT;
}

/** The bed's service again on `port` (same servers), with forwardVia and migrateVia 'conntrack': a config reload, as an operator would. */
async function addConntrackTwin(bed: HandoffBed, port: number): Promise<void> {
  const running = bed.engine.listServices()[0]!;
  const [ct] = parseServices([{ ...running, name: `${running.name}-ct`, port, backends: running.backends.map((b) => ({ ...b, port })), forwardVia: 'conntrack', migrateVia: 'conntrack' }]);
  await bed.engine.reconfigureServices([running, ct!]);
}

export interface ClientSummary { total: number; ok: number; failed: number; servers: Record<string, number>; errors: string[]; elapsedMs: number; ratePerSec: number; records?: ClientRecord[] }
export interface ClientRecord { i: number; port: number; t0: number; tConn: number; tWrite: number; tFirst: number; tReply: number; server: string }

export async function benchClient(h: Host, port: number, n: number, conc: number, line: string, records = false, timeoutMs = 5000): Promise<ClientSummary> {
  const args = ['node', CLIENT, '--host', SERVICE.ip, '--port', String(port), '--n', String(n), '--concurrency', String(conc), '--line', line, '--timeout', String(timeoutMs), ...(records ? ['--records'] : [])];
  const r = await h.exec(args, { timeoutMs: Math.ceil(n / conc) * timeoutMs + 60000, allowFail: true });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try { return JSON.parse(last) as ClientSummary; } catch { throw new Error(`bench client failed (exit ${r.code}): ${r.stderr.slice(0, 400)}`); }
}

export async function startPlainEcho(bed: HandoffBed, port = PLAIN_PORT, server = 'server1'): Promise<void> {
  const h = bed.servers[server]!;
  h.spawn(['node', join(APPS, 'echo-server.mjs'), '--name', server, '--port', String(port)]);
  await waitFor(async () => (await h.exec(['ss', '-Hltn', `sport = :${port}`])).stdout.includes(String(port)), `echo server on port ${port}`);
}

async function drain(bed: HandoffBed): Promise<void> {
  await waitFor(() => bed.engine.table.size === 0, 'the connection table to empty', 30000).catch(() => progress(`  (${bed.engine.table.size} connections still tracked)`));
}

export async function runSetup(o: SetupOptions): Promise<SetupResult> {
  const patched = await patchedAvailable();
  const prefix = patched ? PATCHED_PREFIX : STOCK_PREFIX;
  progress(`setup rate: ${o.connections} connections per mode, ${o.concurrency} at a time, OVS ${prefix}`);
  const bed = await HandoffBed.create({ prefix });
  try {
    await startPlainEcho(bed);
    const mode = bed.engine.modeOf(bed.controller.switches[0]!.describe()) ?? '?';
    const rates: SetupResult['rates'] = {};
    // Warm-up: the learning switch's flows for the plain port, ARP everywhere.
    await benchClient(bed.client, PLAIN_PORT, 20, 1, 'warm');
    // The modes alternate round by round, so that drift in the machine's load reaches all of them
    // alike; "FORWARD, conntrack" and "MIGRATE, conntrack" go to a second service, the same servers
    // on another port, that keeps its verdicts in conntrack (forwardVia, migrateVia).
    const ctPort = await addConntrackService(bed);
    const rounds = Math.max(1, o.rounds ?? 1);
    const per = Math.ceil(o.connections / rounds);
    const acc: Record<string, { ok: number; failed: number; ms: number; servers: Record<string, number>; errors: string[] }> = {};
    for (let round = 1; round <= rounds; round++) {
      for (const m of ['plain', 'FORWARD', 'MIGRATE', FORWARD_CT, MIGRATE_CT] as const) {
        const t = modeTraffic(m, ctPort);
        const stop = t.verdict === 'plain' ? () => undefined : bed.autoVerdict(t.verdict);
        try {
          const s = await benchClient(bed.client, t.port, per, o.concurrency, t.line);
          const a = (acc[m] ??= { ok: 0, failed: 0, ms: 0, servers: {}, errors: [] });
          a.ok += s.ok; a.failed += s.failed; a.ms += s.elapsedMs; a.errors.push(...s.errors);
          for (const [k, v] of Object.entries(s.servers)) a.servers[k] = (a.servers[k] ?? 0) + v;
          progress(`  round ${round}/${rounds} ${m.padEnd(8)} ${s.ratePerSec.toFixed(0)} connections/s (${s.ok} ok, ${s.failed} failed; served by ${JSON.stringify(s.servers)})${s.errors.length ? ' errors: ' + s.errors.slice(0, 3).join('; ') : ''}`);
        } finally { stop(); }
        await drain(bed);
      }
    }
    for (const [m, a] of Object.entries(acc)) rates[m] = { ratePerSec: a.ms > 0 ? a.ok / a.ms * 1000 : 0, ok: a.ok, failed: a.failed, servers: a.servers, errors: a.errors.slice(0, 20) };
    const r = (a?: number, b?: number) => (a && b ? a / b : undefined);
    return {
      options: o, prefix, switchMode: mode, rates,
      ratios: {
        forwardOverPlain: r(rates.FORWARD?.ratePerSec, rates.plain?.ratePerSec), migrateOverPlain: r(rates.MIGRATE?.ratePerSec, rates.plain?.ratePerSec),
        forwardConntrackOverPlain: r(rates[FORWARD_CT]?.ratePerSec, rates.plain?.ratePerSec), migrateConntrackOverPlain: r(rates[MIGRATE_CT]?.ratePerSec, rates.plain?.ratePerSec),
      },
    };
  } finally { await bed.destroy(); }
}

// ------------------------------------------------------------------ handoff latency

export interface LatencyOptions { connections: number; suricata: boolean }
export interface Dist { n: number; median: number; p99: number; mean: number; max: number }
export interface LatencyCase {
  analyzer: string; connections: number; migrated: number; missed: number; errors: string[];
  verdictToFirstByteMs: Dist; heldToReleasedMs: Dist; heldToVerdictMs: Dist; clientFirstReplyMs: Dist;
}
export interface LatencyResult { options: LatencyOptions; prefix: string; switchMode: string; cases: LatencyCase[]; plainFirstReplyMs?: Dist; notes: string[] }

function dist(xs: number[]): Dist {
  return { n: xs.length, median: median(xs), p99: quantile(xs, 0.99), mean: mean(xs), max: xs.length ? Math.max(...xs) : NaN };
}

interface LatencySamples { n: number; migrated: number; errors: string[]; v2fb: number[]; h2r: number[]; h2v: number[]; rtt: number[] }

/** n sequential "please migrate" connections: per migrated connection, the stage times. */
async function latencySamples(bed: HandoffBed, n: number, port = SERVICE.port): Promise<LatencySamples> {
  const ev = new Map<string, { held?: number; verdict?: number; released?: number; verdictKind?: string }>();
  const get = (k: string) => { let e = ev.get(k); if (!e) ev.set(k, (e = {})); return e; };
  const onHeld = (v: { client: string }) => { get(v.client).held = nowMs(); };
  const onVerdict = (v: { client: string }, req: { verdict: string }) => { const e = get(v.client); if (e.verdict === undefined) { e.verdict = nowMs(); e.verdictKind = req.verdict; } };
  const onReleased = (v: { client: string }) => { const e = get(v.client); if (e.released === undefined) e.released = nowMs(); };
  bed.engine.on('held', onHeld);
  bed.engine.on('verdict', onVerdict);
  bed.engine.on('migrated', onReleased);
  bed.engine.on('forwarded', onReleased);
  let s: ClientSummary;
  try {
    s = await benchClient(bed.client, port, n, 1, 'please migrate', true, 8000);
  } finally {
    bed.engine.off('held', onHeld); bed.engine.off('verdict', onVerdict); bed.engine.off('migrated', onReleased); bed.engine.off('forwarded', onReleased);
  }
  const out: LatencySamples = { n, migrated: 0, errors: s.errors, v2fb: [], h2r: [], h2v: [], rtt: [] };
  for (const r of s.records ?? []) {
    const e = ev.get(`10.0.0.2:${r.port}`);
    if (!e || e.held === undefined || e.verdict === undefined || e.released === undefined) continue;
    if (r.server !== 'server2' || e.verdictKind !== 'MIGRATE') continue;
    out.migrated++;
    out.v2fb.push(r.tFirst - e.verdict);
    out.h2r.push(e.released - e.held);
    out.h2v.push(e.verdict - e.held);
    out.rtt.push(r.tFirst - r.tWrite);
  }
  return out;
}

function latencyCaseOf(analyzer: string, parts: LatencySamples[]): LatencyCase {
  const all = (k: 'v2fb' | 'h2r' | 'h2v' | 'rtt') => parts.flatMap((p) => p[k]);
  const n = parts.reduce((a, p) => a + p.n, 0);
  const migrated = parts.reduce((a, p) => a + p.migrated, 0);
  const c: LatencyCase = {
    analyzer, connections: n, migrated, missed: n - migrated, errors: parts.flatMap((p) => p.errors),
    verdictToFirstByteMs: dist(all('v2fb')), heldToReleasedMs: dist(all('h2r')), heldToVerdictMs: dist(all('h2v')), clientFirstReplyMs: dist(all('rtt')),
  };
  const f = (d: Dist) => `median ${d.median.toFixed(2)} ms, p99 ${d.p99.toFixed(2)} ms`;
  progress(`  ${analyzer}: ${migrated}/${n} migrated; verdict → first byte ${f(c.verdictToFirstByteMs)}; held → released ${f(c.heldToReleasedMs)}; held → verdict ${f(c.heldToVerdictMs)}`);
  return c;
}

/**
 * Three ways of handing over, in alternating rounds on the same bed so all see the same load: the
 * held segment released only after the barrier's reply (`handoff.releaseBeforeBarrier: false`, as
 * before 2026-12-06), the defaults (released right behind the Flow-Mods), and the defaults with the
 * service's speculativeReplay (the handshake to server 2 opened from server 1's SYN-ACK on).
 */
async function latencyCases(bed: HandoffBed, analyzer: string, n: number, rounds = 4): Promise<LatencyCase[]> {
  // The MIGRATE-in-conntrack variants go to the twin service (CONNTRACK_PORT, migrateVia conntrack), added once.
  const ctPort = await addConntrackService(bed);
  const [service, twin] = bed.engine.listServices() as [ServiceConfig, ServiceConfig];
  const variants = [
    { label: `${analyzer}, release after the barrier`, speculative: false, releaseBeforeBarrier: false, port: SERVICE.port },
    { label: analyzer, speculative: false, releaseBeforeBarrier: true, port: SERVICE.port },
    { label: `${analyzer}, speculativeReplay`, speculative: true, releaseBeforeBarrier: true, port: SERVICE.port },
    { label: `${analyzer}, migrateVia conntrack`, speculative: false, releaseBeforeBarrier: true, port: ctPort },
    { label: `${analyzer}, migrateVia conntrack, speculativeReplay`, speculative: true, releaseBeforeBarrier: true, port: ctPort },
  ];
  const parts = variants.map((): LatencySamples[] => []);
  try {
    for (let r = 0; r < rounds; r++) {
      for (const [i, v] of variants.entries()) {
        // The running service object is what connections read (a reload updates it in place too).
        (v.port === ctPort ? twin : service).speculativeReplay = v.speculative;
        bed.engine.setHandoffTimeouts({ releaseBeforeBarrier: v.releaseBeforeBarrier });
        parts[i]!.push(await latencySamples(bed, Math.ceil(n / rounds), v.port));
      }
    }
  } finally {
    service.speculativeReplay = false;
    twin.speculativeReplay = false;
    bed.engine.setHandoffTimeouts({ releaseBeforeBarrier: bed.controller.config.handoff.releaseBeforeBarrier });
  }
  return variants.map((v, i) => latencyCaseOf(v.label, parts[i]!));
}

export async function runLatency(o: LatencyOptions): Promise<LatencyResult> {
  const patched = await patchedAvailable();
  const prefix = patched ? PATCHED_PREFIX : STOCK_PREFIX;
  progress(`handoff latency: ${o.connections} sequential connections per analyzer, OVS ${prefix}`);
  const res: LatencyResult = { options: o, prefix, switchMode: '?', cases: [], notes: [] };
  // Built-in matcher: rules evaluated in the controller on the held segment.
  let bed = await HandoffBed.create({ prefix, analyzers: { builtin: { rules: [RULES], vars: { HOME_NET: '10.0.0.0/8' } } }, services: { verdictTimeoutMs: 3000 } });
  try {
    res.switchMode = bed.engine.modeOf(bed.controller.switches[0]!.describe()) ?? '?';
    await startPlainEcho(bed);
    const plain = await benchClient(bed.client, PLAIN_PORT, Math.min(200, o.connections), 1, 'hello', true);
    res.plainFirstReplyMs = dist((plain.records ?? []).slice(10).map((r) => r.tFirst - r.tWrite));
    progress(`  reference, port not intercepted: first request → first reply byte median ${res.plainFirstReplyMs.median.toFixed(2)} ms, p99 ${res.plainFirstReplyMs.p99.toFixed(2)} ms`);
    res.cases.push(...await latencyCases(bed, 'built-in matcher', o.connections));
  } finally { await bed.destroy(); }
  if (!o.suricata) return res;
  if (!existsSync('/usr/bin/suricata')) { res.notes.push('Suricata not installed (bash topo/install-suricata.sh); its case was skipped.'); return res; }
  const dir = mkdtempSync('/tmp/tmt-bench-suri-');
  let stopIds: (() => Promise<void>) | undefined;
  try {
    bed = await HandoffBed.create({ prefix, ids: true, analyzers: { suricata: { socket: join(dir, 'eve.sock') } }, services: { mirrorPort: IDS_PORT, verdictTimeoutMs: 3000 } });
    const ids = await startLiveSuricata(bed.ids!, dir, { rules: [RULES, NO_MATCH_RULES], eveSocket: join(dir, 'eve.sock'), timeoutMs: 90000 });
    stopIds = () => ids.stop();
    await sleep(1000);
    // Warm-up: Suricata's first packets on a new interface can be late.
    await benchClient(bed.client, SERVICE.port, 5, 1, 'please migrate', false, 8000);
    await drain(bed);
    res.cases.push(...await latencyCases(bed, 'Suricata 7 (live, mirror port)', o.connections));
  } catch (e) {
    res.notes.push(`Suricata case failed: ${(e as Error).message}`);
    progress(`  Suricata case failed: ${(e as Error).message}`);
  } finally {
    await stopIds?.().catch(() => undefined);
    await bed.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  return res;
}

export async function suricataVersion(): Promise<string | undefined> {
  const r = await run('suricata', ['-V'], { allowFail: true }).catch(() => undefined);
  return r ? /version (\S+)/.exec(r.stdout + r.stderr)?.[1] : undefined;
}
