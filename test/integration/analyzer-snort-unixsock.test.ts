// Snort unixsock source on a LIVE unix datagram socket: real Snort 3 datagram sent with
// sendto() by another process (python3, blocking like Snort) and by our add-on.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../lib/exec.ts';
import { SnortUnixsockSource } from '../../controller/analyzers/snort-unixsock.ts';
import { ALERTPKT_SIZE_APPID, OFF } from '../../controller/analyzers/snort-alertpkt.ts';
import { sendDgram, UnixDgramReceiver } from '../../controller/analyzers/unix-dgram.ts';
import type { Alert } from '../../controller/analyzers/types.ts';

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

  async function listen(extra: { mode?: number } = {}): Promise<{ path: string; s: SnortUnixsockSource }> {
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
    const { Logger } = await import('../../controller/log.ts');
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
});
