// The handoff engine (DESIGN.md §2): intercepts service connections, holds the client's first
// data segment until a verdict, and either forwards the connection to server 1 or replays its
// handshake to another backend and splices the two halves with NAT + seq/ack shifting flows.
// Later moves (mid-stream, back, chains) reuse the same replay at the next client data segment.
import { EventEmitter } from 'node:events';
import { OFPP, OFP_NO_BUFFER, OFPET, type FlowStats, type OfpMessage } from '../openflow/index.ts';
import {
  buildArpFrame, buildTcpFrame, rewriteEthDst, rewriteEthSrc, rewriteIpv4Dst, rewriteIpv4Src, rewriteL4DstPort, rewriteL4SrcPort,
  parseFrame, shiftTcpAck, shiftTcpSeq, seqAdd, seqSub, type ParsedFrame,
} from '../packet/index.ts';
import { dpidString, OpenFlowError, type SwitchConnection } from '../datapath/switch-connection.ts';
import { connIdOf, connRoleOf, CONN_ROLE, cookieApp, APP_ID } from '../cookies.ts';
import type { App, FlowRemoved, PacketIn } from '../apps/app.ts';
import type { LearningSwitch } from '../apps/learning-switch.ts';
import type { Logger } from '../log.ts';
import { ConnectionTable, clientKey, tupleKey, type Connection, type Phase } from './connection.ts';
import {
  connectionFlows, deleteAllInterceptFlows, deleteConnectionFlows, deleteFreezeFlow, deleteInterceptFlows, flowsByConnection, freezeFlow,
  interceptFlows, needsRelay, probeFlows, type AdoptionContext, type Attached, type ConnectionFlowSpec, type ConnectionMeta, type SwitchMode,
} from './flow-plan.ts';
import { planReconciliation } from './reconcile.ts';
import type { SynRecord } from './connection-record.ts';
import { applySynPolicy, compareSynAcks, summarise } from './option-policy.ts';
import { replayAck, replaySyn, resetFor } from './segments.ts';
import { initialTrack, observe, bothFinSent, type Direction } from './tcp-state.ts';
import { parseBackend, type BackendConfig, type ServiceConfig, type Verdict } from './service-config.ts';
import { applyServiceConfig } from './service-reload.ts';

export interface EngineOptions {
  maxConnections: number; handshakeTimeoutMs: number; replayTimeoutMs: number; closeGraceMs: number; revalidateMs: number;
  /** How long a disconnected switch's connections are remembered (to reinstall their flows should it come back empty). */
  switchGraceMs: number;
  /** The built-in matcher runs in the controller: services with mirrorAll copy segments to it. */
  inspectInController?: boolean;
}

export interface VerdictRequest { verdict: Verdict; source: string; target?: string; sid?: number; seq?: number }

/** The controller's own MAC for ARP probes (locally administered). */
const CONTROLLER_MAC = '02:00:00:00:00:fe';
const MAX_QUEUE = 32;
const REPLAY_TRIES = 3;
const FREEZE_TIMEOUT_MS = 30000;
/** Intercepted packets of a connection that should have flows, before its flows are reinstalled. */
const STRAYS_BEFORE_REINSTALL = 16;
/** Client tuples of recently finished connections: their late packets must not be adopted as new connections. */
const RECENTLY_CLOSED_MS = 60000;
const RECENTLY_CLOSED_MAX = 65536;

export class EngineError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}

/**
 * Events (all carry plain snapshots from `describe()`):
 * 'conn_opened', 'conn_state' (c, from, to), 'held', 'verdict', 'forwarded', 'migrated',
 * 'migration_failed', 'conn_closed', 'switch_mode' (dpid, mode), 'held_frame' (c, frame) and
 * 'segment_frame' (c, frame) for inspectors, 'move_pending' (c, {to, reason}) once a mid-stream
 * move waits for the client's next data segment.
 */
export class HandoffEngine extends EventEmitter implements App {
  readonly name = 'handoff';
  readonly cookieApps = [APP_ID.connection, APP_ID.intercept] as const;
  readonly table: ConnectionTable;
  private readonly services: ServiceConfig[];
  private readonly byServiceAddr = new Map<string, ServiceConfig>();
  private readonly modes = new Map<string, SwitchMode>();
  private readonly switches = new Map<string, SwitchConnection>();
  private readonly seenAlerts = new Set<string>();
  /** dpid → timer that forgets a disconnected switch's connections when its grace period ends. */
  private readonly graceTimers = new Map<string, NodeJS.Timeout>();
  /** dpid → ids of connections that ended while their switch was away (their flows go on reconnect). */
  private readonly endedAway = new Map<string, Set<number>>();
  private readonly recentlyClosed = new Map<string, number>();
  readonly stats = {
    intercepted: 0, forwarded: 0, migrated: 0, migrationFailures: 0, closed: 0, refusedFull: 0, droppedStray: 0, relayed: 0, alertsUnknownConn: 0, alertsDuplicate: 0,
    adopted: 0, reinstalled: 0, degraded: 0,
  };
  private fullWarned = 0;

  constructor(services: ServiceConfig[], private readonly opts: EngineOptions, private readonly learning: LearningSwitch, private readonly log: Logger) {
    super();
    this.services = services.map((s) => structuredClone(s));
    for (const s of this.services) this.byServiceAddr.set(`${s.address}:${s.port}`, s);
    this.table = new ConnectionTable(opts.maxConnections);
  }

  // ---------------------------------------------------------------- switches

  /**
   * A switch is (again) under this controller's control. `flows` is its flow table as read at
   * connect time (only the connection app's flows matter here): connections are reconciled both
   * ways (planReconciliation), then the service intercept flows are installed afresh.
   */
  async switchReady(sw: SwitchConnection, flows: FlowStats[] = []): Promise<void> {
    const dpid = dpidString(sw.features!.datapathId);
    this.switches.set(dpid, sw);
    const grace = this.graceTimers.get(dpid);
    if (grace) { clearTimeout(grace); this.graceTimers.delete(dpid); }
    const mode = await this.probe(sw);
    this.modes.set(dpid, mode);
    this.log.info(mode === 'fastpath' ? 'switch has inc/dec_tcp_seq/ack: migrated connections stay in the datapath' : 'switch lacks inc/dec_tcp_seq/ack: migrated connections are relayed through the controller (slow)', { dpid, mode });
    this.emit('switch_mode', dpid, mode);
    await this.reconcile(sw, dpid, mode, flows);
  }

