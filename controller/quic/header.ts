/**
 * QUIC packet headers: the version-independent invariants (RFC 8999) and the long/short
 * headers of QUIC v1 (RFC 9000 §17) and v2 (RFC 9369). Only what is readable before removing
 * header protection is decoded here: the first byte's low bits and the packet number are still
 * protected.
 */
import { PacketBuildError } from '../packet/result.ts';
import { ok, qerr, type QuicResult } from './result.ts';
import { decodeVarint, encodeVarint, varintSize } from './varint.ts';

export const QUIC_V1 = 0x00000001;
export const QUIC_V2 = 0x6b3343cf;
export const SUPPORTED_VERSIONS: readonly number[] = [QUIC_V1, QUIC_V2];
/** v1/v2 connection IDs are at most 20 bytes; the invariants allow 255 for other versions. */
export const MAX_CID_LEN = 20;
export const RETRY_TAG_LEN = 16;

export type LongPacketType = 'initial' | '0rtt' | 'handshake' | 'retry';

// The two type bits of the first byte, per version: v2 rotates them so that middleboxes
// which hard-coded v1's values do not ossify the field (RFC 9369 §3.2).
const TYPE_BY_BITS: Record<number, readonly LongPacketType[]> = {
  [QUIC_V1]: ['initial', '0rtt', 'handshake', 'retry'],
  [QUIC_V2]: ['retry', 'initial', '0rtt', 'handshake'],
};

export function isSupportedVersion(version: number): boolean {
  return version === QUIC_V1 || version === QUIC_V2;
}

export function versionName(version: number): string {
  if (version === QUIC_V1) return 'v1';
  if (version === QUIC_V2) return 'v2';
  return `0x${version.toString(16).padStart(8, '0')}`;
}

/** The type bits (0..3) of `type` in `version`; undefined for a version this codec does not know. */
export function longTypeBits(version: number, type: LongPacketType): number | undefined {
  const t = TYPE_BY_BITS[version];
  return t ? t.indexOf(type) : undefined;
}

/** Common to every long-header packet this module returns. */
interface LongCommon {
  /** Offset of the packet in the input. */
  offset: number;
  /** First byte as received (for protected packets its low bits are still masked). */
  firstByte: number;
  /** The fixed bit (0x40); 0 is legal only with RFC 9287 greasing, so it is reported, not rejected. */
  fixedBit: boolean;
  dcid: Buffer;
  scid: Buffer;
  /** Bytes of this packet in the input (for coalesced packets: up to the next one). */
  packetLength: number;
}

/** Initial, 0-RTT or Handshake packet of a known version. */
export interface LongHeader extends LongCommon {
  form: 'long';
  version: number;
  type: 'initial' | '0rtt' | 'handshake';
  /** Initial only; empty for the other types. */
  token: Buffer;
  /** Offset of the (protected) packet number from the start of the packet. */
  pnOffset: number;
  /** The Length field: packet number plus protected payload. */
  length: number;
}

export interface RetryHeader extends LongCommon {
  form: 'retry';
  version: number;
  token: Buffer;
  integrityTag: Buffer;
}

export interface VersionNegotiationHeader extends LongCommon {
  form: 'version_negotiation';
  versions: number[];
}

/** A long header of a version this codec cannot decode past the invariants. */
export interface UnknownVersionHeader extends LongCommon {
  form: 'unknown_version';
  version: number;
}

export interface ShortHeader {
  form: 'short';
  offset: number;
  firstByte: number;
  fixedBit: boolean;
  /** Spin bit (0x20): not protected. */
  spin: boolean;
  dcid: Buffer;
  pnOffset: number;
  packetLength: number;
}

export type LongPacketHeader = LongHeader | RetryHeader | VersionNegotiationHeader | UnknownVersionHeader;
export type PacketHeader = LongPacketHeader | ShortHeader;

export function isLongHeader(firstByte: number): boolean {
  return (firstByte & 0x80) !== 0;
}

function readCid(buf: Buffer, at: number, end: number, max: number, what: string): QuicResult<{ cid: Buffer; next: number }> {
  if (at >= end) return qerr('truncated', `${what} length missing`, at);
  const len = buf[at]!;
  if (len > max) return qerr('bad_value', `${what} of ${len} bytes exceeds ${max}`, at);
  if (at + 1 + len > end) return qerr('truncated', `${what} needs ${len} bytes`, at + 1);
  return ok({ cid: Buffer.from(buf.subarray(at + 1, at + 1 + len)), next: at + 1 + len });
}

