// Standby-controller election (DESIGN.md §8) against a REAL etcd (Debian's etcd-server, a private
// member per test): one leader, takeover after kill -9 within 3 s, resign, revoked lease, etcd death.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { Etcd, etcdAvailable } from '../../topo/lib/etcd.ts';
import { stop as stopProcess } from '../../topo/lib/exec.ts';
import { Election, type ElectionEvents, type FollowerInfo } from '../../controller/ha/election.ts';
import { EtcdClient, EtcdError, type WatchEvent } from '../../controller/ha/etcd-client.ts';
import { silentLogger } from '../../controller/log.ts';

const CHILD = new URL('./ha-election-child.ts', import.meta.url).pathname;
const ROOT = new URL('../..', import.meta.url).pathname;

/** Resolves with the event's arguments, or rejects after `ms`. */
function next<K extends keyof ElectionEvents>(e: Election, event: K, ms = 5000): Promise<ElectionEvents[K]> {
  return once(e, event, { signal: AbortSignal.timeout(ms) }).then((a) => a as ElectionEvents[K])
    .catch((err) => { throw err?.name === 'AbortError' ? new Error(`${e.name}: no '${event}' within ${ms} ms (role ${e.role})`) : err; });
}

describe('HA election through etcd', function () {
  this.timeout(30000);
  let etcd: Etcd | undefined;
  let elections: Election[] = [];
  let children: ChildProcess[] = [];
  let n = 0;
  let key = '';

  before(function () {
    if (etcdAvailable()) return;
    const why = 'etcd is not installed: apt-get install etcd-server etcd-client (or bash topo/install-deps.sh)';
    if (process.env.CI) throw new Error(why);
    console.log(`      skipping the etcd election tests: ${why}`);
    this.skip();
  });
  beforeEach(async () => {
    etcd = await Etcd.start();
    key = `/tcp-migrate/leader/test-${++n}`;
  });
  afterEach(async () => {
    for (const e of elections) await e.stop().catch(() => {});
    for (const c of children) await stopProcess(c, 500);
    elections = [];
    children = [];
    await etcd?.stop();
    etcd = undefined;
  });

  const candidate = (name: string, ttlSec = 2): Election => {
    const e = new Election({ endpoints: etcd!.endpoints, key, name, ttlSec, logger: silentLogger });
    e.on('etcd_unreachable', () => {}); // expected in some tests; must never be an 'error' event
    elections.push(e);
    return e;
  };
  const client = (): EtcdClient => new EtcdClient({ endpoints: etcd!.endpoints });

  it('elects exactly one leader; the other follows with its generation', async () => {
    const a = candidate('ctl-a');
    const b = candidate('ctl-b');
    const settled = (e: Election): Promise<unknown> => Promise.race([next(e, 'leader'), next(e, 'follower')]);
    const both = Promise.all([settled(a), settled(b)]);
    a.start();
    b.start();
    await both;
    const [leader, follower] = a.role === 'leader' ? [a, b] : [b, a];
    assert.deepEqual([leader.role, follower.role], ['leader', 'follower']);
    assert.equal(follower.leader, leader.name);
    assert.equal(follower.generationId, leader.generationId);
    const kv = await client().range(key);
    assert.equal(kv?.value, leader.name);
    assert.equal(kv?.createRevision, leader.generationId);
  });

  it('a standby takes over within 3 s when the leader is killed (-9) without resigning', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, etcd!.endpoints.join(','), key, 'ctl-dead', '2'],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    const lines = createInterface({ input: child.stdout! });
    const childLeader = new Promise<bigint>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('child never became leader')), 15000);
      lines.on('line', (l) => { const m = JSON.parse(l); if (m.event === 'leader') { clearTimeout(t); resolve(BigInt(m.generationId)); } });
      child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
    });
    const oldGen = await childLeader;

    const standby = candidate('ctl-standby');
    const following = next(standby, 'follower');
    standby.start();
    const [f] = await following as [FollowerInfo];
    assert.deepEqual(f, { leader: 'ctl-dead', generationId: oldGen });

    const elected = next(standby, 'leader', 6000);
    const t0 = performance.now();
    child.kill('SIGKILL');
    const [gen] = await elected;
    const ms = performance.now() - t0;
    console.log(`      takeover after kill -9: ${ms.toFixed(0)} ms (generation ${oldGen} -> ${gen})`);
    assert.ok(ms < 3000, `takeover took ${ms.toFixed(0)} ms`);
    assert.ok(gen > oldGen);
  });

  it('stop() resigns: the standby takes over at once', async () => {
    const a = candidate('ctl-a');
    const b = candidate('ctl-b');
    const aLeads = next(a, 'leader');
    a.start();
    const [gen] = await aLeads;
    const bFollows = next(b, 'follower');
    b.start();
    await bFollows;
    const bLeads = next(b, 'leader');
    const t0 = performance.now();
    await a.stop();
    const [gen2] = await bLeads;
    const ms = performance.now() - t0;
    console.log(`      handover after resign: ${ms.toFixed(0)} ms`);
    assert.ok(ms < 1000, `handover took ${ms.toFixed(0)} ms`);
    assert.ok(gen2 > gen);
    assert.equal(a.role, 'stopped');
    assert.equal(a.generationId, undefined);
  });

  it('a leader whose lease is revoked behind its back is deposed, then campaigns again', async () => {
    const a = candidate('ctl-a');
    const leads = next(a, 'leader');
    a.start();
    const [gen] = await leads;
    const kv = await client().range(key);
    assert.ok(kv && kv.lease !== 0n);
    const deposed = next(a, 'deposed', 2000);
    const again = next(a, 'leader', 4000);
    assert.equal(await client().leaseRevoke(kv.lease), true);
    const [reason] = await deposed;
    assert.match(reason, /key deleted|lease expired/);
    const [gen2] = await again;
    assert.ok(gen2 > gen, 'a new term has a larger generation');
  });

  it('a leader that loses etcd deposes itself within ttl + 1 s, does not crash, and leads again when etcd returns', async () => {
    const rejections: unknown[] = [];
    const onRejection = (r: unknown): void => { rejections.push(r); };
    process.on('unhandledRejection', onRejection);
    try {
      const a = candidate('ctl-a');
      const unreachable: EtcdError[] = [];
      a.on('etcd_unreachable', (e) => unreachable.push(e));
      const leads = next(a, 'leader');
      a.start();
      const [gen] = await leads;
      const deposed = next(a, 'deposed', 4000);
      const t0 = performance.now();
      await etcd!.kill();
      const [reason] = await deposed;
      const ms = performance.now() - t0;
      console.log(`      deposed ${ms.toFixed(0)} ms after etcd died: ${reason}`);
      assert.ok(ms < 3000, `deposed after ${ms.toFixed(0)} ms`);
      assert.equal(a.role, 'starting');
      assert.ok(unreachable.length > 0 && unreachable.every((e) => e instanceof EtcdError && e.endpoint === etcd!.clientUrl));

      const again = next(a, 'leader', 15000);
      await etcd!.restart();
      const [gen2] = await again;
      assert.ok(gen2 > gen);
      assert.deepEqual(rejections, []);
    } finally {
      process.off('unhandledRejection', onRejection);
    }
  });

  describe('client', () => {
    it('fails over from a dead endpoint and reports etcd errors with the endpoint', async () => {
      const dead = 'http://127.0.0.1:1';
      const c = new EtcdClient({ endpoints: [dead, ...etcd!.endpoints], timeoutMs: 1000 });
      const lease = await c.leaseGrant(1);
      assert.equal(lease.ttl, 2, 'etcd 3.4 raises TTLs below its 2 s minimum');
      assert.ok(lease.id > BigInt(Number.MAX_SAFE_INTEGER), 'lease ids need bigints');
      assert.equal(await c.leaseKeepAlive(lease.id), 2);

      const r1 = await c.putIfAbsent('/k', 'v1', lease.id);
      assert.equal(r1.succeeded, true);
      const r2 = await c.putIfAbsent('/k', 'v2', 0n);
      assert.equal(r2.succeeded, false);
      assert.equal(r2.kv?.value, 'v1');
      assert.equal(r2.kv?.createRevision, r1.revision);
      assert.equal(r2.kv?.lease, lease.id);

      await assert.rejects(c.putIfAbsent('/other', 'v', 12345n), (e: unknown) =>
        e instanceof EtcdError && e.kind === 'server' && e.leaseNotFound && e.endpoint === etcd!.clientUrl);
      assert.equal(await c.leaseRevoke(lease.id), true);
      assert.equal(await c.leaseRevoke(lease.id), false);
      assert.equal(await c.leaseKeepAlive(lease.id), 0);
      assert.equal(await c.range('/k'), undefined);

      const only = new EtcdClient({ endpoints: [dead], timeoutMs: 500 });
      await assert.rejects(only.range('/k'), (e: unknown) => e instanceof EtcdError && e.kind === 'unreachable' && e.endpoint === dead);
    });

    it('watches from a revision and stops on abort', async () => {
      const c = client();
      const lease = await c.leaseGrant(5);
      const r = await c.putIfAbsent('/w', 'x', lease.id);
      const events: WatchEvent[] = [];
      const ctl = new AbortController();
      const done = c.watch('/w', r.revision, (ev) => { events.push(ev); if (events.length === 2) ctl.abort(); }, ctl.signal);
      await c.leaseRevoke(lease.id);
      await done; // resolves (not rejects) on abort
      assert.deepEqual(events.map((e) => [e.type, e.kv.value]), [['put', 'x'], ['delete', '']]);
      assert.equal(events[0].kv.createRevision, r.revision);
    });

    it('a watch rejects with EtcdError when etcd dies', async () => {
      const c = client();
      const ctl = new AbortController();
      const done = c.watch('/w', 1n, () => {}, ctl.signal).then(() => 'resolved', (e: unknown) => e);
      await new Promise((r) => setTimeout(r, 200));
      await etcd!.kill();
      const e = await done;
      assert.ok(e instanceof EtcdError && e.kind === 'unreachable', String(e));
    });
  });
});
