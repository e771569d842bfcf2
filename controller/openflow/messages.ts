// OpenFlow 1.3 messages: the OfpMessage union and one table row per message type, each with
// its encoder and decoder side by side (the layout of Ryu's ofproto_v1_3_parser, typed).
import { readActions, writeActions, type Action } from './actions.ts';
import {
  OFP_HEADER_LEN, OFP_NO_BUFFER, OFP_VERSION, OFPET, OFPFC, OFPG, OFPHET, OFPP, OFPT,
} from './constants.ts';
import { readInstructions, writeInstructions, type Instruction } from './instructions.ts';
import { readMatch, writeMatch, type Match } from './match.ts';
import {
  readMultipartReply, readMultipartRequest, writeMultipart, type MultipartReplyBody, type MultipartRequestBody,
} from './multipart.ts';
import { readPort, writePort, type PortDesc } from './port.ts';
import { Reader } from './reader.ts';
import { guard, OfpEncodeError, type Result } from './result.ts';
import { Writer } from './writer.ts';

export type FlowModCommand = 'add' | 'modify' | 'modify_strict' | 'delete' | 'delete_strict';

export interface FlowMod {
  type: 'flow_mod';
  xid: number;
  cookie: bigint;
  cookieMask: bigint;
  tableId: number;
  command: FlowModCommand;
  idleTimeout: number;
  hardTimeout: number;
  priority: number;
  bufferId: number;
  outPort: number;
  outGroup: number;
  flags: number;
  match: Match;
  instructions: Instruction[];
}

export interface PacketIn {
  type: 'packet_in';
  xid: number;
  bufferId: number;
  totalLen: number;
  reason: number;
  tableId: number;
  cookie: bigint;
  match: Match;
  data: Buffer;
}

export interface PacketOut {
  type: 'packet_out';
  xid: number;
  bufferId: number;
  inPort: number;
  actions: Action[];
  data: Buffer;
}

export interface FlowRemoved {
  type: 'flow_removed';
  xid: number;
  cookie: bigint;
  priority: number;
  reason: number;
  tableId: number;
  durationSec: number;
  durationNsec: number;
  idleTimeout: number;
  hardTimeout: number;
  packetCount: bigint;
  byteCount: bigint;
  match: Match;
}

export interface FeaturesReply {
  type: 'features_reply';
  xid: number;
  datapathId: bigint;
  nBuffers: number;
  nTables: number;
  auxiliaryId: number;
  capabilities: number;
}

export type OfpMessage =
  /** versions: the version-bitmap element (absent when the peer sent none). */
  | { type: 'hello'; xid: number; versions?: number[] }
  /** For errType OFPET_EXPERIMENTER (0xffff), code is exp_type and `experimenter` is set. */
  | { type: 'error'; xid: number; errType: number; code: number; data: Buffer; experimenter?: number }
  | { type: 'echo_request'; xid: number; data: Buffer }
  | { type: 'echo_reply'; xid: number; data: Buffer }
  | { type: 'experimenter'; xid: number; experimenter: number; expType: number; data: Buffer }
  | { type: 'features_request'; xid: number }
  | FeaturesReply
  | { type: 'get_config_request'; xid: number }
  | { type: 'get_config_reply'; xid: number; flags: number; missSendLen: number }
  | { type: 'set_config'; xid: number; flags: number; missSendLen: number }
  | PacketIn
  | FlowRemoved
  | { type: 'port_status'; xid: number; reason: number; port: PortDesc }
  | PacketOut
  | FlowMod
  | { type: 'barrier_request'; xid: number }
  | { type: 'barrier_reply'; xid: number }
  | { type: 'multipart_request'; xid: number; flags: number; body: MultipartRequestBody }
  | { type: 'multipart_reply'; xid: number; flags: number; body: MultipartReplyBody }
  | { type: 'role_request'; xid: number; role: number; generationId: bigint }
  | { type: 'role_reply'; xid: number; role: number; generationId: bigint }
  /** Any message type we do not model (group_mod, meter_mod, ...): header fields and raw body. */
  | { type: 'unknown'; xid: number; msgType: number; body: Buffer };

export type OfpMessageType = OfpMessage['type'];
export type MessageOf<T extends OfpMessageType> = Extract<OfpMessage, { type: T }>;
type KnownType = Exclude<OfpMessageType, 'unknown'>;