  private async reconcile(sw: SwitchConnection, dpid: string, mode: SwitchMode, flows: FlowStats[]): Promise<void> {
    const known = new Map<number, ConnectionFlowSpec | undefined>();
    for (const c of this.table.all()) {
      if (c.dpid !== dpid) continue;
      c.sw = sw;
      c.mode = mode;
      known.set(c.id, hasFlows(c.phase) ? this.flowSpec(c) : undefined);
    }
    const ended = this.endedAway.get(dpid) ?? new Set<number>();
    this.endedAway.delete(dpid);
    const plan = planReconciliation(known, ended, flowsByConnection(flows), this.adoptionContext(mode));
    const msgs: OfpMessage[] = [];
    for (const id of plan.reinstall) msgs.push(deleteConnectionFlows(id), ...connectionFlows(this.flowSpec(this.table.get(id)!)));
    const reasons: Record<string, number> = {};
    for (const d of plan.drop) {
      msgs.push(deleteConnectionFlows(d.id));
      reasons[d.why] = (reasons[d.why] ?? 0) + 1;
      this.log.warn('deleting flows the controller cannot adopt', { dpid, conn: d.id, why: d.why });
    }
    let adopted = 0;
    for (const a of plan.adopt) {
      if (this.table.get(a.id) || this.table.byClientTuple(tupleKey(a.spec.client.ip, a.spec.client.port, a.spec.service.ip, a.spec.service.port))) {
        msgs.push(deleteConnectionFlows(a.id));
        reasons['another connection has the same id or client'] = (reasons['another connection has the same id or client'] ?? 0) + 1;
        continue;
      }
      const c = this.adopt(sw, dpid, a.spec);
      if (!a.exact) msgs.push(deleteConnectionFlows(c.id), ...connectionFlows(this.flowSpec(c)));
      adopted++;
    }
    this.stats.adopted += adopted;
    this.stats.reinstalled += plan.reinstall.length;
    await sw.transact([...msgs, ...this.allIntercepts()]);
    const inexact = plan.adopt.filter((a) => !a.exact).length;
    this.log.info('switch reconciled', {
      dpid, adopted, kept: plan.keep.length, reinstalled: plan.reinstall.length + inexact, dropped: msgs.length ? Object.values(reasons).reduce((a, b) => a + b, 0) : 0,
      ...(Object.keys(reasons).length ? { why: reasons } : {}),
    });
    this.emit('reconciled', dpid, { adopted, kept: plan.keep.length, reinstalled: plan.reinstall.length + inexact, dropped: Object.values(reasons).reduce((a, b) => a + b, 0) });
  }

  private adoptionContext(mode: SwitchMode): AdoptionContext {
    return {
      mode,
      service: (name) => {
        const s = this.service(name);
        return s && { mirrorPort: s.mirrorAll ? s.mirrorPort : undefined, inspect: s.mirrorAll && !!this.opts.inspectInController };
      },
    };
  }

  /** A connection rebuilt from its flows: forwarded (maybe migrated) as the flows say. */
  private adopt(sw: SwitchConnection, dpid: string, spec: ConnectionFlowSpec & { meta: ConnectionMeta }): Connection {
    const service = this.service(spec.meta.serviceName)!;
    const syn = spec.meta.syn ? synFrameOf(spec.meta.syn, spec.client, spec.service) : undefined;
    const c: Connection = {
      id: spec.id, service, sw, dpid, mode: spec.mode,
      client: spec.client, serviceL2: spec.service, backend: spec.backend, backendName: spec.meta.backendName,
      phase: 'forwarded', track: { client: 'ESTABLISHED', server: 'ESTABLISHED' },
      syn, synParsed: syn ? reparse(syn) : undefined, isnClient: spec.meta.syn?.isn ?? -1, acceptedSynAck: spec.meta.synAck,
      ackDelta: spec.ackDelta, queue: [], retired: [], createdAt: spec.meta.createdAt, migrations: spec.meta.migrations, timers: {}, adopted: true,
    };
    this.table.add(c);
    this.learning.learnHost(c.client.ip, { mac: c.client.mac, dpid, port: c.client.ofport, seen: Date.now() });
    this.emit('conn_opened', this.describe(c));
    return c;
  }

  /**
   * The switch's channel closed. Its flows keep carrying traffic (fail_mode=secure), so its
   * connections are kept for the grace period: a switch that comes back reconciles with them.
   * Steps that were half done (a held segment, a replay, a freeze) are undone; the client
   * retransmits what was held.
   */
  switchGone(sw: SwitchConnection, reason: string): void {
    let dpid: string | undefined;
    for (const [d, s] of this.switches) if (s === sw) { this.switches.delete(d); dpid = d; }
    const mine = [...this.table.all()].filter((c) => c.sw === sw);
    for (const c of mine) this.detach(c);
    if (!dpid || mine.length === 0) return;
    if (this.opts.switchGraceMs === 0) { for (const c of mine) this.finish(c, `switch disconnected: ${reason}`, false); return; }
    this.log.info('switch gone; keeping its connections for the grace period', { dpid, connections: mine.length, graceMs: this.opts.switchGraceMs, reason });
    const d = dpid;
    const t = setTimeout(() => {
      this.graceTimers.delete(d);
      if (this.switches.has(d)) return;
      const left = [...this.table.all()].filter((c) => c.dpid === d);
      this.log.warn('switch did not come back within the grace period; forgetting its connections (their flows stay on the switch and are adopted if it returns)', { dpid: d, connections: left.length });
      for (const c of left) this.finish(c, `switch did not come back: ${reason}`, false);
      this.endedAway.delete(d);
    }, this.opts.switchGraceMs);
    t.unref();
    this.graceTimers.set(d, t);
  }

  private detach(c: Connection): void {
    this.clearTimer(c, 'verdict');
    this.clearTimer(c, 'freeze');
    if (c.replay?.timer) clearTimeout(c.replay.timer);
    const wasMoving = !!c.move;
    c.move = undefined;
    c.replay = undefined;
    c.frozenByFlow = false;
    c.held = undefined;
    c.queue = [];
    if (c.phase === 'held' || c.phase === 'replaying') this.setPhase(c, 'established');
    else if (c.phase === 'freezing') this.setPhase(c, 'forwarded');
    if (wasMoving) this.emit('migration_failed', this.describe(c), { why: 'switch disconnected during the move' });
  }

  /**
   * Another controller took the switches (or this one lost its election): drop every connection
   * from memory without touching a flow; the new master adopts them from the switches.
   */
  forget(why: string): void {
    for (const t of this.graceTimers.values()) clearTimeout(t);
    this.graceTimers.clear();
    this.endedAway.clear();
    this.switches.clear();
    const all = [...this.table.all()];
    for (const c of all) this.finish(c, why, false);
    if (all.length) this.log.info('forgot connections', { connections: all.length, why });
  }

  /** Stops timers (the switch's flows are left alone: a restarted controller adopts them). */
  stop(): void {
    for (const t of this.graceTimers.values()) clearTimeout(t);
    this.graceTimers.clear();
    for (const c of this.table.all()) for (const k of Object.keys(c.timers) as (keyof Connection['timers'])[]) this.clearTimer(c, k);
  }

  modeOf(dpid: string): SwitchMode | undefined { return this.modes.get(dpid); }

  /** Flow-Mod with inc_tcp_seq in a scratch table plus a Barrier: an error means an unpatched switch. */
  private async probe(sw: SwitchConnection): Promise<SwitchMode> {
    const p = probeFlows();
    try {
      await sw.transact([p.add]);
      await sw.transact([p.remove]);
      return 'fastpath';
    } catch (e) {
      if (e instanceof OpenFlowError && e.errType === OFPET.BAD_ACTION) return 'relay';
      throw e;
    }
  }

  private interceptFor(s: ServiceConfig, index: number): OfpMessage[] {
    return interceptFlows({ index, service: { ip: s.address, port: s.port }, backends: s.backends.map((b) => ({ ip: b.address, port: b.port })) });
  }

  // ---------------------------------------------------------------- services and backends (runtime)

