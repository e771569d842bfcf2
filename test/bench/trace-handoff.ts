// Where "verdict → first byte of server 2's reply" goes (issue 13's latency yardstick), stage by
// stage, from packet captures in the client's and server 2's namespaces (tcpdump, wall-clock µs)
// and the controller's own verdict time (same clock). Sequential "please migrate" connections, the
// built-in matcher deciding, with and without the service's speculativeReplay in alternating
// rounds; and, as the reference, requests to a port nobody intercepts, traced the same way.
//
//   npx tsx test/bench/trace-handoff.ts [--n 200] [--rounds 4]
//
// Needs root and the patched OVS (ovs-patch/build.sh). Prints its tables; nothing is written.
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { HandoffBed, SERVICE } from '../lib/handoff-net.ts';
import { Capture, type Segment } from '../lib/capture.ts';
import { PATCHED_PREFIX } from '../lib/ovs.ts';
import { benchClient, PLAIN_PORT, RULES, startPlainEcho, type ClientRecord } from './network.ts';
import { median, progress, quantile } from './lib/util.ts';

const { values: a } = parseArgs({ options: { n: { type: 'string', default: '200' }, rounds: { type: 'string', default: '4' } } });
const N = Number(a.n); const ROUNDS = Number(a.rounds);
if (!(N > 0) || !(ROUNDS > 0)) { console.error('usage: trace-handoff.ts [--n N] [--rounds R]'); process.exit(2); }

/** Wall clock in ms (µs resolution), the clock tcpdump stamps packets with. */
const wall = () => performance.timeOrigin + performance.now();
/** CLOCK_MONOTONIC (the bench client's clock, process.hrtime) → wall clock: one offset for the run. */
const monoToWall = wall() - Number(process.hrtime.bigint()) / 1e6;

type Timed = { t: number; seg: Segment };
const first = (xs: Timed[], f: (s: Segment) => boolean, after = -Infinity) => xs.find((x) => x.t >= after && f(x.seg))?.t;
const byPort = (xs: Timed[]) => {
  const m = new Map<number, Timed[]>();
  for (const x of xs) {
    const p = x.seg.sport === SERVICE.port || x.seg.sport === PLAIN_PORT ? x.seg.dport : x.seg.sport;
    const l = m.get(p);
    if (l) l.push(x); else m.set(p, [x]);
  }
  return m;
};

type Stages = Record<string, number[]>;
const push = (s: Stages, k: string, v: number | undefined) => { if (v !== undefined && Number.isFinite(v)) (s[k] ??= []).push(v); };

