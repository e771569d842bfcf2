// The handoff engine on a scripted switch: every path from SYN to teardown, including the failure
// paths a real bed rarely reaches. Each test asserts the phase, where the held segment went, the
// flows sent and that the connection table empties; none may take an illegal phase transition.
import assert from 'node:assert/strict';
import { EngineBed, ScriptedSwitch, CLIENT, S1, S2, S3, SYN_OPTIONS, outputs, frame, CONN_TABLE, asFlowStats, type FlowMod } from '../lib/scripted-switch.ts';
import { OFPP, OFPET, OFPBRC } from '../../controller/openflow/index.ts';
import { OpenFlowError } from '../../controller/datapath/switch-connection.ts';
import { connCookie, connIdOf, CONN_ROLE, INTERCEPT_ROLE, interceptCookie } from '../../controller/cookies.ts';
import { closingIdleTimeout, PRIORITY } from '../../controller/handoff/flow-plan.ts';
import { MAX_QUEUE } from '../../controller/handoff/interception.ts';
import { REPLAY_TRIES, RESET_REPEAT_MS } from '../../controller/handoff/move.ts';
import { allowed, TRANSITIONS } from '../../controller/handoff/phases.ts';

const ISN = 1000;
const S1_ISN = 5000;
const S2_ISN = 90000;
const HELD = { flags: { ack: true, psh: true }, seq: ISN + 1, ack: S1_ISN + 1, payload: 'hello' };
const tick = () => new Promise((r) => setImmediate(r));

async function held(bed: EngineBed): Promise<number> {
  const id = bed.handshake();
  bed.sw.take();
  bed.from(CLIENT, S1, HELD);
  assert.equal(bed.conn(id)?.phase, 'held');
  assert.deepEqual(bed.sw.take(), [], 'nothing leaves while the segment is held');
  return id;
}

/** A held connection given a MIGRATE verdict: its SYN is replayed to server 2 (what was sent is left to the caller). Returns its id. */
async function replaying(bed: EngineBed): Promise<number> {
  const id = await held(bed);
  bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
  await tick();
  return id;
}

/** A FORWARD verdict for connection `id`, awaited until it is forwarded. */
async function forwardOn(bed: EngineBed, id: number): Promise<void> {
  const fwd = bed.waitEvent('forwarded');
  bed.engine.verdict(id, { verdict: 'FORWARD', source: 'test' });
  await fwd;
}

/** A held connection moved to server 2 on the first segment (MIGRATE, server 2's SYN-ACK); returns its id. */
async function migratedToS2(bed: EngineBed): Promise<number> {
  const id = await replaying(bed);
  const migrated = bed.waitEvent('migrated');
  bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
  await migrated;
  return id;
}

/**
 * Closes the connection with a client RST and checks the table empties and its flows are replaced
 * by closing ones (the switch removes them); one that never had flows (still held) gets no
 * Flow-Mod at all (a Flow-Mod makes OVS revalidate everything).
 */
async function closeAndCheckGone(bed: EngineBed, id: number): Promise<void> {
  const hadFlows = bed.conn(id)?.phase === 'forwarded';
  bed.sw.take();
  const closed = bed.waitEvent('conn_closed');
  bed.from(CLIENT, S1, { flags: { rst: true }, seq: ISN + 6 }, interceptCookie(0, INTERCEPT_ROLE.flagCopy));
  await closed;
  assert.equal(bed.engine.table.size, 0);
  assert.deepEqual(bed.engine.table.sizes(), { connections: 0, clientKeys: 0, backendKeys: 0, halfOpen: 0, halfOpenSources: 0 });
  if (hadFlows) ScriptedSwitch.assertClosingFlows(bed.sw.take(), id, bed.opts.closeGraceMs);
  else assert.deepEqual(bed.sw.flowMods(), [], 'no flows, no delete');
}

