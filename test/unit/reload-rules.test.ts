// Reloading the built-in matcher's rules: a good file swaps the rule set, a bad one keeps the old
// rules and names file:line; the analyzer bridge's two-phase reload changes nothing until commit.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuiltinMatcher, compareRules } from '../../controller/analyzers/builtin-matcher.ts';
import { parseRules, RuleParseError } from '../../controller/analyzers/rules.ts';
import { AnalyzerBridge, ruleChanges } from '../../controller/analyzer-bridge.ts';
import { silentLogger } from '../../controller/log.ts';
import type { HandoffEngine } from '../../controller/handoff/handoff-engine.ts';

const rule = (sid: number, content: string, msg = 'MIGRATE') => `alert tcp any any -> $HOME_NET any (msg:"${msg}"; flags:A+; content:"${content}"; sid:${sid}; rev:1;)`;

describe('reload: built-in matcher rules', () => {
  let dir: string;
  let a: string;
  let b: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tmt-reload-rules-'));
    a = join(dir, 'a.rules');
    b = join(dir, 'b.rules');
    writeFileSync(a, [rule(1, 'one'), rule(2, 'two')].join('\n') + '\n');
    writeFileSync(b, rule(10, 'ten') + '\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a good file swaps the rule set and reports new, removed and changed rules', async () => {
    const m = new BuiltinMatcher({ ruleFiles: [a] });
    await m.start();
    writeFileSync(a, [rule(2, 'TWO'), rule(3, 'three'), rule(4, 'four')].join('\n') + '\n');
    assert.deepEqual(await m.reload(), { rules: 3, added: 2, removed: 1, changed: 1 });
    assert.deepEqual(m.getRules().map((r) => r.sid), [2, 3, 4]);
    assert.equal(m.stats.rules, 3);
    assert.equal(m.stats.reloads, 2);
  });

  it('a bad file keeps the old rules and the error names file:line and option', async () => {
    const m = new BuiltinMatcher({ ruleFiles: [a] });
    await m.start();
    const before = m.getRules();
    writeFileSync(a, [rule(1, 'one'), '', '# comment', 'alert tcp any any -> any any (msg:"x"; pcre:"/x/"; sid:5;)'].join('\n'));
    await assert.rejects(m.reload(), (e: Error) => e instanceof RuleParseError && e.message.includes(`${a}:4: option "pcre": not supported`));
    assert.equal(m.getRules(), before);
    assert.equal(m.stats.reload_errors, 1);
  });

  it('an unreadable file keeps the old rules', async () => {
    const m = new BuiltinMatcher({ ruleFiles: [a] });
    await m.start();
    await assert.rejects(m.reload({ ruleFiles: [join(dir, 'missing.rules')] }), /missing\.rules:0: cannot read rule file/);
    assert.deepEqual(m.getRules().map((r) => r.sid), [1, 2]);
    assert.deepEqual(m.source().ruleFiles, [a]);
  });

  it('other rule files and vars: prepare changes nothing until commit', async () => {
    const m = new BuiltinMatcher({ ruleFiles: [a], vars: { HOME_NET: '10.0.0.0/8' } });
    await m.start();
    const p = await m.prepare({ ruleFiles: [a, b], vars: { HOME_NET: '192.168.0.0/16' } });
    assert.deepEqual(p.summary, { rules: 3, added: 1, removed: 0, changed: 0 });
    assert.deepEqual(m.getRules().map((r) => r.sid), [1, 2]);
    assert.deepEqual(m.source(), { ruleFiles: [a], vars: { HOME_NET: '10.0.0.0/8' } });
    p.commit();
    assert.deepEqual(m.getRules().map((r) => r.sid), [1, 2, 10]);
    assert.deepEqual(m.source(), { ruleFiles: [a, b], vars: { HOME_NET: '192.168.0.0/16' } });
    // Later plain reloads re-read the new files.
    writeFileSync(b, rule(11, 'eleven') + '\n');
    assert.deepEqual(await m.reload(), { rules: 3, added: 1, removed: 1, changed: 0 });
  });

  it('compareRules and the change line', () => {
    const before = parseRules([rule(1, 'x'), rule(2, 'y')].join('\n')).rules;
    const after = parseRules([rule(2, 'y'), rule(3, 'z')].join('\n')).rules;
    assert.deepEqual(compareRules(before, after), { rules: 2, added: 1, removed: 1, changed: 0 });
    assert.deepEqual(ruleChanges({ rules: 3, added: 1, removed: 0, changed: 0 }), ['analyzers.builtin.rules: reloaded 3 rules (1 new, 0 removed)']);
    assert.deepEqual(ruleChanges({ rules: 1, added: 0, removed: 0, changed: 1 }), ['analyzers.builtin.rules: reloaded 1 rule (0 new, 0 removed, 1 changed)']);
    assert.deepEqual(ruleChanges({ rules: 3, added: 0, removed: 0, changed: 0 }), []);
  });

  describe('AnalyzerBridge', () => {
    const engine = () => new EventEmitter() as unknown as HandoffEngine;

    it('reload(cfg) reloads the builtin rules and lists socket changes as needing a restart', async () => {
      const bridge = new AnalyzerBridge({ builtin: { rules: [a], vars: {} } }, engine(), silentLogger);
      await bridge.builtin!.start();
      writeFileSync(a, [rule(1, 'one'), rule(2, 'two'), rule(3, 'three')].join('\n') + '\n');
      assert.deepEqual(await bridge.reload({ builtin: { rules: [a], vars: {} }, snort: { socket: '/tmp/x' } }), [
        'analyzers.builtin.rules: reloaded 3 rules (1 new, 0 removed)',
        'analyzers.snort: added (needs a restart)',
      ]);
      assert.equal(bridge.builtin!.getRules().length, 3);
    });

    it('prepareReload rejects a bad rule file and changes nothing; commit swaps', async () => {
      const bridge = new AnalyzerBridge({ builtin: { rules: [a], vars: {} } }, engine(), silentLogger);
      await bridge.builtin!.start();
      writeFileSync(b, 'alert tcp any any -> any any (msg:"x"; sid:1;\n');
      await assert.rejects(bridge.prepareReload({ builtin: { rules: [a, b], vars: {} } }), new RegExp(`${b}:1: a rule is`));
      assert.deepEqual(bridge.builtin!.source().ruleFiles, [a]);
      writeFileSync(b, rule(10, 'ten') + '\n');
      const p = await bridge.prepareReload({ builtin: { rules: [a, b], vars: {} } });
      assert.deepEqual(p.changes, ['analyzers.builtin.rules: reloaded 3 rules (1 new, 0 removed)']);
      assert.equal(bridge.builtin!.getRules().length, 2);
      p.commit();
      assert.equal(bridge.builtin!.getRules().length, 3);
      // Now the running config names both files: no restart is needed for the same section again.
      assert.deepEqual((await bridge.prepareReload({ builtin: { rules: [a, b], vars: {} } })).restartNeeded, []);
    });

    it('without a builtin analyzer there are no rules to reload', async () => {
      const bridge = new AnalyzerBridge({}, engine(), silentLogger);
      assert.deepEqual(await bridge.reload({}), []);
    });
  });
});
