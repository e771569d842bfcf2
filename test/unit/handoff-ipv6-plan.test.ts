// IPv6 in the handoff's pure parts: the segments the controller builds, the flow plan and its
// inverse (adoption), connection keys and the state note. IPv4 stays as it was (the other
// handoff tests pin it); here each part is checked for IPv6 and against its IPv4 twin.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  adoptConnection, bypassFlow, clientToServiceMatch, backendToClientMatch, connectionFlows, deleteBypassFlow, flowsMatchPlan, freezeFlows, interceptFlows,
  type AdoptionContext, type ConnectionFlowSpec, type ConnectionMeta,
} from '../../controller/handoff/flow-plan.ts';
import { replayAck, replaySyn, resetFor, resetReply, synFrameOf, type Endpoint } from '../../controller/handoff/segments.ts';
import { tupleKey } from '../../controller/handoff/connection.ts';
import { decodeRecord, encodeRecord, RecordError, type ConnectionRecord, type SynRecord } from '../../controller/handoff/connection-record.ts';
import { buildTcp6Frame, buildTcpFrame, parseFrame, verifyChecksums } from '../../controller/packet/index.ts';
import { encodeMessage, type Action, type OfpMessage } from '../../controller/openflow/index.ts';
import { asFlowStats } from '../lib/scripted-switch.ts';

type FlowMod = Extract<OfpMessage, { type: 'flow_mod' }>;
type Spec = ConnectionFlowSpec & { meta: ConnectionMeta };

const fm = (m: OfpMessage) => m as FlowMod;
const actionsOf = (m: OfpMessage): Action[] => (fm(m).instructions[0] as { actions: Action[] }).actions;

function checksumsGood(b: Buffer): void {
  const v = verifyChecksums(b);
  assert.ok(v.ok && v.value.ip && v.value.l4 && v.value.l4Checked, JSON.stringify(v));
}

const SYN: SynRecord = { isn: 0xfedcba98 | 0 /* SynRecord.isn is kept signed */, window: 64800, options: '020405a00402080a0000000100000000', tos: 0x28, ttl: 57, ecn: true };
const client6: Endpoint = { mac: '02:00:00:00:00:02', ip: '2001:db8::2', port: 40000 };
const service6: Endpoint = { mac: '02:00:00:00:00:01', ip: '2001:db8::1', port: 5001 };
const target6: Endpoint = { mac: '02:00:00:00:00:03', ip: '2001:db8::3', port: 6000 };

