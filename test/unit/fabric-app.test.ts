// The fabric app on a simulated data plane: switches that forward by the flows the app installs
// (eth_dst → output), wires between ports, hosts at edge ports, Packet-Ins for what no flow takes.
// Discovery, flooding without loops, path flows, re-routing when a link goes down, one switch.
import assert from 'node:assert/strict';
import { FabricApp } from '../../controller/fabric/fabric-app.ts';
import { FABRIC_DEFAULTS } from '../../controller/fabric/fabric-config.ts';
import { PATH_COOKIE } from '../../controller/fabric/path-plan.ts';
import { buildArpFrame, buildUdpFrame, parseFrame } from '../../controller/packet/index.ts';
import { ETHERTYPE_LLDP } from '../../controller/packet/lldp.ts';
import { OFPPR, OFPPS, OFP_NO_BUFFER, type FlowStats, type OfpMessage, type PortDesc } from '../../controller/openflow/index.ts';
import { pathFlowMod, lldpTrapFlow } from '../../controller/fabric/path-plan.ts';
import type { SwitchConnection } from '../../controller/datapath/switch-connection.ts';
import { silentLogger } from '../../controller/log.ts';

const D = (n: number): string => n.toString(16).padStart(16, '0');
const A1 = D(0xa1), A2 = D(0xa2), A3 = D(0xa3);
type FlowMod = Extract<OfpMessage, { type: 'flow_mod' }>;
type PacketOut = Extract<OfpMessage, { type: 'packet_out' }>;
interface SimHost { name: string; mac: string; ip: string; at: string; got: Buffer[] }

const portDesc = (portNo: number, up = true): PortDesc => ({
  portNo, hwAddr: `02:ff:00:00:00:${portNo.toString(16).padStart(2, '0')}`, name: `p${portNo}`, config: 0, state: up ? 0 : OFPPS.LINK_DOWN,
  curr: 0, advertised: 0, supported: 0, peer: 0, currSpeed: 0, maxSpeed: 0,
});

class SimSwitch {
  readonly features: { datapathId: bigint; nBuffers: number; nTables: number; auxiliaryId: number; capabilities: number };
  readonly flows = new Map<string, number>();
  lldpTrap = false;
  connected = true;
  constructor(readonly net: SimNet, readonly dpid: string, readonly ports: number[]) {
    this.features = { datapathId: BigInt('0x' + dpid), nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0 };
  }
  describe(): string { return this.dpid; }
  send(m: OfpMessage): number { if (!this.connected) throw new Error('disconnected'); this.net.fromController(this, m); return 0; }
  async transact(msgs: OfpMessage[]): Promise<void> { for (const m of msgs) this.send(m); }
  async request(m: OfpMessage): Promise<OfpMessage[]> {
    assert.equal(m.type, 'multipart_request');
    return [{ type: 'multipart_reply', xid: 1, flags: 0, body: { kind: 'port_desc', ports: this.ports.map((p) => portDesc(p, this.net.up(this.dpid, p))) } } as OfpMessage];
  }
  asChannel(): SwitchConnection { return this as unknown as SwitchConnection; }
}

class SimNet {
  readonly switches = new Map<string, SimSwitch>();
  readonly wires = new Map<string, string>();
  readonly down = new Set<string>();
  readonly hosts = new Map<string, SimHost>();
  readonly packetIns: { dpid: string; port: number; kind: string }[] = [];
  private readonly queue: (() => void)[] = [];
  now = 1_000_000;
  readonly app = new FabricApp({ ...FABRIC_DEFAULTS, priority: 10, idleTimeout: 60, hardTimeout: 0 }, silentLogger, () => this.now);

  addSwitch(dpid: string, ports: number[]): SimSwitch { const s = new SimSwitch(this, dpid, ports); this.switches.set(dpid, s); return s; }
  wire(a: string, b: string): void { this.wires.set(a, b); this.wires.set(b, a); }
  addHost(name: string, n: number, at: string): SimHost {
    const h = { name, mac: `02:00:00:00:00:0${n}`, ip: `10.0.0.${n}`, at, got: [] };
    this.hosts.set(at, h);
    return h;
  }
  up(dpid: string, port: number): boolean { return !this.down.has(`${dpid}:${port}`); }

