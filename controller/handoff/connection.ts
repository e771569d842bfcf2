// What the controller knows about one intercepted TCP connection, and the table that holds them.
// Keys: the client → service 5-tuple, and backend → client 5-tuples (current, replay target,
// speculative replay target and retired backends, whose stray packets must be dropped rather than reach the client).
import type { SwitchConnection } from '../datapath/switch-connection.ts';
import type { ServiceConfig, BackendConfig } from './service-config.ts';
import type { Attached, L2L4, SwitchMode } from './flow-plan.ts';
import type { SynAckSummary } from './option-policy.ts';
import type { LeftBackend, SynRecord } from './connection-record.ts';

/** The backend a connection's last move left, as its state note records it. */
export function leftOf(c: Pick<Connection, 'leftBackend' | 'leftSeq'>): LeftBackend | undefined {
  const b = c.leftBackend;
  return b && c.leftSeq !== undefined ? { mac: b.mac, ip: b.ip, port: b.port, ofport: b.ofport, seq: c.leftSeq >>> 0 } : undefined;
}
import type { TcpTrack } from './tcp-state.ts';

export type Phase =
  | 'handshake'      // SYN seen, handshake going through the controller
  | 'established'    // handshake done, waiting for the client's first data segment
  | 'held'           // a client data segment is held until a verdict
  | 'replaying'      // handshake replayed to the target, waiting for its SYN-ACK
  | 'forwarded'      // flows installed to the current backend (maybe NATed/shifted)
  | 'freezing'       // mid-stream move requested: waiting for the client's next data segment
  | 'closing'        // FIN both ways or RST seen; flows go after a grace period
  | 'closed';

export interface HeldSegment { frame: Buffer; seq: number; ack: number; len: number; window: number; heldAt: number }

export interface MoveRequest {
  target: BackendConfig;
  reason: string;
  requestedAt: number;
  sid?: number;
  midStream: boolean;
}

export interface Replay {
  target: Attached;
  targetName: string;
  isn: number;
  syn: Buffer;
  tries: number;
  timer?: NodeJS.Timeout;
  /** Set once the target's SYN-ACK arrived; repeated SYN-ACKs get the same ACK again. */
  targetIsn?: number;
  ack?: Buffer;
  /** A prepared leg's SYN-ACK options, checked when a verdict makes it the replay. */
  synAck?: SynAckSummary;
}

