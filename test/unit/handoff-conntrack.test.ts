// FORWARD verdicts kept in the switch's conntrack (forwardVia 'conntrack'): the flow plan's
// per-service flows, and the engine on a scripted switch: a FORWARD sends no Flow-Mod, only the held
// segment committing the connection; strays go on the same way; a move takes the connection out of
// conntrack before its flows go in; the controller forgets what it cannot see.
import assert from 'node:assert/strict';
import { EngineBed, CLIENT, S1, S2, SYN_OPTIONS, asFlowStats, ctFlushes, type FlowMod, type PacketOut } from '../lib/scripted-switch.ts';
import { decodeRecord, encodeRecord, RecordError } from '../../controller/handoff/connection-record.ts';
import type { EngineOptions } from '../../controller/handoff/engine-core.ts';
import type { FlowStats } from '../../controller/openflow/index.ts';
import { CONN_ROLE, connCookie, connIdOf, connRoleOf, INTERCEPT_ROLE, interceptCookie, isFlagCopy, isSynAckCopy, SHARED_INTERCEPT_INDEX } from '../../controller/cookies.ts';
import {
  conntrackForwardActions, conntrackHandshakeActions, conntrackHandshakeDoneActions, conntrackLabel, CT_HANDSHAKE, conntrackLabelPorts, conntrackPortsFit, CT_FORWARDED, CT_MIGRATED, DEFAULT_CONNTRACK_ZONE, flagCopyFlows, interceptFlows, PRIORITY, PROBE_TABLE, TABLE,
} from '../../controller/handoff/flow-plan.ts';
import { STRAYS_BEFORE_REINSTALL } from '../../controller/handoff/engine-core.ts';
import { parseConfig } from '../../controller/config.ts';
import { parseServices } from '../../controller/handoff/service-config.ts';
import { OFPBRC, OFPET, OFPP, type Action } from '../../controller/openflow/index.ts';
import { OpenFlowError } from '../../controller/datapath/switch-connection.ts';

const TCP_FIN = 0x01;
const TCP_RST = 0x04;

const ISN = 1000;
const S1_ISN = 5000;
const HELD = { flags: { ack: true, psh: true }, seq: ISN + 1, ack: S1_ISN + 1, payload: 'hello' };
const tick = () => new Promise((r) => setImmediate(r));
const ZONE = 77;

const flowMods = (msgs: unknown[]) => msgs.filter((m): m is FlowMod => (m as FlowMod).type === 'flow_mod');
const actionsOf = (f: FlowMod): Action[] => f.instructions.flatMap((i) => (i.type === 'apply_actions' ? i.actions : []));

function ctOf(actions: Action[]): Extract<Action, { type: 'nx_ct' }> | undefined {
  return actions.find((a): a is Extract<Action, { type: 'nx_ct' }> => a.type === 'nx_ct');
}

/** A mid-stream move of `id` to server 2 up to its boundary: the client's next request held, the replayed SYN out. */
async function moveToServer2(b: EngineBed, id: number): Promise<void> {
  await b.engine.migrate(id, 'server2');
  assert.equal(b.conn(id)?.phase, 'freezing');
  b.from(CLIENT, S1, { flags: { ack: true, psh: true }, seq: ISN + 6, ack: S1_ISN + 7, payload: 'again' }, connCookie(id, CONN_ROLE.freeze));
  await tick();
}

/** Server 2 answers the replayed SYN: the move completes. */
async function server2Answers(b: EngineBed): Promise<void> {
  const migrated = b.waitEvent('migrated');
  b.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: 90000, ack: ISN + 6, options: SYN_OPTIONS });
  await migrated;
}

