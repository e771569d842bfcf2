// Issue 15, the QUIC test peers on their own, before any controller is involved: aioquic's client
// and server (topo/apps/quic/, chrooted in the trixie root of topo/quic-root.sh) in two network
// namespaces joined by a stock OVS bridge that only forwards (one actions=NORMAL flow). Every case
// downloads several megabytes and checks their sha256: plain (QUIC v1 and v2, the client's first
// flight read by our codec), NAT rebinding and a client address change mid-transfer (the server
// sees both client addresses on the one connection), CID rotation, and the QUIC-LB CID generator
// (every CID issued, seen by the client and carried on the wire holds the server id at its offset).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { Ovs, STOCK_PREFIX } from '../lib/ovs.ts';
import { TestNet, type Host } from '../lib/netns.ts';
import { Capture } from '../lib/capture.ts';
import { run, stop } from '../lib/exec.ts';
import { QUIC_ROOT, QUIC_ROOT_SCRIPT as SCRIPT, RootProcess, requireQuicRoot, type ClientSummary as Summary, type ServerLine } from '../lib/quic-root.ts';
import { ClientInitialAssembler, QUIC_V1, QUIC_V2, isLongHeader, parseLongHeader, parseShortHeader, type ClientInitialProgress } from '../../controller/quic/index.ts';

const ROOT = QUIC_ROOT;
const ID = randomBytes(2).toString('hex');
const BRIDGE = `tmtbr${ID}q`;
const CLIENT_IP = '10.0.0.1';
const CLIENT_IP2 = '10.0.0.11';
const SERVER_IP = '10.0.0.2';
const PLAIN_PORT = 4433;
const LB_PORT = 4434;
const LB = { serverId: 'c0ffee', length: 12, offset: 2, rotation: 1 };
const MB = 1 << 20;
const BYTES = 8 * MB;
/** Mid-transfer: aioquic's 1 MiB flow-control window keeps the server from being far ahead, so megabytes follow. */
const AT = 3 * MB;
/** Generous, for a loaded 2-core machine: a transfer takes about a second here. */
const CLIENT_TIMEOUT_S = 90;

/** Mount points under the root in the host's mount table: the peers must leave none behind. */
function rootMounts(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4]?.startsWith(ROOT));
}

/** Pids whose mount namespace is `mnt` (as readlink /proc/PID/ns/mnt shows it). */
function processesIn(mnt: string): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try { return readlinkSync(`/proc/${d}/ns/mnt`) === mnt; } catch { return false; }
  }).map(Number);
}

/** First octet, server id at its offset, length: the QUIC-LB layout server.py promises. */
function assertLbCid(hex: string, what: string): void {
  const cid = Buffer.from(hex, 'hex');
  assert.equal(cid.length, LB.length, `${what} ${hex}: length`);
  assert.equal(cid[0], (LB.rotation << 5) | (LB.length - 1), `${what} ${hex}: first octet (config rotation, length - 1)`);
  assert.equal(cid.subarray(LB.offset, LB.offset + LB.serverId.length / 2).toString('hex'), LB.serverId, `${what} ${hex}: server id at offset ${LB.offset}`);
}

