// The handoff engine with IPv6 and dual-stack services on the scripted switch: the same paths as
// IPv4 (hold, MIGRATE with replay, FORWARD, teardown), with IPv6 frames, matches and set_fields.
import assert from 'node:assert/strict';
import { EngineBed, ScriptedSwitch, CLIENT, S1, S2, S3, SYN_OPTIONS, outputs, CONN_TABLE, type Node } from '../lib/scripted-switch.ts';
import { OFPP } from '../../controller/openflow/index.ts';
import { INTERCEPT_ROLE, interceptCookie } from '../../controller/cookies.ts';
import { endpointKey } from '../../controller/handoff/connection.ts';
import { locateProbe } from '../../controller/handoff/move.ts';
import { interceptFor } from '../../controller/handoff/adoption.ts';
import { parseFrame, ICMPV6_NEIGHBOR_SOLICIT } from '../../controller/packet/index.ts';

const v6 = (n: Node, ip: string): Node => ({ ...n, ip });
const CLIENT6 = v6(CLIENT, 'fd00::2');
const S1_6 = v6(S1, 'fd00::1');
const S2_6 = v6(S2, 'fd00::3');
const S3_6 = v6(S3, 'fd00::4');
const ISN = 1000;
const S1_ISN = 5000;
const S2_ISN = 90000;
const HELD = { flags: { ack: true, psh: true }, seq: ISN + 1, ack: S1_ISN + 1, payload: 'hello' };
const tick = () => new Promise((r) => setImmediate(r));

/** The test service, dual-stack: every backend has both addresses (server3's IPv6 one only when asked). */
function dualStack(o: { s3v6?: boolean } = {}): Record<string, unknown> {
  return {
    address: S1.ip, address6: S1_6.ip,
    backends: [[S1, S1_6], [S2, S2_6], [S3, S3_6]].map(([n, n6]) => ({
      name: n!.name, address: n!.ip, ...(n!.name !== 'server3' || o.s3v6 !== false ? { address6: n6!.ip } : {}), port: n!.port, mac: n!.mac, switchPort: n!.ofport,
    })),
  };
}

async function held6(bed: EngineBed): Promise<number> {
  const id = bed.handshake(CLIENT6, ISN, S1_ISN, S1_6);
  bed.sw.take();
  bed.from(CLIENT6, S1_6, HELD);
  assert.equal(bed.conn(id)?.phase, 'held');
  assert.deepEqual(bed.sw.take(), [], 'nothing leaves while the segment is held');
  return id;
}

const tcpOf = (a: Node, b: Node) => ({ src: `${a.ip}:${a.port}`, dst: `${b.ip}:${b.port}` });

