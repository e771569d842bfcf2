// One rule source, every engine, with the real engines: the shipped files load in a real Snort 3
// (`snort -T`) and a real Suricata 7 (`suricata -T`) with zero errors and warnings, each engine
// rejects the other's form (why migrate.snort3.rules exists), and Snort 3, Suricata and the
// built-in matcher reach the same verdicts on the same traffic, each through the controller's own
// alert source (Snort: Alertpkt datagrams; Suricata: EVE datagrams; built-in: in process).
// No network namespaces or OVS: offline pcaps only.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFrame, readPcap } from '../../controller/packet/index.ts';
import { loadRules } from '../../controller/analyzers/rules.ts';
import { exportRuleFiles } from '../../controller/analyzers/rules-export.ts';
import { matchRules } from '../../controller/analyzers/builtin-matcher.ts';
import { SnortUnixsockSource } from '../../controller/analyzers/snort-unixsock.ts';
import { encodeAlertPkt } from '../../controller/analyzers/snort-alertpkt.ts';
import { sendDgram } from '../../controller/analyzers/unix-dgram.ts';
import { SuricataEveSource } from '../../controller/analyzers/suricata-eve.ts';
import { flowKeyString, type Alert, type AlertSource } from '../../controller/analyzers/types.ts';
import { run } from '../lib/exec.ts';
import { RULES, SNORT3_CONFIG, SNORT3_RULES } from '../../topo/lib/snort.ts';
import { requireSnort } from './analyzer-snort3-helpers.ts';
import { requireSuricata, runSuricataOffline } from './analyzer-suricata-helpers.ts';
import { buildCorpus } from './analyzer-corpus.ts';

const VARS = { HOME_NET: '[10.0.0.0/8]', EXTERNAL_NET: 'any' };
const CORPUS_RULES = new URL('../fixtures/ids/corpus.rules', import.meta.url).pathname;

/** `snort -T` on a rule file with the shipped config: exit code and everything it printed. */
async function snortTest(rules: string): Promise<{ code: number; out: string }> {
  const r = await run('snort', ['-c', SNORT3_CONFIG, '-R', rules, '-T'], { allowFail: true, timeoutMs: 60000 });
  return { code: r.code, out: r.stdout + r.stderr };
}

/** What an alert says about which packet, and what it decides: comparable across engines. */
const key = (a: Alert): string => `${a.flow ? flowKeyString(a.flow) : '?'} seq=${a.seq} len=${a.payloadLength} sid=${a.sid} ${a.verdict ?? '-'}`;

const MARKER_SID = 999999;

/** Collects a source's alerts; drained() resolves once the marker datagram sent by drain() is in. */
function collect(src: AlertSource): { alerts: Alert[]; drained: Promise<void> } {
  const alerts: Alert[] = [];
  let done!: () => void;
  const drained = new Promise<void>((r) => { done = r; });
  src.on('alert', (a) => { if (a.sid === MARKER_SID) done(); else alerts.push(a); });
  return { alerts, drained };
}

/**
 * Datagrams on a unix socket arrive in order: once a marker sent after the IDS exited is
 * received, so is everything the IDS sent. No waiting for "probably all".
 */
async function drain(c: { drained: Promise<void> }, path: string, marker: Buffer): Promise<void> {
  sendDgram(path, marker);
  await Promise.race([c.drained, new Promise((_, reject) => setTimeout(() => reject(new Error(`marker not received on ${path}`)), 10000).unref())]);
}

