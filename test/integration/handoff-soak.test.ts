// 10,000 real connections through the interception path, half of them migrated: afterwards
// neither the controller nor the switch holds anything for them.
import assert from 'node:assert/strict';
import { HandoffBed } from '../lib/handoff-net.ts';
import { PATCHED_PREFIX, STOCK_PREFIX, supportsSeqActions } from '../lib/ovs.ts';
import { waitFor } from '../lib/exec.ts';

const N = Number(process.env.TM_SOAK_CONNECTIONS ?? 10000);

// The patched switch (fast path) when it is installed; CI requires it. The title says which ran.
const patched = await supportsSeqActions(PATCHED_PREFIX);
const mode = patched ? 'fastpath' : 'relay';

describe(`handoff hygiene over ${N} connections (${mode})`, function () {
  this.timeout(N * 100 + 120000);
  let bed: HandoffBed;
  before(async () => {
    if (!patched && process.env.CI) throw new Error(`no patched OVS under ${PATCHED_PREFIX}: run ovs-patch/build.sh`);
    bed = await HandoffBed.create({ prefix: patched ? PATCHED_PREFIX : STOCK_PREFIX });
    assert.equal(bed.engine.modeOf(bed.controller.switches[0].describe()), mode, `the switch runs in ${mode} mode`);
  });
  after(async () => { await bed?.destroy(); });

  it('serves every connection and leaves no state behind', async () => {
    const onHeld = (c: { id: number }) => setImmediate(() => {
      try { bed.engine.verdict(c.id, { verdict: c.id % 2 ? 'MIGRATE' : 'FORWARD', source: 'test' }); } catch { /* closed */ }
    });
    bed.engine.on('held', onHeld);
    let peak = 0;
    const sample = setInterval(() => { peak = Math.max(peak, bed.engine.table.size); }, 50);
    try {
      const r = await bed.many(N, 10000);
      assert.deepEqual(r.errors, []);
      assert.equal(r.ok, N);
      assert.equal((r.servers.server1 ?? 0) + (r.servers.server2 ?? 0), N);
      assert.ok(r.servers.server1 > N / 3 && r.servers.server2 > N / 3, JSON.stringify(r.servers));
    } finally { clearInterval(sample); bed.engine.off('held', onHeld); }
    await waitFor(() => bed.engine.table.size === 0, 'the connection table to empty', 20000);
    assert.deepEqual(bed.engine.table.sizes(), { connections: 0, clientKeys: 0, backendKeys: 0, halfOpen: 0, halfOpenSources: 0 });
    await waitFor(async () => (await bed.connectionFlows()).length === 0, 'per-connection flows to go', 20000);
    assert.equal(bed.engine.stats.closed, bed.engine.stats.intercepted);
    // Every server 1 half of a migrated connection was reset, every other one closed: no socket
    // (ESTABLISHED, SYN-RECV or any other) is left on either server.
    for (const s of ['server1', 'server2']) await bed.noSockets(s, undefined, 20000);
    // Sequential connections: closed ones leave the table (after closeGraceMs) instead of piling up.
    assert.ok(peak < N / 10, `peak table size ${peak}`);
  });
});
