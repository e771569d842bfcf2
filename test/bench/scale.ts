// Many live migrated connections at once (issue 13, step 3), on the real test bed
// (test/lib/handoff-net.ts: patched OVS, controller in this process, echo servers in namespaces)
// plus several client namespaces (10.0.0.100+, switch ports 20+), each running
// test/bench/apps/hold-client.mjs with a raised fd limit. Levels (1k, 5k, 10k by default) are
// reached one after the other; every connection sends "please migrate …", is migrated to
// server 2 (MIGRATE verdict from the bench at once) and stays open. At each level: the rate at
// which that level's new connections were set up, a probe on every open connection (each must
// answer from server 2), a not-intercepted setup rate through the same switch as the baseline,
// the controller's heap and RSS (this process; full GCs first), ovs-vswitchd's RSS, the switch's
// flow count (ovs-ofctl dump-aggregate), the datapath's flows and the revalidator's flow limit.
// Then every connection is closed at once and the time until the controller has freed them all
// and their flows are gone is reported. The first thing that fails is recorded, and the run
// stops raising the level there.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { HandoffBed, SERVICE } from '../lib/handoff-net.ts';
import { PATCHED_PREFIX, STOCK_PREFIX, supportsSeqActions } from '../lib/ovs.ts';
import { run, waitFor } from '../lib/exec.ts';
import type { Host } from '../lib/netns.ts';
import { progress, sleep } from './lib/util.ts';
import { CONN_FLOWS, cpuByThread, flowCount, maxIdleConfig, pmdStats, portRxPackets, rssMB, upcallShow, vswitchdPid } from './lib/ovs-stats.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const HOLD = join(HERE, 'apps', 'hold-client.mjs');
const BENCH_CLIENT = join(HERE, 'apps', 'bench-client.mjs');
const PLAIN_PORT = 5002;
const NOFILE = 1_048_576;

export interface ScaleOptions {
  levels: number[]; perClient: number; concurrency: number; teardownWaitS: number;
  /** The service's migrateVia: 'conntrack' keeps every MIGRATE in the switch's conntrack (no flow per connection). */
  migrateVia?: 'flows' | 'conntrack';
}
export interface HotFn { symbol: string; pct: number }
export interface ScaleMem { heapMB: number; rssMB: number; ovsRssMB: number; flows: number; connFlows: number; dpFlows: number; dpFlowLimit: number; dumpMs: number }
export interface ScaleLevel extends ScaleMem {
  target: number; open: number; opened: number; failed: number; seconds: number; ratePerSec: number;
  plainRatePerSec?: number; probe: { total: number; answered: number; failed: number; seconds: number; maxMs: number; servers: Record<string, number> };
  heapPerConnB: number; rssPerConnB: number; ovsRssPerConnB: number; flowsPerConn: number;
  ovsCpuS: Record<string, number>; controllerCpuS?: number; engine: Record<string, number>; errors: Record<string, number>; lost: number; lostReasons: Record<string, number>;
  migrationFailures: Record<string, number>;
}
export interface ScaleResult {
  options: ScaleOptions; prefix: string; clients: number; baseline: ScaleMem & { plainRatePerSec?: number }; levels: ScaleLevel[];
  teardown?: {
    connections: number; clientCloseS: number; unclean: number; notClosed: number; controllerEmptyS?: number; flowsGoneS?: number; waitS: number;
    left?: { connections: number; connFlows: number; flowsRemovedPerS?: number }; after: ScaleMem;
    series: Array<{ s: number; connections: number; connFlows: number }>; ovsHot: HotFn[];
    /** Over the whole run, read at the end of the teardown (see lossView). */
    loss?: { unreadPackets: number; server2: Record<string, number> };
  };
  /** ovs-vswitchd's hottest functions (perf, when installed) while the last level opened. */
  ovsHotOpening?: HotFn[];
  /** WARN/ERR lines of the bench's ovs-vswitchd log (in-band noise left out). */
  ovsWarnings?: string[];
  broke?: string; notes: string[];
  /** Set when the run stopped before the teardown was measured (the levels before it stand). */
  aborted?: string;
}

function gcFn(): (() => void) | undefined {
  try { setFlagsFromString('--expose-gc'); return runInNewContext('gc') as () => void; } catch { return undefined; }
}

