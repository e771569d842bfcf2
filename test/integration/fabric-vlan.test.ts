// VLANs across a fabric on a real Open vSwitch (Debian's stock build, userspace datapath): the
// triangle of fabric.test.ts with two hosts per bridge on access ports of VLAN 10, VLAN 20 or no
// VLAN, and the controller with `fabric.vlans`. Hosts of one VLAN on different switches reach each
// other over the links (ping, TCP, IPv6), tagged on the links and untagged at their ports; nothing
// crosses from one VLAN to another: not ARP, not a broadcast, not a unicast to a known MAC, not a
// frame a host tags itself. Every check of isolation reads what the hosts (or a link) really saw.
//
//      h1 ─1─ s1 ─2──────3─ s2 ─1─ h2          VLAN 10: h1, h2       sN = bridge with datapath id 0xaN
//      h4 ─4─  3            2 ─4─ h5           VLAN 20: h4, h3       port 1 and 4: hosts
//               \          /                   no VLAN: h5, h6       ports 2, 3: links (trunks)
//                2        3
//                   s3
//                  1  4
//                 h3  h6
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Ovs, STOCK_PREFIX } from '../lib/ovs.ts';
import { linkBridges } from '../../topo/lib/links.ts';
import { receive } from '../lib/receive.ts';
import { TestNet, type Host } from '../lib/netns.ts';
import { Capture } from '../lib/capture.ts';
import { startController } from '../lib/controller.ts';
import { run, start, stop, waitFor } from '../lib/exec.ts';
import { buildIcmpEchoFrame, parseFrame, readPcap, type ParsedFrame } from '../../controller/packet/index.ts';
import type { Controller } from '../../controller/controller.ts';
import type { FabricApp } from '../../controller/fabric/fabric-app.ts';
import type { SwitchConnection } from '../../controller/datapath/switch-connection.ts';

const ID = randomBytes(2).toString('hex');
const BRIDGES = ['a', 'b', 'c'].map((s) => `tmtbr${ID}${s}`);
const DPIDS = ['00000000000000a1', '00000000000000a2', '00000000000000a3'];
const OF13 = ['-O', 'OpenFlow13'];
/** Host i: its bridge, port, VLAN. */
const PLACES = [
  { name: 'h1', sw: 0, port: 1, vlan: 10 },
  { name: 'h2', sw: 1, port: 1, vlan: 10 },
  { name: 'h3', sw: 2, port: 1, vlan: 20 },
  { name: 'h4', sw: 0, port: 4, vlan: 20 },
  { name: 'h5', sw: 1, port: 4 },
  { name: 'h6', sw: 2, port: 4 },
] as const;
const EDGE_GUARD = 'cookie=0x0400000000000003/-1';

/** tcpdump on an interface of the root namespace (a link's veth); `stop` returns the parsed frames. */
class LinkCapture {
  private constructor(private readonly child: ChildProcess, private readonly dir: string) {}
  static readonly running = new Set<LinkCapture>();

  static async start(iface: string, filter: string): Promise<LinkCapture> {
    const dir = mkdtempSync('/tmp/tmt-cap-');
    const child = start('tcpdump', ['-i', iface, '-nn', '-U', '--immediate-mode', '-Z', 'root', '-B', '8192', '-w', join(dir, 'cap.pcap'), filter]);
    const cap = new LinkCapture(child, dir);
    LinkCapture.running.add(cap);
    let err = '';
    await new Promise<void>((resolve, reject) => {
      child.stderr!.on('data', (d: Buffer) => { err += d.toString(); if (err.includes('listening on')) resolve(); });
      child.once('exit', (code) => reject(new Error(`tcpdump on ${iface} exited ${code}: ${err.trim()}`)));
    }).catch(async (e) => { await cap.stop(); throw e; });
    return cap;
  }

