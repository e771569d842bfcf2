// IPv6 in the OpenFlow codec against Open vSwitch (stock build):
//  (a) our IPv6 matches and set_field actions as `ovs-ofctl ofp-print` reads them, exact text, and
//      the same fields as the API's ovs-ofctl spelling (flow-format.ts) shows them;
//  (b) a real ovs-vswitchd talking to a raw controller built on our codec: it accepts our IPv6
//      flows, classifies frames our packet codec built with them (Packet-In cookies), and the
//      IPv6 flows ovs-ofctl adds decode from its flow stats to the Match we expect.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import { run, waitFor } from '../lib/exec.ts';
import { Ovs } from '../lib/ovs.ts';
import { formatAction, formatMatch } from '../../controller/api/flow-format.ts';
import {
  decodeMessage, encodeMessage, flowMod, packetOut, splitMessages, OFP_NO_BUFFER, OFPCML_NO_BUFFER, OFPP,
  type Action, type FlowMod, type Match, type OfpMessage,
} from '../../controller/openflow/index.ts';
import {
  buildIcmpv6EchoFrame, buildNeighborAdvertisement, buildNeighborSolicitation, buildTcp6Frame, buildUdp6Frame, parseFrame,
} from '../../controller/packet/index.ts';

const OFCTL = '/usr/bin/ovs-ofctl';

async function ofpPrint(msg: OfpMessage): Promise<string> {
  const r = await run(OFCTL, ['ofp-print', encodeMessage(msg).toString('hex')], { allowFail: true });
  assert.equal(r.code, 0, `ofp-print failed: ${r.stderr}`);
  return r.stdout.trimEnd();
}

const apply = (...actions: Action[]) => [{ type: 'apply_actions' as const, actions }];

const CASES: Array<[string, FlowMod, string]> = [
  [
    'TCP/IPv6: addresses, CIDR mask, flow label, tcp_flags; set_field ipv6_src/dst/label',
    flowMod({
      xid: 1, priority: 10,
      match: {
        inPort: 1, ethType: 0x86dd, ipProto: 6, ipv6Src: '2001:db8::2', ipv6Dst: { value: '2001:db8::', mask: 'ffff:ffff::' },
        ipv6Flabel: { value: 0x10, mask: 0xf0 }, tcpDst: 5001, tcpFlags: { value: 2, mask: 0x12 },
      },
      instructions: apply(
        { type: 'set_field', field: { ipv6Dst: '2001:db8::3' } }, { type: 'set_field', field: { ipv6Src: '2001:db8::1' } },
        { type: 'set_field', field: { ipv6Flabel: 0x12345 } }, { type: 'output', port: 2 },
      ),
    }),
    'OFPT_FLOW_MOD (OF1.3) (xid=0x1): ADD priority=10,tcp6,in_port=1,ipv6_src=2001:db8::2,ipv6_dst=2001:db8::/32,ipv6_label=0x00010/0x000f0,' +
      'tp_dst=5001,tcp_flags=+syn-ack actions=set_field:2001:db8::3->ipv6_dst,set_field:2001:db8::1->ipv6_src,set_field:0x12345->ipv6_label,output:2',
  ],
  [
    'neighbour solicitation: icmpv6 type/code, nd_target, nd_sll; set_field nd_target',
    flowMod({
      xid: 2, match: { ethType: 0x86dd, ipProto: 58, icmpv6Type: 135, icmpv6Code: 0, ipv6NdTarget: 'fe80::2', ipv6NdSll: '02:00:00:00:00:01' },
      instructions: apply({ type: 'set_field', field: { ipv6NdTarget: 'fe80::9' } }, { type: 'output', port: OFPP.CONTROLLER, maxLen: 128 }),
    }),
    'OFPT_FLOW_MOD (OF1.3) (xid=0x2): ADD icmp6,icmp_type=135,icmp_code=0,nd_target=fe80::2,nd_sll=02:00:00:00:00:01 actions=set_field:fe80::9->nd_target,CONTROLLER:128',
  ],
  [
    'neighbour advertisement: nd_target in IPv4-mapped form, nd_tll (delete, all tables)',
    flowMod({ xid: 3, command: 'delete', tableId: 0xff, match: { ethType: 0x86dd, ipProto: 58, icmpv6Type: 136, ipv6NdTarget: '::ffff:10.0.0.1', ipv6NdTll: '02:00:00:00:00:02' } }),
    'OFPT_FLOW_MOD (OF1.3) (xid=0x3): DEL table:255 icmp6,icmp_type=136,nd_target=::ffff:10.0.0.1,nd_tll=02:00:00:00:00:02 actions=drop',
  ],
  [
    'UDP/IPv6 with a non-prefix address mask',
    flowMod({ xid: 4, match: { ethType: 0x86dd, ipProto: 17, ipv6Src: { value: '2001::1', mask: 'ffff::1' }, udpDst: 53 }, instructions: apply({ type: 'output', port: 3 }) }),
    'OFPT_FLOW_MOD (OF1.3) (xid=0x4): ADD udp6,ipv6_src=2001::1/ffff::1,tp_dst=53 actions=output:3',
  ],
  [
    'ICMPv6 echo, IPv4-compatible source (mixed notation, as inet_ntop prints it)',
    flowMod({ xid: 5, match: { ethType: 0x86dd, ipProto: 58, icmpv6Type: 128, ipv6Src: '::1.2.3.4' } }),
    'OFPT_FLOW_MOD (OF1.3) (xid=0x5): ADD icmp6,ipv6_src=::1.2.3.4,icmp_type=128 actions=drop',
  ],
  [
    'other IPv6 protocol (ESP)',
    flowMod({ xid: 6, match: { ethType: 0x86dd, ipProto: 50, ipv6Dst: 'fd00::1' } }),
    'OFPT_FLOW_MOD (OF1.3) (xid=0x6): ADD ipv6,ipv6_dst=fd00::1,nw_proto=50 actions=drop',
  ],
];

