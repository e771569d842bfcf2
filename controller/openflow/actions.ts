// OpenFlow 1.3 actions: one table row per action type with its body layout.
// Every action is a TLV (type u16, len u16) whose length is a multiple of 8 (OF1.3 §7.2.5).
import { NX_VENDOR_ID, OFPAT, OFPCML_NO_BUFFER } from './constants.ts';
import { readNiciraAction, writeNiciraAction, isNiciraAction, type NiciraAction } from './nicira.ts';
import { oxmDef, readOxm, writeOxmField, writeUnknownOxm, type Match, type MatchField } from './oxm.ts';
import { Reader } from './reader.ts';
import { guard, OfpEncodeError, type Result } from './result.ts';
import { Writer } from './writer.ts';

export type { NiciraAction } from './nicira.ts';

export type StandardAction =
  | { type: 'output'; port: number; maxLen?: number }
  | { type: 'copy_ttl_out' }
  | { type: 'copy_ttl_in' }
  | { type: 'set_mpls_ttl'; ttl: number }
  | { type: 'dec_mpls_ttl' }
  | { type: 'push_vlan'; ethType: number }
  | { type: 'pop_vlan' }
  | { type: 'push_mpls'; ethType: number }
  | { type: 'pop_mpls'; ethType: number }
  | { type: 'set_queue'; queueId: number }
  | { type: 'group'; groupId: number }
  | { type: 'set_nw_ttl'; ttl: number }
  | { type: 'dec_nw_ttl' }
  /** `field` holds exactly one match key, e.g. {ipv4Dst: '10.0.0.3'}. */
  | { type: 'set_field'; field: Match }
  | { type: 'push_pbb'; ethType: number }
  | { type: 'pop_pbb' }
  /** Any experimenter action we do not model; `data` follows the experimenter id. */
  | { type: 'experimenter'; experimenter: number; data: Buffer }
  /** An action type number not in OF1.3; `data` is the body after the 4-byte header. */
  | { type: 'unknown'; actionType: number; data: Buffer };

export type Action = StandardAction | NiciraAction;

type ActionOf<T extends Action['type']> = Extract<Action, { type: T }>;

interface ActionCodec<T extends StandardAction['type']> {
  code: number;
  /** Writes the body after the 4-byte header (the caller pads to 8 and fixes the length). */
  encode(w: Writer, a: ActionOf<T>): void;
  /** Reads from a reader over the body after the 4-byte header. */
  decode(r: Reader, len: number): ActionOf<T>;
}

// Bodies with no fields beyond 4 pad bytes (ofp_action_generic).
function bare<T extends StandardAction['type']>(type: T, code: number): ActionCodec<T> {
  return {
    code,
    encode: (w) => void w.zeros(4),
    decode: (r) => {
      r.skip(4);
      return { type } as ActionOf<T>;
    },
  };
}

// Bodies with a u16 ethertype + 2 pad bytes (push_vlan/push_mpls/pop_mpls/push_pbb).
function ethTyped<T extends 'push_vlan' | 'push_mpls' | 'pop_mpls' | 'push_pbb'>(type: T, code: number): ActionCodec<T> {
  return {
    code,
    encode: (w, a) => void w.u16((a as { ethType: number }).ethType, `${type}.ethType`).zeros(2),
    decode: (r) => {
      const ethType = r.u16('ethertype');
      r.skip(2);
      return { type, ethType } as ActionOf<T>;
    },
  };
}

function ttlAction<T extends 'set_mpls_ttl' | 'set_nw_ttl'>(type: T, code: number): ActionCodec<T> {
  return {
    code,
    encode: (w, a) => void w.u8((a as { ttl: number }).ttl, `${type}.ttl`).zeros(3),
    decode: (r) => {
      const ttl = r.u8('ttl');
      r.skip(3);
      return { type, ttl } as ActionOf<T>;
    },
  };
}

function u32Action<T extends 'set_queue' | 'group', K extends string>(type: T, code: number, key: K): ActionCodec<T> {
  return {
    code,
    encode: (w, a) => void w.u32((a as unknown as Record<K, number>)[key], `${type}.${key}`),
    decode: (r) => ({ type, [key]: r.u32(key) }) as unknown as ActionOf<T>,
  };
}

