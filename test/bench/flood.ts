// SYN flood (issue 11, item 1): the controller's heap before, during and after a flood of raw SYNs
// with spoofed sources (topo/apps/syn-flood.py in an attacker namespace, through the real OVS), and
// how many legitimate connections opened during the flood were still analysed (built-in matcher,
// MIGRATE rule) and migrated with their data intact. Spoofed sources are unowned addresses of the
// bed's subnet (10.0.0.129–254): server 1's SYN-ACKs to them wait on ARP and go nowhere.
//
// Two configurations per run: the defaults with the maxConnections (2000), and a half-open
// budget below server 1's SYN queue (Node's listen backlog, 511): above it server 1 answers with
// SYN cookies, which without timestamps carry no window scale, and migrations are refused.
import { createHash } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { HandoffBed, SERVICE, ATTACKER_IP, endClient, type ScriptClient } from '../lib/handoff-net.ts';
import { PATCHED_PREFIX, STOCK_PREFIX, supportsSeqActions } from '../lib/ovs.ts';
import { stop, waitFor } from '../lib/exec.ts';
import { blobChunk } from '../../topo/apps/blob.mjs';
import type { ConnectionView } from '../../controller/handoff/handoff-engine.ts';
import { progress } from './lib/util.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FLOOD = join(ROOT, 'topo', 'apps', 'syn-flood.py');
const RULES = join(ROOT, 'snort-rules', 'migrate.rules');
const CLIENT = '10.0.0.2';

export interface FloodOptions { syns: number; rate: number; legitimate: number; workers: number }
export interface FloodMem { heapMB: number; arrayBuffersMB: number; rssMB: number }
export interface FloodCase {
  name: string; handoff: Record<string, unknown>;
  sent: number; seconds: number; intercepted: number; stats: Record<string, number>;
  before: FloodMem; during: FloodMem; after: FloodMem; halfOpenPeak: number;
  legitimate: number; analysedAndMigrated: number; bypassed: number; failures: Record<string, number>;
  drainedS?: number; note?: string;
}
export interface FloodResult { options: FloodOptions; prefix: string; gc: boolean; cases: FloodCase[] }

/** A full GC from inside a process started without --expose-gc. */
function gcFn(): (() => void) | undefined {
  try { setFlagsFromString('--expose-gc'); return runInNewContext('gc') as () => void; } catch { return undefined; }
}

function mem(gc?: () => void): FloodMem {
  if (gc) { gc(); gc(); }
  const m = process.memoryUsage();
  return { heapMB: m.heapUsed / 2 ** 20, arrayBuffersMB: m.arrayBuffers / 2 ** 20, rssMB: m.rss / 2 ** 20 };
}

async function legitimate(c: ScriptClient, tag: string, seed: number): Promise<{ port?: number; ok: boolean; server?: string; error?: string }> {
  try {
    const r = await c.cmd({ op: 'connect', host: SERVICE.ip, port: SERVICE.port });
    if (!r.ok) return { ok: false, error: `connect: ${r.error}` };
    const port = Number(String(r.local).split(':')[1]);
    const line = `please migrate ${tag}`;
    const a = await c.cmd({ op: 'send', line });
    const server = String(a.reply ?? '').split(' ')[0];
    if (a.reply !== `server2 ${line}`) return { port, server, ok: false, error: `reply ${JSON.stringify(a.reply ?? a.error)}` };
    const b = await c.cmd({ op: 'blob', n: 65536, seed });
    if (b.sha256 !== createHash('sha256').update(blobChunk(seed, 0, 65536)).digest('hex')) return { port, server, ok: false, error: 'blob differs' };
    await c.cmd({ op: 'close' });
    return { port, server, ok: true };
  } catch (e) { return { ok: false, error: (e as Error).message }; }
}

