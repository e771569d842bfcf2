// Growable big-endian writer with range-checked integer writes.
import { OfpEncodeError } from './result.ts';

export class Writer {
  private buf: Buffer;
  private len = 0;

  constructor(initial = 256) {
    this.buf = Buffer.alloc(initial);
  }

  get length(): number {
    return this.len;
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  private checkInt(v: number, max: number, what: string): void {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
      throw new OfpEncodeError(`${what}: expected an integer 0..${max}, got ${String(v)}`);
    }
  }

  u8(v: number, what = 'u8'): this {
    this.checkInt(v, 0xff, what);
    this.ensure(1);
    this.buf.writeUInt8(v, this.len);
    this.len += 1;
    return this;
  }

  u16(v: number, what = 'u16'): this {
    this.checkInt(v, 0xffff, what);
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.len);
    this.len += 2;
    return this;
  }

  u32(v: number, what = 'u32'): this {
    this.checkInt(v, 0xffffffff, what);
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.len);
    this.len += 4;
    return this;
  }

  u64(v: bigint | number, what = 'u64'): this {
    let b: bigint;
    if (typeof v === 'bigint') b = v;
    else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
    else throw new OfpEncodeError(`${what}: expected a bigint, got ${String(v)}`);
    if (b < 0n || b > 0xffffffffffffffffn) throw new OfpEncodeError(`${what}: ${b} out of u64 range`);
    this.ensure(8);
    this.buf.writeBigUInt64BE(b, this.len);
    this.len += 8;
    return this;
  }

  bytes(b: Uint8Array, what = 'bytes'): this {
    if (!(b instanceof Uint8Array)) throw new OfpEncodeError(`${what}: expected a Buffer`);
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  zeros(n: number): this {
    this.ensure(n);
    this.buf.fill(0, this.len, this.len + n);
    this.len += n;
    return this;
  }

  /** Zero-pad so that (length - start) is a multiple of `align`. */
  padTo(start: number, align = 8): this {
    const rem = (this.len - start) % align;
    return rem === 0 ? this : this.zeros(align - rem);
  }

  /** Fixed-size NUL-padded string; at most n-1 bytes so it stays NUL-terminated. */
  fixedString(s: string, n: number, what = 'string'): this {
    if (typeof s !== 'string') throw new OfpEncodeError(`${what}: expected a string`);
    const b = Buffer.from(s, 'utf8');
    if (b.length > n - 1) throw new OfpEncodeError(`${what}: "${s}" longer than ${n - 1} bytes`);
    this.bytes(b);
    return this.zeros(n - b.length);
  }

  /** Overwrite a u16 already written (length fields known only after the body). */
  patchU16(at: number, v: number, what = 'length'): this {
    this.checkInt(v, 0xffff, what);
    this.buf.writeUInt16BE(v, at);
    return this;
  }

  /** View of bytes already written (for validation; do not keep it). */
  peek(at: number, n: number): Buffer {
    return this.buf.subarray(at, Math.min(at + n, this.len));
  }

  toBuffer(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len));
  }
}
