// What the API exposes, and to whom, on the real `tcp-migrate controller` process (no switch
// needed): Host and Origin checks against DNS rebinding (reads, capture, event stream), failed
// authentication logged, counted and rate-limited per client address, and the 413 for an
// oversized body actually reaching real HTTP clients (node:http, curl, Python's urllib).
import assert from 'node:assert/strict';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { ControllerProcess, CLI, freePort } from '../lib/controller-process.ts';
import { run } from '../lib/exec.ts';
import { parsePrometheusText, sampleValue } from '../../controller/metrics.ts';

const TOKEN = 'exposure-token-7c2e';
const MiB = 1024 * 1024;

interface Reply { status: number; headers: IncomingHttpHeaders; text: string; json: any; reusedSocket: boolean }

interface Req {
  method?: string; path: string; host?: string; headers?: Record<string, string>;
  body?: Buffer; chunked?: boolean; localAddress?: string;
  /** Send the body only once the response arrived (a client still uploading when the server answers). */
  bodyAfterResponse?: boolean;
  /** A keep-alive agent (as browsers, curl and fetch keep connections); without, the client sends Connection: close. */
  agent?: Agent;
  /** Expect: 100-continue: the body goes out once the server said 100 Continue. */
  expectContinue?: boolean;
}

/**
 * One request with node:http. Rejects on any socket error (a reset included), so a reply lost to
 * a reset fails the test instead of being ignored; resolves once the request was fully sent and
 * the response fully read.
 */
function call(port: number, r: Req): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...r.headers };
    if (r.host !== undefined) headers.Host = r.host;
    if (r.body && !r.chunked) headers['Content-Length'] = String(r.body.length);
    if (r.expectContinue) headers.Expect = '100-continue';
    const agent = r.agent ?? false;
    const req = request({ host: '127.0.0.1', port, method: r.method ?? 'GET', path: r.path, headers, localAddress: r.localAddress, agent }, (res) => {
      const chunks: Buffer[] = [];
      if (r.bodyAfterResponse) req.end(r.body);
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try { json = JSON.parse(text); } catch { json = undefined; }
        const reply = { status: res.statusCode ?? 0, headers: res.headers, text, json, reusedSocket: req.reusedSocket };
        const done = () => resolve(reply);
        // The whole body must have gone out without an error as well.
        if (req.writableFinished) done(); else req.once('finish', done);
      });
    });
    req.on('error', reject);
    // Node's client drops some socket errors once a response is in: listen on the socket itself.
    req.on('socket', (sock) => sock.on('error', reject));
    if (r.expectContinue) { req.flushHeaders(); req.once('continue', () => req.end(r.body)); return; }
    if (r.bodyAfterResponse) { req.flushHeaders(); if (r.chunked) req.write(r.body!.subarray(0, 70 * 1024)); return; }
    req.end(r.body);
  });
}

