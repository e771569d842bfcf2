// Several switches on a real Open vSwitch (Debian's stock build, userspace datapath): three
// bridges in a triangle joined by veth pairs, a host in a network namespace on each, and the
// controller with `fabric: true`. Links are discovered by LLDP; hosts on different switches ping
// and carry TCP; broadcasts cross the triangle without looping; a link on the path taken down in
// the middle of a transfer re-routes it round the third switch and the data arrives intact.
//
//      h1 ─1─ s1 ─2──────3─ s2 ─1─ h2          sN = bridge with datapath id 0xaN
//              3            2
//               \          /
//                2        3
//                   s3
//                   1
//                   h3
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ovs, STOCK_PREFIX } from '../lib/ovs.ts';
import { linkBridges } from '../../topo/lib/links.ts';
import { receive } from '../lib/receive.ts';
import { TestNet, type Host } from '../lib/netns.ts';
import { startController } from '../lib/controller.ts';
import { topologyView } from '../../controller/api/topology.ts';
import { run, waitFor } from '../lib/exec.ts';
import type { Controller } from '../../controller/controller.ts';
import type { FabricApp } from '../../controller/fabric/fabric-app.ts';
import type { SwitchConnection } from '../../controller/datapath/switch-connection.ts';
import type { Link } from '../../controller/fabric/topology.ts';

const ID = randomBytes(2).toString('hex');
const BRIDGES = ['a', 'b', 'c'].map((s) => `tmtbr${ID}${s}`);
const DPIDS = ['00000000000000a1', '00000000000000a2', '00000000000000a3'];
const OF13 = ['-O', 'OpenFlow13'];

/** A fabric forwarding flow of `bridge` for `mac`: its output port and packet count. */
async function pathFlow(ovs: Ovs, bridge: string, mac: string): Promise<{ port: number; packets: number } | undefined> {
  const out = await ovs.ofctl(...OF13, 'dump-flows', bridge, `cookie=0x0400000000000000/-1,dl_dst=${mac}`);
  const m = /n_packets=(\d+),.*actions=output:(\d+)/.exec(out);
  return m ? { packets: Number(m[1]), port: Number(m[2]) } : undefined;
}

