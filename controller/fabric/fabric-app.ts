// Forwarding across several switches (and on one, where it does what the learning switch does):
// links from LLDP probes (or config), hosts learnt only at edge ports, broadcasts flooded along a
// spanning tree, and per-host destination flows along shortest paths, recomputed whenever a link,
// port, switch or host changes. It keeps the learning switch's host table (IP → where the host
// is) and answers `portForMac` with the port towards a host from any switch.
//
// The decisions are pure (topology.ts, path-plan.ts); this module does the I/O: port
// descriptions, probes, Packet-Outs, Flow-Mods, timers.
import { EventEmitter } from 'node:events';
import { OFPP, OFPPR, OFPPS, OFPPC, OFPRR, OFP_NO_BUFFER, type FlowStats, type OfpMessage, type PortDesc } from '../openflow/index.ts';
import type { ParsedFrame } from '../packet/index.ts';
import { buildLldpFrame, decodeLldp, lldpProbe, ETHERTYPE_LLDP } from '../packet/lldp.ts';
import { dpidString, type SwitchConnection } from '../datapath/switch-connection.ts';
import { APP_ID } from '../cookies.ts';
import type { App, FlowRemoved, PacketIn, PortStatus } from '../apps/app.ts';
import type { HostLocation } from '../apps/learning-switch.ts';
import type { Logger } from '../log.ts';
import { Topology, portKey, type Link } from './topology.ts';
import {
  adoptPathFlows, deleteFlowsForHostMod, deleteFlowsToPortMod, deletePathFlowMod, flowsAlongPath, hostsFromFlows, lldpTrapFlow,
  pathFlowMod, planReconcile, PATH_COOKIE, type FlowTable, type PathFlow, type PathFlowOptions,
} from './path-plan.ts';
import { FloodGuard } from './flood-guard.ts';
import type { FabricConfig } from './fabric-config.ts';
import type { HostDirectory } from './host-directory.ts';

export interface FabricOptions extends FabricConfig, PathFlowOptions {}

/** Events: 'host' (ip, HostLocation) as the learning switch emits it; 'link_up' (Link); 'link_down' (Link, why). */
export class FabricApp extends EventEmitter implements App, HostDirectory {
  readonly name = 'fabric';
  readonly cookieApps = [APP_ID.fabric] as const;
  readonly topology = new Topology();
  /** ipv4 → where its owner is attached (an edge port), as LearningSwitch.hosts. */
  readonly hosts = new Map<string, HostLocation>();
  readonly stats = {
    lldpSent: 0, lldpReceived: 0, foreignLldp: 0, linksUp: 0, linksDown: 0,
    /** Broadcasts and frames for unknown hosts flooded along the tree; dropped as a non-tree copy; dropped as a repeat. */
    floods: 0, floodDrops: 0, loopDrops: 0,
    pathSetups: 0, flowMods: 0, repointed: 0, removed: 0,
  };
  private readonly switches = new Map<string, SwitchConnection>();
  /** What each switch holds of the fabric's forwarding flows. */
  private readonly installed: FlowTable = new Map();
  /** Switches whose adopted flows wait for discovery to settle before they are checked. */
  private readonly adopting = new Set<string>();
  private adoptTimer?: NodeJS.Timeout;
  private tick?: NodeJS.Timeout;
  private readonly guard = new FloodGuard();
  private static readonly MAX_HOSTS = 65536;

  constructor(private readonly opts: FabricOptions, private readonly log: Logger, private readonly now: () => number = Date.now) {
    super();
    for (const l of opts.links) this.topology.addLink(l.a, l.b, now(), 'config');
  }

  // ── the host table the handoff engine reads (same members as LearningSwitch) ────────────────

  /** The port `dpid` sends frames for `mac` out of: the host's port on its own switch, else the next hop. */
  portForMac(dpid: string, mac: string): number | undefined { return this.topology.portTowardsHost(dpid, mac); }

  /** Also called by apps that claim packets. A location at a link port is a frame in transit, not a host: ignored. */
  learnHost(ip: string, loc: HostLocation): void {
    if (this.topology.isLinkPort(loc.dpid, loc.port)) return;
    this.learnMac(loc.mac, loc.dpid, loc.port, loc.seen);
    this.setHost(ip, loc);
  }

