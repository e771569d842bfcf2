/**
 * The TLS 1.3 ClientHello a QUIC client sends in its Initial CRYPTO stream (RFC 8446 §4.1.2):
 * what a steering decision may use (SNI, ALPN, versions, presence of QUIC transport
 * parameters). Nothing is validated beyond what that needs and what keeps the reading
 * unambiguous: a duplicated extension or a second host name is an error, not a choice.
 */
import { randomBytes } from 'node:crypto';
import { PacketBuildError } from '../packet/result.ts';
import { ok, qerr, type QuicResult } from './result.ts';
import { MAX_CRYPTO_BYTES } from './crypto-stream.ts';

export const HANDSHAKE_CLIENT_HELLO = 1;
export const EXT_SERVER_NAME = 0;
export const EXT_ALPN = 16;
export const EXT_SUPPORTED_VERSIONS = 43;
export const EXT_KEY_SHARE = 51;
export const EXT_QUIC_TRANSPORT_PARAMETERS = 57;
/** Codepoint of drafts 27-34, still sent by some clients alongside or instead of 57. */
export const EXT_QUIC_TRANSPORT_PARAMETERS_DRAFT = 0xffa5;
/** Extensions kept at most: TLS has a few dozen types; more is abuse. */
export const MAX_EXTENSIONS = 64;

export interface TlsExtension {
  type: number;
  data: Buffer;
}

export interface ClientHello {
  legacyVersion: number;
  random: Buffer;
  /** Must be empty under QUIC (RFC 9001 §8.4); reported, not enforced. */
  sessionId: Buffer;
  cipherSuites: number[];
  compressionMethods: number[];
  /** In wire order. */
  extensions: TlsExtension[];
  /** The host_name of server_name, as sent (no case folding). */
  sni?: string;
  /** ALPN protocol IDs in the client's order, bytes as latin1 characters. */
  alpn: string[];
  /** supported_versions, e.g. 0x0304 for TLS 1.3; empty when absent. */
  supportedVersions: number[];
  /** quic_transport_parameters (57, or the draft codepoint 0xffa5) is present. */
  hasQuicTransportParameters: boolean;
}

export type ClientHelloProgress =
  | { complete: false; /** Bytes the whole message needs, once its header was seen. */ needed?: number }
  | { complete: true; hello: ClientHello; /** Bytes of the handshake message (header included). */ length: number };

/** A bounds-checked reader over one vector; every read says whether it fit. */
class Reader {
  constructor(readonly buf: Buffer, public at: number, readonly end: number) {}
  left(): number {
    return this.end - this.at;
  }
  u8(): number | undefined {
    return this.at + 1 <= this.end ? this.buf[this.at++] : undefined;
  }
  u16(): number | undefined {
    if (this.at + 2 > this.end) return undefined;
    const v = this.buf.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }
  bytes(n: number): Buffer | undefined {
    if (this.at + n > this.end) return undefined;
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }
  /** A vector with a `lenBytes`-byte length prefix. */
  vec(lenBytes: 1 | 2): Buffer | undefined {
    const n = lenBytes === 1 ? this.u8() : this.u16();
    return n === undefined ? undefined : this.bytes(n);
  }
}

/**
 * Reads a ClientHello from the start of the Initial CRYPTO stream. Until the whole message is
 * there, the answer is "need more" (not an error): the SNI may sit after a key share that only
 * the next packet completes, and extensions can come in any order.
 */
export function readClientHello(stream: Buffer): QuicResult<ClientHelloProgress> {
  if (!Buffer.isBuffer(stream)) return qerr('bad_argument', 'not a Buffer');
  if (stream.length < 1) return ok({ complete: false });
  if (stream[0] !== HANDSHAKE_CLIENT_HELLO) return qerr('bad_tls', `handshake message type ${stream[0]} is not ClientHello`, 0);
  if (stream.length < 4) return ok({ complete: false });
  const len = stream.readUIntBE(1, 3);
  if (4 + len > MAX_CRYPTO_BYTES) return qerr('limit', `ClientHello of ${len} bytes exceeds the ${MAX_CRYPTO_BYTES}-byte cap`, 1);
  if (stream.length < 4 + len) return ok({ complete: false, needed: 4 + len });
  const hello = parseClientHelloBody(stream, 4, 4 + len);
  if (!hello.ok) return hello;
  return ok({ complete: true, hello: hello.value, length: 4 + len });
}

/** Parses a complete ClientHello handshake message (header included). */
export function parseClientHello(msg: Buffer): QuicResult<ClientHello> {
  const r = readClientHello(msg);
  if (!r.ok) return r;
  if (!r.value.complete) return qerr('truncated', 'ClientHello is incomplete', msg.length);
  return ok(r.value.hello);
}

