// `npm run bench`: runs the side-by-side benchmarks and writes their results into
// docs/benchmarks.md (generated region only) and docs/img/benchmarks.png.
//   tsx test/bench/run-all.ts [--quick] [--only datapath,latency,setup,memory,ofrate,flood,profile,scale] [--scale-via flows|conntrack|flows,conntrack] [--scale-levels N,N] [--no-write] [--render]
// Needs root. Runs itself in a network namespace of its own (see inOwnNetns below).
import { spawnSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { runDatapath, runLatency, runSetup } from './network.ts';
import { runMemory } from './memory.ts';
import { runFlood } from './flood.ts';
import { runProfile } from './profile.ts';
import { runScale } from './scale.ts';
import { runOfRate, OSKEN_MANAGER } from './ofrate.ts';
import { readPrevious, writeDoc, writeChart, type AllResults, type Meta, type Entry } from './report.ts';
import { progress, reexecInOwnNetns } from './lib/util.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DOC = join(ROOT, 'docs', 'benchmarks.md');
const PNG = join(ROOT, 'docs', 'img', 'benchmarks.png');
const ALL = ['datapath', 'latency', 'setup', 'memory', 'ofrate', 'flood', 'profile', 'scale'] as const;
// Default order: the benchmarks without OVS first, the long data-path one last. `profile` and
// `scale` (issue 13) run only when named with --only.
const DEFAULT_ORDER = 'memory,ofrate,setup,flood,latency,datapath';
type Name = typeof ALL[number];

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const write = !argv.includes('--no-write');
const onlyArg = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] ?? '' : DEFAULT_ORDER;
const only = onlyArg.split(',').map((s) => s.trim()).filter(Boolean) as Name[];
// §7's service: its MIGRATE verdicts in flows (default; stored as §7) and/or in the switch's conntrack (migrateVia; §7b).
const scaleViaArg = argv.includes('--scale-via') ? argv[argv.indexOf('--scale-via') + 1] ?? '' : 'flows';
const scaleVias = [...new Set(scaleViaArg.split(',').map((s) => s.trim()))] as Array<'flows' | 'conntrack'>;
if (!scaleVias.length || scaleVias.some((v) => v !== 'flows' && v !== 'conntrack')) { console.error(`--scale-via: '${scaleViaArg}' is not flows, conntrack or flows,conntrack`); process.exit(2); }
// §7's levels, for a quick look at one size (e.g. `--scale-levels 2000` with TM_BENCH_HEAPSNAPSHOT=<dir>).
const scaleLevelsArg = argv.includes('--scale-levels') ? argv[argv.indexOf('--scale-levels') + 1] ?? '' : undefined;
const scaleLevels = scaleLevelsArg?.split(',').map(Number);
if (scaleLevels && (!scaleLevels.length || scaleLevels.some((n) => !Number.isInteger(n) || n < 1))) { console.error(`--scale-levels: '${scaleLevelsArg}' is not a comma-separated list of positive integers`); process.exit(2); }
for (const n of only) if (!ALL.includes(n)) { console.error(`unknown benchmark '${n}'; choose from ${ALL.join(', ')}`); process.exit(2); }
if (argv.includes('--help')) { console.log('usage: run-all.ts [--quick] [--only datapath,latency,setup,memory,ofrate,flood,profile,scale] [--scale-via flows|conntrack|flows,conntrack] [--scale-levels N,N] [--no-write] [--render]'); process.exit(0); }

function machine(): string {
  return `Debian 12, ${cpus().length} cores (${cpus()[0]?.model?.trim() ?? '?'}), ${Math.round(totalmem() / 2 ** 30)} GiB, OVS 3.1 netdev datapath, Node ${process.versions.node}`;
}

/** Other heavy processes on the machine while we run (an OVS build, test runs). */
function busyNote(): string {
  const r = spawnSync('ps', ['-eo', 'pcpu,ppid,comm', '--sort=-pcpu', '--no-headers'], { encoding: 'utf8' });
  const mine = new Set(['node', 'iperf3', 'ovs-vswitchd', 'Suricata-Main', 'suricata', 'osken-manager', 'python3', 'ps', 'chromium']);
  const others = (r.stdout ?? '').split('\n').map((l) => l.trim().split(/\s+/)).filter((x) => x.length >= 3 && Number(x[0]) >= 10)
    // Orphaned iperf3 processes (parent pid 1) are not ours: ours run under `ip netns exec`.
    .filter((x) => !mine.has(x[2]!) || (x[2] === 'iperf3' && x[1] === '1'))
    .map((x) => `${x[2]}${x[1] === '1' && x[2] === 'iperf3' ? ' (orphaned)' : ''} ${Math.round(Number(x[0]))} %`);
  return others.length ? `busy: other processes using CPU at the end of this step: ${others.slice(0, 6).join(', ')}` : '';
}

const cmd = `npm run bench${argv.length ? ' -- ' + argv.join(' ') : ''}`;

