// QUIC services (docs/quic.md, "QUIC services"): the controller's App that intercepts UDP to a
// QUIC service, holds a client's first datagrams until a verdict on its Initial, and then steers
// the client's 4-tuple to the verdict's backend with NAT flows. QUIC has no sequence numbers to
// shift: a MIGRATE is a choice of backend made before any server has seen the connection.
// The flows are planned in flow-plan.ts, the held datagrams read in held-initial.ts.
import { EventEmitter } from 'node:events';
import { OFPP, OFP_NO_BUFFER, type FlowStats, type OfpMessage } from '../openflow/index.ts';
import type { ParsedFrame } from '../packet/index.ts';
import { dpidString, type SwitchConnection } from '../datapath/switch-connection.ts';
import { APP_ID, cookieApp } from '../cookies.ts';
import type { App, FlowRemoved, PacketIn } from '../apps/app.ts';
import type { HostDirectory } from '../fabric/host-directory.ts';
import { locateProbe } from '../handoff/move.ts';
import type { FlowKey, Verdict } from '../analyzers/types.ts';
import { LogThrottle } from '../log-throttle.ts';
import type { Logger } from '../log.ts';
import { deleteAllSteerFlows, deleteNatFlows, natFlows, quicConnIdOf, rewriteToBackend, rewriteToClient, steerFlows, stopCopying, type Attached, type L2L4, type NatSpec } from './flow-plan.ts';
import { CidTable, serverScid, steerByDcid, type CidTableLimits, DEFAULT_CID_LIMITS } from './cid-steer.ts';
import { DEFAULT_HOLD_LIMITS, DROP_REASONS, HeldInitial, type CompleteInitial, type DropReason, type HoldLimits } from './held-initial.ts';
import type { QuicServiceConfig } from './service-config.ts';

export interface QuicSteerOptions {
  /** Clients held (waiting for a verdict) at most; a new client's Initial beyond is dropped (it retransmits). */
  maxHeld: number;
  /** Held clients of one source address at most. */
  maxHeldPerSource: number;
  /** Bytes held for all clients together at most (a flood of Initials must not take the memory). */
  maxHeldBytes: number;
  /** Connections tracked (held and steered) at most. */
  maxConnections: number;
  hold: HoldLimits;
  /** How long a backend's location is looked for (ARP probe) before the verdict falls back to the primary. */
  locateTimeoutMs: number;
  /** 4-tuples one connection may have at once (a client rebinding, moving); more are dropped (`too_many_paths`). */
  maxPathsPerConnection: number;
  cids: CidTableLimits;
}
export const DEFAULT_QUIC_OPTIONS: QuicSteerOptions = {
  maxHeld: 10000, maxHeldPerSource: 256, maxHeldBytes: 32 * 1024 * 1024, maxConnections: 100000, hold: DEFAULT_HOLD_LIMITS, locateTimeoutMs: 1000,
  maxPathsPerConnection: 8, cids: DEFAULT_CID_LIMITS,
};
/** Copies of a backend's answers read at most while waiting for its first long header (then the copy is taken off anyway). */
const MAX_COPIES = 16;
/** Datagrams of a followed 4-tuple kept while its NAT flows are being installed. */
const MAX_PENDING = 16;

export type QuicPhase = 'held' | 'deciding' | 'steered';

export interface QuicVerdictRequest { verdict: Verdict; source: string; sid?: number }

/**
 * One client 4-tuple of a QUIC service. The table is keyed by that tuple (and by the backend's
 * side of it, for answers that reach the controller): a later connection-ID table can point at
 * the same records.
 */
interface QuicConn {
  id: number;
  service: QuicServiceConfig;
  sw: SwitchConnection;
  dpid: string;
  client: Attached;
  /** The service as the client sees it: the primary's MAC, the service address and port. */
  serviceL2: L2L4;
  phase: QuicPhase;
  hold?: HeldInitial;
  timer?: NodeJS.Timeout;
  verdict?: QuicVerdictRequest & { at: number };
  backendName?: string;
  backend?: Attached;
  /**
   * The QUIC connection this 4-tuple belongs to: the id of its first tuple's record (a tuple
   * found by a QUIC-LB server ID alone starts a group of its own). Its CIDs live while it has tuples.
   */
  group: number;
  /** How the tuple was steered: by a verdict on its Initial, or followed by its DCID. */
  via: 'verdict' | 'learnt' | 'quic-lb';
  /** The backend → client flow copies answers to the controller until the server's SCID is read. */
  copying: boolean;
  copies: number;
  /** In the CID table's tuple count. */
  attached: boolean;
  /** A followed tuple's datagrams while its flows are installed. */
  pending?: Buffer[];
  /** Client version and connection IDs from its Initial. */
  version?: number;
  dcid?: string;
  scid?: string;
  sni?: string;
  createdAt: number;
}

