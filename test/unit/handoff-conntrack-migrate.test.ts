// First-segment MIGRATE verdicts kept in the switch's conntrack (migrateVia 'conntrack'): the flow
// plan's mark, label, Packet-Out and per-service / shared flows, and the engine on a scripted switch:
// a MIGRATE sends no Flow-Mod, only the held segment committing NAT, delta and MACs; strays go on
// the same way; a later move takes it out of conntrack first (ct-exit flows), then moves it as any
// other; a switch without the field-sourced shifts gets flows.
import assert from 'node:assert/strict';
import { EngineBed, CLIENT, S1, S2, SYN_OPTIONS, asFlowStats, ctFlushes, type FlowMod, type PacketOut } from '../lib/scripted-switch.ts';
import { connCookie, connIdOf, CONN_ROLE, INTERCEPT_ROLE, interceptCookie, SHARED_INTERCEPT_INDEX } from '../../controller/cookies.ts';
import {
  conntrackMigrateActions, conntrackMigratedFlows, conntrackMigratedLabel, conntrackMigratedLabelParts, conntrackMigratedMark,
  conntrackMigratedMarkPorts, conntrackMigratePortsFit, CT_MIGRATED, interceptFlows, interceptsOver, PRIORITY, PROBE_TABLE, TABLE,
} from '../../controller/handoff/flow-plan.ts';
import { parseConfig } from '../../controller/config.ts';
import { parseServices } from '../../controller/handoff/service-config.ts';
import { parseFrame } from '../../controller/packet/index.ts';
import type { Action, CtFlush, FlowStats } from '../../controller/openflow/index.ts';

const ISN = 1000;
const S1_ISN = 5000;
const S2_ISN = 90000;
const HELD = { flags: { ack: true, psh: true }, seq: ISN + 1, ack: S1_ISN + 1, payload: 'hello' };
const ZONE = 77;
const tick = () => new Promise((r) => setImmediate(r));
const flowMods = (msgs: unknown[]) => msgs.filter((m): m is FlowMod => (m as FlowMod).type === 'flow_mod');
const actionsOf = (f: FlowMod): Action[] => f.instructions.flatMap((i) => (i.type === 'apply_actions' ? i.actions : []));
/** The conntrack entry of the bed's client connection: its original direction, in the service's zone. */
const ENTRY: CtFlush = { zone: ZONE, ipProto: 6, orig: { src: CLIENT.ip, dst: S1.ip, srcPort: CLIENT.port, dstPort: S1.port } };
const ctOf = (actions: Action[]) => actions.find((a): a is Extract<Action, { type: 'nx_ct' }> => a.type === 'nx_ct');

