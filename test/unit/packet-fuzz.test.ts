// Fuzzing: random, truncated and bit-flipped input never throws out of a decoder or a rewrite
// helper, always yields a well-formed Result, and truncation is reported as an error.
import assert from 'node:assert/strict';
import { PACKET_ERROR_KINDS, wellFormedIn } from '../lib/results.ts';
import fc from 'fast-check';
import { assertPrefixesTruncated, overwritten } from '../lib/fuzz.ts';
import {
  buildArpFrame,
  buildTcpFrame,
  buildUdpFrame,
  decodeTcpOptions,
  nopOutTcpOptions,
  parseFrame,
  readPcap,
  recomputeChecksums,
  replaceTcpOptions,
  rewriteEthDst,
  rewriteIpv4Dst,
  rewriteIpv4Src,
  rewriteL4DstPort,
  rewriteL4SrcPort,
  rewriteTcpWindow,
  shiftSackBlocks,
  shiftTcpAck,
  shiftTcpSeq,
  shiftTcpTimestamps,
  stripTcpOptionsFromFrame,
  verifyChecksums,
  PcapWriter,
  type Result,
} from '../../controller/packet/index.ts';

const wellFormed = wellFormedIn(PACKET_ERROR_KINDS);

// Every entry point that takes a raw frame; each one must return a Result and not throw.
const ENTRY_POINTS: [string, (b: Buffer) => Result<unknown>][] = [
  ['parseFrame', parseFrame],
  ['verifyChecksums', verifyChecksums],
  ['recomputeChecksums', recomputeChecksums],
  ['rewriteIpv4Src', (b) => rewriteIpv4Src(b, '1.2.3.4')],
  ['rewriteIpv4Dst', (b) => rewriteIpv4Dst(b, '5.6.7.8')],
  ['rewriteL4SrcPort', (b) => rewriteL4SrcPort(b, 1)],
  ['rewriteL4DstPort', (b) => rewriteL4DstPort(b, 2)],
  ['rewriteEthDst', (b) => rewriteEthDst(b, '02:00:00:00:00:09')],
  ['rewriteTcpWindow', (b) => rewriteTcpWindow(b, 3)],
  ['shiftTcpSeq', (b) => shiftTcpSeq(b, -7)],
  ['shiftTcpAck', (b) => shiftTcpAck(b, 0x8000_0000)],
  ['shiftSackBlocks', (b) => shiftSackBlocks(b, 9)],
  ['shiftTcpTimestamps', (b) => shiftTcpTimestamps(b, { tsval: 1, tsecr: -1 })],
  ['nopOutTcpOptions', (b) => nopOutTcpOptions(b, ['timestamp', 'sack'])],
  ['stripTcpOptionsFromFrame', (b) => stripTcpOptionsFromFrame(b, ['timestamp'])],
  ['replaceTcpOptions', (b) => replaceTcpOptions(b, [{ kind: 'mss', value: 1 }])],
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

const MAC = { a: '02:00:00:00:00:01', b: '02:00:00:00:00:02' };
const SEEDS: Buffer[] = [
  buildTcpFrame({
    ethSrc: MAC.a, ethDst: MAC.b, ipSrc: '10.0.0.1', ipDst: '10.0.0.2', srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: 0x10, window: 5,
    options: [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'timestamp', tsval: 1, tsecr: 2 }, { kind: 'nop' }, { kind: 'nop' }, { kind: 'sack', blocks: [{ left: 1, right: 2 }, { left: 3, right: 4 }] }],
    payload: Buffer.from('hello'), vlans: [5, 6],
  }),
  buildTcpFrame({
    ethSrc: MAC.a, ethDst: MAC.b, ipSrc: '10.0.0.1', ipDst: '10.0.0.2', srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: 0x02, window: 5,
    options: [{ kind: 'mss', value: 1460 }, { kind: 'sack_permitted' }, { kind: 'wscale', shift: 7 }], ipOptions: Buffer.from('01010101', 'hex'),
  }),
  buildUdpFrame({ ethSrc: MAC.a, ethDst: MAC.b, ipSrc: '10.0.0.1', ipDst: '10.0.0.2', srcPort: 1, dstPort: 2, payload: Buffer.from('x') }),
  buildArpFrame({ op: 'request', ethSrc: MAC.a, senderIp: '10.0.0.1', targetIp: '10.0.0.2', vlans: [3] }),
];

