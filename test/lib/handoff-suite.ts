// The end-to-end handoff scenarios, run against a given OVS build: the patched switch (fast path)
// and Debian's stock switch (controller relay) run the same suite.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { HandoffBed, DropRule, FABRIC_DPIDS, SERVICE, endClient } from './handoff-net.ts';
import { Capture, resetsAt, type Segment } from './capture.ts';
import { run, waitFor } from './exec.ts';
import { blobSha } from '../../topo/apps/blob.mjs';
import { ICMPV6_NEIGHBOR_SOLICIT, parseFrame, seqSub } from '../../controller/packet/index.ts';
import type { CaptureRecord } from '../../controller/controller.ts';
import { startApi, http, TOKEN } from '../integration/api-helpers.ts';

/** `family` 6: the same scenarios over IPv6, on a dual-stack bed and service (default 4). */
/** `fabric`: the same on three switches, client, server 1 and server 2 each on its own (HandoffBed's fabric). */
export interface SuiteOptions { prefix: string; mode: 'fastpath' | 'relay'; bigTransferBytes: number; migrations: number; lossMigrations: number; family?: 4 | 6; fabric?: boolean }

/** The controller's replay timeout in the loss tests: well below a Linux SYN-ACK retransmission (1 s). */
const REPLAY_MS = 200;

/** ovs-ofctl's flow lines without their counters and ages, sorted: what a reinstall must reproduce. */
const flowShape = (flows: string[]) => flows.map((l) => l.replace(/\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?/g, '').trim()).sort();

