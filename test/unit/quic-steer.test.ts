// QUIC services (docs/quic.md, "QUIC services"): their config, the pure flow plan, and the app on
// a scripted switch: held Initials, verdicts (analyzer, built-in matcher, timeout), NAT flows and
// the release of what was held, garbage dropped and counted, fuzzed datagrams that never throw.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { OFPP, OFPTT, OFPFF, type Action } from '../../controller/openflow/index.ts';
import { parseFrame, verifyChecksums } from '../../controller/packet/index.ts';
import { QUIC_V2 } from '../../controller/quic/index.ts';
import { parseConfig } from '../../controller/config.ts';
import { diffConfig } from '../../controller/reload/config-diff.ts';
import { parseServices } from '../../controller/handoff/service-config.ts';
import { parseServiceList } from '../../controller/quic-steer/service-config.ts';
import {
  deleteAllSteerFlows, natFlows, quicConnCookie, quicConnIdOf, rewriteToBackend, rewriteToClient, steerCookie, steerFlows, PRIORITY, TABLE, type NatSpec,
} from '../../controller/quic-steer/flow-plan.ts';
import { HeldInitial } from '../../controller/quic-steer/held-initial.ts';
import type { QuicConnView } from '../../controller/quic-steer/quic-steer-app.ts';
import { APP_ID, cookieApp } from '../../controller/cookies.ts';
import { AnalyzerBridge } from '../../controller/analyzer-bridge.ts';
import { HandoffEngine } from '../../controller/handoff/handoff-engine.ts';
import { parseRules } from '../../controller/analyzers/rules.ts';
import { silentLogger } from '../../controller/log.ts';
import { overwritten } from '../lib/fuzz.ts';
import { clientInitials, IDS_PORT, Q1, Q2, Q3, QCLIENT, QuicBed, quicService, udpFrame, type FlowMod, type PacketOut, type QNode } from '../lib/quic-steer-bed.ts';

const backends = (...ns: QNode[]) => ns.map((n) => ({ name: n.name, address: n.ip, port: n.port }));
const quicEntry = (over: Record<string, unknown> = {}) => ({ protocol: 'quic', name: 'q', address: Q1.ip, port: 4433, backends: backends(Q1, Q2), ...over });
const tcpEntry = (over: Record<string, unknown> = {}) => ({ name: 't', address: '10.0.0.1', port: 443, backends: [{ name: 's1', address: '10.0.0.1', port: 443 }], ...over });
const flowMods = (msgs: { type: string }[]) => msgs.filter((m): m is FlowMod => m.type === 'flow_mod');
const packetOuts = (msgs: { type: string }[]) => msgs.filter((m): m is PacketOut => m.type === 'packet_out');
const actionsOf = (f: FlowMod): Action[] => { const i = f.instructions[0]; return i && i.type === 'apply_actions' ? i.actions : []; };

