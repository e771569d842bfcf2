/**
 * Bounds-checked location of the IP and L4 headers in a raw frame (allocation-free for IPv4),
 * shared by the in-place rewrite helpers and checksum verification.
 */
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, locateL3 } from './ethernet.ts';
import { IPPROTO_TCP, IPPROTO_UDP } from './ipv4.ts';
import { decodeIpv6, type Ipv6 } from './ipv6.ts';
import { err, ok, type Result } from './result.ts';

export interface Ipv4Location {
  l3: number;
  /** IPv4 header length in bytes. */
  hl: number;
  /** End of the IPv4 datagram (l3 + totalLength); bytes after it are Ethernet padding. */
  end: number;
  protocol: number;
  /** Offset of the L4 header, or -1 for a non-first fragment (no L4 header here). */
  l4: number;
}

export function locateIpv4(frame: Buffer): Result<Ipv4Location> {
  if (!Buffer.isBuffer(frame)) return err('bad_argument', 'expected a Buffer');
  const l = locateL3(frame);
  if (!l) return err('truncated', 'Ethernet header truncated or too many VLAN tags', 0);
  if (l.ethType !== ETHERTYPE_IPV4) return err('not_applicable', `EtherType 0x${l.ethType.toString(16)} is not IPv4`, l.l3Offset - 2);
  const l3 = l.l3Offset;
  const avail = frame.length - l3;
  if (avail < 20) return err('truncated', 'IPv4 header truncated', l3);
  const vihl = frame[l3]!;
  if (vihl >> 4 !== 4) return err('bad_value', 'IP version is not 4', l3);
  const hl = (vihl & 0x0f) * 4;
  if (hl < 20 || hl > avail) return err(hl < 20 ? 'bad_value' : 'truncated', `bad IPv4 header length ${hl}`, l3);
  const total = frame.readUInt16BE(l3 + 2);
  if (total < hl || total > avail) return err(total < hl ? 'bad_value' : 'truncated', `bad IPv4 total length ${total}`, l3 + 2);
  const fragOff = frame.readUInt16BE(l3 + 6) & 0x1fff;
  return ok({ l3, hl, end: l3 + total, protocol: frame[l3 + 9]!, l4: fragOff === 0 ? l3 + hl : -1 });
}

export interface TcpLocation extends Ipv4Location {
  /** TCP header length in bytes (validated: 20..60 and within the datagram). */
  thl: number;
}

/** Locates a complete TCP header (not a non-first fragment). */
export function locateTcp(frame: Buffer): Result<TcpLocation> {
  const r = locateIpv4(frame);
  if (!r.ok) return r;
  const loc = r.value;
  if (loc.protocol !== IPPROTO_TCP) return err('not_applicable', `IP protocol ${loc.protocol} is not TCP`, loc.l3 + 9);
  if (loc.l4 < 0) return err('not_applicable', 'non-first IPv4 fragment has no TCP header', loc.l3 + 6);
  if (loc.end - loc.l4 < 20) return err('truncated', 'TCP header truncated', loc.l4);
  const thl = (frame[loc.l4 + 12]! >> 4) * 4;
  if (thl < 20) return err('bad_value', `TCP data offset ${thl / 4} < 5`, loc.l4 + 12);
  if (thl > loc.end - loc.l4) return err('truncated', 'TCP header longer than the datagram', loc.l4 + 12);
  return ok({ ...loc, thl });
}

/** Locates a TCP or UDP header; `csumOff` is the L4 checksum field offset. */
export function locateL4Ports(frame: Buffer): Result<Ipv4Location & { csumOff: number; udp: boolean }> {
  const r = locateIpv4(frame);
  if (!r.ok) return r;
  const loc = r.value;
  if (loc.protocol !== IPPROTO_TCP && loc.protocol !== IPPROTO_UDP) {
    return err('not_applicable', `IP protocol ${loc.protocol} has no ports`, loc.l3 + 9);
  }
  if (loc.l4 < 0) return err('not_applicable', 'non-first IPv4 fragment has no L4 header', loc.l3 + 6);
  const udp = loc.protocol === IPPROTO_UDP;
  if (loc.end - loc.l4 < (udp ? 8 : 20)) return err('truncated', `${udp ? 'UDP' : 'TCP'} header truncated`, loc.l4);
  return ok({ ...loc, csumOff: loc.l4 + (udp ? 6 : 16), udp });
}

export interface Ipv6Location extends Ipv4Location {
  ip: Ipv6;
}

/**
 * The IPv6 counterpart of locateIpv4 (`hl` is 40 plus the extension headers), or null when the
 * frame is not IPv6, so that callers fall back to the IPv4 locators and their errors unchanged.
 * A fragment's L4 header: `firstFragment` 'l4' finds it in a first fragment (offset 0, M set),
 * where an incremental rewrite of its checksum stays right although the checksum covers the
 * other fragments too; 'none' reports every fragment without one (l4 -1), as a checksum over one
 * fragment cannot be verified. A non-first fragment never has one.
 */
export function locateIpv6(frame: Buffer, firstFragment: 'l4' | 'none'): Result<Ipv6Location> | null {
  if (!Buffer.isBuffer(frame)) return null;
  const l = locateL3(frame);
  if (!l || l.ethType !== ETHERTYPE_IPV6) return null;
  const r = decodeIpv6(frame, l.l3Offset);
  if (!r.ok) return r;
  const ip = r.value;
  const frag = ip.extHeaders.find((h) => h.kind === 'fragment');
  const firstWithL4 = firstFragment === 'l4' && frag !== undefined && frag.kind === 'fragment' && frag.fragmentOffset === 0;
  const l3 = l.l3Offset;
  return ok({ l3, hl: ip.headerLength, end: l3 + ip.totalLength, protocol: ip.protocol, l4: ip.isFragment && !firstWithL4 ? -1 : l3 + ip.headerLength, ip });
}
