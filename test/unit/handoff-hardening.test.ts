// The handoff engine under load and odd TCP (scripted switch): the half-open budget, connections
// that close before any flows, a close racing a splice, data in a SYN, MPTCP, replays after a
// SYN-cookie handshake, and direct traffic to a backend.
import assert from 'node:assert/strict';
import { EngineBed, ScriptedSwitch, CLIENT, S1, S2, SYN_OPTIONS, asFlowStats, outputs, CONN_TABLE, type Node, type FlowMod } from '../lib/scripted-switch.ts';
import type { OfpMessage } from '../../controller/openflow/index.ts';
import { OFP_NO_BUFFER } from '../../controller/openflow/index.ts';
import { parseFrame, type TcpOption } from '../../controller/packet/index.ts';
import { BYPASS_COOKIE, PRIORITY, interceptCookie } from '../../controller/handoff/flow-plan.ts';
import { connCookie, CONN_ROLE, INTERCEPT_ROLE } from '../../controller/cookies.ts';
import { frame } from '../lib/scripted-switch.ts';

const ISN = 1000;
const S1_ISN = 5000;
const S2_ISN = 90000;
const tick = () => new Promise((r) => setImmediate(r));
const client = (i: number, ip = CLIENT.ip): Node => ({ ...CLIENT, ip, port: 41000 + i });
const synFrom = (bed: EngineBed, n: Node, isn = ISN) => bed.from(n, S1, { flags: { syn: true }, seq: isn, options: SYN_OPTIONS });
const tableOuts = (msgs: OfpMessage[]) => outputs(msgs).filter((o) => o.ports.includes(CONN_TABLE));
const optionKinds = (data: Buffer) => {
  const p = parseFrame(data);
  assert.ok(p.ok && p.value.tcp);
  return p.value.tcp.options.map((o) => (o.kind === 'unknown' ? o.type : o.kind)).filter((k) => k !== 'nop' && k !== 'eol');
};

/** An established connection whose first segment got a FORWARD verdict: its flows are in. */
async function forwardedConn(bed: EngineBed): Promise<number> {
  const id = bed.handshake();
  bed.from(CLIENT, S1, { flags: { ack: true, psh: true }, seq: ISN + 1, ack: S1_ISN + 1, payload: 'hello' });
  const fwd = bed.waitEvent('forwarded');
  bed.engine.verdict(id, { verdict: 'FORWARD', source: 'test' });
  await fwd;
  return id;
}

/** An established connection whose first segment got a MIGRATE verdict: its SYN is being replayed to server 2. */
async function replaying(bed: EngineBed): Promise<number> {
  const id = bed.handshake();
  bed.from(CLIENT, S1, { flags: { ack: true, psh: true }, seq: ISN + 1, ack: S1_ISN + 1, payload: 'hello' });
  bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
  await tick();
  return id;
}

