// VLANs in the fabric: the config, the pure decisions (ingress VLAN, push/pop, the flows of one
// decision, guards, adoption), and the app on a simulated data plane whose switches run the flow
// tables the app installs as a switch would (priorities, in_port, vlan_vid with masks, eth_dst;
// push_vlan, set_field, pop_vlan, output), so that isolation is checked on the frames themselves.
import assert from 'node:assert/strict';
import { parseConfig, ConfigError } from '../../controller/config.ts';
import { FabricApp } from '../../controller/fabric/fabric-app.ts';
import type { FabricConfig } from '../../controller/fabric/fabric-config.ts';
import { Topology, hostKey, splitHostKey } from '../../controller/fabric/topology.ts';
import { VlanPlan, classifyIngress, outputActions, splitFloodPorts } from '../../controller/fabric/vlans.ts';
import {
  ACCESS_GUARD_COOKIE, EDGE_GUARD_COOKIE, ND_TRAP_COOKIE, PATH_COOKIE, adoptFlows, deleteFlowsToPortMod, edgeGuardMod, accessGuardMod, pathCookie, pathCookieVlan,
  pathFlowMod, pathFlowMods,
} from '../../controller/fabric/path-plan.ts';
import {
  buildArpFrame, buildNeighborAdvertisement, buildNeighborSolicitation, buildUdpFrame, parseFrame, type ParsedFrame,
} from '../../controller/packet/index.ts';
import {
  decodeMessage, encodeMessage, OFPP, OFPRR, OFPVID, OFP_NO_BUFFER, type Action, type FlowStats, type Match, type OfpMessage, type PortDesc,
} from '../../controller/openflow/index.ts';
import type { SwitchConnection } from '../../controller/datapath/switch-connection.ts';
import type { HostLocation } from '../../controller/apps/learning-switch.ts';
import { silentLogger } from '../../controller/log.ts';

const D = (n: number): string => n.toString(16).padStart(16, '0');
const A1 = D(0xa1), A2 = D(0xa2), A3 = D(0xa3);
const OPTS = { priority: 10, idleTimeout: 60, hardTimeout: 0 };
type FlowMod = Extract<OfpMessage, { type: 'flow_mod' }>;
type PacketOut = Extract<OfpMessage, { type: 'packet_out' }>;

function refused(fabric: unknown, key: RegExp, detail?: RegExp): void {
  assert.throws(() => parseConfig({ fabric }), (e: unknown) => e instanceof ConfigError && key.test(e.key) && (!detail || detail.test(e.message)), JSON.stringify(fabric));
}

function parse(b: Buffer): ParsedFrame { const p = parseFrame(b); assert.ok(p.ok, p.ok ? '' : p.error.message); return p.value; }

// ── a switch that runs its flow table ────────────────────────────────────────────────────────

interface SimFlow { priority: number; cookie: bigint; match: Match; actions: Action[] }

function vidOf(frame: Buffer): number { return frame.readUInt16BE(12) === 0x8100 ? OFPVID.PRESENT | (frame.readUInt16BE(14) & 0xfff) : OFPVID.NONE; }

function matches(m: Match, inPort: number, frame: Buffer, p: ParsedFrame): boolean {
  for (const [k, v] of Object.entries(m)) {
    if (k === 'inPort') { if (v !== inPort) return false; } else if (k === 'ethDst') { if (v !== p.eth.dst) return false; } else if (k === 'ethType') { if (v !== p.eth.ethType) return false; } else if (k === 'ipProto') { if (v !== (p.ipv4 ?? p.ipv6)?.protocol) return false; } else if (k === 'icmpv6Type') { if (v !== p.icmpv6?.type) return false; } else if (k === 'vlanVid') {
      const vid = vidOf(frame);
      if (typeof v === 'number' ? vid !== v : (vid & v.mask) !== v.value) return false;
    } else assert.fail(`the simulated switch does not match on ${k}`);
  }
  return true;
}

const sameMatch = (a: Match, b: Match): boolean => { try { assert.deepEqual(a, b); return true; } catch { return false; } };
const outputsTo = (f: SimFlow, port: number): boolean => f.actions.some((a) => a.type === 'output' && a.port === port);

