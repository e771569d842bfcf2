// IPv6/ICMPv6 fuzzing: random, truncated and mutated frames never make a decoder, a checksum
// helper or a rewrite helper throw; every result is a well-formed Result.
import assert from 'node:assert/strict';
import { PACKET_ERROR_KINDS, wellFormedIn } from '../lib/results.ts';
import fc from 'fast-check';
import { assertPrefixesTruncated, overwritten } from '../lib/fuzz.ts';
import {
  buildIcmpv6EchoFrame, buildNeighborAdvertisement, buildNeighborSolicitation, buildTcp6Frame, buildUdp6Frame, canonicalIpv6, decodeIcmpv6,
  decodeIpv6, decodeNdOptions, nopOutTcpOptions, parseFrame, parseIpv6, recomputeChecksums, replaceTcpOptions, rewriteEthDst, rewriteIpv4Dst,
  rewriteL4DstPort, rewriteTcpWindow, shiftSackBlocks, shiftTcpAck, shiftTcpSeq, shiftTcpTimestamps, stripTcpOptionsFromFrame, verifyChecksums,
  type Result,
} from '../../controller/packet/index.ts';

const wellFormed = wellFormedIn(PACKET_ERROR_KINDS);

const ENTRY_POINTS: [string, (b: Buffer) => Result<unknown>][] = [
  ['parseFrame', parseFrame],
  ['verifyChecksums', verifyChecksums],
  ['recomputeChecksums', recomputeChecksums],
  ['replaceTcpOptions', (b) => replaceTcpOptions(b, [{ kind: 'mss', value: 1 }])],
  ['stripTcpOptionsFromFrame', (b) => stripTcpOptionsFromFrame(b, ['timestamp'], { dropPayload: true })],
  ['decodeIpv6 at 14', (b) => decodeIpv6(b, 14)],
  ['decodeIcmpv6 at 54', (b) => decodeIcmpv6(b, 54, b.length, b.subarray(22, 38), b.subarray(38, 54))],
  // The in-place L3/L4 helpers: on any input, a value or a typed error, never a throw (IPv6 frames are rewritten too).
  ['rewriteIpv4Dst', (b) => rewriteIpv4Dst(b, '5.6.7.8')],
  ['rewriteL4DstPort', (b) => rewriteL4DstPort(b, 2)],
  ['rewriteEthDst', (b) => rewriteEthDst(b, '02:00:00:00:00:09')],
  ['rewriteTcpWindow', (b) => rewriteTcpWindow(b, 3)],
  ['shiftTcpSeq', (b) => shiftTcpSeq(b, -7)],
  ['shiftTcpAck', (b) => shiftTcpAck(b, 9)],
  ['shiftSackBlocks', (b) => shiftSackBlocks(b, 9)],
  ['shiftTcpTimestamps', (b) => shiftTcpTimestamps(b, { tsval: 1, tsecr: -1 })],
  ['nopOutTcpOptions', (b) => nopOutTcpOptions(b, ['timestamp'])],
];

function hammer(buf: Buffer): void {
  for (const [name, fn] of ENTRY_POINTS) {
    let r: Result<unknown>;
    try {
      r = fn(Buffer.from(buf));
    } catch (e) {
      assert.fail(`${name} threw on ${buf.toString('hex')}: ${String(e)}`);
    }
    wellFormed(r);
  }
}

const L2 = { ethSrc: '02:00:00:00:00:01', ethDst: '02:00:00:00:00:02', ipSrc: '2001:db8::1', ipDst: '2001:db8::2' };
const SEEDS: Buffer[] = [
  buildTcp6Frame({
    ...L2, srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: 0x10, window: 5, payload: Buffer.from('hello'), vlans: [5],
    options: [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'timestamp', tsval: 1, tsecr: 2 }, { kind: 'nop' }, { kind: 'nop' }, { kind: 'sack', blocks: [{ left: 1, right: 2 }] }],
  }),
  buildTcp6Frame({
    ...L2, srcPort: 1, dstPort: 2, seq: 3, ack: 0, flags: 0x02, window: 5, options: [{ kind: 'mss', value: 1440 }],
    extHeaders: [
      { kind: 'hop_by_hop', options: [{ type: 5, data: Buffer.from([0, 0]) }] }, { kind: 'destination' },
      { kind: 'routing', routingType: 2, segmentsLeft: 1, addresses: ['2001:db8::9'] }, { kind: 'fragment', id: 1 }, { kind: 'auth', spi: 1, seq: 2 },
    ],
  }),
  buildUdp6Frame({ ...L2, srcPort: 1, dstPort: 2, payload: Buffer.from('x'), extHeaders: [{ kind: 'fragment', id: 7, mf: true }] }),
  buildIcmpv6EchoFrame({ ...L2, type: 'request', id: 1, seq: 2, payload: Buffer.from('ping') }),
  buildNeighborSolicitation({ ethSrc: L2.ethSrc, ipSrc: L2.ipSrc, target: L2.ipDst, options: [{ kind: 'mtu', mtu: 1500 }] }),
  buildNeighborAdvertisement({ ethSrc: L2.ethSrc, ipSrc: L2.ipSrc, router: true }),
];