export interface QuicConnView {
  id: number; service: string; dpid: string; phase: QuicPhase; client: string; serviceAddress: string;
  backend?: string; backendAddress?: string; version?: string; dcid?: string; scid?: string; sni?: string;
  heldDatagrams: number; verdict?: { verdict: Verdict; source: string; sid?: number; at: number }; createdAt: number;
  /** The connection's first tuple's id, and how this tuple was steered. */
  group: number; via: 'verdict' | 'learnt' | 'quic-lb';
}

export interface QuicServiceView {
  name: string; address: string; primary: string; migrateTo: string | null; defaultVerdict: Verdict;
  backends: { name: string; address: string }[];
}

/** Why a datagram from an unknown 4-tuple is dropped: its Initial's reasons, and CID steering's. */
export type QuicDropReason = DropReason | 'unknown_cid' | 'too_many_paths';
export const QUIC_DROP_REASONS: readonly QuicDropReason[] = [...DROP_REASONS, 'unknown_cid', 'too_many_paths'];
type DropCounters = Record<QuicDropReason, number>;

const key = (srcIp: string, srcPort: number, dstIp: string, dstPort: number) => [srcIp, ':', srcPort, '>', dstIp, ':', dstPort].join('');
const MAX_ID = 0xffff_ffff_ffff;
const endpoint = (ip: string, port: number) => `${ip}:${port}`;

/**
 * Events (plain views from `describe()`): 'held' (c) for a new client, 'initial' (c, initial,
 * flow) once its ClientHello is read whole (the built-in matcher's input), 'verdict' (c, req),
 * 'steered' (c) once its NAT flows are in place and its datagrams released, 'failed' (c, why),
 * 'closed' (c, why), 'dropped' (reason, client) for a datagram that starts no connection.
 */
export class QuicSteerApp extends EventEmitter implements App {
  readonly name = 'quic-steer';
  readonly cookieApps = [APP_ID.quic] as const;
  readonly services: QuicServiceConfig[];
  readonly opts: QuicSteerOptions;
  readonly stats = {
    /** Datagrams from clients to a QUIC service that reached the controller. */
    datagrams: 0,
    held: 0, heldDatagrams: 0, mirrored: 0,
    /** Datagrams of unknown clients that start no connection, by reason (dropped). */
    dropped: Object.fromEntries(QUIC_DROP_REASONS.map((r) => [r, 0])) as DropCounters,
    /** Datagrams of held clients over the hold limits, or breaking their Initial (dropped). */
    droppedHeld: 0, unreadableInitials: 0,
    /** New clients refused for want of room (the client retransmits its Initial). */
    refusedFull: 0, refusedPerSource: 0,
    verdicts: 0, duplicateVerdicts: 0, verdictTimeouts: 0, forwarded: 0, migrated: 0,
    locateFailures: 0, fallbacksToPrimary: 0, installFailures: 0,
    /** Datagrams of steered clients (either way) that reached the controller and were passed on rewritten. */
    strays: 0,
    /** Datagrams from a backend's service port for no tracked client (left to the forwarding app). */
    unknownBackendDatagrams: 0,
    closed: 0, errors: 0,
    /** Connection-ID steering: server CIDs learnt, copies of answers read, tuples followed by a learnt CID / a QUIC-LB server ID. */
    cidLearnt: 0, cidCopies: 0, followedLearnt: 0, followedQuicLb: 0, followFailures: 0,
  };
  readonly cids: CidTable;
  private readonly byClient = new Map<string, QuicConn>();
  private readonly byBackend = new Map<string, QuicConn>();
  private readonly byId = new Map<number, QuicConn>();
  private readonly byService = new Map<string, QuicServiceConfig>();
  private readonly heldPerSource = new Map<string, number>();
  private heldCount = 0;
  private heldBytes = 0;
  private nextId = 1;
  private readonly locating = new Map<string, Promise<Attached>>();
  private readonly dropLog: LogThrottle;

