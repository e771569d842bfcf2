// FORWARD verdicts kept in the switch's conntrack (a service with forwardVia 'conntrack') on real
// OVS with real Linux TCP at both ends, the controller as its own process: FORWARDed connections
// get no flow of their own and send the controller nothing but their FIN/RST copies; MIGRATEd ones
// have flows as ever; a move takes a conntrack-FORWARDed connection out of conntrack (server 1 can
// no longer reach its client); a controller killed and restarted finds the conntrack ones still
// flowing (it cannot adopt them: they are in no flow table) and adopts the migrated ones. With
// conntrackFlowsAfterMs, the ones that live longer (FORWARDed or migrated in conntrack) leave ct for
// good with flows of their own, and a restarted controller adopts them.
import assert from 'node:assert/strict';
import { DrillBed, SERVICE, TOKEN } from '../lib/drill-bed.ts';
import { echoService, HandoffBed } from '../lib/handoff-net.ts';
import { waitFor, run } from '../lib/exec.ts';
import { CLI } from '../lib/controller-process.ts';
import { PATCHED_PREFIX, STOCK_PREFIX, requirePatchedOvs } from '../lib/ovs.ts';

const ZONE = 4242;
const N = 12;

/** The switch's conntrack entries of the service in our zone, with their marks: one line per connection. */
async function conntrackOf(bed: DrillBed): Promise<{ forwarded: number; unmarked: number }> {
  const out = await bed.ovs.appctl('dpctl/dump-conntrack', `zone=${ZONE}`);
  const lines = out.split("\n").filter((l) => l.includes(`dport=${SERVICE.port}`) && l.includes("state=ESTABLISHED"));
  return { forwarded: lines.filter((l) => /mark=1\b/.test(l)).length, unmarked: lines.filter((l) => !/mark=1\b/.test(l)).length };
}

