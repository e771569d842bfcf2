// A TCP relay between a switch and its controller that a test can cut, as a network blip or a
// middlebox reset would: `cut()` destroys every relayed connection at once (both ends see it
// close); new connections are accepted again right after. (`ss -K` needs INET_DIAG_DESTROY,
// which this kernel lacks.)
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

export class TcpCutter {
  private readonly pairs = new Set<[Socket, Socket]>();
  accepted = 0;
  private constructor(private readonly server: Server, readonly port: number) {}

  static async start(targetPort: number): Promise<TcpCutter> {
    let self: TcpCutter | undefined;
    const server = createServer((a) => {
      const b = connect({ host: '127.0.0.1', port: targetPort });
      const pair: [Socket, Socket] = [a, b];
      self!.pairs.add(pair);
      self!.accepted++;
      const end = () => { a.destroy(); b.destroy(); self!.pairs.delete(pair); };
      a.on('error', end); b.on('error', end); a.on('close', end); b.on('close', end);
      a.pipe(b); b.pipe(a);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    self = new TcpCutter(server, (server.address() as { port: number }).port);
    return self;
  }

  get open(): number { return this.pairs.size; }

  cut(): number {
    const n = this.pairs.size;
    for (const [a, b] of this.pairs) { a.resetAndDestroy(); b.resetAndDestroy(); }
    this.pairs.clear();
    return n;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((r) => this.server.close(r));
  }
}
