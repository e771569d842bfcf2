/**
 * Packet protection (RFC 9001 §5.3-5.4): AEAD over the payload with the unprotected header as
 * associated data, then a mask from a sample of the ciphertext over the first byte's low bits
 * and the packet number. Removal runs the same steps backwards.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { PacketBuildError } from '../packet/result.ts';
import { ok, qerr, type QuicResult } from './result.ts';
import { isLongHeader } from './header.ts';
import type { PacketKeys } from './initial-keys.ts';

export const AEAD_TAG_LEN = 16;
export const SAMPLE_LEN = 16;
const KEY_LEN = { 'aes-128-gcm': 16, 'chacha20-poly1305': 32 } as const;

function checkKeys(keys: PacketKeys): string | undefined {
  if (typeof keys !== 'object' || keys === null || !Object.hasOwn(KEY_LEN, keys.aead)) return 'unknown AEAD';
  const n = KEY_LEN[keys.aead];
  if (!Buffer.isBuffer(keys.key) || keys.key.length !== n) return `key must be ${n} bytes`;
  if (!Buffer.isBuffer(keys.hp) || keys.hp.length !== n) return `hp key must be ${n} bytes`;
  if (!Buffer.isBuffer(keys.iv) || keys.iv.length !== 12) return 'iv must be 12 bytes';
  return undefined;
}

/**
 * The 5-byte header protection mask for a 16-byte sample: AES-ECB of the sample (§5.4.3), or
 * ChaCha20 keystream with the sample as counter and nonce (§5.4.4), which is exactly the 16-byte
 * IV node's 'chacha20' cipher takes.
 */
export function headerProtectionMask(keys: PacketKeys, sample: Buffer): QuicResult<Buffer> {
  const bad = checkKeys(keys);
  if (bad) return qerr('bad_argument', bad);
  if (!Buffer.isBuffer(sample) || sample.length !== SAMPLE_LEN) return qerr('bad_argument', `sample must be ${SAMPLE_LEN} bytes`);
  if (keys.aead === 'chacha20-poly1305') {
    const c = createCipheriv('chacha20', keys.hp, sample);
    return ok(c.update(Buffer.alloc(5)));
  }
  const c = createCipheriv('aes-128-ecb', keys.hp, null);
  c.setAutoPadding(false);
  return ok(c.update(sample).subarray(0, 5));
}

// One call per AEAD: node's typings pick the AEAD overload only from a literal algorithm name
// (and type ChaCha20-Poly1305 like CCM, hence the plaintextLength given to setAAD below).
function cipher(keys: PacketKeys, nonce: Buffer) {
  const opts = { authTagLength: AEAD_TAG_LEN };
  return keys.aead === 'chacha20-poly1305'
    ? createCipheriv('chacha20-poly1305', keys.key, nonce, opts)
    : createCipheriv('aes-128-gcm', keys.key, nonce, opts);
}

function decipher(keys: PacketKeys, nonce: Buffer) {
  const opts = { authTagLength: AEAD_TAG_LEN };
  return keys.aead === 'chacha20-poly1305'
    ? createDecipheriv('chacha20-poly1305', keys.key, nonce, opts)
    : createDecipheriv('aes-128-gcm', keys.key, nonce, opts);
}

/** Nonce = IV XOR the packet number left-padded to the IV's length (§5.3). */
export function packetNonce(iv: Buffer, pn: number | bigint): Buffer {
  const nonce = Buffer.from(iv);
  const p = Buffer.alloc(8);
  p.writeBigUInt64BE(BigInt(pn));
  for (let i = 0; i < 8; i++) nonce[4 + i] = nonce[4 + i]! ^ p[i]!;
  return nonce;
}

/**
 * Full packet number from its truncated encoding (RFC 9000 Appendix A.3): the value closest to
 * `largestPn + 1`. With no packet received yet, `largestPn` is -1.
 */
export function decodePacketNumber(largestPn: number, truncatedPn: number, pnBits: number): number {
  const expected = BigInt(largestPn) + 1n;
  const win = 1n << BigInt(pnBits);
  const hwin = win / 2n;
  const mask = win - 1n;
  const candidate = (expected & ~mask) | BigInt(truncatedPn);
  if (candidate <= expected - hwin && candidate < (1n << 62n) - win) return Number(candidate + win);
  if (candidate > expected + hwin && candidate >= win) return Number(candidate - win);
  return Number(candidate);
}

/** Bytes a sender needs to encode `pn` given the largest packet number the peer acknowledged (RFC 9000 A.2). */
export function packetNumberLength(pn: number, largestAcked = -1): number {
  const unacked = pn - largestAcked;
  const bits = Math.floor(Math.log2(unacked)) + 2;
  return Math.min(4, Math.max(1, Math.ceil(bits / 8)));
}

export interface UnprotectedPacket {
  /** The header with protection removed, packet number included (the AEAD's associated data). */
  header: Buffer;
  firstByte: number;
  pnLength: number;
  packetNumber: number;
  /** Short header only: the key phase bit. */
  keyPhase?: boolean;
  payload: Buffer;
}

