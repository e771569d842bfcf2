// Controller Packet-In → Flow-Mod rate against another controller (cbench-style).
// N fake switches connect over TCP to the controller under test. Each switch owns H hosts (MACs):
// a learning phase makes the controller see every host once (broadcast destination, answered by a
// flood Packet-Out), then every Packet-In carries a learned source and a learned destination on
// another port, which a learning switch answers with FLOW_MOD + PACKET_OUT.
//   latency mode:    one outstanding Packet-In per switch (the next is sent on the PACKET_OUT)
//   throughput mode: a window of W outstanding Packet-Ins per switch, refilled on every PACKET_OUT
// Both controllers run as processes of their own on this machine: tcp-migrate (learning switch,
// no services) and os-ken with test/bench/apps/osken_learning_switch.py. Rounds alternate between
// them so load from other jobs hits both alike.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { once } from 'node:events';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync, readFileSync } from 'node:fs';
import { buildUdpFrame } from '../../controller/packet/index.ts';
import { FakeSwitch } from './lib/fake-switch.ts';
import { freePort } from '../../topo/lib/ports.ts';
import { ControllerProc } from './lib/controller-proc.ts';
import { progress, sleep, mean, median } from './lib/util.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
export const OSKEN_MANAGER = '/usr/bin/osken-manager';

export interface OfRateOptions { switches: number; hosts: number; seconds: number; rounds: number; window: number }
export interface ModeResult {
  perRound: number[]; mean: number; median: number; flowModsPerPacketOut: number;
  /** Responses per CPU second the controller process used (user + system), machine load aside. */
  perCpuSecond: number; cpuShare: number;
}
export interface ControllerRate { latency: ModeResult; throughput: ModeResult }
export interface OfRateResult {
  options: OfRateOptions;
  controllers: Record<string, ControllerRate | { error: string }>;
  ratio?: { latency: number; throughput: number; latencyPerCpu: number; throughputPerCpu: number };
}

const mac = (s: number, h: number) => `02:${(s >> 8 & 255).toString(16).padStart(2, '0')}:${(s & 255).toString(16).padStart(2, '0')}:00:${(h >> 8 & 255).toString(16).padStart(2, '0')}:${(h & 255).toString(16).padStart(2, '0')}`;
const ip = (s: number, h: number) => `10.${s & 255}.${h >> 8 & 255}.${h & 255}`;
const portOf = (h: number) => (h % 4) + 1;

interface Gen { sw: FakeSwitch; learn: Buffer[]; work: Buffer[]; next: number; sent: number; running: boolean; window: number }

function frames(s: number, hosts: number): { learn: Buffer[]; work: Buffer[] } {
  const pad = Buffer.alloc(22);
  const learn: Buffer[] = [];
  const work: Buffer[] = [];
  for (let h = 0; h < hosts; h++) {
    const d = (h + 1) % hosts;
    learn.push(FakeSwitch.packetIn(buildUdpFrame({ ethSrc: mac(s, h), ethDst: 'ff:ff:ff:ff:ff:ff', ipSrc: ip(s, h), ipDst: '10.255.255.255', srcPort: 5000, dstPort: 5000, payload: pad }), portOf(h)));
    work.push(FakeSwitch.packetIn(buildUdpFrame({ ethSrc: mac(s, h), ethDst: mac(s, d), ipSrc: ip(s, h), ipDst: ip(s, d), srcPort: 5000, dstPort: 5000, payload: pad }), portOf(h)));
  }
  return { learn, work };
}

