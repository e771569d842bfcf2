// IPv6 in the OpenFlow codec: OXM fields (addresses in RFC 5952 text), prerequisite order,
// masks and errors, set_field, and the ovs-ofctl spelling the API shows. The byte layout of each
// field is in openflow-match.test.ts; ovs-ofctl's own reading is in the integration tests.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatAction, formatMatch, flowView } from '../../controller/api/flow-format.ts';
import { decodeActions, decodeMatch, encodeActions, encodeMatch, OFPIEH, type FlowStats, type Match } from '../../controller/openflow/index.ts';
import { formatIpv6 } from '../../controller/packet/addr.ts';

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/[\s|]/g, ''), 'hex');
}

/** The OXM TLVs of an encoded match (header and padding removed). */
function tlvs(m: Match): string {
  const b = encodeMatch(m);
  return b.subarray(4, b.readUInt16BE(2)).toString('hex');
}

const ND: Match = { ethType: 0x86dd, ipProto: 58, icmpv6Type: 135, icmpv6Code: 0, ipv6NdTarget: 'fe80::1', ipv6NdSll: '02:00:00:00:00:01' };

describe('openflow codec: IPv6 match fields', () => {
  it('any spelling of an address encodes the same bytes and decodes to the RFC 5952 form', () => {
    for (const spelling of ['2001:DB8:0:0:0:0:0:1', '2001:0db8::0001', '2001:db8:0::0:1']) {
      assert.equal(tlvs({ ipv6Src: spelling }), tlvs({ ipv6Src: '2001:db8::1' }));
      assert.deepEqual(decodeMatch(encodeMatch({ ipv6Src: spelling })), { ok: true, value: { ipv6Src: '2001:db8::1' } });
    }
    assert.deepEqual(decodeMatch(encodeMatch({ ipv6Dst: '::ffff:10.0.0.1' })), { ok: true, value: { ipv6Dst: '::ffff:10.0.0.1' } });
    assert.deepEqual(decodeMatch(encodeMatch({ ipv6NdTarget: 'FE80:0::1' })), { ok: true, value: { ipv6NdTarget: 'fe80::1' } });
  });

  it('fields go out in prerequisite order: eth_type, ip_proto, addresses, icmpv6_type before nd_*', () => {
    const scrambled: Match = { ipv6NdSll: '02:00:00:00:00:01', ipv6NdTarget: 'fe80::1', icmpv6Code: 0, icmpv6Type: 135, ipv6Src: 'fe80::2', ipProto: 58, ethType: 0x86dd, inPort: 1 };
    assert.equal(tlvs(scrambled), hex(
      '80000004 00000001 80000a02 86dd 80001401 3a 80003410 fe800000000000000000000000000002 80003a01 87 80003c01 00 ' +
      '80003e10 fe800000000000000000000000000001 80004006 020000000001').toString('hex'));
    const r = decodeMatch(encodeMatch(scrambled));
    assert.ok(r.ok);
    assert.deepEqual(r.value, { inPort: 1, ethType: 0x86dd, ipProto: 58, ipv6Src: 'fe80::2', icmpv6Type: 135, icmpv6Code: 0, ipv6NdTarget: 'fe80::1', ipv6NdSll: '02:00:00:00:00:01' });
  });

  it('a TCP/IPv6 match as the handoff flows use it round-trips', () => {
    const m: Match = {
      inPort: 2, ethType: 0x86dd, ipProto: 6, ipv6Src: '2001:db8::2', ipv6Dst: { value: '2001:db8::', mask: 'ffff:ffff:ffff:ffff::' },
      ipv6Flabel: { value: 0x12340, mask: 0xffff0 }, tcpSrc: 40000, tcpDst: 5001, tcpFlags: { value: 2, mask: 0x12 },
    };
    assert.deepEqual(decodeMatch(encodeMatch(m)), { ok: true, value: m });
  });

  it('IPV6_EXTHDR carries OFPIEH_* bits', () => {
    const m: Match = { ethType: 0x86dd, ipv6Exthdr: { value: OFPIEH.FRAG, mask: OFPIEH.FRAG | OFPIEH.UNSEQ } };
    assert.equal(tlvs(m), '80000a0286dd80004f0400100110');
    assert.deepEqual(decodeMatch(encodeMatch(m)), { ok: true, value: m });
  });

  describe('errors', () => {
    it('encode: bad addresses, masks where OF1.3 has none, out-of-range values, bits outside the mask', () => {
      const bad: Match[] = [
        { ipv6Src: '2001:db8::g' }, { ipv6Dst: '10.0.0.1' }, { ipv6Src: 'fe80::1%eth0' }, { ipv6NdTarget: '::1::' },
        { ipv6NdTarget: { value: 'fe80::', mask: 'ffff::' } } as unknown as Match, { icmpv6Type: { value: 1, mask: 1 } } as unknown as Match,
        { ipv6NdSll: { value: '02:00:00:00:00:00', mask: 'ff:ff:ff:00:00:00' } } as unknown as Match,
        { ipv6Flabel: 0x100000 }, { ipv6Flabel: { value: 1, mask: 0x100001 } }, { ipv6Exthdr: 0x200 }, { icmpv6Code: 256 },
        { ipv6Src: { value: '2001:db8::1', mask: 'ffff:ffff::' } }, { ipv6Flabel: { value: 3, mask: 1 } },
      ];
      for (const m of bad) assert.throws(() => encodeMatch(m), { name: 'OfpEncodeError' }, JSON.stringify(m));
    });

    it('decode: wrong lengths and masks OF1.3 does not allow', () => {
      const cases: Array<[string, string]> = [
        ['8000340f 20010db80000000000000000000000', 'bad_length'], // 15-byte address
        ['80003510 20010db8000000000000000000000000', 'bad_length'], // masked, but one address long
        ['80003f20 fe800000000000000000000000000000 ffff0000000000000000000000000000', 'bad_value'], // masked nd_target
        ['80004204 00000000', 'bad_length'], // nd_tll of 4 bytes
      ];
      for (const [oxm, kind] of cases) {
        const body = hex(oxm);
        const len = 4 + body.length;
        const m = Buffer.concat([hex('0001'), Buffer.from([len >> 8, len & 0xff]), body, Buffer.alloc((8 - (len % 8)) % 8)]);
        const r = decodeMatch(m);
        assert.equal(r.ok, false, oxm);
        if (!r.ok) assert.equal(r.error.kind, kind, `${oxm}: ${r.error.message}`);
      }
    });
  });

  it('set_field actions with IPv6 fields round-trip', () => {
    const actions = [
      { type: 'set_field' as const, field: { ipv6Src: '2001:db8::5' } },
      { type: 'set_field' as const, field: { ipv6Dst: 'fd00::1' } },
      { type: 'set_field' as const, field: { ipv6NdTarget: 'fe80::9' } },
      { type: 'set_field' as const, field: { ipv6NdTll: '02:00:00:00:00:09' } },
      { type: 'set_field' as const, field: { ipv6Flabel: 0x12 } },
      { type: 'output' as const, port: 1, maxLen: 0xffe5 },
    ];
    assert.deepEqual(decodeActions(encodeActions(actions)), { ok: true, value: actions });
  });

  it('random IPv6 matches round-trip, whatever the spelling of their addresses', () => {
    const addr = fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }))
      .map(([a, z]) => { const b = Buffer.from(a); z.forEach((zero, g) => { if (zero) b.writeUInt16BE(0, 2 * g); }); return b; });
    /** The full, upper-case, zero-padded spelling: never the canonical one unless all groups are 0000. */
    const spelled = (b: Buffer) => Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i).toString(16).padStart(4, '0').toUpperCase()).join(':');
    const masked = fc.tuple(addr, fc.integer({ min: 0, max: 128 })).map(([a, len]) => {
      const mask = Buffer.alloc(16);
      for (let i = 0; i < len; i++) mask[i >> 3]! |= 0x80 >> (i & 7);
      return { value: Buffer.from(a.map((x, i) => x & mask[i]!)), mask };
    });
    fc.assert(fc.property(addr, masked, addr, fc.integer({ min: 0, max: 0xfffff }), fc.integer({ min: 0, max: 255 }), (src, dst, target, label, type) => {
      const m: Match = {
        ethType: 0x86dd, ipProto: 58, ipv6Src: spelled(src), ipv6Dst: { value: spelled(dst.value), mask: spelled(dst.mask) }, ipv6Flabel: label,
        icmpv6Type: type, ipv6NdTarget: spelled(target),
      };
      const r = decodeMatch(encodeMatch(m));
      assert.ok(r.ok);
      assert.deepEqual(r.value, {
        ...m, ipv6Src: formatIpv6(src), ipv6Dst: { value: formatIpv6(dst.value), mask: formatIpv6(dst.mask) }, ipv6NdTarget: formatIpv6(target),
      });
      assert.deepEqual(encodeMatch(r.value), encodeMatch(m));
    }), { numRuns: 500 });
  });
});

