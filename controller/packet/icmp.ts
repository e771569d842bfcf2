/** ICMPv4 header decode (echo request/reply fields are decoded; other types keep `rest`). */
import { internetChecksum } from './checksum.ts';
import { err, ok, type Result } from './result.ts';

export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;

export interface Icmp {
  type: number;
  code: number;
  checksum: number;
  /** Echo identifier/sequence, present for echo request (8) and reply (0). */
  echo?: { id: number; seq: number };
  /** The 4 bytes after the checksum, raw. */
  rest: Buffer;
  checksumOk: boolean;
}

export function decodeIcmp(buf: Buffer, off: number, end = buf.length): Result<Icmp> {
  if (end - off < 8) return err('truncated', `ICMP header needs 8 bytes, got ${Math.max(end - off, 0)}`, off);
  const type = buf[off]!;
  const icmp: Icmp = {
    type,
    code: buf[off + 1]!,
    checksum: buf.readUInt16BE(off + 2),
    rest: Buffer.from(buf.subarray(off + 4, off + 8)),
    checksumOk: internetChecksum(buf, off, end) === 0,
  };
  if (type === ICMP_ECHO_REQUEST || type === ICMP_ECHO_REPLY) {
    icmp.echo = { id: buf.readUInt16BE(off + 4), seq: buf.readUInt16BE(off + 6) };
  }
  return ok(icmp);
}

/** Encodes an ICMP echo request/reply with its checksum. */
export function encodeIcmpEcho(spec: { type: 0 | 8; id: number; seq: number; payload?: Buffer }): Buffer {
  const payload = spec.payload ?? Buffer.alloc(0);
  const b = Buffer.alloc(8 + payload.length);
  b[0] = spec.type;
  b.writeUInt16BE(spec.id & 0xffff, 4);
  b.writeUInt16BE(spec.seq & 0xffff, 6);
  payload.copy(b, 8);
  b.writeUInt16BE(internetChecksum(b), 2);
  return b;
}
