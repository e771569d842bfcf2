// One OpenFlow 1.3 channel to one switch: framing, version negotiation, features, echo keepalive
// both ways with a dead-switch timeout, xid-correlated requests, barriers that surface OFPT_ERRORs
// to the caller, and back-pressure (reading pauses while the switch is not draining our writes).
// Hostile input is bounded: multipart replies are capped, anything before the peer's HELLO ends
// the channel, and per-message warnings are throttled.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import {
  OFP_VERSION, OFPET, OFPBRC, OFPHFC, OFPG, OFPP, OFPT, OFPTT, MultipartBudget, decodeMessage, encodeMessage, errorCodeName, errorTypeName, splitMessages,
  type DecodeError, type FlowStats, type MultipartLimits, type OfpMessage,
} from '../openflow/index.ts';
// The analyzers' throttle, shared: one helper for every source of untrusted input.
import { ThrottledLog } from '../log-throttle.ts';
import type { Logger } from '../log.ts';

export interface ChannelOptions {
  echoIntervalMs: number; deadTimeoutMs: number; requestTimeoutMs: number;
  /** Caps on one multipart reply; MULTIPART_LIMITS when absent. */
  multipart?: MultipartLimits;
}

export interface SwitchFeatures { datapathId: bigint; nBuffers: number; nTables: number; auxiliaryId: number; capabilities: number }

/** An OFPT_ERROR the switch sent in response to one of our messages. */
export class OpenFlowError extends Error {
  /** requestType: the type of the message it answers, when known (only the type is kept of what was sent). */
  constructor(readonly errType: number, readonly code: number, readonly data: Buffer, readonly requestType?: OfpMessage['type']) {
    super(`switch rejected ${requestType ?? 'a message'}: ${errorTypeName(errType)}/${errorCodeName(errType, code)}`);
  }
}

type Pending = { resolve: (m: OfpMessage[]) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; parts: OfpMessage[]; request: OfpMessage; budget?: MultipartBudget };

/** A multipart reply broke MultipartLimits: the request fails, the rest of the reply is dropped. */
export class MultipartOverflowError extends Error {}

/** xids of overflowed replies still streaming; more than this many at once is not a switch bug worth remembering. */
const MAX_DISCARDING = 64;

const OFPMPF_REPLY_MORE = 1;
const REPLY_TYPES: Partial<Record<OfpMessage['type'], OfpMessage['type']>> = {
  echo_request: 'echo_reply', features_request: 'features_reply', get_config_request: 'get_config_reply',
  barrier_request: 'barrier_reply', multipart_request: 'multipart_reply', role_request: 'role_reply',
};

/**
 * Events: 'ready' (features), 'message' (msg, every decoded message not consumed as a reply),
 * 'ofp_error' (OpenFlowError for an error nobody was waiting for), 'close' (reason: string),
 * 'packet_out' (msg) for every Packet-Out sent, when someone listens (packet capture).
 */
export class SwitchConnection extends EventEmitter {
  private rx: Buffer = Buffer.alloc(0);
  private nextXid = 1;
  private readonly pending = new Map<number, Pending>();
  /**
   * xid → type of each message sent since the last barrier, to name it in an error. Only the type:
   * a switch that is never sent a barrier (Packet-Outs alone) keeps up to the bound's worth of
   * these, and whole messages (their frames, actions) were kilobytes per connection at scale.
   */
  private readonly unconfirmed = new Map<number, OfpMessage['type']>();
  private readonly errorsSinceBarrier = new Map<number, OpenFlowError>();
  private lastRx = Date.now();
  private corked = false;
  private echoTimer?: NodeJS.Timeout;
  private closed = false;
  private closedBySwitch = false;
  /** Set by the peer's (decodable) HELLO; before it, any other message ends the channel. */
  private helloSeen = false;
  /** Overflowed multipart replies whose further parts are dropped. */
  private readonly discarding = new Set<number>();
  /** Warnings about one switch's messages: at most 20 lines a second, with a suppressed count. */
  private readonly warnings: ThrottledLog;
  features?: SwitchFeatures;
  readonly remote: string;
  readonly stats = { bytesIn: 0, messagesIn: 0, messagesOut: 0, malformed: 0, backpressurePauses: 0, multipartOverflows: 0 };
  /** When the TCP connection was accepted (ms since epoch). */
  readonly connectedAt = Date.now();