  listServices(): ServiceConfig[] { return this.services; }
  service(name: string): ServiceConfig | undefined { return this.services.find((s) => s.name === name); }

  async addBackend(serviceName: string, input: unknown): Promise<BackendConfig> {
    const s = this.service(serviceName);
    if (!s) throw new EngineError(404, `no service named '${serviceName}'`);
    let b: BackendConfig;
    try { b = parseBackend(input, 'backend'); } catch (e) { throw new EngineError(400, (e as Error).message); }
    if (s.backends.some((x) => x.name === b.name)) throw new EngineError(409, `service '${serviceName}' already has a backend named '${b.name}'`);
    s.backends.push(b);
    await this.reinstallIntercept(s);
    this.log.info('backend added', { service: s.name, backend: b.name, address: `${b.address}:${b.port}` });
    return b;
  }

  async removeBackend(serviceName: string, backendName: string): Promise<void> {
    const s = this.service(serviceName);
    if (!s) throw new EngineError(404, `no service named '${serviceName}'`);
    const i = s.backends.findIndex((b) => b.name === backendName);
    if (i < 0) throw new EngineError(404, `service '${serviceName}' has no backend named '${backendName}'`);
    if (s.primary === backendName) throw new EngineError(409, `'${backendName}' is the service's primary backend`);
    const busy = this.busyOn(s, backendName);
    if (busy.length) throw new EngineError(409, `'${backendName}' still serves ${busy.length} connection(s); migrate them first`);
    s.backends.splice(i, 1);
    if (s.migrateTo === backendName) s.migrateTo = s.backends.find((b) => b.name !== s.primary)?.name;
    for (const [sid, name] of Object.entries(s.sidBackends)) if (name === backendName) delete s.sidBackends[sid];
    await this.reinstallIntercept(s);
    this.log.info('backend removed', { service: s.name, backend: backendName });
  }

  /**
   * Reload: the running services become `next` (updated in place: connections keep their service
   * objects). Refused with 409, changing nothing, when a removed backend or service still serves
   * connections. Intercept flows are reinstalled on every switch.
   */
  async reconfigureServices(next: ServiceConfig[]): Promise<string[]> {
    const r = applyServiceConfig(this.services, next, (s, backend) => this.busyOn(s, backend).length);
    if (r.errors.length) throw new EngineError(409, r.errors.join('; '));
    this.byServiceAddr.clear();
    for (const s of this.services) this.byServiceAddr.set(`${s.address}:${s.port}`, s);
    // The services have changed already: a switch that fails here gets its intercept flows at its
    // next reconnect (reconcile installs them afresh), so say so rather than fail the reload.
    const failed: string[] = [];
    await Promise.all([...this.switches].map(([dpid, sw]) => sw.transact(this.allIntercepts()).catch((e) => { failed.push(`${dpid}: ${(e as Error).message}`); })));
    const lines = [
      ...r.added.map((s) => `services.${s.name}: added (${s.address}:${s.port})`),
      ...r.removed.map((s) => `services.${s.name}: removed`),
    ];
    if (r.added.length || r.removed.length || r.changed.length) lines.push(`intercept flows reinstalled on ${this.switches.size - failed.length} switch(es)`);
    for (const f of failed) { lines.push(`intercept flows NOT reinstalled on switch ${f} (they will be at its next reconnect)`); this.log.warn('intercept flows not reinstalled after a reload', { switch: f }); }
    return lines;
  }

  /** Connections on `backend` of service `s`, or moving to it. */
  private busyOn(s: ServiceConfig, backend: string): Connection[] {
    return [...this.table.all()].filter((c) => c.service === s && c.phase !== 'closed' && (c.backendName === backend || c.move?.target.name === backend));
  }

  /** Reload: handoff timeouts; each is read when its timer is next armed. */
  setHandoffTimeouts(t: Partial<Pick<EngineOptions, 'handshakeTimeoutMs' | 'replayTimeoutMs' | 'closeGraceMs' | 'revalidateMs'>>): void {
    Object.assign(this.opts, t);
  }

  private allIntercepts(): OfpMessage[] {
    return [deleteAllInterceptFlows(), ...this.services.flatMap((s, i) => this.interceptFor(s, i))];
  }

  private async reinstallIntercept(s: ServiceConfig): Promise<void> {
    const index = this.services.indexOf(s);
    await Promise.all([...this.switches.values()].map((sw) => sw.transact([deleteInterceptFlows(index), ...this.interceptFor(s, index)])));
  }

  // ---------------------------------------------------------------- packet-in

  packetIn(sw: SwitchConnection, pi: PacketIn, frame: ParsedFrame | undefined): boolean {
    const tcp = frame?.tcp;
    const ip = frame?.ipv4;
    if (!frame || !tcp || !ip || !sw.features) return false;
    const inPort = pi.match.inPort;
    if (inPort === undefined) return false;

    const c2s = this.table.byClientTuple(tupleKey(ip.src, tcp.srcPort, ip.dst, tcp.dstPort));
    if (c2s && c2s.sw === sw) { this.fromClient(c2s, pi, frame, inPort); return true; }
    const s2c = this.table.byBackendTuple(tupleKey(ip.src, tcp.srcPort, ip.dst, tcp.dstPort));
    if (s2c && s2c.sw === sw) { this.fromBackend(s2c, pi, frame, inPort); return true; }

    const service = this.byServiceAddr.get(`${ip.dst}:${tcp.dstPort}`);
    if (service && tcp.flagSet.syn && !tcp.flagSet.ack) return this.newConnection(sw, service, frame, inPort);
    if (!this.switches.has(dpidString(sw.features.datapathId))) return false;
    if (service) return this.degrade(sw, service, frame, 'c2s', inPort);
    const fromPrimary = this.byServiceAddr.get(`${ip.src}:${tcp.srcPort}`);
    if (fromPrimary) return this.degrade(sw, fromPrimary, frame, 's2c', inPort);
    // Anything else (traffic of connections this controller does not track) is plain forwarding.
    return false;
  }

