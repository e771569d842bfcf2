// A Logger whose JSON lines a test can count and await (no sleeps: waiters wake on each line).
import { Logger, type LogLevel } from '../../controller/log.ts';

export interface LogLine { level: LogLevel; msg: string; [k: string]: unknown }

export class LogCapture {
  readonly lines: LogLine[] = [];
  private waiters: (() => void)[] = [];
  readonly logger: Logger;

  constructor(level: LogLevel = 'debug') {
    this.logger = new Logger(level, 'json', {}, {
      write: (line: string) => {
        this.lines.push(JSON.parse(line) as LogLine);
        const w = this.waiters;
        this.waiters = [];
        w.forEach((f) => f());
      },
    });
  }

  /** Lines at `level` (and, if given, whose msg matches). */
  at(level: LogLevel, msg?: RegExp): LogLine[] { return this.lines.filter((l) => l.level === level && (!msg || msg.test(l.msg))); }

  /** Resolves with the first line (already logged or to come) that matches. */
  async waitFor(pred: (l: LogLine) => boolean, what: string, timeoutMs = 10000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(pred);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no log line ${what} within ${timeoutMs} ms; got: ${this.lines.map((l) => l.msg).slice(-10).join(' | ')}`);
      await new Promise<void>((r) => { const t = setTimeout(r, left); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
  }
}
