/**
 * ICMPv6 (RFC 4443) with Neighbor Discovery (RFC 4861): echo, neighbour solicitation and
 * advertisement with their link-layer address options decoded; router solicitation and
 * advertisement and redirect recognised with their fixed fields; other types keep `rest`.
 */
import { formatIpv6, formatMac, parseIpv6, parseMac } from './addr.ts';
import { l4Checksum6 } from './checksum.ts';
import { IPPROTO_ICMPV6 } from './ipv6.ts';
import { err, ok, PacketBuildError, unwrapOrThrow, type DecodeError, type Result } from './result.ts';

export const ICMPV6_DEST_UNREACH = 1;
export const ICMPV6_PACKET_TOO_BIG = 2;
export const ICMPV6_TIME_EXCEEDED = 3;
export const ICMPV6_PARAM_PROBLEM = 4;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
export const ICMPV6_ROUTER_SOLICIT = 133;
export const ICMPV6_ROUTER_ADVERT = 134;
export const ICMPV6_NEIGHBOR_SOLICIT = 135;
export const ICMPV6_NEIGHBOR_ADVERT = 136;
export const ICMPV6_REDIRECT = 137;

export const ND_OPT_SOURCE_LLA = 1;
export const ND_OPT_TARGET_LLA = 2;
export const ND_OPT_PREFIX_INFO = 3;
export const ND_OPT_MTU = 5;

/** Where the options start, per ND message type (the fixed part before them). */
const ND_FIXED: Record<number, number> = {
  [ICMPV6_ROUTER_SOLICIT]: 8,
  [ICMPV6_ROUTER_ADVERT]: 16,
  [ICMPV6_NEIGHBOR_SOLICIT]: 24,
  [ICMPV6_NEIGHBOR_ADVERT]: 24,
  [ICMPV6_REDIRECT]: 40,
};

export type NdOption =
  | { kind: 'source_lla'; mac: string }
  | { kind: 'target_lla'; mac: string }
  | { kind: 'mtu'; mtu: number }
  | {
      kind: 'prefix_info';
      prefixLength: number;
      onLink: boolean;
      autonomous: boolean;
      validLifetime: number;
      preferredLifetime: number;
      prefix: string;
    }
  /** Any other option, or a known one of a length this codec does not expect; `data` follows type and length. */
  | { kind: 'unknown'; type: number; data: Buffer };

export interface Icmpv6 {
  type: number;
  code: number;
  checksum: number;
  /** Checksum correct over the message and the IPv6 pseudo-header. */
  checksumOk: boolean;
  /** The 4 bytes after the checksum, raw. */
  rest: Buffer;
  /** Echo request (128) / reply (129). */
  echo?: { id: number; seq: number };
  /** Target address of a neighbour solicitation/advertisement or a redirect. */
  ndTarget?: string;
  /** Neighbour advertisement flags. */
  na?: { router: boolean; solicited: boolean; override: boolean };
  /** Router advertisement fixed fields. */
  ra?: { curHopLimit: number; managed: boolean; other: boolean; routerLifetime: number; reachableTime: number; retransTimer: number };
  /** Destination address of a redirect. */
  redirectDst?: string;
  /** ND options (types 133-137); empty or partial when `ndOptionsError` is set. */
  ndOptions?: NdOption[];
  /** Set when the option area is malformed (RFC 4861 §4.6: such a message is to be discarded). */
  ndOptionsError?: DecodeError;
  /** Source / target link-layer address options, when present. */
  sll?: string;
  tll?: string;
}

function decodeNdOption(type: number, body: Buffer): NdOption {
  if ((type === ND_OPT_SOURCE_LLA || type === ND_OPT_TARGET_LLA) && body.length === 6) {
    return { kind: type === ND_OPT_SOURCE_LLA ? 'source_lla' : 'target_lla', mac: formatMac(body) };
  }
  if (type === ND_OPT_MTU && body.length === 6) return { kind: 'mtu', mtu: body.readUInt32BE(2) };
  if (type === ND_OPT_PREFIX_INFO && body.length === 30) {
    return {
      kind: 'prefix_info',
      prefixLength: body[0]!,
      onLink: (body[1]! & 0x80) !== 0,
      autonomous: (body[1]! & 0x40) !== 0,
      validLifetime: body.readUInt32BE(2),
      preferredLifetime: body.readUInt32BE(6),
      prefix: formatIpv6(body, 14),
    };
  }
  return { kind: 'unknown', type, data: Buffer.from(body) };
}

