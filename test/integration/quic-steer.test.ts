// Issue 15, QUIC services end to end: a stock OVS bridge, the controller with a QUIC service on
// server 1's address and the built-in matcher's QUIC rules, aioquic's server (topo/apps/quic/) on
// server 1 and server 2 and its client, all real. The client's SNI decides: move.example is
// migrated to server 2 (the client still talks to server 1's address: the switch NATs it),
// stay.example and anything else stay on server 1. Each transfer is sha256-checked; the batch of
// many connections must land 100 % on the expected backend. Then the same with Suricata live on
// the mirror port deciding by a rule of its own.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ovs, STOCK_PREFIX } from '../lib/ovs.ts';
import { TestNet, type Host } from '../lib/netns.ts';
import { startController, nextSwitchReady } from '../lib/controller.ts';
import { RootProcess, requireQuicRoot, type ClientSummary } from '../lib/quic-root.ts';
import { startLiveSuricata, type LiveSuricata } from '../../topo/lib/suricata.ts';
import { requireSuricata } from './analyzer-suricata-helpers.ts';
import type { Controller } from '../../controller/controller.ts';
import { ApiServer } from '../../controller/api/index.ts';
import { Logger } from '../../controller/log.ts';

const S1 = { ip: '10.0.0.1', ofport: 1 };
const CLIENT = { ip: '10.0.0.2', ofport: 2 };
const S2 = { ip: '10.0.0.3', ofport: 3 };
const IDS = { ip: '10.0.0.9', ofport: 5 };
/** 443: where Suricata looks for QUIC without a detection-ports setting (docs/quic.md, "Engines"). */
const PORT = 443;
const MB = 1 << 20;
const BIG = 8 * MB;
/** The batch: many connections, each a small sha256-checked transfer, a few at a time. */
const MANY = Number(process.env.TMT_QUIC_CONNECTIONS ?? 200);
const MANY_BYTES = 64 * 1024;
const PARALLEL = 4;
/** Generous, for a loaded 2-core machine. */
const CLIENT_TIMEOUT_S = 90;
const RULES = [
  'alert quic any any -> $HOME_NET 443 (msg:"MIGRATE move"; quic.sni; content:"move.example"; nocase; startswith; endswith; sid:1500001; rev:1;)',
  'alert quic any any -> $HOME_NET 443 (msg:"FORWARD stay"; quic.sni; content:"stay.example"; nocase; startswith; endswith; sid:1500002; rev:1;)',
].join('\n');
/** Suricata's own rule: the built-in matcher does not have it. */
const IDS_RULES = 'alert quic any any -> $HOME_NET 443 (msg:"MIGRATE ids"; quic.sni; content:"ids.example"; sid:1500009; rev:1;)';

/**
 * The bed: the controller with the QUIC service (and `analyzers`), stock OVS, server 1, the
 * client, server 2 (and, with `ids`, an IDS host on the mirror port), aioquic's server on both
 * servers. destroy() removes everything, also after a half-done create.
 */
class QuicSteerBed {
  ovs?: Ovs;
  net?: TestNet;
  controller?: Controller;
  dir = mkdtempSync(join(tmpdir(), 'tmt-quic-steer-'));
  client!: Host;
  idsHost?: Host;
  readonly bridge = `tmtbr${randomBytes(2).toString('hex')}u`;
  readonly servers = {} as Record<'s1' | 's2', RootProcess>;

  static async create(o: { analyzers: (dir: string) => Record<string, unknown>; ids?: boolean; verdictTimeoutMs?: number }): Promise<QuicSteerBed> {
    const bed = new QuicSteerBed();
    try { await bed.setup(o); } catch (e) { await bed.destroy(); throw e; }
    return bed;
  }