/** Opens a WebSocket to the event stream; resolves with the HTTP status of a refusal, or 101. */
function wsStatus(port: number, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/api/events`, { headers });
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => { ws.terminate(); resolve({ status: res.statusCode ?? 0, body }); });
    });
    ws.once('message', () => { ws.terminate(); resolve({ status: 101, body: '' }); });
    ws.once('error', (e) => { if (!/Unexpected server response/.test(e.message)) reject(e); });
  });
}

describe('API exposure: Host/Origin checks, failed authentication, oversized bodies', function () {
  this.timeout(60000);
  let dir: string;
  let ctl: ControllerProcess | undefined;
  let port: number;
  const own = () => `127.0.0.1:${port}`;

  before(async function () {
    this.timeout(60000);
    dir = mkdtempSync(join(tmpdir(), 'tmt-exposure-'));
    port = await freePort();
    ctl = await ControllerProcess.start('exposure', join(dir, 'config.json'), {
      listen: { host: '127.0.0.1', port: await freePort() },
      log: { level: 'info', format: 'json' },
      api: { host: '127.0.0.1', port, token: TOKEN, allowedHosts: ['ctl.test', 'proxy.test:8443'] },
      services: [{ name: 'echo', address: '10.0.0.1', port: 5001, backends: [{ name: 'server1', address: '10.0.0.1', port: 5001 }, { name: 'server2', address: '10.0.0.3', port: 5001 }] }],
    });
    await ctl.waitLog((l) => l.msg === 'API listening');
  });
  after(async () => {
    await ctl?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves reads only under its own names: a rebinding page\'s Host gets 421', async () => {
    const from = ctl!.logs.length;
    for (const path of ['/api/connections', '/api/capture?seconds=5', '/metrics', '/', '/api/nothing']) {
      const r = await call(port, { path, host: `rebind.attacker.example:${port}` });
      assert.equal(r.status, 421, `${path}: ${r.text}`);
      assert.match(r.json.error, /Host "rebind\.attacker\.example:\d+" is not a name of this API: use one of 127\.0\.0\.1:\d+, localhost:\d+.*api\.allowedHosts/);
      assert.notEqual(r.headers['content-type'], 'application/vnd.tcpdump.pcap');
    }
    // The API's own names, with its port; configured names bare, with its port, or as configured.
    for (const host of [own(), `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`, 'ctl.test', `ctl.test:${port}`, 'proxy.test:8443']) {
      assert.equal((await call(port, { path: '/api/switches', host })).status, 200, host);
    }
    for (const host of ['localhost', `localhost:${port + 1}`, 'proxy.test', `proxy.test:${port}`, 'ctl.test.attacker.example', `ctl.test@evil:${port}`]) {
      assert.equal((await call(port, { path: '/api/switches', host })).status, 421, host);
    }
    const line = await ctl!.waitLog((l) => l.msg === 'API request refused: Host is not one of the API\'s names', 5000, from);
    assert.equal(line.level, 'warn');
    assert.equal(line.host, `rebind.attacker.example:${port}`);
    assert.equal(line.client, '127.0.0.1');
  });

  it('logs refused requests throttled, not one line each', async () => {
    const from = ctl!.logs.length;
    for (let i = 0; i < 40; i++) assert.equal((await call(port, { path: '/api/connections', host: 'flood.example' })).status, 421);
    const lines = ctl!.logs.slice(from).filter((l) => /^API request refused: Host/.test(l.msg));
    assert.ok(lines.length < 5, `${lines.length} log lines for 40 refused requests`);
    const metrics = parsePrometheusText((await call(port, { path: '/metrics', host: own() })).text);
    assert.ok(sampleValue(metrics, 'tcp_migrate_api_refused_requests_total', { reason: 'host' })! >= 40);
  });

  it('checks Host and Origin on the event stream\'s WebSocket upgrade', async () => {
    const foreignHost = await wsStatus(port, { Host: `rebind.attacker.example:${port}` });
    assert.equal(foreignHost.status, 421);
    assert.match(foreignHost.body, /not a name of this API/);
    const foreignOrigin = await wsStatus(port, { Origin: 'http://evil.example' });
    assert.equal(foreignOrigin.status, 403);
    assert.match(foreignOrigin.body, /cross-origin request from http:\/\/evil\.example refused/);
    // Origin "null" (sandboxed frames, file: pages) is not one of the API's origins either.
    assert.equal((await wsStatus(port, { Origin: 'null' })).status, 403);
    assert.equal((await wsStatus(port, { Origin: `http://${own()}` })).status, 101);
    assert.equal((await wsStatus(port, { Host: 'ctl.test', Origin: 'https://ctl.test' })).status, 101);
    assert.equal((await wsStatus(port, {})).status, 101, 'non-browser clients send no Origin');
    // Plain requests from another site's page are refused the same way.
    const r = await call(port, { path: '/api/connections', host: own(), headers: { Origin: 'http://evil.example' } });
    assert.equal(r.status, 403);
  });

  it('gets the 413 for a 1 MiB body to real clients, without a connection reset', async () => {
    const big = Buffer.alloc(MiB, 0x20);
    const path = '/api/services/echo/backends';
    const auth = { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' };
    // Declared too large, and chunked (counted), with Connection: close: the whole body, then the reply.
    for (const chunked of [false, true]) {
      const r = await call(port, { method: 'POST', path, headers: auth, body: big, chunked }).catch((e) => { throw new Error(`chunked=${chunked}: ${e.message}`); });
      assert.equal(r.status, 413, `chunked=${chunked}: ${r.text}`);
      assert.match(r.json.error, /exceeds the limit of 65536 bytes/);
    }
    // A keep-alive client still uploading when the 413 arrives can finish its upload: the
    // server keeps reading (and discarding) instead of closing on unread data, so the same
    // connection then carries the next request.
    for (const chunked of [false, true]) {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const r = await call(port, { method: 'POST', path, headers: auth, body: big, chunked, agent, bodyAfterResponse: true }).catch((e) => { throw new Error(`chunked=${chunked}, body after the response: ${e.message}`); });
        assert.equal(r.status, 413, `chunked=${chunked}, body after the response: ${r.text}`);
        assert.notEqual(r.headers.connection, 'close');
        const next = await call(port, { path: '/api/switches', agent });
        assert.equal(next.status, 200);
        assert.equal(next.reusedSocket, true, 'the connection did not survive the 413');
      } finally { agent.destroy(); }
    }
    // Expect: 100-continue (with Connection: close): the body follows the server's 100 Continue.
    assert.equal((await call(port, { method: 'POST', path, headers: auth, body: big, expectContinue: true })).status, 413);
    // Refusals that come before the body is read (no token, foreign Host) reach the client too.
    for (const keepAlive of [false, true]) {
      const agent = keepAlive ? new Agent({ keepAlive: true, maxSockets: 1 }) : undefined;
      try {
        assert.equal((await call(port, { method: 'POST', path, headers: { 'Content-Type': 'application/json' }, body: big, agent })).status, 401);
        assert.equal((await call(port, { method: 'POST', path, host: 'evil.example', headers: auth, body: big, agent, bodyAfterResponse: keepAlive })).status, 421);
      } finally { agent?.destroy(); }
    }

    const file = join(dir, 'big.json');
    writeFileSync(file, big);
    // curl, with and without Expect: 100-continue.
    for (const expect of [[], ['-H', 'Expect:']]) {
      const c = await run('curl', ['-sS', '-X', 'POST', '-H', `Authorization: Bearer ${TOKEN}`, '-H', 'Content-Type: application/json', ...expect,
        '--data-binary', `@${file}`, '-w', '\n%{http_code}', `http://${own()}${path}`], { allowFail: true, timeoutMs: 30000 });
      assert.equal(c.code, 0, `curl ${expect.join(' ')} failed: ${c.stderr}`);
      assert.match(c.stdout, /exceeds the limit of 65536 bytes.*\n413$/s);
    }
    // Python's urllib sends Connection: close and reads the reply only after the whole body.
    const py = await run('/usr/bin/python3', ['-c', `
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], data=open(sys.argv[2], 'rb').read(), method='POST', headers={'Authorization': 'Bearer ' + sys.argv[3], 'Content-Type': 'application/json'})
try:
    urllib.request.urlopen(req, timeout=20)
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
`, `http://${own()}${path}`, file, TOKEN], { allowFail: true, timeoutMs: 30000 });
    assert.equal(py.code, 0, py.stderr);
    assert.match(py.stdout, /^413 .*exceeds the limit/);
    assert.ok(ctl!.alive);
    assert.equal((await call(port, { path: '/api/switches', host: own() })).status, 200);
  });

  it('logs, counts and rate-limits failed authentication per client address (429, Retry-After)', async () => {
    const from = ctl!.logs.length;
    const metric = async (name: string, reason: string) => sampleValue(parsePrometheusText((await call(port, { path: '/metrics' })).text), name, { reason }) ?? NaN;
    const before = { missing: await metric('tcp_migrate_api_auth_failures_total', 'missing'), invalid: await metric('tcp_migrate_api_auth_failures_total', 'invalid'), limited: await metric('tcp_migrate_api_refused_requests_total', 'rate_limited') };
    const attempt = (token: string | undefined, localAddress = '127.0.0.9') => call(port, {
      method: 'POST', path: '/api/reload', localAddress, headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
    });
    // The limiter allows a burst of 10 failures, then one a minute: well inside this test's run time.
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await attempt(i % 2 ? 'wrong' : undefined)).status);
    assert.deepEqual(statuses, Array(10).fill(401));
    const limited = await attempt('wrong');
    assert.equal(limited.status, 429);
    const retry = Number(limited.headers['retry-after']);
    assert.ok(retry >= 1 && retry <= 60, `Retry-After ${limited.headers['retry-after']}`);
    assert.match(limited.json.error, /too many failed authentication attempts from 127\.0\.0\.9: retry after \d+ s/);
    // While blocked, not even the right token is checked: guessing it goes no faster.
    assert.equal((await attempt(TOKEN)).status, 429);
    // Reads are not affected, nor are other addresses: the right token from 127.0.0.1 works.
    assert.equal((await call(port, { path: '/api/switches', localAddress: '127.0.0.9' })).status, 200);
    const ok = await attempt(TOKEN, '127.0.0.1');
    assert.equal(ok.status, 200, ok.text);

    const failures = ctl!.logs.slice(from).filter((l) => l.msg === 'API authentication failed');
    assert.ok(failures.length >= 1 && failures.length < 10, `${failures.length} log lines for 10 failures`);
    assert.equal(failures[0].client, '127.0.0.9');
    assert.equal(failures[0].level, 'warn');
    await ctl!.waitLog((l) => l.msg === 'API request refused: too many failed authentications from this address' && l.client === '127.0.0.9', 5000, from);
    assert.equal(await metric('tcp_migrate_api_auth_failures_total', 'missing') - before.missing, 5);
    assert.equal(await metric('tcp_migrate_api_auth_failures_total', 'invalid') - before.invalid, 5);
    assert.equal(await metric('tcp_migrate_api_refused_requests_total', 'rate_limited') - before.limited, 2);
  });

  it('keeps the CLI working: status and reload under the API\'s names', async () => {
    const env = { ...process.env };
    delete env.TCP_MIGRATE_API;
    delete env.TCP_MIGRATE_TOKEN;
    for (const api of [`http://${own()}`, `http://localhost:${port}`]) {
      const status = await run(process.execPath, [CLI, 'status', '--api', api], { allowFail: true, env, timeoutMs: 30000 });
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /Services \(1\)/);
    }
    const reload = await run(process.execPath, [CLI, 'reload', '--api', `http://localhost:${port}`, '--token', TOKEN], { allowFail: true, env, timeoutMs: 30000 });
    assert.equal(reload.code, 0, reload.stderr);
  });

  it('refuses invalid api.allowedHosts entries naming the entry', async () => {
    for (const [value, key] of [[['ctl.test', 'http://x.test'], /api\.allowedHosts\[1\]/], [['*.example.org'], /api\.allowedHosts\[0\]/], ['ctl.test', /api\.allowedHosts'/], [['a.test/api'], /allowedHosts\[0\]/]] as const) {
      const file = join(dir, 'bad.json');
      writeFileSync(file, JSON.stringify({ api: { allowedHosts: value } }));
      const r = await run(process.execPath, [CLI, 'check-config', file], { allowFail: true, timeoutMs: 30000 });
      assert.equal(r.code, 2, `${JSON.stringify(value)}: ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, key);
      assert.match(r.stderr, /expected (a host name|an array)/);
    }
  });
});
