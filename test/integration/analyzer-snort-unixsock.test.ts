// Snort unixsock source on a LIVE unix datagram socket: real Snort 3 datagram sent with
// sendto() by another process (python3, blocking like Snort; also as an unprivileged user) and by
// our add-on; the analyzer bridge with several Snort sockets (one per Snort 3 packet thread).
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../lib/exec.ts';
import { SnortUnixsockSource } from '../../controller/analyzers/snort-unixsock.ts';
import { ALERTPKT_SIZE_APPID, OFF } from '../../controller/analyzers/snort-alertpkt.ts';
import { sendDgram, UnixDgramReceiver } from '../../controller/analyzers/unix-dgram.ts';
import type { Alert } from '../../controller/analyzers/types.ts';
import { AnalyzerBridge } from '../../controller/analyzer-bridge.ts';
import { parseAnalyzers } from '../../controller/analyzers/analyzer-config.ts';
import { Logger, silentLogger } from '../../controller/log.ts';
import type { HandoffEngine } from '../../controller/handoff/handoff-engine.ts';

const REAL = readFileSync(new URL('../fixtures/ids/snort3-unixsock-alert.bin', import.meta.url));

/** Resolves with the first n alerts, or rejects naming what arrived. */
function collect(src: SnortUnixsockSource, n: number, timeoutMs = 10000): Promise<Alert[]> {
  const got: Alert[] = [];
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`got ${got.length}/${n} alerts; stats ${JSON.stringify(src.stats)}`)), timeoutMs);
    src.on('alert', (a) => {
      got.push(a);
      if (got.length === n) { clearTimeout(t); resolve(got); }
    });
  });
}

// A separate process that sends like Snort does: an unconnected socket, blocking sendto().
const PY_SENDER = `
import socket, sys, struct
path, src, count, base = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = bytearray(open(src, 'rb').read())
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for i in range(count):
    if base:
        struct.pack_into('<I', data, ${OFF.sid}, base + i)
    s.sendto(bytes(data), path)
`;