/**
 * Removes header and payload protection from one packet. `packet` holds exactly that packet
 * (a coalesced datagram must be split first), `pnOffset` is where its packet number starts.
 * The input is not modified.
 */
export function unprotectPacket(packet: Buffer, pnOffset: number, keys: PacketKeys, largestPn = -1): QuicResult<UnprotectedPacket> {
  if (!Buffer.isBuffer(packet)) return qerr('bad_argument', 'not a Buffer');
  const bad = checkKeys(keys);
  if (bad) return qerr('bad_argument', bad);
  if (!Number.isInteger(pnOffset) || pnOffset < 1) return qerr('bad_argument', `packet number offset ${pnOffset}`);
  // The sample starts 4 bytes after the packet number offset whatever the real PN length
  // (§5.4.2), so a packet too short to sample cannot be unprotected at all.
  if (packet.length < pnOffset + 4 + SAMPLE_LEN) return qerr('truncated', `packet of ${packet.length} bytes too short for a header protection sample`, packet.length);
  if (!Number.isSafeInteger(largestPn) || largestPn < -1) return qerr('bad_argument', `largest packet number ${largestPn}`);
  const long = isLongHeader(packet[0]!);
  const m = headerProtectionMask(keys, packet.subarray(pnOffset + 4, pnOffset + 4 + SAMPLE_LEN));
  if (!m.ok) return m;
  const mask = m.value;
  const firstByte = packet[0]! ^ (mask[0]! & (long ? 0x0f : 0x1f));
  const pnLength = (firstByte & 0x03) + 1;
  const header = Buffer.from(packet.subarray(0, pnOffset + pnLength));
  header[0] = firstByte;
  let truncated = 0;
  for (let i = 0; i < pnLength; i++) {
    header[pnOffset + i] = header[pnOffset + i]! ^ mask[1 + i]!;
    truncated = truncated * 256 + header[pnOffset + i]!;
  }
  const packetNumber = decodePacketNumber(largestPn, truncated, pnLength * 8);
  if (packet.length - header.length < AEAD_TAG_LEN) return qerr('truncated', 'no room for the AEAD tag', packet.length);
  const ciphertext = packet.subarray(header.length, packet.length - AEAD_TAG_LEN);
  const tag = packet.subarray(packet.length - AEAD_TAG_LEN);
  let payload: Buffer;
  try {
    const d = decipher(keys, packetNonce(keys.iv, packetNumber));
    d.setAAD(header, { plaintextLength: ciphertext.length });
    d.setAuthTag(tag);
    payload = Buffer.concat([d.update(ciphertext), d.final()]);
  } catch {
    return qerr('decrypt_failed', `packet ${packetNumber} does not authenticate`, 0);
  }
  // Reserved bits are only checked once the packet authenticated (§5.4.1 / RFC 9000 §17.2):
  // before that a non-zero value is indistinguishable from a forged packet.
  const reserved = firstByte & (long ? 0x0c : 0x18);
  if (reserved !== 0) return qerr('bad_value', 'reserved header bits are not zero', 0);
  const out: UnprotectedPacket = { header, firstByte, pnLength, packetNumber, payload };
  if (!long) out.keyPhase = (firstByte & 0x04) !== 0;
  return ok(out);
}

/**
 * Protects a packet: `header` is the unprotected header ending with the `pnLength`-byte packet
 * number (its first byte's low bits say so). Throws PacketBuildError when the payload is too
 * short for a header protection sample; senders pad to avoid that.
 */
export function protectPacket(header: Buffer, pnOffset: number, packetNumber: number, payload: Buffer, keys: PacketKeys): Buffer {
  const bad = checkKeys(keys);
  if (bad) throw new PacketBuildError('bad_argument', bad);
  const pnLength = (header[0]! & 0x03) + 1;
  if (header.length !== pnOffset + pnLength) throw new PacketBuildError('bad_argument', 'header must end with the packet number');
  if (pnLength + payload.length + AEAD_TAG_LEN < 4 + SAMPLE_LEN) {
    throw new PacketBuildError('bad_argument', `payload of ${payload.length} bytes too short to sample; pad to ${4 - pnLength}`);
  }
  const c = cipher(keys, packetNonce(keys.iv, packetNumber));
  c.setAAD(header, { plaintextLength: payload.length });
  const out = Buffer.concat([header, c.update(payload), c.final(), c.getAuthTag()]);
  const m = headerProtectionMask(keys, out.subarray(pnOffset + 4, pnOffset + 4 + SAMPLE_LEN));
  if (!m.ok) throw new PacketBuildError('bad_argument', m.error.message);
  const mask = m.value;
  out[0] = out[0]! ^ (mask[0]! & (isLongHeader(out[0]!) ? 0x0f : 0x1f));
  for (let i = 0; i < pnLength; i++) out[pnOffset + i] = out[pnOffset + i]! ^ mask[1 + i]!;
  return out;
}
