// QUIC rules of the built-in matcher: Suricata 7's quic.sni / quic.version sticky buffers in the
// rule parser, and matching them against client Initials built with the QUIC codec's encoders.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  ClientInitialAssembler,
  encodeClientHello,
  encodeClientInitial,
  parseClientInitial,
  QUIC_V1,
  QUIC_V2,
  type ClientInitialProgress,
} from '../../controller/quic/index.ts';
import { buildTcpFrame, parseFrame } from '../../controller/packet/index.ts';
import { formatRuleError, parseRules, type Rule } from '../../controller/analyzers/rules.ts';
import { BuiltinMatcher, matchRules } from '../../controller/analyzers/builtin-matcher.ts';
import { matchQuicRules, quicBuffer, quicVerdict, type CompleteInitial } from '../../controller/analyzers/quic-matcher.ts';
import type { FlowKey } from '../../controller/analyzers/types.ts';

const FLOW: FlowKey = { srcIp: '198.51.100.7', srcPort: 51000, dstIp: '10.0.0.10', dstPort: 443 };
const DCID = Buffer.from('0123456789abcdef', 'hex');

function rules(text: string, vars: Record<string, string> = {}): Rule[] {
  const r = parseRules(text, { file: 'q.rules', vars });
  assert.deepEqual(r.errors.map(formatRuleError), []);
  return r.rules;
}

/** The errors of one rule, formatted as file:line: option "x": message. */
function errorsOf(rule: string): string[] {
  return parseRules(rule, { file: 'q.rules' }).errors.map(formatRuleError);
}

/** A client's Initial as the codec reads it: one datagram, or a ClientHello cut over two. */
function initial(o: { sni?: string; version?: number; alpn?: string[]; split?: boolean } = {}): CompleteInitial {
  const hello = encodeClientHello({
    sni: o.sni, alpn: o.alpn ?? ['h3'],
    // A post-quantum key share pushes the ClientHello over two datagrams.
    keyShares: o.split ? [{ group: 0x11ec, key: randomBytes(1216) }, { group: 0x001d, key: randomBytes(32) }] : undefined,
  });
  const version = o.version ?? QUIC_V1;
  const cut = o.split ? 900 : hello.length;
  const a = new ClientInitialAssembler();
  let last: ClientInitialProgress | undefined;
  for (const [pn, part, off] of [[0, hello.subarray(0, cut), 0], [1, hello.subarray(cut), cut]] as const) {
    if (part.length === 0) continue;
    const r = a.push(encodeClientInitial({ version, dcid: DCID, scid: Buffer.alloc(0), pn, frames: [{ type: 'crypto', offset: off, data: part }] }));
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    last = r.value;
  }
  assert.equal(last?.status, 'complete');
  return last as CompleteInitial;
}

const sids = (rs: readonly Rule[], init: ClientInitialProgress, flow: FlowKey = FLOW): number[] => matchQuicRules(rs, init, flow).map((a) => a.sid);

