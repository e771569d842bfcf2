// The end-to-end handoff scenarios, run against a given OVS build: the patched switch (fast path)
// and Debian's stock switch (controller relay) run the same suite.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { HandoffBed, SERVICE, type ScriptClient } from './handoff-net.ts';
import { waitFor } from './exec.ts';
import { blobChunk } from '../../topo/apps/blob.mjs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const APPS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'topo', 'apps');

export interface SuiteOptions { prefix: string; mode: 'fastpath' | 'relay'; bigTransferBytes: number; migrations: number; lossMigrations: number }

function blobSha(seed: number, n: number): string {
  const h = createHash('sha256');
  for (let off = 0; off < n; off += 1 << 20) h.update(blobChunk(seed, off, Math.min(1 << 20, n - off)));
  return h.digest('hex');
}

export function defineHandoffSuite(o: SuiteOptions): void {
  let bed: HandoffBed;
  before(async function () {
    this.timeout(120000);
    bed = await HandoffBed.create({ prefix: o.prefix });
    assert.equal(bed.engine.modeOf(bed.controller.switches[0].describe()), o.mode, `switch mode should be ${o.mode}`);
  });
  after(async () => { await bed?.destroy(); });

  async function open(c: ScriptClient): Promise<number> {
    const r = await c.cmd({ op: 'connect', host: SERVICE.ip, port: SERVICE.port });
    assert.equal(r.ok, true, r.error);
    const port = Number(String(r.local).split(':')[1]);
    const conn = bed.engine.connections().find((x) => x.client === `10.0.0.2:${port}`);
    assert.ok(conn, 'the controller tracks the connection');
    return conn.id;
  }

  it('migrates on the first segment: the client keeps talking to server 1 and is served by server 2', async () => {
    const stop = bed.autoVerdict('MIGRATE');
    const c = bed.scriptClient();
    try {
      const id = await open(c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'hello' }), { ok: true, reply: 'server2 hello' });
      assert.deepEqual(await c.cmd({ op: 'send', line: 'again' }), { ok: true, reply: 'server2 again' });
      const view = bed.engine.connections().find((x) => x.id === id)!;
      assert.equal(view.backend, 'server2');
      assert.equal(view.phase, 'forwarded');
      const flows = (await bed.connectionFlows()).join('\n');
      if (o.mode === 'fastpath') {
        assert.match(flows, /nw_src=10\.0\.0\.2,nw_dst=10\.0\.0\.1,tp_src=\d+,tp_dst=5001 actions=note:[0-9a-f.]+,set_field:[0-9a-f:]+->eth_dst,set_field:10\.0\.0\.3->ip_dst,(inc|dec)_tcp_ack:\d+,output:\d/);
        assert.match(flows, /nw_src=10\.0\.0\.3,nw_dst=10\.0\.0\.2,tp_src=5001,tp_dst=\d+ actions=set_field:[0-9a-f:]+->eth_src,set_field:10\.0\.0\.1->ip_src,(inc|dec)_tcp_seq:\d+,output:\d/);
      } else {
        assert.match(flows, /nw_src=10\.0\.0\.3,nw_dst=10\.0\.0\.2,tp_src=5001,tp_dst=\d+ actions=CONTROLLER:65535/);
      }
      // Server 1's half was reset: it has no connection left on the service port.
      await waitFor(async () => !(await bed.servers.server1.exec(['ss', '-Htn', 'state', 'established', `sport = :${SERVICE.port}`])).stdout.trim(), 'server 1 to drop its half', 5000);
      await c.cmd({ op: 'close' });
    } finally { stop(); c.end(); }
  });

  it('forwards to server 1 on a FORWARD verdict', async () => {
    const stop = bed.autoVerdict('FORWARD');
    const c = bed.scriptClient();
    try {
      const id = await open(c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'stay' }), { ok: true, reply: 'server1 stay' });
      assert.equal(bed.engine.connections().find((x) => x.id === id)?.backend, 'server1');
      const flows = (await bed.connectionFlows()).join('\n');
      assert.match(flows, /nw_src=10\.0\.0\.2,nw_dst=10\.0\.0\.1,tp_src=\d+,tp_dst=5001 actions=note:[0-9a-f.]+,output:1/);
      await c.cmd({ op: 'close' });
    } finally { stop(); c.end(); }
  });

  it('survives its flows being deleted by hand: traffic keeps flowing and the flows come back', async () => {
    const stop = bed.autoVerdict('MIGRATE');
    const c = bed.scriptClient();
    try {
      const id = await open(c);
      assert.equal((await c.cmd({ op: 'send', line: 'before' })).reply, 'server2 before');
      const cookie = `0x10${'00'}${id.toString(16).padStart(12, '0')}/0xff00ffffffffffff`;
      await bed.ovs.ofctl('-O', 'OpenFlow13', 'del-flows', bed.bridge, `cookie=${cookie}`);
      assert.equal((await bed.connectionFlows(id)).length, 0);
      // Enough traffic to pass the engine's stray threshold in either mode.
      for (let i = 0; i < 16; i++) assert.equal((await c.cmd({ op: 'send', line: `after ${i}` })).reply, `server2 after ${i}`);
      await waitFor(async () => (await bed.connectionFlows(id)).length > 0, 'the flows to be reinstalled', 10000);
      await c.cmd({ op: 'close' });
    } finally { stop(); c.end(); }
  });

  it('applies the default verdict when no analyzer answers in time', async () => {
    const svc = bed.engine.service('echo')!;
    const saved = svc.verdictTimeoutMs;
    svc.verdictTimeoutMs = 300;
    const c = bed.scriptClient();
    try {
      const verdict = once(bed.engine, 'verdict');
      await open(c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'nobody decides' }), { ok: true, reply: 'server1 nobody decides' });
      const [, req] = await verdict;
      assert.equal(req.source, 'timeout');
      await c.cmd({ op: 'close' });
    } finally { svc.verdictTimeoutMs = saved; c.end(); }
  });

  it(`completes ${o.migrations} consecutive first-segment migrations with the kernel's default TCP options`, async function () {
    this.timeout(o.migrations * 2000 + 60000);
    // Timestamps, SACK and window scaling are on, as Linux ships them.
    for (const k of ['tcp_timestamps', 'tcp_sack', 'tcp_window_scaling']) {
      const v = (await bed.client.exec(['sysctl', '-n', `net.ipv4.${k}`])).stdout.trim();
      assert.notEqual(v, '0', `${k} must be enabled for this test`);
    }
    const stop = bed.autoVerdict('MIGRATE');
    try {
      const r = await bed.many(o.migrations);
      assert.deepEqual(r.errors, []);
      assert.equal(r.ok, o.migrations);
      assert.deepEqual(r.servers, { server2: o.migrations });
    } finally { stop(); }
  });

  it(`moves a connection mid-stream at a message boundary, ${o.bigTransferBytes >> 20} MB arriving intact`, async function () {
    this.timeout(600000);
    const stop = bed.autoVerdict('FORWARD');
    const c = bed.scriptClient(60000);
    const half = o.bigTransferBytes / 2;
    try {
      const id = await open(c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'first' }), { ok: true, reply: 'server1 first' });
      const a = await c.cmd({ op: 'blob', n: half, seed: 1 });
      assert.equal(a.sha256, blobSha(1, half));
      const moved = once(bed.engine, 'migrated');
      await bed.engine.migrate(id, 'server2');
      const b = await c.cmd({ op: 'blob', n: half, seed: 2 });
      const [view, info] = await moved;
      assert.equal(view.id, id);
      assert.equal(info.midStream, true);
      assert.equal(b.sha256, blobSha(2, half));
      assert.deepEqual(await c.cmd({ op: 'send', line: 'who' }), { ok: true, reply: 'server2 who' });
      await c.cmd({ op: 'close' });
    } finally { stop(); c.end(); }
  });

  it('migrates back to server 1 and along a chain server1 → server2 → server3 → server1', async () => {
    const stop = bed.autoVerdict('FORWARD');
    const c = bed.scriptClient();
    try {
      const id = await open(c);
      assert.equal((await c.cmd({ op: 'send', line: 'a' })).reply, 'server1 a');
      for (const [target, line] of [['server2', 'b'], ['server3', 'c'], ['server1', 'd'], ['server2', 'e']] as const) {
        await bed.engine.migrate(id, target);
        assert.equal((await c.cmd({ op: 'send', line })).reply, `${target} ${line}`);
        assert.equal((await c.cmd({ op: 'send', line: line + '2' })).reply, `${target} ${line}2`);
      }
      assert.equal(bed.engine.connections().find((x) => x.id === id)?.migrations, 4);
      await c.cmd({ op: 'close' });
    } finally { stop(); c.end(); }
  });

  it('moves a connection to a server added at run time (found by ARP)', async () => {
    // A new host nobody has talked to yet: the controller must find it with an ARP probe.
    const h = await bed.net.addHost('s4', '10.0.0.5/24');
    await bed.ovs.addPort(bed.bridge, h.peer, 10);
    h.spawn(['node', join(APPS, 'echo-server.mjs'), '--name', 'server4', '--port', String(SERVICE.port)]);
    await waitFor(async () => (await h.exec(['ss', '-Hltn', `sport = :${SERVICE.port}`])).stdout.includes(String(SERVICE.port)), 'echo server in s4');
    await bed.engine.addBackend('echo', { name: 'server4', address: '10.0.0.5', port: SERVICE.port });
    const stop = bed.autoVerdict('MIGRATE', 'server4');
    const c = bed.scriptClient();
    try {
      await open(c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'new here' }), { ok: true, reply: 'server4 new here' });
      assert.deepEqual(await c.cmd({ op: 'send', line: 'still' }), { ok: true, reply: 'server4 still' });
      await c.cmd({ op: 'close' });
    } finally { stop(); c.end(); }
    await waitFor(() => !bed.engine.connections().some((x) => x.backend === 'server4'), 'the connection to close', 10000);
    await bed.engine.removeBackend('echo', 'server4');
    assert.equal(bed.engine.service('echo')!.backends.some((b) => b.name === 'server4'), false);
  });

  it('refuses to migrate to a server whose window scaling differs, and the connection stays put', async () => {
    const h = await bed.net.addHost('s5', '10.0.0.6/24');
    await h.exec(['sysctl', '-qw', 'net.ipv4.tcp_window_scaling=0']);
    await bed.ovs.addPort(bed.bridge, h.peer, 11);
    h.spawn(['node', join(APPS, 'echo-server.mjs'), '--name', 'server5', '--port', String(SERVICE.port)]);
    await waitFor(async () => (await h.exec(['ss', '-Hltn', `sport = :${SERVICE.port}`])).stdout.includes(String(SERVICE.port)), 'echo server in s5');
    await bed.engine.addBackend('echo', { name: 'server5', address: '10.0.0.6', port: SERVICE.port });
    const stop = bed.autoVerdict('MIGRATE', 'server5');
    const c = bed.scriptClient();
    try {
      const failed = once(bed.engine, 'migration_failed');
      await open(c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'try' }), { ok: true, reply: 'server1 try' });
      const [, info] = await failed;
      assert.equal(info.to, 'server5');
      assert.match(info.why, /wscale/);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'still here' }), { ok: true, reply: 'server1 still here' });
      await c.cmd({ op: 'close' });
    } finally { stop(); c.end(); }
    // server5 got a RST for the half-open replay: nothing is left established there.
    await waitFor(async () => !(await h.exec(['ss', '-Htn', 'state', 'established', `sport = :${SERVICE.port}`])).stdout.trim(), 'server5 to hold no connection', 5000);
  });

  it(`completes ${o.lossMigrations} migrations with 1 % packet loss on every link`, async function () {
    this.timeout(o.lossMigrations * 20000 + 60000);
    const hosts = [bed.client, ...Object.values(bed.servers)];
    for (const h of hosts) await h.addLoss(1);
    const stop = bed.autoVerdict('MIGRATE');
    try {
      const r = await bed.many(o.lossMigrations, 15000);
      assert.deepEqual(r.errors, []);
      assert.equal(r.ok, o.lossMigrations);
      assert.deepEqual(r.servers, { server2: o.lossMigrations });
      const drops = (await Promise.all(hosts.map((h) => h.lossDrops()))).reduce((a, b) => a + b, 0);
      assert.ok(drops > 0, 'the loss rules dropped packets');
    } finally {
      stop();
      for (const h of hosts) await h.removeLoss();
    }
  });

  it('leaves no connection state in the controller or the switch once everything has closed', async () => {
    await waitFor(() => bed.engine.table.size === 0, 'the connection table to empty', 15000)
      .catch((e) => { throw new Error(`${(e as Error).message}; left: ${JSON.stringify(bed.engine.connections().slice(0, 5))}`); });
    assert.deepEqual(bed.engine.table.sizes(), { connections: 0, clientKeys: 0, backendKeys: 0 });
    await waitFor(async () => (await bed.connectionFlows()).length === 0, 'per-connection flows to go', 15000);
  });
}
