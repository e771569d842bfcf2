/**
 * Whole-frame API: parse an Ethernet frame down to L4 (IPv4 or IPv6), and build TCP/UDP/ARP/ICMP
 * frames over IPv4 with every length and checksum filled in (IPv6 builders: frame-ipv6.ts).
 */
import { parseIpv4 } from './addr.ts';
import { ARP_OP_REPLY, ARP_OP_REQUEST, decodeArp, encodeArp, type Arp } from './arp.ts';
import { l4Checksum, l4Checksum6 } from './checksum.ts';
import { decodeEthernet, encodeEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, type Ethernet } from './ethernet.ts';
import { decodeIcmp, encodeIcmpEcho, type Icmp } from './icmp.ts';
import { decodeIcmpv6, type Icmpv6 } from './icmpv6.ts';
import { decodeIpv4, encodeIpv4Header, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, writeIpv4HeaderChecksum, type Ipv4 } from './ipv4.ts';
import { decodeIpv6, IPPROTO_ICMPV6, type Ipv6 } from './ipv6.ts';
import { err, ok, PacketBuildError, unwrapOrThrow, type Result } from './result.ts';
import { decodeTcp, encodeTcpSegment, type Tcp, type TcpSegmentSpec } from './tcp.ts';
import { encodeTcpOptions, stripTcpOptions, type TcpOption, type TcpOptionKind } from './tcp-options.ts';
import { decodeUdp, encodeUdpDatagram, type Udp } from './udp.ts';

export interface ParsedFrame {
  eth: Ethernet;
  arp?: Arp;
  ipv4?: Ipv4;
  ipv6?: Ipv6;
  tcp?: Tcp;
  udp?: Udp;
  /** ICMP over IPv4. */
  icmp?: Icmp;
  icmpv6?: Icmpv6;
  /**
   * The innermost payload: TCP/UDP/ICMP/ICMPv6 data (what follows the first 8 ICMP bytes), the
   * IP payload for other protocols and fragments (after IPv6 extension headers), the L3 bytes
   * for unknown EtherTypes, empty for ARP. A view into `raw` (no copy), trimmed to the IP
   * datagram length, so Ethernet padding is excluded.
   */
  payload: Buffer;
  /** The input buffer itself (not a copy). */
  raw: Buffer;
  l3Offset: number;
  /** Offset of the TCP/UDP/ICMP/ICMPv6 header, when one was decoded. */
  l4Offset?: number;
}

/** The IP header of a frame already known to be IP (either family: both name src and dst as text). */
export function ipOf(f: ParsedFrame): Ipv4 | Ipv6 {
  return (f.ipv4 ?? f.ipv6)!;
}

/**
 * Parses an Ethernet II frame (≤ 2 VLAN tags) with ARP, IPv4 (TCP/UDP/ICMP) or IPv6 (extension
 * headers walked, then TCP/UDP/ICMPv6). Truncated or malformed headers yield an error, and so
 * does an IPv6 extension chain longer than IPV6_MAX_EXT_HEADERS. A well-formed frame of a kind
 * this codec does not decode (non-Ethernet ARP, other IP protocols, IP fragments) is ok, with
 * only the layers it understood filled in. Fragments are not reassembled: the L4 header of a
 * first fragment is not decoded, because its checksum covers data not in this frame.
 * Malformed TCP options (Tcp.optionsError) and ND options (Icmpv6.ndOptionsError) are not fatal.
 */