describe('MIGRATE in conntrack: flow plan', () => {
  it('the mark holds the two ports (15 bits each) under CT_MIGRATED, the label the delta and the two MACs; both read back', () => {
    for (const [c, b] of [[1, 2], [0x7fff, 1], [300, 0x7fff]] as const) {
      const mark = conntrackMigratedMark(c, b);
      assert.ok(mark & CT_MIGRATED);
      assert.deepEqual(conntrackMigratedMarkPorts(mark), { client: c, backend: b });
    }
    assert.equal(conntrackMigratedMarkPorts(1), undefined, 'a FORWARD mark is not a migrated one');
    for (const [c, b] of [[0, 1], [1, 0x8000], [0xfffffffd, 1]]) assert.ok(!conntrackMigratePortsFit(c, b), `${c}, ${b}`);
    for (const d of [0, 1, 0x7fffffff, 0xffffffff, -5]) {
      const parts = conntrackMigratedLabelParts(conntrackMigratedLabel(d, '02:00:00:00:00:03', 'aa:bb:cc:dd:ee:ff'));
      assert.deepEqual(parts, { ackDelta: d >>> 0, backendMac: '02:00:00:00:00:03', serviceMac: 'aa:bb:cc:dd:ee:ff' });
    }
    assert.equal(conntrackMigratedLabel(0xfffffffb, '02:00:00:00:00:03', '02:00:00:00:00:01'), 0x020000000001_020000000003_fffffffbn);
  });

  it('the held segment commits NAT to the target, the mark and the label, then goes to the target with its MAC and the ack shifted', () => {
    const spec = { client: { mac: CLIENT.mac, ip: CLIENT.ip, port: CLIENT.port, ofport: CLIENT.ofport }, service: { mac: S1.mac, ip: S1.ip, port: S1.port }, backend: { mac: S2.mac, ip: S2.ip, port: 5002, ofport: S2.ofport }, ackDelta: 100 };
    assert.deepEqual(conntrackMigrateActions(ZONE, spec), [
      {
        type: 'nx_ct', zone: ZONE, commit: true, actions: [
          { type: 'nx_nat', kind: 'dst', ipMin: S2.ip, portMin: 5002 },
          { type: 'set_field', field: { ctMark: conntrackMigratedMark(CLIENT.ofport, S2.ofport) } },
          { type: 'set_field', field: { ctLabel: conntrackMigratedLabel(100, S2.mac, S1.mac) } },
        ],
      },
      { type: 'set_field', field: { ethDst: S2.mac } },
      { type: 'nx_inc_tcp_ack', delta: 100 },
      { type: 'output', port: S2.ofport },
    ]);
    assert.ok(!conntrackMigrateActions(ZONE, { ...spec, ackDelta: 0 }).some((a) => a.type === 'nx_inc_tcp_ack'), 'no shift of 0');
  });

  it('a service migrating in conntrack: ct with nat in table 0, a reply flow per service address, no FORWARD flows unless asked', () => {
    const base = { index: 2, service: { ip: '10.0.0.1', ip6: 'fd00::1', port: 5001 }, backends: [{ ip: '10.0.0.3', port: 5001 }] };
    const flows = flowMods(interceptFlows({ ...base, conntrackZone: ZONE, conntrackForward: false, conntrackNat: true }));
    for (const f of flows.filter((x) => x.tableId === TABLE.steer && x.priority !== PRIORITY.synAckCt)) {
      // A backend's FIN meets table 2 after ct (copied unless conntrack carries its connection).
      const table = f.match.tcpSrc !== undefined && JSON.stringify(f.match.tcpFlags) === JSON.stringify({ value: 0x01, mask: 0x05 }) ? TABLE.copy : TABLE.connection;
      assert.deepEqual(ctOf(actionsOf(f)), { type: 'nx_ct', zone: ZONE, table, actions: [{ type: 'nx_nat' }] });
    }
    assert.ok(!flows.some((f) => f.priority === PRIORITY.conntrack), 'no FORWARD flows');
    const replies = flows.filter((f) => f.priority === PRIORITY.conntrackReply);
    assert.deepEqual(replies.map((f) => [f.match.ipv4Src ?? f.match.ipv6Src, f.match.tcpSrc, f.match.ctMark, f.cookie]), [
      ['10.0.0.1', 5001, { value: CT_MIGRATED, mask: CT_MIGRATED }, interceptCookie(2)],
      ['fd00::1', 5001, { value: CT_MIGRATED, mask: CT_MIGRATED }, interceptCookie(2)],
    ]);
    assert.deepEqual(actionsOf(replies[0]!), [
      { type: 'nx_reg_move', src: { field: 'ctLabel', ofs: 80, nBits: 48 }, dst: { field: 'ethSrc', ofs: 0, nBits: 48 } },
      { type: 'nx_dec_tcp_seq_reg', field: 'ctLabel', ofs: 0, nBits: 32 },
      { type: 'nx_output_reg', field: 'ctMark', ofs: 0, nBits: 15 },
    ]);
    const both = flowMods(interceptFlows({ ...base, conntrackZone: ZONE, conntrackForward: true, conntrackNat: true }));
    assert.equal(both.filter((f) => f.priority === PRIORITY.conntrack).length, 4, 'FORWARD flows too: to the service and from it, per address');
    // Without nat the table-0 ct action has no nested actions at all (as the FORWARD-only plan always had).
    const fwdOnly = flowMods(interceptFlows({ ...base, conntrackZone: ZONE }));
    assert.ok(fwdOnly.filter((x) => x.tableId === TABLE.steer).every((f) => ctOf(actionsOf(f))?.actions === undefined));
  });

  it('the shared flows: one per family under a cookie of no service, which deleting a service\'s flows leaves alone', () => {
    const shared = flowMods(conntrackMigratedFlows(ZONE));
    assert.deepEqual(shared.map((f) => [f.tableId, f.priority, f.match.ethType, f.match.ipProto]), [[TABLE.connection, PRIORITY.conntrack, 0x800, 6], [TABLE.connection, PRIORITY.conntrack, 0x86dd, 6]]);
    assert.ok(shared.every((f) => f.cookie === interceptCookie(SHARED_INTERCEPT_INDEX, INTERCEPT_ROLE.ctMigrated)));
    assert.deepEqual(actionsOf(shared[0]!), [
      { type: 'nx_reg_move', src: { field: 'ctLabel', ofs: 32, nBits: 48 }, dst: { field: 'ethDst', ofs: 0, nBits: 48 } },
      { type: 'nx_inc_tcp_ack_reg', field: 'ctLabel', ofs: 0, nBits: 32 },
      { type: 'nx_output_reg', field: 'ctMark', ofs: 15, nBits: 15 },
    ]);
    // A service's flows going (another still migrating in conntrack) leave the shared ones on the switch.
    const asStats = (f: FlowMod) => ({ tableId: f.tableId, priority: f.priority, cookie: f.cookie, match: f.match, instructions: f.instructions, idleTimeout: 0, hardTimeout: 0, flags: 0, durationSec: 1, durationNsec: 0, packetCount: 0n, byteCount: 0n }) as FlowStats;
    const service0 = flowMods(interceptFlows({ index: 0, service: { ip: '10.0.0.1', port: 5001 }, backends: [], conntrackZone: ZONE, conntrackNat: true }));
    const dels = flowMods(interceptsOver(conntrackMigratedFlows(ZONE), [...shared, ...service0].map(asStats)).slice(shared.length));
    assert.deepEqual(dels.map((d) => d.cookie).sort(), service0.map((f) => f.cookie).sort());
    assert.ok(!dels.some((d) => d.cookie === shared[0]!.cookie));
    // The reply flows (121) sit above the shared ones (120): a reply is told by its (un-NATed) source, not by ct's reply flag.
    assert.ok(PRIORITY.conntrackReply > PRIORITY.conntrack && PRIORITY.conntrackReply < PRIORITY.connection);
  });
});

