// Bounds-checked big-endian read cursor over a Buffer slice.
import { DecodeFailure, type DecodeErrorKind } from './result.ts';

export class Reader {
  private pos: number;

  /**
   * @param buf   the bytes this reader may touch (a view; never read outside it)
   * @param base  absolute offset of buf[0] in the outermost buffer, for error messages
   */
  constructor(
    readonly buf: Buffer,
    readonly base = 0,
  ) {
    this.pos = 0;
  }

  get offset(): number {
    return this.pos;
  }

  /** Absolute offset of the cursor in the outermost buffer. */
  get absOffset(): number {
    return this.base + this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  get atEnd(): boolean {
    return this.pos >= this.buf.length;
  }

  private need(n: number, what: string): void {
    if (n < 0 || this.pos + n > this.buf.length) {
      throw new DecodeFailure(
        'truncated',
        `${what}: need ${n} byte(s), ${this.buf.length - this.pos} left`,
        this.base + this.pos,
      );
    }
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.buf.readUInt8(this.pos++);
  }

  u16(what = 'u16'): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(what = 'u32'): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(what = 'u64'): bigint {
    this.need(8, what);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** Copy of the next n bytes (a copy, so callers may keep it after the input buffer is reused). */
  bytes(n: number, what = 'bytes'): Buffer {
    this.need(n, what);
    const out = Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }

  /** All remaining bytes (copied). */
  rest(): Buffer {
    return this.bytes(this.remaining);
  }

  skip(n: number, what = 'padding'): void {
    this.need(n, what);
    this.pos += n;
  }

  /** Peek a u16 at the cursor (+ delta) without moving. */
  peekU16(delta = 0, what = 'u16'): number {
    const save = this.pos;
    this.pos += delta;
    try {
      return this.u16(what);
    } finally {
      this.pos = save;
    }
  }

  /** A reader over the next n bytes; this reader moves past them. */
  sub(n: number, what = 'sub-structure'): Reader {
    this.need(n, what);
    const r = new Reader(this.buf.subarray(this.pos, this.pos + n), this.base + this.pos);
    this.pos += n;
    return r;
  }

  /** Fixed-size NUL-padded string field (ofp_port.name, ofp_desc strings). */
  fixedString(n: number, what = 'string'): string {
    this.need(n, what);
    const raw = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    const nul = raw.indexOf(0);
    return raw.subarray(0, nul < 0 ? n : nul).toString('utf8');
  }

  fail(kind: DecodeErrorKind, message: string, at = this.pos): never {
    throw new DecodeFailure(kind, message, this.base + at);
  }
}
