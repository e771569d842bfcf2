// Connection-ID steering of QUIC services (docs/quic.md, "Connection-ID steering"): the QUIC-LB
// decode, the table of learnt server CIDs, the decision for a short header from an unknown
// 4-tuple, the config, and the app on a scripted switch following a client that rebinds or moves.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { OFPP, type Action } from '../../controller/openflow/index.ts';
import { parseFrame } from '../../controller/packet/index.ts';
import { parseConfig } from '../../controller/config.ts';
import { CidTable, quicLbServerId, serverScid, steerByDcid, type CidService, type QuicLbConfig } from '../../controller/quic-steer/cid-steer.ts';
import { natFlows, quicConnCookie, PRIORITY, type NatSpec } from '../../controller/quic-steer/flow-plan.ts';
import type { QuicConnView } from '../../controller/quic-steer/quic-steer-app.ts';
import { clientInitials, Q1, Q2, Q3, QCLIENT, QuicBed, quicService, udpFrame, type FlowMod, type PacketOut, type QNode } from '../lib/quic-steer-bed.ts';

const flowMods = (msgs: { type: string }[]) => msgs.filter((m): m is FlowMod => m.type === 'flow_mod');
const packetOuts = (msgs: { type: string }[]) => msgs.filter((m): m is PacketOut => m.type === 'packet_out');
const actionsOf = (f: FlowMod): Action[] => { const i = f.instructions[0]; return i && i.type === 'apply_actions' ? i.actions : []; };
const toController: Action = { type: 'output', port: OFPP.CONTROLLER, maxLen: 0xffff };

const LB: QuicLbConfig = { length: 12, offset: 1, serverIdLength: 3 };
/** A CID in server.py's QUIC-LB layout: first octet (rotation, length - 1), the server ID at the offset, random after. */
function lbCid(serverId: string, lb: QuicLbConfig = LB, rotation = 0): Buffer {
  const c = randomBytes(lb.length);
  c[0] = (rotation << 5) | (lb.length - 1);
  Buffer.from(serverId, 'hex').copy(c, lb.offset);
  return c;
}
/** A 1-RTT packet to `dcid` (protected bytes are random: only the header is read). */
const shortHeader = (dcid: Buffer, rest = 40) => Buffer.concat([Buffer.from([0x40 | (randomBytes(1)[0]! & 0x3f)]), dcid, randomBytes(rest)]);
/** A server's Handshake packet (QUIC v1), its SCID the CID it chose. */
function serverHandshake(scid: Buffer, dcid = randomBytes(8)): Buffer {
  const body = randomBytes(40);
  return Buffer.concat([Buffer.from([0xe0, 0, 0, 0, 1, dcid.length]), dcid, Buffer.from([scid.length]), scid, Buffer.from([0x40, body.length]), body]);
}

