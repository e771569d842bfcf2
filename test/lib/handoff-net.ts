// A complete handoff test bed: one OVS bridge, the controller with a service on server 1,
// a client and three servers in namespaces running the demo echo server.
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ovs } from './ovs.ts';
import { TestNet, type Host } from './netns.ts';
import { startController, nextSwitchReady } from './controller.ts';
import { run, waitFor } from './exec.ts';
import { linkBridges } from '../../topo/lib/links.ts';
import { ScriptClient } from '../../topo/lib/script-client.ts';
export { ScriptClient };
import type { Controller } from '../../controller/controller.ts';
import type { HandoffEngine } from '../../controller/handoff/handoff-engine.ts';
import { endpointKey } from '../../controller/handoff/connection.ts';

const APPS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'topo', 'apps');
export const SERVICE = { ip: '10.0.0.1', port: 5001 };
/** The dual-stack bed's IPv6 addresses (the last group is the IPv4 address's last byte). */
export const SERVICE6 = { ip: 'fd00::1', port: 5001 };
const v6Of = (ip: string) => `fd00::${ip.split('.')[3]}`;

/** Ends a script client and its process: a test that failed half-way leaves no connection open for the next one. */
export function endClient(c: ScriptClient): void { c.end(); c.proc.kill(); }

export interface BedOptions {
  prefix: string;
  services?: Record<string, unknown>;
  handoff?: Record<string, unknown>;
  analyzers?: Record<string, unknown>;
  /** Adds an IDS host on switch port IDS_PORT (no address; it only listens). */
  ids?: boolean;
  /** Adds an attacker host (ATTACKER_IP, the next switch port) that sends raw SYN floods (topo/apps/syn-flood.py). */
  attacker?: boolean;
  /** The echo servers speak first (`--banner`: "<name> ready" on every new connection). */
  banner?: boolean;
  /** Open_vSwitch other_config for the bed's switch (e.g. { 'max-idle': '1000' }). */
  ovsOtherConfig?: Record<string, string>;
  /** Per-host sysctls (`key=value`), by 'client' or server name, set before any server listens (e.g. TFO listeners). */
  sysctls?: Record<string, string[]>;
  /**
   * 6: every host is dual-stack (fd00::<last byte of its IPv4 address>), the service too, and the
   * client reaches it over IPv6 (open, many, serviceIp). Default 4: IPv4 only, IPv6 off in the hosts.
   */
  family?: 4 | 6;
  /**
   * A fabric of three switches in a triangle (the controller with `fabric: true`): the client and
   * server 3 on the first (`bridge`), server 1 on the second, server 2 and the IDS on the third.
   * Hosts keep their switch port numbers; links use ports 20-25.
   */
  fabric?: boolean;
}

/** The fabric bed's switches (datapath ids a1, a2, a3) and where each host sits. */
export const FABRIC_DPIDS = ['00000000000000a1', '00000000000000a2', '00000000000000a3'];
const FABRIC_PLACE: Record<string, number> = { s1: 1, c: 0, s2: 2, s3: 0, ids: 2, atk: 0 };
/** The triangle's links: [switch i, port on i, switch j, port on j]. */
const FABRIC_LINKS: [number, number, number, number][] = [[0, 20, 1, 21], [1, 22, 2, 23], [2, 24, 0, 25]];
export const IDS_PORT = 5;
export const ATTACKER_IP = '10.0.0.66';

/** The test beds' service: the echo servers on server1 (the service address), server2 and server3. */
export function echoService(over: Record<string, unknown> = {}, family: 4 | 6 = 4): Record<string, unknown> {
  const dual = (address: string) => ({ address, ...(family === 6 && { address6: v6Of(address) }) });
  return {
    name: 'echo', ...dual(SERVICE.ip), port: SERVICE.port, primary: 'server1', migrateTo: 'server2', idleTimeout: 60,
    // The tests of the flows layout pin it; those of the default (conntrack) drop these keys or say so.
    forwardVia: 'flows', migrateVia: 'flows',
    backends: [
      { name: 'server1', ...dual('10.0.0.1'), port: SERVICE.port },
      { name: 'server2', ...dual('10.0.0.3'), port: SERVICE.port },
      { name: 'server3', ...dual('10.0.0.4'), port: SERVICE.port },
    ],
    ...over,
  };
}

