// Forwarding across several switches (and on one, where it does what the learning switch does):
// links from LLDP probes (or config), hosts learnt only at edge ports, broadcasts flooded along a
// spanning tree, and per-host destination flows along shortest paths, recomputed whenever a link,
// port, switch or host changes. It keeps the learning switch's host table (IP → where the host
// is) and answers `portForMac` with the port towards a host from any switch. With `vlans` in its
// config, hosts on access ports are kept to their VLAN and links carry the VLANs tagged (vlans.ts).
//
// The decisions are pure (topology.ts, path-plan.ts, vlans.ts); this module does the I/O: port
// descriptions, probes, Packet-Outs, Flow-Mods, timers.
import { EventEmitter } from 'node:events';
import { OFPP, OFPPR, OFPPS, OFPPC, OFPRR, OFP_NO_BUFFER, type Action, type FlowMod, type FlowStats, type OfpMessage, type PortDesc } from '../openflow/index.ts';
import type { ParsedFrame } from '../packet/index.ts';
import { buildLldpFrame, decodeLldp, lldpProbe, ETHERTYPE_LLDP } from '../packet/lldp.ts';
import { dpidString, type SwitchConnection } from '../datapath/switch-connection.ts';
import { APP_ID } from '../cookies.ts';
import type { App, FlowRemoved, PacketIn, PortStatus } from '../apps/app.ts';
import type { HostLocation } from '../apps/learning-switch.ts';
import type { Logger } from '../log.ts';
import { Topology, hostKey, portKey, splitHostKey, type Link, type PortRef } from './topology.ts';
import {
  accessGuardMod, adoptFlows, deleteFlowsForHostMod, deleteFlowsToPortMod, deleteHostFlowsMod, deletePathFlowMod, deleteStrayMod, edgeGuardMod,
  edgeGuardPorts, flowsAlongPath, hostsFromFlows, lldpTrapFlow, MAX_VLAN_BASE_PRIORITY, ND_TRAP_COOKIE, pathCookieVlan, pathFlowMods, planReconcile,
  PRIORITY_OFFSET, type FlowTable, type PathFlow, type PathFlowOptions,
} from './path-plan.ts';
import { FloodGuard } from './flood-guard.ts';
import type { FabricConfig } from './fabric-config.ts';
import { learntAddresses, naTrapFlow, type HostDirectory } from './host-directory.ts';
import { classifyIngress, outputActions, splitFloodPorts, VlanPlan, type Ingress, type VlanId } from './vlans.ts';

export interface FabricOptions extends FabricConfig, PathFlowOptions {}

const withVlan = (vlan: VlanId): { vlan?: number } => (vlan === undefined ? {} : { vlan });

/** Events: 'host' (ip, HostLocation) as the learning switch emits it; 'link_up' (Link); 'link_down' (Link, why). */
export class FabricApp extends EventEmitter implements App, HostDirectory {
  readonly name = 'fabric';
  readonly cookieApps = [APP_ID.fabric] as const;
  readonly topology = new Topology();
  /** IP address (IPv4, IPv6 in RFC 5952 text) → where its owner is attached (an edge port), as LearningSwitch.hosts; `vlan` with VLANs. */
  readonly hosts = new Map<string, HostLocation>();
  /** The VLANs (`vlans` in the config); undefined: none, tags are ignored. */
  readonly vlanPlan?: VlanPlan;
  readonly stats = {
    lldpSent: 0, lldpReceived: 0, foreignLldp: 0, linksUp: 0, linksDown: 0,
    /** Broadcasts and frames for unknown hosts flooded along the tree; dropped as a non-tree copy; dropped as a repeat. */
    floods: 0, floodDrops: 0, loopDrops: 0,
    pathSetups: 0, flowMods: 0, repointed: 0, removed: 0,
    /** Frames dropped for their tags (VLANs: a tag at an access or edge port, an unknown VLAN on a link); LLDP refused at an access port. */
    vlanDrops: 0, accessLldp: 0,
  };
  private readonly switches = new Map<string, SwitchConnection>();
  /** What each switch holds of the fabric's forwarding decisions (dpid → host key → port). */
  private readonly installed: FlowTable = new Map();
  /** How many flows still render each installed decision (several with VLANs; they idle out one by one). */
  private readonly live = new Map<string, Map<string, number>>();
  /** Edge guards each switch holds (VLANs). */
  private readonly guards = new Map<string, Set<number>>();
  /** The topology version the guards were last brought in line with. */
  private guardVersion = -1;
  /** Access ports an LLDP probe was refused at, warned about once each. */
  private readonly warnedAccessLldp = new Set<string>();
  private readonly pathOpts: PathFlowOptions;
  /** Switches whose adopted flows wait for discovery to settle before they are checked. */
  private readonly adopting = new Set<string>();
  private adoptTimer?: NodeJS.Timeout;
  private tick?: NodeJS.Timeout;
  private readonly guard = new FloodGuard();
  private static readonly MAX_HOSTS = 65536;