describe('API flow formatting: IPv6 in ovs-ofctl spelling', () => {
  it('protocol words, addresses, prefixes, flow label', () => {
    assert.equal(formatMatch({ ethType: 0x86dd }), 'ipv6');
    assert.equal(formatMatch({ ethType: 0x86dd, ipProto: 6, ipv6Src: '2001:db8::2', tcpDst: 5001 }), 'tcp6,ipv6_src=2001:db8::2,tp_dst=5001');
    assert.equal(formatMatch({ ethType: 0x86dd, ipProto: 17, udpDst: 53 }), 'udp6,tp_dst=53');
    assert.equal(formatMatch({ ethType: 0x86dd, ipProto: 50 }), 'ipv6,nw_proto=50');
    assert.equal(formatMatch({ inPort: 3, ethType: 0x86dd, ipv6Dst: { value: '2001:db8::', mask: 'ffff:ffff::' } }), 'in_port=3,ipv6,ipv6_dst=2001:db8::/32');
    assert.equal(formatMatch({ ipv6Dst: { value: '2001:db8::1', mask: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff' } }), 'ipv6_dst=2001:db8::1');
    assert.equal(formatMatch({ ipv6Dst: { value: '2001:db8::', mask: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe' } }), 'ipv6_dst=2001:db8::/127');
    assert.equal(formatMatch({ ipv6Src: { value: '2001::1', mask: 'ffff::1' } }), 'ipv6_src=2001::1/ffff::1');
    assert.equal(formatMatch({ ipv6Src: { value: '::', mask: 'f000::' } }), 'ipv6_src=::/4');
    assert.equal(formatMatch({ ipv6Flabel: 0x12345 }), 'ipv6_label=0x12345');
    assert.equal(formatMatch({ ipv6Flabel: { value: 1, mask: 0xf } }), 'ipv6_label=0x00001/0x0000f');
  });

  it('ICMPv6 and neighbour discovery', () => {
    assert.equal(formatMatch(ND), 'icmp6,icmp_type=135,icmp_code=0,nd_target=fe80::1,nd_sll=02:00:00:00:00:01');
    assert.equal(formatMatch({ ethType: 0x86dd, ipProto: 58, icmpv6Type: 136, ipv6NdTarget: 'fe80::1', ipv6NdTll: '02:00:00:00:00:02' }),
      'icmp6,icmp_type=136,nd_target=fe80::1,nd_tll=02:00:00:00:00:02');
    assert.equal(formatMatch({ ethType: 0x86dd, ipv6Exthdr: { value: 0x10, mask: 0x10 } }), 'ipv6,ipv6_exthdr=0x10/0x10');
  });

  it('set_field actions', () => {
    assert.equal(formatAction({ type: 'set_field', field: { ipv6Dst: '2001:db8::5' } }), 'set_field:2001:db8::5->ipv6_dst');
    assert.equal(formatAction({ type: 'set_field', field: { ipv6Src: 'fd00::1' } }), 'set_field:fd00::1->ipv6_src');
    assert.equal(formatAction({ type: 'set_field', field: { ipv6NdTarget: 'fe80::1' } }), 'set_field:fe80::1->nd_target');
    assert.equal(formatAction({ type: 'set_field', field: { ipv6Flabel: 0x12 } }), 'set_field:0x12->ipv6_label');
    assert.equal(formatAction({ type: 'set_field', field: { icmpv6Type: 136 } }), 'set_field:136->icmpv6_type');
  });

  it('flowView tells the directions of an IPv6 connection apart', () => {
    const stats = (src: string): FlowStats => ({
      tableId: 0, durationSec: 0, durationNsec: 0, priority: 1, idleTimeout: 0, hardTimeout: 0, flags: 0, cookie: 0n, packetCount: 0n, byteCount: 0n,
      match: { ethType: 0x86dd, ipProto: 6, ipv6Src: src }, instructions: [],
    });
    assert.equal(flowView(stats('2001:db8::2'), '2001:db8::2').direction, 'client→backend');
    assert.equal(flowView(stats('2001:db8::3'), '2001:db8::2').direction, 'backend→client');
  });
});