describe('FORWARD in conntrack: flow plan', () => {
  const spec = { index: 0, service: { ip: '10.0.0.1', ip6: 'fd00::1', port: 5001 }, backends: [{ ip: '10.0.0.1', port: 5001 }, { ip: '10.0.0.3', port: 5001 }] };

  it('the label holds the two ports and reads back; ports beyond 16 bits (or reserved) do not fit', () => {
    for (const [c, b] of [[1, 2], [2, 1], [0xfeff, 7], [300, 0xfeff]] as const) assert.deepEqual(conntrackLabelPorts(conntrackLabel(c, b)), { client: c, backend: b });
    assert.ok(conntrackPortsFit(1, 0xfeff));
    for (const [c, b] of [[0, 1], [1, 0xff00], [0xfffffffd, 1], [1.5, 2]]) assert.ok(!conntrackPortsFit(c, b), `${c}, ${b}`);
  });

  it('the state note carries "its entry keeps the mark" and reads it back; anything but 1 there is refused', () => {
    const base = { serviceName: 'echo', serviceMac: '02:00:00:00:00:01', clientMac: '02:00:00:00:00:02', backendName: 'server1', backendMac: '02:00:00:00:00:01', ackDelta: 0, migrations: 0, createdAt: 1 };
    assert.equal(decodeRecord(encodeRecord({ ...base, conntrackMarked: true })).conntrackMarked, true);
    assert.equal(decodeRecord(encodeRecord(base)).conntrackMarked, undefined);
    const bad = Buffer.from(encodeRecord(base).toString().replace(/}$/, ',"ct":2}'));
    assert.throws(() => decodeRecord(bad), RecordError);
  });

  it('without a zone the service steers to table 1 as before, and has no conntrack flows', () => {
    const flows = interceptFlows(spec).filter((m): m is FlowMod => m.type === 'flow_mod');
    assert.ok(flows.filter((f) => f.tableId === TABLE.steer).every((f) => f.instructions.some((i) => i.type === 'goto_table' && i.tableId === TABLE.connection)));
    assert.ok(!flows.some((f) => f.priority === PRIORITY.conntrack || JSON.stringify(f, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)).includes('nx_ct')));
  });

  it('with a zone, table 0 sends every steered segment through ct(zone) on to table 1, FIN/RST copies to the controller first; a backend\'s FIN through ct to table 2', () => {
    const flows = interceptFlows({ ...spec, conntrackZone: ZONE }).filter((m): m is FlowMod => m.type === 'flow_mod');
    const steer = flows.filter((f) => f.tableId === TABLE.steer && f.priority !== PRIORITY.synAckCt);
    assert.equal(steer.length, 4 * 3, 'steer + FIN + RST copy for two service addresses and two backends');
    let backendFins = 0;
    for (const f of steer) {
      assert.deepEqual(f.instructions.map((i) => i.type), ['apply_actions'], 'no goto_table: ct recirculates to table 1 itself');
      const actions = f.instructions[0]!.type === 'apply_actions' ? f.instructions[0]!.actions : [];
      const fromBackend = f.match.tcpSrc !== undefined;
      if (f.priority === PRIORITY.flagCopy && fromBackend && typeof f.match.tcpFlags === 'object' && f.match.tcpFlags.value === TCP_FIN) {
        backendFins++;
        assert.deepEqual(f.match.tcpFlags, { value: TCP_FIN, mask: TCP_FIN | TCP_RST }, 'FIN without RST: a RST is always copied');
        assert.deepEqual(actions, [{ type: 'nx_ct', zone: ZONE, table: TABLE.copy }], 'no copy here: table 2 decides after ct');
        continue;
      }
      assert.deepEqual(actions.at(-1), { type: 'nx_ct', zone: ZONE, table: TABLE.connection });
      if (f.priority === PRIORITY.flagCopy) assert.deepEqual(actions[0], { type: 'output', port: 0xfffffffd, maxLen: 128 }, 'the copy leaves before ct');
    }
    assert.equal(backendFins, 2);
  });

  it('with a zone, a backend\'s SYN-ACK passes ct in the handshake zone; marked by its SYN, it goes to the client by the label, copied to the controller', () => {
    const flows = interceptFlows({ ...spec, conntrackZone: ZONE }).filter((m): m is FlowMod => m.type === 'flow_mod');
    const syn = { value: 0x02, mask: 0x02 };
    const ct = flows.filter((f) => f.priority === PRIORITY.synAckCt);
    assert.deepEqual(ct.map((f) => [f.tableId, f.cookie, f.match.ipv4Src, f.match.tcpSrc, f.match.tcpFlags, f.instructions]), [
      [TABLE.steer, interceptCookie(0), '10.0.0.1', 5001, syn, [{ type: 'apply_actions', actions: [{ type: 'nx_ct', zone: ZONE + 1, table: TABLE.connection }] }]],
      [TABLE.steer, interceptCookie(0), '10.0.0.3', 5001, syn, [{ type: 'apply_actions', actions: [{ type: 'nx_ct', zone: ZONE + 1, table: TABLE.connection }] }]],
    ]);
    assert.ok(PRIORITY.synAckCt > PRIORITY.steer && PRIORITY.synAckCt < PRIORITY.flagCopy, 'above the steering, below the FIN/RST copies');
    const copies = flows.filter((f) => f.priority === PRIORITY.synAckCopy);
    assert.deepEqual(copies.map((f) => [f.tableId, f.cookie, f.match.ctState, f.match.ctZone, f.match.ctMark, f.match.ipv4Src, f.match.tcpSrc, f.match.tcpFlags]), [
      [TABLE.connection, interceptCookie(0, INTERCEPT_ROLE.synAckCopy), { value: 0x20, mask: 0x20 }, ZONE + 1, CT_HANDSHAKE, '10.0.0.1', 5001, syn],
      [TABLE.connection, interceptCookie(0, INTERCEPT_ROLE.synAckCopy), { value: 0x20, mask: 0x20 }, ZONE + 1, CT_HANDSHAKE, '10.0.0.3', 5001, syn],
    ]);
    assert.deepEqual(copies[0]!.instructions, [{ type: 'apply_actions', actions: [{ type: 'output', port: OFPP.CONTROLLER, maxLen: 128 }, { type: 'nx_output_reg', field: 'ctLabel', ofs: 0, nBits: 16 }] }]);
    assert.ok(isSynAckCopy(copies[0]!.cookie) && !isFlagCopy(copies[0]!.cookie));
    assert.ok(PRIORITY.synAckCopy > PRIORITY.leg && PRIORITY.synAckCopy < PRIORITY.conntrack, 'above the leg and intercept flows');
  });

  it('table 2 copies FIN/RST to the controller and sends everything on to table 1, except a FIN whose connection conntrack carries (FORWARD or migrated mark)', () => {
    const flows = flagCopyFlows(ZONE).filter((m): m is FlowMod => m.type === 'flow_mod');
    const on = { type: 'nx_resubmit', inPort: OFPP.IN_PORT, tableId: TABLE.connection };
    const copy = [{ type: 'output', port: OFPP.CONTROLLER, maxLen: 128 }, on];
    const tracked = { value: 0x20, mask: 0x20 };
    const flag = (ethType: number, f: number) => ({ ethType, ipProto: 6, tcpFlags: { value: f, mask: f } });
    assert.ok(flows.every((f) => f.tableId === TABLE.copy && f.cookie === interceptCookie(SHARED_INTERCEPT_INDEX, INTERCEPT_ROLE.flagCopy) && isFlagCopy(f.cookie)), 'table 2; its Packet-Ins are copies');
    assert.deepEqual(flows.map((f) => [f.priority, f.match, f.instructions[0]!.type === 'apply_actions' ? f.instructions[0]!.actions : []]), [
      [PRIORITY.copyOnward, {}, [on]],
      [PRIORITY.copyFlag, flag(0x800, TCP_FIN), copy], [PRIORITY.copyFlag, flag(0x800, TCP_RST), copy],
      [PRIORITY.copyFlag, flag(0x86dd, TCP_FIN), copy], [PRIORITY.copyFlag, flag(0x86dd, TCP_RST), copy],
      [PRIORITY.copySkip, { ctState: tracked, ctZone: ZONE, ctMark: CT_FORWARDED }, [on]],
      [PRIORITY.copySkip, { ctState: tracked, ctZone: ZONE, ctMark: { value: CT_MIGRATED, mask: CT_MIGRATED } }, [on]],
    ]);
    assert.ok(PRIORITY.copySkip > PRIORITY.copyFlag && PRIORITY.copyFlag > PRIORITY.copyOnward);
  });

  it('with a zone, table 1 forwards marked connections by their label: to the service by the backend\'s port, from the primary by the client\'s', () => {
    const flows = interceptFlows({ ...spec, conntrackZone: ZONE }).filter((m): m is FlowMod => m.type === 'flow_mod' && m.priority === PRIORITY.conntrack);
    const view = flows.map((f) => [f.tableId, f.cookie, f.match.ctState, f.match.ctZone, f.match.ctMark, f.match.ipv4Dst ?? f.match.ipv6Dst, f.match.ipv4Src ?? f.match.ipv6Src, f.match.tcpDst, f.match.tcpSrc, f.instructions[0]!.type === 'apply_actions' ? f.instructions[0]!.actions : []]);
    const tracked = { value: 0x20, mask: 0x20 };
    const toBackend = [{ type: 'nx_output_reg', field: 'ctLabel', ofs: 16, nBits: 16 }];
    const toClient = [{ type: 'nx_output_reg', field: 'ctLabel', ofs: 0, nBits: 16 }];
    assert.deepEqual(view, [
      [1, interceptCookie(0), tracked, ZONE, CT_FORWARDED, '10.0.0.1', undefined, 5001, undefined, toBackend],
      [1, interceptCookie(0), tracked, ZONE, CT_FORWARDED, 'fd00::1', undefined, 5001, undefined, toBackend],
      [1, interceptCookie(0), tracked, ZONE, CT_FORWARDED, undefined, '10.0.0.1', undefined, 5001, toClient],
      [1, interceptCookie(0), tracked, ZONE, CT_FORWARDED, undefined, 'fd00::1', undefined, 5001, toClient],
    ]);
    assert.ok(PRIORITY.conntrack > PRIORITY.leg && PRIORITY.conntrack < PRIORITY.bypass && PRIORITY.conntrack < PRIORITY.connection, 'below every flow of a connection of its own');
  });
});

