// Segments the controller itself sends during a handoff, built from what it recorded.
// Pure: each returns the frame; the engine decides where it goes. Either IP version: an address
// with ':' is IPv6 (the recorded SYN's TOS/TTL are then its traffic class and hop limit).
import { buildTcp6Frame, buildTcpFrame, ipOf, isIpv6Address, type ParsedFrame, type TcpFrameSpec } from '../packet/index.ts';
import type { SynRecord } from './connection-record.ts';
import { replayedSynOffer, type SynAckSummary } from './option-policy.ts';

export interface Endpoint { mac: string; ip: string; port: number }

/**
 * Builds a TCP frame for the family of its addresses; IPv4 exactly as buildTcpFrame. A mixed
 * pair throws PacketBuildError, as any invalid address does.
 */
export function buildTcpFrameAny(spec: TcpFrameSpec): Buffer {
  if (!isIpv6Address(spec.ipSrc) && !isIpv6Address(spec.ipDst)) return buildTcpFrame(spec);
  // IPv6 has no identification, DF or header options; TOS and TTL carry over as traffic class and hop limit.
  const { tos, ttl, ipId: _id, df: _df, ipOptions: _opts, ...rest } = spec;
  return buildTcp6Frame({ ...rest, ...(tos !== undefined && { trafficClass: tos }), ...(ttl !== undefined && { hopLimit: ttl }) });
}

/**
 * The handshake replay: the client's SYN (its options as the policy left them, less what the
 * first backend did not accept) addressed to the target, from the client's own address and port.
 */
export function replaySyn(syn: SynRecord, accepted: SynAckSummary | undefined, client: Endpoint, target: Endpoint, isn: number): Buffer {
  const offer = replayedSynOffer(syn, accepted);
  return buildTcpFrameAny({
    ethSrc: client.mac, ethDst: target.mac, ipSrc: client.ip, ipDst: target.ip,
    srcPort: client.port, dstPort: target.port, seq: isn >>> 0, ack: 0,
    flags: { syn: true, ...(offer.ecn ? { ece: true, cwr: true } : {}) }, window: syn.window, optionsRaw: offer.options,
    tos: syn.tos, ttl: syn.ttl,
  });
}

/** The client's SYN as it went to the first backend, rebuilt from its record (adoption, tests). */
export function synFrameOf(r: SynRecord, client: Endpoint, service: Endpoint): Buffer {
  return buildTcpFrameAny({
    ethSrc: client.mac, ethDst: service.mac, ipSrc: client.ip, ipDst: service.ip, srcPort: client.port, dstPort: service.port,
    seq: r.isn >>> 0, ack: 0, flags: { syn: true, ...(r.ecn ? { ece: true, cwr: true } : {}) }, window: r.window, optionsRaw: Buffer.from(r.options, 'hex'), tos: r.tos, ttl: r.ttl,
  });
}

/** The client's third handshake segment, sent on its behalf to the target. */
export function replayAck(client: Endpoint, target: Endpoint, seq: number, ack: number, window: number): Buffer {
  return buildTcpFrameAny({
    ethSrc: client.mac, ethDst: target.mac, ipSrc: client.ip, ipDst: target.ip,
    srcPort: client.port, dstPort: target.port, seq: seq >>> 0, ack: ack >>> 0, flags: { ack: true }, window,
  });
}

/**
 * RST that frees the old backend's half. Its seq must equal the backend's RCV.NXT exactly:
 * anything else in the window makes Linux answer with a challenge ACK (RFC 5961 §3.2) and keep the socket.
 */
export function resetFor(client: Endpoint, backend: Endpoint, rcvNxt: number): Buffer {
  return buildTcpFrameAny({
    ethSrc: client.mac, ethDst: backend.mac, ipSrc: client.ip, ipDst: backend.ip,
    srcPort: client.port, dstPort: backend.port, seq: rcvNxt >>> 0, ack: 0, flags: { rst: true }, window: 0,
  });
}

/**
 * The reset RFC 793 (§3.4, "Reset Generation") sends for a segment of no connection, from the
 * address it was sent to: seq = its ack (with ACK set, as data always has), else ack = its end.
 */
export function resetReply(f: ParsedFrame): Buffer {
  const t = f.tcp!;
  const ip = ipOf(f);
  const end = (t.seq + f.payload.length + (t.flagSet.syn ? 1 : 0) + (t.flagSet.fin ? 1 : 0)) >>> 0;
  return buildTcpFrameAny({
    ethSrc: f.eth.dst, ethDst: f.eth.src, ipSrc: ip.dst, ipDst: ip.src, srcPort: t.dstPort, dstPort: t.srcPort,
    seq: t.flagSet.ack ? t.ack : 0, ack: t.flagSet.ack ? 0 : end, flags: t.flagSet.ack ? { rst: true } : { rst: true, ack: true }, window: 0,
  });
}

/** ARP probe (sender IP 0.0.0.0, RFC 5227) to learn a backend's MAC without touching anyone's ARP cache. */
export { buildArpFrame } from '../packet/index.ts';