export interface Connection {
  id: number;
  service: ServiceConfig;
  sw: SwitchConnection;
  dpid: string;
  mode: SwitchMode;
  client: Attached;
  /** The service as the client sees it: server 1's MAC, the service address and port. */
  serviceL2: L2L4;
  backend: Attached;
  backendName: string;
  phase: Phase;
  track: TcpTrack;
  /**
   * The client's SYN as it went to server 1 (after the option policy), as a record rather than a
   * frame (a half-open entry must stay small); absent for a connection adopted without its handshake.
   */
  syn?: SynRecord;
  /** Options of the SYN-ACK the client accepted; every later target must be compatible. */
  acceptedSynAck?: SynAckSummary;
  /**
   * Added to the client's ack to get the current backend's sequence space, mod 2^32. Kept as a
   * signed 32-bit integer (`| 0`): V8 keeps that in the object, where a value ≥ 2^31 would make the
   * field a boxed double in every connection. Read it with `>>> 0` where the unsigned value shows.
   */
  ackDelta: number;
  held?: HeldSegment;
  /** Client segments that arrived behind the held one, released after it, in order (never pushed to: replaced). */
  queue: readonly Buffer[];
  move?: MoveRequest;
  replay?: Replay;
  /**
   * speculativeReplay: the handshake to the service's migrateTo, opened before any verdict (its
   * ISN is the client's, which the first data segment's seq − 1 will be). A MIGRATE verdict to that
   * backend makes it the replay; anything else resets it (move.ts, prepare/abandon).
   */
  prepared?: Replay;
  /** The backend the last move left (shared) and its RST's sequence number (in the state note: see ConnectionRecord.left). */
  leftBackend?: Attached;
  /** Signed 32-bit (`| 0`, as ackDelta); leftOf() gives it unsigned. */
  leftSeq?: number;
  /**
   * Backends the connection left, whose stray packets are dropped (their backend → client keys stay
   * in the table). A shared, frozen list (EngineCore.retire): most connections leave the same one.
   */
  retired: readonly Attached[];
  /** Fabric: the other switches holding transit flows of the connection (transit.ts). */
  transit: readonly string[];
  /**
   * Freeze flows (mid-stream move): `now` installed, to be removed after the move; `past` installed
   * at some point (their roles are among those deleted at the end). One field for both: every
   * connection carries each field (makeConnection), and a half-open entry must stay small.
   */
  freeze?: 'now' | 'past';
  /** When the full freeze went in (the move's segment was held): the splice waits for revalidation after it. */
  fullFreezeAt?: number;
  /** The backend the last mid-stream freeze forwarded (copies of its flows after a move name it). */
  frozenFrom?: string;
  /**
   * The switch has (had) this connection's flows (true); they were sent and not confirmed, the
   * switch refused them or they are on their way (false); none were ever sent (undefined: its end
   * deletes nothing). A connection closing without confirmed flows is passed on by the controller.
   */
  flowsInstalled?: boolean;
  /**
   * forwardVia 'conntrack': `forwards` while its conntrack entry (mark 1) is what forwards it, with
   * no flows of its own; `marked` once it has flows but that entry still carries the mark (it
   * outlived handoff.conntrackFlowsAfterMs, or its service left conntrack); cleared by a move, which
   * takes the mark away. migrateVia 'conntrack': `migrated` while its entry (NAT to the target, mark
   * CT_MIGRATED) is what carries it, with no flows of its own (`marked` once given flows).
   */
  conntrack?: 'forwards' | 'marked' | 'migrated';
  /**
   * Migrated in conntrack and moved again since: where its conntrack entry NATs it (the backend it
   * migrated to), whose two directions its ct-exit flows keep out of ct (flow-plan.ts ctExitFlows).
   */
  ctExit?: { ip: string; port: number };
  /** A flow-stats request is checking whether its flows are really missing (see EngineCore.stray). */
  checkingFlows?: boolean;
  /** Intercepted packets since the last flow install (see HandoffEngine.stray). */
  strays?: number;
  createdAt: number;
  migrations: number;
  /** The last verdict about the connection (shared between connections), and when it came. */
  lastVerdict?: { verdict: string; source: string; sid?: number };
  verdictAt?: number;
  /** Rebuilt from the switch's flows, or found without its handshake after a restart. */
  adopted?: boolean;
  /** backend ip:port → the timer of the next repeat of the RST that freed that backend (move.ts). */
  resetRepeats?: Map<string, NodeJS.Timeout>;
  /** Armed timers (EngineCore.setTimer); undefined when none is. */
  timers?: { verdict?: NodeJS.Timeout; idle?: NodeJS.Timeout; close?: NodeJS.Timeout; freeze?: NodeJS.Timeout };
}

/** What a new connection is given; every other field starts empty. */
export type ConnectionInit = Pick<Connection, 'id' | 'service' | 'sw' | 'dpid' | 'mode' | 'client' | 'serviceL2' | 'backend' | 'backendName' | 'phase' | 'track' | 'ackDelta' | 'createdAt' | 'migrations'>
  & Partial<Pick<Connection, 'syn' | 'acceptedSynAck' | 'adopted' | 'flowsInstalled' | 'leftBackend' | 'leftSeq' | 'conntrack' | 'ctExit'>>;

/** The client's ISN (from its SYN record; none for a connection adopted without its handshake). */
export function clientIsn(c: Pick<Connection, 'syn'>): number | undefined {
  return c.syn === undefined ? undefined : c.syn.isn >>> 0;
}

/** Carried by its conntrack entry alone, with no flows of its own (FORWARDed or migrated in conntrack). */
export function inConntrackOnly(c: Pick<Connection, 'conntrack'>): boolean {
  return c.conntrack === 'forwards' || c.conntrack === 'migrated';
}

/**
 * Every connection gets every field at creation, in one order: one hidden class for all of them,
 * with the fields inside the object. Fields added later would go to a separate, over-allocated
 * property store: about 200 bytes more per connection.
 */
