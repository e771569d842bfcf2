/**
 * Initial packet protection keys (RFC 9001 §5.1-5.2; v2: RFC 9369 §3.3). Both sides derive them
 * from the DCID of the client's first Initial, so anyone on the path can read an Initial: this
 * protects against off-path tampering only, which is what lets the controller read the SNI.
 */
import { createHmac } from 'node:crypto';
import { ok, qerr, type QuicResult } from './result.ts';
import { MAX_CID_LEN, QUIC_V1, QUIC_V2 } from './header.ts';

export type AeadName = 'aes-128-gcm' | 'chacha20-poly1305';

export interface PacketKeys {
  aead: AeadName;
  key: Buffer;
  iv: Buffer;
  /** Header protection key. */
  hp: Buffer;
}

interface VersionParams {
  salt: Buffer;
  /** Prefix of the "key"/"iv"/"hp"/"ku" labels: v2 uses its own so keys cannot collide with v1's. */
  labelPrefix: string;
}

const PARAMS: Record<number, VersionParams> = {
  [QUIC_V1]: { salt: Buffer.from('38762cf7f55934b34d179ae6a4c80cadccbb7f0a', 'hex'), labelPrefix: 'quic' },
  [QUIC_V2]: { salt: Buffer.from('0dede3def700a6db819381be6e269dcbf9bd2ed9', 'hex'), labelPrefix: 'quicv2' },
};

const AEAD_KEY_LEN: Record<AeadName, number> = { 'aes-128-gcm': 16, 'chacha20-poly1305': 32 };

/** HKDF-Extract with SHA-256 (RFC 5869 §2.2). */
export function hkdfExtract(salt: Buffer, ikm: Buffer): Buffer {
  return createHmac('sha256', salt).update(ikm).digest();
}

/** HKDF-Expand with SHA-256 (RFC 5869 §2.3); node's hkdfSync always extracts first, so it is spelt out. */
export function hkdfExpand(prk: Buffer, info: Buffer, length: number): Buffer {
  const blocks: Buffer[] = [];
  let prev = Buffer.alloc(0);
  for (let i = 1; blocks.length * 32 < length; i++) {
    prev = createHmac('sha256', prk).update(Buffer.concat([prev, info, Buffer.from([i])])).digest();
    blocks.push(prev);
  }
  return Buffer.concat(blocks).subarray(0, length);
}

/** The HkdfLabel structure of TLS 1.3 (RFC 8446 §7.1): length, "tls13 " + label, context. */
export function hkdfLabel(label: string, context: Buffer, length: number): Buffer {
  const full = Buffer.from(`tls13 ${label}`, 'ascii');
  const out = Buffer.alloc(2 + 1 + full.length + 1 + context.length);
  out.writeUInt16BE(length, 0);
  out[2] = full.length;
  full.copy(out, 3);
  out[3 + full.length] = context.length;
  context.copy(out, 4 + full.length);
  return out;
}

export function hkdfExpandLabel(secret: Buffer, label: string, context: Buffer, length: number): Buffer {
  return hkdfExpand(secret, hkdfLabel(label, context, length), length);
}

export interface InitialSecrets {
  initialSecret: Buffer;
  client: Buffer;
  server: Buffer;
}

function versionParams(version: number): QuicResult<VersionParams> {
  const p = PARAMS[version];
  if (!p) {
    const e = qerr('unsupported', `no Initial keys for QUIC version 0x${(version >>> 0).toString(16)}`);
    e.error.version = version;
    return e;
  }
  return ok(p);
}

/** initial_secret and the client/server Initial secrets for a client-chosen DCID. */
export function initialSecrets(version: number, dcid: Buffer): QuicResult<InitialSecrets> {
  const p = versionParams(version);
  if (!p.ok) return p;
  // RFC 9000 §7.2: a client's first DCID is at least 8 bytes, but a server must still accept
  // Initials to a shorter CID it chose itself (after Retry), so only the upper bound is checked.
  if (!Buffer.isBuffer(dcid) || dcid.length > MAX_CID_LEN) return qerr('bad_argument', 'DCID must be a Buffer of at most 20 bytes');
  const initialSecret = hkdfExtract(p.value.salt, dcid);
  return ok({
    initialSecret,
    client: hkdfExpandLabel(initialSecret, 'client in', Buffer.alloc(0), 32),
    server: hkdfExpandLabel(initialSecret, 'server in', Buffer.alloc(0), 32),
  });
}

/** Key, IV and header protection key from a traffic secret (RFC 9001 §5.1). */
export function packetKeysFromSecret(version: number, secret: Buffer, aead: AeadName = 'aes-128-gcm'): QuicResult<PacketKeys> {
  const p = versionParams(version);
  if (!p.ok) return p;
  if (!Buffer.isBuffer(secret)) return qerr('bad_argument', 'secret must be a Buffer');
  if (!Object.hasOwn(AEAD_KEY_LEN, aead)) return qerr('bad_argument', `unknown AEAD ${String(aead)}`);
  const n = AEAD_KEY_LEN[aead];
  const pre = p.value.labelPrefix;
  const empty = Buffer.alloc(0);
  return ok({
    aead,
    key: hkdfExpandLabel(secret, `${pre} key`, empty, n),
    iv: hkdfExpandLabel(secret, `${pre} iv`, empty, 12),
    hp: hkdfExpandLabel(secret, `${pre} hp`, empty, n),
  });
}

/** The secret after a key update (RFC 9001 §6.1); here so the "ku" label is tested with the rest. */
export function nextSecret(version: number, secret: Buffer): QuicResult<Buffer> {
  const p = versionParams(version);
  if (!p.ok) return p;
  if (!Buffer.isBuffer(secret)) return qerr('bad_argument', 'secret must be a Buffer');
  return ok(hkdfExpandLabel(secret, `${p.value.labelPrefix} ku`, Buffer.alloc(0), secret.length));
}

/** Client and server Initial packet keys for `dcid` (AEAD_AES_128_GCM, as Initials always use). */
export function initialKeys(version: number, dcid: Buffer): QuicResult<{ client: PacketKeys; server: PacketKeys }> {
  const s = initialSecrets(version, dcid);
  if (!s.ok) return s;
  const client = packetKeysFromSecret(version, s.value.client);
  const server = packetKeysFromSecret(version, s.value.server);
  if (!client.ok) return client;
  if (!server.ok) return server;
  return ok({ client: client.value, server: server.value });
}
