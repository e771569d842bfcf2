// Nicira (NX) extension actions carried in OFPAT_EXPERIMENTER with experimenter 0x00002320.
// Wire layout of every NX action: type=0xffff u16, len u16, vendor u32, subtype u16, body.
import { NX_VENDOR_ID } from './constants.ts';
import { readActions, writeActions, type Action } from './actions.ts';
import { bytesToIpv4, bytesToIpv6, ipv4ToBytes, ipv6ToBytes, oxmBits, oxmDef, oxmDefByHeader, oxmHeader, type MatchField, type OxmFieldDef } from './oxm.ts';
import type { Reader } from './reader.ts';
import { OfpEncodeError } from './result.ts';
import type { Writer } from './writer.ts';

export type NxSeqActionType = 'nx_inc_tcp_seq' | 'nx_dec_tcp_seq' | 'nx_inc_tcp_ack' | 'nx_dec_tcp_ack';

/** The same four actions with the delta read from a field when the switch translates the flow (ovs-patch 0008). */
export type NxSeqRegActionType = 'nx_inc_tcp_seq_reg' | 'nx_dec_tcp_seq_reg' | 'nx_inc_tcp_ack_reg' | 'nx_dec_tcp_ack_reg';

/** A bit range of a match field, as actions name their sources and destinations (`NXM_NX_CT_LABEL[32..63]`). */
export interface Subfield { field: MatchField; ofs: number; nBits: number }

export type NiciraAction =
  | { type: NxSeqActionType; delta: number }
  /** inc_tcp_seq:<field>[a..b] etc.: the delta is src's bits (at most 32), read at translation. */
  | ({ type: NxSeqRegActionType } & Subfield)
  /** move:<src>-><dst>: copies nBits bits between fields (NXAST_REG_MOVE). */
  | { type: 'nx_reg_move'; src: Subfield; dst: Subfield }
  /**
   * nat, inside ct: `kind` src or dst with an address (and port) range, or neither (apply the
   * connection's stored NAT). Addresses of one family; a range's max is omitted when it is its min.
   */
  | { type: 'nx_nat'; kind?: 'src' | 'dst'; ipMin?: string; ipMax?: string; portMin?: number; portMax?: number; persistent?: boolean; hash?: boolean; random?: boolean }
  /** resubmit(in_port, table). Without tableId: NXAST_RESUBMIT; with it: NXAST_RESUBMIT_TABLE (255 = this table). */
  | { type: 'nx_resubmit'; inPort: number; tableId?: number }
  /** note: opaque bytes the switch keeps with the flow and ignores (the wire pads them with zeros to 8). */
  | { type: 'nx_note'; data: Buffer }
  /**
   * ct: send the packet through connection tracking in `zone` (an immediate zone only); `commit`
   * stores the connection, `actions` (set_field of ctMark / ctLabel) apply to the stored entry;
   * with `table`, the packet continues in that table with its ct_* fields set (recirculation).
   */
  | { type: 'nx_ct'; zone: number; commit?: boolean; force?: boolean; table?: number; alg?: number; actions?: Action[] }
  /** output:<field>[ofs..ofs+nBits-1]: out of the port number held in a bit range of a match field. */
  | { type: 'nx_output_reg'; field: MatchField; ofs: number; nBits: number; maxLen?: number };

export const NXAST = {
  RESUBMIT: 1,
  NOTE: 8,
  RESUBMIT_TABLE: 14,
  REG_MOVE: 6,
  OUTPUT_REG: 15,
  CT: 35,
  NAT: 36,
  // Added by ovs-patch/ (tcp-migrate): shift TCP seq/ack numbers in the datapath.
  INC_TCP_SEQ: 80,
  DEC_TCP_SEQ: 81,
  INC_TCP_ACK: 82,
  DEC_TCP_ACK: 83,
  INC_TCP_SEQ_REG: 84,
  DEC_TCP_SEQ_REG: 85,
  INC_TCP_ACK_REG: 86,
  DEC_TCP_ACK_REG: 87,
} as const;

