// Nicira (NX) extension actions carried in OFPAT_EXPERIMENTER with experimenter 0x00002320.
// Wire layout of every NX action: type=0xffff u16, len u16, vendor u32, subtype u16, body.
import { NX_VENDOR_ID } from './constants.ts';
import type { Reader } from './reader.ts';
import { OfpEncodeError } from './result.ts';
import type { Writer } from './writer.ts';

export type NxSeqActionType = 'nx_inc_tcp_seq' | 'nx_dec_tcp_seq' | 'nx_inc_tcp_ack' | 'nx_dec_tcp_ack';

export type NiciraAction =
  | { type: NxSeqActionType; delta: number }
  /** resubmit(in_port, table). Without tableId: NXAST_RESUBMIT; with it: NXAST_RESUBMIT_TABLE (255 = this table). */
  | { type: 'nx_resubmit'; inPort: number; tableId?: number }
  /** note: opaque bytes the switch keeps with the flow and ignores (the wire pads them with zeros to 8). */
  | { type: 'nx_note'; data: Buffer };

export const NXAST = {
  RESUBMIT: 1,
  NOTE: 8,
  RESUBMIT_TABLE: 14,
  // Added by ovs-patch/ (tcp-migrate): shift TCP seq/ack numbers in the datapath.
  INC_TCP_SEQ: 80,
  DEC_TCP_SEQ: 81,
  INC_TCP_ACK: 82,
  DEC_TCP_ACK: 83,
} as const;

interface NxCodec {
  /** Subtypes this codec decodes. */
  subtypes: readonly number[];
  /** Total action length on the wire: fixed, or computed from the action (note). */
  len: number | ((a: NiciraAction) => number);
  /** Variable-length codecs accept any multiple of 8 from `len` of an empty action upwards. */
  variable?: boolean;
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

const BY_TYPE: Record<NiciraAction['type'], NxCodec> = {
  nx_inc_tcp_seq: seqCodec,
  nx_dec_tcp_seq: seqCodec,
  nx_inc_tcp_ack: seqCodec,
  nx_dec_tcp_ack: seqCodec,
  nx_resubmit: resubmitCodec,
  nx_note: noteCodec,
};
const BY_SUBTYPE = new Map<number, NxCodec>();
for (const c of [seqCodec, resubmitCodec, noteCodec]) for (const s of c.subtypes) BY_SUBTYPE.set(s, c);

export function isNiciraAction(a: { type: string }): a is NiciraAction {
  return Object.prototype.hasOwnProperty.call(BY_TYPE, a.type);
}

/** Writes the whole NX action including the OFPAT_EXPERIMENTER header. */
export function writeNiciraAction(w: Writer, a: NiciraAction): void {
  const c = BY_TYPE[a.type];
  const len = typeof c.len === 'number' ? c.len : c.len(a);
  if (len > 0xfff8) throw new OfpEncodeError(`${a.type}: ${len} bytes is too long for an action`);
  const start = w.length;
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
  if (c.variable ? totalLen < 16 : totalLen !== c.len) body.fail('bad_length', `NX action subtype ${subtype}: length ${totalLen}, expected ${c.variable ? 'at least 16' : c.len}`);
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

