// The built-in matcher must give the same (packet, sid, verdict) as a REAL Suricata 7 on the
// same rule files, over a corpus of flows built with the packet codec.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFrame, readPcap } from '../../controller/packet/index.ts';
import { loadRules } from '../../controller/analyzers/rules.ts';
import { matchRules } from '../../controller/analyzers/builtin-matcher.ts';
import { verdictOf } from '../../controller/analyzers/types.ts';
import { requireSuricata, runSuricataOffline } from './analyzer-suricata-helpers.ts';
import { buildCorpus } from './analyzer-corpus.ts';

const RULES = [
  new URL('../../snort-rules/migrate.rules', import.meta.url).pathname,
  new URL('../fixtures/ids/corpus.rules', import.meta.url).pathname,
];
const VARS = { HOME_NET: '[10.0.0.0/8]', EXTERNAL_NET: 'any' };

describe('analyzers: built-in matcher vs a real Suricata', function () {
  this.timeout(120000);
  let dir: string;
  before(async function () {
    await requireSuricata(this);
  });
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'analyzer-corpus-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('same (packet, sid, verdict) on the corpus', async () => {
    const pcap = join(dir, 'corpus.pcap');
    await buildCorpus(pcap);
    const eve = join(dir, 'eve.json');
    const r = await runSuricataOffline({ dir, pcap, ruleFiles: RULES, eve: { filetype: 'regular', filename: eve } });

    // Suricata: pcap_cnt is the 1-based packet number.
    const suri = new Set<string>();
    let suriAlerts = 0;
    for (const line of readFileSync(eve, 'utf8').split('\n')) {
      if (!line) continue;
      const e = JSON.parse(line);
      if (e.event_type !== 'alert') continue;
      suriAlerts++;
      suri.add(`${e.pcap_cnt}:${e.alert.signature_id}:${verdictOf(e.alert.signature) ?? '-'}`);
    }

    const rules = await loadRules(RULES, VARS);
    const mine = new Set<string>();
    const pc = readPcap(readFileSync(pcap));
    assert.ok(pc.ok);
    pc.value.frames.forEach((rec, i) => {
      const fr = parseFrame(rec.data);
      assert.ok(fr.ok);
      for (const a of matchRules(rules, fr.value)) mine.add(`${i + 1}:${a.sid}:${a.verdict ?? '-'}`);
    });

    const sort = (s: Set<string>): string[] => [...s].sort();
    assert.ok(suriAlerts >= 20, `Suricata produced only ${suriAlerts} alerts:\n${r.stdout}${r.stderr}`);
    assert.equal(suriAlerts, suri.size, 'one alert per packet and sid');
    assert.deepEqual(sort(mine), sort(suri));
    // Every corpus rule fired at least once, so every feature was compared.
    const fired = new Set([...suri].map((k) => Number(k.split(':')[1])));
    for (const rule of rules) assert.ok(fired.has(rule.sid), `sid ${rule.sid} never fired; the corpus does not exercise it`);
  });

  it('documents the stream pitfall: a content rule without flags alerts only after the server ACKed the data, and across segments', async () => {
    const pcap = join(dir, 'corpus.pcap');
    await buildCorpus(pcap);
    const rulesFile = join(dir, 'noflags.rules');
    writeFileSync(rulesFile, 'alert tcp any any -> any any (msg:"MIGRATE stream"; content:"migrate"; nocase; sid:3000001;)\n');
    const eve = join(dir, 'eve.json');
    await runSuricataOffline({ dir, pcap, ruleFiles: [rulesFile], eve: { filetype: 'regular', filename: eve } });
    const pc = readPcap(readFileSync(pcap));
    assert.ok(pc.ok);
    const alerts = readFileSync(eve, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.event_type === 'alert');
    assert.ok(alerts.length > 0);
    for (const e of alerts) {
      const fr = parseFrame(pc.value.frames[e.pcap_cnt - 1]!.data);
      assert.ok(fr.ok && fr.value.tcp);
      // The alert rides on a later client packet without data (its ACK or FIN), sent after the
      // server ACKed the data: never on the data segment itself.
      assert.equal(fr.value.payload.length, 0, `pcap_cnt ${e.pcap_cnt} carries data`);
      assert.equal(fr.value.tcp.srcPort, e.src_port);
      assert.ok(e.src_port >= 39999, 'client to server direction');
      const prev = parseFrame(pc.value.frames[e.pcap_cnt - 2]!.data);
      assert.ok(prev.ok && prev.value.tcp!.srcPort === e.dest_port && prev.value.payload.length === 0, 'preceded by the server ACK');
    }
    // "mig" + "rate" in two segments (flow 40021) matched only by stream reassembly.
    assert.ok(alerts.some((e) => e.dest_port === 40021 || e.src_port === 40021), 'split pattern matched on the stream');
  });
});
