// A complete handoff test bed: one OVS bridge, the controller with a service on server 1,
// a client and three servers in namespaces running the demo echo server.
import { randomBytes } from 'node:crypto';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ovs } from './ovs.ts';
import { TestNet, type Host } from './netns.ts';
import { startController, nextSwitchReady } from './controller.ts';
import { waitFor } from './exec.ts';
import { ScriptClient } from '../../topo/lib/script-client.ts';
export { ScriptClient };
import type { Controller } from '../../controller/controller.ts';
import type { HandoffEngine } from '../../controller/handoff/handoff-engine.ts';

const APPS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'topo', 'apps');
export const SERVICE = { ip: '10.0.0.1', port: 5001 };

export interface BedOptions {
  prefix: string;
  services?: Record<string, unknown>;
  handoff?: Record<string, unknown>;
  analyzers?: Record<string, unknown>;
  /** Adds an IDS host on switch port IDS_PORT (no address; it only listens). */
  ids?: boolean;
}
export const IDS_PORT = 5;

export class HandoffBed {
  ovs!: Ovs;
  net!: TestNet;
  controller!: Controller;
  client!: Host;
  servers: Record<string, Host> = {};
  ids?: Host;
  bridge = `tmtbr${randomBytes(2).toString('hex')}`;

  get engine(): HandoffEngine { return this.controller.engine; }

  static async create(opts: BedOptions): Promise<HandoffBed> {
    const bed = new HandoffBed();
    try { await bed.setup(opts); } catch (e) { await bed.destroy(); throw e; }
    return bed;
  }

  private async setup(opts: BedOptions): Promise<void> {
    const service = {
      name: 'echo', address: SERVICE.ip, port: SERVICE.port, primary: 'server1', migrateTo: 'server2',
      verdictTimeoutMs: 5000, idleTimeout: 60,
      backends: [
        { name: 'server1', address: '10.0.0.1', port: SERVICE.port },
        { name: 'server2', address: '10.0.0.3', port: SERVICE.port },
        { name: 'server3', address: '10.0.0.4', port: SERVICE.port },
      ],
      ...opts.services,
    };
    const started = await startController([], { services: [service], handoff: { closeGraceMs: 200, ...opts.handoff }, ...(opts.analyzers ? { analyzers: opts.analyzers } : {}) });
    this.controller = started.controller;
    this.ovs = await Ovs.start({ prefix: opts.prefix });
    this.net = TestNet.create();
    this.servers.server1 = await this.net.addHost('s1', '10.0.0.1/24');
    this.client = await this.net.addHost('c', '10.0.0.2/24');
    this.servers.server2 = await this.net.addHost('s2', '10.0.0.3/24');
    this.servers.server3 = await this.net.addHost('s3', '10.0.0.4/24');
    if (opts.ids) this.ids = await this.net.addHost('ids', '10.0.0.9/24');
    const ready = nextSwitchReady(this.controller);
    await this.ovs.addBridge(this.bridge, { controller: started.target });
    let n = 1;
    for (const h of this.net.hosts) await this.ovs.addPort(this.bridge, h.peer, n++);
    await ready;
    for (const [name, h] of Object.entries(this.servers)) {
      h.spawn(['node', join(APPS, 'echo-server.mjs'), '--name', name, '--port', String(SERVICE.port)]);
    }
    for (const h of Object.values(this.servers)) {
      await waitFor(async () => (await h.exec(['ss', '-Hltn', `sport = :${SERVICE.port}`])).stdout.includes(String(SERVICE.port)), `echo server in ${h.name}`);
    }
    // Let every host be known to the switch (ARP) before the tests start.
    for (const h of Object.values(this.servers)) await this.client.exec(['ping', '-c', '1', '-W', '2', h.ip]);
  }

  /** Answers every held first segment with `verdict` (as an analyzer would). */
  autoVerdict(verdict: 'MIGRATE' | 'FORWARD', target?: string): () => void {
    const fn = (c: { id: number; phase: string }) => setImmediate(() => { try { this.engine.verdict(c.id, { verdict, source: 'test', target }); } catch { /* closed meanwhile */ } });
    this.engine.on('held', fn);
    return () => this.engine.off('held', fn);
  }

  /** A client process in the client namespace driven one JSON command at a time. */
  scriptClient(timeoutMs = 20000): ScriptClient { return new ScriptClient(this.client.spawn(['node', join(APPS, 'client.mjs'), '--script', '--timeout', String(timeoutMs)], { stdin: 'pipe' })); }

  async many(n: number, timeoutMs = 5000): Promise<{ total: number; ok: number; failed: number; servers: Record<string, number>; errors: string[] }> {
    const r = await this.client.exec(['node', join(APPS, 'client.mjs'), '--many', String(n), '--host', SERVICE.ip, '--port', String(SERVICE.port), '--timeout', String(timeoutMs)], { timeoutMs: n * timeoutMs + 30000 });
    return JSON.parse(r.stdout.trim().split('\n').pop()!);
  }

  /** The switch's per-connection flows (cookie app byte 0x10), of one connection when `id` is given. */
  async connectionFlows(id?: number): Promise<string[]> {
    const out = await this.ovs.ofctl('-O', 'OpenFlow13', 'dump-flows', this.bridge);
    const re = id === undefined ? /cookie=0x10[0-9a-f]{14},/ : new RegExp(`cookie=0x10[0-9a-f]{2}${id.toString(16).padStart(12, '0')},`);
    return out.split('\n').filter((l) => re.test(l));
  }

  async destroy(): Promise<void> {
    await this.net?.destroy();
    await this.ovs?.stop();
    await this.controller?.stop();
  }
}