describe('handoff engine (scripted switch)', () => {
  let bed: EngineBed | undefined;
  afterEach(() => {
    if (bed) assert.equal(bed.engine.stats.illegalTransitions, 0, 'no illegal phase transition');
    bed?.engine.stop();
    bed = undefined;
  });

  it('the phase table is closed: every phase a transition names exists, closed is terminal', () => {
    for (const [from, tos] of Object.entries(TRANSITIONS)) for (const to of tos) assert.ok(to in TRANSITIONS, `${from} → ${to}`);
    assert.deepEqual(TRANSITIONS.closed, []);
    assert.equal(allowed('closing', 'forwarded'), false);
  });

  it('handshake: SYN, SYN-ACK and ACK pass through the controller; the first data segment is held', async () => {
    bed = await EngineBed.create();
    bed.from(CLIENT, S1, { flags: { syn: true }, seq: ISN, options: SYN_OPTIONS });
    const [syn] = outputs(bed.sw.take());
    assert.deepEqual([syn.ports, syn.tcp?.flags, syn.tcp?.dst], [[S1.ofport], 'syn', `${S1.ip}:${S1.port}`]);
    bed.from(S1, CLIENT, { flags: { syn: true, ack: true }, seq: S1_ISN, ack: ISN + 1 });
    assert.deepEqual(outputs(bed.sw.take()).map((o) => o.ports), [[CLIENT.ofport]]);
    bed.from(CLIENT, S1, { flags: { ack: true }, seq: ISN + 1, ack: S1_ISN + 1 });
    const id = bed.engine.connections()[0].id;
    assert.equal(bed.conn(id)?.phase, 'established');
    bed.sw.take();
    bed.from(CLIENT, S1, HELD);
    assert.equal(bed.conn(id)?.phase, 'held');
    assert.equal(bed.count('held'), 1);
    await closeAndCheckGone(bed, id);
  });

  for (const releaseBeforeBarrier of [true, false]) {
    it(`server 2 sending before the barrier reply is back (a server that speaks first, or closes at once): its segment takes the new flows (releaseBeforeBarrier ${releaseBeforeBarrier})`, async () => {
      bed = await EngineBed.create({ opts: { releaseBeforeBarrier } });
      const id = await replaying(bed);
      bed.sw.take();
      const migrated = bed.waitEvent('migrated');
      bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
      // Released right behind the Flow-Mods, or only once the barrier's reply is back.
      assert.equal(bed.conn(id)?.phase, releaseBeforeBarrier ? 'forwarded' : 'replaying', 'the barrier reply is not back yet');
      assert.equal(outputs(bed.sw.sent).some((o) => o.tcp?.payload === 'hello'), releaseBeforeBarrier, 'the held segment');
      // Server 2's answer, caught by a stale intercept megaflow, while the controller still waits.
      bed.from(S2, CLIENT, { flags: { ack: true, psh: true }, seq: S2_ISN + 1, ack: ISN + 6, payload: 'world' });
      assert.deepEqual(outputs(bed.sw.take()).filter((o) => o.tcp?.payload === 'world').map((o) => [o.ports, o.inPort]), [[[CONN_TABLE], S2.ofport]], 'not dropped: through the new flows');
      await migrated;
      assert.equal(bed.conn(id)?.phase, 'forwarded');
    });
  }

  it('a next move started while the last one\'s flows await confirmation keeps its own state (the held segment went out first)', async () => {
    bed = await EngineBed.create();
    const id = await held(bed);
    let open!: () => void;
    bed.sw.barrierGate = new Promise((r) => { open = r; });
    bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
    await tick();
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
    assert.equal(bed.conn(id)?.phase, 'forwarded', 'released, the barrier not confirmed yet');
    // The client answered at once and the operator moves it on, before the switch confirms.
    await bed.engine.migrate(id, 'server3');
    assert.equal(bed.conn(id)?.phase, 'freezing');
    const migrated = bed.waitEvent('migrated');
    bed.sw.barrierGate = undefined;
    open();
    await migrated;
    bed.sw.take();
    // The next data segment is the new move's boundary: replayed to server 3.
    bed.from(CLIENT, S1, { flags: { ack: true, psh: true }, seq: ISN + 6, ack: S1_ISN + 1, payload: 'again' });
    await tick();
    assert.deepEqual(outputs(bed.sw.take()).filter((o) => o.tcp?.flags === 'syn').map((o) => [o.tcp?.dst, o.tcp?.seq]), [[`${S3.ip}:${S3.port}`, ISN + 5]]);
    assert.equal(bed.conn(id)?.phase, 'replaying');
  });

  it('releaseBeforeBarrier: the held segment follows the Flow-Mods on the channel, before the barrier', async () => {
    bed = await EngineBed.create();
    const id = await held(bed);
    await forwardOn(bed, id);
    const kinds = bed.sw.take().map((m) => (m.type === 'flow_mod' ? m.command : m.type === 'packet_out' ? 'packet_out' : m.type));
    assert.deepEqual(kinds, ['add', 'add', 'packet_out']);
  });

  it('a FIN sent again while closing (the first lost after the switch copied it) keeps the flows: the grace starts over', async () => {
    bed = await EngineBed.create({ opts: { closeGraceMs: 60 } });
    const id = await migratedToS2(bed);
    bed.sw.take();
    const COPY = interceptCookie(0, INTERCEPT_ROLE.flagCopy);
    bed.from(CLIENT, S1, { flags: { fin: true, ack: true }, seq: ISN + 6, ack: S1_ISN + 1 }, COPY);
    bed.from(S2, CLIENT, { flags: { fin: true, ack: true }, seq: S2_ISN + 1, ack: ISN + 7 }, COPY);
    assert.equal(bed.conn(id)?.phase, 'closing');
    const closed = bed.waitEvent('conn_closed');
    const start = Date.now();
    // Server 2 sends its FIN again twice, 40 ms apart: each copy restarts the 60 ms grace.
    for (let i = 0; i < 2; i++) {
      await new Promise((r) => setTimeout(r, 40));
      assert.equal(bed.conn(id)?.phase, 'closing', 'still closing: the flows must carry the retransmitted FIN');
      bed.from(S2, CLIENT, { flags: { fin: true, ack: true }, seq: S2_ISN + 1, ack: ISN + 7 }, COPY);
    }
    await closed;
    assert.ok(Date.now() - start >= 80 + 60 - 5, 'closed only a grace after the last FIN');
    // The flows outlive the controller's grace: closing flows the switch removes once it is quiet.
    ScriptedSwitch.assertClosingFlows(bed.sw.take(), id, 60);
  });

  it('relayed (stock switch): kept while closing as long as its closing flows live, restarted by any segment it relays', async () => {
    bed = await EngineBed.create({ patched: false, opts: { closeGraceMs: 60 } });
    const id = await migratedToS2(bed);
    assert.equal(bed.conn(id)?.mode, 'relay');
    bed.sw.take();
    const RELAY = connCookie(id);
    bed.from(CLIENT, S1, { flags: { fin: true, ack: true }, seq: ISN + 6, ack: S1_ISN + 1 }, RELAY);
    bed.from(S2, CLIENT, { flags: { fin: true, ack: true }, seq: S2_ISN + 1, ack: ISN + 7 }, RELAY);
    assert.equal(bed.conn(id)?.phase, 'closing');
    const closing = bed.sw.take();
    ScriptedSwitch.assertClosingFlows(closing, id, 60);
    const adds = closing.filter((m): m is FlowMod => m.type === 'flow_mod' && m.command === 'add');
    assert.ok(adds.every((m) => JSON.stringify(m.instructions).includes(`"port":${OFPP.CONTROLLER}`)), 'relay flows: to the controller');
    const closed = bed.waitEvent('conn_closed');
    const start = Date.now();
    // The client's FIN again, then the last ACK, 40 ms apart: each is relayed and restarts the 60 ms grace.
    for (const flags of [{ fin: true, ack: true }, { ack: true }]) {
      await new Promise((r) => setTimeout(r, 40));
      assert.equal(bed.conn(id)?.phase, 'closing');
      bed.from(CLIENT, S1, { flags, seq: ISN + 6 + (flags.fin ? 0 : 1), ack: S1_ISN + 2 }, RELAY);
      assert.equal(outputs(bed.sw.take()).length, 1, 'relayed to server 2');
    }
    await closed;
    // A relayed connection needs the controller as long as its closing flows live: whole seconds.
    assert.ok(Date.now() - start >= 80 + closingIdleTimeout(60) * 1000 - 5, 'closed only a closing-flow lifetime after the last relayed segment');
  });

  it('FIN/RST copies (the service\'s flows in table 0) are consumed, never forwarded, and close a connection only through its current ends', async () => {
    bed = await EngineBed.create();
    const id = await migratedToS2(bed);
    bed.sw.take();
    const COPY = interceptCookie(0, INTERCEPT_ROLE.flagCopy);
    // Server 1, which the connection left, resets its old half: not one of the connection's ends any more.
    assert.equal(bed.from(S1, CLIENT, { flags: { rst: true }, seq: S1_ISN + 1 }, COPY), true, 'a copy is consumed');
    assert.equal(bed.conn(id)?.phase, 'forwarded');
    // A copy of a connection nobody tracks: consumed as well (the switch carries the packet on itself).
    assert.equal(bed.from({ ...CLIENT, port: CLIENT.port + 1 }, S1, { flags: { fin: true, ack: true }, seq: 5, ack: 9 }, COPY), true);
    bed.from(CLIENT, S1, { flags: { fin: true, ack: true }, seq: ISN + 6, ack: S1_ISN + 1 }, COPY);
    assert.equal(bed.conn(id)?.tcp.client, 'FIN_WAIT_1');
    const closed = bed.waitEvent('conn_closed');
    // Server 2's FIN, in its own sequence space, as the copy sees it before the shift.
    bed.from(S2, CLIENT, { flags: { fin: true, ack: true }, seq: S2_ISN + 1, ack: ISN + 7 }, COPY);
    assert.equal(bed.conn(id)?.phase, 'closing');
    assert.deepEqual(outputs(bed.sw.take()), [], 'no copy goes anywhere');
    await closed;
  });

  it('MIGRATE: replays the SYN to server 2, answers its SYN-ACK, installs shifted flows, releases the segment, resets server 1', async () => {
    bed = await EngineBed.create();
    const id = await replaying(bed);
    const [replay] = outputs(bed.sw.take());
    assert.deepEqual(replay, { ports: [S2.ofport], inPort: CLIENT.ofport, tcp: { src: `${CLIENT.ip}:${CLIENT.port}`, dst: `${S2.ip}:${S2.port}`, seq: ISN, ack: 0, flags: 'syn', payload: '' } });
    assert.equal(bed.conn(id)?.phase, 'replaying');
    const migrated = bed.waitEvent('migrated');
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
    await migrated;
    const sent = bed.sw.take();
    const outs = outputs(sent);
    assert.deepEqual(outs[0].tcp, { src: `${CLIENT.ip}:${CLIENT.port}`, dst: `${S2.ip}:${S2.port}`, seq: ISN + 1, ack: S2_ISN + 1, flags: 'ack', payload: '' }, 'the ACK to server 2');
    assert.deepEqual([outs[1].ports, outs[1].tcp?.payload], [[CONN_TABLE], 'hello'], 'the held segment, through the new flows');
    assert.deepEqual([outs[2].ports, outs[2].tcp?.dst, outs[2].tcp?.flags, outs[2].tcp?.seq], [[S1.ofport], `${S1.ip}:${S1.port}`, 'rst', ISN + 1], 'server 1 reset at its RCV.NXT');
    const adds = sent.filter((m) => m.type === 'flow_mod' && m.command === 'add');
    assert.equal(adds.length, 2);
    const view = bed.conn(id)!;
    assert.deepEqual([view.phase, view.backend, view.ackDelta, view.migrations], ['forwarded', 'server2', (S2_ISN + 1) - (S1_ISN + 1), 1]);
    // The RST to server 1 is repeated (a lost one would leave its socket for ever), identical.
    await new Promise((r) => setTimeout(r, RESET_REPEAT_MS[RESET_REPEAT_MS.length - 1] + 100));
    const repeats = outputs(bed.sw.take()).filter((o) => o.tcp?.flags === 'rst' && o.tcp.dst === `${S1.ip}:${S1.port}`);
    assert.deepEqual(repeats.map((o) => o.tcp!.seq), RESET_REPEAT_MS.map(() => ISN + 1));
    await closeAndCheckGone(bed, id);
  });

  it('FORWARD: flows to server 1 and the held segment released through them', async () => {
    bed = await EngineBed.create();
    const id = await held(bed);
    await forwardOn(bed, id);
    const sent = bed.sw.take();
    assert.equal(sent.filter((m) => m.type === 'flow_mod' && m.command === 'add' && m.priority === PRIORITY.connection).length, 2);
    assert.deepEqual(outputs(sent).map((o) => [o.ports, o.tcp?.payload]), [[[CONN_TABLE], 'hello']]);
    await closeAndCheckGone(bed, id);
  });

  it('table keys: server 1 at the service address has no backend key (the client key reversed finds it); a migrated connection keeps server 2\'s only, and server 1\'s late segments still never reach the client', async () => {
    bed = await EngineBed.create();
    const fwd = await held(bed);
    await forwardOn(bed, fwd);
    assert.deepEqual(bed.engine.table.sizes(), { connections: 1, clientKeys: 1, backendKeys: 0, halfOpen: 0, halfOpenSources: 0 });
    bed.sw.take();
    // Server 1's segment (before its flows took over, say) is still the connection's: passed on through them.
    bed.from(S1, CLIENT, { flags: { ack: true, psh: true }, seq: S1_ISN + 1, ack: ISN + 6, payload: 'hi' });
    assert.deepEqual(outputs(bed.sw.take()).map((o) => [o.ports, o.tcp?.payload]), [[[CONN_TABLE], 'hi']]);
    await closeAndCheckGone(bed, fwd);

    const id = await migratedToS2(bed);
    assert.deepEqual(bed.engine.table.sizes(), { connections: 1, clientKeys: 1, backendKeys: 1, halfOpen: 0, halfOpenSources: 0 });
    bed.sw.take();
    bed.from(S1, CLIENT, { flags: { ack: true, psh: true }, seq: S1_ISN + 1, ack: ISN + 6, payload: 'late' });
    assert.ok(!outputs(bed.sw.take()).some((o) => o.tcp?.payload === 'late'), 'server 1, retired, never reaches the client');
    assert.equal(bed.conn(id)?.backend, 'server2');
    await closeAndCheckGone(bed, id);
  });

  it(`target silent: ${REPLAY_TRIES} replayed SYNs, then migration_failed and the connection stays on server 1`, async () => {
    bed = await EngineBed.create();
    const id = await held(bed);
    const failed = bed.waitEvent('migration_failed');
    bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
    const [, info] = await failed as [unknown, { why: string }];
    assert.match(info.why, /no SYN-ACK from server2 after 3 SYNs/);
    await tick();
    const sent = bed.sw.take();
    const outs = outputs(sent);
    assert.equal(outs.filter((o) => o.tcp?.flags === 'syn' && o.tcp.dst === `${S2.ip}:${S2.port}`).length, REPLAY_TRIES);
    // From the first retry on, server 2's SYN-ACKs have a flow of the connection's own (a stale
    // datapath flow from an earlier leg could swallow them): one, not one per retry.
    const legs = sent.filter((m): m is FlowMod => m.type === 'flow_mod' && m.cookie === connCookie(id, CONN_ROLE.leg));
    assert.equal(legs.length, 1);
    // It outlives the retries (replayTimeoutMs 40 ms here: 40 + 80 ms), in whole seconds.
    assert.deepEqual([legs[0]!.command, legs[0]!.priority, legs[0]!.hardTimeout, legs[0]!.match], ['add', PRIORITY.leg, 2,
      { ethType: 0x0800, ipProto: 6, ipv4Src: S2.ip, ipv4Dst: CLIENT.ip, tcpSrc: S2.port, tcpDst: CLIENT.port, tcpFlags: { value: 0x02, mask: 0x02 } }]);
    assert.ok(sent.indexOf(legs[0]!) > sent.findIndex((m) => m.type === 'packet_out'), 'not before the first SYN: a first answer needs none');
    assert.deepEqual(outs.filter((o) => o.tcp?.payload === 'hello').map((o) => o.ports), [[CONN_TABLE]], 'held segment released to server 1');
    assert.deepEqual([bed.conn(id)?.phase, bed.conn(id)?.backend], ['forwarded', 'server1']);
    // Server 2's late SYN-ACK must never reach the client.
    bed.sw.take();
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1 });
    assert.deepEqual(outputs(bed.sw.take()), []);
    assert.equal(bed.engine.stats.droppedStray, 1);
    await closeAndCheckGone(bed, id);
  });

  it('target refuses (RST): migration_failed, the segment goes to server 1', async () => {
    bed = await EngineBed.create();
    const id = await replaying(bed);
    const failed = bed.waitEvent('migration_failed');
    bed.from(S2, CLIENT, { flags: { rst: true, ack: true }, seq: 0, ack: ISN + 1 });
    const [, info] = await failed as [unknown, { why: string }];
    assert.match(info.why, /refused the connection \(RST\)/);
    await tick();
    assert.deepEqual(outputs(bed.sw.take()).filter((o) => o.tcp?.payload === 'hello').map((o) => o.ports), [[CONN_TABLE]]);
    assert.equal(bed.conn(id)?.backend, 'server1');
    await closeAndCheckGone(bed, id);
  });

  it('target not found by ARP: a probe is flooded, then migration_failed', async function () {
    this.timeout(5000);
    bed = await EngineBed.create({ service: { backends: [
      { name: 'server1', address: S1.ip, port: S1.port, mac: S1.mac, switchPort: S1.ofport },
      { name: 'server2', address: S2.ip, port: S2.port },
    ] } });
    const id = await held(bed);
    const failed = bed.waitEvent('migration_failed', 4000);
    bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
    const probe = bed.sw.packetOuts()[0];
    assert.deepEqual(probe.actions, [{ type: 'output', port: OFPP.FLOOD }]);
    assert.equal(probe.data.readUInt16BE(12), 0x0806, 'an ARP request');
    const [, info] = await failed as [unknown, { why: string }];
    assert.match(info.why, /did not answer ARP/);
    await tick();
    assert.equal(bed.conn(id)?.phase, 'forwarded');
    await closeAndCheckGone(bed, id);
  });

  it('the switch refuses the flows of a FORWARD (releasing after the barrier): the held segment still goes on to server 1 and the flows are retried by the stray path', async () => {
    bed = await EngineBed.create({ opts: { releaseBeforeBarrier: false } });
    const id = await held(bed);
    bed.sw.refuse = () => new OpenFlowError(OFPET.BAD_REQUEST, OFPBRC.EPERM, Buffer.alloc(0));
    bed.engine.verdict(id, { verdict: 'FORWARD', source: 'test' });
    await tick(); await tick();
    const outs = outputs(bed.sw.take());
    assert.deepEqual(outs.map((o) => [o.ports, o.tcp?.payload]), [[[S1.ofport], 'hello']], 'released straight to server 1');
    assert.equal(bed.conn(id)?.phase, 'forwarded');
    bed.sw.refuse = undefined;
    for (let i = 0; i < 16; i++) bed.from(CLIENT, S1, { flags: { ack: true }, seq: ISN + 6, ack: S1_ISN + 1 });
    await tick();
    assert.ok(bed.sw.flowMods().some((m) => m.command === 'add' && m.cookie === connCookie(id)), 'flows installed once the switch accepts them');
    await closeAndCheckGone(bed, id);
  });

  it('the switch refuses the flows of a FORWARD (released before the barrier): the segment that comes back through the intercept flow goes straight to server 1, not round again; the flows are retried', async () => {
    bed = await EngineBed.create();
    const id = await held(bed);
    bed.sw.refuse = () => new OpenFlowError(OFPET.BAD_REQUEST, OFPBRC.EPERM, Buffer.alloc(0));
    bed.engine.verdict(id, { verdict: 'FORWARD', source: 'test' });
    await tick(); await tick();
    assert.deepEqual(outputs(bed.sw.take()).map((o) => [o.ports, o.tcp?.payload]), [[[CONN_TABLE], 'hello']], 'sent right behind the (refused) Flow-Mods');
    assert.equal(bed.conn(id)?.phase, 'forwarded');
    // Without flows it reaches the intercept flow and comes back: passed on, never to the table again.
    bed.from(CLIENT, S1, HELD);
    assert.deepEqual(outputs(bed.sw.take()).map((o) => [o.ports, o.tcp?.payload]), [[[S1.ofport], 'hello']]);
    bed.sw.refuse = undefined;
    for (let i = 0; i < 16; i++) bed.from(CLIENT, S1, { flags: { ack: true }, seq: ISN + 6, ack: S1_ISN + 1 });
    await tick();
    assert.ok(bed.sw.flowMods().some((m) => m.command === 'add' && m.cookie === connCookie(id)), 'flows installed once the switch accepts them');
    assert.ok(outputs(bed.sw.sent).every((o) => !o.ports.includes(CONN_TABLE)), 'nothing sent round the table while the flows are missing');
    await closeAndCheckGone(bed, id);
  });

  it('a client RST during the replay: the move fails, the connection closes, the held segment is not released', async () => {
    bed = await EngineBed.create();
    const id = await replaying(bed);
    bed.sw.take();
    const closed = bed.waitEvent('conn_closed');
    bed.from(CLIENT, S1, { flags: { rst: true }, seq: ISN + 6 });
    assert.equal(bed.conn(id)?.phase, 'closing');
    await tick();
    assert.equal(bed.conn(id)?.phase, 'closing', 'still closing after the flows were restored');
    await closed;
    assert.deepEqual(outputs(bed.sw.take()).filter((o) => o.tcp?.payload === 'hello'), [], 'nothing held was released after the RST');
    assert.equal(bed.engine.table.size, 0);
  });

  it('server 1 resetting the connection during a first-segment replay (its copy and the segment itself): the move goes on to server 2, the client never sees the RST', async () => {
    bed = await EngineBed.create();
    const id = await replaying(bed);
    bed.sw.take();
    // Server 1's application closed its listener, say, and its kernel resets what was in the accept queue.
    const rst = { flags: { rst: true, ack: true }, seq: S1_ISN + 1, ack: ISN + 1 };
    bed.from(S1, CLIENT, rst, interceptCookie(0, INTERCEPT_ROLE.flagCopy));
    bed.from(S1, CLIENT, rst);
    assert.equal(bed.conn(id)?.phase, 'replaying', 'the move goes on');
    assert.ok(!outputs(bed.sw.take()).some((o) => o.ports.includes(CLIENT.ofport)), 'nothing of server 1 reaches the client');
    const migrated = bed.waitEvent('migrated');
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
    await migrated;
    assert.deepEqual(outputs(bed.sw.take()).filter((o) => o.tcp?.payload === 'hello').map((o) => o.ports), [[CONN_TABLE]], 'the held segment goes on, to server 2');
    assert.deepEqual([bed.conn(id)?.phase, bed.conn(id)?.backend, bed.engine.stats.migrationFailures], ['forwarded', 'server2', 0]);
    await closeAndCheckGone(bed, id);
  });

  it(`segments behind the held one queue (at most ${MAX_QUEUE}) and follow it in order`, async () => {
    bed = await EngineBed.create();
    const id = await held(bed);
    for (let i = 0; i < MAX_QUEUE + 8; i++) bed.from(CLIENT, S1, { flags: { ack: true, psh: true }, seq: ISN + 6 + i, ack: S1_ISN + 1, payload: String.fromCharCode(65 + (i % 26)) });
    bed.from(CLIENT, S1, { ...HELD, payload: 'hello, longer' }); // a retransmission of the held one, longer: kept instead
    assert.deepEqual(bed.sw.take(), []);
    await forwardOn(bed, id);
    const outs = outputs(bed.sw.take());
    assert.equal(outs.length, 1 + MAX_QUEUE);
    assert.equal(outs[0].tcp?.payload, 'hello, longer');
    assert.deepEqual(outs.slice(1).map((o) => o.tcp!.seq), Array.from({ length: MAX_QUEUE }, (_, i) => ISN + 6 + i));
    await closeAndCheckGone(bed, id);
  });

  it('a full table: new SYNs are dropped (never forwarded unanalysed), counted; whenFull=forward leaves them to plain forwarding', async () => {
    bed = await EngineBed.create({ opts: { maxConnections: 1 } });
    const id = bed.handshake();
    bed.sw.take();
    assert.equal(bed.from({ ...CLIENT, port: 40001 }, S1, { flags: { syn: true }, seq: 7 }), true, 'claimed: the learning switch must not forward it');
    assert.deepEqual(bed.sw.take(), [], 'and dropped');
    assert.equal(bed.engine.stats.refusedFull, 1);
    await closeAndCheckGone(bed, id);
    bed.engine.stop();
    bed = await EngineBed.create({ opts: { maxConnections: 1, whenFull: 'forward' } });
    const id2 = bed.handshake();
    assert.equal(bed.from({ ...CLIENT, port: 40001 }, S1, { flags: { syn: true }, seq: 7 }), false);
    assert.equal(bed.engine.stats.refusedFull, 1);
    await closeAndCheckGone(bed, id2);
  });

  it('a handshake that never completes is dropped after handshakeTimeoutMs', async () => {
    bed = await EngineBed.create({ opts: { handshakeTimeoutMs: 30 } });
    const closed = bed.waitEvent('conn_closed');
    bed.from(CLIENT, S1, { flags: { syn: true }, seq: ISN });
    const [, why] = await closed;
    assert.equal(why, 'handshake did not complete');
    assert.equal(bed.engine.table.size, 0);
  });

  it('an idle FLOW_REMOVED frees a forwarded connection', async () => {
    bed = await EngineBed.create();
    const id = await held(bed);
    await forwardOn(bed, id);
    bed.engine.flowRemoved(bed.sw.asChannel(), { type: 'flow_removed', xid: 0, cookie: connCookie(id), priority: PRIORITY.connection, reason: 0, tableId: 0, durationSec: 1, durationNsec: 0, idleTimeout: 60, hardTimeout: 0, packetCount: 0n, byteCount: 0n, match: {} });
    assert.equal(bed.engine.table.size, 0);
  });

  it('a new SYN on the same 4-tuple replaces the old connection', async () => {
    bed = await EngineBed.create();
    const id = bed.handshake();
    bed.from(CLIENT, S1, { flags: { syn: true }, seq: 777 });
    const now = bed.engine.connections();
    assert.equal(now.length, 1);
    assert.notEqual(now[0].id, id);
    assert.equal(now[0].phase, 'handshake');
    assert.ok(bed.events.some((e) => e.name === 'conn_closed' && (e.args[0] as { id: number }).id === id));
  });

  it('a duplicate alert is applied once; sidBackends choose the target', async () => {
    bed = await EngineBed.create({ service: { sidBackends: { 1000003: 'server3' } } });
    const id = await held(bed);
    const flow = { srcIp: CLIENT.ip, srcPort: CLIENT.port, dstIp: S1.ip, dstPort: S1.port };
    bed.engine.verdictForFlow(flow, { verdict: 'MIGRATE', source: 'snort', sid: 1000003, seq: ISN + 1 });
    bed.engine.verdictForFlow(flow, { verdict: 'MIGRATE', source: 'snort', sid: 1000003, seq: ISN + 1 });
    assert.equal(bed.engine.stats.alertsDuplicate, 1);
    assert.equal(bed.count('verdict'), 1);
    await tick();
    const [replay] = outputs(bed.sw.take());
    assert.equal(replay.tcp?.dst, `${S3.ip}:${S3.port}`);
    const migrated = bed.waitEvent('migrated');
    bed.from(S3, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
    await migrated;
    assert.equal(bed.conn(id)?.backend, 'server3');
    await closeAndCheckGone(bed, id);
  });

  for (const policy of ['refuse', 'warn'] as const) {
    it(`a target with another window scale: ${policy === 'refuse' ? 'refused (RST to the target), stays on server 1' : 'migrates anyway (policy warn)'}`, async () => {
      bed = await EngineBed.create({ service: { options: { mismatch: policy } } });
      const id = await replaying(bed);
      bed.sw.take();
      const done = bed.waitEvent(policy === 'refuse' ? 'migration_failed' : 'migrated');
      bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: [{ kind: 'mss', value: 1460 }, { kind: 'wscale', shift: 9 }] });
      await done;
      await tick();
      const outs = outputs(bed.sw.take());
      if (policy === 'refuse') {
        assert.ok(outs.some((o) => o.tcp?.flags === 'rst' && o.tcp.dst === `${S2.ip}:${S2.port}` && o.tcp.seq === ISN + 1), 'RST to server 2');
        assert.equal(bed.conn(id)?.backend, 'server1');
      } else assert.equal(bed.conn(id)?.backend, 'server2');
      await closeAndCheckGone(bed, id);
    });
  }

  it('midStream false: a forwarded connection cannot be moved (409)', async () => {
    bed = await EngineBed.create({ service: { midStream: false } });
    const id = await held(bed);
    await forwardOn(bed, id);
    await assert.rejects(bed.engine.migrate(id, 'server2'), (e: Error & { status?: number }) => e.status === 409 && /does not allow mid-stream/.test(e.message));
    await closeAndCheckGone(bed, id);
  });

  it('mid-stream: freeze flow, the next data segment is the boundary, the move composes with the current delta', async () => {
    bed = await EngineBed.create();
    const id = await held(bed);
    await forwardOn(bed, id);
    bed.sw.take();
    await bed.engine.migrate(id, 'server2');
    assert.equal(bed.conn(id)?.phase, 'freezing');
    assert.ok(bed.sw.flowMods().some((m) => m.priority === PRIORITY.freezePush && m.cookie === connCookie(id, CONN_ROLE.freeze) && JSON.stringify(m.match.tcpFlags) === JSON.stringify({ value: 0x08, mask: 0x08 })), 'PSH segments to the controller');
    assert.ok(bed.sw.flowMods().some((m) => m.priority === PRIORITY.freeze && m.cookie === connCookie(id, CONN_ROLE.freezeCopy)), 'the rest forwarded with a copy');
    bed.sw.take();
    // The next request, after server 1 answered "hello" with 6 bytes.
    bed.from(CLIENT, S1, { flags: { ack: true, psh: true }, seq: ISN + 6, ack: S1_ISN + 7, payload: 'again' }, connCookie(id, CONN_ROLE.freeze));
    await tick();
    const [replay] = outputs(bed.sw.take());
    assert.deepEqual([replay.tcp?.dst, replay.tcp?.seq], [`${S2.ip}:${S2.port}`, ISN + 5]);
    const migrated = bed.waitEvent('migrated');
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 6, options: SYN_OPTIONS });
    await migrated;
    assert.equal(bed.conn(id)?.ackDelta, (S2_ISN + 1 - (S1_ISN + 7)) >>> 0);
    assert.ok(bed.sw.flowMods().some((m) => m.command === 'delete' && m.cookie === connCookie(id)), 'old flows (and the freeze flow) replaced');
    assert.ok(!bed.sw.flowMods().some((m) => m.cookie === connCookie(id, CONN_ROLE.leg)), 'a first leg to server 2 needs no leg flow');
    // Back to server 1, then to server 2 again: that leg's addresses were used before, so its
    // flow goes in with the freeze (and shares its wait for the revalidators).
    for (const [target, node, seq] of [['server1', S1, ISN + 11], ['server2', S2, ISN + 16]] as const) {
      bed.sw.take();
      await bed.engine.migrate(id, target);
      const leg: FlowMod[] = bed.sw.flowMods().filter((m) => m.cookie === connCookie(id, CONN_ROLE.leg));
      assert.deepEqual(leg.map((m: FlowMod) => [m.match.ipv4Src, m.match.tcpSrc]), [[node.ip, node.port]], `moving back to ${target}: its leg flow with the freeze`);
      const moved = bed.waitEvent('migrated');
      bed.from(CLIENT, S1, { flags: { ack: true, psh: true }, seq, ack: S1_ISN + 7, payload: 'again' }, connCookie(id, CONN_ROLE.freeze));
      await tick();
      bed.from(node, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN + 1000, ack: seq, options: SYN_OPTIONS });
      await moved;
    }
    await closeAndCheckGone(bed, id);
  });

  it('a switch that disconnects: held segments are given up (the client retransmits), flows reinstalled when it returns empty', async () => {
    bed = await EngineBed.create();
    const fwdId = await held(bed);
    await forwardOn(bed, fwdId);
    const heldId = bed.handshake({ ...CLIENT, port: 40010 });
    bed.from({ ...CLIENT, port: 40010 }, S1, HELD);
    assert.equal(bed.conn(heldId)?.phase, 'held');
    bed.sw.connected = false;
    bed.engine.switchGone(bed.sw.asChannel(), 'test');
    assert.deepEqual([bed.conn(fwdId)?.phase, bed.conn(heldId)?.phase], ['forwarded', 'established']);
    bed.sw.connected = true;
    bed.sw.take();
    const reconciled = bed.waitEvent('reconciled');
    await bed.engine.switchReady(bed.sw.asChannel(), []);
    const [, counts] = await reconciled as [string, Record<string, number>];
    assert.deepEqual(counts, { adopted: 0, kept: 0, reinstalled: 1, dropped: 0 });
    assert.equal(bed.sw.flowMods().filter((m) => m.command === 'add' && m.cookie === connCookie(fwdId)).length, 2);
    // The held segment comes again and is held again (no analyzer step is skipped).
    bed.from({ ...CLIENT, port: 40010 }, S1, HELD);
    assert.equal(bed.conn(heldId)?.phase, 'held');
  });

  it('the RST that frees server 1 is repeated through the switch\'s new channel when the old one dropped right after the move', async () => {
    bed = await EngineBed.create();
    await migratedToS2(bed);
    // The channel drops at once: the first RST may have been lost with it, and every repeat falls due while the switch is away.
    bed.sw.connected = false;
    bed.engine.switchGone(bed.sw.asChannel(), 'test');
    await new Promise((r) => setTimeout(r, RESET_REPEAT_MS[RESET_REPEAT_MS.length - 1] + 300));
    bed.sw.connected = true;
    bed.sw.take();
    const reconciled = bed.waitEvent('reconciled');
    await bed.engine.switchReady(bed.sw.asChannel(), []);
    await reconciled;
    await new Promise((r) => setTimeout(r, 400));
    const rsts = outputs(bed.sw.take()).filter((o) => o.tcp?.flags === 'rst' && o.tcp.dst === `${S1.ip}:${S1.port}`);
    assert.ok(rsts.length >= 1, 'server 1 gets its RST once the switch is back');
    assert.deepEqual(rsts.map((o) => [o.ports, o.tcp?.seq]), rsts.map(() => [[S1.ofport], ISN + 1]), "at server 1's RCV.NXT");
  });

  for (const releaseBeforeBarrier of [true, false]) {
    it(`the channel dropping before the switch confirmed a move's flows: the move stands, and server 1 gets its RST through the new channel (releaseBeforeBarrier ${releaseBeforeBarrier})`, async () => {
      bed = await EngineBed.create({ opts: { releaseBeforeBarrier } });
      const b = bed;
      const id = await held(b);
      // As SwitchConnection does when its socket closes: the pending barrier is rejected, then 'close' (switchGone).
      const drop = () => { b.sw.connected = false; b.engine.switchGone(b.sw.asChannel(), 'test'); return new Error('switch disconnected'); };
      let fail: ((e: Error) => void) | undefined;
      if (releaseBeforeBarrier) b.sw.barrierGate = new Promise((_, reject) => { fail = reject; });
      b.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
      await tick();
      // Server 2's SYN-ACK: the flows go out (the held segment right behind them, or once they are confirmed) ...
      if (!releaseBeforeBarrier) b.sw.refuse = drop;
      b.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
      const sent = b.sw.take();
      // ... and the channel drops before the switch's confirmation is back.
      fail?.(drop());
      await tick();
      assert.equal(b.sw.connected, false, 'the channel dropped before the barrier\'s reply');
      b.sw.barrierGate = undefined;
      b.sw.refuse = undefined;
      assert.equal(b.engine.stats.migrationFailures, 0, 'not taken for a failed move: the connection is on server 2 in memory');
      assert.deepEqual([b.count('migration_failed'), b.count('migrated')], [0, 1], 'reported as the move it is, not as a failed one');
      assert.deepEqual([b.conn(id)?.backend, b.conn(id)?.phase], ['server2', 'forwarded']);
      // Every repeat falls due while the switch is away; none may be given up.
      await new Promise((r) => setTimeout(r, RESET_REPEAT_MS[RESET_REPEAT_MS.length - 1] + 300));
      b.sw.connected = true;
      const flows = asFlowStats(sent.filter((m): m is FlowMod => m.type === 'flow_mod' && m.command === 'add' && connIdOf(m.cookie) === id));
      const reconciled = b.waitEvent('reconciled');
      await b.engine.switchReady(b.sw.asChannel(), flows);
      await reconciled;
      await new Promise((r) => setTimeout(r, RESET_REPEAT_MS[RESET_REPEAT_MS.length - 1] + 300));
      const rsts = outputs(b.sw.take()).filter((o) => o.tcp?.flags === 'rst' && o.tcp.dst === `${S1.ip}:${S1.port}`);
      assert.ok(rsts.length >= 1, 'server 1 gets its RST once the switch is back');
      assert.deepEqual(rsts.map((o) => [o.ports, o.tcp?.seq]), rsts.map(() => [[S1.ofport], ISN + 1]), "at server 1's RCV.NXT");
      assert.equal(b.conn(id)?.backend, 'server2');
    });
  }

  it('a controller that adopts a migrated connection resets the backend it left (its predecessor may have stopped before the RST went out)', async () => {
    bed = await EngineBed.create();
    const id = await migratedToS2(bed);
    const flows = asFlowStats(bed.sw.flowMods().filter((m) => m.command === 'add' && connIdOf(m.cookie) === id));
    bed.engine.stop();
    // A new controller finds only the switch's flows.
    bed = await EngineBed.create({ flows });
    // (create() drops what the switch got while it was set up: the first RST; its first repeat follows.)
    await new Promise((r) => setTimeout(r, RESET_REPEAT_MS[0] + 100));
    const rsts = outputs(bed.sw.take()).filter((o) => o.tcp?.flags === 'rst');
    assert.deepEqual(rsts.map((o) => [o.ports, o.tcp?.dst, o.tcp?.src, o.tcp?.seq]), [[[S1.ofport], `${S1.ip}:${S1.port}`, `${CLIENT.ip}:${CLIENT.port}`, ISN + 1]], "server 1 reset at its RCV.NXT");
    const c = bed.conn(id)!;
    assert.deepEqual([c.phase, c.backend, c.adopted], ['forwarded', 'server2', true]);
    // Server 1's late segments are a left backend's: dropped, never shown to the client.
    const dropped = bed.engine.stats.droppedStray;
    bed.from(S1, CLIENT, { flags: { ack: true, psh: true }, seq: S1_ISN + 1, ack: ISN + 1, payload: 'stale' });
    assert.equal(bed.engine.stats.droppedStray, dropped + 1);
    assert.deepEqual(outputs(bed.sw.take()).filter((o) => o.tcp?.payload === 'stale'), []);
  });

  it('a segment of an unknown connection to a service (held when an earlier controller stopped) is forwarded with flows', async () => {
    bed = await EngineBed.create();
    bed.learning.learnHost(S1.ip, { mac: S1.mac, dpid: '00000000000000a1', port: S1.ofport, seen: Date.now() });
    const fwd = bed.waitEvent('forwarded');
    assert.equal(bed.packetIn(frame(CLIENT, S1, HELD), CLIENT.ofport), true);
    await fwd;
    const c = bed.engine.connections()[0];
    assert.deepEqual([c.phase, c.backend, c.adopted], ['forwarded', 'server1', true]);
    assert.deepEqual(outputs(bed.sw.take()).map((o) => [o.ports, o.tcp?.payload]), [[[CONN_TABLE], 'hello']]);
    // A RST or FIN of an unknown connection is not adopted.
    assert.equal(bed.from({ ...CLIENT, port: 40020 }, S1, { flags: { rst: true }, seq: 1 }), false);
  });
});