describe('QUIC CID steering: pure parts', () => {
  it('QUIC-LB: the server ID at the offset; an unroutable first octet or a short CID has none', () => {
    assert.equal(quicLbServerId(lbCid('b2b2b2'), LB), 'b2b2b2');
    assert.equal(quicLbServerId(lbCid('0a0b', { length: 8, offset: 3, serverIdLength: 2 }), { length: 8, offset: 3, serverIdLength: 2 }), '0a0b');
    assert.equal(quicLbServerId(lbCid('b2b2b2', LB, 7), LB), undefined, 'config rotation 0b111: unroutable');
    assert.equal(quicLbServerId(Buffer.alloc(4), LB), undefined);
  });

  it('reads a backend\'s chosen SCID from its long headers, not from short headers, Version Negotiation or noise', () => {
    const scid = randomBytes(12);
    assert.deepEqual(serverScid(serverHandshake(scid)), scid);
    assert.deepEqual(serverScid(clientInitials({ sni: 'a' })[0]!), undefined, 'a client Initial with an empty SCID');
    assert.equal(serverScid(shortHeader(scid)), undefined);
    assert.equal(serverScid(Buffer.concat([Buffer.from([0x80, 0, 0, 0, 0, 1, 9, 1, 8]), Buffer.from([0, 0, 0, 1])])), undefined);
    for (const b of [Buffer.alloc(0), Buffer.from([0xc0]), randomBytes(3)]) assert.doesNotThrow(() => serverScid(b));
  });

  it('the CID table: lookup by every learnt length, a connection\'s CIDs live while any of its tuples does, limits hold', () => {
    const t = new CidTable({ perGroup: 2, total: 3 });
    const a = randomBytes(8);
    const b = randomBytes(12);
    assert.equal(t.learn('web', a, { group: 1, backend: 'server2' }), true);
    assert.equal(t.learn('web', a, { group: 1, backend: 'server2' }), false, 'known already');
    assert.equal(t.learn('web', b, { group: 2, backend: 'server1' }), true);
    assert.equal(t.learn('web', randomBytes(8), { group: 1, backend: 'server2' }), true);
    assert.equal(t.learn('web', randomBytes(8), { group: 1, backend: 'server2' }), false, 'over the total');
    assert.equal(t.learn('web', Buffer.alloc(0), { group: 3, backend: 'x' }), false);
    assert.deepEqual(t.lookup('web', shortHeader(a)), { group: 1, backend: 'server2', cid: a.toString('hex') });
    assert.deepEqual(t.lookup('web', shortHeader(b)), { group: 2, backend: 'server1', cid: b.toString('hex') });
    assert.equal(t.lookup('other', shortHeader(a)), undefined, 'CIDs are per service');
    t.attach(1); t.attach(1);
    t.detach(1);
    assert.ok(t.lookup('web', shortHeader(a)), 'one tuple left');
    t.detach(1);
    assert.equal(t.lookup('web', shortHeader(a)), undefined, 'the last tuple took its CIDs along');
    assert.deepEqual(t.size, { cids: 1, groups: 1 });
  });

  it('decides: a learnt CID first, else a backend\'s QUIC-LB server ID; unknown and too short are dropped', () => {
    const svc: CidService = { name: 'web', cid: LB, backends: [{ name: 'server1', serverId: 'a1a1a1' }, { name: 'server2', serverId: 'b2b2b2' }, { name: 'server3' }] };
    const t = new CidTable();
    const learnt = lbCid('a1a1a1');
    t.learn('web', learnt, { group: 9, backend: 'server2' });
    assert.deepEqual(steerByDcid(shortHeader(learnt), svc, t), { steer: true, backend: 'server2', how: 'learnt', group: 9, cid: learnt.toString('hex') });
    const fresh = lbCid('b2b2b2');
    assert.deepEqual(steerByDcid(shortHeader(fresh), svc, t), { steer: true, backend: 'server2', how: 'quic-lb', cid: fresh.toString('hex') });
    assert.deepEqual(steerByDcid(shortHeader(lbCid('c3c3c3')), svc, t), { steer: false, reason: 'unknown_cid' });
    assert.deepEqual(steerByDcid(shortHeader(lbCid('b2b2b2', LB, 7)), svc, t), { steer: false, reason: 'unknown_cid' }, 'unroutable');
    assert.deepEqual(steerByDcid(shortHeader(lbCid('b2b2b2'), 5), svc, t), { steer: false, reason: 'short_header' }, 'no room for a header-protection sample');
    assert.deepEqual(steerByDcid(shortHeader(randomBytes(8)), { name: 'web', backends: [] }, t), { steer: false, reason: 'unknown_cid' });
    assert.deepEqual(steerByDcid(Buffer.from([0x40, 1, 2]), svc, t), { steer: false, reason: 'short_header' });
    assert.deepEqual(steerByDcid(Buffer.alloc(0), svc, t), { steer: false, reason: 'short_header' });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (a) => { steerByDcid(Buffer.from(a), svc, t); }), { numRuns: 500 });
  });

  it('the NAT flows copy the backend\'s answers to the controller first, when asked', () => {
    const spec: NatSpec = { id: 3, idleTimeout: 30, client: { ...QCLIENT }, service: { mac: Q1.mac, ip: Q1.ip, port: Q1.port }, backend: { mac: Q2.mac, ip: Q2.ip, port: Q2.port, ofport: Q2.ofport } };
    const [, plain] = flowMods(natFlows(spec));
    const [, copying] = flowMods(natFlows(spec, { copyAnswers: true }));
    assert.deepEqual(actionsOf(copying!), [toController, ...actionsOf(plain!)]);
  });
});