interface MessageCodec<T extends KnownType> {
  code: number;
  /** Writes the body after the 8-byte header. */
  encode(w: Writer, m: MessageOf<T>): void;
  /** Reads the body (a reader over exactly header.length - 8 bytes). */
  decode(r: Reader, xid: number): MessageOf<T>;
}

function headerOnly<T extends KnownType>(type: T, code: number): MessageCodec<T> {
  return {
    code,
    encode: () => undefined,
    decode: (_r, xid) => ({ type, xid }) as MessageOf<T>,
  };
}

function dataOnly<T extends 'echo_request' | 'echo_reply'>(type: T, code: number): MessageCodec<T> {
  return {
    code,
    encode: (w, m) => void w.bytes((m as { data?: Buffer }).data ?? Buffer.alloc(0), `${type}.data`),
    decode: (r, xid) => ({ type, xid, data: r.rest() }) as MessageOf<T>,
  };
}

function switchConfig<T extends 'get_config_reply' | 'set_config'>(type: T, code: number): MessageCodec<T> {
  return {
    code,
    encode: (w, m) => {
      const c = m as { flags: number; missSendLen: number };
      w.u16(c.flags, 'flags').u16(c.missSendLen, 'missSendLen');
    },
    decode: (r, xid) => ({ type, xid, flags: r.u16('flags'), missSendLen: r.u16('miss_send_len') }) as MessageOf<T>,
  };
}

function role<T extends 'role_request' | 'role_reply'>(type: T, code: number): MessageCodec<T> {
  return {
    code,
    encode: (w, m) => {
      const c = m as { role: number; generationId: bigint };
      w.u32(c.role, 'role').zeros(4).u64(c.generationId, 'generationId');
    },
    decode: (r, xid) => {
      const roleValue = r.u32('role');
      r.skip(4);
      return { type, xid, role: roleValue, generationId: r.u64('generation_id') } as MessageOf<T>;
    },
  };
}

const FLOW_MOD_COMMANDS: Record<FlowModCommand, number> = {
  add: OFPFC.ADD,
  modify: OFPFC.MODIFY,
  modify_strict: OFPFC.MODIFY_STRICT,
  delete: OFPFC.DELETE,
  delete_strict: OFPFC.DELETE_STRICT,
};
const FLOW_MOD_COMMAND_NAMES = new Map<number, FlowModCommand>(
  Object.entries(FLOW_MOD_COMMANDS).map(([k, v]) => [v, k as FlowModCommand]),
);

/** Versions from a version-bitmap element: bit i of word j means version 32*j + i. */
function versionsToBitmap(versions: readonly number[]): number[] {
  const words: number[] = [];
  for (const v of versions) {
    if (!Number.isInteger(v) || v < 0 || v > 0x7f) throw new OfpEncodeError(`hello: bad version ${v}`);
    const j = v >> 5;
    while (words.length <= j) words.push(0);
    words[j] = (words[j]! | (1 << (v & 31))) >>> 0;
  }
  return words;
}

