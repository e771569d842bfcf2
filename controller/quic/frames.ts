/**
 * Frames of a decrypted Initial packet (RFC 9000 §19, Table 3). An Initial may carry only
 * PADDING, PING, ACK, CRYPTO and CONNECTION_CLOSE (transport variant); anything else is a
 * PROTOCOL_VIOLATION for the endpoint, and an error here.
 */
import { PacketBuildError } from '../packet/result.ts';
import { ok, qerr, type QuicResult } from './result.ts';
import { decodeVarint, encodeVarint, varintSize } from './varint.ts';

export const FRAME_PADDING = 0x00;
export const FRAME_PING = 0x01;
export const FRAME_ACK = 0x02;
export const FRAME_ACK_ECN = 0x03;
export const FRAME_CRYPTO = 0x06;
export const FRAME_CONNECTION_CLOSE = 0x1c;

/** More ACK ranges than any Initial needs; bounds the work on a hostile frame. */
export const MAX_ACK_RANGES = 256;

export interface AckRange {
  gap: number;
  length: number;
}

export type InitialFrame =
  /** A run of consecutive PADDING bytes, collapsed into one entry. */
  | { type: 'padding'; length: number }
  | { type: 'ping' }
  | { type: 'ack'; largest: number; delay: number; firstRange: number; ranges: AckRange[]; ecn?: { ect0: number; ect1: number; ce: number } }
  | { type: 'crypto'; offset: number; data: Buffer }
  | { type: 'connection_close'; errorCode: number; frameType: number; reason: Buffer };

/** Parses every frame in a decrypted Initial payload. */
export function parseInitialFrames(payload: Buffer): QuicResult<InitialFrame[]> {
  if (!Buffer.isBuffer(payload)) return qerr('bad_argument', 'not a Buffer');
  // RFC 9000 §12.4: a packet with no frames is a PROTOCOL_VIOLATION.
  if (payload.length === 0) return qerr('bad_frame', 'packet payload holds no frames', 0);
  const frames: InitialFrame[] = [];
  let at = 0;
  const end = payload.length;
  const v = (): QuicResult<number> => {
    const r = decodeVarint(payload, at, end);
    if (!r.ok) return r;
    at += r.value.length;
    return ok(r.value.value);
  };
  while (at < end) {
    const start = at;
    const t = decodeVarint(payload, at, end);
    if (!t.ok) return t;
    // §12.4: frame types use the shortest encoding; a padded one is a way to slip past filters.
    if (t.value.length !== varintSize(t.value.value)) return qerr('bad_frame', 'frame type not minimally encoded', start);
    at += t.value.length;
    const type = t.value.value;
    switch (type) {
      case FRAME_PADDING: {
        while (at < end && payload[at] === 0) at++;
        const last = frames[frames.length - 1];
        if (last?.type === 'padding') last.length += at - start;
        else frames.push({ type: 'padding', length: at - start });
        break;
      }
      case FRAME_PING:
        frames.push({ type: 'ping' });
        break;
      case FRAME_ACK:
      case FRAME_ACK_ECN: {
        const largest = v(); if (!largest.ok) return largest;
        const delay = v(); if (!delay.ok) return delay;
        const count = v(); if (!count.ok) return count;
        const first = v(); if (!first.ok) return first;
        if (count.value > MAX_ACK_RANGES) return qerr('limit', `ACK with ${count.value} ranges (cap ${MAX_ACK_RANGES})`, start);
        // Each range walks down from the largest; going below 0 is a FRAME_ENCODING_ERROR.
        let smallest = largest.value - first.value;
        if (smallest < 0) return qerr('bad_frame', 'ACK first range below packet number 0', start);
        const ranges: AckRange[] = [];
        for (let i = 0; i < count.value; i++) {
          const gap = v(); if (!gap.ok) return gap;
          const length = v(); if (!length.ok) return length;
          smallest = smallest - gap.value - 2 - length.value;
          if (smallest < 0) return qerr('bad_frame', 'ACK range below packet number 0', start);
          ranges.push({ gap: gap.value, length: length.value });
        }
        const f: InitialFrame = { type: 'ack', largest: largest.value, delay: delay.value, firstRange: first.value, ranges };
        if (type === FRAME_ACK_ECN) {
          const ect0 = v(); if (!ect0.ok) return ect0;
          const ect1 = v(); if (!ect1.ok) return ect1;
          const ce = v(); if (!ce.ok) return ce;
          f.ecn = { ect0: ect0.value, ect1: ect1.value, ce: ce.value };
        }
        frames.push(f);
        break;
      }
      case FRAME_CRYPTO: {
        const offset = v(); if (!offset.ok) return offset;
        const length = v(); if (!length.ok) return length;
        if (length.value > end - at) return qerr('truncated', `CRYPTO data of ${length.value} bytes overruns the packet`, at);
        frames.push({ type: 'crypto', offset: offset.value, data: Buffer.from(payload.subarray(at, at + length.value)) });
        at += length.value;
        break;
      }
      case FRAME_CONNECTION_CLOSE: {
        const errorCode = v(); if (!errorCode.ok) return errorCode;
        const frameType = v(); if (!frameType.ok) return frameType;
        const len = v(); if (!len.ok) return len;
        if (len.value > end - at) return qerr('truncated', `reason phrase of ${len.value} bytes overruns the packet`, at);
        frames.push({ type: 'connection_close', errorCode: errorCode.value, frameType: frameType.value, reason: Buffer.from(payload.subarray(at, at + len.value)) });
        at += len.value;
        break;
      }
      default:
        return qerr('bad_frame', `frame type 0x${type.toString(16)} is not allowed in an Initial packet`, start);
    }
  }
  return ok(frames);
}

/** Encodes frames; a padding entry becomes `length` zero bytes. */
export function encodeFrames(frames: readonly InitialFrame[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of frames) {
    switch (f.type) {
      case 'padding':
        if (!Number.isInteger(f.length) || f.length < 1) throw new PacketBuildError('bad_argument', `padding length ${f.length}`);
        parts.push(Buffer.alloc(f.length));
        break;
      case 'ping':
        parts.push(Buffer.from([FRAME_PING]));
        break;
      case 'ack':
        parts.push(
          encodeVarint(f.ecn ? FRAME_ACK_ECN : FRAME_ACK), encodeVarint(f.largest), encodeVarint(f.delay),
          encodeVarint(f.ranges.length), encodeVarint(f.firstRange),
          ...f.ranges.flatMap((r) => [encodeVarint(r.gap), encodeVarint(r.length)]),
          ...(f.ecn ? [encodeVarint(f.ecn.ect0), encodeVarint(f.ecn.ect1), encodeVarint(f.ecn.ce)] : []),
        );
        break;
      case 'crypto':
        parts.push(encodeVarint(FRAME_CRYPTO), encodeVarint(f.offset), encodeVarint(f.data.length), f.data);
        break;
      case 'connection_close':
        parts.push(encodeVarint(FRAME_CONNECTION_CLOSE), encodeVarint(f.errorCode), encodeVarint(f.frameType), encodeVarint(f.reason.length), f.reason);
        break;
    }
  }
  return Buffer.concat(parts);
}
