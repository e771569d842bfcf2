// OXM match fields: each field's exact TLV bytes (OF 1.3.5 §7.2.3.7), masks, padding, errors.
import assert from 'node:assert/strict';
import { decodeMatch, encodeMatch, OXM_FIELDS, type Match } from '../../controller/openflow/index.ts';

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/[\s|]/g, ''), 'hex');
}

/** Wrap OXM TLV bytes in an ofp_match header and padding. */
function wrap(oxm: string): string {
  const body = hex(oxm);
  const len = 4 + body.length;
  const pad = (8 - (len % 8)) % 8;
  return Buffer.concat([hex('0001'), Buffer.from([len >> 8, len & 0xff]), body, Buffer.alloc(pad)]).toString('hex');
}

// [match, OXM TLV bytes]
const FIELDS: Array<[Match, string]> = [
  [{ inPort: 1 }, '80000004 00000001'],
  [{ inPhyPort: 2 }, '80000204 00000002'],
  [{ metadata: 0x1122334455667788n }, '80000408 1122334455667788'],
  [{ metadata: { value: 0x10n, mask: 0xf0n } }, '80000510 0000000000000010 00000000000000f0'],
  [{ ethDst: 'aa:bb:cc:dd:ee:ff' }, '80000606 aabbccddeeff'],
  [{ ethDst: { value: '01:00:00:00:00:00', mask: '01:00:00:00:00:00' } }, '8000070c 010000000000 010000000000'],
  [{ ethSrc: '00:11:22:33:44:55' }, '80000806 001122334455'],
  [{ ethSrc: { value: '00:11:22:00:00:00', mask: 'ff:ff:ff:00:00:00' } }, '8000090c 001122000000 ffffff000000'],
  [{ ethType: 0x0800 }, '80000a02 0800'],
  [{ vlanVid: 0x1005 }, '80000c02 1005'],
  [{ vlanVid: { value: 0x1000, mask: 0x1000 } }, '80000d04 1000 1000'],
  [{ vlanPcp: 3 }, '80000e01 03'],
  [{ ipDscp: 46 }, '80001001 2e'],
  [{ ipEcn: 1 }, '80001201 01'],
  [{ ipProto: 6 }, '80001401 06'],
  [{ ipv4Src: '10.0.0.1' }, '80001604 0a000001'],
  [{ ipv4Src: { value: '10.0.0.0', mask: '255.0.0.0' } }, '80001708 0a000000 ff000000'],
  [{ ipv4Dst: '192.168.1.2' }, '80001804 c0a80102'],
  [{ ipv4Dst: { value: '10.0.0.0', mask: '255.255.255.0' } }, '80001908 0a000000 ffffff00'],
  [{ tcpSrc: 1234 }, '80001a02 04d2'],
  [{ tcpDst: 80 }, '80001c02 0050'],
  [{ udpSrc: 53 }, '80001e02 0035'],
  [{ udpDst: 67 }, '80002002 0043'],
  [{ icmpv4Type: 8 }, '80002601 08'],
  [{ icmpv4Code: 0 }, '80002801 00'],
  [{ arpOp: 1 }, '80002a02 0001'],
  [{ arpSpa: '10.0.0.1' }, '80002c04 0a000001'],
  [{ arpSpa: { value: '10.0.0.0', mask: '255.255.255.0' } }, '80002d08 0a000000 ffffff00'],
  [{ arpTpa: '10.0.0.2' }, '80002e04 0a000002'],
  [{ arpTpa: { value: '10.0.0.0', mask: '255.255.255.0' } }, '80002f08 0a000000 ffffff00'],
  [{ arpSha: 'aa:bb:cc:dd:ee:01' }, '80003006 aabbccddee01'],
  [{ arpSha: { value: 'aa:bb:cc:dd:ee:00', mask: 'ff:ff:ff:ff:ff:00' } }, '8000310c aabbccddee00 ffffffffff00'],
  [{ arpTha: 'aa:bb:cc:dd:ee:02' }, '80003206 aabbccddee02'],
  [{ arpTha: { value: 'aa:bb:cc:dd:ee:00', mask: 'ff:ff:ff:ff:ff:00' } }, '8000330c aabbccddee00 ffffffffff00'],
  [{ ipv6Src: '2001:db8::1' }, '80003410 20010db8000000000000000000000001'],
  [{ ipv6Src: { value: '2001:db8::', mask: 'ffff:ffff::' } }, '80003520 20010db8000000000000000000000000 ffffffff000000000000000000000000'],
  [{ ipv6Dst: 'fe80::1' }, '80003610 fe800000000000000000000000000001'],
  [{ ipv6Dst: { value: '::ffff:10.0.0.0', mask: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00' } }, '80003720 00000000000000000000ffff0a000000 ffffffffffffffffffffffffffffff00'],
  [{ ipv6Flabel: 0x12345 }, '80003804 00012345'],
  [{ ipv6Flabel: { value: 1, mask: 0xf } }, '80003908 00000001 0000000f'],
  [{ icmpv6Type: 135 }, '80003a01 87'],
  [{ icmpv6Code: 0 }, '80003c01 00'],
  [{ ipv6NdTarget: '2001:db8::2' }, '80003e10 20010db8000000000000000000000002'],
  [{ ipv6NdSll: '02:00:00:00:00:01' }, '80004006 020000000001'],
  [{ ipv6NdTll: '02:00:00:00:00:02' }, '80004206 020000000002'],
  [{ ipv6Exthdr: 0x10 }, '80004e02 0010'],
  [{ ipv6Exthdr: { value: 0x10, mask: 0x30 } }, '80004f04 0010 0030'],
  // Connection tracking: Nicira NXM_1 fields (class 0x0001), as ovs-ofctl sends them at OF1.3.
  [{ ctState: 0x20 }, '0001d204 00000020'],
  [{ ctState: { value: 0x20, mask: 0x30 } }, '0001d308 00000020 00000030'],
  [{ ctZone: 0x746d }, '0001d402 746d'],
  [{ ctMark: 1 }, '0001d604 00000001'],
  [{ ctMark: { value: 1, mask: 3 } }, '0001d708 00000001 00000003'],
  [{ ctLabel: 0x30002n }, '0001d810 00000000000000000000000000030002'],
  [{ ctLabel: { value: 1n << 127n, mask: 3n << 126n } }, '0001d920 80000000000000000000000000000000 c0000000000000000000000000000000'],
  // tcp_flags as OVS emits it at OF1.3: ONF experimenter OXM (class 0xffff, field 42, exp ONF).
  [{ tcpFlags: 0x002 }, 'ffff5406 4f4e4600 0002'],
  [{ tcpFlags: { value: 0x002, mask: 0x012 } }, 'ffff5508 4f4e4600 0002 0012'],
];

describe('openflow codec: match / OXM', () => {
  for (const [match, oxm] of FIELDS) {
    it(`${JSON.stringify(match, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`, () => {
      const bytes = encodeMatch(match);
      assert.equal(bytes.toString('hex'), wrap(oxm));
      assert.equal(bytes.length % 8, 0);
      assert.deepEqual(decodeMatch(bytes), { ok: true, value: match });
    });
  }

  it('every field of the table has a byte-level test above', () => {
    const tested = new Set(FIELDS.flatMap(([m]) => Object.keys(m)));
    for (const def of OXM_FIELDS) assert.ok(tested.has(def.key), def.key);
  });

  it('empty match is 8 bytes: header + 4 pad', () => {
    assert.equal(encodeMatch({}).toString('hex'), '0001000400000000');
    assert.deepEqual(decodeMatch(hex('0001000400000000')), { ok: true, value: {} });
  });

  it('fields are emitted in prerequisite order whatever the key order', () => {
    const m: Match = { tcpDst: 80, ipv4Dst: '10.0.0.2', ipProto: 6, inPort: 3, ethType: 0x0800 };
    assert.equal(
      encodeMatch(m).toString('hex'),
      wrap('80000004 00000003 80000a02 0800 80001401 06 80001804 0a000002 80001c02 0050'),
    );
  });

  it('decodes tcp_flags in its NXM form (NXM_NX_TCP_FLAGS, class 1 field 34)', () => {
    assert.deepEqual(decodeMatch(hex(wrap('00014402 0012'))), { ok: true, value: { tcpFlags: 0x12 } });
    assert.deepEqual(decodeMatch(hex(wrap('00014504 0002 0fff'))), { ok: true, value: { tcpFlags: { value: 2, mask: 0xfff } } });
  });

  it('keeps unknown OXMs (e.g. MPLS, other experimenters) and re-encodes them', () => {
    const mplsLabel = '80004404 00012345';
    const other = 'ffff0208 12345678 abcd0000';
    const r = decodeMatch(hex(wrap(`80000a02 8847 ${mplsLabel} ${other}`)));
    assert.ok(r.ok);
    assert.deepEqual(r.value, {
      ethType: 0x8847,
      unknownOxm: [
        { oxmClass: 0x8000, field: 34, hasMask: false, data: hex('00012345') },
        { oxmClass: 0xffff, field: 1, hasMask: false, data: hex('12345678abcd0000') },
      ],
    });
    assert.equal(encodeMatch(r.value).toString('hex'), wrap(`80000a02 8847 ${mplsLabel} ${other}`));
  });

  describe('errors', () => {
    const cases: Array<[string, string, string]> = [
      ['OXM length past the match', wrap('80000004 00000001').replace('0001000c', '0001000d'), 'truncated'],
      ['wrong payload length for the field', wrap('80000003 000001'), 'bad_length'],
      ['mask on a non-maskable field', wrap('80001d04 00500050'), 'bad_value'],
      ['duplicate field', wrap('80001401 06 80001401 11'), 'bad_value'],
      ['experimenter OXM shorter than its id', wrap('ffff5402 0002'), 'bad_length'],
      ['missing padding', '0001000c8000000400000001', 'truncated'],
      ['trailing bytes after the match', '0001000400000000 00', 'bad_length'],
      ['truncated OXM header', '000100060000 0000', 'truncated'],
    ];
    for (const [name, bytes, kind] of cases) {
      it(name, () => {
        const r = decodeMatch(hex(bytes));
        assert.equal(r.ok, false);
        assert.equal(!r.ok && r.error.kind, kind, !r.ok ? r.error.message : '');
      });
    }

    it('zero-length unknown OXMs still progress (no infinite loop)', () => {
      const r = decodeMatch(hex(wrap('80007e00 80007e00')));
      assert.ok(r.ok);
      assert.equal(r.value.unknownOxm?.length, 2);
    });

    it('encode rejects out-of-range narrow fields', () => {
      assert.throws(() => encodeMatch({ ipDscp: 64 }), { name: 'OfpEncodeError' });
      assert.throws(() => encodeMatch({ vlanPcp: 8 }), { name: 'OfpEncodeError' });
      assert.throws(() => encodeMatch({ metadata: -1n }), { name: 'OfpEncodeError' });
    });

    it('encode rejects value bits outside the mask (switch would say OFPBMC_BAD_WILDCARDS)', () => {
      assert.throws(() => encodeMatch({ ethDst: { value: '00:00:00:00:00:02', mask: 'ff:ff:ff:ff:ff:00' } }), /outside the mask/);
      assert.throws(() => encodeMatch({ ipv4Src: { value: '10.0.0.1', mask: '255.255.255.0' } }), /outside the mask/);
      assert.throws(() => encodeMatch({ metadata: { value: 3n, mask: 1n } }), /outside the mask/);
      assert.throws(() => encodeMatch({ tcpFlags: { value: 3, mask: 1 } }), /outside the mask/);
    });
  });
});