describe('handoff segments, IPv6', () => {
  it('the replayed SYN: client address and port to the target, ISN, options, ECN, traffic class and hop limit from the record', () => {
    const f = replaySyn(SYN, { mss: 1440, wscale: 7, sackPermitted: true, timestamps: false, ecn: true }, client6, target6, 0x01020304);
    checksumsGood(f);
    const p = parseFrame(f);
    assert.ok(p.ok);
    const { ipv6, tcp, eth } = p.value;
    assert.ok(ipv6 && tcp && !p.value.ipv4);
    assert.deepEqual([eth.src, eth.dst, ipv6.src, ipv6.dst, tcp.srcPort, tcp.dstPort], [client6.mac, target6.mac, client6.ip, target6.ip, 40000, 6000]);
    assert.deepEqual([ipv6.trafficClass, ipv6.hopLimit, tcp.seq, tcp.ack, tcp.window], [0x28, 57, 0x01020304, 0, 64800]);
    assert.ok(tcp.flagSet.syn && tcp.flagSet.ece && tcp.flagSet.cwr && !tcp.flagSet.ack);
    // Timestamps were not accepted by server 1: the replay offers MSS and SACK-permitted only.
    assert.deepEqual(tcp.options.map((o) => o.kind).filter((k) => k !== 'eol' && k !== 'nop'), ['mss', 'sack_permitted']);
  });

  it('the recorded SYN rebuilt, the third handshake segment and the RST to the backend left', () => {
    const syn = synFrameOf(SYN, client6, service6);
    checksumsGood(syn);
    const s = parseFrame(syn);
    assert.ok(s.ok && s.value.ipv6!.dst === service6.ip && s.value.tcp!.seq === SYN.isn >>> 0);
    const l4 = s.value.l4Offset!;
    assert.equal(syn.subarray(l4 + 20, l4 + s.value.tcp!.headerLength).toString('hex'), SYN.options);
    assert.equal(s.value.ipv6!.hopLimit, 57);

    const ack = replayAck(client6, target6, 0x11111111, 0x22222222, 502);
    checksumsGood(ack);
    const a = parseFrame(ack);
    assert.ok(a.ok && a.value.ipv6);
    assert.deepEqual([a.value.tcp!.seq, a.value.tcp!.ack, a.value.tcp!.window, a.value.tcp!.flagSet.ack, a.value.ipv6.hopLimit], [0x11111111, 0x22222222, 502, true, 64]);

    const rst = resetFor(client6, service6, 0xfffffff0);
    checksumsGood(rst);
    const r = parseFrame(rst);
    assert.ok(r.ok && r.value.ipv6 && r.value.tcp!.flagSet.rst && !r.value.tcp!.flagSet.ack);
    assert.deepEqual([r.value.ipv6.src, r.value.ipv6.dst, r.value.tcp!.seq, r.value.tcp!.dstPort], [client6.ip, service6.ip, 0xfffffff0, 5001]);
  });

  it('IPv6 frames equal what buildTcp6Frame gives; IPv4 ones still equal buildTcpFrame byte for byte', () => {
    assert.ok(replayAck(client6, target6, 1, 2, 3).equals(buildTcp6Frame({
      ethSrc: client6.mac, ethDst: target6.mac, ipSrc: client6.ip, ipDst: target6.ip, srcPort: 40000, dstPort: 6000, seq: 1, ack: 2, flags: { ack: true }, window: 3,
    })));
    const c4 = { mac: client6.mac, ip: '10.0.0.2', port: 40000 };
    const t4 = { mac: target6.mac, ip: '10.0.0.3', port: 6000 };
    assert.ok(replayAck(c4, t4, 1, 2, 3).equals(buildTcpFrame({
      ethSrc: c4.mac, ethDst: t4.mac, ipSrc: c4.ip, ipDst: t4.ip, srcPort: 40000, dstPort: 6000, seq: 1, ack: 2, flags: { ack: true }, window: 3,
    })));
    const syn4 = synFrameOf(SYN, c4, t4);
    const p = parseFrame(syn4);
    assert.ok(p.ok && p.value.ipv4!.tos === 0x28 && p.value.ipv4!.ttl === 57);
  });

  it('resetReply answers an IPv6 segment of no connection from the address it was sent to (RFC 9293 §3.10.7.1)', () => {
    const data = parseFrame(buildTcp6Frame({
      ethSrc: client6.mac, ethDst: service6.mac, ipSrc: client6.ip, ipDst: service6.ip, srcPort: 40000, dstPort: 5001,
      seq: 100, ack: 200, flags: { ack: true, psh: true }, window: 9, payload: Buffer.from('hello'),
    }));
    assert.ok(data.ok);
    const r1 = resetReply(data.value);
    checksumsGood(r1);
    const p1 = parseFrame(r1);
    assert.ok(p1.ok && p1.value.ipv6);
    assert.deepEqual([p1.value.eth.src, p1.value.ipv6.src, p1.value.ipv6.dst, p1.value.tcp!.srcPort, p1.value.tcp!.seq], [service6.mac, service6.ip, client6.ip, 5001, 200]);
    assert.ok(p1.value.tcp!.flagSet.rst && !p1.value.tcp!.flagSet.ack);

    const syn = parseFrame(synFrameOf(SYN, client6, service6));
    assert.ok(syn.ok);
    const p2 = parseFrame(resetReply(syn.value));
    assert.ok(p2.ok && p2.value.tcp!.flagSet.rst && p2.value.tcp!.flagSet.ack);
    assert.equal(p2.value.tcp!.ack, (SYN.isn + 1) >>> 0);
  });

  it('a mixed-family pair is refused (throws), as an invalid address always was', () => {
    assert.throws(() => replayAck(client6, { mac: target6.mac, ip: '10.0.0.3', port: 1 }, 1, 2, 3));
  });
});