  /**
   * A segment of a service connection nobody tracks: it was in its handshake or held when an
   * earlier controller stopped (established connections are adopted from their flows). Such a
   * connection continues on server 1 without a verdict: it gets forwarding flows at once rather
   * than a life of Packet-Ins. SYN/FIN/RST and late packets of connections just closed are left
   * to plain forwarding.
   */
  private degrade(sw: SwitchConnection, service: ServiceConfig, frame: ParsedFrame, dir: Direction, inPort: number): boolean {
    const tcp = frame.tcp!;
    const ip = frame.ipv4!;
    if (tcp.flagSet.syn || tcp.flagSet.fin || tcp.flagSet.rst || this.table.full) return false;
    const dpid = dpidString(sw.features!.datapathId);
    const client = dir === 'c2s' ? { mac: frame.eth.src, ip: ip.src, port: tcp.srcPort } : { mac: frame.eth.dst, ip: ip.dst, port: tcp.dstPort };
    const server = dir === 'c2s' ? { mac: frame.eth.dst } : { mac: frame.eth.src };
    const key = tupleKey(client.ip, client.port, service.address, service.port);
    const closedAt = this.recentlyClosed.get(key);
    if (closedAt !== undefined && Date.now() - closedAt < RECENTLY_CLOSED_MS) return false;
    const primary = service.backends.find((b) => b.name === service.primary)!;
    const clientPort = dir === 'c2s' ? inPort : this.learning.portForMac(dpid, client.mac);
    const serverPort = dir === 's2c' ? inPort : primary.switchPort ?? this.learning.portForMac(dpid, server.mac);
    if (clientPort === undefined || serverPort === undefined) return false;
    const c: Connection = {
      id: this.table.allocId(), service, sw, dpid, mode: this.modes.get(dpid) ?? 'relay',
      client: { ...client, ofport: clientPort },
      serviceL2: { mac: server.mac, ip: service.address, port: service.port },
      backend: { mac: server.mac, ip: primary.address, port: primary.port, ofport: serverPort },
      backendName: primary.name, phase: 'forwarded', track: { client: 'ESTABLISHED', server: 'ESTABLISHED' },
      isnClient: -1, ackDelta: 0, queue: [], retired: [], createdAt: Date.now(), migrations: 0, timers: {}, adopted: true,
    };
    this.table.add(c);
    this.stats.degraded++;
    this.log.info('connection without a known handshake (from before a restart); forwarding it to the primary', { conn: c.id, client: `${client.ip}:${client.port}`, service: service.name });
    this.emit('conn_opened', this.describe(c));
    c.sw.transact([deleteConnectionFlows(c.id), ...connectionFlows(this.flowSpec(c))]).then(() => {
      this.packetOut(c, frame.raw, OFPP.TABLE, inPort);
      this.stats.forwarded++;
      this.emit('forwarded', this.describe(c));
    }, (e) => { this.log.error('installing forwarding flows failed', { conn: c.id, error: (e as Error).message }); this.finish(c, 'flows could not be installed', false); });
    return true;
  }

  private newConnection(sw: SwitchConnection, service: ServiceConfig, frame: ParsedFrame, inPort: number): boolean {
    if (this.table.full) {
      this.stats.refusedFull++;
      if (Date.now() - this.fullWarned > 10000) { this.fullWarned = Date.now(); this.log.warn('connection table full; new connections are forwarded without interception', { max: this.table.max }); }
      return false;
    }
    const dpid = dpidString(sw.features!.datapathId);
    const mode = this.modes.get(dpid) ?? 'relay';
    const primary = service.backends.find((b) => b.name === service.primary)!;
    const tcp = frame.tcp!;
    const ip = frame.ipv4!;
    const synOut = applySynPolicy(frame.raw, service.options);
    if (!synOut.ok) {
      this.log.warn('cannot apply the option policy to a SYN; forwarding it untouched', { error: synOut.error.message });
    }
    const syn = synOut.ok ? synOut.value : Buffer.from(frame.raw);
    const backendPort = primary.switchPort ?? this.learning.portForMac(dpid, frame.eth.dst) ?? OFPP.FLOOD;
    const id = this.table.allocId();
    const c: Connection = {
      id, service, sw, dpid, mode,
      client: { mac: frame.eth.src, ip: ip.src, port: tcp.srcPort, ofport: inPort },
      serviceL2: { mac: frame.eth.dst, ip: ip.dst, port: tcp.dstPort },
      backend: { mac: frame.eth.dst, ip: primary.address, port: primary.port, ofport: backendPort },
      backendName: primary.name,
      phase: 'handshake', track: observe(initialTrack(), 'c2s', segInfo(frame)),
      syn, synParsed: reparse(syn) ?? frame, isnClient: tcp.seq, ackDelta: 0, queue: [], retired: [],
      createdAt: Date.now(), migrations: 0, timers: {},
    };
    this.table.add(c);
    this.learning.learnHost(ip.src, { mac: frame.eth.src, dpid, port: inPort, seen: Date.now() });
    this.stats.intercepted++;
    this.armIdle(c, this.opts.handshakeTimeoutMs);
    this.emit('conn_opened', this.describe(c));
    this.passOn(c, syn, c.backend.ofport, inPort);
    return true;
  }

  private fromClient(c: Connection, pi: PacketIn, frame: ParsedFrame, inPort: number): void {
    const tcp = frame.tcp!;
    const seg = segInfo(frame);
    const role = this.flowRole(pi, c);
    // Flag copies from installed flows were already forwarded by the switch: only learn from them.
    if (role === 'copy') {
      this.trackSegment(c, 'c2s', frame);
      if (seg.payloadLength > 0) this.emit('segment_frame', this.describe(c), frame);
      return;
    }
    if (tcp.flagSet.syn && !tcp.flagSet.ack) {
      if (tcp.seq === c.isnClient && c.phase === 'handshake' && c.syn) { this.passOn(c, c.syn, c.backend.ofport, inPort); return; }
      if (c.phase === 'closing' || c.phase === 'closed' || tcp.seq !== c.isnClient) {
        // A new connection reusing the 4-tuple: forget the old one.
        this.finish(c, 'replaced by a new SYN on the same address/port pair', true);
        this.packetIn(c.sw, pi, frame);
        return;
      }
      return; // retransmitted SYN after the handshake: stale
    }
    this.trackSegment(c, 'c2s', frame);
    switch (c.phase) {
      case 'handshake':
      case 'established':
        if (seg.payloadLength === 0 || seg.rst) { this.passOn(c, frame.raw, c.backend.ofport, inPort); if (c.phase === 'handshake' && tcp.flagSet.ack) this.setPhase(c, 'established'); return; }
        this.hold(c, frame);
        return;
      case 'held':
      case 'replaying':
        if (c.held && tcp.seq === c.held.seq) {
          // Retransmission of the held segment: keep one copy (the longest), forward none.
          if (seg.payloadLength > c.held.len) c.held = heldOf(frame);
          return;
        }
        if (seg.payloadLength === 0 && !seg.fin && !seg.rst) return; // pure ACKs carry nothing the backend needs yet
        if (c.queue.length < MAX_QUEUE && !c.queue.some((q) => q.equals(frame.raw))) c.queue.push(Buffer.from(frame.raw));
        return;
      case 'freezing':
        if (seg.payloadLength > 0) { this.hold(c, frame); return; }
        this.relayToBackend(c, frame.raw);
        return;
      case 'forwarded':
      case 'closing':
        // A packet that raced the flow change (stale datapath cache) goes back through the table,
        // which now has the connection's flows; relayed connections are rewritten here instead.
        if (role === 'intercept') this.stray(c);
        if (!this.relayed(c)) { this.packetOut(c, frame.raw, OFPP.TABLE, inPort); return; }
        this.relayToBackend(c, frame.raw);
        return;
      case 'closed': return;
    }
  }

