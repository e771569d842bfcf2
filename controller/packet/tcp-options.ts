/**
 * TCP options: typed decode, byte-exact re-encode, and the editing helpers the handoff engine
 * needs (strip, find). The walker follows Linux tcp_parse_options: a length < 2 or one that
 * runs past the end of the option area stops the walk (here: a 'bad_options' error).
 */
import { err, ok, type Result } from './result.ts';

export const TCPOPT_EOL = 0;
export const TCPOPT_NOP = 1;
export const TCPOPT_MSS = 2;
export const TCPOPT_WSCALE = 3;
export const TCPOPT_SACK_PERMITTED = 4;
export const TCPOPT_SACK = 5;
export const TCPOPT_TIMESTAMP = 8;
/** The TCP header allows at most 40 option bytes. */
export const TCP_MAX_OPTIONS_LEN = 40;

export interface SackBlock {
  left: number;
  right: number;
}

export type TcpOption =
  | { kind: 'eol'; padding?: Buffer }
  | { kind: 'nop' }
  | { kind: 'mss'; value: number }
  | { kind: 'wscale'; shift: number }
  | { kind: 'sack_permitted' }
  | { kind: 'sack'; blocks: SackBlock[] }
  | { kind: 'timestamp'; tsval: number; tsecr: number }
  | { kind: 'unknown'; type: number; data: Buffer };

export type TcpOptionKind = TcpOption['kind'];

/** Wire kind numbers of the typed options (unknown carries its own). */
const KIND_NUM: Record<Exclude<TcpOptionKind, 'unknown'>, number> = {
  eol: TCPOPT_EOL,
  nop: TCPOPT_NOP,
  mss: TCPOPT_MSS,
  wscale: TCPOPT_WSCALE,
  sack_permitted: TCPOPT_SACK_PERMITTED,
  sack: TCPOPT_SACK,
  timestamp: TCPOPT_TIMESTAMP,
};

/**
 * Decodes the option area buf[start, end). A known kind whose length is not the one the RFC
 * mandates is returned as 'unknown' with its bytes intact (Linux ignores such options too), so
 * that re-encoding stays byte-identical. After EOL the rest of the area is padding: kept on
 * the EOL entry only when it is not the all-zero padding the encoder would produce anyway.
 */
export function decodeTcpOptions(buf: Buffer, start = 0, end = buf.length): Result<TcpOption[]> {
  if (start < 0 || end > buf.length || start > end) return err('truncated', 'TCP option area out of bounds', start);
  const out: TcpOption[] = [];
  let i = start;
  while (i < end) {
    const type = buf[i]!;
    if (type === TCPOPT_EOL) {
      const rest = buf.subarray(i + 1, end);
      const natural = ((i + 1 - start + 3) & ~3) === end - start && rest.every((b) => b === 0);
      out.push(natural ? { kind: 'eol' } : { kind: 'eol', padding: Buffer.from(rest) });
      return ok(out);
    }
    if (type === TCPOPT_NOP) {
      out.push({ kind: 'nop' });
      i++;
      continue;
    }
    if (i + 1 >= end) return err('bad_options', `TCP option kind ${type} has no length byte`, i);
    const len = buf[i + 1]!;
    if (len < 2) return err('bad_options', `TCP option kind ${type} has length ${len} < 2`, i + 1);
    if (i + len > end) return err('bad_options', `TCP option kind ${type} length ${len} overruns the option area`, i + 1);
    const d = i + 2;
    if (type === TCPOPT_MSS && len === 4) out.push({ kind: 'mss', value: buf.readUInt16BE(d) });
    else if (type === TCPOPT_WSCALE && len === 3) out.push({ kind: 'wscale', shift: buf[d]! });
    else if (type === TCPOPT_SACK_PERMITTED && len === 2) out.push({ kind: 'sack_permitted' });
    else if (type === TCPOPT_TIMESTAMP && len === 10) {
      out.push({ kind: 'timestamp', tsval: buf.readUInt32BE(d), tsecr: buf.readUInt32BE(d + 4) });
    } else if (type === TCPOPT_SACK && len >= 10 && (len - 2) % 8 === 0) {
      const blocks: SackBlock[] = [];
      for (let b = d; b < i + len; b += 8) blocks.push({ left: buf.readUInt32BE(b), right: buf.readUInt32BE(b + 4) });
      out.push({ kind: 'sack', blocks });
    } else out.push({ kind: 'unknown', type, data: Buffer.from(buf.subarray(d, i + len)) });
    i += len;
  }
  return ok(out);
}

/** Encoded size of one option (without alignment padding). */
export function optionLength(o: TcpOption): number {
  switch (o.kind) {
    case 'eol':
      return 1 + (o.padding?.length ?? 0);
    case 'nop':
      return 1;
    case 'mss':
      return 4;
    case 'wscale':
      return 3;
    case 'sack_permitted':
      return 2;
    case 'sack':
      return 2 + 8 * o.blocks.length;
    case 'timestamp':
      return 10;
    case 'unknown':
      return 2 + o.data.length;
  }
}

