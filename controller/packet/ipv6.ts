/**
 * IPv6 fixed header (RFC 8200) and the extension-header walk down to the upper-layer header.
 * Walked: Hop-by-Hop, Routing, Fragment, Destination Options, AH. The walk stops at the first
 * other next-header value (TCP, UDP, ICMPv6, No Next Header, ESP, anything unknown).
 */
import { formatIpv6, parseIpv6 } from './addr.ts';
import { err, ok, type Result } from './result.ts';

export const IPV6_HEADER_LEN = 40;
export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_NONE = 59;
export const IPPROTO_DSTOPTS = 60;
/**
 * Longest chain walked. A legitimate packet has at most six (RFC 8200 §4.1 order, Destination
 * Options twice); a longer chain is refused rather than walked, as middleboxes do (RFC 9098).
 */
export const IPV6_MAX_EXT_HEADERS = 8;

export type Ipv6ExtKind = 'hop_by_hop' | 'routing' | 'fragment' | 'destination' | 'auth';

const EXT_KINDS: Record<number, Ipv6ExtKind> = {
  [IPPROTO_HOPOPTS]: 'hop_by_hop',
  [IPPROTO_ROUTING]: 'routing',
  [IPPROTO_FRAGMENT]: 'fragment',
  [IPPROTO_DSTOPTS]: 'destination',
  [IPPROTO_AH]: 'auth',
};
const EXT_PROTOCOLS: Record<Ipv6ExtKind, number> = {
  hop_by_hop: IPPROTO_HOPOPTS,
  routing: IPPROTO_ROUTING,
  fragment: IPPROTO_FRAGMENT,
  destination: IPPROTO_DSTOPTS,
  auth: IPPROTO_AH,
};

/** True for the next-header values the walk steps over. */
export function isIpv6ExtHeader(nextHeader: number): boolean {
  return EXT_KINDS[nextHeader] !== undefined;
}

/** A Hop-by-Hop / Destination option (Pad1 is type 0 with no length byte, PadN type 1). */
export interface Ipv6Option {
  type: number;
  data: Buffer;
}

interface ExtCommon {
  /** The header's own protocol number (0, 43, 44, 60 or 51). */
  protocol: number;
  nextHeader: number;
  /** Absolute offset in the frame. */
  offset: number;
  /** Length in bytes. */
  length: number;
}

export type Ipv6ExtHeader =
  | (ExtCommon & { kind: 'hop_by_hop' | 'destination'; options: Ipv6Option[] })
  | (ExtCommon & { kind: 'routing'; routingType: number; segmentsLeft: number; /** Bytes after the first 4. */ data: Buffer })
  | (ExtCommon & { kind: 'fragment'; /** In 8-byte units, as on the wire. */ fragmentOffset: number; mf: boolean; id: number })
  | (ExtCommon & { kind: 'auth'; spi: number; seq: number; icv: Buffer });

export interface Ipv6 {
  version: number;
  trafficClass: number;
  dscp: number;
  ecn: number;
  flowLabel: number;
  payloadLength: number;
  /** Next Header of the fixed header. */
  nextHeader: number;
  hopLimit: number;
  src: string;
  dst: string;
  /** 16-byte copies of src/dst, for pseudo-header sums. */
  srcBytes: Buffer;
  dstBytes: Buffer;
  extHeaders: Ipv6ExtHeader[];
  /** Protocol where the walk stopped: the upper layer (6, 17, 58, 59, ...), or what follows a non-first fragment's header. */
  protocol: number;
  /** Bytes from the start of the fixed header to the upper-layer header (40 + extension headers). */
  headerLength: number;
  /** 40 + payloadLength: the datagram; bytes after it are Ethernet padding. */
  totalLength: number;
  /** A Fragment header with a non-zero offset or M set (an atomic fragment, RFC 6946, is not one). */
  isFragment: boolean;
  /**
   * Destination of the upper-layer pseudo-header: the final destination named by a Routing
   * header with segments left (types 0, 2 and 4), else `dst` (RFC 8200 §8.1).
   */
  pseudoDst: string;
  pseudoDstBytes: Buffer;
}

function decodeOptions(buf: Buffer, start: number, end: number): Result<Ipv6Option[]> {
  const opts: Ipv6Option[] = [];
  let i = start;
  while (i < end) {
    const type = buf[i]!;
    if (type === 0) {
      opts.push({ type, data: Buffer.alloc(0) });
      i++;
      continue;
    }
    if (i + 2 > end) return err('bad_options', 'IPv6 option header overruns its extension header', i);
    const len = buf[i + 1]!;
    if (i + 2 + len > end) return err('bad_options', `IPv6 option ${type} of ${len} bytes overruns its extension header`, i);
    opts.push({ type, data: Buffer.from(buf.subarray(i + 2, i + 2 + len)) });
    i += 2 + len;
  }
  return ok(opts);
}