function tls(message: string, at: number): QuicResult<never> {
  return qerr('bad_tls', message, at);
}

function parseClientHelloBody(buf: Buffer, start: number, end: number): QuicResult<ClientHello> {
  const r = new Reader(buf, start, end);
  const legacyVersion = r.u16();
  const random = r.bytes(32);
  if (legacyVersion === undefined || random === undefined) return tls('ClientHello shorter than version and random', r.at);
  const sessionId = r.vec(1);
  if (sessionId === undefined || sessionId.length > 32) return tls('bad legacy_session_id', r.at);
  const suites = r.vec(2);
  if (suites === undefined || suites.length < 2 || suites.length % 2 !== 0) return tls('bad cipher_suites', r.at);
  const compression = r.vec(1);
  if (compression === undefined || compression.length < 1) return tls('bad legacy_compression_methods', r.at);
  const hello: ClientHello = {
    legacyVersion, random: Buffer.from(random), sessionId: Buffer.from(sessionId),
    cipherSuites: Array.from({ length: suites.length / 2 }, (_, i) => suites.readUInt16BE(2 * i)),
    compressionMethods: [...compression], extensions: [], alpn: [], supportedVersions: [], hasQuicTransportParameters: false,
  };
  // A ClientHello without extensions cannot be TLS 1.3, hence cannot be QUIC.
  if (r.left() === 0) return tls('ClientHello has no extensions', r.at);
  const extsStart = r.at + 2;
  const exts = r.vec(2);
  if (exts === undefined) return tls('extensions overrun the ClientHello', r.at);
  if (r.left() !== 0) return tls(`${r.left()} bytes after the extensions`, r.at);
  const er = new Reader(buf, extsStart, extsStart + exts.length);
  const seen = new Set<number>();
  while (er.left() > 0) {
    const at = er.at;
    const type = er.u16();
    const data = er.vec(2);
    if (type === undefined || data === undefined) return tls('truncated extension', at);
    if (seen.has(type)) return tls(`extension ${type} appears twice`, at);
    seen.add(type);
    if (seen.size > MAX_EXTENSIONS) return qerr('limit', `more than ${MAX_EXTENSIONS} extensions`, at);
    hello.extensions.push({ type, data: Buffer.from(data) });
    const dataAt = at + 4;
    let e: QuicResult<void> = ok(undefined);
    if (type === EXT_SERVER_NAME) e = readServerName(data, dataAt, hello);
    else if (type === EXT_ALPN) e = readAlpn(data, dataAt, hello);
    else if (type === EXT_SUPPORTED_VERSIONS) e = readSupportedVersions(data, dataAt, hello);
    else if (type === EXT_QUIC_TRANSPORT_PARAMETERS || type === EXT_QUIC_TRANSPORT_PARAMETERS_DRAFT) hello.hasQuicTransportParameters = true;
    if (!e.ok) return e;
  }
  return ok(hello);
}

/** RFC 6066 §3: a list of (name_type, name); only one host_name is allowed. */
function readServerName(data: Buffer, base: number, hello: ClientHello): QuicResult<void> {
  // An empty extension is what a server sends back; a client's must hold a list.
  const r = new Reader(data, 0, data.length);
  const list = r.vec(2);
  if (list === undefined || list.length === 0 || r.left() !== 0) return tls('bad server_name list', base);
  const lr = new Reader(list, 0, list.length);
  while (lr.left() > 0) {
    const at = base + 2 + lr.at;
    const nameType = lr.u8();
    const name = lr.vec(2);
    if (nameType === undefined || name === undefined || name.length === 0) return tls('bad server_name entry', at);
    if (nameType !== 0) continue;
    if (hello.sni !== undefined) return tls('server_name holds two host names', at);
    // Printable ASCII only: anything else has no unambiguous string form to match rules on.
    for (const c of name) if (c < 0x21 || c > 0x7e) return tls('server_name host name is not printable ASCII', at);
    hello.sni = name.toString('latin1');
  }
  return ok(undefined);
}

/** RFC 7301 §3.1: a non-empty list of non-empty protocol IDs. */
function readAlpn(data: Buffer, base: number, hello: ClientHello): QuicResult<void> {
  const r = new Reader(data, 0, data.length);
  const list = r.vec(2);
  if (list === undefined || list.length === 0 || r.left() !== 0) return tls('bad ALPN protocol list', base);
  const lr = new Reader(list, 0, list.length);
  while (lr.left() > 0) {
    const at = base + 2 + lr.at;
    const id = lr.vec(1);
    if (id === undefined || id.length === 0) return tls('bad ALPN protocol ID', at);
    hello.alpn.push(id.toString('latin1'));
  }
  return ok(undefined);
}