/** The IPv6-specific words of ovs-ofctl's match text (protocol shorthand and field=value). */
function ipv6Words(text: string): string[] {
  return text.split(',').filter((w) => /^(ipv6|tcp6|udp6|icmp6)$/.test(w) || /^(ipv6_|nd_|icmp_)/.test(w));
}

describe('ofp cross-check, IPv6: our encoder vs ovs-ofctl ofp-print', function () {
  before(function () {
    if (!existsSync(OFCTL)) throw new Error(`${OFCTL} missing: install openvswitch-switch`);
  });

  for (const [name, msg, expected] of CASES) {
    it(name, async () => {
      const text = await ofpPrint(msg);
      assert.equal(text, expected);
      // The API shows the same IPv6 words as ovs-ofctl (the order of the others is its own).
      const m = /^OFPT_FLOW_MOD \S+ \S+ (?:ADD|DEL) (?:table:\d+ )?(?:priority=\d+,)?(\S+) actions=(\S+)$/.exec(text);
      assert.ok(m, text);
      const ours = formatMatch(msg.match).split(',');
      for (const w of ipv6Words(m[1]!)) assert.ok(ours.includes(w), `${w} not in ${ours.join(',')}`);
      const setFields = m[2]!.split(',').filter((a) => a.startsWith('set_field:'));
      const ourActions = msg.instructions.flatMap((i) => (i.type === 'apply_actions' ? i.actions : [])).map(formatAction);
      for (const a of setFields) assert.ok(ourActions.includes(a), `${a} not in ${ourActions.join(',')}`);
    });
  }

  it('OVS checks prerequisites in order: nd_target without icmpv6_type 135/136 is refused', async () => {
    const text = await ofpPrint(flowMod({ xid: 7, match: { ethType: 0x86dd, ipProto: 58, ipv6NdTarget: 'fe80::1' } }));
    assert.match(text, /decode error: OFPBMC_BAD_PREREQ/);
  });

  it('OVS does not implement OXM_OF_IPV6_EXTHDR (the codec has it; a flow using it is refused)', async () => {
    const text = await ofpPrint(flowMod({ xid: 8, match: { ethType: 0x86dd, ipv6Exthdr: 0x10 } }));
    assert.match(text, /decode error: OFPBMC_BAD_FIELD/);
  });

  it('OVS extracts from a neighbour solicitation we built the fields our parser reads', async () => {
    const ns = buildNeighborSolicitation({ ethSrc: '02:00:00:00:00:01', ipSrc: 'fe80::1', target: 'fe80::2' });
    const text = await ofpPrint(packetOut({ xid: 9, inPort: OFPP.CONTROLLER, actions: [{ type: 'output', port: OFPP.TABLE }], data: ns }));
    const p = parseFrame(ns);
    assert.ok(p.ok);
    const flow = text.split('\n')[1]!;
    for (const w of [
      `ipv6_src=${p.value.ipv6!.src}`, `ipv6_dst=${p.value.ipv6!.dst}`, `nw_ttl=${p.value.ipv6!.hopLimit}`, 'icmp_type=135', 'icmp_code=0',
      `nd_target=${p.value.icmpv6!.ndTarget}`, `nd_sll=${p.value.icmpv6!.sll}`, `icmp6_csum:${p.value.icmpv6!.checksum.toString(16)}`,
    ]) assert.ok(flow.includes(w), `${w} not in ${flow}`);
  });
});

