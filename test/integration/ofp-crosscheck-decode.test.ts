// Cross-check our decoder against bytes OVS itself produced, in both directions:
//  (a) ovs-ofctl (the OVS client side) talking to a fake switch built on our codec;
//  (b) ovs-vswitchd (the switch side) talking to a raw controller built on our codec.
// Captured messages can be saved as fixtures (OFP_UPDATE_FIXTURES=1) for the unit tests.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { run } from '../lib/exec.ts';
import { ofctlFlowModAdd } from '../fixtures/ovs-captured/expected.ts';
import { Ovs } from '../lib/ovs.ts';
import { TestNet } from '../lib/netns.ts';
import {
  decodeMessage, encodeMessage, errorCodeName, errorTypeName, flowMod, splitMessages, OFP_NO_BUFFER, OFPC, OFPCML_NO_BUFFER, OFPFF, OFPMP, OFPP, OFPPR,
  OFPR, OFPRR, type MessageOf, type OfpMessage, type OfpMessageType, type PortDesc,
} from '../../controller/openflow/index.ts';

const FIXTURE_DIR = new URL('../fixtures/ovs-captured/', import.meta.url).pathname;
const OFCTL = '/usr/bin/ovs-ofctl';

function saveFixture(name: string, raw: Buffer): void {
  if (!process.env.OFP_UPDATE_FIXTURES) return;
  mkdirSync(FIXTURE_DIR, { recursive: true });
  writeFileSync(join(FIXTURE_DIR, `${name}.hex`), `${raw.toString('hex')}\n`);
}

interface Received { raw: Buffer; msg: OfpMessage }

/** Decodes every message of a TCP stream with our codec; decode failures fail the test. */
class Peer {
  readonly received: Received[] = [];
  private rx: Buffer = Buffer.alloc(0);
  private waiters: Array<{ pred: (m: OfpMessage) => boolean; resolve: (r: Received) => void }> = [];
  private consumed = new Set<Received>();
  readonly errors: string[] = [];

  constructor(readonly sock: net.Socket, private readonly onMessage: (p: Peer, r: Received) => void = () => undefined) {
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('error', () => undefined);
  }

  send(m: OfpMessage): void {
    this.sock.write(encodeMessage(m));
  }

  private onData(d: Buffer): void {
    this.rx = Buffer.concat([this.rx, d]);
    const s = splitMessages(this.rx);
    if (!s.ok) {
      this.errors.push(`framing: ${s.error.message}`);
      this.sock.destroy();
      return;
    }
    this.rx = Buffer.from(s.value.rest);
    for (const raw of s.value.messages) {
      const r = decodeMessage(raw);
      if (!r.ok) {
        this.errors.push(`decode ${raw.toString('hex')}: ${r.error.kind} ${r.error.message}`);
        continue;
      }
      const rec = { raw: Buffer.from(raw), msg: r.value };
      this.received.push(rec);
      this.onMessage(this, rec);
      const w = this.waiters.find((x) => x.pred(rec.msg));
      if (w) {
        this.waiters = this.waiters.filter((x) => x !== w);
        this.consumed.add(rec);
        w.resolve(rec);
      }
    }
  }

  /** The next (not yet consumed) message matching pred, already received or still to come. */
  next<T extends OfpMessageType>(type: T, pred: (m: MessageOf<T>) => boolean = () => true, timeoutMs = 10000): Promise<{ raw: Buffer; msg: MessageOf<T> }> {
    const match = (m: OfpMessage): boolean => m.type === type && pred(m as MessageOf<T>);
    const have = this.received.find((r) => !this.consumed.has(r) && match(r.msg));
    if (have) {
      this.consumed.add(have);
      return Promise.resolve(have as { raw: Buffer; msg: MessageOf<T> });
    }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x.resolve !== done);
        reject(new Error(`timed out waiting for ${type}; got ${this.received.map((r) => r.msg.type).join(',')}; errors: ${this.errors.join('; ')}`));
      }, timeoutMs);
      const done = (r: Received): void => {
        clearTimeout(t);
        resolve(r as { raw: Buffer; msg: MessageOf<T> });
      };
      this.waiters.push({ pred: match, resolve: done });
    });
  }

  /** Sends a request and waits for the reply with the same xid. */
  async request<T extends OfpMessageType>(m: OfpMessage, replyType: T): Promise<{ raw: Buffer; msg: MessageOf<T> }> {
    const reply = this.next(replyType, (r) => r.xid === m.xid);
    this.send(m);
    return reply;
  }
}

/** A TCP listener on loopback; resolves peers as they connect. */
class Listener {
  readonly server = net.createServer();
  readonly peers: Peer[] = [];
  private readonly closed: Array<Promise<unknown>> = [];
  port = 0;