export const ACTION_CODECS: { [T in Exclude<StandardAction['type'], 'experimenter' | 'unknown'>]: ActionCodec<T> } = {
  output: {
    code: OFPAT.OUTPUT,
    encode: (w, a) => void w.u32(a.port, 'output.port').u16(a.maxLen ?? OFPCML_NO_BUFFER, 'output.maxLen').zeros(6),
    decode: (r) => {
      const port = r.u32('port');
      const maxLen = r.u16('max_len');
      r.skip(6);
      return { type: 'output', port, maxLen };
    },
  },
  copy_ttl_out: bare('copy_ttl_out', OFPAT.COPY_TTL_OUT),
  copy_ttl_in: bare('copy_ttl_in', OFPAT.COPY_TTL_IN),
  set_mpls_ttl: ttlAction('set_mpls_ttl', OFPAT.SET_MPLS_TTL),
  dec_mpls_ttl: bare('dec_mpls_ttl', OFPAT.DEC_MPLS_TTL),
  push_vlan: ethTyped('push_vlan', OFPAT.PUSH_VLAN),
  pop_vlan: bare('pop_vlan', OFPAT.POP_VLAN),
  push_mpls: ethTyped('push_mpls', OFPAT.PUSH_MPLS),
  pop_mpls: ethTyped('pop_mpls', OFPAT.POP_MPLS),
  set_queue: u32Action('set_queue', OFPAT.SET_QUEUE, 'queueId'),
  group: u32Action('group', OFPAT.GROUP, 'groupId'),
  set_nw_ttl: ttlAction('set_nw_ttl', OFPAT.SET_NW_TTL),
  dec_nw_ttl: bare('dec_nw_ttl', OFPAT.DEC_NW_TTL),
  set_field: {
    code: OFPAT.SET_FIELD,
    encode: (w, a) => {
      const f = a.field;
      const keys = typeof f === 'object' && f !== null ? Object.keys(f) : [];
      if (keys.length !== 1) throw new OfpEncodeError(`set_field: field must have exactly one key, got ${keys.length}`);
      const key = keys[0]!;
      if (key === 'unknownOxm') {
        const list = f.unknownOxm ?? [];
        if (list.length !== 1) throw new OfpEncodeError('set_field: unknownOxm must hold exactly one OXM');
        writeUnknownOxm(w, list[0]!);
        return;
      }
      const def = oxmDef(key as MatchField);
      if (!def) throw new OfpEncodeError(`set_field: unknown field "${key}"`);
      writeOxmField(w, def, f[key as MatchField]);
    },
    decode: (r) => {
      const o = readOxm(r);
      // The rest of the body is padding to 8 bytes.
      return { type: 'set_field', field: o.known ? { [o.def.key]: o.value } : { unknownOxm: [o.unknown] } };
    },
  },
  push_pbb: ethTyped('push_pbb', OFPAT.PUSH_PBB),
  pop_pbb: bare('pop_pbb', OFPAT.POP_PBB),
};

const CODEC_BY_CODE = new Map<number, ActionCodec<never>>(
  Object.values(ACTION_CODECS).map((c) => [c.code, c as unknown as ActionCodec<never>]),
);

export function writeAction(w: Writer, a: Action): void {
  if (typeof a !== 'object' || a === null || typeof a.type !== 'string') throw new OfpEncodeError('action: expected {type, ...}');
  if (isNiciraAction(a)) {
    writeNiciraAction(w, a);
    return;
  }
  const start = w.length;
  if (a.type === 'experimenter') {
    w.u16(OFPAT.EXPERIMENTER).u16(0).u32(a.experimenter, 'experimenter id').bytes(a.data, 'experimenter data');
  } else if (a.type === 'unknown') {
    w.u16(a.actionType, 'action type').u16(0).bytes(a.data, 'action data');
  } else {
    const codec = (ACTION_CODECS as unknown as Record<string, ActionCodec<never> | undefined>)[a.type];
    if (!codec) throw new OfpEncodeError(`action: unknown type "${a.type}"`);
    w.u16(codec.code).u16(0);
    codec.encode(w, a as never);
  }
  // Experimenter/unknown bodies of odd size are zero-padded to keep the 8-byte alignment.
  w.padTo(start, 8);
  w.patchU16(start + 2, w.length - start, 'action length');
}

export function writeActions(w: Writer, actions: readonly Action[]): void {
  if (!Array.isArray(actions)) throw new OfpEncodeError('actions: expected an array');
  for (const a of actions) writeAction(w, a);
}

export function readAction(r: Reader): Action {
  const start = r.offset;
  const type = r.u16('action type');
  const len = r.u16('action length');
  if (len < 8 || len % 8 !== 0) r.fail('bad_length', `action type ${type}: length ${len} is not a positive multiple of 8`, start + 2);
  const body = r.sub(len - 4, `action type ${type} body`);
  if (type === OFPAT.EXPERIMENTER) {
    const experimenter = body.u32('experimenter id');
    if (experimenter === NX_VENDOR_ID) {
      const nx = readNiciraAction(body, len);
      if (nx) return nx;
    }
    return { type: 'experimenter', experimenter, data: body.rest() };
  }
  const codec = CODEC_BY_CODE.get(type);
  if (!codec) return { type: 'unknown', actionType: type, data: body.rest() };
  const a = codec.decode(body, len) as Action;
  // Fixed-size actions must not carry more than their padding (e.g. output with len 24).
  if (a.type !== 'set_field' && body.remaining > 0) r.fail('bad_length', `action ${a.type}: length ${len} too long`, start + 2);
  if (a.type === 'set_field' && body.remaining > 7) r.fail('bad_length', `set_field: ${body.remaining} bytes after the OXM`, start + 2);
  return a;
}

/** Reads actions until the reader is exhausted. */
export function readActions(r: Reader): Action[] {
  const out: Action[] = [];
  while (!r.atEnd) out.push(readAction(r));
  return out;
}

export function encodeActions(actions: readonly Action[]): Buffer {
  const w = new Writer(64);
  writeActions(w, actions);
  return w.toBuffer();
}

export function decodeActions(buf: Buffer): Result<Action[]> {
  return guard(() => readActions(new Reader(buf)));
}