interface NxCodec {
  /** Subtypes this codec decodes. */
  subtypes: readonly number[];
  /** Total action length on the wire: fixed, computed from the action (note), or known once encoded (ct, which nests actions). */
  len: number | ((a: NiciraAction) => number) | 'encoded';
  /** Variable-length codecs accept any multiple of 8 from `minLen` (16 unless said) upwards. */
  variable?: boolean;
  minLen?: number;
  subtype(a: NiciraAction): number;
  /** Writes everything after the subtype. */
  encode(w: Writer, a: NiciraAction): void;
  /** Reads everything after the subtype (exactly len - 10 bytes). */
  decode(r: Reader, subtype: number): NiciraAction;
}

// NX actions use 16-bit OpenFlow 1.0 port numbers; reserved ports map 0xffffffxx <-> 0xffxx.
function portTo16(port: number): number {
  if (port >= 0xffffff00 && port <= 0xffffffff) return port - 0xffff0000;
  if (!Number.isInteger(port) || port < 0 || port >= 0xff00) throw new OfpEncodeError(`nx_resubmit: port ${port} not representable in 16 bits`);
  return port;
}
function portFrom16(port: number): number {
  return port >= 0xff00 ? port + 0xffff0000 : port;
}

/** subtype → action type, from a table of action type → subtype. */
function bySubtype<T extends string>(subtypes: Record<T, number>): Record<number, T> {
  return Object.fromEntries(Object.entries(subtypes).map(([t, n]) => [n, t])) as Record<number, T>;
}

const SEQ_SUBTYPES: Record<NxSeqActionType, number> = {
  nx_inc_tcp_seq: NXAST.INC_TCP_SEQ,
  nx_dec_tcp_seq: NXAST.DEC_TCP_SEQ,
  nx_inc_tcp_ack: NXAST.INC_TCP_ACK,
  nx_dec_tcp_ack: NXAST.DEC_TCP_ACK,
};
const SEQ_TYPES = bySubtype(SEQ_SUBTYPES);

const seqCodec: NxCodec = {
  subtypes: [NXAST.INC_TCP_SEQ, NXAST.DEC_TCP_SEQ, NXAST.INC_TCP_ACK, NXAST.DEC_TCP_ACK],
  len: 16,
  subtype: (a) => SEQ_SUBTYPES[a.type as NxSeqActionType],
  encode: (w, a) => {
    w.zeros(2).u32((a as { delta: number }).delta, `${a.type}.delta`);
  },
  decode: (r, subtype) => {
    r.skip(2);
    return { type: SEQ_TYPES[subtype]!, delta: r.u32('delta') };
  },
};

const resubmitCodec: NxCodec = {
  subtypes: [NXAST.RESUBMIT, NXAST.RESUBMIT_TABLE],
  len: 16,
  subtype: (a) => ((a as { tableId?: number }).tableId === undefined ? NXAST.RESUBMIT : NXAST.RESUBMIT_TABLE),
  encode: (w, a) => {
    const rs = a as { inPort: number; tableId?: number };
    w.u16(portTo16(rs.inPort), 'nx_resubmit.inPort');
    if (rs.tableId === undefined) w.zeros(4);
    else w.u8(rs.tableId, 'nx_resubmit.tableId').zeros(3);
  },
  decode: (r, subtype) => {
    const inPort = portFrom16(r.u16('in_port'));
    if (subtype === NXAST.RESUBMIT) {
      r.skip(4);
      return { type: 'nx_resubmit', inPort };
    }
    const tableId = r.u8('table');
    r.skip(3);
    return { type: 'nx_resubmit', inPort, tableId };
  },
};

const NOTE_HEADER = 10; // type, len, vendor, subtype
const noteCodec: NxCodec = {
  subtypes: [NXAST.NOTE],
  // OVS pads the note to a multiple of 8 with at least 6 bytes of payload room (16 bytes minimum).
  len: (a) => Math.max(16, Math.ceil((NOTE_HEADER + (a as { data: Buffer }).data.length) / 8) * 8),
  variable: true,
  subtype: () => NXAST.NOTE,
  encode: (w, a) => {
    const data = (a as { data: Buffer }).data;
    w.bytes(data, 'nx_note.data');
    const total = Math.max(16, Math.ceil((NOTE_HEADER + data.length) / 8) * 8);
    w.zeros(total - NOTE_HEADER - data.length);
  },
  decode: (r) => ({ type: 'nx_note', data: r.rest() }),
};

