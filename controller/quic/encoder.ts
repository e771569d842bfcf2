/**
 * Building protected Initial packets: enough for tests and integration tests to craft what a
 * QUIC client (or server) would send. Builders are fed by our own code and throw
 * PacketBuildError on an invalid spec, like the packet codec's.
 */
import { PacketBuildError } from '../packet/result.ts';
import { encodeLongHeader } from './header.ts';
import { encodeFrames, type InitialFrame } from './frames.ts';
import { initialKeys, type PacketKeys } from './initial-keys.ts';
import { AEAD_TAG_LEN, packetNumberLength, protectPacket, SAMPLE_LEN } from './protection.ts';
import { varintSize } from './varint.ts';

/** Smallest UDP payload that may carry a client's Initial (RFC 9000 §14.1). */
export const MIN_INITIAL_DATAGRAM = 1200;

export interface InitialSpec {
  version: number;
  dcid: Buffer;
  scid: Buffer;
  token?: Buffer;
  /** Full packet number; encoded on `pnLength` bytes (default: the fewest that decode with nothing acknowledged). */
  pn: number;
  pnLength?: number;
  frames: InitialFrame[];
  /** Pad with PADDING frames until the packet is at least this many bytes. */
  padTo?: number;
  /** Who sends it: selects the client or server Initial keys. Default client. */
  side?: 'client' | 'server';
  /** DCID the keys derive from, when not `dcid` (a server's Initials use the client's original DCID). */
  keyDcid?: Buffer;
  /** Keys to use instead of the Initial keys (e.g. to test a packet that must fail to decrypt). */
  keys?: PacketKeys;
  /** Reserved bits to set (protected, so only visible after decryption). */
  reserved?: number;
}

/** Encodes and protects one Initial packet. */
export function encodeInitial(spec: InitialSpec): Buffer {
  const pnLength = spec.pnLength ?? packetNumberLength(spec.pn);
  if (!Number.isSafeInteger(spec.pn) || spec.pn < 0) throw new PacketBuildError('bad_argument', `packet number ${spec.pn}`);
  let keys = spec.keys;
  if (!keys) {
    const k = initialKeys(spec.version, spec.keyDcid ?? spec.dcid);
    if (!k.ok) throw new PacketBuildError('bad_argument', k.error.message);
    keys = spec.side === 'server' ? k.value.server : k.value.client;
  }
  let payload = encodeFrames(spec.frames);
  // The header protection sample needs 4 bytes after the packet number start plus 16 of ciphertext.
  const minPayload = Math.max(0, 4 - pnLength + SAMPLE_LEN - AEAD_TAG_LEN);
  const header = (len: number) => encodeLongHeader({
    version: spec.version, type: 'initial', dcid: spec.dcid, scid: spec.scid, token: spec.token,
    pnLength, length: len, reserved: spec.reserved, lengthSize: Math.max(2, varintSize(len)),
  });
  let total = header(pnLength + payload.length + AEAD_TAG_LEN).length + pnLength + payload.length + AEAD_TAG_LEN;
  const pad = Math.max(minPayload - payload.length, (spec.padTo ?? 0) - total, 0);
  if (pad > 0) payload = Buffer.concat([payload, Buffer.alloc(pad)]);
  const length = pnLength + payload.length + AEAD_TAG_LEN;
  const h = header(length);
  total = h.length + length;
  const pnBytes = Buffer.alloc(4);
  pnBytes.writeUInt32BE((spec.pn % 2 ** (8 * pnLength)) >>> 0);
  const full = Buffer.concat([h, pnBytes.subarray(4 - pnLength)]);
  const out = protectPacket(full, h.length, spec.pn, payload, keys);
  if (out.length !== total) throw new PacketBuildError('bad_argument', 'internal: packet length mismatch');
  return out;
}

/**
 * A client Initial, padded by default to the 1200 bytes a server requires of the datagram
 * (set `padTo: 0` to build packets to coalesce, then pad the datagram's last one).
 */
export function encodeClientInitial(spec: Omit<InitialSpec, 'side'>): Buffer {
  return encodeInitial({ padTo: MIN_INITIAL_DATAGRAM, ...spec, side: 'client' });
}
