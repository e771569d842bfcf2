// applyServiceConfig: the running ServiceConfig objects are updated in place (connections hold
// references to them), and a refused reload changes nothing at all.
import assert from 'node:assert/strict';
import { parseServices, type ServiceConfig } from '../../controller/handoff/service-config.ts';
import { applyServiceConfig, type BusyCount } from '../../controller/handoff/service-reload.ts';

const RAW = [
  {
    name: 'echo', address: '10.0.0.1', port: 5001, primary: 'server1', sidBackends: { 7: 'server3' },
    backends: [
      { name: 'server1', address: '10.0.0.1', port: 5001 },
      { name: 'server2', address: '10.0.0.3', port: 5001, mac: '02:00:00:00:00:03' },
      { name: 'server3', address: '10.0.0.4', port: 5001 },
    ],
  },
  { name: 'web', address: '10.0.0.1', port: 80, backends: [{ name: 'w1', address: '10.0.0.1', port: 80 }, { name: 'w2', address: '10.0.0.3', port: 80 }] },
];

function services(edit: (raw: any[]) => void = () => undefined): ServiceConfig[] {
  const raw = structuredClone(RAW) as any[];
  edit(raw);
  return parseServices(raw);
}

const idle: BusyCount = () => 0;
/** Busy counts by "service/backend". */
const busyWith = (counts: Record<string, number>): BusyCount => (s, b) => counts[`${s.name}/${b}`] ?? 0;

describe('reload: services applied in place', () => {
  it('no change: nothing reported, nothing touched', () => {
    const running = services();
    const before = structuredClone(running);
    const r = applyServiceConfig(running, services(), idle);
    assert.deepEqual(r, { changed: [], added: [], removed: [], errors: [] });
    assert.deepEqual(running, before);
  });

  it('updates every reloadable field, keeping the service, backend, array and map objects', () => {
    const running = services();
    const [echo] = running;
    const refs = { backends: echo!.backends, server1: echo!.backends[0], server2: echo!.backends[1], sid: echo!.sidBackends, options: echo!.options };
    const next = services((r) => {
      const s = r[0];
      s.backends = [
        { name: 'server1', address: '10.0.0.1', port: 5001 },
        { name: 'server2', address: '10.0.0.6', port: 5002, switchPort: 3 }, // moved, mac dropped
        { name: 'server4', address: '10.0.0.5', port: 5001 },
      ];
      Object.assign(s, {
        sidBackends: { 8: 'server4' }, migrateTo: 'server4', defaultVerdict: 'MIGRATE', verdictTimeoutMs: 100,
        options: { timestamps: 'keep', sack: 'strip', mismatch: 'warn' }, idleTimeout: 30, midStream: false, mirrorPort: 9, mirrorAll: true,
      });
    });
    const r = applyServiceConfig(running, next, idle);
    assert.deepEqual(r.errors, []);
    assert.equal(r.changed.length, 1);
    assert.equal(r.changed[0], echo);
    assert.equal(running[0], echo);
    assert.equal(echo!.backends, refs.backends);
    assert.equal(echo!.backends[0], refs.server1);
    assert.equal(echo!.backends[1], refs.server2);
    assert.equal(echo!.sidBackends, refs.sid);
    assert.equal(echo!.options, refs.options);
    // Values equal the loaded config's, and nothing is shared with it.
    assert.deepEqual(JSON.parse(JSON.stringify(echo)), JSON.parse(JSON.stringify(next[0])));
    assert.equal('mac' in refs.server2!, false);
    assert.notEqual(echo!.backends[2], next[0]!.backends[2]);
    next[0]!.backends[2]!.port = 1;
    assert.equal(echo!.backends[2]!.port, 5001);
  });

  it('adds and removes services; kept services stay the same objects', () => {
    const running = services();
    const web = running[1];
    const next = services((r) => {
      r.splice(0, 1);
      r.push({ name: 'ssh', address: '10.0.0.1', port: 22, backends: [{ name: 's1', address: '10.0.0.1', port: 22 }] });
    });
    const r = applyServiceConfig(running, next, idle);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.removed.map((s) => s.name), ['echo']);
    assert.deepEqual(r.added.map((s) => s.name), ['ssh']);
    assert.deepEqual(running.map((s) => s.name), ['web', 'ssh']);
    assert.equal(running[0], web);
    assert.equal(running[1], r.added[0]);
    assert.notEqual(running[1], next[1]);
  });

  it('removes an idle backend and changes an idle backend\'s address', () => {
    const running = services();
    const next = services((r) => { r[0].backends.splice(2, 1); r[0].sidBackends = {}; r[0].backends[1].address = '10.0.0.8'; });
    const r = applyServiceConfig(running, next, busyWith({ 'echo/server1': 4 }));
    assert.deepEqual(r.errors, []);
    assert.deepEqual(running[0]!.backends.map((b) => `${b.name}=${b.address}`), ['server1=10.0.0.1', 'server2=10.0.0.8']);
  });

  const refusals: [string, (r: any[]) => void, Record<string, number>, RegExp][] = [
    ['a busy backend', (r) => { r[0].backends.splice(2, 1); r[0].sidBackends = {}; }, { 'echo/server3': 2 },
      /services\.echo\.backends: cannot remove server3: it still serves 2 connection\(s\); migrate them first/],
    ['moving a busy backend', (r) => { r[0].backends[1].address = '10.0.0.8'; }, { 'echo/server2': 1 },
      /services\.echo\.backends\.server2: cannot move from 10\.0\.0\.3:5001 to 10\.0\.0\.8:5001: it still serves 1 connection/],
    ['a busy service', (r) => { r.splice(1, 1); }, { 'web/w2': 3 },
      /services\.web: cannot remove the service: it still serves 3 connection\(s\)/],
    ['a changed service address', (r) => { r[1].address = '10.0.0.9'; r[1].backends[0].address = '10.0.0.9'; }, {},
      /services\.web: the service address, which is its primary's, cannot change/],
    ['a changed primary', (r) => { r[0].primary = 'server2'; r[0].backends[1].address = '10.0.0.1'; r[0].backends[0].address = '10.0.0.7'; }, {},
      /services\.echo\.primary: cannot change while the controller runs \(server1 -> server2\)/],
  ];
  for (const [what, edit, busy, message] of refusals) {
    it(`refuses ${what}, changing nothing (other valid changes included)`, () => {
      const running = services();
      const objects = [...running];
      const before = structuredClone(running);
      const next = services((r) => {
        edit(r);
        // A change that alone would be applied must not be applied either.
        r[0].defaultVerdict = 'MIGRATE';
        r.push({ name: 'extra', address: '10.0.0.1', port: 8080, backends: [{ name: 'e1', address: '10.0.0.1', port: 8080 }] });
      });
      const r = applyServiceConfig(running, next, busyWith(busy));
      assert.equal(r.errors.length, 1, r.errors.join('\n'));
      assert.match(r.errors[0]!, message);
      assert.deepEqual({ ...r, errors: [] }, { changed: [], added: [], removed: [], errors: [] });
      assert.deepEqual(running, before);
      assert.deepEqual(running.map((s, i) => s === objects[i]), [true, true]);
    });
  }

  it('reports every refusal at once', () => {
    const running = services();
    const r = applyServiceConfig(running, services((x) => { x[0].backends.splice(1, 2); x[0].sidBackends = {}; }), busyWith({ 'echo/server2': 1, 'echo/server3': 1 }));
    assert.equal(r.errors.length, 2);
  });
});
