// Reload without restart, as an operator does it: the real `tcp-migrate controller` process (no
// switch needed), `tcp-migrate reload` through the token-protected API, and SIGHUP / SIGTERM.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { run, stop, type RunResult } from '../lib/exec.ts';
import { freePort } from '../../topo/lib/ports.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'tcp-migrate.mjs');
const TOKEN = 'reload-token-31f';

const rule = (sid: number, word: string) => `alert tcp any any -> $HOME_NET any (msg:"MIGRATE ${word}"; flags:A+; content:"${word}"; nocase; sid:${sid}; rev:1;)`;

/** The controller's JSON log lines; `next(pred)` resolves with the first matching line after `from`. */
class LogWatcher {
  readonly lines: any[] = [];
  private waiters: { pred: (l: any) => boolean; from: number; resolve: (l: any) => void; reject: (e: Error) => void }[] = [];
  constructor(proc: ChildProcess) {
    createInterface({ input: proc.stderr! }).on('line', (text) => {
      let l: any;
      try { l = JSON.parse(text); } catch { l = { msg: text }; }
      this.lines.push(l);
      this.waiters = this.waiters.filter((w) => (w.pred(l) ? (w.resolve(l), false) : true));
    });
    proc.once('exit', (code, signal) => {
      for (const w of this.waiters.splice(0)) w.reject(new Error(`controller exited (${code ?? signal}) before the awaited log line; log:\n${this.lines.map((x) => JSON.stringify(x)).join('\n')}`));
    });
  }

  /** Position to pass as `from` so that only later lines count. */
  get mark(): number { return this.lines.length; }

  next(pred: (l: any) => boolean, from = 0, timeoutMs = 15000): Promise<any> {
    const past = this.lines.slice(from).find(pred);
    if (past) return Promise.resolve(past);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no matching log line within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ pred, from, resolve: (l) => { clearTimeout(t); resolve(l); }, reject: (e) => { clearTimeout(t); reject(e); } });
    });
  }
}