// NX_CT_F_*; NX_CT_RECIRC_NONE.
const CT_COMMIT = 1;
const CT_FORCE = 2;
const CT_NO_TABLE = 0xff;
const CT_FIXED = 24;

type NxCt = Extract<NiciraAction, { type: 'nx_ct' }>;
const ctCodec: NxCodec = {
  subtypes: [NXAST.CT],
  len: 'encoded',
  variable: true,
  minLen: CT_FIXED,
  subtype: () => NXAST.CT,
  encode: (w, a) => {
    const ct = a as NxCt;
    if (ct.table !== undefined && (!Number.isInteger(ct.table) || ct.table < 0 || ct.table >= CT_NO_TABLE)) throw new OfpEncodeError(`nx_ct.table: ${ct.table} is not a table (0..254)`);
    // zone_src 0: zone is an immediate value.
    w.u16((ct.commit ? CT_COMMIT : 0) | (ct.force ? CT_FORCE : 0)).u32(0).u16(ct.zone, 'nx_ct.zone');
    w.u8(ct.table ?? CT_NO_TABLE).zeros(3).u16(ct.alg ?? 0, 'nx_ct.alg');
    writeActions(w, ct.actions ?? []);
  },
  decode: (r) => {
    const flags = r.u16('ct flags');
    const zoneSrc = r.u32('ct zone_src');
    if (zoneSrc !== 0) r.fail('bad_value', 'ct: a zone taken from a field is not supported');
    const zone = r.u16('ct zone');
    const table = r.u8('ct recirc_table');
    r.skip(3);
    const alg = r.u16('ct alg');
    const actions = readActions(r);
    return {
      type: 'nx_ct', zone, ...(flags & CT_COMMIT ? { commit: true } : {}), ...(flags & CT_FORCE ? { force: true } : {}),
      ...(table !== CT_NO_TABLE ? { table } : {}), ...(alg ? { alg } : {}), ...(actions.length ? { actions } : {}),
    };
  },
};

type NxOutputReg = Extract<NiciraAction, { type: 'nx_output_reg' }>;
const outputRegCodec: NxCodec = {
  subtypes: [NXAST.OUTPUT_REG],
  len: 24,
  subtype: () => NXAST.OUTPUT_REG,
  encode: (w, a) => {
    const o = a as NxOutputReg;
    const def = oxmDef(o.field);
    if (!def) throw new OfpEncodeError(`nx_output_reg: unknown field "${o.field}"`);
    // A port number is at most 16 bits wide here (OpenFlow 1.0 ports), and the range must lie in the field.
    if (!Number.isInteger(o.nBits) || o.nBits < 1 || o.nBits > 16 || !Number.isInteger(o.ofs) || o.ofs < 0 || o.ofs + o.nBits > oxmBits(def)) {
      throw new OfpEncodeError(`nx_output_reg: bits ${o.ofs}..${o.ofs + o.nBits - 1} of ${def.name} are not a port number`);
    }
    w.u16((o.ofs << 6) | (o.nBits - 1)).u32(oxmHeader(def)).u16(o.maxLen ?? 0, 'nx_output_reg.maxLen').zeros(6);
  },
  decode: (r) => {
    const ofsNbits = r.u16('output_reg ofs_nbits');
    const header = r.u32('output_reg src');
    const maxLen = r.u16('output_reg max_len');
    r.skip(6);
    const def = oxmDefByHeader(header);
    if (!def) r.fail('bad_value', `output_reg: unknown source field 0x${header.toString(16)}`);
    return { type: 'nx_output_reg', field: def!.key, ofs: ofsNbits >> 6, nBits: (ofsNbits & 0x3f) + 1, ...(maxLen ? { maxLen } : {}) };
  },
};

/** A subfield's definition, checked to lie within its field and to be at most `maxBits` wide. */
function subfieldDef(what: string, sf: Subfield, maxBits: number): OxmFieldDef {
  const def = oxmDef(sf.field);
  if (!def) throw new OfpEncodeError(`${what}: unknown field "${sf.field}"`);
  if (!Number.isInteger(sf.nBits) || sf.nBits < 1 || sf.nBits > maxBits || !Number.isInteger(sf.ofs) || sf.ofs < 0 || sf.ofs + sf.nBits > oxmBits(def)) {
    throw new OfpEncodeError(`${what}: bits ${sf.ofs}..${sf.ofs + sf.nBits - 1} of ${def.name} are not a range of at most ${maxBits} bits in it`);
  }
  return def;
}