class SimSwitch {
  readonly features: { datapathId: bigint };
  flows: SimFlow[] = [];
  constructor(readonly net: SimNet, readonly dpid: string, readonly ports: number[]) { this.features = { datapathId: BigInt('0x' + dpid) }; }
  describe(): string { return this.dpid; }
  send(m: OfpMessage): number {
    // Everything the app sends must encode: a field or action the codec refuses would fail on a real switch.
    assert.ok(decodeMessage(encodeMessage(m)).ok, `${m.type} encodes`);
    this.net.sent.push({ dpid: this.dpid, msg: m });
    if (m.type === 'flow_mod') this.flowMod(m as FlowMod);
    else if (m.type === 'packet_out') { const po = m as PacketOut; this.net.apply(this.dpid, po.inPort, po.data, po.actions); }
    return 0;
  }
  async transact(msgs: OfpMessage[]): Promise<void> { for (const m of msgs) this.send(m); }
  async request(): Promise<OfpMessage[]> {
    const desc = (portNo: number): PortDesc => ({ portNo, hwAddr: `02:ff:00:00:${this.dpid.slice(-2)}:${portNo.toString(16).padStart(2, '0')}`, name: `p${portNo}`, config: 0, state: 0, curr: 0, advertised: 0, supported: 0, peer: 0, currSpeed: 0, maxSpeed: 0 });
    return [{ type: 'multipart_reply', xid: 1, flags: 0, body: { kind: 'port_desc', ports: this.ports.map(desc) } } as OfpMessage];
  }
  private flowMod(fm: FlowMod): void {
    const cookieOk = (f: SimFlow) => (f.cookie & fm.cookieMask) === (fm.cookie & fm.cookieMask);
    const outOk = (f: SimFlow) => fm.outPort === OFPP.ANY || outputsTo(f, fm.outPort);
    if (fm.command === 'add') {
      this.flows = this.flows.filter((f) => !(f.priority === fm.priority && sameMatch(f.match, fm.match)));
      const apply = fm.instructions.find((i) => i.type === 'apply_actions');
      this.flows.push({ priority: fm.priority, cookie: fm.cookie, match: fm.match, actions: apply && 'actions' in apply ? apply.actions : [] });
    } else if (fm.command === 'delete') {
      // Non-strict: every flow at least as specific as the match (each field given equal).
      this.flows = this.flows.filter((f) => !(cookieOk(f) && outOk(f) && Object.entries(fm.match).every(([k, v]) => sameMatch({ [k]: (f.match as Record<string, unknown>)[k] } as Match, { [k]: v } as Match))));
    } else if (fm.command === 'delete_strict') {
      this.flows = this.flows.filter((f) => !(cookieOk(f) && outOk(f) && f.priority === fm.priority && sameMatch(f.match, fm.match)));
    } else assert.fail(`flow_mod ${fm.command}`);
  }
  lookup(inPort: number, frame: Buffer): SimFlow | undefined {
    const p = parse(frame);
    const hits = this.flows.filter((f) => matches(f.match, inPort, frame, p)).sort((x, y) => y.priority - x.priority);
    // Two flows of one priority matching one frame: a switch would pick either. The app must never do that.
    if (hits.length > 1) assert.notEqual(hits[0]!.priority, hits[1]!.priority, `ambiguous flows on ${this.dpid} for a frame from port ${inPort}: ${JSON.stringify(hits.slice(0, 2).map((h) => h.match))}`);
    return hits[0];
  }
  asChannel(): SwitchConnection { return this as unknown as SwitchConnection; }
}

interface SimHost { name: string; mac: string; ip: string; at: string; got: ParsedFrame[] }

class SimNet {
  readonly switches = new Map<string, SimSwitch>();
  readonly wires = new Map<string, string>();
  readonly hosts = new Map<string, SimHost>();
  readonly sent: { dpid: string; msg: OfpMessage }[] = [];
  /** Frames that crossed a wire (dpid:port they left by). */
  readonly onWire: { from: string; frame: ParsedFrame }[] = [];
  readonly packetIns: { dpid: string; port: number; cookie: bigint }[] = [];
  private readonly queue: (() => void)[] = [];
  now = 1_000_000;
  readonly app: FabricApp;

  constructor(fabric: unknown) {
    const cfg = parseConfig({ fabric }).fabric as FabricConfig;
    this.app = new FabricApp({ ...cfg, ...OPTS }, silentLogger, () => this.now);
  }
  addSwitch(dpid: string, ports: number[]): SimSwitch { const s = new SimSwitch(this, dpid, ports); this.switches.set(dpid, s); return s; }
  wire(a: string, b: string): void { this.wires.set(a, b); this.wires.set(b, a); }
  addHost(name: string, at: string, n: number, mac = `02:00:00:00:00:0${n}`): SimHost {
    const h = { name, mac, ip: `10.0.0.${n}`, at, got: [] };
    this.hosts.set(at, h);
    return h;
  }
  async ready(): Promise<void> {
    for (const s of this.switches.values()) await this.app.switchReady(s.asChannel(), []);
    this.app.stop();
    this.run();
  }
  run(limit = 5000): void {
    let n = 0;
    while (this.queue.length) { assert.ok(++n < limit, 'the data plane never went quiet: a storm'); this.queue.shift()!(); }
  }
  arrive(dpid: string, port: number, frame: Buffer): void {
    const sw = this.switches.get(dpid)!;
    const flow = sw.lookup(port, frame);
    if (flow) { this.apply(dpid, port, frame, flow.actions, flow.cookie); return; }
    this.toController(dpid, port, frame, 0x0100000000000000n); // table miss
  }
  private toController(dpid: string, port: number, frame: Buffer, cookie: bigint): void {
    this.packetIns.push({ dpid, port, cookie });
    this.app.packetIn(this.switches.get(dpid)!.asChannel(), { type: 'packet_in', xid: 0, bufferId: OFP_NO_BUFFER, totalLen: frame.length, reason: 0, tableId: 0, cookie, match: { inPort: port }, data: frame }, parse(frame));
  }
  /** Runs an action list on a copy of the frame, as a switch does; `cookie`: the flow's (its Packet-Ins carry it). */
  apply(dpid: string, inPort: number, data: Buffer, actions: readonly Action[], cookie = 0n): void {
    let frame = Buffer.from(data);
    for (const a of actions) {
      if (a.type === 'push_vlan') { assert.equal(a.ethType, 0x8100); const tag = Buffer.alloc(4); tag.writeUInt16BE(0x8100, 0); frame = Buffer.concat([frame.subarray(0, 12), tag, frame.subarray(12)]); }
      else if (a.type === 'pop_vlan') { assert.equal(frame.readUInt16BE(12), 0x8100, 'pop_vlan on an untagged frame'); frame = Buffer.concat([frame.subarray(0, 12), frame.subarray(16)]); }
      else if (a.type === 'set_field') {
        const vid = a.field.vlanVid as number;
        assert.ok(vid & OFPVID.PRESENT, 'set_field vlan_vid carries OFPVID_PRESENT');
        assert.equal(frame.readUInt16BE(12), 0x8100, 'set_field vlan_vid on an untagged frame');
        frame.writeUInt16BE((frame.readUInt16BE(14) & 0xf000) | (vid & 0xfff), 14);
      } else if (a.type === 'output') {
        if (a.port === OFPP.CONTROLLER) { const f = frame; this.queue.push(() => this.toController(dpid, inPort, f, cookie)); continue; }
        if (a.port === inPort) continue; // a switch never sends a frame back where it came from
        this.output(dpid, a.port, Buffer.from(frame));
      } else assert.fail(`the simulated switch has no action ${a.type}`);
    }
  }
  output(dpid: string, port: number, frame: Buffer): void {
    const key = `${dpid}:${port}`;
    const peer = this.wires.get(key);
    if (peer) {
      this.onWire.push({ from: key, frame: parse(frame) });
      const [d, p] = peer.split(':');
      this.queue.push(() => this.arrive(d!, Number(p), frame));
      return;
    }
    this.hosts.get(key)?.got.push(parse(frame));
  }
  send(h: SimHost, frame: Buffer): void {
    const [d, p] = h.at.split(':');
    this.queue.push(() => this.arrive(d!, Number(p), frame));
    this.run();
  }
  flows(dpid: string): SimFlow[] { return this.switches.get(dpid)!.flows; }
}