/** One hold-client process: one JSON command per line in, one JSON answer per line out. */
class Holder {
  private readonly waiting: Array<(j: any) => void> = [];
  private readonly err: string[] = [];
  constructor(readonly host: Host, readonly proc: ChildProcess) {
    proc.stderr!.on('data', (d: Buffer) => { this.err.push(d.toString()); if (this.err.length > 20) this.err.shift(); });
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      let j: any;
      try { j = JSON.parse(l); } catch { return; }
      if (j.ready) return;
      this.waiting.shift()?.(j);
    });
  }
  static start(h: Host, tag: string): Holder {
    // The fd limit: one socket per connection, beyond the inherited soft limit.
    const p = h.spawn(['sh', '-c', `(ulimit -n ${NOFILE} 2>/dev/null || ulimit -n $(ulimit -Hn)) && exec node ${HOLD} --host ${SERVICE.ip} --port ${SERVICE.port} --tag ${tag} --timeout 15000`], { stdin: 'pipe' });
    return new Holder(h, p);
  }
  cmd(c: Record<string, unknown>, timeoutMs = 900_000): Promise<any> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`hold client in ${this.host.name} did not answer ${c.op} within ${timeoutMs} ms; stderr: ${this.err.join('').slice(-400)}`)), timeoutMs);
      const onExit = (code: number | null) => { clearTimeout(t); reject(new Error(`hold client in ${this.host.name} exited (${code}); stderr: ${this.err.join('').slice(-600)}`)); };
      this.proc.once('exit', onExit);
      this.waiting.push((j) => { clearTimeout(t); this.proc.off('exit', onExit); resolve(j); });
      this.proc.stdin!.write(JSON.stringify(c) + '\n');
    });
  }
  end(): void { this.proc.stdin?.end(); }
}

/**
 * Where packets went missing: packets the switch's ports received (kernel counters) minus those the
 * userspace datapath read (pmd-stats-show "packets received"; veth ports are read by ovs-vswitchd's
 * main thread, so a busy main thread leaves them to overflow the AF_PACKET receive buffers), and
 * server 2's TCP counters (retransmissions, connections aborted after retransmitting in vain).
 */
async function lossView(bed: HandoffBed): Promise<{ unreadPackets: number; server2: Record<string, number> }> {
  const rx = await portRxPackets(bed.ovs, bed.bridge);
  const read = (await pmdStats(bed.ovs))['packets received'] ?? NaN;
  const r = await bed.servers.server2!.exec(['nstat', '-asz'], { allowFail: true });
  const server2: Record<string, number> = {};
  for (const m of r.stdout.matchAll(/^(TcpRetransSegs|TcpExtTCPAbortOnTimeout|TcpExtTCPTimeouts|TcpOutRsts|TcpExtTCPAbortOnData)\s+(\d+)/gm)) server2[m[1]!] = Number(m[2]);
  return { unreadPackets: rx - read, server2 };
}

/** Samples ovs-vswitchd with perf (when installed) for `seconds`, after `delayS`; the hottest symbols. */
async function perfSample(pid: number, delayS: number, seconds: number): Promise<HotFn[]> {
  if (!existsSync('/usr/bin/perf')) return [];
  await sleep(delayS * 1000);
  const dir = mkdtempSync('/tmp/tmt-bench-perf-');
  try {
    const data = join(dir, 'perf.data');
    const r = await run('perf', ['record', '-F', '499', '-p', String(pid), '-o', data, '--', 'sleep', String(seconds)], { allowFail: true, timeoutMs: (seconds + 30) * 1000 });
    if (r.code !== 0) return [];
    const rep = await run('perf', ['report', '-i', data, '--no-children', '--sort', 'symbol', '--stdio', '-g', 'none'], { allowFail: true, timeoutMs: 60000 });
    return [...rep.stdout.matchAll(/^\s+([\d.]+)%\s+\[[.k]\]\s+(\S+)/gm)].slice(0, 12).map((m) => ({ symbol: m[2]!, pct: Number(m[1]) }));
  } catch { return []; } finally { rmSync(dir, { recursive: true, force: true }); }
}