  constructor(services: QuicServiceConfig[], private readonly learning: HostDirectory, private readonly log: Logger, opts: Partial<QuicSteerOptions> = {}) {
    super();
    this.services = services.map((s) => structuredClone(s));
    for (const s of this.services) this.byService.set(endpoint(s.address, s.port), s);
    this.opts = { ...DEFAULT_QUIC_OPTIONS, ...opts };
    this.dropLog = new LogThrottle(log);
    this.cids = new CidTable(this.opts.cids);
  }

  // ---------------------------------------------------------------- the App

  async switchReady(sw: SwitchConnection, flows: FlowStats[] = []): Promise<void> {
    // NAT flows of an earlier run stay until they idle out (their clients keep working); new ids
    // start above theirs so that no cookie names two connections.
    for (const f of flows) {
      const id = quicConnIdOf(f.cookie);
      if (id !== undefined && id >= this.nextId) this.nextId = id + 1;
    }
    if (!this.services.length) return;
    await sw.transact([deleteAllSteerFlows(), ...this.services.flatMap((s, index) => steerFlows({
      index, service: { ip: s.address, port: s.port }, backends: s.backends.map((b) => ({ ip: b.address, port: b.port })),
    }))]);
    this.log.info('QUIC services steered to the controller', { dpid: sw.describe(), services: this.services.map((s) => `${s.name} ${s.address}:${s.port}/udp`) });
  }

  switchGone(sw: SwitchConnection): void {
    for (const c of [...this.byId.values()]) if (c.sw === sw) this.forgetConn(c, 'switch gone');
  }

  packetIn(sw: SwitchConnection, pi: PacketIn, frame: ParsedFrame | undefined): boolean {
    const udp = frame?.udp;
    const ip = frame?.ipv4;
    const inPort = pi.match.inPort;
    if (!frame || !udp || !ip || !sw.features || inPort === undefined) return false;
    try {
      // A copy of a backend's answer from its NAT flow: the switch forwarded the original already.
      const copyOf = quicConnIdOf(pi.cookie);
      if (copyOf !== undefined) {
        const c = this.byId.get(copyOf);
        if (c && c.sw === sw) this.readAnswer(c, frame.payload);
        return true;
      }
      const c = this.byClient.get(key(ip.src, udp.srcPort, ip.dst, udp.dstPort));
      // A client of another switch passing through this one: plain forwarding, not a new client.
      if (c) { if (c.sw !== sw) return false; this.stats.datagrams++; this.fromClient(c, frame, inPort); return true; }
      const b = this.byBackend.get(key(ip.src, udp.srcPort, ip.dst, udp.dstPort));
      if (b) { if (b.sw !== sw) return false; this.fromBackend(b, frame); return true; }
      const service = this.byService.get(endpoint(ip.dst, udp.dstPort));
      if (service) {
        this.stats.datagrams++;
        const p = frame.payload;
        if (service.cidSteering && p.length > 0 && (p[0]! & 0x80) === 0) this.follow(sw, service, frame, inPort);
        else this.newClient(sw, service, frame, inPort);
        return true;
      }
      if (cookieApp(pi.cookie) === APP_ID.quic) this.stats.unknownBackendDatagrams++;
      return false;
    } catch (e) {
      // A bug here must cost one datagram, not the app.
      this.stats.errors++;
      this.log.error('QUIC datagram handling failed; dropped', { error: (e as Error).stack ?? String(e) });
      return true;
    }
  }

  flowRemoved(sw: SwitchConnection, msg: FlowRemoved): void {
    const id = quicConnIdOf(msg.cookie);
    if (id === undefined) return;
    // The client → backend flow idled out: the other one goes too (also for a connection of an earlier run).
    this.send(sw, [deleteNatFlows(id)]);
    const c = this.byId.get(id);
    if (c && c.sw === sw && c.phase === 'steered') this.forgetConn(c, 'idle');
  }

  /** Drops every client from memory, flows untouched: another controller is master now. */
  forget(why: string): void {
    for (const c of [...this.byId.values()]) this.forgetConn(c, why);
  }

  /** Stops timers; the switches keep their flows. */
  stop(): void {
    for (const c of this.byId.values()) if (c.timer) { clearTimeout(c.timer); c.timer = undefined; }
  }

  // ---------------------------------------------------------------- verdicts