const tagOf = (f: ParsedFrame): string => f.payload.toString();
const got = (h: SimHost, tag: string): ParsedFrame[] => h.got.filter((f) => f.udp && tagOf(f) === tag);
const bcast = (h: SimHost, tag: string) => buildUdpFrame({ ethSrc: h.mac, ethDst: 'ff:ff:ff:ff:ff:ff', ipSrc: h.ip, ipDst: '10.0.0.255', srcPort: 9, dstPort: 9999, payload: Buffer.from(tag) });
const unicast = (from: SimHost, to: { mac: string; ip: string }, tag: string, vlans?: number[]) => buildUdpFrame({ ethSrc: from.mac, ethDst: to.mac, ipSrc: from.ip, ipDst: to.ip, srcPort: 9, dstPort: 9999, payload: Buffer.from(tag), ...(vlans ? { vlans } : {}) });

/**
 * The triangle (port 2 to the next switch, 3 to the previous), two hosts a switch:
 * h1 a1:1 VLAN 10, h4 a1:4 VLAN 20, h2 a2:1 VLAN 10, h5 a2:4 no VLAN, h3 a3:1 VLAN 20, h6 a3:4 no VLAN.
 */
const VLAN_CONFIG = { vlans: { access: [{ port: `${A1}:1`, vlan: 10 }, { port: `${A1}:4`, vlan: 20 }, { port: `${A2}:1`, vlan: 10 }, { port: `${A3}:1`, vlan: 20 }] } };
async function triangle(macs: Record<string, string> = {}) {
  const net = new SimNet(VLAN_CONFIG);
  for (const d of [A1, A2, A3]) net.addSwitch(d, [1, 2, 3, 4]);
  net.wire(`${A1}:2`, `${A2}:3`);
  net.wire(`${A2}:2`, `${A3}:3`);
  net.wire(`${A3}:2`, `${A1}:3`);
  const h = (name: string, at: string, n: number) => net.addHost(name, at, n, macs[name]);
  const hs = { h1: h('h1', `${A1}:1`, 1), h2: h('h2', `${A2}:1`, 2), h3: h('h3', `${A3}:1`, 3), h4: h('h4', `${A1}:4`, 4), h5: h('h5', `${A2}:4`, 5), h6: h('h6', `${A3}:4`, 6) };
  await net.ready();
  return { net, ...hs };
}

// ── config ────────────────────────────────────────────────────────────────────────────────────

describe('fabric VLAN config', () => {
  it('takes access ports ("dpid:port", vlan 1..4094); absent, there are no VLANs', () => {
    assert.equal(parseConfig({ fabric: true }).fabric!.vlans, undefined);
    const f = parseConfig({ fabric: { vlans: { access: [{ port: 'a1:1', vlan: 10 }, { port: '0x00000000000000A2:3', vlan: 4094 }] } } }).fabric!;
    assert.deepEqual(f.vlans, { access: [{ port: { dpid: A1, port: 1 }, vlan: 10 }, { port: { dpid: A2, port: 3 }, vlan: 4094 }] });
  });

  it('refuses what cannot be meant, naming the key', () => {
    const acc = (...access: unknown[]) => ({ vlans: { access } });
    refused({ vlans: [] }, /^fabric\.vlans$/);
    refused({ vlans: { access: [], trunks: 'links' } }, /^fabric\.vlans\.trunks$/);
    refused({ vlans: {} }, /^fabric\.vlans\.access$/);
    refused(acc(), /^fabric\.vlans\.access$/, /no access port/);
    refused(acc({ port: `${A1}:1` }), /^fabric\.vlans\.access\[0\]\.vlan$/, /missing/);
    for (const vlan of [0, 4095, 10.5, '10']) refused(acc({ port: `${A1}:1`, vlan }), /^fabric\.vlans\.access\[0\]\.vlan$/, /\[1, 4094\]/);
    refused(acc({ port: 'switch1:3', vlan: 10 }), /^fabric\.vlans\.access\[0\]\.port$/, /datapath id in hex/);
    refused(acc({ port: `${A1}:0`, vlan: 10 }), /^fabric\.vlans\.access\[0\]\.port$/);
    refused(acc({ dpid: A1, port: 1, vlan: 10 }), /^fabric\.vlans\.access\[0\]\.dpid$/);
    refused(acc({ port: `${A1}:1`, vlan: 10 }, { port: 'a1:1', vlan: 20 }), /^fabric\.vlans\.access\[1\]\.port$/, /already listed at fabric\.vlans\.access\[0\]/);
    refused({ links: [{ a: `${A1}:2`, b: `${A2}:3` }], vlans: { access: [{ port: `${A2}:3`, vlan: 10 }] } }, /^fabric\.vlans\.access\[0\]\.port$/, /end of fabric\.links\[0\].*trunk/);
  });
});