function u32(n: unknown): boolean {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;
}

function validate(o: TcpOption): string | null {
  switch (o.kind) {
    case 'mss':
      return Number.isInteger(o.value) && o.value >= 0 && o.value <= 0xffff ? null : `invalid MSS ${o.value}`;
    case 'wscale':
      return Number.isInteger(o.shift) && o.shift >= 0 && o.shift <= 255 ? null : `invalid window scale ${o.shift}`;
    case 'sack':
      if (o.blocks.length < 1 || o.blocks.length > 4) return `SACK needs 1-4 blocks, got ${o.blocks.length}`;
      return o.blocks.every((b) => u32(b.left) && u32(b.right)) ? null : 'invalid SACK block edge';
    case 'timestamp':
      return u32(o.tsval) && u32(o.tsecr) ? null : 'invalid timestamp value';
    case 'unknown':
      if (!Number.isInteger(o.type) || o.type < 0 || o.type > 255) return `invalid option type ${o.type}`;
      if (o.type === TCPOPT_EOL || o.type === TCPOPT_NOP) return `option type ${o.type} cannot carry data`;
      return o.data.length <= 253 ? null : 'unknown option data too long';
    default:
      return null;
  }
}

/**
 * Encodes options in order, then pads with zero bytes (EOL) to a multiple of 4. Decoding an
 * option area and re-encoding it yields the same bytes. Fails on invalid values or when the
 * result exceeds the 40 bytes a TCP header can carry.
 */
export function encodeTcpOptions(options: readonly TcpOption[]): Result<Buffer> {
  let len = 0;
  for (const o of options) {
    const v = validate(o);
    if (v) return err('bad_argument', v);
    len += optionLength(o);
  }
  const padded = (len + 3) & ~3;
  if (padded > TCP_MAX_OPTIONS_LEN) return err('bad_argument', `TCP options need ${padded} bytes, max ${TCP_MAX_OPTIONS_LEN}`);
  const b = Buffer.alloc(padded);
  let i = 0;
  for (const o of options) {
    if (o.kind === 'unknown') {
      b[i] = o.type;
      b[i + 1] = 2 + o.data.length;
      o.data.copy(b, i + 2);
      i += 2 + o.data.length;
      continue;
    }
    b[i] = KIND_NUM[o.kind];
    switch (o.kind) {
      case 'eol':
        o.padding?.copy(b, i + 1);
        break;
      case 'nop':
        break;
      case 'mss':
        b[i + 1] = 4;
        b.writeUInt16BE(o.value, i + 2);
        break;
      case 'wscale':
        b[i + 1] = 3;
        b[i + 2] = o.shift;
        break;
      case 'sack_permitted':
        b[i + 1] = 2;
        break;
      case 'sack':
        b[i + 1] = 2 + 8 * o.blocks.length;
        o.blocks.forEach((blk, k) => {
          b.writeUInt32BE(blk.left, i + 2 + 8 * k);
          b.writeUInt32BE(blk.right, i + 6 + 8 * k);
        });
        break;
      case 'timestamp':
        b[i + 1] = 10;
        b.writeUInt32BE(o.tsval, i + 2);
        b.writeUInt32BE(o.tsecr, i + 6);
        break;
    }
    i += optionLength(o);
  }
  return ok(b);
}

/** First option of the given kind, typed by kind. */
export function findOption<K extends TcpOptionKind>(
  options: readonly TcpOption[],
  kind: K,
): Extract<TcpOption, { kind: K }> | undefined {
  return options.find((o): o is Extract<TcpOption, { kind: K }> => o.kind === kind);
}

/**
 * Removes every option of the given kinds (e.g. ['timestamp', 'sack_permitted']). NOPs that
 * only aligned a removed option are dropped too, and trailing NOP/EOL are removed, so the
 * remaining list encodes compactly; encodeTcpOptions pads the result to 4 bytes.
 * Unknown options can be removed by number: pass `{ unknownTypes: [34] }` (e.g. TFO).
 */
export function stripTcpOptions(
  options: readonly TcpOption[],
  kinds: readonly TcpOptionKind[],
  extra: { unknownTypes?: readonly number[] } = {},
): TcpOption[] {
  const drop = (o: TcpOption): boolean =>
    kinds.includes(o.kind) || (o.kind === 'unknown' && (extra.unknownTypes ?? []).includes(o.type));
  const out: TcpOption[] = [];
  let pendingNops: TcpOption[] = [];
  for (const o of options) {
    if (o.kind === 'nop') {
      if (!drop(o)) pendingNops.push(o);
      continue;
    }
    if (drop(o)) {
      // NOPs right before a removed option existed to align it.
      pendingNops = [];
      continue;
    }
    if (o.kind === 'eol') break;
    out.push(...pendingNops, o);
    pendingNops = [];
  }
  return out;
}