  constructor(private readonly onConnect: (sock: net.Socket) => Peer) {
    this.server.on('connection', (sock) => {
      this.closed.push(once(sock, 'close'));
      this.peers.push(this.onConnect(sock));
    });
  }

  async listen(): Promise<void> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /** Resolves once every connection accepted so far has closed (all its bytes were read). */
  async allClosed(): Promise<void> {
    await Promise.all(this.closed);
  }

  async close(): Promise<void> {
    for (const p of this.peers) p.sock.destroy();
    if (this.server.listening) {
      this.server.close();
      await once(this.server, 'close');
    }
  }
}

// ------------------------------------------------------------------------------------------------
// (a) The fake switch: answers what ovs-ofctl asks before and after its real request.

const FAKE_PORTS: PortDesc[] = [1, 2].map((n) => ({
  portNo: n, hwAddr: `02:00:00:00:00:0${n}`, name: `p${n}`, config: 0, state: 4, curr: 0x840, advertised: 0, supported: 0, peer: 0,
  currSpeed: 10000000, maxSpeed: 0,
}));

/** ovs-ofctl requires one table with the 8 mandatory (here empty) properties. */
function tableFeaturesBody(): Buffer {
  const tf = Buffer.alloc(128);
  tf.writeUInt16BE(128, 0);
  tf.write('table0', 8);
  tf.writeUInt32BE(1000000, 60);
  for (let i = 0; i < 8; i++) {
    tf.writeUInt16BE(2 * i, 64 + 8 * i); // property types 0,2,...,14 (the non-miss ones)
    tf.writeUInt16BE(4, 66 + 8 * i);
  }
  return tf;
}

const FAKE_FLOWS = [
  {
    tableId: 0, durationSec: 12, durationNsec: 500000000, priority: 100, idleTimeout: 30, hardTimeout: 0, flags: OFPFF.SEND_FLOW_REM,
    cookie: 0xabcn, packetCount: 7n, byteCount: 420n,
    match: { inPort: 1, ethType: 0x800, ipProto: 6, ipv4Dst: '10.0.0.2', tcpDst: 80 },
    instructions: [{ type: 'apply_actions' as const, actions: [{ type: 'set_field' as const, field: { ipv4Dst: '10.0.0.3' } }, { type: 'output' as const, port: 2 }] }],
  },
  {
    tableId: 1, durationSec: 1, durationNsec: 0, priority: 0, idleTimeout: 0, hardTimeout: 0, flags: 0, cookie: 0n, packetCount: 0n, byteCount: 0n,
    match: {}, instructions: [{ type: 'apply_actions' as const, actions: [{ type: 'output' as const, port: OFPP.CONTROLLER, maxLen: OFPCML_NO_BUFFER }] }],
  },
];

function fakeSwitchReply(p: Peer, { msg: m }: Received): void {
  switch (m.type) {
    case 'echo_request': p.send({ type: 'echo_reply', xid: m.xid, data: m.data }); break;
    case 'barrier_request': p.send({ type: 'barrier_reply', xid: m.xid }); break;
    case 'get_config_request': p.send({ type: 'get_config_reply', xid: m.xid, flags: 0, missSendLen: 128 }); break;
    case 'features_request':
      p.send({ type: 'features_reply', xid: m.xid, datapathId: 0x1234n, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0x4f });
      break;
    case 'multipart_request': {
      const b = m.body;
      if (b.kind === 'desc') {
        p.send({ type: 'multipart_reply', xid: m.xid, flags: 0, body: { kind: 'desc', mfrDesc: 'tcp-migrate', hwDesc: 'fake switch', swDesc: 'codec 1', serialNum: 'SN42', dpDesc: 'cross-check' } });
      } else if (b.kind === 'port_desc') {
        p.send({ type: 'multipart_reply', xid: m.xid, flags: 0, body: { kind: 'port_desc', ports: FAKE_PORTS } });
      } else if (b.kind === 'flow') {
        p.send({ type: 'multipart_reply', xid: m.xid, flags: 0, body: { kind: 'flow', flows: FAKE_FLOWS } });
      } else if (b.kind === 'unknown' && b.mpType === OFPMP.TABLE_FEATURES) {
        p.send({ type: 'multipart_reply', xid: m.xid, flags: 0, body: { kind: 'unknown', mpType: OFPMP.TABLE_FEATURES, data: tableFeaturesBody() } });
      }
      break;
    }
    default:
      break;
  }
}