describe('one rule source, every engine: real Snort 3, real Suricata 7, built-in matcher', function () {
  this.timeout(120000);
  let dir: string;
  let sources: AlertSource[] = [];
  before(async function () {
    await requireSnort(this);
    await requireSuricata(this);
  });
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'tmt-engines-')); });
  afterEach(async () => {
    await Promise.all(sources.map((s) => s.stop()));
    sources = [];
    rmSync(dir, { recursive: true, force: true });
  });

  it('snort -T loads snort-rules/migrate.snort3.rules with snort3.lua: 3 rules, loaded once, 0 errors, 0 warnings', async () => {
    const r = await snortTest(SNORT3_RULES);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Snort successfully validated the configuration \(with 0 warnings\)/);
    assert.match(r.out, /total rules loaded: 3\n/);
    assert.doesNotMatch(r.out, /^(ERROR|WARNING)|duplicate/im);
  });

  it('suricata -T loads snort-rules/migrate.rules: 3 rules, 0 errors, 0 warnings', async () => {
    const r = await runSuricataOffline({ dir, pcap: '', ruleFiles: [RULES], eve: { filetype: 'regular', filename: join(dir, 'eve.json') }, test: true });
    const out = r.stdout + r.stderr;
    assert.match(out, /3 rules successfully loaded, 0 rules failed/, out);
    assert.doesNotMatch(out, /<(Error|Warning)>|\bE: |\bW: /, out);
  });

  it('each engine rejects the other form, naming the line: why the Snort 3 file is exported, not shared', async () => {
    const s = await snortTest(RULES);
    assert.notEqual(s.code, 0);
    assert.match(s.out, /migrate\.rules:\d+ unknown rule keyword: nocase/);
    const r = await runSuricataOffline({ dir, pcap: '', ruleFiles: [SNORT3_RULES], eve: { filetype: 'regular', filename: join(dir, 'eve.json') }, test: true });
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /bad option value formatting|error parsing signature/i);
  });

  /**
   * The corpus traffic through the three engines, each with `ruleFiles` in its own form (Snort 3:
   * exported by the exporter under test), each alert through the controller's source for it.
   */
  async function threeEngines(ruleFiles: string[]): Promise<Record<'snort' | 'suricata' | 'builtin', string[]> & { snortAlerts: number }> {
    const pcap = join(dir, 'corpus.pcap');
    await buildCorpus(pcap);
    const rules3 = join(dir, 'rules.snort3.rules');
    writeFileSync(rules3, (await exportRuleFiles(ruleFiles, 'snort3')).text);

    // Snort 3: offline read of the pcap, alerts to the controller's Snort source.
    const snort = new SnortUnixsockSource({ path: join(dir, 'snort_alert') });
    sources.push(snort);
    const snortAlerts = collect(snort);
    await snort.start();
    await run('snort', ['-c', SNORT3_CONFIG, '-R', rules3, '-r', pcap, '-A', 'alert_unixsock', '-l', dir, '-k', 'none'], { timeoutMs: 60000 });
    await drain(snortAlerts, snort.path, encodeAlertPkt({ msg: 'marker', sid: MARKER_SID }));
    assert.equal(snort.stats.bad_datagrams! + snort.stats.bad_size! + snort.stats.frame_errors!, 0);

    // Suricata 7: the same pcap, EVE datagrams to the controller's Suricata source.
    const suricata = new SuricataEveSource({ dgramPath: join(dir, 'eve.sock') });
    sources.push(suricata);
    const suriAlerts = collect(suricata);
    await suricata.start();
    await runSuricataOffline({ dir, pcap, ruleFiles, eve: { filetype: 'unix_dgram', filename: join(dir, 'eve.sock') } });
    await drain(suriAlerts, join(dir, 'eve.sock'), Buffer.from(JSON.stringify({ event_type: 'alert', timestamp: new Date().toISOString(), alert: { signature: 'marker', signature_id: MARKER_SID, gid: 1, rev: 1 } }) + '\n'));

    // Built-in matcher: every frame of the pcap.
    const rules = await loadRules(ruleFiles, VARS);
    const pc = readPcap(readFileSync(pcap));
    assert.ok(pc.ok);
    const builtin = pc.value.frames.flatMap((rec) => { const f = parseFrame(rec.data); assert.ok(f.ok); return matchRules(rules, f.value); });

    const keys = (alerts: Alert[]) => [...new Set(alerts.map(key))].sort();
    return { snort: keys(snortAlerts.alerts), suricata: keys(suriAlerts.alerts), builtin: keys(builtin), snortAlerts: snortAlerts.alerts.length };
  }

  it('the shipped rules: the same (packet, sid, verdict) from all three on the corpus traffic', async () => {
    const r = await threeEngines([RULES]);
    assert.ok(r.builtin.length >= 10, `only ${r.builtin.length} alerts`);
    assert.deepEqual(new Set(r.builtin.map((k) => k.split(' ').pop())), new Set(['MIGRATE', 'FORWARD']));
    assert.deepEqual(r.snort, r.builtin, 'Snort 3 differs from the built-in matcher');
    assert.deepEqual(r.suricata, r.builtin, 'Suricata differs from the built-in matcher');
    assert.equal(r.snortAlerts, r.snort.length, 'Snort: one alert per packet and sid');
  });

  it('with the corpus rules too (exported for Snort 3): only the documented flags difference remains', async () => {
    const r = await threeEngines([RULES, CORPUS_RULES]);
    assert.deepEqual(r.suricata, r.builtin, 'Suricata differs from the built-in matcher');
    // flags:*FU (sid 2000006): Snort tests "any of F, U" on every packet; Suricata (and the
    // built-in matcher, which follows it) only evaluates it on packets with one of F/S/R AND one
    // of U/E/C (docs/analyzers.md). Everything else, 14 rules of every supported kind, agrees.
    const snortOnly = r.snort.filter((k) => !r.builtin.includes(k));
    const builtinOnly = r.builtin.filter((k) => !r.snort.includes(k));
    assert.deepEqual(builtinOnly, []);
    assert.deepEqual(snortOnly, [
      '10.0.0.2:40007->10.0.0.1:5001 seq=1001 len=14 sid=2000006 -',
      '10.0.0.2:40010->10.0.0.1:5001 seq=1001 len=19 sid=2000006 -',
    ]);
    // A packet matching more than three rules ("Forward AND migrate") is reported with all of
    // them: the shipped snort3.lua raises Snort's default of 3 logged events per packet.
    const many = (ks: string[]) => ks.filter((k) => k.startsWith('10.0.0.2:40004->'));
    assert.ok(many(r.builtin).length > 3);
    assert.deepEqual(many(r.snort), many(r.builtin));
  });
});
