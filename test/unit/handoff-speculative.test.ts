// speculativeReplay on a scripted switch: the handshake to migrateTo opened with the client's SYN
// (reset if server 1 accepts less than it offered), used by a MIGRATE verdict to that backend, reset by anything else, and never a second path
// for data (the prepared leg carries nothing but its SYN until a verdict takes it).
import assert from 'node:assert/strict';
import { EngineBed, CLIENT, S1, S2, S3, SYN_OPTIONS, outputs, CONN_TABLE } from '../lib/scripted-switch.ts';
import { INTERCEPT_ROLE, interceptCookie } from '../../controller/cookies.ts';
import { parseServices } from '../../controller/handoff/service-config.ts';
import { REPLAY_TRIES } from '../../controller/handoff/move.ts';
import { parseFrame } from '../../controller/packet/index.ts';

const ISN = 1000;
const S1_ISN = 5000;
const S2_ISN = 90000;
const HELD = { flags: { ack: true, psh: true }, seq: ISN + 1, ack: S1_ISN + 1, payload: 'hello' };
const tick = () => new Promise((r) => setImmediate(r));
const to = (n: { ip: string; port: number }) => `${n.ip}:${n.port}`;

/** The client's SYN: it goes to server 1 and, prepared, to server 2 at once; then server 1's SYN-ACK (`s1Options`). */
async function prepared(bed: EngineBed, s1Options = SYN_OPTIONS): Promise<number> {
  bed.from(CLIENT, S1, { flags: { syn: true }, seq: ISN, options: SYN_OPTIONS });
  const outs = outputs(bed.sw.take());
  assert.deepEqual(outs.map((o) => o.tcp?.dst), [to(S1), to(S2)], 'server 2\'s leg opens with the SYN, not after server 1\'s SYN-ACK');
  assert.deepEqual(outs[1], { ports: [S2.ofport], inPort: CLIENT.ofport, tcp: { src: to(CLIENT), dst: to(S2), seq: ISN, ack: 0, flags: 'syn', payload: '' } }, 'the client\'s SYN, with its own ISN, to server 2');
  assert.equal(bed.engine.stats.speculativeOpened, 1);
  bed.from(S1, CLIENT, { flags: { syn: true, ack: true }, seq: S1_ISN, ack: ISN + 1, options: s1Options });
  await tick();
  return bed.engine.connections()[0].id;
}

/** What went out since, less server 1's SYN-ACK passed on to the client. */
function sentBesidesSynAck(bed: EngineBed) {
  const outs = outputs(bed.sw.take());
  const synAck = outs.filter((o) => o.tcp?.src === to(S1) && o.tcp.flags === 'ack,syn');
  assert.equal(synAck.length, 1, 'server 1\'s SYN-ACK on to the client');
  return outs.filter((o) => !synAck.includes(o));
}

function holdFirstSegment(bed: EngineBed, id: number, segment = HELD): void {
  bed.from(CLIENT, S1, { flags: { ack: true }, seq: ISN + 1, ack: S1_ISN + 1 });
  bed.from(CLIENT, S1, segment);
  assert.equal(bed.conn(id)?.phase, 'held');
}