describe('handoff engine under load and odd TCP (scripted switch)', () => {
  let bed: EngineBed | undefined;
  afterEach(() => {
    if (bed) assert.equal(bed.engine.stats.illegalTransitions, 0, 'no illegal phase transition');
    bed?.engine.stop();
    bed = undefined;
  });

  it('handshakes in progress have their own budget: the oldest is evicted (server 1 reset, its late segments dropped)', async () => {
    bed = await EngineBed.create({ opts: { maxConnections: 2, halfOpenMax: 3 } });
    const established = bed.handshake(client(0), ISN, S1_ISN);
    for (let i = 1; i <= 3; i++) synFrom(bed, client(i), ISN + i * 100);
    assert.equal(bed.engine.table.halfOpenCount, 3);
    bed.sw.take();
    synFrom(bed, client(4), ISN + 400);
    assert.equal(bed.engine.stats.halfOpenEvicted, 1);
    assert.equal(bed.engine.table.halfOpenCount, 3);
    const evicted = bed.sw.take();
    // It never had flows: no delete (under a SYN flood one Flow-Mod per eviction would keep OVS revalidating).
    assert.deepEqual(evicted.filter((m) => m.type === 'flow_mod'), [], 'no Flow-Mod for a connection that never had flows');
    const outs = outputs(evicted);
    const rst = outs.find((o) => o.tcp?.flags === 'rst');
    assert.deepEqual(rst && { ports: rst.ports, src: rst.tcp!.src, seq: rst.tcp!.seq }, { ports: [S1.ofport], src: `${CLIENT.ip}:${client(1).port}`, seq: ISN + 100 + 1 }, 'the oldest (client 1) is reset at server 1');
    assert.ok(!bed.engine.connections().some((c) => c.client.endsWith(`:${client(1).port}`)));
    // Its handshake completing late must not slip through unanalysed (no adoption, no forwarding):
    // server 1's SYN-ACK is dropped; the client's segments are answered with a RST, so it retries at once.
    assert.equal(bed.from(S1, client(1), { flags: { syn: true, ack: true }, seq: 7, ack: ISN + 101 }), true);
    assert.deepEqual(bed.sw.take(), []);
    assert.equal(bed.from(client(1), S1, { flags: { ack: true }, seq: ISN + 101, ack: 8 }), true);
    assert.equal(bed.from(client(1), S1, { flags: { ack: true, psh: true }, seq: ISN + 101, ack: 8, payload: 'GET /' }), true);
    const resets = outputs(bed.sw.take());
    assert.deepEqual(resets.map((o) => [o.ports, o.tcp?.flags, o.tcp?.src, o.tcp?.dst, o.tcp?.seq]), [
      [[client(1).ofport], 'rst', `${S1.ip}:${S1.port}`, `${CLIENT.ip}:${client(1).port}`, 8],
      [[client(1).ofport], 'rst', `${S1.ip}:${S1.port}`, `${CLIENT.ip}:${client(1).port}`, 8],
    ], 'each answered by a RST from the service, seq = its ack');
    assert.equal(bed.engine.stats.degraded, 0);
    // A flood of handshakes never counts against connections past theirs: one more client still gets in.
    assert.ok(bed.conn(established));
    const second = bed.handshake(client(5), ISN + 500, S1_ISN);
    assert.equal(bed.conn(second)?.phase, 'established');
    assert.equal(bed.engine.stats.refusedFull, 0);
  });

  it('one source at its half-open budget has its new SYNs dropped; other sources go on', async () => {
    bed = await EngineBed.create({ opts: { halfOpenPerSource: 2 } });
    synFrom(bed, client(1));
    synFrom(bed, client(2));
    bed.sw.take();
    assert.equal(synFrom(bed, client(3)), true);
    assert.deepEqual(bed.sw.take(), [], 'dropped, not forwarded');
    assert.equal(bed.engine.stats.halfOpenPerSourceRefused, 1);
    synFrom(bed, client(4, '10.0.0.9'));
    assert.equal(outputs(bed.sw.take()).filter((o) => o.tcp?.flags === 'syn').length, 1, 'another source is intercepted');
    assert.equal(bed.engine.table.halfOpenCount, 3);
    assert.equal(bed.engine.table.sizes().halfOpenSources, 2);
  });

  it('connect-and-close: a connection closed before any data has each segment passed on once, never to the table', async () => {
    bed = await EngineBed.create();
    const id = bed.handshake();
    bed.sw.take();
    const closed = bed.waitEvent('conn_closed');
    bed.from(CLIENT, S1, { flags: { fin: true, ack: true }, seq: ISN + 1, ack: S1_ISN + 1 });
    bed.from(S1, CLIENT, { flags: { fin: true, ack: true }, seq: S1_ISN + 1, ack: ISN + 2 });
    assert.equal(bed.conn(id)?.phase, 'closing');
    bed.from(CLIENT, S1, { flags: { ack: true }, seq: ISN + 2, ack: S1_ISN + 2 });
    for (let i = 0; i < 5; i++) bed.from(CLIENT, S1, { flags: { ack: true }, seq: ISN + 2, ack: S1_ISN + 2 }); // late duplicates
    const msgs = bed.sw.take();
    assert.deepEqual(tableOuts(msgs), [], 'nothing goes back through the table (it would come straight back)');
    assert.deepEqual(outputs(msgs).map((o) => o.ports[0]), [S1.ofport, CLIENT.ofport, S1.ofport, S1.ofport, S1.ofport, S1.ofport, S1.ofport, S1.ofport]);
    assert.equal(msgs.filter((m) => m.type === 'flow_mod').length, 0, 'no flows installed for a closing connection');
    await closed;
    assert.equal(bed.engine.table.size, 0);
  });

  it('a close racing the splice: the connection has exactly one outcome (migrated)', async () => {
    bed = await EngineBed.create();
    const id = await replaying(bed);
    // Hold the splice's flow install until the connection has closed.
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const transact = bed.sw.transact.bind(bed.sw);
    bed.sw.transact = async (m) => { await gate; return transact(m); };
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
    bed.from(CLIENT, S1, { flags: { rst: true }, seq: ISN + 6 });
    assert.equal(bed.conn(id)?.phase, 'closing');
    const migrated = bed.waitEvent('migrated');
    release();
    await migrated;
    await tick();
    assert.equal(bed.count('migrated'), 1);
    assert.equal(bed.count('migration_failed'), 0, 'no failure reported for a move that completed');
    assert.equal(bed.engine.stats.migrationFailures, 0);
  });

  it('data in a SYN (TCP Fast Open) reaches no server: the SYN goes on without it, the retransmitted data is held', async () => {
    bed = await EngineBed.create();
    const tfo: TcpOption[] = [...SYN_OPTIONS, { kind: 'unknown', type: 34, data: Buffer.alloc(0) }];
    bed.from(CLIENT, S1, { flags: { syn: true }, seq: ISN, options: tfo, payload: 'migrate hello' });
    const [syn, ...rest] = bed.sw.packetOuts();
    assert.equal(rest.length, 0);
    const p = parseFrame(syn.data);
    assert.ok(p.ok);
    assert.equal(p.value.payload.length, 0, 'no data before a verdict');
    assert.ok(!optionKinds(syn.data).includes(34), 'no TFO option');
    assert.equal(bed.engine.stats.synDataHeld, 1);
    bed.sw.take();
    // Server 1 acknowledges the SYN only; the client sends its data again, which is held.
    bed.from(S1, CLIENT, { flags: { syn: true, ack: true }, seq: S1_ISN, ack: ISN + 1, options: SYN_OPTIONS });
    bed.from(CLIENT, S1, { flags: { ack: true, psh: true }, seq: ISN + 1, ack: S1_ISN + 1, payload: 'migrate hello' });
    const [c] = bed.engine.connections();
    assert.equal(c.phase, 'held');
    assert.deepEqual(outputs(bed.sw.take()).map((o) => o.ports[0]), [CLIENT.ofport], 'only the SYN-ACK went anywhere');
  });

  it('a SYN with data whose options cannot be rewritten is dropped, never forwarded with its data', async () => {
    bed = await EngineBed.create();
    // An option whose length runs past the option area: the policy cannot rewrite this SYN.
    const broken = frame(CLIENT, S1, { flags: { syn: true }, seq: ISN, payload: 'migrate hello' });
    const p = parseFrame(broken);
    assert.ok(p.ok && p.value.l4Offset !== undefined);
    const withBadOptions = Buffer.concat([broken.subarray(0, p.value.l4Offset + 20), Buffer.from('0208ffff', 'hex'), broken.subarray(p.value.l4Offset + 20)]);
    withBadOptions[p.value.l4Offset + 12] = (6 << 4);
    withBadOptions.writeUInt16BE(withBadOptions.length - 14, 14 + 2);
    assert.equal(bed.packetIn(withBadOptions, CLIENT.ofport), true);
    assert.deepEqual(bed.sw.take(), [], 'nothing forwarded');
    assert.equal(bed.engine.table.size, 0);
  });

  it('MP_CAPABLE is removed from SYNs by default and kept with options.mptcp=pass', async () => {
    const mpCapable: TcpOption = { kind: 'unknown', type: 30, data: Buffer.from('0081', 'hex') };
    bed = await EngineBed.create();
    bed.from(CLIENT, S1, { flags: { syn: true }, seq: ISN, options: [...SYN_OPTIONS, mpCapable] });
    assert.ok(!optionKinds(bed.sw.packetOuts()[0].data).includes(30));
    bed.engine.stop();
    bed = await EngineBed.create({ service: { options: { mptcp: 'pass' } } });
    bed.from(CLIENT, S1, { flags: { syn: true }, seq: ISN, options: [...SYN_OPTIONS, mpCapable] });
    assert.ok(optionKinds(bed.sw.packetOuts()[0].data).includes(30));
  });

  it('after a SYN-cookie SYN-ACK (no window scale, no SACK), the replay offers neither; an ECN target of a non-ECN connection is not asked for ECN', async () => {
    bed = await EngineBed.create();
    bed.from(CLIENT, S1, { flags: { syn: true, ece: true, cwr: true }, seq: ISN, options: SYN_OPTIONS });
    bed.from(S1, CLIENT, { flags: { syn: true, ack: true }, seq: S1_ISN, ack: ISN + 1, options: [{ kind: 'mss', value: 1460 }] });
    bed.from(CLIENT, S1, { flags: { ack: true }, seq: ISN + 1, ack: S1_ISN + 1 });
    bed.from(CLIENT, S1, { flags: { ack: true, psh: true }, seq: ISN + 1, ack: S1_ISN + 1, payload: 'hello' });
    const [c] = bed.engine.connections();
    bed.sw.take();
    bed.engine.verdict(c.id, { verdict: 'MIGRATE', source: 'test' });
    await tick();
    const replay = bed.sw.packetOuts().find((o) => outputs([o])[0].tcp?.dst === `${S2.ip}:${S2.port}`);
    assert.ok(replay);
    assert.deepEqual(optionKinds(replay.data), ['mss']);
    const p = parseFrame(replay.data);
    assert.ok(p.ok && !p.value.tcp!.flagSet.ece && !p.value.tcp!.flagSet.cwr);
    const migrated = bed.waitEvent('migrated');
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: [{ kind: 'mss', value: 1460 }] });
    await migrated;
  });

  it('a target that refuses SACK the first backend accepted is refused; the connection stays', async () => {
    bed = await EngineBed.create();
    const id = await replaying(bed);
    const failed = bed.waitEvent('migration_failed');
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: [{ kind: 'mss', value: 1460 }, { kind: 'wscale', shift: 7 }] });
    const [, info] = await failed as [unknown, { why: string }];
    assert.match(info.why, /sack/);
    await tick();
    assert.equal(bed.conn(id)?.backend, 'server1');
    assert.equal(bed.conn(id)?.phase, 'forwarded');
  });

  it('strays of a connection whose flows the switch has (the datapath catching up) reinstall nothing; missing flows are reinstalled', async () => {
    bed = await EngineBed.create();
    const id = await forwardedConn(bed);
    bed.sw.table = asFlowStats(bed.sw.take().filter((m) => m.type === 'flow_mod' && m.command === 'add'));
    const strays = (n: number) => { for (let i = 0; i < n; i++) bed!.from(CLIENT, S1, { flags: { ack: true, psh: true }, seq: ISN + 6 + i, ack: S1_ISN + 7, payload: 'x' }); };
    strays(40);
    await tick();
    let msgs = bed.sw.take();
    assert.equal(msgs.filter((m) => m.type === 'flow_mod').length, 0, 'no reinstall');
    assert.equal(tableOuts(msgs).length, 40, 'each goes back through the table (its flows are there)');
    bed.sw.table = [];
    strays(16);
    await tick();
    msgs = bed.sw.take();
    assert.ok(msgs.some((m) => m.type === 'flow_mod' && m.command === 'add' && m.cookie === connCookie(id, CONN_ROLE.main)), 'reinstalled once they are gone');
  });

  it('flow changes OVS can index: exact-cookie deletes, none before a connection\'s first flows nor at its end, one FLOW_REMOVED per connection', async () => {
    bed = await EngineBed.create();
    const id = bed.handshake();
    bed.from(CLIENT, S1, { flags: { ack: true, psh: true }, seq: ISN + 1, ack: S1_ISN + 1, payload: 'hello' });
    bed.sw.take();
    const fwd = bed.waitEvent('forwarded');
    bed.engine.verdict(id, { verdict: 'FORWARD', source: 'test' });
    await fwd;
    const first = bed.sw.take().filter((m): m is FlowMod => m.type === 'flow_mod');
    assert.deepEqual(first.map((m) => m.command), Array(2).fill('add'), 'a new connection: adds only');
    assert.equal(first.filter((m) => m.flags & 1).length, 1, 'only the client → backend flow reports its removal');
    await bed.engine.migrate(id, 'server2');
    bed.from(CLIENT, S1, { flags: { ack: true, psh: true }, seq: ISN + 6, ack: S1_ISN + 7, payload: 'again' }, connCookie(id, CONN_ROLE.freeze));
    await tick();
    const migrated = bed.waitEvent('migrated');
    bed.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 6, options: SYN_OPTIONS });
    await migrated;
    const deletes = bed.sw.take().filter((m): m is FlowMod => m.type === 'flow_mod' && m.command === 'delete');
    const exact = (roles: bigint[]) => roles.map((r) => [connCookie(id, r), 0xffffffffffffffffn]);
    assert.deepEqual(deletes.map((m) => [m.cookie, m.cookieMask]), exact([CONN_ROLE.main, CONN_ROLE.freeze, CONN_ROLE.freezeCopy]), 'after a mid-stream move: its two flows and the freeze ones, each by its exact cookie');
    // The end of a connection deletes nothing: its flows become closing ones, which the switch removes.
    const other = bed.handshake({ ...CLIENT, port: CLIENT.port + 1 });
    bed.from({ ...CLIENT, port: CLIENT.port + 1 }, S1, { flags: { ack: true, psh: true }, seq: ISN + 1, ack: S1_ISN + 1, payload: 'hello' });
    const fwd2 = bed.waitEvent('forwarded');
    bed.engine.verdict(other, { verdict: 'FORWARD', source: 'test' });
    await fwd2;
    bed.sw.take();
    const closed = bed.waitEvent('conn_closed');
    bed.from({ ...CLIENT, port: CLIENT.port + 1 }, S1, { flags: { rst: true }, seq: ISN + 6 }, interceptCookie(0, INTERCEPT_ROLE.flagCopy));
    await closed;
    ScriptedSwitch.assertClosingFlows(bed.sw.take(), other, bed.opts.closeGraceMs);
    // One that moved mid-stream may have freeze flows left: only those are deleted, each by its exact cookie.
    const closed2 = bed.waitEvent('conn_closed');
    bed.from(CLIENT, S1, { flags: { rst: true }, seq: ISN + 11 }, interceptCookie(0, INTERCEPT_ROLE.flagCopy));
    await closed2;
    const msgs = bed.sw.take().filter((m): m is FlowMod => m.type === 'flow_mod');
    assert.deepEqual(msgs.filter((m) => m.command === 'delete').map((m) => [m.cookie, m.cookieMask]), exact([CONN_ROLE.freeze, CONN_ROLE.freezeCopy]));
    ScriptedSwitch.assertClosingFlows(msgs.filter((m) => m.command === 'add'), id, bed.opts.closeGraceMs);
  });

  it('direct traffic from a backend\'s service port gets a bypass flow instead of a Packet-In per segment', async () => {
    bed = await EngineBed.create();
    const direct: Node = { name: 'direct', mac: '02:00:00:00:00:09', ip: '10.0.0.9', port: 45000, ofport: 9 };
    // The learning switch knows where the direct client is.
    const arpish = frame(direct, S2, { flags: { ack: true }, seq: 1 }, { ip: '10.0.0.3', port: 9999, mac: S2.mac });
    const parsed = parseFrame(arpish);
    assert.ok(parsed.ok);
    bed.learning.packetIn(bed.sw.asChannel(), { type: 'packet_in', xid: 0, bufferId: OFP_NO_BUFFER, totalLen: arpish.length, reason: 0, tableId: 0, cookie: 0n, match: { inPort: direct.ofport }, data: arpish }, parsed.value);
    bed.sw.take();
    assert.equal(bed.from(S2, direct, { flags: { ack: true }, seq: 77, ack: 1, payload: 'x'.repeat(1000) }, interceptCookie(0)), true);
    const msgs = bed.sw.take();
    const fm = msgs.find((m): m is FlowMod => m.type === 'flow_mod');
    assert.ok(fm, 'a bypass flow');
    assert.equal(fm.priority, PRIORITY.bypass);
    assert.equal(fm.cookie, BYPASS_COOKIE);
    assert.deepEqual(fm.match, { inPort: S2.ofport, ethType: 0x0800, ipProto: 6, ipv4Src: S2.ip, ipv4Dst: direct.ip, tcpSrc: S2.port, tcpDst: direct.port });
    assert.deepEqual(outputs(msgs).map((o) => o.ports), [[direct.ofport]], 'and this segment delivered');
    assert.equal(bed.engine.stats.bypassFlows, 1);
    // A move of a connection whose tuple has no bypass flow sends no delete for one: OVS revalidates
    // every datapath flow after any Flow-Mod, one that matches nothing included.
    const plain = bed.handshake({ ...CLIENT, port: CLIENT.port + 1 });
    bed.from({ ...CLIENT, port: CLIENT.port + 1 }, S1, { flags: { ack: true, psh: true }, seq: ISN + 1, ack: S1_ISN + 1, payload: 'hello' });
    bed.sw.take();
    bed.engine.verdict(plain, { verdict: 'MIGRATE', source: 'test' });
    await tick();
    assert.deepEqual(bed.sw.take().filter((m) => m.type === 'flow_mod'), [], 'no Flow-Mod before the replay');
    // The client talked to server 2 directly from its port before: that bypass flow goes before the replay.
    const seen = frame(CLIENT, S2, { flags: { ack: true }, seq: 1 }, { ip: '10.0.0.3', port: 9999, mac: S2.mac });
    const seenParsed = parseFrame(seen);
    assert.ok(seenParsed.ok);
    bed.learning.packetIn(bed.sw.asChannel(), { type: 'packet_in', xid: 0, bufferId: OFP_NO_BUFFER, totalLen: seen.length, reason: 0, tableId: 0, cookie: 0n, match: { inPort: CLIENT.ofport }, data: seen }, seenParsed.value);
    bed.sw.take();
    assert.equal(bed.from(S2, CLIENT, { flags: { ack: true }, seq: 77, ack: 1, payload: 'y' }, interceptCookie(0)), true);
    assert.ok(bed.sw.take().some((m) => m.type === 'flow_mod' && m.cookie === BYPASS_COOKIE && m.command === 'add'), 'a bypass flow for the client\'s own tuple');
    const id = bed.handshake();
    bed.from(CLIENT, S1, { flags: { ack: true, psh: true }, seq: ISN + 1, ack: S1_ISN + 1, payload: 'hello' });
    bed.sw.take();
    bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
    await tick();
    const sent = bed.sw.take();
    const del = sent.findIndex((m) => m.type === 'flow_mod' && m.command === 'delete_strict' && m.cookie === BYPASS_COOKIE);
    const syn = sent.findIndex((m) => m.type === 'packet_out');
    assert.ok(del >= 0 && del < syn, 'the bypass delete goes before the replayed SYN');
    assert.ok(!bed.sw.sent.some((m) => m.type === 'flow_mod' && m.cookie === connCookie(id, CONN_ROLE.main) && m.command === 'add'));
  });
});

