// Structured logger: one JSON object per line (machine-readable) or a compact text line.
// Components get child loggers that carry their own fields (dpid, conn, ...).
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
export type LogFormat = 'json' | 'text';
export type LogFields = Record<string, unknown>;

export interface LogSink { write(line: string): void }

export class Logger {
  /** Shared with every child logger, so setLevel on a root reaches the components' loggers too. */
  private readonly shared: { level: LogLevel };

  constructor(
    level: LogLevel = 'info',
    private readonly format: LogFormat = 'text',
    private readonly fields: LogFields = {},
    private readonly sink: LogSink = process.stderr,
    shared?: { level: LogLevel },
  ) {
    this.shared = shared ?? { level };
  }

  get level(): LogLevel { return this.shared.level; }
  /** Changes the level of this logger, its parent and all their children (config reload). */
  setLevel(level: LogLevel): void { this.shared.level = level; }

  child(fields: LogFields): Logger { return new Logger(this.shared.level, this.format, { ...this.fields, ...fields }, this.sink, this.shared); }
  enabled(level: LogLevel): boolean { return LOG_LEVELS.indexOf(level) >= LOG_LEVELS.indexOf(this.shared.level); }

  debug(msg: string, fields?: LogFields): void { this.log('debug', msg, fields); }
  info(msg: string, fields?: LogFields): void { this.log('info', msg, fields); }
  warn(msg: string, fields?: LogFields): void { this.log('warn', msg, fields); }
  error(msg: string, fields?: LogFields): void { this.log('error', msg, fields); }

  log(level: LogLevel, msg: string, fields?: LogFields): void {
    if (!this.enabled(level)) return;
    const all = { ...this.fields, ...fields };
    const time = new Date().toISOString();
    if (this.format === 'json') {
      this.sink.write(JSON.stringify({ time, level, msg, ...all }, jsonSafe) + '\n');
    } else {
      const kv = Object.entries(all).map(([k, v]) => `${k}=${fmt(v)}`).join(' ');
      this.sink.write(`${time} ${level.toUpperCase().padEnd(5)} ${msg}${kv ? ' ' + kv : ''}\n`);
    }
  }
}

function jsonSafe(_k: string, v: unknown): unknown {
  if (typeof v === 'bigint') return '0x' + v.toString(16);
  if (v instanceof Error) return v.message;
  if (Buffer.isBuffer(v)) return v.toString('hex');
  return v;
}

function fmt(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v, jsonSafe) ?? String(v);
  return /[\s"]/.test(s) ? JSON.stringify(s) : s;
}

/** A logger that drops everything (library use, tests that don't care). */
export const silentLogger = new Logger('error', 'text', {}, { write() {} });