  constructor(private readonly opts: FabricOptions, private readonly log: Logger, private readonly now: () => number = Date.now) {
    super();
    for (const l of opts.links) this.topology.addLink(l.a, l.b, now(), 'config');
    let priority = opts.priority;
    if (opts.vlans) {
      this.vlanPlan = new VlanPlan(opts.vlans.access);
      // VLAN mode uses up to 4 priorities above the base (path-plan.ts, PRIORITY_OFFSET).
      if (priority > MAX_VLAN_BASE_PRIORITY) {
        log.warn('learning.priority too high for VLANs: forwarding flows use a lower one', { priority, used: MAX_VLAN_BASE_PRIORITY });
        priority = MAX_VLAN_BASE_PRIORITY;
      }
    }
    this.pathOpts = { priority, idleTimeout: opts.idleTimeout, hardTimeout: opts.hardTimeout };
  }

  // ── the host table the handoff engine reads (same members as LearningSwitch) ────────────────

  /**
   * The port `dpid` sends frames for `mac` out of: the host's port on its own switch, else the
   * next hop. `vlan` names the host's VLAN; without it, the MAC in no VLAN, else in whichever VLAN
   * it was seen last.
   */
  portForMac(dpid: string, mac: string, vlan?: number): number | undefined {
    const h = vlan !== undefined ? this.topology.host(mac, vlan) : this.topology.hostAnyVlan(mac);
    if (!h) return undefined;
    return h.dpid === dpid ? h.port : this.topology.nextHop(dpid, h.dpid);
  }

  /**
   * Also called by apps that claim packets. A location at a link port is a frame in transit, not a
   * host: ignored. The VLAN is the port's (an access port's, or none), whatever `loc` says.
   */
  learnHost(ip: string, loc: HostLocation): void {
    if (this.topology.isLinkPort(loc.dpid, loc.port)) return;
    const vlan = this.vlanPlan?.vlanOf(loc.dpid, loc.port);
    this.learnMac(loc.mac, loc.dpid, loc.port, loc.seen, vlan);
    this.setHost(ip, { mac: loc.mac, dpid: loc.dpid, port: loc.port, seen: loc.seen, ...withVlan(vlan) });
  }

  private setHost(ip: string, loc: HostLocation): void {
    const old = this.hosts.get(ip);
    if (!old && this.hosts.size >= FabricApp.MAX_HOSTS) this.hosts.delete(this.hosts.keys().next().value!);
    this.hosts.set(ip, loc);
    if (!old || old.mac !== loc.mac || old.port !== loc.port || old.dpid !== loc.dpid || old.vlan !== loc.vlan) this.emit('host', ip, loc);
  }

  private learnMac(mac: string, dpid: string, port: number, now: number, vlan: VlanId): void {
    const r = this.topology.learnHost(mac, dpid, port, now, vlan);
    if (r === 'new' || r === 'moved') {
      this.log[r === 'moved' ? 'info' : 'debug'](r === 'moved' ? 'host moved' : 'host learnt', { mac, dpid, port, ...withVlan(vlan) });
      // Its flows (adopted ones, or the old location's tree) now follow the new location.
      this.reconcile(r === 'moved' ? 'host moved' : 'host learnt', new Set([hostKey(mac, vlan)]));
    }
  }