  /**
   * An analyzer's verdict for the client of `flow` (either direction of its 4-tuple). Undefined
   * when no QUIC client has that tuple; a client already decided keeps its backend.
   */
  verdictForFlow(flow: FlowKey, req: QuicVerdictRequest): QuicConnView | undefined {
    const c = this.byClient.get(key(flow.srcIp, flow.srcPort, flow.dstIp, flow.dstPort))
      ?? this.byClient.get(key(flow.dstIp, flow.dstPort, flow.srcIp, flow.srcPort));
    if (!c) return undefined;
    this.decide(c, req);
    return this.describe(c);
  }

  /** A verdict for connection `id` (the API, the built-in matcher's "no rule matched"); false when it is not held. */
  verdict(id: number, req: QuicVerdictRequest): boolean {
    const c = this.byId.get(id);
    return c ? this.decide(c, req) : false;
  }

  service(name: string): QuicServiceConfig | undefined { return this.services.find((s) => s.name === name); }

  connections(): QuicConnView[] { return [...this.byId.values()].map((c) => this.describe(c)); }

  /** GET /api/quic: the QUIC services, the counters, and every client with its phase and backend. */
  view(): { services: QuicServiceView[]; stats: QuicSteerApp['stats']; held: number; connections: QuicConnView[] } {
    return {
      services: this.services.map((s) => ({
        name: s.name, address: `${s.address}:${s.port}`, primary: s.primary, migrateTo: s.migrateTo ?? null, defaultVerdict: s.defaultVerdict,
        backends: s.backends.map((b) => ({ name: b.name, address: `${b.address}:${b.port}` })),
      })),
      stats: structuredClone(this.stats), held: this.heldCount, connections: this.connections(),
    };
  }

  /** The table sizes, for views and tests. */
  get size(): { held: number; tracked: number; heldBytes: number } { return { held: this.heldCount, tracked: this.byId.size, heldBytes: this.heldBytes }; }

  // ---------------------------------------------------------------- datagrams

  private newClient(sw: SwitchConnection, service: QuicServiceConfig, frame: ParsedFrame, inPort: number): void {
    const ip = frame.ipv4!;
    const udp = frame.udp!;
    const client = `${ip.src}:${udp.srcPort}`;
    if (this.byId.size >= this.opts.maxConnections || this.heldCount >= this.opts.maxHeld || this.heldBytes + frame.raw.length > this.opts.maxHeldBytes) {
      this.stats.refusedFull++;
      this.dropLog.warn('quic_full', '*', 'QUIC connection table full; new clients\' Initials are dropped until room is made (they retransmit)', { tracked: this.byId.size, held: this.heldCount, heldBytes: this.heldBytes });
      return;
    }
    if ((this.heldPerSource.get(ip.src) ?? 0) >= this.opts.maxHeldPerSource) {
      this.stats.refusedPerSource++;
      this.dropLog.warn('quic_per_source', ip.src, 'held-client budget of one source reached; its new Initials are dropped', { perSource: this.opts.maxHeldPerSource });
      return;
    }
    // Budgets first: decrypting an Initial costs more than refusing it.
    const first = HeldInitial.start(frame.raw, frame.payload, this.opts.hold);
    if (!first.ok) {
      this.stats.dropped[first.reason]++;
      this.log.debug('datagram to a QUIC service that starts no connection; dropped', { service: service.name, client, reason: first.reason, error: first.error?.message });
      this.emit('dropped', first.reason, client);
      return;
    }
    const dpid = dpidString(sw.features!.datapathId);
    const id = this.allocId();
    const c: QuicConn = {
      id, group: id, via: 'verdict', copying: false, copies: 0, attached: false, service, sw, dpid, phase: 'held', hold: first.held, createdAt: Date.now(),
      client: { mac: frame.eth.src, ip: ip.src, port: udp.srcPort, ofport: inPort },
      serviceL2: { mac: frame.eth.dst, ip: ip.dst, port: udp.dstPort },
    };
    this.byClient.set(key(ip.src, udp.srcPort, ip.dst, udp.dstPort), c);
    this.byId.set(c.id, c);
    this.heldCount++;
    this.heldBytes += first.held.bytes;
    this.heldPerSource.set(ip.src, (this.heldPerSource.get(ip.src) ?? 0) + 1);
    this.stats.held++;
    this.stats.heldDatagrams++;
    this.mirror(c, frame.raw, inPort);
    c.timer = setTimeout(() => { c.timer = undefined; this.stats.verdictTimeouts++; this.decide(c, { verdict: service.defaultVerdict, source: 'timeout' }); }, service.verdictTimeoutMs);
    this.log.debug('QUIC client held', { conn: c.id, service: service.name, client });
    this.emit('held', this.describe(c));
    if (first.held.status === 'complete') this.initialRead(c);
  }

