/** UDP header (RFC 768). */
import { l4Checksum, l4Checksum6 } from './checksum.ts';
import { err, ok, PacketBuildError, type Result } from './result.ts';

export const UDP_HEADER_LEN = 8;

export interface Udp {
  srcPort: number;
  dstPort: number;
  /** Length field (header + payload). */
  length: number;
  /** 0 means "no checksum" (allowed for UDP over IPv4 only). */
  checksum: number;
}

/** Decodes a UDP header at `off`; `end` bounds the datagram (IPv4 payload end). */
export function decodeUdp(buf: Buffer, off: number, end = buf.length): Result<Udp> {
  const avail = end - off;
  if (avail < UDP_HEADER_LEN) return err('truncated', `UDP header needs 8 bytes, got ${Math.max(avail, 0)}`, off);
  const length = buf.readUInt16BE(off + 4);
  if (length < UDP_HEADER_LEN) return err('bad_value', `UDP length ${length} < 8`, off + 4);
  if (length > avail) return err('truncated', `UDP length ${length} exceeds ${avail} available bytes`, off + 4);
  return ok({ srcPort: buf.readUInt16BE(off), dstPort: buf.readUInt16BE(off + 2), length, checksum: buf.readUInt16BE(off + 6) });
}

/** A datagram with a zero checksum field. */
function datagramBytes(spec: { srcPort: number; dstPort: number; payload?: Buffer }): Buffer {
  for (const [name, v] of [['source port', spec.srcPort], ['destination port', spec.dstPort]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new PacketBuildError('bad_argument', `invalid UDP ${name} ${v}`);
  }
  const payload = spec.payload ?? Buffer.alloc(0);
  const b = Buffer.alloc(UDP_HEADER_LEN + payload.length);
  if (b.length > 0xffff) throw new PacketBuildError('bad_argument', `UDP datagram too long (${b.length})`);
  b.writeUInt16BE(spec.srcPort, 0);
  b.writeUInt16BE(spec.dstPort, 2);
  b.writeUInt16BE(b.length, 4);
  payload.copy(b, UDP_HEADER_LEN);
  return b;
}

/** Encodes a UDP datagram with its checksum (0 results are sent as 0xffff, RFC 768). */
export function encodeUdpDatagram(
  spec: { srcPort: number; dstPort: number; payload?: Buffer; noChecksum?: boolean },
  srcIp: number,
  dstIp: number,
): Buffer {
  const b = datagramBytes(spec);
  if (!spec.noChecksum) b.writeUInt16BE(l4Checksum(b, 0, b.length, srcIp, dstIp, 17) || 0xffff, 6);
  return b;
}

/** encodeUdpDatagram over IPv6, where the checksum is mandatory (RFC 8200 §8.1). */
export function encodeUdpDatagram6(spec: { srcPort: number; dstPort: number; payload?: Buffer }, src: Buffer, dst: Buffer): Buffer {
  const b = datagramBytes(spec);
  b.writeUInt16BE(l4Checksum6(b, 0, b.length, src, dst, 17) || 0xffff, 6);
  return b;
}
