// The QUIC services' app without a switch: a scripted switch that records what the app sends, a
// learning switch that knows the backends, and clients that speak QUIC Initials (built with the
// codec's encoders) into the app as Packet-Ins. For unit tests of every path of the app.
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { OFP_NO_BUFFER } from '../../controller/openflow/index.ts';
import { buildUdpFrame, parseFrame } from '../../controller/packet/index.ts';
import { encodeClientHello, encodeClientInitial, QUIC_V1 } from '../../controller/quic/index.ts';
import { LearningSwitch } from '../../controller/apps/learning-switch.ts';
import { silentLogger } from '../../controller/log.ts';
import { parseQuicService, type QuicServiceConfig } from '../../controller/quic-steer/service-config.ts';
import { QuicSteerApp, type QuicSteerOptions } from '../../controller/quic-steer/quic-steer-app.ts';
import { ScriptedSwitch, type PacketOut, type FlowMod } from './scripted-switch.ts';

export { ScriptedSwitch, type PacketOut, type FlowMod };

export interface QNode { name: string; mac: string; ip: string; port: number; ofport: number }
export const QCLIENT: QNode = { name: 'client', mac: '02:00:00:00:00:02', ip: '10.0.0.2', port: 40000, ofport: 2 };
export const Q1: QNode = { name: 'server1', mac: '02:00:00:00:00:01', ip: '10.0.0.1', port: 4433, ofport: 1 };
export const Q2: QNode = { name: 'server2', mac: '02:00:00:00:00:03', ip: '10.0.0.3', port: 4433, ofport: 3 };
/** Another port: the NAT rewrites it too. */
export const Q3: QNode = { name: 'server3', mac: '02:00:00:00:00:04', ip: '10.0.0.4', port: 8443, ofport: 4 };
export const IDS_PORT = 9;

export function quicService(over: Record<string, unknown> = {}): QuicServiceConfig {
  return parseQuicService({
    protocol: 'quic', name: 'web', address: Q1.ip, port: Q1.port, primary: 'server1', migrateTo: 'server2', idleTimeout: 30,
    sidBackends: { 3: 'server3' }, verdictTimeoutMs: 5000,
    backends: [Q1, Q2, Q3].map((n) => ({ name: n.name, address: n.ip, port: n.port })),
    ...over,
  }, 'services[0]');
}

/** A client's Initial: one datagram, or (`split`) a post-quantum ClientHello over two. */
export function clientInitials(o: { sni?: string; split?: boolean; version?: number; dcid?: Buffer } = {}): Buffer[] {
  const hello = encodeClientHello({
    sni: o.sni, alpn: ['tmt'],
    keyShares: o.split ? [{ group: 0x11ec, key: randomBytes(1216) }, { group: 0x001d, key: randomBytes(32) }] : undefined,
  });
  const dcid = o.dcid ?? randomBytes(8);
  const version = o.version ?? QUIC_V1;
  const cut = o.split ? 900 : hello.length;
  const parts: [number, Buffer, number][] = [[0, hello.subarray(0, cut), 0], [1, hello.subarray(cut), cut]];
  return parts.filter(([, p]) => p.length > 0).map(([pn, data, offset]) => encodeClientInitial({ version, dcid, scid: Buffer.alloc(0), pn, frames: [{ type: 'crypto', offset, data }] }));
}

/** A UDP frame from one node to another (to the service: `to` is server 1). */
export function udpFrame(from: QNode, to: QNode, payload: Buffer): Buffer {
  return buildUdpFrame({ ethSrc: from.mac, ethDst: to.mac, ipSrc: from.ip, ipDst: to.ip, srcPort: from.port, dstPort: to.port, payload });
}

export class QuicBed {
  readonly sw = new ScriptedSwitch(false);
  readonly learning = new LearningSwitch({ idleTimeout: 60, hardTimeout: 0, priority: 10 }, silentLogger);
  readonly app: QuicSteerApp;

  constructor(services: QuicServiceConfig[] = [quicService()], opts: Partial<QuicSteerOptions> = {}, known: QNode[] = [Q1, Q2, Q3]) {
    this.app = new QuicSteerApp(services, this.learning, silentLogger, opts);
    for (const n of known) this.learning.learnHost(n.ip, { mac: n.mac, dpid: this.sw.describe(), port: n.ofport, seen: Date.now() });
  }

  async ready(): Promise<void> { await this.app.switchReady(this.sw.asChannel(), []); this.sw.take(); }

  /** Delivers a frame as a Packet-In on `inPort`; what the app answered (claimed or not). */
  packetIn(raw: Buffer, inPort: number, cookie = 0n): boolean {
    const parsed = parseFrame(raw);
    return this.app.packetIn(this.sw.asChannel(), {
      type: 'packet_in', xid: 0, bufferId: OFP_NO_BUFFER, totalLen: raw.length, reason: 0, tableId: 1, cookie, match: { inPort }, data: raw,
    }, parsed.ok ? parsed.value : undefined);
  }

  /** A client's datagram to the service. */
  fromClient(payload: Buffer, client: QNode = QCLIENT): boolean { return this.packetIn(udpFrame(client, Q1, payload), client.ofport); }

  /** Waits for the next event `ev` of the app. */
  async next(ev: string, timeoutMs = 3000): Promise<unknown[]> { return once(this.app, ev, { signal: AbortSignal.timeout(timeoutMs) }); }

  stop(): void { this.app.stop(); }
}