describe('FORWARD in conntrack: engine (scripted switch)', () => {
  let bed: EngineBed | undefined;
  afterEach(() => {
    if (bed) assert.equal(bed.engine.stats.illegalTransitions, 0, 'no illegal phase transition');
    bed?.engine.stop();
    bed = undefined;
  });

  /** A new bed whose one connection got a FORWARD verdict on its held segment (what it sent until then taken). */
  async function forwardedOn(service: Record<string, unknown>, opts: Partial<EngineOptions> = {}, flows: FlowStats[] = []): Promise<number> {
    bed = await EngineBed.create({ service, opts: { conntrackZone: ZONE, ...opts }, flows });
    const id = bed.handshake();
    bed.from(CLIENT, S1, HELD);
    bed.sw.take();
    const fwd = bed.waitEvent('forwarded');
    bed.engine.verdict(id, { verdict: 'FORWARD', source: 'test' });
    await fwd;
    return id;
  }
  const forwarded = (service: Record<string, unknown> = {}, opts: Partial<EngineOptions> = {}) => forwardedOn({ forwardVia: 'conntrack', ...service }, opts);

  it('a switch without a connection tracker (it refuses the ct probe): no ct action or match anywhere, and both verdicts use flows', async () => {
    bed = await EngineBed.create({ service: { forwardVia: 'conntrack', migrateVia: 'conntrack' }, opts: { conntrackZone: ZONE }, conntrack: false });
    const flows = flowMods(bed.initial).filter((f) => f.tableId !== PROBE_TABLE && f.command === 'add');
    assert.ok(flows.length > 0);
    assert.ok(!flows.some((f) => ctOf(actionsOf(f)) || f.match.ctState || f.match.ctMark !== undefined), 'nothing the switch would refuse');
    const fwd = bed.handshake();
    bed.from(CLIENT, S1, HELD);
    bed.engine.verdict(fwd, { verdict: 'FORWARD', source: 'test' });
    await tick();
    assert.equal(flowMods(bed.sw.take()).filter((m) => m.command === 'add' && m.cookie === connCookie(fwd)).length, 2, 'FORWARD: its two flows');
    const port = CLIENT.port + 1;
    const mig = bed.handshake({ ...CLIENT, port });
    bed.from({ ...CLIENT, port }, S1, HELD);
    bed.engine.verdict(mig, { verdict: 'MIGRATE', source: 'test' });
    await tick();
    const migrated = bed.waitEvent('migrated');
    bed.from(S2, { ...CLIENT, port }, { flags: { syn: true, ack: true }, seq: 90000, ack: ISN + 1, options: SYN_OPTIONS });
    await migrated;
    assert.equal(flowMods(bed.sw.take()).filter((m) => m.command === 'add' && m.cookie === connCookie(mig)).length, 2, 'MIGRATE: its two flows');
    assert.ok([fwd, mig].every((id) => !bed!.conn(id)?.conntrack));
  });

  it('a switch that connects gets the service\'s flows through ct in the configured zone, or the default one', async () => {
    const zonesOf = (b: EngineBed) => new Set(b.initial.flatMap((m) => (m.type === 'flow_mod' && m.tableId !== PROBE_TABLE ? m.instructions.flatMap((i) => (i.type === 'apply_actions' ? [ctOf(i.actions)?.zone] : [])) : [])).filter((z) => z !== undefined));
    bed = await EngineBed.create({ service: { forwardVia: 'conntrack' }, opts: { conntrackZone: ZONE } });
    assert.deepEqual([...zonesOf(bed)], [ZONE, ZONE + 1], 'and the handshake zone next to it');
    assert.ok(bed.initial.some((m) => m.type === 'flow_mod' && m.priority === PRIORITY.conntrack));
    bed.engine.stop();
    bed = await EngineBed.create({ service: { forwardVia: 'conntrack' } });
    assert.deepEqual([...zonesOf(bed)], [DEFAULT_CONNTRACK_ZONE, DEFAULT_CONNTRACK_ZONE + 1]);
  });

  it('a FORWARD sends no Flow-Mod and no barrier: the held segment commits the connection with its ports and goes to server 1', async () => {
    const id = await forwarded();
    const sent = bed!.sw.take();
    assert.deepEqual(sent.map((m) => m.type), ['packet_out'], 'one Packet-Out, nothing else');
    const po = sent[0] as PacketOut;
    assert.deepEqual(po.actions, conntrackForwardActions(ZONE, CLIENT.ofport, S1.ofport, S1.ofport));
    assert.deepEqual(ctOf(po.actions), { type: 'nx_ct', zone: ZONE, commit: true, actions: [{ type: 'set_field', field: { ctMark: CT_FORWARDED } }, { type: 'set_field', field: { ctLabel: BigInt(CLIENT.ofport) | (BigInt(S1.ofport) << 16n) } }] });
    assert.equal(po.inPort, CLIENT.ofport);
    assert.equal(po.data.subarray(-5).toString(), 'hello');
    const c = bed!.conn(id)!;
    assert.deepEqual([c.phase, c.backend, c.conntrack], ['forwarded', 'server1', true]);
    assert.equal(bed!.engine.stats.forwarded, 1);
  });

  it('strays (segments that raced the commit) go on committing it again, in their direction, and never make the engine install flows', async () => {
    const id = await forwarded();
    bed!.sw.take();
    for (let i = 0; i < STRAYS_BEFORE_REINSTALL + 2; i++) {
      bed!.from(CLIENT, S1, { flags: { ack: true }, seq: ISN + 6, ack: S1_ISN + 1 + i });
      bed!.from(S1, CLIENT, { flags: { ack: true, psh: true }, seq: S1_ISN + 1 + i, ack: ISN + 6, payload: 'x' });
    }
    await tick();
    const sent = bed!.sw.take();
    assert.ok(sent.every((m) => m.type === 'packet_out'), `only Packet-Outs: ${sent.map((m) => m.type).join(',')}`);
    const outs = (sent as PacketOut[]).map((p) => [p.inPort, p.actions.at(-1)]);
    assert.equal(outs.length, 2 * (STRAYS_BEFORE_REINSTALL + 2));
    for (const [inPort, out] of outs) assert.deepEqual(out, { type: 'output', port: inPort === CLIENT.ofport ? S1.ofport : CLIENT.ofport });
    assert.ok((sent as PacketOut[]).every((p) => ctOf(p.actions)?.commit));
    assert.equal(bed!.conn(id)?.phase, 'forwarded');
  });

  it('closing: the FIN/RST copies close it and free it with no Flow-Mod (there is nothing to delete)', async () => {
    const id = await forwarded();
    bed!.sw.take();
    const closed = bed!.waitEvent('conn_closed');
    bed!.from(CLIENT, S1, { flags: { rst: true }, seq: ISN + 6 }, interceptCookie(0, INTERCEPT_ROLE.flagCopy));
    await closed;
    assert.equal(bed!.engine.table.size, 0);
    assert.deepEqual(bed!.sw.take(), [], 'no closing flows, no delete');
    assert.equal(bed!.conn(id), undefined);
  });

  it('its client\'s FIN copy alone closes it (the switch does not copy its server\'s FIN), after the grace, with no Flow-Mod', async () => {
    const id = await forwarded({}, { closeGraceMs: 20 });
    bed!.sw.take();
    const closed = bed!.waitEvent('conn_closed');
    bed!.from(CLIENT, S1, { flags: { fin: true, ack: true }, seq: ISN + 6, ack: S1_ISN + 1 }, interceptCookie(0, INTERCEPT_ROLE.flagCopy));
    assert.equal(bed!.conn(id)?.phase, 'closing');
    const [, why] = await closed as [unknown, string];
    assert.match(why, /closed by the client/);
    assert.deepEqual(bed!.sw.take(), [], 'no closing flows, no delete');
    assert.equal(bed!.engine.table.size, 0);
  });

  it('a client FIN that came with the held data closes it as soon as its FORWARD is committed', async () => {
    bed = await EngineBed.create({ service: { forwardVia: 'conntrack' }, opts: { conntrackZone: ZONE, closeGraceMs: 20 } });
    const id = bed.handshake();
    bed.from(CLIENT, S1, { ...HELD, flags: { ack: true, psh: true, fin: true } });
    const closing = bed.waitEvent('conn_closed');
    bed.engine.verdict(id, { verdict: 'FORWARD', source: 'test' });
    await tick();
    assert.equal(bed.conn(id)?.phase, 'closing', 'the commit went out, and the connection closes');
    assert.ok(bed.sw.take().some((m) => m.type === 'packet_out' && ctOf(m.actions)?.commit && m.data.subarray(-5).toString() === 'hello'), 'the held segment went on, committing it');
    await closing;
  });

  it('a connection with flows of its own (FORWARD on a flows service) still waits for both FINs', async () => {
    const id = await forwardedOn({}, { closeGraceMs: 20 });
    bed!.sw.take();
    const copy = interceptCookie(0, INTERCEPT_ROLE.flagCopy);
    bed!.from(CLIENT, S1, { flags: { fin: true, ack: true }, seq: ISN + 6, ack: S1_ISN + 1 }, copy);
    await tick();
    assert.equal(bed!.conn(id)?.phase, 'forwarded', 'the client\'s FIN alone closes nothing');
    bed!.from(S1, CLIENT, { flags: { fin: true, ack: true }, seq: S1_ISN + 1, ack: ISN + 7 }, copy);
    assert.equal(bed!.conn(id)?.phase, 'closing');
  });

  it('a client FIN during a move of one kept in conntrack ends nothing: the move completes, and then both FINs close it', async () => {
    const id = await forwarded({}, { conntrackFlowsAfterMs: 0, closeGraceMs: 20 });
    bed!.sw.take();
    await moveToServer2(bed!, id);
    const copy = interceptCookie(0, INTERCEPT_ROLE.flagCopy);
    bed!.from(CLIENT, S1, { flags: { fin: true, ack: true }, seq: ISN + 6, ack: S1_ISN + 1 }, copy);
    assert.notEqual(bed!.conn(id)?.phase, 'closing');
    await server2Answers(bed!);
    await tick();
    assert.deepEqual([bed!.conn(id)?.phase, bed!.conn(id)?.backend, bed!.conn(id)?.conntrack], ['forwarded', 'server2', undefined], 'moved, out of conntrack, not closing');
  });

  it('with conntrackFlowsAfterMs 0, unseen for the service\'s idle timeout, it is forgotten (the switch keeps forwarding it): no RST, no Flow-Mod', async () => {
    const id = await forwarded({ idleTimeout: 1 }, { conntrackFlowsAfterMs: 0 });
    bed!.sw.take();
    const [view, why] = await bed!.waitEvent('conn_closed', 3000) as [{ id: number }, string];
    assert.equal(view.id, id);
    assert.match(why, /idle timeout/);
    assert.deepEqual(bed!.sw.take(), []);
    assert.equal(bed!.engine.table.size, 0);
  });

  it('one that outlives conntrackFlowsAfterMs leaves ct for good: its two flows, then its entry deleted; a later controller adopts it, and its move has no mark to take away', async () => {
    const id = await forwarded({}, { conntrackFlowsAfterMs: 30 });
    bed!.sw.take();
    const sent = await bed!.sw.nextTransact();
    const adds = sent.filter((m): m is FlowMod => m.type === 'flow_mod' && m.command === 'add' && connIdOf(m.cookie) === id);
    assert.deepEqual(adds.map((m) => [m.tableId, m.priority, connRoleOf(m.cookie)]), [
      [TABLE.connection, PRIORITY.connection, CONN_ROLE.main], [TABLE.connection, PRIORITY.connection, CONN_ROLE.main],
    ], 'its two flows, no ct-exit flows (its segments go on passing ct, which no longer marks them)');
    assert.ok(!sent.some((m) => m.type === 'flow_mod' && m.command !== 'add'), 'nothing to delete before its first flows');
    assert.deepEqual(ctFlushes(sent), [], 'its entry stays while its flows go in');
    assert.deepEqual(ctFlushes(await bed!.sw.nextTransact()), [{ zone: ZONE, ipProto: 6, orig: { src: CLIENT.ip, dst: S1.ip, srcPort: CLIENT.port, dstPort: S1.port } }], 'and goes once they are in');
    const note = adds.flatMap((m) => m.instructions.flatMap((i) => (i.type === 'apply_actions' ? i.actions : []))).find((a) => a.type === 'nx_note');
    assert.ok(note && note.type === 'nx_note' && !decodeRecord(note.data).conntrackMarked, 'no mark left to note');
    assert.deepEqual([bed!.conn(id)?.phase, bed!.conn(id)?.conntrack], ['forwarded', undefined]);
    // A controller restarted over those flows adopts it; a move sends no mark-removing Packet-Out.
    bed!.engine.stop();
    bed = await EngineBed.create({ service: { forwardVia: 'conntrack' }, opts: { conntrackZone: ZONE }, flows: asFlowStats(adds) });
    assert.deepEqual([bed.conn(id)?.adopted, bed.engine.table.get(id)?.ctExit], [true, undefined]);
    assert.ok(!flowMods(bed.initial).some((f) => connIdOf(f.cookie) === id), 'adopted exactly');
    await moveToServer2(bed, id);
    await server2Answers(bed);
    const moved = bed.sw.take();
    assert.ok(!moved.some((m) => m.type === 'packet_out' && ctOf(m.actions)), 'no ct commit on the way: its entry is gone');
    assert.deepEqual([bed.conn(id)?.phase, bed.conn(id)?.backend], ['forwarded', 'server2']);
  });

  it('a switch that does not delete the entry (NXT_CT_FLUSH refused): the connection gets ct-exit flows instead, which keep its segments from the entry', async () => {
    const id = await forwarded({}, { conntrackFlowsAfterMs: 30 });
    bed!.sw.refuse = (msgs) => (msgs.some((m) => m.type === 'experimenter') ? new OpenFlowError(OFPET.BAD_REQUEST, OFPBRC.BAD_EXP_TYPE, Buffer.alloc(0)) : undefined);
    bed!.sw.take();
    await bed!.sw.nextTransact();
    const t0 = Date.now();
    while (!flowMods(bed!.sw.sent).some((f) => f.command === 'add' && f.cookie === connCookie(id, CONN_ROLE.ctExit))) {
      assert.ok(Date.now() - t0 < 3000, 'ct-exit flows after the refusal');
      await new Promise((r) => setTimeout(r, 10));
    }
    const exits = flowMods(bed!.sw.sent).filter((f) => f.command === 'add' && f.cookie === connCookie(id, CONN_ROLE.ctExit));
    assert.deepEqual(exits.map((f) => [f.tableId, f.match.ipv4Src, f.match.ipv4Dst]), [[TABLE.steer, CLIENT.ip, S1.ip], [TABLE.steer, S1.ip, CLIENT.ip]]);
    assert.ok(!flowMods(bed!.sw.sent).some((f) => f.command !== 'add' && f.cookie === connCookie(id, CONN_ROLE.ctExit)), 'nothing of it deleted that would let its segments meet the entry');
    assert.deepEqual(bed!.engine.table.get(id)?.ctExit, { ip: S1.ip, port: S1.port });
  });

  it('flows of an earlier version whose note says its entry keeps the mark: adopted so, and its move takes the mark away first', async () => {
    const id = await forwarded({}, { conntrackFlowsAfterMs: 30 });
    const sent = await bed!.sw.nextTransact();
    // Its two flows as an earlier version wrote them: no exit flows, the note saying the entry is marked.
    const marked = sent.filter((m): m is FlowMod => m.type === 'flow_mod' && m.command === 'add' && m.cookie === connCookie(id)).map((m) => ({
      ...m, instructions: m.instructions.map((i) => (i.type === 'apply_actions' ? { ...i, actions: i.actions.map((a) => (a.type === 'nx_note' ? { ...a, data: encodeRecord({ ...decodeRecord(a.data), conntrackMarked: true }) } : a)) } : i)),
    }));
    bed!.engine.stop();
    bed = await EngineBed.create({ service: { forwardVia: 'conntrack' }, opts: { conntrackZone: ZONE }, flows: asFlowStats(marked) });
    assert.equal(bed.conn(id)?.adopted, true);
    await moveToServer2(bed, id);
    await server2Answers(bed);
    const moved = bed.sw.take();
    const leave = moved.findIndex((m) => m.type === 'packet_out' && ctOf(m.actions)?.actions?.some((a) => a.type === 'set_field' && a.field.ctMark === 0));
    assert.ok(leave >= 0 && leave < moved.findIndex((m) => m.type === 'flow_mod' && m.command === 'add' && m.cookie === connCookie(id)), 'the mark goes before the moved flows');
    const note2 = moved.flatMap((m) => (m.type === 'flow_mod' && m.command === 'add' ? m.instructions : [])).flatMap((i) => (i.type === 'apply_actions' ? i.actions : [])).find((a) => a.type === 'nx_note');
    assert.ok(note2 && note2.type === 'nx_note' && !decodeRecord(note2.data).conntrackMarked, 'and the note no longer says so');
  });

  it('a mid-stream move takes it out of conntrack (mark 0, by its held segment, before the flows) and then has flows like any other', async () => {
    const id = await forwarded({}, { conntrackFlowsAfterMs: 0 });
    bed!.sw.take();
    await moveToServer2(bed!, id);
    await server2Answers(bed!);
    const sent = bed!.sw.take();
    const leave = sent.findIndex((m) => m.type === 'packet_out' && ctOf(m.actions)?.actions?.some((a) => a.type === 'set_field' && a.field.ctMark === 0));
    const firstAdd = sent.findIndex((m) => m.type === 'flow_mod' && m.command === 'add' && m.cookie === connCookie(id));
    assert.ok(leave >= 0, 'the conntrack entry loses its mark');
    assert.ok(firstAdd > leave, 'before the connection\'s flows go in');
    for (const role of [CONN_ROLE.freeze, CONN_ROLE.freezeCopy]) {
      assert.ok(sent.some((m) => m.type === 'flow_mod' && m.command === 'delete' && m.cookie === connCookie(id, role)), `its freeze flows (role ${role}) go: it had no others`);
    }
    const po = sent[leave] as PacketOut;
    assert.deepEqual([po.actions.length, po.data.subarray(-5).toString()], [1, 'again'], 'the held client segment, going no further');
    const c = bed!.conn(id)!;
    assert.deepEqual([c.phase, c.backend, c.conntrack], ['forwarded', 'server2', undefined]);
  });

  it('a mid-stream move the target refuses: the connection stays on server 1, with its own flows now and its entry no longer marked', async () => {
    const id = await forwarded({}, { conntrackFlowsAfterMs: 0 });
    bed!.sw.take();
    await moveToServer2(bed!, id);
    const failed = bed!.waitEvent('migration_failed');
    bed!.from(S2, CLIENT, { flags: { rst: true, ack: true }, seq: 0, ack: ISN + 6 });
    await failed;
    await tick();
    const sent = bed!.sw.take();
    const leave = sent.findIndex((m) => m.type === 'packet_out' && ctOf(m.actions)?.actions?.some((a) => a.type === 'set_field' && a.field.ctMark === 0));
    const adds = sent.filter((m): m is FlowMod => m.type === 'flow_mod' && m.command === 'add' && m.cookie === connCookie(id));
    assert.ok(leave >= 0 && leave < sent.indexOf(adds[0]!), 'the mark goes before its flows');
    assert.deepEqual(adds.map((m) => [m.priority, m.match.ipv4Dst, m.match.ipv4Src]), [[PRIORITY.connection, S1.ip, CLIENT.ip], [PRIORITY.connection, CLIENT.ip, S1.ip]], 'its two flows, to and from server 1');
    const released = (sent as PacketOut[]).filter((p) => p.type === 'packet_out' && p.data.subarray(-5).toString() === 'again' && !ctOf(p.actions));
    assert.equal(released.length, 1, 'the held segment goes on to server 1 through its flows');
    assert.deepEqual([bed!.conn(id)?.phase, bed!.conn(id)?.backend, bed!.conn(id)?.conntrack], ['forwarded', 'server1', undefined]);
  });

  it('a switch that reconnects: the conntrack-FORWARDed connection is neither given flows nor dropped (conntrack is in the datapath, not the channel)', async () => {
    const id = await forwarded();
    bed!.sw.take();
    await bed!.engine.switchReady(bed!.sw.asChannel(), []);
    const sent = bed!.sw.take();
    assert.ok(!sent.some((m) => m.type === 'flow_mod' && m.cookie === connCookie(id)), 'no flow of its own');
    assert.deepEqual([bed!.conn(id)?.phase, bed!.conn(id)?.conntrack], ['forwarded', true]);
  });

  it('a reload that turns the service to flows gives its conntrack-FORWARDed connections their two flows; the intercept flows lose ct', async () => {
    const id = await forwarded();
    bed!.sw.take();
    const [next] = parseServices([{ ...bed!.engine.listServices()[0], forwardVia: 'flows' }]);
    const lines = await bed!.engine.reconfigureServices([next!]);
    await tick();
    assert.ok(lines.some((l) => /1 connection\(s\) kept in conntrack given flows/.test(l)), lines.join('\n'));
    const sent = bed!.sw.take();
    const adds = sent.filter((m): m is FlowMod => m.type === 'flow_mod' && m.command === 'add' && m.cookie === connCookie(id));
    assert.deepEqual(adds.map((m) => m.priority), [PRIORITY.connection, PRIORITY.connection]);
    assert.ok(!sent.some((m) => m.type === 'flow_mod' && m.instructions.some((i) => i.type === 'apply_actions' && ctOf(i.actions))), 'no ct left in the service\'s flows');
    assert.deepEqual([bed!.conn(id)?.phase, bed!.conn(id)?.conntrack], ['forwarded', undefined]);
  });

  it('MIGRATE on such a service, and FORWARD on a flows service, use the connection\'s flows as ever', async () => {
    await forwardedOn({ forwardVia: 'flows' });
    const sent = bed!.sw.take();
    assert.equal(sent.filter((m) => m.type === 'flow_mod' && m.command === 'add').length, 2);
    assert.ok(!sent.some((m) => m.type === 'packet_out' && ctOf(m.actions)));
    bed!.engine.stop();
    bed = await EngineBed.create({ service: { forwardVia: 'conntrack' }, opts: { conntrackZone: ZONE } });
    const id2 = bed.handshake();
    bed.from(CLIENT, S1, HELD);
    bed.sw.take();
    const migrated = bed.waitEvent('migrated');
    bed.engine.verdict(id2, { verdict: 'MIGRATE', source: 'test' });
    await tick();
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: 90000, ack: ISN + 1, options: SYN_OPTIONS });
    await migrated;
    const moved = bed.sw.take();
    assert.equal(moved.filter((m) => m.type === 'flow_mod' && m.command === 'add' && m.cookie === connCookie(id2)).length, 2);
    assert.ok(!moved.some((m) => m.type === 'packet_out' && ctOf(m.actions)));
  });

  // Handshakes in conntrack: the SYN commits, server 1's SYN-ACK is the switch's, the ACK uncommits.
  const synAckCopy = interceptCookie(0, INTERCEPT_ROLE.synAckCopy);
  const pos = (b: EngineBed) => b.sw.take().filter((m): m is PacketOut => m.type === 'packet_out');

  it('the SYN commits the handshake on its way to server 1; server 1\'s SYN-ACK copy is learnt from, nothing goes to the client from here; the client\'s ACK takes the mark away', async () => {
    bed = await EngineBed.create({ service: { forwardVia: 'conntrack' }, opts: { conntrackZone: ZONE } });
    bed.sw.take();
    bed.from(CLIENT, S1, { flags: { syn: true }, seq: ISN, options: SYN_OPTIONS });
    const [syn] = pos(bed);
    assert.deepEqual(syn!.actions, [...conntrackHandshakeActions(ZONE, CLIENT.ofport, S1.ofport), { type: 'output', port: S1.ofport }]);
    assert.deepEqual(ctOf(syn!.actions), { type: 'nx_ct', zone: ZONE + 1, commit: true, actions: [{ type: 'set_field', field: { ctMark: CT_HANDSHAKE } }, { type: 'set_field', field: { ctLabel: conntrackLabel(CLIENT.ofport, S1.ofport) } }] });
    const id = bed.engine.connections()[0]!.id;
    bed.from(S1, CLIENT, { flags: { syn: true, ack: true }, seq: S1_ISN, ack: ISN + 1, options: SYN_OPTIONS }, synAckCopy);
    assert.deepEqual(pos(bed), [], 'the switch sent the SYN-ACK to the client itself');
    assert.ok(bed.engine.table.get(id)?.acceptedSynAck, 'what server 1 accepted is known');
    assert.equal(bed.conn(id)?.phase, 'handshake');
    bed.from(CLIENT, S1, { flags: { ack: true }, seq: ISN + 1, ack: S1_ISN + 1 });
    const [ack] = pos(bed);
    assert.deepEqual(ack!.actions, [...conntrackHandshakeDoneActions(ZONE), { type: 'output', port: S1.ofport }]);
    assert.deepEqual(ctOf(ack!.actions)?.actions, [{ type: 'set_field', field: { ctMark: 0 } }]);
    assert.equal(bed.conn(id)?.phase, 'established');
  });

  it('a first data segment before any pure ACK takes the mark away by a Packet-Out that goes no further, and is held', async () => {
    bed = await EngineBed.create({ service: { forwardVia: 'conntrack' }, opts: { conntrackZone: ZONE } });
    bed.from(CLIENT, S1, { flags: { syn: true }, seq: ISN, options: SYN_OPTIONS });
    bed.from(S1, CLIENT, { flags: { syn: true, ack: true }, seq: S1_ISN, ack: ISN + 1, options: SYN_OPTIONS }, synAckCopy);
    bed.sw.take();
    bed.from(CLIENT, S1, HELD);
    const out = pos(bed);
    assert.deepEqual(out.map((p) => [p.actions, p.data.subarray(-5).toString()]), [[conntrackHandshakeDoneActions(ZONE), 'hello']]);
    assert.equal(bed.engine.connections()[0]!.phase, 'held');
  });

  it('a service that does not pass conntrack commits no handshake: its SYN and ACK go out as ever', async () => {
    bed = await EngineBed.create({ service: { forwardVia: 'flows' }, opts: { conntrackZone: ZONE } });
    bed.sw.take();
    bed.handshake();
    const out = pos(bed);
    assert.ok(out.length >= 3 && out.every((p) => !ctOf(p.actions)), 'SYN, SYN-ACK and ACK passed on without conntrack');
    assert.ok(!bed.initial.some((m) => m.type === 'flow_mod' && (m.priority === PRIORITY.synAckCt || m.priority === PRIORITY.synAckCopy)));
  });
});

