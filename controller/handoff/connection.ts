// What the controller knows about one intercepted TCP connection, and the table that holds them.
// Keys: the client → service 5-tuple, and backend → client 5-tuples (current, replay target and
// retired backends, whose stray packets must be dropped rather than reach the client).
import type { ParsedFrame } from '../packet/index.ts';
import type { SwitchConnection } from '../datapath/switch-connection.ts';
import type { ServiceConfig, BackendConfig } from './service-config.ts';
import type { Attached, L2L4, SwitchMode } from './flow-plan.ts';
import type { SynAckSummary } from './option-policy.ts';
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
  /** The client's SYN as it went to server 1 (after the option policy); absent for a connection adopted without its handshake. */
  syn?: Buffer;
  synParsed?: ParsedFrame;
  isnClient: number;
  /** Options of the SYN-ACK the client accepted; every later target must be compatible. */
  acceptedSynAck?: SynAckSummary;
  /** Added to the client's ack to get the current backend's sequence space. */
  ackDelta: number;
  held?: HeldSegment;
  /** Client segments that arrived behind the held one, released after it, in order. */
  queue: Buffer[];
  move?: MoveRequest;
  replay?: Replay;
  retired: string[];
  /** A freeze flow (mid-stream move) is installed and must be removed after the move. */
  frozenByFlow?: boolean;
  /** Intercepted packets since the last flow install (see HandoffEngine.stray). */
  strays?: number;
  createdAt: number;
  migrations: number;
  lastVerdict?: { verdict: string; source: string; sid?: number; at: number };
  /** Rebuilt from the switch's flows, or found without its handshake after a restart. */
  adopted?: boolean;
  /** backend ip:port → timers repeating the RST that freed that backend (move.ts). */
  resetRepeats?: Map<string, NodeJS.Timeout[]>;
  timers: { verdict?: NodeJS.Timeout; idle?: NodeJS.Timeout; close?: NodeJS.Timeout; freeze?: NodeJS.Timeout };
}

export function tupleKey(srcIp: string, srcPort: number, dstIp: string, dstPort: number): string {
  return `${srcIp}:${srcPort}>${dstIp}:${dstPort}`;
}

export class ConnectionTable {
  private readonly byId = new Map<number, Connection>();
  private readonly byClient = new Map<string, Connection>();
  private readonly byBackend = new Map<string, Connection>();
  private nextId = 1;

  constructor(readonly max: number) {}

  get size(): number { return this.byId.size; }
  get full(): boolean { return this.byId.size >= this.max; }
  all(): IterableIterator<Connection> { return this.byId.values(); }
  get(id: number): Connection | undefined { return this.byId.get(id); }
  byClientTuple(key: string): Connection | undefined { return this.byClient.get(key); }
  byBackendTuple(key: string): Connection | undefined { return this.byBackend.get(key); }
  /** Index sizes, for leak checks. */
  sizes(): { connections: number; clientKeys: number; backendKeys: number } {
    return { connections: this.byId.size, clientKeys: this.byClient.size, backendKeys: this.byBackend.size };
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
    // Adopted connections bring their ids with them: new ones must not collide.
    if (c.id >= this.nextId && c.id < 0xffffffffffff) this.nextId = c.id + 1;
    this.byClient.set(clientKey(c), c);
    this.indexBackend(c, c.backend);
  }

  indexBackend(c: Connection, b: L2L4): void { this.byBackend.set(tupleKey(b.ip, b.port, c.client.ip, c.client.port), c); }

  /** Removes a connection and every key pointing at it. */
  remove(c: Connection): void {
    this.byId.delete(c.id);
    if (this.byClient.get(clientKey(c)) === c) this.byClient.delete(clientKey(c));
    for (const k of [tupleKey(c.backend.ip, c.backend.port, c.client.ip, c.client.port), ...c.retired, ...(c.replay ? [tupleKey(c.replay.target.ip, c.replay.target.port, c.client.ip, c.client.port)] : [])]) {
      if (this.byBackend.get(k) === c) this.byBackend.delete(k);
    }
  }
}

export function clientKey(c: Pick<Connection, 'client' | 'serviceL2'>): string {
  return tupleKey(c.client.ip, c.client.port, c.serviceL2.ip, c.serviceL2.port);
}