export const MESSAGE_CODECS: { [T in KnownType]: MessageCodec<T> } = {
  hello: {
    code: OFPT.HELLO,
    encode: (w, m) => {
      if (m.versions === undefined) return;
      if (!Array.isArray(m.versions) || m.versions.length === 0) throw new OfpEncodeError('hello: versions must be a non-empty array');
      const words = versionsToBitmap(m.versions);
      const start = w.length;
      w.u16(OFPHET.VERSIONBITMAP).u16(4 + 4 * words.length);
      for (const word of words) w.u32(word);
      w.padTo(start, 8);
    },
    decode: (r, xid) => {
      let versions: number[] | undefined;
      while (!r.atEnd) {
        const at = r.offset;
        const type = r.u16('hello element type');
        const len = r.u16('hello element length');
        if (len < 4) r.fail('bad_length', `hello element length ${len} < 4`, at + 2);
        const body = r.sub(len - 4, 'hello element');
        // Elements are padded to 8 bytes; tolerate a missing pad on the last one.
        r.skip(Math.min(((len + 7) & ~7) - len, r.remaining));
        if (type !== OFPHET.VERSIONBITMAP) continue; // unknown elements are ignored (spec)
        if (body.remaining % 4 !== 0) r.fail('bad_length', `version bitmap length ${len - 4} not a multiple of 4`, at + 2);
        versions = [];
        for (let j = 0; !body.atEnd; j++) {
          const word = body.u32('bitmap');
          for (let i = 0; i < 32; i++) if ((word >>> i) & 1) versions.push(32 * j + i);
        }
      }
      return versions === undefined ? { type: 'hello', xid } : { type: 'hello', xid, versions };
    },
  },
  error: {
    code: OFPT.ERROR,
    encode: (w, m) => {
      w.u16(m.errType, 'errType').u16(m.code, 'code');
      if (m.errType === OFPET.EXPERIMENTER) w.u32(m.experimenter ?? 0, 'experimenter');
      w.bytes(m.data ?? Buffer.alloc(0), 'error data');
    },
    decode: (r, xid) => {
      const errType = r.u16('error type');
      const code = r.u16('error code');
      if (errType === OFPET.EXPERIMENTER) {
        const experimenter = r.u32('experimenter');
        return { type: 'error', xid, errType, code, experimenter, data: r.rest() };
      }
      return { type: 'error', xid, errType, code, data: r.rest() };
    },
  },
  echo_request: dataOnly('echo_request', OFPT.ECHO_REQUEST),
  echo_reply: dataOnly('echo_reply', OFPT.ECHO_REPLY),
  experimenter: {
    code: OFPT.EXPERIMENTER,
    encode: (w, m) => void w.u32(m.experimenter, 'experimenter').u32(m.expType, 'expType').bytes(m.data, 'data'),
    decode: (r, xid) => ({ type: 'experimenter', xid, experimenter: r.u32('experimenter'), expType: r.u32('exp_type'), data: r.rest() }),
  },
  features_request: headerOnly('features_request', OFPT.FEATURES_REQUEST),
  features_reply: {
    code: OFPT.FEATURES_REPLY,
    encode: (w, m) => {
      w.u64(m.datapathId, 'datapathId').u32(m.nBuffers, 'nBuffers').u8(m.nTables, 'nTables').u8(m.auxiliaryId, 'auxiliaryId');
      w.zeros(2).u32(m.capabilities, 'capabilities').zeros(4);
    },
    decode: (r, xid) => {
      const datapathId = r.u64('datapath_id');
      const nBuffers = r.u32('n_buffers');
      const nTables = r.u8('n_tables');
      const auxiliaryId = r.u8('auxiliary_id');
      r.skip(2);
      const capabilities = r.u32('capabilities');
      r.skip(4, 'reserved');
      return { type: 'features_reply', xid, datapathId, nBuffers, nTables, auxiliaryId, capabilities };
    },
  },
  get_config_request: headerOnly('get_config_request', OFPT.GET_CONFIG_REQUEST),
  get_config_reply: switchConfig('get_config_reply', OFPT.GET_CONFIG_REPLY),
  set_config: switchConfig('set_config', OFPT.SET_CONFIG),
  packet_in: {
    code: OFPT.PACKET_IN,
    encode: (w, m) => {
      w.u32(m.bufferId, 'bufferId').u16(m.totalLen, 'totalLen').u8(m.reason, 'reason').u8(m.tableId, 'tableId').u64(m.cookie, 'cookie');
      writeMatch(w, m.match);
      w.zeros(2).bytes(m.data, 'packet_in data');
    },
    decode: (r, xid) => {
      const bufferId = r.u32('buffer_id');
      const totalLen = r.u16('total_len');
      const reason = r.u8('reason');
      const tableId = r.u8('table_id');
      const cookie = r.u64('cookie');
      const match = readMatch(r);
      r.skip(2);
      return { type: 'packet_in', xid, bufferId, totalLen, reason, tableId, cookie, match, data: r.rest() };
    },
  },
  flow_removed: {
    code: OFPT.FLOW_REMOVED,
    encode: (w, m) => {
      w.u64(m.cookie, 'cookie').u16(m.priority, 'priority').u8(m.reason, 'reason').u8(m.tableId, 'tableId');
      w.u32(m.durationSec, 'durationSec').u32(m.durationNsec, 'durationNsec');
      w.u16(m.idleTimeout, 'idleTimeout').u16(m.hardTimeout, 'hardTimeout');
      w.u64(m.packetCount, 'packetCount').u64(m.byteCount, 'byteCount');
      writeMatch(w, m.match);
    },
    decode: (r, xid) => ({
      type: 'flow_removed',
      xid,
      cookie: r.u64('cookie'),
      priority: r.u16('priority'),
      reason: r.u8('reason'),
      tableId: r.u8('table_id'),
      durationSec: r.u32('duration_sec'),
      durationNsec: r.u32('duration_nsec'),
      idleTimeout: r.u16('idle_timeout'),
      hardTimeout: r.u16('hard_timeout'),
      packetCount: r.u64('packet_count'),
      byteCount: r.u64('byte_count'),
      match: readMatch(r),
    }),
  },
  port_status: {
    code: OFPT.PORT_STATUS,
    encode: (w, m) => {
      w.u8(m.reason, 'reason').zeros(7);
      writePort(w, m.port);
    },
    decode: (r, xid) => {
      const reason = r.u8('reason');
      r.skip(7);
      return { type: 'port_status', xid, reason, port: readPort(r) };
    },
  },
  packet_out: {
    code: OFPT.PACKET_OUT,
    encode: (w, m) => {
      w.u32(m.bufferId, 'bufferId').u32(m.inPort, 'inPort');
      const lenAt = w.length;
      w.u16(0).zeros(6);
      const start = w.length;
      writeActions(w, m.actions);
      w.patchU16(lenAt, w.length - start, 'actions_len');
      w.bytes(m.data ?? Buffer.alloc(0), 'packet_out data');
    },
    decode: (r, xid) => {
      const bufferId = r.u32('buffer_id');
      const inPort = r.u32('in_port');
      const actionsLen = r.u16('actions_len');
      r.skip(6);
      const actions = readActions(r.sub(actionsLen, 'packet_out actions'));
      return { type: 'packet_out', xid, bufferId, inPort, actions, data: r.rest() };
    },
  },
  flow_mod: {
    code: OFPT.FLOW_MOD,
    encode: (w, m) => {
      const command = FLOW_MOD_COMMANDS[m.command];
      if (command === undefined) throw new OfpEncodeError(`flow_mod: unknown command "${String(m.command)}"`);
      w.u64(m.cookie, 'cookie').u64(m.cookieMask, 'cookieMask').u8(m.tableId, 'tableId').u8(command);
      w.u16(m.idleTimeout, 'idleTimeout').u16(m.hardTimeout, 'hardTimeout').u16(m.priority, 'priority');
      w.u32(m.bufferId, 'bufferId').u32(m.outPort, 'outPort').u32(m.outGroup, 'outGroup').u16(m.flags, 'flags').zeros(2);
      writeMatch(w, m.match);
      writeInstructions(w, m.instructions);
    },
    decode: (r, xid) => {
      const cookie = r.u64('cookie');
      const cookieMask = r.u64('cookie_mask');
      const tableId = r.u8('table_id');
      const commandAt = r.offset;
      const commandNo = r.u8('command');
      const command = FLOW_MOD_COMMAND_NAMES.get(commandNo);
      if (command === undefined) return r.fail('bad_value', `flow_mod: unknown command ${commandNo}`, commandAt);
      const idleTimeout = r.u16('idle_timeout');
      const hardTimeout = r.u16('hard_timeout');
      const priority = r.u16('priority');
      const bufferId = r.u32('buffer_id');
      const outPort = r.u32('out_port');
      const outGroup = r.u32('out_group');
      const flags = r.u16('flags');
      r.skip(2);
      const match = readMatch(r);
      const instructions = readInstructions(r);
      return {
        type: 'flow_mod', xid, cookie, cookieMask, tableId, command, idleTimeout, hardTimeout, priority,
        bufferId, outPort, outGroup, flags, match, instructions,
      };
    },
  },
  barrier_request: headerOnly('barrier_request', OFPT.BARRIER_REQUEST),
  barrier_reply: headerOnly('barrier_reply', OFPT.BARRIER_REPLY),
  multipart_request: {
    code: OFPT.MULTIPART_REQUEST,
    encode: (w, m) => writeMultipart(w, m.flags, m.body, false),
    decode: (r, xid) => ({ type: 'multipart_request', xid, ...readMultipartRequest(r) }),
  },
  multipart_reply: {
    code: OFPT.MULTIPART_REPLY,
    encode: (w, m) => writeMultipart(w, m.flags, m.body, true),
    decode: (r, xid) => ({ type: 'multipart_reply', xid, ...readMultipartReply(r) }),
  },
  role_request: role('role_request', OFPT.ROLE_REQUEST),
  role_reply: role('role_reply', OFPT.ROLE_REPLY),
};

