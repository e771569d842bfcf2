// Segments the controller itself sends during a handoff, built from what it recorded.
// Pure: each returns the frame; the engine decides where it goes.
import { buildTcpFrame, type ParsedFrame } from '../packet/index.ts';

export interface Endpoint { mac: string; ip: string; port: number }

/**
 * The handshake replay: the client's SYN (its ISN and, byte for byte, its options as the policy
 * left them) addressed to the target, from the client's own address and port.
 */
export function replaySyn(clientSyn: ParsedFrame, client: Endpoint, target: Endpoint, isn: number): Buffer {
  const tcp = clientSyn.tcp!;
  return buildTcpFrame({
    ethSrc: client.mac, ethDst: target.mac, ipSrc: client.ip, ipDst: target.ip,
    srcPort: client.port, dstPort: target.port, seq: isn >>> 0, ack: 0,
    flags: tcp.flags, window: tcp.window, optionsRaw: tcp.optionsRaw,
    tos: clientSyn.ipv4?.tos, ttl: clientSyn.ipv4?.ttl,
  });
}

/** The client's third handshake segment, sent on its behalf to the target. */
export function replayAck(client: Endpoint, target: Endpoint, seq: number, ack: number, window: number): Buffer {
  return buildTcpFrame({
    ethSrc: client.mac, ethDst: target.mac, ipSrc: client.ip, ipDst: target.ip,
    srcPort: client.port, dstPort: target.port, seq: seq >>> 0, ack: ack >>> 0, flags: { ack: true }, window,
  });
}

/**
 * RST that frees the old backend's half. Its seq must equal the backend's RCV.NXT exactly:
 * anything else in the window makes Linux answer with a challenge ACK (RFC 5961 §3.2) and keep the socket.
 */
export function resetFor(client: Endpoint, backend: Endpoint, rcvNxt: number): Buffer {
  return buildTcpFrame({
    ethSrc: client.mac, ethDst: backend.mac, ipSrc: client.ip, ipDst: backend.ip,
    srcPort: client.port, dstPort: backend.port, seq: rcvNxt >>> 0, ack: 0, flags: { rst: true }, window: 0,
  });
}

/** ARP probe (sender IP 0.0.0.0, RFC 5227) to learn a backend's MAC without touching anyone's ARP cache. */
export { buildArpFrame } from '../packet/index.ts';
