// QUIC codec building blocks: varints, headers, packet protection and Initial frames, checked
// against RFC 9000's worked examples and hand-built edge cases.
import assert from 'node:assert/strict';
import { errKind, unwrap } from '../lib/results.ts';
import {
  decodePacketNumber,
  decodeVarint,
  decodeVarintBig,
  encodeFrames,
  encodeInitial,
  encodeLongHeader,
  encodeVarint,
  encodeVersionNegotiation,
  initialKeys,
  packetNumberLength,
  parseInitialFrames,
  parseLongHeader,
  parsePacketHeader,
  parseShortHeader,
  unprotectPacket,
  MAX_ACK_RANGES,
  QUIC_V1,
  QUIC_V2,
  type InitialFrame,
  type LongHeader,
} from '../../controller/quic/index.ts';
import { PacketBuildError } from '../../controller/packet/result.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');



describe('QUIC codec: varints', () => {
  it('decodes the RFC 9000 A.1 examples', () => {
    assert.deepEqual(unwrap(decodeVarint(hex('9d7f3e7d'), 0)), { value: 494878333, length: 4 });
    assert.deepEqual(unwrap(decodeVarint(hex('7bbd'), 0)), { value: 15293, length: 2 });
    assert.deepEqual(unwrap(decodeVarint(hex('25'), 0)), { value: 37, length: 1 });
    assert.deepEqual(unwrap(decodeVarint(hex('4025'), 0)), { value: 37, length: 2 });
    assert.deepEqual(unwrap(decodeVarintBig(hex('c2197c5eff14e88c'), 0)), { value: 151288809941952652n, length: 8 });
  });

  it('a value above 2^53-1 is a limit error as a number, exact as a bigint', () => {
    assert.equal(errKind(decodeVarint(hex('c2197c5eff14e88c'), 0)), 'limit');
    assert.equal(unwrap(decodeVarint(encodeVarint(Number.MAX_SAFE_INTEGER), 0)).value, Number.MAX_SAFE_INTEGER);
  });

  it('truncation and an empty range are errors', () => {
    assert.equal(errKind(decodeVarint(hex('9d7f3e'), 0)), 'truncated');
    assert.equal(errKind(decodeVarint(hex('9d7f3e7d'), 0, 3)), 'truncated');
    assert.equal(errKind(decodeVarint(hex(''), 0)), 'truncated');
    assert.equal(errKind(decodeVarint(hex('25'), 1)), 'truncated');
  });

  it('encodes minimally, or padded to a requested length', () => {
    assert.equal(encodeVarint(37).toString('hex'), '25');
    assert.equal(encodeVarint(15293).toString('hex'), '7bbd');
    assert.equal(encodeVarint(494878333).toString('hex'), '9d7f3e7d');
    assert.equal(encodeVarint(151288809941952652n).toString('hex'), 'c2197c5eff14e88c');
    assert.equal(encodeVarint(37, 2).toString('hex'), '4025');
    assert.equal(encodeVarint(0, 8).toString('hex'), 'c000000000000000');
    assert.throws(() => encodeVarint(15293, 1), PacketBuildError);
    assert.throws(() => encodeVarint(-1), PacketBuildError);
    assert.throws(() => encodeVarint(1n << 62n), PacketBuildError);
    assert.throws(() => encodeVarint(1.5), PacketBuildError);
    assert.throws(() => encodeVarint(1, 3), PacketBuildError);
  });
});