describe('ofp cross-check: decode what ovs-ofctl sends (fake switch)', function () {
  let sw: Listener;

  /** A fresh fake switch: ovs-ofctl's captured messages start empty for each command. */
  async function startSwitch(): Promise<void> {
    sw = new Listener((sock) => {
      const p = new Peer(sock, fakeSwitchReply);
      p.send({ type: 'hello', xid: 1, versions: [4] });
      return p;
    });
    await sw.listen();
  }

  beforeEach(startSwitch);

  afterEach(async () => {
    await sw.close();
  });

  /** Runs ovs-ofctl against the fake switch; returns its stdout and every message it sent. */
  async function ofctl(...args: string[]): Promise<{ stdout: string; msgs: Received[] }> {
    const target = `tcp:127.0.0.1:${sw.port}`;
    const r = await run(OFCTL, ['-O', 'OpenFlow13', ...args.map((a) => (a === 'SW' ? target : a))], { allowFail: true, timeoutMs: 15000 });
    assert.equal(r.code, 0, `ovs-ofctl ${args.join(' ')} failed: ${r.stderr}`);
    await sw.allClosed();
    const errors = sw.peers.flatMap((p) => p.errors);
    assert.deepEqual(errors, []);
    return { stdout: r.stdout, msgs: sw.peers.flatMap((p) => p.received) };
  }

  function only<T extends OfpMessageType>(msgs: Received[], type: T): { raw: Buffer; msg: MessageOf<T> } {
    const found = msgs.filter((r) => r.msg.type === type);
    assert.equal(found.length, 1, `expected one ${type}, got ${found.length}`);
    return found[0] as { raw: Buffer; msg: MessageOf<T> };
  }

  it('hello from ovs-ofctl carries an OF1.3-only version bitmap', async () => {
    const { msgs } = await ofctl('add-flow', 'SW', 'actions=drop');
    const hellos = msgs.filter((r) => r.msg.type === 'hello');
    assert.ok(hellos.length >= 1);
    for (const h of hellos) assert.deepEqual(h.msg, { type: 'hello', xid: h.msg.xid, versions: [4] });
    saveFixture('ofctl-hello', hellos[0]!.raw);
  });

  it('add-flow: match fields, masks, tcp_flags, cookie, timeouts, flags, actions', async () => {
    const { msgs } = await ofctl(
      'add-flow', 'SW',
      'table=2,priority=5,cookie=0x1234,idle_timeout=30,hard_timeout=60,send_flow_rem,tcp,in_port=1,dl_src=00:00:00:00:00:01,' +
        'nw_src=10.0.0.0/24,nw_dst=10.0.0.2,tp_src=1234,tp_dst=80,tcp_flags=+syn-ack,' +
        'actions=set_field:10.0.0.3->ip_dst,set_field:00:00:00:00:00:03->eth_dst,dec_ttl,output:2,controller:128',
    );
    const { raw, msg } = only(msgs, 'flow_mod');
    saveFixture('ofctl-flow-mod-add', raw);
    assert.deepEqual(msg, ofctlFlowModAdd(msg.xid));
    // OVS writes tcp_flags as the ONF experimenter OXM at OF1.3 (class 0xffff, field 42, "ONF\0").
    assert.ok(raw.includes(Buffer.from('ffff55084f4e460000020012', 'hex')));
    // ovs-ofctl follows the flow_mod with a barrier and waits for our reply.
    only(msgs, 'barrier_request');
  });

  it('add-flow: ARP, VLAN, UDP, ICMP fields, goto_table/write_metadata/write_actions/clear_actions', async () => {
    const flows = [
      'arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/24,arp_sha=00:00:00:00:00:01,arp_tha=00:00:00:00:00:00,actions=write_actions(output:1),goto_table:3',
      'dl_vlan=5,dl_vlan_pcp=3,actions=pop_vlan,push_vlan:0x8100,set_field:4102->vlan_vid,output:in_port',
      'udp,nw_tos=40,nw_ecn=1,tp_src=53,tp_dst=5353,metadata=0x10/0xf0,actions=clear_actions,write_metadata:0x5/0xff',
      'icmp,icmp_type=8,icmp_code=0,actions=group:1,set_queue:2,resubmit(,4)',
    ];
    const expected: OfpMessage[] = [
      flowMod({
        match: {
          ethType: 0x806, arpOp: 1, arpSpa: '10.0.0.1', arpTpa: { value: '10.0.0.0', mask: '255.255.255.0' },
          arpSha: '00:00:00:00:00:01', arpTha: '00:00:00:00:00:00',
        },
        instructions: [{ type: 'write_actions', actions: [{ type: 'output', port: 1, maxLen: 0 }] }, { type: 'goto_table', tableId: 3 }],
      }),
      flowMod({
        match: { vlanVid: 0x1005, vlanPcp: 3 },
        instructions: [{
          type: 'apply_actions',
          actions: [{ type: 'pop_vlan' }, { type: 'push_vlan', ethType: 0x8100 }, { type: 'set_field', field: { vlanVid: 0x1006 } }, { type: 'output', port: OFPP.IN_PORT, maxLen: 0 }],
        }],
      }),
      flowMod({
        match: { metadata: { value: 0x10n, mask: 0xf0n }, ethType: 0x800, ipDscp: 10, ipEcn: 1, ipProto: 17, udpSrc: 53, udpDst: 5353 },
        instructions: [{ type: 'clear_actions' }, { type: 'write_metadata', metadata: 5n, mask: 0xffn }],
      }),
      flowMod({
        match: { ethType: 0x800, ipProto: 1, icmpv4Type: 8, icmpv4Code: 0 },
        instructions: [{
          type: 'apply_actions',
          actions: [{ type: 'group', groupId: 1 }, { type: 'set_queue', queueId: 2 }, { type: 'nx_resubmit', inPort: OFPP.IN_PORT, tableId: 4 }],
        }],
      }),
    ];
    for (let i = 0; i < flows.length; i++) {
      await sw.close();
      await startSwitch();
      const got = only((await ofctl('add-flow', 'SW', flows[i]!)).msgs, 'flow_mod').msg;
      assert.deepEqual(got, { ...expected[i]!, xid: got.xid }, flows[i]);
    }
  });

  it('mod-flows and del-flows --strict', async () => {
    const mod = only((await ofctl('mod-flows', 'SW', 'table=1,cookie=0x5/-1,tcp,tp_dst=80,actions=output:2')).msgs, 'flow_mod');
    saveFixture('ofctl-flow-mod-modify', mod.raw);
    assert.deepEqual(mod.msg, flowMod({
      xid: mod.msg.xid, command: 'modify', tableId: 1, cookie: 5n, cookieMask: 0xffffffffffffffffn,
      match: { ethType: 0x800, ipProto: 6, tcpDst: 80 },
      instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: 2, maxLen: 0 }] }],
    }));

    await sw.close();
    await startSwitch();
    const del = only((await ofctl('--strict', 'del-flows', 'SW', 'priority=5,tcp,nw_dst=10.0.0.2,out_port=3')).msgs, 'flow_mod');
    saveFixture('ofctl-flow-mod-delete-strict', del.raw);
    assert.deepEqual(del.msg, flowMod({
      // OVS sends deletes with table 255 (all tables) unless table= is given.
      xid: del.msg.xid, command: 'delete_strict', tableId: 0xff, priority: 5, outPort: 3, match: { ethType: 0x800, ipProto: 6, ipv4Dst: '10.0.0.2' },
    }));
  });

  it('del-flows (non-strict, all tables)', async () => {
    const del = only((await ofctl('del-flows', 'SW')).msgs, 'flow_mod');
    assert.deepEqual(del.msg, flowMod({ xid: del.msg.xid, command: 'delete', tableId: 0xff, priority: 0x8000 }));
  });

  it('packet-out', async () => {
    const frame = '0000000000020000000000010800450000140001000040067ad40a0000010a000002';
    const { msgs } = await ofctl('packet-out', 'SW', `in_port=1,packet=${frame},actions=set_field:10.0.0.9->ip_dst,output:2`);
    const { raw, msg } = only(msgs, 'packet_out');
    saveFixture('ofctl-packet-out', raw);
    assert.deepEqual(msg, {
      type: 'packet_out', xid: msg.xid, bufferId: OFP_NO_BUFFER, inPort: 1,
      actions: [{ type: 'set_field', field: { ipv4Dst: '10.0.0.9' } }, { type: 'output', port: 2, maxLen: 0 }],
      data: Buffer.from(frame, 'hex'),
    });
  });

  it('dump-flows: request decoded, and ovs-ofctl prints our flow stats reply', async () => {
    const { msgs, stdout } = await ofctl('dump-flows', 'SW', 'tcp,nw_dst=10.0.0.2');
    const req = msgs.find((r) => r.msg.type === 'multipart_request' && r.msg.body.kind === 'flow');
    assert.ok(req);
    saveFixture('ofctl-multipart-flow-request', req.raw);
    assert.deepEqual(req.msg, {
      type: 'multipart_request', xid: req.msg.xid, flags: 0,
      body: { kind: 'flow', tableId: 0xff, outPort: OFPP.ANY, outGroup: 0xffffffff, cookie: 0n, cookieMask: 0n, match: { ethType: 0x800, ipProto: 6, ipv4Dst: '10.0.0.2' } },
    });
    // The reply was encoded by our codec; OVS's reading of it is an encode cross-check of flow stats.
    assert.equal(
      stdout.replace(/\(xid=0x[0-9a-f]+\)/, '(xid=X)').trim(),
      [
        'OFPST_FLOW reply (OF1.3) (xid=X):',
        ' cookie=0xabc, duration=12.500s, table=0, n_packets=7, n_bytes=420, idle_timeout=30, send_flow_rem priority=100,tcp,in_port=1,nw_dst=10.0.0.2,tp_dst=80 actions=set_field:10.0.0.3->ip_dst,output:2',
        ' cookie=0x0, duration=1s, table=1, n_packets=0, n_bytes=0, priority=0 actions=CONTROLLER:65535',
      ].join('\n'),
    );
  });

  it('dump-desc: ovs-ofctl prints our desc reply', async () => {
    const { msgs, stdout } = await ofctl('dump-desc', 'SW');
    const req = msgs.find((r) => r.msg.type === 'multipart_request' && r.msg.body.kind === 'desc');
    assert.ok(req);
    assert.equal(
      stdout.replace(/\(xid=0x[0-9a-f]+\)/, '(xid=X)').trim(),
      'OFPST_DESC reply (OF1.3) (xid=X):\nManufacturer: tcp-migrate\nHardware: fake switch\nSoftware: codec 1\nSerial Num: SN42\nDP Description: cross-check',
    );
  });

  it('show: features_request and port_desc, our replies printed back', async () => {
    const { msgs, stdout } = await ofctl('show', 'SW');
    only(msgs, 'features_request');
    assert.match(stdout, /OFPT_FEATURES_REPLY \(OF1\.3\) \(xid=0x[0-9a-f]+\): dpid:0000000000001234\nn_tables:254, n_buffers:0/);
    assert.match(stdout, / 1\(p1\): addr:02:00:00:00:00:01\n {5}config: {5}0\n {5}state: {6}LIVE\n {5}current: {4}10GB-FD COPPER\n {5}speed: 10000 Mbps now, 0 Mbps max/);
    assert.match(stdout, / 2\(p2\): addr:02:00:00:00:00:02/);
  });
});

