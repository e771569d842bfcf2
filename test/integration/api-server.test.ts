// The HTTP API, event stream, metrics and capture against a real controller and a real OVS
// bridge (Debian's stock OVS: relay mode) with Linux peers in namespaces.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { HandoffBed } from '../lib/handoff-net.ts';
import { run } from '../lib/exec.ts';
import { parsePrometheusText, sampleValue } from '../../controller/metrics.ts';
import type { ApiServer } from '../../controller/api/index.ts';
import { EventCollector, TOKEN, http, openConnection, startApi } from './api-helpers.ts';

describe('HTTP API on a live controller (stock OVS)', function () {
  this.timeout(60000);
  let bed: HandoffBed;
  let api: ApiServer;
  let base: string;
  let stopVerdicts: () => void;
  let dir: string;

  before(async function () {
    this.timeout(120000);
    // Removed in after(), which runs even when a test times out and never reaches its finally.
    dir = mkdtempSync(join(tmpdir(), 'tmt-capture-'));
    bed = await HandoffBed.create({ prefix: '/usr' });
    ({ api, base } = await startApi(bed.controller));
    stopVerdicts = bed.autoVerdict('FORWARD');
  });
  after(async () => {
    stopVerdicts?.();
    await api?.stop();
    await bed?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('lists the switch with its datapath mode', async () => {
    const r = await http(base, 'GET', '/api/switches');
    assert.equal(r.status, 200);
    assert.equal(r.json.switches.length, 1);
    const { load, ...role } = r.json.controller;
    assert.deepEqual(role, { role: 'single' }, 'no ha section: a controller alone');
    // The table's budgets, as configured (the bed's defaults), and nothing refused.
    assert.deepEqual([load.halfOpenMax, load.maxConnections, load.whenFull, load.refused], [10000, 100000, 'refuse', { tableFull: 0, halfOpenEvicted: 0, halfOpenPerSource: 0 }]);
    assert.equal(load.halfOpen + load.established, bed.engine.table.size);
    const s = r.json.switches[0];
    assert.equal(s.dpid, bed.controller.switches[0].describe());
    assert.equal(s.mode, 'relay');
    assert.equal(s.connected, true);
    assert.match(s.remote, /^127\.0\.0\.1:\d+$/);
    assert.ok(!Number.isNaN(Date.parse(s.connectedSince)));
  });

  it('lists services with their backends', async () => {
    const r = await http(base, 'GET', '/api/services');
    assert.equal(r.status, 200);
    const echo = r.json.services.find((s: any) => s.name === 'echo');
    assert.equal(echo.address, '10.0.0.1');
    assert.equal(echo.primary, 'server1');
    assert.deepEqual(echo.backends.map((b: any) => b.name), ['server1', 'server2', 'server3']);
    assert.equal((await http(base, 'GET', '/api/services/echo')).json.service.name, 'echo');
    assert.equal((await http(base, 'GET', '/api/services/nope')).status, 404);
  });

  it('adds and removes a backend, with 4xx for bad input and conflicts', async () => {
    const backend = { name: 'server4', address: '10.0.0.5', port: 5001 };
    const events = await EventCollector.open(base);
    try {
      const added = await http(base, 'POST', '/api/services/echo/backends', { body: backend, token: TOKEN });
      assert.equal(added.status, 201, added.text);
      assert.deepEqual(added.json.backend, backend);
      await events.next((e) => e.type === 'backend_added' && e.backend.name === 'server4');
      const listed = (await http(base, 'GET', '/api/services')).json.services[0];
      assert.ok(listed.backends.some((b: any) => b.name === 'server4'));
      // The switch got the new backend's intercept flow.
      assert.match(await bed.ovs.ofctl('-O', 'OpenFlow13', 'dump-flows', bed.bridge), /nw_src=10\.0\.0\.5,tp_src=5001 actions=CONTROLLER/);

      const dup = await http(base, 'POST', '/api/services/echo/backends', { body: backend, token: TOKEN });
      assert.equal(dup.status, 409);
      assert.match(dup.json.error, /already has a backend named 'server4'/);
      const bad = await http(base, 'POST', '/api/services/echo/backends', { body: { name: 'x', address: '10.0.0.300', port: 1 }, token: TOKEN });
      assert.equal(bad.status, 400);
      assert.match(bad.json.error, /address/);
      const extra = await http(base, 'POST', '/api/services/echo/backends', { body: { ...backend, name: 'y', colour: 'red' }, token: TOKEN });
      assert.equal(extra.status, 400);
      assert.match(extra.json.error, /colour/);
      assert.equal((await http(base, 'POST', '/api/services/nope/backends', { body: backend, token: TOKEN })).status, 404);

      const removed = await http(base, 'DELETE', '/api/services/echo/backends/server4', { token: TOKEN });
      assert.equal(removed.status, 200, removed.text);
      assert.deepEqual(removed.json, { service: 'echo', removed: 'server4' });
      assert.equal((await http(base, 'DELETE', '/api/services/echo/backends/server4', { token: TOKEN })).status, 404);
      const primary = await http(base, 'DELETE', '/api/services/echo/backends/server1', { token: TOKEN });
      assert.equal(primary.status, 409);
      assert.match(primary.json.error, /primary/);
      assert.doesNotMatch(await bed.ovs.ofctl('-O', 'OpenFlow13', 'dump-flows', bed.bridge), /nw_src=10\.0\.0\.5/);
    } finally { events.close(); }
  });

  it('lists a live connection, migrates it through the API, and streams the migration', async () => {
    const c = bed.scriptClient();
    const events = await EventCollector.open(base);
    try {
      const id = await openConnection(bed, c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'hello' }), { ok: true, reply: 'server1 hello' });
      await events.next((e) => e.type === 'forwarded' && e.connection.id === id);

      const list = await http(base, 'GET', '/api/connections');
      assert.equal(list.status, 200);
      const view = list.json.connections.find((x: any) => x.id === id);
      assert.ok(view, 'the connection is listed');
      assert.equal(view.phase, 'forwarded');
      assert.equal(view.backend, 'server1');
      assert.equal(view.service, 'echo');
      assert.equal(view.ackDelta, 0);
      assert.equal(view.migrations, 0);
      assert.deepEqual(view.tcp, { client: 'ESTABLISHED', server: 'ESTABLISHED' });
      assert.equal((await http(base, 'GET', '/api/connections?service=echo')).json.connections.some((x: any) => x.id === id), true);
      assert.equal((await http(base, 'GET', '/api/connections?service=nope')).status, 404);
      assert.equal((await http(base, 'GET', '/api/connections?colour=red')).status, 400);
      assert.equal((await http(base, 'GET', `/api/connections/${id}`)).json.connection.id, id);
      assert.equal((await http(base, 'GET', '/api/connections/abc')).status, 400);
      assert.equal((await http(base, 'GET', '/api/connections/987654')).status, 404);

      // Flow stats for the connection, decoded, with counts.
      const flows = await http(base, 'GET', `/api/flows?id=${id}`);
      assert.equal(flows.status, 200, flows.text);
      const fc = flows.json.connections[0];
      assert.equal(fc.id, id);
      const c2s = fc.flows.find((f: any) => f.role === 'main' && f.direction === 'client→backend');
      assert.ok(c2s, JSON.stringify(fc.flows));
      assert.match(c2s.match, /^in_port=\d+,tcp,nw_src=10\.0\.0\.2,nw_dst=10\.0\.0\.1,tp_src=\d+,tp_dst=5001$/);
      assert.match(c2s.actions, /^output:\d+$/);
      assert.ok(fc.packets > 0 && fc.bytes > 0, `counts: ${fc.packets} packets, ${fc.bytes} bytes`);

      // Same-backend and unknown-backend moves are refused before anything changes.
      assert.equal((await http(base, 'POST', `/api/connections/${id}/migrate`, { body: { to: 'server1' }, token: TOKEN })).status, 409);
      assert.equal((await http(base, 'POST', `/api/connections/${id}/migrate`, { body: { to: 'nowhere' }, token: TOKEN })).status, 404);

      const moved = await http(base, 'POST', `/api/connections/${id}/migrate`, { body: { to: 'server2' }, token: TOKEN });
      assert.equal(moved.status, 202, moved.text);
      assert.equal(moved.json.connection.id, id);
      assert.equal(moved.json.connection.phase, 'freezing');
      assert.deepEqual(await c.cmd({ op: 'send', line: 'next' }), { ok: true, reply: 'server2 next' });
      const ev = await events.next((e) => e.type === 'migrated' && e.connection.id === id);
      assert.equal(ev.from, 'server1');
      assert.equal(ev.to, 'server2');
      assert.equal(ev.midStream, true);
      assert.equal(typeof ev.latencyMs, 'number');
      assert.ok(!Number.isNaN(Date.parse(ev.time)));
      assert.ok(events.events.some((e) => e.type === 'migration_pending' && e.connection.id === id));

      const after = (await http(base, 'GET', `/api/connections/${id}`)).json.connection;
      assert.equal(after.backend, 'server2');
      assert.equal(after.migrations, 1);
      const recent = (await http(base, 'GET', '/api/migrations')).json.migrations;
      assert.ok(recent.some((m: any) => m.connection === id && m.to === 'server2'));

      // The metrics text parses and counts the migration.
      const m = await http(base, 'GET', '/metrics');
      assert.equal(m.status, 200);
      assert.match(String(m.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      const p = parsePrometheusText(m.text);
      assert.ok(sampleValue(p, 'tcp_migrate_migrations_total')! >= 1);
      assert.equal(p.types.tcp_migrate_migrations_total, 'counter');
      assert.equal(p.types.tcp_migrate_handoff_latency_seconds, 'histogram');
      assert.ok(sampleValue(p, 'tcp_migrate_handoff_latency_seconds_count', { kind: 'mid_stream' })! >= 1);
      assert.equal(sampleValue(p, 'tcp_migrate_handoff_latency_seconds_bucket', { kind: 'mid_stream', le: '+Inf' }), sampleValue(p, 'tcp_migrate_handoff_latency_seconds_count', { kind: 'mid_stream' }));
      assert.ok(sampleValue(p, 'tcp_migrate_connections', { phase: 'forwarded' })! >= 1);
      assert.ok(sampleValue(p, 'tcp_migrate_packet_ins_total')! > 0);
      assert.equal(sampleValue(p, 'tcp_migrate_switches', { mode: 'relay' }), 1);
      assert.equal(p.types.tcp_migrate_openflow_errors_total, 'counter');
      assert.equal(sampleValue(p, 'tcp_migrate_analyzer_alerts_total'), 0);

      // A whole service: every connection of it moves.
      const svc = await http(base, 'POST', '/api/services/echo/migrate', { body: { to: 'server3' }, token: TOKEN });
      assert.equal(svc.status, 202, svc.text);
      assert.ok(svc.json.connections.some((x: any) => x.id === id));
      assert.deepEqual(await c.cmd({ op: 'send', line: 'third' }), { ok: true, reply: 'server3 third' });
      await events.next((e) => e.type === 'migrated' && e.connection.id === id && e.to === 'server3');

      await c.cmd({ op: 'close' });
      await events.next((e) => e.type === 'connection_closed' && e.connection.id === id);
    } finally { events.close(); c.end(); }
  });

  it('requires the bearer token for changes', async () => {
    const none = await http(base, 'POST', '/api/connections/1/migrate', { body: { to: 'server2' } });
    assert.equal(none.status, 401);
    assert.match(String(none.headers['www-authenticate']), /^Bearer/);
    assert.match(none.json.error, /Authorization/);
    const wrong = await http(base, 'POST', '/api/connections/1/migrate', { body: { to: 'server2' }, token: 'nope' });
    assert.equal(wrong.status, 401);
    assert.match(wrong.json.error, /invalid API token/);
    const basic = await http(base, 'DELETE', '/api/services/echo/backends/server3', { headers: { Authorization: 'Basic dTpw' } });
    assert.equal(basic.status, 401);
    // Reads need no token.
    assert.equal((await http(base, 'GET', '/api/connections')).status, 200);
  });

  it('refuses all changes with 403 when no token is configured', async () => {
    const open = await startApi(bed.controller, '');
    try {
      const r = await http(open.base, 'POST', '/api/services/echo/migrate', { body: { to: 'server2' }, token: 'anything' });
      assert.equal(r.status, 403);
      assert.match(r.json.error, /set api\.token/);
      assert.equal((await http(open.base, 'GET', '/api/switches')).status, 200);
    } finally { await open.api.stop(); }
  });

  it('answers bad requests with clear 4xx JSON errors', async () => {
    const bad = await http(base, 'POST', '/api/connections/1/migrate', { raw: '{"to": ', token: TOKEN, headers: { 'Content-Type': 'application/json' } });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error, /not valid JSON/);
    assert.equal(bad.json.status, 400);
    const empty = await http(base, 'POST', '/api/connections/1/migrate', { raw: '', token: TOKEN });
    assert.equal(empty.status, 400);
    const arr = await http(base, 'POST', '/api/connections/1/migrate', { body: ['server2'], token: TOKEN });
    assert.equal(arr.status, 400);
    assert.match(arr.json.error, /JSON object/);
    const type = await http(base, 'POST', '/api/connections/1/migrate', { body: { to: 5 }, token: TOKEN });
    assert.equal(type.status, 400);
    assert.match(type.json.error, /'to'/);
    const missing = await http(base, 'POST', '/api/connections/1/migrate', { body: {}, token: TOKEN });
    assert.equal(missing.status, 400);
    const extra = await http(base, 'POST', '/api/connections/1/migrate', { body: { to: 'server2', when: 'now' }, token: TOKEN });
    assert.equal(extra.status, 400);
    assert.match(extra.json.error, /unknown field 'when'/);
    assert.equal((await http(base, 'POST', '/api/connections/0/migrate', { body: { to: 'server2' }, token: TOKEN })).status, 400);
    assert.equal((await http(base, 'POST', '/api/connections/987654/migrate', { body: { to: 'server2' }, token: TOKEN })).status, 404);
    const big = await http(base, 'POST', '/api/services/echo/backends', { raw: JSON.stringify({ name: 'x'.repeat(100_000) }), token: TOKEN, headers: { 'Content-Type': 'application/json' } });
    assert.equal(big.status, 413);
    assert.match(big.json.error, /exceeds the limit/);
    const method = await http(base, 'PUT', '/api/switches');
    assert.equal(method.status, 405);
    assert.equal(method.headers.allow, 'GET');
    assert.equal((await http(base, 'DELETE', '/api/connections/1')).status, 405);
    const unknown = await http(base, 'GET', '/api/nothing-here');
    assert.equal(unknown.status, 404);
    assert.match(unknown.json.error, /no such endpoint/);
    assert.equal((await http(base, 'GET', '/api/events')).status, 426);
    assert.equal((await http(base, 'GET', '/api/capture?count=abc')).status, 400);
    assert.equal((await http(base, 'GET', '/api/capture?seconds=-1')).status, 400);
    // The controller is still fine.
    assert.equal((await http(base, 'GET', '/api/switches')).json.switches.length, 1);
  });

  it('refuses cross-origin WebSocket subscriptions', async () => {
    const ws = new WebSocket(base.replace(/^http/, 'ws') + '/api/events', { headers: { Origin: 'http://evil.example' } });
    const status = await new Promise<number>((resolve, reject) => {
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('open', () => reject(new Error('cross-origin subscription was accepted')));
      ws.once('error', () => undefined);
    });
    ws.terminate();
    assert.equal(status, 403);
    const same = await EventCollector.open(base, { Origin: base });
    same.close();
  });

  it('streams a live pcap of Packet-Ins and Packet-Outs that tcpdump reads', async function () {
    const c = bed.scriptClient();
    try {
      const file = join(dir, 'capture.pcap');
      const chunks: Buffer[] = [];
      // count=8: the SYN, SYN-ACK, ACK and the held first segment each arrive (Packet-In) and leave
      // (Packet-Out); an ARP exchange that happens to come first only pushes the last ones out.
      let traffic: Promise<unknown> | undefined;
      const done = new Promise<void>((resolve, reject) => {
        const req = request(`${base}/api/capture?count=8`, (res) => {
          assert.equal(res.statusCode, 200);
          assert.equal(res.headers['content-type'], 'application/vnd.tcpdump.pcap');
          res.on('data', (d: Buffer) => {
            chunks.push(d);
            // The global header arrives first: the capture is live, start the traffic.
            traffic ??= openConnection(bed, c).then(() => c.cmd({ op: 'send', line: 'captured' }));
          });
          res.on('end', resolve);
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      await done;
      assert.deepEqual(await traffic, { ok: true, reply: 'server1 captured' });
      const buf = Buffer.concat(chunks);
      writeFileSync(file, buf);
      assert.equal(buf.readUInt32LE(0), 0xa1b2c3d4);
      const r = await run('tcpdump', ['-nn', '-r', file]);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, 8, r.stdout);
      assert.ok(lines.some((l) => /10\.0\.0\.2\.\d+ > 10\.0\.0\.1\.5001: Flags \[S\]/.test(l)), r.stdout);
      assert.ok(lines.some((l) => /10\.0\.0\.1\.5001 > 10\.0\.0\.2\.\d+: Flags \[S\.\]/.test(l)), r.stdout);
      await c.cmd({ op: 'close' });
    } finally { c.end(); }
  });
});
