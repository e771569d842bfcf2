// The handoff engine without a switch or root: a scripted switch connection that records what
// the engine sends (Flow-Mods, Packet-Outs) and can refuse a batch, and hosts that speak TCP
// segments into the engine as Packet-Ins. For unit tests of every engine path.
import { OFPP, OFP_NO_BUFFER, OFPET, OFPBAC, decodeCtFlush, decodeMessage, encodeMessage, NXT_CT_FLUSH, type CtFlush, type FlowStats, type OfpMessage } from '../../controller/openflow/index.ts';
import { parseFrame, type TcpFlagsSpec, type TcpOption } from '../../controller/packet/index.ts';
import { buildTcpFrameAny } from '../../controller/handoff/segments.ts';
import { endpointKey } from '../../controller/handoff/connection.ts';
import { OpenFlowError, type SwitchConnection } from '../../controller/datapath/switch-connection.ts';
import { HandoffEngine, type EngineOptions } from '../../controller/handoff/handoff-engine.ts';
import { LearningSwitch } from '../../controller/apps/learning-switch.ts';
import { parseServices } from '../../controller/handoff/service-config.ts';
import { closingIdleTimeout, interceptCookie, TABLE } from '../../controller/handoff/flow-plan.ts';
import { connIdOf, connRoleOf, CONN_ROLE } from '../../controller/cookies.ts';
import assert from 'node:assert/strict';
import { silentLogger } from '../../controller/log.ts';

export type PacketOut = Extract<OfpMessage, { type: 'packet_out' }>;
export type FlowMod = Extract<OfpMessage, { type: 'flow_mod' }>;

export class ScriptedSwitch {
  readonly features = { datapathId: 0xa1n, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0 };
  connected = true;
  sent: OfpMessage[] = [];
  /** Return an error to make transact() reject this batch (nothing of it is recorded). */
  refuse?: (msgs: OfpMessage[]) => Error | undefined;
  /** What flowStats() answers (the scripted switch keeps no table of its own). */
  table: FlowStats[] = [];
  /**
   * A stock switch: the inc/dec_tcp_seq probe is refused with BAD_ACTION; without `fieldShift`, the
   * probe of the delta from a field (ovs-patch 0008) is.
   */
  constructor(readonly patched = true, readonly fieldShift = true, readonly conntrack = true) {}
  private refusesProbe(msgs: OfpMessage[]): boolean {
    return msgs.some((m) => {
      if (m.type !== 'flow_mod' || m.tableId !== 253 || m.command !== 'add') return false;
      const actions = m.instructions.flatMap((i) => (i.type === 'apply_actions' ? i.actions : []));
      if (actions.some((a) => a.type === 'nx_ct')) return !this.conntrack;
      return !this.patched || (!this.fieldShift && actions.some((a) => a.type === 'nx_inc_tcp_seq_reg'));
    });
  }

  async flowStats(cookie = 0n, cookieMask = 0n): Promise<FlowStats[]> { return this.table.filter((f) => (f.cookie & cookieMask) === (cookie & cookieMask)); }

  describe(): string { return '00000000000000a1'; }
  /** Messages sent one by one since the last barrier: what a barrier confirms (or `refuse` refuses). */
  private unconfirmed: OfpMessage[] = [];
  send(m: OfpMessage): number { if (!this.connected) throw new Error('disconnected'); this.sent.push(m); this.unconfirmed.push(m); return 1; }
  /** While set, barrier() replies wait for it (a switch slow to confirm). */
  barrierGate?: Promise<void>;
  async barrier(): Promise<void> {
    if (!this.connected) throw new Error('disconnected');
    const msgs = this.unconfirmed;
    if (this.barrierGate) await this.barrierGate;
    this.unconfirmed = [];
    if (this.refusesProbe(msgs)) throw new OpenFlowError(OFPET.BAD_ACTION, OFPBAC.BAD_EXP_TYPE, Buffer.alloc(0));
    const e = this.refuse?.(msgs.filter((m) => m.type === 'flow_mod'));
    if (e) throw e;
  }
  async transact(msgs: OfpMessage[]): Promise<void> {
    if (!this.connected) throw new Error('disconnected');
    if (this.refusesProbe(msgs)) throw new OpenFlowError(OFPET.BAD_ACTION, OFPBAC.BAD_EXP_TYPE, Buffer.alloc(0));
    const e = this.refuse?.(msgs);
    if (e) throw e;
    this.sent.push(...msgs);
    for (const w of this.transactWaiters.splice(0)) w(msgs);
  }

  private transactWaiters: Array<(msgs: OfpMessage[]) => void> = [];
  /** The next batch the engine sends with transact() (one that awaits the switch's confirmation). */
  nextTransact(): Promise<OfpMessage[]> { return new Promise((r) => this.transactWaiters.push(r)); }

