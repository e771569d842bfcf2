/**
 * Result type shared by every decoder in the packet codec. Decoders never throw past the
 * module boundary: malformed input is a value, not an exception.
 */

export type DecodeErrorKind =
  | 'truncated' // input ends before a header/field it announces
  | 'bad_value' // a field holds a value the protocol forbids (e.g. IHL < 5)
  | 'unsupported' // well-formed but outside what this codec decodes (e.g. ARP for IPv6)
  | 'bad_options' // TCP option list is malformed (len < 2, overrun)
  | 'not_applicable' // a rewrite helper was given a frame of the wrong kind (e.g. UDP for a TCP seq shift)
  | 'bad_argument'; // a helper was given an invalid argument (bad MAC/IP string, port out of range)

export interface DecodeError {
  kind: DecodeErrorKind;
  message: string;
  /** Byte offset in the input where the problem was found, when meaningful. */
  offset?: number;
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: DecodeError };

export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

export function err(kind: DecodeErrorKind, message: string, offset?: number): { ok: false; error: DecodeError } {
  const error: DecodeError = offset === undefined ? { kind, message } : { kind, message, offset };
  return { ok: false, error };
}

/**
 * Thrown by the frame *builders* (never by decoders) when the caller's spec is invalid, e.g.
 * a malformed MAC string or an out-of-range port. Builders are fed by our own code, so a bad
 * spec is a programming error, but it is still a typed error rather than a garbage frame.
 */
export class PacketBuildError extends Error {
  readonly kind: DecodeErrorKind;
  constructor(kind: DecodeErrorKind, message: string) {
    super(message);
    this.name = 'PacketBuildError';
    this.kind = kind;
  }
}

/** Unwraps a Result inside a builder, converting a failure into a PacketBuildError. */
export function unwrapOrThrow<T>(r: Result<T>): T {
  if (r.ok) return r.value;
  throw new PacketBuildError(r.error.kind, r.error.message);
}