/** Decodes the ND option area buf[start, end); on error, the options before the bad one. */
export function decodeNdOptions(buf: Buffer, start: number, end: number): { options: NdOption[]; error?: DecodeError } {
  const options: NdOption[] = [];
  let i = start;
  while (i < end) {
    if (end - i < 2) return { options, error: { kind: 'bad_options', message: 'ND option header truncated', offset: i } };
    const len = buf[i + 1]! * 8;
    if (len === 0) return { options, error: { kind: 'bad_options', message: `ND option ${buf[i]} has length 0`, offset: i + 1 } };
    if (i + len > end) return { options, error: { kind: 'bad_options', message: `ND option ${buf[i]} of ${len} bytes overruns the message`, offset: i + 1 } };
    options.push(decodeNdOption(buf[i]!, buf.subarray(i + 2, i + len)));
    i += len;
  }
  return { options };
}

/**
 * Decodes the ICMPv6 message buf[off, end); `src`/`dst` (16 bytes each) are the pseudo-header
 * addresses (Ipv6.srcBytes / pseudoDstBytes). An ND message shorter than its fixed part is
 * 'truncated'; a malformed ND option area is reported in `ndOptionsError`, not as a failure.
 */
export function decodeIcmpv6(buf: Buffer, off: number, end: number, src: Buffer, dst: Buffer): Result<Icmpv6> {
  const avail = end - off;
  if (avail < 8) return err('truncated', `ICMPv6 header needs 8 bytes, got ${Math.max(avail, 0)}`, off);
  const type = buf[off]!;
  const m: Icmpv6 = {
    type,
    code: buf[off + 1]!,
    checksum: buf.readUInt16BE(off + 2),
    checksumOk: l4Checksum6(buf, off, end, src, dst, IPPROTO_ICMPV6) === 0,
    rest: Buffer.from(buf.subarray(off + 4, off + 8)),
  };
  if (type === ICMPV6_ECHO_REQUEST || type === ICMPV6_ECHO_REPLY) {
    m.echo = { id: buf.readUInt16BE(off + 4), seq: buf.readUInt16BE(off + 6) };
    return ok(m);
  }
  const fixed = ND_FIXED[type];
  if (fixed === undefined) return ok(m);
  if (avail < fixed) return err('truncated', `ICMPv6 type ${type} needs ${fixed} bytes, got ${avail}`, off);
  if (type === ICMPV6_NEIGHBOR_SOLICIT || type === ICMPV6_NEIGHBOR_ADVERT || type === ICMPV6_REDIRECT) m.ndTarget = formatIpv6(buf, off + 8);
  if (type === ICMPV6_REDIRECT) m.redirectDst = formatIpv6(buf, off + 24);
  if (type === ICMPV6_NEIGHBOR_ADVERT) {
    const f = buf[off + 4]!;
    m.na = { router: (f & 0x80) !== 0, solicited: (f & 0x40) !== 0, override: (f & 0x20) !== 0 };
  }
  if (type === ICMPV6_ROUTER_ADVERT) {
    const f = buf[off + 5]!;
    m.ra = {
      curHopLimit: buf[off + 4]!,
      managed: (f & 0x80) !== 0,
      other: (f & 0x40) !== 0,
      routerLifetime: buf.readUInt16BE(off + 6),
      reachableTime: buf.readUInt32BE(off + 8),
      retransTimer: buf.readUInt32BE(off + 12),
    };
  }
  const o = decodeNdOptions(buf, off + fixed, end);
  m.ndOptions = o.options;
  if (o.error) m.ndOptionsError = o.error;
  for (const opt of o.options) {
    if (opt.kind === 'source_lla' && m.sll === undefined) m.sll = opt.mac;
    if (opt.kind === 'target_lla' && m.tll === undefined) m.tll = opt.mac;
  }
  return ok(m);
}

// ---------------------------------------------------------------------------------------------
// Encoding. Fed by our own code: an invalid spec throws PacketBuildError, like the frame builders.