describe('MIGRATE in conntrack: engine (scripted switch)', () => {
  let bed: EngineBed | undefined;
  afterEach(() => {
    if (bed) assert.equal(bed.engine.stats.illegalTransitions, 0, 'no illegal phase transition');
    bed?.engine.stop();
    bed = undefined;
  });

  /** A new bed whose one connection got a MIGRATE verdict on its held segment and server 2's SYN-ACK (what it sent before the SYN-ACK taken). */
  async function migratedOn(service: Record<string, unknown> = {}, o: { fieldShift?: boolean; conntrackFlowsAfterMs?: number } = {}): Promise<number> {
    bed = await EngineBed.create({ service: { migrateVia: 'conntrack', midStream: true, ...service }, opts: { conntrackZone: ZONE, conntrackFlowsAfterMs: o.conntrackFlowsAfterMs ?? 3_600_000 }, fieldShift: o.fieldShift });
    const id = bed.handshake();
    bed.from(CLIENT, S1, HELD);
    bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
    await tick();
    bed.sw.take();
    const migrated = bed.waitEvent('migrated');
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
    await migrated;
    return id;
  }

  it('a switch that connects gets ct with nat for the service, its reply flows and the shared flows; one without field shifts gets none of them', async () => {
    bed = await EngineBed.create({ service: { migrateVia: 'conntrack' }, opts: { conntrackZone: ZONE } });
    let flows = flowMods(bed.initial);
    assert.ok(flows.some((f) => f.tableId === TABLE.steer && ctOf(actionsOf(f))?.actions?.[0]?.type === 'nx_nat'));
    assert.equal(flows.filter((f) => f.priority === PRIORITY.conntrackReply).length, 1);
    assert.equal(flows.filter((f) => f.cookie === interceptCookie(SHARED_INTERCEPT_INDEX, INTERCEPT_ROLE.ctMigrated)).length, 2);
    assert.ok(!flows.some((f) => f.priority === PRIORITY.conntrack && f.cookie === interceptCookie(0)), 'no FORWARD flows (forwardVia is flows)');
    const finCopies = flows.filter((f) => f.tableId === TABLE.copy);
    assert.equal(finCopies.length, 7, 'table 2: onward, the FIN/RST copies, and the two exceptions');
    assert.ok(flows.indexOf(finCopies[0]!) < flows.findIndex((f) => ctOf(actionsOf(f))?.table === TABLE.copy), 'table 2 is there before a flow sends to it');
    bed.engine.stop();
    bed = await EngineBed.create({ service: { migrateVia: 'conntrack' }, opts: { conntrackZone: ZONE }, fieldShift: false });
    flows = flowMods(bed.initial).filter((f) => f.tableId !== PROBE_TABLE);
    assert.ok(!flows.some((f) => actionsOf(f).some((a) => a.type === 'nx_ct' || a.type === 'nx_dec_tcp_seq_reg')), 'plain steering, no conntrack');
    assert.equal(flows.filter((f) => f.tableId === TABLE.copy).length, 7, 'table 2 on every switch (a connection kept out of ct needs it whatever the services say)');
  });

  it('a MIGRATE sends no Flow-Mod: the held segment commits the move and goes to server 2; server 1 is reset', async () => {
    const id = await migratedOn();
    const sent = bed!.sw.take();
    assert.deepEqual(flowMods(sent), [], 'no Flow-Mod at all: no flow of its own, no delete');
    assert.ok(!sent.some((m) => m.type === 'barrier_request'));
    const outs = sent.filter((m): m is PacketOut => m.type === 'packet_out');
    const commit = outs.find((p) => ctOf(p.actions));
    assert.ok(commit, 'the held segment commits it');
    const v = bed!.conn(id)!;
    assert.deepEqual(commit.actions, conntrackMigrateActions(ZONE, {
      client: { ...CLIENT }, service: { mac: S1.mac, ip: S1.ip, port: S1.port }, backend: { mac: S2.mac, ip: S2.ip, port: S2.port, ofport: S2.ofport }, ackDelta: v.ackDelta,
    }));
    assert.equal(v.ackDelta, (S2_ISN + 1 - (S1_ISN + 1)) >>> 0);
    assert.equal(commit.data.subarray(-5).toString(), 'hello', 'the segment as the client sent it: the switch rewrites it');
    const rst = outs.map((p) => ({ p, f: parseFrame(p.data) })).find(({ p, f }) => p.actions.at(-1)?.type === 'output' && f.ok && f.value.tcp?.flagSet.rst);
    assert.ok(rst && (rst.p.actions.at(-1) as { port: number }).port === S1.ofport, 'server 1 gets its RST');
    assert.deepEqual([v.phase, v.backend, v.conntrack, v.migrations], ['forwarded', 'server2', true, 1]);
  });

  it('strays: the client\'s commit it again; server 2\'s are rewritten by the controller and go to the client; no flows follow', async () => {
    const id = await migratedOn();
    bed!.sw.take();
    for (let i = 0; i < 6; i++) {
      bed!.from(CLIENT, S1, { flags: { ack: true }, seq: ISN + 6, ack: S1_ISN + 1 + i });
      bed!.from(S2, CLIENT, { flags: { ack: true, psh: true }, seq: S2_ISN + 1 + i, ack: ISN + 6, payload: 'x' });
    }
    await tick();
    const sent = bed!.sw.take();
    assert.ok(sent.every((m) => m.type === 'packet_out'), `only Packet-Outs: ${sent.map((m) => m.type).join(',')}`);
    const outs = sent as PacketOut[];
    const toS2 = outs.filter((p) => p.inPort === CLIENT.ofport);
    const toClient = outs.filter((p) => p.actions.at(-1)?.type === 'output' && (p.actions.at(-1) as { port: number }).port === CLIENT.ofport);
    assert.equal(toS2.length, 6);
    assert.ok(toS2.every((p) => ctOf(p.actions)?.commit));
    assert.equal(toClient.length, 6);
    for (const p of toClient) {
      const f = parseFrame(p.data);
      assert.ok(f.ok);
      assert.deepEqual([f.value.ipv4?.src, f.value.tcp?.srcPort, f.value.eth.src], [S1.ip, S1.port, S1.mac], 'looks like the service');
      assert.ok(f.value.tcp!.seq >= S1_ISN + 1 && f.value.tcp!.seq < S1_ISN + 7, 'in the client\'s view of the sequence space');
    }
    assert.equal(bed!.conn(id)?.phase, 'forwarded');
  });

  it('a later move takes it out of conntrack first (its flows to server 2 and two ct-exit flows, with the freeze), then goes on as any other: back on server 1, the exit flows replaced in place, never deleted', async () => {
    const id = await migratedOn();
    bed!.sw.take();
    const delta = bed!.conn(id)!.ackDelta;
    await bed!.engine.migrate(id, 'server1');
    const moveSent = bed!.sw.take();
    const freeze = flowMods(moveSent);
    assert.ok(!freeze.some((f) => f.command !== 'add'), 'nothing to delete: it had no flows');
    const own = (fs: FlowMod[], role: bigint) => fs.filter((f) => f.cookie === connCookie(id, role));
    const exits = own(freeze, CONN_ROLE.ctExit);
    assert.deepEqual(exits.map((f) => [f.tableId, f.priority, f.match.ipv4Src, f.match.ipv4Dst, f.match.tcpSrc, f.match.tcpDst]), [
      [TABLE.steer, PRIORITY.ctExit, CLIENT.ip, S1.ip, CLIENT.port, S1.port],
      [TABLE.steer, PRIORITY.ctExit, S2.ip, CLIENT.ip, S2.port, CLIENT.port],
    ], 'the entry\'s two directions leave ct');
    assert.ok(exits.every((f) => JSON.stringify(f.instructions) === JSON.stringify([{ type: 'goto_table', tableId: TABLE.copy }])));
    const main = own(freeze, CONN_ROLE.main);
    assert.deepEqual(main.map((f) => [f.match.ipv4Src, actionsOf(f).at(-1)]), [[CLIENT.ip, { type: 'output', port: S2.ofport }], [S2.ip, { type: 'output', port: CLIENT.ofport }]], 'its flows to server 2, as migrated there');
    assert.ok(actionsOf(main[0]!).some((a) => a.type === 'nx_inc_tcp_ack' && a.delta === delta), 'with its delta');
    assert.ok(freeze.indexOf(main[1]!) < freeze.indexOf(exits[0]!) && freeze.indexOf(exits[1]!) < freeze.findIndex((f) => f.cookie === connCookie(id, CONN_ROLE.freeze)), 'table 1 first, then out of ct, then the freeze');
    assert.deepEqual(ctFlushes(moveSent), [ENTRY], 'its conntrack entry is deleted (a later connection on its ports must not meet it)');
    assert.deepEqual([bed!.conn(id)?.phase, bed!.conn(id)?.conntrack], ['freezing', undefined]);
    // The client's next request is held; server 1 takes the replay.
    bed!.from(CLIENT, S1, { flags: { ack: true, psh: true }, seq: ISN + 6, ack: S1_ISN + 7, payload: 'again' }, connCookie(id, CONN_ROLE.freeze));
    await tick();
    const migrated = bed!.waitEvent('migrated');
    bed!.from(S1, CLIENT, { flags: { syn: true, ack: true }, seq: 70000, ack: ISN + 6, options: SYN_OPTIONS });
    await migrated;
    await tick();
    const splice = flowMods(bed!.sw.take());
    const adds = splice.filter((f) => f.command === 'add');
    assert.ok(!splice.some((f) => f.command !== 'add' && f.cookie === connCookie(id, CONN_ROLE.ctExit)), 'its exit flows are never deleted on the way');
    assert.deepEqual(own(adds, CONN_ROLE.ctExit).map((f) => f.match), exits.map((f) => f.match), 'and go in again as they were');
    assert.deepEqual(own(adds, CONN_ROLE.main).map((f) => actionsOf(f).at(-1)), [{ type: 'output', port: S1.ofport }, { type: 'output', port: CLIENT.ofport }]);
    assert.deepEqual([bed!.conn(id)?.phase, bed!.conn(id)?.backend, bed!.conn(id)?.migrations], ['forwarded', 'server1', 2]);
    // A later controller adopts it with its exit flows; its end deletes them.
    const flows = asFlowStats([...own(adds, CONN_ROLE.main), ...own(adds, CONN_ROLE.ctExit)]);
    bed!.engine.stop();
    bed = await EngineBed.create({ service: { migrateVia: 'conntrack', midStream: true }, opts: { conntrackZone: ZONE }, flows });
    assert.deepEqual([bed.conn(id)?.adopted, bed.conn(id)?.backend, bed.engine.table.get(id)?.ctExit], [true, 'server1', { ip: S2.ip, port: S2.port }]);
    assert.ok(!flowMods(bed.initial).some((f) => f.cookie === connCookie(id, CONN_ROLE.ctExit) || f.cookie === connCookie(id)), 'adopted exactly: nothing reinstalled');
    const closed = bed.waitEvent('conn_closed');
    bed.from(CLIENT, S1, { flags: { rst: true }, seq: ISN + 11 }, interceptCookie(SHARED_INTERCEPT_INDEX, INTERCEPT_ROLE.flagCopy));
    await closed;
    assert.ok(flowMods(bed.sw.take()).some((f) => f.command === 'delete' && f.cookie === connCookie(id, CONN_ROLE.ctExit)), 'its exit flows go with it');
  });

  it('a MIGRATE verdict on it later moves it the same way', async () => {
    const id = await migratedOn();
    bed!.sw.take();
    const pending = bed!.waitEvent('move_pending');
    bed!.engine.verdict(id, { verdict: 'MIGRATE', source: 'test', target: 'server3' });
    await pending;
    assert.equal(flowMods(bed!.sw.take()).filter((f) => f.cookie === connCookie(id, CONN_ROLE.ctExit)).length, 2);
    assert.deepEqual([bed!.conn(id)?.phase, bed!.conn(id)?.conntrack], ['freezing', undefined]);
  });

  it('closing: its client\'s FIN copy alone closes it (the switch does not copy server 2\'s FIN) and frees it with no Flow-Mod', async () => {
    const id = await migratedOn();
    bed!.sw.take();
    const closed = bed!.waitEvent('conn_closed');
    const copy = interceptCookie(0, INTERCEPT_ROLE.flagCopy);
    bed!.from(CLIENT, S1, { flags: { fin: true, ack: true }, seq: ISN + 6, ack: S1_ISN + 1 }, copy);
    assert.equal(bed!.conn(id)?.phase, 'closing');
    const [, why] = await closed as [unknown, string];
    assert.match(why, /closed by the client/);
    assert.deepEqual(flowMods(bed!.sw.take()), []);
    assert.equal(bed!.conn(id), undefined);
  });

  it('unseen for the service\'s idle timeout, it is forgotten (the switch keeps carrying it): no RST, no Flow-Mod; a stray seen meanwhile puts it off', async () => {
    const id = await migratedOn({ idleTimeout: 1 }, { conntrackFlowsAfterMs: 0 });
    bed!.sw.take();
    const closed = bed!.waitEvent('conn_closed', 4000) as Promise<[{ id: number }, string]>;
    const t0 = Date.now();
    // Half-way, a segment of it reaches the controller: its idle time starts over.
    await new Promise((r) => setTimeout(r, 500));
    bed!.from(CLIENT, S1, { flags: { ack: true }, seq: ISN + 6, ack: S1_ISN + 1 });
    const [view, why] = await closed;
    assert.ok(Date.now() - t0 >= 1400, `forgotten ${Date.now() - t0} ms after the MIGRATE, 1 s after the stray at the earliest`);
    assert.deepEqual([view.id, /idle timeout \(migrated in conntrack\)/.test(why)], [id, true], why);
    assert.ok(!bed!.sw.take().some((m) => m.type === 'flow_mod' || (m.type === 'packet_out' && m.inPort !== CLIENT.ofport)), 'nothing but the stray\'s own Packet-Out');
    assert.equal(bed!.engine.table.size, 0);
  });

  it('a reload that takes the service off migrateVia conntrack gives the connection the flows of a migrated one', async () => {
    const id = await migratedOn();
    bed!.sw.take();
    const [next] = parseServices([{ ...bed!.engine.listServices()[0], migrateVia: 'flows' }]);
    const lines = await bed!.engine.reconfigureServices([next!]);
    await tick();
    assert.ok(lines.some((l) => /1 connection\(s\) kept in conntrack given flows/.test(l)), lines.join('\n'));
    const sent = bed!.sw.take();
    const adds = flowMods(sent).filter((m) => m.command === 'add' && m.cookie === connCookie(id));
    assert.equal(adds.length, 2);
    assert.ok(adds.some((f) => actionsOf(f).some((a) => a.type === 'set_field' && 'ipv4Dst' in a.field && a.field.ipv4Dst === S2.ip)), 'NAT to server 2 in its own flow now');
    assert.ok(!flowMods(sent).some((f) => f.tableId === TABLE.steer && ctOf(actionsOf(f))), 'table 0 no longer passes ct');
    assert.ok(!flowMods(sent).some((f) => f.cookie === connCookie(id, CONN_ROLE.ctExit)), 'no exit flows: nothing of the service passes ct now');
    assert.deepEqual(ctFlushes(sent), [ENTRY], 'its entry goes (the service may pass ct again later)');
    assert.deepEqual([bed!.conn(id)?.phase, bed!.conn(id)?.conntrack], ['forwarded', undefined]);
  });

  it('one that outlives conntrackFlowsAfterMs leaves ct for good: the two flows of one migrated to server 2, then its entry deleted (ct no longer NATs it); a later controller adopts it', async () => {
    bed = await EngineBed.create({ service: { migrateVia: 'conntrack', midStream: true }, opts: { conntrackZone: ZONE, conntrackFlowsAfterMs: 200 } });
    const ids: number[] = [];
    for (const port of [CLIENT.port, CLIENT.port + 1]) {
      const client = { ...CLIENT, port };
      const id = bed.handshake(client);
      bed.from(client, S1, HELD);
      bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
      await tick();
      const migrated = bed.waitEvent('migrated');
      bed.from(S2, client, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
      await migrated;
      ids.push(id);
    }
    assert.ok(ids.every((id) => bed!.conn(id)?.conntrack), 'in conntrack at first');
    const t0 = Date.now();
    while (ctFlushes(bed.sw.sent).length < 2) {
      assert.ok(Date.now() - t0 < 5000, 'both entries deleted');
      await new Promise((r) => setTimeout(r, 20));
    }
    const sent = bed.sw.sent;
    for (const [i, id] of ids.entries()) {
      const own = flowMods(sent).filter((f) => f.command === 'add' && connIdOf(f.cookie) === id);
      assert.deepEqual(own.map((f) => [f.tableId, f.cookie === connCookie(id, CONN_ROLE.ctExit)]), [[TABLE.connection, false], [TABLE.connection, false]], 'its two flows, no ct-exit flows');
      assert.ok(actionsOf(own[0]!).some((a) => a.type === 'set_field' && 'ipv4Dst' in a.field && a.field.ipv4Dst === S2.ip), 'NAT to server 2 in its own flow');
      assert.equal(bed.conn(id)?.conntrack, undefined, 'no longer listed as in conntrack');
      const flush = sent.findIndex((m) => m.type === 'experimenter' && ctFlushes([m])[0]?.orig?.srcPort === CLIENT.port + i);
      assert.deepEqual(ctFlushes([sent[flush]!]), [{ ...ENTRY, orig: { ...ENTRY.orig, srcPort: CLIENT.port + i } }]);
      assert.ok(flush > sent.indexOf(own[1]!), 'its entry goes after its flows (once the switch confirmed them): until then ct NATs it, and the shared flows take it');
    }
    // Nothing of them reaches the controller now but FIN/RST copies: a restarted one adopts both with their flows.
    const flows = asFlowStats(flowMods(sent).filter((f) => f.command === 'add'));
    bed.engine.stop();
    bed = await EngineBed.create({ service: { migrateVia: 'conntrack', midStream: true }, opts: { conntrackZone: ZONE }, flows });
    for (const id of ids) assert.deepEqual([bed.conn(id)?.adopted, bed.conn(id)?.backend, bed.engine.table.get(id)?.ctExit], [true, 'server2', undefined]);
    assert.ok(!flowMods(bed.initial).some((f) => ids.some((id) => connIdOf(f.cookie) === id)), 'adopted exactly: nothing reinstalled');
  });

  it('on a switch without the field-sourced shifts, or for a mid-stream move, a MIGRATE uses flows as ever', async () => {
    let id = await migratedOn({}, { fieldShift: false });
    assert.equal(flowMods(bed!.sw.take()).filter((m) => m.command === 'add' && m.cookie === connCookie(id)).length, 2);
    bed!.engine.stop();
    bed = await EngineBed.create({ service: { migrateVia: 'conntrack', midStream: true }, opts: { conntrackZone: ZONE } });
    id = bed.handshake();
    bed.from(CLIENT, S1, HELD);
    const fwd = bed.waitEvent('forwarded');
    bed.engine.verdict(id, { verdict: 'FORWARD', source: 'test' });
    await fwd;
    await bed.engine.migrate(id, 'server2');
    bed.from(CLIENT, S1, { flags: { ack: true, psh: true }, seq: ISN + 6, ack: S1_ISN + 1, payload: 'again' }, connCookie(id, 4n));
    await tick();
    bed.sw.take();
    const migrated = bed.waitEvent('migrated');
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 6, options: SYN_OPTIONS });
    await migrated;
    const sent = bed.sw.take();
    assert.equal(flowMods(sent).filter((m) => m.command === 'add' && m.cookie === connCookie(id)).length, 2);
    assert.ok(!sent.some((m) => m.type === 'packet_out' && ctOf(m.actions)));
  });
});

