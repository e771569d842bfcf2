// Log lines that outsiders can trigger at will must not flood the log: LogThrottle (once per
// interval per kind and client: refused Host, failed authentication, overload) and ThrottledLog
// (a burst per window per source: garbage on the OpenFlow channel or an alert socket). Either way
// the next line says how many were left out.
import type { Logger, LogFields } from './log.ts';

export class LogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly log: Logger, private readonly intervalMs = 10_000, private readonly maxKeys = 1000, private readonly now: () => number = Date.now) {}

  /** Logs `msg` unless a line of this kind about this client went out less than an interval ago. */
  warn(kind: string, client: string, msg: string, fields: LogFields = {}): void {
    const t = this.now();
    let key = `${kind} ${client}`;
    if (!this.last.has(key) && this.last.size >= this.maxKeys) {
      for (const [k, e] of this.last) if (t - e.at >= this.intervalMs && e.suppressed === 0) this.last.delete(k);
      // Still many clients at once: they share one line per interval.
      if (this.last.size >= this.maxKeys) key = `${kind} *`;
    }
    const e = this.last.get(key);
    if (e && t - e.at < this.intervalMs) { e.suppressed++; return; }
    this.log.warn(msg, { client, ...fields, ...(e?.suppressed ? { suppressed: e.suppressed } : {}) });
    this.last.set(key, { at: t, suppressed: 0 });
  }
}

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