export function parseFrame(buf: Buffer): Result<ParsedFrame> {
  if (!Buffer.isBuffer(buf)) return err('bad_argument', 'parseFrame expects a Buffer');
  const e = decodeEthernet(buf);
  if (!e.ok) return e;
  const eth = e.value;
  const l3 = eth.l3Offset;
  const frame: ParsedFrame = { eth, payload: buf.subarray(l3), raw: buf, l3Offset: l3 };
  if (eth.ethType === ETHERTYPE_ARP) {
    const a = decodeArp(buf, l3);
    if (!a.ok) return a.error.kind === 'unsupported' ? ok(frame) : a;
    frame.arp = a.value;
    frame.payload = buf.subarray(l3 + 28, l3 + 28);
    return ok(frame);
  }
  if (eth.ethType === ETHERTYPE_IPV6) return parseIpv6Layers(buf, frame);
  if (eth.ethType !== ETHERTYPE_IPV4) return ok(frame);
  const ipr = decodeIpv4(buf, l3);
  if (!ipr.ok) return ipr;
  const ip = ipr.value;
  frame.ipv4 = ip;
  const l4 = l3 + ip.headerLength;
  const end = l3 + ip.totalLength;
  frame.payload = buf.subarray(l4, end);
  if (ip.isFragment) return ok(frame);
  if (ip.protocol === IPPROTO_ICMP) {
    const c = decodeIcmp(buf, l4, end);
    if (!c.ok) return c;
    frame.icmp = c.value;
    frame.l4Offset = l4;
    frame.payload = buf.subarray(l4 + 8, end);
    return ok(frame);
  }
  return decodeTcpUdp(frame, ip.protocol, l4, end);
}

function parseIpv6Layers(buf: Buffer, frame: ParsedFrame): Result<ParsedFrame> {
  const l3 = frame.l3Offset;
  const ipr = decodeIpv6(buf, l3);
  if (!ipr.ok) return ipr;
  const ip = ipr.value;
  frame.ipv6 = ip;
  const l4 = l3 + ip.headerLength;
  const end = l3 + ip.totalLength;
  frame.payload = buf.subarray(l4, end);
  if (ip.isFragment) return ok(frame);
  if (ip.protocol === IPPROTO_ICMPV6) {
    const c = decodeIcmpv6(buf, l4, end, ip.srcBytes, ip.pseudoDstBytes);
    if (!c.ok) return c;
    frame.icmpv6 = c.value;
    frame.l4Offset = l4;
    frame.payload = buf.subarray(l4 + 8, end);
    return ok(frame);
  }
  return decodeTcpUdp(frame, ip.protocol, l4, end);
}

/** TCP or UDP at l4 (either IP version); other protocols leave the frame as it is. */
function decodeTcpUdp(frame: ParsedFrame, protocol: number, l4: number, end: number): Result<ParsedFrame> {
  const buf = frame.raw;
  if (protocol === IPPROTO_TCP) {
    const t = decodeTcp(buf, l4, end);
    if (!t.ok) return t;
    frame.tcp = t.value;
    frame.l4Offset = l4;
    frame.payload = buf.subarray(l4 + t.value.headerLength, end);
  } else if (protocol === IPPROTO_UDP) {
    const u = decodeUdp(buf, l4, end);
    if (!u.ok) return u;
    frame.udp = u.value;
    frame.l4Offset = l4;
    frame.payload = buf.subarray(l4 + 8, l4 + u.value.length);
  }
  return ok(frame);
}

/** Fields common to the IPv4 frame builders. */
export interface Ipv4FrameSpec {
  ethSrc: string;
  ethDst: string;
  ipSrc: string;
  ipDst: string;
  ttl?: number; // default 64
  ipId?: number; // default 0
  tos?: number; // default 0
  df?: boolean; // default true
  /** Raw IPv4 options (padded to 4 bytes). */
  ipOptions?: Buffer;
  /** VLAN TCIs/VIDs, outermost first. */
  vlans?: number[];
}

/** A whole frame: the IPv4 layer plus the segment (raw options replay a recorded SYN byte for byte). */
export interface TcpFrameSpec extends Ipv4FrameSpec, TcpSegmentSpec {}

function ipNum(s: string): number {
  return unwrapOrThrow(parseIpv4(s));
}