  constructor(private readonly socket: Socket, private readonly opts: ChannelOptions, private readonly log: Logger) {
    super();
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.warnings = new ThrottledLog(log);
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => this.shutdown('connection closed by switch'));
    socket.on('error', (e) => this.shutdown(`socket error: ${e.message}`));
    socket.on('drain', () => socket.resume());
  }

  get connected(): boolean { return !this.closed; }
  /** True once the channel ended because the switch closed it or the socket failed (not by us). */
  get endedBySwitch(): boolean { return this.closedBySwitch; }
  get datapathId(): bigint | undefined { return this.features?.datapathId; }

  /** Version negotiation and features; resolves once the switch is usable. */
  async handshake(): Promise<SwitchFeatures> {
    const hello = new Promise<OfpMessage>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no HELLO from switch')), this.opts.requestTimeoutMs);
      this.once('hello', (m: OfpMessage) => { clearTimeout(t); resolve(m); });
      this.once('close', (why: string) => { clearTimeout(t); reject(new Error(why)); });
    });
    this.send({ type: 'hello', xid: this.allocXid(), versions: [OFP_VERSION] });
    const theirs = await hello;
    if (theirs.type !== 'hello') throw new Error('unexpected first message');
    // Without a bitmap the negotiated version is min(ours, theirs); with one, 1.3 must be in it.
    const ok = theirs.versions ? theirs.versions.includes(OFP_VERSION) : this.peerVersion >= OFP_VERSION;
    if (!ok) {
      this.send({ type: 'error', xid: theirs.xid, errType: OFPET.HELLO_FAILED, code: OFPHFC.INCOMPATIBLE, data: Buffer.from('OpenFlow 1.3 required') });
      this.close('no common OpenFlow version (1.3 required)');
      throw new Error('switch does not speak OpenFlow 1.3');
    }
    const [reply] = await this.request({ type: 'features_request', xid: 0 });
    if (reply.type !== 'features_reply') throw new Error('bad features reply');
    this.features = { datapathId: reply.datapathId, nBuffers: reply.nBuffers, nTables: reply.nTables, auxiliaryId: reply.auxiliaryId, capabilities: reply.capabilities };
    this.startKeepalive();
    this.emit('ready', this.features);
    return this.features;
  }

  allocXid(): number {
    const x = this.nextXid;
    this.nextXid = (this.nextXid % 0xfffffff0) + 1;
    return x;
  }

  /** Sends a message; returns its xid. Errors for it are reported by the next barrier(). */
  send(msg: OfpMessage): number {
    if (this.closed) throw new Error(`switch ${this.describe()} is disconnected`);
    if (msg.xid === 0) msg = { ...msg, xid: this.allocXid() };
    if (!REPLY_TYPES[msg.type] && msg.type !== 'hello' && msg.type !== 'echo_reply' && msg.type !== 'error') {
      this.unconfirmed.set(msg.xid, msg.type);
      // Bounded: callers that never barrier (plain packet-outs) must not grow this map forever.
      if (this.unconfirmed.size > 4096) this.unconfirmed.delete(this.unconfirmed.keys().next().value!);
    }
    const bytes = encodeMessage(msg);
    this.stats.messagesOut++;
    if (msg.type === 'packet_out' && this.listenerCount('packet_out') > 0) this.emit('packet_out', msg);
    // Everything sent in one tick (e.g. the Flow-Mods and Packet-Outs for a burst of Packet-Ins)
    // leaves in one writev: one syscall instead of one per message, which dominated the profile.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => { this.corked = false; this.socket.uncork(); });
    }
    // Back-pressure: stop reading (and so stop generating more work) until the switch drains our output.
    if (!this.socket.write(bytes) && !this.socket.isPaused()) { this.stats.backpressurePauses++; this.socket.pause(); }
    return msg.xid;
  }

  /** Sends a request and resolves with its reply (all parts of a multipart reply). */
  request(msg: OfpMessage, timeoutMs = this.opts.requestTimeoutMs): Promise<OfpMessage[]> {
    if (!REPLY_TYPES[msg.type]) return Promise.reject(new Error(`${msg.type} has no reply`));
    if (this.closed) return Promise.reject(new Error(`switch ${this.describe()} is disconnected`));
    const xid = msg.xid === 0 ? this.allocXid() : msg.xid;
    const req = { ...msg, xid } as OfpMessage;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(xid);
        reject(new Error(`${msg.type} xid ${xid} to ${this.describe()}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const budget = msg.type === 'multipart_request' ? new MultipartBudget(this.opts.multipart) : undefined;
      this.pending.set(xid, { resolve, reject, timer, parts: [], request: req, budget });
      this.send(req);
    });
  }

  /** True if the switch answers an echo request within `timeoutMs` (it is alive and reading). */
  async probe(timeoutMs: number): Promise<boolean> {
    try {
      await this.request({ type: 'echo_request', xid: 0, data: Buffer.alloc(0) }, timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Barrier: resolves when the switch has processed everything sent before it. Rejects with the
   * first OpenFlowError any of those messages caused, so the caller of a batch learns of it.
   */
  async barrier(): Promise<void> {
    // Errors arrive before the barrier reply (the switch processes in order), while these xids
    // are still in `unconfirmed`, so onError can attribute them.
    const covered = new Set(this.unconfirmed.keys());
    try {
      await this.request({ type: 'barrier_request', xid: 0 });
    } finally {
      for (const x of covered) this.unconfirmed.delete(x);
      const errors = [...covered].map((x) => this.errorsSinceBarrier.get(x)).filter((e): e is OpenFlowError => !!e);
      for (const x of covered) this.errorsSinceBarrier.delete(x);
      if (errors.length > 0) throw errors[0];
    }
  }

  /** The switch's flows in every table whose cookie matches `cookie` under `cookieMask` (0/0: all of them). */
  async flowStats(cookie = 0n, cookieMask = 0n): Promise<FlowStats[]> {
    const replies = await this.request({
      type: 'multipart_request', xid: 0, flags: 0,
      body: { kind: 'flow', tableId: OFPTT.ALL, outPort: OFPP.ANY, outGroup: OFPG.ANY, cookie, cookieMask, match: {} },
    } as OfpMessage);
    const flows: FlowStats[] = [];
    for (const r of replies) if (r.type === 'multipart_reply' && r.body.kind === 'flow') flows.push(...r.body.flows);
    return flows;
  }

  /** Sends a batch followed by a barrier; rejects with the first error the batch caused. */
  async transact(msgs: OfpMessage[]): Promise<void> {
    for (const m of msgs) this.send(m);
    await this.barrier();
  }

  close(reason = 'closed by controller'): void {
    if (this.corked) { this.corked = false; this.socket.uncork(); }
    // Let what is queued (e.g. a HELLO_FAILED error) reach the switch before the FIN.
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.shutdown(reason, false);
  }

  describe(): string { return this.features ? dpidString(this.features.datapathId) : this.remote; }

  private peerVersion = 0;

  private onData(d: Buffer): void {
    if (this.closed) return;
    this.lastRx = Date.now();
    this.stats.bytesIn += d.length;
    this.rx = this.rx.length ? Buffer.concat([this.rx, d]) : d;
    const split = splitMessages(this.rx);
    if (!split.ok) {
      // A header with length < 8 desynchronises the stream for good: nothing after it can be framed.
      this.noteMalformed(split.error);
      // Before the handshake the listener logs why the handshake failed (throttled across connections).
      if (this.features) this.log.error('unframeable data from switch, closing', { dpid: this.describe(), error: split.error.message });
      this.close(`framing error: ${split.error.message}`);
      return;
    }
    this.rx = split.value.rest;
    for (const raw of split.value.messages) {
      if (this.closed) return;
      this.onMessage(raw);
    }
  }

  private onMessage(raw: Buffer): void {
    this.stats.messagesIn++;
    const version = raw[0];
    const xid = raw.readUInt32BE(4);
    const res = decodeMessage(raw);
    if (!this.helloSeen) {
      if (res.ok && res.value.type === 'hello') {
        this.helloSeen = true;
        this.peerVersion = version;
      } else {
        this.refuseBeforeHello(raw, res.ok ? `message type ${raw[1]} before HELLO` : res.error.message);
        return;
      }
    }
    if (!res.ok) {
      // One bad message must not take the channel down: report it to the switch and the log, go on.
      this.noteMalformed(res.error);
      this.warnings.warn('malformed OpenFlow message from switch', { dpid: this.describe(), xid, error: res.error.message, bytes: raw.subarray(0, 64).toString('hex') });
      // Never answer an error with an error: two peers could bounce them forever.
      if (raw[1] !== OFPT.ERROR) {
        const k = res.error.kind;
        const code = k === 'bad_version' ? OFPBRC.BAD_VERSION : k === 'bad_length' || k === 'truncated' ? OFPBRC.BAD_LEN : OFPBRC.BAD_TYPE;
        this.send({ type: 'error', xid, errType: OFPET.BAD_REQUEST, code, data: raw.subarray(0, 64) });
      }
      return;
    }
    const msg = res.value;
    switch (msg.type) {
      case 'hello': this.emit('hello', msg); return;
      case 'echo_request': this.send({ type: 'echo_reply', xid: msg.xid, data: msg.data }); return;
      case 'error': this.onError(msg); return;
      case 'unknown':
        this.send({ type: 'error', xid: msg.xid, errType: OFPET.BAD_REQUEST, code: OFPBRC.BAD_TYPE, data: raw.subarray(0, 64) });
        return;
      default: break;
    }
    const more = msg.type === 'multipart_reply' && (msg.flags & OFPMPF_REPLY_MORE) !== 0;
    const p = this.pending.get(msg.xid);
    if (p && REPLY_TYPES[p.request.type] === msg.type) {
      const over = p.budget?.add(raw.length);
      if (over) { this.overflow(p, msg.xid, over, more); return; }
      p.parts.push(msg);
      if (more) return;
      clearTimeout(p.timer);
      this.pending.delete(msg.xid);
      p.resolve(p.parts);
      return;
    }
    if (msg.type === 'multipart_reply' && this.discarding.has(msg.xid)) {
      if (!more) this.discarding.delete(msg.xid);
      return;
    }
    this.emit('message', msg);
  }

  /** A reply broke the multipart caps: fail its request and drop the parts still to come. */
  private overflow(p: Pending, xid: number, why: string, more: boolean): void {
    clearTimeout(p.timer);
    this.pending.delete(xid);
    this.stats.multipartOverflows++;
    if (more) {
      if (this.discarding.size >= MAX_DISCARDING) this.discarding.delete(this.discarding.values().next().value!);
      this.discarding.add(xid);
    }
    const b = p.budget!;
    this.warnings.warn('multipart reply over the limit, discarded', { dpid: this.describe(), xid, why, parts: b.parts, bytes: b.bytes });
    p.reject(new MultipartOverflowError(`multipart reply to xid ${xid} from ${this.describe()} has ${why}; discarded`));
  }

  /** Counted for the malformed metric (the listener re-emits it, handshake or not). */
  private noteMalformed(error: DecodeError): void {
    this.stats.malformed++;
    this.emit('malformed', error);
  }

  /**
   * OpenFlow starts with HELLO; anything else first (garbage, another protocol, a wrong version's
   * request) ends the channel with one HELLO_FAILED instead of one warning per message.
   */
  private refuseBeforeHello(raw: Buffer, why: string): void {
    this.noteMalformed({ kind: 'bad_type', message: why });
    this.send({ type: 'error', xid: raw.readUInt32BE(4), errType: OFPET.HELLO_FAILED, code: OFPHFC.INCOMPATIBLE, data: Buffer.from('OpenFlow 1.3 HELLO expected') });
    this.close(`no HELLO: ${why} (version 0x${raw[0].toString(16).padStart(2, '0')})`);
  }

  private onError(msg: Extract<OfpMessage, { type: 'error' }>): void {
    const p = this.pending.get(msg.xid);
    const err = new OpenFlowError(msg.errType, msg.code, msg.data, p?.request.type ?? this.unconfirmed.get(msg.xid));
    if (p) {
      clearTimeout(p.timer);
      this.pending.delete(msg.xid);
      p.reject(err);
      return;
    }
    if (this.unconfirmed.has(msg.xid)) {
      this.errorsSinceBarrier.set(msg.xid, err);
      // Bound: errors for messages nobody ever barriers on must not accumulate forever.
      if (this.errorsSinceBarrier.size > 1024) this.errorsSinceBarrier.delete(this.errorsSinceBarrier.keys().next().value!);
    }
    // A covered request's caller gets the error from barrier(); only orphan errors are warnings.
    const fields = { dpid: this.describe(), xid: msg.xid, type: errorTypeName(msg.errType), code: errorCodeName(msg.errType, msg.code) };
    if (this.unconfirmed.has(msg.xid)) this.log.debug('OpenFlow error from switch', fields);
    else this.warnings.warn('OpenFlow error from switch', fields);
    this.emit('ofp_error', err);
  }

  private startKeepalive(): void {
    this.echoTimer = setInterval(() => {
      const idle = Date.now() - this.lastRx;
      if (idle >= this.opts.deadTimeoutMs) {
        this.log.warn('switch silent, declaring it dead', { dpid: this.describe(), idleMs: idle });
        this.close(`no message for ${idle} ms`);
        return;
      }
      if (idle >= this.opts.echoIntervalMs) this.request({ type: 'echo_request', xid: 0, data: Buffer.alloc(0) }).catch(() => { /* dead-timeout handles it */ });
    }, Math.min(this.opts.echoIntervalMs, 1000));
    this.echoTimer.unref();
  }

  private shutdown(reason: string, destroy = true): void {
    if (this.closed) return;
    this.closed = true;
    this.closedBySwitch = destroy;
    if (this.echoTimer) clearInterval(this.echoTimer);
    for (const [, p] of this.pending) { clearTimeout(p.timer); p.reject(new Error(`switch ${this.describe()} disconnected: ${reason}`)); }
    this.pending.clear();
    this.unconfirmed.clear();
    this.errorsSinceBarrier.clear();
    this.discarding.clear();
    if (destroy) this.socket.destroy();
    this.emit('close', reason);
  }
}

export function dpidString(dpid: bigint): string { return dpid.toString(16).padStart(16, '0'); }
