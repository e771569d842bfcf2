// Property tests of the QUIC codec: encode→decode round trips over random connection IDs,
// tokens, packet numbers, versions and frames, and ClientHellos cut into random pieces over
// random numbers of packets and datagrams, fed in random order.
import assert from 'node:assert/strict';
import { unwrap } from '../lib/results.ts';
import fc from 'fast-check';
import {
  ClientInitialAssembler,
  CryptoReassembler,
  decodeVarintBig,
  encodeClientHello,
  encodeClientInitial,
  encodeFrames,
  encodeInitial,
  encodeVarint,
  initialKeys,
  parseInitialFrames,
  parseLongHeader,
  splitDatagram,
  unprotectPacket,
  varintSize,
  QUIC_V1,
  QUIC_V2,
  type InitialFrame,
  type LongHeader,
} from '../../controller/quic/index.ts';

const RUNS = 300;


const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a));
const cid = bytes(0, 20);
const version = fc.constantFrom(QUIC_V1, QUIC_V2);
const small = fc.integer({ min: 0, max: 2 ** 20 });

/** ACK frames whose ranges stay at or above packet number 0, as a valid sender writes them. */
const ack: fc.Arbitrary<InitialFrame> = fc
  .tuple(fc.integer({ min: 0, max: 2 ** 40 }), small, fc.array(fc.tuple(fc.nat(50), fc.nat(50)), { maxLength: 5 }), fc.option(fc.tuple(small, small, small)))
  .map(([largest, delay, raw, ecn]) => {
    const firstRange = Math.min(largest, delay % 8);
    let smallest = largest - firstRange;
    const ranges = [];
    for (const [gap, length] of raw) {
      if (smallest - gap - 2 - length < 0) break;
      smallest -= gap + 2 + length;
      ranges.push({ gap, length });
    }
    const f: InitialFrame = { type: 'ack', largest, delay, firstRange, ranges };
    if (ecn) f.ecn = { ect0: ecn[0], ect1: ecn[1], ce: ecn[2] };
    return f;
  });

const frame: fc.Arbitrary<InitialFrame> = fc.oneof(
  fc.constant<InitialFrame>({ type: 'ping' }),
  ack,
  fc.tuple(small, bytes(0, 200)).map(([offset, data]): InitialFrame => ({ type: 'crypto', offset, data })),
  fc.tuple(small, fc.nat(0x3f), bytes(0, 20)).map(([errorCode, frameType, reason]): InitialFrame => ({ type: 'connection_close', errorCode, frameType, reason })),
);

/** Frames as the parser returns them: padding runs merged, trailing padding from the encoder kept apart. */
function withoutPadding(frames: InitialFrame[]): InitialFrame[] {
  return frames.filter((f) => f.type !== 'padding');
}

const hostname = fc
  .array(fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?$/), { minLength: 1, maxLength: 4 })
  .map((labels) => labels.join('.'));

