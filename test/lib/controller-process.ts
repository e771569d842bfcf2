// The real controller as its own process, started the way operators start it
// (`bin/tcp-migrate.mjs controller -c FILE`), with JSON logs the test can wait on. Drills kill it
// (SIGKILL, SIGTERM), signal it (SIGHUP) and start it again on the same ports.
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from '../../topo/lib/ports.ts';
import { once } from 'node:events';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileSync } from 'node:fs';
import { ApiClient } from '../../controller/api/client.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'bin', 'tcp-migrate.mjs');

export { freePort };

export type LogLine = Record<string, any> & { msg: string; level: string };

export class ControllerProcess {
  readonly logs: LogLine[] = [];
  private waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  private exited?: Promise<void>;

  private constructor(readonly child: ChildProcess, readonly name: string) {}

  /** Writes `config` to `configPath` (when given) and starts the controller with it. */
  static async start(name: string, configPath: string, config?: Record<string, unknown>, extraArgs: string[] = []): Promise<ControllerProcess> {
    if (config) writeFileSync(configPath, JSON.stringify(config, null, 2));
    const child = spawn(process.execPath, [CLI, 'controller', '-c', configPath, '--log-format', 'json', ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    const p = new ControllerProcess(child, name);
    p.exited = once(child, 'exit').then(() => undefined);
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let j: LogLine;
        try { j = JSON.parse(line); } catch { j = { msg: line, level: 'raw' }; }
        p.logs.push(j);
        if (process.env.TM_LOG_LEVEL === 'debug') process.stderr.write(`[${name}] ${line}\n`);
        p.waiters = p.waiters.filter((w) => { if (w.pred(j)) { w.resolve(j); return false; } return true; });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    await p.waitLog((l) => l.msg === 'OpenFlow listener up', 30000);
    return p;
  }

  /** Resolves with the first log line (already seen since `from`, or coming) that satisfies `pred`. */
  waitLog(pred: (l: LogLine) => boolean, timeoutMs = 20000, from = 0): Promise<LogLine> {
    const seen = this.logs.slice(from).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (l: LogLine) => { clearTimeout(t); resolve(l); } };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`${this.name}: no matching log line within ${timeoutMs} ms; last lines:\n${this.logs.slice(-15).map((l) => JSON.stringify(l)).join('\n')}`));
      }, timeoutMs);
      this.waiters.push(w);
      if (this.child.exitCode !== null || this.child.signalCode !== null) { clearTimeout(t); reject(new Error(`${this.name} has exited`)); }
    });
  }

  get alive(): boolean { return this.child.exitCode === null && this.child.signalCode === null; }

  signal(sig: NodeJS.Signals): void { this.child.kill(sig); }

  /** Sends `sig` and waits for the process to exit; returns its exit code (null when killed by the signal). */
  async stop(sig: NodeJS.Signals = 'SIGTERM', timeoutMs = 10000): Promise<number | null> {
    if (this.alive) {
      this.child.kill(sig);
      const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
      await this.exited;
      clearTimeout(t);
    }
    return this.child.exitCode;
  }
}

export function apiClient(port: number, token?: string): ApiClient { return new ApiClient({ base: `http://127.0.0.1:${port}`, token }); }