const bed = await HandoffBed.create({ prefix: PATCHED_PREFIX, analyzers: { builtin: { rules: [RULES], vars: { HOME_NET: '10.0.0.0/8' } } }, services: { verdictTimeoutMs: 3000 } });
const results: Record<string, Stages> = {};
const syncAckIn: Record<string, { before: number; after: number }> = {};
try {
  await startPlainEcho(bed);
  const service = bed.engine.listServices()[0]!;
  const client = await Capture.start(bed.client, 'tcp');
  const s1 = await Capture.start(bed.servers.server1!, 'tcp');
  const s2 = await Capture.start(bed.servers.server2!, 'tcp');
  const verdicts = new Map<string, number>();
  bed.engine.on('verdict', (v: { client: string }) => { if (!verdicts.has(v.client)) verdicts.set(v.client, wall()); });
  // When the controller hands its messages to the kernel: the OpenFlow socket's writes (corked
  // messages of one tick leave in one writev).
  const writes: number[] = [];
  const sock = (bed.controller.switches[0] as unknown as { socket: { _writev: (...x: unknown[]) => unknown; _write: (...x: unknown[]) => unknown } }).socket;
  for (const k of ['_writev', '_write'] as const) {
    const orig = sock[k];
    sock[k] = function (this: unknown, ...x: unknown[]) { writes.push(wall()); return orig.apply(this, x); };
  }
  const writtenAfter = (t: number) => writes.find((w) => w >= t);
  // When each message is handed to the channel (before the tick's writev): the controller's own split.
  const sends: { t: number; type: string }[] = [];
  const ch = bed.controller.switches[0] as unknown as { send: (m: { type: string }) => unknown };
  const origSend = ch.send;
  ch.send = function (this: unknown, m: { type: string }) { sends.push({ t: wall(), type: m.type }); return origSend.call(this, m); };
  const sentAfter = (t: number, type: string) => sends.find((x) => x.t >= t && x.type === type)?.t;
  const records: Record<string, ClientRecord[]> = {};
  try {
    await benchClient(bed.client, PLAIN_PORT, 20, 1, 'warm');
    for (let r = 0; r < ROUNDS; r++) {
      for (const variant of ['reference (port not intercepted)', 'defaults', 'speculativeReplay']) {
        const plain = variant.startsWith('reference');
        service.speculativeReplay = variant === 'speculativeReplay';
        const s = await benchClient(bed.client, plain ? PLAIN_PORT : SERVICE.port, Math.ceil(N / ROUNDS), 1, plain ? 'hello' : 'please migrate', true, 8000);
        (records[variant] ??= []).push(...(s.records ?? []));
        progress(`${variant}, round ${r + 1}: ${s.ok} ok, ${s.failed} failed`);
      }
    }
  } finally { service.speculativeReplay = false; await client.stop(); await s1.stop(); await s2.stop(); }
  const C = byPort(client.timedSegments()); const S1 = byPort(s1.timedSegments()); const S2 = byPort(s2.timedSegments());
  for (const [variant, recs] of Object.entries(records)) {
    const st: Stages = (results[variant] = {});
    const plain = variant.startsWith('reference');
    for (const rec of recs) {
      const c = C.get(rec.port) ?? []; const fb = rec.tFirst + monoToWall;
      const reqOut = first(c, (x) => x.sport === rec.port && x.len > 0);
      const replyIn = first(c, (x) => x.dport === rec.port && x.len > 0);
      if (plain) {
        const srv = S1.get(rec.port) ?? [];
        const reqIn = first(srv, (x) => x.sport === rec.port && x.len > 0);
        const replyOut = first(srv, (x) => x.dport === rec.port && x.len > 0);
        push(st, 'request on the client\'s wire → on the server\'s', reqIn! - reqOut!);
        push(st, 'server: request in → reply out (kernel, app)', replyOut! - reqIn!);
        push(st, 'reply on the server\'s wire → on the client\'s', replyIn! - replyOut!);
        push(st, 'reply on the client\'s wire → first byte read', fb - replyIn!);
        push(st, 'request on the client\'s wire → first byte read', fb - reqOut!);
        continue;
      }
      if (rec.server !== 'server2') continue;
      const v = verdicts.get(`${bed.ipOf(bed.client)}:${rec.port}`);
      const srv = S2.get(rec.port) ?? [];
      const synAck = first(srv, (x) => x.dport === rec.port && x.syn);
      const ack = first(srv, (x) => x.sport === rec.port && !x.syn && x.len === 0);
      const dataIn = first(srv, (x) => x.sport === rec.port && x.len > 0);
      const replyOut = first(srv, (x) => x.dport === rec.port && x.len > 0);
      if (v === undefined || dataIn === undefined || replyOut === undefined || replyIn === undefined || reqOut === undefined) continue;
      const k = (syncAckIn[variant] ??= { before: 0, after: 0 });
      if (synAck !== undefined && synAck < v) k.before++; else k.after++;
      push(st, 'held segment on the client\'s wire → verdict (to the controller, held, matched)', v - reqOut);
      const w = writtenAfter(v);
      const firstOut = sentAfter(v, 'packet_out'); const firstMod = sentAfter(v, 'flow_mod');
      push(st, 'verdict → first Packet-Out handed to the channel (controller)', firstOut !== undefined ? firstOut - v : undefined);
      push(st, 'verdict → first Flow-Mod handed to the channel (controller)', firstMod !== undefined ? firstMod - v : undefined);
      push(st, 'verdict → its messages written to the OpenFlow socket (controller)', w !== undefined ? w - v : undefined);
      push(st, 'written → replay\'s ACK on server 2\'s wire (OVS: read, Packet-Out, veth)', w !== undefined && ack !== undefined ? ack - w : undefined);
      push(st, 'verdict → replay\'s ACK on server 2\'s wire', ack !== undefined ? ack - v : undefined);
      push(st, 'verdict → held segment on server 2\'s wire (controller, OVS)', dataIn - v);
      push(st, 'server 2: held segment in → reply out (kernel, accept, app)', replyOut - dataIn);
      push(st, 'reply on server 2\'s wire → on the client\'s (OVS, first packet of the flow)', replyIn - replyOut);
      push(st, 'reply on the client\'s wire → first byte read', fb - replyIn);
      push(st, 'verdict → first byte read (the yardstick)', fb - v);
    }
  }
} finally { await bed.destroy(); }

const f = (xs: number[]) => `${median(xs).toFixed(3)} / ${quantile(xs, 0.9).toFixed(3)}`;
for (const [variant, st] of Object.entries(results)) {
  const n = Math.max(0, ...Object.values(st).map((x) => x.length));
  const k = syncAckIn[variant];
  console.log(`\n${variant}: ${n} connections${k ? `; server 2's SYN-ACK out before the verdict in ${k.before} of ${k.before + k.after}` : ''}`);
  console.log('| stage | median / p90 (ms) |');
  console.log('| --- | ---: |');
  for (const [stage, xs] of Object.entries(st)) console.log(`| ${stage} | ${f(xs)} |`);
}
