// What the codec fuzz tests share: mutations of valid seeds, and the check that every cut-short
// seed is a 'truncated' error rather than a partial success.
import assert from 'node:assert/strict';
import fc from 'fast-check';

/** A valid seed with 1–6 of its bytes overwritten at random positions. */
export function overwritten(seeds: readonly Buffer[]): fc.Arbitrary<Buffer> {
  return fc
    .tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }))
    .map(([seed, edits]) => {
      const b = Buffer.from(seed);
      for (const [pos, v] of edits) b[pos % b.length] = v;
      return b;
    });
}

/** Every strict prefix of each seed: `parse` (on a fresh copy) must fail with kind 'truncated'. */
export function assertPrefixesTruncated(seeds: readonly Buffer[], parse: (b: Buffer) => { ok: true } | { ok: false; error: { kind: string; message: string } }): void {
  for (const seed of seeds) {
    for (let n = 0; n < seed.length; n++) {
      const r = parse(Buffer.from(seed.subarray(0, n)));
      assert.equal(r.ok, false, `prefix of ${n}/${seed.length} bytes parsed`);
      if (!r.ok) assert.equal(r.error.kind, 'truncated', `${n}: ${r.error.message}`);
    }
  }
}
