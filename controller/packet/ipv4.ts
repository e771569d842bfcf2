/** IPv4 header (RFC 791), options kept as raw bytes. */
import { formatIpv4, parseIpv4 } from './addr.ts';
import { internetChecksum } from './checksum.ts';
import { err, ok, type Result } from './result.ts';

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPV4_MIN_HEADER = 20;

export interface Ipv4 {
  version: number;
  /** Header length in 32-bit words (5..15). */
  ihl: number;
  headerLength: number;
  /** The whole TOS byte; dscp/ecn are its parts. */
  tos: number;
  dscp: number;
  ecn: number;
  totalLength: number;
  id: number;
  flags: { reserved: boolean; df: boolean; mf: boolean };
  /** In 8-byte units, as on the wire. */
  fragmentOffset: number;
  ttl: number;
  protocol: number;
  checksum: number;
  src: string;
  dst: string;
  /** Numeric forms of src/dst (uint32), handy for pseudo-header sums. */
  srcNum: number;
  dstNum: number;
  /** Raw option bytes (headerLength - 20), byte-exact. */
  options: Buffer;
  /** True when this is a fragment (MF set or non-zero offset). */
  isFragment: boolean;
}

/**
 * Decodes the IPv4 header at `off`. Fails if the header or the datagram announced by
 * totalLength does not fit in `buf` (trailing Ethernet padding beyond totalLength is fine).
 */
export function decodeIpv4(buf: Buffer, off: number): Result<Ipv4> {
  const avail = buf.length - off;
  if (avail < IPV4_MIN_HEADER) return err('truncated', `IPv4 header needs 20 bytes, got ${Math.max(avail, 0)}`, off);
  const vihl = buf[off]!;
  const version = vihl >> 4;
  const ihl = vihl & 0x0f;
  if (version !== 4) return err('bad_value', `IP version ${version} is not 4`, off);
  if (ihl < 5) return err('bad_value', `IPv4 IHL ${ihl} < 5`, off);
  const headerLength = ihl * 4;
  if (avail < headerLength) return err('truncated', `IPv4 header length ${headerLength} exceeds ${avail} available bytes`, off);
  const totalLength = buf.readUInt16BE(off + 2);
  if (totalLength < headerLength) return err('bad_value', `IPv4 total length ${totalLength} < header length ${headerLength}`, off + 2);
  if (totalLength > avail) return err('truncated', `IPv4 total length ${totalLength} exceeds ${avail} available bytes`, off + 2);
  const tos = buf[off + 1]!;
  const ff = buf.readUInt16BE(off + 6);
  const flags = { reserved: (ff & 0x8000) !== 0, df: (ff & 0x4000) !== 0, mf: (ff & 0x2000) !== 0 };
  const fragmentOffset = ff & 0x1fff;
  const srcNum = buf.readUInt32BE(off + 12);
  const dstNum = buf.readUInt32BE(off + 16);
  return ok({
    version,
    ihl,
    headerLength,
    tos,
    dscp: tos >> 2,
    ecn: tos & 3,
    totalLength,
    id: buf.readUInt16BE(off + 4),
    flags,
    fragmentOffset,
    ttl: buf[off + 8]!,
    protocol: buf[off + 9]!,
    checksum: buf.readUInt16BE(off + 10),
    src: formatIpv4(buf, off + 12),
    dst: formatIpv4(buf, off + 16),
    srcNum,
    dstNum,
    options: Buffer.from(buf.subarray(off + 20, off + headerLength)),
    isFragment: flags.mf || fragmentOffset !== 0,
  });
}

export interface Ipv4Spec {
  src: string;
  dst: string;
  protocol: number;
  /** Length of everything after the IPv4 header. */
  payloadLength: number;
  ttl?: number; // default 64
  id?: number; // default 0
  tos?: number; // default 0
  df?: boolean; // default true (what Linux sets on TCP)
  mf?: boolean;
  fragmentOffset?: number;
  /** Raw option bytes; padded with EOL (0) to a multiple of 4. */
  options?: Buffer;
}

function intIn(n: unknown, lo: number, hi: number): boolean {
  return typeof n === 'number' && Number.isInteger(n) && n >= lo && n <= hi;
}

/** Encodes an IPv4 header with a correct header checksum. */
export function encodeIpv4Header(spec: Ipv4Spec): Result<Buffer> {
  const src = parseIpv4(spec.src);
  if (!src.ok) return src;
  const dst = parseIpv4(spec.dst);
  if (!dst.ok) return dst;
  const opts = spec.options ?? Buffer.alloc(0);
  const optLen = (opts.length + 3) & ~3;
  if (optLen > 40) return err('bad_argument', `IPv4 options too long (${opts.length} > 40 bytes)`);
  const hl = IPV4_MIN_HEADER + optLen;
  const ttl = spec.ttl ?? 64;
  const id = spec.id ?? 0;
  const tos = spec.tos ?? 0;
  const fo = spec.fragmentOffset ?? 0;
  if (!intIn(ttl, 0, 255)) return err('bad_argument', `invalid TTL ${ttl}`);
  if (!intIn(id, 0, 0xffff)) return err('bad_argument', `invalid IP id ${id}`);
  if (!intIn(tos, 0, 255)) return err('bad_argument', `invalid TOS ${tos}`);
  if (!intIn(spec.protocol, 0, 255)) return err('bad_argument', `invalid IP protocol ${spec.protocol}`);
  if (!intIn(fo, 0, 0x1fff)) return err('bad_argument', `invalid fragment offset ${fo}`);
  if (!intIn(spec.payloadLength, 0, 0xffff - hl)) return err('bad_argument', `IPv4 payload length ${spec.payloadLength} too large`);
  const b = Buffer.alloc(hl);
  b[0] = 0x40 | (hl >> 2);
  b[1] = tos;
  b.writeUInt16BE(hl + spec.payloadLength, 2);
  b.writeUInt16BE(id, 4);
  b.writeUInt16BE(((spec.df ?? true) ? 0x4000 : 0) | (spec.mf ? 0x2000 : 0) | fo, 6);
  b[8] = ttl;
  b[9] = spec.protocol;
  b.writeUInt32BE(src.value, 12);
  b.writeUInt32BE(dst.value, 16);
  opts.copy(b, 20);
  b.writeUInt16BE(internetChecksum(b, 0, hl), 10);
  return ok(b);
}

/** True when the IPv4 header at `off` (length hl) carries a correct checksum. */
export function ipv4HeaderChecksumOk(buf: Buffer, off: number, hl: number): boolean {
  return internetChecksum(buf, off, off + hl) === 0;
}

/** Recomputes and writes the IPv4 header checksum in place. */
export function writeIpv4HeaderChecksum(buf: Buffer, off: number, hl: number): void {
  buf.writeUInt16BE(0, off + 10);
  buf.writeUInt16BE(internetChecksum(buf, off, off + hl), off + 10);
}
