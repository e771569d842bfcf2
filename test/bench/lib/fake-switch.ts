// A minimal OpenFlow 1.3 switch that lives only on a TCP socket: enough protocol for a controller
// to accept it (HELLO, FEATURES, BARRIER, ECHO, MULTIPART such as os-ken's PORT_DESC, GET_CONFIG),
// plus a fast path for the load generators: Packet-Ins are pre-encoded, and the controller's
// FLOW_MOD / PACKET_OUT replies are counted from their headers without decoding them.
import { connect, type Socket } from 'node:net';
import { encodeMessage, decodeMessage, OFPT, OFP_NO_BUFFER, type OfpMessage } from '../../../controller/openflow/index.ts';

export interface FakeSwitchOptions { port: number; host?: string; dpid: bigint }

export class FakeSwitch {
  private sock!: Socket;
  private rx: Buffer = Buffer.alloc(0);
  flowMods = 0;
  packetOuts = 0;
  errors = 0;
  /** Called once per chunk read from the socket with the number of PACKET_OUTs in it (the last reply a learning switch sends for a Packet-In). */
  onPacketOuts?: (n: number) => void;
  private featuresSent = false;
  private readyWaiters: Array<() => void> = [];
  private xid = 1;

  constructor(private readonly opts: FakeSwitchOptions) {}

  async connect(): Promise<void> {
    this.sock = connect({ port: this.opts.port, host: this.opts.host ?? '127.0.0.1' });
    this.sock.setNoDelay(true);
    this.sock.on('data', (d: Buffer) => this.onData(d));
    this.sock.on('error', () => { /* reported through close */ });
    await new Promise<void>((resolve, reject) => { this.sock.once('connect', resolve); this.sock.once('error', reject); });
    this.sock.write(encodeMessage({ type: 'hello', xid: this.xid++, versions: [4] }));
  }

  /** Resolves once the controller asked for our features (it considers us a switch from then on). */
  featuresDone(): Promise<void> {
    if (this.featuresSent) return Promise.resolve();
    return new Promise((r) => this.readyWaiters.push(r));
  }

  /** Encodes a Packet-In for `frame` once; send it with sendRaw (xid left at 0). */
  static packetIn(frame: Buffer, inPort: number): Buffer {
    return encodeMessage({ type: 'packet_in', xid: 0, bufferId: OFP_NO_BUFFER, totalLen: frame.length, reason: 0, tableId: 0, cookie: 0n, match: { inPort }, data: frame });
  }

  /** Returns false when the socket's buffer is full (the caller may wait for drain()). */
  sendRaw(buf: Buffer): boolean { return this.sock.write(buf); }
  drain(): Promise<void> { return new Promise((r) => this.sock.once('drain', () => r())); }
  close(): void { this.sock?.destroy(); }

  private send(m: OfpMessage): void { this.sock.write(encodeMessage(m)); }

  private onData(d: Buffer): void {
    this.rx = this.rx.length ? Buffer.concat([this.rx, d]) : d;
    let off = 0;
    const buf = this.rx;
    let outs = 0;
    while (buf.length - off >= 8) {
      const len = buf.readUInt16BE(off + 2);
      if (len < 8) { this.sock.destroy(); return; }
      if (buf.length - off < len) break;
      const type = buf[off + 1];
      if (type === OFPT.PACKET_OUT) { this.packetOuts++; outs++; }
      else if (type === OFPT.FLOW_MOD) this.flowMods++;
      else this.control(buf.subarray(off, off + len));
      off += len;
    }
    this.rx = off === buf.length ? Buffer.alloc(0) : buf.subarray(off);
    if (outs > 0) this.onPacketOuts?.(outs);
  }

  private control(raw: Buffer): void {
    const type = raw[1];
    const xid = raw.readUInt32BE(4);
    switch (type) {
      case OFPT.HELLO: return;
      case OFPT.ERROR: this.errors++; return;
      case OFPT.ECHO_REQUEST: this.send({ type: 'echo_reply', xid, data: raw.subarray(8) }); return;
      case OFPT.FEATURES_REQUEST:
        this.send({ type: 'features_reply', xid, datapathId: this.opts.dpid, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0x4f });
        this.featuresSent = true;
        for (const w of this.readyWaiters.splice(0)) w();
        return;
      case OFPT.BARRIER_REQUEST: this.send({ type: 'barrier_reply', xid }); return;
      case OFPT.GET_CONFIG_REQUEST: this.send({ type: 'get_config_reply', xid, flags: 0, missSendLen: 0xffff }); return;
      case OFPT.MULTIPART_REQUEST: {
        // An empty reply of the requested kind (os-ken waits for PORT_DESC before MAIN_DISPATCHER).
        const reply = Buffer.alloc(16);
        reply[0] = 4; reply[1] = OFPT.MULTIPART_REPLY; reply.writeUInt16BE(16, 2); reply.writeUInt32BE(xid, 4);
        reply.writeUInt16BE(raw.readUInt16BE(8), 8);
        this.sock.write(reply);
        return;
      }
      case OFPT.ROLE_REQUEST: {
        const m = decodeMessage(raw);
        if (m.ok && m.value.type === 'role_request') this.send({ type: 'role_reply', xid, role: m.value.role, generationId: m.value.generationId });
        return;
      }
      default: return; // SET_CONFIG, SET_ASYNC, ...: nothing to answer
    }
  }
}
