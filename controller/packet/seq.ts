/**
 * TCP sequence-number arithmetic, modulo 2^32. Values are normalised with `>>> 0` (unsigned);
 * comparisons use the signed 32-bit difference like Linux before()/after(), so they stay
 * correct across wrap-around as long as the two values are less than 2^31 apart.
 */

/** a + d mod 2^32 (d may be negative or ≥ 2^32; only its value mod 2^32 matters). */
export function seqAdd(a: number, d: number): number {
  return (a + (d % 0x1_0000_0000)) >>> 0;
}

/** a - b mod 2^32 as an unsigned value (the delta to add to b to get a). */
export function seqSub(a: number, b: number): number {
  return (a - b) >>> 0;
}

/** Signed 32-bit distance a - b: negative when a is "before" b. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export function seqLt(a: number, b: number): boolean {
  return seqDiff(a, b) < 0;
}
export function seqLeq(a: number, b: number): boolean {
  return seqDiff(a, b) <= 0;
}
export function seqGt(a: number, b: number): boolean {
  return seqDiff(a, b) > 0;
}
export function seqGeq(a: number, b: number): boolean {
  return seqDiff(a, b) >= 0;
}

/**
 * Splits a delta into the OVS action form: increment or decrement by whichever magnitude is
 * smaller (both are the same mod-2^32 arithmetic). `amount` is in [0, 2^31].
 */
export function deltaToIncDec(delta: number): { op: 'inc' | 'dec'; amount: number } {
  const d = delta >>> 0;
  return d <= 0x8000_0000 ? { op: 'inc', amount: d } : { op: 'dec', amount: 0x1_0000_0000 - d };
}
