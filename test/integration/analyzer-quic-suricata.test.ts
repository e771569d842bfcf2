// The built-in matcher's QUIC rules are Suricata 7 syntax with Suricata's meaning: a real
// Suricata loads the same rule file, refuses what our parser refuses for Suricata's reasons, and
// alerts with the same sids on client Initials built with the QUIC codec (pcap over UDP).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildUdpFrame, PcapWriter } from '../../controller/packet/index.ts';
import { ClientInitialAssembler, encodeClientHello, encodeClientInitial, QUIC_V1, QUIC_V2 } from '../../controller/quic/index.ts';
import { formatRuleError, parseRules } from '../../controller/analyzers/rules.ts';
import { matchQuicRules, quicVerdict } from '../../controller/analyzers/quic-matcher.ts';
import { verdictOf } from '../../controller/analyzers/types.ts';
import { requireSuricata, runSuricataOffline } from './analyzer-suricata-helpers.ts';

const VARS = { HOME_NET: '[10.0.0.0/8]', EXTERNAL_NET: 'any' };

// Every feature of the subset; on the corpus below each Initial matches at most one verdict rule,
// so "the verdict" does not depend on how each engine orders a packet's alerts.
const RULES = `# QUIC rules: the built-in matcher and Suricata 7 read this file alike
alert quic any any -> $HOME_NET 443 (msg:"MIGRATE www"; quic.sni; content:"www.example.com"; nocase; startswith; endswith; sid:2000001; rev:1;)
alert quic any any -> $HOME_NET 443 (msg:"MIGRATE to server3"; quic.sni; content:"api."; startswith; quic.version; content:"|00 00 00 01|"; sid:2000002; rev:1;)
alert udp any any -> $HOME_NET 443 (msg:"FORWARD v2 api"; app-layer-protocol:quic; quic.sni; content:"api."; startswith; quic.version; content:"|6b 33 43 cf|"; sid:2000003; rev:1;)
alert quic any any -> $HOME_NET 443 (msg:"FORWARD legacy"; quic.sni; content:".legacy.example"; endswith; fast_pattern; sid:2000004; rev:1;)
alert quic any any -> $HOME_NET 443 (msg:"MIGRATE cdn"; quic.sni; pcre:"/^(cdn|img)[0-9]+\\.example\\.org$/i"; sid:2000005; rev:1;)
alert quic any any -> $HOME_NET 443 (msg:"FORWARD not ours"; quic.sni; content:!"example"; nocase; pcre:!"/^(www|api|cdn)/i"; sid:2000006; rev:1;)
alert quic any any -> $HOME_NET 443 (msg:"seen QUIC v1"; quic.version; content:"|00 00 00 01|"; sid:2000010; rev:1;)
alert quic any any -> $HOME_NET 443 (msg:"seen QUIC v2"; quic.version; content:"|6B 33 43 CF|"; startswith; endswith; sid:2000011; rev:1;)
alert udp any any -> $HOME_NET 443 (msg:"seen QUIC"; app-layer-protocol:quic; sid:2000012; rev:1;)
alert quic any any <> $HOME_NET 443 (msg:"seen a host name"; quic.sni; pcre:"/./s"; sid:2000013; rev:1;)
`;

// Rules our parser refuses because Suricata 7 does (its message in the comment).
const REFUSED_BY_BOTH = [
  // "rule 1 setup buffer quic_sni but didn't add matches to it"
  'alert quic any any -> any 443 (msg:"x"; quic.sni; sid:1;)',
  // "previous sticky buffer has no matches"
  'alert quic any any -> any 443 (msg:"x"; quic.sni; quic.version; content:"x"; sid:1;)',
  // "Either we already have the rule match on an app layer protocol set through other keywords ..."
  'alert quic any any -> any 443 (msg:"x"; app-layer-protocol:quic; quic.sni; content:"x"; sid:1;)',
  'alert udp any any -> any 443 (msg:"x"; quic.sni; content:"x"; app-layer-protocol:quic; sid:1;)',
  // "can't mix positive app-layer-protocol match with negated match or match for 'failed'"
  'alert udp any any -> any 443 (msg:"x"; app-layer-protocol:quic; app-layer-protocol:quic; sid:1;)',
  // "can't use multiple nocase modifiers with the same content"
  'alert quic any any -> any 443 (msg:"x"; quic.sni; content:"x"; nocase; nocase; sid:1;)',
  // "can't use multiple depth/startswith settings for the same content"
  'alert quic any any -> any 443 (msg:"x"; quic.sni; content:"x"; startswith; startswith; sid:1;)',
  // "bad option value formatting": Snort 3's content form
  'alert quic any any -> any 443 (msg:"x"; quic.sni; content:"x",nocase; sid:1;)',
  // "unexpected option to quic.sni keyword"
  'alert quic any any -> any 443 (msg:"x"; quic.sni:1; content:"x"; sid:1;)',
];