/**
 * Parses the long-header packet at `off` (bounded by `end`). A packet of an unknown version is
 * not an error: it is returned with what the invariants define (version and connection IDs,
 * which may then be up to 255 bytes) and runs to `end`, since its length cannot be known.
 */
export function parseLongHeader(buf: Buffer, off = 0, end?: number): QuicResult<LongPacketHeader> {
  if (!Buffer.isBuffer(buf)) return qerr('bad_argument', 'not a Buffer');
  if (!Number.isInteger(off) || off < 0) return qerr('bad_argument', `offset ${off}`);
  end = Math.min(end ?? buf.length, buf.length);
  if (off + 7 > end) return qerr('truncated', `long header needs 7 bytes, got ${Math.max(end - off, 0)}`, off);
  const firstByte = buf[off]!;
  if (!isLongHeader(firstByte)) return qerr('bad_value', 'header form bit is 0 (short header)', off);
  const version = buf.readUInt32BE(off + 1);
  const known = isSupportedVersion(version);
  const maxCid = known ? MAX_CID_LEN : 255;
  const d = readCid(buf, off + 5, end, maxCid, 'DCID');
  if (!d.ok) return d;
  const s = readCid(buf, d.value.next, end, maxCid, 'SCID');
  if (!s.ok) return s;
  const common = { offset: off, firstByte, fixedBit: (firstByte & 0x40) !== 0, dcid: d.value.cid, scid: s.value.cid };
  let at = s.value.next;

  if (version === 0) {
    const n = end - at;
    if (n % 4 !== 0) return qerr('bad_value', `version list of ${n} bytes is not a multiple of 4`, at);
    const versions: number[] = [];
    for (; at < end; at += 4) versions.push(buf.readUInt32BE(at));
    return ok({ form: 'version_negotiation', ...common, versions, packetLength: end - off });
  }
  if (!known) return ok({ form: 'unknown_version', ...common, version, packetLength: end - off });

  const type = TYPE_BY_BITS[version]![(firstByte >> 4) & 0x03]!;
  if (type === 'retry') {
    if (end - at < RETRY_TAG_LEN) return qerr('truncated', 'Retry packet shorter than its integrity tag', at);
    return ok({
      form: 'retry', ...common, version,
      token: Buffer.from(buf.subarray(at, end - RETRY_TAG_LEN)),
      integrityTag: Buffer.from(buf.subarray(end - RETRY_TAG_LEN, end)),
      packetLength: end - off,
    });
  }
  let token = Buffer.alloc(0);
  if (type === 'initial') {
    const tl = decodeVarint(buf, at, end);
    if (!tl.ok) return tl;
    at += tl.value.length;
    if (tl.value.value > end - at) return qerr('truncated', `token of ${tl.value.value} bytes overruns the packet`, at);
    token = Buffer.from(buf.subarray(at, at + tl.value.value));
    at += tl.value.value;
  }
  const len = decodeVarint(buf, at, end);
  if (!len.ok) return len;
  at += len.value.length;
  if (len.value.value > end - at) return qerr('truncated', `Length ${len.value.value} exceeds the ${end - at} bytes left`, at);
  return ok({
    form: 'long', ...common, version, type, token,
    pnOffset: at - off, length: len.value.value, packetLength: at - off + len.value.value,
  });
}

/**
 * Parses a short-header (1-RTT) packet at `off`. Its DCID length is not on the wire: the
 * receiver knows it from the connection IDs it issued, hence `dcidLen`.
 */
export function parseShortHeader(buf: Buffer, off: number, dcidLen: number, end?: number): QuicResult<ShortHeader> {
  if (!Buffer.isBuffer(buf)) return qerr('bad_argument', 'not a Buffer');
  if (!Number.isInteger(off) || off < 0) return qerr('bad_argument', `offset ${off}`);
  if (!Number.isInteger(dcidLen) || dcidLen < 0 || dcidLen > MAX_CID_LEN) return qerr('bad_argument', `DCID length ${dcidLen} out of range`);
  end = Math.min(end ?? buf.length, buf.length);
  if (off >= end) return qerr('truncated', 'short header: no bytes', off);
  const firstByte = buf[off]!;
  if (isLongHeader(firstByte)) return qerr('bad_value', 'header form bit is 1 (long header)', off);
  if (off + 1 + dcidLen > end) return qerr('truncated', `short header needs a ${dcidLen}-byte DCID`, off + 1);
  return ok({
    form: 'short', offset: off, firstByte, fixedBit: (firstByte & 0x40) !== 0, spin: (firstByte & 0x20) !== 0,
    dcid: Buffer.from(buf.subarray(off + 1, off + 1 + dcidLen)), pnOffset: 1 + dcidLen, packetLength: end - off,
  });
}

