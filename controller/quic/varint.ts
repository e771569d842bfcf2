/**
 * QUIC variable-length integers (RFC 9000 §16): the two high bits of the first byte give the
 * length (1, 2, 4 or 8 bytes), the rest is the value, big-endian.
 */
import { PacketBuildError } from '../packet/result.ts';
import { ok, qerr, type QuicResult } from './result.ts';

export const VARINT_MAX = (1n << 62n) - 1n;

export interface Varint {
  value: number;
  /** Bytes the encoding took (1, 2, 4 or 8). */
  length: number;
}

/** Encoded length of a varint from its first byte. */
export function varintLength(firstByte: number): number {
  return 1 << (firstByte >> 6);
}

/**
 * Decodes the varint at `off` (bounded by `end`). Values above 2^53-1 are an error ('limit'):
 * a JS number cannot hold them exactly, and no field this codec uses (lengths, offsets, Initial
 * packet numbers) can sensibly reach them.
 */
export function decodeVarint(buf: Buffer, off: number, end?: number): QuicResult<Varint> {
  const r = decodeVarintBig(buf, off, end);
  if (!r.ok) return r;
  if (r.value.value > BigInt(Number.MAX_SAFE_INTEGER)) return qerr('limit', `varint ${r.value.value} exceeds 2^53-1`, off);
  return ok({ value: Number(r.value.value), length: r.value.length });
}

/** Decodes the varint at `off` exactly, as a bigint. */
export function decodeVarintBig(buf: Buffer, off: number, end?: number): QuicResult<{ value: bigint; length: number }> {
  if (!Buffer.isBuffer(buf)) return qerr('bad_argument', 'not a Buffer');
  end = Math.min(end ?? buf.length, buf.length);
  if (!Number.isInteger(off) || off < 0) return qerr('bad_argument', `offset ${off}`);
  if (off >= end) return qerr('truncated', 'varint: no bytes left', off);
  const first = buf[off]!;
  const length = varintLength(first);
  if (off + length > end) return qerr('truncated', `varint needs ${length} bytes`, off);
  let value = BigInt(first & 0x3f);
  for (let i = 1; i < length; i++) value = (value << 8n) | BigInt(buf[off + i]!);
  return ok({ value, length });
}

/** The smallest encoding length for `value`. */
export function varintSize(value: number | bigint): number {
  const v = BigInt(value);
  if (v < 0n || v > VARINT_MAX) throw new PacketBuildError('bad_argument', `varint out of range: ${v}`);
  if (v < 1n << 6n) return 1;
  if (v < 1n << 14n) return 2;
  if (v < 1n << 30n) return 4;
  return 8;
}

/**
 * Encodes `value`, in its smallest form unless `length` forces a longer one (senders may pad a
 * varint, e.g. to fix a Length field before the payload size is known).
 */
export function encodeVarint(value: number | bigint, length?: number): Buffer {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new PacketBuildError('bad_argument', `varint not an integer: ${value}`);
  const min = varintSize(value);
  const len = length ?? min;
  if (![1, 2, 4, 8].includes(len) || len < min) throw new PacketBuildError('bad_argument', `varint ${value} does not fit in ${len} bytes`);
  const b = Buffer.alloc(len);
  let v = BigInt(value);
  for (let i = len - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  b[0] = b[0]! | ((Math.log2(len) | 0) << 6);
  return b;
}