const META: ConnectionMeta = {
  serviceName: 'echo', backendName: 'server2', migrations: 1, createdAt: 1_790_000_000_123,
  syn: { isn: 0xfedcba98 | 0 /* SynRecord.isn is kept signed */, window: 64240, options: '020405a00402080a', tos: 0, ttl: 64 },
  synAck: { mss: 1440, wscale: 7, sackPermitted: true, timestamps: false, ecn: false },
};

const spec6 = (over: Partial<Spec> = {}): Spec => ({
  id: 9, idleTimeout: 30, mode: 'fastpath', ackDelta: 1000,
  client: { mac: '02:00:00:00:00:02', ip: '2001:db8::2', port: 40000, ofport: 2 },
  service: { mac: '02:00:00:00:00:01', ip: '2001:db8::1', port: 5001 },
  backend: { mac: '02:00:00:00:00:03', ip: '2001:db8::3', port: 5001, ofport: 3 },
  mirrorPort: undefined, inspect: false, meta: META,
  ...over,
});

const ctx = (s: Spec): AdoptionContext => ({
  mode: s.mode, service: (name) => (name === 'echo' ? { mirrorPort: s.mirrorPort, inspect: !!s.inspect } : undefined),
});

describe('flow plan, IPv6', () => {
  it('connection matches are tcp6 on ipv6_src/ipv6_dst; the NAT rewrites set ipv6_dst / ipv6_src', () => {
    const s = spec6();
    assert.deepEqual(clientToServiceMatch(s), { inPort: 2, ethType: 0x86dd, ipProto: 6, ipv6Src: '2001:db8::2', ipv6Dst: '2001:db8::1', tcpSrc: 40000, tcpDst: 5001 });
    assert.deepEqual(backendToClientMatch(s), { inPort: 3, ethType: 0x86dd, ipProto: 6, ipv6Src: '2001:db8::3', ipv6Dst: '2001:db8::2', tcpSrc: 5001, tcpDst: 40000 });
    const [c2s, s2c] = connectionFlows({ ...s, meta: undefined as never, backend: { ...s.backend, port: 6000 } });
    assert.deepEqual(actionsOf(c2s!), [
      { type: 'set_field', field: { ethDst: '02:00:00:00:00:03' } }, { type: 'set_field', field: { ipv6Dst: '2001:db8::3' } },
      { type: 'set_field', field: { tcpDst: 6000 } }, actionsOf(c2s!)[3]!, { type: 'output', port: 3 },
    ]);
    assert.deepEqual(actionsOf(s2c!).slice(0, 3), [
      { type: 'set_field', field: { ethSrc: '02:00:00:00:00:01' } }, { type: 'set_field', field: { ipv6Src: '2001:db8::1' } }, { type: 'set_field', field: { tcpSrc: 5001 } },
    ]);
    // The freeze flows match the same connection.
    for (const f of freezeFlows(s)) assert.equal(fm(f).match.ipv6Src, '2001:db8::2');
  });

  it('intercept flows: per-family matches for the service and each backend', () => {
    const flows = interceptFlows({ index: 1, service: { ip: '2001:db8::1', port: 5001 }, backends: [{ ip: '2001:db8::3', port: 5001 }, { ip: '10.0.0.4', port: 5001 }] });
    const matches = flows.map((f) => fm(f).match);
    assert.ok(matches.some((m) => m.ethType === 0x86dd && m.ipv6Dst === '2001:db8::1' && m.tcpDst === 5001 && m.ipv4Dst === undefined));
    assert.ok(matches.some((m) => m.ethType === 0x86dd && m.ipv6Src === '2001:db8::3' && m.tcpSrc === 5001));
    assert.ok(matches.some((m) => m.ethType === 0x0800 && m.ipv4Src === '10.0.0.4' && m.ipv6Src === undefined));
    assert.equal(flows.length, 3 * 4 + 2, 'a SYN flow per backend source');
  });

  it('bypass flows (and their delete) match IPv6 addresses', () => {
    const b = { inPort: 3, src: { ip: '2001:db8::3', port: 5001 }, dst: { ip: '2001:db8::9', port: 41000 } };
    const want = { inPort: 3, ethType: 0x86dd, ipProto: 6, ipv6Src: '2001:db8::3', ipv6Dst: '2001:db8::9', tcpSrc: 5001, tcpDst: 41000 };
    assert.deepEqual(fm(bypassFlow(b, 2)).match, want);
    assert.deepEqual(fm(deleteBypassFlow(b)).match, want);
  });

  describe('adoption reads IPv6 flows back into the same connection', () => {
    const kinds: [string, Spec][] = [
      ['migrated (NAT address + ack shift)', spec6()],
      ['migrated to another port on another host', spec6({ backend: { mac: '02:00:00:00:00:04', ip: 'fd00:1::4', port: 6000, ofport: 4 }, service: { mac: '02:00:00:00:00:01', ip: 'fd00:1::1', port: 5001 }, client: { mac: '02:00:00:00:00:02', ip: 'fd00:2::2', port: 40000, ofport: 2 } })],
      ['forwarded to server 1 (no rewrite)', spec6({ ackDelta: 0, backend: { mac: '02:00:00:00:00:01', ip: '2001:db8::1', port: 5001, ofport: 1 }, meta: { ...META, backendName: 'server1', migrations: 0 } })],
      ['migrated back to server 1 (same address, shifted)', spec6({ backend: { mac: '02:00:00:00:00:01', ip: '2001:db8::1', port: 5001, ofport: 1 }, ackDelta: 77 })],
      ['a delta past 2^31 (dec actions)', spec6({ ackDelta: 0xffffff00 })],
      ['relay (stock switch, shifted)', spec6({ mode: 'relay' })],
      ['with an IDS mirror and controller inspection', spec6({ mirrorPort: 5, inspect: true })],
      ['IPv4-mapped and link-local addresses', spec6({ client: { mac: '02:00:00:00:00:02', ip: '::ffff:10.0.0.2', port: 1, ofport: 2 }, service: { mac: '02:00:00:00:00:01', ip: 'fe80::1', port: 80 }, backend: { mac: '02:00:00:00:00:03', ip: 'fe80::3', port: 80, ofport: 3 } })],
      ['with the backend its last move left (reset again by an adopter)', spec6({ meta: { ...META, left: { mac: '02:00:00:00:00:01', ip: '2001:db8::1', port: 5001, ofport: 1, seq: 0xfffffff0 } } })],
    ];
    for (const [name, s] of kinds) {
      it(`${name}`, () => {
        const flows = asFlowStats(connectionFlows(s));
        const a = adoptConnection(flows, ctx(s));
        assert.ok(a.ok, a.ok ? '' : a.why);
        assert.equal(a.exact, true);
        assert.deepEqual(a.spec, s);
        assert.equal(flowsMatchPlan(a.spec, flows), true);
      });
    }

    it('a flow set of the other family is not the same connection', () => {
      const s = spec6();
      const v4 = { ...s, client: { ...s.client, ip: '10.0.0.2' }, service: { ...s.service, ip: '10.0.0.1' }, backend: { ...s.backend, ip: '10.0.0.3' } };
      assert.equal(flowsMatchPlan(v4, asFlowStats(connectionFlows(s))), false);
    });
  });

  // The patched ovs-ofctl knows the seq/ack actions; the check is skipped where it is not installed.
  const OFCTL = '/usr/local/bin/ovs-ofctl';
  it('ovs-ofctl reads the encoded IPv6 connection flows as tcp6 matches with ipv6 set_fields', function () {
    if (!existsSync(OFCTL)) this.skip();
    const s = spec6({ backend: { mac: '02:00:00:00:00:03', ip: '2001:db8::3', port: 6000, ofport: 3 }, meta: undefined as never });
    const [c2s, s2c] = connectionFlows(s).map((m) => execFileSync(OFCTL, ['ofp-print', encodeMessage({ ...m, xid: 1 }).toString('hex')], { encoding: 'utf8' }).trim());
    assert.match(c2s!, /ADD table:1 priority=200,tcp6,in_port=2,ipv6_src=2001:db8::2,ipv6_dst=2001:db8::1,tp_src=40000,tp_dst=5001 .*actions=set_field:02:00:00:00:00:03->eth_dst,set_field:2001:db8::3->ipv6_dst,set_field:6000->tcp_dst,inc_tcp_ack:1000,output:3$/);
    assert.match(s2c!, /ADD table:1 priority=200,tcp6,in_port=3,ipv6_src=2001:db8::3,ipv6_dst=2001:db8::2,tp_src=6000,tp_dst=40000 .*actions=set_field:02:00:00:00:00:01->eth_src,set_field:2001:db8::1->ipv6_src,set_field:5001->tcp_src,dec_tcp_seq:1000,output:2$/);
    const steer = execFileSync(OFCTL, ['ofp-print', encodeMessage({ ...interceptFlows({ index: 0, service: { ip: '2001:db8::1', port: 5001 }, backends: [] })[0]!, xid: 1 }).toString('hex')], { encoding: 'utf8' });
    assert.match(steer, /priority=100,tcp6,ipv6_dst=2001:db8::1,tp_dst=5001 .*actions=goto_table:1/);
  });
});

