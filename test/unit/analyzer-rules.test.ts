// Snort rule subset parser and the built-in matcher (pure; the comparison with a real Suricata
// is in test/integration/analyzer-builtin-vs-suricata.test.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFrame, type ParsedFrame, type TcpFlagsSpec } from '../../controller/packet/index.ts';
import { buildTcpFrameAny } from '../../controller/handoff/segments.ts';
import {
  flagsMatch, formatRuleError, loadRuleFiles, loadRules, parseFlags, parseRules, RuleParseError, splitRuleLines, STREAM_WARNING,
  type FlagsMatch,
} from '../../controller/analyzers/rules.ts';
import { BuiltinMatcher, matchRules } from '../../controller/analyzers/builtin-matcher.ts';
import type { Alert } from '../../controller/analyzers/types.ts';

const REPO_RULES = new URL('../../snort-rules/migrate.rules', import.meta.url).pathname;

function frame(o: { payload?: string | Buffer; flags?: TcpFlagsSpec | number; src?: string; dst?: string; sport?: number; dport?: number } = {}): ParsedFrame {
  const b = buildTcpFrameAny({
    ethSrc: '02:00:00:00:00:02', ethDst: '02:00:00:00:00:01', ipSrc: o.src ?? '10.0.0.2', ipDst: o.dst ?? '10.0.0.1',
    srcPort: o.sport ?? 40000, dstPort: o.dport ?? 5001, seq: 1001, ack: 5001, flags: o.flags ?? { psh: true, ack: true }, window: 8192,
    payload: typeof o.payload === 'string' ? Buffer.from(o.payload) : o.payload,
  });
  const r = parseFrame(b);
  assert.ok(r.ok);
  return r.value;
}

function one(rule: string, vars: Record<string, string> = {}) {
  const r = parseRules(rule, { file: 't.rules', vars });
  assert.deepEqual(r.errors.map(formatRuleError), []);
  assert.equal(r.rules.length, 1);
  return r.rules[0]!;
}
const sids = (a: Alert[]): number[] => a.map((x) => x.sid);

