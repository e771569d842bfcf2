// Small helpers shared by the benchmarks: progress output, statistics, child-process plumbing.
import { createInterface } from 'node:readline';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

const t0 = Date.now();
export function progress(msg: string): void {
  const s = Math.round((Date.now() - t0) / 1000);
  console.log(`[bench ${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}] ${msg}`);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[i]!;
}
export const median = (xs: number[]) => quantile(xs, 0.5);
export const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

/** Monotonic clock in ms; CLOCK_MONOTONIC, so comparable with other processes on this machine. */
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** Resolves with the first stdout line of `child` that parses as JSON and satisfies `pred`. */
export function jsonLine<T = Record<string, unknown>>(child: ChildProcess, pred: (j: any) => boolean, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    const err: string[] = [];
    child.stderr?.on('data', (d: Buffer) => { err.push(d.toString()); if (err.length > 50) err.shift(); });
    const t = setTimeout(() => { rl.close(); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stderr: ${err.join('').slice(-500)}`)); }, timeoutMs);
    const onExit = (code: number | null) => { clearTimeout(t); reject(new Error(`${what}: process exited (${code}); stderr: ${err.join('').slice(-800)}`)); };
    child.once('exit', onExit);
    rl.on('line', (l) => {
      let j: unknown;
      try { j = JSON.parse(l); } catch { return; }
      if (pred(j)) { clearTimeout(t); child.off('exit', onExit); rl.close(); resolve(j as T); }
    });
  });
}

export function fmt(x: number | undefined, digits = 2): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  return x.toFixed(digits);
}

/**
 * Re-runs this script in a network namespace of its own and exits with its status; returns false
 * in the re-run. The userspace datapath creates a tap device named "ovs-netdev" in
 * ovs-vswitchd's namespace, so another OVS instance with netdev bridges in the same namespace (a
 * test run meanwhile) would collide with ours. The name deliberately does not match
 * test/cleanup.sh's pattern (tmt + 4 hex digits), so a cleanup run meanwhile spares it.
 */
export function reexecInOwnNetns(): boolean {
  if (process.env.TMT_BENCH_NETNS) return false;
  const ns = `tmtbench-${randomBytes(2).toString('hex')}`;
  spawnSync('ip', ['netns', 'add', ns], { stdio: 'inherit' });
  spawnSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up'], { stdio: 'inherit' });
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit', env: { ...process.env, TMT_BENCH_NETNS: ns },
  });
  spawnSync('ip', ['netns', 'del', ns], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
