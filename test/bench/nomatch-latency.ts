// Held segment → verdict latency with a live IDS on the mirror port, for connections no rule
// matches (FORWARD) and connections a MIGRATE rule matches, in one run, with and without the
// no-match marker (snort-rules/no-match.rules). Measured on the controller's clock from the
// engine's 'held_frame' event to its 'verdict' event. A benchmark, not a test.
//   npx tsx test/bench/nomatch-latency.ts [--ids suricata|snort] [--n 500] [--concurrency 4] [--baseline 20]
// --n connections, half "just hello <i>" (no rule), half "please migrate <i>", two clients at
// --concurrency each; --baseline N more no-match connections with the marker NOT loaded (0: skip).
// verdictTimeoutMs is the service default, 2 s. Needs root, the patched OVS, Suricata / Snort 3.
import { mkdtempSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg } from 'node:os';
import { HandoffBed, IDS_PORT, SERVICE } from '../lib/handoff-net.ts';
import { PATCHED_PREFIX, STOCK_PREFIX, supportsSeqActions } from '../lib/ovs.ts';
import { startLiveSuricata } from '../../topo/lib/suricata.ts';
import { exportSnort3Rules, startLiveSnort } from '../../topo/lib/snort.ts';
import type { VerdictRequest } from '../../controller/handoff/handoff-engine.ts';
import { fmt, progress, quantile, reexecInOwnNetns } from './lib/util.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const MIGRATE_RULES = join(ROOT, 'snort-rules', 'migrate.rules');
const NO_MATCH_RULES = join(ROOT, 'snort-rules', 'no-match.rules');
const BENCH = join(HERE, 'apps', 'bench-client.mjs');

const argv = process.argv.slice(2);
const opt = (k: string, d: string) => (argv.includes(`--${k}`) ? argv[argv.indexOf(`--${k}`) + 1] ?? d : d);
const ids = opt('ids', 'suricata') as 'suricata' | 'snort';
const n = Number(opt('n', '500'));
const conc = Number(opt('concurrency', '4'));
const baselineN = Number(opt('baseline', '20'));

interface Result { label: string; kind: string; n: number; bySource: Record<string, number>; p50: number; p95: number; p99: number; max: number }

async function runCase(withMarker: boolean, lines: [string, number][]): Promise<Result[]> {
  const prefix = (await supportsSeqActions(PATCHED_PREFIX)) ? PATCHED_PREFIX : STOCK_PREFIX;
  const dir = mkdtempSync('/tmp/tmt-bench-nomatch-');
  const analyzers = ids === 'suricata' ? { suricata: { socket: join(dir, 'eve.sock') } } : { snort: { logDir: dir } };
  const bed = await HandoffBed.create({ prefix, ids: true, analyzers, services: { mirrorPort: IDS_PORT, verdictTimeoutMs: 2000 } });
  let stop: (() => Promise<void>) | undefined;
  try {
    const rules = withMarker ? [MIGRATE_RULES, NO_MATCH_RULES] : [MIGRATE_RULES];
    const live = ids === 'suricata'
      ? await startLiveSuricata(bed.ids!, dir, { rules, eveSocket: join(dir, 'eve.sock'), timeoutMs: 90000 })
      : await startLiveSnort(bed.ids!, { logDir: dir, rules: await exportSnort3Rules(rules, join(dir, 'rules.snort3')) });
    stop = () => live.stop();
    const held = new Map<number, { line: string; at: number }>();
    const verdicts = new Map<number, { req: VerdictRequest; at: number }>();
    bed.engine.on('held_frame', (c: { id: number }, f: { payload: Buffer }) => held.set(c.id, { line: f.payload.toString('latin1'), at: performance.now() }));
    bed.engine.on('verdict', (c: { id: number }, req: VerdictRequest) => { if (!verdicts.has(c.id)) verdicts.set(c.id, { req, at: performance.now() }); });
    // Warm-up: an IDS's first packets on a fresh interface can be late.
    await bed.client.exec(['node', BENCH, '--host', SERVICE.ip, '--port', String(SERVICE.port), '--n', '5', '--line', 'please migrate', '--timeout', '10000'], { timeoutMs: 60000 });
    held.clear();
    verdicts.clear();
    const sums = await Promise.all(lines.map(([line, count]) => bed.client.exec(['node', BENCH, '--host', SERVICE.ip, '--port', String(SERVICE.port), '--n', String(count), '--concurrency', String(conc), '--line', line, '--timeout', '20000'], { timeoutMs: count * 20000 })));
    for (const s of sums) {
      const j = JSON.parse(s.stdout.trim().split('\n').pop()!);
      if (j.failed) progress(`  ${j.failed} connection(s) failed: ${j.errors.slice(0, 3).join('; ')}`);
    }
    return lines.map(([line]) => {
      const ms: number[] = [];
      const bySource: Record<string, number> = {};
      for (const [id, h] of held) {
        if (!h.line.startsWith(line)) continue;
        const v = verdicts.get(id);
        if (!v) continue;
        bySource[`${v.req.verdict} ${v.req.source}`] = (bySource[`${v.req.verdict} ${v.req.source}`] ?? 0) + 1;
        ms.push(v.at - h.at);
      }
      return { label: withMarker ? 'marker loaded' : 'marker NOT loaded', kind: line, n: ms.length, bySource, p50: quantile(ms, 0.5), p95: quantile(ms, 0.95), p99: quantile(ms, 0.99), max: quantile(ms, 1) };
    });
  } finally {
    await stop?.().catch(() => undefined);
    await bed.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const load0 = loadavg()[0]!;
  progress(`${ids}: ${n} connections (${n / 2} no rule, ${n / 2} MIGRATE) with the marker; ${baselineN} without; ${cpus().length} cores, load ${load0.toFixed(2)}`);
  const results = await runCase(true, [['just hello', n / 2], ['please migrate', n / 2]]);
  if (baselineN > 0) results.push(...await runCase(false, [['just hello', baselineN]]));
  console.log(`\n| IDS | rules | connections | held → verdict p50 | p95 | p99 | max | verdicts (source) |\n|---|---|---:|---:|---:|---:|---:|---|`);
  for (const r of results) {
    console.log(`| ${ids} | ${r.label}, "${r.kind}" | ${r.n} | ${fmt(r.p50, 1)} ms | ${fmt(r.p95, 1)} ms | ${fmt(r.p99, 1)} ms | ${fmt(r.max, 1)} ms | ${Object.entries(r.bySource).map(([k, v]) => `${v} ${k}`).join(', ')} |`);
  }
  console.log(`\nload average ${load0.toFixed(2)} → ${loadavg()[0]!.toFixed(2)}; ${new Date().toISOString().slice(0, 10)}`);
}

if (!reexecInOwnNetns()) main().then(() => process.exit(process.exitCode ?? 0), (e: unknown) => { console.error(e); process.exit(1); });