  // ── switches ────────────────────────────────────────────────────────────────────────────────

  async switchReady(sw: SwitchConnection, flows: FlowStats[]): Promise<void> {
    const dpid = dpidString(sw.features!.datapathId);
    const ports = (await portDescriptions(sw)).filter((p) => p.portNo < OFPP.MAX); // not LOCAL
    this.switches.set(dpid, sw);
    this.topology.addSwitch(dpid, ports.map((p) => ({ port: p.portNo, up: portUp(p), hwAddr: p.hwAddr })));
    // Flows kept through a controller restart or reconnect: the switch goes on forwarding with
    // them; they are checked once links had time to be discovered (adoptionDue). So are its edge
    // guards: new ones now would close the links to tagged frames until LLDP finds them again.
    const adopted = adoptFlows(flows, this.vlanPlan, dpid);
    this.installed.set(dpid, adopted.paths);
    this.live.set(dpid, adopted.renderings);
    this.guards.set(dpid, adopted.edgeGuards);
    if (adopted.paths.size > 0 || adopted.edgeGuards.size > 0) {
      this.adopting.add(dpid);
      if (this.adoptTimer) clearTimeout(this.adoptTimer);
      this.adoptTimer = setTimeout(() => this.adoptionDue(), 2 * this.opts.lldpIntervalMs + 500);
      this.adoptTimer.unref();
      this.log.info('adopting forwarding flows', { dpid, flows: adopted.paths.size, guards: adopted.edgeGuards.size });
    }
    // VLANs configured, removed or changed since those flows were made: theirs do not fit.
    if (adopted.stray.length) this.log.info('deleting fabric flows that do not fit the configuration', { dpid, flows: adopted.stray.length });
    const setup: OfpMessage[] = adopted.stray.map(deleteStrayMod);
    if (this.opts.lldp) setup.push(lldpTrapFlow());
    setup.push(naTrapFlow(ND_TRAP_COOKIE, this.pathOpts.priority + PRIORITY_OFFSET.ndTrap));
    if (this.vlanPlan) for (const p of this.vlanPlan.accessPortsOn(dpid)) setup.push(accessGuardMod(p, this.pathOpts.priority));
    if (setup.length) await sw.transact(setup);
    this.log.info('fabric switch up', { dpid, ports: ports.length });
    this.reconcile('switch up'); // configured links to it may be usable now
    this.probeAll(dpid, sw);
    if (!this.tick && this.opts.lldp) {
      this.tick = setInterval(() => this.onTick(), this.opts.lldpIntervalMs);
      this.tick.unref();
    }
  }

  switchGone(sw: SwitchConnection, reason: string): void {
    if (!sw.features) return;
    const dpid = dpidString(sw.features.datapathId);
    // A newer channel of the same switch may already have replaced this one.
    if (this.switches.get(dpid) !== sw) return;
    this.switches.delete(dpid);
    this.installed.delete(dpid);
    this.live.delete(dpid);
    this.guards.delete(dpid);
    this.adopting.delete(dpid);
    const lost = this.topology.removeSwitch(dpid);
    for (const l of lost) this.linkDown(l, `switch ${dpid} gone: ${reason}`);
    this.reconcile('switch gone');
  }

  /** Another controller took the switches (standby): nothing of theirs is ours to manage any more. */
  forget(why: string): void {
    for (const dpid of [...this.switches.keys()]) this.topology.removeSwitch(dpid);
    this.switches.clear();
    this.installed.clear();
    this.live.clear();
    this.guards.clear();
    this.adopting.clear();
    this.log.info('fabric forgot its switches', { why });
  }

  stop(): void {
    if (this.tick) clearInterval(this.tick);
    if (this.adoptTimer) clearTimeout(this.adoptTimer);
    this.tick = undefined;
    this.adoptTimer = undefined;
  }

