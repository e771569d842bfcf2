// speculativeReplay on real OVS with real Linux TCP at both ends: server 2's handshake opened
// before the verdict is what a MIGRATE uses (server 2 completes exactly one handshake per
// migrated connection), and what a FORWARD resets (server 2 completes none, and keeps no
// half-open socket). Patched OVS (flows shift seq/ack) and stock OVS (the controller relays).
import assert from 'node:assert/strict';
import { HandoffBed, endClient } from '../lib/handoff-net.ts';
import { blobSha } from '../../topo/apps/blob.mjs';
import { PATCHED_PREFIX, STOCK_PREFIX, requirePatchedOvs } from '../lib/ovs.ts';
import { delta, nstat } from '../lib/tcp-variants.ts';

const N = 40;

function defineSuite(label: string, prefix: string, patched: boolean): void {
  describe(`speculative replay, real TCP (${label})`, function () {
    this.timeout(180000);
    let bed: HandoffBed;
    before(async function () {
      if (patched) await requirePatchedOvs(this);
      bed = await HandoffBed.create({ prefix, services: { speculativeReplay: true } });
      // Server 2 located once (an ARP probe the first time): from then on every client's SYN opens its leg at once.
      const stop = bed.autoVerdict('MIGRATE');
      try { assert.equal((await bed.many(1, 10000)).ok, 1); } finally { stop(); }
    });
    after(async () => { await bed?.destroy(); });

    /** Server 2's half-open sockets on the service port (a leg nobody reset would stay ~1 min). */
    const synRecv = async () => (await bed.servers.server2.exec(['ss', '-Htn', 'state', 'syn-recv', 'sport', '= :5001'])).stdout.trim();

    it(`${N} connections MIGRATEd: every one on server 2 through its prepared handshake, one handshake each`, async () => {
      const s2 = await nstat(bed.servers.server2);
      const stats = { ...bed.engine.stats };
      const stop = bed.autoVerdict('MIGRATE');
      try {
        const r = await bed.many(N, 10000);
        assert.deepEqual([r.ok, r.servers], [N, { server2: N }], JSON.stringify(r.errors.slice(0, 3)));
      } finally { stop(); }
      const e = bed.engine.stats;
      assert.equal(e.speculativeOpened - stats.speculativeOpened, N);
      // Used by every verdict whose SYN-ACK had come or was still coming; none of them replayed afresh.
      assert.equal(e.speculativeUsed - stats.speculativeUsed, N, `used ${e.speculativeUsed - stats.speculativeUsed}, abandoned ${e.speculativeAbandoned - stats.speculativeAbandoned}`);
      assert.equal(e.migrationFailures - stats.migrationFailures, 0);
      assert.deepEqual(delta(s2, await nstat(bed.servers.server2), ['TcpPassiveOpens', 'TcpAttemptFails']), { TcpPassiveOpens: N, TcpAttemptFails: 0 });
    });

    it('a 4 MiB download after a MIGRATE through the prepared leg arrives intact from server 2', async () => {
      const stop = bed.autoVerdict('MIGRATE');
      const c = bed.scriptClient();
      try {
        const { id } = await bed.open(c);
        const n = 4 << 20;
        const b = await c.cmd({ op: 'blob', n, seed: 11 });
        assert.equal(b.sha256, blobSha(11, n));
        assert.equal(bed.engine.connections().find((x) => x.id === id)?.backend, 'server2');
        await c.cmd({ op: 'close' });
      } finally { stop(); endClient(c); }
    });

    it(`${N} connections FORWARDed: server 2 completes none of their handshakes and keeps no half-open socket`, async () => {
      const s2 = await nstat(bed.servers.server2);
      const stats = { ...bed.engine.stats };
      const stop = bed.autoVerdict('FORWARD');
      try {
        const r = await bed.many(N, 10000);
        assert.deepEqual([r.ok, r.servers], [N, { server1: N }], JSON.stringify(r.errors.slice(0, 3)));
      } finally { stop(); }
      const e = bed.engine.stats;
      assert.equal(e.speculativeOpened - stats.speculativeOpened, N);
      assert.equal(e.speculativeAbandoned - stats.speculativeAbandoned, N);
      // Each RST reached server 2 before the client's connection ended (it went out with the flows):
      // the request socket is gone (an attempt failed), none became a connection.
      assert.deepEqual(delta(s2, await nstat(bed.servers.server2), ['TcpPassiveOpens', 'TcpAttemptFails']), { TcpPassiveOpens: 0, TcpAttemptFails: N });
      assert.equal(await synRecv(), '', 'no half-open socket left on server 2');
    });
  });
}

defineSuite('patched OVS', PATCHED_PREFIX, true);
defineSuite('stock OVS, relay', STOCK_PREFIX, false);