describe('QUIC codec: headers', () => {
  const dcid = hex('0102030405060708');
  const scid = hex('a1a2a3a4');

  it('long header types follow each version’s bit assignment', () => {
    for (const version of [QUIC_V1, QUIC_V2]) {
      for (const type of ['initial', '0rtt', 'handshake'] as const) {
        const h = encodeLongHeader({ version, type, dcid, scid, pnLength: 1, length: 0 });
        const p = unwrap(parseLongHeader(h)) as LongHeader;
        assert.equal(p.form, 'long');
        assert.equal(p.type, type);
        assert.equal(p.version, version);
        assert.ok(p.dcid.equals(dcid) && p.scid.equals(scid));
      }
    }
    // First byte type bits: v1 Initial 00, v2 Initial 01; v1 Handshake 10, v2 Handshake 11.
    assert.equal(encodeLongHeader({ version: QUIC_V1, type: 'initial', dcid, scid, pnLength: 1, length: 0 })[0]! & 0x30, 0x00);
    assert.equal(encodeLongHeader({ version: QUIC_V2, type: 'initial', dcid, scid, pnLength: 1, length: 0 })[0]! & 0x30, 0x10);
    assert.equal(encodeLongHeader({ version: QUIC_V1, type: 'handshake', dcid, scid, pnLength: 1, length: 0 })[0]! & 0x30, 0x20);
    assert.equal(encodeLongHeader({ version: QUIC_V2, type: 'handshake', dcid, scid, pnLength: 1, length: 0 })[0]! & 0x30, 0x30);
  });

  it('an Initial carries a token; Length bounds the packet', () => {
    const token = Buffer.from('retry-token');
    const h = encodeLongHeader({ version: QUIC_V1, type: 'initial', dcid, scid, token, pnLength: 2, length: 5 });
    const buf = Buffer.concat([h, Buffer.alloc(5, 0xee), Buffer.from('next')]);
    const p = unwrap(parseLongHeader(buf)) as LongHeader;
    assert.ok(p.token.equals(token));
    assert.equal(p.length, 5);
    assert.equal(p.pnOffset, h.length);
    assert.equal(p.packetLength, h.length + 5);
    assert.equal(errKind(parseLongHeader(buf.subarray(0, h.length + 4))), 'truncated');
  });

  it('a token or CID longer than what is left is truncated; a v1 CID over 20 bytes is bad_value', () => {
    const h = encodeLongHeader({ version: QUIC_V1, type: 'initial', dcid, scid, token: Buffer.alloc(10), pnLength: 1, length: 0 });
    assert.equal(errKind(parseLongHeader(h.subarray(0, h.length - 5))), 'truncated');
    const long = Buffer.concat([hex('c000000001'), Buffer.from([21]), Buffer.alloc(21), Buffer.from([0, 0, 0])]);
    assert.equal(errKind(parseLongHeader(long)), 'bad_value');
    assert.equal(errKind(parseLongHeader(hex('c0000000'))), 'truncated');
  });

  it('Version Negotiation: encoded, parsed, and a ragged version list is bad_value', () => {
    const vn = encodeVersionNegotiation({ dcid: scid, scid: dcid, versions: [QUIC_V1, QUIC_V2, 0x1a2a3a4a] });
    const p = unwrap(parseLongHeader(vn));
    assert.equal(p.form, 'version_negotiation');
    if (p.form === 'version_negotiation') {
      assert.deepEqual(p.versions, [QUIC_V1, QUIC_V2, 0x1a2a3a4a]);
      assert.ok(p.dcid.equals(scid) && p.scid.equals(dcid));
    }
    assert.equal(errKind(parseLongHeader(Buffer.concat([vn, Buffer.from([1])]))), 'bad_value');
  });

  it('an unknown version keeps the invariants (CIDs up to 255 bytes) and is not an error', () => {
    const pkt = Buffer.concat([hex('c0ff00001d'), Buffer.from([200]), Buffer.alloc(200, 1), Buffer.from([0]), Buffer.alloc(50)]);
    const p = unwrap(parseLongHeader(pkt));
    assert.equal(p.form, 'unknown_version');
    if (p.form === 'unknown_version') {
      assert.equal(p.version, 0xff00001d);
      assert.equal(p.dcid.length, 200);
      assert.equal(p.packetLength, pkt.length);
    }
  });

  it('Retry: token and tag split; shorter than a tag is truncated', () => {
    const retry = Buffer.concat([hex('f000000001'), Buffer.from([0]), Buffer.from([2]), hex('abcd'), Buffer.from('tok'), Buffer.alloc(16, 7)]);
    const p = unwrap(parseLongHeader(retry));
    assert.equal(p.form, 'retry');
    if (p.form === 'retry') {
      assert.equal(p.token.toString(), 'tok');
      assert.ok(p.integrityTag.equals(Buffer.alloc(16, 7)));
    }
    assert.equal(errKind(parseLongHeader(retry.subarray(0, 20))), 'truncated');
  });

  it('short headers: DCID length from the caller, spin bit readable, form bit checked', () => {
    const pkt = Buffer.concat([Buffer.from([0x60]), dcid, Buffer.alloc(30)]);
    const p = unwrap(parseShortHeader(pkt, 0, 8));
    assert.ok(p.dcid.equals(dcid));
    assert.equal(p.spin, true);
    assert.equal(p.pnOffset, 9);
    assert.equal(errKind(parseShortHeader(pkt.subarray(0, 5), 0, 8)), 'truncated');
    assert.equal(errKind(parseShortHeader(pkt, 0, 21)), 'bad_argument');
    assert.equal(errKind(parseShortHeader(hex('c0'), 0, 0)), 'bad_value');
    assert.equal(errKind(parseLongHeader(pkt)), 'bad_value');
    assert.equal(unwrap(parsePacketHeader(pkt, 0, { shortDcidLen: 8 })).form, 'short');
  });

  it('the fixed bit is reported, not enforced (RFC 9287 greasing)', () => {
    const h = encodeLongHeader({ version: QUIC_V1, type: 'handshake', dcid, scid, pnLength: 1, length: 0, clearFixedBit: true });
    const p = unwrap(parseLongHeader(h)) as LongHeader;
    assert.equal(p.fixedBit, false);
  });

  it('builders reject what they cannot encode', () => {
    assert.throws(() => encodeLongHeader({ version: 7, type: 'initial', dcid, scid, pnLength: 1, length: 0 }), PacketBuildError);
    assert.throws(() => encodeLongHeader({ version: QUIC_V1, type: 'initial', dcid: Buffer.alloc(21), scid, pnLength: 1, length: 0 }), PacketBuildError);
    assert.throws(() => encodeLongHeader({ version: QUIC_V1, type: 'handshake', dcid, scid, token: Buffer.alloc(1), pnLength: 1, length: 0 }), PacketBuildError);
    assert.throws(() => encodeLongHeader({ version: QUIC_V1, type: 'initial', dcid, scid, pnLength: 5, length: 0 }), PacketBuildError);
  });
});