function fieldByHeader(r: Reader, what: string, header: number): MatchField {
  const def = oxmDefByHeader(header);
  if (!def) r.fail('bad_value', `${what}: unknown field 0x${header.toString(16)}`);
  return def!.key;
}

const SEQ_REG_SUBTYPES: Record<NxSeqRegActionType, number> = {
  nx_inc_tcp_seq_reg: NXAST.INC_TCP_SEQ_REG,
  nx_dec_tcp_seq_reg: NXAST.DEC_TCP_SEQ_REG,
  nx_inc_tcp_ack_reg: NXAST.INC_TCP_ACK_REG,
  nx_dec_tcp_ack_reg: NXAST.DEC_TCP_ACK_REG,
};
const SEQ_REG_TYPES = bySubtype(SEQ_REG_SUBTYPES);

// ofs_nbits (ofs << 6 | nBits - 1), the source's NXM header, 8 zero bytes: laid out like NXAST_OUTPUT_REG.
const seqRegCodec: NxCodec = {
  subtypes: Object.values(SEQ_REG_SUBTYPES),
  len: 24,
  subtype: (a) => SEQ_REG_SUBTYPES[a.type as NxSeqRegActionType],
  encode: (w, a) => {
    const sf = a as Subfield & { type: string };
    const def = subfieldDef(a.type, sf, 32);
    w.u16((sf.ofs << 6) | (sf.nBits - 1)).u32(oxmHeader(def)).zeros(8);
  },
  decode: (r, subtype) => {
    const ofsNbits = r.u16('tcp shift ofs_nbits');
    const field = fieldByHeader(r, 'tcp shift source', r.u32('tcp shift src'));
    if (!r.bytes(8, 'tcp shift zero').every((b) => b === 0)) r.fail('bad_value', 'tcp shift: reserved bytes must be zero');
    const nBits = (ofsNbits & 0x3f) + 1;
    if (nBits > 32) r.fail('bad_value', `tcp shift: a ${nBits}-bit source is wider than 32 bits`);
    return { type: SEQ_REG_TYPES[subtype]!, field, ofs: ofsNbits >> 6, nBits };
  },
};

type NxRegMove = Extract<NiciraAction, { type: 'nx_reg_move' }>;
// n_bits, src_ofs, dst_ofs, the source's and the destination's 4-byte headers.
const regMoveCodec: NxCodec = {
  subtypes: [NXAST.REG_MOVE],
  len: 24,
  subtype: () => NXAST.REG_MOVE,
  encode: (w, a) => {
    const m = a as NxRegMove;
    if (m.src.nBits !== m.dst.nBits) throw new OfpEncodeError(`nx_reg_move: ${m.src.nBits} source bits into ${m.dst.nBits} destination bits`);
    const src = subfieldDef('nx_reg_move source', m.src, 128);
    const dst = subfieldDef('nx_reg_move destination', m.dst, 128);
    w.u16(m.src.nBits).u16(m.src.ofs).u16(m.dst.ofs).u32(oxmHeader(src)).u32(oxmHeader(dst));
  },
  decode: (r) => {
    const nBits = r.u16('move n_bits');
    const srcOfs = r.u16('move src_ofs');
    const dstOfs = r.u16('move dst_ofs');
    const src = fieldByHeader(r, 'move source', r.u32('move src'));
    const dst = fieldByHeader(r, 'move destination', r.u32('move dst'));
    return { type: 'nx_reg_move', src: { field: src, ofs: srcOfs, nBits }, dst: { field: dst, ofs: dstOfs, nBits } };
  },
};

// NX_NAT_F_* and NX_NAT_RANGE_*.
const NAT_F = { src: 1, dst: 2, persistent: 4, hash: 8, random: 16 } as const;
const NAT_RANGE = { ipv4Min: 1, ipv4Max: 2, ipv6Min: 4, ipv6Max: 8, protoMin: 16, protoMax: 32 } as const;
const NAT_FIXED = 16;