async function waitListening(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`os-ken exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((r) => { const s = connect({ port, host: '127.0.0.1' }); s.once('connect', () => { s.destroy(); r(true); }); s.once('error', () => r(false)); });
    if (ok) return;
    await sleep(200);
  }
  throw new Error('os-ken did not listen in time');
}

interface Target { name: string; port: number; pid: number; stop: () => Promise<void> }

/** CPU seconds (user + system) the process has used so far. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

async function startOurs(): Promise<Target> {
  const p = await ControllerProc.start({});
  return { name: 'tcp-migrate', port: p.port, pid: p.pid, stop: () => p.stop() };
}

async function startOsKen(): Promise<Target> {
  if (!existsSync(OSKEN_MANAGER)) throw new Error('python3-os-ken is not installed (apt-get install python3-os-ken)');
  const port = await freePort();
  const child = spawn(OSKEN_MANAGER, ['--ofp-tcp-listen-port', String(port), '--ofp-listen-host', '127.0.0.1', '--default-log-level', '40', join(HERE, 'apps', 'osken_learning_switch.py')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const err: string[] = [];
  child.stderr!.on('data', (d: Buffer) => { err.push(d.toString()); if (err.length > 30) err.shift(); });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = once(child, 'exit');
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await gone; clearTimeout(t);
  };
  try { await waitListening(port, child, 30000); } catch (e) { await stop(); throw new Error(`${(e as Error).message}: ${err.join('').slice(-500)}`); }
  return { name: 'os-ken', port, pid: child.pid!, stop };
}

/** Connects the switches and runs the learning phase; resolves when every switch got answers. */
async function attach(t: Target, o: OfRateOptions): Promise<Gen[]> {
  const gens: Gen[] = [];
  for (let s = 0; s < o.switches; s++) {
    const sw = new FakeSwitch({ port: t.port, dpid: BigInt(0x1000 + s) });
    await sw.connect();
    gens.push({ sw, ...frames(s + 1, o.hosts), next: 0, sent: 0, running: false, window: 1 });
  }
  await Promise.all(gens.map((g) => g.sw.featuresDone()));
  // Learning: one Packet-In per host, each awaited (retried while the controller is still setting up the switch).
  await Promise.all(gens.map(async (g) => {
    for (let h = 0; h < g.learn.length; h++) {
      for (let attempt = 0; ; attempt++) {
        const got = new Promise<boolean>((r) => { const t0 = setTimeout(() => { g.sw.onPacketOuts = undefined; r(false); }, 1000); g.sw.onPacketOuts = () => { clearTimeout(t0); g.sw.onPacketOuts = undefined; r(true); }; });
        g.sw.sendRaw(g.learn[h]!);
        if (await got) break;
        if (attempt >= 20) throw new Error(`${t.name}: no answer to learning Packet-In ${h} on switch ${g.sw}`);
      }
    }
  }));
  return gens;
}

async function measure(t: Target, gens: Gen[], mode: 'latency' | 'throughput', o: OfRateOptions): Promise<{ rate: number; fmPerPo: number; perCpu: number; cpuShare: number }> {
  const window = mode === 'latency' ? 1 : o.window;
  for (const g of gens) {
    g.running = true; g.sent = 0; g.window = window;
    const base = g.sw.packetOuts;
    g.sw.onPacketOuts = (n) => {
      if (!g.running) return;
      const bufs: Buffer[] = [];
      for (let i = 0; i < n; i++) { bufs.push(g.work[g.next]!); g.next = (g.next + 1) % g.work.length; }
      g.sent += n;
      g.sw.sendRaw(bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs));
    };
    void base;
  }
  const startCounts = () => gens.reduce((a, g) => a + g.sw.packetOuts, 0);
  const fmCounts = () => gens.reduce((a, g) => a + g.sw.flowMods, 0);
  for (const g of gens) {
    const bufs: Buffer[] = [];
    for (let i = 0; i < window; i++) { bufs.push(g.work[g.next]!); g.next = (g.next + 1) % g.work.length; }
    g.sent += window;
    g.sw.sendRaw(Buffer.concat(bufs));
  }
  await sleep(500); // warm-up, not counted
  const po0 = startCounts(); const fm0 = fmCounts(); const t0 = performance.now(); const c0 = cpuSeconds(t.pid);
  await sleep(o.seconds * 1000);
  const po1 = startCounts(); const fm1 = fmCounts(); const t1 = performance.now(); const c1 = cpuSeconds(t.pid);
  for (const g of gens) g.running = false;
  // Drain what is still outstanding so it does not count in the next measurement.
  const expected = gens.reduce((a, g) => a + g.sw.packetOuts, 0) + gens.length * window;
  const end = Date.now() + 15000;
  let last = -1; let stable = 0;
  while (Date.now() < end) {
    const now = startCounts();
    if (now >= expected) break;
    stable = now === last ? stable + 1 : 0; last = now;
    if (stable > 10) break; // nothing moved for a second: the rest was dropped
    await sleep(100);
  }
  for (const g of gens) g.sw.onPacketOuts = undefined;
  const secs = (t1 - t0) / 1000;
  const rate = (po1 - po0) / secs;
  const perCpu = (po1 - po0) / Math.max(0.01, c1 - c0);
  progress(`  ${t.name.padEnd(11)} ${mode.padEnd(10)} ${Math.round(rate).toLocaleString('en')} responses/s (controller CPU ${Math.round(100 * (c1 - c0) / secs)} %, ${Math.round(perCpu).toLocaleString('en')} per CPU-second)`);
  return { rate, fmPerPo: (fm1 - fm0) / Math.max(1, po1 - po0), perCpu, cpuShare: (c1 - c0) / secs };
}

export async function runOfRate(o: OfRateOptions): Promise<OfRateResult> {
  progress(`controller rate: ${o.switches} fake switches × ${o.hosts} hosts, ${o.rounds} rounds × ${o.seconds} s per mode, window ${o.window}`);
  const result: OfRateResult = { options: o, controllers: {} };
  const targets: Target[] = [];
  const gens = new Map<string, Gen[]>();
  try {
    for (const start of [startOurs, startOsKen]) {
      let t: Target | undefined;
      try {
        t = await start();
        targets.push(t);
        const g = await attach(t, o);
        gens.set(t.name, g);
        progress(`  ${t.name}: ${o.switches} switches attached, ${o.switches * o.hosts} hosts learned`);
      } catch (e) {
        const name = start === startOurs ? 'tcp-migrate' : 'os-ken';
        result.controllers[name] = { error: (e as Error).message };
        progress(`  ${name}: FAILED ${(e as Error).message}`);
      }
    }
    const per: Record<string, { latency: number[]; throughput: number[]; fm: number[]; cpu: Record<string, number[]>; share: Record<string, number[]> }> = {};
    for (let r = 0; r < o.rounds; r++) {
      for (const mode of ['latency', 'throughput'] as const) {
        for (const t of targets) {
          const g = gens.get(t.name);
          if (!g) continue;
          const m = await measure(t, g, mode, o);
          const p = (per[t.name] ??= { latency: [], throughput: [], fm: [], cpu: { latency: [], throughput: [] }, share: { latency: [], throughput: [] } });
          p[mode].push(m.rate);
          p.fm.push(m.fmPerPo);
          p.cpu[mode]!.push(m.perCpu);
          p.share[mode]!.push(m.cpuShare);
        }
      }
    }
    for (const [name, p] of Object.entries(per)) {
      const mk = (mode: 'latency' | 'throughput'): ModeResult => ({ perRound: p[mode], mean: mean(p[mode]), median: median(p[mode]), flowModsPerPacketOut: mean(p.fm), perCpuSecond: mean(p.cpu[mode]!), cpuShare: mean(p.share[mode]!) });
      result.controllers[name] = { latency: mk('latency'), throughput: mk('throughput') };
    }
    const ours = result.controllers['tcp-migrate'];
    const theirs = result.controllers['os-ken'];
    if (ours && theirs && 'latency' in ours && 'latency' in theirs) {
      result.ratio = {
        latency: ours.latency.mean / theirs.latency.mean, throughput: ours.throughput.mean / theirs.throughput.mean,
        latencyPerCpu: ours.latency.perCpuSecond / theirs.latency.perCpuSecond, throughputPerCpu: ours.throughput.perCpuSecond / theirs.throughput.perCpuSecond,
      };
      progress(`  ratio tcp-migrate / os-ken: latency mode ${result.ratio.latency.toFixed(2)}×, throughput mode ${result.ratio.throughput.toFixed(2)}× (per controller CPU-second: ${result.ratio.latencyPerCpu.toFixed(2)}×, ${result.ratio.throughputPerCpu.toFixed(2)}×)`);
    }
  } finally {
    for (const g of gens.values()) for (const x of g) x.sw.close();
    for (const t of targets) await t.stop();
  }
  return result;
}
