/**
 * From client datagrams to what a steering verdict needs: version, connection IDs, token, and
 * the ClientHello's SNI and ALPN. One datagram usually suffices; a ClientHello too large for
 * one packet (post-quantum key shares) spans several Initials, possibly several datagrams, so
 * the assembler is fed datagram by datagram and answers "need more" until it can read it.
 */
import { ok, qerr, shiftError, type QuicError, type QuicResult } from './result.ts';
import { isSupportedVersion, type LongHeader } from './header.ts';
import { splitDatagram, MAX_COALESCED_PACKETS } from './coalesced.ts';
import { initialKeys, type PacketKeys } from './initial-keys.ts';
import { unprotectPacket } from './protection.ts';
import { parseInitialFrames } from './frames.ts';
import { CryptoReassembler, MAX_CRYPTO_BYTES } from './crypto-stream.ts';
import { readClientHello, type ClientHello } from './client-hello.ts';
import { MIN_INITIAL_DATAGRAM } from './encoder.ts';

/** Datagrams an assembler accepts before giving up; a real ClientHello needs one to three. */
export const MAX_INITIAL_DATAGRAMS = 8;

export interface ClientInitialOptions {
  /** Cap on buffered CRYPTO bytes (default 64 KiB). */
  maxCryptoBytes?: number;
  maxDatagrams?: number;
  maxPacketsPerDatagram?: number;
  /** Smaller datagrams are rejected (RFC 9000 §14.1: servers discard them); default 1200, 0 disables. */
  minDatagramSize?: number;
}

export interface ClientInitialInfo {
  version: number;
  /** The client-chosen DCID the Initial keys derive from. */
  dcid: Buffer;
  scid: Buffer;
  /** Token from a Retry or NEW_TOKEN; empty on a first contact. */
  token: Buffer;
  /** Packet numbers of the Initial packets decrypted so far, in arrival order. */
  packetNumbers: number[];
  datagrams: number;
  /** In-order CRYPTO bytes received. */
  cryptoBytes: number;
  /** Coalesced 0-RTT/Handshake packets seen and left alone (their keys are not Initial keys). */
  skippedPackets: number;
  /** Set when the client closed the connection in an Initial. */
  connectionClose?: { errorCode: number; frameType: number; reason: Buffer };
}

export type ClientInitialProgress =
  | ({ status: 'need_more' } & ClientInitialInfo)
  | ({ status: 'complete'; sni?: string; alpn: string[]; clientHello: ClientHello } & ClientInitialInfo);

export class ClientInitialAssembler {
  private readonly opts: Required<ClientInitialOptions>;
  private readonly crypto: CryptoReassembler;
  private info?: ClientInitialInfo;
  private keys?: PacketKeys;
  private largestPn = -1;
  private failed?: QuicError;
  private done?: ClientInitialProgress;

  constructor(opts: ClientInitialOptions = {}) {
    this.opts = {
      maxCryptoBytes: opts.maxCryptoBytes ?? MAX_CRYPTO_BYTES,
      maxDatagrams: opts.maxDatagrams ?? MAX_INITIAL_DATAGRAMS,
      maxPacketsPerDatagram: opts.maxPacketsPerDatagram ?? MAX_COALESCED_PACKETS,
      minDatagramSize: opts.minDatagramSize ?? MIN_INITIAL_DATAGRAM,
    };
    this.crypto = new CryptoReassembler(this.opts.maxCryptoBytes);
  }

  /**
   * Feeds one UDP payload. An error is final: later calls return it again, since a stream
   * that went wrong once cannot be trusted to read right later. Once complete, further
   * datagrams are not read and the same answer is returned.
   */
  push(datagram: Buffer): QuicResult<ClientInitialProgress> {
    if (this.failed) return { ok: false, error: this.failed };
    if (this.done) return ok(this.done);
    const r = this.consume(datagram);
    if (!r.ok) this.failed = r.error;
    else if (r.value.status === 'complete') this.done = r.value;
    return r;
  }

