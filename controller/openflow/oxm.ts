// OXM TLVs: one table row per match field, knowing its class/field number, value layout and
// whether OF1.3 allows a mask. match.ts and the set_field action both use this table.
import { formatIpv6, parseIpv6 } from '../packet/addr.ts';
import { OFPXMC, ONF_VENDOR_ID } from './constants.ts';
import type { Reader } from './reader.ts';
import { OfpEncodeError } from './result.ts';
import type { Writer } from './writer.ts';

export type Masked<T> = { value: T; mask: T };

export interface UnknownOxm {
  oxmClass: number;
  field: number;
  hasMask: boolean;
  /** Payload after the 4-byte OXM header (for class 0xffff it starts with the experimenter id). */
  data: Buffer;
}

export interface Match {
  inPort?: number;
  inPhyPort?: number;
  metadata?: bigint | Masked<bigint>;
  ethDst?: string | Masked<string>;
  ethSrc?: string | Masked<string>;
  ethType?: number;
  /** Raw OXM value: VLAN id | OFPVID_PRESENT (0x1000) when a tag is present. */
  vlanVid?: number | Masked<number>;
  vlanPcp?: number;
  ipDscp?: number;
  ipEcn?: number;
  ipProto?: number;
  ipv4Src?: string | Masked<string>;
  ipv4Dst?: string | Masked<string>;
  /** IPv6 addresses are accepted in any valid text form and decoded in RFC 5952 form. */
  ipv6Src?: string | Masked<string>;
  ipv6Dst?: string | Masked<string>;
  /** 20-bit flow label. */
  ipv6Flabel?: number | Masked<number>;
  tcpSrc?: number;
  tcpDst?: number;
  udpSrc?: number;
  udpDst?: number;
  tcpFlags?: number | Masked<number>;
  icmpv4Type?: number;
  icmpv4Code?: number;
  arpOp?: number;
  arpSpa?: string | Masked<string>;
  arpTpa?: string | Masked<string>;
  arpSha?: string | Masked<string>;
  arpTha?: string | Masked<string>;
  icmpv6Type?: number;
  icmpv6Code?: number;
  ipv6NdTarget?: string;
  ipv6NdSll?: string;
  ipv6NdTll?: string;
  /** OFPIEH_* bits (9 bits): which extension headers the packet has. */
  ipv6Exthdr?: number | Masked<number>;
  /** Connection tracking (Nicira NXM fields; only after a ct action has recirculated the packet). CS_* bits. */
  ctState?: number | Masked<number>;
  ctZone?: number;
  ctMark?: number | Masked<number>;
  /** 128-bit label, as a bigint. */
  ctLabel?: bigint | Masked<bigint>;
  unknownOxm?: UnknownOxm[];
}

export type MatchField = Exclude<keyof Match, 'unknownOxm'>;

// ---------------------------------------------------------------------------------------------
// Value layouts.

type ValueKind = 'u8' | 'u16' | 'u32' | 'u64' | 'u128' | 'mac' | 'ipv4' | 'ipv6';

interface ValueCodec {
  size: number;
  read(r: Reader): unknown;
  write(w: Writer, v: unknown, what: string, max?: number): void;
}

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function macToBytes(mac: unknown, what = 'MAC'): Buffer {
  if (typeof mac !== 'string' || !MAC_RE.test(mac)) throw new OfpEncodeError(`${what}: bad MAC address ${String(mac)}`);
  return Buffer.from(mac.replace(/:/g, ''), 'hex');
}

export function bytesToMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function ipv4ToBytes(ip: unknown, what = 'IPv4'): Buffer {
  const m = typeof ip === 'string' ? IPV4_RE.exec(ip) : null;
  if (!m) throw new OfpEncodeError(`${what}: bad IPv4 address ${String(ip)}`);
  const parts = m.slice(1, 5).map(Number);
  if (parts.some((p) => p > 255)) throw new OfpEncodeError(`${what}: bad IPv4 address ${String(ip)}`);
  return Buffer.from(parts);
}

export function bytesToIpv4(b: Buffer): string {
  return [...b].join('.');
}