/** The destination a Routing header finally delivers to, when it names one; null otherwise. */
function finalDestination(h: Extract<Ipv6ExtHeader, { kind: 'routing' }>): Buffer | null {
  if (h.segmentsLeft === 0 || h.data.length < 4 + 16) return null;
  const n = Math.floor((h.data.length - 4) / 16);
  // Type 0 (deprecated) and 2 (Mobile IPv6) list addresses in visiting order; type 4 (SRv6)
  // lists segments in reverse, Segment List[0] being the last.
  if (h.routingType === 0 || h.routingType === 2) return h.data.subarray(4 + 16 * (n - 1), 4 + 16 * n);
  if (h.routingType === 4) return h.data.subarray(4, 20);
  return null;
}

/**
 * Decodes the IPv6 header at `off` and walks its extension headers. Fails if the header, the
 * datagram announced by the payload length, or an extension header does not fit; on a
 * Hop-by-Hop header anywhere but first; on a malformed option area; and on a chain longer
 * than IPV6_MAX_EXT_HEADERS ('unsupported'). The walk stops at a non-first fragment's header:
 * what follows it is fragment data, not headers.
 */
export function decodeIpv6(buf: Buffer, off: number): Result<Ipv6> {
  const avail = buf.length - off;
  if (avail < IPV6_HEADER_LEN) return err('truncated', `IPv6 header needs 40 bytes, got ${Math.max(avail, 0)}`, off);
  const w0 = buf.readUInt32BE(off);
  const version = w0 >>> 28;
  if (version !== 6) return err('bad_value', `IP version ${version} is not 6`, off);
  const payloadLength = buf.readUInt16BE(off + 4);
  const totalLength = IPV6_HEADER_LEN + payloadLength;
  // A Jumbo Payload (RFC 2675) announces 0 here; it cannot cross Ethernet, so 0 means empty.
  if (totalLength > avail) return err('truncated', `IPv6 payload length ${payloadLength} exceeds ${avail - IPV6_HEADER_LEN} available bytes`, off + 4);
  const end = off + totalLength;
  const nextHeader = buf[off + 6]!;
  const extHeaders: Ipv6ExtHeader[] = [];
  let protocol = nextHeader;
  let at = off + IPV6_HEADER_LEN;
  let isFragment = false;
  let dstFinal: Buffer | null = null;
  while (isIpv6ExtHeader(protocol)) {
    if (extHeaders.length === IPV6_MAX_EXT_HEADERS) {
      return err('unsupported', `more than ${IPV6_MAX_EXT_HEADERS} IPv6 extension headers`, at);
    }
    if (protocol === IPPROTO_HOPOPTS && extHeaders.length > 0) {
      return err('bad_value', 'IPv6 Hop-by-Hop Options header not immediately after the IPv6 header', at);
    }
    if (end - at < 8) return err('truncated', `IPv6 extension header ${protocol} needs 8 bytes, got ${Math.max(end - at, 0)}`, at);
    const nh = buf[at]!;
    const lenByte = buf[at + 1]!;
    const length = protocol === IPPROTO_FRAGMENT ? 8 : protocol === IPPROTO_AH ? (lenByte + 2) * 4 : (lenByte + 1) * 8;
    if (length > end - at) return err('truncated', `IPv6 extension header ${protocol} of ${length} bytes exceeds ${end - at} available bytes`, at + 1);
    const common = { protocol, nextHeader: nh, offset: at, length };
    const kind = EXT_KINDS[protocol]!;
    if (kind === 'hop_by_hop' || kind === 'destination') {
      const o = decodeOptions(buf, at + 2, at + length);
      if (!o.ok) return o;
      extHeaders.push({ ...common, kind, options: o.value });
    } else if (kind === 'routing') {
      const h = { ...common, kind, routingType: buf[at + 2]!, segmentsLeft: buf[at + 3]!, data: Buffer.from(buf.subarray(at + 4, at + length)) };
      extHeaders.push(h);
      dstFinal = finalDestination(h) ?? dstFinal;
    } else if (kind === 'fragment') {
      const fo = buf.readUInt16BE(at + 2);
      const h = { ...common, kind, fragmentOffset: fo >> 3, mf: (fo & 1) !== 0, id: buf.readUInt32BE(at + 4) };
      extHeaders.push(h);
      if (h.fragmentOffset !== 0 || h.mf) isFragment = true;
      if (h.fragmentOffset !== 0) {
        protocol = nh;
        at += length;
        break;
      }
    } else {
      // RFC 4302 §2.2: an IPv6 AH is a multiple of 8 bytes and holds at least SPI and sequence.
      if (length < 16 || length % 8 !== 0) return err('bad_value', `IPv6 AH length ${length} is not a multiple of 8 of at least 16`, at + 1);
      extHeaders.push({ ...common, kind, spi: buf.readUInt32BE(at + 4), seq: buf.readUInt32BE(at + 8), icv: Buffer.from(buf.subarray(at + 12, at + length)) });
    }
    protocol = nh;
    at += length;
  }
  const tc = (w0 >>> 20) & 0xff;
  const srcBytes = Buffer.from(buf.subarray(off + 8, off + 24));
  const dstBytes = Buffer.from(buf.subarray(off + 24, off + 40));
  const pseudoDstBytes = dstFinal ? Buffer.from(dstFinal) : dstBytes;
  return ok({
    version,
    trafficClass: tc,
    dscp: tc >> 2,
    ecn: tc & 3,
    flowLabel: w0 & 0xfffff,
    payloadLength,
    nextHeader,
    hopLimit: buf[off + 7]!,
    src: formatIpv6(srcBytes),
    dst: formatIpv6(dstBytes),
    srcBytes,
    dstBytes,
    extHeaders,
    protocol,
    headerLength: at - off,
    totalLength,
    isFragment,
    pseudoDst: formatIpv6(pseudoDstBytes),
    pseudoDstBytes,
  });
}

