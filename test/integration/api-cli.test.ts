// The `tcp-migrate` CLI as an operator runs it (a separate process, bin/tcp-migrate.mjs) against
// a running controller: the in-process controller of a real OVS bed with its API, and the
// `controller` subcommand itself.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { HandoffBed } from '../lib/handoff-net.ts';
import { run, stop, waitFor, type RunResult } from '../lib/exec.ts';
import type { ApiServer } from '../../controller/api/index.ts';
import { EventCollector, TOKEN, openConnection, startApi } from './api-helpers.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'tcp-migrate.mjs');

function cli(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  // A clean environment for the API settings, so a developer's own TCP_MIGRATE_* never leaks in.
  const base = { ...process.env };
  delete base.TCP_MIGRATE_API;
  delete base.TCP_MIGRATE_TOKEN;
  return run(process.execPath, [BIN, ...args], { allowFail: true, env: { ...base, ...env }, timeoutMs: 30000, cwd: ROOT });
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('tcp-migrate CLI against a running controller', function () {
  this.timeout(60000);
  let bed: HandoffBed;
  let api: ApiServer;
  let base: string;
  let stopVerdicts: () => void;
  let dir: string;

  before(async function () {
    this.timeout(120000);
    dir = mkdtempSync(join(tmpdir(), 'tmt-cli-'));
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

  it('prints --help for every command and exits 0', async () => {
    for (const cmd of [[], ['controller'], ['check-config'], ['status'], ['migrate'], ['flows'], ['capture']]) {
      const r = await cli([...cmd, '--help']);
      assert.equal(r.code, 0, `${cmd.join(' ')} --help: ${r.stderr}`);
      assert.match(r.stdout, /^Usage: tcp-migrate/);
    }
    const r = await cli(['status', '--help']);
    assert.match(r.stdout, /--api <url>.*\n.*TCP_MIGRATE_API/);
    assert.match(r.stdout, /--token <token>/);
  });

  it('shows status, moves a connection and a service, and shows flows', async () => {
    const c = bed.scriptClient();
    const events = await EventCollector.open(base);
    try {
      const id = await openConnection(bed, c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'one' }), { ok: true, reply: 'server1 one' });
      await events.next((e) => e.type === 'forwarded' && e.connection.id === id);

      const status = await cli(['status', '--api', base]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /^Switches \(1\)\nDPID\s+REMOTE\s+MODE\s+CONNECTED\n[0-9a-f]{16}\s+127\.0\.0\.1:\d+\s+relay\s/m);
      assert.match(status.stdout, /^echo\s+10\.0\.0\.1:5001\s+server1\s+server2\s+server1=10\.0\.0\.1:5001\(1\)/m);
      assert.match(status.stdout, new RegExp(`^${id}\\s+echo\\s+10\\.0\\.0\\.2:\\d+\\s+server1 \\(10\\.0\\.0\\.1:5001\\)\\s+forwarded\\s+ESTABLISHED/ESTABLISHED`, 'm'));
      assert.match(status.stdout, /^Load: 0 handshake\(s\) in progress \(budget 10000, 256 per source\), 1 connection\(s\) \(budget 100000, when full: refuse\)\n  refused SYNs: 0 table full, 0 evicted handshakes, 0 over a source's budget$/m);
      const json = JSON.parse((await cli(['status', '--json'], { TCP_MIGRATE_API: base })).stdout);
      assert.ok(json.connections.some((x: any) => x.id === id));

      const moved = await cli(['migrate', String(id), '--to', 'server2', '--api', base, '--token', TOKEN]);
      assert.equal(moved.code, 0, moved.stderr);
      assert.match(moved.stdout, new RegExp(`connection ${id} moves at the client's next data segment`));
      assert.deepEqual(await c.cmd({ op: 'send', line: 'two' }), { ok: true, reply: 'server2 two' });
      await events.next((e) => e.type === 'migrated' && e.connection.id === id && e.to === 'server2');

      // Service-wide, token and URL from the environment.
      const svc = await cli(['migrate', 'echo', '--to', 'server3'], { TCP_MIGRATE_API: base, TCP_MIGRATE_TOKEN: TOKEN });
      assert.equal(svc.code, 0, svc.stderr);
      assert.match(svc.stdout, new RegExp(`will move to 'server3': .*\\b${id}\\b`));
      assert.deepEqual(await c.cmd({ op: 'send', line: 'three' }), { ok: true, reply: 'server3 three' });
      await events.next((e) => e.type === 'migrated' && e.connection.id === id && e.to === 'server3');

      // A waiting mid-stream move is called off: the connection stays on server 3.
      const waiting = await cli(['migrate', String(id), '--to', 'server1', '--api', base, '--token', TOKEN]);
      assert.match(waiting.stdout, /cancel it sooner with DELETE \/api\/connections\/\d+\/migrate/);
      const cancelled = await cli(['migrate', String(id), '--cancel', '--api', base, '--token', TOKEN]);
      assert.equal(cancelled.code, 0, cancelled.stderr);
      assert.match(cancelled.stdout, new RegExp(`the move of connection ${id} is cancelled; it stays on server3`));
      await events.next((e) => e.type === 'migration_cancelled' && e.connection.id === id);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'four' }), { ok: true, reply: 'server3 four' });
      const again = await cli(['migrate', String(id), '--cancel', '--api', base, '--token', TOKEN]);
      assert.equal(again.code, 1, 'nothing to cancel: 409');
      assert.match(again.stderr, /409: connection \d+ has no move waiting/);

      const flows = await cli(['flows', '--api', base, '--id', String(id)]);
      assert.equal(flows.code, 0, flows.stderr);
      assert.match(flows.stdout, new RegExp(`^connection ${id}\\s+echo\\s+10\\.0\\.0\\.2:\\d+ -> server3\\s+forwarded`, 'm'));
      // Stock OVS cannot shift sequence numbers: the migrated connection is relayed.
      assert.match(flows.stdout, /main\s+client→backend\s+200\s+\d+\s+\d+\s+\d+s\s+in_port=\d+,tcp,nw_src=10\.0\.0\.2,nw_dst=10\.0\.0\.1,tp_src=\d+,tp_dst=5001\s+CONTROLLER:65535/);
      assert.match(flows.stdout, /main\s+backend→client\s+200\s+.*nw_src=10\.0\.0\.4,nw_dst=10\.0\.0\.2,tp_src=5001/);
      await c.cmd({ op: 'close' });
    } finally { events.close(); c.end(); }
  });

  it('exits non-zero with a clear message: unreachable API, bad token, unknown connection', async () => {
    const unreachable = await cli(['status', '--api', `http://127.0.0.1:${await closedPort()}`]);
    assert.equal(unreachable.code, 3);
    assert.match(unreachable.stderr, /cannot reach the API at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    const notUrl = await cli(['status', '--api', 'not a url']);
    assert.equal(notUrl.code, 3);
    assert.match(notUrl.stderr, /not a URL/);

    const badToken = await cli(['migrate', 'echo', '--to', 'server2', '--api', base, '--token', 'wrong']);
    assert.equal(badToken.code, 4);
    assert.match(badToken.stderr, /401: invalid API token/);
    const noToken = await cli(['migrate', 'echo', '--to', 'server2', '--api', base]);
    assert.equal(noToken.code, 4);
    assert.match(noToken.stderr, /401: missing Authorization header/);

    const unknownConn = await cli(['migrate', '987654', '--to', 'server2', '--api', base, '--token', TOKEN]);
    assert.equal(unknownConn.code, 5);
    assert.match(unknownConn.stderr, /404: no connection 987654/);
    const unknownSvc = await cli(['migrate', 'nope', '--to', 'server2', '--api', base, '--token', TOKEN]);
    assert.equal(unknownSvc.code, 5);
    assert.match(unknownSvc.stderr, /no service named 'nope'/);

    const usage = await cli(['migrate', '3', '--api', base]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /required option '--to <backend>'/);
    const badCount = await cli(['capture', '--pcap', join(dir, 'x.pcap'), '--count', 'many', '--api', base]);
    assert.equal(badCount.code, 2);
    assert.match(badCount.stderr, /positive integer/);
  });

  it('captures Packet-Ins and Packet-Outs to a pcap file that tcpdump reads', async () => {
    const file = join(dir, 'cli.pcap');
    const c = bed.scriptClient();
    const before = bed.controller.listenerCount('capture');
    const capture = run(process.execPath, [BIN, 'capture', '--pcap', file, '--count', '8', '--api', base], { allowFail: true, timeoutMs: 30000, cwd: ROOT });
    try {
      // No event tells another process's subscription is live; the controller's listener count does.
      await waitFor(() => bed.controller.listenerCount('capture') > before, 'the capture stream to subscribe');
      await openConnection(bed, c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'pcap' }), { ok: true, reply: 'server1 pcap' });
      const r = await capture;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /captured 8 frame\(s\) to /);
      const dump = await run('tcpdump', ['-nn', '-r', file]);
      const lines = dump.stdout.trim().split('\n');
      assert.equal(lines.length, 8, dump.stdout);
      assert.ok(lines.some((l) => /10\.0\.0\.2\.\d+ > 10\.0\.0\.1\.5001: Flags \[S\]/.test(l)), dump.stdout);
      assert.equal(readFileSync(file).readUInt32LE(0), 0xa1b2c3d4);
      await c.cmd({ op: 'close' });
    } finally { c.end(); await capture; }
  });

  it('`controller` starts the HTTP API from its config; the CLI talks to it', async function () {
    const cfg = join(dir, 'controller.json');
    writeFileSync(cfg, JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, api: { host: '127.0.0.1', port: 0, token: 'file-token' }, log: { level: 'info', format: 'json' } }));
    const proc = spawn(process.execPath, [BIN, 'controller', '--config', cfg], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const rl = createInterface({ input: proc.stderr! });
        rl.on('line', (l) => {
          try { const j = JSON.parse(l); if (j.msg === 'API listening') resolve(j.port); } catch { /* not a log line */ }
        });
        proc.once('exit', (code) => reject(new Error(`controller exited ${code}`)));
      });
      const r = await cli(['status', '--api', `http://127.0.0.1:${port}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^Switches \(0\)\n  none connected/m);
      // The token from the config file is the one the API checks.
      const wrong = await cli(['migrate', '1', '--to', 'x', '--api', `http://127.0.0.1:${port}`, '--token', 'nope']);
      assert.equal(wrong.code, 4);
      const right = await cli(['migrate', '1', '--to', 'x', '--api', `http://127.0.0.1:${port}`, '--token', 'file-token']);
      assert.equal(right.code, 5);
      const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
      proc.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally { await stop(proc); }
  });

  it('a bad config makes `controller` and `check-config` exit 2 naming the key', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ api: { port: 'x' } }));
    const r = await cli(['controller', '--config', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /api\.port/);
    const check = await cli(['check-config', bad]);
    assert.equal(check.code, 2);
  });
});