describe('mid-stream moves keep the client\'s ACKs on the datapath (scripted switch)', () => {
  let bed: EngineBed | undefined;
  afterEach(() => { bed?.engine.stop(); bed = undefined; });

  async function forwarded(): Promise<number> {
    bed = await EngineBed.create();
    const id = await forwardedConn(bed);
    await bed.engine.migrate(id, 'server2');
    bed.sw.take();
    return id;
  }

  it('while a move waits, ACK copies are only watched; data behind the held segment reaches the target after it', async () => {
    const id = await forwarded();
    const b = bed!;
    // A download: the client only acknowledges. The switch forwards those itself (freeze-copy flow).
    for (let i = 0; i < 20; i++) b.from(CLIENT, S1, { flags: { ack: true }, seq: ISN + 6, ack: S1_ISN + 100 + i * 1000 }, connCookie(id, CONN_ROLE.freezeCopy));
    assert.deepEqual(b.sw.take(), [], 'no ACK is relayed by the controller');
    assert.equal(b.conn(id)?.phase, 'freezing');
    // The client writes: its PSH segment is held (freeze flow), a following segment without PSH went on with a copy.
    b.from(CLIENT, S1, { flags: { ack: true, psh: true }, seq: ISN + 6, ack: S1_ISN + 20100, payload: 'again' }, connCookie(id, CONN_ROLE.freeze));
    b.from(CLIENT, S1, { flags: { ack: true }, seq: ISN + 11, ack: S1_ISN + 20100, payload: 'more' }, connCookie(id, CONN_ROLE.freezeCopy));
    await tick();
    // Once the boundary is held, the client's segments go to the controller only (no stale megaflow
    // may keep feeding server 1 after the move).
    assert.ok(b.sw.flowMods().some((m) => m.command === 'add' && m.priority === PRIORITY.freezeAll && m.cookie === connCookie(id, CONN_ROLE.freeze)), 'a full freeze once the segment is held');
    const migrated = b.waitEvent('migrated');
    b.from(S2, CLIENT, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 6, options: SYN_OPTIONS });
    await migrated;
    const released = outputs(b.sw.take()).filter((o) => o.tcp?.payload);
    assert.deepEqual(released.map((o) => o.tcp!.payload), ['again', 'more'], 'held, then what followed it');
    // A stale freeze megaflow still copies (and sends to server 1) the client's next data: it goes on by the new flows.
    b.from(CLIENT, S1, { flags: { ack: true }, seq: ISN + 15, ack: S1_ISN + 20100, payload: 'late' }, connCookie(id, CONN_ROLE.freezeCopy));
    assert.deepEqual(tableOuts(b.sw.take()).map((o) => o.tcp!.payload), ['late']);
  });

  it('a waiting move can be cancelled; it is not counted as a failure', async () => {
    const id = await forwarded();
    const cancelled = bed!.waitEvent('move_cancelled');
    bed!.engine.cancelMove(id);
    await cancelled;
    assert.equal(bed!.conn(id)?.phase, 'forwarded');
    assert.equal(bed!.engine.stats.migrationFailures, 0);
    assert.equal(bed!.sw.flowMods().filter((m) => m.command === 'delete_strict').length, 3, 'every freeze flow removed (PSH, copy, and the full freeze should it be there)');
    assert.throws(() => bed!.engine.cancelMove(id), (e: Error & { status?: number }) => e.status === 409);
  });
});