  private setHost(ip: string, loc: HostLocation): void {
    const old = this.hosts.get(ip);
    if (!old && this.hosts.size >= FabricApp.MAX_HOSTS) this.hosts.delete(this.hosts.keys().next().value!);
    this.hosts.set(ip, loc);
    if (!old || old.mac !== loc.mac || old.port !== loc.port || old.dpid !== loc.dpid) this.emit('host', ip, loc);
  }

  private learnMac(mac: string, dpid: string, port: number, now: number): void {
    const r = this.topology.learnHost(mac, dpid, port, now);
    if (r === 'new' || r === 'moved') {
      this.log[r === 'moved' ? 'info' : 'debug'](r === 'moved' ? 'host moved' : 'host learnt', { mac, dpid, port });
      // Its flows (adopted ones, or the old location's tree) now follow the new location.
      this.reconcile(r === 'moved' ? 'host moved' : 'host learnt', new Set([mac]));
    }
  }

  // ── switches ────────────────────────────────────────────────────────────────────────────────

  async switchReady(sw: SwitchConnection, flows: FlowStats[]): Promise<void> {
    const dpid = dpidString(sw.features!.datapathId);
    const ports = (await portDescriptions(sw)).filter((p) => p.portNo < OFPP.MAX); // not LOCAL
    this.switches.set(dpid, sw);
    this.topology.addSwitch(dpid, ports.map((p) => ({ port: p.portNo, up: portUp(p), hwAddr: p.hwAddr })));
    // Flows kept through a controller restart or reconnect: the switch goes on forwarding with
    // them; they are checked once links had time to be discovered (adoptionDue).
    const adopted = adoptPathFlows(flows);
    this.installed.set(dpid, adopted);
    if (adopted.size > 0) {
      this.adopting.add(dpid);
      if (this.adoptTimer) clearTimeout(this.adoptTimer);
      this.adoptTimer = setTimeout(() => this.adoptionDue(), 2 * this.opts.lldpIntervalMs + 500);
      this.adoptTimer.unref();
      this.log.info('adopting forwarding flows', { dpid, flows: adopted.size });
    }
    if (this.opts.lldp) await sw.transact([lldpTrapFlow()]);
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
      for (const h of hostsFromFlows(this.topology, dpid, this.installed.get(dpid) ?? new Map())) this.topology.learnHost(h.mac, dpid, h.port, now);
    }
    this.reconcile('adopted flows');
    // Whatever still has no known host points across a link towards nobody we know: drop it; traffic re-learns.
    for (const dpid of this.adopting) {
      for (const mac of [...(this.installed.get(dpid)?.keys() ?? [])]) if (!this.topology.host(mac)) this.removeFlow(dpid, mac);
    }
    this.adopting.clear();
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
    const r = this.topology.addLink(from, { dpid, port: inPort }, this.now(), 'lldp');
    if (!r.added) return;
    for (const old of r.replaced) this.linkDown(old, 'replaced by a newly seen link');
    for (const mac of r.hosts) this.forgetHost(mac, 'learnt at what is a link port');
    this.stats.linksUp++;
    this.log.info('fabric link up', { a: portKey(r.link!.a), b: portKey(r.link!.b) });
    this.emit('link_up', r.link);
    this.reconcile('link up');
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
    if (!this.topology.portInfo(dpid, inPort)) this.topology.setPort(dpid, inPort, true);
    const now = this.now();
    const { src, dst } = frame.eth;

    // Hosts are learnt where they are attached; at a link port a frame is only passing through.
    if (!isMulticast(src) && !this.topology.isLinkPort(dpid, inPort)) {
      this.learnMac(src, dpid, inPort, now);
      const ip = frame.arp?.senderIp ?? frame.ipv4?.src;
      if (ip && ip !== '0.0.0.0') this.setHost(ip, { mac: src, dpid, port: inPort, seen: now });
    }

