// Connection-ID steering of QUIC services (docs/quic.md, "Connection-ID steering"), the pure part:
// the QUIC-LB plaintext server-ID decode, the table of server-chosen connection IDs learnt from
// the backends' long headers, and the decision for a short-header packet from an unknown 4-tuple.
// No I/O, no timers; never throws, whatever the bytes.
import { isLongHeader, parseLongHeader } from '../quic/index.ts';

/** The QUIC-LB plaintext layout of a service's CIDs (draft-ietf-quic-load-balancers, no encryption). */
export interface QuicLbConfig {
  /** CID length in bytes (2..20), the length of every CID the backends issue. */
  length: number;
  /** Where the server ID starts (1..; byte 0 is the first octet: config rotation and length). */
  offset: number;
  /** Server ID length in bytes. */
  serverIdLength: number;
}

/** Config rotation 0b111 in the first octet marks a CID no load balancer may route (the draft's "unroutable"). */
const UNROUTABLE = 0b111;
/** Bytes after a short header's DCID at least: 4 (packet number, as the sample assumes) and the 16-byte header-protection sample (RFC 9001 §5.4.2). */
const MIN_AFTER_DCID = 20;

/** The server ID (hex) a CID carries under `lb`, or undefined (too short, unroutable). */
export function quicLbServerId(dcid: Buffer, lb: QuicLbConfig): string | undefined {
  if (dcid.length < lb.length || dcid.length === 0) return undefined;
  if ((dcid[0]! >> 5) === UNROUTABLE) return undefined;
  return dcid.subarray(lb.offset, lb.offset + lb.serverIdLength).toString('hex');
}

/**
 * The SCID a backend chose, from one of its datagrams: the first packet's, if it has a long header
 * that carries one (Initial, Handshake, 0-RTT, Retry; not Version Negotiation, whose SCID echoes
 * the client's). Undefined for a short header or anything unreadable.
 */
export function serverScid(payload: Buffer): Buffer | undefined {
  if (!Buffer.isBuffer(payload) || payload.length === 0 || !isLongHeader(payload[0]!)) return undefined;
  const h = parseLongHeader(payload);
  if (!h.ok || (h.value.form !== 'long' && h.value.form !== 'retry')) return undefined;
  return h.value.scid.length > 0 ? h.value.scid : undefined;
}

/** What a learnt CID points at: the connection (its first 4-tuple's record id) and its backend. */
export interface CidOwner { group: number; backend: string }

export interface CidTableLimits {
  /** CIDs remembered per connection (a server's SCID is one per connection; a Retry adds one). */
  perGroup: number;
  /** CIDs remembered in all. */
  total: number;
}
export const DEFAULT_CID_LIMITS: CidTableLimits = { perGroup: 4, total: 200000 };

/**
 * Server-chosen CIDs of one controller: (service, CID) → connection and backend. A connection
 * ("group") may have several 4-tuples (a client that rebinds); its CIDs live as long as any of
 * them (`attach`/`detach`), so a tuple that idles out does not take the connection's CIDs along.
 */
export class CidTable {
  private readonly byCid = new Map<string, CidOwner>();
  private readonly groups = new Map<number, { cids: string[]; tuples: number }>();
  /** CID length → how many entries have it: the lengths a short header's DCID may have. */
  private readonly lengthCounts = new Map<number, number>();
  constructor(readonly limits: CidTableLimits = DEFAULT_CID_LIMITS) {}

  /** Remembers `cid` for connection `group`; false when it is known already or over a limit. */
  learn(service: string, cid: Buffer, owner: CidOwner): boolean {
    if (cid.length === 0 || cid.length > 20) return false;
    const k = `${service}|${cid.toString('hex')}`;
    if (this.byCid.has(k) || this.byCid.size >= this.limits.total) return false;
    let g = this.groups.get(owner.group);
    if (!g) { g = { cids: [], tuples: 0 }; this.groups.set(owner.group, g); }
    if (g.cids.length >= this.limits.perGroup) return false;
    g.cids.push(k);
    this.byCid.set(k, { ...owner });
    this.lengthCounts.set(cid.length, (this.lengthCounts.get(cid.length) ?? 0) + 1);
    return true;
  }