type AnyCodec = MessageCodec<never>;
const BY_TYPE = MESSAGE_CODECS as unknown as Record<string, AnyCodec | undefined>;
const BY_CODE = new Map<number, AnyCodec>(Object.values(BY_TYPE).map((c) => [c!.code, c!]));

// Message types we decode whatever version the header says: version negotiation needs the
// peer's HELLO, and a HELLO_FAILED error may come in the peer's version.
const ANY_VERSION = new Set<number>([OFPT.HELLO, OFPT.ERROR]);

/** Encodes one message (OpenFlow 1.3 header, length filled in). Throws OfpEncodeError on bad input. */
export function encodeMessage(msg: OfpMessage): Buffer {
  if (typeof msg !== 'object' || msg === null) throw new OfpEncodeError('message: expected an object');
  const w = new Writer(msg.type === 'packet_out' || msg.type === 'packet_in' ? 128 + msg.data.length : 256);
  w.u8(OFP_VERSION);
  if (msg.type === 'unknown') {
    w.u8(msg.msgType, 'msgType').u16(0).u32(msg.xid, 'xid').bytes(msg.body, 'body');
  } else {
    const codec = BY_TYPE[msg.type];
    if (!codec) throw new OfpEncodeError(`message: unknown type "${String((msg as { type: unknown }).type)}"`);
    w.u8(codec.code).u16(0).u32(msg.xid, 'xid');
    codec.encode(w, msg as never);
  }
  if (w.length > 0xffff) throw new OfpEncodeError(`${msg.type}: ${w.length} bytes exceeds the 65535-byte OpenFlow limit`);
  w.patchU16(2, w.length);
  return w.toBuffer();
}

