// Child-process helpers for tests: run a command to completion, or spawn a long-running one.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface RunResult { stdout: string; stderr: string; code: number }
export interface RunOptions { allowFail?: boolean; env?: NodeJS.ProcessEnv; input?: string | Buffer; timeoutMs?: number; cwd?: string }

export class CommandError extends Error {
  constructor(readonly cmd: string, readonly result: RunResult) {
    super(`${cmd} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
}

export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', (e) => { if (timer) clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const result = { stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code: code ?? (signal ? 128 : 1) };
      if (result.code !== 0 && !opts.allowFail) reject(new CommandError([cmd, ...args].join(' '), result));
      else resolve(result);
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input); else child.stdin!.end();
  });
}

/** Starts a background process; the caller must stop it (see `stop`). */
export function start(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  return spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

/** Sends SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export function stop(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => { clearTimeout(t); resolve(); });
    child.kill('SIGTERM');
  });
}

/** Waits until `pred` is true, polling a condition that has no event to await (e.g. a file appearing). */
export async function waitFor(pred: () => Promise<boolean> | boolean, what: string, timeoutMs = 10000, stepMs = 50): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