export function ipv6ToBytes(ip: unknown, what = 'IPv6'): Buffer {
  const r = parseIpv6(ip as string);
  if (!r.ok) throw new OfpEncodeError(`${what}: bad IPv6 address ${String(ip)}`);
  return r.value;
}

export function bytesToIpv6(b: Buffer): string {
  return formatIpv6(b);
}

const VALUE_CODECS: Record<ValueKind, ValueCodec> = {
  u8: {
    size: 1,
    read: (r) => r.u8(),
    write: (w, v, what, max = 0xff) => {
      if (typeof v === 'number' && v > max) throw new OfpEncodeError(`${what}: ${v} > ${max}`);
      w.u8(v as number, what);
    },
  },
  u16: {
    size: 2,
    read: (r) => r.u16(),
    write: (w, v, what, max = 0xffff) => {
      if (typeof v === 'number' && v > max) throw new OfpEncodeError(`${what}: ${v} > ${max}`);
      w.u16(v as number, what);
    },
  },
  u32: {
    size: 4,
    read: (r) => r.u32(),
    write: (w, v, what, max = 0xffffffff) => {
      if (typeof v === 'number' && v > max) throw new OfpEncodeError(`${what}: ${v} > ${max}`);
      w.u32(v as number, what);
    },
  },
  u64: { size: 8, read: (r) => r.u64(), write: (w, v, what) => w.u64(v as bigint, what) },
  u128: {
    size: 16,
    read: (r) => (r.u64() << 64n) | r.u64(),
    write: (w, v, what) => {
      if (typeof v !== 'bigint' || v < 0n || v >> 128n !== 0n) throw new OfpEncodeError(`${what}: expected a 128-bit unsigned bigint, got ${String(v)}`);
      w.u64(v >> 64n, what).u64(v & 0xffff_ffff_ffff_ffffn, what);
    },
  },
  mac: { size: 6, read: (r) => bytesToMac(r.bytes(6)), write: (w, v, what) => w.bytes(macToBytes(v, what)) },
  ipv4: { size: 4, read: (r) => bytesToIpv4(r.bytes(4)), write: (w, v, what) => w.bytes(ipv4ToBytes(v, what)) },
  ipv6: { size: 16, read: (r) => bytesToIpv6(r.bytes(16)), write: (w, v, what) => w.bytes(ipv6ToBytes(v, what)) },
};

// ---------------------------------------------------------------------------------------------
// The field table.

export interface OxmFieldDef {
  key: MatchField;
  /** Spec / OVS name, for messages. */
  name: string;
  oxmClass: number;
  field: number;
  /** Experimenter id for class 0xffff fields (written after the header, counted in its length). */
  experimenter?: number;
  kind: ValueKind;
  maskable: boolean;
  /** Largest legal value when narrower than the container (e.g. 6-bit DSCP). */
  max?: number;
  /** False for alternative encodings we decode but never emit. */
  encode: boolean;
}

const B = OFPXMC.OPENFLOW_BASIC;

function basic(key: MatchField, name: string, field: number, kind: ValueKind, maskable: boolean, max?: number): OxmFieldDef {
  return { key, name, oxmClass: B, field, kind, maskable, encode: true, ...(max === undefined ? {} : { max }) };
}

/** A Nicira NXM_1 field, which OVS takes in OF1.3 matches and set_field as it is (no OXM basic equivalent). */
function nxm1(key: MatchField, name: string, field: number, kind: ValueKind, maskable: boolean): OxmFieldDef {
  return { key, name, oxmClass: OFPXMC.NXM_1, field, kind, maskable, encode: true };
}

/** A Nicira NXM_0 header we decode (OVS uses it for a field in some actions) but never emit. */
function nxm0(key: MatchField, name: string, field: number, kind: ValueKind): OxmFieldDef {
  return { key, name, oxmClass: OFPXMC.NXM_0, field, kind, maskable: false, encode: false };
}

/**
 * In canonical prerequisite order: OVS checks each field's prerequisites against the fields
 * before it, so eth_type precedes IP fields and ip_proto precedes L4 fields.
 */