// ------------------------------------------------------------------------------------------------
// (b) A private ovs-vswitchd connected to a raw controller built on our codec.

describe('ofp cross-check: decode what ovs-vswitchd sends (raw controller)', function () {
  this.timeout(60000);
  const br = `tmtx${process.pid % 100000}`;
  const portName = `tmtp${process.pid % 100000}`;
  let ovs: Ovs | undefined;
  let ctl: Listener;
  let sw: Peer;
  const net_ = TestNet.create();
  let xid = 100;
  const nextXid = (): number => ++xid;

  before(async function () {
    ctl = new Listener((sock) => new Peer(sock));
    await ctl.listen();
    const connected = once(ctl.server, 'connection');
    ovs = await Ovs.start({ prefix: '/usr' });
    await ovs.addBridge(br, { controller: `tcp:127.0.0.1:${ctl.port}`, datapathId: '0000000000000abc' });
    await connected;
    sw = ctl.peers[0]!;
  });

  after(async () => {
    await net_.destroy();
    await ovs?.stop();
    await ctl?.close();
  });

  it('HELLO (version bitmap) and FEATURES_REPLY', async () => {
    const hello = await sw.next('hello');
    saveFixture('vswitchd-hello', hello.raw);
    assert.deepEqual(hello.msg.versions, [4]);
    sw.send({ type: 'hello', xid: nextXid(), versions: [4] });
    const { raw, msg } = await sw.request({ type: 'features_request', xid: nextXid() }, 'features_reply');
    saveFixture('vswitchd-features-reply', raw);
    assert.equal(msg.datapathId, 0xabcn);
    assert.equal(msg.nTables, 254);
    assert.equal(msg.auxiliaryId, 0);
    assert.ok(msg.capabilities & OFPC.FLOW_STATS);
    assert.ok(msg.capabilities & OFPC.PORT_STATS);
  });

  it('ECHO_REPLY echoes our payload', async () => {
    const data = Buffer.from('tcp-migrate echo');
    const { raw, msg } = await sw.request({ type: 'echo_request', xid: nextXid(), data }, 'echo_reply');
    saveFixture('vswitchd-echo-reply', raw);
    assert.deepEqual(msg.data, data);
  });

  it('GET_CONFIG_REPLY reflects SET_CONFIG', async () => {
    sw.send({ type: 'set_config', xid: nextXid(), flags: 0, missSendLen: 200 });
    const { msg } = await sw.request({ type: 'get_config_request', xid: nextXid() }, 'get_config_reply');
    assert.deepEqual({ flags: msg.flags, missSendLen: msg.missSendLen }, { flags: 0, missSendLen: 200 });
  });

  it('ROLE_REPLY', async () => {
    const { msg } = await sw.request({ type: 'role_request', xid: nextXid(), role: 1, generationId: 0n }, 'role_reply');
    assert.equal(msg.role, 1);
  });

  it('multipart DESC reply', async () => {
    const { raw, msg } = await sw.request({ type: 'multipart_request', xid: nextXid(), flags: 0, body: { kind: 'desc' } }, 'multipart_reply');
    saveFixture('vswitchd-desc-reply', raw);
    assert.equal(msg.body.kind, 'desc');
    if (msg.body.kind !== 'desc') return;
    assert.equal(msg.body.mfrDesc, 'Nicira, Inc.');
    assert.equal(msg.body.hwDesc, 'Open vSwitch');
    assert.match(msg.body.swDesc, /^3\.1\./);
  });

  it('multipart PORT_DESC reply lists the LOCAL port', async () => {
    const { raw, msg } = await sw.request({ type: 'multipart_request', xid: nextXid(), flags: 0, body: { kind: 'port_desc' } }, 'multipart_reply');
    saveFixture('vswitchd-port-desc-reply', raw);
    assert.equal(msg.body.kind, 'port_desc');
    if (msg.body.kind !== 'port_desc') return;
    const local = msg.body.ports.find((p) => p.portNo === OFPP.LOCAL);
    assert.ok(local);
    assert.equal(local.name, br);
    assert.match(local.hwAddr, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  });

  it('PORT_STATUS when a port is added', async () => {
    const status = sw.next('port_status', (m) => m.port.name === portName && m.reason === OFPPR.ADD);
    await ovs!.vsctl('add-port', br, portName, '--', 'set', 'interface', portName, 'type=internal', 'ofport_request=5');
    const { raw, msg } = await status;
    saveFixture('vswitchd-port-status-add', raw);
    assert.equal(msg.port.portNo, 5);
    assert.equal(msg.port.name, portName);
  });

  it('BARRIER_REPLY after a table-miss FLOW_MOD; PACKET_IN on table miss', async () => {
    sw.send(flowMod({ xid: nextXid(), priority: 0, instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: OFPP.CONTROLLER, maxLen: OFPCML_NO_BUFFER }] }] }));
    const barrier = await sw.request({ type: 'barrier_request', xid: nextXid() }, 'barrier_reply');
    saveFixture('vswitchd-barrier-reply', barrier.raw);
    // A UDP datagram 10.0.0.1:1000 -> 10.0.0.2:2000 with payload "hi", injected by ovs-ofctl as if received on port 5.
    const frame = Buffer.from(
      '020000000002020000000001080045000020000100004011' + '66ca' + '0a0000010a000002' + '03e807d0000c0000' + '68690000',
      'hex',
    ).subarray(0, 14 + 32);
    const pin = sw.next('packet_in', (m) => m.data.equals(frame));
    await ovs!.ofctl('-O', 'OpenFlow13', 'packet-out', br, `in_port=5,packet=${frame.toString('hex')},actions=table`);
    const { raw, msg } = await pin;
    saveFixture('vswitchd-packet-in', raw);
    // OVS reports packets that entered the pipeline through a packet-out as OFPR_PACKET_OUT, which
    // it encodes as OFPR_ACTION below OpenFlow 1.4 (lib/ofp-packet.c encode_packet_in_reason).
    assert.equal(msg.reason, OFPR.ACTION);
    assert.equal(msg.tableId, 0);
    assert.equal(msg.bufferId, OFP_NO_BUFFER);
    assert.equal(msg.totalLen, frame.length);
    assert.equal(msg.cookie, 0n);
    assert.deepEqual(msg.match, { inPort: 5 });
  });

  it('PACKET_IN with reason NO_MATCH for real traffic (ARP from a test namespace)', async () => {
    const host = await net_.addHost('h1', '10.0.0.1/24');
    await ovs!.addPort(br, host.peer, 6);
    const pin = sw.next('packet_in', (m) => m.match.inPort === 6 && m.data.readUInt16BE(12) === 0x0806);
    // The ping fails (nobody owns 10.0.0.2); its ARP request is what we want.
    const ping = host.exec(['ping', '-c', '1', '-W', '1', '10.0.0.2'], { allowFail: true });
    const { raw, msg } = await pin;
    await ping;
    saveFixture('vswitchd-packet-in-arp', raw);
    assert.equal(msg.reason, OFPR.NO_MATCH);
    assert.equal(msg.bufferId, OFP_NO_BUFFER);
    assert.equal(msg.totalLen, msg.data.length);
    assert.equal(msg.data.subarray(6, 12).toString('hex'), host.mac.replace(/:/g, ''));
    assert.equal(msg.data.subarray(38, 42).toString('hex'), '0a000002'); // ARP target 10.0.0.2
  });

  it('multipart FLOW reply, AGGREGATE reply and FLOW_REMOVED on delete', async () => {
    sw.send(flowMod({
      xid: nextXid(), cookie: 0x77n, priority: 100, idleTimeout: 300, flags: OFPFF.SEND_FLOW_REM,
      match: { ethType: 0x800, ipProto: 6, ipv4Dst: '10.0.0.2', tcpDst: 80, tcpFlags: { value: 0x002, mask: 0x012 } },
      instructions: [{ type: 'apply_actions', actions: [{ type: 'set_field', field: { ipv4Dst: '10.0.0.3' } }, { type: 'output', port: 5 }] }],
    }));
    await sw.request({ type: 'barrier_request', xid: nextXid() }, 'barrier_reply');

    const flowReq: OfpMessage = {
      type: 'multipart_request', xid: nextXid(), flags: 0,
      body: { kind: 'flow', tableId: 0xff, outPort: OFPP.ANY, outGroup: 0xffffffff, cookie: 0x77n, cookieMask: 0xffffffffffffffffn, match: {} },
    };
    const { raw, msg } = await sw.request(flowReq, 'multipart_reply');
    saveFixture('vswitchd-flow-stats-reply', raw);
    assert.equal(msg.body.kind, 'flow');
    if (msg.body.kind !== 'flow') return;
    assert.equal(msg.body.flows.length, 1);
    const f = msg.body.flows[0]!;
    assert.deepEqual(
      { ...f, durationSec: 0, durationNsec: 0 },
      {
        tableId: 0, durationSec: 0, durationNsec: 0, priority: 100, idleTimeout: 300, hardTimeout: 0, flags: OFPFF.SEND_FLOW_REM,
        cookie: 0x77n, packetCount: 0n, byteCount: 0n,
        match: { ethType: 0x800, ipProto: 6, ipv4Dst: '10.0.0.2', tcpDst: 80, tcpFlags: { value: 0x002, mask: 0x012 } },
        // OVS reports the max_len we sent (OFPCML_NO_BUFFER by default).
        instructions: [{ type: 'apply_actions', actions: [{ type: 'set_field', field: { ipv4Dst: '10.0.0.3' } }, { type: 'output', port: 5, maxLen: OFPCML_NO_BUFFER }] }],
      },
    );

    const agg = await sw.request({ ...flowReq, xid: nextXid(), body: { ...(flowReq.body as object), kind: 'aggregate' } } as OfpMessage, 'multipart_reply');
    assert.deepEqual(agg.msg.body, { kind: 'aggregate', packetCount: 0n, byteCount: 0n, flowCount: 1 });

    const removed = sw.next('flow_removed', (m) => m.cookie === 0x77n);
    await ovs!.ofctl('-O', 'OpenFlow13', '--strict', 'del-flows', br, 'priority=100,tcp,nw_dst=10.0.0.2,tp_dst=80,tcp_flags=+syn-ack');
    const fr = await removed;
    saveFixture('vswitchd-flow-removed', fr.raw);
    assert.equal(fr.msg.reason, OFPRR.DELETE);
    assert.equal(fr.msg.priority, 100);
    assert.equal(fr.msg.idleTimeout, 300);
    assert.equal(fr.msg.tableId, 0);
    assert.deepEqual(fr.msg.match, { ethType: 0x800, ipProto: 6, ipv4Dst: '10.0.0.2', tcpDst: 80, tcpFlags: { value: 0x002, mask: 0x012 } });
  });

  it('multipart PORT_STATS and TABLE replies; TABLE_FEATURES passes through as unknown', async () => {
    const ps = await sw.request({ type: 'multipart_request', xid: nextXid(), flags: 0, body: { kind: 'port_stats', portNo: OFPP.ANY } }, 'multipart_reply');
    assert.equal(ps.msg.body.kind, 'port_stats');
    if (ps.msg.body.kind === 'port_stats') assert.ok(ps.msg.body.ports.some((p) => p.portNo === 5));

    const ts = await sw.request({ type: 'multipart_request', xid: nextXid(), flags: 0, body: { kind: 'table' } }, 'multipart_reply');
    assert.equal(ts.msg.body.kind, 'table');
    if (ts.msg.body.kind === 'table') assert.equal(ts.msg.body.tables.length, 254);

    // Table features come in several parts (REPLY_MORE); each must decode as 'unknown' without error.
    const tfXid = nextXid();
    sw.send({ type: 'multipart_request', xid: tfXid, flags: 0, body: { kind: 'unknown', mpType: OFPMP.TABLE_FEATURES, data: Buffer.alloc(0) } });
    for (;;) {
      const part = await sw.next('multipart_reply', (m) => m.xid === tfXid);
      assert.equal(part.msg.body.kind, 'unknown');
      if (!(part.msg.flags & 1)) break;
    }
    assert.deepEqual(sw.errors, []);
  });

  it('ERROR for a FLOW_MOD to table 254 (OVS\'s hidden internal table)', async () => {
    const bad = flowMod({ xid: nextXid(), tableId: 254, instructions: [] });
    const { raw, msg } = await sw.request(bad, 'error');
    saveFixture('vswitchd-error-bad-table', raw);
    // OVS reserves table 254 for itself and answers EPERM rather than a bad-table error.
    assert.equal(`${errorTypeName(msg.errType)}/${errorCodeName(msg.errType, msg.code)}`, 'OFPET_BAD_REQUEST/OFPBRC_EPERM');
    // The error carries (at least the start of) the offending request.
    const echoed = encodeMessage(bad);
    assert.deepEqual(msg.data.subarray(0, 8), echoed.subarray(0, 8));
  });

  it('ERROR for an unknown action type names the right code', async () => {
    const bad = flowMod({ xid: nextXid(), instructions: [{ type: 'apply_actions', actions: [{ type: 'unknown', actionType: 0x63, data: Buffer.alloc(4) }] }] });
    const { raw, msg } = await sw.request(bad, 'error');
    saveFixture('vswitchd-error-bad-action', raw);
    assert.equal(`${errorTypeName(msg.errType)}/${errorCodeName(msg.errType, msg.code)}`, 'OFPET_BAD_ACTION/OFPBAC_BAD_TYPE');
  });

  it('ERROR for a Nicira seq action on stock OVS (the controller\'s capability probe)', async () => {
    const probe = flowMod({
      xid: nextXid(), tableId: 200, match: { ethType: 0x800, ipProto: 6 },
      instructions: [{ type: 'apply_actions', actions: [{ type: 'nx_inc_tcp_seq', delta: 1 }] }],
    });
    const { raw, msg } = await sw.request(probe, 'error');
    saveFixture('vswitchd-error-nx-seq-unsupported', raw);
    assert.equal(`${errorTypeName(msg.errType)}/${errorCodeName(msg.errType, msg.code)}`, 'OFPET_BAD_ACTION/OFPBAC_BAD_EXP_TYPE');
  });

  it('nothing OVS sent failed to decode', () => {
    assert.deepEqual(sw.errors, []);
  });
});