/** Merges the results so far into the stored ones and rewrites the doc and chart (after every step, so a killed run keeps what it measured). */
function publish(previous: AllResults, fresh: AllResults): void {
  if (!write) return;
  const all = { ...previous, ...fresh };
  writeDoc(DOC, all, cmd);
  const note = writeChart(PNG, all, new Date().toISOString().slice(0, 10));
  progress(`wrote ${DOC}${note ? ` (chart: ${note})` : ` and ${PNG}`}`);
}

async function step<T>(name: keyof AllResults, fn: () => Promise<T>, all: AllResults): Promise<void> {
  const loadBefore = loadavg();
  const t0 = Date.now();
  const mk = (): Meta => ({ date: new Date().toISOString().slice(0, 10), quick, machine: machine(), loadBefore, loadAfter: loadavg(), busy: busyNote(), durationS: Math.round((Date.now() - t0) / 1000) });
  try {
    const result = await fn();
    (all as Record<string, Entry<unknown>>)[name] = { meta: mk(), result };
    progress(`${name}: done in ${Math.round((Date.now() - t0) / 1000)} s`);
  } catch (e) {
    (all as Record<string, Entry<unknown>>)[name] = { meta: mk(), error: (e as Error).message };
    progress(`${name}: FAILED: ${(e as Error).stack ?? e}`);
  }
  publish(previous, all);
}

let previous: AllResults = {};

// A stray rejection must not kill the run before the finally blocks remove namespaces and daemons.
process.on('unhandledRejection', (e) => { progress(`unhandled rejection (ignored): ${(e as Error)?.message ?? e}`); });

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the benchmarks need root (network namespaces, Open vSwitch)');
  progress(`tcp-migrate benchmarks${quick ? ' (--quick)' : ''}: ${only.join(', ')} on ${machine()}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const all: AllResults = write ? readPrevious(DOC) : {};
  previous = { ...all };
  if (argv.includes('--render')) {
    writeDoc(DOC, all, 'npm run bench -- --render');
    const note = writeChart(PNG, all, new Date().toISOString().slice(0, 10));
    progress(`re-rendered ${DOC}${note ? ` (chart: ${note})` : ` and ${PNG}`} from the stored results`);
    return;
  }
  const fresh: AllResults = {};
  for (const name of only) {
    switch (name) {
      case 'datapath': await step(name, () => runDatapath(quick ? { seconds: 3, rounds: 1, directions: ['download'], relay: true } : { seconds: 10, rounds: 2, directions: ['download', 'upload'], relay: true }), fresh); break;
      case 'latency': await step(name, () => runLatency({ connections: quick ? 50 : 500, suricata: true }), fresh); break;
      case 'setup': await step(name, () => runSetup(quick ? { connections: 200, concurrency: 8, rounds: 1 } : { connections: 2000, concurrency: 8, rounds: 4 }), fresh); break;
      case 'memory': await step(name, () => runMemory({ points: quick ? [10000] : [10000, 100000], window: 256 }), fresh); break;
      case 'flood': await step(name, () => runFlood(quick ? { syns: 10000, rate: 2500, legitimate: 20, workers: 4 } : { syns: 50000, rate: 2500, legitimate: 40, workers: 4 }), fresh); break;
      case 'profile': await step(name, () => runProfile(quick ? { connections: 300, concurrency: 8, samplingUs: 200 } : { connections: 2000, concurrency: 8, samplingUs: 200 }), fresh); break;
      case 'scale':
        for (const via of scaleVias) {
          const o = { ...(quick ? { levels: [200, 500], perClient: 250, concurrency: 16, teardownWaitS: 120 } : { levels: [1000, 5000, 10000], perClient: 2500, concurrency: 16, teardownWaitS: 900 }), ...(scaleLevels ? { levels: scaleLevels } : {}), migrateVia: via };
          await step(via === 'conntrack' ? 'scaleConntrack' : 'scale', () => runScale(o), fresh);
        }
        break;
      case 'ofrate':
        if (!existsSync(OSKEN_MANAGER)) progress('note: python3-os-ken is not installed; only tcp-migrate will be measured (apt-get install python3-os-ken)');
        await step(name, () => runOfRate(quick ? { switches: 8, hosts: 200, seconds: 2, rounds: 1, window: 64 } : { switches: 16, hosts: 1000, seconds: 5, rounds: 3, window: 64 }), fresh);
        break;
    }
  }
  Object.assign(all, fresh);
  if (!write) console.log(JSON.stringify(fresh, null, 1));
  const failed = Object.entries(fresh).filter(([, v]) => v && 'error' in v && v.error).map(([k]) => k);
  if (failed.length) { progress(`failed: ${failed.join(', ')}`); process.exitCode = 1; }
}

if (!reexecInOwnNetns()) main().then(() => process.exit(process.exitCode ?? 0), (e: unknown) => { console.error(e); process.exit(1); });
