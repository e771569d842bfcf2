// Small helpers shared by the socket-based alert sources.
import type { Logger, LogFields } from '../log.ts';

/**
 * Logs bad input without letting a flood of garbage flood the log: at most `burst` lines per
 * `windowMs`; the number suppressed is reported with the next line that gets through.
 */
export class ThrottledLog {
  private windowStart = 0;
  private inWindow = 0;
  private suppressed = 0;
  constructor(private readonly log: Logger, private readonly burst = 20, private readonly windowMs = 1000) {}

  warn(msg: string, fields: LogFields = {}): void {
    const now = Date.now();
    if (now - this.windowStart >= this.windowMs) { this.windowStart = now; this.inWindow = 0; }
    if (++this.inWindow > this.burst) { this.suppressed++; return; }
    if (this.suppressed) { fields = { ...fields, suppressed: this.suppressed }; this.suppressed = 0; }
    this.log.warn(msg, fields);
  }
}

/** Hex of the first bytes of a datagram, for log lines about garbage. */
export function headHex(b: Buffer, n = 16): string {
  return b.subarray(0, n).toString('hex') + (b.length > n ? '…' : '');
}