/** RFC 8446 §4.2.1, ClientHello form: a 1-byte length and 2-byte versions. */
function readSupportedVersions(data: Buffer, base: number, hello: ClientHello): QuicResult<void> {
  const r = new Reader(data, 0, data.length);
  const list = r.vec(1);
  if (list === undefined || list.length < 2 || list.length % 2 !== 0 || r.left() !== 0) return tls('bad supported_versions', base);
  for (let i = 0; i < list.length; i += 2) hello.supportedVersions.push(list.readUInt16BE(i));
  return ok(undefined);
}

export interface ClientHelloSpec {
  sni?: string;
  alpn?: string[];
  /** Default [0x0304]; [] leaves the extension out. */
  supportedVersions?: number[];
  /** Transport parameters bytes; default a minimal set, null leaves the extension out. */
  transportParameters?: Buffer | null;
  /** Key share entries; default one X25519 share of random bytes. */
  keyShares?: { group: number; key: Buffer }[];
  cipherSuites?: number[];
  random?: Buffer;
  sessionId?: Buffer;
  /** Added after the others, e.g. a large padding or GREASE extension. */
  extraExtensions?: TlsExtension[];
}

function vec(lenBytes: 1 | 2 | 3, body: Buffer): Buffer {
  if (body.length >= 2 ** (8 * lenBytes)) throw new PacketBuildError('bad_argument', `${body.length} bytes do not fit a ${lenBytes}-byte length`);
  const h = Buffer.alloc(lenBytes);
  h.writeUIntBE(body.length, 0, lenBytes);
  return Buffer.concat([h, body]);
}

function u16s(values: readonly number[]): Buffer {
  const b = Buffer.alloc(2 * values.length);
  values.forEach((v, i) => b.writeUInt16BE(v, 2 * i));
  return b;
}

function ext(type: number, data: Buffer): Buffer {
  const h = Buffer.alloc(2);
  h.writeUInt16BE(type);
  return Buffer.concat([h, vec(2, data)]);
}

/** Builds a ClientHello handshake message, for tests and for crafting client Initials. */
export function encodeClientHello(spec: ClientHelloSpec = {}): Buffer {
  const random = spec.random ?? randomBytes(32);
  if (random.length !== 32) throw new PacketBuildError('bad_argument', 'random must be 32 bytes');
  const exts: Buffer[] = [];
  if (spec.sni !== undefined) {
    const name = Buffer.from(spec.sni, 'latin1');
    exts.push(ext(EXT_SERVER_NAME, vec(2, Buffer.concat([Buffer.from([0]), vec(2, name)]))));
  }
  exts.push(ext(10, vec(2, u16s([0x001d, 0x0017])))); // supported_groups
  exts.push(ext(13, vec(2, u16s([0x0403, 0x0804, 0x0401])))); // signature_algorithms
  if (spec.alpn?.length) exts.push(ext(EXT_ALPN, vec(2, Buffer.concat(spec.alpn.map((a) => vec(1, Buffer.from(a, 'latin1')))))));
  const versions = spec.supportedVersions ?? [0x0304];
  if (versions.length) exts.push(ext(EXT_SUPPORTED_VERSIONS, vec(1, u16s(versions))));
  const shares = spec.keyShares ?? [{ group: 0x001d, key: randomBytes(32) }];
  exts.push(ext(EXT_KEY_SHARE, vec(2, Buffer.concat(shares.map((s) => Buffer.concat([u16s([s.group]), vec(2, s.key)]))))));
  exts.push(ext(45, vec(1, Buffer.from([1])))); // psk_key_exchange_modes
  const tp = spec.transportParameters === undefined ? Buffer.from('0408ffffffffffffffff', 'hex') : spec.transportParameters;
  if (tp !== null) exts.push(ext(EXT_QUIC_TRANSPORT_PARAMETERS, tp));
  for (const e of spec.extraExtensions ?? []) exts.push(ext(e.type, e.data));
  const body = Buffer.concat([
    u16s([0x0303]), random, vec(1, spec.sessionId ?? Buffer.alloc(0)),
    vec(2, u16s(spec.cipherSuites ?? [0x1301, 0x1302, 0x1303])), vec(1, Buffer.from([0])), vec(2, Buffer.concat(exts)),
  ]);
  return Buffer.concat([Buffer.from([HANDSHAKE_CLIENT_HELLO]), vec(3, body)]);
}
