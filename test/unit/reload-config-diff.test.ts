// diffConfig: the change lines of a reload, the keys that need a restart, refusals, and the
// config the controller runs with afterwards.
import assert from 'node:assert/strict';
import { parseConfig, type ControllerConfig } from '../../controller/config.ts';
import { diffConfig, ReloadRefusedError } from '../../controller/reload/config-diff.ts';

const SERVICE = {
  name: 'echo', address: '10.0.0.1', port: 5001, primary: 'server1',
  backends: [
    { name: 'server1', address: '10.0.0.1', port: 5001 },
    { name: 'server2', address: '10.0.0.3', port: 5001 },
    { name: 'server3', address: '10.0.0.4', port: 5001 },
  ],
};
const BASE = {
  listen: { host: '127.0.0.1', port: 6653 },
  api: { host: '127.0.0.1', port: 6680, token: 'secret-1' },
  services: [SERVICE],
  analyzers: { builtin: { rules: ['a.rules'], vars: { HOME_NET: '10.0.0.0/8' } }, snort: { socket: '/tmp/snort_alert' } },
};

/** The base config with `edit` applied to a deep copy of its raw form. */
function cfg(edit: (raw: any) => void = () => undefined): ControllerConfig {
  const raw = structuredClone(BASE) as any;
  edit(raw);
  return parseConfig(raw);
}

function diff(edit: (raw: any) => void) { return diffConfig(cfg(), cfg(edit)); }

