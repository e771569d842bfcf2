// First-segment MIGRATE verdicts kept in the switch's conntrack (migrateVia 'conntrack') on the
// patched OVS (ovs-patch 0008: the shift's delta read from ct_label) with real Linux TCP at both
// ends, the controller as its own process: migrated connections get no flow of their own, their
// conntrack entry carries the NAT to server 2 and the mark, server 2 serves every round without a
// Packet-In, server 1 is reset; a later move takes a connection out of conntrack (ct-exit flows) and
// a restarted controller adopts it so; a controller killed and restarted finds the others still
// flowing (nothing to adopt); FORWARD in conntrack works beside it; IPv6 too.
import assert from 'node:assert/strict';
import { DrillBed, TOKEN } from '../lib/drill-bed.ts';
import { echoService, HandoffBed } from '../lib/handoff-net.ts';
import { run, waitFor } from '../lib/exec.ts';
import { CLI } from '../lib/controller-process.ts';
import { PATCHED_PREFIX, requirePatchedOvs } from '../lib/ovs.ts';

const ZONE = 4243;
const N = 12;
const MIGRATED_BIT = 0x8000_0000;

/** The switch's established conntrack entries of the service in our zone: migrated (NAT to `target`, the migrated mark) and FORWARDed (mark 1). */
async function conntrackOf(bed: { ovs: { appctl(...a: string[]): Promise<string> } }, target: string): Promise<{ migrated: number; forwarded: number; other: number }> {
  const out = await bed.ovs.appctl('dpctl/dump-conntrack', `zone=${ZONE}`);
  const lines = out.split('\n').filter((l) => l.startsWith('tcp') && l.includes('state=ESTABLISHED'));
  const mark = (l: string) => Number(/mark=(\d+)/.exec(l)?.[1] ?? 0);
  const migrated = lines.filter((l) => (mark(l) & MIGRATED_BIT) !== 0 && l.includes(`reply=(src=${target},`));
  const forwarded = lines.filter((l) => mark(l) === 1);
  return { migrated: migrated.length, forwarded: forwarded.length, other: lines.length - migrated.length - forwarded.length };
}