  private fromClient(c: QuicConn, frame: ParsedFrame, inPort: number): void {
    if (inPort !== c.client.ofport) { this.stats.droppedHeld++; return; } // the same tuple from another port: not this client
    if (c.phase === 'steered') {
      // The datapath is catching up with the new flows (or they are gone): passed on, rewritten here.
      this.stats.strays++;
      this.relay(c, rewriteToBackend(frame.raw, this.natSpec(c)), c.backend!.ofport, inPort);
      return;
    }
    if (!c.hold) {
      // A followed tuple whose flows are being installed: kept for the backend, within a cap.
      if (c.pending && c.pending.length < MAX_PENDING) c.pending.push(Buffer.from(frame.raw)); else this.stats.droppedHeld++;
      return;
    }
    const before = c.hold.bytes;
    const r = this.heldBytes + frame.raw.length > this.opts.maxHeldBytes ? { held: false as const, why: 'cap' as const } : c.hold!.add(frame.raw, frame.payload);
    this.heldBytes += c.hold!.bytes - before;
    if (!r.held) {
      this.stats.droppedHeld++;
      if (r.why === 'unreadable') {
        this.stats.unreadableInitials++;
        this.log.debug('a QUIC client\'s Initial cannot be read; the other analyzers or the timeout decide', { conn: c.id, error: c.hold!.error?.message });
      }
      return;
    }
    this.stats.heldDatagrams++;
    this.mirror(c, frame.raw, inPort);
    if (r.completed && c.phase === 'held') this.initialRead(c);
  }

  private fromBackend(c: QuicConn, frame: ParsedFrame): void {
    if (c.phase !== 'steered') return; // a backend has nothing to answer before it got a datagram
    this.stats.strays++;
    if (c.copying) this.readAnswer(c, frame.payload);
    this.relay(c, rewriteToClient(frame.raw, this.natSpec(c)), c.client.ofport, c.backend!.ofport);
  }

  private initialRead(c: QuicConn): void {
    const initial = c.hold!.initial!;
    c.version = initial.version;
    c.dcid = initial.dcid.toString('hex');
    c.scid = initial.scid.toString('hex');
    if (initial.sni !== undefined) c.sni = initial.sni;
    const flow: FlowKey = { srcIp: c.client.ip, srcPort: c.client.port, dstIp: c.serviceL2.ip, dstPort: c.serviceL2.port };
    this.emit('initial', this.describe(c), initial satisfies CompleteInitial, flow);
  }

  // ---------------------------------------------------------------- deciding and steering

  private decide(c: QuicConn, req: QuicVerdictRequest): boolean {
    if (c.phase !== 'held') { this.stats.duplicateVerdicts++; return false; }
    c.phase = 'deciding';
    if (c.timer) { clearTimeout(c.timer); c.timer = undefined; }
    c.verdict = { ...req, at: Date.now() };
    this.stats.verdicts++;
    const s = c.service;
    const target = req.verdict === 'FORWARD' ? s.primary
      : (req.sid !== undefined ? s.sidBackends[String(req.sid)] : undefined) ?? s.migrateTo ?? s.primary;
    this.log.debug('QUIC verdict', { conn: c.id, verdict: req.verdict, source: req.source, sid: req.sid, backend: target });
    this.emit('verdict', this.describe(c), req);
    this.steer(c, target).catch((e) => {
      this.stats.errors++;
      this.log.error('steering a QUIC client failed', { conn: c.id, error: (e as Error).stack ?? String(e) });
    });
    return true;
  }

