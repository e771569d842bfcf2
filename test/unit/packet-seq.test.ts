// Sequence arithmetic mod 2^32 and checksum primitives.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  csumReplace16,
  csumReplace32,
  deltaToIncDec,
  internetChecksum,
  onesSum,
  parseIpv4,
  parseMac,
  seqAdd,
  seqDiff,
  seqGeq,
  seqGt,
  seqLeq,
  seqLt,
  seqSub,
} from '../../controller/packet/index.ts';

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });

describe('packet codec: sequence arithmetic', () => {
  it('wraps at 2^32', () => {
    assert.equal(seqAdd(0xffff_ffff, 1), 0);
    assert.equal(seqAdd(0, -1), 0xffff_ffff);
    assert.equal(seqAdd(5, 0x1_0000_0005), 10);
    assert.equal(seqSub(1, 0xffff_ffff), 2);
    assert.equal(seqDiff(1, 0xffff_ffff), 2);
    assert.equal(seqDiff(0xffff_ffff, 1), -2);
    assert.ok(seqLt(0xffff_fff0, 0x10));
    assert.ok(seqGt(0x10, 0xffff_fff0));
    assert.ok(seqLeq(7, 7) && seqGeq(7, 7) && !seqLt(7, 7) && !seqGt(7, 7));
  });

  it('comparisons agree with the signed distance for any pair', () => {
    fc.assert(
      fc.property(u32, fc.integer({ min: -0x7fff_ffff, max: 0x7fff_ffff }), (a, d) => {
        const b = seqAdd(a, d);
        assert.equal(seqDiff(b, a), d);
        assert.equal(seqGt(b, a), d > 0);
        assert.equal(seqLt(b, a), d < 0);
        assert.equal(seqAdd(b, -d), a);
        assert.equal(seqAdd(a, seqSub(b, a)), b);
      }),
    );
  });

  it('deltaToIncDec picks the smaller magnitude and is equivalent mod 2^32', () => {
    assert.deepEqual(deltaToIncDec(5), { op: 'inc', amount: 5 });
    assert.deepEqual(deltaToIncDec(-5), { op: 'dec', amount: 5 });
    assert.deepEqual(deltaToIncDec(0xffff_fffb), { op: 'dec', amount: 5 });
    fc.assert(
      fc.property(u32, u32, (x, d) => {
        const { op, amount } = deltaToIncDec(d);
        assert.ok(amount <= 0x8000_0000);
        assert.equal(op === 'inc' ? seqAdd(x, amount) : seqAdd(x, -amount), seqAdd(x, d));
      }),
    );
  });
});

describe('packet codec: checksum primitives', () => {
  it('matches the RFC 1071 worked example', () => {
    const b = Buffer.from('0001f203f4f5f6f7', 'hex');
    assert.equal(onesSum(b), 0xddf2);
    assert.equal(internetChecksum(b), 0x220d);
    // Odd length: the last byte is padded with zero.
    assert.equal(onesSum(Buffer.from('0001f2', 'hex')), 0xf201);
  });

  it('RFC 1624 incremental update equals recomputation for 16- and 32-bit fields', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 64 }), fc.nat(), fc.integer({ min: 0, max: 0xffff }), u32, (a, pos, w, v) => {
        const buf = Buffer.from(a.length % 2 ? [...a, 0] : a);
        // Real headers are never all zero (the one case where ±0 representations differ).
        buf[0] = 0x45;
        const hc = internetChecksum(buf);
        const i = 2 + (pos % (buf.length / 2 - 2)) * 2;
        const old16 = buf.readUInt16BE(i);
        buf.writeUInt16BE(w, i);
        assert.equal(csumReplace16(hc, old16, w), internetChecksum(buf));
        const hc2 = internetChecksum(buf);
        const old32 = buf.readUInt32BE(i);
        buf.writeUInt32BE(v, i);
        assert.equal(csumReplace32(hc2, old32, v), internetChecksum(buf));
      }),
      { numRuns: 2000 },
    );
  });

  it('address parsers reject malformed strings with a typed error', () => {
    for (const s of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-4', ' 1.2.3.4', '1.2.3.4 ']) {
      const r = parseIpv4(s);
      assert.equal(r.ok, false, s);
      if (!r.ok) assert.equal(r.error.kind, 'bad_argument');
    }
    assert.deepEqual(parseIpv4('255.255.255.255'), { ok: true, value: 0xffff_ffff });
    for (const s of ['', '00:11:22:33:44', '00:11:22:33:44:5g', '00:11-22:33:44:55', '0011.2233.4455']) assert.equal(parseMac(s).ok, false, s);
    const m = parseMac('AA-bb-CC-dd-EE-ff');
    assert.ok(m.ok);
    assert.equal(m.value.toString('hex'), 'aabbccddeeff');
  });
});