  /** What was sent since the last take(). */
  take(): OfpMessage[] { const s = this.sent; this.sent = []; return s; }
  packetOuts(): PacketOut[] { return this.sent.filter((m): m is PacketOut => m.type === 'packet_out'); }
  flowMods(): FlowMod[] { return this.sent.filter((m): m is FlowMod => m.type === 'flow_mod'); }
  asChannel(): SwitchConnection { return this as unknown as SwitchConnection; }

  /**
   * Checks what a closed connection left on the switch: its two flows replaced by closing ones
   * (role `closing`, the grace's idle timeout, no removal report), and no delete of them (only of a
   * move's freeze flows). `msgs`: what was sent since the connection started closing.
   */
  static assertClosingFlows(msgs: OfpMessage[], id: number, closeGraceMs: number): void {
    const mine = msgs.filter((m): m is FlowMod => m.type === 'flow_mod' && connIdOf(m.cookie) === id);
    const adds = mine.filter((m) => m.command === 'add');
    assert.equal(adds.length, 2, `two closing flows: ${mine.map((m) => m.command).join(', ')}`);
    for (const m of adds) {
      assert.equal(connRoleOf(m.cookie), CONN_ROLE.closing);
      assert.equal(m.idleTimeout, closingIdleTimeout(closeGraceMs));
      assert.equal(m.hardTimeout ?? 0, 0);
      assert.equal((m.flags ?? 0) & 1, 0, 'no FLOW_REMOVED from closing flows');
    }
    const own = (m: FlowMod) => connRoleOf(m.cookie) === CONN_ROLE.main || connRoleOf(m.cookie) === CONN_ROLE.closing;
    assert.deepEqual(mine.filter((m) => m.command !== 'add' && own(m)).map((m) => [m.command, connRoleOf(m.cookie)]), [], 'no delete of them: the switch removes closing flows by their idle timeout');
  }
}

export interface Node { name: string; mac: string; ip: string; port: number; ofport: number }
export const CLIENT: Node = { name: 'client', mac: '02:00:00:00:00:02', ip: '10.0.0.2', port: 40000, ofport: 2 };
export const S1: Node = { name: 'server1', mac: '02:00:00:00:00:01', ip: '10.0.0.1', port: 5001, ofport: 1 };
export const S2: Node = { name: 'server2', mac: '02:00:00:00:00:03', ip: '10.0.0.3', port: 5001, ofport: 3 };
export const S3: Node = { name: 'server3', mac: '02:00:00:00:00:04', ip: '10.0.0.4', port: 5001, ofport: 4 };

export interface SegOpts { flags: TcpFlagsSpec; seq: number; ack?: number; payload?: string | Buffer; options?: TcpOption[]; window?: number }

/** A TCP frame between two nodes, of the family of their addresses. */
export function frame(from: Node, to: Node, o: SegOpts, dst: { ip: string; port: number; mac: string } = to): Buffer {
  return buildTcpFrameAny({
    ethSrc: from.mac, ethDst: dst.mac, ipSrc: from.ip, ipDst: dst.ip, srcPort: from.port, dstPort: dst.port,
    seq: o.seq >>> 0, ack: (o.ack ?? 0) >>> 0, flags: o.flags, window: o.window ?? 64240, options: o.options,
    payload: typeof o.payload === 'string' ? Buffer.from(o.payload) : o.payload,
  });
}

export const SYN_OPTIONS: TcpOption[] = [{ kind: 'mss', value: 1460 }, { kind: 'sack_permitted' }, { kind: 'wscale', shift: 7 }];

export class EngineBed {
  readonly sw: ScriptedSwitch;
  readonly engine: HandoffEngine;
  readonly events: { name: string; args: unknown[] }[] = [];
  /** The options the engine started with. */
  opts!: EngineOptions;
  /** What the engine sent when the switch connected (the services' flows, reconciliation). */
  initial: OfpMessage[] = [];

  private constructor(sw: ScriptedSwitch, engine: HandoffEngine, readonly learning: LearningSwitch) {
    this.sw = sw;
    this.engine = engine;
    const emit = engine.emit.bind(engine);
    engine.emit = (name: string | symbol, ...args: unknown[]) => { this.events.push({ name: String(name), args }); return emit(name, ...args); };
  }

  static async create(o: { service?: Record<string, unknown>; opts?: Partial<EngineOptions>; patched?: boolean; fieldShift?: boolean; conntrack?: boolean; flows?: FlowStats[] } = {}): Promise<EngineBed> {
    const [service] = parseServices([{
      name: 'echo', address: S1.ip, port: S1.port, primary: 'server1', migrateTo: 'server2', verdictTimeoutMs: 60000,
      backends: [S1, S2, S3].map((n) => ({ name: n.name, address: n.ip, port: n.port, mac: n.mac, switchPort: n.ofport })),
      // The engine tests of the flows layout pin it; those of the default (conntrack) say so.
      forwardVia: 'flows', migrateVia: 'flows',
      ...o.service,
    }]);
    const opts: EngineOptions = { maxConnections: 100, handshakeTimeoutMs: 60000, replayTimeoutMs: 40, closeGraceMs: 20, revalidateMs: 0, switchGraceMs: 60000, releaseBeforeBarrier: true, ...o.opts };
    const sw = new ScriptedSwitch(o.patched ?? true, o.fieldShift ?? true, o.conntrack ?? true);
    const learning = new LearningSwitch({ idleTimeout: 60, hardTimeout: 0, priority: 10 }, silentLogger);
    const bed = new EngineBed(sw, new HandoffEngine([service], opts, learning, silentLogger), learning);
    bed.opts = opts;
    await bed.engine.switchReady(sw.asChannel(), o.flows ?? []);
    bed.initial = sw.take();
    return bed;
  }