  async ready(): Promise<void> {
    for (const s of this.switches.values()) await this.app.switchReady(s.asChannel(), []);
    this.run();
  }

  /** Runs queued deliveries until quiet; a storm would never end, so it is cut off and reported. */
  run(limit = 2000): number {
    let n = 0;
    while (this.queue.length) { assert.ok(++n < limit, 'the data plane never went quiet: a storm'); this.queue.shift()!(); }
    return n;
  }

  /** A frame arriving at a switch port: forwarded by a flow, or to the controller. */
  arrive(dpid: string, port: number, frame: Buffer): void {
    const sw = this.switches.get(dpid)!;
    const parsed = parseFrame(frame);
    assert.ok(parsed.ok);
    const dst = parsed.value.eth.dst;
    if (parsed.value.eth.ethType === ETHERTYPE_LLDP) {
      if (!sw.lldpTrap) return;
    } else {
      const out = sw.flows.get(dst);
      if (out !== undefined) { this.output(dpid, out, frame); return; }
    }
    this.packetIns.push({ dpid, port, kind: parsed.value.eth.ethType === ETHERTYPE_LLDP ? 'lldp' : (parseInt(dst.slice(0, 2), 16) & 1) ? 'broadcast' : 'unicast' });
    this.app.packetIn(sw.asChannel(), { type: 'packet_in', xid: 0, bufferId: OFP_NO_BUFFER, totalLen: frame.length, reason: 0, tableId: 0, cookie: 0n, match: { inPort: port }, data: frame }, parsed.value);
  }

  output(dpid: string, port: number, frame: Buffer): void {
    if (!this.up(dpid, port)) return;
    const key = `${dpid}:${port}`;
    const peer = this.wires.get(key);
    if (peer) {
      if (!this.down.has(peer)) { const [d, p] = peer.split(':'); this.queue.push(() => this.arrive(d!, Number(p), frame)); }
      return;
    }
    this.hosts.get(key)?.got.push(frame);
  }

  send(h: SimHost, frame: Buffer): void {
    const [d, p] = h.at.split(':');
    this.queue.push(() => this.arrive(d!, Number(p), frame));
    this.run();
  }

  fromController(sw: SimSwitch, m: OfpMessage): void {
    if (m.type === 'flow_mod') {
      const fm = m as FlowMod;
      if (fm.match.ethType === ETHERTYPE_LLDP) { sw.lldpTrap = fm.command === 'add'; return; }
      if (fm.command === 'add' && fm.cookie === PATH_COOKIE) {
        const a = (fm.instructions[0] as { actions: { type: string; port: number }[] }).actions[0]!;
        sw.flows.set(fm.match.ethDst as string, a.port);
      } else if (fm.command === 'delete_strict' || fm.command === 'delete') {
        for (const [mac, port] of [...sw.flows]) {
          if (fm.match.ethDst !== undefined && fm.match.ethDst !== mac) continue;
          if (fm.outPort !== undefined && fm.outPort < 0xffffff00 && fm.outPort !== port) continue;
          sw.flows.delete(mac);
        }
      }
    } else if (m.type === 'packet_out') {
      const po = m as PacketOut;
      for (const a of po.actions) if (a.type === 'output') this.output(sw.dpid, a.port, po.data);
    }
  }

  /** A link's two ports go down (as `ip link set down` on one veth does to both ends). */
  cut(a: string): void {
    const b = this.wires.get(a)!;
    for (const end of [a, b]) {
      this.down.add(end);
      const [d, p] = end.split(':');
      this.app.portStatus(this.switches.get(d!)!.asChannel(), { type: 'port_status', xid: 0, reason: OFPPR.MODIFY, port: portDesc(Number(p), false) });
    }
    this.run();
  }

  tick(): void { (this.app as unknown as { onTick(): void }).onTick(); this.run(); }
}

