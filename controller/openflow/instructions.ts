// OpenFlow 1.3 instructions (ofp_instruction TLVs, lengths multiples of 8).
import { OFPIT } from './constants.ts';
import { readActions, writeActions, type Action } from './actions.ts';
import { Reader } from './reader.ts';
import { guard, OfpEncodeError, type Result } from './result.ts';
import { Writer } from './writer.ts';

export type Instruction =
  | { type: 'goto_table'; tableId: number }
  | { type: 'write_metadata'; metadata: bigint; mask: bigint }
  | { type: 'write_actions'; actions: Action[] }
  | { type: 'apply_actions'; actions: Action[] }
  | { type: 'clear_actions' }
  | { type: 'meter'; meterId: number }
  | { type: 'experimenter'; experimenter: number; data: Buffer }
  | { type: 'unknown'; instrType: number; data: Buffer };

type InstrOf<T extends Instruction['type']> = Extract<Instruction, { type: T }>;

interface InstructionCodec<T extends Instruction['type']> {
  code: number;
  encode(w: Writer, i: InstrOf<T>): void;
  decode(r: Reader): InstrOf<T>;
}

function actionList<T extends 'write_actions' | 'apply_actions'>(type: T, code: number): InstructionCodec<T> {
  return {
    code,
    encode: (w, i) => {
      w.zeros(4);
      writeActions(w, (i as { actions: Action[] }).actions);
    },
    decode: (r) => {
      r.skip(4);
      return { type, actions: readActions(r) } as InstrOf<T>;
    },
  };
}

export const INSTRUCTION_CODECS: { [T in Exclude<Instruction['type'], 'experimenter' | 'unknown'>]: InstructionCodec<T> } = {
  goto_table: {
    code: OFPIT.GOTO_TABLE,
    encode: (w, i) => void w.u8(i.tableId, 'goto_table.tableId').zeros(3),
    decode: (r) => {
      const tableId = r.u8('table_id');
      r.skip(3);
      return { type: 'goto_table', tableId };
    },
  },
  write_metadata: {
    code: OFPIT.WRITE_METADATA,
    encode: (w, i) => void w.zeros(4).u64(i.metadata, 'write_metadata.metadata').u64(i.mask, 'write_metadata.mask'),
    decode: (r) => {
      r.skip(4);
      return { type: 'write_metadata', metadata: r.u64('metadata'), mask: r.u64('metadata_mask') };
    },
  },
  write_actions: actionList('write_actions', OFPIT.WRITE_ACTIONS),
  apply_actions: actionList('apply_actions', OFPIT.APPLY_ACTIONS),
  clear_actions: {
    code: OFPIT.CLEAR_ACTIONS,
    encode: (w) => void w.zeros(4),
    decode: (r) => {
      r.skip(4);
      return { type: 'clear_actions' };
    },
  },
  meter: {
    code: OFPIT.METER,
    encode: (w, i) => void w.u32(i.meterId, 'meter.meterId'),
    decode: (r) => ({ type: 'meter', meterId: r.u32('meter_id') }),
  },
};

const CODEC_BY_CODE = new Map<number, InstructionCodec<never>>(
  Object.values(INSTRUCTION_CODECS).map((c) => [c.code, c as unknown as InstructionCodec<never>]),
);

export function writeInstruction(w: Writer, i: Instruction): void {
  if (typeof i !== 'object' || i === null || typeof i.type !== 'string') throw new OfpEncodeError('instruction: expected {type, ...}');
  const start = w.length;
  if (i.type === 'experimenter') {
    w.u16(OFPIT.EXPERIMENTER).u16(0).u32(i.experimenter, 'experimenter id').bytes(i.data, 'experimenter data');
  } else if (i.type === 'unknown') {
    w.u16(i.instrType, 'instruction type').u16(0).bytes(i.data, 'instruction data');
  } else {
    const codec = (INSTRUCTION_CODECS as unknown as Record<string, InstructionCodec<never> | undefined>)[i.type];
    if (!codec) throw new OfpEncodeError(`instruction: unknown type "${i.type}"`);
    w.u16(codec.code).u16(0);
    codec.encode(w, i as never);
  }
  w.padTo(start, 8);
  w.patchU16(start + 2, w.length - start, 'instruction length');
}

export function writeInstructions(w: Writer, list: readonly Instruction[]): void {
  if (!Array.isArray(list)) throw new OfpEncodeError('instructions: expected an array');
  for (const i of list) writeInstruction(w, i);
}

export function readInstruction(r: Reader): Instruction {
  const start = r.offset;
  const type = r.u16('instruction type');
  const len = r.u16('instruction length');
  if (len < 8 || len % 8 !== 0) r.fail('bad_length', `instruction type ${type}: length ${len} is not a positive multiple of 8`, start + 2);
  const body = r.sub(len - 4, `instruction type ${type} body`);
  if (type === OFPIT.EXPERIMENTER) {
    return { type: 'experimenter', experimenter: body.u32('experimenter id'), data: body.rest() };
  }
  const codec = CODEC_BY_CODE.get(type);
  if (!codec) return { type: 'unknown', instrType: type, data: body.rest() };
  const i = codec.decode(body) as Instruction;
  if (body.remaining > 0) r.fail('bad_length', `instruction ${i.type}: length ${len} too long`, start + 2);
  return i;
}

export function readInstructions(r: Reader): Instruction[] {
  const out: Instruction[] = [];
  while (!r.atEnd) out.push(readInstruction(r));
  return out;
}

export function encodeInstructions(list: readonly Instruction[]): Buffer {
  const w = new Writer(64);
  writeInstructions(w, list);
  return w.toBuffer();
}

export function decodeInstructions(buf: Buffer): Result<Instruction[]> {
  return guard(() => readInstructions(new Reader(buf)));
}