  private onTick(): void {
    const now = this.now();
    for (const [dpid, sw] of this.switches) this.probeAll(dpid, sw);
    const gone = this.topology.expireLinks(now, this.opts.linkTimeoutMs);
    for (const l of gone) this.linkDown(l, 'no LLDP within linkTimeoutMs');
    if (gone.length) this.reconcile('link timed out');
    this.guard.prune(now);
  }

  /** Adopted flows, once discovery settled: those at edge ports name their hosts; the rest are checked against paths, or removed. */
  private adoptionDue(): void {
    this.adoptTimer = undefined;
    const now = this.now();
    for (const dpid of this.adopting) {
      for (const h of hostsFromFlows(this.topology, dpid, this.installed.get(dpid) ?? new Map())) {
        // A host of a VLAN sits on an access port of that VLAN, a host in none on a port in none.
        if (this.vlanPlan?.vlanOf(dpid, h.port) === h.vlan) this.topology.learnHost(h.mac, dpid, h.port, now, h.vlan);
      }
    }
    const adopted = [...this.adopting];
    this.adopting.clear();
    this.guardVersion = -1; // the adopted switches' guards are checked now
    this.reconcile('adopted flows');
    // Whatever still has no known host points across a link towards nobody we know: drop it; traffic re-learns.
    for (const dpid of adopted) {
      for (const key of [...(this.installed.get(dpid)?.keys() ?? [])]) if (!this.topology.hostByKey(key)) this.removeFlow(dpid, key);
    }
  }

  // ── LLDP ────────────────────────────────────────────────────────────────────────────────────

  private probeAll(dpid: string, sw: SwitchConnection): void {
    if (!this.opts.lldp) return;
    for (const [port, info] of this.topology.ports(dpid)) if (info.up) this.probe(dpid, sw, port, info.hwAddr);
  }

  private probe(dpid: string, sw: SwitchConnection, port: number, hwAddr?: string): void {
    const data = buildLldpFrame({ dpid, port, srcMac: hwAddr ?? '02:00:00:00:00:00', ttl: Math.ceil(this.opts.linkTimeoutMs / 1000) });
    if (this.sendTo(sw, { type: 'packet_out', xid: 0, bufferId: OFP_NO_BUFFER, inPort: OFPP.CONTROLLER, actions: [{ type: 'output', port }], data })) this.stats.lldpSent++;
  }

  private onLldp(dpid: string, inPort: number, frame: ParsedFrame): void {
    this.stats.lldpReceived++;
    const l = decodeLldp(frame.raw, frame.eth.l3Offset);
    const probe = l.ok ? lldpProbe(l.value) : l;
    // Another device's LLDP (or garbage): never forwarded, bridges do not pass 01:80:c2:00:00:0e.
    if (!probe.ok) { this.stats.foreignLldp++; return; }
    const from = { dpid: probe.value.dpid, port: probe.value.port };
    if (!this.switches.has(from.dpid)) return; // a switch this controller does not hold
    const to = { dpid, port: inPort };
    if (this.refusedAtAccessPort(from, to)) return;
    const r = this.topology.addLink(from, to, this.now(), 'lldp');
    if (!r.added) return;
    for (const old of r.replaced) this.linkDown(old, 'replaced by a newly seen link');
    for (const mac of r.hosts) this.forgetHost(mac, 'learnt at what is a link port');
    this.stats.linksUp++;
    this.log.info('fabric link up', { a: portKey(r.link!.a), b: portKey(r.link!.b) });
    this.emit('link_up', r.link);
    this.reconcile('link up');
  }

  /** A link at an access port would make a host's port a trunk: the operator said it is a host's, so no link. */
  private refusedAtAccessPort(from: PortRef, to: PortRef): boolean {
    const at = [from, to].find((r) => this.vlanPlan?.isAccess(r));
    if (!at) return false;
    this.stats.accessLldp++;
    const k = portKey(at);
    if (!this.warnedAccessLldp.has(k)) {
      this.warnedAccessLldp.add(k);
      this.log.warn('LLDP probe at a VLAN access port: no link there (an access port is for hosts; a switch behind it is not part of the fabric)', { from: portKey(from), to: portKey(to), accessPort: k });
    }
    return true;
  }