export function defineHandoffSuite(o: SuiteOptions): void {
  const v6 = o.family === 6;
  // Addresses and how ovs-ofctl and nft name them, in the suite's family.
  const CLIENT = v6 ? 'fd00::2' : '10.0.0.2';
  const SVC = v6 ? 'fd00::1' : SERVICE.ip;
  const addr = (ip: string) => ip.replace(/\./g, '\\.');
  const [SRC, DST, SET_SRC, SET_DST, NFT] = v6 ? ['ipv6_src', 'ipv6_dst', 'ipv6_src', 'ipv6_dst', 'ip6'] : ['nw_src', 'nw_dst', 'ip_src', 'ip_dst', 'ip'];
  /** An ovs-ofctl match on a connection's addresses, as a regex source. */
  const between = (src: string, dst: string) => `${SRC}=${addr(src)},${DST}=${addr(dst)}`;
  const ipOfServer = (n: number) => (v6 ? `fd00::${n}` : `10.0.0.${n}`);

  /** nft match words: client segments from `port` to the service port, by TCP flags under `mask`. */
  const fromClient = (port: number, mask: string, flags: string) => [NFT, 'saddr', CLIENT, 'tcp', 'sport', String(port), 'tcp', 'dport', String(SERVICE.port), 'tcp', 'flags', '&', mask, '==', flags];
  const synFrom = (port: number) => fromClient(port, '(syn|ack)', 'syn');
  const dataFrom = (port: number) => fromClient(port, 'psh', 'psh');
  const synAckTo = (port: number) => [NFT, 'daddr', CLIENT, 'tcp', 'dport', String(port), 'tcp', 'flags', '&', '(syn|ack)', '==', 'syn|ack'];

  let bed: HandoffBed;
  before(async function () {
    this.timeout(120000);
    bed = await HandoffBed.create({ prefix: o.prefix, family: o.family, fabric: o.fabric });
    assert.equal(bed.engine.modeOf(bed.controller.switches[0].describe()), o.mode, `switch mode should be ${o.mode}`);
  });
  after(async () => { await bed?.destroy(); });

  /** Captures of the client's traffic on the named servers. */
  async function captures(...servers: string[]): Promise<Record<string, Capture>> {
    const caps: Record<string, Capture> = {};
    for (const s of servers) caps[s] = await Capture.start(bed.servers[s], `tcp and host ${CLIENT}`);
    return caps;
  }
  const stopAll = async (caps: Record<string, Capture>) => { for (const c of Object.values(caps)) await c.stop(); };

  /**
   * A server the connection(s) left: per client port, the number of departures (distinct resets:
   * the engine repeats each one, identically, in case it is lost), each at its RCV.NXT exactly
   * (docs/migration.md, step 6.6), and no socket of that port left there.
   */
  async function leftBehind(cap: Capture, server: string, resets: Record<number, number>): Promise<Segment[]> {
    const got = (segs: Segment[], port: number) => resetsAt(segs, { ip: CLIENT, port });
    await waitFor(() => Object.entries(resets).every(([p, n]) => new Set(got(cap.segments(), Number(p)).map((x) => x.seq)).size >= n), `${server} to get its resets`, 10000);
    const segs = await cap.stop();
    for (const [p, n] of Object.entries(resets)) {
      const r = got(segs, Number(p));
      const distinct = new Set(r.map((x) => x.seq)).size;
      assert.equal(distinct, n, `${server} got ${distinct} distinct reset(s) on client port ${p}, expected ${n}`);
      for (const x of r) assert.equal(x.seq, x.rcvNxt, `the reset ${server} got on client port ${p} carries its RCV.NXT`);
      await bed.noSockets(server, Number(p));
    }
    return segs;
  }

  const isnOf = (segs: Segment[], server: string, port: number) => segs.find((s) => s.syn && s.src === bed.ipOf(bed.servers[server]) && s.dport === port)!.seq;

  it('migrates on the first segment: the client keeps talking to server 1 and is served by server 2', async () => {
    const stop = bed.autoVerdict('MIGRATE');
    const c = bed.scriptClient();
    const caps = await captures('server1', 'server2');
    try {
      const { id, port } = await bed.open(c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'hello' }), { ok: true, reply: 'server2 hello' });
      assert.deepEqual(await c.cmd({ op: 'send', line: 'again' }), { ok: true, reply: 'server2 again' });
      const view = bed.engine.connections().find((x) => x.id === id)!;
      assert.equal(view.backend, 'server2');
      assert.equal(view.phase, 'forwarded');
      const flows = (await bed.connectionFlows()).join('\n');
      if (o.mode === 'fastpath') {
        assert.match(flows, new RegExp(`${between(CLIENT, SVC)},tp_src=\\d+,tp_dst=5001 actions=note:[0-9a-f.]+,set_field:[0-9a-f:]+->eth_dst,set_field:${addr(ipOfServer(3))}->${SET_DST},(inc|dec)_tcp_ack:\\d+,output:\\d`));
        assert.match(flows, new RegExp(`${between(ipOfServer(3), CLIENT)},tp_src=5001,tp_dst=\\d+ actions=set_field:[0-9a-f:]+->eth_src,set_field:${addr(SVC)}->${SET_SRC},(inc|dec)_tcp_seq:\\d+,output:\\d`));
      } else {
        assert.match(flows, new RegExp(`${between(ipOfServer(3), CLIENT)},tp_src=5001,tp_dst=\\d+ actions=CONTROLLER:65535`));
      }
      // Server 1's half was reset at its RCV.NXT and is gone.
      const s1 = await leftBehind(caps.server1, 'server1', { [port]: 1 });
      // With no data from server 1 yet, the shift is ISN_T − ISN_S1 (docs/migration.md, step 6.4).
      assert.equal(view.ackDelta, seqSub(isnOf(await caps.server2.stop(), 'server2', port), isnOf(s1, 'server1', port)));
      await c.cmd({ op: 'close' });
    } finally { stop(); endClient(c); await stopAll(caps); }
  });

  it('forwards to server 1 on a FORWARD verdict', async () => {
    const stop = bed.autoVerdict('FORWARD');
    const c = bed.scriptClient();
    try {
      const { id } = await bed.open(c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'stay' }), { ok: true, reply: 'server1 stay' });
      assert.equal(bed.engine.connections().find((x) => x.id === id)?.backend, 'server1');
      const flows = (await bed.connectionFlows()).join('\n');
      // Out of server 1's port, or (fabric) of the client's switch's link towards server 1's switch.
      assert.match(flows, new RegExp(`${between(CLIENT, SVC)},tp_src=\\d+,tp_dst=5001 actions=note:[0-9a-f.]+,output:${o.fabric ? 20 : 1}\\b`));
      await c.cmd({ op: 'close' });
    } finally { stop(); endClient(c); }
  });

  it('survives its flows being deleted by hand: traffic keeps flowing, the same flows come back and carry it', async () => {
    const stop = bed.autoVerdict('MIGRATE');
    const c = bed.scriptClient();
    // Packet-Ins of this connection, as the controller's capture hook sees them.
    let port = -1;
    let packetIns = 0;
    const onCapture = (r: CaptureRecord) => {
      const f = r.direction === 'in' ? parseFrame(r.frame) : undefined;
      if (f?.ok && f.value.tcp && (f.value.tcp.srcPort === port || f.value.tcp.dstPort === port)) packetIns++;
    };
    bed.controller.on('capture', onCapture);
    try {
      let id: number;
      ({ id, port } = await bed.open(c));
      assert.equal((await c.cmd({ op: 'send', line: 'before' })).reply, 'server2 before');
      const original = flowShape(await bed.connectionFlows(id));
      assert.ok(original.length >= 2, `the migrated connection has its flows: ${original.join('\n')}`);
      const cookie = `0x10${'00'}${id.toString(16).padStart(12, '0')}/0xff00ffffffffffff`;
      await bed.ovs.ofctl('-O', 'OpenFlow13', 'del-flows', bed.bridge, `cookie=${cookie}`);
      assert.equal((await bed.connectionFlows(id)).length, 0);
      // Enough traffic to pass the engine's stray threshold in either mode.
      for (let i = 0; i < 16; i++) assert.equal((await c.cmd({ op: 'send', line: `after ${i}` })).reply, `server2 after ${i}`);
      let now: string[] = [];
      await waitFor(async () => JSON.stringify(now = flowShape(await bed.connectionFlows(id))) === JSON.stringify(original), 'the flows to be reinstalled', 10000)
        .catch(() => assert.deepEqual(now, original, 'the reinstalled flows are the ones the connection had'));
      // The reinstalled flows carry the traffic: their counters grow, and on the fast path nothing of
      // it reaches the controller any more (after the datapath cache has caught up: a few rounds at most).
      // The switch credits datapath hits to its flows when it revalidates them: wait for a round first.
      const mainPackets = async () => {
        await bed.ovs.appctl('revalidator/wait');
        const main = (await bed.connectionFlows(id)).filter((l) => /priority=200,/.test(l) && l.includes(`${SRC}=${CLIENT}`));
        assert.equal(main.length, 1);
        return Number(/n_packets=(\d+)/.exec(main[0])![1]);
      };
      let round = 0;
      const clean = async () => { const before = packetIns; assert.equal((await c.cmd({ op: 'send', line: `r${round}` })).reply, `server2 r${round++}`); return packetIns === before; };
      if (o.mode === 'fastpath') await waitFor(clean, 'a round trip that stays in the switch', 10000, 0);
      const counted = await mainPackets();
      const ins = packetIns;
      for (let i = 0; i < 4; i++) assert.equal((await c.cmd({ op: 'send', line: `kept ${i}` })).reply, `server2 kept ${i}`);
      if (o.mode === 'fastpath') assert.equal(packetIns, ins, 'no packet of the connection reached the controller');
      assert.ok(await mainPackets() >= counted + 4, 'the client → service flow counted the four requests');
      await c.cmd({ op: 'close' });
    } finally { bed.controller.off('capture', onCapture); stop(); endClient(c); }
  });

  it('applies the default verdict when no analyzer answers in time', async () => {
    const svc = bed.engine.service('echo')!;
    const saved = svc.verdictTimeoutMs;
    svc.verdictTimeoutMs = 300;
    const c = bed.scriptClient();
    try {
      const verdict = once(bed.engine, 'verdict');
      await bed.open(c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'nobody decides' }), { ok: true, reply: 'server1 nobody decides' });
      const [, req] = await verdict;
      assert.equal(req.source, 'timeout');
      await c.cmd({ op: 'close' });
    } finally { svc.verdictTimeoutMs = saved; endClient(c); }
  });

  it(`completes ${o.migrations} consecutive first-segment migrations with the kernel's default TCP options`, async function () {
    this.timeout(o.migrations * 2000 + 60000);
    // Timestamps, SACK and window scaling are on, as Linux ships them.
    for (const k of ['tcp_timestamps', 'tcp_sack', 'tcp_window_scaling']) {
      const v = (await bed.client.exec(['sysctl', '-n', `net.ipv4.${k}`])).stdout.trim();
      assert.notEqual(v, '0', `${k} must be enabled for this test`);
    }
    const stop = bed.autoVerdict('MIGRATE');
    try {
      const r = await bed.many(o.migrations);
      assert.deepEqual(r.errors, []);
      assert.equal(r.ok, o.migrations);
      assert.deepEqual(r.servers, { server2: o.migrations });
      // Every server 1 half was reset: nothing is left on server 1 (nor anywhere, all were closed).
      for (const s of ['server1', 'server2']) await bed.noSockets(s);
    } finally { stop(); }
  });

  it(`moves a connection mid-stream at a message boundary, ${o.bigTransferBytes >> 20} MB arriving intact`, async function () {
    this.timeout(600000);
    const stop = bed.autoVerdict('FORWARD');
    const c = bed.scriptClient(60000);
    const half = o.bigTransferBytes / 2;
    try {
      const { id, port } = await bed.open(c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'first' }), { ok: true, reply: 'server1 first' });
      const a = await c.cmd({ op: 'blob', n: half, seed: 1 });
      assert.equal(a.sha256, blobSha(1, half));
      const moved = once(bed.engine, 'migrated');
      await bed.migrateMidStream(id, 'server2');
      const b = await c.cmd({ op: 'blob', n: half, seed: 2 });
      const [view, info] = await moved;
      assert.equal(view.id, id);
      assert.equal(info.midStream, true);
      assert.equal(b.sha256, blobSha(2, half));
      assert.deepEqual(await c.cmd({ op: 'send', line: 'who' }), { ok: true, reply: 'server2 who' });
      // Server 1 dropped its half while the client still talks: Linux takes a RST only at exactly
      // RCV.NXT (any other in-window one gets a challenge ACK), so the reset was at the right seq.
      await bed.noSockets('server1', port);
      await c.cmd({ op: 'close' });
    } finally { stop(); endClient(c); }
  });

  it('migrates back to server 1 and along a chain server1 → server2 → server3 → server1, resetting every server it leaves', async () => {
    const stop = bed.autoVerdict('FORWARD');
    const c = bed.scriptClient();
    const caps = await captures('server1', 'server2', 'server3');
    try {
      const { id, port } = await bed.open(c);
      assert.equal((await c.cmd({ op: 'send', line: 'a' })).reply, 'server1 a');
      for (const [target, line] of [['server2', 'b'], ['server3', 'c'], ['server1', 'd'], ['server2', 'e']] as const) {
        await bed.migrateMidStream(id, target);
        assert.equal((await c.cmd({ op: 'send', line })).reply, `${target} ${line}`);
        assert.equal((await c.cmd({ op: 'send', line: line + '2' })).reply, `${target} ${line}2`);
      }
      assert.equal(bed.engine.connections().find((x) => x.id === id)?.migrations, 4);
      await c.cmd({ op: 'close' });
      // Left: server 1 twice, servers 2 and 3 once; the connection ended on server 2 with FINs.
      await leftBehind(caps.server1, 'server1', { [port]: 2 });
      await leftBehind(caps.server2, 'server2', { [port]: 1 });
      await leftBehind(caps.server3, 'server3', { [port]: 1 });
    } finally { stop(); endClient(c); await stopAll(caps); }
  });

  it('moves every connection of the service through the HTTP API, resetting server 1 for each', async () => {
    const stop = bed.autoVerdict('FORWARD');
    const { api, base } = await startApi(bed.controller);
    const clients = [bed.scriptClient(), bed.scriptClient(), bed.scriptClient()];
    const cap = await Capture.start(bed.servers.server1, `tcp and host ${CLIENT}`);
    try {
      const opened: { id: number; port: number }[] = [];
      for (const [i, c] of clients.entries()) {
        opened.push(await bed.open(c));
        assert.equal((await c.cmd({ op: 'send', line: `a${i}` })).reply, `server1 a${i}`);
      }
      const r = await http(base, 'POST', '/api/services/echo/migrate', { body: { to: 'server3' }, token: TOKEN });
      assert.equal(r.status, 202, r.text);
      assert.deepEqual(r.json.connections.map((v: { id: number }) => v.id).sort(), opened.map((x) => x.id).sort());
      await bed.ovs.datapathCaughtUp();
      for (const [i, c] of clients.entries()) assert.equal((await c.cmd({ op: 'send', line: `b${i}` })).reply, `server3 b${i}`);
      await leftBehind(cap, 'server1', Object.fromEntries(opened.map((x) => [x.port, 1])));
      for (const c of clients) await c.cmd({ op: 'close' });
    } finally { stop(); for (const c of clients) endClient(c); await cap.stop(); await api.stop(); }
  });

  it(`moves a connection to a server added at run time, found by ${v6 ? 'a neighbour solicitation' : 'an ARP probe'} that changes nobody's neighbour cache`, async () => {
    // A new host nobody has talked to yet: the controller must find it with a probe.
    const h = await bed.addServer('server4', 's4', '10.0.0.5/24', 10);
    assert.equal(bed.controller.learning.hosts.has(bed.ipOf(h)), false, 'the switch has not seen server 4 yet');
    const probeCap = await Capture.start(h, v6 ? 'icmp6' : 'arp');
    await bed.engine.addBackend('echo', { name: 'server4', address: h.ip, ...(v6 && { address6: h.ip6 }), port: SERVICE.port });
    const stop = bed.autoVerdict('MIGRATE', 'server4');
    const c = bed.scriptClient();
    try {
      await bed.open(c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'new here' }), { ok: true, reply: 'server4 new here' });
      assert.deepEqual(await c.cmd({ op: 'send', line: 'still' }), { ok: true, reply: 'server4 still' });
      await c.cmd({ op: 'close' });
      await probeCap.stop();
      // The probe: an ARP request with sender IP 0.0.0.0 (RFC 5227), or a neighbour solicitation
      // from :: (RFC 4862's duplicate address detection form), which server 4 answered without
      // learning the controller's address.
      const frames = probeCap.frames();
      const probes = v6
        ? frames.filter((f) => f.icmpv6?.type === ICMPV6_NEIGHBOR_SOLICIT && f.icmpv6.ndTarget === h.ip6 && f.ipv6?.src === '::')
        : frames.filter((f) => f.arp?.op === 1 && f.arp.targetIp === h.ip && f.arp.senderIp === '0.0.0.0');
      assert.ok(probes.length >= 1, `server 4 got a probe for its address: ${frames.length} frames captured`);
      const prober = probes[0]!.eth.src;
      assert.doesNotMatch((await h.exec(['ip', ...(v6 ? ['-6'] : []), 'neigh', 'show'])).stdout, new RegExp(prober), 'server 4 has no neighbour entry for the prober');
    } finally { stop(); endClient(c); await probeCap.stop(); }
    await waitFor(() => !bed.engine.connections().some((x) => x.backend === 'server4'), 'the connection to close', 10000);
    await bed.engine.removeBackend('echo', 'server4');
    assert.equal(bed.engine.service('echo')!.backends.some((b) => b.name === 'server4'), false);
  });

  it('refuses to migrate to a server whose window scaling differs, and the connection stays put', async () => {
    await bed.addServer('server5', 's5', '10.0.0.6/24', 11, ['net.ipv4.tcp_window_scaling=0']);
    await bed.engine.addBackend('echo', { name: 'server5', address: '10.0.0.6', ...(v6 && { address6: 'fd00::6' }), port: SERVICE.port });
    const stop = bed.autoVerdict('MIGRATE', 'server5');
    const c = bed.scriptClient();
    try {
      const failed = once(bed.engine, 'migration_failed');
      const { port } = await bed.open(c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'try' }), { ok: true, reply: 'server1 try' });
      const [, info] = await failed;
      assert.equal(info.to, 'server5');
      assert.match(info.why, /wscale/);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'still here' }), { ok: true, reply: 'server1 still here' });
      // server5 got a RST for the half-open replay: no SYN-RECV (nor anything else) is left there.
      await bed.noSockets('server5', port);
      await c.cmd({ op: 'close' });
    } finally { stop(); endClient(c); }
  });

  /**
   * One first-segment migration to server 2 with deterministic loss: `rules` go in once the client
   * port is known, before the first data segment. Resolves with the move's outcome and the rules' counts.
   */
  async function lossyMove(line: string, rules: (port: number) => Promise<DropRule>[]) {
    const stop = bed.autoVerdict('MIGRATE');
    bed.engine.setHandoffTimeouts({ replayTimeoutMs: REPLAY_MS });
    const c = bed.scriptClient();
    const installed: DropRule[] = [];
    let offOutcome = () => {};
    // Packet-Outs carrying the client's line: the held segment released by the controller.
    let released = 0;
    const onCapture = (r: CaptureRecord) => {
      const f = r.direction === 'out' ? parseFrame(r.frame) : undefined;
      if (f?.ok && f.value.payload.toString() === `${line}\n`) released++;
    };
    bed.controller.on('capture', onCapture);
    try {
      const { id, port } = await bed.open(c);
      for (const r of rules(port)) installed.push(await r);
      const outcome = new Promise<{ event: string; info: { why?: string } }>((resolve) => {
        const on = (event: string) => (v: { id: number }, info: { why?: string }) => { if (v.id === id) resolve({ event, info }); };
        const ok = on('migrated');
        const no = on('migration_failed');
        bed.engine.on('migrated', ok).on('migration_failed', no);
        offOutcome = () => { bed.engine.off('migrated', ok).off('migration_failed', no); };
      });
      const reply = (await c.cmd({ op: 'send', line })).reply;
      const { event, info } = await outcome;
      const counts = await Promise.all(installed.map((r) => r.counts()));
      await c.cmd({ op: 'close' });
      return { reply, port, event, info, counts, released };
    } finally {
      bed.controller.off('capture', onCapture);
      offOutcome(); stop(); endClient(c);
      bed.engine.setHandoffTimeouts({ replayTimeoutMs: bed.controller.config.handoff.replayTimeoutMs });
      for (const r of installed) await r.remove();
    }
  }

  it('replays the SYN again when the first replayed SYN is lost', async () => {
    const s2 = bed.servers.server2;
    const r = await lossyMove('syn lost', (p) => [DropRule.add(s2, 'input', synFrom(p))]);
    assert.deepEqual([r.event, r.reply], ['migrated', 'server2 syn lost']);
    assert.equal(r.counts[0].dropped, 1, 'the first replayed SYN was dropped');
    assert.ok(r.counts[0].passed >= 1, 'the controller sent the SYN again');
  });

  it('completes the move when the target\'s SYN-ACK is lost: the replayed SYN is sent again', async () => {
    const s2 = bed.servers.server2;
    const r = await lossyMove('syn-ack lost', (p) => [DropRule.add(s2, 'output', synAckTo(p)), DropRule.add(s2, 'input', synFrom(p), 0)]);
    assert.deepEqual([r.event, r.reply], ['migrated', 'server2 syn-ack lost']);
    assert.deepEqual([r.counts[0].dropped, r.counts[0].passed >= 1], [1, true], 'the first SYN-ACK was dropped, a later one passed');
    assert.ok(r.counts[1].passed >= 2, `server 2 got the replayed SYN again before its own SYN-ACK timer (${r.counts[1].passed} SYNs)`);
  });

  it('completes the move when the released held segment is lost: the client\'s retransmission takes the new path', async () => {
    const s2 = bed.servers.server2;
    const r = await lossyMove('held lost', (p) => [DropRule.add(s2, 'input', dataFrom(p))]);
    assert.deepEqual([r.event, r.reply], ['migrated', 'server2 held lost']);
    assert.ok(r.released >= 1, 'the controller released the held segment');
    assert.deepEqual([r.counts[0].dropped, r.counts[0].passed >= 1], [1, true], 'the released segment was dropped, the retransmission passed');
  });

  it('gives up after 3 replayed SYNs to a silent target: the held segment goes to server 1', async () => {
    const s2 = bed.servers.server2;
    const r = await lossyMove('nobody there', (p) => [DropRule.add(s2, 'input', synFrom(p), Infinity)]);
    assert.deepEqual([r.event, r.reply], ['migration_failed', 'server1 nobody there']);
    assert.match(r.info.why ?? '', /no SYN-ACK from server2 after 3 SYNs/);
    assert.equal(r.counts[0].dropped, 3);
    await bed.noSockets('server2', r.port);
  });

  it('never lets a server the connection left reach the client, even when its reset was lost', async () => {
    const stop = bed.autoVerdict('MIGRATE');
    const c = bed.scriptClient();
    let lostReset: DropRule | undefined;
    let cap: Capture | undefined;
    try {
      const { port } = await bed.open(c);
      lostReset = await DropRule.add(bed.servers.server1, 'input', fromClient(port, 'rst', 'rst'), Infinity);
      cap = await Capture.start(bed.client, `tcp and src host ${SVC} and src port ${SERVICE.port} and dst port ${port}`);
      assert.equal((await c.cmd({ op: 'send', line: 'moved' })).reply, 'server2 moved');
      await waitFor(async () => (await lostReset!.counts()).dropped === 1, 'the reset to server 1 to be dropped');
      assert.match((await bed.socketsOf('server1', port)).join('\n'), /^ESTAB/, 'server 1 kept its half');
      // Server 1 talks: its data is sent, and retransmitted, towards the client.
      bed.echo.server1.kill('SIGUSR2');
      await waitFor(async () => /retrans:\d+\/[1-9]/.test((await bed.servers.server1.exec(['ss', '-Htin', `dport = :${port}`])).stdout), 'server 1 to retransmit its unsolicited line');
      assert.equal((await c.cmd({ op: 'send', line: 'still' })).reply, 'server2 still');
      // And it resets the connection from its side (ss -K): that RST must not reach the client either.
      await bed.servers.server1.exec(['ss', '-HK', `dport = :${port}`]);
      await bed.noSockets('server1', port);
      assert.equal((await c.cmd({ op: 'send', line: 'after' })).reply, 'server2 after');
      const leaked = (await cap.stop()).filter((s) => s.rst || s.payload.includes('unsolicited'));
      assert.deepEqual(leaked, [], 'nothing of server 1 reached the client');
      await c.cmd({ op: 'close' });
    } finally { stop(); endClient(c); await cap?.stop(); await lostReset?.remove(); }
  });

  // Fast path: the FIN is lost until the controller has forgotten the connection, then its next
  // retransmission crosses on the closing flows alone. Relayed: the controller must carry it, so it
  // keeps the connection as long as those flows would live; the first FIN is lost, the next crosses.
  const relay = o.mode === 'relay';
  it(`carries a FIN lost past the switch and sent again ${relay ? 'while the connection closes' : 'after the controller forgot the connection'}: both ends close cleanly`, async function () {
    this.timeout(60000);
    const stop = bed.autoVerdict('MIGRATE');
    const c = bed.scriptClient();
    let lostFin: DropRule | undefined;
    let onClosed = (_v: { id: number }) => {};
    try {
      const { id, port } = await bed.open(c);
      assert.equal((await c.cmd({ op: 'send', line: 'bye soon' })).reply, 'server2 bye soon');
      // Server 2's FIN (as the client sees it: from the service) is dropped in the client's host,
      // past the switch, which copied it: the controller sees both FINs and starts closing.
      lostFin = await DropRule.add(bed.client, 'input', [NFT, 'saddr', SVC, 'tcp', 'sport', String(SERVICE.port), 'tcp', 'dport', String(port), 'tcp', 'flags', '&', 'fin', '==', 'fin'], relay ? 1 : Infinity);
      const closed = new Promise<void>((resolve) => { onClosed = (v) => { if (v.id === id) resolve(); }; });
      bed.engine.on('conn_closed', onClosed);
      const closing = c.cmd({ op: 'close' });
      if (!relay) {
        await closed;
        assert.ok((await lostFin.counts()).dropped >= 1, 'server 2\'s FIN was lost');
        // The controller has forgotten the connection; server 2 sends its FIN again (RTO backoff)
        // and it must still be rewritten on its way: the closing flows carry it.
        await lostFin.remove();
        lostFin = undefined;
      }
      await closing;
      if (lostFin) {
        const n = await lostFin.counts();
        assert.ok(n.dropped === 1 && n.passed >= 1, `the first FIN was lost, the next crossed: ${JSON.stringify(n)}`);
      }
      const left = (await bed.client.exec(['ss', '-Htan', 'state', 'all', `sport = :${port}`])).stdout.trim();
      assert.match(left, /^TIME-WAIT/, `the client closed cleanly (its FIN-WAIT-2 ended by server 2's FIN): ${left}`);
      await bed.noSockets('server2', port);
      await waitFor(async () => (await bed.connectionFlows(id)).length === 0, 'the closing flows to expire', 15000);
    } finally { stop(); bed.engine.off('conn_closed', onClosed); endClient(c); await lostFin?.remove(); }
  });

  it(`completes ${o.lossMigrations} migrations with 1 % packet loss on every link`, async function () {
    this.timeout(3 * o.lossMigrations * 20000 + 60000);
    const hosts = [bed.client, ...Object.values(bed.servers)];
    for (const h of hosts) await h.addLoss(1);
    const stop = bed.autoVerdict('MIGRATE');
    try {
      // The loss is random: a batch of short connections (a few hundred segments) crosses it without
      // a single drop now and then (about 2 % at 20 connections), which tests nothing. Another batch
      // then, up to three, every one of them held to the same assertions.
      let drops = 0;
      for (let batch = 1; batch <= 3 && drops === 0; batch++) {
        const r = await bed.many(o.lossMigrations, 15000);
        assert.deepEqual(r.errors, [], `batch ${batch}`);
        assert.equal(r.ok, o.lossMigrations, `batch ${batch}`);
        assert.deepEqual(r.servers, { server2: o.lossMigrations }, `batch ${batch}`);
        drops = (await Promise.all(hosts.map((h) => h.lossDrops()))).reduce((a, b) => a + b, 0);
      }
      assert.ok(drops > 0, 'the loss rules dropped packets');
    } finally {
      stop();
      for (const h of hosts) await h.removeLoss();
    }
  });

  if (o.fabric) {
    /** The connection's flows of one role (cookie 0x10<role><id>) on one bridge. */
    const flowsOfRole = async (id: number, role: number, bridge: string) => (await bed.connectionFlows(id, bridge)).filter((l) => l.includes(`cookie=0x10${role.toString(16).padStart(2, '0')}`));

    it('keeps a connection\'s flows on its client\'s switch; the switches on its path carry it with transit flows only', async () => {
      const stop = bed.autoVerdict('MIGRATE');
      const c = bed.scriptClient();
      try {
        const before = bed.engine.stats.transitPackets;
        const { id } = await bed.open(c);
        for (const line of ['one', 'two', 'three']) assert.equal((await c.cmd({ op: 'send', line })).reply, `server2 ${line}`);
        assert.equal((await flowsOfRole(id, 0, bed.bridges[0]!)).length, 2, 'both NAT/shift flows on the client\'s switch');
        for (const br of bed.bridges.slice(1)) assert.deepEqual(await flowsOfRole(id, 0, br), [], `no connection flow on ${br}`);
        // Server 2's switch passes its replies on (server 1's got the handshake and the reset too).
        const transit = await flowsOfRole(id, 4, bed.bridges[2]!);
        assert.ok(transit.some((l) => l.includes(`${SRC}=${ipOfServer(3)}`) && l.includes('priority=220')), transit.join('\n'));
        assert.ok(bed.engine.stats.transitPackets > before);
        // The operator's view (`tcp-migrate flows`): the two flows on the client's switch, then the transit flows by switch.
        const { api, base } = await startApi(bed.controller);
        try {
          const r = await http(base, 'GET', `/api/flows?id=${id}`, { token: TOKEN });
          assert.equal(r.status, 200, r.text);
          const flows = r.json.connections[0].flows as { role: string; dpid?: string }[];
          assert.deepEqual(flows.filter((f) => f.role === 'main').map((f) => f.dpid), [undefined, undefined]);
          assert.ok(flows.some((f) => f.role === 'transit' && f.dpid === FABRIC_DPIDS[2]), JSON.stringify(flows));
          assert.deepEqual(flows.filter((f) => f.role !== 'main' && f.role !== 'transit'), []);
        } finally { await api.stop(); }
        await c.cmd({ op: 'close' });
        await waitFor(async () => (await flowsOfRole(id, 4, bed.bridges[2]!)).length === 0, 'its transit flows to go with it', 10000);
      } finally { stop(); endClient(c); }
    });

    it(`a fabric link taken down during a migrated transfer: ${o.bigTransferBytes >> 20} MB arrive intact, round the third switch`, async function () {
      this.timeout(300000);
      const stop = bed.autoVerdict('MIGRATE');
      const c = bed.scriptClient(120000);
      const link = bed.fabricLink(2, 0);
      const reroutes = bed.engine.stats.transitReroutes;
      try {
        const { port } = await bed.open(c);
        assert.equal((await c.cmd({ op: 'send', line: 'big one' })).reply, 'server2 big one');
        const blob = c.cmd({ op: 'blob', n: o.bigTransferBytes, seed: 7 });
        // Cut server 2's direct link to the client's switch once the transfer is well under way.
        const received = async () => Number(/bytes_received:(\d+)/.exec((await bed.client.exec(['ss', '-Htin', `sport = :${port}`])).stdout)?.[1] ?? 0);
        await waitFor(async () => (await received()) > 4 << 20, 'the transfer to be under way', 20000, 20);
        await run('ip', ['link', 'set', link, 'down']);
        const r = await blob;
        assert.equal(r.sha256, blobSha(7, o.bigTransferBytes), 'sha256 of what arrived');
        assert.ok(bed.engine.stats.transitReroutes > reroutes, 'the engine saw the paths change');
        // Round the third switch: server 1's switch now carries server 2's replies.
        assert.ok((await bed.connectionFlows(undefined, bed.bridges[1])).some((l) => l.includes('cookie=0x1004') && l.includes(`${SRC}=${ipOfServer(3)}`)), 'transit flows on the third switch');
        assert.equal((await c.cmd({ op: 'send', line: 'after' })).reply, 'server2 after');
        await c.cmd({ op: 'close' });
      } finally {
        stop(); endClient(c);
        await run('ip', ['link', 'set', link, 'up'], { allowFail: true });
        await waitFor(() => (bed.controller.fabric?.topology.activeLinks().length ?? 0) === 3, 'the link rediscovered', 15000).catch(() => undefined);
      }
    });
  }

  it('leaves no connection state in the controller or the switch once everything has closed', async () => {
    await waitFor(() => bed.engine.table.size === 0, 'the connection table to empty', 15000)
      .catch((e) => { throw new Error(`${(e as Error).message}; left: ${JSON.stringify(bed.engine.connections().slice(0, 5))}`); });
    assert.deepEqual(bed.engine.table.sizes(), { connections: 0, clientKeys: 0, backendKeys: 0, halfOpen: 0, halfOpenSources: 0 });
    await waitFor(async () => (await bed.connectionFlows()).length === 0, 'per-connection flows to go', 15000);
  });
}