describe('FORWARD in conntrack: config', () => {
  const svc = { name: 'echo', address: '10.0.0.1', port: 5001, backends: [{ name: 's1', address: '10.0.0.1', port: 5001 }, { name: 's2', address: '10.0.0.3', port: 5001 }] };
  it('forwardVia defaults to conntrack (flows with mirrorAll, or on a fabric), takes flows or conntrack, refuses anything else, conntrack with mirrorAll, and with a fabric', () => {
    assert.equal(parseConfig({ services: [svc] }).services[0]!.forwardVia, 'conntrack');
    assert.equal(parseConfig({ services: [{ ...svc, forwardVia: 'flows' }] }).services[0]!.forwardVia, 'flows');
    assert.equal(parseConfig({ services: [{ ...svc, mirrorPort: 5, mirrorAll: true }] }).services[0]!.forwardVia, 'flows');
    assert.deepEqual(parseConfig({ services: [svc], fabric: {} }).services.map((s) => [s.forwardVia, s.migrateVia]), [['flows', 'flows']]);
    const cfg = parseConfig({ services: [{ ...svc, forwardVia: 'conntrack' }], handoff: { conntrackZone: 9 } });
    assert.deepEqual([cfg.services[0]!.forwardVia, cfg.handoff.conntrackZone], ['conntrack', 9]);
    assert.equal(parseConfig({}).handoff.conntrackZone, DEFAULT_CONNTRACK_ZONE);
    assert.throws(() => parseConfig({ services: [{ ...svc, forwardVia: 'ct' }] }), /services\[0\]\.forwardVia.*expected one of flows, conntrack/);
    assert.throws(() => parseConfig({ services: [{ ...svc, forwardVia: 'conntrack', mirrorPort: 5, mirrorAll: true }] }), /services\[0\]\.forwardVia.*mirrorAll/);
    assert.throws(() => parseConfig({ services: [{ ...svc, forwardVia: 'conntrack' }], fabric: {} }), /services\[0\]\.forwardVia.*single switch/);
    for (const z of [0, 65536, 'a']) assert.throws(() => parseConfig({ handoff: { conntrackZone: z } }), /handoff\.conntrackZone/);
  });
});