  private linkDown(l: Link, why: string): void {
    this.stats.linksDown++;
    this.log.info('fabric link down', { a: portKey(l.a), b: portKey(l.b), why });
    this.emit('link_down', l, why);
  }

  // ── Packet-In ───────────────────────────────────────────────────────────────────────────────

  packetIn(sw: SwitchConnection, pi: PacketIn, frame: ParsedFrame | undefined): boolean {
    if (!frame || !sw.features) return false;
    const inPort = pi.match.inPort;
    if (inPort === undefined) return false;
    const dpid = dpidString(sw.features.datapathId);
    if (frame.eth.ethType === ETHERTYPE_LLDP) { this.onLldp(dpid, inPort, frame); return true; }
    if (!this.topology.hasSwitch(dpid)) return false;
    if (!this.topology.portInfo(dpid, inPort)) { this.topology.setPort(dpid, inPort, true); this.syncGuards(); }
    const now = this.now();
    const { src, dst } = frame.eth;
    const isLink = this.topology.isLinkPort(dpid, inPort);
    // Which VLAN the frame is in (none without VLANs); a frame no VLAN takes goes no further.
    const ingress = classifyIngress(this.vlanPlan, dpid, inPort, isLink, frame.eth.vlans);
    if (!ingress.ok) {
      this.stats.vlanDrops++;
      this.log.debug('frame dropped', { dpid, inPort, src, why: ingress.why });
      return true;
    }
    const vlan = ingress.vlan;

    // Hosts are learnt where they are attached; at a link port a frame is only passing through.
    if (!isMulticast(src) && !isLink) {
      this.learnMac(src, dpid, inPort, now, vlan);
      for (const ip of learntAddresses(frame)) this.setHost(ip, { mac: src, dpid, port: inPort, seen: now, ...withVlan(vlan) });
    }

    const flows = isMulticast(dst) ? undefined : flowsAlongPath(this.topology, dpid, dst, vlan);
    if (!flows) { this.flood(sw, dpid, inPort, pi, now, ingress); return true; }
    const here = flows[flows.length - 1]!;
    if (here.port === inPort) return true; // would hairpin: drop, as a real bridge does
    // A trapped advertisement is only passed on: the switches did not lack a flow, it was taken
    // to the controller above them (at every switch on its way).
    if (pi.cookie !== ND_TRAP_COOKIE) {
      this.install(flows, dpid);
      this.stats.pathSetups++;
    }
    this.packetOut(sw, pi, this.outputs(dpid, ingress, [here.port]));
    return true;
  }

  /** Outputs to `ports` for a frame that entered as `ingress` says: as it came without VLANs, else tagged on links and untagged at access ports. */
  private outputs(dpid: string, ingress: Ingress & { ok: true }, ports: readonly number[]): Action[] {
    if (!this.vlanPlan) return ports.map((port) => ({ type: 'output' as const, port }));
    const { untagged, tagged } = splitFloodPorts(this.vlanPlan, dpid, ingress.vlan, ports, (p) => this.topology.isLinkPort(dpid, p));
    return outputActions(ingress.vlan, ingress.tagged, untagged, tagged);
  }

  private flood(sw: SwitchConnection, dpid: string, inPort: number, pi: PacketIn, now: number, ingress: Ingress & { ok: true }): void {
    if (!this.guard.admit(dpid, pi.data, now)) { this.stats.loopDrops++; return; }
    const { drop, ports } = this.topology.floodPorts(dpid, inPort);
    if (drop) { this.stats.floodDrops++; return; }
    this.stats.floods++;
    // With VLANs, only the frame's own VLAN: its access ports here and the tree's links.
    const actions = this.outputs(dpid, ingress, ports);
    if (actions.length > 0) this.packetOut(sw, pi, actions);
  }

  private packetOut(sw: SwitchConnection, pi: PacketIn, actions: Action[]): void {
    const buffered = pi.bufferId !== OFP_NO_BUFFER;
    this.sendTo(sw, {
      type: 'packet_out', xid: 0, bufferId: pi.bufferId, inPort: pi.match.inPort ?? OFPP.CONTROLLER,
      actions, data: buffered ? Buffer.alloc(0) : pi.data,
    });
  }