describe('QUIC CID steering: config', () => {
  const entry = (over: Record<string, unknown> = {}, b: Record<string, unknown>[] = [{}, {}]) => ({
    protocol: 'quic', name: 'q', address: Q1.ip, port: 4433,
    backends: [Q1, Q2].map((n, i) => ({ name: n.name, address: n.ip, port: n.port, ...b[i] })), ...over,
  });

  it('cidSteering defaults to on; cid and serverId are parsed (hex lower-cased) and parse again', () => {
    const c = parseConfig({ services: [entry({ cid: { length: 12, serverIdLength: 3 } }, [{ serverId: 'A1A1A1' }, { serverId: 'b2b2b2' }])] });
    const q = c.quicServices[0]!;
    assert.equal(q.cidSteering, true);
    assert.deepEqual(q.cid, { length: 12, offset: 1, serverIdLength: 3 });
    assert.deepEqual(q.backends.map((b) => b.serverId), ['a1a1a1', 'b2b2b2']);
    assert.deepEqual(parseConfig(JSON.parse(JSON.stringify(c))), c);
    assert.equal(parseConfig({ services: [entry({ cidSteering: false })] }).quicServices[0]!.cidSteering, false);
  });

  const bad: [string, unknown, RegExp][] = [
    ['a non-boolean cidSteering', entry({ cidSteering: 'no' }), /'services\[0\]\.cidSteering'/],
    ['a server ID that does not fit', entry({ cid: { length: 4, offset: 2, serverIdLength: 3 } }), /'services\[0\]\.cid': a server ID of 3 bytes at offset 2 does not fit in a 4-byte CID/],
    ['offset 0 (the first octet)', entry({ cid: { length: 8, offset: 0, serverIdLength: 2 } }), /'services\[0\]\.cid\.offset'/],
    ['an unknown cid key', entry({ cid: { length: 8, serverIdLength: 2, key: 1 } }), /'services\[0\]\.cid\.key': unknown key/],
    ['a CID longer than 20 bytes', entry({ cid: { length: 21, serverIdLength: 2 } }), /'services\[0\]\.cid\.length'/],
    ['a serverId of the wrong length', entry({ cid: { length: 8, serverIdLength: 2 } }, [{ serverId: 'a1a1a1' }, {}]), /'services\[0\]\.backends\[0\]\.serverId': expected 2 bytes/],
    ['a duplicate serverId', entry({ cid: { length: 8, serverIdLength: 2 } }, [{ serverId: 'a1a1' }, { serverId: 'A1A1' }]), /'services\[0\]\.backends\[1\]\.serverId': server ID a1a1 already used by backend 'server1'/],
    ['a serverId that is not hex', entry({ cid: { length: 8, serverIdLength: 2 } }, [{ serverId: 'zz11' }, {}]), /'services\[0\]\.backends\[0\]\.serverId': expected a QUIC-LB server ID in hex/],
    ['a serverId without cid', entry({}, [{}, { serverId: 'a1' }]), /'services\[0\]\.backends\[1\]\.serverId': a QUIC-LB server ID needs the service's "cid"/],
  ];
  for (const [what, service, re] of bad) it(`refuses ${what}, naming the key`, () => assert.throws(() => parseConfig({ services: [service] }), re));
});

describe('QUIC CID steering: the app on a scripted switch', () => {
  let bed: QuicBed;
  afterEach(() => bed?.stop());
  const moved = (port: number): QNode => ({ ...QCLIENT, port });

  /** A client migrated to server 2 by a verdict; the copy of server 2's first answer read. */
  async function migrated(b: QuicBed, client: QNode = QCLIENT, scid: Buffer = randomBytes(8)): Promise<{ c: QuicConnView; scid: Buffer }> {
    const done = b.next('steered');
    b.fromClient(clientInitials({ sni: 'move.example' })[0]!, client);
    b.app.verdictForFlow({ srcIp: client.ip, srcPort: client.port, dstIp: Q1.ip, dstPort: Q1.port }, { verdict: 'MIGRATE', source: 'builtin' });
    const c = (await done)[0] as QuicConnView;
    b.sw.take();
    // The switch forwarded server 2's Handshake and copied it to the controller (its NAT flow's cookie).
    assert.equal(b.packetIn(udpFrame(Q2, client, serverHandshake(scid)), Q2.ofport, quicConnCookie(c.id)), true);
    return { c, scid };
  }

  it('a MIGRATE copies server 2\'s answers until its SCID is read, then takes the copy off; the copy is never forwarded again', async () => {
    bed = new QuicBed();
    await bed.ready();
    const done = bed.next('steered');
    bed.fromClient(clientInitials({ sni: 'x' })[0]!);
    bed.app.verdictForFlow({ srcIp: QCLIENT.ip, srcPort: QCLIENT.port, dstIp: Q1.ip, dstPort: Q1.port }, { verdict: 'MIGRATE', source: 'builtin' });
    const c = (await done)[0] as QuicConnView;
    const [, b2c] = flowMods(bed.sw.take());
    assert.deepEqual(actionsOf(b2c!)[0], toController);
    const scid = randomBytes(8);
    assert.equal(bed.packetIn(udpFrame(Q2, QCLIENT, serverHandshake(scid)), Q2.ofport, quicConnCookie(c.id)), true);
    const sent = bed.sw.take();
    assert.deepEqual(packetOuts(sent), [], 'the switch forwarded the original');
    const [mod] = flowMods(sent);
    assert.equal(mod!.command, 'modify_strict');
    assert.equal(mod!.priority, PRIORITY.connection);
    assert.deepEqual(mod!.match, b2c!.match);
    assert.deepEqual(actionsOf(mod!), actionsOf(b2c!).slice(1));
    assert.equal(bed.app.stats.cidLearnt, 1);
    assert.deepEqual(bed.app.cids.lookup('web', shortHeader(scid))?.backend, 'server2');
    // A late copy (the modify racing answers) and a copy for a forgotten connection: claimed, nothing sent.
    assert.equal(bed.packetIn(udpFrame(Q2, QCLIENT, serverHandshake(randomBytes(8))), Q2.ofport, quicConnCookie(c.id)), true);
    assert.equal(bed.packetIn(udpFrame(Q2, QCLIENT, serverHandshake(randomBytes(8))), Q2.ofport, quicConnCookie(999)), true);
    assert.deepEqual(bed.sw.take(), []);
    assert.equal(bed.app.stats.cidLearnt, 1);
  });

  it('NAT rebinding: the new port\'s short header is steered by the learnt CID to server 2, its NAT flows installed, the datagram sent on', async () => {
    bed = new QuicBed();
    await bed.ready();
    const { c, scid } = await migrated(bed);
    bed.sw.take();
    const followed = bed.next('followed');
    const p1 = shortHeader(scid);
    const p2 = shortHeader(scid);
    assert.equal(bed.fromClient(p1, moved(41000)), true);
    assert.equal(bed.fromClient(p2, moved(41000)), true, 'a second datagram while the flows are installed: kept');
    const f = (await followed)[0] as QuicConnView;
    assert.deepEqual([f.client, f.backend, f.via, f.group, f.sni, f.phase], [`${QCLIENT.ip}:41000`, 'server2', 'learnt', c.id, 'move.example', 'steered']);
    const sent = bed.sw.take();
    const [c2b, b2c] = flowMods(sent);
    assert.deepEqual(c2b!.match, { inPort: QCLIENT.ofport, ethType: 0x0800, ipProto: 17, ipv4Src: QCLIENT.ip, ipv4Dst: Q1.ip, udpSrc: 41000, udpDst: Q1.port });
    assert.deepEqual(actionsOf(c2b!).at(-1), { type: 'output', port: Q2.ofport });
    assert.equal(b2c!.match.udpDst, 41000);
    assert.notDeepEqual(actionsOf(b2c!)[0], toController, 'no copy: the connection\'s CID is known');
    const outs = packetOuts(sent);
    assert.equal(outs.length, 2);
    for (const [i, o] of outs.entries()) {
      const g = parseFrame(o.data);
      assert.ok(g.ok);
      assert.deepEqual([g.value.ipv4!.dst, g.value.udp!.srcPort, Buffer.compare(g.value.payload, [p1, p2][i]!) === 0], [Q2.ip, 41000, true]);
    }
    assert.deepEqual([bed.app.stats.followedLearnt, bed.app.stats.migrated], [1, 1]);
    // The old tuple idles out: the connection's CID stays with the new tuple; with it, it goes.
    const removed = (id: number) => bed.app.flowRemoved(bed.sw.asChannel(), { type: 'flow_removed', xid: 0, cookie: quicConnCookie(id), priority: PRIORITY.connection, reason: 0, tableId: 1, durationSec: 1, durationNsec: 0, idleTimeout: 30, hardTimeout: 0, packetCount: 1n, byteCount: 1n, match: {} });
    removed(c.id);
    assert.equal(bed.app.cids.lookup('web', shortHeader(scid))?.group, c.id);
    removed(f.id);
    assert.equal(bed.app.cids.lookup('web', shortHeader(scid)), undefined);
    assert.deepEqual(bed.app.size, { held: 0, tracked: 0, heldBytes: 0 });
  });

  it('an address change with a CID never seen: followed by the backend\'s QUIC-LB server ID', async () => {
    bed = new QuicBed([quicService({ cid: LB, backends: [Q1, Q2, Q3].map((n, i) => ({ name: n.name, address: n.ip, port: n.port, serverId: ['a1a1a1', 'b2b2b2', 'c3c3c3'][i] })) })]);
    await bed.ready();
    await migrated(bed, QCLIENT, lbCid('b2b2b2'));
    bed.sw.take();
    const followed = bed.next('followed');
    const next = lbCid('c3c3c3');
    bed.fromClient(shortHeader(next), { ...QCLIENT, ip: '10.0.0.12', port: 5000 });
    const f = (await followed)[0] as QuicConnView;
    assert.deepEqual([f.client, f.backend, f.via, f.backendAddress], ['10.0.0.12:5000', 'server3', 'quic-lb', `${Q3.ip}:${Q3.port}`]);
    assert.equal(bed.app.stats.followedQuicLb, 1);
    // That CID now names the connection: its next tuple joins the same group.
    const again = bed.next('followed');
    bed.fromClient(shortHeader(next), { ...QCLIENT, ip: '10.0.0.12', port: 5001 });
    const g = (await again)[0] as QuicConnView;
    assert.deepEqual([g.backend, g.via, g.group], ['server3', 'learnt', f.id]);
    // A server ID of no backend, an unroutable CID, a random DCID: dropped, counted, nothing sent.
    bed.sw.take();
    for (const cid of [lbCid('d4d4d4'), lbCid('b2b2b2', LB, 7), randomBytes(12)]) bed.fromClient(shortHeader(cid), moved(6000));
    assert.equal(bed.app.stats.dropped.unknown_cid, 3);
    assert.deepEqual(bed.sw.take(), []);
  });

  it('a connection gets at most maxPathsPerConnection tuples at once; more are dropped and counted', async () => {
    bed = new QuicBed([quicService()], { maxPathsPerConnection: 2, locateTimeoutMs: 30 });
    await bed.ready();
    const { scid } = await migrated(bed);
    const followed = bed.next('followed');
    bed.fromClient(shortHeader(scid), moved(41001));
    await followed;
    bed.fromClient(shortHeader(scid), moved(41002));
    assert.equal(bed.app.stats.dropped.too_many_paths, 1);
    assert.equal(bed.app.stats.errors, 0);
  });

  it('cidSteering: false: no copy of the answers, and a short header from a new port is dropped as before', async () => {
    bed = new QuicBed([quicService({ cidSteering: false })]);
    await bed.ready();
    const done = bed.next('steered');
    bed.fromClient(clientInitials({ sni: 'x' })[0]!);
    bed.app.verdictForFlow({ srcIp: QCLIENT.ip, srcPort: QCLIENT.port, dstIp: Q1.ip, dstPort: Q1.port }, { verdict: 'MIGRATE', source: 'builtin' });
    await done;
    const [, b2c] = flowMods(bed.sw.take());
    assert.ok(!actionsOf(b2c!).some((a) => a.type === 'output' && a.port === OFPP.CONTROLLER));
    bed.packetIn(udpFrame(Q2, QCLIENT, serverHandshake(randomBytes(8))), Q2.ofport);
    assert.equal(bed.app.stats.cidLearnt, 0);
    bed.sw.take();
    bed.fromClient(shortHeader(randomBytes(8)), moved(41000));
    assert.deepEqual([bed.app.stats.dropped.short_header, bed.app.stats.followedLearnt], [1, 0]);
    assert.deepEqual(bed.sw.take(), []);
  });

  it('fuzzed short headers and answers never throw and never leave a tuple behind that no CID explains', async () => {
    bed = new QuicBed([quicService({ cid: LB, backends: [Q1, Q2, Q3].map((n, i) => ({ name: n.name, address: n.ip, port: n.port, serverId: ['a1a1a1', 'b2b2b2', 'c3c3c3'][i] })) })]);
    await bed.ready();
    const { c, scid } = await migrated(bed);
    let port = 10000;
    fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), fc.boolean(), (a, answer) => {
      const p = Buffer.from(a);
      if (answer) bed.packetIn(udpFrame(Q2, QCLIENT, p), Q2.ofport, quicConnCookie(c.id));
      else bed.fromClient(p.length ? Buffer.concat([Buffer.from([p[0]! & 0x7f]), p.subarray(1)]) : p, moved(port++));
    }), { numRuns: 400 });
    assert.equal(bed.app.stats.errors, 0);
    assert.ok(bed.app.cids.lookup('web', shortHeader(scid)));
    bed.app.forget('test over');
    assert.deepEqual(bed.app.cids.size, { cids: 0, groups: 0 });
  });
});
