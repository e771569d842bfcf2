// The ordering the no-match marker relies on, checked on REAL engines: Suricata 7 and Snort 3 read
// the 23-flow corpus with snort-rules/no-match.rules loaded FIRST (so file order cannot explain
// the result), migrate.rules and the corpus rules, and send their alerts to our unix sockets.
// For every inspected data segment the marker must arrive, and arrive after every other alert of
// that segment; segments where no verdict rule matched get the marker alone.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SuricataEveSource } from '../../controller/analyzers/suricata-eve.ts';
import { SnortUnixsockSource } from '../../controller/analyzers/snort-unixsock.ts';
import { flowKeyString, isNoMatchMarker, type Alert } from '../../controller/analyzers/types.ts';
import { run, waitFor } from '../lib/exec.ts';
import { exportSnort3Rules, SNORT3_CONFIG } from '../../topo/lib/snort.ts';
import { requireSuricata, runSuricataOffline } from './analyzer-suricata-helpers.ts';
import { requireSnort } from './analyzer-snort3-helpers.ts';
import { buildCorpus } from './analyzer-corpus.ts';

const here = (p: string) => new URL(p, import.meta.url).pathname;
const RULES = [here('../../snort-rules/no-match.rules'), here('../../snort-rules/migrate.rules'), here('../fixtures/ids/corpus.rules')];

/** Alerts per packet (flow + seq), in arrival order. */
function byPacket(alerts: Alert[]): Map<string, Alert[]> {
  const m = new Map<string, Alert[]>();
  for (const a of alerts) {
    assert.ok(a.flow && a.seq !== undefined, `alert sid ${a.sid} without its packet`);
    const k = `${flowKeyString(a.flow)}#${a.seq}`;
    m.set(k, [...(m.get(k) ?? []), a]);
  }
  return m;
}

/** Every packet's marker is its last alert; returns [packets with the marker alone, with verdict alerts before it]. */
function checkOrder(alerts: Alert[]): { alone: number; after: number; maxBefore: number } {
  let alone = 0;
  let after = 0;
  let maxBefore = 0;
  for (const [k, list] of byPacket(alerts)) {
    const markers = list.filter((a) => isNoMatchMarker(a.msg));
    assert.equal(markers.length, 1, `${k}: one marker, got ${list.map((a) => a.sid).join(',')}`);
    assert.ok(isNoMatchMarker(list.at(-1)!.msg), `${k}: the marker must come last, got ${list.map((a) => a.sid).join(',')}`);
    if (list.length === 1) alone++; else { after++; maxBefore = Math.max(maxBefore, list.length - 1); }
  }
  return { alone, after, maxBefore };
}

describe('analyzers: the no-match marker comes after every verdict alert of its packet (real engines)', function () {
  this.timeout(120000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'analyzer-order-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('the same no-match.rules file loads in suricata -T and snort -T: 1 rule, 0 errors, 0 warnings', async function () {
    await requireSuricata(this);
    await requireSnort(this);
    const r = await runSuricataOffline({ dir, pcap: '', ruleFiles: [RULES[0]!], eve: { filetype: 'regular', filename: join(dir, 'eve.json') }, test: true });
    assert.match(r.stdout + r.stderr, /1 rules successfully loaded, 0 rules failed/, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /<(Error|Warning)>|\bE: |\bW: /);
    const s = await run('snort', ['-c', SNORT3_CONFIG, '-R', RULES[0]!, '-T'], { allowFail: true, timeoutMs: 60000 });
    assert.equal(s.code, 0, s.stdout + s.stderr);
    assert.match(s.stdout + s.stderr, /Snort successfully validated the configuration \(with 0 warnings\)/);
    assert.match(s.stdout + s.stderr, /total rules loaded: 1\n/);
  });

  it('Suricata 7, EVE over a unix stream socket', async function () {
    await requireSuricata(this);
    const pcap = join(dir, 'corpus.pcap');
    await buildCorpus(pcap);
    const sock = join(dir, 'eve.sock');
    // The stream socket (same EVE writer as unix_dgram): its close says every record was read.
    const src = new SuricataEveSource({ streamPath: sock });
    const got: Alert[] = [];
    src.on('alert', (a) => got.push(a));
    const closed = new Promise<void>((res) => src.on('peers', (n) => { if (n === 0) res(); }));
    await src.start();
    try {
      const r = await runSuricataOffline({ dir, pcap, ruleFiles: RULES, eve: { filetype: 'unix_stream', filename: sock } });
      await closed;
      const o = checkOrder(got);
      assert.ok(o.alone >= 5 && o.after >= 15 && o.maxBefore >= 4, `corpus coverage: ${JSON.stringify(o)}\n${r.stderr}`);
    } finally { await src.stop(); }
  });

  it('Snort 3 (snort3.lua: order_events priority, max_queue_events 16), Alertpkt datagrams', async function () {
    await requireSnort(this);
    const pcap = join(dir, 'corpus.pcap');
    await buildCorpus(pcap);
    const rules = await exportSnort3Rules(RULES, join(dir, 'all.snort3.rules'));
    const src = new SnortUnixsockSource({ path: join(dir, 'snort_alert') });
    const got: Alert[] = [];
    src.on('alert', (a) => got.push(a));
    await src.start();
    try {
      const r = await run('snort', ['-c', SNORT3_CONFIG, '-R', rules, '-r', pcap, '-A', 'alert_unixsock', '-l', dir, '-k', 'none'], { timeoutMs: 60000 });
      // Snort has exited; its datagrams are queued in our socket: wait until all it counted are read.
      const total = Number(/total_alerts: (\d+)/.exec(r.stdout + r.stderr)?.[1]);
      assert.ok(total > 0, `Snort reported no alerts:\n${r.stdout}${r.stderr}`);
      await waitFor(() => got.length >= total, `${total} alerts from Snort (got ${got.length})`);
      assert.equal(got.length, total);
      const o = checkOrder(got);
      // The packet matching 5 verdict rules ("Forward AND migrate") is the one Snort's default
      // search_engine.max_queue_events = 5 robbed of its marker.
      assert.ok(o.alone >= 5 && o.after >= 15 && o.maxBefore >= 5, `corpus coverage: ${JSON.stringify(o)}`);
    } finally { await src.stop(); }
  });
});