describe('QUIC codec: packet protection', () => {
  const dcid = hex('0011223344556677');
  const keys = unwrap(initialKeys(QUIC_V1, dcid)).client;
  const frames: InitialFrame[] = [{ type: 'crypto', offset: 0, data: Buffer.from('hello') }];

  it('packet number decoding follows RFC 9000 A.3, encoding length A.2', () => {
    assert.equal(decodePacketNumber(0xa82f30ea, 0x9b32, 16), 0xa82f9b32);
    assert.equal(decodePacketNumber(-1, 0, 8), 0);
    assert.equal(decodePacketNumber(255, 0, 8), 256); // wraps forward
    assert.equal(decodePacketNumber(300, 0xff, 8), 255); // closer below than above
    assert.equal(packetNumberLength(0xac5c02, 0xabe8b3), 2);
    assert.equal(packetNumberLength(0xace8fe, 0xabe8b3), 3);
    assert.equal(packetNumberLength(0), 1);
  });

  it('round trip with every packet number length, input untouched', () => {
    for (const pnLength of [1, 2, 3, 4]) {
      const pkt = encodeInitial({ version: QUIC_V1, dcid, scid: Buffer.alloc(0), pn: 7, pnLength, frames });
      const copy = Buffer.from(pkt);
      const h = unwrap(parseLongHeader(pkt)) as LongHeader;
      const u = unwrap(unprotectPacket(pkt, h.pnOffset, keys));
      assert.equal(u.pnLength, pnLength);
      assert.equal(u.packetNumber, 7);
      assert.deepEqual(unwrap(parseInitialFrames(u.payload)), frames);
      assert.ok(pkt.equals(copy));
    }
  });

  it('a flipped bit in header or payload, or the wrong keys, fail authentication', () => {
    const pkt = encodeInitial({ version: QUIC_V1, dcid, scid: Buffer.alloc(0), pn: 0, frames, padTo: 100 });
    const h = unwrap(parseLongHeader(pkt)) as LongHeader;
    for (const at of [6, h.pnOffset - 1, h.pnOffset + 10, pkt.length - 1]) {
      const bad = Buffer.from(pkt);
      bad[at]! ^= 0x01;
      assert.equal(errKind(unprotectPacket(bad, h.pnOffset, keys)), 'decrypt_failed', `byte ${at}`);
    }
    const server = unwrap(initialKeys(QUIC_V1, dcid)).server;
    assert.equal(errKind(unprotectPacket(pkt, h.pnOffset, server)), 'decrypt_failed');
    const v2keys = unwrap(initialKeys(QUIC_V2, dcid)).client;
    assert.equal(errKind(unprotectPacket(pkt, h.pnOffset, v2keys)), 'decrypt_failed');
  });

  it('reserved bits are checked after decryption', () => {
    const pkt = encodeInitial({ version: QUIC_V1, dcid, scid: Buffer.alloc(0), pn: 0, frames, reserved: 1 });
    const h = unwrap(parseLongHeader(pkt)) as LongHeader;
    assert.equal(errKind(unprotectPacket(pkt, h.pnOffset, keys)), 'bad_value');
  });

  it('too short to sample, bad offsets and bad keys are errors, not throws', () => {
    const pkt = encodeInitial({ version: QUIC_V1, dcid, scid: Buffer.alloc(0), pn: 0, frames });
    const h = unwrap(parseLongHeader(pkt)) as LongHeader;
    assert.equal(errKind(unprotectPacket(pkt.subarray(0, h.pnOffset + 19), h.pnOffset, keys)), 'truncated');
    assert.equal(errKind(unprotectPacket(pkt, 0, keys)), 'bad_argument');
    assert.equal(errKind(unprotectPacket(pkt, h.pnOffset, { ...keys, key: Buffer.alloc(3) })), 'bad_argument');
    assert.equal(errKind(unprotectPacket(pkt, h.pnOffset, { ...keys, aead: 'rot13' as never })), 'bad_argument');
    assert.equal(errKind(unprotectPacket('x' as never, 1, keys)), 'bad_argument');
  });

  it('the encoder pads a tiny payload enough to sample', () => {
    const pkt = encodeInitial({ version: QUIC_V1, dcid, scid: Buffer.alloc(0), pn: 0, pnLength: 1, frames: [{ type: 'ping' }] });
    const h = unwrap(parseLongHeader(pkt)) as LongHeader;
    const u = unwrap(unprotectPacket(pkt, h.pnOffset, keys));
    assert.deepEqual(unwrap(parseInitialFrames(u.payload)), [{ type: 'ping' }, { type: 'padding', length: 2 }]);
  });
});

