// Control-plane drills (issue: migrated connections survive the control plane). Each drill runs
// 20 migrated long-lived connections carrying checked traffic (every reply must be exactly the
// line sent, in order, from the expected server) through one control-plane event, on the patched
// OVS with the controller as its own process. Afterwards the connections keep flowing, `status`
// lists them, and once closed their flows are gone and no server keeps an orphan socket.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { DrillBed, RULES_V1 } from '../lib/drill-bed.ts';
import { waitFor } from '../lib/exec.ts';
import { supportsSeqActions } from '../lib/ovs.ts';
import { run } from '../../topo/lib/exec.ts';
import { CLI, freePort } from '../lib/controller-process.ts';
import { Etcd, etcdAvailable } from '../../topo/lib/etcd.ts';
import { connect } from 'node:net';
import { once } from 'node:events';
import { SwitchConnection } from '../../controller/datapath/switch-connection.ts';
import { requestRole, StaleGenerationError } from '../../controller/ha/switch-role.ts';
import { silentLogger } from '../../controller/log.ts';
import { connectionFlows } from '../../controller/handoff/flow-plan.ts';

const N = 20;
/** Flows the plan gives one fast-path connection (whatever the layout is). */
const PER_CONN = connectionFlows({
  id: 1, idleTimeout: 60, mode: 'fastpath', ackDelta: 1,
  client: { mac: '02:00:00:00:00:02', ip: '10.0.0.2', port: 1, ofport: 1 }, service: { mac: '02:00:00:00:00:01', ip: '10.0.0.1', port: 2 },
  backend: { mac: '02:00:00:00:00:03', ip: '10.0.0.3', port: 2, ofport: 2 },
}).length;

/** The controller view's role part (its load counters are checked elsewhere). */
const roleOf = ({ role, generationId }: { role: string; generationId?: string }) => ({ role, ...(generationId !== undefined ? { generationId } : {}) });