export class HandoffBed {
  ovs!: Ovs;
  net!: TestNet;
  controller!: Controller;
  client!: Host;
  servers: Record<string, Host> = {};
  /** The echo server process of each server (by name), e.g. to signal it. */
  readonly echo: Record<string, ChildProcess> = {};
  ids?: Host;
  attacker?: Host;
  private banner = false;
  bridge = `tmtbr${randomBytes(2).toString('hex')}`;
  /** Every bridge of the bed: `bridge` alone, or the fabric's three (`bridge` first). */
  bridges: string[] = [this.bridge];
  /** The fabric's link veths (root namespace), removed by destroy(). */
  private links: string[] = [];
  family: 4 | 6 = 4;

  /** The address clients reach the service on, in the bed's family. */
  get serviceIp(): string { return this.family === 6 ? SERVICE6.ip : SERVICE.ip; }
  /** A host's address in the bed's family. */
  ipOf(h: Host): string { return this.family === 6 ? h.ip6! : h.ip; }

  get engine(): HandoffEngine { return this.controller.engine; }

  static async create(opts: BedOptions): Promise<HandoffBed> {
    const bed = new HandoffBed();
    try { await bed.setup(opts); } catch (e) { await bed.destroy(); throw e; }
    return bed;
  }

  private async setup(opts: BedOptions): Promise<void> {
    this.family = opts.family ?? 4;
    const service = echoService({ verdictTimeoutMs: 5000, ...opts.services }, this.family);
    const six = (cidr: string) => (this.family === 6 ? { ipv6: `${v6Of(cidr.split('/')[0]!)}/64` } : {});
    const started = await startController([], { services: [service], handoff: { closeGraceMs: 200, ...opts.handoff }, ...(opts.analyzers ? { analyzers: opts.analyzers } : {}), ...(opts.fabric ? { fabric: true } : {}) });
    this.controller = started.controller;
    this.ovs = await Ovs.start({ prefix: opts.prefix, otherConfig: opts.ovsOtherConfig });
    this.net = TestNet.create();
    this.servers.server1 = await this.net.addHost('s1', '10.0.0.1/24', six('10.0.0.1'));
    this.client = await this.net.addHost('c', '10.0.0.2/24', six('10.0.0.2'));
    this.servers.server2 = await this.net.addHost('s2', '10.0.0.3/24', six('10.0.0.3'));
    this.servers.server3 = await this.net.addHost('s3', '10.0.0.4/24', six('10.0.0.4'));
    if (opts.ids) this.ids = await this.net.addHost('ids', '10.0.0.9/24');
    if (opts.attacker) this.attacker = await this.net.addHost('atk', `${ATTACKER_IP}/24`);
    for (const [name, h] of Object.entries({ client: this.client, ...this.servers })) for (const k of opts.sysctls?.[name] ?? []) await h.exec(['sysctl', '-qw', k]);
    if (opts.fabric) await this.buildFabric(started.target);
    else {
      const ready = nextSwitchReady(this.controller);
      await this.ovs.addBridge(this.bridge, { controller: started.target });
      let n = 1;
      for (const h of this.net.hosts) await this.ovs.addPort(this.bridge, h.peer, n++);
      await ready;
    }
    this.banner = !!opts.banner;
    for (const [name, h] of Object.entries(this.servers)) await this.startEcho(h, name);
    // Let every host be known to the switch (ARP) before the tests start.
    for (const h of Object.values(this.servers)) await this.client.exec(['ping', '-c', '1', '-W', '2', h.ip]);
    if (this.family === 6) for (const h of Object.values(this.servers)) await this.client.exec(['ping', '-6', '-c', '1', '-W', '2', h.ip6!]);
  }