describe('speculative replay (scripted switch)', () => {
  let bed: EngineBed | undefined;
  afterEach(() => {
    if (bed) assert.equal(bed.engine.stats.illegalTransitions, 0, 'no illegal phase transition');
    bed?.engine.stop();
    bed = undefined;
  });

  it('off by default: nothing goes to server 2 before a verdict', async () => {
    bed = await EngineBed.create();
    bed.handshake();
    await tick();
    bed.from(CLIENT, S1, HELD);
    await tick();
    assert.deepEqual(outputs(bed.sw.take()).filter((o) => o.tcp?.dst === to(S2)), []);
    assert.equal(bed.engine.stats.speculativeOpened, 0);
  });

  it('MIGRATE after server 2 answered: no second SYN; the ACK, the flows and the held segment go out at once', async () => {
    bed = await EngineBed.create({ service: { speculativeReplay: true } });
    const id = await prepared(bed);
    sentBesidesSynAck(bed);
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
    assert.deepEqual(outputs(bed.sw.take()), [], 'server 2\'s SYN-ACK is kept, not answered (its socket stays out of accept())');
    holdFirstSegment(bed, id);
    bed.sw.take();
    const migrated = bed.waitEvent('migrated');
    bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
    await migrated;
    const sent = bed.sw.take();
    const outs = outputs(sent);
    assert.equal(outs.filter((o) => o.tcp?.flags === 'syn').length, 0, 'no SYN: the prepared leg is the replay');
    assert.deepEqual(outs[0].tcp, { src: to(CLIENT), dst: to(S2), seq: ISN + 1, ack: S2_ISN + 1, flags: 'ack', payload: '' }, 'the ACK to server 2');
    assert.deepEqual([outs[1].ports, outs[1].tcp?.payload], [[CONN_TABLE], 'hello'], 'the held segment, through the new flows');
    assert.deepEqual([outs[2].tcp?.dst, outs[2].tcp?.flags, outs[2].tcp?.seq], [to(S1), 'rst', ISN + 1], 'server 1 reset');
    assert.equal(sent.filter((m) => m.type === 'flow_mod' && m.command === 'add').length, 2);
    const view = bed.conn(id)!;
    assert.deepEqual([view.phase, view.backend, view.ackDelta], ['forwarded', 'server2', (S2_ISN + 1) - (S1_ISN + 1)]);
    assert.deepEqual([bed.engine.stats.speculativeUsed, bed.engine.stats.speculativeAbandoned], [1, 0]);
  });

  it('MIGRATE before server 2 answered: the prepared SYN becomes the replay (retried as one), spliced when the SYN-ACK comes', async () => {
    bed = await EngineBed.create({ service: { speculativeReplay: true } });
    const id = await prepared(bed);
    holdFirstSegment(bed, id);
    bed.sw.take();
    bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
    await tick();
    assert.deepEqual(outputs(bed.sw.take()), [], 'no new SYN right away: the prepared one is on its way');
    assert.equal(bed.conn(id)?.phase, 'replaying');
    // Lost: the replay's retries take over (replayTimeoutMs 40 in the bed).
    await new Promise((r) => setTimeout(r, 60));
    assert.deepEqual(outputs(bed.sw.take()).map((o) => [o.tcp?.dst, o.tcp?.flags, o.tcp?.seq]), [[to(S2), 'syn', ISN]], 'the retry');
    const migrated = bed.waitEvent('migrated');
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
    await migrated;
    assert.equal(bed.conn(id)?.backend, 'server2');
    assert.equal(bed.engine.stats.speculativeUsed, 1);
  });

  it(`a prepared leg server 2 never answers fails the move after ${REPLAY_TRIES} SYNs in all, as a replay does`, async () => {
    bed = await EngineBed.create({ service: { speculativeReplay: true } });
    const id = await prepared(bed);
    holdFirstSegment(bed, id);
    bed.sw.take();
    const failed = bed.waitEvent('migration_failed');
    bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
    await failed;
    const syns = outputs(bed.sw.take()).filter((o) => o.tcp?.dst === to(S2) && o.tcp.flags === 'syn');
    assert.equal(syns.length + 1, REPLAY_TRIES, 'the prepared SYN counts as the first');
    await tick();
    assert.deepEqual([bed.conn(id)?.phase, bed.conn(id)?.backend], ['forwarded', 'server1']);
  });

  it('FORWARD: server 2\'s half-open leg is reset at its RCV.NXT and its late SYN-ACKs are dropped', async () => {
    bed = await EngineBed.create({ service: { speculativeReplay: true } });
    const id = await prepared(bed);
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
    holdFirstSegment(bed, id);
    bed.sw.take();
    const fwd = bed.waitEvent('forwarded');
    bed.engine.verdict(id, { verdict: 'FORWARD', source: 'test' });
    await fwd;
    const outs = outputs(bed.sw.take());
    assert.deepEqual(outs.filter((o) => o.tcp?.dst === to(S2)).map((o) => [o.ports, o.tcp?.flags, o.tcp?.seq]), [[[S2.ofport], 'rst', ISN + 1]]);
    assert.deepEqual(outs.filter((o) => o.tcp?.payload === 'hello').map((o) => o.ports), [[CONN_TABLE]], 'the held segment to server 1\'s flows');
    // Server 2 retransmits its SYN-ACK (the RST crossed it): nothing reaches the client.
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
    assert.deepEqual(outputs(bed.sw.take()), []);
    assert.deepEqual([bed.conn(id)?.phase, bed.conn(id)?.backend], ['forwarded', 'server1']);
    assert.deepEqual([bed.engine.stats.speculativeUsed, bed.engine.stats.speculativeAbandoned], [0, 1]);
  });

  it('MIGRATE to another backend (a rule\'s target): the prepared leg is reset and the replay goes there', async () => {
    bed = await EngineBed.create({ service: { speculativeReplay: true } });
    const id = await prepared(bed);
    holdFirstSegment(bed, id);
    bed.sw.take();
    bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test', target: 'server3' });
    await tick();
    const outs = outputs(bed.sw.take()).map((o) => [o.tcp?.dst, o.tcp?.flags, o.tcp?.seq]);
    assert.deepEqual(outs, [[to(S2), 'rst', ISN + 1], [to(S3), 'syn', ISN]]);
    const migrated = bed.waitEvent('migrated');
    bed.from(S3, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
    await migrated;
    assert.equal(bed.conn(id)?.backend, 'server3');
  });

  it('a first segment that is not the first byte (the one before it lost): the leg is reset and the replay starts where the held one does', async () => {
    bed = await EngineBed.create({ service: { speculativeReplay: true } });
    const id = await prepared(bed);
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
    holdFirstSegment(bed, id, { ...HELD, seq: ISN + 101 });
    bed.sw.take();
    bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
    await tick();
    assert.deepEqual(outputs(bed.sw.take()).map((o) => [o.tcp?.dst, o.tcp?.flags, o.tcp?.seq]), [[to(S2), 'rst', ISN + 1], [to(S2), 'syn', ISN + 100]]);
    // The new leg to the same backend (same addresses as the reset one) completes the move.
    const migrated = bed.waitEvent('migrated');
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN + 7, ack: ISN + 101, options: SYN_OPTIONS });
    await migrated;
    assert.deepEqual([bed.conn(id)?.phase, bed.conn(id)?.backend], ['forwarded', 'server2']);
  });

  it('the client resets while its segment is held: server 2\'s leg is reset too and the table empties', async () => {
    bed = await EngineBed.create({ service: { speculativeReplay: true } });
    const id = await prepared(bed);
    holdFirstSegment(bed, id);
    bed.sw.take();
    const closed = bed.waitEvent('conn_closed');
    bed.from(CLIENT, S1, { flags: { rst: true }, seq: ISN + 6 }, interceptCookie(0, INTERCEPT_ROLE.flagCopy));
    await closed;
    assert.ok(outputs(bed.sw.take()).some((o) => o.tcp?.dst === to(S2) && o.tcp.flags === 'rst' && o.tcp.seq === ISN + 1));
    assert.deepEqual(bed.engine.table.sizes(), { connections: 0, clientKeys: 0, backendKeys: 0, halfOpen: 0, halfOpenSources: 0 });
  });

  it('server 2 refusing the prepared SYN (RST) ends the leg quietly; a MIGRATE then replays afresh', async () => {
    bed = await EngineBed.create({ service: { speculativeReplay: true } });
    const id = await prepared(bed);
    sentBesidesSynAck(bed);
    bed.from(S2, CLIENT, { flags: { rst: true, ack: true }, seq: 0, ack: ISN + 1 });
    assert.deepEqual(outputs(bed.sw.take()), []);
    holdFirstSegment(bed, id);
    bed.sw.take();
    bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
    await tick();
    assert.deepEqual(outputs(bed.sw.take()).map((o) => [o.tcp?.dst, o.tcp?.flags]), [[to(S2), 'syn']]);
    assert.deepEqual([bed.engine.stats.speculativeUsed, bed.engine.stats.speculativeAbandoned], [0, 1]);
  });

  it('server 1 accepting less than the SYN offered (no window scaling: a SYN cookie, say) resets the leg; a MIGRATE replays offering only what server 1 accepted', async () => {
    bed = await EngineBed.create({ service: { speculativeReplay: true } });
    const id = await prepared(bed, SYN_OPTIONS.filter((o) => o.kind !== 'wscale'));
    const reset = sentBesidesSynAck(bed);
    assert.deepEqual(reset.map((o) => [o.tcp?.flags, o.tcp?.seq]), [['rst', ISN + 1]], 'server 2\'s half-open leg reset at its RCV.NXT');
    assert.equal(bed.engine.stats.speculativeAbandoned, 1);
    holdFirstSegment(bed, id);
    bed.sw.take();
    bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
    await tick();
    const syn = bed.sw.packetOuts().map((p) => parseFrame(p.data)).find((f) => f.ok && f.value.tcp?.flagSet.syn);
    assert.ok(syn?.ok, 'a fresh replay SYN');
    assert.deepEqual(syn.value.tcp!.options.map((o) => o.kind).filter((k) => k !== 'nop' && k !== 'eol'), ['mss', 'sack_permitted'], 'no window scaling offered');
    assert.equal(bed.engine.stats.speculativeUsed, 0);
  });

  it('server 1 accepting all the SYN offered keeps the leg (nothing more goes to server 2)', async () => {
    bed = await EngineBed.create({ service: { speculativeReplay: true } });
    await prepared(bed);
    assert.deepEqual(sentBesidesSynAck(bed), []);
    assert.equal(bed.engine.stats.speculativeAbandoned, 0);
  });

  it('a target not located yet gets no speculative SYN and no probe (a target that is down must not cost a broadcast per connection)', async () => {
    const backends = [S1, S2].map((n) => ({ name: n.name, address: n.ip, port: n.port, ...(n === S1 ? { mac: n.mac, switchPort: n.ofport } : {}) }));
    bed = await EngineBed.create({ service: { speculativeReplay: true, backends } });
    bed.from(CLIENT, S1, { flags: { syn: true }, seq: ISN, options: SYN_OPTIONS });
    bed.from(S1, CLIENT, { flags: { syn: true, ack: true }, seq: S1_ISN, ack: ISN + 1, options: SYN_OPTIONS });
    await tick();
    const outs = bed.sw.take().filter((m) => m.type === 'packet_out');
    assert.equal(outs.length, 2, 'the SYN and the SYN-ACK passed on, nothing else (no SYN to server 2, no ARP probe)');
    assert.equal(bed.engine.stats.speculativeOpened, 0);
  });

  it('config: speculativeReplay must be a boolean', () => {
    const base = { name: 's', address: '10.0.0.1', port: 80, primary: 'a', backends: [{ name: 'a', address: '10.0.0.1', port: 80 }, { name: 'b', address: '10.0.0.3', port: 80 }] };
    assert.equal(parseServices([base])[0].speculativeReplay, false);
    assert.equal(parseServices([{ ...base, speculativeReplay: true }])[0].speculativeReplay, true);
    assert.throws(() => parseServices([{ ...base, speculativeReplay: 'yes' }]), /services\[0\]\.speculativeReplay/);
  });
});