async function floodCase(name: string, handoff: Record<string, unknown>, o: FloodOptions, prefix: string, gc?: () => void): Promise<FloodCase> {
  progress(`  ${name}: handoff ${JSON.stringify(handoff)}; ${o.syns} spoofed SYNs at ${o.rate}/s, ${o.legitimate} legitimate connections meanwhile`);
  const bed = await HandoffBed.create({ prefix, attacker: true, analyzers: { builtin: { rules: [RULES], vars: { HOME_NET: '10.0.0.0/24' } } }, handoff });
  const engine = bed.engine;
  const stats = () => ({ ...(engine.stats as unknown as Record<string, number>) });
  const halfOpen = () => (engine.table.sizes() as { halfOpen?: number }).halfOpen ?? engine.connections().filter((v) => v.phase === 'handshake').length;
  const verdicts = new Map<number, string>(); const migrated = new Set<number>(); const opened = new Set<number>(); const failures: Record<string, number> = {};
  const port = (v: ConnectionView) => (v.client.startsWith(`${CLIENT}:`) ? Number(v.client.split(':')[1]) : undefined);
  const onOpened = (v: ConnectionView) => { const p = port(v); if (p !== undefined) opened.add(p); };
  const onVerdict = (v: ConnectionView, req: { verdict: string; source: string }) => { const p = port(v); if (p !== undefined && !verdicts.has(p)) verdicts.set(p, `${req.verdict}/${req.source}`); };
  const onMigrated = (v: ConnectionView) => { const p = port(v); if (p !== undefined) migrated.add(p); };
  const onFailed = (v: ConnectionView, info: { why: string }) => { if (port(v) !== undefined) { const k = info.why.replace(/\d+/g, 'N').slice(0, 80); failures[k] = (failures[k] ?? 0) + 1; } };
  engine.on('conn_opened', onOpened).on('verdict', onVerdict).on('migrated', onMigrated).on('migration_failed', onFailed);
  const clients: ScriptClient[] = [];
  let flood: ChildProcess | undefined;
  try {
    const s0 = stats();
    const before = mem(gc);
    flood = bed.attacker!.spawn(['/usr/bin/python3', FLOOD, '--dst', SERVICE.ip, '--dport', String(SERVICE.port), '--src', '10.0.0.128/25',
      '--exclude', `${CLIENT},${ATTACKER_IP}`, '--count', String(o.syns), '--rate', String(o.rate), '--seed', '7']);
    const lines = createInterface({ input: flood.stdout! });
    let summary: { sent: number; seconds: number } | undefined;
    lines.on('line', (l) => { if (l.includes('"sent"')) summary = JSON.parse(l); });
    const exited = once(flood, 'exit');
    let running = true;
    void exited.then(() => { running = false; });
    let peak = 0;
    let during = mem();
    const sampler = setInterval(() => { const h = halfOpen(); if (h >= peak) { peak = h; during = mem(); } }, 200);
    // Legitimate connections once the flood is under way (a second in).
    await waitFor(() => stats().intercepted - s0.intercepted >= o.rate, 'the flood to get going', 30000);
    for (let i = 0; i < o.workers; i++) clients.push(bed.scriptClient(15000));
    const per = Math.ceil(o.legitimate / o.workers);
    const outcomes = (await Promise.all(clients.map(async (c, w) => {
      const out = [];
      for (let i = 0; i < per && w * per + i < o.legitimate; i++) out.push(await legitimate(c, `${w}-${i}`, w * 1000 + i + 1));
      return out;
    }))).flat();
    const legitDoneWhileFlooding = running;
    await exited;
    clearInterval(sampler);
    const s1 = stats();
    const good = outcomes.filter((x) => x.ok && x.port !== undefined && verdicts.get(x.port)?.startsWith('MIGRATE/') && !verdicts.get(x.port)?.endsWith('/timeout') && migrated.has(x.port)).length;
    const bypassed = outcomes.filter((x) => x.server !== undefined && x.port !== undefined && (!opened.has(x.port) || !verdicts.has(x.port))).length;
    // After: the spoofed handshakes time out, the table empties.
    const t0 = Date.now();
    let drainedS: number | undefined;
    try {
      await waitFor(() => engine.table.size === 0, 'the table to empty', 120000, 200);
      drainedS = (Date.now() - t0) / 1000;
    } catch { /* reported as not drained */ }
    const after = mem(gc);
    const c: FloodCase = {
      name, handoff, sent: summary?.sent ?? NaN, seconds: summary?.seconds ?? NaN, intercepted: s1.intercepted - s0.intercepted,
      stats: Object.fromEntries(Object.entries(s1).filter(([k]) => /refused|halfOpen|evict/i.test(k)).map(([k, v]) => [k, v - (s0[k] ?? 0)])),
      before, during, after, halfOpenPeak: peak, legitimate: outcomes.length, analysedAndMigrated: good, bypassed, failures, drainedS,
      ...(legitDoneWhileFlooding ? {} : { note: 'the flood ended before the legitimate connections did' }),
    };
    const m = (x: FloodMem) => `heap ${x.heapMB.toFixed(1)} MB + buffers ${x.arrayBuffersMB.toFixed(1)} MB, rss ${x.rssMB.toFixed(0)} MB`;
    progress(`    sent ${c.sent} SYNs in ${c.seconds} s, intercepted ${c.intercepted}, half-open peak ${peak}; ${JSON.stringify(c.stats)}`);
    progress(`    before: ${m(before)}; during (at the half-open peak, no GC): ${m(during)}; after the table emptied (${drainedS ?? 'not'} s): ${m(after)}`);
    progress(`    legitimate: ${good}/${outcomes.length} analysed and migrated, ${bypassed} bypassed; failures ${JSON.stringify(failures)}; errors ${JSON.stringify(outcomes.filter((x) => !x.ok).slice(0, 3).map((x) => x.error))}`);
    return c;
  } finally {
    engine.off('conn_opened', onOpened).off('verdict', onVerdict).off('migrated', onMigrated).off('migration_failed', onFailed);
    for (const c of clients) endClient(c);
    if (flood) await stop(flood, 2000);
    await bed.destroy();
  }
}

export async function runFlood(o: FloodOptions): Promise<FloodResult> {
  const prefix = (await supportsSeqActions(PATCHED_PREFIX)) ? PATCHED_PREFIX : STOCK_PREFIX;
  const gc = gcFn();
  progress(`SYN flood: OVS ${prefix}, GC ${gc ? 'available' : 'not available'}`);
  const cases: FloodCase[] = [];
  cases.push(await floodCase('defaults, maxConnections 2000', { maxConnections: 2000 }, o, prefix, gc));
  cases.push(await floodCase('halfOpenMax 400 (below server 1\'s SYN queue)', { maxConnections: 2000, halfOpenMax: 400, handshakeTimeoutMs: 3000 }, o, prefix, gc));
  return { options: o, prefix, gc: !!gc, cases };
}