  /** Feeds one frame as a Packet-In from `inPort`, sent by the flow with `cookie` (default: service 0's intercept flow). */
  packetIn(data: Buffer, inPort: number, cookie = interceptCookie(0)): boolean {
    const parsed = parseFrame(data);
    if (!parsed.ok) throw new Error(parsed.error.message);
    return this.engine.packetIn(this.sw.asChannel(), { type: 'packet_in', xid: 0, bufferId: OFP_NO_BUFFER, totalLen: data.length, reason: 0, tableId: 0, cookie, match: { inPort }, data }, parsed.value);
  }

  from(n: Node, to: Node, o: SegOpts, cookie?: bigint): boolean { return this.packetIn(frame(n, to, o), n.ofport, cookie); }

  /** SYN, SYN-ACK from server 1, ACK: an established, intercepted connection. Returns its id. */
  handshake(client = CLIENT, isn = 1000, s1Isn = 5000, s1 = S1): number {
    this.from(client, s1, { flags: { syn: true }, seq: isn, options: SYN_OPTIONS });
    this.from(s1, client, { flags: { syn: true, ack: true }, seq: s1Isn, ack: isn + 1, options: SYN_OPTIONS });
    this.from(client, s1, { flags: { ack: true }, seq: isn + 1, ack: s1Isn + 1 });
    const c = this.engine.connections().find((x) => x.client === endpointKey(client.ip, client.port));
    if (!c) throw new Error('no connection after the handshake');
    return c.id;
  }

  conn(id: number) { return this.engine.connections().find((c) => c.id === id); }
  count(event: string): number { return this.events.filter((e) => e.name === event).length; }
  waitEvent(name: string, timeoutMs = 3000): Promise<unknown[]> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no '${name}' event within ${timeoutMs} ms`)), timeoutMs);
      this.engine.once(name, (...args: unknown[]) => { clearTimeout(t); resolve(args); });
    });
  }
}

/** Flow-Mods as a switch would report them in flow stats (through the codec, both ways). */
/** The NXT_CT_FLUSH messages among `msgs`, decoded. */
export function ctFlushes(msgs: OfpMessage[]): CtFlush[] {
  return msgs.flatMap((m) => {
    if (m.type !== 'experimenter' || m.expType !== NXT_CT_FLUSH) return [];
    const f = decodeCtFlush(m.data);
    assert.ok(f.ok, 'an NXT_CT_FLUSH the codec reads back');
    return [f.value];
  });
}

export function asFlowStats(msgs: OfpMessage[]): FlowStats[] {
  return msgs.map((m) => {
    const r = decodeMessage(encodeMessage({ ...m, xid: 1 }));
    if (!r.ok || r.value.type !== 'flow_mod') throw new Error('not a flow_mod');
    const f = r.value;
    return {
      tableId: f.tableId, durationSec: 1, durationNsec: 0, priority: f.priority, idleTimeout: f.idleTimeout, hardTimeout: f.hardTimeout,
      flags: f.flags, cookie: f.cookie, packetCount: 0n, byteCount: 0n, match: f.match, instructions: f.instructions,
    };
  });
}

/** Packet-Outs as (port, parsed TCP) pairs, for asserting where frames went. */
/** In outputs(): a Packet-Out that re-enters the pipeline at the connection table (resubmit(,1)). */
export const CONN_TABLE = -1;

export function outputs(msgs: OfpMessage[]): { ports: number[]; inPort: number; tcp?: { src: string; dst: string; seq: number; ack: number; flags: string; payload: string } }[] {
  return msgs.filter((m): m is PacketOut => m.type === 'packet_out').map((p) => {
    const f = parseFrame(p.data);
    const t = f.ok ? f.value.tcp : undefined;
    const ip = f.ok ? f.value.ipv4 ?? f.value.ipv6 : undefined;
    const fl = t ? Object.entries(t.flagSet).filter(([, v]) => v).map(([k]) => k).sort().join(',') : '';
    return {
      ports: p.actions.flatMap((a) => (a.type === 'output' ? [a.port] : a.type === 'nx_resubmit' && a.tableId === TABLE.connection ? [CONN_TABLE] : [])), inPort: p.inPort,
      tcp: t && ip ? { src: `${ip.src}:${t.srcPort}`, dst: `${ip.dst}:${t.dstPort}`, seq: t.seq, ack: t.ack, flags: fl, payload: f.ok ? f.value.payload.toString() : '' } : undefined,
    };
  });
}

export { OFPP };