  /** The fabric's three bridges, hosts placed by FABRIC_PLACE, the triangle's links found by LLDP. */
  private async buildFabric(target: string): Promise<void> {
    this.bridges = [this.bridge, `${this.bridge}b`, `${this.bridge}c`];
    const ready = new Set<string>();
    const onReady = (sw: { describe(): string }) => ready.add(sw.describe());
    this.controller.on('switch_ready', onReady);
    try {
      for (const [i, br] of this.bridges.entries()) await this.ovs.addBridge(br, { controller: target, datapathId: FABRIC_DPIDS[i] });
      let n = 1;
      for (const h of this.net.hosts) await this.ovs.addPort(this.bridges[FABRIC_PLACE[h.name] ?? 0]!, h.peer, n++);
      for (const [i, pi, j, pj] of FABRIC_LINKS) this.links.push(await linkBridges(this.ovs, `${this.net.id}-l${pi}`, this.bridges[i]!, pi, this.bridges[j]!, pj));
      await waitFor(() => ready.size === 3, 'three switches ready', 20000);
      await waitFor(() => (this.controller.fabric?.topology.activeLinks().length ?? 0) === FABRIC_LINKS.length, 'the triangle\'s links found by LLDP', 15000);
    } finally { this.controller.off('switch_ready', onReady); }
  }

  /** The fabric link veth between switches i and j (one end; both are in the root namespace), to take it down. */
  fabricLink(i: number, j: number): string {
    const l = FABRIC_LINKS.find(([a, , b]) => (a === i && b === j) || (a === j && b === i));
    if (!l) throw new Error(`no link between switches ${i} and ${j}`);
    return `${this.net.id}-l${l[1]}a`;
  }

  /** Starts the echo server (as `name`) on the service port in `h`; resolves once it listens. */
  async startEcho(h: Host, name: string): Promise<void> {
    // A dual-stack host listens on :: (IPv4 and IPv6 alike); IPv6 is off in the others.
    this.echo[name] = h.spawn(['node', join(APPS, 'echo-server.mjs'), '--name', name, '--port', String(SERVICE.port), ...(h.ip6 ? ['--host', '::'] : []), ...(this.banner ? ['--banner'] : [])]);
    await waitFor(async () => (await h.exec(['ss', '-Hltn', `sport = :${SERVICE.port}`])).stdout.includes(String(SERVICE.port)), `echo server in ${h.name}`);
  }

  /**
   * A server added at run time on switch port `ofport` (on a fabric: of server 1's switch, not the
   * client's), running the echo server, not yet a backend.
   */
  async addServer(name: string, ns: string, cidr: string, ofport: number, sysctls: string[] = []): Promise<Host> {
    const h = await this.net.addHost(ns, cidr, this.family === 6 ? { ipv6: `${v6Of(cidr.split('/')[0]!)}/64` } : {});
    for (const k of sysctls) await h.exec(['sysctl', '-qw', k]);
    await this.ovs.addPort(this.bridges[this.bridges.length > 1 ? 1 : 0]!, h.peer, ofport);
    this.servers[name] = h;
    await this.startEcho(h, name);
    return h;
  }