  /** A 4-tuple of connection `group` starts using it. */
  attach(group: number): void {
    const g = this.groups.get(group);
    if (g) g.tuples++; else this.groups.set(group, { cids: [], tuples: 1 });
  }

  /** A 4-tuple of `group` is gone; with the last one the connection's CIDs are forgotten. */
  detach(group: number): void {
    const g = this.groups.get(group);
    if (!g) return;
    if (--g.tuples > 0) return;
    for (const k of g.cids) {
      this.byCid.delete(k);
      const len = (k.length - k.indexOf('|') - 1) / 2;
      const n = (this.lengthCounts.get(len) ?? 1) - 1;
      if (n > 0) this.lengthCounts.set(len, n); else this.lengthCounts.delete(len);
    }
    this.groups.delete(group);
  }

  /** How many 4-tuples connection `group` has. */
  tuples(group: number): number { return this.groups.get(group)?.tuples ?? 0; }

  /** The owner of the learnt CID at the start of a short header's DCID (every length learnt is tried, longest first). */
  lookup(service: string, payload: Buffer): (CidOwner & { cid: string }) | undefined {
    for (const len of [...this.lengthCounts.keys()].sort((a, b) => b - a)) {
      if (payload.length < 1 + len) continue;
      const cid = payload.subarray(1, 1 + len).toString('hex');
      const o = this.byCid.get(`${service}|${cid}`);
      if (o) return { ...o, cid };
    }
    return undefined;
  }

  get size(): { cids: number; groups: number } { return { cids: this.byCid.size, groups: this.groups.size }; }
}

/** Why a short-header packet from an unknown 4-tuple is not steered (dropped, counted). */
export type CidDropReason =
  /** Too short to be a 1-RTT packet with any CID length the service knows (noise, or empty). */
  | 'short_header'
  /** A DCID no learnt CID and no backend's QUIC-LB server ID explains (a stateless reset, a forgotten connection, noise). */
  | 'unknown_cid';

export type CidDecision =
  | { steer: true; backend: string; how: 'learnt'; group: number; cid: string }
  | { steer: true; backend: string; how: 'quic-lb'; cid: string }
  | { steer: false; reason: CidDropReason };

/** What the decision needs of a service: its name, its QUIC-LB layout, and its backends' server IDs. */
export interface CidService { name: string; cid?: QuicLbConfig; backends: { name: string; serverId?: string }[] }

/**
 * The backend of a short-header packet (the UDP payload) from an unknown 4-tuple: a learnt CID
 * first (it names the connection), else the QUIC-LB server ID at the configured offset.
 */
export function steerByDcid(payload: Buffer, service: CidService, table: CidTable): CidDecision {
  if (!Buffer.isBuffer(payload) || payload.length === 0 || isLongHeader(payload[0]!)) return { steer: false, reason: 'short_header' };
  const learnt = table.lookup(service.name, payload);
  if (learnt && payload.length >= 1 + learnt.cid.length / 2 + MIN_AFTER_DCID) {
    return { steer: true, backend: learnt.backend, how: 'learnt', group: learnt.group, cid: learnt.cid };
  }
  const lb = service.cid;
  if (lb && payload.length >= 1 + lb.length + MIN_AFTER_DCID) {
    const dcid = payload.subarray(1, 1 + lb.length);
    const id = quicLbServerId(dcid, lb);
    const b = id === undefined ? undefined : service.backends.find((x) => x.serverId === id);
    if (b) return { steer: true, backend: b.name, how: 'quic-lb', cid: dcid.toString('hex') };
    return { steer: false, reason: 'unknown_cid' };
  }
  // A 1-RTT packet has at least a packet number and a header-protection sample after its DCID.
  return { steer: false, reason: payload.length >= 1 + MIN_AFTER_DCID ? 'unknown_cid' : 'short_header' };
}
