// topo/mininet_topo.py under a real Mininet (Debian's package, /usr/bin/python3) on a private
// OVS, connected to the real controller: stopped with SIGTERM, SIGINT or by an error, it must
// leave nothing of its own behind (processes, host namespaces, its bridge, its veth links), and
// it must not touch a bridge it did not create. Every process of a run carries a marker in its
// environment (inherited through Mininet's mnexec and host shells), so the test finds all of
// them, whatever their parent is by then.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ovs, STOCK_PREFIX } from '../lib/ovs.ts';
import { run } from '../lib/exec.ts';
import { ControllerProcess, freePort } from '../lib/controller-process.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = join(ROOT, 'topo', 'mininet_topo.py');
const PYTHON = '/usr/bin/python3';
const MARK = 'TMT_MININET_RUN';

/** Processes (pid, command line) whose environment carries this run's marker. */
function marked(run: string): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (!readFileSync(`/proc/${d}/environ`).toString('latin1').split('\0').includes(`${MARK}=${run}`)) continue;
      // A zombie is gone already, it only waits for its parent to read its status.
      if (/^\d+ \(.*\) Z /s.test(readFileSync(`/proc/${d}/stat`, 'latin1'))) continue;
      out.push({ pid: Number(d), cmd: readFileSync(`/proc/${d}/cmdline`, 'latin1').split('\0').join(' ').trim() });
    } catch { /* exited meanwhile */ }
  }
  return out;
}

function netnsOf(pid: number): string | undefined {
  try { return readlinkSync(`/proc/${pid}/ns/net`); } catch { return undefined; }
}

/** Processes, anywhere, inside one of these network namespaces. */
function inNamespaces(ns: Set<string>): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).filter((p) => ns.has(netnsOf(p) ?? ''));
}

async function rootLinks(sw: string): Promise<string[]> {
  const out = (await run('ip', ['-o', 'link', 'show'])).stdout;
  return [...out.matchAll(/^\d+: ([^:@\s]+)/gm)].map((m) => m[1]).filter((n) => new RegExp(`^${sw}-eth\\d+$`).test(n));
}

/** One run of the topology script; `output` is its stdout and stderr together. */
class Topo {
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: { re: RegExp; resolve: () => void }[] = [];

