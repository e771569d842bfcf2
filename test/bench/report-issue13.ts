// Rendering of the issue-13 cases (profile: where a setup spends its time; scale: many live
// migrated connections) into the generated part of docs/benchmarks.md; called by report.ts.
import type { AllResults, Entry, Meta } from './report.ts';
import type { ScaleResult } from './scale.ts';

const f = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));
const k = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? 'n/a' : Math.round(x).toLocaleString('en'));
const when = (m: Meta) => `${m.date}${m.quick ? ', **--quick** (development numbers)' : ''}; load average ${m.loadBefore.map((x) => x.toFixed(1)).join('/')} before, ${m.loadAfter.map((x) => x.toFixed(1)).join('/')} after (1/5/15 min)${m.busy ? `; ${m.busy}` : ''}`;

export function renderProfile(all: AllResults, L: string[]): void {
  const e = all.profile;
  if (!e) return;
  L.push('### 6. Where a setup spends its time (profile)');
  L.push('');
  if (e.error) { L.push(`Failed: ${e.error}`); L.push(''); return; }
  const p = e.result!;
  L.push(`When: ${when(e.meta)}. OVS: ${p.prefix} (switch mode ${p.switchMode}). Command: \`npm run bench -- --only profile${e.meta.quick ? ' --quick' : ''}\`.`);
  L.push('');
  L.push(`What: test/bench/profile.ts on the test bed of §3 (controller in the bench process, real OVS, echo servers), the §3 load: ${p.options.connections} connections per mode, ${p.options.concurrency} at a time (connect, one request line, reply, close; verdict from the bench at once), counted until the controller has freed every connection (teardown included). Each intercepted mode runs twice: once for the counters (a tap on the controller's side of the OpenFlow channel counts messages by type; \`ovs-appctl coverage/show\` and \`dpif-netdev/pmd-stats-show\` deltas; ovs-vswitchd CPU per thread from /proc), once with the controller's CPU profiled (node:inspector in-process, sampling every ${p.options.samplingUs} µs; self time grouped by module). Figures are per connection.`);
  L.push('');
  const modes = p.modes;
  const col = (fn: (m: typeof modes[number]) => string) => modes.map(fn).join(' | ');
  L.push(`| per connection | ${modes.map((m) => m.mode === 'plain' ? 'not intercepted' : m.mode).join(' | ')} |`);
  L.push(`| --- | ${modes.map(() => '---:').join(' | ')} |`);
  L.push(`| setups/s (profiled run) | ${col((m) => `${k(m.ratePerSec)}${m.profiledRatePerSec ? ` (${k(m.profiledRatePerSec)})` : ''}`)} |`);
  const ofKeys = [...new Set(modes.flatMap((m) => Object.keys(m.ofPerConn)))].filter((x) => !/echo|multipart|hello|features|port_status/.test(x)).sort();
  for (const key of ofKeys) L.push(`| OpenFlow: ${key.replace(/^out /, 'controller → switch: ').replace(/^in /, 'switch → controller: ')} | ${col((m) => f(m.ofPerConn[key] ?? 0))} |`);
  L.push(`| CPU: controller (bench process), ms | ${col((m) => f(m.controllerCpuMsPerConn, 3))} |`);
  const threads = [...new Set(modes.flatMap((m) => Object.keys(m.ovsCpuMsPerConn)))].sort();
  for (const t of threads) L.push(`| CPU: ovs-vswitchd ${t === 'ovs-vswitchd' ? 'main thread (OpenFlow, and the datapath for the veth ports)' : `thread \`${t}\``}, ms | ${col((m) => f(m.ovsCpuMsPerConn[t] ?? 0, 3))} |`);
  for (const [key, label] of [['packets received', 'packets received'], ['megaflow hits', 'megaflow hits'], ['miss with success upcall', 'upcalls (misses)'], ['miss with failed upcall', 'failed upcalls']] as const) {
    L.push(`| datapath (pmd-stats-show): ${label} | ${col((m) => f(m.pmdPerConn[key]))} |`);
  }
  for (const c of ['xlate_actions', 'rev_flow_table', 'revalidate_missed_dp_flow', 'dpif_flow_put', 'dpif_flow_del', 'dpif_execute', 'ofproto_packet_out', 'ofproto_recv_openflow', 'vconn_sent', 'flow_extract', 'datapath_drop_userspace_action_error']) {
    L.push(`| coverage: \`${c}\` | ${col((m) => f(m.coveragePerConn[c] ?? 0))} |`);
  }
  L.push(`| datapath flows after the run (limit) | ${col((m) => `${k(m.upcallAfter.flows)} (${k(m.upcallAfter.limit)})`)} |`);
  L.push('');
  // Wall clock.
  const stageKeys = [...new Set(modes.flatMap((m) => Object.keys(m.stages)))];
  L.push('Wall clock of one setup (median / p90, ms; client timestamps and the engine\'s events, both CLOCK_MONOTONIC; with ' + p.options.concurrency + ' setups in flight, so queueing behind the others is included):');
  L.push('');
  L.push(`| stage | ${modes.map((m) => m.mode === 'plain' ? 'not intercepted' : m.mode).join(' | ')} |`);
  L.push(`| --- | ${modes.map(() => '---:').join(' | ')} |`);
  for (const s of stageKeys) L.push(`| ${s} | ${col((m) => (m.stages[s] ? `${f(m.stages[s]!.median)} / ${f(m.stages[s]!.p90)}` : ''))} |`);
  L.push('');
  const prof = modes.filter((m) => m.groups);
  if (prof.length) {
    L.push('Controller CPU profile, self time by module (ms per connection, share of the busy samples):');
    L.push('');
    const groups = [...new Set(prof.flatMap((m) => m.groups!.map((g) => g.group)))];
    L.push(`| module | ${prof.map((m) => m.mode).join(' | ')} |`);
    L.push(`| --- | ${prof.map(() => '---:').join(' | ')} |`);
    for (const g of groups) L.push(`| ${g} | ${prof.map((m) => { const x = m.groups!.find((y) => y.group === g); return x ? `${f(x.msPerConn, 3)} (${f(x.share * 100, 0)} %)` : ''; }).join(' | ')} |`);
    L.push(`| **total busy** | ${prof.map((m) => `**${f(m.profiledMs! / m.ok, 3)}**`).join(' | ')} |`);
    L.push('');
    for (const m of prof) {
      L.push(`Top functions by self time, ${m.mode}: ${m.top!.slice(0, 10).map((t) => `\`${t.fn}\` (${t.where || 'native'}) ${f(t.msPerConn, 3)} ms`).join(', ')}.`);
      L.push('');
    }
  }
}

export function renderScale(e: Entry<ScaleResult> | undefined, L: string[], title: string): void {
  if (!e) return;
  L.push(title);
  L.push('');
  if (e.error) { L.push(`Failed: ${e.error}`); L.push(''); return; }
  const s = e.result!;
  const via = s.options.migrateVia ?? 'flows';
  L.push(`When: ${when(e.meta)}. OVS: ${s.prefix}. Command: \`npm run bench -- --only scale${e.meta.quick ? ' --quick' : ''}${via !== 'flows' ? ` --scale-via ${via}` : ''}\`. The service's MIGRATE verdicts: ${via === 'conntrack' ? 'in the switch\'s conntrack (\`migrateVia: "conntrack"\`, the default: no flow per connection at first; one that has lived \`handoff.conntrackFlowsAfterMs\`, 2 s, gets its two flows and its entry is deleted, so the levels after the first show them)' : 'in flows (\`migrateVia: "flows"\`: two per connection)'}.`);
  L.push('');
  L.push(`What: test/bench/scale.ts on the test bed (controller in the bench process, real OVS, echo servers) plus ${s.clients} client namespaces (10.0.0.100+), each running test/bench/apps/hold-client.mjs with its fd limit raised as far as allowed (\`ulimit -n\`; the echo servers' with prlimit, see the notes for what this container permits). The levels are reached one after the other: each new connection sends "please migrate …", gets a MIGRATE verdict from the bench at once, is moved to server 2 and stays open (${s.options.concurrency} setups in flight over all clients). At each level every open connection is probed (one request line, the reply must come from server 2; 100 outstanding per client); then 300 short connections to a port the controller does not intercept give the baseline setup rate through the same switch with that many live connections; then memory (controller: this process after full GCs, minus the same before any connection) and flows. Service idle timeout 300 s.`);
  L.push('');
  const b = s.baseline;
  L.push('| live connections | new setups/s (MIGRATE) | not intercepted setups/s | ratio | probe: answered / open (s) | controller heap (B/conn) | controller RSS (B/conn) | ovs-vswitchd RSS (B/conn) | OpenFlow flows (per conn) | datapath flows (limit; dump ms) | CPU per new connection while opening (ms) |');
  L.push('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  L.push(`| 0 | | ${k(b.plainRatePerSec)} | | | ${f(b.heapMB, 1)} MB | ${f(b.rssMB, 0)} MB | ${f(b.ovsRssMB, 0)} MB | ${k(b.flows)} | ${k(b.dpFlows)} (${k(b.dpFlowLimit)}; ${k(b.dumpMs)}) | |`);
  const cpuCell = (x: typeof s.levels[number]) => [x.controllerCpuS !== undefined ? `controller ${f((x.controllerCpuS * 1000) / Math.max(1, x.opened), 2)}` : '', ...Object.entries(x.ovsCpuS).map(([t, v]) => `ovs ${t === 'ovs-vswitchd' ? 'main' : t} ${f((v * 1000) / Math.max(1, x.opened), 2)}`)].filter(Boolean).join(', ');
  for (const x of s.levels) {
    L.push(`| ${k(x.open)} (target ${k(x.target)}${x.failed ? `, ${k(x.failed)} failed` : ''}) | ${k(x.ratePerSec)} | ${k(x.plainRatePerSec)} | ${f(x.plainRatePerSec ? x.ratePerSec / x.plainRatePerSec : undefined)} | ${k(x.probe.answered)} / ${k(x.probe.total)} (${f(x.probe.seconds, 1)}) | ${f(x.heapMB, 1)} MB (${k(x.heapPerConnB)}) | ${f(x.rssMB, 0)} MB (${k(x.rssPerConnB)}) | ${f(x.ovsRssMB, 0)} MB (${k(x.ovsRssPerConnB)}) | ${k(x.flows)} (${f(x.flowsPerConn, 2)}) | ${k(x.dpFlows)} (${k(x.dpFlowLimit)}; ${k(x.dumpMs)}) | ${cpuCell(x)} |`);
  }
  L.push('');
  const t = s.teardown;
  if (t) {
    const left = t.left ? ` Still there when the bench stopped waiting (${k(t.waitS)} s): ${k(t.left.connections)} tracked connections, ${k(t.left.connFlows)} connection flows${t.left.flowsRemovedPerS !== undefined ? `, leaving at ${f(t.left.flowsRemovedPerS, 1)} flows/s over the last minute (≈ ${k(t.left.connFlows / Math.max(1e-9, t.left.flowsRemovedPerS))} s more at that pace)` : ''}.` : '';
    L.push(`Teardown: ${k(t.connections)} connections closed by their clients at once (client FIN first): ${t.notClosed ? `after ${f(t.clientCloseS, 1)} s the clients had seen ${k(t.connections - t.notClosed)} of them close and **${k(t.notClosed)} not**` : `the clients saw every close after ${f(t.clientCloseS, 1)} s`} (${t.unclean} unclean); the controller had freed every connection after ${t.controllerEmptyS === undefined ? '**not within the wait**' : `${f(t.controllerEmptyS, 1)} s`} and the per-connection flows were gone from the switch after ${t.flowsGoneS === undefined ? '**not within the wait**' : `${f(t.flowsGoneS, 1)} s`}.${left} After: controller heap ${f(t.after.heapMB, 1)} MB, ovs-vswitchd RSS ${f(t.after.ovsRssMB, 0)} MB, ${k(t.after.flows)} flows, ${k(t.after.dpFlows)} datapath flows.`);
    if (t.loss) L.push(`\nOver the whole run: ${k(t.loss.unreadPackets)} packets were received by the switch's ports (kernel counters, \`ovs-ofctl dump-ports\`) but never read by the userspace datapath (\`dpif-netdev/pmd-stats-show\` "packets received"; the veth ports are polled by ovs-vswitchd's main thread, which also serves OpenFlow); server 2's TCP counters (\`nstat\`): ${Object.entries(t.loss.server2).map(([a, v]) => `${a} ${k(v)}`).join(', ')}.`);
    if (t.series?.length > 2) L.push(`\nTeardown progress (s: tracked connections / connection flows): ${t.series.filter((_, i) => i % 6 === 0 || i === t.series.length - 1).map((x) => `${f(x.s, 0)}: ${k(x.connections)} / ${k(x.connFlows)}`).join(', ')}.`);
    L.push('');
  }
  const hot = (xs?: Array<{ symbol: string; pct: number }>) => (xs ?? []).slice(0, 8).map((x) => `\`${x.symbol}\` ${f(x.pct, 1)} %`).join(', ');
  if (s.ovsHotOpening?.length) L.push(`ovs-vswitchd's hottest functions while the last level opened (perf, 10 s, all threads): ${hot(s.ovsHotOpening)}.\n`);
  if (t?.ovsHot?.length) L.push(`ovs-vswitchd's hottest functions during the teardown (perf, 10 s): ${hot(t.ovsHot)}.\n`);
  if (s.ovsWarnings?.length) L.push(`ovs-vswitchd log warnings (in-band noise left out): ${s.ovsWarnings.slice(0, 6).join('; ')}.\n`);
  L.push(s.broke ? `**What broke first:** ${s.broke}.` : `Nothing broke up to ${k(s.levels.at(-1)?.open)} live connections: every setup succeeded and every open connection answered its probe at every level.`);
  for (const x of s.levels) {
    const eng = Object.entries(x.engine).map(([a, v]) => `${a} ${k(v)}`).join(', ');
    L.push('');
    L.push(`Level ${k(x.target)}: engine counters while opening: ${eng || 'none'}${Object.keys(x.migrationFailures).length ? `; migration failures so far ${JSON.stringify(x.migrationFailures)}` : ''}${x.lost ? `; connections lost while held so far ${x.lost} ${JSON.stringify(x.lostReasons)}` : ''}${Object.keys(x.errors).length ? `; client errors ${Object.entries(x.errors).map(([a, v]) => `${v}× ${a}`).join('; ')}` : ''}.`);
  }
  if (s.aborted) L.push(`\n**Incomplete run:** ${s.aborted}.`);
  for (const n of s.notes) L.push(`\nNote: ${n}`);
  L.push('');
}

