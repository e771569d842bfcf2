// A real-OVS bed for QUIC services with connection-ID steering: the controller with one QUIC
// service on server 1's address (the built-in matcher's rules decide), stock OVS, server 1,
// server 2 and a client with a second address, aioquic's server on both servers (optionally with
// the QUIC-LB CID generator), and client.py. destroy() removes everything, also after a half-done
// create or a failed test.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ovs, STOCK_PREFIX } from './ovs.ts';
import { TestNet, type Host } from './netns.ts';
import { startController, nextSwitchReady } from './controller.ts';
import { RootProcess, type ClientSummary } from './quic-root.ts';
import type { Controller } from '../../controller/controller.ts';

export const NET = {
  s1: { ip: '10.0.0.1', ofport: 1, serverId: 'a1a1a1' },
  client: { ip: '10.0.0.2', ip2: '10.0.0.12', ofport: 2 },
  s2: { ip: '10.0.0.3', ofport: 3, serverId: 'b2b2b2' },
  port: 4433,
} as const;
/** The QUIC-LB layout both servers use: 12-byte CIDs, a 3-byte server ID after the first octet. */
export const LB = { length: 12, offset: 1, serverIdLength: 3 } as const;
export const RULES = [
  'alert quic any any -> $HOME_NET any (msg:"MIGRATE move"; quic.sni; content:"move.example"; nocase; startswith; endswith; sid:1500001; rev:1;)',
  'alert quic any any -> $HOME_NET any (msg:"FORWARD stay"; quic.sni; content:"stay.example"; nocase; startswith; endswith; sid:1500002; rev:1;)',
].join('\n');

export interface CidBedOptions {
  /** The service's `cidSteering` (default on). */
  cidSteering?: boolean;
  /** Servers issue QUIC-LB CIDs and the service knows their server IDs. */
  quicLb?: boolean;
  /** Seconds; the old 4-tuples' flows idle out after it. */
  idleTimeout?: number;
}

export class QuicCidBed {
  ovs?: Ovs;
  net?: TestNet;
  controller?: Controller;
  readonly dir = mkdtempSync(join(tmpdir(), 'tmt-quic-cid-'));
  client!: Host;
  readonly bridge = `tmtbr${randomBytes(2).toString('hex')}c`;
  readonly servers = {} as Record<'s1' | 's2', RootProcess>;

  static async create(o: CidBedOptions = {}): Promise<QuicCidBed> {
    const bed = new QuicCidBed();
    try { await bed.setup(o); } catch (e) { await bed.destroy(); throw e; }
    return bed;
  }

  private async setup(o: CidBedOptions): Promise<void> {
    writeFileSync(join(this.dir, 'quic.rules'), RULES + '\n');
    const lb = o.quicLb ?? false;
    const started = await startController([], {
      services: [{
        protocol: 'quic', name: 'web', address: NET.s1.ip, port: NET.port, primary: 'server1', migrateTo: 'server2', defaultVerdict: 'FORWARD',
        verdictTimeoutMs: 5000, idleTimeout: o.idleTimeout ?? 10, cidSteering: o.cidSteering ?? true, ...(lb && { cid: LB }),
        backends: [
          { name: 'server1', address: NET.s1.ip, port: NET.port, ...(lb && { serverId: NET.s1.serverId }) },
          { name: 'server2', address: NET.s2.ip, port: NET.port, ...(lb && { serverId: NET.s2.serverId }) },
        ],
      }],
      analyzers: { builtin: { rules: [join(this.dir, 'quic.rules')], vars: { HOME_NET: '10.0.0.0/24' } } },
    });
    this.controller = started.controller;
    this.ovs = await Ovs.start({ prefix: STOCK_PREFIX });
    this.net = TestNet.create();
    const s1 = await this.net.addHost('s1', `${NET.s1.ip}/24`);
    this.client = await this.net.addHost('c', `${NET.client.ip}/24`);
    const s2 = await this.net.addHost('s2', `${NET.s2.ip}/24`);
    await this.client.exec(['ip', 'addr', 'add', `${NET.client.ip2}/24`, 'dev', 'eth0']);
    const ready = nextSwitchReady(this.controller);
    await this.ovs.addBridge(this.bridge, { controller: started.target });
    await this.ovs.addPort(this.bridge, s1.peer, NET.s1.ofport);
    await this.ovs.addPort(this.bridge, this.client.peer, NET.client.ofport);
    await this.ovs.addPort(this.bridge, s2.peer, NET.s2.ofport);
    await ready;
    const server = (host: Host, name: 's1' | 's2') => RootProcess.spawn(host, ['/opt/tmt-quic/server.py', '--name', name, '--host', NET[name].ip, '--port', String(NET.port),
      ...(lb ? ['--cid-server-id', NET[name].serverId, '--cid-length', String(LB.length), '--cid-offset', String(LB.offset)] : [])], `server ${name}`);
    this.servers.s1 = server(s1, 's1');
    this.servers.s2 = server(s2, 's2');
    await this.servers.s1.waitLine((l) => l.listening === NET.port, 'its listening line');
    await this.servers.s2.waitLine((l) => l.listening === NET.port, 'its listening line');
    // Every host known to the switch (ARP) before the tests start, from both client addresses.
    for (const ip of [NET.s1.ip, NET.s2.ip]) {
      await this.client.exec(['ping', '-c', '1', '-W', '2', ip]);
      await this.client.exec(['ping', '-c', '1', '-W', '2', '-I', NET.client.ip2, ip]);
    }
  }

  async destroy(): Promise<void> {
    await this.net?.destroy();
    await this.ovs?.stop();
    await this.controller?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** client.py to its end with `extra` arguments; its summary and exit code, unchecked. */
  async run(sni: string, bytes: number, extra: string[], timeoutS: number): Promise<{ summary: ClientSummary; code: number | null; stderr: string }> {
    const p = RootProcess.spawn(this.client, ['/opt/tmt-quic/client.py', '--server', `${NET.s1.ip}:${NET.port}`, '--bytes', String(bytes),
      '--timeout', String(timeoutS), '--sni', sni, ...extra], 'client.py');
    const summary = await p.waitLine((l) => 'ok' in l, 'its summary', (timeoutS + 30) * 1000) as unknown as ClientSummary;
    await p.exit();
    return { summary, code: p.child.exitCode, stderr: p.stderr };
  }

  /** client.py to a complete, sha256-checked transfer. */
  async download(sni: string, bytes: number, extra: string[], timeoutS = 90): Promise<ClientSummary> {
    const { summary: s, code, stderr } = await this.run(sni, bytes, extra, timeoutS);
    assert.equal(s.error, null, `client.py (${sni} ${extra.join(' ')}): ${s.error} ${stderr.trim()}`);
    assert.equal(code, 0, `client.py exited ${code}: ${stderr.trim()}`);
    assert.equal(s.bytes, bytes);
    assert.equal(s.sha256, s.expected_sha256);
    return s;
  }
}
