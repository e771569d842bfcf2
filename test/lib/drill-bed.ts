// The bed for control-plane drills: the patched OVS, a client and three echo servers in
// namespaces, and the controller as its own process (so a drill can kill -9 it), optionally
// behind a TCP relay the drill can cut. A pool of long-lived connections carries checked traffic
// through whatever the drill does to the control plane.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { Ovs, PATCHED_PREFIX } from './ovs.ts';
import { TestNet, type Host } from './netns.ts';
import { waitFor } from './exec.ts';
import { ControllerProcess, apiClient, freePort, CLI, type LogLine } from './controller-process.ts';
import { TcpCutter } from './tcp-cutter.ts';
import { echoService, SERVICE } from './handoff-net.ts';
import { ScriptClient } from '../../topo/lib/script-client.ts';
import { run } from '../../topo/lib/exec.ts';
import type { ApiClient } from '../../controller/api/client.ts';

const APPS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'topo', 'apps');
export { SERVICE };
export const TOKEN = 'drill-token';

/** First-segment verdicts by content: "migrate" → server 2, "stay" → server 1; anything else waits for the IDS. */
export const RULES_V1 = [
  'alert tcp any any -> any 5001 (msg:"FORWARD"; flags:A+; content:"stay"; sid:1000001; rev:1;)',
  'alert tcp any any -> any 5001 (msg:"MIGRATE"; flags:A+; content:"migrate"; sid:1000002; rev:1;)',
].join('\n') + '\n';

export interface DrillOptions {
  /** The OVS build (default: the patched one). */
  prefix?: string;
  cutter?: boolean;
  config?: Record<string, unknown>;
  /** Two controllers ('A' master first, 'B' standby) elected through etcd at these endpoints. */
  ha?: { etcd: string[]; ttlSec: number };
}

export class DrillBed {
  ovs!: Ovs;
  net!: TestNet;
  client!: Host;
  servers: Record<string, Host> = {};
  dir = mkdtempSync('/tmp/tmt-drill-');
  bridge = `tmtbr${randomBytes(2).toString('hex')}`;
  ofPort = 0;
  apiPort = 0;
  cutter?: TcpCutter;
  controller?: ControllerProcess;
  /** With `ha`: the second controller, and each controller's ports. */
  standby?: ControllerProcess;
  ports: Record<string, { of: number; api: number }> = {};
  config: Record<string, any> = {};
  private readonly clients: ScriptClient[] = [];

  configPath(name = 'controller'): string { return join(this.dir, `${name}.json`); }
  get rulesPath(): string { return join(this.dir, 'migrate.rules'); }
  get api(): ApiClient { return apiClient(this.apiPort, TOKEN); }
  apiOf(name: string): ApiClient { return apiClient(this.ports[name]!.api, TOKEN); }

  static async create(opts: DrillOptions = {}): Promise<DrillBed> {
    const bed = new DrillBed();
    try { await bed.setup(opts); } catch (e) { await bed.destroy(); throw e; }
    return bed;
  }

  private async setup(opts: DrillOptions): Promise<void> {
    this.ofPort = await freePort();
    this.apiPort = await freePort();
    writeFileSync(this.rulesPath, RULES_V1);
    this.config = {
      listen: { host: '127.0.0.1', port: this.ofPort },
      log: { level: 'info' },
      api: { enabled: true, host: '127.0.0.1', port: this.apiPort, token: TOKEN },
      handoff: { closeGraceMs: 200, switchGraceMs: 30000 },
      // Long: a connection whose rule does not match stays held (a drill may crash the controller then).
      services: [echoService({ verdictTimeoutMs: 60000 })],
      // A Suricata socket nobody writes to: the built-in matcher is not the only analyzer, so an
      // unmatched first segment waits for the (never coming) IDS verdict instead of defaulting.
      analyzers: { builtin: { rules: [this.rulesPath] }, suricata: { socket: join(this.dir, 'eve.sock') } },
      ...opts.config,
    };
    this.ovs = await Ovs.start({ prefix: opts.prefix ?? PATCHED_PREFIX });
    this.net = TestNet.create();
    this.servers.server1 = await this.net.addHost('s1', '10.0.0.1/24');
    this.client = await this.net.addHost('c', '10.0.0.2/24');
    this.servers.server2 = await this.net.addHost('s2', '10.0.0.3/24');
    this.servers.server3 = await this.net.addHost('s3', '10.0.0.4/24');
    if (opts.cutter) this.cutter = await TcpCutter.start(this.ofPort);
    let targets: string[];
    if (opts.ha) {
      this.ports.A = { of: this.ofPort, api: this.apiPort };
      this.ports.B = { of: await freePort(), api: await freePort() };
      this.controller = await this.startController('A', this.haConfig('A', opts.ha));
      await this.controller.waitLog((l) => l.msg === 'elected master; taking the switches');
      this.standby = await this.startController('B', this.haConfig('B', opts.ha));
      await this.standby.waitLog((l) => l.msg === 'standby');
      targets = [this.ports.A.of, this.ports.B.of].map((p) => `tcp:127.0.0.1:${p}`);
    } else {
      this.controller = await this.startController('controller');
      targets = [`tcp:127.0.0.1:${this.cutter?.port ?? this.ofPort}`];
    }
    await this.ovs.addBridge(this.bridge, { controller: targets.join(' ') });
    let n = 1;
    for (const h of this.net.hosts) await this.ovs.addPort(this.bridge, h.peer, n++);
    await this.controller.waitLog((l) => l.msg === 'switch ready', 30000);
    if (this.standby) await this.standby.waitLog((l) => l.msg === 'standby for switch', 30000);
    for (const [name, h] of Object.entries(this.servers)) h.spawn(['node', join(APPS, 'echo-server.mjs'), '--name', name, '--port', String(SERVICE.port)]);
    for (const h of Object.values(this.servers)) {
      await waitFor(async () => (await h.exec(['ss', '-Hltn', `sport = :${SERVICE.port}`])).stdout.includes(String(SERVICE.port)), `echo server in ${h.name}`);
      await this.client.exec(['ping', '-c', '1', '-W', '2', h.ip]);
    }
  }