describe('QUIC test peers (aioquic in the trixie root) through a plain OVS bridge', function () {
  this.timeout(240000);
  let ovs: Ovs | undefined;
  let net: TestNet | undefined;
  let client: Host;
  let serverHost: Host;
  let plain: RootProcess;
  let lb: RootProcess;

  before(async function () {
    await requireQuicRoot(this);
    ovs = await Ovs.start({ prefix: STOCK_PREFIX });
    // secure + one NORMAL flow: a learning switch whatever the controller situation (there is none).
    await ovs.addBridge(BRIDGE, { failMode: 'secure' });
    await ovs.ofctl('-O', 'OpenFlow13', 'add-flow', BRIDGE, 'priority=0,actions=NORMAL');
    net = TestNet.create();
    client = await net.addHost('qc', `${CLIENT_IP}/24`);
    serverHost = await net.addHost('qs', `${SERVER_IP}/24`);
    await ovs.addPort(BRIDGE, client.peer, 1);
    await ovs.addPort(BRIDGE, serverHost.peer, 2);
    // The second client address, for the address change.
    await client.exec(['ip', 'addr', 'add', `${CLIENT_IP2}/24`, 'dev', 'eth0']);
    plain = RootProcess.spawn(serverHost, ['/opt/tmt-quic/server.py', '--name', 'plain', '--host', SERVER_IP, '--port', String(PLAIN_PORT)], 'the plain server');
    lb = RootProcess.spawn(serverHost, ['/opt/tmt-quic/server.py', '--name', 'lb', '--host', SERVER_IP, '--port', String(LB_PORT),
      '--cid-server-id', LB.serverId, '--cid-length', String(LB.length), '--cid-offset', String(LB.offset), '--cid-config-rotation', String(LB.rotation)], 'the QUIC-LB server');
    await plain.waitLine((l) => l.listening === PLAIN_PORT, 'its listening line');
    await lb.waitLine((l) => l.listening === LB_PORT, 'its listening line');
  });

  after(async () => {
    await net?.destroy();
    await ovs?.stop();
    assert.deepEqual(rootMounts(), [], 'mounts left under the QUIC root');
  });

  /** Runs client.py to its end in the client namespace; its JSON summary. */
  async function download(port: number, extra: string[] = []): Promise<Summary> {
    const p = RootProcess.spawn(client, ['/opt/tmt-quic/client.py', '--server', `${SERVER_IP}:${port}`, '--bytes', String(BYTES),
      '--timeout', String(CLIENT_TIMEOUT_S), ...extra], 'client.py');
    const line = await p.waitLine((l) => 'ok' in l, 'its summary', (CLIENT_TIMEOUT_S + 30) * 1000) as unknown as Summary;
    await new Promise<void>((resolve) => { if (p.child.exitCode !== null) resolve(); else p.child.once('exit', () => resolve()); });
    assert.equal(line.error, null, `client.py: ${line.error} ${p.stderr.trim()}`);
    assert.equal(p.child.exitCode, 0, `client.py exited ${p.child.exitCode}: ${p.stderr.trim()}`);
    assert.equal(line.bytes, BYTES);
    assert.equal(line.sha256, line.expected_sha256);
    assert.equal(line.server_closed, true, 'the server closed the connection after logging the request');
    return line;
  }

  /** The server's log line for the connection whose first client address is `addr`. */
  function request(server: RootProcess, addr: string): ServerLine {
    const r = server.lines.filter((l) => l.event === 'request' && l.peers?.[0] === addr);
    assert.equal(r.length, 1, `one request from ${addr} in the server's log: ${JSON.stringify(server.lines.filter((l) => l.event === 'request'))}`);
    return r[0]!;
  }

  /** Client→server UDP payloads captured on the server host while `fn` ran. */
  async function captured(port: number, fn: () => Promise<Summary>): Promise<{ summary: Summary; datagrams: Buffer[] }> {
    const cap = await Capture.start(serverHost, `udp and dst port ${port}`);
    try {
      const summary = await fn();
      await cap.stop();
      return { summary, datagrams: cap.frames().filter((f) => f.udp).map((f) => Buffer.from(f.payload)) };
    } finally { await cap.stop(); }
  }

  /** The client's first flight as our codec reads it. */
  function firstFlight(datagrams: Buffer[]): ClientInitialProgress {
    const asm = new ClientInitialAssembler();
    let last: ClientInitialProgress | undefined;
    for (const d of datagrams) {
      if (!isLongHeader(d[0]!)) continue;
      const h = parseLongHeader(d);
      if (!h.ok || h.value.form !== 'long' || h.value.type !== 'initial') continue;
      const r = asm.push(d);
      assert.ok(r.ok, `codec: ${!r.ok && r.error.message}`);
      last = r.value;
      if (last.status === 'complete') break;
    }
    assert.ok(last?.status === 'complete', 'the ClientHello was read whole from the captured Initials');
    return last;
  }

  for (const [version, wire] of [['1', QUIC_V1], ['2', QUIC_V2]] as const) {
    it(`plain transfer over QUIC v${version}, its first flight read by our codec`, async () => {
      const { summary, datagrams } = await captured(PLAIN_PORT, () => download(PLAIN_PORT, ['--quic-version', version, '--sni', 'www.example.com']));
      assert.equal(summary.version, version);
      assert.equal(summary.server, 'plain');
      assert.equal(summary.addresses.length, 1);
      assert.ok(summary.addresses[0]!.startsWith(`${CLIENT_IP}:`), summary.addresses[0]);
      const req = await plain.waitLine((l) => l.event === 'request' && l.peers?.[0] === summary.addresses[0], 'the request line');
      assert.equal(req.match, true);
      assert.equal(req.bytes, BYTES);
      assert.deepEqual(req.peers, summary.addresses);
      const hello = firstFlight(datagrams);
      assert.equal(hello.version, wire);
      assert.equal(hello.status === 'complete' && hello.sni, 'www.example.com');
      assert.deepEqual(hello.status === 'complete' && hello.alpn, ['tmt']);
    });
  }

  it('NAT rebinding mid-transfer: a new client port, the same connection and connection ID', async () => {
    const s = await download(PLAIN_PORT, ['--rebind-after', String(AT)]);
    assert.equal(s.actions.length, 1);
    assert.ok(s.actions[0]!.at_bytes >= AT && s.actions[0]!.at_bytes < BYTES - MB, `rebound at ${s.actions[0]!.at_bytes}`);
    assert.equal(s.addresses.length, 2);
    const [a, b] = s.addresses.map((x) => x.split(':'));
    assert.equal(a![0], CLIENT_IP);
    assert.equal(b![0], CLIENT_IP);
    assert.notEqual(a![1], b![1], 'the source port changed');
    assert.equal(s.cids_used.length, 1, 'rebinding is not a migration: the client kept its connection ID');
    assert.deepEqual(s.first_dcids.slice(1), [s.cids_used[0]], 'the new port sent the same CID from its first datagram');
    await plain.waitLine((l) => l.event === 'request' && l.peers?.[0] === s.addresses[0], 'the request line');
    const req = request(plain, s.addresses[0]!);
    assert.equal(req.match, true);
    assert.deepEqual(req.peers, s.addresses, 'the server saw both client ports on the one connection');
  });

  it('client address change mid-transfer: a second client address, a new connection ID', async () => {
    const s = await download(PLAIN_PORT, ['--local-address', CLIENT_IP, '--migrate-after', String(AT), '--new-address', CLIENT_IP2]);
    assert.equal(s.addresses.length, 2);
    assert.ok(s.addresses[0]!.startsWith(`${CLIENT_IP}:`), s.addresses[0]);
    assert.ok(s.addresses[1]!.startsWith(`${CLIENT_IP2}:`), s.addresses[1]);
    assert.ok(s.actions[0]!.at_bytes < BYTES - MB, `migrated at ${s.actions[0]!.at_bytes}`);
    assert.equal(s.cids_used.length, 2, 'a new connection ID on the new path (RFC 9000 §9.5)');
    assert.deepEqual(s.first_dcids.slice(1), [s.cids_used[1]], 'the new address never sent the old CID, from its first datagram on (§9.5)');
    await plain.waitLine((l) => l.event === 'request' && l.peers?.[0] === s.addresses[0], 'the request line');
    const req = request(plain, s.addresses[0]!);
    assert.equal(req.match, true);
    assert.deepEqual(req.peers, s.addresses, 'the server saw both client addresses on the one connection');
  });

  it('CID rotation by the client mid-transfer: the packets switch to the next server CID', async () => {
    const { summary: s, datagrams } = await captured(PLAIN_PORT, () => download(PLAIN_PORT, ['--rotate-cid-after', String(AT)]));
    assert.equal(s.cids_used.length, 2);
    assert.notEqual(s.cids_used[0], s.cids_used[1]);
    const req = await plain.waitLine((l) => l.event === 'request' && l.peers?.[0] === s.addresses[0], 'the request line');
    assert.deepEqual(req.peers, s.addresses, 'no address change');
    const issued = new Set(plain.lines.filter((l) => l.event === 'cid' && l.conn === req.conn).map((l) => l.cid));
    for (const c of s.cids_used) assert.ok(issued.has(c), `CID ${c} used by the client was issued by the server`);
    // On the wire: the client's 1-RTT packets carry the first CID, then the second.
    const dcids = datagrams.filter((d) => !isLongHeader(d[0]!)).map((d) => {
      const h = parseShortHeader(d, 0, 8);
      assert.ok(h.ok, `codec: ${!h.ok && h.error.message}`);
      return h.value.dcid.toString('hex');
    });
    const first = dcids.indexOf(s.cids_used[1]!);
    assert.ok(dcids.includes(s.cids_used[0]!) && first > 0, 'both CIDs on the wire, the old one first');
    assert.ok(dcids.slice(first).every((d) => d === s.cids_used[1]), 'after the switch every packet carries the new CID');
  });

  it('QUIC-LB CID generator: the server id at the configured offset of every CID issued, seen and sent', async () => {
    const { summary: s, datagrams } = await captured(LB_PORT, () => download(LB_PORT, ['--rotate-cid-after', String(AT)]));
    assert.equal(s.server, 'lb');
    const req = await lb.waitLine((l) => l.event === 'request' && l.peers?.[0] === s.addresses[0], 'the request line');
    const issued = lb.lines.filter((l) => l.event === 'cid' && l.conn === req.conn);
    // The handshake's SCID (seq 0), the spares, and one more after the client retired one.
    assert.ok(issued.length >= 3, `CIDs issued: ${issued.length}`);
    assert.deepEqual(issued.map((l) => l.seq), issued.map((_, i) => i), 'issued in sequence from 0');
    for (const l of issued) assertLbCid(l.cid!, `issued CID seq ${l.seq}`);
    const issuedSet = new Set(issued.map((l) => l.cid));
    assert.ok(s.cids_seen.length >= 2);
    for (const c of s.cids_seen) { assertLbCid(c.cid, 'CID the client received'); assert.ok(issuedSet.has(c.cid)); }
    assert.equal(s.cids_used.length, 2);
    // What a load balancer would read: every client packet after the first Initials carries one.
    let short = 0;
    for (const d of datagrams) {
      if (isLongHeader(d[0]!)) {
        const h = parseLongHeader(d);
        assert.ok(h.ok, `codec: ${!h.ok && h.error.message}`);
        if (h.value.form === 'long' && h.value.type === 'handshake') assertLbCid(h.value.dcid.toString('hex'), 'DCID of a client Handshake packet');
        continue;
      }
      const h = parseShortHeader(d, 0, LB.length);
      assert.ok(h.ok, `codec: ${!h.ok && h.error.message}`);
      assertLbCid(h.value.dcid.toString('hex'), 'DCID of a client 1-RTT packet');
      short++;
    }
    assert.ok(short > 100, `client 1-RTT packets captured: ${short}`);
  });

  it('bad CID settings are refused with a clear error', async () => {
    const r = await run('bash', [SCRIPT, 'exec', serverHost.ns, '--', 'python3', '/opt/tmt-quic/server.py', '--port', '0',
      '--cid-server-id', 'a1b2c3d4', '--cid-length', '8'], { allowFail: true, timeoutMs: 60000 });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--cid-length 8 leaves 3 random bytes; QUIC-LB needs at least 4/);
  });

  it('a peer killed with SIGKILL leaves no mount behind on the host', async () => {
    const p = RootProcess.spawn(serverHost, ['/opt/tmt-quic/server.py', '--name', 'doomed', '--host', SERVER_IP, '--port', '0'], 'a server to kill');
    await p.waitLine((l) => l.listening !== undefined, 'its listening line');
    const pid = p.child.pid!;
    // exec all the way down: the pid we hold is python's, so the signal reaches the peer itself.
    assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /^python3\0/);
    // Its mounts live in a mount namespace of its own, which the host's table never shows...
    const mnt = readlinkSync(`/proc/${pid}/ns/mnt`);
    assert.notEqual(mnt, readlinkSync('/proc/self/ns/mnt'));
    assert.match(readFileSync(`/proc/${pid}/mountinfo`, 'utf8'), / \/opt\/tmt-quic /);
    assert.deepEqual(rootMounts(), []);
    p.child.kill('SIGKILL');
    await stop(p.child, 5000);
    // ...and that namespace, with its mounts, ends with the process: no process is left in it.
    assert.deepEqual(processesIn(mnt), []);
    assert.deepEqual(rootMounts(), []);
  });
});