function assemble(spec: Ipv4FrameSpec, protocol: number, l4: Buffer): Buffer {
  const eth = unwrapOrThrow(encodeEthernet({ dst: spec.ethDst, src: spec.ethSrc, ethType: ETHERTYPE_IPV4, vlans: spec.vlans }));
  const ipSpec = {
    src: spec.ipSrc,
    dst: spec.ipDst,
    protocol,
    payloadLength: l4.length,
    ...(spec.ttl !== undefined && { ttl: spec.ttl }),
    ...(spec.ipId !== undefined && { id: spec.ipId }),
    ...(spec.tos !== undefined && { tos: spec.tos }),
    ...(spec.df !== undefined && { df: spec.df }),
    ...(spec.ipOptions !== undefined && { options: spec.ipOptions }),
  };
  const ip = unwrapOrThrow(encodeIpv4Header(ipSpec));
  return Buffer.concat([eth, ip, l4]);
}

/**
 * Builds Ethernet + IPv4 + TCP with lengths and both checksums computed.
 * Throws PacketBuildError on an invalid spec (bad address string, value out of range,
 * options longer than 40 bytes).
 */
export function buildTcpFrame(spec: TcpFrameSpec): Buffer {
  const seg = encodeTcpSegment(spec, ipNum(spec.ipSrc), ipNum(spec.ipDst));
  return assemble(spec, IPPROTO_TCP, seg);
}

export interface UdpFrameSpec extends Ipv4FrameSpec {
  srcPort: number;
  dstPort: number;
  payload?: Buffer;
  /** Send checksum 0 ("not computed"). */
  noChecksum?: boolean;
}

/** Builds Ethernet + IPv4 + UDP with lengths and checksums. Throws PacketBuildError. */
export function buildUdpFrame(spec: UdpFrameSpec): Buffer {
  const dg = encodeUdpDatagram(spec, ipNum(spec.ipSrc), ipNum(spec.ipDst));
  return assemble(spec, IPPROTO_UDP, dg);
}

export interface IcmpEchoFrameSpec extends Ipv4FrameSpec {
  type: 'request' | 'reply';
  id: number;
  seq: number;
  payload?: Buffer;
}

/** Builds Ethernet + IPv4 + ICMP echo request/reply. Throws PacketBuildError. */
export function buildIcmpEchoFrame(spec: IcmpEchoFrameSpec): Buffer {
  const icmp = encodeIcmpEcho({ type: spec.type === 'request' ? 8 : 0, id: spec.id, seq: spec.seq, payload: spec.payload });
  return assemble(spec, IPPROTO_ICMP, icmp);
}

export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';
export const ZERO_MAC = '00:00:00:00:00:00';

export interface ArpFrameSpec {
  op: 'request' | 'reply' | number;
  ethSrc: string;
  /** Default: broadcast for a request, targetMac for a reply. */
  ethDst?: string;
  /** Default: ethSrc. */
  senderMac?: string;
  senderIp: string;
  /** Default: 00:00:00:00:00:00 (unknown, for requests). */
  targetMac?: string;
  targetIp: string;
  vlans?: number[];
}

/** Builds an Ethernet ARP frame (42 bytes untagged, not padded). Throws PacketBuildError. */
export function buildArpFrame(spec: ArpFrameSpec): Buffer {
  const op = spec.op === 'request' ? ARP_OP_REQUEST : spec.op === 'reply' ? ARP_OP_REPLY : spec.op;
  const targetMac = spec.targetMac ?? ZERO_MAC;
  const ethDst = spec.ethDst ?? (op === ARP_OP_REQUEST ? BROADCAST_MAC : targetMac);
  const eth = unwrapOrThrow(encodeEthernet({ dst: ethDst, src: spec.ethSrc, ethType: ETHERTYPE_ARP, vlans: spec.vlans }));
  const arp = unwrapOrThrow(
    encodeArp({ op, senderMac: spec.senderMac ?? spec.ethSrc, senderIp: spec.senderIp, targetMac, targetIp: spec.targetIp }),
  );
  return Buffer.concat([eth, arp]);
}

