// Deterministic byte stream shared by the demo servers and clients: byte i of stream `seed` is
// the same everywhere, so a transfer that switches servers half-way can still be verified.
import { createHash } from 'node:crypto';

const BLOCK = 1 << 16;
const cache = new Map();

function block(seed, index) {
  const key = `${seed}:${index}`;
  let b = cache.get(key);
  if (b) return b;
  b = Buffer.allocUnsafe(BLOCK);
  // xorshift32 seeded per block: fast and reproducible.
  let x = (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0 || 1;
  for (let i = 0; i < BLOCK; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  if (cache.size > 64) cache.delete(cache.keys().next().value);
  cache.set(key, b);
  return b;
}

export function blobChunk(seed, offset, length) {
  const out = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const pos = offset + done;
    const b = block(seed, Math.floor(pos / BLOCK));
    const from = pos % BLOCK;
    const n = Math.min(BLOCK - from, length - done);
    b.copy(out, done, from, from + n);
    done += n;
  }
  return out;
}

/** The sha256 (hex) of the first `length` bytes of stream `seed`: what a receiver must have got. */
export function blobSha(seed, length) {
  const h = createHash('sha256');
  for (let off = 0; off < length; off += 1 << 20) h.update(blobChunk(seed, off, Math.min(1 << 20, length - off)));
  return h.digest('hex');
}