export function makeConnection(i: ConnectionInit): Connection {
  return {
    id: i.id, service: i.service, sw: i.sw, dpid: i.dpid, mode: i.mode, client: i.client, serviceL2: i.serviceL2, backend: i.backend,
    backendName: i.backendName, phase: i.phase, track: i.track, syn: i.syn, acceptedSynAck: i.acceptedSynAck,
    ackDelta: i.ackDelta | 0, held: undefined, queue: NONE, move: undefined, replay: undefined, prepared: undefined, leftBackend: i.leftBackend, leftSeq: i.leftSeq === undefined ? undefined : i.leftSeq | 0, retired: NONE, transit: NONE, freeze: undefined,
    fullFreezeAt: undefined, frozenFrom: undefined, flowsInstalled: i.flowsInstalled, conntrack: i.conntrack, ctExit: i.ctExit, checkingFlows: undefined,
    strays: undefined, createdAt: i.createdAt, migrations: i.migrations, lastVerdict: undefined, verdictAt: undefined, adopted: i.adopted, resetRepeats: undefined,
    timers: undefined,
  };
}

/** What most connections' queue and retired lists are: one shared, frozen empty list (replaced on the first push). */
export const NONE: readonly never[] = Object.freeze([]);

/** ip:port as a map key and as the API shows it, the IPv6 address bracketed ([fd00::2]:40000). */
export function endpointKey(ip: string, port: number): string {
  return ip.includes(':') ? ['[', ip, ']:', port].join('') : [ip, ':', port].join('');
}

/** The address of an endpointKey() text. */
export function endpointIp(text: string): string {
  return text.startsWith('[') ? text.slice(1, text.indexOf(']')) : text.slice(0, text.lastIndexOf(':'));
}

export function tupleKey(srcIp: string, srcPort: number, dstIp: string, dstPort: number): string {
  // join() builds one flat string; a template literal builds a rope of cons strings, which a Map
  // key keeps alive beside its flattened copy (a few hundred bytes per half-open entry).
  // An IPv6 address is bracketed (RFC 3986 style), so its own ':'s never run into the port's.
  const v6s = srcIp.includes(':');
  const v6d = dstIp.includes(':');
  if (!v6s && !v6d) return [srcIp, ':', srcPort, '>', dstIp, ':', dstPort].join('');
  return [v6s ? '[' : '', srcIp, v6s ? ']:' : ':', srcPort, '>', v6d ? '[' : '', dstIp, v6d ? ']:' : ':', dstPort].join('');
}

export interface TableLimits {
  /** Connections past their handshake. */
  max: number;
  /** Connections in their handshake (SYN seen, no ACK yet), in all. */
  halfOpenMax: number;
  /** … and from one client address. */
  halfOpenPerSource: number;
}

export class ConnectionTable {
  private readonly byId = new Map<number, Connection>();
  private readonly byClient = new Map<string, Connection>();
  private readonly byBackend = new Map<string, Connection>();
  /** Connections in their handshake, oldest first: a SYN flood fills this budget, never the other. */
  private readonly halfOpen = new Set<Connection>();
  private readonly halfOpenBySource = new Map<string, number>();
  private nextId = 1;

  constructor(readonly limits: TableLimits) {}

  get max(): number { return this.limits.max; }
  get size(): number { return this.byId.size; }
  /** The budget of connections past their handshake is used up. */
  get full(): boolean { return this.byId.size - this.halfOpen.size >= this.limits.max; }
  get halfOpenCount(): number { return this.halfOpen.size; }
  /** Whether one more handshake from this client address would exceed its own budget. */
  sourceAtBudget(ip: string): boolean { return (this.halfOpenBySource.get(ip) ?? 0) >= this.limits.halfOpenPerSource; }
  /** The oldest handshake in progress, when the half-open budget is used up. */
  halfOpenVictim(): Connection | undefined {
    return this.halfOpen.size >= this.limits.halfOpenMax ? this.halfOpen.values().next().value : undefined;
  }

  /** Handshakes in progress, oldest first. */
  halfOpenOldestFirst(): IterableIterator<Connection> { return this.halfOpen.values(); }