describe('analyzers: QUIC rules, parsing', () => {
  it('reads quic and udp rules with quic.sni / quic.version and their content options', () => {
    const rs = rules([
      'alert quic any any -> any 443 (msg:"MIGRATE api"; quic.sni; content:"api.example.com"; nocase; startswith; endswith; classtype:misc-activity; priority:3; sid:1; rev:2;)',
      'alert udp any any -> $HOME_NET 443 (msg:"FORWARD v2"; quic.version; content:"|6b 33 43 cf|"; sid:2;)',
      'alert udp any any -> any [443,8443] (msg:"log quic"; app-layer-protocol:quic; sid:3;)',
      'alert quic any any -> any any (msg:"MIGRATE"; quic.sni; pcre:"/^(www|api)\\.example\\.(com|net)$/i"; \\',
      '  quic.version; content:!"|00 00 00 01|"; fast_pattern; sid:4;)',
      'alert quic any any -> any any (msg:"x"; quic.sni; content:"a"; endswith; pcre:!"/b/sm"; content:"c"; nocase; sid:5;)',
    ].join('\n'));
    assert.deepEqual(rs.map((r) => [r.sid, r.proto, r.verdict]), [[1, 'quic', 'MIGRATE'], [2, 'udp', 'FORWARD'], [3, 'udp', undefined], [4, 'quic', 'MIGRATE'], [5, 'quic', undefined]]);
    const [r1, r2, r3, r4, r5] = rs as [Rule, Rule, Rule, Rule, Rule];
    assert.deepEqual(r1.buffers!.map((m) => m.kind === 'content' && [m.buffer, m.content.bytes.toString(), m.content.nocase, m.startsWith, m.endsWith]), [['quic.sni', 'api.example.com', true, true, true]]);
    assert.equal(r1.classtype, 'misc-activity');
    assert.equal(r1.priority, 3);
    assert.equal(r1.rev, 2);
    assert.deepEqual(r1.contents, [], 'QUIC contents are not TCP payload contents');
    assert.ok(r2.buffers![0]!.kind === 'content' && r2.buffers![0]!.content.bytes.equals(Buffer.from('6b3343cf', 'hex')));
    assert.deepEqual([r3.appProtocol, r3.buffers], ['quic', []]);
    assert.deepEqual(r4.buffers!.map((m) => [m.buffer, m.kind, m.kind === 'pcre' ? m.regex.flags : m.content.negated]), [['quic.sni', 'pcre', 'i'], ['quic.version', 'content', true]]);
    // nocase goes to the last content of the buffer in force, past a pcre.
    assert.deepEqual(r5.buffers!.map((m) => m.kind === 'pcre' ? `pcre ${m.negated} ${m.regex.flags}` : `${m.content.bytes} ${m.content.nocase} ${m.endsWith}`), ['a false true', 'pcre true ms', 'c true false']);
  });

  it('TCP rules parse as before, with no QUIC fields, and warnings stay TCP-only', () => {
    const r = parseRules([
      'alert tcp any any -> any any (msg:"MIGRATE"; content:"m"; nocase; sid:1;)',
      'alert quic any any -> any 443 (msg:"MIGRATE"; quic.sni; content:"m"; sid:2;)',
    ].join('\n'));
    assert.deepEqual(r.errors, []);
    assert.equal(r.rules[0]!.proto, 'tcp');
    assert.equal(r.rules[0]!.buffers, undefined);
    assert.equal(r.rules[0]!.appProtocol, undefined);
    assert.deepEqual(r.warnings.map((w) => w.line), [1], 'the stream warning is about TCP content rules only');
  });

  it('rejects what it does not implement, naming file, line and option', () => {
    const cases: [string, string][] = [
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; sid:1;)', 'q.rules:1: option "quic.sni": sticky buffer quic.sni has no content or pcre after it'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; quic.version; content:"x"; sid:1;)', 'q.rules:1: option "quic.sni": sticky buffer quic.sni has no content or pcre after it'],
      ['alert quic any any -> any 443 (msg:"a"; content:"x"; sid:1;)', 'q.rules:1: option "content": must follow quic.sni; or quic.version;'],
      ['alert quic any any -> any 443 (msg:"a"; pcre:"/x/"; sid:1;)', 'q.rules:1: option "pcre": must follow quic.sni; or quic.version;'],
      ['alert udp any any -> any 443 (msg:"a"; sid:1;)', 'q.rules:1: option "protocol": only "tcp" rules, and "quic" rules or "udp" rules with a QUIC keyword'],
      ['alert icmp any any -> any any (msg:"a"; sid:1;)', 'q.rules:1: option "protocol": only "tcp", "udp" and "quic" rules are supported, got "icmp"'],
      ['alert tcp any any -> any 443 (msg:"a"; quic.sni; content:"x"; sid:1;)', 'q.rules:1: option "quic.sni": QUIC keywords need a "quic" or "udp" rule, this one is "tcp"'],
      ['alert quic any any -> any 443 (msg:"a"; quic.ua; content:"x"; sid:1;)', 'q.rules:1: option "quic.ua": not supported by the built-in matcher (QUIC sticky buffers: quic.sni, quic.version)'],
      ['alert quic any any -> any 443 (msg:"a"; quic.cyu.hash; content:"x"; sid:1;)', 'q.rules:1: option "quic.cyu.hash": not supported by the built-in matcher (QUIC sticky buffers'],
      ['alert quic any any -> any 443 (msg:"a"; quic_sni; content:"x"; sid:1;)', 'q.rules:1: option "quic_sni": not supported by the built-in matcher (QUIC sticky buffers'],
      ['alert tcp any any -> any 443 (msg:"a"; quic.ua; content:"x"; sid:1;)', 'q.rules:1: option "quic.ua": not supported by the built-in matcher (QUIC sticky buffers'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni:x; content:"x"; sid:1;)', 'q.rules:1: option "quic.sni": takes no value'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; content:"x"; dsize:>0; sid:1;)', 'q.rules:1: option "dsize": not supported by the built-in matcher in quic rules (supported: msg, quic.sni, quic.version, content'],
      ['alert quic any any -> any 443 (msg:"a"; flags:A+; quic.sni; content:"x"; sid:1;)', 'q.rules:1: option "flags": tests TCP flags; this is a quic rule'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; content:"x"; nocase; nocase; sid:1;)', 'q.rules:1: option "nocase": given twice for the same content'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; content:"x"; startswith; startswith; sid:1;)', 'q.rules:1: option "startswith": given twice for the same content'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; pcre:"/x/"; endswith; sid:1;)', 'q.rules:1: option "endswith": must follow a content option in quic.sni'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; content:"x"; quic.version; nocase; sid:1;)', 'q.rules:1: option "nocase": must follow a content option in quic.version'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; content:"x"; startswith:1; sid:1;)', 'q.rules:1: option "startswith": takes no value'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; content:"x",nocase; sid:1;)', 'q.rules:1: option "content": QUIC rules use Suricata\'s form (content:"x"; nocase;)'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; pcre:"/x/R"; sid:1;)', 'q.rules:1: option "pcre": modifier "R" not supported by the built-in matcher (supported: i, s, m)'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; pcre:"/x/ii"; sid:1;)', 'q.rules:1: option "pcre": modifier "i" given twice'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; pcre:"/\\Aapi/"; sid:1;)', 'q.rules:1: option "pcre": the escape \\A is PCRE syntax the built-in matcher does not run'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; pcre:"/\\x{41}/"; sid:1;)', 'q.rules:1: option "pcre": the escape \\x is PCRE syntax'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; pcre:"/[[:alpha:]]+/"; sid:1;)', 'q.rules:1: option "pcre": a POSIX character class is PCRE syntax'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; pcre:"/(?i)api/"; sid:1;)', 'q.rules:1: option "pcre": the group "(?i)…" is PCRE syntax'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; pcre:"/(?>a)/"; sid:1;)', 'q.rules:1: option "pcre": the group "(?>a…" is PCRE syntax'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; pcre:"/[]a]/"; sid:1;)', 'q.rules:1: option "pcre": a "]" first in a character class is PCRE syntax'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; pcre:"/a++/"; sid:1;)', 'q.rules:1: option "pcre": invalid regular expression'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; pcre:"//"; sid:1;)', 'q.rules:1: option "pcre": empty pattern'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; pcre:/x/; sid:1;)', 'q.rules:1: option "pcre": value must be a double-quoted "/pattern/flags"'],
      ['alert quic any any -> any 443 (msg:"a"; quic.sni; pcre:"x"; sid:1;)', 'q.rules:1: option "pcre": expected "/pattern/flags"'],
      ['alert quic any any -> any 443 (msg:"a"; app-layer-protocol:quic; sid:1;)', 'q.rules:1: option "app-layer-protocol": a "quic" rule is QUIC already'],
      ['alert udp any any -> any 443 (msg:"a"; quic.sni; content:"x"; app-layer-protocol:quic; sid:1;)', 'q.rules:1: option "app-layer-protocol": must come before quic.sni/quic.version'],
      ['alert udp any any -> any 443 (msg:"a"; app-layer-protocol:quic; app-layer-protocol:quic; sid:1;)', 'q.rules:1: option "app-layer-protocol": given twice'],
      ['alert udp any any -> any 443 (msg:"a"; app-layer-protocol:http; sid:1;)', 'q.rules:1: option "app-layer-protocol": only app-layer-protocol:quic is supported, got "http"'],
      ['alert tcp any any -> any 443 (msg:"a"; pcre:"/x/"; sid:1;)', 'q.rules:1: option "pcre": not supported by the built-in matcher (supported: msg, content, nocase, fast_pattern, flags'],
      ['alert tcp any any -> any 443 (msg:"a"; content:"x"; startswith; sid:1;)', 'q.rules:1: option "startswith": not supported by the built-in matcher (supported: msg, content, nocase'],
    ];
    for (const [rule, want] of cases) {
      const got = errorsOf(rule);
      assert.ok(got.length >= 1 && got[0]!.startsWith(want), `${rule}\n  want: ${want}\n  got:  ${got.join('\n        ')}`);
    }
  });

  it('one mistake gives one error, on the line the rule starts', () => {
    const text = [
      '# QUIC rules',
      'alert quic any any -> any 443 (msg:"ok"; quic.sni; content:"a"; sid:1;)',
      '',
      'alert quic any any -> any 443 (msg:"bad hex"; quic.sni; \\',
      '  content:"|4|"; sid:2;)',
      'alert quic any any -> any 443 (msg:"bad pcre"; quic.sni; pcre:"/(/"; sid:3;)',
    ].join('\n');
    const r = parseRules(text, { file: 'q.rules' });
    assert.deepEqual(r.rules.map((x) => x.sid), [1]);
    assert.deepEqual(r.errors.map((e) => [e.line, e.option]), [[4, 'content'], [6, 'pcre']]);
  });
});

