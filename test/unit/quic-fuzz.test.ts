// Fuzzing the QUIC codec: random bytes, bit flips and truncations of valid packets (the RFC's
// and crafted ones), and random plaintext inside authentic packets (so the fuzz reaches the
// frame and ClientHello parsers past the AEAD) never throw and always give a well-formed Result.
import assert from 'node:assert/strict';
import { wellFormedIn } from '../lib/results.ts';
import fc from 'fast-check';
import { assertPrefixesTruncated, overwritten } from '../lib/fuzz.ts';
import {
  ClientInitialAssembler,
  decodeVarint,
  encodeClientHello,
  encodeClientInitial,
  encodeFrames,
  encodeLongHeader,
  encodeRetry,
  encodeVersionNegotiation,
  initialKeys,
  parseClientHello,
  parseClientInitial,
  parseInitialFrames,
  parseLongHeader,
  parsePacketHeader,
  parseShortHeader,
  protectPacket,
  readClientHello,
  splitDatagram,
  unprotectPacket,
  verifyRetry,
  QUIC_V1,
  QUIC_V2,
  type QuicResult,
} from '../../controller/quic/index.ts';

const wellFormed = wellFormedIn(['truncated', 'bad_value', 'unsupported', 'decrypt_failed', 'bad_frame', 'bad_tls', 'limit', 'bad_argument']);
const DCID = Buffer.from('8394c8f03e515708', 'hex');
const KEYS = initialKeys(QUIC_V1, DCID);
if (!KEYS.ok) throw new Error('no keys');


const ENTRY_POINTS: [string, (b: Buffer) => QuicResult<unknown>][] = [
  ['parseLongHeader', (b) => parseLongHeader(b)],
  ['parsePacketHeader', (b) => parsePacketHeader(b, 0, { shortDcidLen: 8 })],
  ['parseShortHeader', (b) => parseShortHeader(b, 0, 8)],
  ['splitDatagram', (b) => splitDatagram(b)],
  ['parseClientInitial', (b) => parseClientInitial(b, { minDatagramSize: 0 })],
  ['parseInitialFrames', (b) => parseInitialFrames(b)],
  ['readClientHello', (b) => readClientHello(b)],
  ['parseClientHello', (b) => parseClientHello(b)],
  ['verifyRetry', (b) => verifyRetry(b, DCID)],
  ['unprotectPacket', (b) => unprotectPacket(b, 18, KEYS.value.client)],
  ['decodeVarint', (b) => decodeVarint(b, 0)],
];

function hammer(buf: Buffer): void {
  for (const [name, fn] of ENTRY_POINTS) {
    let r: QuicResult<unknown>;
    try {
      r = fn(Buffer.from(buf));
    } catch (e) {
      assert.fail(`${name} threw on ${buf.toString('hex')}: ${String(e)}`);
    }
    wellFormed(r);
  }
}

const hello = encodeClientHello({ sni: 'fuzz.example', alpn: ['h3', 'hq-interop'] });
const SEEDS: Buffer[] = [
  encodeClientInitial({ version: QUIC_V1, dcid: DCID, scid: Buffer.from('0102', 'hex'), token: Buffer.from('tkn'), pn: 0, frames: [{ type: 'crypto', offset: 0, data: hello }], padTo: 0 }),
  encodeClientInitial({ version: QUIC_V2, dcid: DCID, scid: Buffer.alloc(0), pn: 3, pnLength: 2, frames: [{ type: 'ping' }, { type: 'crypto', offset: 0, data: hello }], padTo: 0 }),
  Buffer.concat([
    encodeClientInitial({ version: QUIC_V1, dcid: DCID, scid: Buffer.alloc(4), pn: 1, frames: [{ type: 'crypto', offset: 0, data: hello.subarray(0, 50) }], padTo: 0 }),
    encodeClientInitial({ version: QUIC_V1, dcid: DCID, scid: Buffer.alloc(4), pn: 2, frames: [{ type: 'crypto', offset: 50, data: hello.subarray(50) }], padTo: 0 }),
    encodeLongHeader({ version: QUIC_V1, type: '0rtt', dcid: DCID, scid: Buffer.alloc(4), pnLength: 1, length: 3 }), Buffer.alloc(3, 0x55),
  ]),
  encodeVersionNegotiation({ dcid: Buffer.alloc(3), scid: DCID, versions: [QUIC_V1, QUIC_V2] }),
  (() => {
    const r = encodeRetry({ version: QUIC_V1, dcid: Buffer.alloc(4), scid: Buffer.alloc(8), token: Buffer.from('token'), odcid: DCID });
    return r.ok ? r.value : Buffer.alloc(0);
  })(),
  Buffer.concat([Buffer.from([0x41]), DCID, Buffer.alloc(30, 7)]),
];

