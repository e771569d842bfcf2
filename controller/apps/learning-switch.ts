// L2 learning switch for all traffic the migration logic does not own (ARP included):
// learns source MACs per datapath, installs exact (in_port, eth_src, eth_dst) flows with idle
// timeouts for known destinations, and floods the rest (broadcast and multicast, IPv6 neighbour
// solicitations to 33:33:… included). Also keeps an IP → MAC/port table from what it sees (IPv4
// and IPv6, fabric/host-directory.ts), which the handoff engine uses to find backends. It knows no
// VLANs: frames are forwarded by MAC whatever their tags (VLANs need `"fabric"`, docs/fabric.md).
import { EventEmitter } from 'node:events';
import { OFPP, OFP_NO_BUFFER, OFPPR, OFPPS, OFPPC, OFPFF, flowMod } from '../openflow/index.ts';
import type { ParsedFrame } from '../packet/index.ts';
import type { SwitchConnection } from '../datapath/switch-connection.ts';
import { dpidString } from '../datapath/switch-connection.ts';
import { APP_ID, appCookie, COOKIE_APP_MASK } from '../cookies.ts';
import type { App, PacketIn, PortStatus } from './app.ts';
import type { Logger } from '../log.ts';
import { learntAddresses, naTrapFlow } from '../fabric/host-directory.ts';

export interface LearningOptions { idleTimeout: number; hardTimeout: number; priority: number }
/** `vlan`: the host's VLAN with the fabric's VLANs (docs/fabric.md); absent without, or in no VLAN. */
export interface HostLocation { mac: string; dpid: string; port: number; seen: number; vlan?: number }

const COOKIE = appCookie(APP_ID.learning);
/** Its neighbour-advertisement trap (host-directory.ts), one above its forwarding flows. */
export const LEARNING_ND_COOKIE = appCookie(APP_ID.learning, 1n);

function isMulticast(mac: string): boolean { return (parseInt(mac.slice(0, 2), 16) & 1) === 1; }

/** Events: 'host' (ip, HostLocation) when an address is first seen or moves. */
export class LearningSwitch extends EventEmitter implements App {
  readonly name = 'learning-switch';
  /** Its flows found on a connecting switch are kept: they idle out by themselves. */
  readonly cookieApps = [APP_ID.learning] as const;
  /** dpid → (mac → port) */
  private readonly macs = new Map<string, Map<string, number>>();
  /** IP address (IPv4 dotted quad, IPv6 in RFC 5952 text) → where its owner was last seen */
  readonly hosts = new Map<string, HostLocation>();
  private static readonly MAX_MACS = 65536;

  constructor(private readonly opts: LearningOptions, private readonly log: Logger) { super(); }

  async switchReady(sw: SwitchConnection): Promise<void> {
    await sw.transact([naTrapFlow(LEARNING_ND_COOKIE, this.opts.priority + 1)]);
  }

  switchGone(sw: SwitchConnection): void {
    const key = sw.features ? dpidString(sw.features.datapathId) : '';
    this.macs.delete(key);
  }

  portForMac(dpid: string, mac: string): number | undefined { return this.macs.get(dpid)?.get(mac); }

  /** Also called by apps that claim packets (the learning switch never sees those). */
  learnHost(ip: string, loc: HostLocation): void {
    const old = this.hosts.get(ip);
    if (!old && this.hosts.size >= LearningSwitch.MAX_MACS) this.hosts.delete(this.hosts.keys().next().value!);
    this.hosts.set(ip, loc);
    if (!old || old.mac !== loc.mac || old.port !== loc.port || old.dpid !== loc.dpid || old.vlan !== loc.vlan) this.emit('host', ip, loc);
  }

  packetIn(sw: SwitchConnection, pi: PacketIn, frame: ParsedFrame | undefined): boolean {
    if (!frame || !sw.features) return false;
    const inPort = pi.match.inPort;
    if (inPort === undefined) return false;
    const dpid = dpidString(sw.features.datapathId);
    let table = this.macs.get(dpid);
    if (!table) this.macs.set(dpid, (table = new Map()));
    const { src, dst } = frame.eth;

    if (!isMulticast(src)) {
      const known = table.get(src);
      if (known !== inPort) {
        if (known !== undefined) {
          // The host moved: flows that send to its old port are wrong now.
          this.log.info('MAC moved', { dpid, mac: src, from: known, to: inPort });
          sw.send(flowMod({ command: 'delete', tableId: 0, cookie: COOKIE, cookieMask: COOKIE_APP_MASK, match: { ethDst: src }, outPort: OFPP.ANY }));
        }
        if (table.size >= LearningSwitch.MAX_MACS) table.delete(table.keys().next().value!);
        table.set(src, inPort);
      }
      for (const ip of learntAddresses(frame)) this.learnHost(ip, { mac: src, dpid, port: inPort, seen: Date.now() });
    }

    const outPort = isMulticast(dst) ? undefined : table.get(dst);
    if (outPort === undefined) {
      this.packetOut(sw, pi, OFPP.FLOOD);
      return true;
    }
    if (outPort === inPort) return true; // would hairpin: drop, as a real bridge does
    // A trapped advertisement is only passed on: a flow would not carry the next one anyway.
    if (pi.cookie === LEARNING_ND_COOKIE) { this.packetOut(sw, pi, outPort); return true; }
    sw.send(flowMod({
      command: 'add', tableId: 0, priority: this.opts.priority, cookie: COOKIE,
      idleTimeout: this.opts.idleTimeout, hardTimeout: this.opts.hardTimeout, flags: OFPFF.SEND_FLOW_REM,
      match: { inPort, ethSrc: src, ethDst: dst },
      instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: outPort }] }],
    }));
    this.packetOut(sw, pi, outPort);
    return true;
  }

  portStatus(sw: SwitchConnection, msg: PortStatus): void {
    const down = msg.reason === OFPPR.DELETE || (msg.port.state & OFPPS.LINK_DOWN) !== 0 || (msg.port.config & OFPPC.PORT_DOWN) !== 0;
    if (!down || !sw.features) return;
    const dpid = dpidString(sw.features.datapathId);
    const table = this.macs.get(dpid);
    if (table) for (const [mac, port] of table) if (port === msg.port.portNo) table.delete(mac);
    sw.send(flowMod({ command: 'delete', tableId: 0, cookie: COOKIE, cookieMask: COOKIE_APP_MASK, match: {}, outPort: msg.port.portNo }));
  }

  private packetOut(sw: SwitchConnection, pi: PacketIn, port: number): void {
    const buffered = pi.bufferId !== OFP_NO_BUFFER;
    sw.send({
      type: 'packet_out', xid: 0, bufferId: pi.bufferId, inPort: pi.match.inPort ?? OFPP.CONTROLLER,
      actions: [{ type: 'output', port }], data: buffered ? Buffer.alloc(0) : pi.data,
    });
  }
}
