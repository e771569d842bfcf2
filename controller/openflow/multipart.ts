// Multipart (OFPT_MULTIPART_REQUEST / _REPLY) bodies, one table row per ofp_multipart_type.
import { OFPMP } from './constants.ts';
import { readInstructions, writeInstructions, type Instruction } from './instructions.ts';
import { readMatch, writeMatch, type Match } from './match.ts';
import { readPort, writePort, OFP_PORT_LEN, type PortDesc } from './port.ts';
import type { Reader } from './reader.ts';
import { DecodeFailure, OfpEncodeError } from './result.ts';
import type { Writer } from './writer.ts';

export interface FlowStatsRequest {
  tableId: number;
  outPort: number;
  outGroup: number;
  cookie: bigint;
  cookieMask: bigint;
  match: Match;
}

export interface FlowStats {
  tableId: number;
  durationSec: number;
  durationNsec: number;
  priority: number;
  idleTimeout: number;
  hardTimeout: number;
  flags: number;
  cookie: bigint;
  packetCount: bigint;
  byteCount: bigint;
  match: Match;
  instructions: Instruction[];
  /** Why its instructions could not be decoded (they are left empty then): the rest of the reply stands. */
  undecodable?: string;
}

export interface TableStats {
  tableId: number;
  activeCount: number;
  lookupCount: bigint;
  matchedCount: bigint;
}

export interface PortStats {
  portNo: number;
  rxPackets: bigint;
  txPackets: bigint;
  rxBytes: bigint;
  txBytes: bigint;
  rxDropped: bigint;
  txDropped: bigint;
  rxErrors: bigint;
  txErrors: bigint;
  rxFrameErr: bigint;
  rxOverErr: bigint;
  rxCrcErr: bigint;
  collisions: bigint;
  durationSec: number;
  durationNsec: number;
}

export type MultipartRequestBody =
  | { kind: 'desc' }
  | ({ kind: 'flow' } & FlowStatsRequest)
  | ({ kind: 'aggregate' } & FlowStatsRequest)
  | { kind: 'table' }
  | { kind: 'port_stats'; portNo: number }
  | { kind: 'port_desc' }
  /** Any other multipart type (table features, groups, meters, experimenter...): raw body. */
  | { kind: 'unknown'; mpType: number; data: Buffer };

export type MultipartReplyBody =
  | { kind: 'desc'; mfrDesc: string; hwDesc: string; swDesc: string; serialNum: string; dpDesc: string }
  | { kind: 'flow'; flows: FlowStats[] }
  | { kind: 'aggregate'; packetCount: bigint; byteCount: bigint; flowCount: number }
  | { kind: 'table'; tables: TableStats[] }
  | { kind: 'port_stats'; ports: PortStats[] }
  | { kind: 'port_desc'; ports: PortDesc[] }
  | { kind: 'unknown'; mpType: number; data: Buffer };

type Kind = Exclude<MultipartRequestBody['kind'], 'unknown'>;
type ReqOf<K extends Kind> = Extract<MultipartRequestBody, { kind: K }>;
type RepOf<K extends Kind> = Extract<MultipartReplyBody, { kind: K }>;

interface MultipartCodec<K extends Kind> {
  mpType: number;
  encodeRequest(w: Writer, b: ReqOf<K>): void;
  decodeRequest(r: Reader): ReqOf<K>;
  encodeReply(w: Writer, b: RepOf<K>): void;
  decodeReply(r: Reader): RepOf<K>;
}

const DESC_STR_LEN = 256;
const SERIAL_NUM_LEN = 32;

// Array bodies: repeat an element reader until the body is exhausted.
function readAll<T>(r: Reader, one: (r: Reader) => T): T[] {
  const out: T[] = [];
  while (!r.atEnd) out.push(one(r));
  return out;
}

function writeFlowStatsRequest(w: Writer, b: FlowStatsRequest): void {
  w.u8(b.tableId, 'tableId').zeros(3).u32(b.outPort, 'outPort').u32(b.outGroup, 'outGroup').zeros(4);
  w.u64(b.cookie, 'cookie').u64(b.cookieMask, 'cookieMask');
  writeMatch(w, b.match);
}

function readFlowStatsRequest(r: Reader): FlowStatsRequest {
  const tableId = r.u8('table_id');
  r.skip(3);
  const outPort = r.u32('out_port');
  const outGroup = r.u32('out_group');
  r.skip(4);
  const cookie = r.u64('cookie');
  const cookieMask = r.u64('cookie_mask');
  return { tableId, outPort, outGroup, cookie, cookieMask, match: readMatch(r) };
}