describe('MIGRATE in conntrack: config', () => {
  const svc = { name: 'echo', address: '10.0.0.1', port: 5001, backends: [{ name: 's1', address: '10.0.0.1', port: 5001 }, { name: 's2', address: '10.0.0.3', port: 5001 }] };
  it('migrateVia defaults to conntrack (flows with mirrorAll, or on a fabric), takes flows or conntrack, refuses anything else, conntrack with mirrorAll, and with a fabric', () => {
    assert.equal(parseConfig({ services: [svc] }).services[0]!.migrateVia, 'conntrack');
    assert.equal(parseConfig({ services: [{ ...svc, migrateVia: 'flows' }] }).services[0]!.migrateVia, 'flows');
    assert.equal(parseConfig({ services: [{ ...svc, mirrorPort: 5, mirrorAll: true }] }).services[0]!.migrateVia, 'flows');
    assert.equal(parseConfig({ services: [{ ...svc, forwardVia: 'flows' }], fabric: {} }).services[0]!.migrateVia, 'flows', 'on a fabric, whatever else is said');
    assert.throws(() => parseConfig({ services: [{ ...svc, migrateVia: 'nat' }] }), /services\[0\]\.migrateVia.*expected one of flows, conntrack/);
    assert.throws(() => parseConfig({ services: [{ ...svc, migrateVia: 'conntrack', mirrorPort: 5, mirrorAll: true }] }), /services\[0\]\.migrateVia.*mirrorAll/);
    assert.throws(() => parseConfig({ services: [{ ...svc, migrateVia: 'conntrack' }], fabric: {} }), /services\[0\]\.migrateVia.*single switch/);
  });
});
