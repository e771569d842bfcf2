/**
 * Result type of the QUIC codec. Same shape as the packet codec's `Result` (and its `ok`), with
 * error kinds of its own: QUIC adds failures the Ethernet/IP codec has no word for (a packet that
 * does not authenticate, a frame an Initial may not carry, a malformed ClientHello, a cap hit).
 */
import { ok } from '../packet/result.ts';

export { ok };

export type QuicErrorKind =
  | 'truncated' // input ends before a field it announces
  | 'bad_value' // a field holds a value the protocol forbids (CID > 20 bytes, non-zero reserved bits)
  | 'unsupported' // well-formed but not decoded here (unknown version, not an Initial)
  | 'decrypt_failed' // the AEAD tag does not verify: wrong keys, corruption or forgery
  | 'bad_frame' // a frame is malformed or not allowed in an Initial packet
  | 'bad_tls' // the TLS ClientHello is malformed
  | 'limit' // input exceeds a cap of this codec (CRYPTO bytes, coalesced packets, ACK ranges)
  | 'bad_argument'; // a helper was given an invalid argument (key of the wrong size)

export interface QuicError {
  kind: QuicErrorKind;
  message: string;
  /** Byte offset in the input where the problem was found, when meaningful. */
  offset?: number;
  /** The packet's version, when the error is about one (e.g. to answer with Version Negotiation). */
  version?: number;
}

export type QuicResult<T> = { ok: true; value: T } | { ok: false; error: QuicError };
export type QuicFailure = { ok: false; error: QuicError };

export function qerr(kind: QuicErrorKind, message: string, offset?: number): QuicFailure {
  const error: QuicError = offset === undefined ? { kind, message } : { kind, message, offset };
  return { ok: false, error };
}

/** Re-bases an error found inside a sub-buffer onto the enclosing input. */
export function shiftError(r: QuicFailure, by: number): QuicFailure {
  if (r.error.offset === undefined) return r;
  return { ok: false, error: { ...r.error, offset: r.error.offset + by } };
}