describe('analyzers: Snort unixsock source (live socket)', function () {
  this.timeout(30000);
  let dir: string;
  let src: SnortUnixsockSource | null = null;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'analyzer-snort-')); });
  afterEach(async () => {
    await src?.stop();
    src = null;
    rmSync(dir, { recursive: true, force: true });
  });

  async function listen(extra: { mode?: number; owner?: string; group?: string } = {}): Promise<{ path: string; s: SnortUnixsockSource }> {
    const path = join(dir, 'snort_alert');
    src = new SnortUnixsockSource({ path, ...extra });
    await src.start();
    return { path, s: src };
  }

  it('receives the real Snort 3 datagram whole (65,864 bytes) from another process', async () => {
    const { path, s } = await listen({ mode: 0o660 });
    assert.equal(statSync(path).mode & 0o777, 0o660);
    assert.ok(statSync(path).isSocket());
    const bin = join(dir, 'alert.bin');
    writeFileSync(bin, REAL);
    const p = collect(s, 1);
    await run('python3', ['-c', PY_SENDER, path, bin, '1', '0']);
    const [a] = await p;
    assert.deepEqual(a, {
      source: 'snort', verdict: 'MIGRATE', msg: 'MIGRATE', gid: 1, sid: 1000002, rev: 0,
      flow: { srcIp: '10.0.0.2', srcPort: 40000, dstIp: '10.0.0.1', dstPort: 5001 }, seq: 1001, ack: 5001, payloadLength: 31,
      time: new Date(1700000000003),
    });
    assert.equal(s.stats.datagrams, 1);
  });

  it('accepts the 65,928-byte OpenAppId variant', async () => {
    const { path, s } = await listen();
    const b = Buffer.alloc(ALERTPKT_SIZE_APPID);
    REAL.copy(b);
    b.writeUInt32LE(1000003, OFF.sid);
    const p = collect(s, 1);
    sendDgram(path, b);
    const [a] = await p;
    assert.equal(a!.sid, 1000003);
    assert.equal(a!.seq, 1001);
  });

  it('counts and logs garbage, wrong-size and 64 KiB-truncated datagrams without crashing', async () => {
    const lines: string[] = [];
    const path = join(dir, 'snort_alert');
    src = new SnortUnixsockSource({ path, logger: new Logger('debug', 'text', {}, { write: (l) => lines.push(l) }) });
    await src.start();
    const garbage = Buffer.alloc(REAL.length, 0x5a);
    for (const b of [Buffer.from('hello'), Buffer.alloc(0), REAL.subarray(0, 65536), REAL.subarray(0, 65535), garbage]) sendDgram(path, b);
    // Datagrams on one socket are delivered in order: once this one is here, the bad ones were handled.
    const p = collect(src, 1);
    sendDgram(path, REAL);
    const [a] = await p;
    assert.equal(a!.sid, 1000002);
    assert.equal(src.stats.datagrams, 6);
    assert.equal(src.stats.bad_size, 4);
    assert.equal(src.stats.bad_datagrams, 1);
    assert.equal(src.stats.alerts, 1);
    assert.ok(lines.some((l) => /ignoring invalid Snort datagram.*64 KiB/.test(l)), lines.join(''));
  });

  it('a burst of 200 full-size datagrams from a blocking sender all arrive', async () => {
    const { path, s } = await listen();
    const bin = join(dir, 'alert.bin');
    writeFileSync(bin, REAL);
    const p = collect(s, 200, 20000);
    await run('python3', ['-c', PY_SENDER, path, bin, '200', '2000000'], { timeoutMs: 20000 });
    const got = await p;
    assert.deepEqual(got.map((a) => a.sid).sort((x, y) => x - y), Array.from({ length: 200 }, (_, i) => 2000000 + i));
    assert.equal(s.stats.bad_size! + s.stats.bad_datagrams!, 0);
  });

  it('replaces a stale socket file, refuses a live socket and a non-socket, unlinks on stop', async () => {
    const path = join(dir, 'snort_alert');
    // A stale socket: bound once, process state gone (closed without unlink).
    const stale = await UnixDgramReceiver.open({ path, onDatagrams: () => {}, onError: () => {} });
    const other = new SnortUnixsockSource({ path });
    await assert.rejects(other.start(), /another process is bound/); // still live
    // Close the receiver but keep the file, as a crashed process would.
    const keep = join(dir, 'keep');
    await run('python3', ['-c', `import socket; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(${JSON.stringify(keep)})`]);
    await stale.close();
    assert.ok(existsSync(keep));
    src = new SnortUnixsockSource({ path: keep });
    await src.start(); // replaced the stale socket left by the exited python process
    const p = collect(src, 1);
    sendDgram(keep, REAL);
    await p;
    await src.stop();
    assert.ok(!existsSync(keep), 'socket unlinked on stop');
    src = null;
    const file = join(dir, 'plain');
    writeFileSync(file, 'not a socket');
    await assert.rejects(new SnortUnixsockSource({ path: file }).start(), /refusing to replace .*not a socket/);
    assert.equal(readFileSync(file, 'utf8'), 'not a socket');
  });

  it('an alert listener that throws is counted, the source keeps going', async () => {
    const { path, s } = await listen();
    const p = collect(s, 2);
    s.on('alert', () => { throw new Error('boom'); });
    sendDgram(path, REAL);
    sendDgram(path, REAL);
    await p;
    assert.equal(s.stats.listener_errors, 2);
  });

  it('owner, group (names) and mode are set on the socket: an unprivileged sender can send; bad names fail naming the key', async () => {
    chmodSync(dir, 0o755);
    const { path, s } = await listen({ owner: 'nobody', group: 'nogroup', mode: 0o620 });
    const st = statSync(path);
    assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [65534, 65534, 0o620]);
    const bin = join(dir, 'alert.bin');
    writeFileSync(bin, REAL);
    const p = collect(s, 1);
    await run('setpriv', ['--reuid', 'nobody', '--regid', 'nogroup', '--clear-groups', '/usr/bin/python3', '-c', PY_SENDER, path, bin, '1', '0']);
    assert.equal((await p)[0]!.sid, 1000002);
    await assert.rejects(new SnortUnixsockSource({ path: join(dir, 'x'), owner: 'no-such-user-tmt', configKey: 'analyzers.snort' }).start(), /^Error: analyzers\.snort\.owner: no such user "no-such-user-tmt"$/);
    await assert.rejects(new SnortUnixsockSource({ path: join(dir, 'x'), group: 'no-such-group-tmt', configKey: 'analyzers.snort' }).start(), /analyzers\.snort\.group: no such group "no-such-group-tmt"/);
    assert.ok(!existsSync(join(dir, 'x')), 'nothing bound');
  });

  it('warns when the owner/group cannot reach the socket through its directories', async () => {
    const lines: string[] = [];
    src = new SnortUnixsockSource({ path: join(dir, 'snort_alert'), group: 'nogroup', mode: 0o660, logger: new Logger('debug', 'text', {}, { write: (l) => lines.push(l) }) });
    await src.start(); // dir is 0700 root: nobody in nogroup cannot search it
    assert.ok(lines.some((l) => l.includes('cannot reach the socket') && l.includes(dir)), lines.join(''));
  });

  describe('analyzer bridge with several Snort sockets', () => {
    const verdicts: unknown[] = [];
    const engine = () => Object.assign(new EventEmitter(), { verdictForFlow: (flow: unknown) => { verdicts.push(flow); return undefined; } }) as unknown as HandoffEngine;
    let bridge: AnalyzerBridge | null = null;
    afterEach(async () => { await bridge?.stop(); bridge = null; verdicts.length = 0; });

    it('logDir + threads 2: binds 0_snort_alert and 1_snort_alert, alerts from both become verdicts', async () => {
      // logDir is created when missing (Snort may start later, and needs it too).
      bridge = new AnalyzerBridge(parseAnalyzers({ snort: { logDir: join(dir, 'log'), threads: 2, mode: '0660' } }), engine(), silentLogger);
      await bridge.start();
      const paths = ['0_snort_alert', '1_snort_alert'].map((n) => join(dir, 'log', n));
      for (const p of paths) assert.equal(statSync(p).mode & 0o777, 0o660);
      const got = new Promise<void>((resolve) => bridge!.on('alert', () => { if (bridge!.stats.alerts === 2) resolve(); }));
      for (const p of paths) sendDgram(p, REAL);
      await got;
      assert.equal(verdicts.length, 2);
      await bridge.stop();
      assert.ok(paths.every((p) => !existsSync(p)), 'sockets unlinked on stop');
    });

    it('one socket that cannot be bound: start fails naming its config key, the others are unbound again', async () => {
      const ok = join(dir, 'a_snort_alert');
      const bad = join(dir, 'plain');
      writeFileSync(bad, 'not a socket');
      bridge = new AnalyzerBridge(parseAnalyzers({ snort: { sockets: [ok, bad] } }), engine(), silentLogger);
      await assert.rejects(bridge.start(), /^Error: analyzers\.snort\.sockets\[1\]: cannot bind .*plain: refusing to replace .*not a socket/);
      assert.ok(!existsSync(ok), 'the socket bound first was unlinked');
      bridge = new AnalyzerBridge(parseAnalyzers({ snort: { socket: join(dir, 'no', 'such', 'dir', 'snort_alert') } }), engine(), silentLogger);
      await assert.rejects(bridge.start(), /^Error: analyzers\.snort\.socket: cannot bind .*no\/such\/dir\/snort_alert: /);
    });
  });
});