// ── pure parts ────────────────────────────────────────────────────────────────────────────────

describe('fabric VLAN decisions', () => {
  const plan = new VlanPlan([{ port: { dpid: A1, port: 1 }, vlan: 10 }, { port: { dpid: A1, port: 5 }, vlan: 10 }, { port: { dpid: A1, port: 4 }, vlan: 20 }]);

  it('the plan: access ports by switch and VLAN', () => {
    assert.equal(plan.vlanOf(A1, 1), 10);
    assert.equal(plan.vlanOf(A1, 2), undefined);
    assert.deepEqual(plan.accessPorts(A1, 10), [1, 5]);
    assert.deepEqual(plan.accessPortsOn(A1), [1, 4, 5]);
    assert.deepEqual(plan.accessPorts(A2, 10), []);
    assert.deepEqual(plan.vlans(), [10, 20]);
  });

  it('ingress: untagged at an access port; tagged (configured VLAN) or untagged on a link; untagged elsewhere', () => {
    const c = (port: number, link: boolean, tags: number[]) => { const r = classifyIngress(plan, A1, port, link, tags); return r.ok ? `${r.vlan ?? 'none'}${r.tagged ? ' tagged' : ''}` : `drop: ${r.why}`; };
    assert.equal(c(1, false, []), '10');
    assert.equal(c(1, false, [10]), 'drop: tagged frame at an access port');
    assert.equal(c(2, true, [20]), '20 tagged');
    assert.equal(c(2, true, []), 'none');
    assert.equal(c(2, true, [30]), 'drop: VLAN 30 is not configured');
    assert.equal(c(2, true, [0]), 'drop: VLAN 0 is not configured');
    assert.equal(c(2, true, [10, 20]), 'drop: more than one tag on a link');
    assert.equal(c(3, false, []), 'none');
    assert.equal(c(3, false, [10]), 'drop: tagged frame at an edge port in no VLAN');
    assert.deepEqual(classifyIngress(undefined, A1, 1, false, [10]), { ok: true, vlan: undefined, tagged: false }, 'no plan: tags ignored, as before VLANs');
  });

  it('outputs: those that keep the frame as it came first, then one push or pop', () => {
    const push = [{ type: 'push_vlan', ethType: 0x8100 }, { type: 'set_field', field: { vlanVid: 0x1000 | 10 } }];
    const out = (...ports: number[]) => ports.map((port) => ({ type: 'output', port }));
    assert.deepEqual(outputActions(10, false, [1, 5], [2, 3]), [...out(1, 5), ...push, ...out(2, 3)]);
    assert.deepEqual(outputActions(10, true, [1, 5], [3]), [...out(3), { type: 'pop_vlan' }, ...out(1, 5)]);
    assert.deepEqual(outputActions(10, true, [], [3]), out(3));
    assert.deepEqual(outputActions(10, false, [5], []), out(5));
    assert.deepEqual(outputActions(undefined, false, [6], [2]), out(6, 2));
    const isLink = (p: number) => p === 2 || p === 3;
    assert.deepEqual(splitFloodPorts(plan, A1, 10, [1, 2, 3, 4, 5, 6], isLink), { untagged: [1, 5], tagged: [2, 3] });
    assert.deepEqual(splitFloodPorts(plan, A1, 20, [1, 2, 4, 6], isLink), { untagged: [4], tagged: [2] });
    assert.deepEqual(splitFloodPorts(plan, A1, undefined, [1, 2, 4, 6], isLink), { untagged: [2, 6], tagged: [] }, 'no VLAN: no access port, links untagged');
  });

  it('one decision, its flows: tagged ingress and each access port of the VLAN, pushing or popping as the output needs', () => {
    const toLink = pathFlowMods({ dpid: A1, mac: '02:00:00:00:00:02', port: 2, vlan: 10 }, OPTS, plan);
    assert.deepEqual(toLink.map((m) => [m.priority, m.cookie, m.match, m.instructions]), [
      [12, pathCookie(10), { vlanVid: 0x100a, ethDst: '02:00:00:00:00:02' }, [{ type: 'apply_actions', actions: [{ type: 'output', port: 2 }] }]],
      [12, pathCookie(10), { inPort: 1, vlanVid: 0, ethDst: '02:00:00:00:00:02' }, [{ type: 'apply_actions', actions: [{ type: 'push_vlan', ethType: 0x8100 }, { type: 'set_field', field: { vlanVid: 0x100a } }, { type: 'output', port: 2 }] }]],
      [12, pathCookie(10), { inPort: 5, vlanVid: 0, ethDst: '02:00:00:00:00:02' }, [{ type: 'apply_actions', actions: [{ type: 'push_vlan', ethType: 0x8100 }, { type: 'set_field', field: { vlanVid: 0x100a } }, { type: 'output', port: 2 }] }]],
    ]);
    const toAccess = pathFlowMods({ dpid: A1, mac: '02:00:00:00:00:01', port: 1, vlan: 10 }, OPTS, plan);
    assert.deepEqual(toAccess.map((m) => m.instructions), [
      [{ type: 'apply_actions', actions: [{ type: 'pop_vlan' }, { type: 'output', port: 1 }] }],
      [{ type: 'apply_actions', actions: [{ type: 'output', port: 1 }] }],
      [{ type: 'apply_actions', actions: [{ type: 'output', port: 1 }] }],
    ]);
    assert.deepEqual(pathFlowMods({ dpid: A1, mac: '02:00:00:00:00:01', port: 4, vlan: 10 }, OPTS, plan), [], 'never out of another VLAN\'s access port');
    const none = pathFlowMods({ dpid: A1, mac: '02:00:00:00:00:06', port: 6 }, OPTS, plan);
    assert.deepEqual(none.map((m) => [m.priority, m.cookie, m.match]), [[10, PATH_COOKIE, { vlanVid: 0, ethDst: '02:00:00:00:00:06' }]], 'no VLAN: untagged frames only');
    assert.deepEqual(pathFlowMods({ dpid: A1, mac: '02:00:00:00:00:06', port: 6 }, OPTS), [pathFlowMod({ dpid: A1, mac: '02:00:00:00:00:06', port: 6 }, OPTS)], 'no plan: the flow as it always was');
    for (const m of [...toLink, ...toAccess, ...none, accessGuardMod(1, 10), edgeGuardMod(3, 10), edgeGuardMod(3, 10, true)]) assert.ok(decodeMessage(encodeMessage(m)).ok);
  });

  it('cookies: a path flow carries its VLAN; a port-down delete takes every VLAN\'s', () => {
    assert.equal(pathCookie(), PATH_COOKIE);
    assert.equal(pathCookie(10), 0x0400000a00000000n);
    assert.deepEqual(pathCookieVlan(pathCookie(4094)), { vlan: 4094 });
    assert.deepEqual(pathCookieVlan(PATH_COOKIE), {});
    assert.equal(pathCookieVlan(ACCESS_GUARD_COOKIE), undefined);
    assert.equal(pathCookieVlan(0x0200000000000000n), undefined);
    const d = deleteFlowsToPortMod(3) as FlowMod;
    assert.equal(pathCookie(10) & d.cookieMask, d.cookie & d.cookieMask);
    assert.notEqual(EDGE_GUARD_COOKIE & d.cookieMask, d.cookie & d.cookieMask);
  });

  it('topology: a MAC in two VLANs is two hosts, keyed "<mac>@<vlan>"', () => {
    const t = new Topology();
    t.addSwitch(A1, [1, 4].map((port) => ({ port, up: true })));
    const M = '02:00:00:00:00:01';
    assert.equal(t.learnHost(M, A1, 1, 0, 10), 'new');
    assert.equal(t.learnHost(M, A1, 4, 5, 20), 'new');
    assert.equal(t.learnHost(M, A1, 4, 6, 20), 'same');
    assert.deepEqual(t.host(M, 10), { mac: M, dpid: A1, port: 1, seen: 0, vlan: 10 });
    assert.equal(t.host(M), undefined);
    assert.equal(t.hostAnyVlan(M)?.vlan, 20, 'the one seen last');
    assert.equal(t.portTowardsHost(A1, M, 10), 1);
    assert.equal(hostKey(M, 10), `${M}@10`);
    assert.deepEqual(splitHostKey(`${M}@10`), { mac: M, vlan: 10 });
    assert.deepEqual(splitHostKey(M), { mac: M });
    assert.deepEqual(t.setPort(A1, 4, false).hosts, [`${M}@20`]);
    assert.equal(t.hostAnyVlan(M)?.vlan, 10);
    assert.equal(t.learnHost(M, A1, 1, 7), 'new', 'and in no VLAN a third');
    assert.equal(t.hostAnyVlan(M)?.vlan, undefined, 'no VLAN first');
  });

  it('adoption: flows that fit the plan are kept, the rest deleted', () => {
    const stat = (m: FlowMod): FlowStats => ({ tableId: m.tableId, durationSec: 1, durationNsec: 0, priority: m.priority, idleTimeout: m.idleTimeout, hardTimeout: m.hardTimeout, flags: m.flags, cookie: m.cookie, packetCount: 0n, byteCount: 0n, match: m.match, instructions: m.instructions });
    const H2 = '02:00:00:00:00:02', H6 = '02:00:00:00:00:06';
    const vlanFlows = pathFlowMods({ dpid: A1, mac: H2, port: 2, vlan: 10 }, OPTS, plan);
    const flows = [...vlanFlows, ...pathFlowMods({ dpid: A1, mac: H6, port: 6 }, OPTS, plan), edgeGuardMod(6, 10), accessGuardMod(1, 10),
      pathFlowMod({ dpid: A1, mac: H6, port: 6 }, OPTS), ...pathFlowMods({ dpid: A1, mac: H2, port: 2, vlan: 30 }, OPTS, new VlanPlan([{ port: { dpid: A1, port: 1 }, vlan: 30 }])), accessGuardMod(9, 10)].map((m) => stat(m as FlowMod));
    const a = adoptFlows(flows, plan, A1);
    assert.deepEqual([...a.paths], [[`${H2}@10`, 2], [H6, 6]]);
    assert.deepEqual([...a.renderings], [[`${H2}@10`, 3], [H6, 1]]);
    assert.deepEqual([...a.edgeGuards], [6]);
    assert.equal(a.stray.length, 4, 'a flow of no VLAN without vlan_vid (it would pass tagged frames), VLAN 30\'s two, a guard of a port that is no access port');
    const plain = adoptFlows(flows, undefined, A1);
    assert.deepEqual([...plain.paths], [[H6, 6]], 'without VLANs only the plain flow fits');
    assert.equal(plain.stray.length, flows.length - 1);
  });
});