describe('QUIC codec: Initial frames', () => {
  it('every allowed frame round-trips', () => {
    const frames: InitialFrame[] = [
      { type: 'ping' },
      { type: 'ack', largest: 100, delay: 3, firstRange: 2, ranges: [{ gap: 1, length: 5 }, { gap: 0, length: 0 }] },
      { type: 'ack', largest: 9, delay: 0, firstRange: 9, ranges: [], ecn: { ect0: 1, ect1: 2, ce: 3 } },
      { type: 'crypto', offset: 1000, data: Buffer.from('abc') },
      { type: 'connection_close', errorCode: 0x10a, frameType: 6, reason: Buffer.from('bad') },
      { type: 'padding', length: 7 },
    ];
    assert.deepEqual(unwrap(parseInitialFrames(encodeFrames(frames))), frames);
  });

  it('consecutive PADDING bytes collapse into one entry', () => {
    assert.deepEqual(unwrap(parseInitialFrames(hex('0000000100'))), [{ type: 'padding', length: 3 }, { type: 'ping' }, { type: 'padding', length: 1 }]);
  });

  it('frames an Initial may not carry are errors', () => {
    for (const type of ['08', '0f', '10', '18', '1d', '1e', '04', '05', '07', '30']) {
      assert.equal(errKind(parseInitialFrames(hex(`01${type}000000`))), 'bad_frame', type);
    }
  });

  it('a non-minimal frame type, an empty payload, overruns and impossible ACKs are errors', () => {
    assert.equal(errKind(parseInitialFrames(hex('4001'))), 'bad_frame');
    assert.equal(errKind(parseInitialFrames(Buffer.alloc(0))), 'bad_frame');
    assert.equal(errKind(parseInitialFrames(hex('060005616263'))), 'truncated');
    assert.equal(errKind(parseInitialFrames(hex('1c000005616263'))), 'truncated');
    assert.equal(errKind(parseInitialFrames(hex('0205000006'))), 'bad_frame'); // first range below 0
    assert.equal(errKind(parseInitialFrames(hex('02050001000203'))), 'bad_frame'); // later range below 0
    assert.equal(errKind(parseInitialFrames(hex('020500'))), 'truncated');
    assert.equal(errKind(parseInitialFrames(Buffer.concat([hex('0205'), hex('00'), encodeVarint(MAX_ACK_RANGES + 1), hex('00')]))), 'limit');
  });
});