describe('fabric of three switches with a real Open vSwitch', function () {
  this.timeout(60000);
  let ovs: Ovs;
  let net: TestNet;
  let controller: Controller;
  let fabric: FabricApp;
  let hosts: Host[];
  let tmp: string;
  const links: string[] = [];
  const downs: { link: Link; why: string }[] = [];

  /** A link between bridges i and j (topo/lib/links.ts); its i-side veth is `${net.id}-l<i+1><j+1>a`. */
  async function addLink(i: number, j: number, portI: number, portJ: number): Promise<void> {
    links.push(await linkBridges(ovs, `${net.id}-l${i + 1}${j + 1}`, BRIDGES[i]!, portI, BRIDGES[j]!, portJ));
  }

  const nonLldpPacketIns = () => controller.stats.packetIns - fabric.stats.lldpReceived;

  before(async () => {
    tmp = mkdtempSync('/tmp/tmt-data-');
    const started = await startController([], { fabric: true });
    controller = started.controller;
    fabric = controller.fabric!;
    assert.ok(fabric, 'fabric: true puts the fabric app in place of the learning switch');
    fabric.on('link_down', (link: Link, why: string) => downs.push({ link, why }));
    ovs = await Ovs.start({ prefix: STOCK_PREFIX });
    net = TestNet.create();
    hosts = [await net.addHost('h1', '10.0.0.1/24'), await net.addHost('h2', '10.0.0.2/24'), await net.addHost('h3', '10.0.0.3/24')];
    const ready = new Set<string>();
    controller.on('switch_ready', (sw: SwitchConnection) => ready.add(sw.describe()));
    for (let i = 0; i < 3; i++) {
      await ovs.addBridge(BRIDGES[i]!, { controller: started.target, datapathId: DPIDS[i] });
      await ovs.addPort(BRIDGES[i]!, hosts[i]!.peer, 1);
    }
    await addLink(0, 1, 2, 3);
    await addLink(1, 2, 2, 3);
    await addLink(2, 0, 2, 3);
    await waitFor(() => ready.size === 3, 'three switches ready', 20000);
    await waitFor(() => fabric.topology.activeLinks().length === 3, 'three links discovered by LLDP', 15000);
  });

  after(async () => {
    await net?.destroy();
    for (const l of links) await run('ip', ['link', 'del', l], { allowFail: true });
    await ovs?.stop();
    await controller?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('discovers the triangle by LLDP and spans it with a two-link tree', () => {
    const show = (l: Link) => `${l.a.dpid.slice(-2)}:${l.a.port}-${l.b.dpid.slice(-2)}:${l.b.port}`;
    assert.deepEqual(fabric.topology.activeLinks().map(show), ['a1:2-a2:3', 'a1:3-a3:2', 'a2:2-a3:3']);
    assert.deepEqual(fabric.topology.treeLinks().map(show), ['a1:2-a2:3', 'a1:3-a3:2']);
    // The operator's view (GET /api/topology) draws the same links, the tree marked.
    assert.deepEqual(topologyView(controller).links.map((l) => `${show({ ...l, source: 'lldp', seen: 0 })}${l.tree ? ' tree' : ''}`), ['a1:2-a2:3 tree', 'a1:3-a3:2 tree', 'a2:2-a3:3']);
    assert.equal(controller.stats.appErrors, 0);
  });

  it('hosts on different switches ping each other; each is learnt at its own switch only', async () => {
    const [h1, h2, h3] = hosts as [Host, Host, Host];
    for (const [a, b] of [[h1, h2], [h1, h3], [h2, h3]] as const) {
      const r = await a.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', b.ip]);
      assert.match(r.stdout, /3 received/, `${a.name} → ${b.name}`);
    }
    for (let i = 0; i < 3; i++) {
      const at = fabric.hosts.get(hosts[i]!.ip);
      assert.deepEqual(at && { dpid: at.dpid, port: at.port, mac: at.mac }, { dpid: DPIDS[i], port: 1, mac: hosts[i]!.mac });
    }
    // Destination flows: on s1, h2 is through port 2 (direct link to s2), h1 on port 1.
    assert.equal((await pathFlow(ovs, BRIDGES[0]!, h2.mac))?.port, 2);
    assert.equal((await pathFlow(ovs, BRIDGES[0]!, h1.mac))?.port, 1);
    assert.equal((await pathFlow(ovs, BRIDGES[1]!, h1.mac))?.port, 3);
  });

  it('floods broadcasts along the tree: each reaches every other host exactly once, three Packet-Ins each', async () => {
    const [h1, h2, h3] = hosts as [Host, Host, Host];
    const receivers = [h2, h3].map((h) => {
      const p = h.spawn(['socat', '-u', 'UDP-RECV:9999', 'STDOUT']);
      const r = { p, out: '' };
      p.stdout!.on('data', (d) => (r.out += d));
      return r;
    });
    await waitFor(async () => (await h3.exec(['ss', '-Hlun', 'sport = :9999'])).stdout.includes('9999') && (await h2.exec(['ss', '-Hlun', 'sport = :9999'])).stdout.includes('9999'), 'UDP receivers');
    const floods = fabric.stats.floods;
    const ins = nonLldpPacketIns();
    await h1.exec(['sh', '-c', 'for i in $(seq 1 20); do echo bc$i | socat -u STDIN UDP-DATAGRAM:10.0.0.255:9999,broadcast; done']);
    await waitFor(() => receivers.every((r) => r.out.includes('bc20\n')), 'the broadcasts at h2 and h3', 5000);
    await new Promise((r) => setTimeout(r, 500)); // any copies a loop would make
    for (const r of receivers) {
      const lines = r.out.split('\n').filter(Boolean);
      assert.equal(lines.length, 20, `each broadcast once: ${lines.join(' ')}`);
      assert.equal(new Set(lines).size, 20);
      r.p.kill();
    }
    assert.equal(fabric.stats.floods - floods, 60, 'one flood per switch per broadcast');
    assert.ok(nonLldpPacketIns() - ins <= 60, `${nonLldpPacketIns() - ins} Packet-Ins`);
  });

  it('carries a 4 MB TCP transfer between switches intact', async () => {
    const [h1, , h3] = hosts as [Host, Host, Host];
    const data = randomBytes(4 * 1024 * 1024);
    const file = join(tmp, 'p4');
    writeFileSync(file, data);
    const got = await receive(h3, 5001, () => h1.exec(['sh', '-c', `nc -N ${h3.ip} 5001 < ${file}`], { timeoutMs: 30000 }));
    assert.equal(got, createHash('sha256').update(data).digest('hex'));
  });

  it('a link on the path goes down mid-transfer: the transfer completes round the third switch, intact, without a storm', async () => {
    const [h1, h2] = hosts as [Host, Host, Host];
    const data = randomBytes(8 * 1024 * 1024);
    const file = join(tmp, 'p8');
    writeFileSync(file, data);
    const ins = nonLldpPacketIns();
    const viaS3 = (await pathFlow(ovs, BRIDGES[2]!, h2.mac))?.packets ?? 0;
    // 64 chunks of 128 KiB, 50 ms apart: a few seconds in flight, long enough to cut a link under it.
    const sender = `for i in $(seq 0 63); do dd if=${file} bs=131072 skip=$i count=1 status=none; sleep 0.05; done | nc -N ${h2.ip} 5002`;
    let cut = 0;
    const got = await receive(h2, 5002, async () => {
      const send = h1.exec(['sh', '-c', sender], { timeoutMs: 40000 });
      await new Promise((r) => setTimeout(r, 1200));
      cut = Date.now();
      await run('ip', ['link', 'set', `${net.id}-l12a`, 'down']);
      return send;
    });
    assert.ok(cut > 0);
    assert.equal(got, createHash('sha256').update(data).digest('hex'), 'sha256 of what arrived');
    // The fabric saw the link go, and both directions now go round by s3.
    assert.ok(downs.some((d) => d.link.a.dpid === DPIDS[0] && d.link.a.port === 2), JSON.stringify(downs));
    assert.equal(fabric.topology.activeLinks().length, 2);
    assert.deepEqual(fabric.topology.path(DPIDS[0]!, DPIDS[1]!)?.map((h) => h.dpid), [DPIDS[0], DPIDS[2], DPIDS[1]]);
    assert.equal((await pathFlow(ovs, BRIDGES[0]!, h2.mac))?.port, 3, 's1 sends h2 traffic to s3');
    const s3 = await pathFlow(ovs, BRIDGES[2]!, h2.mac);
    assert.equal(s3?.port, 3, 's3 sends it on to s2');
    assert.ok(s3!.packets > viaS3 + 100, `the transfer's packets crossed s3 (${s3!.packets} packets)`);
    assert.equal((await pathFlow(ovs, BRIDGES[1]!, h1.mac))?.port, 2, 'and the ACKs come back the same way');
    // Seen: none at all (the re-pointed flows carry everything); a storm would be thousands.
    assert.ok(nonLldpPacketIns() - ins < 100, `${nonLldpPacketIns() - ins} Packet-Ins during the transfer: no storm`);
  });

  it('the link comes back: rediscovered, and traffic takes the direct way again', async () => {
    const [h1, h2] = hosts as [Host, Host, Host];
    await run('ip', ['link', 'set', `${net.id}-l12a`, 'up']);
    await waitFor(() => fabric.topology.activeLinks().length === 3, 'the link rediscovered', 10000);
    await waitFor(async () => (await pathFlow(ovs, BRIDGES[0]!, h2.mac))?.port === 2, 's1 back on the direct link', 5000);
    const r = await h1.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', h2.ip]);
    assert.match(r.stdout, /3 received/);
    assert.equal(controller.stats.appErrors, 0);
  });
});
