// Caps on what one multipart reply may accumulate: a switch that keeps setting OFPMPF_REPLY_MORE
// must not make the controller buffer without end (one such switch grew it by 800 MB in 10 s).

export interface MultipartLimits {
  /** Parts of one reply at most (tiny parts cost far more decoded than on the wire). */
  maxParts: number;
  /** Bytes of one reply at most, counted as the parts' OpenFlow message lengths. */
  maxBytes: number;
}

/**
 * OVS fills parts up to 64 KB, so 64 MiB is ~1000 parts: about 400,000 flow-stats entries,
 * several times what `handoff.maxConnections` (100,000) needs.
 */
export const MULTIPART_LIMITS: Readonly<MultipartLimits> = { maxParts: 16384, maxBytes: 64 * 1024 * 1024 };

/** Running totals of one reply; add() says which limit a part breaks, if any. */
export class MultipartBudget {
  parts = 0;
  bytes = 0;
  constructor(private readonly limits: MultipartLimits = MULTIPART_LIMITS) {}

  add(length: number): string | undefined {
    this.parts++;
    this.bytes += length;
    if (this.parts > this.limits.maxParts) return `more than ${this.limits.maxParts} parts`;
    if (this.bytes > this.limits.maxBytes) return `more than ${this.limits.maxBytes} bytes`;
    return undefined;
  }
}
