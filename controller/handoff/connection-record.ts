// What a connection's flows carry besides their matches and rewrites, so that a controller that
// (re)connects can rebuild the connection from the switch alone (DESIGN.md §8). It travels in a
// Nicira `note` action on the client → backend flow: the switch keeps it and ignores it.
import { parseIpv6 } from '../packet/addr.ts';
import type { SynAckSummary } from './option-policy.ts';

/** The client's SYN as it went to the first backend (after the option policy): enough to replay it. */
export interface SynRecord {
  /** The client's ISN as a signed 32-bit integer (`| 0`: a small integer to V8, not a boxed double); `>>> 0` reads it. */
  isn: number; window: number;
  /** The option bytes, hex (a string is a fraction of a Buffer's size: half-open entries hold one each). */
  options: string;
  tos: number; ttl: number;
  /** The SYN asked for ECN (ECE and CWR set). */
  ecn?: boolean;
}

export interface ConnectionRecord {
  serviceName: string;
  /** Server 1's MAC as the client sees it. */
  serviceMac: string;
  clientMac: string;
  backendName: string;
  backendMac: string;
  /** Added to the client's ack to land in the backend's sequence space (uint32). */
  ackDelta: number;
  migrations: number;
  createdAt: number;
  /** Absent for connections adopted without their handshake (they cannot be moved again). */
  syn?: SynRecord;
  /** The SYN-ACK the client accepted; later targets must match it. */
  synAck?: SynAckSummary;
  /**
   * The backend the last move left and the sequence number its RST carries (its RCV.NXT): a
   * controller that adopts the connection resets it again, in case the one that moved it stopped
   * before its RST went out (a socket there would otherwise stay ESTABLISHED for ever).
   */
  left?: LeftBackend;
  /**
   * Its conntrack entry still carries the FORWARD mark (forwardVia 'conntrack', then given flows):
   * the controller that moves it must take the mark away first (docs/migration.md).
   */
  conntrackMarked?: boolean;
}

export interface LeftBackend { mac: string; ip: string; port: number; ofport: number; seq: number }

const MAGIC = 'tcp-migrate/1 ';
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** An address as flows and config spell it: a dotted quad, or IPv6 text (written with ':'). */
function isIpAddress(s: unknown): s is string {
  return typeof s === 'string' && (IPV4.test(s) || (s.includes(':') && parseIpv6(s).ok));
}

export class RecordError extends Error {}

export function encodeRecord(r: ConnectionRecord): Buffer {
  const o: Record<string, unknown> = {
    s: r.serviceName, sm: r.serviceMac, cm: r.clientMac, b: r.backendName, bm: r.backendMac,
    d: r.ackDelta >>> 0, n: r.migrations, t: r.createdAt,
  };
  if (r.syn) o.syn = { isn: r.syn.isn >>> 0, w: r.syn.window, o: r.syn.options, tos: r.syn.tos, ttl: r.syn.ttl, ...(r.syn.ecn ? { e: true } : {}) };
  if (r.left) o.l = { m: r.left.mac, i: r.left.ip, p: r.left.port, o: r.left.ofport, q: r.left.seq >>> 0 };
  if (r.conntrackMarked) o.ct = 1;
  if (r.synAck) o.sa = { mss: r.synAck.mss, ws: r.synAck.wscale, sack: r.synAck.sackPermitted, ts: r.synAck.timestamps, ...(r.synAck.ecn ? { ecn: true } : {}) };
  return Buffer.from(MAGIC + JSON.stringify(o), 'utf8');
}

/** Decodes a note written by encodeRecord; the wire's zero padding is ignored. Throws RecordError. */
export function decodeRecord(note: Buffer): ConnectionRecord {
  let end = note.length;
  while (end > 0 && note[end - 1] === 0) end--;
  const text = note.subarray(0, end).toString('utf8');
  if (!text.startsWith(MAGIC)) throw new RecordError(`not a tcp-migrate note (starts ${JSON.stringify(text.slice(0, 16))})`);
  let o: any;
  try { o = JSON.parse(text.slice(MAGIC.length)); } catch (e) { throw new RecordError(`unreadable note: ${(e as Error).message}`); }
  if (typeof o !== 'object' || o === null) throw new RecordError('note is not an object');
  const str = (k: string, re?: RegExp): string => {
    if (typeof o[k] !== 'string' || (re && !re.test(o[k]))) throw new RecordError(`note field ${k}: bad value ${JSON.stringify(o[k])}`);
    return o[k];
  };
  const num = (v: unknown, k: string, max = 0xffffffff): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new RecordError(`note field ${k}: bad value ${JSON.stringify(v)}`);
    return v;
  };
  const r: ConnectionRecord = {
    serviceName: str('s'), serviceMac: str('sm', MAC), clientMac: str('cm', MAC), backendName: str('b'), backendMac: str('bm', MAC),
    ackDelta: num(o.d, 'd'), migrations: num(o.n, 'n'), createdAt: num(o.t, 't', Number.MAX_SAFE_INTEGER),
  };
  if (o.syn !== undefined) {
    const s = o.syn;
    if (typeof s !== 'object' || s === null || typeof s.o !== 'string' || !/^([0-9a-f]{2}){0,40}$/.test(s.o)) throw new RecordError('note field syn: bad value');
    r.syn = { isn: num(s.isn, 'syn.isn') | 0, window: num(s.w, 'syn.w', 0xffff), options: s.o, tos: num(s.tos, 'syn.tos', 0xff), ttl: num(s.ttl, 'syn.ttl', 0xff), ...(s.e === true ? { ecn: true } : {}) };
  }
  if (o.sa !== undefined) {
    const a = o.sa;
    if (typeof a !== 'object' || a === null) throw new RecordError('note field sa: bad value');
    r.synAck = {
      mss: a.mss === undefined ? undefined : num(a.mss, 'sa.mss', 0xffff),
      wscale: a.ws === undefined ? undefined : num(a.ws, 'sa.ws', 14),
      sackPermitted: a.sack === true, timestamps: a.ts === true, ecn: a.ecn === true,
    };
  }
  if (o.l !== undefined) {
    const l = o.l;
    if (typeof l !== 'object' || l === null || typeof l.m !== 'string' || !MAC.test(l.m) || !isIpAddress(l.i)) throw new RecordError('note field l: bad value');
    r.left = { mac: l.m, ip: l.i, port: num(l.p, 'l.p', 0xffff), ofport: num(l.o, 'l.o'), seq: num(l.q, 'l.q') };
  }
  if (o.ct !== undefined && o.ct !== 1) throw new RecordError(`note field ct: bad value ${JSON.stringify(o.ct)}`);
  if (o.ct === 1) r.conntrackMarked = true;
  return r;
}