  private fromBackend(c: Connection, pi: PacketIn, frame: ParsedFrame, inPort: number): void {
    const tcp = frame.tcp!;
    const ip = frame.ipv4!;
    const role = this.flowRole(pi, c);
    if (role === 'copy') { this.trackSegment(c, 's2c', frame); return; }
    const fromTarget = c.replay && ip.src === c.replay.target.ip && tcp.srcPort === c.replay.target.port;
    if (fromTarget) { this.fromTarget(c, frame, inPort); return; }
    const fromCurrent = ip.src === c.backend.ip && tcp.srcPort === c.backend.port;
    if (!fromCurrent || c.phase === 'replaying') {
      // A retired backend (or server 1 while its successor is being set up) must never reach the client.
      this.stats.droppedStray++;
      this.log.debug('dropped a segment from a backend the connection has left', { conn: c.id, from: `${ip.src}:${tcp.srcPort}` });
      return;
    }
    if (c.phase === 'handshake' && tcp.flagSet.syn && tcp.flagSet.ack) {
      c.backend = { ...c.backend, mac: frame.eth.src, ofport: inPort };
      if (!c.acceptedSynAck) c.acceptedSynAck = summarise(tcp.options);
      this.learning.learnHost(ip.src, { mac: frame.eth.src, dpid: c.dpid, port: inPort, seen: Date.now() });
    }
    this.trackSegment(c, 's2c', frame);
    const hasFlows = c.phase === 'forwarded' || c.phase === 'closing' || c.phase === 'freezing' || !!c.move?.midStream;
    if (hasFlows && role === 'intercept') this.stray(c);
    if (hasFlows && !this.relayed(c)) { this.packetOut(c, frame.raw, OFPP.TABLE, inPort); return; }
    if (isIdentity(c)) { this.passOn(c, frame.raw, c.client.ofport, inPort); return; }
    this.relayToClient(c, frame.raw);
  }

  /**
   * Which flow sent this packet-in: a copy of a packet the switch forwarded itself (FIN/RST copies,
   * inspection copies of a non-relayed connection), a relay/freeze flow, or the intercept flow.
   */
  private flowRole(pi: PacketIn, c: Connection): 'copy' | 'flow' | 'intercept' {
    if (connIdOf(pi.cookie) !== c.id) return 'intercept';
    const role = connRoleOf(pi.cookie);
    if (role === CONN_ROLE.flags || (role === CONN_ROLE.main && !this.relayed(c))) return 'copy';
    return 'flow';
  }

  // ---------------------------------------------------------------- holding and verdicts

  private hold(c: Connection, frame: ParsedFrame): void {
    c.held = heldOf(frame);
    c.queue = [];
    if (c.phase === 'freezing') {
      // Mid-stream: the move was decided already; this segment is the boundary it happens at.
      this.clearTimer(c, 'freeze');
      this.setPhase(c, 'held');
      this.emit('held', this.describe(c));
      this.startMove(c);
      return;
    }
    this.setPhase(c, 'held');
    this.clearTimer(c, 'idle');
    if (c.service.mirrorPort !== undefined) this.packetOut(c, frame.raw, c.service.mirrorPort, c.client.ofport);
    c.timers.verdict = setTimeout(() => {
      c.timers.verdict = undefined;
      if (c.phase !== 'held' || c.move) return;
      this.log.info('no verdict in time, applying the default', { conn: c.id, verdict: c.service.defaultVerdict });
      this.applyVerdict(c, { verdict: c.service.defaultVerdict, source: 'timeout' });
    }, c.service.verdictTimeoutMs);
    this.emit('held', this.describe(c));
    this.emit('held_frame', this.describe(c), frame);
  }

  /** Entry point for analyzers and the API: a verdict about a connection. */
  verdict(connId: number, req: VerdictRequest): void {
    const c = this.table.get(connId);
    if (!c) throw new EngineError(404, `no connection ${connId}`);
    this.applyVerdict(c, req);
  }

  /** A verdict for the connection a packet belongs to (client → service tuple, either orientation). */
  verdictForFlow(flow: { srcIp: string; srcPort: number; dstIp: string; dstPort: number }, req: VerdictRequest): Connection | undefined {
    const c = this.table.byClientTuple(tupleKey(flow.srcIp, flow.srcPort, flow.dstIp, flow.dstPort))
      ?? this.table.byClientTuple(tupleKey(flow.dstIp, flow.dstPort, flow.srcIp, flow.srcPort));
    if (!c) { this.stats.alertsUnknownConn++; return undefined; }
    const dedupe = `${c.id}:${req.sid ?? ''}:${req.seq ?? ''}:${req.verdict}`;
    if (this.seenAlerts.has(dedupe)) { this.stats.alertsDuplicate++; return c; }
    this.seenAlerts.add(dedupe);
    if (this.seenAlerts.size > 10000) this.seenAlerts.delete(this.seenAlerts.values().next().value!);
    this.applyVerdict(c, req);
    return c;
  }

  private applyVerdict(c: Connection, req: VerdictRequest): void {
    c.lastVerdict = { verdict: req.verdict, source: req.source, sid: req.sid, at: Date.now() };
    this.emit('verdict', this.describe(c), req);
    if (c.phase === 'held' && !c.move) {
      this.clearTimer(c, 'verdict');
      if (req.verdict === 'FORWARD') { this.forward(c); return; }
      const target = this.targetFor(c, req);
      if (!target) { this.log.warn('MIGRATE verdict but no target backend; forwarding', { conn: c.id }); this.forward(c); return; }
      c.move = { target, reason: `${req.source} verdict`, requestedAt: Date.now(), sid: req.sid, midStream: false };
      this.startMove(c);
      return;
    }
    if (req.verdict === 'MIGRATE' && c.phase === 'forwarded' && c.service.midStream) {
      const target = this.targetFor(c, req);
      if (target && target.name !== c.backendName) {
        this.requestMove(c, target, `${req.source} verdict`, req.sid).catch((e) => this.failMove(c, `freezing the connection failed: ${(e as Error).message}`));
      }
      return;
    }
    this.log.debug('verdict ignored in this phase', { conn: c.id, phase: c.phase, verdict: req.verdict });
  }

  private targetFor(c: Connection, req: VerdictRequest): BackendConfig | undefined {
    const name = req.target ?? (req.sid !== undefined ? c.service.sidBackends[String(req.sid)] : undefined) ?? c.service.migrateTo;
    return c.service.backends.find((b) => b.name === name);
  }

  /**
   * API: move a connection to another backend, now (held) or at its next client data segment.
   * Resolves once the switch sends the client's packets to the controller (freeze in place).
   */
  async migrate(connId: number, targetName: string): Promise<ConnectionView> {
    const c = this.table.get(connId);
    if (!c) throw new EngineError(404, `no connection ${connId}`);
    const target = c.service.backends.find((b) => b.name === targetName);
    if (!target) throw new EngineError(404, `service '${c.service.name}' has no backend named '${targetName}'`);
    if (target.name === c.backendName && c.phase !== 'held') throw new EngineError(409, `connection ${connId} is already on '${targetName}'`);
    if (c.phase === 'held' && !c.move) { this.applyVerdict(c, { verdict: 'MIGRATE', source: 'api', target: targetName }); return this.describe(c); }
    if (c.phase !== 'forwarded') throw new EngineError(409, `connection ${connId} is ${c.phase}; it can move once forwarded`);
    if (!c.service.midStream) throw new EngineError(409, `service '${c.service.name}' does not allow mid-stream migration`);
    await this.requestMove(c, target, 'api');
    return this.describe(c);
  }

  /** API: move every forwarded (or held) connection of a service. */
  async migrateService(serviceName: string, targetName: string): Promise<ConnectionView[]> {
    const s = this.service(serviceName);
    if (!s) throw new EngineError(404, `no service named '${serviceName}'`);
    if (!s.backends.some((b) => b.name === targetName)) throw new EngineError(404, `service '${serviceName}' has no backend named '${targetName}'`);
    const todo = [...this.table.all()].filter((c) => c.service === s && c.backendName !== targetName && (c.phase === 'forwarded' || (c.phase === 'held' && !c.move)));
    return Promise.all(todo.map((c) => this.migrate(c.id, targetName)));
  }