/** SYN-ACKs the switch sent to clients itself (their SYN committed the handshake in conntrack), a copy to the controller. */
async function synAcksBySwitch(bed: DrillBed): Promise<number> {
  const out = await bed.ovs.ofctl('-O', 'OpenFlow13', 'dump-flows', bed.bridge, `table=1,tcp,ct_zone=${ZONE + 1},ct_mark=2`);
  return [...out.matchAll(/n_packets=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

/** Packets the per-service conntrack flow sent from the primary to clients. */
async function reverseConntrackPackets(bed: DrillBed): Promise<number> {
  const out = await bed.ovs.ofctl('-O', 'OpenFlow13', 'dump-flows', bed.bridge, `table=1,tcp,ct_mark=1,nw_src=${SERVICE.ip},tp_src=${SERVICE.port}`);
  const m = /n_packets=(\d+)/.exec(out);
  assert.ok(m, `the conntrack flow from the primary: ${out}`);
  return Number(m[1]);
}

for (const [label, prefix] of [['patched OVS', PATCHED_PREFIX], ['stock OVS', STOCK_PREFIX]] as const) {
  describe(`FORWARD in conntrack, real TCP (${label})`, function () {
    this.timeout(180000);
    let bed: DrillBed;
    before(async function () {
      if (prefix === PATCHED_PREFIX) await requirePatchedOvs(this);
      bed = await DrillBed.create({ prefix, config: { handoff: { closeGraceMs: 200, switchGraceMs: 30000, conntrackZone: ZONE, conntrackFlowsAfterMs: 0 }, services: [echoService({ verdictTimeoutMs: 60000, forwardVia: 'conntrack' })] } });
    });
    after(async () => { await bed?.destroy(); });

    it('FORWARDed connections have no flow of their own, only a conntrack entry, and their traffic never reaches the controller', async () => {
      const synAcks = await synAcksBySwitch(bed);
      const forwarded = await bed.pool(N, 'stay', 'server1');
      // Server 1's SYN-ACKs went to the clients from the switch (the handshake committed by the SYN);
      // a rule's counters follow its datapath flows' when the revalidators next read them.
      await waitFor(async () => (await synAcksBySwitch(bed)) - synAcks >= N, `${N} SYN-ACKs counted by the handshake flow`);
      assert.deepEqual(await bed.connectionFlows(), [], 'no per-connection flow in the switch');
      assert.deepEqual(await conntrackOf(bed), { forwarded: N, unmarked: 0 });
      const conns = (await bed.api.get('/api/connections')).connections as Array<{ conntrack?: boolean; backend: string }>;
      assert.deepEqual([conns.length, conns.every((c) => c.conntrack && c.backend === 'server1')], [N, true]);
      const before = await bed.packetIns();
      for (const t of ['a', 'b', 'c']) await bed.round(forwarded, t, { server1: N });
      // 3 rounds x 12 connections x 3 lines, each a request and a reply, plus their ACKs.
      const extra = (await bed.packetIns()) - before;
      assert.ok(extra <= 2, `the connections' segments stay in the switch: ${extra} Packet-Ins`);
      const beforeClose = await bed.packetIns();
      assert.equal((await forwarded.cmd({ op: 'closeMany' })).ok, true);
      await bed.assertAllGone();
      // The client's FIN copy ends each one; server 1's FIN passes ct and table 2 uncopied, and reaches
      // the client: server 1 is left with no socket closing (LAST-ACK would mean its FIN went unanswered).
      const closing = await bed.packetIns() - beforeClose;
      assert.ok(closing >= N && closing <= N + 2, `one FIN copy per connection, the client's: ${closing} Packet-Ins for ${N} connections`);
      await waitFor(async () => (await bed.servers.server1!.exec(['ss', '-Htn', 'state', 'last-ack', `sport = :${SERVICE.port}`])).stdout.trim() === '', 'server 1 to close every socket');
    });

    it('a move takes such a connection out of conntrack: the target serves it, and nothing of server 1 reaches its client by conntrack again', async () => {
      const c = await bed.pool(1, 'stay', 'server1');
      const [conn] = (await bed.api.get('/api/connections')).connections as Array<{ id: number }>;
      const mig = await run(process.execPath, [CLI, 'migrate', String(conn!.id), '--to', 'server2', '--api', `http://127.0.0.1:${bed.apiPort}`, '--token', TOKEN]);
      assert.match(mig.stdout, /connection/);
      await bed.ovs.datapathCaughtUp();
      await bed.round(c, 'moved', { server2: 1 });
      assert.deepEqual(await conntrackOf(bed), { forwarded: 0, unmarked: 1 }, 'the entry kept, without the mark');
      const flows = await bed.connectionFlows();
      assert.equal(flows.length, 2, `the connection has its two flows now: ${flows.join('\n')}`);
      // Server 1 was reset at its own sequence number; it has no socket left to send from.
      await waitFor(async () => (await bed.established(bed.servers.server1!)) === '', 'server 1 to hold no socket');
      const fromPrimary = await reverseConntrackPackets(bed);
      await bed.round(c, 'again', { server2: 1 });
      assert.equal(await reverseConntrackPackets(bed), fromPrimary, 'no segment went to the client by the conntrack path');
      assert.equal((await c.cmd({ op: 'closeMany' })).ok, true);
      await bed.assertAllGone();
    });

    it('a controller killed and restarted: conntrack-FORWARDed connections flow on throughout, migrated ones are adopted', async () => {
      const forwarded = await bed.pool(N, 'stay', 'server1');
      const migrated = await bed.pool(4, 'migrate', 'server2');
      bed.controller!.signal('SIGKILL');
      await bed.controller!.stop('SIGKILL');
      await bed.round(forwarded, 'dark', { server1: N });
      // On the stock switch the controller relays migrated connections: they wait for it.
      if (prefix === PATCHED_PREFIX) await bed.round(migrated, 'dark', { server2: 4 });
      bed.controller = await bed.startController('controller-2');
      const rec = await bed.reconciled(bed.controller);
      assert.equal(rec.adopted, 4, JSON.stringify(rec));
      assert.equal(rec.dropped, 0, JSON.stringify(rec));
      await bed.round(forwarded, 'after', { server1: N });
      await bed.round(migrated, 'after', { server2: 4 });
      assert.deepEqual(await conntrackOf(bed), { forwarded: N, unmarked: 0 });
      for (const c of [forwarded, migrated]) assert.equal((await c.cmd({ op: 'closeMany' })).ok, true);
      await bed.assertAllGone();
    });
  });
}

describe('FORWARD in conntrack over IPv6, real TCP (patched OVS, dual-stack service)', function () {
  this.timeout(120000);
  let bed: HandoffBed;
  before(async function () {
    await requirePatchedOvs(this);
    bed = await HandoffBed.create({ prefix: PATCHED_PREFIX, family: 6, services: { forwardVia: 'conntrack' }, handoff: { conntrackZone: ZONE, conntrackFlowsAfterMs: 0 } });
  });
  after(async () => { await bed?.destroy(); });

  it('IPv6 connections FORWARDed get a conntrack entry each and no flow of their own; every one is served and closes', async () => {
    const stop = bed.autoVerdict('FORWARD');
    const seen: string[] = [];
    const onFwd = (v: { client: string; conntrack?: boolean }) => { if (v.conntrack) seen.push(v.client); };
    bed.engine.on('forwarded', onFwd);
    try {
      const r = await bed.many(N, 10000);
      assert.deepEqual([r.ok, r.servers], [N, { server1: N }], JSON.stringify(r.errors.slice(0, 3)));
    } finally { stop(); bed.engine.off('forwarded', onFwd); }
    assert.equal(seen.length, N, 'each FORWARDed in conntrack');
    assert.ok(seen.every((c) => c.startsWith('[fd00::')), seen.join(' '));
    assert.deepEqual(await bed.connectionFlows(), []);
    const ct = (await bed.ovs.appctl('dpctl/dump-conntrack', `zone=${ZONE}`)).split('\n').filter((l) => l.startsWith('tcp') && l.includes('fd00::') && /mark=1\b/.test(l));
    assert.equal(ct.length, N, `marked IPv6 entries: ${ct.slice(0, 2).join(' | ')}`);
    await waitFor(() => bed.engine.table.size === 0, 'the controller to forget the closed connections', 15000);
  });
});

describe('FORWARD and MIGRATE in conntrack, then out of it for the long-lived (conntrackFlowsAfterMs), real TCP (patched OVS)', function () {
  this.timeout(180000);
  let bed: DrillBed;
  before(async function () {
    await requirePatchedOvs(this);
    bed = await DrillBed.create({ config: { handoff: { closeGraceMs: 200, switchGraceMs: 30000, conntrackZone: ZONE, conntrackFlowsAfterMs: 300 }, services: [echoService({ verdictTimeoutMs: 60000, midStream: true, forwardVia: 'conntrack', migrateVia: 'conntrack' })] } });
  });
  after(async () => { await bed?.destroy(); });

  /** Established entries of the service in our zone, whatever their mark. */
  const entries = async (): Promise<number> => (await bed.ovs.appctl('dpctl/dump-conntrack', `zone=${ZONE}`)).split('\n').filter((l) => l.startsWith('tcp') && l.includes('state=ESTABLISHED')).length;
  /** Packets the connections' own flows (table 1) carried. */
  const ownPackets = async (): Promise<number> => (await bed.connectionFlows()).filter((f) => /priority=200,/.test(f)).reduce((n, f) => n + Number(/n_packets=(\d+)/.exec(f)?.[1] ?? 0), 0);

  it('connections that outlive it leave ct for good: their two flows, their entries deleted, their own flows carry them; a restarted controller adopts them; they move on', async () => {
    const stay = await bed.pool(N / 2, 'stay', 'server1');
    const moved = await bed.pool(N / 2, 'migrate', 'server2');
    await waitFor(async () => (await bed.connectionFlows()).length === 2 * N, 'two flows for each long-lived connection', 15000);
    // An entry left behind would see no FIN and stay established for a day: a later connection from
    // the same client port would meet its mark (and NAT) and skip the controller.
    assert.equal(await entries(), 0, 'their conntrack entries are gone');
    const conns = (await bed.api.get('/api/connections')).connections as Array<{ id: number; conntrack?: boolean; backend: string }>;
    assert.deepEqual([conns.length, conns.filter((c) => c.conntrack).length], [N, 0], 'listed as having flows');
    await bed.round(stay, 'x', { server1: N / 2 }, 10);
    await bed.round(moved, 'x', { server2: N / 2 }, 10);
    // Through ct (table 0), which no longer marks or NATs them: their own flows take them.
    await waitFor(async () => (await ownPackets()) >= 2 * N, 'their own flows to carry their segments', 15000);
    assert.equal(await entries(), 0, 'and they commit nothing');
    bed.controller!.signal('SIGKILL');
    await bed.controller!.stop('SIGKILL');
    await bed.round(stay, 'dark', { server1: N / 2 });
    await bed.round(moved, 'dark', { server2: N / 2 });
    bed.controller = await bed.startController('controller-2');
    const rec = await bed.reconciled(bed.controller);
    assert.deepEqual([rec.adopted, rec.dropped, rec.reinstalled], [N, 0, 0], JSON.stringify(rec));
    await bed.round(stay, 'after', { server1: N / 2 });
    await bed.round(moved, 'after', { server2: N / 2 });
    // Adopted, they move as any other: the FORWARDed ones to server 2, the migrated ones back to server 1.
    for (const c of (await bed.api.get('/api/connections')).connections as Array<{ id: number; backend: string }>) {
      const mig = await run(process.execPath, [CLI, 'migrate', String(c.id), '--to', c.backend === 'server1' ? 'server2' : 'server1', '--api', `http://127.0.0.1:${bed.apiPort}`, '--token', TOKEN]);
      assert.match(mig.stdout, /connection/);
    }
    await bed.ovs.datapathCaughtUp();
    await bed.round(stay, 'moved', { server2: N / 2 });
    await bed.round(moved, 'moved', { server1: N / 2 });
    assert.equal(await entries(), 0);
    for (const c of [stay, moved]) assert.equal((await c.cmd({ op: 'closeMany' })).ok, true);
    await bed.assertAllGone();
  });
});
