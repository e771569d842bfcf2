/**
 * Retry packets (RFC 9000 §17.2.5): recognised, and their integrity tag checked (RFC 9001
 * §5.8, v2: RFC 9369 §3.3.3), so that a Retry forged by an off-path host is not mistaken for
 * the server's.
 */
import { createCipheriv, timingSafeEqual } from 'node:crypto';
import { ok, qerr, type QuicResult } from './result.ts';
import { longTypeBits, MAX_CID_LEN, parseLongHeader, QUIC_V1, QUIC_V2, RETRY_TAG_LEN, type RetryHeader } from './header.ts';

// Fixed, published key and nonce: the tag proves the sender saw the client's Initial, not a secret.
const RETRY_AEAD: Record<number, { key: Buffer; nonce: Buffer }> = {
  [QUIC_V1]: { key: Buffer.from('be0c690b9f66575a1d766b54e368c84e', 'hex'), nonce: Buffer.from('461599d35d632bf2239825bb', 'hex') },
  [QUIC_V2]: { key: Buffer.from('8fb4b01b56ac48e260fbcbcead7ccc92', 'hex'), nonce: Buffer.from('d86969bc2d7c6d9990efb04a', 'hex') },
};

/** The tag over the Retry pseudo-packet: ODCID length, ODCID, then the Retry packet without its tag. */
export function retryIntegrityTag(version: number, odcid: Buffer, retryWithoutTag: Buffer): QuicResult<Buffer> {
  const p = RETRY_AEAD[version];
  if (!p) return qerr('unsupported', `no Retry integrity key for version 0x${(version >>> 0).toString(16)}`);
  if (!Buffer.isBuffer(odcid) || odcid.length > MAX_CID_LEN) return qerr('bad_argument', 'ODCID must be a Buffer of at most 20 bytes');
  if (!Buffer.isBuffer(retryWithoutTag)) return qerr('bad_argument', 'not a Buffer');
  const c = createCipheriv('aes-128-gcm', p.key, p.nonce);
  c.setAAD(Buffer.concat([Buffer.from([odcid.length]), odcid, retryWithoutTag]));
  c.final();
  return ok(c.getAuthTag());
}

/** Parses a Retry packet and checks its integrity tag against the client's original DCID. */
export function verifyRetry(packet: Buffer, odcid: Buffer): QuicResult<RetryHeader> {
  const h = parseLongHeader(packet);
  if (!h.ok) return h;
  if (h.value.form !== 'retry') return qerr('unsupported', `not a Retry packet (${h.value.form})`, 0);
  const tag = retryIntegrityTag(h.value.version, odcid, packet.subarray(0, packet.length - RETRY_TAG_LEN));
  if (!tag.ok) return tag;
  if (!timingSafeEqual(tag.value, h.value.integrityTag)) return qerr('decrypt_failed', 'Retry integrity tag does not verify', packet.length - RETRY_TAG_LEN);
  return ok(h.value);
}

/** Builds a Retry packet with its integrity tag (for tests and for a later stateless-retry path). */
export function encodeRetry(spec: { version: number; dcid: Buffer; scid: Buffer; token: Buffer; odcid: Buffer; /** The 4 unused low bits of the first byte. */ unused?: number }): QuicResult<Buffer> {
  const bits = longTypeBits(spec.version, 'retry');
  if (bits === undefined) return qerr('unsupported', `unknown QUIC version 0x${(spec.version >>> 0).toString(16)}`);
  if (!Buffer.isBuffer(spec.token)) return qerr('bad_argument', 'token must be a Buffer');
  if (!Buffer.isBuffer(spec.dcid) || !Buffer.isBuffer(spec.scid) || spec.dcid.length > MAX_CID_LEN || spec.scid.length > MAX_CID_LEN) return qerr('bad_argument', 'connection ID longer than 20 bytes');
  const version = Buffer.alloc(4);
  version.writeUInt32BE(spec.version >>> 0);
  const body = Buffer.concat([
    Buffer.from([0xc0 | (bits << 4) | ((spec.unused ?? 0) & 0x0f)]), version, Buffer.from([spec.dcid.length]), spec.dcid, Buffer.from([spec.scid.length]), spec.scid, spec.token,
  ]);
  const tag = retryIntegrityTag(spec.version, spec.odcid, body);
  if (!tag.ok) return tag;
  return ok(Buffer.concat([body, tag.value]));
}