  private async requestMove(c: Connection, target: BackendConfig, reason: string, sid?: number): Promise<void> {
    c.move = { target, reason, requestedAt: Date.now(), sid, midStream: true };
    this.setPhase(c, 'freezing');
    // Barrier: once it returns, the client's next segment cannot slip past to the old backend.
    if (!this.relayed(c)) {
      c.frozenByFlow = true;
      await c.sw.transact([freezeFlow(this.flowIdentity(c))]);
      // OVS answers the barrier once its flow table changed, but revalidates the datapath's cached
      // megaflows asynchronously: for a moment the client's packets can still take the old path.
      await new Promise((r) => setTimeout(r, this.opts.revalidateMs));
    }
    this.emit('move_pending', this.describe(c), { to: target.name, reason });
    c.timers.freeze = setTimeout(() => {
      c.timers.freeze = undefined;
      if (c.phase !== 'freezing') return;
      this.log.info('no client data segment to migrate at; move cancelled', { conn: c.id });
      this.failMove(c, 'no client data segment arrived within the freeze timeout');
    }, FREEZE_TIMEOUT_MS);
  }

  private forward(c: Connection): void {
    this.installAndRelease(c, 'forwarded').then(() => {
      this.stats.forwarded++;
      this.emit('forwarded', this.describe(c));
    }, (e) => this.log.error('installing forwarding flows failed', { conn: c.id, error: (e as Error).message }));
  }

  // ---------------------------------------------------------------- the move

  private async startMove(c: Connection): Promise<void> {
    const move = c.move!;
    const held = c.held!;
    const t = move.target;
    if (t.name === c.backendName) { c.move = undefined; await this.installAndRelease(c, 'forwarded').catch(() => undefined); return; }
    let target: Attached;
    try { target = await this.locate(c, t); } catch (e) { this.failMove(c, (e as Error).message); return; }
    if (c.phase !== 'held') return;
    if (!c.synParsed) { this.failMove(c, 'the connection was adopted without its handshake: its SYN options are unknown, so it cannot be replayed'); return; }
    const isn = seqSub(held.seq, 1);
    const syn = replaySyn(c.synParsed, c.client, target, isn);
    c.replay = { target, targetName: t.name, isn, syn, tries: 0 };
    this.table.indexBackend(c, target);
    this.setPhase(c, 'replaying');
    this.sendReplaySyn(c);
  }

  private sendReplaySyn(c: Connection): void {
    const r = c.replay!;
    r.tries++;
    this.packetOut(c, r.syn, r.target.ofport, c.client.ofport);
    r.timer = setTimeout(() => {
      r.timer = undefined;
      if (c.phase !== 'replaying' || c.replay !== r || r.targetIsn !== undefined) return;
      if (r.tries >= REPLAY_TRIES) { this.failMove(c, `no SYN-ACK from ${r.targetName} after ${r.tries} SYNs`); return; }
      this.sendReplaySyn(c);
    }, this.opts.replayTimeoutMs * r.tries);
  }

  private fromTarget(c: Connection, frame: ParsedFrame, inPort: number): void {
    const r = c.replay!;
    const tcp = frame.tcp!;
    if (tcp.flagSet.rst) { this.failMove(c, `${r.targetName} refused the connection (RST)`); return; }
    if (!(tcp.flagSet.syn && tcp.flagSet.ack)) return;
    if (r.targetIsn !== undefined) { if (r.ack) this.packetOut(c, r.ack, r.target.ofport, c.client.ofport); return; }
    if (tcp.ack !== seqAdd(r.isn, 1)) { this.log.debug('SYN-ACK from target acknowledges something else', { conn: c.id }); return; }
    r.target = { ...r.target, mac: frame.eth.src, ofport: inPort };
    const theirs = summarise(tcp.options);
    const problems = c.acceptedSynAck ? compareSynAcks(c.acceptedSynAck, theirs) : [];
    if (problems.length) {
      const detail = problems.map((p) => `${p.option}: ${String(p.original)} vs ${String(p.target)} (${p.why})`).join('; ');
      if (c.service.options.mismatch === 'refuse') {
        this.packetOut(c, resetFor(c.client, r.target, seqAdd(r.isn, 1)), r.target.ofport, c.client.ofport);
        this.failMove(c, `target's TCP options differ: ${detail}`);
        return;
      }
      this.log.warn('target TCP options differ; migrating anyway (policy: warn)', { conn: c.id, detail });
    }
    const held = c.held!;
    r.targetIsn = tcp.seq;
    r.ack = replayAck(c.client, r.target, held.seq, seqAdd(tcp.seq, 1), held.window);
    this.packetOut(c, r.ack, r.target.ofport, c.client.ofport);
    if (r.timer) { clearTimeout(r.timer); r.timer = undefined; }
    this.splice(c).catch((e) => this.failMove(c, `installing migrated flows failed: ${(e as Error).message}`));
  }

  /** The target's leg exists: install its flows, release the held segment, reset the old backend. */
  private async splice(c: Connection): Promise<void> {
    const r = c.replay!;
    const held = c.held!;
    const old = { backend: c.backend, name: c.backendName, client: c.client };
    // The client's ack (server-1 space as the client sees it) must land on target ISN + 1.
    const ackDelta = seqSub(seqAdd(r.targetIsn!, 1), held.ack);
    c.backend = r.target;
    c.backendName = r.targetName;
    c.ackDelta = ackDelta;
    c.retired.push(tupleKey(old.backend.ip, old.backend.port, c.client.ip, c.client.port));
    c.frozenByFlow = false;
    // Counted before the install: the flows' state note records it.
    c.migrations++;
    await this.installAndRelease(c, 'forwarded');
    // seq == the old backend's RCV.NXT exactly: the held segment never reached it.
    this.packetOut(c, resetFor(c.client, old.backend, held.seq), old.backend.ofport, c.client.ofport);
    const latencyMs = Date.now() - (c.move?.requestedAt ?? Date.now());
    this.stats.migrated++;
    const move = c.move;
    c.move = undefined;
    c.replay = undefined;
    this.log.info('connection migrated', { conn: c.id, from: old.name, to: c.backendName, ackDelta, latencyMs, midStream: !!move?.midStream });
    this.emit('migrated', this.describe(c), { from: old.name, to: c.backendName, latencyMs, midStream: !!move?.midStream, sid: move?.sid });
  }

  private failMove(c: Connection, why: string): void {
    this.stats.migrationFailures++;
    const move = c.move;
    const r = c.replay;
    if (r?.timer) clearTimeout(r.timer);
    // The target may still retransmit its SYN-ACK: keep dropping its packets (and free the key with the connection).
    if (r) c.retired.push(tupleKey(r.target.ip, r.target.port, c.client.ip, c.client.port));
    c.move = undefined;
    c.replay = undefined;
    this.log.warn('migration failed; the connection stays where it was', { conn: c.id, to: move?.target.name, why });
    this.emit('migration_failed', this.describe(c), { to: move?.target.name, why });
    if (c.phase === 'closed') return;
    const frozen = c.frozenByFlow;
    c.frozenByFlow = false;
    if (c.held || c.phase === 'replaying') this.installAndRelease(c, 'forwarded').catch((e) => this.log.error('restoring flows failed', { conn: c.id, error: (e as Error).message }));
    else { if (frozen) this.send(c, [deleteFreezeFlow(this.flowIdentity(c))]); this.setPhase(c, 'forwarded'); }
  }