describe('analyzers: rule parser', () => {
  it('parses the shared sample rule', () => {
    const r = one(readFileSync(new URL('../fixtures/ids/migrate.rules', import.meta.url), 'utf8'));
    assert.equal(r.sid, 1000002);
    assert.equal(r.msg, 'MIGRATE');
    assert.equal(r.verdict, 'MIGRATE');
    assert.equal(r.gid, 1);
    assert.equal(r.rev, 0);
    assert.deepEqual(r.flags, { flags: 0x18, modifier: 'exact', considered: 0xff, text: 'PA' });
    assert.equal(r.contents[0]!.bytes.toString(), 'migrate');
  });

  it('parses the repo rule file without errors or warnings', async () => {
    const r = await loadRuleFiles([REPO_RULES]);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.rules.map((x) => [x.sid, x.verdict]), [[1000001, 'FORWARD'], [1000002, 'MIGRATE'], [1000003, 'MIGRATE']]);
  });

  it('comments, blank lines, continuations; line numbers of the rule start', () => {
    const text = '# comment\n\n  # indented comment\nalert tcp any any -> any any \\\n  (msg:"a"; \\\n sid:1;)\n\nalert tcp any any -> any any (msg:"b"; sid:2;)\r\n';
    assert.deepEqual(splitRuleLines(text).map((l) => l.line), [4, 8]);
    const r = parseRules(text);
    assert.deepEqual(r.rules.map((x) => [x.sid, x.line]), [[1, 4], [2, 8]]);
  });

  it('escapes and hex in content and msg', () => {
    const r = one('alert tcp any any -> any any (msg:"FORWARD \\"q\\" a\\;b \\\\"; content:"a\\"b\\;c\\\\d|20 41|e|7c|"; sid:5;)');
    assert.equal(r.msg, 'FORWARD "q" a;b \\');
    assert.equal(r.verdict, 'FORWARD');
    assert.deepEqual(r.contents[0]!.bytes, Buffer.from('a"b;c\\d Ae|'));
    const h = one('alert tcp any any -> any any (msg:"x"; content:"|de ad BE EF|"; sid:6;)');
    assert.deepEqual(h.contents[0]!.bytes, Buffer.from([0xde, 0xad, 0xbe, 0xef]));
  });

  it('addresses: CIDR, lists, negation, variables (default any), <>', () => {
    const r = one('alert tcp [10.0.0.0/8,!10.0.0.9] any <> $HOME_NET [80,443,8000:8080] (msg:"m"; sid:7;)', { HOME_NET: '[192.168.1.0/24, 172.16.0.1]' });
    assert.equal(r.bidirectional, true);
    const rules = [r];
    assert.deepEqual(sids(matchRules(rules, frame({ src: '10.0.0.2', dst: '192.168.1.5', dport: 443 }))), [7]);
    assert.deepEqual(sids(matchRules(rules, frame({ src: '10.0.0.9', dst: '192.168.1.5', dport: 443 }))), []);
    assert.deepEqual(sids(matchRules(rules, frame({ src: '10.0.0.2', dst: '172.16.0.1', dport: 8080 }))), [7]);
    assert.deepEqual(sids(matchRules(rules, frame({ src: '10.0.0.2', dst: '172.16.0.2', dport: 8080 }))), []);
    assert.deepEqual(sids(matchRules(rules, frame({ src: '10.0.0.2', dst: '172.16.0.1', dport: 8081 }))), []);
    // reversed direction thanks to <>
    assert.deepEqual(sids(matchRules(rules, frame({ src: '192.168.1.5', dst: '10.0.0.2', sport: 80, dport: 33333 }))), [7]);
    const any = one('alert tcp $EXTERNAL_NET any -> $HOME_NET any (msg:"m"; sid:8;)');
    assert.deepEqual(sids(matchRules([any], frame())), [8]);
    const neg = one('alert tcp !10.0.0.0/24 any -> any ![5001,5002] (msg:"m"; sid:9;)');
    assert.deepEqual(sids(matchRules([neg], frame())), []);
    assert.deepEqual(sids(matchRules([neg], frame({ src: '10.0.1.1', dport: 5003 }))), [9]);
  });

  it('IPv6 addresses and prefixes, in lists and variables; a prefix of one family never matches the other', () => {
    const r = one('alert tcp [2001:db8::/32, !2001:db8:0:1::/64] any -> $HOME_NET 5001 (msg:"m"; sid:10;)', { HOME_NET: '[fd00::1, 10.0.0.1]' });
    const v6 = (src: string, dst = 'fd00::1') => frame({ src, dst });
    assert.deepEqual(sids(matchRules([r], v6('2001:db8::7'))), [10]);
    assert.deepEqual(sids(matchRules([r], v6('2001:db8:0:1::7'))), [], 'the negated /64 inside the /32');
    assert.deepEqual(sids(matchRules([r], v6('2001:db9::7'))), []);
    assert.deepEqual(sids(matchRules([r], v6('2001:db8::7', 'fd00::2'))), []);
    assert.deepEqual(sids(matchRules([r], frame({ src: '10.0.0.2', dst: '10.0.0.1' }))), [], 'an IPv4 source is not in an IPv6 prefix');
    const any = one('alert tcp !10.0.0.0/8 any -> any any (msg:"m"; content:"x"; sid:11;)');
    assert.deepEqual(sids(matchRules([any], frame({ src: 'fd00::2', dst: 'fd00::1', payload: 'x' }))), [11], 'an IPv6 source is not in 10/8');
    const host = one('alert tcp FD00:0:0::2 any -> fd00::1/128 any (msg:"m"; sid:12;)');
    assert.deepEqual(sids(matchRules([host], frame({ src: 'fd00::2', dst: 'fd00::1' }))), [12], 'any spelling of an address');
    assert.deepEqual(matchRules([host], frame({ src: 'fd00::2', dst: 'fd00::1' }))[0]!.flow, { srcIp: 'fd00::2', srcPort: 40000, dstIp: 'fd00::1', dstPort: 5001 });
    for (const bad of ['fd00::/129', 'fd00:::1', '2001:db8::/x', 'fd00::1/']) {
      assert.throws(() => one(`alert tcp ${bad} any -> any any (msg:"m"; sid:13;)`), /invalid IPv6 address or prefix/, bad);
    }
  });

  it('port ranges a:b, :b, a:, nested variables', () => {
    const rules = parseRules([
      'alert tcp any :1024 -> any any (msg:"low"; sid:1;)',
      'alert tcp any 40000: -> any any (msg:"high"; sid:2;)',
      'alert tcp any any -> any $WEB (msg:"web"; sid:3;)',
    ].join('\n'), { vars: { WEB: '[$HTTP,5001]', HTTP: '80' } });
    assert.deepEqual(rules.errors, []);
    assert.deepEqual(sids(matchRules(rules.rules, frame({ sport: 1024 }))), [1, 3]);
    assert.deepEqual(sids(matchRules(rules.rules, frame({ sport: 65535, dport: 80 }))), [2, 3]);
    assert.deepEqual(sids(matchRules(rules.rules, frame({ sport: 2000, dport: 81 }))), []);
  });

  it('collects every error with file, line and option', () => {
    const text = [
      'alert tcp any any -> any any (msg:"a"; pcre:"/x/"; sid:1;)',
      'alert udp any any -> any any (msg:"b"; sid:2;)',
      'alert tcp any any -> any any (msg:"c"; flow:established; content:"x"; offset:3; sid:3;)',
      'alert tcp any any -> any any (msg:"d";)',
      'alert tcp any any -> any any (msg:"e"; sid:4; content:"|4|";)',
      'alert tcp any any -> any any (msg:"f"; sid:11;)',
      'alert tcp 10.0.0.300 any -> any 70000 (msg:"g"; sid:5;)',
      'alert tcp any any <- any any (msg:"h"; sid:6;)',
      'alert tcp any any -> any any (msg:"i"; flags:PZ; sid:7;)',
      'alert tcp any any -> any any msg:"j"; sid:8;',
      'drop tcp any any -> any any (msg:"k"; sid:9;)',
      'alert tcp any any -> any any (msg:"l"; nocase; content:"a\\x"; sid:10;)',
      'alert tcp any any -> any any (msg:"dup"; sid:11;)',
      'alert tcp !any any -> any any (msg:"m"; sid:12;)',
      'alert tcp any any -> any any (msg:"n"; sid:x;)',
    ].join('\n');
    const r = parseRules(text, { file: 'bad.rules' });
    assert.deepEqual(r.rules.map((x) => x.sid), [11]);
    const lines = r.errors.map(formatRuleError);
    const expect = [
      'bad.rules:1: option "pcre": not supported',
      'bad.rules:2: option "protocol": only "tcp"',
      'bad.rules:3: option "flow": not supported',
      'bad.rules:3: option "offset": not supported',
      'bad.rules:4: option "sid": every rule needs a sid',
      'bad.rules:5: option "content": odd number of hex digits',
      'bad.rules:13: option "sid": duplicate sid 11 (gid 1), first defined on line 6',
      'bad.rules:7: option "source address": invalid address "10.0.0.300"',
      'bad.rules:7: option "destination port": port out of range',
      'bad.rules:8: option "direction"',
      'bad.rules:9: option "flags": unknown flag "Z"',
      'bad.rules:10: a rule is "<header> (<options>)"',
      'bad.rules:11: option "action": only "alert"',
      'bad.rules:12: option "nocase": must follow a content option',
      'bad.rules:12: option "content": invalid escape "\\x"',
      'bad.rules:14: option "source address": "!any" matches nothing',
      'bad.rules:15: option "sid": must be an unsigned 32-bit integer',
    ];
    for (const e of expect) assert.ok(lines.some((l) => l.startsWith(e)), `missing "${e}" in:\n${lines.join('\n')}`);
  });

  it('loadRules throws RuleParseError listing all errors; unreadable files are errors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'analyzer-rules-'));
    try {
      const f = join(dir, 'x.rules');
      writeFileSync(f, 'alert tcp any any -> any any (msg:"a"; pcre:"/x/"; sid:1;)\nalert tcp any any -> any any (msg:"b"; flow:to_server; sid:2;)\n');
      await assert.rejects(loadRules([f]), (e: unknown) => {
        assert.ok(e instanceof RuleParseError);
        assert.equal(e.errors.length, 2);
        assert.match(e.message, /x\.rules:1: option "pcre"/);
        assert.match(e.message, /x\.rules:2: option "flow"/);
        return true;
      });
      const r = await loadRuleFiles([join(dir, 'missing.rules'), f, f]);
      assert.match(formatRuleError(r.errors[0]!), /missing\.rules:0: cannot read rule file/);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  it('warns about content rules without flags (stream-only alerts in Suricata)', () => {
    const r = parseRules('alert tcp any any -> any any (msg:"MIGRATE"; content:"migrate"; sid:1;)');
    assert.equal(r.errors.length, 0);
    assert.equal(r.warnings.length, 1);
    assert.equal(r.warnings[0]!.message, STREAM_WARNING);
  });
});

describe('analyzers: flags (Suricata semantics)', () => {
  const F = (s: string): FlagsMatch => { const f = parseFlags(s); assert.ok(typeof f !== 'string', String(f)); return f; };
  const FIN = 1, SYN = 2, RST = 4, PSH = 8, ACK = 16, URG = 32, ECE = 64, CWR = 128;
  it('exact, +, *, !, 0, masks, modifier before or after', () => {
    assert.ok(flagsMatch(F('PA'), PSH | ACK));
    assert.ok(!flagsMatch(F('PA'), PSH | ACK | FIN));
    assert.ok(!flagsMatch(F('PA'), ACK));
    assert.ok(flagsMatch(F('A+'), ACK | PSH | FIN));
    assert.ok(flagsMatch(F('+A'), ACK));
    assert.ok(!flagsMatch(F('A+'), SYN));
    assert.ok(flagsMatch(F('*AF'), FIN | ACK));
    assert.ok(!flagsMatch(F('*AF'), ACK | PSH)); // F named: needs one of F/S/R (Suricata's pre-filter)
    assert.ok(!flagsMatch(F('*SF'), ACK | PSH));
    assert.ok(flagsMatch(F('!S'), FIN | ACK));
    assert.ok(!flagsMatch(F('!S'), SYN | ACK));
    assert.ok(flagsMatch(F('!SA'), SYN)); // "not all of them"
    assert.ok(flagsMatch(F('0'), 0));
    assert.ok(!flagsMatch(F('0'), ACK));
    assert.ok(flagsMatch(F('S,12'), SYN | ECE | CWR));
    assert.ok(flagsMatch(F('S,CE'), SYN | CWR));
    assert.ok(!flagsMatch(F('S'), SYN | CWR));
    assert.ok(flagsMatch(F('UA'), URG | ACK));
    assert.ok(flagsMatch(F('R'), RST));
    assert.ok(flagsMatch(F('PA'), PSH | ACK | 0x100)); // AE/NS bit is outside the 8 flags Suricata looks at
  });
  it("Suricata 7's pre-filter quirks (checked against a real Suricata by the corpus test)", () => {
    // F/S/R named: only packets with one of F/S/R are considered.
    assert.ok(!flagsMatch(F('!F'), ACK | PSH));
    assert.ok(flagsMatch(F('!F'), SYN));
    // U/E/C named: only packets with one of U/E/C; both groups named: both needed.
    assert.ok(!flagsMatch(F('*UA'), ACK));
    assert.ok(flagsMatch(F('*UA'), URG | ACK));
    assert.ok(!flagsMatch(F('*FU'), FIN | ACK));
    assert.ok(flagsMatch(F('*FU'), FIN | URG | ACK));
    // S named without "!": SYN packets only.
    assert.ok(!flagsMatch(F('*FS'), FIN | ACK));
    assert.ok(flagsMatch(F('*FS'), SYN | ACK));
    assert.ok(flagsMatch(F('!FS'), FIN | ACK));
  });
  it('rejects malformed flags', () => {
    for (const s of ['', 'X', 'S+*', 'S,', 'S,Q', '+', 'S,1,2']) assert.equal(typeof parseFlags(s), 'string', s);
  });
});

describe('analyzers: built-in matcher', () => {
  it('repo rules: migrate/forward/relocate, nocase, verdicts, facts from the frame', async () => {
    const m = new BuiltinMatcher({ ruleFiles: [REPO_RULES] });
    await m.start();
    const seen: Alert[] = [];
    m.on('alert', (a) => seen.push(a));
    const a = m.inspect(frame({ payload: 'Please MIGRATE this connection' }), new Date(1));
    assert.deepEqual(a, [{
      source: 'builtin', verdict: 'MIGRATE', msg: 'MIGRATE', gid: 1, sid: 1000002, rev: 1, time: new Date(1),
      flow: { srcIp: '10.0.0.2', srcPort: 40000, dstIp: '10.0.0.1', dstPort: 5001 }, seq: 1001, ack: 5001, payloadLength: 30,
    }]);
    assert.deepEqual(seen, a); // emitted synchronously
    assert.deepEqual(m.inspect(frame({ payload: 'forward please' })).map((x) => [x.sid, x.verdict]), [[1000001, 'FORWARD']]);
    assert.deepEqual(m.inspect(frame({ payload: 'relocate' })).map((x) => [x.sid, x.verdict]), [[1000003, 'MIGRATE']]);
    assert.deepEqual(sids(m.inspect(frame({ payload: 'forward and migrate' }))), [1000001, 1000002]);
    assert.deepEqual(m.inspect(frame({ payload: 'nothing here' })), []);
    assert.deepEqual(m.inspect(frame({ payload: 'migrate', flags: { syn: true } })), []); // flags:A+
    assert.equal(m.inspect(frame({ payload: 'migrate', dst: '8.8.8.8' })).length, 1); // $HOME_NET defaults to any
    assert.equal(m.stats.alerts, 6);
    assert.equal(m.stats.inspected, 7);
  });

  it('$HOME_NET restricts when defined', async () => {
    const m = new BuiltinMatcher({ ruleFiles: [REPO_RULES], vars: { HOME_NET: '[10.0.0.0/8]' } });
    await m.start();
    assert.deepEqual(m.inspect(frame({ payload: 'migrate', dst: '8.8.8.8' })), []);
    assert.equal(m.inspect(frame({ payload: 'migrate' })).length, 1);
  });

  it('multiple contents, negated content, hex, case sensitivity', () => {
    const { rules } = parseRules([
      'alert tcp any any -> any any (msg:"MIGRATE both"; flags:A+; content:"foo"; content:"BAR"; nocase; sid:1;)',
      'alert tcp any any -> any any (msg:"FORWARD not"; flags:A+; content:"foo"; content:!"zzz"; sid:2;)',
      'alert tcp any any -> any any (msg:"hex"; flags:A+; content:"|00 ff|x"; sid:3;)',
      'alert tcp any any -> any any (msg:"case"; flags:A+; content:"Foo"; sid:4;)',
    ].join('\n'));
    assert.deepEqual(sids(matchRules(rules, frame({ payload: 'foo bar' }))), [1, 2]);
    assert.deepEqual(sids(matchRules(rules, frame({ payload: 'foo bar zzz' }))), [1]);
    assert.deepEqual(sids(matchRules(rules, frame({ payload: Buffer.from([1, 0, 0xff, 0x78]) }))), [3]);
    assert.deepEqual(sids(matchRules(rules, frame({ payload: 'Foo' }))), [4]);
    assert.deepEqual(sids(matchRules(rules, frame({ payload: '' }))), []);
  });

  it('reload keeps the old rules when the new file is invalid', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'analyzer-reload-'));
    try {
      const f = join(dir, 'r.rules');
      writeFileSync(f, 'alert tcp any any -> any any (msg:"MIGRATE"; flags:A+; content:"x"; sid:1;)\n');
      const m = new BuiltinMatcher({ ruleFiles: [f] });
      await m.start();
      writeFileSync(f, 'alert tcp any any -> any any (msg:"MIGRATE"; pcre:"/x/"; sid:1;)\n');
      await assert.rejects(m.reload(), RuleParseError);
      assert.equal(m.getRules().length, 1);
      assert.equal(m.stats.reload_errors, 1);
      writeFileSync(f, 'alert tcp any any -> any any (msg:"FORWARD"; flags:A+; content:"y"; sid:2;)\n');
      await m.reload();
      assert.deepEqual(m.getRules().map((r) => r.sid), [2]);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  it('ignores non-TCP frames', () => {
    const m = new BuiltinMatcher({ rules: parseRules('alert tcp any any -> any any (msg:"x"; sid:1;)').rules });
    const udp = { ...frame(), tcp: undefined } as ParsedFrame;
    assert.deepEqual(m.inspect(udp), []);
    assert.equal(m.stats.not_tcp, 1);
  });
});