const bcast = (h: SimHost, tag: string) => buildUdpFrame({ ethSrc: h.mac, ethDst: 'ff:ff:ff:ff:ff:ff', ipSrc: h.ip, ipDst: '10.0.0.255', srcPort: 9, dstPort: 9999, payload: Buffer.from(tag) });
const unicast = (from: SimHost, to: SimHost, tag: string) => buildUdpFrame({ ethSrc: from.mac, ethDst: to.mac, ipSrc: from.ip, ipDst: to.ip, srcPort: 9, dstPort: 9999, payload: Buffer.from(tag) });
const gotTag = (h: SimHost, tag: string) => h.got.filter((f) => f.includes(Buffer.from(tag))).length;

/** The integration test's three switches, wired in a triangle: port 2 to the next switch, port 3 to the previous. */
function triangleWires(): SimNet {
  const net = new SimNet();
  for (const d of [A1, A2, A3]) net.addSwitch(d, [1, 2, 3]);
  net.wire(`${A1}:2`, `${A2}:3`);
  net.wire(`${A2}:2`, `${A3}:3`);
  net.wire(`${A3}:2`, `${A1}:3`);
  return net;
}

/** The integration test's triangle: a host on port 1 of each switch, all ready. */
async function triangle(): Promise<{ net: SimNet; h1: SimHost; h2: SimHost; h3: SimHost }> {
  const net = triangleWires();
  const h1 = net.addHost('h1', 1, `${A1}:1`);
  const h2 = net.addHost('h2', 2, `${A2}:1`);
  const h3 = net.addHost('h3', 3, `${A3}:1`);
  await net.ready();
  return { net, h1, h2, h3 };
}