function writeFlowStats(w: Writer, f: FlowStats): void {
  const start = w.length;
  w.u16(0).u8(f.tableId, 'tableId').zeros(1).u32(f.durationSec, 'durationSec').u32(f.durationNsec, 'durationNsec');
  w.u16(f.priority, 'priority').u16(f.idleTimeout, 'idleTimeout').u16(f.hardTimeout, 'hardTimeout').u16(f.flags, 'flags').zeros(4);
  w.u64(f.cookie, 'cookie').u64(f.packetCount, 'packetCount').u64(f.byteCount, 'byteCount');
  writeMatch(w, f.match);
  writeInstructions(w, f.instructions);
  w.patchU16(start, w.length - start, 'flow stats length');
}

function readFlowStats(r: Reader): FlowStats {
  const start = r.offset;
  const length = r.u16('flow stats length');
  // 48 fixed bytes + an ofp_match of at least 8.
  if (length < 56) r.fail('bad_length', `flow stats length ${length} < 56`, start);
  const e = r.sub(length - 2, 'flow stats entry');
  const tableId = e.u8('table_id');
  e.skip(1);
  const durationSec = e.u32('duration_sec');
  const durationNsec = e.u32('duration_nsec');
  const priority = e.u16('priority');
  const idleTimeout = e.u16('idle_timeout');
  const hardTimeout = e.u16('hard_timeout');
  const flags = e.u16('flags');
  e.skip(4);
  const cookie = e.u64('cookie');
  const packetCount = e.u64('packet_count');
  const byteCount = e.u64('byte_count');
  const match = readMatch(e);
  // One flow whose actions this codec cannot read must not cost the whole reply (a switch's setup
  // reads all its flows): it is kept, with no instructions and the reason.
  let instructions: Instruction[] = [];
  let undecodable: string | undefined;
  try { instructions = readInstructions(e); } catch (x) {
    if (!(x instanceof DecodeFailure)) throw x;
    undecodable = x.message;
  }
  return { tableId, durationSec, durationNsec, priority, idleTimeout, hardTimeout, flags, cookie, packetCount, byteCount, match, instructions, ...(undecodable !== undefined && { undecodable }) };
}

const PORT_STATS_COUNTERS = [
  'rxPackets', 'txPackets', 'rxBytes', 'txBytes', 'rxDropped', 'txDropped',
  'rxErrors', 'txErrors', 'rxFrameErr', 'rxOverErr', 'rxCrcErr', 'collisions',
] as const;

function readPortStats(r: Reader): PortStats {
  const portNo = r.u32('port_no');
  r.skip(4);
  const c: Record<string, bigint> = {};
  for (const k of PORT_STATS_COUNTERS) c[k] = r.u64(k);
  return { portNo, ...(c as Record<(typeof PORT_STATS_COUNTERS)[number], bigint>), durationSec: r.u32('duration_sec'), durationNsec: r.u32('duration_nsec') };
}

function writePortStats(w: Writer, p: PortStats): void {
  w.u32(p.portNo, 'portNo').zeros(4);
  for (const k of PORT_STATS_COUNTERS) w.u64(p[k], k);
  w.u32(p.durationSec, 'durationSec').u32(p.durationNsec, 'durationNsec');
}

function emptyBody<K extends 'desc' | 'table' | 'port_desc'>(kind: K): Pick<MultipartCodec<K>, 'encodeRequest' | 'decodeRequest'> {
  return {
    encodeRequest: () => undefined,
    decodeRequest: (r) => {
      if (!r.atEnd) r.fail('bad_length', `${kind} request has a ${r.remaining}-byte body`);
      return { kind } as ReqOf<K>;
    },
  };
}