function ovsWarnings(log: string): string[] {
  const out = new Map<string, number>();
  for (const l of log.split('\n')) {
    if (!/\|(WARN|ERR|EMER)\|/.test(l) || /in_band|Network is down|No such device/.test(l)) continue;
    const k = l.replace(/^\S+\|\d+\|/, '').replace(/\d+/g, 'N').slice(0, 200);
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return [...out].map(([k, n]) => `${n}× ${k}`);
}

async function plainRate(bed: HandoffBed, n: number): Promise<number | undefined> {
  const r = await bed.client.exec(['node', BENCH_CLIENT, '--host', SERVICE.ip, '--port', String(PLAIN_PORT), '--n', String(n), '--concurrency', '8', '--line', 'plain', '--timeout', '5000'], { timeoutMs: 120000, allowFail: true });
  try { return (JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { ratePerSec: number }).ratePerSec; } catch { return undefined; }
}

export async function runScale(o: ScaleOptions): Promise<ScaleResult> {
  const prefix = (await supportsSeqActions(PATCHED_PREFIX)) ? PATCHED_PREFIX : STOCK_PREFIX;
  const max = Math.max(...o.levels);
  const nClients = Math.max(1, Math.ceil(max / o.perClient));
  const gc = gcFn();
  progress(`scale: levels ${o.levels.join(' / ')} live migrated connections (migrateVia ${o.migrateVia ?? 'flows'}), ${nClients} client namespaces (≤ ${o.perClient} each), ${o.concurrency} setups at a time; OVS ${prefix}; GC ${gc ? 'available' : 'not available'}`);
  const res: ScaleResult = { options: o, prefix, clients: nClients, baseline: undefined as unknown as ScaleResult['baseline'], levels: [], notes: [] };
  // idleTimeout 300 s (the service default; the test beds use 60): a level's probe round reaches every connection well within it.
  const bed = await HandoffBed.create({ prefix, services: { idleTimeout: 300, verdictTimeoutMs: 5000, ...(o.migrateVia && { migrateVia: o.migrateVia }) }, ovsOtherConfig: maxIdleConfig() });
  const holders: Holder[] = [];
  const failures: Record<string, number> = {};
  const onFailed = (_v: unknown, info: { why: string }) => { const k = info.why.replace(/\d+/g, 'N').slice(0, 100); failures[k] = (failures[k] ?? 0) + 1; };
  bed.engine.on('migration_failed', onFailed);
  const stopVerdicts = bed.autoVerdict('MIGRATE');
  try {
    const pid = vswitchdPid(bed.ovs);
    for (const name of ['server1', 'server2']) {
      const p = bed.echo[name]?.pid;
      // Raising the hard limit needs CAP_SYS_RESOURCE (not granted in every container): then the
      // inherited limit stays, which is noted (it bounds how many connections a server can hold).
      const r = p ? await run('prlimit', ['--pid', String(p), `--nofile=${NOFILE}:${NOFILE}`], { allowFail: true }) : undefined;
      if (r && r.code !== 0) {
        const cur = await run('prlimit', ['--pid', String(p), '--nofile', '--noheadings', '--output', 'SOFT,HARD'], { allowFail: true });
        const note = `could not raise ${name}'s fd limit (${r.stderr.trim().split('\n').pop()}); it stays at ${cur.stdout.trim().replace(/\s+/g, ' soft, ')} hard`;
        if (!res.notes.includes(note)) res.notes.push(note);
        progress(`  note: ${note}`);
      }
    }
    const s1 = bed.servers.server1!;
    s1.spawn(['node', join(ROOT, 'topo', 'apps', 'echo-server.mjs'), '--name', 'server1', '--port', String(PLAIN_PORT)]);
    await waitFor(async () => (await s1.exec(['ss', '-Hltn', `sport = :${PLAIN_PORT}`])).stdout.includes(String(PLAIN_PORT)), 'plain echo server');
    for (let i = 0; i < nClients; i++) {
      const h = await bed.net.addHost(`h${i}`, `10.0.0.${100 + i}/24`);
      await bed.ovs.addPort(bed.bridge, h.peer, 20 + i);
      for (const ip of ['10.0.0.1', '10.0.0.3']) await h.exec(['ping', '-c', '1', '-W', '2', ip], { allowFail: true });
      holders.push(Holder.start(h, `h${i}`));
    }
    const snap = async (): Promise<ScaleMem> => {
      if (gc) { gc(); gc(); }
      const m = process.memoryUsage();
      const up = await upcallShow(bed.ovs);
      return {
        heapMB: m.heapUsed / 2 ** 20, rssMB: m.rss / 2 ** 20, ovsRssMB: rssMB(pid),
        flows: await flowCount(bed.ovs, bed.bridge), connFlows: await flowCount(bed.ovs, bed.bridge, CONN_FLOWS),
        dpFlows: up.flows, dpFlowLimit: up.limit, dumpMs: up.dumpMs,
      };
    };
    await plainRate(bed, 50); // warm-up: learning-switch flows, ARP
    res.baseline = { ...(await snap()), plainRatePerSec: await plainRate(bed, 300) };
    if (process.env.TM_BENCH_HEAPSNAPSHOT) progress(`  heap snapshot: ${writeHeapSnapshot(join(process.env.TM_BENCH_HEAPSNAPSHOT, `scale-${o.migrateVia ?? 'flows'}-0.heapsnapshot`))}`);
    const loss0 = await lossView(bed);
    const b = res.baseline;
    progress(`  baseline: heap ${b.heapMB.toFixed(1)} MB, rss ${b.rssMB.toFixed(0)} MB, ovs-vswitchd rss ${b.ovsRssMB.toFixed(0)} MB, ${b.flows} flows, not intercepted ${b.plainRatePerSec?.toFixed(0)} setups/s`);
    let open = 0;
    for (const target of [...o.levels].sort((x, y) => x - y)) {
      const want = target - open;
      const share = holders.map((_, i) => Math.floor(want / nClients) + (i < want % nClients ? 1 : 0));
      const st0 = { ...(bed.engine.stats as unknown as Record<string, number>) };
      const cpu0 = cpuByThread(pid);
      const ctl0 = process.cpuUsage();
      const perfOpen = target === max ? perfSample(pid, 5, 10) : undefined;
      const t0 = performance.now();
      const opened = await Promise.all(holders.map((h, i) => share[i]! > 0 ? h.cmd({ op: 'open', n: share[i], concurrency: Math.max(1, Math.round(o.concurrency / nClients)), line: 'please migrate' }) : Promise.resolve({ ok: 0, failed: 0, errorCounts: {}, open: 0, lost: { count: 0, reasons: {} } })));
      const seconds = (performance.now() - t0) / 1000;
      const cpu1 = cpuByThread(pid);
      const ctl = process.cpuUsage(ctl0);
      if (perfOpen) {
        res.ovsHotOpening = await perfOpen;
        if (res.ovsHotOpening.length) progress(`    ovs-vswitchd hottest functions while opening (perf): ${res.ovsHotOpening.slice(0, 6).map((x) => `${x.symbol} ${x.pct.toFixed(1)} %`).join(', ')}`);
      }
      const ok = opened.reduce((a, x) => a + x.ok, 0);
      const failed = opened.reduce((a, x) => a + x.failed, 0);
      const errors: Record<string, number> = {};
      for (const x of opened) for (const [k, v] of Object.entries(x.errorCounts ?? {})) errors[k] = (errors[k] ?? 0) + (v as number);
      progress(`  level ${target}: opened ${ok} (${failed} failed) in ${seconds.toFixed(1)} s = ${(ok / seconds).toFixed(0)} setups/s${failed ? `; errors ${JSON.stringify(errors)}` : ''}`);
      // Probe every open connection.
      const p0 = performance.now();
      const probes = await Promise.all(holders.map((h) => h.cmd({ op: 'probe', window: 100 })));
      const probe = {
        total: probes.reduce((a, x) => a + x.total, 0), answered: probes.reduce((a, x) => a + x.answered, 0), failed: probes.reduce((a, x) => a + x.failed, 0),
        seconds: (performance.now() - p0) / 1000, maxMs: Math.max(...probes.map((x) => x.maxMs)), servers: {} as Record<string, number>,
      };
      for (const x of probes) for (const [k, v] of Object.entries(x.servers)) probe.servers[k] = (probe.servers[k] ?? 0) + (v as number);
      for (const x of probes) for (const [k, v] of Object.entries(x.errorCounts ?? {})) errors[`probe: ${k}`] = (errors[`probe: ${k}`] ?? 0) + (v as number);
      open = probes.reduce((a, x) => a + x.total, 0);
      const lostReasons: Record<string, number> = {};
      let lost = 0;
      for (const x of probes) { lost += x.lost.count; for (const [k, v] of Object.entries(x.lost.reasons)) lostReasons[k] = (lostReasons[k] ?? 0) + (v as number); }
      progress(`    probe: ${probe.answered}/${probe.total} answered in ${probe.seconds.toFixed(1)} s (slowest ${probe.maxMs.toFixed(0)} ms; ${JSON.stringify(probe.servers)})${lost ? `; lost while held: ${lost} ${JSON.stringify(lostReasons)}` : ''}`);
      const plain = await plainRate(bed, 300);
      const m = await snap();
      // A heap snapshot of this process at each level, for finding what a connection costs (Chrome DevTools or any .heapsnapshot reader).
      if (process.env.TM_BENCH_HEAPSNAPSHOT) progress(`    heap snapshot: ${writeHeapSnapshot(join(process.env.TM_BENCH_HEAPSNAPSHOT, `scale-${o.migrateVia ?? 'flows'}-${target}.heapsnapshot`))}`);
      const st1 = bed.engine.stats as unknown as Record<string, number>;
      const engine: Record<string, number> = Object.fromEntries(Object.entries(st1).map(([k, v]) => [k, v - (st0[k] ?? 0)] as [string, number]).filter(([, v]) => v !== 0));
      const ovsCpuS: Record<string, number> = Object.fromEntries(Object.entries(cpu1).map(([k, v]) => [k, v - (cpu0[k] ?? 0)] as [string, number]).filter(([, v]) => v > 0));
      const L: ScaleLevel = {
        target, open, opened: ok, failed, seconds, ratePerSec: ok / seconds, plainRatePerSec: plain, probe, ...m,
        heapPerConnB: ((m.heapMB - b.heapMB) * 2 ** 20) / Math.max(1, open), rssPerConnB: ((m.rssMB - b.rssMB) * 2 ** 20) / Math.max(1, open),
        ovsRssPerConnB: ((m.ovsRssMB - b.ovsRssMB) * 2 ** 20) / Math.max(1, open), flowsPerConn: m.connFlows / Math.max(1, open),
        ovsCpuS, controllerCpuS: (ctl.user + ctl.system) / 1e6, engine, errors, lost, lostReasons, migrationFailures: { ...failures },
      };
      res.levels.push(L);
      progress(`    controller heap ${m.heapMB.toFixed(1)} MB (${L.heapPerConnB.toFixed(0)} B/conn), rss ${m.rssMB.toFixed(0)} MB; ovs-vswitchd rss ${m.ovsRssMB.toFixed(0)} MB (${L.ovsRssPerConnB.toFixed(0)} B/conn); flows ${m.flows} (${m.connFlows} per-connection, ${L.flowsPerConn.toFixed(2)}/conn); datapath flows ${m.dpFlows} (limit ${m.dpFlowLimit}, dump ${m.dumpMs} ms); not intercepted ${plain?.toFixed(0)} setups/s; table ${JSON.stringify(bed.engine.table.sizes())}`);
      progress(`    CPU during the opening, per new connection: controller (this process) ${(L.controllerCpuS! * 1000 / Math.max(1, ok)).toFixed(2)} ms, ovs-vswitchd ${Object.entries(ovsCpuS).map(([k, v]) => `${k} ${(v * 1000 / Math.max(1, ok)).toFixed(2)} ms`).join(', ')}; engine ${JSON.stringify(engine)}`);
      const broken: string[] = [];
      if (failed > 0) broken.push(`${failed} of ${want} new connections failed (${Object.entries(errors).filter(([k]) => !k.startsWith('probe')).map(([k, v]) => `${v}× ${k}`).join('; ')})`);
      if (probe.answered < probe.total) broken.push(`${probe.total - probe.answered} of ${probe.total} live connections did not answer the probe (${Object.entries(errors).filter(([k]) => k.startsWith('probe')).map(([k, v]) => `${v}× ${k}`).join('; ')})`);
      if (lost > 0) broken.push(`${lost} held connections were closed or reset (${JSON.stringify(lostReasons)})`);
      if (Object.keys(failures).length) broken.push(`migration failures: ${JSON.stringify(failures)}`);
      if (broken.length) {
        res.broke = `at ${target}: ${broken.join('; ')}`;
        progress(`    BROKE ${res.broke}`);
        if (ok < want * 0.5) break; // stop raising the level once most setups fail
      }
    }
    // Teardown: every client closes all its connections at once. The controller's table is looked
    // at every 250 ms; the switch's flow count every 5 s (dump-aggregate with a cookie mask is a
    // scan of the whole flow table in ovs-vswitchd, which would slow the teardown it measures).
    const total = res.levels.at(-1)?.open ?? 0;
    progress(`  teardown: closing ${total} connections (waiting up to ${o.teardownWaitS} s)`);
    const t0 = performance.now();
    const el = () => (performance.now() - t0) / 1000;
    let controllerEmptyS: number | undefined; let flowsGoneS: number | undefined;
    const series: Array<{ s: number; connections: number; connFlows: number }> = [];
    const closes = Promise.all(holders.map((h) => h.cmd({ op: 'close', timeoutMs: Math.min(120, o.teardownWaitS) * 1000 }, (o.teardownWaitS + 60) * 1000)));
    const perfTd = perfSample(pid, 5, 10);
    const watch = (async () => {
      let nextFlows = 0;
      while (el() < o.teardownWaitS && (controllerEmptyS === undefined || flowsGoneS === undefined)) {
        if (controllerEmptyS === undefined && bed.engine.table.size === 0) controllerEmptyS = el();
        if (flowsGoneS === undefined && (el() >= nextFlows || controllerEmptyS !== undefined)) {
          const n = await flowCount(bed.ovs, bed.bridge, CONN_FLOWS);
          series.push({ s: el(), connections: bed.engine.table.size, connFlows: n });
          if (series.length % 6 === 1) progress(`    ${el().toFixed(0)} s: ${bed.engine.table.size} connections tracked, ${n} connection flows left`);
          if (n === 0) flowsGoneS = el();
          nextFlows = el() + 5;
        }
        await sleep(250);
      }
    })();
    const closed = await closes;
    const clientCloseS = el();
    await watch;
    const ovsTeardownHot = await perfTd;
    const after = await snap();
    const last = series.at(-1); const back = series.filter((x) => last && x.s >= last.s - 60)[0];
    const flowsPerS = last && back && last.s > back.s ? (back.connFlows - last.connFlows) / (last.s - back.s) : undefined;
    res.teardown = {
      connections: total, clientCloseS, unclean: closed.reduce((a, x) => a + x.unclean, 0), notClosed: closed.reduce((a, x) => a + x.notClosed, 0),
      controllerEmptyS, flowsGoneS, after, waitS: o.teardownWaitS, series, ovsHot: ovsTeardownHot,
      ...(controllerEmptyS === undefined || flowsGoneS === undefined ? { left: { connections: bed.engine.table.size, connFlows: after.connFlows, flowsRemovedPerS: flowsPerS } } : {}),
    };
    res.ovsWarnings = ovsWarnings(bed.ovs.log());
    const loss1 = await lossView(bed);
    res.teardown.loss = { unreadPackets: loss1.unreadPackets - loss0.unreadPackets, server2: Object.fromEntries(Object.entries(loss1.server2).map(([k, v]) => [k, v - (loss0.server2[k] ?? 0)])) };
    progress(`    packets received by the switch's ports but never read by the datapath: ${res.teardown.loss.unreadPackets}; server 2 TCP: ${JSON.stringify(res.teardown.loss.server2)}`);
    const td = res.teardown;
    const tdBroken = [
      td.notClosed ? `${td.notClosed} of ${total} clients had not seen their connection close after ${Math.min(120, o.teardownWaitS)} s` : '',
      td.left ? `the controller still tracked ${td.left.connections} connections and the switch held ${td.left.connFlows} connection flows after ${o.teardownWaitS} s` : '',
    ].filter(Boolean).join('; ');
    if (tdBroken) res.broke = [res.broke, `at the teardown of ${total}: ${tdBroken}`].filter(Boolean).join('; then ');
    progress(`  teardown: clients closed in ${clientCloseS.toFixed(1)} s (${res.teardown.unclean} unclean, ${res.teardown.notClosed} not closed); controller table empty after ${controllerEmptyS?.toFixed(1) ?? 'NOT'} s, connection flows gone after ${flowsGoneS?.toFixed(1) ?? 'NOT'} s${res.teardown.left ? ` (left ${JSON.stringify(res.teardown.left)})` : ''}; after: heap ${after.heapMB.toFixed(1)} MB, ovs rss ${after.ovsRssMB.toFixed(0)} MB, flows ${after.flows}`);
    if (ovsTeardownHot.length) progress(`    ovs-vswitchd hottest functions during the teardown (perf): ${ovsTeardownHot.slice(0, 6).map((x) => `${x.symbol} ${x.pct.toFixed(1)} %`).join(', ')}`);
    if (res.ovsWarnings.length) progress(`    ovs-vswitchd log: ${res.ovsWarnings.slice(0, 5).join(' | ')}`);
  } catch (e) {
    // Keep what was measured (e.g. a test-suite cleanup killing every /tmp/tmt-ovs-* switch mid-run).
    if (!res.baseline || !res.levels.length) throw e;
    res.aborted = `the run stopped early: ${(e as Error).message}`;
    progress(`  ${res.aborted}`);
  } finally {
    stopVerdicts();
    bed.engine.off('migration_failed', onFailed);
    for (const h of holders) h.end();
    await bed.destroy();
  }
  return res;
}