  constructor(readonly child: ChildProcess) {
    const onData = (d: Buffer) => {
      this.output += d.toString();
      this.waiters = this.waiters.filter((w) => (w.re.test(this.output) ? (w.resolve(), false) : true));
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    this.exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  }

  /** Resolves when the output matches `re`; rejects if the script exits first or after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs = 60000): Promise<void> {
    if (re.test(this.output)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${re} in the script's output within ${timeoutMs} ms:\n${this.output}`)), timeoutMs);
      const w = { re, resolve: () => { clearTimeout(t); resolve(); } };
      this.waiters.push(w);
      void this.exited.then(({ code, signal }) => {
        if (!this.waiters.includes(w)) return;
        this.waiters = this.waiters.filter((x) => x !== w);
        clearTimeout(t);
        reject(new Error(`the script exited (${code ?? signal}) before ${re}:\n${this.output}`));
      });
    });
  }
}

describe('topo/mininet_topo.py: cleans up after itself (real Mininet)', function () {
  this.timeout(180000);
  let dir: string | undefined;
  let ovs: Ovs | undefined;
  let ctl: ControllerProcess | undefined;
  let ofPort: number;
  const runs: { id: string; sw: string; topo?: Topo }[] = [];

  before(async function () {
    this.timeout(120000);
    const mn = await run(PYTHON, ['-c', 'import mininet.net'], { allowFail: true });
    if (mn.code !== 0) {
      const why = `Mininet is not installed for ${PYTHON} (apt-get install mininet; topo/install-deps.sh does)`;
      if (process.env.CI) throw new Error(why);
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'tmt-mininet-'));
    ovs = await Ovs.start({ prefix: STOCK_PREFIX });
    ofPort = await freePort();
    ctl = await ControllerProcess.start('mininet', join(dir, 'config.json'), { listen: { host: '127.0.0.1', port: ofPort }, log: { format: 'json' }, api: { enabled: false } });
  });

  after(async () => {
    // Whatever a failed test left: the script, the processes of its run, its bridge and links.
    for (const r of runs) {
      if (r.topo && r.topo.child.exitCode === null && r.topo.child.signalCode === null) { r.topo.child.kill('SIGKILL'); await r.topo.exited; }
      for (const p of marked(r.id)) { try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ } }
      if (ovs) await ovs.vsctl('--if-exists', 'del-br', r.sw).catch(() => undefined);
      for (const l of await rootLinks(r.sw)) await run('ip', ['link', 'del', l], { allowFail: true });
    }
    await ctl?.stop();
    await ovs?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function start(args: string[] = []): { id: string; sw: string; topo: Topo } {
    const id = randomBytes(6).toString('hex');
    const sw = `tmtmn${randomBytes(2).toString('hex')}`;
    // Mininet runs ovs-vsctl from PATH; OVS_RUNDIR points it at the private OVS's database.
    const env = { ...process.env, [MARK]: id, OVS_RUNDIR: ovs!.dir, PATH: `${STOCK_PREFIX}/bin:${STOCK_PREFIX}/sbin:${process.env.PATH}` };
    const topo = new Topo(spawn(PYTHON, [SCRIPT, '--controller', `127.0.0.1:${ofPort}`, '--switch', sw, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
    const r = { id, sw, topo };
    runs.push(r);
    return r;
  }

  /** Brings the topology up and returns what it made, checked to be there. */
  async function up(): Promise<{ id: string; sw: string; topo: Topo; ns: Set<string> }> {
    const from = ctl!.logs.length;
    const r = start();
    await r.topo.waitFor(/\*\*\* topology up/);
    await ctl!.waitLog((l) => l.msg === 'switch ready' && l.dpid === '00000000000000a1', 30000, from);
    const procs = marked(r.id);
    const echo = procs.filter((p) => /echo-server\.mjs --name server[12]/.test(p.cmd));
    assert.equal(echo.length, 2, `echo servers: ${JSON.stringify(procs)}`);
    const own = netnsOf(process.pid);
    const ns = new Set(procs.map((p) => netnsOf(p.pid)).filter((n): n is string => n !== undefined && n !== own));
    assert.equal(ns.size, 4, 'server1, client, server2 and ids each have a namespace');
    assert.deepEqual((await rootLinks(r.sw)).sort(), [1, 2, 3, 4].map((i) => `${r.sw}-eth${i}`));
    assert.match(await ovs!.vsctl('list-br'), new RegExp(`^${r.sw}$`, 'm'));
    return { ...r, ns };
  }

  async function assertNothingLeft(r: { id: string; sw: string; ns: Set<string> }): Promise<void> {
    assert.deepEqual(marked(r.id), [], 'processes of the run are still alive');
    assert.deepEqual(inNamespaces(r.ns), [], 'processes are still in the hosts\' namespaces');
    assert.deepEqual(await rootLinks(r.sw), [], 'veth links are left');
    assert.doesNotMatch(await ovs!.vsctl('list-br'), new RegExp(`^${r.sw}$`, 'm'), 'the bridge is left');
  }

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`removes its echo servers, namespaces, bridge and veths on ${sig}`, async () => {
      const r = await up();
      // Something started by hand in a host (as from the Mininet CLI) goes too.
      const sleeper = spawn('nsenter', [`--net=/proc/${marked(r.id).find((p) => /echo-server\.mjs --name server1/.test(p.cmd))!.pid}/ns/net`, 'sleep', '600'],
        { env: { ...process.env, [MARK]: r.id }, stdio: 'ignore', detached: true });
      const sleeperExit = once(sleeper, 'exit');
      sleeper.unref();
      r.topo.child.kill(sig);
      const { code } = await r.topo.exited;
      assert.equal(code, 0, r.topo.output);
      assert.match(r.topo.output, /removed everything this run made/);
      await assertNothingLeft(r);
      await sleeperExit;
    });
  }

  it('removes what it made when it fails half-way (an unusable --snort log dir)', async () => {
    const r = start(['--snort', '/proc/version/not-a-dir']);
    const { code } = await r.topo.exited;
    assert.notEqual(code, 0, r.topo.output);
    // It got as far as starting the switch and the echo servers before the error.
    assert.match(r.topo.output, /Starting 1 switches/);
    assert.match(r.topo.output, /NotADirectoryError|Not a directory/);
    assert.deepEqual(marked(r.id), []);
    assert.deepEqual(await rootLinks(r.sw), []);
    assert.doesNotMatch(await ovs!.vsctl('list-br'), new RegExp(`^${r.sw}$`, 'm'));
  });

  it('refuses to start on a bridge it did not create, and leaves that bridge alone', async () => {
    const sw = `tmtmn${randomBytes(2).toString('hex')}`;
    const id = randomBytes(6).toString('hex');
    runs.push({ id, sw });
    await ovs!.vsctl('add-br', sw, '--', 'set', 'bridge', sw, 'datapath_type=netdev');
    const env = { ...process.env, [MARK]: id, OVS_RUNDIR: ovs!.dir, PATH: `${STOCK_PREFIX}/bin:${STOCK_PREFIX}/sbin:${process.env.PATH}` };
    const r = await run(PYTHON, [SCRIPT, '--controller', `127.0.0.1:${ofPort}`, '--switch', sw], { env, allowFail: true, timeoutMs: 60000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`bridge ${sw} exists`));
    assert.match(await ovs!.vsctl('list-br'), new RegExp(`^${sw}$`, 'm'));
  });
});