// ------------------------------------------------------------------------------------------------
// (c) The patched ovs-vswitchd (ovs-patch/) accepts the seq/ack actions and reports them back.

describe('ofp cross-check: Nicira seq/ack actions round-trip through patched ovs-vswitchd', function () {
  this.timeout(60000);
  const br = `tmty${process.pid % 100000}`;
  let ovs: Ovs | undefined;
  let ctl: Listener | undefined;
  let sw: Peer;

  before(async function () {
    if (!existsSync('/usr/local/sbin/ovs-vswitchd')) {
      const why = '/usr/local/sbin/ovs-vswitchd missing: build the patched OVS (ovs-patch/)';
      if (process.env.CI) throw new Error(why);
      this.skip();
    }
    ctl = new Listener((sock) => new Peer(sock));
    await ctl.listen();
    const connected = once(ctl.server, 'connection');
    ovs = await Ovs.start({ prefix: '/usr/local' });
    await ovs.addBridge(br, { controller: `tcp:127.0.0.1:${ctl.port}` });
    await connected;
    sw = ctl.peers[0]!;
    await sw.next('hello');
    sw.send({ type: 'hello', xid: 1, versions: [4] });
  });

  after(async () => {
    await ovs?.stop();
    await ctl?.close();
  });

  it('flow with inc/dec_tcp_seq/ack is accepted and dumped back unchanged', async () => {
    const actions = [
      { type: 'nx_inc_tcp_seq' as const, delta: 5 }, { type: 'nx_dec_tcp_seq' as const, delta: 6 },
      { type: 'nx_inc_tcp_ack' as const, delta: 7 }, { type: 'nx_dec_tcp_ack' as const, delta: 0xffffffff },
      { type: 'output' as const, port: OFPP.IN_PORT, maxLen: OFPCML_NO_BUFFER },
    ];
    sw.send(flowMod({ xid: 2, cookie: 0x99n, priority: 10, match: { ethType: 0x800, ipProto: 6 }, instructions: [{ type: 'apply_actions', actions }] }));
    await sw.request({ type: 'barrier_request', xid: 3 }, 'barrier_reply');
    assert.equal(sw.received.filter((r) => r.msg.type === 'error').length, 0, 'the switch rejected the flow');
    const { raw, msg } = await sw.request({
      type: 'multipart_request', xid: 4, flags: 0,
      body: { kind: 'flow', tableId: 0xff, outPort: OFPP.ANY, outGroup: 0xffffffff, cookie: 0x99n, cookieMask: 0xffffffffffffffffn, match: {} },
    }, 'multipart_reply');
    saveFixture('patched-flow-stats-reply-nx-seq', raw);
    assert.equal(msg.body.kind, 'flow');
    if (msg.body.kind !== 'flow') return;
    assert.deepEqual(msg.body.flows.map((f) => f.instructions), [[{ type: 'apply_actions', actions }]]);
    assert.deepEqual(sw.errors, []);
  });
});