  private async setup(o: { analyzers: (dir: string) => Record<string, unknown>; ids?: boolean; verdictTimeoutMs?: number }): Promise<void> {
    const started = await startController([], {
      services: [{
        protocol: 'quic', name: 'web', address: S1.ip, port: PORT, primary: 'server1', migrateTo: 'server2', defaultVerdict: 'FORWARD',
        verdictTimeoutMs: o.verdictTimeoutMs ?? 5000, idleTimeout: 10, ...(o.ids && { mirrorPort: IDS.ofport }),
        backends: [{ name: 'server1', address: S1.ip, port: PORT }, { name: 'server2', address: S2.ip, port: PORT }],
      }],
      analyzers: o.analyzers(this.dir),
    });
    this.controller = started.controller;
    this.ovs = await Ovs.start({ prefix: STOCK_PREFIX });
    this.net = TestNet.create();
    const s1 = await this.net.addHost('s1', `${S1.ip}/24`);
    this.client = await this.net.addHost('c', `${CLIENT.ip}/24`);
    const s2 = await this.net.addHost('s2', `${S2.ip}/24`);
    if (o.ids) this.idsHost = await this.net.addHost('ids', `${IDS.ip}/24`);
    const ready = nextSwitchReady(this.controller);
    await this.ovs.addBridge(this.bridge, { controller: started.target });
    await this.ovs.addPort(this.bridge, s1.peer, S1.ofport);
    await this.ovs.addPort(this.bridge, this.client.peer, CLIENT.ofport);
    await this.ovs.addPort(this.bridge, s2.peer, S2.ofport);
    if (this.idsHost) await this.ovs.addPort(this.bridge, this.idsHost.peer, IDS.ofport);
    await ready;
    this.servers.s1 = RootProcess.spawn(s1, ['/opt/tmt-quic/server.py', '--name', 's1', '--host', S1.ip, '--port', String(PORT)], 'server 1');
    this.servers.s2 = RootProcess.spawn(s2, ['/opt/tmt-quic/server.py', '--name', 's2', '--host', S2.ip, '--port', String(PORT)], 'server 2');
    await this.servers.s1.waitLine((l) => l.listening === PORT, 'its listening line');
    await this.servers.s2.waitLine((l) => l.listening === PORT, 'its listening line');
    // Every host known to the switch (ARP) before the tests start.
    for (const ip of [S1.ip, S2.ip]) await this.client.exec(['ping', '-c', '1', '-W', '2', ip]);
  }

