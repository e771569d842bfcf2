// The controller's OpenFlow listener: accepts switches (IPv4 or IPv6), runs each channel's
// handshake, keeps one live channel per datapath id (a reconnecting switch replaces its old one)
// and emits switch lifecycle events for the apps.
import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { SwitchConnection, dpidString, type ChannelOptions } from './switch-connection.ts';
import type { Logger } from '../log.ts';

export interface ServerOptions extends ChannelOptions { host: string; port: number }

/** Events: 'switch_connected' (SwitchConnection), 'switch_disconnected' (SwitchConnection, reason). */
export class OpenFlowServer extends EventEmitter {
  private server?: Server;
  private readonly switches = new Map<string, SwitchConnection>();
  private readonly sockets = new Set<Socket>();

  constructor(private readonly opts: ServerOptions, private readonly log: Logger) { super(); }

  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const server = createServer((sock) => this.accept(sock));
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        server.on('error', (e) => this.log.error('listener error', { error: e.message }));
        this.server = server;
        const addr = server.address();
        const bound = typeof addr === 'object' && addr ? { host: addr.address, port: addr.port } : { host: this.opts.host, port: this.opts.port };
        this.log.info('OpenFlow listener up', bound);
        resolve(bound);
      });
    });
  }

  get connected(): SwitchConnection[] { return [...this.switches.values()]; }
  get(dpid: bigint | string): SwitchConnection | undefined {
    return this.switches.get(typeof dpid === 'string' ? dpid.padStart(16, '0') : dpidString(dpid));
  }

  private accept(sock: Socket): void {
    this.sockets.add(sock);
    sock.once('close', () => this.sockets.delete(sock));
    const log = this.log.child({ remote: `${sock.remoteAddress}:${sock.remotePort}` });
    const conn = new SwitchConnection(sock, this.opts, log);
    log.debug('switch connecting');
    conn.handshake().then((features) => {
      const key = dpidString(features.datapathId);
      const old = this.switches.get(key);
      if (old && old !== conn) old.close('replaced by a new connection from the same datapath');
      this.switches.set(key, conn);
      conn.once('close', (reason: string) => {
        if (this.switches.get(key) === conn) this.switches.delete(key);
        this.log.info('switch disconnected', { dpid: key, reason });
        this.emit('switch_disconnected', conn, reason);
      });
      this.log.info('switch connected', { dpid: key, remote: conn.remote, tables: features.nTables });
      this.emit('switch_connected', conn);
    }, (e: Error) => {
      log.warn('switch handshake failed', { error: e.message });
      conn.close(`handshake failed: ${e.message}`);
    });
  }

  async close(): Promise<void> {
    for (const c of this.switches.values()) c.close('controller shutting down');
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
