// Nicira (NX) extension actions carried in OFPAT_EXPERIMENTER with experimenter 0x00002320.
// Wire layout of every NX action: type=0xffff u16, len u16, vendor u32, subtype u16, body.
import { NX_VENDOR_ID } from './constants.ts';
import { readActions, writeActions, type Action } from './actions.ts';
import { oxmBits, oxmDef, oxmDefByHeader, oxmHeader, type MatchField } from './oxm.ts';
import type { Reader } from './reader.ts';
import { OfpEncodeError } from './result.ts';
import type { Writer } from './writer.ts';

export type NxSeqActionType = 'nx_inc_tcp_seq' | 'nx_dec_tcp_seq' | 'nx_inc_tcp_ack' | 'nx_dec_tcp_ack';

export type NiciraAction =
  | { type: NxSeqActionType; delta: number }
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
  OUTPUT_REG: 15,
  CT: 35,
  // Added by ovs-patch/ (tcp-migrate): shift TCP seq/ack numbers in the datapath.
  INC_TCP_SEQ: 80,
  DEC_TCP_SEQ: 81,
  INC_TCP_ACK: 82,
  DEC_TCP_ACK: 83,
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

const SEQ_TYPES: Record<number, NxSeqActionType> = {
  [NXAST.INC_TCP_SEQ]: 'nx_inc_tcp_seq',
  [NXAST.DEC_TCP_SEQ]: 'nx_dec_tcp_seq',
  [NXAST.INC_TCP_ACK]: 'nx_inc_tcp_ack',
  [NXAST.DEC_TCP_ACK]: 'nx_dec_tcp_ack',
};
const SEQ_SUBTYPES: Record<NxSeqActionType, number> = {
  nx_inc_tcp_seq: NXAST.INC_TCP_SEQ,
  nx_dec_tcp_seq: NXAST.DEC_TCP_SEQ,
  nx_inc_tcp_ack: NXAST.INC_TCP_ACK,
  nx_dec_tcp_ack: NXAST.DEC_TCP_ACK,
};

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

const BY_TYPE: Record<NiciraAction['type'], NxCodec> = {
  nx_inc_tcp_seq: seqCodec,
  nx_dec_tcp_seq: seqCodec,
  nx_inc_tcp_ack: seqCodec,
  nx_dec_tcp_ack: seqCodec,
  nx_resubmit: resubmitCodec,
  nx_note: noteCodec,
  nx_ct: ctCodec,
  nx_output_reg: outputRegCodec,
};
const BY_SUBTYPE = new Map<number, NxCodec>();
for (const c of [seqCodec, resubmitCodec, noteCodec, ctCodec, outputRegCodec]) for (const s of c.subtypes) BY_SUBTYPE.set(s, c);

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

