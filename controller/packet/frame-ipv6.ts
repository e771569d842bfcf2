/**
 * IPv6 frame builders: TCP, UDP, ICMPv6 echo, and neighbour solicitation/advertisement, with
 * every length and checksum filled in (the pseudo-header uses a Routing header's final
 * destination). Fed by our own code: an invalid spec throws PacketBuildError.
 */
import { formatIpv6, parseIpv6 } from './addr.ts';
import { encodeEthernet, ETHERTYPE_IPV6 } from './ethernet.ts';
import type { ParsedFrame } from './frame.ts';
import {
  encodeIcmpv6Echo, encodeNeighborAdvertisement, encodeNeighborSolicitation, ICMPV6_NEIGHBOR_SOLICIT, multicastMac, solicitedNodeAddress,
  type NdOption,
} from './icmpv6.ts';
import { IPPROTO_TCP, IPPROTO_UDP } from './ipv4.ts';
import { decodeIpv6, encodeIpv6Header, IPPROTO_ICMPV6, IPV6_HEADER_LEN, type Ipv6ExtHeaderSpec } from './ipv6.ts';
import { PacketBuildError, unwrapOrThrow } from './result.ts';
import { encodeTcpSegment6, type TcpSegmentSpec } from './tcp.ts';
import { encodeUdpDatagram6 } from './udp.ts';

/** Fields common to the IPv6 frame builders. */
export interface Ipv6FrameSpec {
  ethSrc: string;
  ethDst: string;
  ipSrc: string;
  ipDst: string;
  hopLimit?: number; // default 64
  trafficClass?: number; // default 0
  flowLabel?: number; // default 0
  /** Extension headers, in order; checksums use the final destination of a Routing header. */
  extHeaders?: readonly Ipv6ExtHeaderSpec[];
  /** VLAN TCIs/VIDs, outermost first. */
  vlans?: number[];
}

/**
 * Ethernet + IPv6 (+ extension headers) + the upper-layer message `build` returns for the
 * pseudo-header addresses it is given (source, final destination).
 */
function assemble6(spec: Ipv6FrameSpec, nextHeader: number, build: (src: Buffer, dst: Buffer) => Buffer): Buffer {
  const eth = unwrapOrThrow(encodeEthernet({ dst: spec.ethDst, src: spec.ethSrc, ethType: ETHERTYPE_IPV6, vlans: spec.vlans }));
  const ip = unwrapOrThrow(
    encodeIpv6Header({
      src: spec.ipSrc,
      dst: spec.ipDst,
      nextHeader,
      payloadLength: 0,
      ...(spec.hopLimit !== undefined && { hopLimit: spec.hopLimit }),
      ...(spec.trafficClass !== undefined && { trafficClass: spec.trafficClass }),
      ...(spec.flowLabel !== undefined && { flowLabel: spec.flowLabel }),
      ...(spec.extHeaders !== undefined && { extHeaders: spec.extHeaders }),
    }),
  );
  // Decoding the header alone (payload length 0 so far) yields the pseudo-header destination.
  const hdr = unwrapOrThrow(decodeIpv6(ip, 0));
  const l4 = build(hdr.srcBytes, hdr.pseudoDstBytes);
  const payloadLength = ip.length - IPV6_HEADER_LEN + l4.length;
  if (payloadLength > 0xffff) throw new PacketBuildError('bad_argument', `IPv6 payload length ${payloadLength} too large`);
  ip.writeUInt16BE(payloadLength, 4);
  return Buffer.concat([eth, ip, l4]);
}

/** A whole IPv6 frame: the IPv6 layer plus the segment. */
export interface Tcp6FrameSpec extends Ipv6FrameSpec, TcpSegmentSpec {}

/** Builds Ethernet + IPv6 + TCP with lengths and the checksum computed. Throws PacketBuildError. */
export function buildTcp6Frame(spec: Tcp6FrameSpec): Buffer {
  return assemble6(spec, IPPROTO_TCP, (src, dst) => encodeTcpSegment6(spec, src, dst));
}

export interface Udp6FrameSpec extends Ipv6FrameSpec {
  srcPort: number;
  dstPort: number;
  payload?: Buffer;
}

/** Builds Ethernet + IPv6 + UDP (checksum always computed: mandatory over IPv6). Throws PacketBuildError. */
export function buildUdp6Frame(spec: Udp6FrameSpec): Buffer {
  return assemble6(spec, IPPROTO_UDP, (src, dst) => encodeUdpDatagram6(spec, src, dst));
}

export interface Icmpv6EchoFrameSpec extends Ipv6FrameSpec {
  type: 'request' | 'reply';
  id: number;
  seq: number;
  payload?: Buffer;
}

/** Builds Ethernet + IPv6 + ICMPv6 echo request/reply. Throws PacketBuildError. */
export function buildIcmpv6EchoFrame(spec: Icmpv6EchoFrameSpec): Buffer {
  return assemble6(spec, IPPROTO_ICMPV6, (src, dst) =>
    encodeIcmpv6Echo({ type: spec.type === 'request' ? 128 : 129, id: spec.id, seq: spec.seq, payload: spec.payload }, src, dst),
  );
}

