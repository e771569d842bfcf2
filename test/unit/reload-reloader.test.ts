// The Reloader: all-or-nothing reloads, error statuses, one log line per reload, serialised
// reloads; and controllerApplier's order (everything that can refuse runs before any change).
import assert from 'node:assert/strict';
import { ConfigError, parseConfig, type ControllerConfig } from '../../controller/config.ts';
import { RuleParseError } from '../../controller/analyzers/rules.ts';
import { Logger, type LogLevel } from '../../controller/log.ts';
import { Reloader, controllerApplier, type ControllerParts, type ReloaderOptions } from '../../controller/reload/reloader.ts';
import type { HandoffTimeouts } from '../../controller/reload/config-diff.ts';
import type { ServiceConfig } from '../../controller/handoff/service-config.ts';

const RAW = {
  services: [{ name: 'echo', address: '10.0.0.1', port: 5001, backends: [{ name: 's1', address: '10.0.0.1', port: 5001 }, { name: 's2', address: '10.0.0.3', port: 5001 }] }],
};
const config = (edit: (r: any) => void = () => undefined): ControllerConfig => {
  const r = structuredClone(RAW) as any;
  edit(r);
  return parseConfig(r);
};

/** A JSON logger whose lines land in `lines`. */
function capture(): { log: Logger; lines: any[] } {
  const lines: any[] = [];
  return { log: new Logger('info', 'json', {}, { write: (l) => { lines.push(JSON.parse(l)); } }), lines };
}

/** A Reloader over a config held in `state.running`, applied by assignment. */
function harness(load: () => ControllerConfig, apply?: ReloaderOptions['apply']) {
  const state = { running: config(), applied: 0 };
  const { log, lines } = capture();
  const reloader = new Reloader({
    load, log, getConfig: () => state.running,
    apply: apply ?? (async (next) => { state.applied++; state.running = next; return []; }),
  });
  return { reloader, state, lines };
}

describe('reload: Reloader', () => {
  it('applies a valid config and logs the changes', async () => {
    const { reloader, state, lines } = harness(() => config((r) => { r.services[0].defaultVerdict = 'MIGRATE'; r.listen = { port: 7000 }; }));
    const r = await reloader.reload('SIGHUP');
    assert.deepEqual(r, { ok: true, changes: ['services.echo.defaultVerdict: FORWARD -> MIGRATE'], restartNeeded: ['listen.port: 6653 -> 7000'] });
    assert.equal(state.running.services[0]!.defaultVerdict, 'MIGRATE');
    assert.equal(state.running.listen.port, 6653);
    assert.equal(lines.length, 1);
    assert.deepEqual([lines[0].level, lines[0].msg, lines[0].trigger, lines[0].changes], ['info', 'config reloaded', 'SIGHUP', r.ok && r.changes]);
  });

  it('adds the lines apply reports, without repeating the diff\'s', async () => {
    const { reloader } = harness(() => config((r) => {
      r.services[0].midStream = false;
      r.services.push({ name: 'web', address: '10.0.0.1', port: 80, backends: [{ name: 'w1', address: '10.0.0.1', port: 80 }] });
    }), async () => [
      'services.echo.midStream: true -> false', 'services.web: added (10.0.0.1:80)', 'intercept flows reinstalled on 0 switch(es)',
      'analyzers.builtin.rules: reloaded 2 rules (1 new, 0 removed)',
    ]);
    const r = await reloader.reload();
    assert.ok(r.ok);
    assert.deepEqual(r.changes, [
      'services.echo.midStream: true -> false', 'services.web: added (10.0.0.1:80, backends w1)',
      'intercept flows reinstalled on 0 switch(es)', 'analyzers.builtin.rules: reloaded 2 rules (1 new, 0 removed)',
    ]);
  });

  const failures: [string, () => ControllerConfig, ReloaderOptions['apply'] | undefined, number, RegExp][] = [
    ['an unreadable or invalid file (400)', () => { throw new ConfigError('services[0].port', 'expected an integer', '/etc/x.json'); }, undefined, 400, /\/etc\/x\.json: invalid config at 'services\[0\]\.port'/],
    ['a rule parse error (400)', () => config(), async () => { throw new RuleParseError([{ file: 'a.rules', line: 3, option: 'pcre', message: 'not supported' }]); }, 400, /a\.rules:3: option "pcre": not supported/],
    ['a refused backend removal (409)', () => config(), async () => { throw Object.assign(new Error("'s2' still serves 1 connection(s)"), { status: 409 }); }, 409, /still serves/],
    ['a changed service address (409, apply not called)', () => config((r) => { r.services[0].address = '10.0.0.9'; r.services[0].backends[0].address = '10.0.0.9'; }), undefined, 409, /service address/],
    ['anything else (500)', () => config(), async () => { throw new Error('switch timed out'); }, 500, /switch timed out/],
  ];
  for (const [what, load, apply, status, message] of failures) {
    it(`${what}: the running config stays as it was`, async () => {
      const { reloader, state, lines } = harness(load, apply);
      const before = state.running;
      const snapshot = structuredClone(before);
      const r = await reloader.reload('api');
      assert.equal(r.ok, false);
      assert.ok(!r.ok);
      assert.equal(r.status, status);
      assert.match(r.error, message);
      assert.equal(state.running, before);
      assert.deepEqual(state.running, snapshot);
      assert.equal(state.applied, 0);
      assert.equal(lines.length, 1);
      assert.equal(lines[0].level, 'error');
      assert.equal(lines[0].msg, 'config reload failed; the running configuration is unchanged');
      assert.match(lines[0].error, message);
    });
  }

  it('without a config file the running config is re-applied (rules only)', async () => {
    const state = { running: config(), seen: undefined as ControllerConfig | undefined };
    const reloader = new Reloader({ getConfig: () => state.running, log: capture().log, apply: async (next) => { state.seen = next; return []; } });
    assert.deepEqual(await reloader.reload(), { ok: true, changes: [], restartNeeded: [] });
    assert.deepEqual(state.seen, state.running);
    assert.notEqual(state.seen, state.running);
  });

  it('serialises concurrent reloads; each sees the previous result', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let version = 0;
    const state = { running: config() };
    const reloader = new Reloader({
      log: capture().log,
      getConfig: () => state.running,
      load: () => config((r) => { r.services[0].verdictTimeoutMs = 1000 + ++version; }),
      apply: async (next) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 5));
        state.running = next;
        inFlight--;
        return [];
      },
    });
    const results = await Promise.all([reloader.reload(), reloader.reload(), reloader.reload()]);
    assert.equal(maxInFlight, 1);
    assert.deepEqual(results.map((r) => r.ok && r.changes), [
      ['services.echo.verdictTimeoutMs: 2000 -> 1001'],
      ['services.echo.verdictTimeoutMs: 1001 -> 1002'],
      ['services.echo.verdictTimeoutMs: 1002 -> 1003'],
    ]);
  });

  it('a failed reload does not block the next one', async () => {
    let fail = true;
    const { reloader } = harness(() => { if (fail) throw new ConfigError('(file)', 'not valid JSON'); return config(); });
    assert.equal((await reloader.reload()).ok, false);
    fail = false;
    assert.equal((await reloader.reload()).ok, true);
  });

  it('close() waits for the reload in progress and refuses later ones', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    let finished = false;
    const { reloader } = harness(() => config(), async () => { await gate; finished = true; return []; });
    const first = reloader.reload();
    await new Promise((r) => setImmediate(r));
    const closed = reloader.close().then(() => finished);
    release();
    assert.equal(await closed, true);
    assert.equal((await first).ok, true);
    assert.deepEqual(await reloader.reload(), { ok: false, error: 'the controller is shutting down', status: 503 });
  });
});

