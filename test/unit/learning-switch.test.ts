// The learning switch's host table (IPv4 and IPv6 addresses, what the handoff engine reads) and its
// flooding of broadcasts and IPv6 multicast (neighbour solicitations), on a fake switch channel.
import assert from 'node:assert/strict';
import { LearningSwitch, LEARNING_ND_COOKIE, type HostLocation } from '../../controller/apps/learning-switch.ts';
import { learntAddresses } from '../../controller/fabric/host-directory.ts';
import {
  buildArpFrame, buildIcmpv6EchoFrame, buildNeighborAdvertisement, buildNeighborSolicitation, buildUdpFrame, parseFrame, type ParsedFrame,
} from '../../controller/packet/index.ts';
import { OFPP, OFP_NO_BUFFER, type OfpMessage } from '../../controller/openflow/index.ts';
import type { SwitchConnection } from '../../controller/datapath/switch-connection.ts';
import { silentLogger } from '../../controller/log.ts';

const DPID = '00000000000000a1';
const M1 = '02:00:00:00:00:01', M2 = '02:00:00:00:00:02';
type PacketOut = Extract<OfpMessage, { type: 'packet_out' }>;

function parse(b: Buffer): ParsedFrame { const p = parseFrame(b); assert.ok(p.ok); return p.value; }

function rig() {
  const sent: OfpMessage[] = [];
  const sw = {
    features: { datapathId: 0xa1n }, send: (m: OfpMessage) => { sent.push(m); return 0; }, describe: () => DPID,
    transact: async (ms: OfpMessage[]) => { sent.push(...ms); },
  } as unknown as SwitchConnection;
  const ls = new LearningSwitch({ idleTimeout: 60, hardTimeout: 0, priority: 10 }, silentLogger);
  const events: [string, HostLocation][] = [];
  ls.on('host', (ip: string, loc: HostLocation) => events.push([ip, loc]));
  const packetIn = (port: number, frame: Buffer, cookie = 0n) => ls.packetIn(sw, { type: 'packet_in', xid: 0, bufferId: OFP_NO_BUFFER, totalLen: frame.length, reason: 0, tableId: 0, cookie, match: { inPort: port }, data: frame }, parse(frame));
  return { ls, sw, sent, events, packetIn };
}

const na = (spec: Parameters<typeof buildNeighborAdvertisement>[0]) => parse(buildNeighborAdvertisement(spec));

describe('host addresses a frame shows (learntAddresses)', () => {
  it('IPv4: the ARP sender or the IPv4 source, never 0.0.0.0', () => {
    assert.deepEqual(learntAddresses(parse(buildArpFrame({ op: 'request', ethSrc: M1, senderIp: '10.0.0.1', targetIp: '10.0.0.2' }))), ['10.0.0.1']);
    assert.deepEqual(learntAddresses(parse(buildArpFrame({ op: 'request', ethSrc: M1, senderIp: '0.0.0.0', targetIp: '10.0.0.2' }))), [], 'an ARP probe');
    assert.deepEqual(learntAddresses(parse(buildUdpFrame({ ethSrc: M1, ethDst: M2, ipSrc: '10.0.0.1', ipDst: '10.0.0.2', srcPort: 1, dstPort: 2 }))), ['10.0.0.1']);
    assert.deepEqual(learntAddresses(parse(buildUdpFrame({ ethSrc: M1, ethDst: 'ff:ff:ff:ff:ff:ff', ipSrc: '0.0.0.0', ipDst: '255.255.255.255', srcPort: 68, dstPort: 67 }))), [], 'a DHCP discover');
  });

  it('IPv6: any source but ::, in RFC 5952 text whatever the wire spelling', () => {
    const echo = parse(buildIcmpv6EchoFrame({ ethSrc: M1, ethDst: M2, ipSrc: 'FD00:0:0:0::0001', ipDst: 'fd00::2', type: 'request', id: 1, seq: 1 }));
    assert.deepEqual(learntAddresses(echo), ['fd00::1']);
    const ns = parse(buildNeighborSolicitation({ ethSrc: M1, ipSrc: 'fe80::1', target: 'fd00::2' }));
    assert.deepEqual(learntAddresses(ns), ['fe80::1'], 'a solicitation names its source, not its target');
    const dad = parse(buildNeighborSolicitation({ ethSrc: M1, ipSrc: '::', target: 'fd00::1' }));
    assert.deepEqual(learntAddresses(dad), [], 'duplicate address detection: the address is only tentative');
  });

  it('IPv6: a neighbour advertisement names its target too, unless a proxy\'s or corrupt', () => {
    assert.deepEqual(learntAddresses(na({ ethSrc: M1, ipSrc: 'fe80::1', target: 'fd00::1' })), ['fe80::1', 'fd00::1'], 'unsolicited, after DAD');
    assert.deepEqual(learntAddresses(na({ ethSrc: M1, ipSrc: 'fd00::1' })), ['fd00::1'], 'target = source: once');
    assert.deepEqual(learntAddresses(na({ ethSrc: M1, ipSrc: 'fe80::1', target: 'fd00::1', tll: null })), ['fe80::1', 'fd00::1'], 'no TLL option: the frame\'s source MAC');
    assert.deepEqual(learntAddresses(na({ ethSrc: M1, ipSrc: 'fe80::1', target: 'fd00::9', tll: M2 })), ['fe80::1'], 'a proxy answering for another MAC');
    const bad = buildNeighborAdvertisement({ ethSrc: M1, ipSrc: 'fe80::1', target: 'fd00::1' });
    bad[parse(bad).l4Offset! + 2] ^= 0xff; // the ICMPv6 checksum
    assert.equal(parse(bad).icmpv6?.checksumOk, false);
    assert.deepEqual(learntAddresses(parse(bad)), ['fe80::1'], 'a receiver would discard it');
    assert.deepEqual(learntAddresses(na({ ethSrc: M1, ipSrc: 'fe80::1', target: 'ff02::1' })), ['fe80::1'], 'a multicast target is nobody\'s');
    assert.deepEqual(learntAddresses(na({ ethSrc: M1, ipSrc: 'fe80::1', target: 'ff::1' })), ['fe80::1', 'ff::1'], '00ff::1 is no multicast address');
  });
});