function encodeNdOption(o: NdOption): Buffer {
  switch (o.kind) {
    case 'source_lla':
    case 'target_lla':
      return Buffer.concat([Buffer.from([o.kind === 'source_lla' ? ND_OPT_SOURCE_LLA : ND_OPT_TARGET_LLA, 1]), unwrapOrThrow(parseMac(o.mac))]);
    case 'mtu': {
      const b = Buffer.alloc(8);
      b[0] = ND_OPT_MTU;
      b[1] = 1;
      b.writeUInt32BE(o.mtu >>> 0, 4);
      return b;
    }
    case 'prefix_info': {
      const b = Buffer.alloc(32);
      b[0] = ND_OPT_PREFIX_INFO;
      b[1] = 4;
      b[2] = o.prefixLength & 0xff;
      b[3] = (o.onLink ? 0x80 : 0) | (o.autonomous ? 0x40 : 0);
      b.writeUInt32BE(o.validLifetime >>> 0, 4);
      b.writeUInt32BE(o.preferredLifetime >>> 0, 8);
      unwrapOrThrow(parseIpv6(o.prefix)).copy(b, 16);
      return b;
    }
    case 'unknown': {
      const len = o.data.length + 2;
      if (len % 8 !== 0 || len > 255 * 8) throw new PacketBuildError('bad_argument', `ND option ${o.type}: data must make it a multiple of 8 bytes`);
      return Buffer.concat([Buffer.from([o.type & 0xff, len / 8]), o.data]);
    }
  }
}

export function encodeNdOptions(opts: readonly NdOption[]): Buffer {
  return Buffer.concat(opts.map(encodeNdOption));
}

/**
 * Encodes an ICMPv6 message: type, code, checksum, then `body` (everything after the checksum,
 * at least the 4 bytes of `rest`). The checksum covers the pseudo-header of src/dst (16 bytes each).
 */
export function encodeIcmpv6(type: number, code: number, body: Buffer, src: Buffer, dst: Buffer): Buffer {
  if (!Number.isInteger(type) || type < 0 || type > 255 || !Number.isInteger(code) || code < 0 || code > 255) {
    throw new PacketBuildError('bad_argument', `invalid ICMPv6 type/code ${type}/${code}`);
  }
  const b = Buffer.alloc(4 + body.length);
  b[0] = type;
  b[1] = code;
  body.copy(b, 4);
  b.writeUInt16BE(l4Checksum6(b, 0, b.length, src, dst, IPPROTO_ICMPV6), 2);
  return b;
}

export function encodeIcmpv6Echo(spec: { type: 128 | 129; id: number; seq: number; payload?: Buffer }, src: Buffer, dst: Buffer): Buffer {
  const payload = spec.payload ?? Buffer.alloc(0);
  const body = Buffer.alloc(4 + payload.length);
  body.writeUInt16BE(spec.id & 0xffff, 0);
  body.writeUInt16BE(spec.seq & 0xffff, 2);
  payload.copy(body, 4);
  return encodeIcmpv6(spec.type, 0, body, src, dst);
}

/** Neighbour solicitation for `target`, with a source link-layer address option when `sll` is given. */
export function encodeNeighborSolicitation(spec: { target: string; sll?: string; options?: readonly NdOption[] }, src: Buffer, dst: Buffer): Buffer {
  const opts: NdOption[] = [...(spec.sll ? [{ kind: 'source_lla' as const, mac: spec.sll }] : []), ...(spec.options ?? [])];
  const body = Buffer.concat([Buffer.alloc(4), unwrapOrThrow(parseIpv6(spec.target)), encodeNdOptions(opts)]);
  return encodeIcmpv6(ICMPV6_NEIGHBOR_SOLICIT, 0, body, src, dst);
}

/** Neighbour advertisement for `target`, with a target link-layer address option when `tll` is given. */
export function encodeNeighborAdvertisement(
  spec: { target: string; router?: boolean; solicited?: boolean; override?: boolean; tll?: string; options?: readonly NdOption[] },
  src: Buffer,
  dst: Buffer,
): Buffer {
  const opts: NdOption[] = [...(spec.tll ? [{ kind: 'target_lla' as const, mac: spec.tll }] : []), ...(spec.options ?? [])];
  const flags = Buffer.alloc(4);
  flags[0] = (spec.router ? 0x80 : 0) | (spec.solicited ? 0x40 : 0) | (spec.override ? 0x20 : 0);
  const body = Buffer.concat([flags, unwrapOrThrow(parseIpv6(spec.target)), encodeNdOptions(opts)]);
  return encodeIcmpv6(ICMPV6_NEIGHBOR_ADVERT, 0, body, src, dst);
}

/** ff02::1:ffXX:XXXX, the solicited-node multicast group of an address (RFC 4291 §2.7.1). */
export function solicitedNodeAddress(target: Buffer): Buffer {
  const out = Buffer.from('ff0200000000000000000001ff000000', 'hex');
  target.copy(out, 13, 13, 16);
  return out;
}

/** 33:33 followed by the low 32 bits of an IPv6 multicast address (RFC 2464 §7). */
export function multicastMac(group: Buffer): string {
  return formatMac(Buffer.concat([Buffer.from([0x33, 0x33]), group.subarray(12, 16)]));
}