/** Parses whichever header is at `off`; short headers need the DCID length the receiver uses. */
export function parsePacketHeader(buf: Buffer, off = 0, opts: { shortDcidLen?: number; end?: number } = {}): QuicResult<PacketHeader> {
  if (!Buffer.isBuffer(buf)) return qerr('bad_argument', 'not a Buffer');
  if (!Number.isInteger(off) || off < 0) return qerr('bad_argument', `offset ${off}`);
  const end = opts.end ?? buf.length;
  if (off >= Math.min(end, buf.length)) return qerr('truncated', 'no bytes', off);
  if (isLongHeader(buf[off]!)) return parseLongHeader(buf, off, end);
  return parseShortHeader(buf, off, opts.shortDcidLen ?? 0, end);
}

function checkCid(cid: Buffer, max: number, what: string): void {
  if (!Buffer.isBuffer(cid) || cid.length > max) throw new PacketBuildError('bad_argument', `${what} must be a Buffer of at most ${max} bytes`);
}

export interface LongHeaderSpec {
  version: number;
  type: 'initial' | '0rtt' | 'handshake';
  dcid: Buffer;
  scid: Buffer;
  token?: Buffer;
  /** Packet number length in bytes (1..4), written into the first byte's low bits. */
  pnLength: number;
  /** Value of the Length field (packet number + protected payload). */
  length: number;
  /** Reserved bits (0x0c); 0 unless testing that a receiver rejects them. */
  reserved?: number;
  /** Clear the fixed bit (RFC 9287 greasing). */
  clearFixedBit?: boolean;
  /** Encoded size of the Length varint; 2 by default, as most stacks write it. */
  lengthSize?: number;
}

/** Encodes a long header up to (not including) the packet number. */
export function encodeLongHeader(spec: LongHeaderSpec): Buffer {
  const bits = longTypeBits(spec.version, spec.type);
  if (bits === undefined) throw new PacketBuildError('bad_argument', `unknown QUIC version ${spec.version}`);
  checkCid(spec.dcid, MAX_CID_LEN, 'DCID');
  checkCid(spec.scid, MAX_CID_LEN, 'SCID');
  if (!Number.isInteger(spec.pnLength) || spec.pnLength < 1 || spec.pnLength > 4) throw new PacketBuildError('bad_argument', `packet number length ${spec.pnLength}`);
  const token = spec.token ?? Buffer.alloc(0);
  if (token.length > 0 && spec.type !== 'initial') throw new PacketBuildError('bad_argument', 'only Initial packets carry a token');
  const first = 0x80 | (spec.clearFixedBit ? 0 : 0x40) | (bits << 4) | (((spec.reserved ?? 0) & 0x03) << 2) | (spec.pnLength - 1);
  const version = Buffer.alloc(4);
  version.writeUInt32BE(spec.version >>> 0);
  return Buffer.concat([
    Buffer.from([first]), version,
    Buffer.from([spec.dcid.length]), spec.dcid, Buffer.from([spec.scid.length]), spec.scid,
    spec.type === 'initial' ? Buffer.concat([encodeVarint(token.length), token]) : Buffer.alloc(0),
    encodeVarint(spec.length, Math.max(spec.lengthSize ?? 2, varintSize(spec.length))),
  ]);
}

/**
 * Encodes a Version Negotiation packet (RFC 9000 §17.2.1): the server echoes the client's
 * connection IDs swapped, so `dcid` here is the client's SCID.
 */
export function encodeVersionNegotiation(spec: { dcid: Buffer; scid: Buffer; versions: readonly number[]; unused?: number }): Buffer {
  checkCid(spec.dcid, 255, 'DCID');
  checkCid(spec.scid, 255, 'SCID');
  const versions = Buffer.alloc(4 * spec.versions.length);
  spec.versions.forEach((v, i) => versions.writeUInt32BE(v >>> 0, 4 * i));
  return Buffer.concat([
    Buffer.from([0x80 | ((spec.unused ?? 0x40) & 0x7f)]), Buffer.alloc(4),
    Buffer.from([spec.dcid.length]), spec.dcid, Buffer.from([spec.scid.length]), spec.scid, versions,
  ]);
}