  /** The connection left its handshake (or the table): it no longer counts as half-open. */
  settle(c: Connection): void {
    if (!this.halfOpen.delete(c)) return;
    const n = (this.halfOpenBySource.get(c.client.ip) ?? 1) - 1;
    if (n <= 0) this.halfOpenBySource.delete(c.client.ip); else this.halfOpenBySource.set(c.client.ip, n);
  }
  all(): IterableIterator<Connection> { return this.byId.values(); }
  get(id: number): Connection | undefined { return this.byId.get(id); }
  byClientTuple(key: string): Connection | undefined { return this.byClient.get(key); }
  /**
   * The connection a packet from a backend (src) to a client (dst) belongs to. A backend at the
   * service's own address and port (server 1 whose connection was FORWARDed, or that a MIGRATE left)
   * has no key of its own: its backend → client key is the client's key reversed, so that finds it
   * (one string and one map entry less per connection).
   */
  fromBackend(srcIp: string, srcPort: number, dstIp: string, dstPort: number): Connection | undefined {
    const c = this.byBackend.get(tupleKey(srcIp, srcPort, dstIp, dstPort));
    if (c) return c;
    const r = this.byClient.get(tupleKey(dstIp, dstPort, srcIp, srcPort));
    return r && hadBackendAt(r, srcIp, srcPort) ? r : undefined;
  }
  /** Index sizes, for leak checks. */
  sizes(): { connections: number; clientKeys: number; backendKeys: number; halfOpen: number; halfOpenSources: number } {
    return { connections: this.byId.size, clientKeys: this.byClient.size, backendKeys: this.byBackend.size, halfOpen: this.halfOpen.size, halfOpenSources: this.halfOpenBySource.size };
  }

  allocId(): number {
    // 48-bit ids fit the cookie; wrapping is harmless because closed ids are gone from the switch.
    let id = this.nextId;
    while (this.byId.has(id)) id = id >= 0xffffffffffff ? 1 : id + 1;
    this.nextId = id >= 0xffffffffffff ? 1 : id + 1;
    return id;
  }

  add(c: Connection): void {
    this.byId.set(c.id, c);
    if (c.phase === 'handshake') {
      this.halfOpen.add(c);
      this.halfOpenBySource.set(c.client.ip, (this.halfOpenBySource.get(c.client.ip) ?? 0) + 1);
    }
    // Adopted connections bring their ids with them: new ones must not collide.
    if (c.id >= this.nextId && c.id < 0xffffffffffff) this.nextId = c.id + 1;
    this.byClient.set(clientKey(c), c);
    this.indexBackend(c, c.backend);
  }

  indexBackend(c: Connection, b: L2L4): void {
    if (atService(c, b)) return; // found through the client's key (fromBackend)
    this.byBackend.set(tupleKey(b.ip, b.port, c.client.ip, c.client.port), c);
  }

  /** Removes a connection and every key pointing at it. */
  remove(c: Connection): void {
    this.byId.delete(c.id);
    this.settle(c);
    if (this.byClient.get(clientKey(c)) === c) this.byClient.delete(clientKey(c));
    for (const b of backendsOf(c)) {
      const k = tupleKey(b.ip, b.port, c.client.ip, c.client.port);
      if (this.byBackend.get(k) === c) this.byBackend.delete(k);
    }
  }
}

/** Every backend the connection has a leg to or left: its current one, those it left, a replay's or prepared leg's target. */
function backendsOf(c: Connection): L2L4[] {
  return [c.backend, ...c.retired, ...[c.replay, c.prepared].flatMap((r) => r ? [r.target] : [])];
}

function atService(c: Pick<Connection, 'serviceL2'>, b: { ip: string; port: number }): boolean {
  return b.ip === c.serviceL2.ip && b.port === c.serviceL2.port;
}

/** Whether one of the connection's backends (backendsOf) is at ip:port; on the Packet-In path, so without building the list. */
function hadBackendAt(c: Connection, ip: string, port: number): boolean {
  const at = (b: L2L4 | undefined) => b !== undefined && b.ip === ip && b.port === port;
  return at(c.backend) || c.retired.some(at) || at(c.replay?.target) || at(c.prepared?.target);
}

export function clientKey(c: Pick<Connection, 'client' | 'serviceL2'>): string {
  return tupleKey(c.client.ip, c.client.port, c.serviceL2.ip, c.serviceL2.port);
}