describe('control-plane drills (patched OVS, controller process)', function () {
  this.timeout(240000);
  before(async function () {
    if (!(await supportsSeqActions())) throw new Error('the patched OVS is not installed (bash ovs-patch/build.sh)');
  });

  describe('controller kill -9 and restart', () => {
    let bed: DrillBed;
    before(async () => { bed = await DrillBed.create(); });
    after(async () => { await bed?.destroy(); });

    it('adopts migrated and forwarded connections from the switch, degrades held ones to FORWARD, and can move adopted ones again', async () => {
      const migrated = await bed.pool(N, 'migrate', 'server2');
      const forwarded = await bed.pool(5, 'stay', 'server1');
      const held = bed.scriptClient(90000);
      assert.equal((await held.cmd({ op: 'openMany', n: 3, host: '10.0.0.1', port: 5001 })).ok, true);
      assert.equal((await held.cmd({ op: 'round', tag: 'hold', lines: 1, async: true })).ok, true);
      await waitFor(async () => (await bed.api.get('/api/connections')).connections.filter((c: any) => c.phase === 'held').length === 3, 'three connections held for a verdict');

      bed.controller!.signal('SIGKILL');
      await bed.controller!.stop('SIGKILL');
      // Controller dead: the switch's flows carry the connections on their own.
      await bed.round(migrated, 'dark', { server2: N });
      await bed.round(forwarded, 'dark', { server1: 5 });

      bed.controller = await bed.startController('controller-2');
      const rec = await bed.reconciled(bed.controller);
      assert.equal(rec.adopted, N + 5, JSON.stringify(rec));
      assert.equal(rec.dropped, 0, JSON.stringify(rec));
      await bed.round(migrated, 'after', { server2: N });
      // The held segments are retransmitted by the client and go on to server 1 without a verdict.
      const h = await held.cmd({ op: 'awaitRound' });
      assert.deepEqual([h.errors, h.servers], [[], { server1: 3 }]);

      assert.match(await (await fetch(`http://127.0.0.1:${bed.apiPort}/metrics`)).text(), new RegExp(`^tcp_migrate_reconciled_connections_total\\{kind="adopted"\\} ${N + 5}$`, 'm'));
      const st = await bed.status();
      assert.deepEqual(roleOf(st.controller), { role: 'single' });
      const byBackend = (name: string) => st.connections.filter((c: any) => c.backend === name && c.phase === 'forwarded').length;
      assert.equal(byBackend('server2'), N, 'status lists the adopted migrated connections');
      assert.equal(byBackend('server1'), 5 + 3);

      // Adopted connections run on flows: traffic does not come to the controller.
      const before = await bed.packetIns();
      for (const t of ['p1', 'p2', 'p3']) { await bed.round(migrated, t, { server2: N }); await bed.round(forwarded, t, { server1: 5 }); await bed.round(held, t, { server1: 3 }); }
      const extra = (await bed.packetIns()) - before;
      // 3 rounds x 28 connections x 3 lines, each a request and a reply: over 500 segments.
      assert.ok(extra < 28, `only a bounded number of Packet-Ins (FIN/RST copies, strays): got ${extra}`);

      // Adopted connections can move again: their SYN was rebuilt from the flows' state note.
      const mig = await run(process.execPath, [CLI, 'migrate', 'echo', '--to', 'server3', '--api', `http://127.0.0.1:${bed.apiPort}`, '--token', 'drill-token']);
      assert.match(mig.stdout, /connection/);
      // The freeze is in; the next request must not take the datapath's cached path to server 1.
      await bed.ovs.datapathCaughtUp();
      await bed.round(migrated, 'moved', { server3: N });
      await bed.round(forwarded, 'moved', { server3: 5 });
      // Connections found without their handshake cannot be replayed: they stay, still served.
      await bed.round(held, 'moved', { server1: 3 });

      for (const c of [migrated, forwarded, held]) assert.equal((await c.cmd({ op: 'closeMany' })).ok, true);
      await bed.assertAllGone();
    });
  });

  describe('OpenFlow session cut', () => {
    let bed: DrillBed;
    before(async () => { bed = await DrillBed.create({ cutter: true }); });
    after(async () => { await bed?.destroy(); });

    it('keeps every connection through a reset of the switch\'s channel', async () => {
      const pool = await bed.pool(N, 'migrate', 'server2');
      const from = bed.controller!.logs.length;
      assert.equal(bed.cutter!.cut(), 1, 'one OpenFlow session was cut');
      await bed.controller!.waitLog((l) => l.msg === 'switch gone; keeping its connections for the grace period', 10000, from);
      await bed.round(pool, 'blip', { server2: N });
      const rec = await bed.reconciled(bed.controller!, from);
      assert.deepEqual([rec.kept, rec.adopted, rec.reinstalled, rec.dropped], [N, 0, 0, 0], JSON.stringify(rec));
      await bed.round(pool, 'after', { server2: N });
      const st = await bed.status();
      assert.equal(st.connections.filter((c: any) => c.backend === 'server2').length, N);
      assert.equal((await pool.cmd({ op: 'closeMany' })).ok, true);
      await bed.assertAllGone();
    });
  });

  describe('ovs-vswitchd killed and restarted', () => {
    let bed: DrillBed;
    before(async () => { bed = await DrillBed.create(); });
    after(async () => { await bed?.destroy(); });

    it('reinstalls the connections\' flows from the controller\'s memory', async () => {
      const pool = await bed.pool(N, 'migrate', 'server2');
      const from = bed.controller!.logs.length;
      await bed.ovs.killVswitchd();
      await bed.controller!.waitLog((l) => l.msg === 'switch gone; keeping its connections for the grace period', 20000, from);
      await bed.ovs.startVswitchd();
      const rec = await bed.reconciled(bed.controller!, from);
      assert.deepEqual([rec.reinstalled, rec.adopted, rec.kept, rec.dropped], [N, 0, 0, 0], JSON.stringify(rec));
      // Segments sent while the switch was down are retransmitted by TCP: nothing lost, nothing reordered.
      await bed.round(pool, 'after', { server2: N });
      assert.equal((await bed.connectionFlows()).length, N * PER_CONN);
      const st = await bed.status();
      assert.equal(st.connections.filter((c: any) => c.backend === 'server2').length, N);
      assert.equal((await pool.cmd({ op: 'closeMany' })).ok, true);
      await bed.assertAllGone();
    });
  });

  describe('SIGHUP reload, then SIGTERM and restart', () => {
    let bed: DrillBed;
    before(async () => { bed = await DrillBed.create(); });
    after(async () => { await bed?.destroy(); });

    it('a changed rule file and config take effect on the next connection; running connections never notice', async () => {
      const pool = await bed.pool(N, 'migrate', 'server2');
      writeFileSync(bed.rulesPath, RULES_V1 + 'alert tcp any any -> any 5001 (msg:"MIGRATE to server3"; flags:A+; content:"relocate"; sid:1000003; rev:1;)\n');
      bed.config.services[0].sidBackends = { 1000003: 'server3' };
      writeFileSync(bed.configPath('controller'), JSON.stringify(bed.config));
      const from = bed.controller!.logs.length;
      bed.controller!.signal('SIGHUP');
      const done = await bed.controller!.waitLog((l) => /^config reload/.test(l.msg), 15000, from);
      assert.equal(done.msg, 'config reloaded', JSON.stringify(done));
      assert.match(JSON.stringify(done.changes), /sidBackends/);
      assert.match(JSON.stringify(done.changes), /1 new/);
      await bed.round(pool, 'after-reload', { server2: N });
      const moved = await bed.pool(3, 'relocate', 'server3');

      // SIGTERM: the controller goes, the switch keeps every flow, traffic goes on; a restart adopts all.
      assert.equal(await bed.controller!.stop('SIGTERM'), 0);
      await bed.round(pool, 'stopped', { server2: N });
      await bed.round(moved, 'stopped', { server3: 3 });
      bed.controller = await bed.startController('controller-2');
      const rec = await bed.reconciled(bed.controller);
      assert.deepEqual([rec.adopted, rec.dropped], [N + 3, 0], JSON.stringify(rec));
      await bed.round(pool, 'restarted', { server2: N });
      await bed.round(moved, 'restarted', { server3: 3 });
      for (const c of [pool, moved]) assert.equal((await c.cmd({ op: 'closeMany' })).ok, true);
      await bed.assertAllGone();
    });
  });

  describe('failover to a standby controller (etcd election, OpenFlow roles)', () => {
    let bed: DrillBed;
    let etcd: Etcd;
    let peek: SwitchConnection | undefined;
    const TTL = 1;
    before(async function () {
      if (!etcdAvailable()) {
        if (process.env.CI) throw new Error('etcd is not installed (topo/install-deps.sh installs etcd-server)');
        this.skip();
      }
      // A 500 ms election timeout lets etcd grant 1 s leases (its minimum is 1.5 election timeouts).
      etcd = await Etcd.start({ extraArgs: ['--heartbeat-interval', '100', '--election-timeout', '500'] });
      bed = await DrillBed.create({ ha: { etcd: etcd.endpoints, ttlSec: TTL } });
    });
    after(async () => { peek?.close(); await bed?.destroy(); await etcd?.stop(); });

    it('the standby takes over within 3 s of the master hanging, adopts every connection, and the old master cannot write', async () => {
      const pool = await bed.pool(N, 'migrate', 'server2');
      const genA = BigInt((await bed.controller!.waitLog((l) => l.msg === 'elected master; taking the switches')).generation);
      const from = bed.standby!.logs.length;
      const t0 = Date.now();
      bed.controller!.signal('SIGSTOP'); // hung, not dead: it will come back believing it is master
      const rec = await bed.reconciled(bed.standby!, from, 15000);
      const takeoverMs = Date.now() - t0;
      console.log(`      takeover (lease ${TTL} s): ${takeoverMs} ms`);
      assert.ok(takeoverMs < 3000, `takeover took ${takeoverMs} ms`);
      assert.deepEqual([rec.adopted, rec.dropped], [N, 0], JSON.stringify(rec));
      const genB = BigInt((await bed.standby!.waitLog((l) => l.msg === 'elected master; taking the switches', 1000, from)).generation);
      assert.ok(genB > genA, `generation ${genB} > ${genA}`);
      await bed.round(pool, 'after-failover', { server2: N });
      const st = await bed.status(bed.ports.B.api);
      assert.deepEqual(roleOf(st.controller), { role: 'master', generationId: String(genB) });
      assert.equal(st.connections.filter((c: any) => c.backend === 'server2' && c.phase === 'forwarded').length, N);

      // The old master resumes: its lease is gone, so it steps down without writing.
      const fromA = bed.controller!.logs.length;
      bed.controller!.signal('SIGCONT');
      await bed.controller!.waitLog((l) => l.msg === 'standby for switch', 15000, fromA);
      assert.ok(bed.controller!.logs.slice(fromA).some((l) => l.msg === 'no longer master; forgetting connections and leaving the switches to the new master'));
      assert.equal((await bed.apiOf('A').get('/api/connections')).connections.length, 0);
      assert.deepEqual(roleOf((await bed.apiOf('A').get('/api/switches')).controller), { role: 'standby', generationId: String(genB) });
      assert.equal((await bed.connectionFlows()).length, N * PER_CONN, 'the switch kept every connection flow');
      await bed.round(pool, 'after-resume', { server2: N });

      // The switch itself refuses the old generation: a third controller channel asks for mastership with it.
      const passive = await freePort();
      await bed.ovs.vsctl('set-controller', bed.bridge, `tcp:127.0.0.1:${bed.ports.A.of}`, `tcp:127.0.0.1:${bed.ports.B.of}`, `ptcp:${passive}:127.0.0.1`);
      const sock = connect({ host: '127.0.0.1', port: passive });
      await once(sock, 'connect');
      peek = new SwitchConnection(sock, { echoIntervalMs: 5000, deadTimeoutMs: 15000, requestTimeoutMs: 5000 }, silentLogger);
      await peek.handshake();
      await assert.rejects(requestRole(peek, 'master', genA), StaleGenerationError);
      assert.equal((await requestRole(peek, 'slave', genB)).generationId, genB);

      assert.equal((await pool.cmd({ op: 'closeMany' })).ok, true);
      await waitFor(async () => (await bed.apiOf('B').get('/api/connections')).connections.length === 0, 'the new master to forget the closed connections', 15000);
      await waitFor(async () => (await bed.connectionFlows()).length === 0, 'the flows to be removed', 15000);
      for (const [name, h] of Object.entries(bed.servers)) await waitFor(async () => (await bed.established(h)) === '', `${name} to hold no socket`, 15000);
    });
  });
});