export const MULTIPART_CODECS: { [K in Kind]: MultipartCodec<K> } = {
  desc: {
    mpType: OFPMP.DESC,
    ...emptyBody('desc'),
    encodeReply: (w, b) => {
      w.fixedString(b.mfrDesc, DESC_STR_LEN, 'mfrDesc').fixedString(b.hwDesc, DESC_STR_LEN, 'hwDesc');
      w.fixedString(b.swDesc, DESC_STR_LEN, 'swDesc').fixedString(b.serialNum, SERIAL_NUM_LEN, 'serialNum');
      w.fixedString(b.dpDesc, DESC_STR_LEN, 'dpDesc');
    },
    decodeReply: (r) => ({
      kind: 'desc',
      mfrDesc: r.fixedString(DESC_STR_LEN, 'mfr_desc'),
      hwDesc: r.fixedString(DESC_STR_LEN, 'hw_desc'),
      swDesc: r.fixedString(DESC_STR_LEN, 'sw_desc'),
      serialNum: r.fixedString(SERIAL_NUM_LEN, 'serial_num'),
      dpDesc: r.fixedString(DESC_STR_LEN, 'dp_desc'),
    }),
  },
  flow: {
    mpType: OFPMP.FLOW,
    encodeRequest: (w, b) => writeFlowStatsRequest(w, b),
    decodeRequest: (r) => ({ kind: 'flow', ...readFlowStatsRequest(r) }),
    encodeReply: (w, b) => {
      for (const f of b.flows) writeFlowStats(w, f);
    },
    decodeReply: (r) => ({ kind: 'flow', flows: readAll(r, readFlowStats) }),
  },
  aggregate: {
    mpType: OFPMP.AGGREGATE,
    encodeRequest: (w, b) => writeFlowStatsRequest(w, b),
    decodeRequest: (r) => ({ kind: 'aggregate', ...readFlowStatsRequest(r) }),
    encodeReply: (w, b) => void w.u64(b.packetCount, 'packetCount').u64(b.byteCount, 'byteCount').u32(b.flowCount, 'flowCount').zeros(4),
    decodeReply: (r) => {
      const packetCount = r.u64('packet_count');
      const byteCount = r.u64('byte_count');
      const flowCount = r.u32('flow_count');
      r.skip(4);
      return { kind: 'aggregate', packetCount, byteCount, flowCount };
    },
  },
  table: {
    mpType: OFPMP.TABLE,
    ...emptyBody('table'),
    encodeReply: (w, b) => {
      for (const t of b.tables) w.u8(t.tableId, 'tableId').zeros(3).u32(t.activeCount, 'activeCount').u64(t.lookupCount, 'lookupCount').u64(t.matchedCount, 'matchedCount');
    },
    decodeReply: (r) => ({
      kind: 'table',
      tables: readAll(r, (e) => {
        const tableId = e.u8('table_id');
        e.skip(3);
        return { tableId, activeCount: e.u32('active_count'), lookupCount: e.u64('lookup_count'), matchedCount: e.u64('matched_count') };
      }),
    }),
  },
  port_stats: {
    mpType: OFPMP.PORT_STATS,
    encodeRequest: (w, b) => void w.u32(b.portNo, 'portNo').zeros(4),
    decodeRequest: (r) => {
      const portNo = r.u32('port_no');
      r.skip(4);
      return { kind: 'port_stats', portNo };
    },
    encodeReply: (w, b) => {
      for (const p of b.ports) writePortStats(w, p);
    },
    decodeReply: (r) => ({ kind: 'port_stats', ports: readAll(r, readPortStats) }),
  },
  port_desc: {
    mpType: OFPMP.PORT_DESC,
    ...emptyBody('port_desc'),
    encodeReply: (w, b) => {
      for (const p of b.ports) writePort(w, p);
    },
    decodeReply: (r) => {
      if (r.remaining % OFP_PORT_LEN !== 0) r.fail('bad_length', `port_desc body ${r.remaining} not a multiple of ${OFP_PORT_LEN}`);
      return { kind: 'port_desc', ports: readAll(r, readPort) };
    },
  },
};

type AnyCodec = MultipartCodec<never>;
const BY_KIND = MULTIPART_CODECS as unknown as Record<string, AnyCodec | undefined>;
const BY_TYPE = new Map<number, AnyCodec>(Object.values(BY_KIND).map((c) => [c!.mpType, c!]));

/** Writes the multipart header (type u16, flags u16, pad 4) and the body. */
export function writeMultipart(w: Writer, flags: number, body: MultipartRequestBody | MultipartReplyBody, reply: boolean): void {
  if (typeof body !== 'object' || body === null) throw new OfpEncodeError('multipart body: expected an object');
  if (body.kind === 'unknown') {
    w.u16(body.mpType, 'mpType').u16(flags, 'multipart flags').zeros(4).bytes(body.data, 'multipart data');
    return;
  }
  const c = BY_KIND[body.kind];
  if (!c) throw new OfpEncodeError(`multipart body: unknown kind "${String((body as { kind: unknown }).kind)}"`);
  w.u16(c.mpType).u16(flags, 'multipart flags').zeros(4);
  (reply ? c.encodeReply : c.encodeRequest)(w, body as never);
}

export function readMultipartRequest(r: Reader): { flags: number; body: MultipartRequestBody } {
  const mpType = r.u16('multipart type');
  const flags = r.u16('multipart flags');
  r.skip(4);
  const c = BY_TYPE.get(mpType);
  if (!c) return { flags, body: { kind: 'unknown', mpType, data: r.rest() } };
  const body = c.decodeRequest(r) as MultipartRequestBody;
  if (!r.atEnd) r.fail('bad_length', `multipart ${body.kind} request: ${r.remaining} trailing byte(s)`);
  return { flags, body };
}

export function readMultipartReply(r: Reader): { flags: number; body: MultipartReplyBody } {
  const mpType = r.u16('multipart type');
  const flags = r.u16('multipart flags');
  r.skip(4);
  const c = BY_TYPE.get(mpType);
  if (!c) return { flags, body: { kind: 'unknown', mpType, data: r.rest() } };
  const body = c.decodeReply(r) as MultipartReplyBody;
  if (!r.atEnd) r.fail('bad_length', `multipart ${body.kind} reply: ${r.remaining} trailing byte(s)`);
  return { flags, body };
}