  startController(name: string, config: Record<string, unknown> = this.config, args: string[] = []): Promise<ControllerProcess> {
    return ControllerProcess.start(name, this.configPath(name), config, args);
  }

  /** The drill's config for controller `name` of an HA pair: its own ports, the shared election. */
  haConfig(name: string, ha: { etcd: string[]; ttlSec: number }): Record<string, any> {
    const p = this.ports[name]!;
    return {
      ...this.config,
      listen: { host: '127.0.0.1', port: p.of },
      api: { ...this.config.api, port: p.api },
      analyzers: { ...this.config.analyzers, suricata: { socket: join(this.dir, `eve-${name}.sock`) } },
      ha: { etcd: ha.etcd, key: `/tcp-migrate/leader/${this.bridge}`, name, ttlSec: ha.ttlSec },
    };
  }

  /** The controller's "switch reconciled" line after log index `from`. */
  reconciled(p: ControllerProcess, from = 0, timeoutMs = 30000): Promise<LogLine> {
    return p.waitLog((l) => l.msg === 'switch reconciled', timeoutMs, from);
  }

  scriptClient(timeoutMs = 30000): ScriptClient {
    const c = new ScriptClient(this.client.spawn(['node', join(APPS, 'client.mjs'), '--script', '--timeout', String(timeoutMs)], { stdin: 'pipe' }));
    this.clients.push(c);
    return c;
  }

  /** Opens `n` connections and sends a first line with `tag`; asserts every connection is served by `server`. */
  async pool(n: number, tag: string, server: string, c = this.scriptClient()): Promise<ScriptClient> {
    const o = await c.cmd({ op: 'openMany', n, host: SERVICE.ip, port: SERVICE.port });
    assert.equal(o.ok, true, o.error);
    await this.round(c, tag, { [server]: n });
    return c;
  }

  async round(c: ScriptClient, tag: string, expect: Record<string, number>, lines = 3): Promise<void> {
    const r = await c.cmd({ op: 'round', tag, lines });
    assert.deepEqual(r.errors, [], `round ${tag}: ${r.errors?.join('; ')}`);
    assert.deepEqual(r.servers, expect, `round ${tag}`);
  }

  /** `tcp-migrate status --json` through the real CLI. */
  async status(apiPort = this.apiPort): Promise<any> {
    const r = await run(process.execPath, [CLI, 'status', '--json', '--api', `http://127.0.0.1:${apiPort}`]);
    return JSON.parse(r.stdout);
  }

  async connectionFlows(): Promise<string[]> {
    const out = await this.ovs.ofctl('-O', 'OpenFlow13', 'dump-flows', this.bridge);
    return out.split('\n').filter((l) => /cookie=0x10[0-9a-f]{14},/.test(l));
  }

  async established(host: Host): Promise<string> {
    return (await host.exec(['ss', '-Htn', 'state', 'established', `sport = :${SERVICE.port}`])).stdout.trim();
  }

  /** After the pool closed: the controller forgets every connection, the switch holds none of their flows, no server keeps a socket. */
  async assertAllGone(): Promise<void> {
    await waitFor(async () => (await this.api.get('/api/connections')).connections.length === 0, 'the controller to forget the connections', 15000);
    await waitFor(async () => (await this.connectionFlows()).length === 0, 'the connections\' flows to be removed', 15000);
    for (const [name, h] of Object.entries(this.servers)) {
      await waitFor(async () => (await this.established(h)) === '', `${name} to hold no established socket (orphans)`, 15000);
    }
  }

  async packetIns(): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${this.apiPort}/metrics`)).text();
    const m = /^tcp_migrate_packet_ins_total(?:\{\})? (\d+)/m.exec(text);
    assert.ok(m, 'packet-in counter in /metrics');
    return Number(m[1]);
  }

  async destroy(): Promise<void> {
    for (const c of this.clients) { try { c.end(); } catch { /* gone */ } }
    for (const p of [this.controller, this.standby]) {
      if (p?.alive) p.signal('SIGCONT'); // a drill may have stopped it
      await p?.stop('SIGKILL').catch(() => undefined);
    }
    await this.cutter?.close().catch(() => undefined);
    await this.net?.destroy();
    await this.ovs?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
