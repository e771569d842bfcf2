// Result type and the typed errors of the OpenFlow codec.
// Decoders never throw past the codec boundary: internal readers throw DecodeFailure, and the
// public entry points (decodeMessage, decodeMatch, ...) turn it into { ok: false, error }.

export type Result<T, E = DecodeError> = { ok: true; value: T } | { ok: false; error: E };

export type DecodeErrorKind = 'truncated' | 'bad_length' | 'bad_version' | 'bad_type' | 'bad_value' | 'unsupported';

export interface DecodeError {
  kind: DecodeErrorKind;
  message: string;
  /** Byte offset (from the start of the buffer given to the public decoder) where decoding failed. */
  offset?: number;
}

export function ok<T>(value: T): Result<T, never> {
  return { ok: true, value };
}

export function err(kind: DecodeErrorKind, message: string, offset?: number): { ok: false; error: DecodeError } {
  return { ok: false, error: offset === undefined ? { kind, message } : { kind, message, offset } };
}

/** Internal: thrown by Reader and the per-type decoders, caught by `guard`. */
export class DecodeFailure extends Error {
  readonly error: DecodeError;
  constructor(kind: DecodeErrorKind, message: string, offset?: number) {
    super(message);
    this.name = 'DecodeFailure';
    this.error = offset === undefined ? { kind, message } : { kind, message, offset };
  }
}

/**
 * Thrown by the encoders when a message cannot be represented on the wire (a value out of
 * range, a malformed MAC/IPv4 string, a set_field with two fields, ...). It is a programming
 * error of the caller, so encoders throw rather than return a Result.
 */
export class OfpEncodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OfpEncodeError';
  }
}

/** Runs a decoder and converts every exception into a typed error (the codec boundary). */
export function guard<T>(fn: () => T): Result<T> {
  try {
    return ok(fn());
  } catch (e) {
    if (e instanceof DecodeFailure) return { ok: false, error: e.error };
    // Anything else is a codec bug; still never let it escape to the caller.
    const message = e instanceof Error ? e.message : String(e);
    return err('bad_value', `internal decoder error: ${message}`);
  }
}
