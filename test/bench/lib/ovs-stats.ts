// What ovs-vswitchd and the OpenFlow channel are doing, for the profile and scale benchmarks:
// process RSS and CPU per thread group (from /proc), coverage counters, the revalidator's view
// (upcall/show), the userspace datapath's per-thread stats, flow counts, and a tap on the
// controller's side of the OpenFlow channel that counts messages by type (without changing the
// controller: it wraps one SwitchConnection instance's send and receive).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Ovs } from '../../../topo/lib/ovs.ts';
import type { SwitchConnection } from '../../../controller/datapath/switch-connection.ts';

const CLK_TCK = 100;

export function vswitchdPid(ovs: Ovs): number {
  return Number(readFileSync(join(ovs.dir, 'ovs-vswitchd.pid'), 'utf8').trim());
}

export function rssMB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** CPU seconds (user + system) of a process's threads, summed per thread-name group (digits stripped: handler12 → handler). */
export function cpuByThread(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try { stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'); } catch { continue; }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/\d+$/, '');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const secs = (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime (fields 14, 15)
    out[comm] = (out[comm] ?? 0) + secs;
  }
  return out;
}

export function diff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = (b[k] ?? 0) - (a[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

/** `ovs-appctl coverage/show` totals by counter name. */
export async function coverage(ovs: Ovs): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const text = await ovs.appctl('coverage/show');
  for (const m of text.matchAll(/^(\S+)\s+.*total: (\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

export interface UpcallView { flows: number; avg: number; max: number; limit: number; dumpMs: number; text: string }
/** `ovs-appctl upcall/show`: datapath flows now, the revalidator's flow limit and its last dump duration. */
export async function upcallShow(ovs: Ovs): Promise<UpcallView> {
  const text = await ovs.appctl('upcall/show');
  const m = /flows\s*:\s*\(current (\d+)\) \(avg (\d+)\) \(max (\d+)\) \(limit (\d+)\)/.exec(text);
  const d = /dump duration\s*:\s*(\d+)ms/.exec(text);
  return { flows: Number(m?.[1] ?? NaN), avg: Number(m?.[2] ?? NaN), max: Number(m?.[3] ?? NaN), limit: Number(m?.[4] ?? NaN), dumpMs: Number(d?.[1] ?? NaN), text };
}

/** `dpif-netdev/pmd-stats-show` numbers summed over the threads that forward packets (main thread here: veths have no PMD). */
export async function pmdStats(ovs: Ovs): Promise<Record<string, number>> {
  const text = await ovs.appctl('dpif-netdev/pmd-stats-show').catch(() => '');
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^\s+([a-z][a-z /-]+?):\s+(\d+)(?:\s|$)/gm)) {
    const k = m[1]!.trim();
    out[k] = (out[k] ?? 0) + Number(m[2]);
  }
  return out;
}

/** Flows in table `table` (all tables when undefined) of `bridge`, optionally only those whose cookie matches. */
export async function flowCount(ovs: Ovs, bridge: string, cookie?: string): Promise<number> {
  const text = await ovs.ofctl('-O', 'OpenFlow13', 'dump-aggregate', bridge, ...(cookie ? [`cookie=${cookie}`] : []));
  const m = /flow_count=(\d+)/.exec(text);
  return m ? Number(m[1]) : NaN;
}
/** Cookie match of the per-connection flows (cookie app byte 0x10, controller/cookies.ts). */
export const CONN_FLOWS = '0x1000000000000000/0xff00000000000000';

const OFPT_NAMES: Record<number, string> = {
  0: 'hello', 1: 'error', 2: 'echo_request', 3: 'echo_reply', 4: 'experimenter', 5: 'features_request', 6: 'features_reply', 10: 'packet_in',
  11: 'flow_removed', 12: 'port_status', 13: 'packet_out', 14: 'flow_mod', 18: 'multipart_request', 19: 'multipart_reply', 20: 'barrier_request', 21: 'barrier_reply',
};

/** Counts the OpenFlow messages crossing one switch channel, by direction and type (flow_mod by command). */
export class ChannelTap {
  readonly counts: Record<string, number> = {};
  private readonly undo: Array<() => void> = [];
  constructor(sw: SwitchConnection) {
    const s = sw as unknown as { send: (m: { type: string; command?: string }) => number; onMessage: (raw: Buffer) => void };
    const send = s.send; const onMessage = s.onMessage;
    s.send = (m) => { this.bump(`out ${m.type === 'flow_mod' ? `flow_mod ${m.command ?? '?'}` : m.type}`); return send.call(sw, m); };
    s.onMessage = (raw: Buffer) => { this.bump(`in ${OFPT_NAMES[raw[1]!] ?? `type ${raw[1]}`}`); return onMessage.call(sw, raw); };
    this.undo.push(() => { delete (s as Partial<typeof s>).send; delete (s as Partial<typeof s>).onMessage; });
  }
  private bump(k: string): void { this.counts[k] = (this.counts[k] ?? 0) + 1; }
  snapshot(): Record<string, number> { return { ...this.counts }; }
  remove(): void { for (const u of this.undo.splice(0)) u(); }
}

/** Packets the bridge's ports received (the kernel's interface counters, `ovs-ofctl dump-ports`). */
export async function portRxPackets(ovs: Ovs, bridge: string): Promise<number> {
  const text = await ovs.ofctl('-O', 'OpenFlow13', 'dump-ports', bridge);
  let n = 0;
  for (const m of text.matchAll(/port\s+(\S+?):\s+rx pkts=(\d+)/g)) if (m[1] !== 'LOCAL') n += Number(m[2]);
  return n;
}

/**
 * `TMT_OVS_MAX_IDLE=<ms>` gives the bench's switch that datapath `max-idle` (default 10000 ms):
 * how long the megaflows of connections that ended weigh on every revalidation (docs/benchmarks.md).
 */
export function maxIdleConfig(): Record<string, string> | undefined {
  const v = process.env.TMT_OVS_MAX_IDLE;
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new Error(`TMT_OVS_MAX_IDLE must be milliseconds, got ${JSON.stringify(v)}`);
  return { 'max-idle': v };
}