describe('reload: config diff', () => {
  it('no change: nothing to report, next equals the running config', () => {
    const d = diffConfig(cfg(), cfg());
    assert.deepEqual(d.changes, []);
    assert.deepEqual(d.restartNeeded, []);
    assert.deepEqual(d.next, cfg());
    assert.equal(d.servicesChanged, false);
    assert.equal(d.timeoutsChanged, false);
  });

  it('backends added, removed and changed', () => {
    const d = diff((r) => {
      r.services[0].backends.splice(2, 1);
      r.services[0].backends.push({ name: 'server4', address: '10.0.0.5', port: 5001 });
      r.services[0].backends[1].address = '10.0.0.6';
      r.services[0].backends[1].mac = 'AA:BB:CC:DD:EE:FF';
      r.services[0].backends[1].switchPort = 7;
    });
    assert.deepEqual(d.changes, [
      'services.echo.backends.server2: 10.0.0.3:5001 -> 10.0.0.6:5001',
      'services.echo.backends.server2.mac: none -> aa:bb:cc:dd:ee:ff',
      'services.echo.backends.server2.switchPort: none -> 7',
      'services.echo.backends: removed server3 (10.0.0.4:5001)',
      'services.echo.backends: added server4 (10.0.0.5:5001)',
    ]);
    assert.deepEqual(d.restartNeeded, []);
    assert.deepEqual(d.next.services[0]!.backends.map((b) => b.name), ['server1', 'server2', 'server4']);
    assert.equal(d.servicesChanged, true);
    assert.equal(d.timeoutsChanged, false);
  });

  const serviceKeys: [string, (s: any) => void, string[]][] = [
    ['defaultVerdict', (s) => { s.defaultVerdict = 'MIGRATE'; }, ['services.echo.defaultVerdict: FORWARD -> MIGRATE']],
    ['verdictTimeoutMs', (s) => { s.verdictTimeoutMs = 500; }, ['services.echo.verdictTimeoutMs: 2000 -> 500']],
    ['migrateTo', (s) => { s.migrateTo = 'server3'; }, ['services.echo.migrateTo: server2 -> server3']],
    ['sidBackends', (s) => { s.sidBackends = { 1000003: 'server3' }; }, ['services.echo.sidBackends.1000003: none -> server3']],
    ['options', (s) => { s.options = { sack: 'strip', timestamps: 'keep' }; }, ['services.echo.options.timestamps: strip -> keep', 'services.echo.options.sack: keep -> strip']],
    ['idleTimeout', (s) => { s.idleTimeout = 60; }, ['services.echo.idleTimeout: 300 -> 60']],
    ['midStream', (s) => { s.midStream = false; }, ['services.echo.midStream: true -> false']],
    ['mirrorPort', (s) => { s.mirrorPort = 4; }, ['services.echo.mirrorPort: none -> 4']],
    // Unsaid, forwardVia and migrateVia follow it (conntrack cannot carry its copies).
    ['mirrorAll', (s) => { s.mirrorAll = true; }, ['services.echo.mirrorAll: false -> true', 'services.echo.forwardVia: conntrack -> flows', 'services.echo.migrateVia: conntrack -> flows']],
  ];
  for (const [key, edit, lines] of serviceKeys) {
    it(`services[].${key} is reloadable`, () => {
      const d = diff((r) => edit(r.services[0]));
      assert.deepEqual(d.changes, lines);
      assert.deepEqual(d.restartNeeded, []);
      assert.deepEqual(d.next.services, cfg((r) => edit(r.services[0])).services);
    });
  }

  it('sidBackends entries changed and removed', () => {
    const running = cfg((r) => { r.services[0].sidBackends = { 1: 'server2', 2: 'server3' }; });
    const loaded = cfg((r) => { r.services[0].sidBackends = { 1: 'server3' }; });
    assert.deepEqual(diffConfig(running, loaded).changes, ['services.echo.sidBackends.1: server2 -> server3', 'services.echo.sidBackends.2: server3 -> none']);
  });

  it('services added and removed', () => {
    const d = diff((r) => {
      r.services = [{ name: 'web', address: '10.0.0.1', port: 80, backends: [{ name: 'w1', address: '10.0.0.1', port: 80 }, { name: 'w2', address: '10.0.0.3', port: 80 }] }];
    });
    assert.deepEqual(d.changes, ['services.echo: removed (10.0.0.1:5001)', 'services.web: added (10.0.0.1:80, backends w1, w2)']);
    assert.deepEqual(d.next.services.map((s) => s.name), ['web']);
  });

  it('log.level, the handoff timeouts and releaseBeforeBarrier are reloadable', () => {
    const d = diff((r) => {
      r.log = { level: 'debug' };
      r.handoff = { handshakeTimeoutMs: 1000, replayTimeoutMs: 200, closeGraceMs: 0, revalidateMs: 5, releaseBeforeBarrier: false };
    });
    assert.deepEqual(d.changes, [
      'log.level: info -> debug',
      'handoff.handshakeTimeoutMs: 30000 -> 1000', 'handoff.replayTimeoutMs: 1000 -> 200',
      'handoff.closeGraceMs: 1000 -> 0', 'handoff.revalidateMs: 100 -> 5', 'handoff.releaseBeforeBarrier: true -> false',
    ]);
    assert.equal(d.next.handoff.releaseBeforeBarrier, false);
    assert.deepEqual(d.restartNeeded, []);
    assert.equal(d.next.log.level, 'debug');
    assert.equal(d.next.handoff.replayTimeoutMs, 200);
    assert.equal(d.timeoutsChanged, true);
    assert.equal(d.servicesChanged, false);
  });

  it('builtin rule files and vars are reloadable', () => {
    const d = diff((r) => {
      r.analyzers.builtin = { rules: ['a.rules', 'b.rules'], vars: { HOME_NET: 'any', EXTERNAL_NET: '!$HOME_NET' } };
    });
    assert.deepEqual(d.changes, [
      'analyzers.builtin.rules: files a.rules -> a.rules, b.rules',
      'analyzers.builtin.vars.HOME_NET: 10.0.0.0/8 -> any',
      'analyzers.builtin.vars.EXTERNAL_NET: none -> !$HOME_NET',
    ]);
    assert.deepEqual(d.next.analyzers.builtin, { rules: ['a.rules', 'b.rules'], vars: { HOME_NET: 'any', EXTERNAL_NET: '!$HOME_NET' } });
  });

  const restartKeys: [string, (r: any) => void, string][] = [
    ['listen.port', (r) => { r.listen.port = 6654; }, 'listen.port: 6653 -> 6654'],
    ['listen.host', (r) => { r.listen.host = '0.0.0.0'; }, 'listen.host: 127.0.0.1 -> 0.0.0.0'],
    ['api.port', (r) => { r.api.port = 6681; }, 'api.port: 6680 -> 6681'],
    ['api.enabled', (r) => { r.api.enabled = false; }, 'api.enabled: true -> false'],
    ['api.token (value not shown)', (r) => { r.api.token = 'secret-2'; }, 'api.token: changed'],
    ['switch.echoIntervalMs', (r) => { r.switch = { echoIntervalMs: 1000 }; }, 'switch.echoIntervalMs: 5000 -> 1000'],
    ['learning.priority', (r) => { r.learning = { priority: 20 }; }, 'learning.priority: 10 -> 20'],
    ['log.format', (r) => { r.log = { format: 'json' }; }, 'log.format: text -> json'],
    ['handoff.maxConnections', (r) => { r.handoff = { maxConnections: 5 }; }, 'handoff.maxConnections: 100000 -> 5'],
    ['analyzers.snort.socket', (r) => { r.analyzers.snort.socket = '/tmp/other'; }, 'analyzers.snort.socket: /tmp/snort_alert -> /tmp/other'],
    ['analyzers.snort.mode', (r) => { r.analyzers.snort.mode = '0660'; }, 'analyzers.snort.mode: none -> 0660'],
    ['analyzers.suricata added', (r) => { r.analyzers.suricata = {}; }, 'analyzers.suricata: added'],
    ['analyzers.snort removed', (r) => { delete r.analyzers.snort; }, 'analyzers.snort: removed'],
    ['analyzers.builtin removed', (r) => { delete r.analyzers.builtin; }, 'analyzers.builtin: removed'],
  ];
  for (const [what, edit, line] of restartKeys) {
    it(`${what} needs a restart and keeps its running value`, () => {
      const running = cfg();
      const d = diffConfig(running, cfg(edit));
      assert.deepEqual(d.restartNeeded, [line]);
      assert.deepEqual(d.changes, []);
      assert.deepEqual(d.next, running);
    });
  }

  it('sections and handoff keys it does not know need a restart (never silently dropped)', () => {
    const running = cfg();
    const loaded = { ...cfg(), extra: { nested: { a: 1 } }, handoff: { ...cfg().handoff, futureMs: 5 } } as unknown as ControllerConfig;
    const d = diffConfig(running, loaded);
    assert.deepEqual(d.restartNeeded.sort(), ['extra: none -> {"nested":{"a":1}}', 'handoff.futureMs: none -> 5']);
    assert.deepEqual(d.changes, []);
    assert.deepEqual(d.next, running);
    const back = diffConfig(loaded, running);
    assert.deepEqual(back.restartNeeded.sort(), ['extra: {"nested":{"a":1}} -> none', 'handoff.futureMs: 5 -> none']);
    assert.deepEqual(back.next, loaded);
  });

  it('adding the builtin analyzer needs a restart (next has none)', () => {
    const running = cfg((r) => { delete r.analyzers.builtin; });
    const d = diffConfig(running, cfg());
    assert.deepEqual(d.restartNeeded, ['analyzers.builtin: added']);
    assert.equal(d.next.analyzers.builtin, undefined);
  });

  it('reloadable and restart-needing changes together: only the reloadable ones reach next', () => {
    const d = diff((r) => { r.listen.port = 7000; r.services[0].defaultVerdict = 'MIGRATE'; });
    assert.deepEqual(d.changes, ['services.echo.defaultVerdict: FORWARD -> MIGRATE']);
    assert.deepEqual(d.restartNeeded, ['listen.port: 6653 -> 7000']);
    assert.equal(d.next.listen.port, 6653);
    assert.equal(d.next.services[0]!.defaultVerdict, 'MIGRATE');
  });

  it('refuses a changed service address (the primary\'s) or primary', () => {
    assert.throws(() => diff((r) => { r.services[0].address = '10.0.0.9'; r.services[0].backends[0].address = '10.0.0.9'; }),
      (e: Error) => e instanceof ReloadRefusedError && e.status === 409 && /services\.echo: the service address, which is its primary's, cannot change .*10\.0\.0\.1:5001 -> 10\.0\.0\.9:5001/.test(e.message));
    assert.throws(() => diff((r) => { r.services[0].port = 5002; r.services[0].backends[0].port = 5002; }), ReloadRefusedError);
    assert.throws(() => diff((r) => { r.services[0].backends[0].name = 'srv1'; r.services[0].primary = 'srv1'; }),
      /services\.echo\.primary: cannot change while the controller runs \(server1 -> srv1\)/);
  });

  it('does not share objects with its inputs', () => {
    const running = cfg();
    const loaded = cfg((r) => { r.services[0].defaultVerdict = 'MIGRATE'; });
    const d = diffConfig(running, loaded);
    assert.notEqual(d.next.services[0], loaded.services[0]);
    assert.notEqual(d.next.listen, running.listen);
  });
});