describe('reload: controllerApplier', () => {
  function parts(o: { rulesFail?: boolean; engineFail?: boolean } = {}) {
    const calls: string[] = [];
    const p: ControllerParts = {
      log: { setLevel: (l: LogLevel) => { calls.push(`level ${l}`); } },
      analyzers: {
        prepareReload: async () => {
          calls.push('prepare rules');
          if (o.rulesFail) throw new RuleParseError([{ file: 'a.rules', line: 1, message: 'bad' }]);
          return { changes: ['analyzers.builtin.rules: reloaded 1 rule (1 new, 0 removed)'], commit: () => { calls.push('commit rules'); } };
        },
      },
      engine: {
        reconfigureServices: async (next: ServiceConfig[]) => {
          calls.push(`services ${next.map((s) => s.name).join(',')}`);
          if (o.engineFail) throw Object.assign(new Error('busy'), { status: 409 });
          return ['services.echo: intercept flows reinstalled'];
        },
        setHandoffTimeouts: (t: HandoffTimeouts) => { calls.push(`timeouts ${t.replayTimeoutMs}`); },
      },
    };
    return { p, calls };
  }
  const next = config((r) => { r.log = { level: 'debug' }; r.handoff = { replayTimeoutMs: 300 }; });

  const changed = { servicesChanged: true, timeoutsChanged: true };

  it('applies rules, services, timeouts and log level, returning the lines found', async () => {
    const { p, calls } = parts();
    assert.deepEqual(await controllerApplier(p)(next, changed), ['services.echo: intercept flows reinstalled', 'analyzers.builtin.rules: reloaded 1 rule (1 new, 0 removed)']);
    assert.deepEqual(calls, ['prepare rules', 'services echo', 'commit rules', 'timeouts 300', 'level debug']);
  });

  it('a rule error stops before the engine is touched', async () => {
    const { p, calls } = parts({ rulesFail: true });
    await assert.rejects(controllerApplier(p)(next, changed), RuleParseError);
    assert.deepEqual(calls, ['prepare rules']);
  });

  it('an engine refusal leaves the rules, timeouts and log level alone', async () => {
    const { p, calls } = parts({ engineFail: true });
    await assert.rejects(controllerApplier(p)(next, changed), /busy/);
    assert.deepEqual(calls, ['prepare rules', 'services echo']);
  });

  it('unchanged services and timeouts are not handed to the engine', async () => {
    const { p, calls } = parts();
    assert.deepEqual(await controllerApplier(p)(next, { servicesChanged: false, timeoutsChanged: false }), ['analyzers.builtin.rules: reloaded 1 rule (1 new, 0 removed)']);
    assert.deepEqual(calls, ['prepare rules', 'commit rules', 'level debug']);
  });
});

describe('Logger.setLevel', () => {
  it('reaches child loggers created before the change', () => {
    const lines: string[] = [];
    const root = new Logger('info', 'text', {}, { write: (l) => { lines.push(l); } });
    const child = root.child({ component: 'x' });
    child.debug('hidden');
    root.setLevel('debug');
    child.debug('shown');
    assert.equal(root.level, 'debug');
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /DEBUG shown component=x/);
  });
});