describe('analyzers: QUIC rules, matching client Initials', () => {
  const SNI_RULES = rules([
    'alert quic any any -> any 443 (msg:"MIGRATE exact"; quic.sni; content:"www.example.com"; startswith; endswith; sid:1;)',
    'alert quic any any -> any 443 (msg:"MIGRATE nocase"; quic.sni; content:"WWW.EXAMPLE.COM"; nocase; startswith; endswith; sid:2;)',
    'alert quic any any -> any 443 (msg:"FORWARD api prefix"; quic.sni; content:"api."; startswith; sid:3;)',
    'alert quic any any -> any 443 (msg:"FORWARD net suffix"; quic.sni; content:".example.net"; endswith; sid:4;)',
    'alert quic any any -> any 443 (msg:"MIGRATE anywhere"; quic.sni; content:"shop"; sid:5;)',
    'alert quic any any -> any 443 (msg:"MIGRATE pcre"; quic.sni; pcre:"/^(cdn|img)[0-9]+\\.example\\.org$/i"; sid:6;)',
    'alert quic any any -> any 443 (msg:"FORWARD not example"; quic.sni; content:!"example"; sid:7;)',
    'alert quic any any -> any 443 (msg:"FORWARD pcre negated"; quic.sni; pcre:!"/\\.(com|net|org)$/"; sid:8;)',
  ].join('\n'));

  it('quic.sni with content, nocase, startswith/endswith, negation and pcre', () => {
    const cases: [string, number[]][] = [
      ['www.example.com', [1, 2]],
      ['WWW.Example.COM', [2, 7, 8]],
      ['www.example.com.evil', [8]],
      ['xwww.example.com', []],
      ['api.example.com', [3]],
      ['xapi.example.com', []],
      ['api.example.net', [3, 4]],
      ['api.example.net.x', [3, 8]],
      ['shop.example.com', [5]],
      ['myshop.test', [5, 7, 8]],
      ['CDN42.example.ORG', [6, 8]],
      ['cdn.example.org', []],
      ['other.test', [7, 8]],
    ];
    for (const [sni, want] of cases) assert.deepEqual(sids(SNI_RULES, initial({ sni })), want, sni);
  });

  it('an Initial without SNI matches no quic.sni test, not even a negated one', () => {
    assert.deepEqual(sids(SNI_RULES, initial({})), []);
    const rs = rules([
      'alert quic any any -> any 443 (msg:"FORWARD v1"; quic.version; content:"|00 00 00 01|"; sid:10;)',
      'alert quic any any -> any 443 (msg:"any QUIC"; sid:11;)',
      'alert udp any any -> any 443 (msg:"any QUIC too"; app-layer-protocol:quic; sid:12;)',
    ].join('\n'));
    assert.deepEqual(sids(rs, initial({})), [10, 11, 12]);
    assert.equal(quicBuffer('quic.sni', initial({})), undefined);
  });

  it('quic.version: v1 and v2 as their 4 wire bytes, combined with quic.sni', () => {
    const rs = rules([
      'alert quic any any -> any 443 (msg:"FORWARD v1"; quic.version; content:"|00 00 00 01|"; startswith; endswith; sid:20;)',
      'alert quic any any -> any 443 (msg:"MIGRATE v2"; quic.version; content:"|6b 33 43 cf|"; sid:21;)',
      'alert quic any any -> any 443 (msg:"MIGRATE v2 api"; quic.sni; content:"api."; startswith; quic.version; content:!"|00 00 00 01|"; sid:22;)',
      'alert quic any any -> any 443 (msg:"pcre on version"; quic.version; pcre:"/^\\x6b3C/i"; sid:23;)',
    ].join('\n'));
    assert.deepEqual(quicBuffer('quic.version', initial({ version: QUIC_V2 })), Buffer.from('6b3343cf', 'hex'));
    assert.deepEqual(sids(rs, initial({ sni: 'api.example.com' })), [20]);
    assert.deepEqual(sids(rs, initial({ sni: 'api.example.com', version: QUIC_V2 })), [21, 22, 23]);
    assert.deepEqual(sids(rs, initial({ sni: 'www.example.com', version: QUIC_V2 })), [21, 23]);
  });

  it('the rule header is tested against the client datagram: ports, addresses, variables, <>', () => {
    const rs = rules([
      'alert quic any any -> $HOME_NET 443 (msg:"MIGRATE home"; quic.sni; content:"a"; sid:30;)',
      'alert quic any any -> any 8443 (msg:"MIGRATE 8443"; quic.sni; content:"a"; sid:31;)',
      'alert quic !198.51.100.0/24 any -> any any (msg:"MIGRATE not that net"; quic.sni; content:"a"; sid:32;)',
      'alert quic any 443 <> any 51000 (msg:"MIGRATE both ways"; quic.sni; content:"a"; sid:33;)',
      'alert quic any any -> any 443 (msg:"MIGRATE"; quic.sni; content:"a"; sid:34;)',
    ].join('\n'), { HOME_NET: '[10.0.0.0/8]' });
    const a = initial({ sni: 'a.example' });
    assert.deepEqual(sids(rs, a), [30, 33, 34]);
    assert.deepEqual(sids(rs, a, { ...FLOW, dstPort: 8443 }), [31]);
    assert.deepEqual(sids(rs, a, { ...FLOW, srcIp: '203.0.113.1', dstIp: '192.0.2.1' }), [32, 33, 34]);
    assert.deepEqual(sids(rs, a, { ...FLOW, srcPort: 51001 }), [30, 34]);
    // IPv6 as on the TCP path: an IPv4 prefix never matches an IPv6 address (so its negation does), an IPv6 prefix does.
    assert.deepEqual(sids(rs, a, { ...FLOW, srcIp: '2001:db8::1', dstIp: '2001:db8::2' }), [32, 33, 34]);
    const v6 = rules('alert quic 2001:db8::/32 any -> [2001:db8::2, 10.0.0.1] 443 (msg:"MIGRATE v6"; quic.sni; content:"a"; sid:35;)', {});
    assert.deepEqual(sids(v6, a, { ...FLOW, srcIp: '2001:db8::1', dstIp: '2001:db8::2' }), [35]);
    assert.deepEqual(sids(v6, a, { ...FLOW, srcIp: '2001:db9::1', dstIp: '2001:db8::2' }), []);
    assert.deepEqual(sids(v6, a, { ...FLOW, srcIp: '2001:db8::1', dstIp: '2001:0db8:0:0:0:0:0:3' }), []);
  });

  it('alerts come in rule order and the first verdict decides, as on the TCP path', () => {
    const rs = rules([
      'alert quic any any -> any 443 (msg:"seen a QUIC client"; quic.version; content:"|00 00 00 01|"; sid:40;)',
      'alert quic any any -> any 443 (msg:"FORWARD legacy"; quic.sni; content:"legacy"; classtype:policy-violation; priority:2; sid:41; rev:3;)',
      'alert quic any any -> any 443 (msg:"MIGRATE to server3"; quic.sni; content:"example"; sid:42;)',
    ].join('\n'));
    const time = new Date(1_700_000_000_000);
    const alerts = matchQuicRules(rs, initial({ sni: 'legacy.example.com' }), FLOW, time);
    assert.deepEqual(alerts.map((a) => [a.sid, a.verdict]), [[40, undefined], [41, 'FORWARD'], [42, 'MIGRATE']]);
    assert.deepEqual(alerts[1], {
      source: 'builtin', msg: 'FORWARD legacy', gid: 1, sid: 41, rev: 3, time, verdict: 'FORWARD',
      classification: 'policy-violation', priority: 2, flow: FLOW,
    });
    assert.equal(quicVerdict(rs, initial({ sni: 'legacy.example.com' }), FLOW)?.sid, 41);
    assert.equal(quicVerdict(rs, initial({ sni: 'www.example.com' }), FLOW)?.sid, 42);
    assert.equal(quicVerdict(rs, initial({ sni: 'other.test' }), FLOW), undefined, 'no verdict rule: the default applies');
  });

  it('nothing matches before the ClientHello is complete; the assembled one matches', () => {
    const rs = rules('alert quic any any -> any 443 (msg:"MIGRATE"; quic.version; content:"|00 00 00 01|"; sid:50;)');
    const hello = encodeClientHello({ sni: 'pq.example.net', keyShares: [{ group: 0x11ec, key: randomBytes(1216) }] });
    const first = parseClientInitial(encodeClientInitial({ version: QUIC_V1, dcid: DCID, scid: Buffer.alloc(0), pn: 0, frames: [{ type: 'crypto', offset: 0, data: hello.subarray(0, 600) }] }));
    assert.ok(first.ok && first.value.status === 'need_more');
    assert.deepEqual(sids(rs, first.value), []);
    assert.deepEqual(sids(rs, initial({ sni: 'pq.example.net', split: true })), [50]);
  });

  it('BuiltinMatcher: one rule file for both, TCP segments never meet QUIC rules and the other way round', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'quic-rules-'));
    try {
      const file = join(dir, 'all.rules');
      writeFileSync(file, [
        'alert tcp any any -> any any (msg:"MIGRATE tcp"; flags:A+; content:"example"; sid:60;)',
        'alert quic any any -> any any (msg:"MIGRATE quic"; quic.sni; content:"example"; sid:61;)',
        '',
      ].join('\n'));
      const m = new BuiltinMatcher({ ruleFiles: [file] });
      await m.start();
      assert.equal(m.stats.rules, 2);
      assert.deepEqual(m.matchQuic(initial({ sni: 'www.example.com' }), FLOW).map((a) => a.sid), [61]);
      const frame = parseFrame(buildTcpFrame({
        ethSrc: '02:00:00:00:00:01', ethDst: '02:00:00:00:00:02', ipSrc: '198.51.100.7', ipDst: '10.0.0.10',
        srcPort: 51000, dstPort: 443, seq: 1, ack: 1, flags: { ack: true, psh: true }, window: 1000, payload: Buffer.from('GET www.example.com'),
      }));
      assert.ok(frame.ok);
      assert.deepEqual(m.inspect(frame.value).map((a) => a.sid), [60]);
      assert.deepEqual(matchRules(m.getRules(), frame.value).map((a) => a.sid), [60]);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });
});