describe('reload without restart: the controller process', function () {
  this.timeout(60000);
  let dir: string;
  let rulesFile: string;
  let configFile: string;
  let proc: ChildProcess | undefined;
  let logs: LogWatcher;
  let api: string;
  let exited: Promise<number | null>;

  const baseConfig = () => ({
    log: { level: 'info', format: 'json' },
    api: { host: '127.0.0.1', token: TOKEN },
    services: [{
      name: 'echo', address: '10.0.0.1', port: 5001,
      backends: [{ name: 'server1', address: '10.0.0.1', port: 5001 }, { name: 'server2', address: '10.0.0.3', port: 5001 }],
    }],
    analyzers: { builtin: { rules: [rulesFile], vars: { HOME_NET: '10.0.0.0/8' } } },
  });
  const writeConfig = (cfg: unknown) => writeFileSync(configFile, typeof cfg === 'string' ? cfg : JSON.stringify(cfg, null, 2));

  function cli(args: string[]): Promise<RunResult> {
    const env = { ...process.env };
    delete env.TCP_MIGRATE_API;
    delete env.TCP_MIGRATE_TOKEN;
    return run(process.execPath, [BIN, ...args, '--api', api], { allowFail: true, env, timeoutMs: 30000, cwd: ROOT });
  }
  const reload = (...extra: string[]) => cli(['reload', '--token', TOKEN, ...extra]);

  before(async function () {
    this.timeout(60000);
    dir = mkdtempSync(join(tmpdir(), 'tmt-reload-'));
    rulesFile = join(dir, 'verdicts.rules');
    configFile = join(dir, 'controller.json');
    writeFileSync(rulesFile, [rule(1000001, 'one'), rule(1000002, 'two')].join('\n') + '\n');
    writeConfig(baseConfig());
    const [apiPort, ofPort] = [await freePort(), await freePort()];
    api = `http://127.0.0.1:${apiPort}`;
    proc = spawn(process.execPath, [BIN, 'controller', '-c', configFile, '--api-port', String(apiPort), '--port', String(ofPort), '--listen', '127.0.0.1'], {
      cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'],
    });
    exited = new Promise((r) => proc!.once('exit', (code) => r(code)));
    logs = new LogWatcher(proc);
    await logs.next((l) => l.msg === 'API listening');
    await logs.next((l) => l.msg === 'OpenFlow listener up');
  });

  after(async () => {
    if (proc) await stop(proc);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a reload without the token (exit 4)', async () => {
    const r = await cli(['reload']);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /401: missing Authorization header/);
    const wrong = await cli(['reload', '--token', 'nope']);
    assert.equal(wrong.code, 4);
  });

  it('reloads an edited rule file and prints what changed', async () => {
    const nothing = await reload();
    assert.equal(nothing.code, 0, nothing.stderr);
    assert.equal(nothing.stdout.trim(), 'reloaded: no changes');

    writeFileSync(rulesFile, [rule(1000001, 'one'), rule(1000002, 'two'), rule(1000003, 'three')].join('\n') + '\n');
    const mark = logs.mark;
    const r = await reload();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'reloaded: 1 change(s)\n  analyzers.builtin.rules: reloaded 3 rules (1 new, 0 removed)');
    const line = await logs.next((l) => l.msg === 'config reloaded', mark);
    assert.equal(line.trigger, 'api');
    assert.deepEqual(line.changes, ['analyzers.builtin.rules: reloaded 3 rules (1 new, 0 removed)']);
  });

  it('a broken rule file fails naming file:line, keeps the old rules, and a later valid reload works', async () => {
    writeFileSync(rulesFile, [rule(1000001, 'one'), 'alert tcp any any -> any any (msg:"MIGRATE"; pcre:"/x/"; sid:9;)', rule(1000003, 'three')].join('\n') + '\n');
    const mark = logs.mark;
    const bad = await reload();
    assert.notEqual(bad.code, 0);
    assert.equal(bad.code, 2);
    assert.ok(bad.stderr.includes(`${rulesFile}:2: option "pcre": not supported`), bad.stderr);
    assert.match(bad.stderr, /the running configuration is unchanged/);
    const line = await logs.next((l) => l.msg === 'config reload failed; the running configuration is unchanged', mark);
    assert.ok(line.error.includes(`${rulesFile}:2`), line.error);

    // Compared with the 3 rules still in force (1000001-3), this set adds 1000004 and drops 1000002.
    writeFileSync(rulesFile, [rule(1000001, 'one'), rule(1000003, 'three'), rule(1000004, 'four')].join('\n') + '\n');
    const good = await reload('--json');
    assert.equal(good.code, 0, good.stderr);
    assert.deepEqual(JSON.parse(good.stdout), { changes: ['analyzers.builtin.rules: reloaded 3 rules (1 new, 1 removed)'], restartNeeded: [] });
  });

  it('reloads the config file: live keys change, others are reported as needing a restart', async () => {
    const cfg: any = baseConfig();
    cfg.log.level = 'debug';
    cfg.switch = { echoIntervalMs: 1000 };
    cfg.analyzers.builtin.vars.HOME_NET = '10.0.0.0/16';
    writeConfig(cfg);
    const r = await reload();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), [
      'reloaded: 2 change(s)',
      '  log.level: info -> debug',
      '  analyzers.builtin.vars.HOME_NET: 10.0.0.0/8 -> 10.0.0.0/16',
      'not applied, needs a restart:',
      '  switch.echoIntervalMs: 5000 -> 1000',
    ].join('\n'));

    // An invalid file is refused (exit 2, the key named); after a valid one everything is as at start.
    writeConfig('{ "log": { "level": "loud" } }');
    const bad = await reload();
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid config at 'log\.level'/);
    writeConfig('{ not json');
    assert.match((await reload()).stderr, /not valid JSON/);
    writeConfig(baseConfig());
    const back = await reload('--json');
    assert.equal(back.code, 0, back.stderr);
    assert.deepEqual(JSON.parse(back.stdout), { changes: ['log.level: debug -> info', 'analyzers.builtin.vars.HOME_NET: 10.0.0.0/16 -> 10.0.0.0/8'], restartNeeded: [] });
  });

  it('reloads services: a backend added and a verdict setting changed, seen by the API; an address change is refused', async () => {
    const cfg: any = baseConfig();
    cfg.services[0].backends.push({ name: 'server3', address: '10.0.0.4', port: 5001 });
    cfg.services[0].defaultVerdict = 'MIGRATE';
    writeConfig(cfg);
    const r = await reload();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^  services\.echo\.backends: added server3 \(10\.0\.0\.4:5001\)$/m);
    assert.match(r.stdout, /^  services\.echo\.defaultVerdict: FORWARD -> MIGRATE$/m);
    const status = JSON.parse((await cli(['status', '--json'])).stdout);
    assert.deepEqual(status.services[0].backends.map((b: any) => b.name), ['server1', 'server2', 'server3']);
    assert.equal(status.services[0].defaultVerdict, 'MIGRATE');

    cfg.services[0].address = '10.0.0.9';
    cfg.services[0].backends[0].address = '10.0.0.9';
    writeConfig(cfg);
    const refused = await reload();
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /services\.echo: the service address, which is its primary's, cannot change .*\nthe running configuration is unchanged/);
    const after = JSON.parse((await cli(['status', '--json'])).stdout);
    assert.equal(after.services[0].address, '10.0.0.1');

    writeConfig(baseConfig());
    const back = await reload();
    assert.equal(back.code, 0, back.stderr);
    assert.match(back.stdout, /services\.echo\.backends: removed server3/);
  });

  it('SIGHUP reloads, logs the outcome and keeps the process running', async () => {
    writeFileSync(rulesFile, [rule(1000001, 'one'), rule(1000003, 'three'), rule(1000004, 'four'), rule(1000005, 'five')].join('\n') + '\n');
    let mark = logs.mark;
    proc!.kill('SIGHUP');
    const ok = await logs.next((l) => l.msg === 'config reloaded' && l.trigger === 'SIGHUP', mark);
    assert.deepEqual(ok.changes, ['analyzers.builtin.rules: reloaded 4 rules (1 new, 0 removed)']);

    writeFileSync(rulesFile, 'alert tcp any any -> any any (msg:"x"; sid:1;\n');
    mark = logs.mark;
    proc!.kill('SIGHUP');
    const failed = await logs.next((l) => l.msg === 'config reload failed; the running configuration is unchanged' && l.trigger === 'SIGHUP', mark);
    assert.ok(failed.error.includes(`${rulesFile}:1`), failed.error);

    assert.equal(proc!.exitCode, null);
    const status = await cli(['status']);
    assert.equal(status.code, 0, status.stderr);
  });

  it('SIGTERM stops the controller with exit code 0', async () => {
    proc!.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.ok(logs.lines.some((l) => l.msg === 'shutting down' && l.signal === 'SIGTERM'));
  });
});