  async destroy(): Promise<void> {
    await this.net?.destroy();
    await this.ovs?.stop();
    await this.controller?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** client.py to its end, from `localPort` (0: any); its summary, checked whole. */
  async download(sni: string | undefined, bytes: number, localPort = 0): Promise<ClientSummary> {
    const p = RootProcess.spawn(this.client, ['/opt/tmt-quic/client.py', '--server', `${S1.ip}:${PORT}`, '--bytes', String(bytes),
      '--timeout', String(CLIENT_TIMEOUT_S), '--local-port', String(localPort), ...(sni ? ['--sni', sni] : [])], 'client.py');
    const s = await p.waitLine((l) => 'ok' in l, 'its summary', (CLIENT_TIMEOUT_S + 30) * 1000) as unknown as ClientSummary;
    await p.exit();
    assert.equal(s.error, null, `client.py (${sni}): ${s.error} ${p.stderr.trim()}`);
    assert.equal(p.child.exitCode, 0, `client.py exited ${p.child.exitCode}: ${p.stderr.trim()}`);
    assert.equal(s.bytes, bytes);
    assert.equal(s.sha256, s.expected_sha256);
    return s;
  }
}

describe('QUIC services through stock OVS: verdict on the Initial, NAT to the backend (aioquic peers)', function () {
  this.timeout(300000);
  let bed: QuicSteerBed | undefined;
  let controller: Controller;
  let client: Host;
  let servers: QuicSteerBed['servers'];
  let ovs: Ovs;
  let bridge: string;
  const download = (sni: string | undefined, bytes: number, localPort = 0) => bed!.download(sni, bytes, localPort);

  before(async function () {
    await requireQuicRoot(this);
    bed = await QuicSteerBed.create({ analyzers: (dir) => {
      writeFileSync(join(dir, 'quic.rules'), RULES + '\n');
      return { builtin: { rules: [join(dir, 'quic.rules')], vars: { HOME_NET: '10.0.0.0/24' } } };
    } });
    controller = bed.controller!;
    client = bed.client;
    servers = bed.servers;
    ovs = bed.ovs!;
    bridge = bed.bridge;
  });

  after(async () => { await bed?.destroy(); });

  /** The NAT flows in table 1 (the controller's QUIC cookies), as ovs-ofctl shows them. */
  async function natFlows(): Promise<string[]> {
    // Flow statistics come from the datapath's flows, which the revalidators read in rounds.
    await ovs.appctl('revalidator/wait');
    const out = await ovs.ofctl('-O', 'OpenFlow13', 'dump-flows', bridge, 'table=1');
    return out.split('\n').filter((l) => /cookie=0x501/.test(l));
  }

  it('SNI move.example: MIGRATE, server 2 answers on server 1\'s address, 8 MiB through the switch\'s NAT', async () => {
    const before = { ...controller.quic.stats };
    const s = await download('move.example', BIG);
    assert.equal(s.server, 's2');
    // Server 2 saw the client itself (only the destination is rewritten), and its log matches.
    const req = await servers.s2.waitLine((l) => l.event === 'request' && l.peers?.[0] === s.addresses[0], 'the request line');
    assert.equal(req.match, true);
    assert.equal(servers.s1.lines.some((l) => l.event === 'request' && l.peers?.[0] === s.addresses[0]), false);
    const st = controller.quic.stats;
    assert.equal(st.migrated - before.migrated, 1);
    // The switch did the NAT: its flow for this client carried the transfer, not the controller.
    const port = s.addresses[0]!.split(':')[1];
    const flows = (await natFlows()).filter((l) => new RegExp(`tp_(src|dst)=${port}\\b`).test(l));
    const c2s = flows.find((l) => new RegExp(`tp_src=${port}\\b`).test(l));
    assert.ok(c2s && /set_field:10\.0\.0\.3->ip_dst/.test(c2s), `client → server 2 flow: ${flows.join('\n')}`);
    const packets = Number(/n_packets=(\d+)/.exec(c2s)![1]);
    assert.ok(packets > 100, `the client's packets went through the NAT flow (${packets})`);
    assert.ok(st.strays - before.strays < 50, `few datagrams through the controller after the verdict (${st.strays - before.strays})`);
  });

  it('GET /api/quic shows the service, the counters and the steered clients', async () => {
    const api = new ApiServer(controller, { enabled: true, host: '127.0.0.1', port: 0, token: '', allowedHosts: [] }, new Logger('error', 'text'));
    const { port } = await api.start();
    try {
      const r = await fetch(`http://127.0.0.1:${port}/api/quic`);
      assert.equal(r.status, 200);
      const v = await r.json() as { services: { name: string; address: string }[]; stats: { migrated: number }; connections: { sni?: string; backend?: string; phase: string }[] };
      assert.deepEqual(v.services.map((s) => [s.name, s.address]), [['web', `${S1.ip}:${PORT}`]]);
      assert.ok(v.stats.migrated >= 1);
      const moved = v.connections.filter((c) => c.sni === 'move.example');
      assert.ok(moved.length >= 1 && moved.every((c) => c.backend === 'server2' && c.phase === 'steered'), JSON.stringify(moved));
    } finally { await api.stop(); }
  });

  it('SNI stay.example: FORWARD, server 1 answers, 8 MiB', async () => {
    const before = controller.quic.stats.forwarded;
    const s = await download('stay.example', BIG);
    assert.equal(s.server, 's1');
    const req = await servers.s1.waitLine((l) => l.event === 'request' && l.peers?.[0] === s.addresses[0], 'the request line');
    assert.equal(req.match, true);
    assert.equal(controller.quic.stats.forwarded - before, 1);
  });

  it('no rule matches (another SNI, or none): the default verdict, FORWARD, at once', async () => {
    const before = controller.quic.stats.verdictTimeouts;
    for (const sni of ['other.example', undefined]) assert.equal((await download(sni, MB)).server, 's1');
    assert.equal(controller.quic.stats.verdictTimeouts, before, 'decided by the matcher, not by the timeout');
  });

  it('garbage to the service port (short header, a short long header, random bytes) is dropped and counted; nothing reaches a server', async () => {
    // A datagram that reached a server would open a connection there (its first line names a new
    // one); the earlier tests' connections may still log their close while this one runs.
    const known = new Set([...servers.s1.lines, ...servers.s2.lines].map((l) => l.conn));
    const lines = { s1: servers.s1.lines.length, s2: servers.s2.lines.length };
    const newConns = (name: 's1' | 's2') => servers[name].lines.slice(lines[name]).filter((l) => !known.has(l.conn));
    const reasons: string[] = [];
    const all = new Promise<void>((resolve) => {
      const on = (reason: string) => { reasons.push(reason); if (reasons.length === 3) { controller.quic.off('dropped', on); resolve(); } };
      controller.quic.on('dropped', on);
    });
    // bash's /dev/udp in the client's namespace; each payload written from a file in one write: one datagram.
    const send = (gen: string) => client.exec(['bash', '-c', `f=$(mktemp) && { ${gen}; } > "$f" && cat "$f" > /dev/udp/${S1.ip}/${PORT}; rm -f "$f"`]);
    await send('printf "\\x40shortheader"');
    await send('printf "\\xc0\\x00\\x00\\x00\\x01tooshort"');
    await send('printf "\\xc3\\x00\\x00\\x00\\x01"; head -c 1300 /dev/urandom');
    await all;
    assert.deepEqual(reasons.slice(0, 2), ['short_header', 'too_small']);
    assert.ok(['bad_initial', 'not_initial'].includes(reasons[2]!), reasons[2]);
    assert.deepEqual({ s1: newConns('s1'), s2: newConns('s2') }, { s1: [], s2: [] }, 'no server saw a new connection');
    assert.equal(controller.quic.stats.errors, 0);
    assert.equal(controller.quic.size.held, 0);
  });

  it(`${MANY} connections, alternating SNIs: 100 % on the expected backend, every byte checked`, async function () {
    this.timeout(Math.max(300000, MANY * 5000));
    const wrong: string[] = [];
    const counts = { s1: 0, s2: 0 };
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < MANY; i = next++) {
        const move = i % 2 === 0;
        // Distinct source ports: a 4-tuple reused within the NAT flows' idle timeout would keep its
        // earlier backend without a verdict (docs/quic.md, "QUIC services", limits).
        const s = await download(move ? 'move.example' : 'stay.example', MANY_BYTES, 20000 + i);
        const want = move ? 's2' : 's1';
        if (s.server !== want) wrong.push(`connection ${i} (${move ? 'move' : 'stay'}.example) answered by ${s.server}`);
        if (s.server === 's1' || s.server === 's2') counts[s.server]++;
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    assert.deepEqual(wrong, []);
    assert.deepEqual(counts, { s1: MANY / 2, s2: MANY / 2 });
    assert.equal(controller.quic.stats.errors, 0);
    assert.equal(controller.stats.appErrors, 0);
  });
});

describe('QUIC services with Suricata live on the mirror port (aioquic peers)', function () {
  this.timeout(300000);
  let bed: QuicSteerBed | undefined;
  let ids: LiveSuricata | undefined;

  before(async function () {
    await requireQuicRoot(this);
    await requireSuricata(this);
    bed = await QuicSteerBed.create({
      ids: true, verdictTimeoutMs: 3000,
      analyzers: (dir) => {
        writeFileSync(join(dir, 'quic.rules'), RULES + '\n');
        return { builtin: { rules: [join(dir, 'quic.rules')], vars: { HOME_NET: '10.0.0.0/24' } }, suricata: { socket: join(dir, 'eve.sock') } };
      },
    });
    writeFileSync(join(bed.dir, 'ids.rules'), IDS_RULES + '\n');
    ids = await startLiveSuricata(bed.idsHost!, bed.dir, { rules: join(bed.dir, 'ids.rules'), eveSocket: join(bed.dir, 'eve.sock'), homeNet: '[10.0.0.0/24]' });
  });

  after(async () => {
    await ids?.stop();
    await bed?.destroy();
  });

  it('Suricata\'s quic.sni rule on the mirrored Initial: MIGRATE to server 2 (the built-in matcher has no such rule), 8 MiB', async () => {
    const verdicts: { source: string }[] = [];
    const on = (_c: unknown, req: { source: string }) => verdicts.push(req);
    bed!.controller!.quic.on('verdict', on);
    try {
      const s = await bed!.download('ids.example', BIG);
      assert.equal(s.server, 's2');
      assert.deepEqual(verdicts.map((v) => v.source), ['suricata']);
    } finally { bed!.controller!.quic.off('verdict', on); }
    assert.ok(bed!.controller!.quic.stats.mirrored >= 1);
  });

  it('with an IDS listening, the built-in matcher\'s rules still decide at once; no rule anywhere: the timeout\'s default', async () => {
    const verdicts: { source: string }[] = [];
    const on = (_c: unknown, req: { source: string }) => verdicts.push(req);
    bed!.controller!.quic.on('verdict', on);
    try {
      assert.equal((await bed!.download('move.example', MB)).server, 's2');
      assert.equal((await bed!.download('nobody.example', MB)).server, 's1');
      assert.deepEqual(verdicts.map((v) => v.source), ['builtin', 'timeout']);
    } finally { bed!.controller!.quic.off('verdict', on); }
  });
});