describe('packet codec, IPv6: fuzzing', () => {
  it('random buffers behind an IPv6 EtherType never make any entry point throw', () => {
    // Version 6, a next header from the walked set or the upper layers, and a plausible payload
    // length send the fuzz into the extension-header walk, ICMPv6 and ND options.
    const frame = fc
      .tuple(fc.uint8Array({ minLength: 14, maxLength: 200 }), fc.constantFrom(0, 43, 44, 51, 60, 6, 17, 58, 59, 50), fc.boolean())
      .map(([a, nh, exactLength]) => {
        const b = Buffer.from(a);
        b.writeUInt16BE(0x86dd, 12);
        if (b.length > 14) b[14] = 0x60 | (b[14]! & 0x0f);
        if (b.length > 20) b[20] = nh;
        if (b.length > 19 && exactLength) b.writeUInt16BE(Math.max(0, b.length - 54), 18);
        return b;
      });
    fc.assert(fc.property(frame, hammer), { numRuns: 4000 });
  });

  it('every truncation of a valid IPv6 frame is a truncated error for parseFrame, and never throws anywhere', () => {
    for (const seed of SEEDS) for (let n = 0; n < seed.length; n++) hammer(seed.subarray(0, n));
    assertPrefixesTruncated(SEEDS, parseFrame);
  });

  it('bit flips and byte overwrites of valid IPv6 frames never throw', () => {
    fc.assert(fc.property(overwritten(SEEDS), hammer), { numRuns: 4000 });
  });

  it('the in-place rewrite helpers rewrite IPv6 TCP frames correctly and leave the rest untouched', () => {
    for (const seed of SEEDS) {
      const p = parseFrame(seed);
      assert.ok(p.ok);
      const tcp = p.value.tcp;
      // A first fragment carries its L4 header: its ports are rewritten (checksum updated
      // incrementally, as for IPv4), though the codec does not decode them.
      const ip6 = p.value.ipv6!;
      const firstFragment = ip6.isFragment && ip6.extHeaders.some((h) => h.kind === 'fragment' && h.fragmentOffset === 0);
      const hasPorts = !!(tcp || p.value.udp) || (firstFragment && (ip6.protocol === 6 || ip6.protocol === 17));
      for (const [name, fn] of ENTRY_POINTS.filter(([n]) => /^(rewriteIpv4|rewriteL4|rewriteTcp|shift|nopOut)/.test(n))) {
        const b = Buffer.from(seed);
        const r = fn(b);
        // IPv4 addresses never apply; ports need TCP/UDP, the rest TCP.
        const applies = name === 'rewriteIpv4Dst' ? false : name === 'rewriteL4DstPort' ? hasPorts : !!tcp;
        if (!applies) {
          assert.equal(r.ok, false, name);
          assert.ok(b.equals(seed), name);
          continue;
        }
        assert.ok(r.ok, name);
        const v = verifyChecksums(b);
        assert.ok(v.ok && v.value.l4, name);
        const q = parseFrame(b);
        assert.ok(q.ok, name);
        const t = q.value.tcp;
        if (name === 'rewriteL4DstPort') assert.equal(b.readUInt16BE(p.value.l3Offset + ip6.headerLength + 2), 2, name);
        if (name === 'rewriteTcpWindow') assert.equal(t!.window, 3, name);
        if (name === 'shiftTcpSeq') assert.equal(t!.seq, (tcp!.seq - 7) >>> 0, name);
        if (name === 'shiftTcpAck') assert.equal(t!.ack, (tcp!.ack + 9) >>> 0, name);
        if (name === 'nopOutTcpOptions') assert.ok(t!.options.every((o) => o.kind !== 'timestamp'), name);
        // Only the TCP header may change: everything before it and the payload stay as they were.
        const l4 = p.value.l3Offset + ip6.headerLength;
        assert.ok(b.subarray(0, l4).equals(seed.subarray(0, l4)), name);
        if (tcp) assert.ok(q.value.payload.equals(p.value.payload), name);
      }
    }
  });

  it('ICMPv6 and ND option decoders terminate on any bytes and offsets', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), fc.nat(130), fc.nat(130), (a, x, y) => {
      const b = Buffer.from(a);
      const [start, end] = x <= y ? [x, Math.min(y, b.length)] : [y, Math.min(x, b.length)];
      const o = decodeNdOptions(b, start, end);
      assert.ok(Array.isArray(o.options));
      if (o.error) assert.equal(o.error.kind, 'bad_options');
      wellFormed(decodeIcmpv6(b, start, end, Buffer.alloc(16), Buffer.alloc(16)));
      wellFormed(decodeIpv6(b, start));
    }), { numRuns: 3000 });
  });

  it('IPv6 text parsing never throws; what it accepts round-trips through the canonical form', () => {
    const text = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.%/ gx'.split('')), maxLength: 48 });
    fc.assert(fc.property(text, (s) => {
      const r = parseIpv6(s);
      wellFormed(r);
      if (r.ok) {
        const c = canonicalIpv6(s);
        assert.ok(c.ok);
        const again = parseIpv6(c.value);
        assert.ok(again.ok && again.value.equals(r.value));
      }
    }), { numRuns: 5000 });
  });
});