// ── the app on a simulated data plane ─────────────────────────────────────────────────────────

describe('fabric app with VLANs (simulated data plane)', () => {
  it('discovers the links; guards every port that is no link, sends the rest of an access port\'s frames to itself', async () => {
    const { net } = await triangle();
    assert.equal(net.app.topology.activeLinks().length, 3);
    const guards = (dpid: string, cookie: bigint) => net.flows(dpid).filter((f) => f.cookie === cookie).map((f) => f.match.inPort).sort();
    assert.deepEqual(guards(A1, EDGE_GUARD_COOKIE), [1, 4]);
    assert.deepEqual(guards(A2, EDGE_GUARD_COOKIE), [1, 4]);
    assert.deepEqual(guards(A1, ACCESS_GUARD_COOKIE), [1, 4]);
    assert.deepEqual(guards(A2, ACCESS_GUARD_COOKIE), [1]);
    assert.deepEqual(guards(A3, ACCESS_GUARD_COOKIE), [1]);
  });

  it('a broadcast stays in its VLAN: to its access ports untagged, across links tagged, once each', async () => {
    const { net, h1, h2, h3, h4, h5, h6 } = await triangle();
    net.packetIns.length = 0;
    net.send(h1, bcast(h1, 'v10'));
    assert.equal(got(h2, 'v10').length, 1);
    assert.deepEqual(got(h2, 'v10')[0]!.eth.vlans, [], 'untagged at the access port');
    for (const h of [h1, h3, h4, h5, h6]) assert.equal(got(h, 'v10').length, 0, `${h.name} is in another VLAN`);
    const crossing = net.onWire.filter((w) => w.frame.udp && tagOf(w.frame) === 'v10');
    assert.ok(crossing.length >= 2, 'crossed the tree\'s two links');
    for (const w of crossing) assert.deepEqual(w.frame.eth.vlans, [10], `tagged on ${w.from}`);
    assert.equal(net.packetIns.length, 3, 'one Packet-In per switch');
    net.send(h4, bcast(h4, 'v20'));
    assert.deepEqual([h1, h2, h3, h4, h5, h6].map((h) => got(h, 'v20').length), [0, 0, 1, 0, 0, 0]);
    net.send(h5, bcast(h5, 'none'));
    assert.deepEqual([h1, h2, h3, h4, h5, h6].map((h) => got(h, 'none').length), [0, 0, 0, 0, 0, 1]);
    for (const w of net.onWire.filter((x) => x.frame.udp && tagOf(x.frame) === 'none')) assert.deepEqual(w.frame.eth.vlans, [], 'no VLAN: untagged on links');
  });

  it('unicast within a VLAN: paths installed, tagged across, untagged at the ends, then no Packet-In', async () => {
    const { net, h1, h2 } = await triangle();
    net.send(h2, bcast(h2, 'hello'));
    net.send(h1, unicast(h1, h2, 'u1'));
    net.send(h2, unicast(h2, h1, 'u2'));
    assert.equal(got(h2, 'u1').length, 1);
    assert.equal(got(h1, 'u2').length, 1);
    net.packetIns.length = 0;
    net.onWire.length = 0;
    for (let i = 0; i < 5; i++) { net.send(h1, unicast(h1, h2, `x${i}`)); net.send(h2, unicast(h2, h1, `y${i}`)); }
    assert.equal(net.packetIns.length, 0);
    assert.equal(got(h2, 'x4').length + got(h1, 'y4').length, 2);
    for (const f of [...h1.got, ...h2.got]) assert.deepEqual(f.eth.vlans, []);
    assert.ok(net.onWire.length >= 10 && net.onWire.every((w) => w.frame.eth.vlans[0] === 10), 'tagged 10 on the link');
    assert.equal(net.app.portForMac(A1, h2.mac), 2);
    assert.equal(net.app.portForMac(A1, h2.mac, 10), 2);
    assert.equal(net.app.portForMac(A1, h2.mac, 20), undefined);
  });

  it('no way across VLANs: not by unicast to a known MAC, not from the no-VLAN domain, not by tagging', async () => {
    const { net, h1, h2, h3, h4, h5 } = await triangle();
    net.send(h1, bcast(h1, 'h1 here'));
    net.send(h2, unicast(h2, h1, 'flows for h1')); // a2 now has h1's flows
    assert.ok(net.flows(A2).some((f) => f.match.ethDst === h1.mac));
    net.send(h3, unicast(h3, h1, 'from v20'));
    net.send(h4, unicast(h4, h1, 'from v20 on h1\'s switch'));
    net.send(h5, unicast(h5, h1, 'from no VLAN'));
    assert.deepEqual(h1.got.filter((f) => f.udp && tagOf(f).startsWith('from')).map(tagOf), []);
    assert.equal(got(h4, 'from v20').length, 1, 'an unknown destination in VLAN 20: flooded there');
    // Hopping: a host in no VLAN (or at an access port) tags its frame with VLAN 10.
    const drops = net.app.stats.vlanDrops;
    net.packetIns.length = 0;
    net.send(h5, unicast(h5, h1, 'hop', [10]));
    net.send(h4, unicast(h4, h1, 'hop', [10]));
    assert.equal(got(h1, 'hop').length, 0);
    assert.equal(net.packetIns.length, 0, 'the switch drops them itself (edge guards)');
    // The guards are what stops them: without, a2's flow for h1 in VLAN 10 would carry h5's tagged frame.
    for (const s of net.switches.values()) s.flows = s.flows.filter((f) => f.cookie !== EDGE_GUARD_COOKIE);
    net.send(h5, unicast(h5, h1, 'hop', [10]));
    assert.equal(got(h1, 'hop').length, 1, 'the guards matter');
    // A tagged frame no flow takes still stops at the controller.
    net.send(h5, unicast(h5, h2, 'hop2', [10]));
    assert.equal(got(h2, 'hop2').length, 0);
    assert.equal(net.app.stats.vlanDrops, drops + 1);
  });

  it('a MAC in two VLANs is two hosts, each reached in its own VLAN', async () => {
    const X = '02:00:00:00:00:77';
    const { net, h1, h2, h3, h4 } = await triangle({ h1: X, h3: X });
    net.send(h1, bcast(h1, 'a'));
    net.send(h3, bcast(h3, 'b'));
    assert.equal(net.app.topology.host(X, 10)?.dpid, A1);
    assert.equal(net.app.topology.host(X, 20)?.dpid, A3);
    net.send(h2, unicast(h2, { mac: X, ip: '10.0.0.1' }, 'to X in 10'));
    net.send(h4, unicast(h4, { mac: X, ip: '10.0.0.3' }, 'to X in 20'));
    assert.deepEqual([got(h1, 'to X in 10').length, got(h3, 'to X in 10').length], [1, 0]);
    assert.deepEqual([got(h1, 'to X in 20').length, got(h3, 'to X in 20').length], [0, 1]);
  });

  it('the host table names each host\'s VLAN, learns IPv6 there, and floods neighbour solicitations in the VLAN only', async () => {
    const { net, h1, h2, h4, h5 } = await triangle();
    const events: [string, HostLocation][] = [];
    net.app.on('host', (ip: string, loc: HostLocation) => events.push([ip, loc]));
    net.send(h1, buildArpFrame({ op: 'request', ethSrc: h1.mac, senderIp: h1.ip, targetIp: h2.ip }));
    net.send(h5, buildArpFrame({ op: 'request', ethSrc: h5.mac, senderIp: h5.ip, targetIp: '10.0.0.6' }));
    assert.deepEqual(net.app.hosts.get(h1.ip), { mac: h1.mac, dpid: A1, port: 1, seen: net.now, vlan: 10 });
    assert.deepEqual(net.app.hosts.get(h5.ip), { mac: h5.mac, dpid: A2, port: 4, seen: net.now }, 'no VLAN: no field');
    assert.equal(events[0]![1].vlan, 10);
    // IPv6: a solicitation (33:33:ff:00:00:02) is flooded like a broadcast, within VLAN 10.
    net.send(h1, buildNeighborSolicitation({ ethSrc: h1.mac, ipSrc: 'fd00::1', target: 'fd00::2' }));
    assert.equal(h2.got.filter((f) => f.icmpv6?.type === 135).length, 1);
    assert.equal(h4.got.filter((f) => f.icmpv6).length + h5.got.filter((f) => f.icmpv6).length, 0);
    // The answer is unicast, and a2 has flows for h1 (so would any switch after some traffic): the
    // trap still brings it to the controller, at each switch on its way, and it arrives once.
    net.send(h2, unicast(h2, h1, 'flows for h1'));
    assert.ok(net.flows(A2).some((f) => f.match.ethDst === h1.mac));
    const setups = net.app.stats.pathSetups;
    net.packetIns.length = 0;
    net.send(h2, buildNeighborAdvertisement({ ethSrc: h2.mac, ethDst: h1.mac, ipSrc: 'fe80::2', ipDst: 'fd00::1', target: 'fd00::2', solicited: true }));
    assert.equal(h1.got.filter((f) => f.icmpv6?.type === 136).length, 1);
    assert.deepEqual(net.packetIns.map((p) => `${p.dpid.slice(-2)}:${p.port} ${p.cookie === ND_TRAP_COOKIE}`), ['a2:1 true', 'a1:2 true']);
    assert.equal(net.app.stats.pathSetups, setups, 'passed on, no flows installed again');
    assert.deepEqual(net.app.hosts.get('fd00::1'), { mac: h1.mac, dpid: A1, port: 1, seen: net.now, vlan: 10 });
    assert.deepEqual(net.app.hosts.get('fd00::2'), { mac: h2.mac, dpid: A2, port: 1, seen: net.now, vlan: 10 }, 'the advertisement\'s target');
    assert.equal(net.app.hosts.get('fe80::2')?.vlan, 10);
    net.send(h4, buildNeighborSolicitation({ ethSrc: h4.mac, ipSrc: '::', target: 'fd00::4' }));
    assert.equal(net.app.hosts.has('::'), false);
    assert.equal(net.app.hosts.has('fd00::4'), false, 'duplicate address detection learns nothing');
    // learnHost from another app: the VLAN is the port's.
    net.app.learnHost('10.0.0.44', { mac: '02:00:00:00:00:44', dpid: A1, port: 4, seen: 1, vlan: 99 });
    assert.equal(net.app.hosts.get('10.0.0.44')?.vlan, 20);
  });

  it('a link going down re-routes VLAN traffic with its tags right, without asking the controller', async () => {
    const { net, h1, h2 } = await triangle();
    net.send(h2, bcast(h2, 'hello'));
    net.send(h1, unicast(h1, h2, 'u1'));
    net.send(h2, unicast(h2, h1, 'u2'));
    net.wires.delete(`${A1}:2`);
    net.wires.delete(`${A2}:3`);
    for (const [d, p] of [[A1, 2], [A2, 3]] as const) {
      net.app.portStatus(net.switches.get(d)!.asChannel(), { type: 'port_status', xid: 0, reason: 2, port: { portNo: p, hwAddr: '02:ff:00:00:00:00', name: 'x', config: 0, state: 1, curr: 0, advertised: 0, supported: 0, peer: 0, currSpeed: 0, maxSpeed: 0 } });
    }
    net.run();
    net.packetIns.length = 0;
    net.onWire.length = 0;
    net.send(h1, unicast(h1, h2, 'after'));
    net.send(h2, unicast(h2, h1, 'back'));
    assert.equal(got(h2, 'after').length, 1);
    assert.equal(got(h1, 'back').length, 1);
    assert.equal(net.packetIns.length, 0);
    assert.deepEqual(net.onWire.map((w) => `${w.from} ${w.frame.eth.vlans}`).sort(), [`${A1}:3 10`, `${A2}:2 10`, `${A3}:2 10`, `${A3}:3 10`]);
    assert.ok(net.flows(A1).some((f) => f.match.inPort === 2 && f.cookie === EDGE_GUARD_COOKIE), 'the dead link\'s port is an edge port now: guarded');
  });

  it('an LLDP probe at an access port makes no link', async () => {
    const net = new SimNet({ vlans: { access: [{ port: `${A1}:1`, vlan: 10 }] } });
    net.addSwitch(A1, [1, 2]);
    net.addSwitch(A2, [1, 2]);
    net.wire(`${A1}:1`, `${A2}:1`); // someone plugged a switch into a host's port
    net.wire(`${A1}:2`, `${A2}:2`);
    await net.ready();
    assert.deepEqual(net.app.topology.activeLinks().map((l) => `${l.a.port}-${l.b.port}`), ['2-2']);
    assert.equal(net.app.stats.accessLldp, 2, 'refused both ways');
  });

  it('a decision idles out with the last of its flows', async () => {
    const { net, h1, h2 } = await triangle();
    net.send(h2, bcast(h2, 'hello'));
    net.send(h1, unicast(h1, h2, 'u1'));
    const mine = net.flows(A2).filter((f) => f.match.ethDst === h2.mac && pathCookieVlan(f.cookie)?.vlan === 10);
    assert.equal(mine.length, 2, 'a2: tagged ingress, and its one access port of VLAN 10');
    const removed = (f: SimFlow) => net.app.flowRemoved(net.switches.get(A2)!.asChannel(), { type: 'flow_removed', xid: 0, cookie: f.cookie, priority: f.priority, reason: OFPRR.IDLE_TIMEOUT, tableId: 0, durationSec: 60, durationNsec: 0, idleTimeout: 60, hardTimeout: 0, packetCount: 0n, byteCount: 0n, match: f.match });
    const installed = () => (net.app as unknown as { installed: Map<string, Map<string, number>> }).installed.get(A2)!.has(`${h2.mac}@10`);
    removed(mine[1]!);
    assert.ok(installed(), 'one flow of two left');
    removed(mine[0]!);
    assert.ok(!installed());
  });

  it('adopts a restarted switch\'s VLAN flows and guards, and deletes the flows that no longer fit', async () => {
    const net = new SimNet(VLAN_CONFIG);
    const s = net.addSwitch(A1, [1, 2, 4]);
    const plan = net.app.vlanPlan!;
    const H2 = '02:00:00:00:00:02';
    const stat = (m: OfpMessage): FlowStats => { const f = m as FlowMod; return { tableId: 0, durationSec: 1, durationNsec: 0, priority: f.priority, idleTimeout: 60, hardTimeout: 0, flags: f.flags, cookie: f.cookie, packetCount: 0n, byteCount: 0n, match: f.match, instructions: f.instructions }; };
    const old = pathFlowMod({ dpid: A1, mac: H2, port: 2 }, OPTS);
    await net.app.switchReady(s.asChannel(), [...pathFlowMods({ dpid: A1, mac: H2, port: 2, vlan: 10 }, OPTS, plan), edgeGuardMod(1, 10), old].map(stat));
    net.app.stop();
    const mods = net.sent.map((x) => x.msg).filter((m): m is FlowMod => m.type === 'flow_mod');
    assert.deepEqual(mods.filter((m) => m.command === 'delete_strict').map((m) => m.match), [old.match], 'the plain flow (it would carry tagged frames) goes');
    assert.equal(mods.filter((m) => m.cookie === EDGE_GUARD_COOKIE).length, 0, 'guards wait for discovery to settle');
    (net.app as unknown as { adoptionDue(): void }).adoptionDue();
    const guards = net.sent.map((x) => x.msg).filter((m): m is FlowMod => m.type === 'flow_mod' && m.cookie === EDGE_GUARD_COOKIE);
    assert.deepEqual(guards.map((m) => `${m.command} ${m.match.inPort}`).sort(), ['add 2', 'add 4'], 'then port 4 gets one, port 2 (no link seen) too; port 1 had one');
  });
});
