// Real OVS, real Linux TCP: under concurrency every intercepted connection has exactly one outcome
// (issue 11 item 8), and a client talking to a backend directly, not through the service, runs on
// flows rather than one Packet-In per segment (item 9).
import assert from 'node:assert/strict';
import { HandoffBed, SERVICE, endClient } from '../lib/handoff-net.ts';
import { blobSha } from '../../topo/apps/blob.mjs';
import { PATCHED_PREFIX, requirePatchedOvs } from '../lib/ovs.ts';

const PARALLEL = 20;
const EACH = 10;

describe('handoff outcomes under concurrency, and direct traffic to a backend (patched OVS)', function () {
  this.timeout(180000);
  let bed: HandoffBed;
  before(async function () {
    await requirePatchedOvs(this);
    bed = await HandoffBed.create({ prefix: PATCHED_PREFIX });
  });
  after(async () => { await bed?.destroy(); });

  it(`${PARALLEL} clients × ${EACH} short connections, each migrated: one outcome per connection, none reported failed`, async () => {
    const outcomes = new Map<number, string[]>();
    const note = (kind: string) => (v: { id: number }) => { const l = outcomes.get(v.id) ?? []; l.push(kind); outcomes.set(v.id, l); };
    const onMigrated = note('migrated');
    const onFailed = note('migration_failed');
    bed.engine.on('migrated', onMigrated);
    bed.engine.on('migration_failed', onFailed);
    const stop = bed.autoVerdict('MIGRATE');
    const failuresBefore = bed.engine.stats.migrationFailures;
    try {
      const runs = await Promise.all(Array.from({ length: PARALLEL }, () => bed.many(EACH, 10000)));
      const ok = runs.reduce((n, r) => n + r.ok, 0);
      assert.equal(ok, PARALLEL * EACH, `every connection answered: ${JSON.stringify(runs.flatMap((r) => r.errors).slice(0, 3))}`);
      assert.deepEqual(runs.reduce<Record<string, number>>((a, r) => { for (const [k, v] of Object.entries(r.servers)) a[k] = (a[k] ?? 0) + v; return a; }, {}), { server2: PARALLEL * EACH });
      const twice = [...outcomes].filter(([, l]) => l.length !== 1);
      assert.deepEqual(twice, [], 'a connection with more than one outcome');
      assert.equal([...outcomes.values()].filter((l) => l[0] === 'migrated').length, PARALLEL * EACH);
      assert.equal(bed.engine.stats.migrationFailures - failuresBefore, 0, 'no migration counted as failed');
    } finally {
      stop();
      bed.engine.off('migrated', onMigrated);
      bed.engine.off('migration_failed', onFailed);
    }
  });

  it('a download straight from a backend (not through the service) gets a bypass flow: a handful of Packet-Ins, data intact', async () => {
    // The intercept flows catch everything from a backend's service port (a replay's SYN-ACK must
    // reach the controller); a client talking to server 2 directly must not pay for that.
    const n = 4 << 20;
    const before = bed.controller.stats.packetIns;
    const bypassBefore = bed.engine.stats.bypassFlows;
    const c = bed.scriptClient();
    try {
      const r = await c.cmd({ op: 'connect', host: bed.servers.server2.ip, port: SERVICE.port });
      assert.ok(r.ok, JSON.stringify(r));
      const b = await c.cmd({ op: 'blob', n, seed: 7 });
      assert.equal(b.sha256, blobSha(7, n), 'the download is intact');
      await c.cmd({ op: 'close' });
    } finally { endClient(c); }
    const packetIns = bed.controller.stats.packetIns - before;
    assert.ok(bed.engine.stats.bypassFlows > bypassBefore, 'a bypass flow was installed');
    // About 3,000 segments came from server 2; only the first few reach the controller.
    assert.ok(packetIns < 100, `${packetIns} Packet-Ins for a 4 MiB download straight from a backend`);
    const flows = await bed.ovs.ofctl('-O', 'OpenFlow13', 'dump-flows', bed.bridge);
    assert.match(flows, /cookie=0x3000b7a55000000,.*priority=150,tcp,in_port=\d+,nw_src=10\.0\.0\.3,nw_dst=10\.0\.0\.2,tp_src=5001/);
  });
});