interface Client { sni?: string; version: number; split?: boolean }
const CLIENTS: Client[] = [
  { sni: 'www.example.com', version: QUIC_V1 },
  { sni: 'WWW.Example.COM', version: QUIC_V1 },
  { sni: 'www.example.com', version: QUIC_V2 },
  { sni: 'api.example.com', version: QUIC_V1 },
  { sni: 'api.example.com', version: QUIC_V2 },
  { sni: 'shop.legacy.example', version: QUIC_V1 },
  { sni: 'CDN7.example.org', version: QUIC_V2 },
  { sni: 'cdn.example.org', version: QUIC_V1 },
  { sni: 'other.test', version: QUIC_V1 },
  { sni: 'www.other.test', version: QUIC_V1 },
  { version: QUIC_V1 },
  { version: QUIC_V2 },
  // A post-quantum key share: the ClientHello spans two datagrams.
  { sni: 'api.example.com', version: QUIC_V1, split: true },
  { sni: 'img12.example.org', version: QUIC_V2, split: true },
];

const SERVER = { ip: '10.0.0.10', port: 443 };

/** The client's datagrams, one per Initial packet. */
function datagrams(c: Client): Buffer[] {
  const dcid = randomBytes(8);
  const scid = randomBytes(8);
  const hello = encodeClientHello({
    sni: c.sni, alpn: ['h3'],
    keyShares: c.split ? [{ group: 0x11ec, key: randomBytes(1216) }, { group: 0x001d, key: randomBytes(32) }] : undefined,
  });
  const cuts = c.split ? [0, 700, hello.length] : [0, hello.length];
  const out: Buffer[] = [];
  for (let i = 0; i + 1 < cuts.length; i++) {
    out.push(encodeClientInitial({ version: c.version, dcid, scid, pn: i, frames: [{ type: 'crypto', offset: cuts[i]!, data: hello.subarray(cuts[i]!, cuts[i + 1]!) }] }));
  }
  return out;
}