/** A controller built on our codec alone: ovs-vswitchd connects to it. */
class RawController {
  readonly server = net.createServer();
  private sock?: net.Socket;
  private rx = Buffer.alloc(0);
  readonly received: OfpMessage[] = [];
  readonly errors: string[] = [];
  port = 0;

  async listen(): Promise<void> {
    this.server.on('connection', (s) => {
      this.sock = s;
      s.on('error', () => undefined);
      s.on('data', (d: Buffer) => this.onData(d));
      this.send({ type: 'hello', xid: 1, versions: [4] });
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  private onData(d: Buffer): void {
    this.rx = Buffer.concat([this.rx, d]);
    const s = splitMessages(this.rx);
    if (!s.ok) { this.errors.push(`framing: ${s.error.message}`); return; }
    this.rx = Buffer.from(s.value.rest);
    for (const raw of s.value.messages) {
      const r = decodeMessage(raw);
      if (!r.ok) { this.errors.push(`decode ${raw.toString('hex')}: ${r.error.message}`); continue; }
      if (r.value.type === 'echo_request') this.send({ type: 'echo_reply', xid: r.value.xid, data: r.value.data });
      this.received.push(r.value);
    }
  }

  get connected(): boolean { return this.sock !== undefined; }

  send(m: OfpMessage): void { this.sock!.write(encodeMessage(m)); }

  /** Waits for a message; an OFPT_ERROR for one of ours fails the wait. */
  async next<T extends OfpMessage>(pred: (m: OfpMessage) => m is T, what: string): Promise<T> {
    let found: T | undefined;
    await waitFor(() => {
      const err = this.received.find((m) => m.type === 'error');
      if (err) throw new Error(`switch error while waiting for ${what}: ${JSON.stringify(err, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`);
      const i = this.received.findIndex(pred);
      if (i >= 0) found = this.received.splice(i, 1)[0] as T;
      return found !== undefined;
    }, what, 10000);
    return found!;
  }

  async close(): Promise<void> {
    this.sock?.destroy();
    if (this.server.listening) { this.server.close(); await once(this.server, 'close'); }
  }
}

describe('ofp cross-check, IPv6: ovs-vswitchd and a raw controller on our codec', function () {
  this.timeout(60000);
  const br = `tmtbr6${process.pid % 10000}`;
  let ovs: Ovs | undefined;
  const ctl = new RawController();
  let xid = 100;

  before(async () => {
    await ctl.listen();
    ovs = await Ovs.start({ prefix: '/usr' });
    await ovs.addBridge(br, { controller: `tcp:127.0.0.1:${ctl.port}` });
    await waitFor(() => ctl.connected, 'ovs-vswitchd to connect');
    await ctl.next((m): m is Extract<OfpMessage, { type: 'hello' }> => m.type === 'hello', 'HELLO');
  });

  after(async () => {
    await ovs?.stop();
    await ctl.close();
  });

  /** Sends messages, then a barrier; resolves when the barrier is answered (fails on any OFPT_ERROR). */
  async function sendAll(...msgs: OfpMessage[]): Promise<void> {
    for (const m of msgs) ctl.send(m);
    const b = ++xid;
    ctl.send({ type: 'barrier_request', xid: b });
    await ctl.next((m): m is Extract<OfpMessage, { type: 'barrier_reply' }> => m.type === 'barrier_reply' && m.xid === b, 'BARRIER_REPLY');
  }

  const A = { mac: '02:00:00:00:00:0a', ip: '2001:db8::a' };
  const B = { mac: '02:00:00:00:00:0b', ip: '2001:db8::b' };
  const L2 = { ethSrc: A.mac, ethDst: B.mac, ipSrc: A.ip, ipDst: B.ip };
  // [cookie, match, a frame built by our packet codec that only this flow matches]
  const CLASSIFY: Array<[bigint, Match, Buffer]> = [
    [0x61n, { ethType: 0x86dd, ipProto: 6, ipv6Src: A.ip, ipv6Dst: { value: '2001:db8::', mask: 'ffff:ffff::' }, tcpDst: 5001, tcpFlags: { value: 2, mask: 0x12 } },
      buildTcp6Frame({ ...L2, srcPort: 40000, dstPort: 5001, seq: 1, ack: 0, flags: { syn: true }, window: 100, options: [{ kind: 'mss', value: 1440 }] })],
    [0x62n, { ethType: 0x86dd, ipProto: 17, ipv6Dst: B.ip, ipv6Flabel: 0xbeef, udpDst: 4789 },
      buildUdp6Frame({ ...L2, flowLabel: 0xbeef, srcPort: 1, dstPort: 4789, payload: Buffer.from('vxlan-ish') })],
    [0x63n, { ethType: 0x86dd, ipProto: 58, icmpv6Type: 135, icmpv6Code: 0, ipv6NdTarget: B.ip, ipv6NdSll: A.mac },
      buildNeighborSolicitation({ ethSrc: A.mac, ipSrc: A.ip, target: B.ip })],
    [0x64n, { ethType: 0x86dd, ipProto: 58, icmpv6Type: 136, ipv6NdTarget: B.ip, ipv6NdTll: B.mac },
      buildNeighborAdvertisement({ ethSrc: B.mac, ethDst: A.mac, ipSrc: B.ip, ipDst: A.ip, solicited: true })],
    [0x65n, { ethType: 0x86dd, ipProto: 58, icmpv6Type: 128, ipv6Src: A.ip },
      buildIcmpv6EchoFrame({ ...L2, type: 'request', id: 1, seq: 1, payload: Buffer.from('ping'), extHeaders: [{ kind: 'destination' }] })],
  ];

  it('accepts our IPv6 flows, and ovs-ofctl dump-flows lists them', async () => {
    await sendAll(...CLASSIFY.map(([cookie, match]) => flowMod({
      xid: ++xid, cookie, priority: 100, match,
      instructions: apply({ type: 'output', port: OFPP.CONTROLLER, maxLen: OFPCML_NO_BUFFER }),
    })));
    const dump = await ovs!.ofctl('-O', 'OpenFlow13', 'dump-flows', br);
    for (const [cookie] of CLASSIFY) assert.match(dump, new RegExp(`cookie=0x${cookie.toString(16)},`));
    assert.match(dump, /icmp6,icmp_type=135,icmp_code=0,nd_target=2001:db8::b,nd_sll=02:00:00:00:00:0a/);
    assert.match(dump, /udp6,ipv6_dst=2001:db8::b,ipv6_label=0x0beef,tp_dst=4789/);
    assert.deepEqual(ctl.errors, []);
  });

  it('classifies each frame our packet codec built with the flow meant for it', async () => {
    for (const [cookie, , frame] of CLASSIFY) {
      ctl.send(packetOut({ xid: ++xid, inPort: OFPP.CONTROLLER, actions: [{ type: 'output', port: OFPP.TABLE }], data: frame }));
      const pi = await ctl.next((m): m is Extract<OfpMessage, { type: 'packet_in' }> => m.type === 'packet_in', `PACKET_IN for cookie 0x${cookie.toString(16)}`);
      assert.equal(pi.cookie, cookie, `frame ${frame.toString('hex')} hit cookie 0x${pi.cookie.toString(16)}`);
      assert.ok(pi.data.equals(frame));
      assert.equal(pi.bufferId, OFP_NO_BUFFER);
    }
  });

  it('decodes the flow stats of IPv6 flows ovs-ofctl added', async () => {
    const flows: Array<[string, Match]> = [
      ['table=3,tcp6,ipv6_src=2001:db8::/ffff:ffff:0:0:ffff::,ipv6_dst=fd00::1,tp_src=80,actions=drop',
        { ethType: 0x86dd, ipProto: 6, ipv6Src: { value: '2001:db8::', mask: 'ffff:ffff:0:0:ffff::' }, ipv6Dst: 'fd00::1', tcpSrc: 80 }],
      ['table=3,icmp6,icmp_type=136,nd_target=FE80:0:0::0001,nd_tll=00:00:00:00:00:07,actions=drop',
        { ethType: 0x86dd, ipProto: 58, icmpv6Type: 136, ipv6NdTarget: 'fe80::1', ipv6NdTll: '00:00:00:00:00:07' }],
      ['table=3,ipv6,ipv6_label=0x12345,ipv6_src=::ffff:10.1.2.3,actions=drop',
        { ethType: 0x86dd, ipv6Src: '::ffff:10.1.2.3', ipv6Flabel: 0x12345 }],
    ];
    for (const [text] of flows) await ovs!.ofctl('-O', 'OpenFlow13', 'add-flow', br, text);
    const q = ++xid;
    ctl.send({
      type: 'multipart_request', xid: q, flags: 0,
      body: { kind: 'flow', tableId: 3, outPort: OFPP.ANY, outGroup: 0xffffffff, cookie: 0n, cookieMask: 0n, match: {} },
    });
    const reply = await ctl.next((m): m is Extract<OfpMessage, { type: 'multipart_reply' }> => m.type === 'multipart_reply' && m.xid === q, 'flow stats');
    assert.equal(reply.body.kind, 'flow');
    if (reply.body.kind !== 'flow') return;
    const got = reply.body.flows.map((f) => f.match);
    for (const [text, match] of flows) assert.ok(got.some((m) => isDeepStrictEqual(m, match)), `${text}: got ${JSON.stringify(got)}`);
    assert.deepEqual(ctl.errors, []);
  });
});