  /**
   * Replaces all of the connection's flows (old backend, freeze, flag copies) with those for its
   * current backend, then releases what was held. Packets that fall between the delete and the
   * adds hit the intercept flow and come to the controller, which handles them by phase.
   */
  private async installAndRelease(c: Connection, phase: Phase): Promise<void> {
    await c.sw.transact([deleteConnectionFlows(c.id), ...connectionFlows(this.flowSpec(c))]);
    c.strays = 0;
    if (c.phase === 'closed') return;
    this.setPhase(c, phase);
    this.clearTimer(c, 'idle');
    const out = [...(c.held ? [c.held.frame] : []), ...c.queue];
    c.held = undefined;
    c.queue = [];
    for (const f of out) {
      if (this.relayed(c)) this.relayToBackend(c, f);
      else this.packetOut(c, f, OFPP.TABLE, c.client.ofport);
    }
  }

  /**
   * A packet of a connection that has flows still reached the intercept flow. A few right after a
   * flow change are the datapath cache catching up; a steady stream means the flows are gone
   * (deleted by hand, say) and every Packet-Out to the table would come straight back: reinstall.
   */
  private stray(c: Connection): void {
    c.strays = (c.strays ?? 0) + 1;
    this.log.debug('intercepted packet of a connection with flows', { conn: c.id, strays: c.strays });
    if (c.strays < STRAYS_BEFORE_REINSTALL) return;
    c.strays = 0;
    this.log.warn('connection flows missing from the switch; reinstalling them', { conn: c.id });
    c.sw.transact([deleteConnectionFlows(c.id), ...connectionFlows(this.flowSpec(c))])
      .catch((e) => { this.log.error('reinstalling flows failed; dropping the connection', { conn: c.id, error: (e as Error).message }); this.finish(c, 'flows could not be reinstalled', true); });
  }

  /** Whether this connection's packets pass through the controller (stock switch, shifted sequence space). */
  private relayed(c: Connection): boolean { return needsRelay({ mode: c.mode, ackDelta: c.ackDelta }); }

  private flowIdentity(c: Connection): { id: number; client: Attached; service: { mac: string; ip: string; port: number } } {
    return { id: c.id, client: c.client, service: c.serviceL2 };
  }

  flowSpec(c: Connection): ConnectionFlowSpec {
    return {
      id: c.id, idleTimeout: c.service.idleTimeout, client: c.client, service: c.serviceL2, backend: c.backend,
      ackDelta: c.ackDelta, mode: c.mode, mirrorPort: c.service.mirrorAll ? c.service.mirrorPort : undefined,
      inspect: c.service.mirrorAll && !!this.opts.inspectInController,
      meta: { serviceName: c.service.name, backendName: c.backendName, migrations: c.migrations, createdAt: c.createdAt, syn: synRecordOf(c), synAck: c.acceptedSynAck },
    };
  }

  /** Where a backend is: config, what the switch has shown us, or an ARP probe. */
  private async locate(c: Connection, b: BackendConfig): Promise<Attached> {
    const seen = this.learning.hosts.get(b.address);
    const known = seen && seen.dpid === c.dpid ? seen : undefined;
    const mac = b.mac ?? known?.mac;
    const port = b.switchPort ?? (mac ? this.learning.portForMac(c.dpid, mac) : undefined) ?? known?.port;
    if (mac && port !== undefined) return { mac, ip: b.address, port: b.port, ofport: port };
    const found = new Promise<Attached>((resolve, reject) => {
      const onHost = (ip: string, loc: { mac: string; port: number; dpid: string }) => {
        if (ip !== b.address || loc.dpid !== c.dpid) return;
        clearTimeout(t);
        this.learning.off('host', onHost);
        resolve({ mac: b.mac ?? loc.mac, ip: b.address, port: b.port, ofport: b.switchPort ?? loc.port });
      };
      const t = setTimeout(() => { this.learning.off('host', onHost); reject(new Error(`backend ${b.name} (${b.address}) did not answer ARP`)); }, 1000);
      this.learning.on('host', onHost);
    });
    const probe = buildArpFrame({ op: 'request', ethSrc: CONTROLLER_MAC, senderMac: CONTROLLER_MAC, senderIp: '0.0.0.0', targetIp: b.address });
    this.packetOut(c, probe, OFPP.FLOOD, OFPP.CONTROLLER);
    return found;
  }

  // ---------------------------------------------------------------- relaying (stock switches, and stragglers)

  private relayToBackend(c: Connection, raw: Buffer): void {
    const f = Buffer.from(raw);
    const b = c.backend;
    if (!isIdentity(c)) {
      const ok = rewriteEthDst(f, b.mac).ok && rewriteIpv4Dst(f, b.ip).ok && rewriteL4DstPort(f, b.port).ok && shiftTcpAck(f, c.ackDelta).ok;
      if (!ok) { this.log.debug('cannot rewrite a client segment; dropped', { conn: c.id }); return; }
    }
    this.stats.relayed++;
    this.packetOut(c, f, b.ofport, c.client.ofport);
  }

  private relayToClient(c: Connection, raw: Buffer): void {
    const f = Buffer.from(raw);
    const b = c.backend;
    if (!isIdentity(c)) {
      const ok = rewriteEthSrc(f, c.serviceL2.mac).ok && rewriteIpv4Src(f, c.serviceL2.ip).ok && rewriteL4SrcPort(f, c.serviceL2.port).ok && shiftTcpSeq(f, -c.ackDelta).ok;
      if (!ok) { this.log.debug('cannot rewrite a backend segment; dropped', { conn: c.id }); return; }
    }
    this.stats.relayed++;
    this.packetOut(c, f, c.client.ofport, b.ofport);
  }

  // ---------------------------------------------------------------- teardown

  private trackSegment(c: Connection, dir: Direction, frame: ParsedFrame): void {
    const before = c.track;
    const seg = segInfo(frame);
    // Track in the client's view: a backend's own sequence numbers are shifted by the delta.
    if (dir === 's2c' && frame.ipv4!.src === c.backend.ip && frame.tcp!.srcPort === c.backend.port) seg.seq = seqSub(seg.seq, c.ackDelta);
    c.track = observe(c.track, dir, seg);
    if (before.client !== c.track.client || before.server !== c.track.server) this.emit('tcp_state', this.describe(c), dir);
    if (c.phase === 'closing' || c.phase === 'closed') return;
    if (frame.tcp!.flagSet.rst || bothFinSent(c.track)) this.closeSoon(c, frame.tcp!.flagSet.rst ? 'reset' : 'closed by both ends');
  }

  private closeSoon(c: Connection, why: string): void {
    if (c.replay || c.move) { this.failMove(c, `connection ${why} during the move`); }
    this.setPhase(c, 'closing');
    this.clearTimer(c, 'verdict');
    this.clearTimer(c, 'idle');
    // The final ACKs (or the RST itself) still have to cross the switch before the flows go.
    c.timers.close = setTimeout(() => this.finish(c, why, true), this.opts.closeGraceMs);
  }