  private async steer(c: QuicConn, target: string): Promise<void> {
    let name = target;
    let backend: Attached;
    try { backend = await this.locate(c, name); } catch (e) {
      this.stats.locateFailures++;
      if (name === c.service.primary) { this.fail(c, (e as Error).message); return; }
      // The client reached the service address, which the primary owns: it can always go there.
      this.stats.fallbacksToPrimary++;
      this.log.warn('QUIC verdict\'s backend not found; the client goes to the primary', { conn: c.id, backend: name, error: (e as Error).message });
      name = c.service.primary;
      try { backend = await this.locate(c, name); } catch (e2) { this.fail(c, (e2 as Error).message); return; }
    }
    if (!this.byId.has(c.id)) return; // forgotten meanwhile (switch gone)
    c.backendName = name;
    c.backend = backend;
    c.copying = c.service.cidSteering;
    try {
      await c.sw.transact(natFlows(this.natSpec(c), { copyAnswers: c.copying }));
    } catch (e) {
      this.stats.installFailures++;
      this.fail(c, `NAT flows refused: ${(e as Error).message}`);
      return;
    }
    if (!this.byId.has(c.id)) return;
    c.phase = 'steered';
    this.heldDone(c);
    if (c.service.cidSteering) { this.cids.attach(c.group); c.attached = true; }
    this.byBackend.set(key(backend.ip, backend.port, c.client.ip, c.client.port), c);
    const frames = c.hold?.frames ?? [];
    c.hold = undefined;
    const spec = this.natSpec(c);
    for (const f of frames) this.relay(c, rewriteToBackend(f, spec), backend.ofport, c.client.ofport);
    if (name === c.service.primary) this.stats.forwarded++; else this.stats.migrated++;
    this.log.debug('QUIC client steered', { conn: c.id, backend: name, datagrams: frames.length });
    this.emit('steered', this.describe(c));
  }

  // ---------------------------------------------------------------- connection-ID steering

  /**
   * An answer of a steered client's backend (a copy from its NAT flow, or a stray): the SCID of
   * its first long header is the connection ID the client will send to, learnt for the
   * connection; then the copy is taken off the flow.
   */
  private readAnswer(c: QuicConn, payload: Buffer): void {
    if (!c.copying || c.phase !== 'steered') return;
    this.stats.cidCopies++;
    const scid = serverScid(payload);
    if (scid && this.cids.learn(c.service.name, scid, { group: c.group, backend: c.backendName! })) {
      this.stats.cidLearnt++;
      this.log.debug('QUIC server connection ID learnt', { conn: c.id, backend: c.backendName, cid: scid.toString('hex') });
    }
    if (!scid && ++c.copies < MAX_COPIES) return;
    c.copying = false;
    this.send(c.sw, [stopCopying(this.natSpec(c))]);
  }

  /**
   * A short-header packet from an unknown 4-tuple: a client of a known connection that rebinds or
   * moves, if its DCID says so (a learnt CID, else a backend's QUIC-LB server ID). The new tuple
   * gets NAT flows to the same backend, without a verdict; anything else is dropped and counted.
   */
  private follow(sw: SwitchConnection, service: QuicServiceConfig, frame: ParsedFrame, inPort: number): void {
    const ip = frame.ipv4!;
    const udp = frame.udp!;
    const client = `${ip.src}:${udp.srcPort}`;
    const d = steerByDcid(frame.payload, service, this.cids);
    if (!d.steer) { this.dropUnknown(service, client, d.reason); return; }
    if (this.byId.size >= this.opts.maxConnections) {
      this.stats.refusedFull++;
      this.dropLog.warn('quic_full', '*', 'QUIC connection table full; a moved client\'s datagrams are dropped', { tracked: this.byId.size });
      return;
    }
    const id = this.allocId();
    const group = d.how === 'learnt' ? d.group : id;
    if (this.cids.tuples(group) >= this.opts.maxPathsPerConnection) { this.dropUnknown(service, client, 'too_many_paths'); return; }
    const first = this.byId.get(group);
    const c: QuicConn = {
      id, group, via: d.how, copying: false, copies: 0, attached: true, service, sw, dpid: dpidString(sw.features!.datapathId), phase: 'deciding',
      pending: [Buffer.from(frame.raw)], backendName: d.backend, createdAt: Date.now(),
      client: { mac: frame.eth.src, ip: ip.src, port: udp.srcPort, ofport: inPort },
      serviceL2: { mac: frame.eth.dst, ip: ip.dst, port: udp.dstPort },
      ...(first && { version: first.version, dcid: first.dcid, scid: first.scid, sni: first.sni, verdict: first.verdict }),
    };
    for (const k of ['version', 'dcid', 'scid', 'sni', 'verdict'] as const) if (c[k] === undefined) delete c[k];
    this.cids.attach(group);
    // A CID found by its server ID names the connection from now on: its next tuples join this one's group (and its cap).
    if (d.how === 'quic-lb') this.cids.learn(service.name, Buffer.from(d.cid, 'hex'), { group, backend: d.backend });
    this.byClient.set(key(ip.src, udp.srcPort, ip.dst, udp.dstPort), c);
    this.byId.set(id, c);
    this.log.debug('QUIC client followed by its connection ID', { conn: id, group, service: service.name, client, backend: d.backend, how: d.how, cid: d.cid });
    this.followTo(c).catch((e) => {
      this.stats.errors++;
      this.log.error('following a QUIC client failed', { conn: c.id, error: (e as Error).stack ?? String(e) });
    });
  }

