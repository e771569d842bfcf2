// One rule source, every engine (pure parts): the built-in matcher reads Snort 3's content syntax
// as well as Snort 2.9/Suricata's, the exporter converts between them, the shipped Snort 3 file is
// the export of the file users edit, and the analyzers.snort config (several sockets, owner/group).
// The real Snort 3 and Suricata loading these files: test/integration/analyzer-snort3-rules.test.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatRuleError, loadRuleFiles, parseRules, type Rule } from '../../controller/analyzers/rules.ts';
import { exportRuleFiles, exportRules } from '../../controller/analyzers/rules-export.ts';
import { analyzerRestartNeeded, parseAnalyzers, snortSockets } from '../../controller/analyzers/analyzer-config.ts';
import { snortArgs } from '../../topo/lib/snort.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const RULES = join(ROOT, 'snort-rules', 'migrate.rules');
const RULES3 = join(ROOT, 'snort-rules', 'migrate.snort3.rules');
const CORPUS = join(ROOT, 'test', 'fixtures', 'ids', 'corpus.rules');

/** What a rule means to the matcher, without where it was written or how. */
function meaning(rules: readonly Rule[]): unknown[] {
  return rules.map(({ file: _f, line: _l, text: _t, ...r }) => r);
}
function errors(text: string): string[] { return parseRules(text, { file: 'r.rules' }).errors.map(formatRuleError); }
function cli(...args: string[]) { return spawnSync(process.execPath, [join(ROOT, 'bin', 'tcp-migrate.mjs'), ...args], { encoding: 'utf8', cwd: ROOT }); }