describe('fabric app (simulated data plane)', () => {
  it('discovers the triangle from its probes, and sends LLDP to itself only', async () => {
    const { net } = await triangle();
    net.app.stop();
    assert.deepEqual(net.app.topology.activeLinks().map((l) => `${l.a.dpid.slice(-2)}:${l.a.port}-${l.b.dpid.slice(-2)}:${l.b.port}`), ['a1:2-a2:3', 'a1:3-a3:2', 'a2:2-a3:3']);
    assert.equal(net.app.stats.lldpSent, 9);
    assert.equal(net.packetIns.filter((p) => p.kind === 'lldp').length, 6, 'probes out of host ports reach hosts, not the controller');
    assert.ok(net.switches.get(A1)!.lldpTrap);
  });

  it('floods a broadcast along the spanning tree: once per switch, once per host, no loop', async () => {
    const { net, h1, h2, h3 } = await triangle();
    net.app.stop();
    net.packetIns.length = 0;
    for (let i = 0; i < 5; i++) net.send(h1, bcast(h1, `b${i}`));
    for (let i = 0; i < 5; i++) { assert.equal(gotTag(h2, `b${i}`), 1); assert.equal(gotTag(h3, `b${i}`), 1); assert.equal(gotTag(h1, `b${i}`), 0); }
    assert.equal(net.packetIns.length, 15, 'one Packet-In per switch per broadcast');
    assert.equal(net.app.stats.floods, 15);
    assert.equal(net.app.hosts.get('10.0.0.1')?.dpid, A1, 'h1 learnt at its own switch only');
  });

  it('installs path flows: after the first frame each way, the switches forward on their own', async () => {
    const { net, h1, h2 } = await triangle();
    net.app.stop();
    net.send(h2, bcast(h2, 'hello')); // h2 becomes known
    net.packetIns.length = 0;
    net.send(h1, unicast(h1, h2, 'u1'));
    assert.equal(gotTag(h2, 'u1'), 1);
    assert.deepEqual(net.packetIns.map((p) => p.dpid), [A1], 'one Packet-In, at the entry switch');
    assert.equal(net.switches.get(A1)!.flows.get(h2.mac), 2);
    assert.equal(net.switches.get(A2)!.flows.get(h2.mac), 1);
    net.send(h2, unicast(h2, h1, 'u2'));
    net.packetIns.length = 0;
    for (let i = 0; i < 10; i++) { net.send(h1, unicast(h1, h2, `x${i}`)); net.send(h2, unicast(h2, h1, `y${i}`)); }
    assert.equal(net.packetIns.length, 0);
    assert.equal(gotTag(h2, 'x9') + gotTag(h1, 'y9'), 2);
    assert.equal(net.app.portForMac(A3, h2.mac), 3, 'from a3, h2 is through port 3 (to a2)');
    assert.equal(net.app.portForMac(A2, h2.mac), 1);
  });

  it('a link going down re-routes around it at once: flows re-pointed, the new path installed, no Packet-In', async () => {
    const { net, h1, h2 } = await triangle();
    net.app.stop();
    net.send(h2, bcast(h2, 'hello'));
    net.send(h1, unicast(h1, h2, 'u1'));
    net.send(h2, unicast(h2, h1, 'u2'));
    net.cut(`${A1}:2`);
    assert.equal(net.app.topology.activeLinks().length, 2);
    assert.equal(net.switches.get(A1)!.flows.get(h2.mac), 3, 'a1 sends h2 frames to a3 now');
    assert.equal(net.switches.get(A3)!.flows.get(h2.mac), 3, 'a3 knows the rest of the way');
    assert.equal(net.switches.get(A2)!.flows.get(h1.mac), 2, 'and back');
    net.packetIns.length = 0;
    net.send(h1, unicast(h1, h2, 'after'));
    net.send(h2, unicast(h2, h1, 'back'));
    assert.equal(gotTag(h2, 'after'), 1);
    assert.equal(gotTag(h1, 'back'), 1);
    assert.equal(net.packetIns.length, 0);
    // Broadcasts still reach everyone over the tree that is left.
    net.send(h1, bcast(h1, 'b-after'));
    assert.equal(gotTag(h2, 'b-after'), 1);
  });

  it('a link that stops answering probes expires, and traffic re-routes', async () => {
    const { net, h1, h2 } = await triangle();
    net.app.stop();
    net.send(h2, bcast(h2, 'hello'));
    net.send(h1, unicast(h1, h2, 'u1'));
    // The wire a1:2-a2:3 silently drops everything (no PORT_STATUS).
    net.wires.delete(`${A1}:2`);
    net.wires.delete(`${A2}:3`);
    for (let i = 0; i < 5; i++) { net.now += 1000; net.tick(); }
    assert.equal(net.app.topology.activeLinks().length, 2);
    assert.equal(net.switches.get(A1)!.flows.get(h2.mac), 3);
    net.send(h1, unicast(h1, h2, 'u2'));
    assert.equal(gotTag(h2, 'u2'), 1);
  });

  it('stops a loop the topology does not know yet (broadcast before discovery): no storm', async () => {
    const net = triangleWires();
    const h1 = net.addHost('h1', 1, `${A1}:1`);
    const h2 = net.addHost('h2', 2, `${A2}:1`);
    for (const s of net.switches.values()) { s.lldpTrap = false; }
    // Switches ready, but their probes are lost: no link known.
    for (const s of net.switches.values()) await net.app.switchReady(s.asChannel(), []);
    net.app.stop();
    for (const s of net.switches.values()) s.lldpTrap = false;
    net.run();
    assert.equal(net.app.topology.activeLinks().length, 0);
    net.send(h1, bcast(h1, 'early'));
    assert.ok(net.packetIns.length <= 12, `${net.packetIns.length} Packet-Ins`);
    assert.ok(gotTag(h2, 'early') >= 1);
    assert.ok(net.app.stats.loopDrops > 0, 'the loop was cut by the repeat guard');
  });

  it('on one switch it is a learning switch: flood the unknown, flows for the known, no hairpin', async () => {
    const net = new SimNet();
    net.addSwitch(A1, [1, 2, 3]);
    const h1 = net.addHost('h1', 1, `${A1}:1`);
    const h2 = net.addHost('h2', 2, `${A1}:2`);
    const h3 = net.addHost('h3', 3, `${A1}:3`);
    await net.ready();
    net.app.stop();
    const arp = buildArpFrame({ op: 'request', ethSrc: h1.mac, senderIp: h1.ip, targetIp: h2.ip });
    net.send(h1, arp);
    assert.ok(h2.got.some((f) => f.equals(arp)) && h3.got.some((f) => f.equals(arp)), 'flooded');
    assert.ok(!h1.got.some((f) => f.equals(arp)), 'not back where it came from');
    assert.equal(net.app.hosts.get(h1.ip)?.port, 1);
    net.send(h2, unicast(h2, h1, 'reply'));
    assert.equal(net.switches.get(A1)!.flows.get(h1.mac), 1);
    assert.equal(gotTag(h1, 'reply'), 1);
    // A frame for a host on the port it came in by is dropped.
    net.switches.get(A1)!.flows.clear();
    net.send(h1, unicast(h1, h1, 'hairpin'));
    assert.equal(gotTag(h1, 'hairpin'), 0);
  });

  it('keeps the engine\'s host table: learnHost at an edge port, not at a link port; emits "host"', async () => {
    const { net, h1 } = await triangle();
    net.app.stop();
    const seen: string[] = [];
    net.app.on('host', (ip: string) => seen.push(ip));
    net.app.learnHost('10.0.0.9', { mac: '02:00:00:00:00:09', dpid: A2, port: 3, seen: 0 });
    assert.equal(net.app.hosts.has('10.0.0.9'), false, 'a2:3 is a link port');
    net.app.learnHost('10.0.0.9', { mac: '02:00:00:00:00:09', dpid: A3, port: 1, seen: 0 });
    assert.equal(net.app.hosts.get('10.0.0.9')?.dpid, A3);
    assert.deepEqual(seen, ['10.0.0.9']);
    assert.equal(net.app.portForMac(A1, '02:00:00:00:00:09'), 3);
    assert.equal(net.app.portForMac(A1, h1.mac), undefined, 'not seen yet');
  });

  it('adopts its flows after a restart: hosts read from flows at edge ports, flows towards nobody known removed', async () => {
    const net = new SimNet();
    net.addSwitch(A1, [1, 2]);
    net.addSwitch(A2, [1, 2]);
    net.wire(`${A1}:2`, `${A2}:2`);
    const stat = (m: OfpMessage): FlowStats => { const f = m as FlowMod; return { tableId: 0, durationSec: 1, durationNsec: 0, priority: f.priority, idleTimeout: 60, hardTimeout: 0, flags: f.flags, cookie: f.cookie, packetCount: 0n, byteCount: 0n, match: f.match, instructions: f.instructions }; };
    const H1 = '02:00:00:00:00:01', H2 = '02:00:00:00:00:02', GONE = '02:00:00:00:00:66';
    await net.app.switchReady(net.switches.get(A1)!.asChannel(), [pathFlowMod({ dpid: A1, mac: H1, port: 1 }, { priority: 10, idleTimeout: 60, hardTimeout: 0 }), pathFlowMod({ dpid: A1, mac: H2, port: 2 }, { priority: 10, idleTimeout: 60, hardTimeout: 0 }), lldpTrapFlow()].map(stat));
    await net.app.switchReady(net.switches.get(A2)!.asChannel(), [pathFlowMod({ dpid: A2, mac: H2, port: 1 }, { priority: 10, idleTimeout: 60, hardTimeout: 0 }), pathFlowMod({ dpid: A2, mac: GONE, port: 2 }, { priority: 10, idleTimeout: 60, hardTimeout: 0 })].map(stat));
    net.app.stop();
    net.run();
    for (const [mac, port] of [[H1, 1], [H2, 2]] as const) net.switches.get(A1)!.flows.set(mac, port);
    for (const [mac, port] of [[H2, 1], [GONE, 2]] as const) net.switches.get(A2)!.flows.set(mac, port);
    (net.app as unknown as { adoptionDue(): void }).adoptionDue();
    assert.deepEqual(net.app.topology.host(H1), { mac: H1, dpid: A1, port: 1, seen: net.now });
    assert.equal(net.app.topology.host(H2)?.dpid, A2);
    assert.equal(net.switches.get(A2)!.flows.has(GONE), false, 'removed: it led across the link to no known host');
    assert.equal(net.switches.get(A1)!.flows.get(H2), 2, 'kept: it is on the path');
  });
});