  // ── ports and flows ─────────────────────────────────────────────────────────────────────────

  portStatus(sw: SwitchConnection, msg: PortStatus): void {
    if (!sw.features) return;
    const dpid = dpidString(sw.features.datapathId);
    const port = msg.port.portNo;
    if (port >= OFPP.MAX || this.switches.get(dpid) !== sw) return;
    const up = msg.reason !== OFPPR.DELETE && portUp(msg.port);
    const r = msg.reason === OFPPR.DELETE ? { ...this.topology.removePort(dpid, port), changed: true } : this.topology.setPort(dpid, port, up, msg.port.hwAddr);
    if (!r.changed) return;
    this.log[up ? 'debug' : 'info'](up ? 'port up' : 'port down', { dpid, port });
    if (r.linkDown) this.linkDown(r.linkDown, `port ${dpid}:${port} down`);
    for (const key of r.hosts) this.forgetHost(key, `port ${dpid}:${port} down`);
    if (up) {
      this.probe(dpid, sw, port, msg.port.hwAddr);
      if ('linkUp' in r && r.linkUp) this.reconcile('configured link up');
      this.syncGuards();
      return;
    }
    // Re-point what can go another way first, then remove what still leads out of the dead port
    // (flows this controller does not track included): the switch applies them in this order.
    this.reconcile(`port ${dpid}:${port} down`);
    this.sendTo(sw, deleteFlowsToPortMod(port));
    const mine = this.installed.get(dpid);
    if (mine) for (const [key, p] of mine) if (p === port) { mine.delete(key); this.live.get(dpid)?.delete(key); }
  }

  flowRemoved(sw: SwitchConnection, msg: FlowRemoved): void {
    const path = pathCookieVlan(msg.cookie);
    if (!sw.features || !path || typeof msg.match.ethDst !== 'string') return;
    // Only timeouts: a flow this app replaced or deleted is already accounted for.
    if (msg.reason !== OFPRR.IDLE_TIMEOUT && msg.reason !== OFPRR.HARD_TIMEOUT) return;
    const dpid = dpidString(sw.features.datapathId);
    const key = hostKey(msg.match.ethDst, path.vlan);
    // With VLANs a decision is several flows, each idling out alone (a trunk's often sees no
    // traffic while an access port's does): the decision is gone with the last of them.
    const live = this.live.get(dpid);
    const left = (live?.get(key) ?? 1) - 1;
    if (left > 0) { live!.set(key, left); return; }
    live?.delete(key);
    this.installed.get(dpid)?.delete(key);
  }

  /** The host is not where it was learnt: its flows go, on every switch (they may point anywhere now). */
  private forgetHost(key: string, why: string): void {
    const { mac, vlan } = splitHostKey(key);
    this.topology.forgetHost(mac, vlan);
    for (const [ip, h] of this.hosts) if (h.mac === mac && h.vlan === vlan) this.hosts.delete(ip);
    for (const [dpid, sw] of this.switches) {
      this.installed.get(dpid)?.delete(key);
      this.live.get(dpid)?.delete(key);
      this.sendTo(sw, this.vlanPlan ? deleteHostFlowsMod(mac, vlan) : deleteFlowsForHostMod(mac));
    }
    this.log.debug('host forgotten', { mac, ...withVlan(vlan), why });
  }

  /** Sends the flows of one decision; true when all went out (the switch is still there). */
  private sendPathFlow(f: PathFlow): boolean {
    const sw = this.switches.get(f.dpid);
    const table = this.installed.get(f.dpid);
    if (!sw || !table) return false;
    const mods: FlowMod[] = pathFlowMods(f, this.pathOpts, this.vlanPlan);
    if (mods.length === 0) return false; // a path that would join two VLANs: nothing to hold
    for (const m of mods) { if (!this.sendTo(sw, m)) return false; this.stats.flowMods++; }
    const key = hostKey(f.mac, f.vlan);
    table.set(key, f.port);
    this.live.get(f.dpid)?.set(key, mods.length);
    return true;
  }