  flowRemoved(sw: SwitchConnection, msg: FlowRemoved): void {
    if (cookieApp(msg.cookie) !== APP_ID.connection || connRoleOf(msg.cookie) !== CONN_ROLE.main) return;
    const id = connIdOf(msg.cookie);
    const c = id === undefined ? undefined : this.table.get(id);
    if (!c || c.sw !== sw || c.phase === 'closed') return;
    // reason 0 = idle timeout: the connection went quiet without FIN/RST reaching us.
    if (msg.reason === 0 && c.phase === 'forwarded') this.finish(c, 'idle timeout', true);
  }

  /** Frees everything the connection holds: its flows, timers and table entries. */
  private finish(c: Connection, why: string, removeFlows: boolean): void {
    if (c.phase === 'closed') return;
    for (const k of Object.keys(c.timers) as (keyof Connection['timers'])[]) this.clearTimer(c, k);
    if (c.replay?.timer) clearTimeout(c.replay.timer);
    this.setPhase(c, 'closed');
    this.table.remove(c);
    if (removeFlows && c.sw.connected) this.send(c, [deleteConnectionFlows(c.id)]);
    else if (removeFlows && this.graceTimers.has(c.dpid)) {
      const ended = this.endedAway.get(c.dpid) ?? new Set<number>();
      ended.add(c.id);
      this.endedAway.set(c.dpid, ended);
    }
    this.recentlyClosed.delete(clientKey(c));
    this.recentlyClosed.set(clientKey(c), Date.now());
    if (this.recentlyClosed.size > RECENTLY_CLOSED_MAX) this.recentlyClosed.delete(this.recentlyClosed.keys().next().value!);
    this.stats.closed++;
    this.emit('conn_closed', this.describe(c), why);
  }

  private armIdle(c: Connection, ms: number): void {
    this.clearTimer(c, 'idle');
    c.timers.idle = setTimeout(() => {
      c.timers.idle = undefined;
      if (c.phase === 'handshake') { this.finish(c, 'handshake did not complete', true); return; }
      if (c.phase === 'established') {
        // Client connected but sends nothing (server-speaks-first protocols): stop intercepting.
        this.log.info('no client data; forwarding without a verdict', { conn: c.id });
        this.forward(c);
      }
    }, ms);
  }

  // ---------------------------------------------------------------- helpers

  private setPhase(c: Connection, to: Phase): void {
    const from = c.phase;
    if (from === to) return;
    c.phase = to;
    if (to === 'established') this.armIdle(c, this.opts.handshakeTimeoutMs);
    this.emit('conn_state', this.describe(c), from, to);
  }

  private clearTimer(c: Connection, k: keyof Connection['timers']): void {
    const t = c.timers[k];
    if (t) { clearTimeout(t); c.timers[k] = undefined; }
  }

  private packetOut(c: Connection, frame: Buffer, port: number, inPort: number): void {
    this.send(c, [{ type: 'packet_out', xid: 0, bufferId: OFP_NO_BUFFER, inPort, actions: [{ type: 'output', port }], data: frame }]);
  }

  /** Forwards a handshake-phase packet, with a copy to the service's IDS port so the IDS sees the whole flow. */
  private passOn(c: Connection, frame: Buffer, port: number, inPort: number): void {
    const mirror = c.service.mirrorPort;
    const actions = mirror !== undefined && mirror !== port ? [{ type: 'output' as const, port: mirror }, { type: 'output' as const, port }] : [{ type: 'output' as const, port }];
    this.send(c, [{ type: 'packet_out', xid: 0, bufferId: OFP_NO_BUFFER, inPort, actions, data: frame }]);
  }

  private send(c: Connection, msgs: OfpMessage[]): void {
    if (!c.sw.connected) return;
    try { for (const m of msgs) c.sw.send(m); } catch (e) { this.log.warn('send to switch failed', { conn: c.id, error: (e as Error).message }); }
  }

  describe(c: Connection): ConnectionView {
    return {
      id: c.id, service: c.service.name, dpid: c.dpid, mode: c.mode, phase: c.phase,
      client: `${c.client.ip}:${c.client.port}`, serviceAddress: `${c.serviceL2.ip}:${c.serviceL2.port}`,
      backend: c.backendName, backendAddress: `${c.backend.ip}:${c.backend.port}`,
      ackDelta: c.ackDelta >>> 0, migrations: c.migrations, tcp: { client: c.track.client, server: c.track.server },
      createdAt: c.createdAt, lastVerdict: c.lastVerdict, ...(c.adopted ? { adopted: true } : {}),
    };
  }

  connections(): ConnectionView[] { return [...this.table.all()].map((c) => this.describe(c)); }
}

export interface ConnectionView {
  id: number; service: string; dpid: string; mode: SwitchMode; phase: Phase;
  client: string; serviceAddress: string; backend: string; backendAddress: string;
  ackDelta: number; migrations: number; tcp: { client: string; server: string }; createdAt: number;
  lastVerdict?: { verdict: string; source: string; sid?: number; at: number };
  /** Rebuilt from the switch's flows (or found without its handshake) rather than seen from its SYN. */
  adopted?: boolean;
}

/** Phases in which a connection has flows on its switch. */
function hasFlows(p: Phase): boolean { return p === 'forwarded' || p === 'closing'; }

function synRecordOf(c: Connection): SynRecord | undefined {
  const f = c.synParsed;
  if (!f?.tcp || !f.ipv4) return undefined;
  return { isn: c.isnClient >>> 0, window: f.tcp.window, options: Buffer.from(f.tcp.optionsRaw), tos: f.ipv4.tos, ttl: f.ipv4.ttl };
}

/** The client's SYN rebuilt from its record (as it went to server 1). */
function synFrameOf(r: SynRecord, client: { mac: string; ip: string; port: number }, service: { mac: string; ip: string; port: number }): Buffer {
  return buildTcpFrame({
    ethSrc: client.mac, ethDst: service.mac, ipSrc: client.ip, ipDst: service.ip, srcPort: client.port, dstPort: service.port,
    seq: r.isn, ack: 0, flags: { syn: true }, window: r.window, optionsRaw: r.options, tos: r.tos, ttl: r.ttl,
  });
}

/** The connection still runs to the service's own backend in its own sequence space: nothing to rewrite. */
function isIdentity(c: Connection): boolean {
  return c.backend.ip === c.serviceL2.ip && c.backend.port === c.serviceL2.port && (c.ackDelta >>> 0) === 0;
}

function segInfo(f: ParsedFrame) {
  const t = f.tcp!;
  return { syn: t.flagSet.syn, ack: t.flagSet.ack, fin: t.flagSet.fin, rst: t.flagSet.rst, seq: t.seq, ackNo: t.ack, payloadLength: f.payload.length };
}

function heldOf(f: ParsedFrame) {
  return { frame: Buffer.from(f.raw), seq: f.tcp!.seq, ack: f.tcp!.ack, len: f.payload.length, window: f.tcp!.window, heldAt: Date.now() };
}

function reparse(buf: Buffer): ParsedFrame | undefined {
  const r = parseFrame(buf);
  return r.ok ? r.value : undefined;
}