describe('QUIC services: config', () => {
  it('a "protocol": "quic" entry goes to quicServices with its defaults; TCP entries are untouched', () => {
    const c = parseConfig({ services: [tcpEntry(), quicEntry()] });
    assert.equal(c.services.length, 1);
    assert.deepEqual(c.services, parseServices([tcpEntry()]));
    assert.deepEqual(c.quicServices, [{
      protocol: 'quic', name: 'q', address: Q1.ip, port: 4433, primary: 'server1', migrateTo: 'server2', backends: backends(Q1, Q2),
      defaultVerdict: 'FORWARD', verdictTimeoutMs: 2000, sidBackends: {}, idleTimeout: 300, cidSteering: true,
    }]);
    assert.deepEqual(parseConfig({}).quicServices, []);
    assert.deepEqual(parseConfig({ services: [tcpEntry({ protocol: 'tcp' })] }).services, parseServices([tcpEntry()]));
  });

  it('parses its own output again (check-config prints QUIC services under quicServices; the CLI re-parses with its overrides)', () => {
    const c = parseConfig({ services: [tcpEntry(), quicEntry({ mirrorPort: 5, sidBackends: { 7: 'server2' } })] });
    assert.deepEqual(parseConfig(JSON.parse(JSON.stringify(c))), c);
    assert.throws(() => parseConfig({ services: [tcpEntry({ name: 'q' })], quicServices: c.quicServices }), /'quicServices\[0\]\.name': duplicate service name 'q'/);
    assert.throws(() => parseConfig({ services: [quicEntry({ name: 'other' })], quicServices: c.quicServices }), /'quicServices\[0\]': service address 10\.0\.0\.1:4433 \(quic\) already used/);
    assert.throws(() => parseConfig({ quicServices: [{ ...quicEntry(), protocol: 'tcp' }] }), /'quicServices\[0\]\.protocol': expected one of quic/);
    assert.throws(() => parseConfig({ quicServices: {} }), /'quicServices': expected an array of QUIC services/);
  });

  it('a reload reports a changed QUIC service as needing a restart and keeps the running one', () => {
    const d = diffConfig(parseConfig({ services: [quicEntry()] }), parseConfig({ services: [quicEntry({ idleTimeout: 30 })] }));
    assert.equal(d.restartNeeded.length, 1);
    assert.match(d.restartNeeded[0]!, /^quicServices: /);
    assert.deepEqual([d.changes, d.servicesChanged, d.next.quicServices[0]!.idleTimeout], [[], false, 300]);
  });

  it('a TCP service and a QUIC service may share address and port (TCP and UDP ports are separate)', () => {
    const l = parseServiceList([tcpEntry({ port: 4433, backends: [{ name: 's1', address: '10.0.0.1', port: 4433 }] }), quicEntry()]);
    assert.equal(l.tcp.length, 1);
    assert.equal(l.quic.length, 1);
  });

  const bad: [string, unknown[], RegExp][] = [
    ['an unknown protocol', [quicEntry({ protocol: 'sctp' })], /'services\[0\]\.protocol': expected one of tcp, quic/],
    ['a TCP-only key', [quicEntry({ options: { sack: 'keep' } })], /'services\[0\]\.options': a TCP service's key; not for "protocol": "quic"/],
    ['mirrorAll', [quicEntry({ mirrorAll: true })], /'services\[0\]\.mirrorAll': a TCP service's key/],
    ['midStream', [quicEntry({ midStream: false })], /'services\[0\]\.midStream': a TCP service's key/],
    ['an unknown key', [quicEntry({ colour: 'red' })], /'services\[0\]\.colour': unknown key/],
    ['an IPv6 service', [quicEntry({ address: 'fd00::1' })], /'services\[0\]\.address': expected an IPv4 address/],
    ['an IPv6 backend', [quicEntry({ backends: [...backends(Q1), { name: 'v6', address: 'fd00::3', port: 4433 }] })], /'services\[0\]\.backends\[1\]\.address': expected an IPv4 address/],
    ['address6 on a backend', [quicEntry({ backends: [{ name: 'server1', address: Q1.ip, address6: 'fd00::1', port: 4433 }] })], /'services\[0\]\.backends\[0\]\.address6': QUIC services are IPv4 only/],
    ['a primary off the service address', [quicEntry({ primary: 'server2' })], /'services\[0\]\.primary': backend 'server2' is 10\.0\.0\.3:4433, but clients reach the primary/],
    ['a sid to no backend', [quicEntry({ sidBackends: { 5: 'nobody' } })], /'services\[0\]\.sidBackends\.5': no backend named "nobody"/],
    ['a migrateTo to no backend', [quicEntry({ migrateTo: 'nobody' })], /'services\[0\]\.migrateTo': no backend named 'nobody'/],
    ['a bad verdict timeout', [quicEntry({ verdictTimeoutMs: 0 })], /'services\[0\]\.verdictTimeoutMs': expected an integer in \[1, 600000\]/],
    ['a bad mirror port', [quicEntry({ mirrorPort: 'ids' })], /'services\[0\]\.mirrorPort'/],
    ['a duplicate backend', [quicEntry({ backends: backends(Q1, Q1) })], /'services\[0\]\.backends\[1\]\.name': duplicate backend name/],
    ['a name used by a TCP service', [tcpEntry({ name: 'q' }), quicEntry()], /'services\[1\]\.name': duplicate service name 'q'/],
    ['two QUIC services on one address', [quicEntry(), quicEntry({ name: 'q2' })], /'services\[1\]': service address 10\.0\.0\.1:4433 \(quic\) already used by services\[0\]/],
    ['two TCP services on one address beside a QUIC one', [quicEntry(), tcpEntry(), tcpEntry({ name: 't2' })], /'services\[2\]': service address 10\.0\.0\.1:443 \(tcp\) already used by services\[1\]/],
    ['a bad TCP entry keeps its index in a mixed list', [quicEntry(), tcpEntry({ port: 0 })], /'services\[1\]\.port'/],
    ['a non-object', [quicEntry(), 'x'], /'services\[1\]': expected an object/],
  ];
  for (const [what, services, re] of bad) {
    it(`refuses ${what}, naming the key`, () => assert.throws(() => parseConfig({ services }), re));
  }
});

describe('QUIC services: flow plan', () => {
  const spec = (backend: QNode): NatSpec => ({
    id: 7, idleTimeout: 30, client: { ...QCLIENT }, service: { mac: Q1.mac, ip: Q1.ip, port: Q1.port }, backend: { mac: backend.mac, ip: backend.ip, port: backend.port, ofport: backend.ofport },
  });

  it('steers a service\'s UDP (and its backends\' answers) from table 0 to table 1, and the rest of it there to the controller', () => {
    const flows = flowMods(steerFlows({ index: 2, service: { ip: Q1.ip, port: 4433 }, backends: [{ ip: Q1.ip, port: 4433 }, { ip: Q2.ip, port: 4433 }, { ip: Q2.ip, port: 4433 }] }));
    assert.equal(flows.length, 6, 'service, two distinct backends, each in two tables');
    for (const f of flows) {
      assert.equal(f.cookie, steerCookie(2));
      assert.equal(cookieApp(f.cookie), APP_ID.quic);
      assert.equal(f.match.ipProto, 17);
      assert.equal(f.priority, f.tableId === TABLE.steer ? PRIORITY.steer : PRIORITY.intercept);
    }
    const t0 = flows.filter((f) => f.tableId === TABLE.steer);
    assert.deepEqual(t0.map((f) => f.instructions), t0.map(() => [{ type: 'goto_table', tableId: TABLE.connection }]));
    assert.deepEqual(t0.map((f) => f.match), [
      { ethType: 0x0800, ipProto: 17, ipv4Dst: Q1.ip, udpDst: 4433 },
      { ethType: 0x0800, ipProto: 17, ipv4Src: Q1.ip, udpSrc: 4433 },
      { ethType: 0x0800, ipProto: 17, ipv4Src: Q2.ip, udpSrc: 4433 },
    ]);
    for (const f of flows.filter((x) => x.tableId === TABLE.connection)) assert.deepEqual(actionsOf(f), [{ type: 'output', port: OFPP.CONTROLLER, maxLen: 0xffff }]);
    const del = deleteAllSteerFlows() as FlowMod;
    assert.equal(del.tableId, OFPTT.ALL);
    assert.equal(del.cookie & del.cookieMask, steerCookie(0) & del.cookieMask);
    assert.notEqual(quicConnCookie(1) & del.cookieMask, del.cookie & del.cookieMask, 'connection flows are not steering flows');
  });

  it('NATs one client both ways, table 1 above the intercept flows, with its id in the cookie', () => {
    const [c2b, b2c] = flowMods(natFlows(spec(Q3)));
    for (const f of [c2b!, b2c!]) {
      assert.equal(f.tableId, TABLE.connection);
      assert.equal(f.priority, PRIORITY.connection);
      assert.equal(f.idleTimeout, 30);
      assert.equal(quicConnIdOf(f.cookie), 7);
    }
    assert.equal(c2b!.flags & OFPFF.SEND_FLOW_REM, OFPFF.SEND_FLOW_REM);
    assert.equal(b2c!.flags & OFPFF.SEND_FLOW_REM, 0);
    assert.deepEqual(c2b!.match, { inPort: QCLIENT.ofport, ethType: 0x0800, ipProto: 17, ipv4Src: QCLIENT.ip, ipv4Dst: Q1.ip, udpSrc: QCLIENT.port, udpDst: Q1.port });
    assert.deepEqual(actionsOf(c2b!), [
      { type: 'set_field', field: { ethDst: Q3.mac } }, { type: 'set_field', field: { ipv4Dst: Q3.ip } }, { type: 'set_field', field: { udpDst: Q3.port } }, { type: 'output', port: Q3.ofport },
    ]);
    assert.deepEqual(b2c!.match, { inPort: Q3.ofport, ethType: 0x0800, ipProto: 17, ipv4Src: Q3.ip, ipv4Dst: QCLIENT.ip, udpSrc: Q3.port, udpDst: QCLIENT.port });
    assert.deepEqual(actionsOf(b2c!), [
      { type: 'set_field', field: { ethSrc: Q1.mac } }, { type: 'set_field', field: { ipv4Src: Q1.ip } }, { type: 'set_field', field: { udpSrc: Q1.port } }, { type: 'output', port: QCLIENT.ofport },
    ]);
    // The primary is the service: nothing to rewrite, only where it goes.
    const [p1, p2] = flowMods(natFlows(spec(Q1)));
    assert.deepEqual(actionsOf(p1!), [{ type: 'output', port: Q1.ofport }]);
    assert.deepEqual(actionsOf(p2!), [{ type: 'output', port: QCLIENT.ofport }]);
    assert.equal(quicConnIdOf(steerCookie(7)), undefined);
    assert.equal(quicConnIdOf(0x10n << 56n | 7n), undefined, 'a TCP connection\'s cookie');
  });

  it('rewrites a held datagram as the flows would, checksums right, the input untouched', () => {
    const raw = udpFrame(QCLIENT, Q1, Buffer.from('hello quic'));
    const before = Buffer.from(raw);
    const r = rewriteToBackend(raw, spec(Q3));
    assert.ok(r.ok);
    assert.deepEqual(raw, before);
    const f = parseFrame(r.value);
    assert.ok(f.ok);
    assert.deepEqual([f.value.eth.dst, f.value.ipv4!.dst, f.value.udp!.dstPort, f.value.payload.toString()], [Q3.mac, Q3.ip, Q3.port, 'hello quic']);
    assert.deepEqual(verifyChecksums(r.value), { ok: true, value: { ip: true, l4: true, l4Checked: true } });
    const back = rewriteToClient(udpFrame(Q3, QCLIENT, Buffer.from('answer')), spec(Q3));
    assert.ok(back.ok);
    const g = parseFrame(back.value);
    assert.ok(g.ok);
    assert.deepEqual([g.value.eth.src, g.value.ipv4!.src, g.value.udp!.srcPort], [Q1.mac, Q1.ip, Q1.port]);
    assert.deepEqual(verifyChecksums(back.value), { ok: true, value: { ip: true, l4: true, l4Checked: true } });
    assert.equal(rewriteToBackend(Buffer.from('garbage'), spec(Q3)).ok, false);
  });
});

describe('QUIC services: held Initials', () => {
  it('reads a ClientHello over two datagrams, holds both, then holds retransmissions unread', () => {
    const [d1, d2] = clientInitials({ sni: 'move.example', split: true });
    const s = HeldInitial.start(udpFrame(QCLIENT, Q1, d1!), d1!);
    assert.ok(s.ok);
    assert.equal(s.held.status, 'need_more');
    assert.deepEqual(s.held.add(udpFrame(QCLIENT, Q1, d2!), d2!), { held: true, completed: true });
    assert.equal(s.held.initial?.sni, 'move.example');
    assert.deepEqual(s.held.add(udpFrame(QCLIENT, Q1, d1!), d1!), { held: true, completed: false });
    assert.equal(s.held.frames.length, 3);
  });

  it('classifies what starts no connection', () => {
    const start = (p: Buffer) => { const r = HeldInitial.start(udpFrame(QCLIENT, Q1, p), p); return r.ok ? 'held' : r.reason; };
    const [good] = clientInitials({ sni: 'a.example' });
    const flipped = Buffer.from(good!);
    flipped[flipped.length - 1]! ^= 1;
    const vn = Buffer.concat([Buffer.from([0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 0, 0]), Buffer.alloc(1200)]);
    const handshake = Buffer.from(good!);
    handshake[0] = (handshake[0]! & ~0x30) | 0x20;
    assert.deepEqual([
      start(good!), start(Buffer.alloc(0)), start(Buffer.from([0x40, 1, 2, 3])), start(good!.subarray(0, 1199)), start(vn), start(flipped),
    ], ['held', 'short_header', 'short_header', 'too_small', 'unsupported_version', 'bad_initial']);
    assert.ok(['not_initial', 'bad_initial'].includes(start(handshake)));
  });

  it('stops at its caps, and a datagram that breaks the Initial is not held', () => {
    const [d1] = clientInitials({ sni: 'a.example', split: true });
    const s = HeldInitial.start(udpFrame(QCLIENT, Q1, d1!), d1!, { maxDatagrams: 2, maxBytes: 64 * 1024 });
    assert.ok(s.ok);
    const other = clientInitials({ sni: 'b.example' })[0]!; // another DCID: the codec refuses it
    assert.deepEqual(s.held.add(udpFrame(QCLIENT, Q1, other), other), { held: false, why: 'unreadable' });
    assert.equal(s.held.status, 'unreadable');
    assert.deepEqual(s.held.add(udpFrame(QCLIENT, Q1, d1!), d1!), { held: true, completed: false });
    assert.deepEqual(s.held.add(udpFrame(QCLIENT, Q1, d1!), d1!), { held: false, why: 'cap' });
  });
});

describe('QUIC services: the app on a scripted switch', () => {
  let bed: QuicBed;
  afterEach(() => bed?.stop());

  async function steered(b: QuicBed): Promise<QuicConnView> { return (await b.next('steered'))[0] as QuicConnView; }

  it('installs the steering flows of every QUIC service when a switch is ready', async () => {
    bed = new QuicBed();
    await bed.app.switchReady(bed.sw.asChannel(), []);
    const sent = bed.sw.take();
    assert.deepEqual(sent[0], deleteAllSteerFlows());
    assert.equal(flowMods(sent).length, 1 + 8, 'a delete, then service + 3 backends in two tables');
  });

  it('holds the Initial, and on a MIGRATE installs the NAT flows before it releases the datagram, rewritten', async () => {
    bed = new QuicBed([quicService({ mirrorPort: IDS_PORT })]);
    await bed.ready();
    const [d] = clientInitials({ sni: 'move.example' });
    const initial = bed.next('initial');
    assert.equal(bed.fromClient(d!), true);
    const [view, init, flow] = await initial as [QuicConnView, { sni?: string }, unknown];
    assert.equal(view.phase, 'held');
    assert.equal(init.sni, 'move.example');
    assert.deepEqual(flow, { srcIp: QCLIENT.ip, srcPort: QCLIENT.port, dstIp: Q1.ip, dstPort: Q1.port });
    // Held: only the copy to the IDS port went out.
    assert.deepEqual(packetOuts(bed.sw.take()).map((p) => p.actions), [[{ type: 'output', port: IDS_PORT }]]);
    const done = steered(bed);
    const v = bed.app.verdictForFlow({ srcIp: Q1.ip, srcPort: Q1.port, dstIp: QCLIENT.ip, dstPort: QCLIENT.port }, { verdict: 'MIGRATE', source: 'suricata' });
    assert.equal(v?.id, view.id, 'either direction of the tuple names the client');
    const c = await done;
    assert.deepEqual([c.phase, c.backend, c.backendAddress, c.sni], ['steered', 'server2', `${Q2.ip}:${Q2.port}`, 'move.example']);
    const sent = bed.sw.take();
    assert.deepEqual(sent.map((m) => m.type), ['flow_mod', 'flow_mod', 'packet_out'], 'flows (one transaction, with its barrier), then the datagram');
    const out = packetOuts(sent)[0]!;
    assert.deepEqual(out.actions, [{ type: 'output', port: Q2.ofport }]);
    const f = parseFrame(out.data);
    assert.ok(f.ok);
    assert.deepEqual([f.value.eth.dst, f.value.ipv4!.dst, f.value.payload.equals(d!)], [Q2.mac, Q2.ip, true]);
    assert.deepEqual([bed.app.stats.migrated, bed.app.stats.forwarded, bed.app.stats.held, bed.app.size.held], [1, 0, 1, 0]);
  });

  it('FORWARD goes to the primary; a MIGRATE alert\'s sid picks its sidBackends entry', async () => {
    bed = new QuicBed();
    await bed.ready();
    const a = { ...QCLIENT, port: 40001 };
    const b = { ...QCLIENT, port: 40002 };
    bed.fromClient(clientInitials({ sni: 'x' })[0]!, a);
    bed.fromClient(clientInitials({ sni: 'y' })[0]!, b);
    let done = steered(bed);
    bed.app.verdictForFlow({ srcIp: a.ip, srcPort: a.port, dstIp: Q1.ip, dstPort: Q1.port }, { verdict: 'FORWARD', source: 'builtin' });
    assert.equal((await done).backend, 'server1');
    done = steered(bed);
    bed.app.verdictForFlow({ srcIp: b.ip, srcPort: b.port, dstIp: Q1.ip, dstPort: Q1.port }, { verdict: 'MIGRATE', source: 'builtin', sid: 3 });
    const c = await done;
    assert.deepEqual([c.backend, c.backendAddress], ['server3', `${Q3.ip}:8443`]);
    // A later verdict for a decided client changes nothing.
    bed.app.verdictForFlow({ srcIp: b.ip, srcPort: b.port, dstIp: Q1.ip, dstPort: Q1.port }, { verdict: 'FORWARD', source: 'snort' });
    assert.equal(bed.app.stats.duplicateVerdicts, 1);
    assert.equal(bed.app.verdictForFlow({ srcIp: '10.9.9.9', srcPort: 1, dstIp: Q1.ip, dstPort: Q1.port }, { verdict: 'FORWARD', source: 'x' }), undefined);
  });

  it('the verdict timeout applies the service\'s default verdict', async () => {
    bed = new QuicBed([quicService({ verdictTimeoutMs: 20, defaultVerdict: 'MIGRATE' })]);
    await bed.ready();
    bed.fromClient(clientInitials({ sni: 'slow.example' })[0]!);
    const c = await steered(bed);
    assert.deepEqual([c.backend, c.verdict?.source, bed.app.stats.verdictTimeouts], ['server2', 'timeout', 1]);
  });

  it('a ClientHello over two datagrams: read once both are there, both released in order', async () => {
    bed = new QuicBed();
    await bed.ready();
    const [d1, d2] = clientInitials({ sni: 'split.example', split: true });
    let read = false;
    bed.app.on('initial', () => { read = true; });
    bed.fromClient(d1!);
    assert.equal(read, false);
    const initial = bed.next('initial');
    bed.fromClient(d2!);
    assert.equal(((await initial)[1] as { sni: string }).sni, 'split.example');
    const done = steered(bed);
    bed.app.verdictForFlow({ srcIp: QCLIENT.ip, srcPort: QCLIENT.port, dstIp: Q1.ip, dstPort: Q1.port }, { verdict: 'MIGRATE', source: 'builtin' });
    await done;
    const outs = packetOuts(bed.sw.take());
    assert.deepEqual(outs.map((p) => parseFrame(p.data).ok && (parseFrame(p.data) as { value: { payload: Buffer } }).value.payload.equals(d1!)), [true, false]);
    assert.ok((parseFrame(outs[1]!.data) as { ok: true; value: { payload: Buffer } }).value.payload.equals(d2!));
  });

  it('after the verdict, datagrams that still reach the controller are passed on rewritten, both ways; an idled-out flow ends the client', async () => {
    bed = new QuicBed();
    await bed.ready();
    bed.fromClient(clientInitials({ sni: 'x' })[0]!);
    const done = steered(bed);
    bed.app.verdictForFlow({ srcIp: QCLIENT.ip, srcPort: QCLIENT.port, dstIp: Q1.ip, dstPort: Q1.port }, { verdict: 'MIGRATE', source: 'builtin' });
    const c = await done;
    bed.sw.take();
    const short = Buffer.concat([Buffer.from([0x40]), randomBytes(60)]);
    assert.equal(bed.fromClient(short), true);
    assert.equal(bed.packetIn(udpFrame(Q2, QCLIENT, Buffer.from('from server 2')), Q2.ofport), true);
    const [toBackend, toClient] = packetOuts(bed.sw.take());
    assert.deepEqual(toBackend!.actions, [{ type: 'output', port: Q2.ofport }]);
    assert.deepEqual(toClient!.actions, [{ type: 'output', port: QCLIENT.ofport }]);
    const back = parseFrame(toClient!.data);
    assert.ok(back.ok);
    assert.deepEqual([back.value.ipv4!.src, back.value.udp!.srcPort, back.value.eth.src], [Q1.ip, Q1.port, Q1.mac]);
    assert.equal(bed.app.stats.strays, 2);
    // Another client of server 2's port is not ours: plain forwarding.
    assert.equal(bed.packetIn(udpFrame(Q2, { ...QCLIENT, port: 5555 }, Buffer.from('x')), Q2.ofport, quicConnCookie(0) & ~(0xffn << 48n)), false);
    const closed = bed.next('closed');
    bed.app.flowRemoved(bed.sw.asChannel(), { type: 'flow_removed', xid: 0, cookie: quicConnCookie(c.id), priority: PRIORITY.connection, reason: 0, tableId: 1, durationSec: 1, durationNsec: 0, idleTimeout: 30, hardTimeout: 0, packetCount: 1n, byteCount: 1n, match: {} });
    await closed;
    assert.deepEqual(flowMods(bed.sw.take()).map((f) => [f.command, f.cookie]), [['delete', quicConnCookie(c.id)]]);
    assert.deepEqual(bed.app.size, { held: 0, tracked: 0, heldBytes: 0 });
    // The tuple is unknown again, its DCID known to nobody: its short-header packets are dropped.
    assert.equal(bed.fromClient(short), true);
    assert.equal(bed.app.stats.dropped.unknown_cid, 1);
    assert.deepEqual(bed.sw.take(), []);
  });

  it('drops and counts datagrams that start no connection, sending nothing', async () => {
    bed = new QuicBed();
    await bed.ready();
    const [good] = clientInitials({ sni: 'a' });
    const broken = Buffer.from(good!);
    broken[40]! ^= 0xff;
    for (const p of [Buffer.alloc(0), Buffer.from([0x41, 2, 3]), good!.subarray(0, 600), Buffer.concat([Buffer.from([0xc0, 0xff, 0, 0, 0x99, 0, 0]), Buffer.alloc(1300)]), broken]) {
      assert.equal(bed.fromClient(p), true);
    }
    assert.deepEqual(bed.app.stats.dropped, { short_header: 2, too_small: 1, unsupported_version: 1, not_initial: 0, bad_initial: 1, unknown_cid: 0, too_many_paths: 0 });
    assert.deepEqual(bed.sw.take(), []);
    assert.deepEqual(bed.app.size, { held: 0, tracked: 0, heldBytes: 0 });
    assert.equal(bed.packetIn(udpFrame(QCLIENT, { ...Q1, port: 53 }, Buffer.from('dns')), QCLIENT.ofport), false, 'not a QUIC service: not the app\'s');
  });

  it('refuses new clients beyond its budgets (they retransmit), and holds no more than its caps of one client', async () => {
    bed = new QuicBed([quicService()], { maxHeld: 2, maxHeldPerSource: 1, hold: { maxDatagrams: 2, maxBytes: 64 * 1024 } });
    await bed.ready();
    const other = { ...QCLIENT, ip: '10.0.0.20', port: 1 };
    bed.fromClient(clientInitials({ sni: 'a', split: true })[0]!);
    bed.fromClient(clientInitials({ sni: 'b' })[0]!, { ...QCLIENT, port: 2 });
    bed.fromClient(clientInitials({ sni: 'c' })[0]!, other);
    bed.fromClient(clientInitials({ sni: 'd' })[0]!, { ...other, ip: '10.0.0.21' });
    assert.deepEqual([bed.app.stats.held, bed.app.stats.refusedPerSource, bed.app.stats.refusedFull], [2, 1, 1]);
    const [, d2] = clientInitials({ sni: 'a', split: true });
    bed.fromClient(d2!); // another DCID: breaks the Initial, not held
    assert.equal(bed.app.stats.unreadableInitials, 1);
  });

  it('holds no more bytes for all clients together than its budget', async () => {
    const [d] = clientInitials({ sni: 'a' });
    const frameLen = udpFrame(QCLIENT, Q1, d!).length;
    bed = new QuicBed([quicService()], { maxHeldBytes: 2 * frameLen + 10 });
    await bed.ready();
    bed.fromClient(d!);
    bed.fromClient(d!); // a retransmission: held
    assert.deepEqual(bed.app.size, { held: 1, tracked: 1, heldBytes: 2 * frameLen });
    bed.fromClient(d!); // over the budget: dropped
    bed.fromClient(clientInitials({ sni: 'b' })[0]!, { ...QCLIENT, port: 7 }); // a new client: refused
    assert.deepEqual([bed.app.stats.droppedHeld, bed.app.stats.refusedFull], [1, 1]);
    const done = bed.next('steered');
    bed.app.verdictForFlow({ srcIp: QCLIENT.ip, srcPort: QCLIENT.port, dstIp: Q1.ip, dstPort: Q1.port }, { verdict: 'FORWARD', source: 'builtin' });
    await done;
    assert.deepEqual(bed.app.size, { held: 0, tracked: 1, heldBytes: 0 });
  });

  it('finds an unknown backend with an ARP probe; one it cannot find sends the client to the primary', async () => {
    bed = new QuicBed([quicService()], { locateTimeoutMs: 50 }, [Q1]);
    await bed.ready();
    bed.fromClient(clientInitials({ sni: 'a' })[0]!);
    let done = steered(bed);
    bed.app.verdictForFlow({ srcIp: QCLIENT.ip, srcPort: QCLIENT.port, dstIp: Q1.ip, dstPort: Q1.port }, { verdict: 'MIGRATE', source: 'builtin' });
    const probe = packetOuts(bed.sw.take());
    assert.equal(probe.length, 1);
    assert.deepEqual(probe[0]!.actions, [{ type: 'output', port: OFPP.FLOOD }]);
    assert.equal(parseFrame(probe[0]!.data).ok && (parseFrame(probe[0]!.data) as { value: { arp?: { targetIp: string } } }).value.arp?.targetIp, Q2.ip);
    bed.learning.learnHost(Q2.ip, { mac: Q2.mac, dpid: bed.sw.describe(), port: Q2.ofport, seen: Date.now() });
    assert.equal((await done).backend, 'server2');
    bed.fromClient(clientInitials({ sni: 'b' })[0]!, { ...QCLIENT, port: 3 });
    done = steered(bed);
    bed.app.verdictForFlow({ srcIp: QCLIENT.ip, srcPort: 3, dstIp: Q1.ip, dstPort: Q1.port }, { verdict: 'MIGRATE', source: 'builtin', sid: 3 });
    assert.equal((await done).backend, 'server1');
    assert.deepEqual([bed.app.stats.locateFailures, bed.app.stats.fallbacksToPrimary], [1, 1]);
  });

  it('a switch that refuses the NAT flows drops what was held; the client\'s retransmission starts afresh', async () => {
    bed = new QuicBed();
    await bed.ready();
    bed.sw.refuse = () => new Error('table full');
    const [d] = clientInitials({ sni: 'a' });
    bed.fromClient(d!);
    const failed = bed.next('failed');
    bed.app.verdictForFlow({ srcIp: QCLIENT.ip, srcPort: QCLIENT.port, dstIp: Q1.ip, dstPort: Q1.port }, { verdict: 'FORWARD', source: 'builtin' });
    await failed;
    assert.deepEqual([bed.app.stats.installFailures, bed.app.size.tracked], [1, 0]);
    assert.deepEqual(packetOuts(bed.sw.take()), []);
    bed.sw.refuse = undefined;
    bed.fromClient(d!);
    assert.equal(bed.app.size.held, 1);
  });

  it('switchGone forgets the switch\'s clients and their timers', async () => {
    bed = new QuicBed([quicService({ verdictTimeoutMs: 20 })]);
    await bed.ready();
    bed.fromClient(clientInitials({ sni: 'a' })[0]!);
    bed.app.switchGone(bed.sw.asChannel());
    assert.deepEqual(bed.app.size, { held: 0, tracked: 0, heldBytes: 0 });
    await new Promise((r) => setTimeout(r, 40));
    assert.equal(bed.app.stats.verdictTimeouts, 0);
  });

  it('view(): the services, the counters and the clients, as GET /api/quic shows them', async () => {
    bed = new QuicBed();
    await bed.ready();
    bed.fromClient(clientInitials({ sni: 'seen.example' })[0]!);
    bed.fromClient(Buffer.from([0x40, 1]), { ...QCLIENT, port: 40009 });
    const v = bed.app.view();
    assert.deepEqual(v.services, [{ name: 'web', address: `${Q1.ip}:${Q1.port}`, primary: 'server1', migrateTo: 'server2', defaultVerdict: 'FORWARD',
      backends: [[Q1, 'server1'], [Q2, 'server2'], [Q3, 'server3']].map(([n, name]) => ({ name, address: `${(n as QNode).ip}:${(n as QNode).port}` })) }]);
    assert.deepEqual([v.held, v.stats.held, v.stats.dropped.short_header], [1, 1, 1]);
    assert.deepEqual(v.connections.map((c) => [c.phase, c.sni, c.version, c.heldDatagrams]), [['held', 'seen.example', '0x00000001', 1]]);
    assert.doesNotThrow(() => JSON.stringify(v));
  });

  it('new connection ids start above those of NAT flows found on a connecting switch', async () => {
    bed = new QuicBed();
    await bed.app.switchReady(bed.sw.asChannel(), [{ cookie: quicConnCookie(41) } as never]);
    const held = bed.next('held');
    bed.fromClient(clientInitials({ sni: 'a' })[0]!);
    assert.equal(((await held)[0] as QuicConnView).id, 42);
  });

  it('fuzzed datagrams (random, mutated Initials, every truncation) never throw and never leave state behind', async () => {
    bed = new QuicBed([quicService({ verdictTimeoutMs: 600000 })]);
    await bed.ready();
    const seeds = [...clientInitials({ sni: 'a.example' }), ...clientInitials({ sni: 'b.example', split: true }), ...clientInitials({ version: QUIC_V2 })];
    let port = 1;
    const deliver = (p: Buffer) => {
      const client = { ...QCLIENT, port: (port++ % 60000) + 1 };
      assert.equal(bed.fromClient(p, client), true);
      bed.fromClient(Buffer.from(p), client); // and again, as a later datagram of the same client
    };
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 1600 }).map((a) => Buffer.from(a)), overwritten(seeds)), (p) => { deliver(p); }), { numRuns: 400 });
    for (const s of seeds) for (let n = 0; n < s.length; n += 97) deliver(s.subarray(0, n));
    // Rubbish frames, not just rubbish payloads.
    for (let i = 0; i < 200; i++) bed.packetIn(randomBytes(i * 7), 2);
    assert.equal(bed.app.stats.errors, 0);
    bed.app.forget('test over');
    assert.deepEqual(bed.app.size, { held: 0, tracked: 0, heldBytes: 0 });
  });
});