describe('packet codec: fuzzing', () => {
  it('random buffers never make any entry point throw', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (a) => hammer(Buffer.from(a))), { numRuns: 1500 });
  });

  it('random buffers with a plausible Ethernet/IPv4/TCP prefix never throw', () => {
    // Forcing EtherType/version/protocol sends the fuzz deep into the IPv4/TCP/option code.
    const frame = fc
      .tuple(fc.uint8Array({ minLength: 14, maxLength: 120 }), fc.constantFrom(6, 17, 1), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 15 }))
      .map(([a, proto, ihl, doff]) => {
        const b = Buffer.from(a);
        b.writeUInt16BE(0x0800, 12);
        if (b.length > 14) b[14] = 0x40 | ihl;
        if (b.length > 23) b[23] = proto;
        if (b.length > 17) b.writeUInt16BE(Math.min(b.length - 14, 0xffff), 16);
        if (b.length > 46) b[46] = (doff << 4) | (b[46]! & 0x0f);
        return b;
      });
    fc.assert(fc.property(frame, hammer), { numRuns: 3000 });
  });

  it('every truncation of a valid frame is an error for parseFrame (never a partial success)', () => {
    for (const seed of SEEDS) for (let n = 0; n < seed.length; n++) hammer(seed.subarray(0, n));
    assertPrefixesTruncated(SEEDS, parseFrame);
  });

  it('bit flips and byte overwrites of valid frames never throw', () => {
    fc.assert(fc.property(overwritten(SEEDS), hammer), { numRuns: 3000 });
  });

  it('malformed options: shiftSackBlocks changes nothing, shiftTcpAck still shifts the ack', () => {
    const f = buildTcpFrame({
      ethSrc: MAC.a, ethDst: MAC.b, ipSrc: '10.0.0.1', ipDst: '10.0.0.2', srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: 0x10, window: 5,
      // A valid SACK block followed by an option whose length overruns the area.
      optionsRaw: Buffer.from('0101050a0000000a000000140a0c0000', 'hex'),
    });
    const copy = Buffer.from(f);
    const s = shiftSackBlocks(f, 100);
    assert.equal(s.ok, false);
    if (!s.ok) assert.equal(s.error.kind, 'bad_options');
    assert.ok(f.equals(copy));
    const a = shiftTcpAck(f, 100);
    assert.deepEqual(a, { ok: true, value: { sackBlocks: 0, optionsMalformed: true } });
    const p = parseFrame(f);
    assert.ok(p.ok);
    assert.equal(p.value.tcp!.ack, 104);
    assert.equal(p.value.tcp!.optionsRaw.toString('hex'), '0101050a0000000a000000140a0c0000');
    assert.deepEqual(verifyChecksums(f), { ok: true, value: { ip: true, l4: true, l4Checked: true } });
  });

  it('decodeTcpOptions terminates and never throws on any byte string', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 60 }), (a) => {
        const r = decodeTcpOptions(Buffer.from(a));
        wellFormed(r);
      }),
      { numRuns: 3000 },
    );
  });

  it('readPcap never throws on garbage or truncated files', () => {
    const w = new PcapWriter();
    const good = Buffer.concat([w.header(), ...SEEDS.map((s, i) => w.record(s, i))]);
    for (let n = 0; n < good.length; n++) {
      const r = readPcap(good.subarray(0, n));
      wellFormed(r);
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), (a) => wellFormed(readPcap(Buffer.from(a)))), { numRuns: 1000 });
    // A record header announcing 4 GiB must be a truncation error, not an allocation.
    const huge = Buffer.concat([w.header(), Buffer.alloc(16)]);
    huge.writeUInt32LE(0xffffffff, 24 + 8); // incl_len
    const r = readPcap(huge);
    assert.equal(r.ok, false);
  });

  it('non-Buffer input is an error, not a throw', () => {
    for (const [, fn] of ENTRY_POINTS) {
      for (const bad of [undefined, null, 'abc', 42, {}]) {
        let r: Result<unknown>;
        try {
          r = fn(bad as unknown as Buffer);
        } catch (e) {
          assert.fail(`threw on ${String(bad)}: ${String(e)}`);
        }
        assert.equal(r.ok, false);
      }
    }
  });
});