describe('QUIC codec: properties', () => {
  it('varints round-trip at their minimal and at any larger length', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 62n) - 1n }), fc.constantFrom(1, 2, 4, 8), (v, len) => {
        const min = varintSize(v);
        const b = encodeVarint(v, Math.max(min, len));
        const d = unwrap(decodeVarintBig(b, 0));
        assert.equal(d.value, v);
        assert.equal(d.length, b.length);
      }),
      { numRuns: 2000 },
    );
  });

  it('Initial packets round-trip: header fields, packet number and frames', () => {
    fc.assert(
      fc.property(
        version, cid, cid, bytes(0, 64), fc.integer({ min: 0, max: 2 ** 40 }), fc.constantFrom(1, 2, 3, 4),
        fc.array(frame, { minLength: 1, maxLength: 6 }), fc.nat(1400), fc.constantFrom<'client' | 'server'>('client', 'server'),
        (v, dcid, scid, token, pn, pnLength, frames, padTo, side) => {
          const pkt = encodeInitial({ version: v, dcid, scid, token, pn, pnLength, frames, padTo, side });
          assert.ok(pkt.length >= padTo);
          const h = unwrap(parseLongHeader(pkt)) as LongHeader;
          assert.equal(h.form, 'long');
          assert.equal(h.type, 'initial');
          assert.equal(h.version, v);
          assert.ok(h.dcid.equals(dcid) && h.scid.equals(scid) && h.token.equals(token));
          assert.equal(h.packetLength, pkt.length);
          const keys = unwrap(initialKeys(v, dcid))[side];
          // The receiver's largest packet number so far is just below: any encoding length decodes.
          const u = unwrap(unprotectPacket(pkt, h.pnOffset, keys, pn - 1));
          assert.equal(u.packetNumber, pn);
          assert.equal(u.pnLength, pnLength);
          assert.deepEqual(withoutPadding(unwrap(parseInitialFrames(u.payload))), frames);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('frames round-trip through encodeFrames/parseInitialFrames', () => {
    fc.assert(
      fc.property(fc.array(frame, { minLength: 1, maxLength: 10 }), (frames) => {
        assert.deepEqual(unwrap(parseInitialFrames(encodeFrames(frames))), frames);
      }),
      { numRuns: 1000 },
    );
  });

  it('coalesced Initials split back into the packets that were concatenated', () => {
    fc.assert(
      fc.property(version, cid, cid, fc.array(fc.tuple(fc.nat(1000), fc.nat(100)), { minLength: 1, maxLength: 4 }), (v, dcid, scid, specs) => {
        const pkts = specs.map(([pn, pad]) => encodeInitial({ version: v, dcid, scid, pn, frames: [{ type: 'ping' }], padTo: pad }));
        const split = unwrap(splitDatagram(Buffer.concat(pkts)));
        assert.deepEqual(split.packets.map((p) => p.packetLength), pkts.map((p) => p.length));
        assert.equal(split.ignoredPackets, 0);
        assert.equal(split.trailingBytes, 0);
      }),
      { numRuns: RUNS },
    );
  });

  it('CRYPTO pieces in any order, overlapping and repeated, reassemble to the original', () => {
    fc.assert(
      fc.property(bytes(1, 3000), fc.array(fc.tuple(fc.nat(), fc.nat(400)), { maxLength: 30 }), fc.nat(), (data, cuts, seed) => {
        const pieces: [number, Buffer][] = cuts.map(([a, len]) => {
          const start = a % data.length;
          return [start, data.subarray(start, start + len)];
        });
        // Cover everything once more in 500-byte pieces so the result is complete.
        for (let o = 0; o < data.length; o += 500) pieces.push([o, data.subarray(o, o + 500)]);
        const order = pieces.map((p, i) => [((i + 1) * 2654435761 + seed) % 4294967296, p] as const).sort((x, y) => x[0] - y[0]);
        const r = new CryptoReassembler();
        for (const [, [offset, piece]] of order) unwrap(r.add(offset, piece));
        assert.ok(r.contiguous().equals(data));
      }),
      { numRuns: RUNS },
    );
  });

  it('a ClientHello cut over 1..4 Initials in 1..3 datagrams, any order, gives back SNI and ALPN', () => {
    fc.assert(
      fc.property(
        version, bytes(8, 20), cid, bytes(0, 40), hostname, fc.array(fc.stringMatching(/^[a-z0-9/.-]{1,12}$/), { maxLength: 3 }),
        fc.integer({ min: 0, max: 2000 }), fc.array(fc.nat(), { minLength: 0, maxLength: 3 }), fc.nat(2), fc.nat(),
        (v, dcid, scid, token, sni, alpn, extra, rawCuts, datagramsMinus1, seed) => {
          const hello = encodeClientHello({ sni, alpn, extraExtensions: extra ? [{ type: 0x15, data: Buffer.alloc(extra) }] : [] });
          const cuts = [...new Set(rawCuts.map((c) => 1 + (c % (hello.length - 1))))].sort((a, b) => a - b);
          const bounds = [0, ...cuts, hello.length];
          const packets = bounds.slice(0, -1).map((start, i) => ({ pn: i, frames: [{ type: 'crypto' as const, offset: start, data: hello.subarray(start, bounds[i + 1]) }] }));
          // Deal packets into datagrams; the last packet of each pads it to the 1200 bytes a client must send.
          const n = Math.min(datagramsMinus1 + 1, packets.length);
          const groups: (typeof packets)[] = Array.from({ length: n }, () => []);
          packets.forEach((p, i) => groups[i % n]!.push(p));
          const datagrams = groups.map((g) => Buffer.concat(g.map((p, i) => encodeClientInitial({
            version: v, dcid, scid, token, pn: p.pn, frames: p.frames, padTo: i === g.length - 1 ? 1200 : 0,
          }))));
          const order = datagrams.map((d, i) => [((i + 1) * 2654435761 + seed) % 4294967296, d] as const).sort((x, y) => x[0] - y[0]).map(([, d]) => d);
          const a = new ClientInitialAssembler();
          for (let i = 0; i < order.length; i++) {
            const r = unwrap(a.push(order[i]!));
            if (i < order.length - 1 && r.status === 'complete') assert.fail('complete before the last datagram');
            if (i === order.length - 1) {
              assert.equal(r.status, 'complete');
              if (r.status !== 'complete') return;
              assert.equal(r.version, v);
              assert.ok(r.dcid.equals(dcid) && r.scid.equals(scid) && r.token.equals(token));
              assert.equal(r.sni, sni);
              assert.deepEqual(r.alpn, alpn);
              assert.deepEqual([...r.packetNumbers].sort((x, y) => x - y), packets.map((p) => p.pn));
            }
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});