describe('connection keys, IPv6', () => {
  it('IPv4 keys are unchanged; IPv6 addresses are bracketed', () => {
    assert.equal(tupleKey('10.0.0.2', 40000, '10.0.0.1', 5001), '10.0.0.2:40000>10.0.0.1:5001');
    assert.equal(tupleKey('2001:db8::2', 40000, '2001:db8::1', 5001), '[2001:db8::2]:40000>[2001:db8::1]:5001');
    assert.equal(tupleKey('::ffff:10.0.0.2', 1, '10.0.0.1', 2), '[::ffff:10.0.0.2]:1>10.0.0.1:2');
  });

  it('tuples that differ only in where the address ends and the port begins get different keys', () => {
    // Without brackets these read alike to anyone who splits at the first ':' of each side.
    const a = tupleKey('2001:db8::1', 1, 'fd00::1', 2);
    const b = tupleKey('2001:db8::1:1', 1, 'fd00::1', 2);
    const c = tupleKey('2001:db8::', 11, 'fd00::1', 2);
    assert.equal(new Set([a, b, c]).size, 3);
    assert.notEqual(tupleKey('2001:db8::2', 40000, '2001:db8::1', 5001), tupleKey('2001:db8::1', 5001, '2001:db8::2', 40000));
  });
});

