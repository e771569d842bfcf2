// Suricata EVE source on live unix sockets: replayed real records, then a REAL Suricata 7
// reading test/fixtures/ids/migrate.pcap with snort-rules/migrate.rules.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SuricataEveSource } from '../../controller/analyzers/suricata-eve.ts';
import { sendDgram } from '../../controller/analyzers/unix-dgram.ts';
import type { Alert } from '../../controller/analyzers/types.ts';
import { requireSuricata, runSuricataOffline } from './analyzer-suricata-helpers.ts';

const FIX = (n: string): string => new URL(`../fixtures/ids/${n}`, import.meta.url).pathname;
const SAMPLE = JSON.parse(readFileSync(FIX('suricata-alert-sample.json'), 'utf8'));
const RULES = new URL('../../snort-rules/migrate.rules', import.meta.url).pathname;

function collect(src: SuricataEveSource, n: number, timeoutMs = 15000): Promise<Alert[]> {
  const got: Alert[] = [];
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`got ${got.length}/${n} alerts; stats ${JSON.stringify(src.stats)}`)), timeoutMs);
    src.on('alert', (a) => {
      got.push(a);
      if (got.length === n) { clearTimeout(t); resolve(got); }
    });
  });
}

const EXPECTED_MIGRATE = {
  source: 'suricata', verdict: 'MIGRATE', msg: 'MIGRATE', gid: 1, sid: 1000002, rev: 1, priority: 3,
  flow: { srcIp: '10.0.0.2', srcPort: 40000, dstIp: '10.0.0.1', dstPort: 5001 }, seq: 1001, ack: 5001, payloadLength: 31,
  time: new Date(1700000000003),
};

describe('analyzers: Suricata EVE source (live sockets)', function () {
  this.timeout(60000);
  let dir: string;
  let src: SuricataEveSource | null = null;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'analyzer-suri-')); });
  afterEach(async () => {
    await src?.stop();
    src = null;
    rmSync(dir, { recursive: true, force: true });
  });

  it('datagram and stream sockets with replayed real records; bad input counted', async () => {
    const dgramPath = join(dir, 'eve.sock');
    const streamPath = join(dir, 'eve-stream.sock');
    src = new SuricataEveSource({ dgramPath, streamPath, mode: 0o660 });
    await src.start();
    assert.equal(statSync(dgramPath).mode & 0o777, 0o660);
    assert.equal(statSync(streamPath).mode & 0o777, 0o660);
    const p = collect(src, 3);
    sendDgram(dgramPath, Buffer.from('{"event_type":"flow"}\n'));
    sendDgram(dgramPath, Buffer.from('this is not json'));
    sendDgram(dgramPath, Buffer.from(SAMPLE.offline_pcap_unix_dgram.raw_datagram));
    const c = createConnection(streamPath);
    await new Promise<void>((r) => c.once('connect', () => r()));
    const line = SAMPLE.offline_pcap_unix_stream_line.line as string;
    // Split mid-record and mid-UTF-8 to exercise line reassembly; an invalid line between.
    const payload = Buffer.from(`{"event_type":"stats"}\n{broken\n${line}\n${line}\n`);
    c.write(payload.subarray(0, 50));
    c.write(payload.subarray(50, 300));
    c.end(payload.subarray(300));
    const got = await p;
    assert.deepEqual(got.map((a) => [a.sid, a.verdict, a.seq]), [[1000002, 'MIGRATE', 1001], [1000002, 'MIGRATE', 1001], [1000002, 'MIGRATE', 1001]]);
    assert.equal(src.stats.ignored_events, 2);
    assert.equal(src.stats.invalid_json, 2);
    assert.equal(src.stats.connections, 1);
    await src.stop();
    src = null;
    assert.ok(!existsSync(dgramPath) && !existsSync(streamPath), 'sockets unlinked');
  });

  it('oversized NDJSON lines are dropped and counted, the connection keeps working', async () => {
    const streamPath = join(dir, 'eve-stream.sock');
    src = new SuricataEveSource({ streamPath, maxLineBytes: 4096 });
    await src.start();
    const p = collect(src, 1);
    const c = createConnection(streamPath);
    await new Promise<void>((r) => c.once('connect', () => r()));
    c.write('{"event_type":"alert","x":"' + 'a'.repeat(10000));
    c.write('"}\n');
    c.end(SAMPLE.offline_pcap_unix_stream_line.line + '\n');
    await p;
    assert.equal(src.stats.oversized, 1);
  });

  describe('with a real Suricata', () => {
    let version = '';
    before(async function () { version = await requireSuricata(this); });

    for (const filetype of ['unix_dgram', 'unix_stream'] as const) {
      it(`suricata -r migrate.pcap → ${filetype} → MIGRATE sid 1000002 with flow and seq`, async () => {
        const pcap = join(dir, 'migrate.pcap');
        copyFileSync(FIX('migrate.pcap'), pcap);
        const sock = join(dir, 'eve.sock');
        src = new SuricataEveSource(filetype === 'unix_dgram' ? { dgramPath: sock } : { streamPath: sock });
        await src.start(); // bound before Suricata starts: it connects at startup
        const p = collect(src, 1);
        const r = await runSuricataOffline({ dir, pcap, ruleFiles: [RULES], eve: { filetype, filename: sock } });
        const [a] = await p.catch((e: Error) => { throw new Error(`${e.message}\nSuricata ${version} output:\n${r.stdout}${r.stderr}`); });
        assert.deepEqual(a, EXPECTED_MIGRATE);
        assert.equal(src.stats.alerts, 1);
        assert.equal(src.stats.invalid_json, 0);
      });
    }
  });
});