// ---------------------------------------------------------------------------------------------
// Encoding.

export type Ipv6ExtHeaderSpec =
  /** Options are padded with Pad1/PadN to a multiple of 8 bytes. */
  | { kind: 'hop_by_hop' | 'destination'; options?: readonly Ipv6Option[] }
  /** `addresses` (type 0/2 layout: 4 reserved bytes, then the addresses) or raw `data` (bytes after the first 4). */
  | { kind: 'routing'; routingType: number; segmentsLeft: number; addresses?: readonly string[]; data?: Buffer }
  | { kind: 'fragment'; fragmentOffset?: number; mf?: boolean; id: number }
  /** `icv` (default 4 zero bytes, keeping the header a multiple of 8). */
  | { kind: 'auth'; spi: number; seq: number; icv?: Buffer };

export interface Ipv6Spec {
  src: string;
  dst: string;
  /** Upper-layer protocol, after the extension headers. */
  nextHeader: number;
  /** Length of the upper-layer message (extension headers are added). */
  payloadLength: number;
  hopLimit?: number; // default 64
  trafficClass?: number; // default 0
  flowLabel?: number; // default 0
  extHeaders?: readonly Ipv6ExtHeaderSpec[];
}

function intIn(n: unknown, lo: number, hi: number): boolean {
  return typeof n === 'number' && Number.isInteger(n) && n >= lo && n <= hi;
}

function encodeOptions(opts: readonly Ipv6Option[]): Result<Buffer> {
  const parts: Buffer[] = [];
  let len = 2;
  for (const o of opts) {
    if (!intIn(o?.type, 0, 255) || !Buffer.isBuffer(o.data)) return err('bad_argument', 'IPv6 option needs {type: 0..255, data: Buffer}');
    if (o.type === 0) {
      parts.push(Buffer.from([0]));
      len += 1;
      continue;
    }
    if (o.data.length > 255) return err('bad_argument', `IPv6 option ${o.type} data longer than 255 bytes`);
    parts.push(Buffer.from([o.type, o.data.length]), o.data);
    len += 2 + o.data.length;
  }
  const pad = (8 - (len % 8)) % 8;
  if (pad === 1) parts.push(Buffer.from([0]));
  else if (pad > 1) parts.push(Buffer.from([1, pad - 2]), Buffer.alloc(pad - 2));
  return ok(Buffer.concat(parts));
}