  private install(flows: PathFlow[], entry: string): void {
    for (const f of flows) {
      // The entry switch sent the frame here, so it lacks the flow whatever the table says.
      if (f.dpid !== entry && this.installed.get(f.dpid)?.get(hostKey(f.mac, f.vlan)) === f.port) continue;
      this.sendPathFlow(f);
    }
  }

  private removeFlow(dpid: string, key: string): void {
    this.installed.get(dpid)?.delete(key);
    this.live.get(dpid)?.delete(key);
    const { mac, vlan } = splitHostKey(key);
    const sw = this.switches.get(dpid);
    const mod = this.vlanPlan ? deleteHostFlowsMod(mac, vlan) : deletePathFlowMod(mac, this.pathOpts.priority);
    if (sw && this.sendTo(sw, mod)) this.stats.flowMods++;
  }

  /** Every installed flow (of the hosts `keys` names) follows the current topology: re-pointed, or removed. */
  private reconcile(why: string, keys?: ReadonlySet<string>): void {
    const plan = planReconcile(this.topology, this.installed, keys);
    for (const f of plan.set) this.sendPathFlow(f);
    for (const r of plan.remove) this.removeFlow(r.dpid, hostKey(r.mac, r.vlan));
    this.stats.repointed += plan.set.length;
    this.stats.removed += plan.remove.length;
    if (plan.set.length || plan.remove.length) this.log.info('fabric flows recomputed', { why, repointed: plan.set.length, removed: plan.remove.length });
    this.syncGuards();
  }

  /**
   * With VLANs, every port that is no link's end drops tagged frames (path-plan.ts, edge guards):
   * brought in line whenever links or ports changed. A switch whose adopted guards wait for
   * discovery to settle keeps them as they are meanwhile.
   */
  private syncGuards(): void {
    if (!this.vlanPlan || this.guardVersion === this.topology.version) return;
    this.guardVersion = this.topology.version;
    const base = this.pathOpts.priority;
    for (const [dpid, sw] of this.switches) {
      if (this.adopting.has(dpid)) continue;
      const want = edgeGuardPorts(this.topology, dpid, this.vlanPlan);
      const have = this.guards.get(dpid) ?? new Set<number>();
      const mods = [...[...want].filter((p) => !have.has(p)).map((p) => edgeGuardMod(p, base)), ...[...have].filter((p) => !want.has(p)).map((p) => edgeGuardMod(p, base, true))];
      if (mods.length === 0) continue;
      if (mods.every((m) => this.sendTo(sw, m))) this.guards.set(dpid, want);
      this.stats.flowMods += mods.length;
    }
  }

  private sendTo(sw: SwitchConnection, msg: OfpMessage): boolean {
    try { sw.send(msg); return true; } catch (e) {
      // A switch that went away: its switchGone follows.
      this.log.debug('not sent', { dpid: sw.describe(), type: msg.type, error: (e as Error).message });
      return false;
    }
  }

  /** A summary for operators: usable links, the spanning tree, how many hosts, which switches. */
  describe(): { links: Link[]; tree: Link[]; hosts: number; switches: string[] } {
    return { links: this.topology.activeLinks(), tree: this.topology.treeLinks(), hosts: this.topology.hosts().length, switches: this.topology.switchIds() };
  }
}

function isMulticast(mac: string): boolean { return (parseInt(mac.slice(0, 2), 16) & 1) === 1; }

function portUp(p: PortDesc): boolean { return (p.state & OFPPS.LINK_DOWN) === 0 && (p.config & OFPPC.PORT_DOWN) === 0; }

async function portDescriptions(sw: SwitchConnection): Promise<PortDesc[]> {
  const replies = await sw.request({ type: 'multipart_request', xid: 0, flags: 0, body: { kind: 'port_desc' } } as OfpMessage);
  const ports: PortDesc[] = [];
  for (const r of replies) if (r.type === 'multipart_reply' && r.body.kind === 'port_desc') ports.push(...r.body.ports);
  return ports;
}