  private consume(datagram: Buffer): QuicResult<ClientInitialProgress> {
    if (!Buffer.isBuffer(datagram)) return qerr('bad_argument', 'not a Buffer');
    if (datagram.length < this.opts.minDatagramSize) {
      return qerr('bad_value', `datagram of ${datagram.length} bytes is below the ${this.opts.minDatagramSize} a client Initial needs`, 0);
    }
    const count = (this.info?.datagrams ?? 0) + 1;
    if (count > this.opts.maxDatagrams) return qerr('limit', `ClientHello not complete after ${this.opts.maxDatagrams} datagrams`);
    const split = splitDatagram(datagram, { maxPackets: this.opts.maxPacketsPerDatagram });
    if (!split.ok) return split;
    const first = split.value.packets[0]!;
    if (first.form === 'unknown_version') {
      const e = qerr('unsupported', `QUIC version 0x${first.version.toString(16).padStart(8, '0')} is not decoded`, 1);
      e.error.version = first.version;
      return e;
    }
    if (first.form !== 'long' || first.type !== 'initial') {
      return qerr('unsupported', `first packet is ${first.form === 'long' ? `a ${first.type} packet` : `a ${first.form} packet`}, not an Initial`, 0);
    }
    const fresh = this.begin(first);
    if (!fresh.ok) return fresh;
    const info = this.info!;
    info.datagrams = count;
    for (const p of split.value.packets) {
      // Other long-header types ride along (0-RTT data, Handshake acks); their keys are not ours.
      if (p.form !== 'long' || p.type !== 'initial' || p.version !== info.version) {
        info.skippedPackets++;
        continue;
      }
      const u = unprotectPacket(datagram.subarray(p.offset, p.offset + p.packetLength), p.pnOffset, this.keys!, this.largestPn);
      if (!u.ok) return shiftError(u, p.offset);
      this.largestPn = Math.max(this.largestPn, u.value.packetNumber);
      info.packetNumbers.push(u.value.packetNumber);
      const frames = parseInitialFrames(u.value.payload);
      if (!frames.ok) return frames;
      for (const f of frames.value) {
        if (f.type === 'crypto') {
          const a = this.crypto.add(f.offset, f.data);
          if (!a.ok) return a;
        } else if (f.type === 'connection_close') {
          info.connectionClose = { errorCode: f.errorCode, frameType: f.frameType, reason: f.reason };
        }
      }
    }
    info.cryptoBytes = this.crypto.contiguousLength;
    const hello = readClientHello(this.crypto.contiguous());
    if (!hello.ok) return hello;
    if (!hello.value.complete) return ok({ status: 'need_more', ...snapshot(info) });
    const ch = hello.value.hello;
    const done: ClientInitialProgress = { status: 'complete', ...snapshot(info), alpn: ch.alpn, clientHello: ch };
    if (ch.sni !== undefined) done.sni = ch.sni;
    return ok(done);
  }

  /** The first datagram fixes version and connection IDs; later ones must repeat them. */
  private begin(first: LongHeader): QuicResult<void> {
    if (!this.info) {
      if (!isSupportedVersion(first.version)) return qerr('unsupported', 'unsupported version', 1);
      const k = initialKeys(first.version, first.dcid);
      if (!k.ok) return k;
      this.keys = k.value.client;
      this.info = {
        version: first.version, dcid: first.dcid, scid: first.scid, token: first.token,
        packetNumbers: [], datagrams: 0, cryptoBytes: 0, skippedPackets: 0,
      };
      return ok(undefined);
    }
    if (first.version !== this.info.version) return qerr('bad_value', 'version differs from the first Initial', 1);
    if (!first.dcid.equals(this.info.dcid)) return qerr('bad_value', 'DCID differs from the first Initial', 6);
    if (!first.scid.equals(this.info.scid)) return qerr('bad_value', 'SCID differs from the first Initial', 6 + first.dcid.length);
    return ok(undefined);
  }
}

function snapshot(info: ClientInitialInfo): ClientInitialInfo {
  return { ...info, packetNumbers: [...info.packetNumbers] };
}

/**
 * Reads a client's Initial datagram (coalesced packets included). When the ClientHello
 * continues in a later datagram the answer is `status: 'need_more'`: use a
 * ClientInitialAssembler to feed the rest.
 */
export function parseClientInitial(datagram: Buffer, opts: ClientInitialOptions = {}): QuicResult<ClientInitialProgress> {
  return new ClientInitialAssembler(opts).push(datagram);
}