describe('QUIC codec: fuzzing', () => {
  it('random buffers never make any entry point throw', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (a) => hammer(Buffer.from(a))), { numRuns: 1500 });
  });

  it('random buffers behind a plausible v1/v2 long header never throw', () => {
    const pkt = fc
      .tuple(fc.uint8Array({ minLength: 7, maxLength: 1300 }), fc.constantFrom(QUIC_V1, QUIC_V2, 0, 0xfaceb00c), fc.nat(21), fc.nat(21), fc.nat(255))
      .map(([a, version, dl, sl, first]) => {
        const b = Buffer.from(a);
        b[0] = 0x80 | first;
        b.writeUInt32BE(version >>> 0, 1);
        b[5] = dl;
        if (b.length > 6 + dl) b[6 + dl] = sl;
        return b;
      });
    fc.assert(fc.property(pkt, hammer), { numRuns: 2000 });
  });

  it('every truncation of a valid packet is handled; a lone Initial cut short is "truncated"', () => {
    for (const seed of SEEDS) for (let n = 0; n <= seed.length; n++) hammer(seed.subarray(0, n));
    assertPrefixesTruncated(SEEDS.slice(0, 2), (b) => parseClientInitial(b, { minDatagramSize: 0 }));
  });

  it('bit flips and byte overwrites of valid packets never throw', () => {
    fc.assert(fc.property(overwritten(SEEDS), hammer), { numRuns: 3000 });
  });

  it('any single flipped bit of a protected Initial makes it fail, never read differently', () => {
    // Every bit is covered: the header by the AEAD's associated data (or by the keys, for the
    // DCID and version), the protected bits by the packet number they change, the rest by the tag.
    const seed = SEEDS[0]!;
    for (let i = 0; i < seed.length * 8; i++) {
      const b = Buffer.from(seed);
      b[i >> 3]! ^= 1 << (i & 7);
      const r = parseClientInitial(b, { minDatagramSize: 0 });
      wellFormed(r);
      assert.equal(r.ok, false, `bit ${i} flipped still parsed`);
    }
  });

  it('random plaintext inside authentic Initials reaches the frame and TLS parsers without throwing', () => {
    const payload = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 400 }).map((a) => Buffer.from(a)),
      // A CRYPTO frame at offset 0 around a mutated ClientHello.
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }).map((edits) => {
        const h = Buffer.from(hello);
        for (const [pos, v] of edits) h[pos % h.length] = v;
        return encodeFrames([{ type: 'crypto', offset: 0, data: h }]);
      }),
      // A truncated ClientHello with a length field claiming more.
      fc.nat(hello.length - 1).map((n) => encodeFrames([{ type: 'crypto', offset: 0, data: hello.subarray(0, n) }, { type: 'padding', length: 4 }])),
    );
    const keys = KEYS.value.client;
    fc.assert(
      fc.property(payload, (p) => {
        const body = p.length < 4 ? Buffer.concat([p, Buffer.alloc(4 - p.length)]) : p;
        const header = Buffer.concat([
          encodeLongHeader({ version: QUIC_V1, type: 'initial', dcid: DCID, scid: Buffer.alloc(0), pnLength: 1, length: 1 + body.length + 16 }),
          Buffer.from([0]),
        ]);
        const pkt = protectPacket(header, header.length - 1, 0, body, keys);
        let r: QuicResult<unknown>;
        try {
          r = parseClientInitial(pkt, { minDatagramSize: 0 });
        } catch (e) {
          assert.fail(`threw on payload ${body.toString('hex')}: ${String(e)}`);
        }
        wellFormed(r);
      }),
      { numRuns: 2000 },
    );
  });

  it('an assembler fed garbage datagrams in sequence never throws', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constantFrom(...SEEDS), fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a))), { maxLength: 5 }), (dgs) => {
        const a = new ClientInitialAssembler({ minDatagramSize: 0 });
        for (const d of dgs) wellFormed(a.push(d));
      }),
      { numRuns: 500 },
    );
  });

  it('non-Buffer input is an error, not a throw', () => {
    for (const [name, fn] of ENTRY_POINTS) {
      for (const bad of [undefined, null, 'abc', 42, {}, [1, 2, 3]]) {
        let r: QuicResult<unknown>;
        try {
          r = fn(bad as unknown as Buffer);
        } catch (e) {
          assert.fail(`${name} threw on ${String(bad)}: ${String(e)}`);
        }
        assert.equal(r.ok, false, `${name} accepted ${String(bad)}`);
      }
    }
    wellFormed(new ClientInitialAssembler().push(undefined as unknown as Buffer));
  });
});
