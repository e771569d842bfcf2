// The controller's OpenFlow listener: accepts switches over TCP or TLS with mutual certificates
// (IPv4 or IPv6), runs each channel's handshake, keeps one live channel per datapath id and emits
// switch lifecycle events for the apps.
//
// A datapath id already connected stays with its connection while that one answers an echo
// request: a newcomer claiming it is refused (a second process must not hijack a switch), and
// takes over only when the old channel is dead (a switch that restarted behind a half-open socket).
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { SwitchConnection, dpidString, type ChannelOptions, type SwitchFeatures } from './switch-connection.ts';
import { OFPET, OFPHFC, type DecodeError } from '../openflow/index.ts';
import { ThrottledLog } from '../log-throttle.ts';
import type { Logger } from '../log.ts';

/** PEM files: the controller's certificate and key, and the CA that signs the switches' certificates. */
export interface ListenTls { cert: string; key: string; ca: string }

export interface ServerOptions extends ChannelOptions { host: string; port: number; tls?: ListenTls }

/**
 * Events: 'switch_connected' (SwitchConnection), 'switch_disconnected' (SwitchConnection, reason),
 * 'malformed' (DecodeError, SwitchConnection) for every malformed message on any channel, handshake or not.
 */
export class OpenFlowServer extends EventEmitter {
  private server?: Server;
  private readonly switches = new Map<string, SwitchConnection>();
  private readonly sockets = new Set<Socket>();
  /** Lines about connections that fail (garbage, probes, refusals): 20 a second at most. */
  private readonly warnings: ThrottledLog;
  readonly stats = { accepted: 0, handshakeFailures: 0, silentCloses: 0, refusedDuplicates: 0, tlsFailures: 0 };

  constructor(private readonly opts: ServerOptions, private readonly log: Logger) {
    super();
    this.warnings = new ThrottledLog(log);
  }

  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      let server: Server;
      try { server = this.opts.tls ? this.tlsServer(this.opts.tls) : createServer((sock) => this.accept(sock)); } catch (e) { reject(e); return; }
      // Every accepted socket, TLS or not, so close() can end those still in a handshake.
      server.on('connection', (sock: Socket) => { this.sockets.add(sock); sock.once('close', () => this.sockets.delete(sock)); });
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        server.on('error', (e) => this.log.error('listener error', { error: e.message }));
        this.server = server;
        const addr = server.address();
        const bound = typeof addr === 'object' && addr ? { host: addr.address, port: addr.port } : { host: this.opts.host, port: this.opts.port };
        this.log.info('OpenFlow listener up', { ...bound, tls: this.opts.tls ? 'mutual certificates' : 'off' });
        resolve(bound);
      });
    });
  }

  get connected(): SwitchConnection[] { return [...this.switches.values()]; }
  get(dpid: bigint | string): SwitchConnection | undefined {
    return this.switches.get(typeof dpid === 'string' ? dpid.padStart(16, '0') : dpidString(dpid));
  }

  private tlsServer(tls: ListenTls): Server {
    const read = (k: keyof ListenTls) => {
      try { return readFileSync(tls[k]); } catch (e) { throw new Error(`listen.tls.${k}: cannot read ${tls[k]}: ${(e as Error).message}`); }
    };
    const server = createTlsServer({
      cert: read('cert'), key: read('key'), ca: read('ca'),
      // Mutual TLS: a switch without a certificate signed by `ca` never reaches OpenFlow.
      requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2',
      handshakeTimeout: this.opts.requestTimeoutMs,
    }, (sock) => this.accept(sock));
    server.on('tlsClientError', (e: Error, sock: TLSSocket) => {
      const remote = `${sock.remoteAddress}:${sock.remotePort}`;
      // A certificate the CA did not sign: Node ends the handshake itself and names why here.
      const refused = sock.authorizationError ? `certificate refused: ${String(sock.authorizationError)}` : undefined;
      // Otherwise a hang-up mid-handshake (a port probe sends nothing at all) is not a failed switch.
      if (!refused && (e as NodeJS.ErrnoException).code === 'ECONNRESET') { this.stats.silentCloses++; this.log.debug('connection closed before the TLS handshake ended', { remote }); return; }
      this.stats.tlsFailures++;
      this.warnings.warn('TLS handshake with switch failed', { remote, error: refused ?? e.message });
    });
    return server;
  }

  private accept(sock: Socket): void {
    this.stats.accepted++;
    const log = this.log.child({ remote: `${sock.remoteAddress}:${sock.remotePort}` });
    const conn = new SwitchConnection(sock, this.opts, log);
    conn.on('malformed', (e: DecodeError) => this.emit('malformed', e, conn));
    log.debug('switch connecting');
    // With TLS, the certificate's subject names the switch in the log.
    const cn = this.opts.tls ? (sock as TLSSocket).getPeerCertificate().subject?.CN : undefined;
    const certificate = Array.isArray(cn) ? cn.join(',') : cn;
    conn.handshake().then((features) => this.admit(conn, features, certificate), (e: Error) => {
      conn.close(`handshake failed: ${e.message}`);
      // A port probe (Mininet checks the controller port with a bare connect) is not a failure.
      if (conn.stats.bytesIn === 0 && conn.endedBySwitch) {
        this.stats.silentCloses++;
        log.debug('connection closed before sending anything');
        return;
      }
      this.stats.handshakeFailures++;
      this.warnings.warn('switch handshake failed', { remote: conn.remote, error: e.message, bytesIn: conn.stats.bytesIn });
    }).catch((e: Error) => {
      // A bug here must cost one channel, never the process (an unhandled rejection would).
      log.error('admitting a switch failed', { error: e.stack ?? e.message });
      conn.close(`admission failed: ${e.message}`);
    });
  }

  /** Registers a handshaken channel under its datapath id, unless a live channel holds that id. */
  private async admit(conn: SwitchConnection, features: SwitchFeatures, certificate?: string): Promise<void> {
    const key = dpidString(features.datapathId);
    for (;;) {
      const cur = this.switches.get(key);
      if (!cur || cur === conn) break;
      if (await cur.probe(this.opts.requestTimeoutMs)) {
        if (!conn.connected) return;
        this.stats.refusedDuplicates++;
        this.warnings.warn('refused a connection claiming a connected datapath id (the connected switch answers echo)', { dpid: key, remote: conn.remote, connected: cur.remote });
        conn.send({ type: 'error', xid: 0, errType: OFPET.HELLO_FAILED, code: OFPHFC.EPERM, data: Buffer.from(`datapath ${key} is already connected`) });
        conn.close(`datapath ${key} is already connected from ${cur.remote}`);
        return;
      }
      if (this.switches.get(key) === cur) {
        this.log.warn('replacing a channel that stopped answering echo: its datapath id reconnected', { dpid: key, old: cur.remote, remote: conn.remote });
        cur.close('stopped answering echo while a new connection claimed its datapath id');
      }
    }
    if (!conn.connected) return;
    this.switches.set(key, conn);
    conn.once('close', (reason: string) => {
      if (this.switches.get(key) === conn) this.switches.delete(key);
      this.log.info('switch disconnected', { dpid: key, reason });
      this.emit('switch_disconnected', conn, reason);
    });
    this.log.info('switch connected', { dpid: key, remote: conn.remote, tables: features.nTables, ...(certificate ? { certificate } : {}) });
    this.emit('switch_connected', conn);
  }

  async close(): Promise<void> {
    for (const c of this.switches.values()) c.close('controller shutting down');
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