/** Rows for the summary table: the issue-13 yardsticks as measured by the scale case. */
export function summaryRows(all: AllResults): string[] {
  return [[all.scale, '§7'] as const, [all.scaleConntrack, '§7b'] as const].flatMap(([e, sec]) => {
    const s = e?.result;
    const last = s?.levels.at(-1);
    if (!s || !last) return [];
    // The rate goal applies to the default (MIGRATE verdicts in conntrack); flows are the contrast.
    const ct = (s.options.migrateVia ?? 'flows') === 'conntrack';
    const mode = ct ? 'in conntrack, the default' : 'with `"flows"`';
    const rateOk = s.levels.every((x) => x.plainRatePerSec && x.ratePerSec / x.plainRatePerSec >= 0.4);
    return [
      `| live migrated connections held (${mode}, ${sec}), every one answering a probe | ${k(last.probe.answered)} of ${k(last.open)} | 10,000 | ${last.probe.answered >= 10000 ? 'met' : '**missed**'}${s.broke ? ` (teardown: see ${sec})` : ''} |`,
      `| MIGRATE setups/s (${mode}) ÷ not intercepted, at ${s.levels.map((x) => k(x.open)).join(' / ')} live | ${s.levels.map((x) => f(x.plainRatePerSec ? x.ratePerSec / x.plainRatePerSec : undefined)).join(' / ')} | ${ct ? `≥ 0.4 | ${rateOk ? 'met' : '**missed**'}` : 'contrast | '} |`,
      `| controller heap per migrated connection (${mode}) at ${k(last.open)} live | ${k(last.heapPerConnB)} B | ≤ 1 KiB | ${last.heapPerConnB <= 1024 ? 'met' : '**missed**'} |`,
    ];
  });
}
