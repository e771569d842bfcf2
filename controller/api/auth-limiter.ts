// Failed authentication, rate-limited per client address: a token bucket per address that each
// failure drains and time refills. An empty bucket blocks that address's token-protected requests
// (429) until a token is back, so guessing the API token runs at the refill rate at most.

export interface AuthLimiterOptions {
  /** Failures an address may make in a row before it is blocked. */
  burst?: number;
  /** One more failure is allowed per this many milliseconds. */
  refillMs?: number;
  /** Addresses tracked at most; the least recently failing are forgotten first. */
  maxClients?: number;
  now?: () => number;
}

interface Bucket { tokens: number; at: number }

export class AuthLimiter {
  readonly burst: number;
  readonly refillMs: number;
  private readonly maxClients: number;
  private readonly now: () => number;
  // Insertion order is failure order (a failing address is re-inserted): the first key is the oldest.
  private readonly buckets = new Map<string, Bucket>();

  constructor(opts: AuthLimiterOptions = {}) {
    this.burst = opts.burst ?? 10;
    this.refillMs = opts.refillMs ?? 60_000;
    this.maxClients = opts.maxClients ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /** Seconds until `addr` may try again; 0 when it may now. */
  retryAfter(addr: string): number {
    const b = this.refilled(addr);
    return !b || b.tokens >= 1 ? 0 : Math.max(1, Math.ceil(((1 - b.tokens) * this.refillMs) / 1000));
  }

  /** Records one failed authentication from `addr`. */
  fail(addr: string): void {
    const b = this.refilled(addr) ?? { tokens: this.burst, at: this.now() };
    b.tokens = Math.max(0, b.tokens - 1);
    this.buckets.delete(addr);
    this.buckets.set(addr, b);
    while (this.buckets.size > this.maxClients) this.buckets.delete(this.buckets.keys().next().value!);
  }

  get tracked(): number { return this.buckets.size; }

  private refilled(addr: string): Bucket | undefined {
    const b = this.buckets.get(addr);
    if (!b) return undefined;
    const t = this.now();
    b.tokens = Math.min(this.burst, b.tokens + (t - b.at) / this.refillMs);
    b.at = t;
    // A full bucket is the same as no bucket: forget the address.
    if (b.tokens >= this.burst) { this.buckets.delete(addr); return undefined; }
    return b;
  }
}

/** The address a limit applies to: IPv4-mapped IPv6 (::ffff:1.2.3.4) counts as the IPv4 address. */
export function clientAddress(remote: string | undefined): string {
  if (!remote) return 'unknown';
  return remote.startsWith('::ffff:') && remote.includes('.') ? remote.slice(7) : remote;
}
