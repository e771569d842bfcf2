// The real controller in a process of its own, for benchmarks that measure its memory or CPU
// without the load generator in the same heap. Run as
//   node --expose-gc --import tsx test/bench/lib/controller-proc.ts '<config json>'
// It prints {"port":N} once listening, then answers one JSON command per stdin line:
//   {"op":"stats"}            -> connection table size, packet-in count
//   {"op":"mem"}              -> process.memoryUsage() after two full GCs
// The parent side is `ControllerProc` below.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';

const SELF = fileURLToPath(import.meta.url);

export class ControllerProc {
  private readonly lines: string[] = [];
  private waiting?: (l: string) => void;
  private constructor(readonly child: ChildProcess, readonly port: number) {}

  static async start(config: Record<string, unknown>): Promise<ControllerProc> {
    const child = spawn(process.execPath, [...(process.env.TMT_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.TMT_CPU_PROF}`] : []), '--expose-gc', '--import', 'tsx', SELF, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
    const err: string[] = [];
    child.stderr!.on('data', (d: Buffer) => { err.push(d.toString()); if (err.length > 40) err.shift(); });
    const rl = createInterface({ input: child.stdout! });
    let proc: ControllerProc | undefined;
    const first = new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`controller process did not start: ${err.join('')}`)), 30000);
      child.once('exit', (c) => { clearTimeout(t); reject(new Error(`controller process exited ${c}: ${err.join('')}`)); });
      rl.on('line', (l) => {
        if (!proc) { try { const j = JSON.parse(l); if (typeof j.port === 'number') { clearTimeout(t); resolve(j.port); } } catch { /* log line */ } return; }
        if (!l.startsWith('{')) return;
        const w = proc.waiting; proc.waiting = undefined;
        if (w) w(l); else proc.lines.push(l);
      });
    });
    const port = await first.catch((e) => { child.kill('SIGKILL'); throw e; });
    proc = new ControllerProc(child, port);
    return proc;
  }

  get pid(): number { return this.child.pid!; }

  async cmd(c: Record<string, unknown>): Promise<any> {
    this.child.stdin!.write(JSON.stringify(c) + '\n');
    const l = this.lines.shift() ?? await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('controller process did not answer')), 60000);
      this.waiting = (x) => { clearTimeout(t); resolve(x); };
    });
    return JSON.parse(l);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(t);
  }
}

async function main(): Promise<void> {
  const { Controller } = await import('../../../controller/controller.ts');
  const { parseConfig } = await import('../../../controller/config.ts');
  const { Logger } = await import('../../../controller/log.ts');
  const cfg = parseConfig({ listen: { host: '127.0.0.1', port: 0 }, log: { level: 'error' }, ...JSON.parse(process.argv[2] ?? '{}') });
  const controller = new Controller(cfg, new Logger(cfg.log.level, 'text'), []);
  const { port } = await controller.start();
  console.log(JSON.stringify({ port }));
  const gc = (globalThis as { gc?: () => void }).gc;
  createInterface({ input: process.stdin }).on('line', (l) => {
    const c = JSON.parse(l) as { op: string };
    if (c.op === 'stats') {
      console.log(JSON.stringify({ connections: controller.engine.table.size, packetIns: controller.stats.packetIns, switches: controller.switches.length }));
    } else if (c.op === 'mem') {
      if (gc) { gc(); gc(); }
      const m = process.memoryUsage();
      console.log(JSON.stringify({ gc: !!gc, heapUsed: m.heapUsed, heapTotal: m.heapTotal, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers, connections: controller.engine.table.size }));
    } else console.log(JSON.stringify({ error: `unknown op ${c.op}` }));
  });
  process.once('SIGTERM', () => { controller.stop().finally(() => process.exit(0)); });
}

if (process.argv[1] === SELF) main().catch((e) => { console.error(e); process.exit(1); });