/**
 * Builds the reply to a parsed ARP request: "request.arp.targetIp is at `mac`", sent to the
 * requester, with the request's VLAN tags. Throws PacketBuildError if `request` is not an
 * ARP request.
 */
export function buildArpReply(request: ParsedFrame, mac: string): Buffer {
  const a = request.arp;
  if (!a || a.op !== ARP_OP_REQUEST) throw new PacketBuildError('not_applicable', 'buildArpReply needs a parsed ARP request');
  return buildArpFrame({
    op: 'reply',
    ethSrc: mac,
    ethDst: a.senderMac,
    senderMac: mac,
    senderIp: a.targetIp,
    targetMac: a.senderMac,
    targetIp: a.senderIp,
    vlans: request.eth.tcis,
  });
}

/**
 * Returns a copy of a TCP frame (IPv4 or IPv6) with its option area replaced by `options` (e.g.
 * to strip timestamps from a SYN before it reaches a server). Lengths and checksums are
 * recomputed; Ethernet/VLAN/IP header fields (IPv4 options, IPv6 extension headers) are kept,
 * and the payload unless `dropPayload` (data in a SYN must not reach a server before a verdict).
 * Ethernet padding is dropped.
 */
export function replaceTcpOptions(frame: Buffer, options: readonly TcpOption[], extra: { dropPayload?: boolean } = {}): Result<Buffer> {
  const p = parseFrame(frame);
  if (!p.ok) return p;
  const { ipv4, ipv6, tcp, l4Offset } = p.value;
  if (!(ipv4 || ipv6) || !tcp || l4Offset === undefined) return err('not_applicable', 'not a TCP frame');
  const opts = encodeTcpOptions(options);
  if (!opts.ok) return opts;
  const l3 = p.value.l3Offset;
  const newHl = 20 + opts.value.length;
  const payload = extra.dropPayload ? Buffer.alloc(0) : p.value.payload;
  const ipLength = l4Offset - l3 + newHl + payload.length;
  if (ipLength > (ipv4 ? 0xffff : 0xffff + 40)) return err('bad_argument', 'resulting IP datagram too long');
  const out = Buffer.concat([
    frame.subarray(0, l4Offset + 20),
    opts.value,
    payload,
  ]);
  out[l4Offset + 12] = (out[l4Offset + 12]! & 0x0f) | ((newHl / 4) << 4);
  out.writeUInt16BE(0, l4Offset + 16);
  if (ipv4) {
    out.writeUInt16BE(ipLength, l3 + 2);
    writeIpv4HeaderChecksum(out, l3, ipv4.headerLength);
    out.writeUInt16BE(l4Checksum(out, l4Offset, out.length, ipv4.srcNum, ipv4.dstNum, IPPROTO_TCP), l4Offset + 16);
  } else {
    out.writeUInt16BE(ipLength - 40, l3 + 4);
    out.writeUInt16BE(l4Checksum6(out, l4Offset, out.length, ipv6!.srcBytes, ipv6!.pseudoDstBytes, IPPROTO_TCP), l4Offset + 16);
  }
  return ok(out);
}

/** replaceTcpOptions with the options of the given kinds removed (see stripTcpOptions). */
export function stripTcpOptionsFromFrame(
  frame: Buffer,
  kinds: readonly TcpOptionKind[],
  extra: { unknownTypes?: readonly number[]; dropPayload?: boolean } = {},
): Result<Buffer> {
  const p = parseFrame(frame);
  if (!p.ok) return p;
  const tcp = p.value.tcp;
  if (!tcp) return err('not_applicable', 'not a TCP frame');
  if (tcp.optionsError) return err('bad_options', `cannot strip options: ${tcp.optionsError.message}`, tcp.optionsError.offset);
  return replaceTcpOptions(frame, stripTcpOptions(tcp.options, kinds, extra), { dropPayload: extra.dropPayload });
}
