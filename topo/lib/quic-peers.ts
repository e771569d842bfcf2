// The QUIC test peers (topo/apps/quic/ in the trixie root of topo/quic-root.sh) as the tests and
// the demo drive them: a peer process in a host's namespace whose stdout JSON lines can be
// awaited, and the client's summary.
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import type { Host } from './netns.ts';
import { start } from './exec.ts';

export const QUIC_ROOT_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', 'quic-root.sh');
export const QUIC_ROOT = process.env.TMT_QUIC_ROOT ?? '/var/lib/tcp-migrate/quic-root';

/** client.py's JSON summary. */
export interface ClientSummary {
  ok: boolean; error: string | null; server: string | null; version: string | null; bytes: number;
  sha256: string | null; expected_sha256: string; elapsed: number; addresses: string[];
  cids_used: string[]; cids_seen: { seq: number; cid: string }[]; actions: { action: string; at_bytes: number }[];
  /** The DCID of the first datagram sent from each of `addresses`, in the same order. */
  first_dcids: string[];
  server_closed: boolean;
}

/** A line of server.py's stdout. */
export interface ServerLine {
  event?: string; listening?: number; name?: string; conn?: string; seq?: number; cid?: string;
  bytes?: number; sha256?: string; client_sha256?: string | null; match?: boolean; peers?: string[];
}

/** A process in the QUIC root inside `host`'s namespace; its stdout read as JSON lines. */
export class RootProcess {
  readonly lines: (ServerLine & Partial<ClientSummary>)[] = [];
  stderr = '';
  private waiters: (() => void)[] = [];
  private constructor(readonly child: ChildProcess, readonly what: string) {
    let partial = '';
    child.stdout!.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop()!;
      for (const p of parts) if (p.trim()) this.lines.push(JSON.parse(p) as ServerLine);
      this.wake();
    });
    child.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString(); });
    child.once('exit', () => this.wake());
  }

  static spawn(host: Host, argv: string[], what: string): RootProcess {
    const child = start('bash', [QUIC_ROOT_SCRIPT, 'exec', host.ns, '--', 'python3', ...argv]);
    // TestNet.destroy() stops what is left in the host's set, also when a test failed half-way.
    host.children.add(child);
    child.once('exit', () => host.children.delete(child));
    return new RootProcess(child, what);
  }

  private wake(): void { for (const w of this.waiters.splice(0)) w(); }

  get exited(): boolean { return this.child.exitCode !== null || this.child.signalCode !== null; }

  /** The first stdout line matching `pred`, waiting for it (each line wakes the wait: no polling). */
  async waitLine(pred: (l: ServerLine & Partial<ClientSummary>) => boolean, what: string, timeoutMs = 60000): Promise<ServerLine & Partial<ClientSummary>> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find(pred);
      if (hit) return hit;
      if (this.exited) throw new Error(`${this.what} exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}: ${this.stderr.trim()}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} from ${this.what}; stderr: ${this.stderr.trim()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  /** Resolves once the process has exited. */
  async exit(): Promise<void> {
    if (this.exited) return;
    await new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
  }
}
