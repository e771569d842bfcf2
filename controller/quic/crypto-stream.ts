/**
 * Reassembly of the Initial CRYPTO stream: CRYPTO frames may arrive split, out of order,
 * duplicated, and spread over several packets and datagrams (a ClientHello with a large
 * post-quantum key share does not fit in one). Bytes are kept up to a cap so that a client
 * cannot make the controller buffer without bound before a verdict.
 */
import { ok, qerr, type QuicResult } from './result.ts';

export const MAX_CRYPTO_BYTES = 64 * 1024;
/** Disjoint received ranges kept at most; a client sending 1-byte pieces with gaps hits this. */
export const MAX_CRYPTO_RANGES = 64;

export class CryptoReassembler {
  readonly cap: number;
  private buf = Buffer.alloc(0);
  /** Received [start, end) ranges, sorted and merged. */
  private ranges: [number, number][] = [];

  constructor(cap = MAX_CRYPTO_BYTES) {
    this.cap = cap;
  }

  /**
   * Adds `data` at stream `offset`. Data beyond the cap is an error ('limit'); so is data that
   * contradicts bytes already received ('bad_frame'): a retransmission must repeat the same
   * bytes, and accepting either copy would let the controller and the server read different
   * ClientHellos.
   */
  add(offset: number, data: Buffer): QuicResult<void> {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Buffer.isBuffer(data)) return qerr('bad_argument', 'bad CRYPTO offset or data');
    const end = offset + data.length;
    if (end > this.cap) return qerr('limit', `CRYPTO data up to offset ${end} exceeds the ${this.cap}-byte cap`);
    if (data.length === 0) return ok(undefined);
    for (const [s, e] of this.ranges) {
      const lo = Math.max(s, offset);
      const hi = Math.min(e, end);
      if (lo < hi && !this.buf.subarray(lo, hi).equals(data.subarray(lo - offset, hi - offset))) {
        return qerr('bad_frame', `CRYPTO bytes at offset ${lo} differ from the ones received before`);
      }
    }
    const merged = mergeRange(this.ranges, offset, end);
    if (merged.length > MAX_CRYPTO_RANGES) return qerr('limit', `CRYPTO stream fragmented into more than ${MAX_CRYPTO_RANGES} pieces`);
    if (end > this.buf.length) {
      const grown = Buffer.alloc(Math.min(this.cap, Math.max(end, this.buf.length * 2)));
      this.buf.copy(grown);
      this.buf = grown;
    }
    data.copy(this.buf, offset);
    this.ranges = merged;
    return ok(undefined);
  }

  /** Bytes available in order from offset 0. */
  get contiguousLength(): number {
    const first = this.ranges[0];
    return first && first[0] === 0 ? first[1] : 0;
  }

  /** Highest offset received so far (gaps included). */
  get highestOffset(): number {
    return this.ranges.length ? this.ranges[this.ranges.length - 1]![1] : 0;
  }

  /** A copy of the in-order bytes from offset 0. */
  contiguous(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.contiguousLength));
  }
}

function mergeRange(ranges: readonly [number, number][], start: number, end: number): [number, number][] {
  const out: [number, number][] = [];
  let s = start;
  let e = end;
  let placed = false;
  for (const [rs, re] of ranges) {
    if (re < s) out.push([rs, re]);
    else if (rs > e) {
      if (!placed) {
        out.push([s, e]);
        placed = true;
      }
      out.push([rs, re]);
    } else {
      s = Math.min(s, rs);
      e = Math.max(e, re);
    }
  }
  if (!placed) out.push([s, e]);
  return out;
}