describe('analyzers: QUIC rules vs a real Suricata', function () {
  this.timeout(120000);
  let dir: string;
  before(async function () {
    await requireSuricata(this);
  });
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'analyzer-quic-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const load = async (text: string) => {
    const file = join(dir, 'quic.rules');
    writeFileSync(file, text);
    return runSuricataOffline({ dir, pcap: '', ruleFiles: [file], eve: { filetype: 'regular', filename: join(dir, 'eve.json') }, test: true });
  };

  it('suricata -T loads the rule file the built-in matcher accepts, with no error or warning', async () => {
    const ours = parseRules(RULES, { file: 'quic.rules', vars: VARS });
    assert.deepEqual(ours.errors.map(formatRuleError), []);
    assert.deepEqual(ours.warnings.map(formatRuleError), []);
    assert.equal(ours.rules.length, 10);
    const r = await load(RULES);
    const out = r.stdout + r.stderr;
    assert.equal(r.code, 0, out);
    assert.doesNotMatch(out, /Error|Warning/i, out);
  });

  it('what the built-in parser refuses for Suricata\'s reasons, suricata -T refuses too', async () => {
    for (const rule of REFUSED_BY_BOTH) {
      assert.notDeepEqual(parseRules(rule).errors, [], `the built-in parser accepts ${rule}`);
      const r = await load(`${rule}\n`);
      assert.notEqual(r.code, 0, `Suricata accepts ${rule}`);
    }
  });

  it('same sids and the same verdict on client Initials over UDP, QUIC v1 and v2', async () => {
    const rules = parseRules(RULES, { file: 'quic.rules', vars: VARS }).rules;
    const w = new PcapWriter();
    const records: Buffer[] = [w.header()];
    // Per client: the pcap packet numbers (1-based, Suricata's pcap_cnt) of its datagrams.
    const packets: number[][] = [];
    const mine: { sids: number[]; verdict?: number }[] = [];
    let t = 1_700_000_000_000;
    CLIENTS.forEach((c, i) => {
      const flow = { srcIp: `198.51.100.${i + 1}`, srcPort: 40000 + i, dstIp: SERVER.ip, dstPort: SERVER.port };
      const a = new ClientInitialAssembler();
      const nums: number[] = [];
      for (const d of datagrams(c)) {
        const r = a.push(d);
        assert.ok(r.ok, r.ok ? '' : r.error.message);
        if (r.value.status === 'complete') {
          mine.push({ sids: matchQuicRules(rules, r.value, flow).map((x) => x.sid), verdict: quicVerdict(rules, r.value, flow)?.sid });
        } else assert.deepEqual(matchQuicRules(rules, r.value, flow), []);
        records.push(w.record(buildUdpFrame({
          ethSrc: '02:00:00:00:00:01', ethDst: '02:00:00:00:00:02', ipSrc: flow.srcIp, ipDst: flow.dstIp,
          srcPort: flow.srcPort, dstPort: flow.dstPort, payload: d,
        }), t += 5));
        nums.push(records.length - 1);
      }
      packets.push(nums);
    });
    const pcap = join(dir, 'quic.pcap');
    writeFileSync(pcap, Buffer.concat(records));
    const rulesFile = join(dir, 'quic.rules');
    writeFileSync(rulesFile, RULES);
    const eve = join(dir, 'eve.json');
    const run = await runSuricataOffline({ dir, pcap, ruleFiles: [rulesFile], eve: { filetype: 'regular', filename: eve } });

    const byPacket = new Map<number, { sid: number; verdict?: string }[]>();
    for (const line of readFileSync(eve, 'utf8').split('\n')) {
      if (!line) continue;
      const e = JSON.parse(line);
      if (e.event_type !== 'alert') continue;
      const l = byPacket.get(e.pcap_cnt) ?? [];
      l.push({ sid: e.alert.signature_id, verdict: verdictOf(e.alert.signature) });
      byPacket.set(e.pcap_cnt, l);
    }
    assert.ok(byPacket.size > 0, `Suricata alerted on nothing:\n${run.stdout}${run.stderr}`);
    const sniRules = new Set(rules.filter((r) => r.buffers?.some((m) => m.buffer === 'quic.sni')).map((r) => r.sid));
    const fired = new Set<number>();
    CLIENTS.forEach((c, i) => {
      const nums = packets[i]!;
      const last = nums[nums.length - 1]!;
      const suri = byPacket.get(last) ?? [];
      const label = `${c.sni ?? '(no SNI)'} v${c.version === QUIC_V1 ? 1 : 2}${c.split ? ' split' : ''}`;
      // On the datagram that completes the ClientHello: the same rules, and the same verdict.
      assert.deepEqual([...new Set(suri.map((a) => a.sid))].sort(), [...mine[i]!.sids].sort(), label);
      const verdicts = suri.filter((a) => a.verdict);
      assert.ok(verdicts.length <= 1, `${label}: the corpus must give each Initial one verdict rule at most`);
      assert.equal(verdicts[0]?.sid, mine[i]!.verdict, label);
      for (const a of suri) fired.add(a.sid);
      // Before it, Suricata can only alert on rules that do not need the host name.
      for (const n of nums.slice(0, -1)) for (const a of byPacket.get(n) ?? []) assert.ok(!sniRules.has(a.sid), `${label}: sid ${a.sid} before the SNI`);
    });
    for (const r of rules) assert.ok(fired.has(r.sid), `sid ${r.sid} never fired; the corpus does not exercise it`);
  });
});
