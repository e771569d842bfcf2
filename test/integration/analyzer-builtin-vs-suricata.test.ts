// The built-in matcher must give the same (packet, sid, verdict) as a REAL Suricata 7 on the
// same rule files, over a corpus of flows built with the packet codec.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTcpFrame, parseFrame, PcapFile, readPcap, type TcpFlagsSpec } from '../../controller/packet/index.ts';
import { loadRules } from '../../controller/analyzers/rules.ts';
import { matchRules } from '../../controller/analyzers/builtin-matcher.ts';
import { verdictOf } from '../../controller/analyzers/types.ts';
import { requireSuricata, runSuricataOffline } from './analyzer-suricata-helpers.ts';

const RULES = [
  new URL('../../snort-rules/migrate.rules', import.meta.url).pathname,
  new URL('../fixtures/ids/corpus.rules', import.meta.url).pathname,
];
const VARS = { HOME_NET: '[10.0.0.0/8]', EXTERNAL_NET: 'any' };

interface Seg { from: 'client' | 'server'; payload: string | Buffer; flags?: TcpFlagsSpec }
interface FlowSpec { client?: string; server?: string; sport: number; dport?: number; segs: Seg[] }

const CORPUS: FlowSpec[] = [
  { sport: 40001, segs: [{ from: 'client', payload: 'please migrate this connection\n' }] },
  { sport: 40002, segs: [{ from: 'client', payload: 'MIGRATE NOW' }] },
  { sport: 40003, segs: [{ from: 'client', payload: 'forward me' }] },
  { sport: 40004, segs: [{ from: 'client', payload: 'Forward AND migrate' }] },
  { sport: 40005, segs: [{ from: 'client', payload: 'neither here nor there' }] },
  { sport: 40006, segs: [{ from: 'client', payload: 'relocate please', flags: { ack: true } }] },
  { sport: 40007, segs: [{ from: 'client', payload: 'urgent migrate', flags: { ack: true, psh: true, urg: true } }] },
  { sport: 40008, segs: [{ from: 'client', payload: 'ecn migrate', flags: { ack: true, psh: true, ece: true } }] },
  { sport: 40009, segs: [{ from: 'client', payload: Buffer.from([0x00, 0xde, 0xad, 0xbe, 0xef, 0x0a]) }] },
  { sport: 40010, segs: [{ from: 'client', payload: 'last words: migrate', flags: { ack: true, psh: true, fin: true } }] },
  { sport: 40022, segs: [{ from: 'client', payload: 'urgent last words: migrate', flags: { ack: true, psh: true, fin: true, urg: true } }] },
  { sport: 40011, segs: [{ from: 'client', payload: 'hello' }, { from: 'server', payload: 'forward from server' }] },
  { sport: 40012, dport: 80, server: '10.0.0.5', segs: [{ from: 'client', payload: 'GET /migrate HTTP/1.0\r\n\r\n' }] },
  { sport: 40013, dport: 8080, server: '10.0.0.5', segs: [{ from: 'client', payload: 'GET /forward HTTP/1.0\r\n\r\n' }] },
  { sport: 40014, segs: [{ from: 'client', payload: 'MiGrAtE mixed case' }] },
  { sport: 40015, segs: [{ from: 'client', payload: 'secret token' }, { from: 'client', payload: 'public token' }] },
  { sport: 40016, client: '192.168.1.5', segs: [{ from: 'client', payload: 'outsider wants to migrate' }] },
  { sport: 40017, client: '10.0.0.3', segs: [{ from: 'client', payload: 'forward from .3' }] },
  { sport: 39999, segs: [{ from: 'client', payload: 'forward from low port' }] },
  { sport: 40018, segs: [{ from: 'client', payload: 'x a;b"c\\d y' }] },
  { sport: 40019, segs: [{ from: 'client', payload: 'CONTinued line' }] },
  { sport: 40020, dport: 7000, client: '172.16.0.9', segs: [{ from: 'client', payload: 'outsider migrate to 7000' }] },
  { sport: 40021, segs: [{ from: 'client', payload: 'mig' }, { from: 'client', payload: 'rate split' }] },
];

async function buildCorpus(path: string): Promise<void> {
  const f = await PcapFile.open(path);
  let t = 1700000000000;
  for (const fl of CORPUS) {
    const cip = fl.client ?? '10.0.0.2';
    const sip = fl.server ?? '10.0.0.1';
    const dport = fl.dport ?? 5001;
    const c = { ethSrc: '02:00:00:00:00:02', ethDst: '02:00:00:00:00:01', ipSrc: cip, ipDst: sip, srcPort: fl.sport, dstPort: dport, window: 8192 };
    const s = { ethSrc: '02:00:00:00:00:01', ethDst: '02:00:00:00:00:02', ipSrc: sip, ipDst: cip, srcPort: dport, dstPort: fl.sport, window: 8192 };
    let cs = 1000;
    let ss = 5000;
    f.write(buildTcpFrame({ ...c, seq: cs++, ack: 0, flags: { syn: true } }), t++);
    f.write(buildTcpFrame({ ...s, seq: ss++, ack: cs, flags: { syn: true, ack: true } }), t++);
    f.write(buildTcpFrame({ ...c, seq: cs, ack: ss, flags: { ack: true } }), t++);
    let finned = false;
    for (const g of fl.segs) {
      const pl = typeof g.payload === 'string' ? Buffer.from(g.payload) : g.payload;
      const flags = g.flags ?? { psh: true, ack: true };
      if (g.from === 'client') {
        f.write(buildTcpFrame({ ...c, seq: cs, ack: ss, flags, payload: pl, ...(flags.urg ? { urgent: 1 } : {}) }), t++);
        cs += pl.length + (flags.fin ? 1 : 0);
        f.write(buildTcpFrame({ ...s, seq: ss, ack: cs, flags: { ack: true } }), t++);
        finned ||= !!flags.fin;
      } else {
        f.write(buildTcpFrame({ ...s, seq: ss, ack: cs, flags, payload: pl }), t++);
        ss += pl.length;
        f.write(buildTcpFrame({ ...c, seq: cs, ack: ss, flags: { ack: true } }), t++);
      }
    }
    if (!finned) {
      f.write(buildTcpFrame({ ...c, seq: cs++, ack: ss, flags: { fin: true, ack: true } }), t++);
    }
    f.write(buildTcpFrame({ ...s, seq: ss++, ack: cs, flags: { fin: true, ack: true } }), t++);
    f.write(buildTcpFrame({ ...c, seq: cs, ack: ss, flags: { ack: true } }), t++);
  }
  await f.close();
}

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