    const flows = isMulticast(dst) ? undefined : flowsAlongPath(this.topology, dpid, dst);
    if (!flows) { this.flood(sw, dpid, inPort, pi, now); return true; }
    const here = flows[flows.length - 1]!;
    if (here.port === inPort) return true; // would hairpin: drop, as a real bridge does
    this.install(flows, dpid);
    this.stats.pathSetups++;
    this.packetOut(sw, pi, [here.port]);
    return true;
  }

  private flood(sw: SwitchConnection, dpid: string, inPort: number, pi: PacketIn, now: number): void {
    if (!this.guard.admit(dpid, pi.data, now)) { this.stats.loopDrops++; return; }
    const { drop, ports } = this.topology.floodPorts(dpid, inPort);
    if (drop) { this.stats.floodDrops++; return; }
    this.stats.floods++;
    if (ports.length > 0) this.packetOut(sw, pi, ports);
  }

  private packetOut(sw: SwitchConnection, pi: PacketIn, ports: number[]): void {
    const buffered = pi.bufferId !== OFP_NO_BUFFER;
    this.sendTo(sw, {
      type: 'packet_out', xid: 0, bufferId: pi.bufferId, inPort: pi.match.inPort ?? OFPP.CONTROLLER,
      actions: ports.map((port) => ({ type: 'output' as const, port })), data: buffered ? Buffer.alloc(0) : pi.data,
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
    for (const mac of r.hosts) this.forgetHost(mac, `port ${dpid}:${port} down`);
    if (up) {
      this.probe(dpid, sw, port, msg.port.hwAddr);
      if ('linkUp' in r && r.linkUp) this.reconcile('configured link up');
      return;
    }
    // Re-point what can go another way first, then remove what still leads out of the dead port
    // (flows this controller does not track included): the switch applies them in this order.
    this.reconcile(`port ${dpid}:${port} down`);
    this.sendTo(sw, deleteFlowsToPortMod(port));
    const mine = this.installed.get(dpid);
    if (mine) for (const [mac, p] of mine) if (p === port) mine.delete(mac);
  }

  flowRemoved(sw: SwitchConnection, msg: FlowRemoved): void {
    if (!sw.features || msg.cookie !== PATH_COOKIE || typeof msg.match.ethDst !== 'string') return;
    // Only timeouts: a flow this app replaced or deleted is already accounted for.
    if (msg.reason !== OFPRR.IDLE_TIMEOUT && msg.reason !== OFPRR.HARD_TIMEOUT) return;
    this.installed.get(dpidString(sw.features.datapathId))?.delete(msg.match.ethDst);
  }

  /** The host is not where it was learnt: its flows go, on every switch (they may point anywhere now). */
  private forgetHost(mac: string, why: string): void {
    this.topology.forgetHost(mac);
    for (const [ip, h] of this.hosts) if (h.mac === mac) this.hosts.delete(ip);
    for (const [dpid, sw] of this.switches) {
      this.installed.get(dpid)?.delete(mac);
      this.sendTo(sw, deleteFlowsForHostMod(mac));
    }
    this.log.debug('host forgotten', { mac, why });
  }

  private install(flows: PathFlow[], entry: string): void {
    for (const f of flows) {
      const table = this.installed.get(f.dpid);
      const sw = this.switches.get(f.dpid);
      if (!table || !sw) continue;
      // The entry switch sent the frame here, so it lacks the flow whatever the table says.
      if (f.dpid !== entry && table.get(f.mac) === f.port) continue;
      if (this.sendTo(sw, pathFlowMod(f, this.opts))) { table.set(f.mac, f.port); this.stats.flowMods++; }
    }
  }

  private removeFlow(dpid: string, mac: string): void {
    this.installed.get(dpid)?.delete(mac);
    const sw = this.switches.get(dpid);
    if (sw && this.sendTo(sw, deletePathFlowMod(mac, this.opts.priority))) this.stats.flowMods++;
  }

  /** Every installed flow (of `macs`) follows the current topology: re-pointed, or removed. */
  private reconcile(why: string, macs?: ReadonlySet<string>): void {
    const plan = planReconcile(this.topology, this.installed, macs);
    for (const f of plan.set) {
      const sw = this.switches.get(f.dpid);
      if (sw && this.sendTo(sw, pathFlowMod(f, this.opts))) { this.installed.get(f.dpid)!.set(f.mac, f.port); this.stats.flowMods++; }
    }
    for (const r of plan.remove) this.removeFlow(r.dpid, r.mac);
    this.stats.repointed += plan.set.length;
    this.stats.removed += plan.remove.length;
    if (plan.set.length || plan.remove.length) this.log.info('fabric flows recomputed', { why, repointed: plan.set.length, removed: plan.remove.length });
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