function ipv6Bytes(s: string): Buffer {
  return unwrapOrThrow(parseIpv6(s));
}

/** RFC 4861 §7.1: ND messages are sent, and accepted, only with hop limit 255. */
const ND_HOP_LIMIT = 255;

export interface NeighborSolicitationSpec {
  ethSrc: string;
  /** '::' for duplicate address detection. */
  ipSrc: string;
  /** The address whose link-layer address is asked for. */
  target: string;
  /** Default: the target's solicited-node multicast group (RFC 4861 §7.2.2). */
  ipDst?: string;
  /** Default: the multicast MAC of ipDst (33:33:…). */
  ethDst?: string;
  /** Source link-layer address option; default ethSrc, none for DAD (RFC 4861 §4.3); null: none. */
  sll?: string | null;
  options?: readonly NdOption[];
  vlans?: number[];
}

/** Builds a neighbour solicitation frame (hop limit 255). Throws PacketBuildError. */
export function buildNeighborSolicitation(spec: NeighborSolicitationSpec): Buffer {
  const ipDst = spec.ipDst ?? formatIpv6(solicitedNodeAddress(ipv6Bytes(spec.target)));
  const unspecified = ipv6Bytes(spec.ipSrc).every((b) => b === 0);
  const sll = spec.sll === null ? undefined : (spec.sll ?? (unspecified ? undefined : spec.ethSrc));
  return assemble6(
    { ethSrc: spec.ethSrc, ethDst: spec.ethDst ?? multicastMac(ipv6Bytes(ipDst)), ipSrc: spec.ipSrc, ipDst, hopLimit: ND_HOP_LIMIT, vlans: spec.vlans },
    IPPROTO_ICMPV6,
    (src, dst) => encodeNeighborSolicitation({ target: spec.target, ...(sll && { sll }), ...(spec.options && { options: spec.options }) }, src, dst),
  );
}

export interface NeighborAdvertisementSpec {
  ethSrc: string;
  ipSrc: string;
  /** Default: ff02::1 (all nodes, an unsolicited advertisement). */
  ipDst?: string;
  /** Default: the multicast MAC of ipDst when it is multicast; required otherwise. */
  ethDst?: string;
  /** Default: ipSrc. */
  target?: string;
  router?: boolean; // default false
  solicited?: boolean; // default false
  override?: boolean; // default true
  /** Target link-layer address option; default ethSrc; null: none. */
  tll?: string | null;
  options?: readonly NdOption[];
  vlans?: number[];
}

/** Builds a neighbour advertisement frame (hop limit 255). Throws PacketBuildError. */
export function buildNeighborAdvertisement(spec: NeighborAdvertisementSpec): Buffer {
  const ipDst = spec.ipDst ?? 'ff02::1';
  const dstBytes = ipv6Bytes(ipDst);
  let ethDst = spec.ethDst;
  if (ethDst === undefined) {
    if (dstBytes[0] !== 0xff) throw new PacketBuildError('bad_argument', 'buildNeighborAdvertisement: ethDst is required for a unicast ipDst');
    ethDst = multicastMac(dstBytes);
  }
  const tll = spec.tll === null ? undefined : (spec.tll ?? spec.ethSrc);
  return assemble6(
    { ethSrc: spec.ethSrc, ethDst, ipSrc: spec.ipSrc, ipDst, hopLimit: ND_HOP_LIMIT, vlans: spec.vlans },
    IPPROTO_ICMPV6,
    (src, dst) =>
      encodeNeighborAdvertisement(
        {
          target: spec.target ?? spec.ipSrc,
          router: spec.router ?? false,
          solicited: spec.solicited ?? false,
          override: spec.override ?? true,
          ...(tll && { tll }),
          ...(spec.options && { options: spec.options }),
        },
        src,
        dst,
      ),
  );
}

/**
 * Builds the answer to a parsed neighbour solicitation: "request.icmpv6.ndTarget is at `mac`",
 * solicited and override set, with the request's VLAN tags; sent to the solicitor, or to all
 * nodes (not solicited) when it was duplicate address detection from '::' (RFC 4861 §7.2.4).
 * Throws PacketBuildError if `request` is not a neighbour solicitation.
 */
export function buildNeighborAdvertisementReply(request: ParsedFrame, mac: string, opts: { router?: boolean } = {}): Buffer {
  const ns = request.icmpv6;
  const ip = request.ipv6;
  if (!ip || !ns || ns.type !== ICMPV6_NEIGHBOR_SOLICIT || ns.ndTarget === undefined) {
    throw new PacketBuildError('not_applicable', 'buildNeighborAdvertisementReply needs a parsed neighbour solicitation');
  }
  const dad = ip.srcBytes.every((b) => b === 0);
  return buildNeighborAdvertisement({
    ethSrc: mac,
    ...(dad ? {} : { ethDst: ns.sll ?? request.eth.src, ipDst: ip.src }),
    ipSrc: ns.ndTarget,
    target: ns.ndTarget,
    router: opts.router ?? false,
    solicited: !dad,
    override: true,
    tll: mac,
    vlans: request.eth.tcis,
  });
}
