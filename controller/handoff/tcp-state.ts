// TCP connection state as seen from the middle (RFC 9293 §3.3.2), one state per endpoint.
// The controller sees SYN/SYN-ACK/ACK during interception and FIN/RST copies afterwards, so this
// tracks what those segments imply; it never rejects a segment (the endpoints do that).
import type { ParsedFrame } from '../packet/index.ts';
export type EndpointState =
  | 'CLOSED' | 'LISTEN' | 'SYN_SENT' | 'SYN_RECEIVED' | 'ESTABLISHED'
  | 'FIN_WAIT_1' | 'FIN_WAIT_2' | 'CLOSING' | 'TIME_WAIT' | 'CLOSE_WAIT' | 'LAST_ACK';

export interface TcpTrack {
  client: EndpointState;
  server: EndpointState;
  /** Sequence number of each side's FIN, to recognise the ACK that acknowledges it. */
  clientFinSeq?: number;
  serverFinSeq?: number;
}

export type Direction = 'c2s' | 's2c';
export interface SegmentInfo { syn: boolean; ack: boolean; fin: boolean; rst: boolean; seq: number; ackNo: number; payloadLength: number }

/** What the state machine needs of a parsed TCP frame. */
export function segmentInfo(f: ParsedFrame): SegmentInfo {
  const t = f.tcp!;
  return { syn: t.flagSet.syn, ack: t.flagSet.ack, fin: t.flagSet.fin, rst: t.flagSet.rst, seq: t.seq, ackNo: t.ack, payloadLength: f.payload.length };
}

export function initialTrack(): TcpTrack { return { client: 'CLOSED', server: 'LISTEN' }; }

/** Pure transition: the states after one segment travelling in `dir`. */
export function observe(t: TcpTrack, dir: Direction, s: SegmentInfo): TcpTrack {
  const next: TcpTrack = { ...t };
  const [me, peer] = dir === 'c2s' ? (['client', 'server'] as const) : (['server', 'client'] as const);
  const myFin = dir === 'c2s' ? 'clientFinSeq' : 'serverFinSeq';
  const peerFin = dir === 'c2s' ? 'serverFinSeq' : 'clientFinSeq';
  if (s.rst) { next.client = 'CLOSED'; next.server = 'CLOSED'; return next; }
  if (s.syn && !s.ack) {
    if (dir === 'c2s') { next.client = 'SYN_SENT'; if (next.server === 'CLOSED') next.server = 'LISTEN'; }
    return next;
  }
  if (s.syn && s.ack) {
    next[me] = 'SYN_RECEIVED';
    return next;
  }
  // An ACK of the peer's FIN moves the peer along its close sequence.
  const finSeq = t[peerFin];
  if (s.ack && finSeq !== undefined && ((s.ackNo - ((finSeq + 1) >>> 0)) | 0) >= 0) {
    const p = next[peer];
    if (p === 'FIN_WAIT_1') next[peer] = 'FIN_WAIT_2';
    else if (p === 'CLOSING') next[peer] = 'TIME_WAIT';
    else if (p === 'LAST_ACK') next[peer] = 'CLOSED';
  }
  if (s.ack) {
    if (next[me] === 'SYN_SENT') next[me] = 'ESTABLISHED';
    if (next[peer] === 'SYN_RECEIVED') next[peer] = 'ESTABLISHED';
  }
  if (s.fin) {
    next[myFin] = (s.seq + s.payloadLength) >>> 0;
    const m = next[me];
    if (m === 'ESTABLISHED' || m === 'SYN_RECEIVED' || m === 'SYN_SENT') next[me] = 'FIN_WAIT_1';
    else if (m === 'CLOSE_WAIT') next[me] = 'LAST_ACK';
    const p = next[peer];
    if (p === 'ESTABLISHED') next[peer] = 'CLOSE_WAIT';
    else if (p === 'FIN_WAIT_1') next[peer] = 'CLOSING';
    else if (p === 'FIN_WAIT_2') next[peer] = 'TIME_WAIT';
  }
  return next;
}

/** Both halves closed (or one side reset): the connection's flows can go. */
export function isFinished(t: TcpTrack): boolean {
  const done = (s: EndpointState) => s === 'CLOSED' || s === 'TIME_WAIT';
  return done(t.client) && done(t.server);
}

/** Both sides have sent a FIN: only the final ACKs are left to cross. */
export function bothFinSent(t: TcpTrack): boolean { return t.clientFinSeq !== undefined && t.serverFinSeq !== undefined; }