describe('analyzers: QUIC rules, properties', () => {
  const host = fc.stringMatching(/^[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,3}$/);
  const token = fc.stringMatching(/^[a-zA-Z0-9.-]{1,8}$/);

  it('content / nocase / startswith / endswith agree with plain string tests', () => {
    fc.assert(fc.property(host, token, fc.boolean(), fc.constantFrom('', 'startswith;', 'endswith;', 'startswith; endswith;'), (sni, tok, nocase, anchor) => {
      const [r] = rules(`alert quic any any -> any any (msg:"MIGRATE"; quic.sni; content:"${tok}"; ${nocase ? 'nocase; ' : ''}${anchor} sid:1;)`);
      const [h, t] = nocase ? [sni.toLowerCase(), tok.toLowerCase()] : [sni, tok];
      const want = anchor === '' ? h.includes(t) : anchor === 'startswith;' ? h.startsWith(t) : anchor === 'endswith;' ? h.endsWith(t) : h === t;
      assert.equal(sids([r!], initial({ sni })).length === 1, want);
    }), { numRuns: 150 });
  });

  // Pieces of rule text, valid and not, so that random rules reach deep into the parser.
  const piece = fc.oneof(
    fc.constantFrom('quic.sni', 'quic.version', 'quic.ua', 'quic_sni', 'nocase', 'startswith', 'endswith', 'fast_pattern',
      'app-layer-protocol:quic', 'app-layer-protocol:!quic', 'flags:A+', 'msg:"MIGRATE"', 'msg:"FORWARD"', 'sid:7', 'sid:0', 'priority:1',
      'content:"|00 00 00 01|"', 'content:!"|6b 33|"', 'content:"a",nocase', 'content:"', 'pcre:"/a/i"', 'pcre:!"/^x$/ms"', 'pcre:"/\\A/"', 'pcre:', 'quic.sni:1', ''),
    fc.string({ maxLength: 12 }).map((s) => `content:"${s}"`),
    fc.string({ maxLength: 10 }).map((s) => `pcre:"/${s}/"`),
    fc.string({ maxLength: 16 }),
  );
  const ruleText = fc.record({
    proto: fc.constantFrom('quic', 'udp', 'tcp', 'ip', 'QUIC'),
    sport: fc.constantFrom('any', '443', '[1:1024,!80]', '$X', 'x'),
    dport: fc.constantFrom('any', '443', '!443', '70000'),
    dir: fc.constantFrom('->', '<>', '<-'),
    opts: fc.array(piece, { maxLength: 10 }),
  }).map((r) => `alert ${r.proto} any ${r.sport} ${r.dir} any ${r.dport} (${r.opts.join('; ')}; sid:${1 + r.opts.length};)`);

  const anyInitial = fc.record({
    sni: fc.option(host, { nil: undefined }),
    version: fc.constantFrom(QUIC_V1, QUIC_V2),
  }).map((o) => initial(o));
  const flow = fc.record({
    srcIp: fc.constantFrom('198.51.100.7', '10.0.0.1', '::1', '', '300.1.1.1'),
    srcPort: fc.integer({ min: 0, max: 65535 }),
    dstIp: fc.constantFrom('10.0.0.10', '0.0.0.0'),
    dstPort: fc.constantFrom(443, 8443, 0),
  });

  it('no rule text crashes the parser or the matcher; every error names file, line and option', () => {
    fc.assert(fc.property(fc.array(fc.oneof(ruleText, fc.string({ maxLength: 80 })), { maxLength: 6 }), anyInitial, flow, (lines, init, fl) => {
      const r = parseRules(lines.join('\n'), { file: 'p.rules' });
      for (const e of r.errors) {
        assert.equal(e.file, 'p.rules');
        assert.ok(e.line >= 1 && e.line <= Math.max(1, lines.join('\n').split('\n').length));
        assert.equal(typeof e.message, 'string');
        assert.ok(e.message.length > 0);
      }
      for (const rule of r.rules) assert.ok(rule.proto !== 'tcp' || rule.buffers === undefined);
      const alerts = matchQuicRules(r.rules, init, fl);
      const known = new Set(r.rules.filter((x) => x.proto !== 'tcp').map((x) => x.sid));
      for (const a of alerts) assert.ok(known.has(a.sid));
    }), { numRuns: 400 });
  });

  it('no datagram crashes the matcher: random bytes, mutated Initials, odd SNIs and flows', () => {
    const rs = rules([
      'alert quic any any -> any any (msg:"MIGRATE"; quic.sni; content:"a"; nocase; pcre:"/^[a-z]+$/i"; sid:1;)',
      'alert udp any any <> any 443 (msg:"FORWARD"; app-layer-protocol:quic; quic.version; content:!"|00 00 00 01|"; endswith; sid:2;)',
      'alert quic any any -> any any (msg:"x"; quic.sni; content:!"b"; startswith; sid:3;)',
    ].join('\n'));
    const valid = encodeClientInitial({ version: QUIC_V1, dcid: DCID, scid: Buffer.alloc(0), pn: 0, frames: [{ type: 'crypto', offset: 0, data: encodeClientHello({ sni: 'abc.example' }) }] });
    const datagram = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 1300 }).map((u) => Buffer.from(u)),
      fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }).map((flips) => {
        const b = Buffer.from(valid);
        for (const [at, x] of flips) b[at]! ^= x;
        return b;
      }),
    );
    fc.assert(fc.property(datagram, flow, (d, fl) => {
      const r = parseClientInitial(d, { minDatagramSize: 0 });
      if (r.ok) for (const a of matchQuicRules(rs, r.value, fl)) assert.ok([1, 2, 3].includes(a.sid));
    }), { numRuns: 300 });
    // The codec reads printable ASCII host names; the matcher copes with any string and version.
    fc.assert(fc.property(fc.string({ maxLength: 40 }), fc.integer({ min: -1, max: 2 ** 32 }), flow, (sni, version, fl) => {
      const fake = { ...initial({}), sni, version } as CompleteInitial;
      matchQuicRules(rs, fake, fl);
    }), { numRuns: 300 });
    assert.deepEqual(matchQuicRules(rs, undefined as unknown as ClientInitialProgress, FLOW), []);
    assert.deepEqual(matchQuicRules(rs, initial({ sni: 'abc' }), undefined as unknown as FlowKey), []);
  });
});
