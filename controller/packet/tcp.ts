/** TCP header (RFC 9293) with typed options. */
import { l4Checksum, l4Checksum6 } from './checksum.ts';
import { err, ok, PacketBuildError, type Result } from './result.ts';
import { decodeTcpOptions, encodeTcpOptions, type TcpOption } from './tcp-options.ts';
import type { DecodeError } from './result.ts';

export const TCP_MIN_HEADER = 20;

export const TCP_FIN = 0x001;
export const TCP_SYN = 0x002;
export const TCP_RST = 0x004;
export const TCP_PSH = 0x008;
export const TCP_ACK = 0x010;
export const TCP_URG = 0x020;
export const TCP_ECE = 0x040;
export const TCP_CWR = 0x080;
/** Accurate-ECN / historic NS bit (bit 8 of the 12 flag/reserved bits). */
export const TCP_AE = 0x100;

export interface TcpFlags {
  fin: boolean;
  syn: boolean;
  rst: boolean;
  psh: boolean;
  ack: boolean;
  urg: boolean;
  ece: boolean;
  cwr: boolean;
}
/** Flags given to builders: any subset, missing ones are false. */
export type TcpFlagsSpec = Partial<TcpFlags>;

const FLAG_BITS: [keyof TcpFlags, number][] = [
  ['fin', TCP_FIN],
  ['syn', TCP_SYN],
  ['rst', TCP_RST],
  ['psh', TCP_PSH],
  ['ack', TCP_ACK],
  ['urg', TCP_URG],
  ['ece', TCP_ECE],
  ['cwr', TCP_CWR],
];

export function decodeTcpFlags(n: number): TcpFlags {
  return {
    fin: (n & TCP_FIN) !== 0,
    syn: (n & TCP_SYN) !== 0,
    rst: (n & TCP_RST) !== 0,
    psh: (n & TCP_PSH) !== 0,
    ack: (n & TCP_ACK) !== 0,
    urg: (n & TCP_URG) !== 0,
    ece: (n & TCP_ECE) !== 0,
    cwr: (n & TCP_CWR) !== 0,
  };
}

export function encodeTcpFlags(f: TcpFlagsSpec | number): number {
  if (typeof f === 'number') return f & 0x1ff;
  let n = 0;
  for (const [k, bit] of FLAG_BITS) if (f[k]) n |= bit;
  return n;
}

/** tcpdump-style flag string, e.g. 'S', 'S.', 'P.', 'F.', 'R'. */
export function formatTcpFlags(n: number): string {
  let s = '';
  if (n & TCP_FIN) s += 'F';
  if (n & TCP_SYN) s += 'S';
  if (n & TCP_RST) s += 'R';
  if (n & TCP_PSH) s += 'P';
  if (n & TCP_URG) s += 'U';
  if (n & TCP_ECE) s += 'E';
  if (n & TCP_CWR) s += 'W';
  if (n & TCP_ACK) s += '.';
  return s || 'none';
}

export interface Tcp {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  /** Data offset in 32-bit words (5..15). */
  dataOffset: number;
  headerLength: number;
  /** The 9 flag bits (AE/NS..FIN) as a number; reserved bits are in `reserved`. */
  flags: number;
  /** The same flags decoded. */
  flagSet: TcpFlags;
  /** The 3 reserved bits between data offset and the flags. */
  reserved: number;
  window: number;
  checksum: number;
  urgent: number;
  /** Options decoded so far; empty or partial when `optionsError` is set. */
  options: TcpOption[];
  /** Raw option bytes (headerLength - 20), byte-exact. */
  optionsRaw: Buffer;
  /** Set when the option area is malformed; the segment itself is still usable. */
  optionsError?: DecodeError;
}

/**
 * Decodes a TCP header at `off`; `end` bounds the segment (the IPv4 datagram end).
 * Malformed options do not fail the decode (the controller must still forward such segments);
 * they are reported in `optionsError`, like Linux ignores the rest of a bad option area.
 */