/** Encodes one extension header whose Next Header is `nh`. */
function encodeExtHeader(spec: Ipv6ExtHeaderSpec, nh: number): Result<Buffer> {
  let b: Buffer;
  switch (spec?.kind) {
    case 'hop_by_hop':
    case 'destination': {
      const o = encodeOptions(spec.options ?? []);
      if (!o.ok) return o;
      b = Buffer.concat([Buffer.alloc(2), o.value]);
      break;
    }
    case 'routing': {
      if (!intIn(spec.routingType, 0, 255) || !intIn(spec.segmentsLeft, 0, 255)) return err('bad_argument', 'invalid routing type or segments left');
      let data: Buffer;
      if (spec.addresses) {
        const addrs: Buffer[] = [];
        for (const a of spec.addresses) {
          const r = parseIpv6(a);
          if (!r.ok) return r;
          addrs.push(r.value);
        }
        data = Buffer.concat([Buffer.alloc(4), ...addrs]);
      } else {
        data = spec.data ?? Buffer.alloc(4);
      }
      if (!Buffer.isBuffer(data) || (data.length + 4) % 8 !== 0) return err('bad_argument', 'routing header data must make the header a multiple of 8 bytes');
      b = Buffer.concat([Buffer.from([0, 0, spec.routingType, spec.segmentsLeft]), data]);
      break;
    }
    case 'fragment': {
      const fo = spec.fragmentOffset ?? 0;
      if (!intIn(fo, 0, 0x1fff) || !intIn(spec.id, 0, 0xffff_ffff)) return err('bad_argument', 'invalid fragment offset or id');
      b = Buffer.alloc(8);
      b.writeUInt16BE((fo << 3) | (spec.mf ? 1 : 0), 2);
      b.writeUInt32BE(spec.id, 4);
      break;
    }
    case 'auth': {
      const icv = spec.icv ?? Buffer.alloc(4);
      if (!intIn(spec.spi, 0, 0xffff_ffff) || !intIn(spec.seq, 0, 0xffff_ffff)) return err('bad_argument', 'invalid AH SPI or sequence');
      if (!Buffer.isBuffer(icv) || (12 + icv.length) % 8 !== 0) return err('bad_argument', 'AH ICV must make the header a multiple of 8 bytes');
      b = Buffer.alloc(12 + icv.length);
      b.writeUInt32BE(spec.spi, 4);
      b.writeUInt32BE(spec.seq, 8);
      icv.copy(b, 12);
      if (b.length / 4 - 2 > 255) return err('bad_argument', 'AH header too long');
      b[1] = b.length / 4 - 2;
      b[0] = nh;
      return ok(b);
    }
    default:
      return err('bad_argument', 'unknown IPv6 extension header kind');
  }
  if (b.length > 2048) return err('bad_argument', 'IPv6 extension header longer than 2048 bytes');
  b[0] = nh;
  if (spec.kind !== 'fragment') b[1] = b.length / 8 - 1;
  return ok(b);
}

/** Encodes the IPv6 header followed by its extension headers (nothing to checksum at this layer). */
export function encodeIpv6Header(spec: Ipv6Spec): Result<Buffer> {
  const src = parseIpv6(spec.src);
  if (!src.ok) return src;
  const dst = parseIpv6(spec.dst);
  if (!dst.ok) return dst;
  const hopLimit = spec.hopLimit ?? 64;
  const tc = spec.trafficClass ?? 0;
  const fl = spec.flowLabel ?? 0;
  if (!intIn(hopLimit, 0, 255)) return err('bad_argument', `invalid hop limit ${hopLimit}`);
  if (!intIn(tc, 0, 255)) return err('bad_argument', `invalid traffic class ${tc}`);
  if (!intIn(fl, 0, 0xfffff)) return err('bad_argument', `invalid flow label ${fl}`);
  if (!intIn(spec.nextHeader, 0, 255)) return err('bad_argument', `invalid next header ${spec.nextHeader}`);
  const exts = spec.extHeaders ?? [];
  const encoded: Buffer[] = [];
  for (let i = 0; i < exts.length; i++) {
    const next = i + 1 < exts.length ? EXT_PROTOCOLS[exts[i + 1]!.kind] : spec.nextHeader;
    if (next === undefined) return err('bad_argument', 'unknown IPv6 extension header kind');
    const e = encodeExtHeader(exts[i]!, next);
    if (!e.ok) return e;
    encoded.push(e.value);
  }
  const extLen = encoded.reduce((n, b) => n + b.length, 0);
  if (!intIn(spec.payloadLength, 0, 0xffff - extLen)) return err('bad_argument', `IPv6 payload length ${spec.payloadLength} too large`);
  const first = exts.length > 0 ? EXT_PROTOCOLS[exts[0]!.kind] : spec.nextHeader;
  if (first === undefined) return err('bad_argument', 'unknown IPv6 extension header kind');
  const h = Buffer.alloc(IPV6_HEADER_LEN);
  h.writeUInt32BE(((6 << 28) | (tc << 20) | fl) >>> 0, 0);
  h.writeUInt16BE(extLen + spec.payloadLength, 4);
  h[6] = first;
  h[7] = hopLimit;
  src.value.copy(h, 8);
  dst.value.copy(h, 24);
  return ok(Buffer.concat([h, ...encoded]));
}