describe('handoff engine, IPv6 and dual-stack services (scripted switch)', () => {
  let bed: EngineBed | undefined;
  afterEach(() => {
    if (bed) assert.equal(bed.engine.stats.illegalTransitions, 0, 'no illegal phase transition');
    bed?.engine.stop();
    bed = undefined;
  });

  it('a dual-stack service steers both of its addresses and every backend address to the controller', async () => {
    bed = await EngineBed.create({ service: dualStack() });
    const adds = interceptFor(bed.engine.service('echo')!, 0).flatMap((m) => (m.type === 'flow_mod' && m.cookie === interceptCookie(0) && m.tableId === 0 ? [m] : []));
    const dsts = adds.map((m) => m.match.ipv4Dst ?? m.match.ipv6Dst).filter((x) => x !== undefined);
    const srcs = adds.map((m) => m.match.ipv4Src ?? m.match.ipv6Src).filter((x) => x !== undefined);
    assert.deepEqual(dsts.sort(), [S1.ip, S1_6.ip].sort());
    assert.deepEqual(srcs.sort(), [S1.ip, S1_6.ip, S2.ip, S2_6.ip, S3.ip, S3_6.ip].sort());
    for (const m of adds) assert.equal(m.match.ethType, (m.match.ipv6Dst ?? m.match.ipv6Src) ? 0x86dd : 0x0800);
  });

  it('MIGRATE of an IPv6 connection: the replayed SYN, the ACK, the held segment and server 1\'s RST are IPv6, the flows match and set IPv6 addresses', async () => {
    bed = await EngineBed.create({ service: dualStack() });
    const id = await held6(bed);
    const view = bed.conn(id)!;
    assert.deepEqual([view.client, view.serviceAddress, view.backendAddress], [endpointKey(CLIENT6.ip, CLIENT6.port), `[${S1_6.ip}]:5001`, `[${S1_6.ip}]:5001`]);
    bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
    await tick();
    const [replay] = outputs(bed.sw.take());
    assert.deepEqual(replay, { ports: [S2.ofport], inPort: CLIENT.ofport, tcp: { ...tcpOf(CLIENT6, S2_6), seq: ISN, ack: 0, flags: 'syn', payload: '' } });
    const migrated = bed.waitEvent('migrated');
    bed.from(S2_6, CLIENT6, { flags: { syn: true, ack: true }, seq: S2_ISN, ack: ISN + 1, options: SYN_OPTIONS });
    await migrated;
    const sent = bed.sw.take();
    const outs = outputs(sent);
    assert.deepEqual(outs[0]!.tcp, { ...tcpOf(CLIENT6, S2_6), seq: ISN + 1, ack: S2_ISN + 1, flags: 'ack', payload: '' }, 'the ACK to server 2');
    assert.deepEqual([outs[1]!.ports, outs[1]!.tcp?.payload, outs[1]!.tcp?.dst], [[CONN_TABLE], 'hello', `${S1_6.ip}:5001`], 'the held segment, through the new flows');
    assert.deepEqual([outs[2]!.ports, outs[2]!.tcp?.dst, outs[2]!.tcp?.flags, outs[2]!.tcp?.seq], [[S1.ofport], `${S1_6.ip}:5001`, 'rst', ISN + 1], 'server 1 reset');
    const adds = sent.filter((m) => m.type === 'flow_mod' && m.command === 'add');
    assert.equal(adds.length, 2);
    const [c2s, s2c] = adds.map((m) => (m.type === 'flow_mod' ? m : undefined)!);
    assert.deepEqual([c2s!.match.ethType, c2s!.match.ipv6Src, c2s!.match.ipv6Dst, c2s!.match.ipv4Src], [0x86dd, CLIENT6.ip, S1_6.ip, undefined]);
    assert.deepEqual([s2c!.match.ipv6Src, s2c!.match.ipv6Dst], [S2_6.ip, CLIENT6.ip]);
    const setFields = (m: typeof c2s) => m!.instructions.flatMap((i) => (i.type === 'apply_actions' ? i.actions : [])).flatMap((a) => (a.type === 'set_field' ? [a.field] : []));
    assert.ok(setFields(c2s).some((f) => f.ipv6Dst === S2_6.ip), 'client → server 2: destination set to server 2\'s IPv6 address');
    assert.ok(setFields(s2c).some((f) => f.ipv6Src === S1_6.ip), 'server 2 → client: source set back to the service\'s');
    assert.deepEqual([bed.conn(id)!.backend, bed.conn(id)!.backendAddress], ['server2', `[${S2_6.ip}]:5001`]);
    // A server-2 segment that raced the flows: the connection is found by its IPv6 backend tuple.
    bed.from(S2_6, CLIENT6, { flags: { ack: true }, seq: S2_ISN + 1, ack: ISN + 6, payload: 'hello' });
    assert.deepEqual(outputs(bed.sw.take()).map((o) => o.ports), [[CONN_TABLE]]);
    const closed = bed.waitEvent('conn_closed');
    bed.from(CLIENT6, S1_6, { flags: { rst: true }, seq: ISN + 6 }, interceptCookie(0, INTERCEPT_ROLE.flagCopy));
    await closed;
    assert.equal(bed.engine.table.size, 0);
    ScriptedSwitch.assertClosingFlows(bed.sw.take(), id, bed.opts.closeGraceMs);
  });

  it('an IPv4 client of the same dual-stack service is served over IPv4 (FORWARD), side by side with an IPv6 one', async () => {
    bed = await EngineBed.create({ service: dualStack() });
    const a = bed.handshake(CLIENT, ISN, S1_ISN, S1);
    const b = bed.handshake({ ...CLIENT6, port: 40001 }, ISN, S1_ISN, S1_6);
    assert.notEqual(a, b);
    bed.sw.take();
    bed.from(CLIENT, S1, HELD);
    bed.engine.verdict(a, { verdict: 'FORWARD', source: 'test' });
    await bed.waitEvent('forwarded');
    const adds = bed.sw.flowMods().filter((m) => m.command === 'add');
    assert.deepEqual(adds.map((m) => [m.match.ethType, m.match.ipv4Src ?? m.match.ipv4Dst]), [[0x0800, CLIENT.ip], [0x0800, S1.ip]]);
    assert.equal(bed.conn(b)!.phase, 'established');
    assert.equal(bed.conn(a)!.serviceAddress, `${S1.ip}:5001`);
  });

  it('a target without an address of the connection\'s family: the API refuses (409), a verdict keeps the connection on server 1', async () => {
    bed = await EngineBed.create({ service: { ...dualStack({ s3v6: false }), migrateTo: 'server3' } });
    const id = await held6(bed);
    const failed = bed.waitEvent('migration_failed');
    bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
    const [, why] = await failed as [unknown, { why: string }];
    assert.match(why.why, /server3 has no IPv6 address/);
    await tick();
    assert.equal(bed.conn(id)?.phase, 'forwarded');
    const outs = outputs(bed.sw.take());
    assert.ok(outs.some((o) => o.tcp?.payload === 'hello' && o.tcp.dst === `${S1_6.ip}:5001`), 'the held segment goes on to server 1');
    assert.equal(bed.conn(id)!.backend, 'server1');
    await assert.rejects(bed.engine.migrate(id, 'server3'), (e: Error & { status?: number }) => e.status === 409 && /no IPv6 address/.test(e.message));
  });

  it('a target found by neighbour solicitation: a probe from :: is flooded, the advertisement\'s host entry completes the move', async () => {
    const service = dualStack();
    // server2 without a configured MAC or port: it must be found.
    (service.backends as Record<string, unknown>[])[1] = { name: 'server2', address: S2.ip, address6: S2_6.ip, port: S2.port };
    bed = await EngineBed.create({ service });
    const id = await held6(bed);
    bed.engine.verdict(id, { verdict: 'MIGRATE', source: 'test' });
    await tick();
    const probes = bed.sw.packetOuts().filter((p) => p.actions.some((a) => a.type === 'output' && a.port === OFPP.FLOOD));
    assert.equal(probes.length, 1);
    const f = parseFrame(probes[0]!.data);
    assert.ok(f.ok);
    assert.deepEqual([f.value.ipv6?.src, f.value.icmpv6?.type, f.value.icmpv6?.ndTarget, f.value.eth.dst], ['::', ICMPV6_NEIGHBOR_SOLICIT, S2_6.ip, '33:33:ff:00:00:03']);
    assert.deepEqual(probes[0]!.data, locateProbe(S2_6.ip));
    bed.sw.take();
    // What the forwarding app does with server 2's advertisement: learn where the address lives.
    bed.learning.learnHost(S2_6.ip, { mac: S2.mac, dpid: '00000000000000a1', port: S2.ofport, seen: Date.now() });
    await tick();
    const [replay] = outputs(bed.sw.take()).filter((o) => o.tcp?.flags === 'syn');
    assert.deepEqual([replay?.ports, replay?.tcp?.dst], [[S2.ofport], `${S2_6.ip}:5001`]);
  });
});