export const OXM_FIELDS: readonly OxmFieldDef[] = [
  basic('inPort', 'OXM_OF_IN_PORT', 0, 'u32', false),
  basic('inPhyPort', 'OXM_OF_IN_PHY_PORT', 1, 'u32', false),
  basic('metadata', 'OXM_OF_METADATA', 2, 'u64', true),
  // Connection tracking: no prerequisites of their own.
  nxm1('ctState', 'NXM_NX_CT_STATE', 105, 'u32', true),
  nxm1('ctZone', 'NXM_NX_CT_ZONE', 106, 'u16', false),
  nxm1('ctMark', 'NXM_NX_CT_MARK', 107, 'u32', true),
  nxm1('ctLabel', 'NXM_NX_CT_LABEL', 108, 'u128', true),
  basic('ethDst', 'OXM_OF_ETH_DST', 3, 'mac', true),
  basic('ethSrc', 'OXM_OF_ETH_SRC', 4, 'mac', true),
  basic('ethType', 'OXM_OF_ETH_TYPE', 5, 'u16', false),
  basic('vlanVid', 'OXM_OF_VLAN_VID', 6, 'u16', true, 0x1fff),
  basic('vlanPcp', 'OXM_OF_VLAN_PCP', 7, 'u8', false, 7),
  basic('ipDscp', 'OXM_OF_IP_DSCP', 8, 'u8', false, 63),
  basic('ipEcn', 'OXM_OF_IP_ECN', 9, 'u8', false, 3),
  basic('ipProto', 'OXM_OF_IP_PROTO', 10, 'u8', false),
  basic('ipv4Src', 'OXM_OF_IPV4_SRC', 11, 'ipv4', true),
  basic('ipv4Dst', 'OXM_OF_IPV4_DST', 12, 'ipv4', true),
  basic('ipv6Src', 'OXM_OF_IPV6_SRC', 26, 'ipv6', true),
  basic('ipv6Dst', 'OXM_OF_IPV6_DST', 27, 'ipv6', true),
  basic('ipv6Flabel', 'OXM_OF_IPV6_FLABEL', 28, 'u32', true, 0xfffff),
  basic('tcpSrc', 'OXM_OF_TCP_SRC', 13, 'u16', false),
  basic('tcpDst', 'OXM_OF_TCP_DST', 14, 'u16', false),
  // OVS 3.1 emits tcp_flags at OF1.3 as the ONF experimenter OXM (ONFOXM_ET_TCP_FLAGS).
  {
    key: 'tcpFlags',
    name: 'ONFOXM_ET_TCP_FLAGS',
    oxmClass: OFPXMC.EXPERIMENTER,
    field: 42,
    experimenter: ONF_VENDOR_ID,
    kind: 'u16',
    maskable: true,
    max: 0xfff,
    encode: true,
  },
  basic('udpSrc', 'OXM_OF_UDP_SRC', 15, 'u16', false),
  basic('udpDst', 'OXM_OF_UDP_DST', 16, 'u16', false),
  basic('icmpv4Type', 'OXM_OF_ICMPV4_TYPE', 19, 'u8', false),
  basic('icmpv4Code', 'OXM_OF_ICMPV4_CODE', 20, 'u8', false),
  basic('arpOp', 'OXM_OF_ARP_OP', 21, 'u16', false),
  basic('arpSpa', 'OXM_OF_ARP_SPA', 22, 'ipv4', true),
  basic('arpTpa', 'OXM_OF_ARP_TPA', 23, 'ipv4', true),
  basic('arpSha', 'OXM_OF_ARP_SHA', 24, 'mac', true),
  basic('arpTha', 'OXM_OF_ARP_THA', 25, 'mac', true),
  // ICMPv6 type before the ND fields: OVS requires icmpv6_type 135/136 ahead of nd_*.
  basic('icmpv6Type', 'OXM_OF_ICMPV6_TYPE', 29, 'u8', false),
  basic('icmpv6Code', 'OXM_OF_ICMPV6_CODE', 30, 'u8', false),
  basic('ipv6NdTarget', 'OXM_OF_IPV6_ND_TARGET', 31, 'ipv6', false),
  basic('ipv6NdSll', 'OXM_OF_IPV6_ND_SLL', 32, 'mac', false),
  basic('ipv6NdTll', 'OXM_OF_IPV6_ND_TLL', 33, 'mac', false),
  basic('ipv6Exthdr', 'OXM_OF_IPV6_EXTHDR', 39, 'u16', true, 0x1ff),
  // Decode-only: fields as OVS names them in actions it reads back (move's source and
  // destination): their Nicira NXM_0 headers.
  nxm0('ethDst', 'NXM_OF_ETH_DST', 1, 'mac'),
  nxm0('ethSrc', 'NXM_OF_ETH_SRC', 2, 'mac'),
  nxm0('ipv4Src', 'NXM_OF_IP_SRC', 7, 'ipv4'),
  nxm0('ipv4Dst', 'NXM_OF_IP_DST', 8, 'ipv4'),
  nxm0('tcpSrc', 'NXM_OF_TCP_SRC', 9, 'u16'),
  nxm0('tcpDst', 'NXM_OF_TCP_DST', 10, 'u16'),
  // Decode-only: the same field in its Nicira NXM form.
  {
    key: 'tcpFlags',
    name: 'NXM_NX_TCP_FLAGS',
    oxmClass: OFPXMC.NXM_1,
    field: 34,
    kind: 'u16',
    maskable: true,
    max: 0xfff,
    encode: false,
  },
];

