// A scripted OpenFlow 1.3 switch over a real TCP socket, for channel tests that need a peer
// misbehaving in ways a real OVS will not (silence, bad versions, chosen errors).
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { encodeMessage, decodeMessage, splitMessages, type OfpMessage } from '../../controller/openflow/index.ts';

export class FakeSwitch {
  readonly received: OfpMessage[] = [];
  private rx: Buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  autoFeatures = true;
  autoEcho = true;
  /** Called for every message received, in order (scripted replies: errors before a barrier reply). */
  onMessage?: (m: OfpMessage) => void;

  private constructor(readonly sock: Socket, readonly dpid: bigint) {
    sock.on('data', (d) => {
      this.rx = Buffer.concat([this.rx, d]);
      const s = splitMessages(this.rx);
      if (!s.ok) return;
      this.rx = s.value.rest;
      for (const raw of s.value.messages) {
        const r = decodeMessage(raw);
        if (!r.ok) continue;
        const m = r.value;
        this.received.push(m);
        if (m.type === 'features_request' && this.autoFeatures) this.send({ type: 'features_reply', xid: m.xid, datapathId: this.dpid, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0 });
        if (m.type === 'echo_request' && this.autoEcho) this.send({ type: 'echo_reply', xid: m.xid, data: m.data });
        this.onMessage?.(m);
      }
      this.wake();
    });
    sock.on('close', () => { this.closed = true; this.wake(); });
    sock.on('error', () => {});
  }

  static async connect(port: number, host = '127.0.0.1', dpid = 0x42n): Promise<FakeSwitch> {
    const sock = connect(port, host);
    await once(sock, 'connect');
    return new FakeSwitch(sock, dpid);
  }

  send(m: OfpMessage): void { this.sock.write(encodeMessage(m)); }
  hello(versions = [4]): void { this.send({ type: 'hello', xid: 1, versions }); }

  private wake(): void { const w = this.waiters; this.waiters = []; w.forEach((f) => f()); }

  /** Resolves with the first received message matching `pred` (already received ones count). */
  async next<T extends OfpMessage['type']>(type: T, pred: (m: Extract<OfpMessage, { type: T }>) => boolean = () => true, timeoutMs = 5000): Promise<Extract<OfpMessage, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.find((m) => m.type === type && pred(m as Extract<OfpMessage, { type: T }>));
      if (found) { this.received.splice(this.received.indexOf(found), 1); return found as Extract<OfpMessage, { type: T }>; }
      if (this.closed) throw new Error(`connection closed before ${type}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${type} within ${timeoutMs} ms`);
      await new Promise<void>((r) => { const t = setTimeout(r, left); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    if (this.closed) return;
    await once(this.sock, 'close', { signal: AbortSignal.timeout(timeoutMs) });
  }

  close(): void { this.sock.destroy(); }
}