describe('learning switch', () => {
  it('learns IPv4 and IPv6 addresses into the host table, with a "host" event each', () => {
    const { ls, events, packetIn } = rig();
    packetIn(1, buildArpFrame({ op: 'request', ethSrc: M1, senderIp: '10.0.0.1', targetIp: '10.0.0.2' }));
    packetIn(1, buildIcmpv6EchoFrame({ ethSrc: M1, ethDst: M2, ipSrc: 'fd00::1', ipDst: 'fd00::2', type: 'request', id: 1, seq: 1 }));
    packetIn(2, buildNeighborAdvertisement({ ethSrc: M2, ipSrc: 'fe80::2', target: 'fd00::2' }));
    packetIn(2, buildNeighborSolicitation({ ethSrc: M2, ipSrc: '::', target: 'fd00::99' }));
    assert.deepEqual([...ls.hosts.keys()].sort(), ['10.0.0.1', 'fd00::1', 'fd00::2', 'fe80::2']);
    assert.deepEqual(events.map(([ip, loc]) => `${ip} ${loc.mac} ${loc.port}`), ['10.0.0.1 02:00:00:00:00:01 1', 'fd00::1 02:00:00:00:00:01 1', 'fe80::2 02:00:00:00:00:02 2', 'fd00::2 02:00:00:00:00:02 2']);
    assert.equal(ls.hosts.get('fd00::2')?.vlan, undefined, 'the learning switch knows no VLANs');
    assert.equal(ls.portForMac(DPID, M2), 2);
  });

  it('floods IPv6 multicast (a neighbour solicitation to 33:33:ff:…) as it floods broadcasts', () => {
    const { sent, packetIn } = rig();
    packetIn(2, buildArpFrame({ op: 'request', ethSrc: M2, senderIp: '10.0.0.2', targetIp: '10.0.0.1' })); // M2 known
    const ns = buildNeighborSolicitation({ ethSrc: M1, ipSrc: 'fd00::1', target: 'fd00::2' });
    assert.equal(parse(ns).eth.dst, '33:33:ff:00:00:02');
    sent.length = 0;
    packetIn(1, ns);
    assert.equal(sent.length, 1);
    const po = sent[0] as PacketOut;
    assert.equal(po.type, 'packet_out');
    assert.deepEqual(po.actions, [{ type: 'output', port: OFPP.FLOOD }]);
  });

  it('traps neighbour advertisements above its flows, learns their target, and passes them on without a flow', async () => {
    const { ls, sw, sent, packetIn } = rig();
    await ls.switchReady(sw);
    const trap = sent[0] as Extract<OfpMessage, { type: 'flow_mod' }>;
    assert.equal(trap.cookie, LEARNING_ND_COOKIE);
    assert.equal(trap.priority, 11, 'above the learning flows (10)');
    assert.deepEqual(trap.match, { ethType: 0x86dd, ipProto: 58, icmpv6Type: 136 });
    assert.deepEqual(trap.instructions, [{ type: 'apply_actions', actions: [{ type: 'output', port: OFPP.CONTROLLER, maxLen: 0xffff }] }]);
    packetIn(1, buildArpFrame({ op: 'request', ethSrc: M1, senderIp: '10.0.0.1', targetIp: '10.0.0.2' })); // M1 known at port 1
    sent.length = 0;
    packetIn(2, buildNeighborAdvertisement({ ethSrc: M2, ethDst: M1, ipSrc: 'fd00::2', ipDst: 'fd00::1', solicited: true }), LEARNING_ND_COOKIE);
    assert.equal(ls.hosts.get('fd00::2')?.port, 2);
    assert.deepEqual(sent.map((m) => m.type), ['packet_out'], 'no flow: the next advertisement is trapped anyway');
    assert.deepEqual((sent[0] as PacketOut).actions, [{ type: 'output', port: 1 }]);
  });
});