export function decodeTcp(buf: Buffer, off: number, end = buf.length): Result<Tcp> {
  const avail = end - off;
  if (avail < TCP_MIN_HEADER) return err('truncated', `TCP header needs 20 bytes, got ${Math.max(avail, 0)}`, off);
  const dataOffset = buf[off + 12]! >> 4;
  if (dataOffset < 5) return err('bad_value', `TCP data offset ${dataOffset} < 5`, off + 12);
  const headerLength = dataOffset * 4;
  if (headerLength > avail) return err('truncated', `TCP header length ${headerLength} exceeds ${avail} available bytes`, off + 12);
  const flagWord = buf.readUInt16BE(off + 12);
  const flags = flagWord & 0x1ff;
  const opts = decodeTcpOptions(buf, off + 20, off + headerLength);
  const tcp: Tcp = {
    srcPort: buf.readUInt16BE(off),
    dstPort: buf.readUInt16BE(off + 2),
    seq: buf.readUInt32BE(off + 4),
    ack: buf.readUInt32BE(off + 8),
    dataOffset,
    headerLength,
    flags,
    flagSet: decodeTcpFlags(flags),
    reserved: (flagWord >> 9) & 0x7,
    window: buf.readUInt16BE(off + 14),
    checksum: buf.readUInt16BE(off + 16),
    urgent: buf.readUInt16BE(off + 18),
    options: opts.ok ? opts.value : [],
    optionsRaw: Buffer.from(buf.subarray(off + 20, off + headerLength)),
  };
  if (!opts.ok) tcp.optionsError = opts.error;
  return ok(tcp);
}

export interface TcpSegmentSpec {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: TcpFlagsSpec | number;
  window: number;
  urgent?: number;
  options?: readonly TcpOption[];
  /** Raw option bytes, used instead of `options` when given (byte-exact replay). */
  optionsRaw?: Buffer;
  payload?: Buffer;
}

function checkInt(name: string, n: unknown, max: number): void {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > max) {
    throw new PacketBuildError('bad_argument', `invalid TCP ${name} ${String(n)}`);
  }
}

/** The segment with a zero checksum field; the callers below fill it for their IP version. */
function segmentBytes(spec: TcpSegmentSpec): Buffer {
  checkInt('source port', spec.srcPort, 0xffff);
  checkInt('destination port', spec.dstPort, 0xffff);
  checkInt('seq', spec.seq, 0xffff_ffff);
  checkInt('ack', spec.ack, 0xffff_ffff);
  checkInt('window', spec.window, 0xffff);
  checkInt('urgent pointer', spec.urgent ?? 0, 0xffff);
  let opts: Buffer;
  if (spec.optionsRaw) {
    if (spec.optionsRaw.length % 4 !== 0 || spec.optionsRaw.length > 40) {
      throw new PacketBuildError('bad_argument', `raw TCP options must be a multiple of 4 bytes, at most 40 (got ${spec.optionsRaw.length})`);
    }
    opts = spec.optionsRaw;
  } else {
    const r = encodeTcpOptions(spec.options ?? []);
    if (!r.ok) throw new PacketBuildError(r.error.kind, r.error.message);
    opts = r.value;
  }
  const payload = spec.payload ?? Buffer.alloc(0);
  const hl = TCP_MIN_HEADER + opts.length;
  const b = Buffer.alloc(hl + payload.length);
  b.writeUInt16BE(spec.srcPort, 0);
  b.writeUInt16BE(spec.dstPort, 2);
  b.writeUInt32BE(spec.seq, 4);
  b.writeUInt32BE(spec.ack, 8);
  b.writeUInt16BE(((hl / 4) << 12) | encodeTcpFlags(spec.flags), 12);
  b.writeUInt16BE(spec.window, 14);
  b.writeUInt16BE(spec.urgent ?? 0, 18);
  opts.copy(b, 20);
  payload.copy(b, hl);
  return b;
}

/**
 * Encodes a TCP segment (header + payload) with its checksum computed over the pseudo-header
 * of srcIp/dstIp (uint32). Throws PacketBuildError on an invalid spec.
 */
export function encodeTcpSegment(spec: TcpSegmentSpec, srcIp: number, dstIp: number): Buffer {
  const b = segmentBytes(spec);
  b.writeUInt16BE(l4Checksum(b, 0, b.length, srcIp, dstIp, 6), 16);
  return b;
}

/**
 * encodeTcpSegment over IPv6: the checksum covers the IPv6 pseudo-header of `src` and `dst`
 * (16 bytes each; dst is the final destination when a Routing header is used).
 */
export function encodeTcpSegment6(spec: TcpSegmentSpec, src: Buffer, dst: Buffer): Buffer {
  const b = segmentBytes(spec);
  b.writeUInt16BE(l4Checksum6(b, 0, b.length, src, dst, 6), 16);
  return b;
}