type NxNat = Extract<NiciraAction, { type: 'nx_nat' }>;
function natBody(n: NxNat): { flags: number; present: number; body: Buffer[] } {
  const flags = (n.kind ? NAT_F[n.kind] : 0) | (n.persistent ? NAT_F.persistent : 0) | (n.hash ? NAT_F.hash : 0) | (n.random ? NAT_F.random : 0);
  const body: Buffer[] = [];
  let present = 0;
  if ((n.ipMin !== undefined || n.portMin !== undefined) && !n.kind) throw new OfpEncodeError('nx_nat: a range needs kind src or dst');
  if (n.ipMin !== undefined) {
    const v6 = n.ipMin.includes(':');
    const enc = (ip: string, what: string): Buffer => (v6 ? ipv6ToBytes(ip, what) : ipv4ToBytes(ip, what));
    body.push(enc(n.ipMin, 'nx_nat.ipMin'));
    present |= v6 ? NAT_RANGE.ipv6Min : NAT_RANGE.ipv4Min;
    if (n.ipMax !== undefined && n.ipMax !== n.ipMin) {
      if (n.ipMax.includes(':') !== v6) throw new OfpEncodeError('nx_nat: ipMin and ipMax are of different families');
      body.push(enc(n.ipMax, 'nx_nat.ipMax'));
      present |= v6 ? NAT_RANGE.ipv6Max : NAT_RANGE.ipv4Max;
    }
  } else if (n.ipMax !== undefined) throw new OfpEncodeError('nx_nat: ipMax without ipMin');
  if (n.portMin !== undefined) {
    if (n.ipMin === undefined) throw new OfpEncodeError('nx_nat: a port range needs an address');
    const port = (p: number, what: string): Buffer => { if (!Number.isInteger(p) || p < 1 || p > 0xffff) throw new OfpEncodeError(`${what}: ${p} is not a port`); const b = Buffer.alloc(2); b.writeUInt16BE(p); return b; };
    body.push(port(n.portMin, 'nx_nat.portMin'));
    present |= NAT_RANGE.protoMin;
    if (n.portMax !== undefined && n.portMax !== n.portMin) { body.push(port(n.portMax, 'nx_nat.portMax')); present |= NAT_RANGE.protoMax; }
  }
  return { flags, present, body };
}

const natCodec: NxCodec = {
  subtypes: [NXAST.NAT],
  // Sized by what it encodes (the ranges present, padded to 8), not by encoding it twice.
  len: 'encoded',
  variable: true,
  subtype: () => NXAST.NAT,
  encode: (w, a) => {
    const { flags, present, body } = natBody(a as NxNat);
    w.zeros(2).u16(flags).u16(present);
    let size = 0;
    for (const b of body) { w.bytes(b); size += b.length; }
    w.zeros(Math.ceil((NAT_FIXED + size) / 8) * 8 - NAT_FIXED - size);
  },
  decode: (r) => {
    r.skip(2);
    const flags = r.u16('nat flags');
    const present = r.u16('nat range_present');
    if (flags & NAT_F.src && flags & NAT_F.dst) r.fail('bad_value', 'nat: both src and dst');
    const out: NxNat = { type: 'nx_nat' };
    if (flags & NAT_F.src) out.kind = 'src';
    if (flags & NAT_F.dst) out.kind = 'dst';
    if (flags & NAT_F.persistent) out.persistent = true;
    if (flags & NAT_F.hash) out.hash = true;
    if (flags & NAT_F.random) out.random = true;
    if (present & NAT_RANGE.ipv4Min) out.ipMin = bytesToIpv4(r.bytes(4, 'nat ipv4 min'));
    if (present & NAT_RANGE.ipv4Max) out.ipMax = bytesToIpv4(r.bytes(4, 'nat ipv4 max'));
    if (present & NAT_RANGE.ipv6Min) out.ipMin = bytesToIpv6(r.bytes(16, 'nat ipv6 min'));
    if (present & NAT_RANGE.ipv6Max) out.ipMax = bytesToIpv6(r.bytes(16, 'nat ipv6 max'));
    if (present & NAT_RANGE.protoMin) out.portMin = r.u16('nat proto min');
    if (present & NAT_RANGE.protoMax) out.portMax = r.u16('nat proto max');
    // The rest is padding to 8.
    r.rest();
    return out;
  },
};