  private async followTo(c: QuicConn): Promise<void> {
    let backend: Attached;
    // No fallback to the primary: only the CID's backend knows the connection.
    try { backend = await this.locate(c, c.backendName!); } catch (e) {
      this.stats.locateFailures++;
      this.stats.followFailures++;
      this.fail(c, (e as Error).message);
      return;
    }
    if (!this.byId.has(c.id)) return;
    c.backend = backend;
    try {
      await c.sw.transact(natFlows(this.natSpec(c)));
    } catch (e) {
      this.stats.installFailures++;
      this.stats.followFailures++;
      this.fail(c, `NAT flows refused: ${(e as Error).message}`);
      return;
    }
    if (!this.byId.has(c.id)) return;
    c.phase = 'steered';
    this.byBackend.set(key(backend.ip, backend.port, c.client.ip, c.client.port), c);
    const frames = c.pending ?? [];
    c.pending = undefined;
    const spec = this.natSpec(c);
    for (const f of frames) this.relay(c, rewriteToBackend(f, spec), backend.ofport, c.client.ofport);
    if (c.via === 'learnt') this.stats.followedLearnt++; else this.stats.followedQuicLb++;
    this.log.debug('QUIC client followed to its backend', { conn: c.id, group: c.group, backend: c.backendName, how: c.via, datagrams: frames.length });
    this.emit('followed', this.describe(c));
  }

  private dropUnknown(service: QuicServiceConfig, client: string, reason: QuicDropReason): void {
    this.stats.dropped[reason]++;
    this.log.debug('short-header datagram from an unknown 4-tuple not steered; dropped', { service: service.name, client, reason });
    this.emit('dropped', reason, client);
  }

  /** Where a backend is: config, what the switch has shown, or an ARP probe. */
  private locate(c: QuicConn, name: string): Promise<Attached> {
    const b = c.service.backends.find((x) => x.name === name);
    if (!b) return Promise.reject(new Error(`no backend named '${name}'`));
    // The primary owns the service address: the client's datagram already carried its MAC.
    const seen = this.learning.hosts.get(b.address);
    const known = seen && seen.dpid === c.dpid ? seen : undefined;
    const mac = b.mac ?? (name === c.service.primary ? c.serviceL2.mac : undefined) ?? known?.mac;
    const port = b.switchPort ?? (mac ? this.learning.portForMac(c.dpid, mac) : undefined) ?? (known && (!mac || known.mac === mac) ? known.port : undefined);
    if (mac && port !== undefined) return Promise.resolve({ mac, ip: b.address, port: b.port, ofport: port });
    // One probe per address at a time, however many clients wait for it.
    const k = `${c.dpid}|${b.address}|${b.port}`;
    let p = this.locating.get(k);
    if (!p) {
      p = new Promise<Attached>((resolve, reject) => {
        const onHost = (ip: string, loc: { mac: string; port: number; dpid: string }) => {
          if (ip !== b.address || loc.dpid !== c.dpid) return;
          done();
          resolve({ mac: b.mac ?? loc.mac, ip: b.address, port: b.port, ofport: b.switchPort ?? loc.port });
        };
        const t = setTimeout(() => { done(); reject(new Error(`backend ${b.name} (${b.address}) did not answer ARP`)); }, this.opts.locateTimeoutMs);
        const done = () => { clearTimeout(t); this.learning.off('host', onHost); this.locating.delete(k); };
        this.learning.on('host', onHost);
      });
      this.locating.set(k, p);
      this.send(c.sw, [{ type: 'packet_out', xid: 0, bufferId: OFP_NO_BUFFER, inPort: OFPP.CONTROLLER, actions: [{ type: 'output', port: OFPP.FLOOD }], data: locateProbe(b.address) }]);
    }
    return p;
  }

