// A private single-member etcd (tests, the demo): its own data dir under /tmp/tmt-etcd-*, client and
// peer URLs on 127.0.0.1 with free ports, log in the dir. Nothing touches a packaged etcd service.
import { type ChildProcess } from 'node:child_process';
import { accessSync, constants, closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { start, stop, waitFor } from './exec.ts';
import { freePort } from './ports.ts';

/** The etcd binary on PATH (Debian's etcd-server installs /usr/bin/etcd), or undefined. */
export function etcdBinary(): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin').split(delimiter)) {
    const p = join(dir || '.', 'etcd');
    try { accessSync(p, constants.X_OK); return p; } catch { /* next */ }
  }
  return undefined;
}

export function etcdAvailable(): boolean { return etcdBinary() !== undefined; }

export interface EtcdStartOptions {
  name?: string;
  timeoutMs?: number;
  /** More etcd flags, e.g. a shorter --election-timeout (which lowers etcd's minimum lease TTL). */
  extraArgs?: string[];
}

export class Etcd {
  private child?: ChildProcess;
  private stopped = false;
  private readonly killOnExit = (): void => { this.child?.kill('SIGKILL'); };

  private constructor(readonly bin: string, readonly name: string, readonly dir: string, readonly clientUrl: string, readonly peerUrl: string,
    private readonly timeoutMs: number, private readonly extraArgs: string[]) {}

  static async start(opts: EtcdStartOptions = {}): Promise<Etcd> {
    const bin = etcdBinary();
    if (!bin) throw new Error('etcd is not installed: apt-get install etcd-server etcd-client (or bash topo/install-deps.sh)');
    const name = opts.name ?? 'tmt';
    // Free ports are found by binding port 0 and closing it; another process may grab one in between: retry.
    for (let attempt = 1; ; attempt++) {
      const dir = mkdtempSync('/tmp/tmt-etcd-');
      const [cport, pport] = [await freePort(), await freePort()];
      const etcd = new Etcd(bin, name, dir, `http://127.0.0.1:${cport}`, `http://127.0.0.1:${pport}`, opts.timeoutMs ?? 15000, opts.extraArgs ?? []);
      try {
        await etcd.restart();
        return etcd;
      } catch (e) {
        const inUse = /address already in use/.test(etcd.log());
        await etcd.stop();
        if (!inUse || attempt >= 3) throw e;
      }
    }
  }

  get endpoints(): string[] { return [this.clientUrl]; }
  get pid(): number | undefined { return this.running ? this.child?.pid : undefined; }
  get running(): boolean { return !!this.child && this.child.exitCode === null && this.child.signalCode === null; }

  /** Starts (or starts again, after kill()) the member on the same data dir and ports; resolves when healthy. */
  async restart(): Promise<void> {
    if (this.stopped) throw new Error('etcd: stopped');
    if (this.running) return;
    const logFd = openSync(join(this.dir, 'etcd.log'), 'a');
    // ETCD_* variables would override the flags: keep them out.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_')));
    const child = start(this.bin, [
      '--name', this.name, '--data-dir', join(this.dir, 'data'),
      '--listen-client-urls', this.clientUrl, '--advertise-client-urls', this.clientUrl,
      '--listen-peer-urls', this.peerUrl, '--initial-advertise-peer-urls', this.peerUrl,
      '--initial-cluster', `${this.name}=${this.peerUrl}`, '--initial-cluster-state', 'new',
      '--logger', 'zap', '--log-outputs', 'stderr', ...this.extraArgs,
    ], { stdio: ['ignore', logFd, logFd], env });
    closeSync(logFd);
    child.on('error', () => { /* reported by the health wait below */ });
    this.child = child;
    process.once('exit', this.killOnExit);
    try {
      await waitFor(async () => {
        if (!this.running) throw new Error(`etcd exited (${child.exitCode ?? child.signalCode}): ${this.log().slice(-2000)}`);
        return this.healthy();
      }, `etcd at ${this.clientUrl} to be healthy`, this.timeoutMs, 100);
    } catch (e) {
      await this.kill();
      throw e;
    }
  }

  async healthy(): Promise<boolean> {
    try {
      const res = await fetch(this.clientUrl + '/health', { signal: AbortSignal.timeout(1000) });
      return res.ok && (await res.json() as { health?: string }).health === 'true';
    } catch {
      return false;
    }
  }

  /** Kills the process as a crash would (default SIGKILL), keeping the data dir for restart(). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    process.removeListener('exit', this.killOnExit);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => { child.once('exit', () => resolve()); child.kill(signal); });
  }

  log(): string {
    try { return readFileSync(join(this.dir, 'etcd.log'), 'utf8'); } catch { return ''; }
  }

  /** Stops the member and removes its directory. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.child) await stop(this.child, 2000);
    process.removeListener('exit', this.killOnExit);
    this.stopped = true;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