describe('MIGRATE in conntrack, real TCP (patched OVS)', function () {
  this.timeout(180000);
  let bed: DrillBed;
  before(async function () {
    await requirePatchedOvs(this);
    // forwardVia and migrateVia unsaid: conntrack is the default for both.
    const { forwardVia: _f, migrateVia: _m, ...service } = echoService({ verdictTimeoutMs: 60000, midStream: true });
    bed = await DrillBed.create({ config: { handoff: { closeGraceMs: 200, switchGraceMs: 30000, conntrackZone: ZONE, conntrackFlowsAfterMs: 0 }, services: [service] } });
  });
  after(async () => { await bed?.destroy(); });

  it('migrated connections have no flow of their own, a conntrack entry with the NAT and the mark; server 2 serves them with no Packet-In; server 1 is reset', async () => {
    const pool = await bed.pool(N, 'migrate', 'server2');
    assert.deepEqual(await bed.connectionFlows(), [], 'no per-connection flow in the switch');
    assert.deepEqual(await conntrackOf(bed, '10.0.0.3'), { migrated: N, forwarded: 0, other: 0 });
    const conns = (await bed.api.get('/api/connections')).connections as Array<{ conntrack?: boolean; backend: string; migrations: number }>;
    assert.deepEqual([conns.length, conns.every((c) => c.conntrack && c.backend === 'server2' && c.migrations === 1)], [N, true], JSON.stringify(conns[0]));
    await waitFor(async () => (await bed.established(bed.servers.server1!)) === '', 'server 1 to hold no socket (reset)');
    const before = await bed.packetIns();
    // Each round: a request and its echo on every connection, the shifts and NAT done by the switch.
    for (const t of ['a', 'b', 'c']) await bed.round(pool, t, { server2: N }, 20);
    const extra = (await bed.packetIns()) - before;
    assert.ok(extra <= 2, `the connections' segments stay in the switch: ${extra} Packet-Ins`);
    assert.equal((await pool.cmd({ op: 'closeMany' })).ok, true);
    await bed.assertAllGone();
  });

  it('FORWARD in conntrack beside it: both kinds served by their server, each with its own mark, no flow of their own', async () => {
    const stay = await bed.pool(N / 2, 'stay', 'server1');
    const moved = await bed.pool(N / 2, 'migrate', 'server2');
    assert.deepEqual(await bed.connectionFlows(), []);
    await bed.round(stay, 'x', { server1: N / 2 });
    await bed.round(moved, 'x', { server2: N / 2 });
    const ct = await conntrackOf(bed, '10.0.0.3');
    assert.deepEqual([ct.migrated, ct.forwarded], [N / 2, N / 2]);
    for (const c of [stay, moved]) assert.equal((await c.cmd({ op: 'closeMany' })).ok, true);
    await bed.assertAllGone();
  });

  it('a later move takes such a connection out of conntrack: back to server 1, served there, adopted with its ct-exit flows by a restarted controller, then moved again', async () => {
    const pool = await bed.pool(2, 'migrate', 'server2');
    const ids = ((await bed.api.get('/api/connections')).connections as Array<{ id: number }>).map((c) => c.id);
    const migrate = async (to: string) => {
      for (const id of ids) {
        const mig = await run(process.execPath, [CLI, 'migrate', String(id), '--to', to, '--api', `http://127.0.0.1:${bed.apiPort}`, '--token', TOKEN]);
        assert.match(mig.stdout, /connection/);
      }
      await bed.ovs.datapathCaughtUp();
    };
    await migrate('server1');
    await bed.round(pool, 'back', { server1: 2 });
    assert.equal((await conntrackOf(bed, '10.0.0.3')).migrated, 0, 'their entries are deleted on the way out (a later connection from the same port must not meet them)');
    // (The replay's leg flows, role 6, expire by themselves.)
    const flows = (await bed.connectionFlows()).filter((f) => !/cookie=0x1006/.test(f));
    assert.equal(flows.length, 2 * 4, `two flows and two ct-exit flows each: ${flows.join('\n')}`);
    assert.equal(flows.filter((f) => /priority=215,/.test(f) && /goto_table:2/.test(f) && !/table=1/.test(f)).length, 2 * 2, 'the exit flows, in table 0');
    await waitFor(async () => (await bed.established(bed.servers.server2!)) === '', 'server 2 to hold no socket (reset)');
    const conns = (await bed.api.get('/api/connections')).connections as Array<{ conntrack?: boolean; backend: string; migrations: number }>;
    assert.deepEqual(conns.map((c) => [c.backend, c.migrations, !!c.conntrack]), [['server1', 2, false], ['server1', 2, false]]);
    // Killed and restarted: the switch keeps them out of ct meanwhile, and the new controller adopts them exactly.
    bed.controller!.signal('SIGKILL');
    await bed.controller!.stop('SIGKILL');
    await bed.round(pool, 'dark', { server1: 2 });
    bed.controller = await bed.startController('controller-2');
    const rec = await bed.reconciled(bed.controller);
    assert.deepEqual([rec.adopted, rec.reinstalled, rec.dropped], [2, 0, 0], JSON.stringify(rec));
    await migrate('server2');
    await bed.round(pool, 'again', { server2: 2 });
    await waitFor(async () => (await bed.established(bed.servers.server1!)) === '', 'server 1 to hold no socket (reset)');
    assert.equal((await pool.cmd({ op: 'closeMany' })).ok, true);
    await bed.assertAllGone();
  });

  it('a controller killed and restarted: the migrated connections flow on throughout; there is nothing to adopt', async () => {
    const pool = await bed.pool(N, 'migrate', 'server2');
    bed.controller!.signal('SIGKILL');
    await bed.controller!.stop('SIGKILL');
    await bed.round(pool, 'dark', { server2: N });
    bed.controller = await bed.startController('controller-2');
    const rec = await bed.reconciled(bed.controller);
    assert.deepEqual([rec.adopted, rec.dropped], [0, 0], JSON.stringify(rec));
    await bed.round(pool, 'after', { server2: N });
    assert.equal((await pool.cmd({ op: 'closeMany' })).ok, true);
    // The new controller never knew them; the servers' sockets are what must be gone.
    for (const [name, h] of Object.entries(bed.servers)) await waitFor(async () => (await bed.established(h)) === '', `${name} to hold no established socket`, 15000);
  });
});

describe('MIGRATE in conntrack over IPv6, real TCP (patched OVS, dual-stack service)', function () {
  this.timeout(120000);
  let bed: HandoffBed;
  before(async function () {
    await requirePatchedOvs(this);
    bed = await HandoffBed.create({ prefix: PATCHED_PREFIX, family: 6, services: { migrateVia: 'conntrack' }, handoff: { conntrackZone: ZONE } });
  });
  after(async () => { await bed?.destroy(); });

  it('IPv6 connections MIGRATEd get a NATed conntrack entry each and no flow of their own; server 2 serves every one', async () => {
    const stop = bed.autoVerdict('MIGRATE');
    try {
      const r = await bed.many(N, 10000);
      assert.deepEqual([r.ok, r.servers], [N, { server2: N }], JSON.stringify(r.errors.slice(0, 3)));
    } finally { stop(); }
    assert.deepEqual(await bed.connectionFlows(), []);
    assert.ok(bed.engine.stats.migrated >= N);
    await waitFor(() => bed.engine.table.size === 0, 'the controller to forget the closed connections', 15000);
  });
});