  async stop(): Promise<ParsedFrame[]> {
    LinkCapture.running.delete(this);
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const gone = once(this.child, 'exit');
      this.child.kill('SIGINT');
      await gone;
    }
    let frames: ParsedFrame[] = [];
    try {
      const pcap = readPcap(readFileSync(join(this.dir, 'cap.pcap')));
      if (pcap.ok) frames = pcap.value.frames.map((f) => parseFrame(f.data)).filter((p) => p.ok).map((p) => p.value);
    } catch { /* nothing captured */ }
    rmSync(this.dir, { recursive: true, force: true });
    return frames;
  }
}

describe('VLANs across a fabric of three switches with a real Open vSwitch', function () {
  this.timeout(90000);
  let ovs: Ovs;
  let net: TestNet;
  let controller: Controller;
  let fabric: FabricApp;
  let hosts: Host[];
  let tmp: string;
  const links: string[] = [];
  const host = (name: string): Host => hosts.find((h) => h.name === name)!;

  /** A link between bridges i and j (topo/lib/links.ts); its i-side veth is `${net.id}-l<i+1><j+1>a`. */
  async function addLink(i: number, j: number, portI: number, portJ: number): Promise<void> {
    links.push(await linkBridges(ovs, `${net.id}-l${i + 1}${j + 1}`, BRIDGES[i]!, portI, BRIDGES[j]!, portJ));
  }

  const ping = (from: Host, to: string, count = 3, extra: string[] = []) => from.exec(['ping', ...extra, '-c', String(count), '-i', '0.2', '-W', '2', to], { allowFail: true });
  const flows = (bridge: number, filter: string) => ovs.ofctl(...OF13, 'dump-flows', BRIDGES[bridge]!, filter);

  before(async () => {
    tmp = mkdtempSync('/tmp/tmt-data-');
    const access = PLACES.filter((p) => 'vlan' in p).map((p) => ({ port: `${DPIDS[p.sw]}:${p.port}`, vlan: (p as { vlan: number }).vlan }));
    const started = await startController([], { fabric: { vlans: { access } } });
    controller = started.controller;
    fabric = controller.fabric!;
    assert.ok(fabric?.vlanPlan, 'fabric.vlans configured');
    ovs = await Ovs.start({ prefix: STOCK_PREFIX });
    net = TestNet.create();
    hosts = [];
    for (const [i, p] of PLACES.entries()) hosts.push(await net.addHost(p.name, `10.0.0.${i + 1}/24`));
    const ready = new Set<string>();
    controller.on('switch_ready', (sw: SwitchConnection) => ready.add(sw.describe()));
    for (let i = 0; i < 3; i++) await ovs.addBridge(BRIDGES[i]!, { controller: started.target, datapathId: DPIDS[i] });
    for (const [i, p] of PLACES.entries()) await ovs.addPort(BRIDGES[p.sw]!, hosts[i]!.peer, p.port);
    await addLink(0, 1, 2, 3);
    await addLink(1, 2, 2, 3);
    await addLink(2, 0, 2, 3);
    await waitFor(() => ready.size === 3, 'three switches ready', 20000);
    await waitFor(() => fabric.topology.activeLinks().length === 3, 'three links discovered by LLDP', 15000);
  });

  after(async () => {
    for (const c of [...LinkCapture.running]) await c.stop();
    await net?.destroy();
    for (const l of links) await run('ip', ['link', 'del', l], { allowFail: true });
    await ovs?.stop();
    await controller?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('discovers the triangle; the host ports (no link there) drop tagged frames', async () => {
    assert.equal(fabric.topology.activeLinks().length, 3);
    // Guards follow discovery: poll until the links' ports have lost theirs.
    for (let i = 0; i < 3; i++) {
      await waitFor(async () => [...(await flows(i, EDGE_GUARD)).matchAll(/in_port=(\d+)/g)].map((m) => Number(m[1])).sort().join() === '1,4', `edge guards of ${BRIDGES[i]} on ports 1 and 4 only`, 5000);
    }
    // As docs/fabric.md shows them: the guard drops tagged frames, access ports' leftovers and advertisements go to the controller.
    assert.match(await flows(0, EDGE_GUARD), /priority=14,in_port=1,vlan_tci=0x1000\/0x1000 actions=drop/);
    assert.match(await flows(0, 'cookie=0x0400000000000002/-1'), /priority=11,in_port=4 actions=CONTROLLER:65535/);
    assert.match(await flows(0, 'cookie=0x0400000000000004/-1'), /priority=13,icmp6,icmp_type=136 actions=CONTROLLER:65535/);
  });

  it('hosts of one VLAN on different switches ping each other; the host table names their VLAN', async () => {
    for (const [a, b] of [['h1', 'h2'], ['h4', 'h3'], ['h5', 'h6']] as const) {
      const r = await ping(host(a), host(b).ip);
      assert.match(r.stdout, /3 received/, `${a} → ${b}: ${r.stdout}`);
    }
    for (const [i, p] of PLACES.entries()) {
      const at = fabric.hosts.get(hosts[i]!.ip);
      assert.deepEqual(at && { dpid: at.dpid, port: at.port, mac: at.mac, vlan: at.vlan }, { dpid: DPIDS[p.sw], port: p.port, mac: hosts[i]!.mac, vlan: 'vlan' in p ? p.vlan : undefined }, p.name);
    }
    // The flows OVS holds for h2: s1 tags what h1 sends (or a link brings) and sends it to s2, which untags it for h2.
    const h2 = host('h2').mac;
    assert.match(await flows(0, `cookie=0x0400000a00000000/-1,dl_dst=${h2}`), /in_port=1,vlan_tci=0x0000\/0x1fff,dl_dst=[0-9a-f:]+ actions=push_vlan:0x8100,set_field:4106->vlan_vid,output:2/);
    assert.match(await flows(1, `cookie=0x0400000a00000000/-1,dl_dst=${h2}`), /dl_vlan=10,dl_dst=[0-9a-f:]+ actions=pop_vlan,output:1/);
  });

  it('frames are tagged with their VLAN on the link and untagged at the host\'s port', async () => {
    const [h1, h2] = [host('h1'), host('h2')];
    const onLink = await LinkCapture.start(`${net.id}-l12a`, 'not ether proto 0x88cc');
    const atH2 = await Capture.start(h2, 'icmp or (vlan and icmp)');
    const r = await ping(h1, h2.ip, 5);
    assert.match(r.stdout, /5 received/);
    const linkFrames = (await onLink.stop()).filter((f) => f.ipv4 && f.icmp);
    await atH2.stop();
    const echoes = linkFrames.filter((f) => [h1.ip, h2.ip].includes(f.ipv4!.src) && [h1.ip, h2.ip].includes(f.ipv4!.dst));
    // What is checked is the tag of each; a capture under load may miss one or two of the ten.
    assert.ok(echoes.length >= 5, `${echoes.length} echo frames on the link s1–s2`);
    for (const f of echoes) assert.deepEqual(f.eth.vlans, [10], 'tagged with VLAN 10 on the link');
    const hostFrames = atH2.frames().filter((f) => f.icmp);
    assert.ok(hostFrames.length >= 5, `${hostFrames.length} echo frames at h2`);
    for (const f of hostFrames) assert.deepEqual(f.eth.vlans, [], 'untagged at h2');
  });

  it('carries a 4 MB TCP transfer within VLAN 10 across switches, intact', async () => {
    const [h1, h2] = [host('h1'), host('h2')];
    const data = randomBytes(4 * 1024 * 1024);
    const file = join(tmp, 'p4');
    writeFileSync(file, data);
    const got = await receive(h2, 5001, () => h1.exec(['sh', '-c', `nc -N ${h2.ip} 5001 < ${file}`], { timeoutMs: 30000 }));
    assert.equal(got, createHash('sha256').update(data).digest('hex'));
  });

  it('nothing reaches VLAN 10 from elsewhere: ARP unanswered, ping fails, even to a MAC it knows', async () => {
    const [h1, h2, h3, h4, h5] = ['h1', 'h2', 'h3', 'h4', 'h5'].map(host) as [Host, Host, Host, Host, Host];
    const atH1 = await Capture.start(h1, 'arp or icmp');
    // h3: VLAN 20 on another switch; h4: VLAN 20 on h1's own switch; h5: no VLAN.
    for (const h of [h3, h4, h5]) {
      const r = await ping(h, h1.ip, 2);
      assert.match(r.stdout, /0 received/, `${h.name} → h1`);
      assert.doesNotMatch((await h.exec(['ip', 'neigh', 'show', h1.ip, 'dev', 'eth0'])).stdout, new RegExp(h1.mac), `${h.name} never learnt h1's MAC`);
    }
    // A unicast to h1's very MAC (a static neighbour entry: no ARP needed) goes nowhere either.
    for (const h of [h4, h5]) {
      await h.exec(['ip', 'neigh', 'replace', h1.ip, 'lladdr', h1.mac, 'dev', 'eth0', 'nud', 'permanent']);
      const r = await ping(h, h1.ip, 2);
      assert.match(r.stdout, /0 received/, `${h.name} → h1's MAC`);
      await h.exec(['ip', 'neigh', 'del', h1.ip, 'dev', 'eth0']);
    }
    // What h1 saw, once a frame from its own VLAN, sent after all of those, has arrived.
    assert.match((await ping(h2, h1.ip, 1)).stdout, /1 received/);
    await waitFor(() => atH1.frames().some((f) => f.ipv4?.src === h2.ip), 'h2\'s ping at h1');
    await atH1.stop();
    const strangers = new Set([h3, h4, h5].flatMap((h) => [h.mac, h.ip]));
    const leaked = atH1.frames().filter((f) => strangers.has(f.eth.src) || strangers.has(f.arp?.senderIp ?? '') || strangers.has(f.ipv4?.src ?? ''));
    assert.deepEqual(leaked.map((f) => `${f.eth.src} ${f.arp ? 'arp' : 'icmp'}`), []);
  });

  it('a broadcast of VLAN 10 reaches VLAN 10 only: never VLAN 20\'s ports nor those of no VLAN', async () => {
    const [h1, h2, h3, h4, h5, h6] = PLACES.map((p) => host(p.name)) as [Host, Host, Host, Host, Host, Host];
    const caps = new Map<Host, Capture>();
    for (const h of [h3, h4, h5, h6]) caps.set(h, await Capture.start(h, 'udp port 9999'));
    const recv = h2.spawn(['socat', '-u', 'UDP-RECV:9999', 'STDOUT']);
    let out = '';
    recv.stdout!.on('data', (d) => (out += d));
    await waitFor(async () => (await h2.exec(['ss', '-Hlun', 'sport = :9999'])).stdout.includes('9999'), 'UDP receiver at h2');
    const floods = fabric.stats.floods;
    await h1.exec(['sh', '-c', 'for i in $(seq 1 20); do echo v10-$i | socat -u STDIN UDP-DATAGRAM:10.0.0.255:9999,broadcast; done']);
    await waitFor(() => out.includes('v10-20\n'), 'the broadcasts at h2', 5000);
    await stop(recv);
    const lines = out.split('\n').filter(Boolean);
    assert.equal(lines.length, 20, `each broadcast once at h2: ${lines.join(' ')}`);
    assert.equal(new Set(lines).size, 20);
    // A copy that leaked would reach each of them before a broadcast sent later on the same way:
    // VLAN 20's from h4 (s1 → s3) for h3, no VLAN's from h5 (s2 → s1 → s3) for h6; h4 and h5 hang
    // off s1 and s2, which flooded the VLAN 10 broadcasts before h2 had them.
    await h4.exec(['sh', '-c', 'echo v20-end | socat -u STDIN UDP-DATAGRAM:10.0.0.255:9999,broadcast']);
    await h5.exec(['sh', '-c', 'echo none-end | socat -u STDIN UDP-DATAGRAM:10.0.0.255:9999,broadcast']);
    const text = (h: Host) => caps.get(h)!.frames().map((f) => f.payload.toString().trim());
    await waitFor(() => text(h3).includes('v20-end') && text(h6).includes('none-end'), 'the later broadcasts at h3 and h6', 5000);
    for (const [h, c] of caps) {
      await c.stop();
      assert.deepEqual(text(h).filter((t) => t.startsWith('v10')), [], `no VLAN 10 broadcast at ${h.name}`);
    }
    assert.ok(fabric.stats.floods - floods >= 60, 'each broadcast flooded at each switch');
  });

  it('a host in no VLAN that tags its frames with VLAN 10 reaches nobody: its port drops them', async () => {
    const [h1, h2, h5] = [host('h1'), host('h2'), host('h5')];
    // s2 holds a flow for h1 in VLAN 10 (h2 pinged h1): a tagged frame to h1 would match it.
    assert.match(await flows(1, `cookie=0x0400000a00000000/-1,dl_dst=${h1.mac}`), /dl_vlan=10/);
    const before = await guardPackets(1, 4);
    const atH1 = await Capture.start(h1, 'icmp or (vlan and icmp)');
    try {
      // No 8021q module here for a VLAN interface: h5 writes the tagged echo requests itself.
      const frames = [1, 2, 3].map((seq) => buildIcmpEchoFrame({ ethSrc: h5.mac, ethDst: h1.mac, ipSrc: h5.ip, ipDst: h1.ip, type: 'request', id: 77, seq, vlans: [10] }).toString('hex'));
      await h5.exec(['python3', '-c', 'import socket, sys\ns = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\ns.bind(("eth0", 0))\nfor f in sys.argv[1:]: s.send(bytes.fromhex(f))', ...frames]);
      await waitFor(async () => await guardPackets(1, 4) >= before + 3, 's2 dropping them at h5\'s port', 5000);
      // Anything that got through would be at h1 before a ping sent after it.
      assert.match((await ping(h2, h1.ip, 1)).stdout, /1 received/);
      await waitFor(() => atH1.frames().some((f) => f.ipv4?.src === h2.ip), 'h2\'s ping at h1');
    } finally {
      await atH1.stop();
    }
    assert.deepEqual(atH1.frames().filter((f) => f.eth.src === h5.mac).length, 0, 'nothing from h5 at h1');
  });

  it('IPv6 within VLAN 10 works and its addresses are learnt with their VLAN; not across VLANs', async () => {
    const [h1, h2, h3] = [host('h1'), host('h2'), host('h3')];
    for (const [h, addr] of [[h1, 'fd00::1'], [h2, 'fd00::2'], [h3, 'fd00::3']] as const) {
      await h.exec(['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.eth0.disable_ipv6=0', 'net.ipv6.conf.eth0.router_solicitations=0']);
      await h.exec(['ip', '-6', 'addr', 'add', `${addr}/64`, 'dev', 'eth0', 'nodad']);
    }
    const r = await ping(h1, 'fd00::2', 3, ['-6']);
    assert.match(r.stdout, /3 received/, r.stdout);
    await waitFor(() => fabric.hosts.has('fd00::1') && fabric.hosts.has('fd00::2'), 'IPv6 addresses in the host table', 5000)
      .catch((e) => { throw new Error(`${(e as Error).message}; the table: ${[...fabric.hosts.keys()].join(' ')}; ${JSON.stringify(fabric.stats)}; app errors ${controller.stats.appErrors}`); });
    const at = (ip: string) => { const h = fabric.hosts.get(ip); return h && { mac: h.mac, dpid: h.dpid, port: h.port, vlan: h.vlan }; };
    assert.deepEqual(at('fd00::1'), { mac: h1.mac, dpid: DPIDS[0], port: 1, vlan: 10 });
    // h2's answers were unicast to h1, along flows IPv4 traffic had installed: the advertisement trap is what shows it.
    assert.deepEqual(at('fd00::2'), { mac: h2.mac, dpid: DPIDS[1], port: 1, vlan: 10 });
    assert.match((await ping(h3, 'fd00::1', 2, ['-6'])).stdout, /0 received/, 'VLAN 20 → VLAN 10');
    assert.equal(controller.stats.appErrors, 0);
  });

  /** Packets the edge guard at `port` of bridge `bridge` dropped. */
  async function guardPackets(bridge: number, port: number): Promise<number> {
    const m = /n_packets=(\d+)/.exec(await flows(bridge, `${EDGE_GUARD},in_port=${port}`));
    return m ? Number(m[1]) : 0;
  }
});