describe('analyzers: one rule source for every engine', () => {
  describe('the built-in matcher reads both content syntaxes', () => {
    it('content:"x",nocase (Snort 3) means what content:"x"; nocase; (Snort 2.9/Suricata) means', () => {
      const two = parseRules('alert tcp any any -> any any (msg:"MIGRATE"; flags:A+; content:"mig"; nocase; fast_pattern; content:!"x\\"y"; nocase; sid:1;)');
      const three = parseRules('alert tcp any any -> any any (msg:"MIGRATE"; flags:A+; content:"mig",nocase,fast_pattern; content:!"x\\"y" , nocase; sid:1;)');
      assert.deepEqual(two.errors, []);
      assert.deepEqual(three.errors, []);
      assert.deepEqual(meaning(three.rules), meaning(two.rules));
      assert.deepEqual(three.rules[0]!.contents.map((c) => [c.bytes.toString(), c.nocase, c.negated]), [['mig', true, false], ['x"y', true, true]]);
    });

    it('the shipped Snort 3 file gives the same rules as the file users edit', async () => {
      const a = await loadRuleFiles([RULES]);
      const b = await loadRuleFiles([RULES3]);
      assert.deepEqual([...a.errors, ...b.errors, ...a.warnings, ...b.warnings], []);
      assert.equal(a.rules.length, 3);
      assert.deepEqual(meaning(b.rules), meaning(a.rules));
    });

    it('bad Snort 3 modifiers are errors naming file:line: option', () => {
      assert.deepEqual(errors([
        'alert tcp any any -> any any (msg:"a"; content:"x",nocase; nocase; sid:1;)',
        'alert tcp any any -> any any (msg:"b"; content:"x",depth 4; sid:2;)',
        'alert tcp any any -> any any (msg:"c"; content:"x",nocase,nocase; sid:3;)',
        'alert tcp any any -> any any (msg:"d"; content:"x",; sid:4;)',
        'alert tcp any any -> any any (msg:"e"; content:"x" nocase; sid:5;)',
      ].join('\n')), [
        'r.rules:1: option "nocase": given twice for the same content (content:"x",nocase; is Snort 3\'s form, content:"x"; nocase; the others\')',
        'r.rules:2: option "content": modifier "depth 4" not supported by the built-in matcher (supported after the string: nocase, fast_pattern)',
        'r.rules:3: option "content": nocase given twice for the same content',
        'r.rules:4: option "content": empty modifier after the string in "x",',
        'r.rules:5: option "content": value must be a double-quoted string, got "x" nocase',
      ]);
    });
  });

  describe('tcp-migrate rules export', () => {
    it('snort-rules/migrate.snort3.rules is exactly the Snort 3 export of migrate.rules', async () => {
      const r = await exportRuleFiles([RULES], 'snort3');
      assert.deepEqual(r.errors, []);
      assert.equal(r.rules, 3);
      assert.equal(readFileSync(RULES3, 'utf8'), r.text, 'out of date: npx tcp-migrate rules export --for snort3 -o snort-rules/migrate.snort3.rules snort-rules/migrate.rules');
      assert.doesNotMatch(r.text, /; nocase;/);
      assert.equal((r.text.match(/^alert .*content:"[a-z]+",nocase;/gm) ?? []).length, 3);
    });

    for (const f of [RULES, CORPUS]) {
      it(`${f.slice(ROOT.length)}: to Snort 3 and back gives the same text, and the same rules either way`, async () => {
        const text = readFileSync(f, 'utf8');
        const to3 = exportRules(text, 'snort3', { file: f });
        assert.deepEqual(to3.errors, []);
        const back = exportRules(to3.text, 'suricata', { file: 'x' });
        assert.deepEqual(back.errors, []);
        // Continuation lines are joined; everything else comes back byte for byte.
        const joined = text.replace(/\\\n\s*/g, '');
        assert.equal(back.text, joined);
        const vars = { HOME_NET: '[10.0.0.0/8]' };
        assert.deepEqual(meaning(parseRules(to3.text, { vars }).rules), meaning(parseRules(text, { vars }).rules));
      });
    }

    it('converts offset/depth/distance/within and fast_pattern both ways; a disabled rule stays disabled', () => {
      const two = [
        'alert tcp any any -> any any (msg:"x"; content:"a"; nocase; depth:4; offset:1; content:"b"; distance:0; within:9; fast_pattern:1,2; pcre:"/c/i"; sid:1;)',
        '# alert tcp any any -> any any (msg:"off"; content:"z"; nocase; sid:2;)',
        '',
      ].join('\n');
      const three = [
        'alert tcp any any -> any any (msg:"x"; content:"a",nocase,depth 4,offset 1; content:"b",distance 0,within 9,fast_pattern,fast_pattern_offset 1,fast_pattern_length 2; pcre:"/c/i"; sid:1;)',
        '# alert tcp any any -> any any (msg:"off"; content:"z",nocase; sid:2;)',
        '',
      ].join('\n');
      assert.deepEqual(exportRules(two, 'snort3'), { text: three, rules: 1, errors: [] });
      assert.deepEqual(exportRules(three, 'suricata'), { text: two, rules: 1, errors: [] });
    });

    it('what has no automatic equivalent is an error naming file:line: option; nothing is guessed', () => {
      const bad = [
        'alert tcp any any -> any any (msg:"a"; content:"GET"; http_method; sid:1;)',
        'alert tcp any any -> any any (msg:"b"; nocase; content:"x"; sid:2;)',
        'alert tcp any any -> any any (msg:"c"; content:"x"; rawbytes; fast_pattern:x; sid:3;)',
        'alert tcp any any -> any any (msg:"d"; sid:4;',
      ].join('\n');
      assert.deepEqual(exportRules(bad, 'snort3', { file: 'b.rules' }).errors.map(formatRuleError), [
        'b.rules:1: option "http_method": HTTP buffers are content modifiers in Snort 2.9/Suricata 7 but sticky buffers (before the content) in Snort 3; write this rule per engine',
        'b.rules:2: option "nocase": must follow a content option',
        'b.rules:3: option "rawbytes": Snort 3 has no rawbytes (use the raw_data sticky buffer); write this rule per engine',
        'b.rules:3: option "fast_pattern": expected fast_pattern, fast_pattern:only or fast_pattern:<offset>,<length>, got "x"',
        'b.rules:4: a rule is "<header> (<options>)": missing parentheses',
      ]);
      assert.deepEqual(exportRules('alert tcp any any -> any any (msg:"a"; http_uri; content:"x",nocase,bogus 3; sid:1;)', 'suricata', { file: 's.rules' }).errors.map(formatRuleError), [
        's.rules:1: option "http_uri": HTTP buffers are content modifiers in Snort 2.9/Suricata 7 but sticky buffers (before the content) in Snort 3; write this rule per engine',
        's.rules:1: option "content": modifier "bogus 3" has no Snort 2.9/Suricata form known to the exporter',
      ]);
      // QUIC rules: Snort 3 would refuse them (unknown rule keyword: quic.sni); say so instead of copying them.
      const quic = [
        'alert quic any any -> any 443 (msg:"MIGRATE q"; quic.sni; content:"a.example"; sid:5;)',
        'alert udp any any -> any 443 (msg:"MIGRATE u"; quic.version; content:"|00 00 00 01|"; sid:6;)',
      ].join('\n');
      const quicMsg = 'Snort 3 has no QUIC inspector (QUIC rules are for the built-in matcher and Suricata); keep QUIC rules in a file of their own';
      assert.deepEqual(exportRules(quic, 'snort3', { file: 'q.rules' }).errors.map(formatRuleError), [`q.rules:1: ${quicMsg}`, `q.rules:2: option "quic.version": ${quicMsg}`]);
    });

    it('the CLI: export -o, --check exit codes, errors with file:line and nothing written; rules check', () => {
      const dir = mkdtempSync(join(tmpdir(), 'tmt-rules-'));
      try {
        const out = join(dir, 'm3.rules');
        let r = cli('rules', 'export', '--for', 'snort3', '--check', '-o', out, RULES);
        assert.equal(r.status, 1, r.stderr);
        assert.match(r.stderr, /is out of date: tcp-migrate rules export --for snort3 -o /);
        r = cli('rules', 'export', '--for', 'snort3', '-o', out, RULES);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(readFileSync(out, 'utf8'), readFileSync(RULES3, 'utf8'));
        assert.equal(cli('rules', 'export', '--for', 'snort3', '--check', '-o', out, RULES).status, 0);
        const bad = join(dir, 'bad.rules');
        writeFileSync(bad, '# header\n\nalert tcp any any -> any any (msg:"a"; content:"x"; rawbytes; sid:1;)\n');
        r = cli('rules', 'export', '--for', 'snort3', '-o', join(dir, 'never.rules'), bad);
        assert.equal(r.status, 2);
        assert.match(r.stderr, new RegExp(`${bad}:3: option "rawbytes"`));
        assert.equal(spawnSync('test', ['-e', join(dir, 'never.rules')]).status, 1, 'nothing written');
        r = cli('rules', 'check', '--var', 'HOME_NET=10.0.0.0/8', RULES3);
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /^3 rule\(s\) OK$/m);
        writeFileSync(bad, 'alert tcp any any -> any any (msg:"a"; content:"x"; pcre:"/x/"; sid:1;)\n');
        r = cli('rules', 'check', bad);
        assert.equal(r.status, 2);
        assert.match(r.stderr, new RegExp(`${bad}:1: option "pcre": not supported by the built-in matcher`));
      } finally { rmSync(dir, { recursive: true, force: true }); }
    });
  });

  it('topo/snort.sh (netns_topo.sh, mininet_topo.py) runs exactly the command the tests run (snortArgs)', () => {
    const r = spawnSync('bash', [join(ROOT, 'topo', 'snort.sh'), 'command', '/run/x', 'ids-eth0'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const args = snortArgs({ logDir: '/run/x', iface: 'ids-eth0', rules: '/run/x/migrate.snort3.rules' });
    assert.equal(r.stdout.trim(), args.join(' '));
    assert.deepEqual(args.slice(args.indexOf('--daq'), args.indexOf('--daq') + 2), ['--daq', 'afpacket']);
    assert.equal(args.filter((a) => a === '-R').length, 1);
    assert.doesNotMatch(readFileSync(join(ROOT, 'snort-rules', 'snort3.lua'), 'utf8'), /^\s*include\s*=|ips\.include/m, 'rules come once, from -R');
  });

  describe('analyzers.snort config', () => {
    const snort = (v: unknown) => parseAnalyzers({ snort: v }).snort!;
    it('one socket, several, or a log dir with a thread count', () => {
      assert.deepEqual(snortSockets(snort({})).map((s) => s.path), ['/tmp/snort_alert']);
      assert.deepEqual(snortSockets(snort({ socket: '/x/s' })), [{ path: '/x/s', key: 'analyzers.snort.socket' }]);
      assert.deepEqual(snortSockets(snort({ sockets: ['/x/a', '/y/b'] })), [{ path: '/x/a', key: 'analyzers.snort.sockets[0]' }, { path: '/y/b', key: 'analyzers.snort.sockets[1]' }]);
      assert.deepEqual(snortSockets(snort({ logDir: '/var/log/snort' })).map((s) => s.path), ['/var/log/snort/snort_alert']);
      assert.deepEqual(snortSockets(snort({ logDir: '/l', threads: 3 })).map((s) => s.path), ['/l/0_snort_alert', '/l/1_snort_alert', '/l/2_snort_alert']);
      assert.deepEqual(snort({ logDir: '/l', threads: 2, owner: 'nobody', group: 65534, mode: '0660' }), { logDir: '/l', threads: 2, owner: 'nobody', group: 65534, mode: 0o660 });
      assert.deepEqual(snort({ socket: '/s', owner: '0', group: 'snort' }), { socket: '/s', owner: 0, group: 'snort' });
    });

    const bad: [unknown, string][] = [
      [{ socket: '/a', sockets: ['/b'] }, "'analyzers.snort.sockets': give one of socket, sockets or logDir (with threads), not socket and sockets"],
      [{ sockets: '/a' }, "'analyzers.snort.sockets': expected a non-empty array of socket paths"],
      [{ sockets: [] }, "'analyzers.snort.sockets': expected a non-empty array"],
      [{ sockets: ['/a', 7] }, "'analyzers.snort.sockets[1]': expected a file path"],
      [{ sockets: ['/a', '/a'] }, "'analyzers.snort.sockets': /a is listed twice"],
      [{ threads: 2 }, "'analyzers.snort.threads': only with logDir"],
      [{ logDir: '/l', threads: 0 }, "'analyzers.snort.threads': expected an integer in [1, 1024]"],
      [{ owner: 'no body' }, "'analyzers.snort.owner': expected a user name or numeric id"],
      [{ group: -1 }, "'analyzers.snort.group': expected a group name or numeric id"],
      [{ user: 'x' }, "'analyzers.snort.user': unknown key"],
    ];
    for (const [v, msg] of bad) {
      it(`rejects ${JSON.stringify(v)} naming the key`, () => assert.throws(() => snort(v), (e: Error) => e.message.includes(msg) || assert.fail(e.message)));
    }

    it('socket, owner and group changes need a restart and say so', () => {
      const a = parseAnalyzers({ snort: { socket: '/a' } });
      assert.deepEqual(analyzerRestartNeeded(a, parseAnalyzers({ snort: { socket: '/b' } })), ['analyzers.snort.socket: /a -> /b']);
      assert.deepEqual(analyzerRestartNeeded(a, parseAnalyzers({ snort: { logDir: '/l', threads: 2, owner: 'nobody', group: 7 } })), [
        'analyzers.snort.sockets: /a -> /l/0_snort_alert, /l/1_snort_alert',
        'analyzers.snort.owner: none -> nobody',
        'analyzers.snort.group: none -> 7',
      ]);
      assert.deepEqual(analyzerRestartNeeded(a, parseAnalyzers({ snort: { logDir: '/' } })), ['analyzers.snort.socket: /a -> /snort_alert']);
      assert.deepEqual(analyzerRestartNeeded(a, parseAnalyzers({ snort: { sockets: ['/a'] } })), []);
    });
  });
});
