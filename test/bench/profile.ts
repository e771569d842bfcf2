// Where one intercepted connection setup spends its time (issue 13, step 1), on the real test bed
// (test/lib/handoff-net.ts: patched OVS, controller in this process, echo servers in namespaces):
//  - the setup loads of the `setup` case (bench-client: connect, one request line, reply, close;
//    verdicts from the bench at once) for a port the controller does not intercept, FORWARD and
//    MIGRATE, each run twice: once plain (rates, channel and OVS counters), once with the
//    controller's CPU profiled (node:inspector, in-process), self time grouped by module;
//  - per connection: OpenFlow messages by type (a tap on the controller's side of the channel),
//    ovs-vswitchd CPU by thread group (/proc), coverage counter deltas (upcalls, flow_mods,
//    packet-outs, revalidations), the datapath's own counters (pmd-stats-show), the bench
//    process's CPU (controller + harness);
//  - a wall-clock breakdown of one setup from the client's timestamps and the engine's events
//    (both CLOCK_MONOTONIC).
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HandoffBed, SERVICE } from '../lib/handoff-net.ts';
import { PATCHED_PREFIX, STOCK_PREFIX, supportsSeqActions } from '../lib/ovs.ts';
import { waitFor } from '../lib/exec.ts';
import type { Host } from '../lib/netns.ts';
import { progress, nowMs, median, quantile } from './lib/util.ts';
import { ChannelTap, coverage, cpuByThread, diff, pmdStats, upcallShow, vswitchdPid, flowCount, maxIdleConfig } from './lib/ovs-stats.ts';
import { FORWARD_CT, MIGRATE_CT, addConntrackService, modeTraffic } from './network.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const CLIENT = join(HERE, 'apps', 'bench-client.mjs');
const PLAIN_PORT = 5002;

export interface ProfileOptions { connections: number; concurrency: number; samplingUs: number }
export interface ProfileGroup { group: string; ms: number; msPerConn: number; share: number }
export interface ProfileFn { fn: string; where: string; group: string; msPerConn: number; share: number }
export interface ModeProfile {
  mode: string; connections: number; ok: number; failed: number; ratePerSec: number; profiledRatePerSec?: number; servers: Record<string, number>;
  /** OpenFlow messages per connection, by direction and type. */
  ofPerConn: Record<string, number>;
  /** ovs-vswitchd CPU ms per connection by thread group, and the controller process's. */
  ovsCpuMsPerConn: Record<string, number>; controllerCpuMsPerConn: number;
  /** coverage/show deltas per connection (non-zero ones). */
  coveragePerConn: Record<string, number>;
  pmdPerConn: Record<string, number>;
  /** Profiled run: controller self time grouped by module, top functions. */
  groups?: ProfileGroup[]; top?: ProfileFn[]; profiledMs?: number;
  /** Wall clock of one setup (medians, ms). */
  stages: Record<string, { median: number; p90: number }>;
  upcallAfter: { flows: number; limit: number; dumpMs: number };
}
export interface ProfileResult { options: ProfileOptions; prefix: string; switchMode: string; modes: ModeProfile[]; notes: string[] }

interface Rec { i: number; port: number; t0: number; tConn: number; tWrite: number; tFirst: number; tReply: number; tClosed: number; server: string }
interface Summary { total: number; ok: number; failed: number; servers: Record<string, number>; errors: string[]; elapsedMs: number; ratePerSec: number; records?: Rec[] }

async function client(h: Host, port: number, n: number, conc: number, line: string): Promise<Summary> {
  const r = await h.exec(['node', CLIENT, '--host', SERVICE.ip, '--port', String(port), '--n', String(n), '--concurrency', String(conc), '--line', line, '--timeout', '5000', '--records'],
    { timeoutMs: Math.ceil(n / conc) * 5000 + 60000, allowFail: true });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try { return JSON.parse(last) as Summary; } catch { throw new Error(`bench client failed (exit ${r.code}): ${r.stderr.slice(0, 400)}`); }
}