  /** The client's datagrams cannot go anywhere: dropped; its next Initial (a retransmission) starts afresh. */
  private fail(c: QuicConn, why: string): void {
    this.log.warn('QUIC client not steered; its held datagrams are dropped', { conn: c.id, service: c.service.name, client: endpoint(c.client.ip, c.client.port), why });
    this.emit('failed', this.describe(c), why);
    this.forgetConn(c, why);
  }

  private forgetConn(c: QuicConn, why: string): void {
    if (!this.byId.has(c.id)) return;
    if (c.timer) { clearTimeout(c.timer); c.timer = undefined; }
    this.heldDone(c);
    c.hold = undefined;
    this.byId.delete(c.id);
    this.byClient.delete(key(c.client.ip, c.client.port, c.serviceL2.ip, c.serviceL2.port));
    if (c.attached) { c.attached = false; this.cids.detach(c.group); }
    if (c.backend) {
      const bk = key(c.backend.ip, c.backend.port, c.client.ip, c.client.port);
      if (this.byBackend.get(bk) === c) this.byBackend.delete(bk);
    }
    this.stats.closed++;
    this.emit('closed', this.describe(c), why);
  }

  /** The client no longer counts against the held budgets (once, whichever way it leaves them). */
  private heldDone(c: QuicConn): void {
    if (!c.hold) return;
    this.heldCount--;
    this.heldBytes -= c.hold.bytes;
    const n = (this.heldPerSource.get(c.client.ip) ?? 1) - 1;
    if (n > 0) this.heldPerSource.set(c.client.ip, n); else this.heldPerSource.delete(c.client.ip);
  }

  // ---------------------------------------------------------------- I/O helpers

  private natSpec(c: QuicConn): NatSpec {
    return { id: c.id, idleTimeout: c.service.idleTimeout, client: c.client, service: c.serviceL2, backend: c.backend! };
  }

  private mirror(c: QuicConn, raw: Buffer, inPort: number): void {
    const port = c.service.mirrorPort;
    if (port === undefined) return;
    this.stats.mirrored++;
    this.send(c.sw, [{ type: 'packet_out', xid: 0, bufferId: OFP_NO_BUFFER, inPort, actions: [{ type: 'output', port }], data: raw }]);
  }

  private relay(c: QuicConn, r: { ok: true; value: Buffer } | { ok: false; error: { message: string } }, port: number, inPort: number): void {
    if (!r.ok) { this.stats.errors++; this.log.debug('cannot rewrite a QUIC datagram; dropped', { conn: c.id, error: r.error.message }); return; }
    this.send(c.sw, [{ type: 'packet_out', xid: 0, bufferId: OFP_NO_BUFFER, inPort, actions: [{ type: 'output', port }], data: r.value }]);
  }

  private send(sw: SwitchConnection, msgs: OfpMessage[]): void {
    if (!sw.connected) return;
    try { for (const m of msgs) sw.send(m); } catch (e) { this.log.debug('send to switch failed', { error: (e as Error).message }); }
  }

  private allocId(): number {
    // 48 bits of cookie; on wrap-around, ids still in use are skipped.
    for (;;) {
      if (this.nextId > MAX_ID) this.nextId = 1;
      const id = this.nextId++;
      if (!this.byId.has(id)) return id;
    }
  }

  describe(c: QuicConn): QuicConnView {
    return {
      id: c.id, service: c.service.name, dpid: c.dpid, phase: c.phase,
      client: endpoint(c.client.ip, c.client.port), serviceAddress: endpoint(c.serviceL2.ip, c.serviceL2.port),
      ...(c.backendName !== undefined && { backend: c.backendName }),
      ...(c.backend && { backendAddress: endpoint(c.backend.ip, c.backend.port) }),
      ...(c.version !== undefined && { version: `0x${c.version.toString(16).padStart(8, '0')}` }),
      ...(c.dcid !== undefined && { dcid: c.dcid }), ...(c.scid !== undefined && { scid: c.scid }), ...(c.sni !== undefined && { sni: c.sni }),
      heldDatagrams: c.hold?.frames.length ?? c.pending?.length ?? 0,
      group: c.group, via: c.via,
      ...(c.verdict && { verdict: { ...c.verdict } }),
      createdAt: c.createdAt,
    };
  }
}