const ENCODE_DEFS = new Map<MatchField, OxmFieldDef>(OXM_FIELDS.filter((d) => d.encode).map((d) => [d.key, d]));
const ENCODE_ORDER: readonly OxmFieldDef[] = OXM_FIELDS.filter((d) => d.encode);
const MATCH_KEYS = new Set<string>([...ENCODE_DEFS.keys(), 'unknownOxm']);

function lookupKey(oxmClass: number, field: number, experimenter?: number): string {
  return `${oxmClass}:${field}:${experimenter ?? ''}`;
}
const DECODE_DEFS = new Map<string, OxmFieldDef>(OXM_FIELDS.map((d) => [lookupKey(d.oxmClass, d.field, d.experimenter), d]));

export function oxmDef(key: MatchField): OxmFieldDef | undefined {
  return ENCODE_DEFS.get(key);
}

/** The field a 32-bit NXM/OXM header names (class, field number; no experimenter), for actions that name a field by header. */
export function oxmDefByHeader(header: number): OxmFieldDef | undefined {
  return DECODE_DEFS.get(lookupKey(header >>> 16, (header >>> 9) & 0x7f));
}

/** The 32-bit NXM/OXM header of a field (unmasked), as actions like output_reg name their source. */
export function oxmHeader(def: OxmFieldDef): number {
  if (def.experimenter !== undefined) throw new OfpEncodeError(`${def.name}: an experimenter field has no 32-bit header`);
  return ((def.oxmClass << 16) | (def.field << 9) | VALUE_CODECS[def.kind].size) >>> 0;
}

/** Bits in a field's value, for bit ranges into it. */
export function oxmBits(def: OxmFieldDef): number {
  return VALUE_CODECS[def.kind].size * 8;
}

function isMasked(v: unknown): v is Masked<unknown> {
  return typeof v === 'object' && v !== null && 'value' in v && 'mask' in v;
}

// ---------------------------------------------------------------------------------------------
// Encoding.

/** Write one OXM TLV for a known field. */
export function writeOxmField(w: Writer, def: OxmFieldDef, v: unknown): void {
  const codec = VALUE_CODECS[def.kind];
  const masked = isMasked(v);
  if (masked && !def.maskable) throw new OfpEncodeError(`${def.key}: OF1.3 does not allow a mask on ${def.name}`);
  const expLen = def.experimenter === undefined ? 0 : 4;
  const len = expLen + codec.size * (masked ? 2 : 1);
  w.u16(def.oxmClass).u8((def.field << 1) | (masked ? 1 : 0)).u8(len);
  if (def.experimenter !== undefined) w.u32(def.experimenter);
  if (masked) {
    const start = w.length;
    codec.write(w, v.value, def.key, def.max);
    codec.write(w, v.mask, `${def.key} mask`, def.max);
    // OF1.3 §7.2.3.5: a value bit under a 0 mask bit is an error (switches answer OFPBMC_BAD_WILDCARDS).
    const bytes = w.peek(start, 2 * codec.size);
    for (let i = 0; i < codec.size; i++) {
      if ((bytes[i]! & ~bytes[codec.size + i]!) !== 0) {
        throw new OfpEncodeError(`${def.key}: value has bits set outside the mask`);
      }
    }
  } else {
    codec.write(w, v, def.key, def.max);
  }
}

