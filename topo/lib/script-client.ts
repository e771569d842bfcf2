// Drives topo/apps/client.mjs --script: one JSON command in, one JSON result out.
import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';

export class ScriptClient {
  private readonly lines: string[] = [];
  private waiting?: { resolve: (l: string) => void; reject: (e: Error) => void };
  constructor(readonly proc: ChildProcess) {
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      const w = this.waiting;
      this.waiting = undefined;
      if (w) w.resolve(l); else this.lines.push(l);
    });
    proc.once('exit', () => this.waiting?.reject(new Error('client exited')));
  }
  async cmd(c: Record<string, unknown>): Promise<Record<string, any>> {
    this.proc.stdin!.write(JSON.stringify(c) + '\n');
    const line = this.lines.shift() ?? await new Promise<string>((resolve, reject) => { this.waiting = { resolve, reject }; });
    return JSON.parse(line);
  }
  end(): void { this.proc.stdin!.end(); }
}
