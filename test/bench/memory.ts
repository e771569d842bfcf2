// Controller-side cost of intercepting new connections, without a switch in the way:
// a fake switch (test/bench/lib/fake-switch.ts) sends real OpenFlow Packet-Ins carrying SYNs for
// distinct 4-tuples to the service address; the controller (its own process, --expose-gc) tracks
// each as a connection in handshake phase and passes the SYN on with a Packet-Out.
//  - SYN Packet-In → Packet-Out rate (window of W outstanding SYNs);
//  - heap (and RSS) per tracked connection at 10k and 100k connections, after full GCs, relative
//    to the same process with the switch attached and no connections.
import { buildTcpFrame } from '../../controller/packet/index.ts';
import { FakeSwitch } from './lib/fake-switch.ts';
import { ControllerProc } from './lib/controller-proc.ts';
import { progress, sleep } from './lib/util.ts';

export interface MemoryOptions { points: number[]; window: number }
export interface MemoryPoint { connections: number; heapPerConnBytes: number; rssPerConnBytes: number; heapUsedMB: number; rssMB: number }
export interface MemoryResult { options: MemoryOptions; synRatePerSec: number; baseline: { heapUsedMB: number; rssMB: number }; points: MemoryPoint[]; gc: boolean }

const SERVICE = {
  name: 'echo', address: '10.0.0.1', port: 5001, primary: 'server1', migrateTo: 'server2', verdictTimeoutMs: 5000, idleTimeout: 60,
  backends: [{ name: 'server1', address: '10.0.0.1', port: 5001 }, { name: 'server2', address: '10.0.0.3', port: 5001 }],
};

function syn(i: number): Buffer {
  const k = i % 250;
  const frame = buildTcpFrame({
    ethSrc: `02:10:00:00:00:${(k + 1).toString(16).padStart(2, '0')}`, ethDst: '02:20:00:00:00:01',
    ipSrc: `10.1.0.${k + 1}`, ipDst: SERVICE.address, srcPort: 1024 + Math.floor(i / 250), dstPort: SERVICE.port,
    seq: (Math.imul(i + 1, 2654435761) >>> 0), ack: 0, flags: { syn: true }, window: 64240,
    options: [{ kind: 'mss', value: 1460 }, { kind: 'sack_permitted' }, { kind: 'timestamp', tsval: i, tsecr: 0 }, { kind: 'nop' }, { kind: 'wscale', shift: 7 }],
  });
  return FakeSwitch.packetIn(frame, 1 + (k % 4) + 1);
}

export async function runMemory(o: MemoryOptions): Promise<MemoryResult> {
  const max = Math.max(...o.points);
  progress(`memory: SYN Packet-Ins for ${o.points.join(' / ')} distinct 4-tuples into the controller (own process, --expose-gc)`);
  const proc = await ControllerProc.start({ services: [SERVICE], // Every SYN is tracked (this measures what a tracked entry costs), so the half-open budgets are raised past the load.
    handoff: { maxConnections: max * 2, halfOpenMax: max * 2, halfOpenPerSource: max, handshakeTimeoutMs: 3_600_000 } });
  const sw = new FakeSwitch({ port: proc.port, dpid: 0xbe4cn });
  try {
    await sw.connect();
    await sw.featuresDone();
    for (let i = 0; i < 100 && (await proc.cmd({ op: 'stats' })).switches < 1; i++) await sleep(50);
    await sleep(500); // switch preparation (barriers, probe, intercept flows) done
    const base = await proc.cmd({ op: 'mem' });
    progress(`  baseline: heap ${(base.heapUsed / 2 ** 20).toFixed(1)} MB, rss ${(base.rss / 2 ** 20).toFixed(1)} MB (gc exposed: ${base.gc})`);
    const points: MemoryPoint[] = [];
    let sent = 0;
    let rateCounted = 0;
    let rateMs = 0;
    for (const target of [...o.points].sort((a, b) => a - b)) {
      const t0 = performance.now();
      const po0 = sw.packetOuts;
      await new Promise<void>((resolve, reject) => {
        let outstanding = 0;
        const pump = () => {
          const bufs: Buffer[] = [];
          while (outstanding < o.window && sent < target) { bufs.push(syn(sent++)); outstanding++; }
          if (bufs.length) sw.sendRaw(Buffer.concat(bufs));
          if (sent >= target && outstanding === 0) { sw.onPacketOuts = undefined; clearTimeout(timer); resolve(); }
        };
        const timer = setTimeout(() => { sw.onPacketOuts = undefined; reject(new Error(`stalled at ${sent} SYNs, ${outstanding} unanswered`)); }, 600_000);
        sw.onPacketOuts = (n) => { outstanding -= n; pump(); };
        pump();
      });
      rateCounted += sw.packetOuts - po0;
      rateMs += performance.now() - t0;
      const st = await proc.cmd({ op: 'stats' });
      if (st.connections !== target) throw new Error(`controller tracks ${st.connections} connections, expected ${target}`);
      const m = await proc.cmd({ op: 'mem' });
      const p: MemoryPoint = {
        connections: target, heapPerConnBytes: (m.heapUsed - base.heapUsed) / target, rssPerConnBytes: (m.rss - base.rss) / target,
        heapUsedMB: m.heapUsed / 2 ** 20, rssMB: m.rss / 2 ** 20,
      };
      points.push(p);
      progress(`  ${target.toLocaleString('en')} connections: heap ${p.heapUsedMB.toFixed(1)} MB (${Math.round(p.heapPerConnBytes)} B/conn), rss ${p.rssMB.toFixed(1)} MB (${Math.round(p.rssPerConnBytes)} B/conn)`);
    }
    const synRatePerSec = rateCounted / (rateMs / 1000);
    progress(`  SYN Packet-In → Packet-Out: ${Math.round(synRatePerSec).toLocaleString('en')}/s`);
    return { options: o, synRatePerSec, baseline: { heapUsedMB: base.heapUsed / 2 ** 20, rssMB: base.rss / 2 ** 20 }, points, gc: base.gc };
  } finally {
    sw.close();
    await proc.stop();
  }
}