/** Module groups for the profile, by script URL (first match wins). */
const GROUPS: Array<[RegExp, string]> = [
  [/controller\/packet\//, 'packet codec (controller/packet)'],
  [/controller\/openflow\//, 'OpenFlow codec (controller/openflow)'],
  [/controller\/datapath\//, 'OpenFlow channel (controller/datapath)'],
  [/controller\/handoff\/(flow-plan|connection-record)\.ts|controller\/cookies\.ts/, 'flow plan (flow-plan, connection-record, cookies)'],
  [/controller\/handoff\//, 'handoff engine (controller/handoff, rest)'],
  [/controller\/log\.ts/, 'logging (controller/log)'],
  [/controller\/(metrics|api\/)/, 'metrics / API events'],
  [/controller\/apps\//, 'learning switch (controller/apps)'],
  [/controller\//, 'controller, other (dispatch, analyzer bridge)'],
  [/test\//, 'bench harness (test/)'],
  [/node_modules\//, 'libraries (node_modules)'],
  [/^node:/, 'Node core JS (net, streams, events, timers)'],
];
function groupOf(fn: string, url: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return 'V8 / native, unattributed (program)';
  for (const [re, g] of GROUPS) if (re.test(url)) return g;
  return url ? `other: ${url.replace(/^file:\/\//, '').slice(-50)}` : 'native builtins (Buffer, writev, C++)';
}

interface CpuProfile { nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

function summarise(p: CpuProfile, conns: number): { groups: ProfileGroup[]; top: ProfileFn[]; profiledMs: number } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0; // the time until the next sample belongs to this one
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt / 1000);
  }
  const groups = new Map<string, number>();
  const fns = new Map<string, { ms: number; where: string; group: string }>();
  let busy = 0;
  for (const [id, ms] of self) {
    const cf = byId.get(id)!.callFrame;
    const g = groupOf(cf.functionName, cf.url);
    if (g === 'idle') continue;
    busy += ms;
    groups.set(g, (groups.get(g) ?? 0) + ms);
    const file = cf.url.replace(/^file:\/\/.*?\/(controller|test|node_modules)\//, '$1/');
    // tsx's transpiled modules carry no useful line numbers: function and file name only.
    const key = `${cf.functionName || '(anonymous)'}@${file}`;
    const e = fns.get(key) ?? { ms: 0, where: file, group: g };
    e.ms += ms;
    fns.set(key, e);
  }
  return {
    profiledMs: busy,
    groups: [...groups].sort((a, b) => b[1] - a[1]).map(([group, ms]) => ({ group, ms, msPerConn: ms / conns, share: ms / busy })),
    top: [...fns].sort((a, b) => b[1].ms - a[1].ms).slice(0, 20).map(([k, v]) => ({ fn: k.split('@')[0]!, where: v.where, group: v.group, msPerConn: v.ms / conns, share: v.ms / busy })),
  };
}

const per = (o: Record<string, number>, n: number) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v / n]));

export async function runProfile(o: ProfileOptions): Promise<ProfileResult> {
  const prefix = (await supportsSeqActions(PATCHED_PREFIX)) ? PATCHED_PREFIX : STOCK_PREFIX;
  progress(`profile: ${o.connections} connections per mode, ${o.concurrency} at a time, OVS ${prefix}; CPU profile sampling every ${o.samplingUs} µs`);
  const bed = await HandoffBed.create({ prefix, ovsOtherConfig: maxIdleConfig() });
  const session = new Session();
  session.connect();
  const res: ProfileResult = { options: o, prefix, switchMode: '?', modes: [], notes: [] };
  try {
    const h = bed.servers.server1!;
    h.spawn(['node', join(ROOT, 'topo', 'apps', 'echo-server.mjs'), '--name', 'server1', '--port', String(PLAIN_PORT)]);
    await waitFor(async () => (await h.exec(['ss', '-Hltn', `sport = :${PLAIN_PORT}`])).stdout.includes(String(PLAIN_PORT)), 'plain echo server');
    const sw = bed.controller.switches[0]!;
    res.switchMode = bed.engine.modeOf(sw.describe()) ?? '?';
    const tap = new ChannelTap(sw);
    const pid = vswitchdPid(bed.ovs);
    await client(bed.client, PLAIN_PORT, 20, 1, 'warm');
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: o.samplingUs });
    const rates: Record<string, number> = {};
    // "FORWARD, conntrack" and "MIGRATE, conntrack": a second service, the same servers on another
    // port, that keeps its verdicts in conntrack (forwardVia, migrateVia): no Flow-Mod per connection. The counted runs come
    // first: the profiled ones go without the channel tap.
    const ctPort = await addConntrackService(bed);
    for (const [mode, profiled] of [['plain', false], ['FORWARD', false], ['MIGRATE', false], [FORWARD_CT, false], [MIGRATE_CT, false], ['FORWARD', true], ['MIGRATE', true], [FORWARD_CT, true], [MIGRATE_CT, true]] as const) {
      const t = modeTraffic(mode, ctPort);
      const verdict = t.verdict;
      const stop = verdict === 'plain' ? () => undefined : bed.autoVerdict(verdict);
      const ev = new Map<number, Record<string, number>>();
      const at = (name: string) => (v: { client: string }) => {
        if (!v.client.startsWith(`${bed.client.ip}:`)) return;
        const port = Number(v.client.split(':')[1]);
        const e = ev.get(port) ?? {};
        if (e[name] === undefined) e[name] = nowMs();
        ev.set(port, e);
      };
      const handlers = { conn_opened: at('syn'), held: at('held'), verdict: at('verdict'), forwarded: at('released'), migrated: at('released'), conn_closed: at('closed') };
      for (const [k, fn] of Object.entries(handlers)) bed.engine.on(k, fn);
      const of0 = tap.snapshot(); const cov0 = await coverage(bed.ovs); const ovsCpu0 = cpuByThread(pid); const cpu0 = process.cpuUsage();
      await bed.ovs.appctl('dpif-netdev/pmd-stats-clear').catch(() => '');
      // The tap's own bookkeeping would show in the profile: the profiled runs go without it.
      if (profiled) { tap.remove(); await session.post('Profiler.start'); }
      let s: Summary;
      try {
        s = await client(bed.client, t.port, o.connections, o.concurrency, t.line);
        // Teardown belongs to the setup's cost: wait until the controller has freed every connection (flows deleted).
        await waitFor(() => bed.engine.table.size === 0, 'the connection table to empty', 30000).catch(() => progress(`  (${bed.engine.table.size} connections still tracked)`));
      } finally {
        stop();
        for (const [k, fn] of Object.entries(handlers)) bed.engine.off(k, fn);
      }
      let prof: CpuProfile | undefined;
      if (profiled) {
        prof = (await session.post('Profiler.stop')).profile as unknown as CpuProfile;
        if (process.env.TMT_CPU_PROF) writeFileSync(join(process.env.TMT_CPU_PROF, `tmt-setup-${verdict}${mode === FORWARD_CT || mode === MIGRATE_CT ? '-conntrack' : ''}.cpuprofile`), JSON.stringify(prof));
      }
      const cpu = process.cpuUsage(cpu0); const ovsCpu = diff(ovsCpu0, cpuByThread(pid)); const cov = diff(cov0, await coverage(bed.ovs)); const of = diff(of0, tap.snapshot());
      const pmd = await pmdStats(bed.ovs);
      const up = await upcallShow(bed.ovs);
      const n = s.ok || 1;
      progress(`  ${mode}${profiled ? ' (profiled)' : ''}: ${s.ratePerSec.toFixed(0)} connections/s (${s.ok} ok, ${s.failed} failed; ${JSON.stringify(s.servers)})${s.errors.length ? ' errors: ' + s.errors.slice(0, 3).join('; ') : ''}`);
      if (profiled) {
        const m = res.modes.find((x) => x.mode === mode)!;
        m.profiledRatePerSec = s.ratePerSec;
        Object.assign(m, summarise(prof!, n));
        progress(`    controller self time ${(m.profiledMs! / n).toFixed(3)} ms/conn: ${m.groups!.slice(0, 6).map((g) => `${g.group} ${(g.share * 100).toFixed(0)} %`).join(', ')}`);
        continue;
      }
      // Wall clock of one setup.
      const st: Record<string, number[]> = {};
      const push = (k: string, x: number) => { if (Number.isFinite(x)) (st[k] ??= []).push(x); };
      for (const r of s.records ?? []) {
        push('connect() → connected (client)', r.tConn - r.t0);
        push('request written → first reply byte (client)', r.tFirst - r.tWrite);
        push('first reply byte → closed (client)', r.tClosed - r.tFirst);
        push('whole connection (client)', r.tClosed - r.t0);
        const e = ev.get(r.port);
        if (!e) continue;
        push('a. connect() → SYN at controller', e.syn! - r.t0);
        push('b. SYN at controller → connected at client', r.tConn - e.syn!);
        push('c. connected → first segment held', e.held! - r.tConn);
        push('d. held → verdict (bench answers at once)', e.verdict! - e.held!);
        push('e. verdict → released (flows or conntrack commit; MIGRATE: replay)', e.released! - e.verdict!);
        push('f. released → first reply byte at client', r.tFirst - e.released!);
        push('g. client FIN sent → controller frees the connection', e.closed! - r.tReply);
      }
      const stages = Object.fromEntries(Object.entries(st).map(([k, xs]) => [k, { median: median(xs), p90: quantile(xs, 0.9) }]));
      rates[mode] = s.ratePerSec;
      res.modes.push({
        mode, connections: o.connections, ok: s.ok, failed: s.failed, ratePerSec: s.ratePerSec, servers: s.servers,
        ofPerConn: per(of, n), ovsCpuMsPerConn: per(Object.fromEntries(Object.entries(ovsCpu).map(([k, v]) => [k, v * 1000])), n),
        controllerCpuMsPerConn: (cpu.user + cpu.system) / 1000 / n,
        coveragePerConn: per(cov, n), pmdPerConn: per(pmd, n), stages,
        upcallAfter: { flows: up.flows, limit: up.limit, dumpMs: up.dumpMs },
      });
      const of1 = Object.entries(per(of, n)).filter(([, v]) => v >= 0.05).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
      progress(`    per connection: OpenFlow ${of1 || 'none'}; ovs-vswitchd CPU ${Object.entries(ovsCpu).map(([k, v]) => `${k} ${(v * 1000 / n).toFixed(3)} ms`).join(', ')}; bench process CPU ${((cpu.user + cpu.system) / 1000 / n).toFixed(3)} ms`);
      progress(`    stages (median ms): ${Object.entries(stages).map(([k, v]) => `${k.split(' ')[0]} ${v.median.toFixed(2)}`).join(', ')}`);
      progress(`    flows now ${await flowCount(bed.ovs, bed.bridge)}; datapath flows ${up.flows} (limit ${up.limit}, dump ${up.dumpMs} ms)`);
    }
  } finally {
    await session.post('Profiler.disable').catch(() => undefined);
    session.disconnect();
    await bed.destroy();
  }
  return res;
}
