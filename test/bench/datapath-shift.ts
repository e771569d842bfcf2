// Benchmark: bulk TCP throughput through the patched OVS (userspace datapath) with the
// seq/ack shifting flows of a migrated connection, against plain output flows on the same
// switch in the same run. Also measures the slow-path fallback for contrast.
//
// Run: npx tsx test/bench/datapath-shift.ts [--seconds 10] [--rounds 3]
// Needs root, iperf3, and the patched OVS under /usr/local (ovs-patch/build.sh).
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Ovs, PATCHED_PREFIX, supportsSeqActions } from '../lib/ovs.ts';
import { TestNet, type Host } from '../lib/netns.ts';
import { reexecInOwnNetns } from './lib/util.ts';

const D = 0x80001234;
const BR = `tmtbr${randomBytes(2).toString('hex')}`;

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}
const SECONDS = arg('seconds', 10);
const ROUNDS = arg('rounds', 3);

const FLOWS: Record<string, string[]> = {
  plain: ['tcp,in_port=1 actions=output:2', 'tcp,in_port=2 actions=output:1'],
  shift: [`tcp,in_port=1 actions=inc_tcp_seq:${D},output:2`, `tcp,in_port=2 actions=dec_tcp_ack:${D},output:1`],
};
const ARP = ['arp,in_port=1 actions=output:2', 'arp,in_port=2 actions=output:1'];

async function setFlows(ovs: Ovs, dir: string, kind: keyof typeof FLOWS): Promise<void> {
  const file = join(dir, 'flows.txt');
  writeFileSync(file, [...ARP, ...FLOWS[kind]].join('\n') + '\n');
  await ovs.ofctl('-O', 'OpenFlow13', 'replace-flows', BR, file);
  // Old megaflows would keep the previous actions until revalidated.
  await ovs.appctl('dpctl/del-flows');
}

async function iperf(a: Host, b: Host): Promise<{ gbps: number; retransmits: number }> {
  const r = await a.exec(['iperf3', '-c', b.ip, '-t', String(SECONDS), '-J'], { timeoutMs: (SECONDS + 30) * 1000 });
  const j = JSON.parse(r.stdout) as { error?: string; end: { sum_received?: { bits_per_second: number }; sum_sent: { retransmits: number } } };
  if (j.error || !j.end.sum_received) throw new Error(`iperf3 failed: ${j.error ?? 'no results'}`);
  return { gbps: j.end.sum_received.bits_per_second / 1e9, retransmits: j.end.sum_sent.retransmits };
}

async function main(): Promise<void> {
  if (!(await supportsSeqActions(PATCHED_PREFIX))) throw new Error(`no patched OVS under ${PATCHED_PREFIX}; run ovs-patch/build.sh`);
  const tmp = mkdtempSync('/tmp/tmt-bench-');
  const ovs = await Ovs.start({ prefix: PATCHED_PREFIX });
  const net = TestNet.create();
  try {
    const a = await net.addHost('a', '10.0.0.1/24');
    const b = await net.addHost('b', '10.0.0.2/24');
    await ovs.addBridge(BR, { failMode: 'secure' });
    await ovs.addPort(BR, a.peer, 1);
    await ovs.addPort(BR, b.peer, 2);
    const server = b.spawn(['iperf3', '-s', '--forceflush', '-B', b.ip]);
    await new Promise<void>((resolve, reject) => {
      server.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('Server listening')) resolve(); });
      server.once('exit', (code) => reject(new Error(`iperf3 server exited ${code}`)));
    });

    const results: Record<string, Array<{ gbps: number; retransmits: number }>> = { plain: [], shift: [], slow: [] };
    // Alternate plain and shift so drift in machine load hits both alike.
    for (let round = 1; round <= ROUNDS; round++) {
      for (const kind of ['plain', 'shift'] as const) {
        await setFlows(ovs, tmp, kind);
        const r = await iperf(a, b);
        results[kind].push(r);
        console.log(`round ${round} ${kind.padEnd(5)} ${r.gbps.toFixed(3)} Gbit/s, ${r.retransmits} retransmits`);
      }
    }
    // Contrast: the same shifting flows when the datapath "lacks" the actions, so every
    // packet is an upcall executed by ovs-vswitchd (what the earlier prototype always did).
    await ovs.appctl('dpif/set-dp-features', BR, 'tcp_seq_ack_action', 'false');
    await setFlows(ovs, tmp, 'shift');
    const slow = await iperf(a, b);
    results.slow.push(slow);
    console.log(`slow-path shift ${slow.gbps.toFixed(3)} Gbit/s, ${slow.retransmits} retransmits`);
    const dump = await ovs.appctl('dpctl/dump-flows');
    if (!/slow_path\(action\)/.test(dump)) throw new Error(`slow-path run did not use the slow path:\n${dump}`);

    server.kill('SIGTERM');
    await once(server, 'exit');

    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const plain = mean(results.plain.map((r) => r.gbps));
    const shift = mean(results.shift.map((r) => r.gbps));
    const ratios = results.shift.map((r, i) => r.gbps / results.plain[i].gbps);
    console.log('');
    console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), netdev datapath, ${SECONDS} s per iperf3 run, ${ROUNDS} rounds`);
    console.log(`plain  mean ${plain.toFixed(3)} Gbit/s  (${results.plain.map((r) => r.gbps.toFixed(3)).join(', ')})`);
    console.log(`shift  mean ${shift.toFixed(3)} Gbit/s  (${results.shift.map((r) => r.gbps.toFixed(3)).join(', ')})`);
    console.log(`slow   ${slow.gbps.toFixed(3)} Gbit/s`);
    console.log(`ratio shift/plain: mean of means ${(shift / plain).toFixed(3)}, per round ${ratios.map((x) => x.toFixed(3)).join(', ')}`);
    console.log(`ratio slow/plain: ${(slow.gbps / plain).toFixed(3)}`);
    console.log(`target >= 0.9: ${shift / plain >= 0.9 ? 'met' : 'MISSED'}`);
  } finally {
    await net.destroy();
    await ovs.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (!reexecInOwnNetns()) main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
