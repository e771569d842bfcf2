// A/B on the §3 setup load, one bed, the variants alternating round by round so both see the same
// load. --variant syn-flows: the service's SYN-only intercept flows taken out of and put back into
// the switch (ovs-ofctl); --variant speculative: the service's speculativeReplay off and on;
// --variant teardown: closing flows (the switch removes them) against the earlier delete after the
// grace, emulated here by holding back the closing flows' adds and deleting at the end instead;
// --variant conntrack (FORWARD): the service's forwardVia 'flows' and 'conntrack' (reloaded in the
// running engine between rounds): two flows per connection against a verdict kept in conntrack.
// (The reload at every round is this variant's own; §3 measures a second service instead.)
// Per connection: setups/s, ovs-vswitchd CPU (revalidator, main thread), the controller's CPU,
// Packet-Ins and Packet-Outs on the channel, flow-table revalidations and translations.
//
//   npx tsx test/bench/ab-setup.ts [--variant syn-flows|speculative|teardown] [--mode FORWARD|MIGRATE] [--n 1000] [--rounds 3] [--concurrency 8]
//
// Needs root and the patched OVS (ovs-patch/build.sh). Prints its results; nothing is written.
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { HandoffBed, SERVICE } from '../lib/handoff-net.ts';
import { PATCHED_PREFIX } from '../lib/ovs.ts';
import { waitFor } from '../lib/exec.ts';
import { progress } from './lib/util.ts';
import { ChannelTap, coverage, cpuByThread, diff, vswitchdPid, maxIdleConfig } from './lib/ovs-stats.ts';
import type { EngineCore } from '../../controller/handoff/engine-core.ts';
import type { Connection } from '../../controller/handoff/connection.ts';
import type { OfpMessage } from '../../controller/openflow/index.ts';
import { connRoleOf, CONN_ROLE } from '../../controller/cookies.ts';
import { parseServices } from '../../controller/handoff/service-config.ts';

const CLIENT = join(dirname(fileURLToPath(import.meta.url)), 'apps', 'bench-client.mjs');
const { values: a } = parseArgs({ options: { variant: { type: 'string', default: 'syn-flows' }, mode: { type: 'string', default: 'FORWARD' }, n: { type: 'string', default: '1000' }, rounds: { type: 'string', default: '3' }, concurrency: { type: 'string', default: '8' } } });
const MODE = a.mode === 'MIGRATE' ? 'MIGRATE' : a.mode === 'FORWARD' ? 'FORWARD' : undefined;
const N = Number(a.n); const ROUNDS = Number(a.rounds); const CONC = Number(a.concurrency);
if (!MODE || !(N > 0) || !(ROUNDS > 0) || !(CONC > 0) || !['syn-flows', 'speculative', 'teardown', 'conntrack'].includes(a.variant!) || (a.variant === 'conntrack' && MODE !== 'FORWARD')) {
  console.error('usage: ab-setup.ts [--variant syn-flows|speculative|teardown|conntrack] [--mode FORWARD|MIGRATE] [--n N] [--rounds R] [--concurrency C] (conntrack: FORWARD only)');
  process.exit(2);
}