const BY_TYPE: Record<NiciraAction['type'], NxCodec> = {
  nx_inc_tcp_seq: seqCodec,
  nx_dec_tcp_seq: seqCodec,
  nx_inc_tcp_ack: seqCodec,
  nx_dec_tcp_ack: seqCodec,
  nx_resubmit: resubmitCodec,
  nx_note: noteCodec,
  nx_ct: ctCodec,
  nx_output_reg: outputRegCodec,
  nx_inc_tcp_seq_reg: seqRegCodec,
  nx_dec_tcp_seq_reg: seqRegCodec,
  nx_inc_tcp_ack_reg: seqRegCodec,
  nx_dec_tcp_ack_reg: seqRegCodec,
  nx_reg_move: regMoveCodec,
  nx_nat: natCodec,
};
const BY_SUBTYPE = new Map<number, NxCodec>();
for (const c of [seqCodec, resubmitCodec, noteCodec, ctCodec, outputRegCodec, seqRegCodec, regMoveCodec, natCodec]) for (const s of c.subtypes) BY_SUBTYPE.set(s, c);

export function isNiciraAction(a: { type: string }): a is NiciraAction {
  return Object.prototype.hasOwnProperty.call(BY_TYPE, a.type);
}

/** Writes the whole NX action including the OFPAT_EXPERIMENTER header. */
export function writeNiciraAction(w: Writer, a: NiciraAction): void {
  const c = BY_TYPE[a.type];
  const start = w.length;
  if (c.len === 'encoded') {
    // Nested actions are multiples of 8 and the fixed part is 24 bytes: the length is what was written.
    w.u16(0xffff).u16(0).u32(NX_VENDOR_ID).u16(c.subtype(a));
    c.encode(w, a);
    const len = w.length - start;
    if (len > 0xfff8 || len % 8 !== 0) throw new OfpEncodeError(`${a.type}: ${len} bytes is not a valid action length`);
    w.patchU16(start + 2, len, `${a.type} length`);
    return;
  }
  const len = typeof c.len === 'number' ? c.len : c.len(a);
  if (len > 0xfff8) throw new OfpEncodeError(`${a.type}: ${len} bytes is too long for an action`);
  w.u16(0xffff).u16(len).u32(NX_VENDOR_ID).u16(c.subtype(a));
  c.encode(w, a);
  if (w.length - start !== len) throw new OfpEncodeError(`${a.type}: encoded ${w.length - start} bytes, expected ${len}`);
}

/**
 * Decodes an NX action given a reader over the bytes after the experimenter id, or returns
 * undefined for subtypes we do not know (the caller keeps them as a generic experimenter action).
 */
export function readNiciraAction(body: Reader, totalLen: number): NiciraAction | undefined {
  if (body.remaining < 2) return undefined;
  const subtype = body.peekU16(0, 'NX subtype');
  const c = BY_SUBTYPE.get(subtype);
  if (!c) return undefined;
  const minLen = c.minLen ?? 16;
  if (c.variable ? totalLen < minLen : totalLen !== c.len) body.fail('bad_length', `NX action subtype ${subtype}: length ${totalLen}, expected ${c.variable ? `at least ${minLen}` : c.len}`);
  body.skip(2);
  return c.decode(body, subtype);
}

const TWO32 = 0x1_0000_0000;

/**
 * The action that adds `delta` (mod 2^32) to the TCP seq or ack number, as inc or dec by
 * whichever of d and 2^32 - d is smaller (both are the same arithmetic); 0 gives inc 0.
 */
export function seqShiftAction(kind: 'seq' | 'ack', delta: number): NiciraAction {
  if (!Number.isSafeInteger(delta)) throw new OfpEncodeError(`seqShiftAction: delta must be an integer, got ${delta}`);
  const d = ((delta % TWO32) + TWO32) % TWO32;
  const inc = d <= TWO32 - d;
  const type: NxSeqActionType =
    kind === 'seq' ? (inc ? 'nx_inc_tcp_seq' : 'nx_dec_tcp_seq') : inc ? 'nx_inc_tcp_ack' : 'nx_dec_tcp_ack';
  return { type, delta: inc ? d : TWO32 - d };
}