  /**
   * A server's TCP sockets in any state but listening (SYN-RECV included): of one client port, or
   * on the service port. None once a connection has left the server.
   */
  async socketsOf(server: string, clientPort?: number): Promise<string[]> {
    const r = await this.servers[server].exec(['ss', '-Htan', 'state', 'all', clientPort === undefined ? `sport = :${SERVICE.port}` : `dport = :${clientPort}`]);
    return r.stdout.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('LISTEN'));
  }

  /** Waits until `server` holds no socket (see socketsOf); fails naming what is left. */
  async noSockets(server: string, clientPort?: number, timeoutMs = 10000): Promise<void> {
    let left: string[] = [];
    await waitFor(async () => (left = await this.socketsOf(server, clientPort)).length === 0, `${server} to hold no socket`, timeoutMs)
      .catch(() => { throw new Error(`${server} still holds ${left.length} socket(s): ${left.slice(0, 5).join(' | ')}`); });
  }

  /**
   * A mid-stream move through the engine, then two full revalidator rounds of the switch. The
   * engine resolves once the freeze flows are in and its `revalidateMs` has passed; on a loaded
   * machine OVS can take longer to drop the datapath's cached path to the old backend, and a
   * client segment sent meanwhile still reaches it (the move then happens at the next one). The
   * tests assert which server answers the *next* request, so they wait for the datapath itself.
   */
  async migrateMidStream(id: number, target: string): Promise<void> {
    await this.engine.migrate(id, target);
    await this.ovs.datapathCaughtUp();
  }

  /** Answers every held first segment with `verdict` (as an analyzer would). */
  autoVerdict(verdict: 'MIGRATE' | 'FORWARD', target?: string): () => void {
    const fn = (c: { id: number; phase: string }) => setImmediate(() => { try { this.engine.verdict(c.id, { verdict, source: 'test', target }); } catch { /* closed meanwhile */ } });
    this.engine.on('held', fn);
    return () => this.engine.off('held', fn);
  }

  /** A client process in the client namespace driven one JSON command at a time. */
  scriptClient(timeoutMs = 20000): ScriptClient { return new ScriptClient(this.client.spawn(['node', join(APPS, 'client.mjs'), '--script', '--timeout', String(timeoutMs)], { stdin: 'pipe' })); }

  /** Connects a script client to the service: the controller's id for the connection and the client's port. */
  async open(c: ScriptClient): Promise<{ id: number; port: number }> {
    const r = await c.cmd({ op: 'connect', host: this.serviceIp, port: SERVICE.port });
    if (!r.ok) throw new Error(`connect failed: ${r.error}`);
    const local = String(r.local);
    const port = Number(local.slice(local.lastIndexOf(':') + 1));
    const conn = this.engine.connections().find((x) => x.client === endpointKey(this.ipOf(this.client), port));
    if (!conn) throw new Error(`the controller does not track the connection from port ${port}`);
    return { id: conn.id, port };
  }

  async many(n: number, timeoutMs = 5000): Promise<{ total: number; ok: number; failed: number; servers: Record<string, number>; errors: string[] }> {
    const r = await this.client.exec(['node', join(APPS, 'client.mjs'), '--many', String(n), '--host', this.serviceIp, '--port', String(SERVICE.port), '--timeout', String(timeoutMs)], { timeoutMs: n * timeoutMs + 30000 });
    return JSON.parse(r.stdout.trim().split('\n').pop()!);
  }

  /**
   * The switch's per-connection flows (cookie app byte 0x10), of one connection when `id` is given;
   * `bridge`: another of the fabric's switches than the client's.
   */
  async connectionFlows(id?: number, bridge = this.bridge): Promise<string[]> {
    const out = await this.ovs.ofctl('-O', 'OpenFlow13', 'dump-flows', bridge);
    const re = id === undefined ? /cookie=0x10[0-9a-f]{14},/ : new RegExp(`cookie=0x10[0-9a-f]{2}${id.toString(16).padStart(12, '0')},`);
    return out.split('\n').filter((l) => re.test(l));
  }

  async destroy(): Promise<void> {
    await this.net?.destroy();
    for (const l of this.links) await run('ip', ['link', 'del', l], { allowFail: true });
    await this.ovs?.stop();
    await this.controller?.stop();
  }
}

/**
 * nftables rules in one host: the first `count` packets matching `match` (nft expression words)
 * on `hook` are dropped (`numgen inc`: the rule's own packet counter), later ones are counted and
 * pass. `count: Infinity` drops every one. Deterministic loss, unlike Host.addLoss.
 */
export class DropRule {
  private static next = 0;
  private constructor(readonly host: Host, readonly table: string) {}

  static async add(host: Host, hook: 'input' | 'output', match: string[], count = 1): Promise<DropRule> {
    const table = `tmtdrop${DropRule.next++}`;
    const r = new DropRule(host, table);
    const nft = (...a: string[]) => host.exec(['nft', ...a]);
    await nft('add', 'table', 'inet', table);
    await nft('add', 'chain', 'inet', table, 'c', `{ type filter hook ${hook} priority -10; }`);
    const first = Number.isFinite(count) ? ['numgen', 'inc', 'mod', '1000000000', 'lt', String(count)] : [];
    await nft('add', 'rule', 'inet', table, 'c', ...match, ...first, 'counter', 'drop');
    await nft('add', 'rule', 'inet', table, 'c', ...match, 'counter');
    return r;
  }

  /** Packets dropped, and matching packets let through after them. */
  async counts(): Promise<{ dropped: number; passed: number }> {
    const out = (await this.host.exec(['nft', 'list', 'table', 'inet', this.table])).stdout;
    const [dropped, passed] = [...out.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
    return { dropped, passed };
  }

  async remove(): Promise<void> { await this.host.exec(['nft', 'delete', 'table', 'inet', this.table], { allowFail: true }); }
}