describe('state note, IPv6', () => {
  const rec: ConnectionRecord = {
    serviceName: 'echo', serviceMac: '02:00:00:00:00:01', clientMac: '02:00:00:00:00:02', backendName: 'server2', backendMac: '02:00:00:00:00:03',
    ackDelta: 5, migrations: 2, createdAt: 1_790_000_000_000, syn: { isn: 1, window: 2, options: '', tos: 0x28, ttl: 57 },
    left: { mac: '02:00:00:00:00:01', ip: '2001:db8::1', port: 5001, ofport: 1, seq: 0xfffffff0 },
  };

  it('the backend left, with an IPv6 address, round-trips', () => {
    assert.deepEqual(decodeRecord(encodeRecord(rec)), rec);
    const mapped = { ...rec, left: { ...rec.left!, ip: '::ffff:10.0.0.1' } };
    assert.deepEqual(decodeRecord(encodeRecord(mapped)), mapped);
    const v4 = { ...rec, left: { ...rec.left!, ip: '10.0.0.1' } };
    assert.deepEqual(decodeRecord(encodeRecord(v4)), v4);
  });

  it('a malformed address in it is still refused', () => {
    for (const ip of ['2001:db8:::1', '2001:db8::1%eth0', 'fe80::/64', '10.0.0.256', 'server1', '', '1:2:3:4:5:6:7:8:9']) {
      assert.throws(() => decodeRecord(encodeRecord({ ...rec, left: { ...rec.left!, ip } })), RecordError, ip);
    }
  });
});
