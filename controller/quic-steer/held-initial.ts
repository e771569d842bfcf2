// A client's first datagrams to a QUIC service, held until a verdict: what the codec makes of
// them (ClientInitialAssembler: a ClientHello may span datagrams) and the datagrams themselves,
// within caps. Pure: no timers, no I/O; never throws, whatever the bytes.
import { ClientInitialAssembler, isLongHeader, MIN_INITIAL_DATAGRAM, type ClientInitialProgress, type QuicError } from '../quic/index.ts';

export type CompleteInitial = Extract<ClientInitialProgress, { status: 'complete' }>;

/** Why a datagram from an unknown client is not held (each one counted; none is forwarded). */
export type DropReason =
  /** Empty payload, or a first byte with the form bit 0: a short header (or noise) from an unknown 4-tuple. */
  | 'short_header'
  /** A long header below the 1200 bytes a client's Initial datagram must have (RFC 9000 §14.1). */
  | 'too_small'
  /** A version the codec does not decode (no Version Negotiation is sent). */
  | 'unsupported_version'
  /** A well-formed long header that does not open a connection: Handshake, 0-RTT, Retry, Version Negotiation. */
  | 'not_initial'
  /** An Initial that does not decode: truncated, not authentic, bad frames or ClientHello, over a codec cap. */
  | 'bad_initial';

export const DROP_REASONS: readonly DropReason[] = ['short_header', 'too_small', 'unsupported_version', 'not_initial', 'bad_initial'];

export interface HoldLimits {
  /** Datagrams held per client at most (the codec reads at most 8 before the ClientHello is complete). */
  maxDatagrams: number;
  /** Bytes of frames held per client at most. */
  maxBytes: number;
}
export const DEFAULT_HOLD_LIMITS: HoldLimits = { maxDatagrams: 16, maxBytes: 64 * 1024 };

/**
 * need_more: the ClientHello continues in a later datagram. complete: read whole (the verdict's
 * input). unreadable: a later datagram broke what the first one started (the codec's errors are
 * final); analyzers other than the built-in matcher, or the timeout, decide.
 */
export type HoldStatus = 'need_more' | 'complete' | 'unreadable';

export type AddResult =
  | { held: true; completed: boolean }
  /** cap: over the hold limits; unreadable: the datagram that broke the Initial. */
  | { held: false; why: 'cap' | 'unreadable' };

export class HeldInitial {
  readonly frames: Buffer[] = [];
  bytes = 0;
  status: HoldStatus = 'need_more';
  initial?: CompleteInitial;
  error?: QuicError;
  private readonly asm = new ClientInitialAssembler();

  private constructor(private readonly limits: HoldLimits) {}

  /**
   * The first datagram of an unknown client: held when it starts a client Initial (complete or
   * not), else the reason it is dropped. `frame` is the whole Ethernet frame, `payload` its UDP payload.
   */
  static start(frame: Buffer, payload: Buffer, limits: HoldLimits = DEFAULT_HOLD_LIMITS): { ok: true; held: HeldInitial } | { ok: false; reason: DropReason; error?: QuicError } {
    if (!Buffer.isBuffer(payload) || payload.length === 0 || !isLongHeader(payload[0]!)) return { ok: false, reason: 'short_header' };
    if (payload.length < MIN_INITIAL_DATAGRAM) return { ok: false, reason: 'too_small' };
    if (frame.length > limits.maxBytes || limits.maxDatagrams < 1) return { ok: false, reason: 'bad_initial', error: { kind: 'limit', message: 'datagram larger than the hold limit' } };
    const h = new HeldInitial(limits);
    const r = h.asm.push(payload);
    if (!r.ok) {
      const e = r.error;
      const reason: DropReason = e.kind === 'unsupported' ? (e.version !== undefined ? 'unsupported_version' : 'not_initial') : 'bad_initial';
      return { ok: false, reason, error: e };
    }
    h.keep(frame);
    h.note(r.value);
    return { ok: true, held: h };
  }

  /**
   * A later datagram of the same client. While the ClientHello is incomplete it goes to the
   * codec; afterwards (retransmissions, coalesced 0-RTT) it is only held, for the backend.
   */
  add(frame: Buffer, payload: Buffer): AddResult {
    if (this.frames.length >= this.limits.maxDatagrams || this.bytes + frame.length > this.limits.maxBytes) return { held: false, why: 'cap' };
    if (this.status !== 'need_more') { this.keep(frame); return { held: true, completed: false }; }
    const r = this.asm.push(payload);
    if (!r.ok) {
      this.status = 'unreadable';
      this.error = r.error;
      return { held: false, why: 'unreadable' };
    }
    this.keep(frame);
    this.note(r.value);
    return { held: true, completed: (this.status as HoldStatus) === 'complete' };
  }

  private keep(frame: Buffer): void {
    // Its own copy: a Packet-In's buffer is a slice of the channel's read buffer.
    const own = Buffer.allocUnsafeSlow(frame.length);
    frame.copy(own);
    this.frames.push(own);
    this.bytes += own.length;
  }

  private note(p: ClientInitialProgress): void {
    if (p.status === 'complete') { this.status = 'complete'; this.initial = p; }
  }
}
