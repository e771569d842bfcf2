// A private Open vSwitch instance (a test file, a benchmark, the demo): its own ovsdb-server and ovs-vswitchd,
// database, sockets and logs in a temp dir, so nothing touches a system OVS or another instance.
// prefix '/usr' is Debian's stock OVS; '/usr/local' is the patched build (ovs-patch/build.sh).
import { mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { run, waitFor, type RunResult } from './exec.ts';

export const STOCK_PREFIX = '/usr';
export const PATCHED_PREFIX = '/usr/local';

export interface OvsStartOptions {
  prefix?: string;
  /** Open_vSwitch other_config settings (e.g. max-idle: how long an unused datapath flow is kept, ms). */
  otherConfig?: Record<string, string>;
}
export interface BridgeOptions { controller?: string; protocols?: string; failMode?: 'secure' | 'standalone'; datapathId?: string }

export class Ovs {
  private readonly bridges = new Set<string>();
  private constructor(readonly prefix: string, readonly dir: string, readonly env: NodeJS.ProcessEnv) {}

  static async start(opts: OvsStartOptions = {}): Promise<Ovs> {
    const prefix = opts.prefix ?? STOCK_PREFIX;
    if (!existsSync(join(prefix, 'sbin', 'ovs-vswitchd'))) throw new Error(`no ovs-vswitchd under ${prefix}/sbin`);
    // Short path: unix socket paths are limited to 108 bytes.
    const dir = mkdtempSync('/tmp/tmt-ovs-');
    const env = { ...process.env, OVS_RUNDIR: dir, OVS_LOGDIR: dir, OVS_DBDIR: dir, OVS_SYSCONFDIR: dir, OVS_PKGDATADIR: join(prefix, 'share', 'openvswitch') };
    const ovs = new Ovs(prefix, dir, env);
    try {
      await run(join(prefix, 'bin', 'ovsdb-tool'), ['create', join(dir, 'conf.db'), join(prefix, 'share', 'openvswitch', 'vswitch.ovsschema')], { env });
      await run(join(prefix, 'sbin', 'ovsdb-server'), [join(dir, 'conf.db'), `--remote=punix:${ovs.dbSock}`, `--pidfile=${join(dir, 'ovsdb-server.pid')}`,
        `--unixctl=${join(dir, 'ovsdb-server.ctl')}`, `--log-file=${join(dir, 'ovsdb-server.log')}`, '--detach', '--no-chdir'], { env });
      await ovs.vsctlNoWait('init');
      const other = Object.entries(opts.otherConfig ?? {});
      if (other.length) await ovs.vsctlNoWait('set', 'Open_vSwitch', '.', ...other.map(([k, v]) => `other_config:${k}=${v}`));
      await ovs.startVswitchd();
    } catch (e) {
      await ovs.stop();
      throw e;
    }
    return ovs;
  }

  get dbSock(): string { return join(this.dir, 'db.sock'); }
  get vswitchdCtl(): string { return join(this.dir, 'ovs-vswitchd.ctl'); }
  bin(name: string): string { return join(this.prefix, 'bin', name); }

  async startVswitchd(): Promise<void> {
    await run(join(this.prefix, 'sbin', 'ovs-vswitchd'), [`unix:${this.dbSock}`, `--pidfile=${join(this.dir, 'ovs-vswitchd.pid')}`,
      `--unixctl=${this.vswitchdCtl}`, `--log-file=${join(this.dir, 'ovs-vswitchd.log')}`, '--detach', '--no-chdir'], { env: this.env });
  }

  /** Kills ovs-vswitchd hard (as a crash would), leaving the database and bridges configured. */
  async killVswitchd(): Promise<void> {
    const pid = this.pid('ovs-vswitchd');
    if (pid === undefined) return;
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    await waitFor(() => !alive(pid), 'ovs-vswitchd to exit');
  }

  vsctl(...args: string[]): Promise<string> {
    return run(this.bin('ovs-vsctl'), [`--db=unix:${this.dbSock}`, '--timeout=20', ...args], { env: this.env }).then((r) => r.stdout);
  }
  private vsctlNoWait(...args: string[]): Promise<string> { return this.vsctl('--no-wait', ...args); }
  ofctl(...args: string[]): Promise<string> { return run(this.bin('ovs-ofctl'), args, { env: this.env }).then((r) => r.stdout); }
  ofctlRaw(args: string[]): Promise<RunResult> { return run(this.bin('ovs-ofctl'), args, { env: this.env, allowFail: true }); }
  appctl(...args: string[]): Promise<string> { return run(this.bin('ovs-appctl'), ['-t', this.vswitchdCtl, ...args], { env: this.env }).then((r) => r.stdout); }
  /**
   * Resolves once the datapath's cached flows reflect the flow table as it is now: two full
   * revalidator rounds (a round already under way may have started before the last change).
   */
  async datapathCaughtUp(): Promise<void> {
    await this.appctl('revalidator/wait');
    await this.appctl('revalidator/wait');
  }

  async addBridge(name: string, opts: BridgeOptions = {}): Promise<void> {
    if (name.length > 15) throw new Error(`bridge name ${name} longer than 15 characters`);
    const args = ['add-br', name, '--', 'set', 'bridge', name, 'datapath_type=netdev', `protocols=${opts.protocols ?? 'OpenFlow13'}`,
      `fail_mode=${opts.failMode ?? 'secure'}`];
    if (opts.datapathId) args.push(`other-config:datapath-id=${opts.datapathId}`);
    // Several targets (space-separated) make controllers share the switch through OpenFlow roles.
    if (opts.controller) args.push('--', 'set-controller', name, ...opts.controller.split(' '));
    this.bridges.add(name);
    await this.vsctl(...args);
    if (opts.controller) {
      // Tests own the controller's lifetime; don't let OVS fall back to standalone mode or back off for long.
      const ids = (await this.vsctl('get', 'bridge', name, 'controller')).replace(/[[\]\s]/g, '').split(',').filter(Boolean);
      for (const id of ids) await this.vsctl('set', 'controller', id, 'max_backoff=1000', 'inactivity_probe=0');
    }
  }

  async addPort(bridge: string, ifname: string, ofport: number): Promise<void> {
    await this.vsctl('add-port', bridge, ifname, '--', 'set', 'interface', ifname, `ofport_request=${ofport}`);
  }

  log(): string {
    try { return readFileSync(join(this.dir, 'ovs-vswitchd.log'), 'utf8'); } catch { return ''; }
  }

  private pid(daemon: string): number | undefined {
    try { return Number(readFileSync(join(this.dir, `${daemon}.pid`), 'utf8').trim()) || undefined; } catch { return undefined; }
  }

  /** Stops both daemons and removes everything this instance created. Safe to call twice. */
  async stop(): Promise<void> {
    for (const br of this.bridges) {
      await run(this.bin('ovs-vsctl'), [`--db=unix:${this.dbSock}`, '--timeout=5', '--if-exists', 'del-br', br], { env: this.env, allowFail: true });
    }
    this.bridges.clear();
    for (const daemon of ['ovs-vswitchd', 'ovsdb-server']) {
      const pid = this.pid(daemon);
      if (pid === undefined || !alive(pid)) continue;
      try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
      try { await waitFor(() => !alive(pid), `${daemon} to exit`, 5000); } catch { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** True when the OVS under `prefix` knows the project's inc/dec_tcp_seq/ack actions. */
export async function supportsSeqActions(prefix = PATCHED_PREFIX): Promise<boolean> {
  const ofctl = join(prefix, 'bin', 'ovs-ofctl');
  if (!existsSync(ofctl)) return false;
  const r = await run(ofctl, ['parse-flow', 'tcp,actions=inc_tcp_seq:1,output:1'], { allowFail: true });
  return r.code === 0 && r.stdout.includes('inc_tcp_seq:1');
}