export function writeUnknownOxm(w: Writer, u: UnknownOxm): void {
  if (!u || typeof u !== 'object' || !Buffer.isBuffer(u.data)) throw new OfpEncodeError('unknownOxm: expected {oxmClass, field, hasMask, data: Buffer}');
  if (u.field > 0x7f) throw new OfpEncodeError(`unknownOxm: field ${u.field} > 127`);
  w.u16(u.oxmClass, 'unknownOxm.oxmClass').u8((u.field << 1) | (u.hasMask ? 1 : 0), 'unknownOxm.field').u8(u.data.length, 'unknownOxm length');
  w.bytes(u.data);
}

/** Write all OXM TLVs of a match in canonical order (no ofp_match header). */
export function writeOxmFields(w: Writer, match: Match): void {
  if (typeof match !== 'object' || match === null) throw new OfpEncodeError('match: expected an object');
  for (const k of Object.keys(match)) {
    // An unknown key (a typo like ipv4_dst) would silently widen the match; refuse it.
    if (!MATCH_KEYS.has(k)) throw new OfpEncodeError(`match: unknown field "${k}"`);
  }
  for (const def of ENCODE_ORDER) {
    const v = match[def.key];
    if (v !== undefined) writeOxmField(w, def, v);
  }
  for (const u of match.unknownOxm ?? []) writeUnknownOxm(w, u);
}

// ---------------------------------------------------------------------------------------------
// Decoding.

export type DecodedOxm =
  | { known: true; def: OxmFieldDef; value: unknown }
  | { known: false; unknown: UnknownOxm };

/** Read one OXM TLV. Every TLV consumes at least its 4-byte header, so loops always progress. */
export function readOxm(r: Reader): DecodedOxm {
  const start = r.offset;
  const oxmClass = r.u16('OXM class');
  const fb = r.u8('OXM field');
  const len = r.u8('OXM length');
  const field = fb >> 1;
  const hasMask = (fb & 1) === 1;
  const body = r.sub(len, `OXM ${oxmClass.toString(16)}:${field} payload`);
  let experimenter: number | undefined;
  if (oxmClass === OFPXMC.EXPERIMENTER) {
    if (len < 4) r.fail('bad_length', `experimenter OXM field ${field} shorter than its experimenter id`, start);
    experimenter = body.buf.readUInt32BE(0);
  }
  const def = DECODE_DEFS.get(lookupKey(oxmClass, field, experimenter));
  if (!def) {
    return { known: false, unknown: { oxmClass, field, hasMask, data: Buffer.from(body.buf) } };
  }
  const codec = VALUE_CODECS[def.kind];
  const expLen = def.experimenter === undefined ? 0 : 4;
  if (len !== expLen + codec.size * (hasMask ? 2 : 1)) {
    r.fail('bad_length', `${def.name}: payload length ${len} wrong for ${hasMask ? 'masked' : 'unmasked'} field`, start);
  }
  if (hasMask && !def.maskable) r.fail('bad_value', `${def.name}: mask not allowed`, start);
  body.skip(expLen);
  const value = codec.read(body);
  if (!hasMask) return { known: true, def, value };
  const mask = codec.read(body);
  return { known: true, def, value: { value, mask } };
}

/** Read OXM TLVs until the reader is exhausted, into a Match. */
export function readOxmFields(r: Reader): Match {
  const m: Record<string, unknown> = {};
  const unknown: UnknownOxm[] = [];
  while (!r.atEnd) {
    const at = r.offset;
    const o = readOxm(r);
    if (o.known) {
      if (m[o.def.key] !== undefined) r.fail('bad_value', `duplicate match field ${o.def.name}`, at);
      m[o.def.key] = o.value;
    } else {
      unknown.push(o.unknown);
    }
  }
  if (unknown.length > 0) m.unknownOxm = unknown;
  return m as Match;
}