describe('QUIC services: analyzers', () => {
  const RULES = [
    'alert quic any any -> any any (msg:"MIGRATE move"; quic.sni; content:"move.example"; sid:1500001; rev:1;)',
    'alert quic any any -> any any (msg:"MIGRATE three"; quic.sni; content:"three.example"; sid:1500003; rev:1;)',
    'alert quic any any -> any any (msg:"FORWARD stay"; quic.sni; content:"stay.example"; sid:1500002; rev:1;)',
  ].join('\n');
  let bed: QuicBed;
  let bridge: AnalyzerBridge;
  afterEach(async () => { bed?.stop(); await bridge?.stop(); });

  async function withBuiltin(defaultVerdict: 'FORWARD' | 'MIGRATE', ids = false): Promise<void> {
    bed = new QuicBed([quicService({ defaultVerdict, verdictTimeoutMs: 600000, sidBackends: { 1500003: 'server3' } })]);
    const engine = new HandoffEngine([], { maxConnections: 10, handshakeTimeoutMs: 1000, replayTimeoutMs: 100, closeGraceMs: 10, revalidateMs: 0, switchGraceMs: 0 }, bed.learning, silentLogger);
    bridge = new AnalyzerBridge({ builtin: { rules: [], vars: {} }, ...(ids ? { suricata: { socket: `/tmp/tmt-unused-${randomBytes(4).toString('hex')}.sock`, mode: '0600' } } : {}) } as never, engine, silentLogger, bed.app);
    const r = parseRules(RULES, { file: 'quic.rules' });
    assert.deepEqual(r.errors, []);
    bridge.builtin!.setRules(r.rules);
    await bed.ready();
  }

  for (const [sni, backend] of [['move.example', 'server2'], ['stay.example', 'server1'], ['three.example', 'server3']] as const) {
    it(`the built-in matcher's QUIC rules decide on the Initial: ${sni} → ${backend}`, async () => {
      await withBuiltin('MIGRATE');
      const done = bed.next('steered');
      bed.fromClient(clientInitials({ sni })[0]!);
      const c = (await done)[0] as QuicConnView;
      assert.deepEqual([c.backend, c.verdict?.source], [backend, 'builtin']);
      assert.equal(bridge.builtin!.stats.alerts, 1);
    });
  }

  it('no rule matched and no IDS listening: the default verdict at once', async () => {
    await withBuiltin('MIGRATE');
    const done = bed.next('steered');
    bed.fromClient(clientInitials({ sni: 'other.example' })[0]!);
    const c = (await done)[0] as QuicConnView;
    assert.deepEqual([c.backend, c.verdict?.source], ['server2', 'builtin (no rule matched)']);
  });

  it('with an IDS configured, no match waits for it; its alert for the client\'s 4-tuple decides, not the TCP engine', async () => {
    await withBuiltin('FORWARD', true);
    bed.fromClient(clientInitials({ sni: 'other.example' })[0]!);
    assert.equal(bed.app.size.held, 1, 'still held: the IDS may answer');
    const done = bed.next('steered');
    const suricata = bridge.sources.find((s) => s.name === 'suricata')! as unknown as { emit(ev: string, a: unknown): void };
    suricata.emit('alert', { source: 'suricata', verdict: 'MIGRATE', msg: 'MIGRATE x', gid: 1, sid: 1500003, rev: 1, time: new Date(), flow: { srcIp: QCLIENT.ip, srcPort: QCLIENT.port, dstIp: Q1.ip, dstPort: Q1.port } });
    const c = (await done)[0] as QuicConnView;
    assert.deepEqual([c.backend, c.verdict?.source, c.verdict?.sid], ['server3', 'suricata', 1500003]);
    assert.equal(bridge.stats.unknownConnection, 0);
  });
});