interface Totals { conns: number; ms: number; reval: number; main: number; ctl: number; pin: number; pout: number; revft: number; xlate: number }
const bed = await HandoffBed.create({ prefix: PATCHED_PREFIX, ovsOtherConfig: maxIdleConfig() });
const totals: Record<string, Totals> = {};
try {
  // The switch's own SYN flows, as ovs-ofctl prints them, to put back after taking them out.
  const synFlows = (await bed.ovs.ofctl('-O', 'OpenFlow13', '--no-stats', 'dump-flows', bed.bridge, 'table=1,tcp,tcp_flags=+syn')).split('\n').map((l) => l.trim()).filter((l) => l.includes('tcp_flags'));
  if (synFlows.length === 0) throw new Error('the controller installed no SYN-only intercept flows');
  // The running service object is what connections read (a reload updates it in place too).
  const service = bed.engine.listServices()[0]!;
  // The engine's core, for the teardown variant only (bench-side emulation, no switch in the engine).
  const core = (bed.engine as unknown as { core: EngineCore }).core;
  const closingFlowsOn = { send: core.send.bind(core), deletes: core.deleteAllButClosingFlows.bind(core) };
  const closingFlowsOff = {
    send: (c: Connection, msgs: OfpMessage[]) => closingFlowsOn.send(c, msgs.filter((m) => !(m.type === 'flow_mod' && m.command === 'add' && connRoleOf(m.cookie) === CONN_ROLE.closing))),
    deletes: (c: Connection) => core.deleteFlowsOf(c),
  };
  const useTeardown = (t: typeof closingFlowsOn) => { core.send = t.send; core.deleteAllButClosingFlows = t.deletes; };
  const forwardVia = (v: 'flows' | 'conntrack') => async () => {
    const [next] = parseServices([{ ...service, forwardVia: v }]);
    await bed.engine.reconfigureServices([next!]);
  };
  const variants: Array<[string, () => Promise<void>]> = a.variant === 'conntrack' ? [
    ['forwardVia flows', forwardVia('flows')],
    ['forwardVia conntrack', forwardVia('conntrack')],
  ] : a.variant === 'teardown' ? [
    ['delete after the grace (before 2026-12-06, third session)', async () => { useTeardown(closingFlowsOff); }],
    ['closing flows', async () => { useTeardown(closingFlowsOn); }],
  ] : a.variant === 'syn-flows' ? [
    ['without SYN-only flows', async () => { await bed.ovs.ofctl('-O', 'OpenFlow13', 'del-flows', bed.bridge, 'table=1,tcp,tcp_flags=+syn'); }],
    ['with SYN-only flows', async () => { for (const f of synFlows) await bed.ovs.ofctl('-O', 'OpenFlow13', 'add-flow', bed.bridge, f); }],
  ] : [
    ['speculativeReplay off', async () => { service.speculativeReplay = false; }],
    ['speculativeReplay on', async () => { service.speculativeReplay = true; }],
  ];
  const tap = new ChannelTap(bed.controller.switches[0]!);
  const pid = vswitchdPid(bed.ovs);
  const stop = bed.autoVerdict(MODE);
  try {
    for (let r = 0; r < ROUNDS; r++) for (const [name, apply] of variants) {
      await apply();
      const of0 = tap.snapshot(); const cov0 = await coverage(bed.ovs); const c0 = cpuByThread(pid); const p0 = process.cpuUsage();
      const out = await bed.client.exec(['node', CLIENT, '--host', SERVICE.ip, '--port', String(SERVICE.port), '--n', String(N), '--concurrency', String(CONC), '--line', MODE === 'MIGRATE' ? 'please migrate' : 'hello', '--timeout', '5000'], { timeoutMs: Math.ceil(N / CONC) * 5000 + 60000 });
      const s = JSON.parse(out.stdout.trim().split('\n').pop()!) as { ok: number; elapsedMs: number; ratePerSec: number };
      // Teardown belongs to a setup's cost, as in §6.
      await waitFor(() => bed.engine.table.size === 0, 'the connection table to empty', 30000);
      const of = diff(of0, tap.snapshot()); const cov = diff(cov0, await coverage(bed.ovs)); const cpu = diff(c0, cpuByThread(pid)); const pc = process.cpuUsage(p0);
      const t = (totals[name] ??= { conns: 0, ms: 0, reval: 0, main: 0, ctl: 0, pin: 0, pout: 0, revft: 0, xlate: 0 });
      t.conns += s.ok; t.ms += s.elapsedMs; t.reval += (cpu.revalidator ?? 0) * 1000; t.main += (cpu['ovs-vswitchd'] ?? 0) * 1000; t.ctl += (pc.user + pc.system) / 1000;
      t.pin += of['in packet_in'] ?? 0; t.pout += of['out packet_out'] ?? 0; t.revft += cov.rev_flow_table ?? 0; t.xlate += cov.xlate_actions ?? 0;
      progress(`${name}, round ${r + 1}: ${s.ratePerSec.toFixed(0)} setups/s (${s.ok} of ${N})`);
    }
  } finally { stop(); }
} finally { await bed.destroy(); }
console.log(`\n${a.variant}: ${MODE}, ${N} connections × ${ROUNDS} rounds per variant, ${CONC} at a time; per connection:`);
console.log('| variant | setups/s | revalidator ms | ovs-vswitchd main ms | controller ms | Packet-In | Packet-Out | rev_flow_table | xlate_actions |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const [name, t] of Object.entries(totals)) {
  const n = t.conns || 1;
  console.log(`| ${name} | ${(t.conns / t.ms * 1000).toFixed(0)} | ${(t.reval / n).toFixed(3)} | ${(t.main / n).toFixed(3)} | ${(t.ctl / n).toFixed(3)} | ${(t.pin / n).toFixed(2)} | ${(t.pout / n).toFixed(2)} | ${(t.revft / n).toFixed(2)} | ${(t.xlate / n).toFixed(0)} |`);
}
