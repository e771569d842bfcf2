// What the handoff engine and the API read of the forwarding app: where hosts are (IP → MAC,
// switch, port, VLAN; the port towards a MAC from a switch; a 'host' event when one appears or
// moves). The learning switch keeps it on one switch; the fabric app keeps the same across switches.
import type { EventEmitter } from 'node:events';
import type { LearningSwitch } from '../apps/learning-switch.ts';
import { ETHERTYPE_IPV6, ICMPV6_NEIGHBOR_ADVERT, IPPROTO_ICMPV6, type ParsedFrame } from '../packet/index.ts';
import { OFPCML_NO_BUFFER, OFPP, flowMod, type FlowMod } from '../openflow/index.ts';

export type HostDirectory = Pick<LearningSwitch, 'hosts' | 'portForMac' | 'learnHost'> & EventEmitter;

/**
 * Neighbour advertisements to the controller, whatever flow would forward them: an answer to a
 * solicitation is unicast and would otherwise follow the path flows earlier traffic installed,
 * unseen, and the host table would never learn the address it advertises (IPv4 has no such gap:
 * every ARP request is a broadcast). The app that installs it forwards what it traps itself.
 * `priority` must be above the app's forwarding flows.
 */
export function naTrapFlow(cookie: bigint, priority: number): FlowMod {
  return flowMod({
    command: 'add', tableId: 0, priority: Math.min(priority, 0xffff), cookie,
    match: { ethType: ETHERTYPE_IPV6, ipProto: IPPROTO_ICMPV6, icmpv6Type: ICMPV6_NEIGHBOR_ADVERT },
    instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: OFPP.CONTROLLER, maxLen: OFPCML_NO_BUFFER }] }],
  });
}

/** Multicast (ff00::/8) is never a host's own address. */
const MULTICAST6 = /^ff[0-9a-f]{2}:/;
const ownAddress6 = (a: string): boolean => a !== '::' && !MULTICAST6.test(a);

/**
 * The addresses a frame shows its sender (eth.src) owns, keyed as the codec writes them (dotted
 * quad; RFC 5952 text for IPv6): an ARP sender or IPv4 source except 0.0.0.0 (an ARP probe, a
 * DHCP request), an IPv6 source except :: (duplicate address detection), and the target of a
 * neighbour advertisement (how a host announces an address it just took), unless the
 * advertisement names another link-layer address (a proxy's) or fails its checksum.
 */
export function learntAddresses(frame: ParsedFrame): string[] {
  const v4 = frame.arp?.senderIp ?? frame.ipv4?.src;
  if (v4 !== undefined) return v4 !== '0.0.0.0' ? [v4] : [];
  const ip = frame.ipv6;
  if (!ip) return [];
  const out = ownAddress6(ip.src) ? [ip.src] : [];
  const na = frame.icmpv6;
  if (na?.type === ICMPV6_NEIGHBOR_ADVERT && na.code === 0 && na.checksumOk && !na.ndOptionsError && na.ndTarget !== undefined
    && ownAddress6(na.ndTarget) && (na.tll === undefined || na.tll === frame.eth.src) && na.ndTarget !== ip.src) out.push(na.ndTarget);
  return out;
}