/** Decodes exactly one complete message; never throws. */
export function decodeMessage(buf: Buffer): Result<OfpMessage> {
  return guard(() => {
    if (!Buffer.isBuffer(buf)) throw new TypeError('decodeMessage: expected a Buffer');
    const r = new Reader(buf);
    const version = r.u8('version');
    const msgType = r.u8('type');
    const length = r.u16('length');
    const xid = r.u32('xid');
    if (length < OFP_HEADER_LEN) r.fail('bad_length', `header length ${length} < 8`, 2);
    if (length > buf.length) r.fail('truncated', `header length ${length} > ${buf.length} bytes available`, 2);
    if (length < buf.length) r.fail('bad_length', `${buf.length - length} byte(s) after a ${length}-byte message`, length);
    if (version !== OFP_VERSION && !ANY_VERSION.has(msgType)) {
      r.fail('bad_version', `version 0x${version.toString(16).padStart(2, '0')} (expected 0x04)`, 0);
    }
    const codec = BY_CODE.get(msgType);
    if (!codec) return { type: 'unknown', xid, msgType, body: r.rest() } satisfies OfpMessage;
    const body = r.sub(length - OFP_HEADER_LEN);
    const msg = codec.decode(body, xid) as OfpMessage;
    if (!body.atEnd) body.fail('bad_length', `${msg.type}: ${body.remaining} trailing byte(s)`);
    return msg;
  });
}

/** A FLOW_MOD with the usual defaults filled in (add, table 0, priority 0x8000, no buffer, ...). */
export function flowMod(partial: Partial<Omit<FlowMod, 'type'>> = {}): FlowMod {
  return {
    type: 'flow_mod',
    xid: 0,
    cookie: 0n,
    cookieMask: 0n,
    tableId: 0,
    command: 'add',
    idleTimeout: 0,
    hardTimeout: 0,
    priority: 0x8000,
    bufferId: OFP_NO_BUFFER,
    outPort: OFPP.ANY,
    outGroup: OFPG.ANY,
    flags: 0,
    match: {},
    instructions: [],
    ...partial,
  };
}

/** A PACKET_OUT with defaults (no buffer, in_port CONTROLLER, no actions, no data). */
export function packetOut(partial: Partial<Omit<PacketOut, 'type'>> = {}): PacketOut {
  return { type: 'packet_out', xid: 0, bufferId: OFP_NO_BUFFER, inPort: OFPP.CONTROLLER, actions: [], data: Buffer.alloc(0), ...partial };
}
