// IPv6 packet codec: text forms, hand-checked checksums, frames Linux sent, the extension-header
// walk, ICMPv6/ND, the builders, and the typed errors for malformed input.
import assert from 'node:assert/strict';
import {
  buildIcmpv6EchoFrame, buildNeighborAdvertisement, buildNeighborAdvertisementReply, buildNeighborSolicitation, buildTcp6Frame, buildUdp6Frame,
  canonicalIpv6, decodeIcmpv6, decodeIpv6, encodeIcmpv6, encodeIpv6Header, formatIpv6, l4Checksum6, parseFrame, parseIpv6, pseudoHeaderSum6,
  recomputeChecksums, replaceTcpOptions, stripTcpOptionsFromFrame, verifyChecksums, IPV6_MAX_EXT_HEADERS, PacketBuildError,
  type Ipv6ExtHeaderSpec, type ParsedFrame,
} from '../../controller/packet/index.ts';

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/[\s|]/g, ''), 'hex');
}

function parsed(b: Buffer): ParsedFrame {
  const r = parseFrame(b);
  if (!r.ok) assert.fail(`parseFrame failed: ${r.error.kind} ${r.error.message}`);
  return r.value;
}

function v6(s: string): Buffer {
  const r = parseIpv6(s);
  if (!r.ok) assert.fail(r.error.message);
  return r.value;
}

function errorKind(b: Buffer): string | undefined {
  const r = parseFrame(b);
  return r.ok ? undefined : r.error.kind;
}

const A = { mac: '02:00:00:00:00:01', ip: '2001:db8::1' };
const B = { mac: '02:00:00:00:00:02', ip: '2001:db8::2' };
const L2 = { ethSrc: A.mac, ethDst: B.mac, ipSrc: A.ip, ipDst: B.ip };

describe('packet codec, IPv6: addresses', () => {
  // [input, canonical]: RFC 5952 §4 and its examples, and the mixed forms inet_ntop prints.
  const CANON: Array<[string, string]> = [
    ['2001:0db8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['2001:db8::0:1', '2001:db8::1'], // §4.2.1: shorten as much as possible
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // §4.2.2: one 0 group is not '::'
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // §4.2.3: the longest run
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // §4.2.3: the first of equal runs
    ['2001:DB8::AbCd', '2001:db8::abcd'], // §4.3: lower case
    ['0:0:0:0:0:0:0:0', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['fe80::0001', 'fe80::1'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'], // §5: IPv4-mapped, mixed
    ['::ffff:c000:0201', '::ffff:192.0.2.1'],
    ['::192.0.2.1', '::192.0.2.1'], // IPv4-compatible, as inet_ntop prints it
    ['::0.0.1.2', '::102'], // ...but not when the 7th group is 0
    ['::0.0.0.1', '::1'],
    ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['::ffff:0:1.2.3.4', '::ffff:0:102:304'],
  ];
  for (const [input, canon] of CANON) {
    it(`${input} → ${canon}`, () => {
      assert.deepEqual(canonicalIpv6(input), { ok: true, value: canon });
      assert.deepEqual(canonicalIpv6(canon), { ok: true, value: canon });
    });
  }

  it('parses to the right bytes', () => {
    assert.equal(v6('2001:db8::1').toString('hex'), '20010db8000000000000000000000001');
    assert.equal(v6('::ffff:10.0.0.1').toString('hex'), '00000000000000000000ffff0a000001');
    assert.equal(v6('::').toString('hex'), '0'.repeat(32));
    assert.equal(formatIpv6(hex('00 11 fe80000000000000000000000000000a'), 2), 'fe80::a');
  });

  it('rejects every invalid form with bad_argument', () => {
    const bad = [
      '', ':', ':::', '1:::2', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8::', '::1:2:3:4:5:6:7:8', '12345::', 'g::',
      ':1::', '1:', ':1', '::1.2.3', '::1.2.3.4.5', '::01.2.3.4', '::256.1.1.1', '1.2.3.4::', '::1.2.3.4:5', '1:2:3:4:5:6:7:1.2.3.4',
      'fe80::1%eth0', '2001:db8::/32', ' ::1', '::1 ', '[::1]', '0x1::',
    ];
    for (const s of bad) {
      const r = parseIpv6(s);
      assert.equal(r.ok, false, s);
      if (!r.ok) assert.equal(r.error.kind, 'bad_argument', s);
    }
    for (const v of [undefined, null, 42, {}]) assert.equal(parseIpv6(v as unknown as string).ok, false);
  });
});

describe('packet codec, IPv6: hand-checked checksums', () => {
  it('ICMPv6 echo request fe80::1 → fe80::2, id 0x1234 seq 1: checksum 0x7083', () => {
    // Pseudo-header: fe80 + 0001 (src) + fe80 + 0002 (dst) + 0008 (length) + 003a (next header) = 0x1fd45.
    // Message: 8000 (type, code) + 0000 (checksum) + 1234 (id) + 0001 (seq) = 0x9235.
    // 0x1fd45 + 0x9235 = 0x28f7a → folded 0x8f7a + 0x2 = 0x8f7c → checksum ~0x8f7c = 0x7083.
    const f = buildIcmpv6EchoFrame({ ethSrc: A.mac, ethDst: B.mac, ipSrc: 'fe80::1', ipDst: 'fe80::2', type: 'request', id: 0x1234, seq: 1 });
    assert.equal(f.toString('hex'),
      '020000000002' + '020000000001' + '86dd' +
      '60000000 0008 3a 40 fe800000000000000000000000000001 fe800000000000000000000000000002'.replace(/ /g, '') +
      '8000 7083 1234 0001'.replace(/ /g, ''));
    const p = parsed(f);
    assert.deepEqual([p.icmpv6!.type, p.icmpv6!.checksum, p.icmpv6!.checksumOk, p.icmpv6!.echo], [128, 0x7083, true, { id: 0x1234, seq: 1 }]);
    assert.equal(pseudoHeaderSum6(v6('fe80::1'), v6('fe80::2'), 58, 8), 0xfd46);
  });

  it('TCP SYN 2001:db8::1:4660 → 2001:db8::2:80, seq 1, window 65535: checksum 0x41e9', () => {
    // Pseudo-header: 2001 + 0db8 + 0001 = 0x2dba, 2001 + 0db8 + 0002 = 0x2dbb, length 0x14, next header 6:
    // 0x5b8f. Segment: 1234 + 0050 + 0001 + 5002 + ffff = 0x16286. 0x5b8f + 0x16286 = 0x1be15
    // → 0xbe15 + 1 = 0xbe16 → checksum ~0xbe16 = 0x41e9.
    const f = buildTcp6Frame({ ...L2, srcPort: 0x1234, dstPort: 80, seq: 1, ack: 0, flags: { syn: true }, window: 0xffff });
    assert.equal(f.subarray(14).toString('hex'),
      '6000000000140640' + '20010db8000000000000000000000001' + '20010db8000000000000000000000002' +
      '12340050' + '00000001' + '00000000' + '5002ffff' + '41e90000');
    assert.equal(l4Checksum6(f, 54, f.length, v6(A.ip), v6(B.ip), 6), 0);
  });
});

describe('packet codec, IPv6: frames Linux sent (captured on a veth)', () => {
  const NS = hex('3333ff00000b02060000000a86dd6000000000203afffd00000600000000000000000000000aff0200000000000000000001ff00000b87007d6100000000fd00000600000000000000000000000b010102060000000a');
  const NA = hex('02060000000a02060000000b86dd6000000000203afffd00000600000000000000000000000bfd00000600000000000000000000000a88001c5e60000000fd00000600000000000000000000000b020102060000000b');
  // MLDv2 report: Hop-by-Hop header with Router Alert (type 5) and PadN, then ICMPv6 143.
  const MLD = hex('33330000001602060000000b86dd6000000000240001fe80000000000000000600fffe00000bff0200000000000000000000000000163a000502000001008f0071ed0000000104000000ff0200000000000000000001ff00000b');

  it('neighbour solicitation', () => {
    const p = parsed(NS);
    assert.deepEqual([p.ipv6!.src, p.ipv6!.dst, p.ipv6!.hopLimit], ['fd00:6::a', 'ff02::1:ff00:b', 255]);
    const m = p.icmpv6!;
    assert.deepEqual([m.type, m.code, m.checksum, m.checksumOk, m.ndTarget, m.sll, m.tll], [135, 0, 0x7d61, true, 'fd00:6::b', '02:06:00:00:00:0a', undefined]);
    assert.deepEqual(m.ndOptions, [{ kind: 'source_lla', mac: '02:06:00:00:00:0a' }]);
    // Our builder makes the same bytes.
    assert.ok(buildNeighborSolicitation({ ethSrc: '02:06:00:00:00:0a', ipSrc: 'fd00:6::a', target: 'fd00:6::b' }).equals(NS));
  });

  it('neighbour advertisement; our reply to the solicitation is byte-identical', () => {
    const m = parsed(NA).icmpv6!;
    assert.deepEqual([m.type, m.checksum, m.checksumOk, m.ndTarget, m.tll, m.na], [136, 0x1c5e, true, 'fd00:6::b', '02:06:00:00:00:0b', { router: false, solicited: true, override: true }]);
    assert.ok(buildNeighborAdvertisementReply(parsed(NS), '02:06:00:00:00:0b').equals(NA));
  });

  it('MLDv2 report behind a Hop-by-Hop header', () => {
    const p = parsed(MLD);
    assert.equal(p.ipv6!.nextHeader, 0);
    assert.equal(p.ipv6!.protocol, 58);
    assert.equal(p.ipv6!.headerLength, 48);
    assert.deepEqual(p.ipv6!.extHeaders, [{
      kind: 'hop_by_hop', protocol: 0, nextHeader: 58, offset: 54, length: 8,
      options: [{ type: 5, data: hex('0000') }, { type: 1, data: Buffer.alloc(0) }],
    }]);
    assert.deepEqual([p.icmpv6!.type, p.icmpv6!.checksumOk, p.l4Offset], [143, true, 62]);
    assert.deepEqual(verifyChecksums(MLD), { ok: true, value: { ip: true, l4: true, l4Checked: true } });
  });
});

describe('packet codec, IPv6: fixed header and extension headers', () => {
  it('decodes every fixed-header field', () => {
    const f = buildUdp6Frame({ ...L2, srcPort: 1, dstPort: 2, payload: Buffer.from('abc'), hopLimit: 7, trafficClass: 0xb9, flowLabel: 0xabcde });
    const ip = parsed(f).ipv6!;
    assert.deepEqual(
      [ip.version, ip.trafficClass, ip.dscp, ip.ecn, ip.flowLabel, ip.payloadLength, ip.nextHeader, ip.hopLimit, ip.protocol, ip.headerLength, ip.totalLength, ip.isFragment],
      [6, 0xb9, 0x2e, 1, 0xabcde, 11, 17, 7, 17, 40, 51, false],
    );
    assert.ok(ip.srcBytes.equals(v6(A.ip)) && ip.dstBytes.equals(v6(B.ip)) && ip.pseudoDstBytes.equals(v6(B.ip)));
  });

  it('walks HBH, Destination, Routing, Fragment, AH, Destination to TCP; the checksum uses the Routing header\'s final destination', () => {
    const exts: Ipv6ExtHeaderSpec[] = [
      { kind: 'hop_by_hop', options: [{ type: 5, data: hex('0000') }] },
      { kind: 'destination', options: [{ type: 0x1e, data: hex('010203') }, { type: 0, data: Buffer.alloc(0) }] },
      { kind: 'routing', routingType: 2, segmentsLeft: 1, addresses: ['2001:db8::99'] },
      { kind: 'fragment', id: 0xdeadbeef },
      { kind: 'auth', spi: 0x100, seq: 7, icv: Buffer.alloc(12, 0xaa) },
      { kind: 'destination' },
    ];
    const f = buildTcp6Frame({ ...L2, extHeaders: exts, srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: { ack: true }, window: 5, payload: Buffer.from('data') });
    const p = parsed(f);
    const ip = p.ipv6!;
    assert.deepEqual(ip.extHeaders.map((e) => [e.kind, e.protocol, e.length]), [
      ['hop_by_hop', 0, 8], ['destination', 60, 8], ['routing', 43, 24], ['fragment', 44, 8], ['auth', 51, 24], ['destination', 60, 8],
    ]);
    assert.deepEqual(ip.extHeaders.map((e) => e.nextHeader), [60, 43, 44, 51, 60, 6]);
    const [hbh, dst, rt, frag, ah] = ip.extHeaders;
    assert.deepEqual(hbh!.kind === 'hop_by_hop' && hbh.options, [{ type: 5, data: hex('0000') }, { type: 1, data: Buffer.alloc(0) }]);
    assert.deepEqual(dst!.kind === 'destination' && dst.options.map((o) => o.type), [0x1e, 0]); // 2 + 5 + 1 bytes: no padding
    assert.deepEqual(rt!.kind === 'routing' && [rt.routingType, rt.segmentsLeft, rt.data.length], [2, 1, 20]);
    assert.deepEqual(frag!.kind === 'fragment' && [frag.fragmentOffset, frag.mf, frag.id], [0, false, 0xdeadbeef]);
    assert.deepEqual(ah!.kind === 'auth' && [ah.spi, ah.seq, ah.icv.toString('hex')], [0x100, 7, 'aa'.repeat(12)]);
    assert.equal(ip.headerLength, 40 + 80);
    assert.equal(ip.isFragment, false, 'an atomic fragment is not a fragment');
    assert.equal(ip.dst, B.ip);
    assert.equal(ip.pseudoDst, '2001:db8::99');
    assert.equal(p.tcp!.seq, 3);
    assert.equal(p.payload.toString(), 'data');
    assert.equal(p.l4Offset, 14 + 120);
    assert.deepEqual(verifyChecksums(f), { ok: true, value: { ip: true, l4: true, l4Checked: true } });
    // The same checksum over the current destination would be wrong.
    assert.notEqual(l4Checksum6(f, p.l4Offset!, f.length, ip.srcBytes, ip.dstBytes, 6), 0);
  });

  it('SRv6 (type 4): the final destination is Segment List[0]; no segments left: the destination itself', () => {
    const srh = (left: number) => buildUdp6Frame({
      ...L2, ipDst: '2001:db8::99', srcPort: 1, dstPort: 2,
      extHeaders: [{ kind: 'routing', routingType: 4, segmentsLeft: left, data: Buffer.concat([hex('01000000'), v6(B.ip), v6('2001:db8::99')]) }],
    });
    assert.equal(parsed(srh(1)).ipv6!.pseudoDst, B.ip);
    assert.equal(parsed(srh(0)).ipv6!.pseudoDst, '2001:db8::99');
    for (const f of [srh(0), srh(1)]) assert.deepEqual(verifyChecksums(f), { ok: true, value: { ip: true, l4: true, l4Checked: true } });
  });

  it('fragments: the first is walked but its L4 not decoded; a later one stops the walk at the Fragment header', () => {
    const first = buildTcp6Frame({ ...L2, srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: 0, window: 5, extHeaders: [{ kind: 'destination' }, { kind: 'fragment', id: 1, mf: true }] });
    const p1 = parsed(first);
    assert.deepEqual([p1.ipv6!.isFragment, p1.ipv6!.protocol, p1.tcp, p1.l4Offset, p1.payload.length], [true, 6, undefined, undefined, 20]);
    assert.deepEqual(verifyChecksums(first), { ok: true, value: { ip: true, l4: true, l4Checked: false } });
    // A non-first fragment: what follows the Fragment header is data, even if it looks like a header.
    const later = buildUdp6Frame({ ...L2, srcPort: 1, dstPort: 2, extHeaders: [{ kind: 'fragment', id: 1, fragmentOffset: 185 }] });
    later[54] = 0; // the Fragment header's next header: "Hop-by-Hop", which must not be walked
    const p2 = parsed(later);
    assert.deepEqual([p2.ipv6!.isFragment, p2.ipv6!.protocol, p2.ipv6!.headerLength, p2.udp, p2.payload.length], [true, 0, 48, undefined, 8]);
    const fr = p2.ipv6!.extHeaders[0]!;
    assert.deepEqual(fr.kind === 'fragment' && [fr.fragmentOffset, fr.mf, fr.id], [185, false, 1]);
  });

  it('stops at No Next Header, ESP and unknown protocols with the rest as payload', () => {
    for (const proto of [59, 50, 253]) {
      const h = encodeIpv6Header({ src: A.ip, dst: B.ip, nextHeader: proto, payloadLength: 4 });
      assert.ok(h.ok);
      const f = Buffer.concat([hex('020000000002020000000001 86dd'), h.value, hex('01020304')]);
      const p = parsed(f);
      assert.deepEqual([p.ipv6!.protocol, p.payload.toString('hex'), p.l4Offset], [proto, '01020304', undefined]);
      assert.deepEqual(verifyChecksums(f), { ok: true, value: { ip: true, l4: true, l4Checked: false } });
    }
  });

  it('Ethernet padding after the datagram is not payload', () => {
    const f = buildUdp6Frame({ ...L2, srcPort: 1, dstPort: 2, payload: Buffer.from('x') });
    const p = parsed(Buffer.concat([f, Buffer.alloc(7, 0xee)]));
    assert.equal(p.payload.toString(), 'x');
    assert.equal(p.ipv6!.totalLength, 49);
  });
});

describe('packet codec, IPv6: malformed input is a typed error', () => {
  const tcp = buildTcp6Frame({ ...L2, srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: 0, window: 5, payload: Buffer.from('abcd') });
  const withExt = (exts: Ipv6ExtHeaderSpec[]) => buildUdp6Frame({ ...L2, srcPort: 1, dstPort: 2, extHeaders: exts });

  it('truncated fixed header, and a payload length beyond the frame', () => {
    assert.equal(errorKind(tcp.subarray(0, 53)), 'truncated');
    const long = Buffer.from(tcp);
    long.writeUInt16BE(long.readUInt16BE(18) + 1, 18);
    assert.equal(errorKind(long), 'truncated');
  });

  it('version other than 6 under EtherType 0x86dd', () => {
    const b = Buffer.from(tcp);
    b[14] = 0x45;
    assert.equal(errorKind(b), 'bad_value');
  });

  it('an extension header running past the payload length', () => {
    const f = withExt([{ kind: 'destination' }]);
    f[55] = 5; // 48 bytes announced, 16 present
    assert.equal(errorKind(f), 'truncated');
    const short = withExt([{ kind: 'destination' }]);
    short.writeUInt16BE(4, 18); // payload length 4: not even the 8-byte minimum
    assert.equal(errorKind(short.subarray(0, 58)), 'truncated');
  });

  /** Ethernet + a raw IPv6 header (the builders refuse chains the decoder would) + 8 bytes of UDP. */
  const rawChain = (exts: Ipv6ExtHeaderSpec[]) => {
    const h = encodeIpv6Header({ src: A.ip, dst: B.ip, nextHeader: 17, payloadLength: 8, extHeaders: exts });
    assert.ok(h.ok);
    return Buffer.concat([hex('020000000002 020000000001 86dd'), h.value, hex('0001000200080000')]);
  };

  it('a Hop-by-Hop header anywhere but first', () => {
    assert.equal(errorKind(rawChain([{ kind: 'destination' }, { kind: 'hop_by_hop' }])), 'bad_value');
    assert.throws(() => withExt([{ kind: 'destination' }, { kind: 'hop_by_hop' }]), PacketBuildError);
  });

  it(`a chain of more than ${IPV6_MAX_EXT_HEADERS} extension headers`, () => {
    const ok = withExt(Array.from({ length: IPV6_MAX_EXT_HEADERS }, () => ({ kind: 'destination' as const })));
    assert.equal(parsed(ok).udp!.dstPort, 2);
    const r = parseFrame(rawChain(Array.from({ length: IPV6_MAX_EXT_HEADERS + 1 }, () => ({ kind: 'destination' as const }))));
    assert.equal(r.ok, false);
    if (!r.ok) assert.deepEqual([r.error.kind, r.error.offset], ['unsupported', 14 + 40 + 8 * IPV6_MAX_EXT_HEADERS]);
  });

  it('an option overrunning its Hop-by-Hop / Destination header', () => {
    const f = withExt([{ kind: 'destination', options: [{ type: 0x1e, data: hex('0102') }] }]);
    f[57] = 5; // option length 5 from offset 56: past the 8-byte header
    assert.equal(errorKind(f), 'bad_options');
  });

  it('an AH whose length is not a multiple of 8', () => {
    const f = withExt([{ kind: 'auth', spi: 1, seq: 1 }]);
    f[55] = 3; // (3 + 2) * 4 = 20 bytes
    assert.equal(errorKind(f), 'bad_value');
  });

  it('TCP/UDP/ICMPv6 headers cut short by the payload length', () => {
    const cut = Buffer.from(tcp.subarray(0, 54 + 10));
    cut.writeUInt16BE(10, 18);
    assert.equal(errorKind(cut), 'truncated');
    const udp = buildUdp6Frame({ ...L2, srcPort: 1, dstPort: 2, payload: Buffer.from('xy') });
    udp.writeUInt16BE(11, 58); // UDP length beyond the IPv6 payload
    assert.equal(errorKind(udp), 'truncated');
    const ns = buildNeighborSolicitation({ ethSrc: A.mac, ipSrc: A.ip, target: B.ip, sll: null });
    const nsCut = Buffer.from(ns.subarray(0, 54 + 20));
    nsCut.writeUInt16BE(20, 18); // an NS needs 24 bytes for its target
    assert.equal(errorKind(nsCut), 'truncated');
  });

  it('every truncation of valid IPv6 frames fails with truncated', () => {
    const seeds = [
      tcp,
      withExt([{ kind: 'hop_by_hop' }, { kind: 'routing', routingType: 2, segmentsLeft: 1, addresses: [B.ip] }, { kind: 'auth', spi: 1, seq: 2 }]),
      buildNeighborAdvertisement({ ethSrc: B.mac, ipSrc: B.ip, vlans: [5] }),
    ];
    for (const seed of seeds) {
      for (let n = 0; n < seed.length; n++) {
        const r = parseFrame(seed.subarray(0, n));
        assert.equal(r.ok, false, `prefix ${n}/${seed.length}`);
        if (!r.ok) assert.equal(r.error.kind, 'truncated', `${n}: ${r.error.message}`);
      }
    }
  });

  it('decoders called directly never read out of bounds', () => {
    assert.equal(decodeIpv6(Buffer.alloc(39), 0).ok, false);
    assert.equal(decodeIpv6(Buffer.alloc(80), 60).ok, false);
    assert.equal(decodeIcmpv6(Buffer.alloc(7), 0, 7, Buffer.alloc(16), Buffer.alloc(16)).ok, false);
  });
});

describe('packet codec, ICMPv6 and neighbour discovery', () => {
  const msg = (type: number, body: string, src = A.ip, dst = B.ip) => {
    const m = encodeIcmpv6(type, 0, hex(body), v6(src), v6(dst));
    const r = decodeIcmpv6(m, 0, m.length, v6(src), v6(dst));
    if (!r.ok) assert.fail(r.error.message);
    return r.value;
  };

  it('router solicitation and advertisement (fixed fields, prefix and MTU options)', () => {
    const rs = msg(133, '00000000 0101020000000001');
    assert.deepEqual([rs.type, rs.checksumOk, rs.sll, rs.ndOptions], [133, true, '02:00:00:00:00:01', [{ kind: 'source_lla', mac: '02:00:00:00:00:01' }]]);
    const ra = msg(134,
      '40c00708 00001388 000003e8' + // hop limit 64, M+O, lifetime 1800, reachable 5000, retrans 1000
      '0501000000000578' + // MTU 1400
      '0304 40c0 00278d00 00093a80 00000000 20010db8000000000000000000000000'); // 2001:db8::/64, L+A
    assert.deepEqual(ra.ra, { curHopLimit: 64, managed: true, other: true, routerLifetime: 1800, reachableTime: 5000, retransTimer: 1000 });
    assert.deepEqual(ra.ndOptions, [
      { kind: 'mtu', mtu: 1400 },
      { kind: 'prefix_info', prefixLength: 64, onLink: true, autonomous: true, validLifetime: 2592000, preferredLifetime: 604800, prefix: '2001:db8::' },
    ]);
  });

  it('redirect: target, destination and a target link-layer option', () => {
    const r = msg(137, '00000000' + 'fe800000000000000000000000000001' + '20010db8000000000000000000000063' + '0201020000000009');
    assert.deepEqual([r.ndTarget, r.redirectDst, r.tll], ['fe80::1', '2001:db8::63', '02:00:00:00:00:09']);
  });

  it('unknown options and known ones of unusual length are kept as unknown', () => {
    const r = msg(135, '00000000' + '20010db8000000000000000000000002' + '0102020000000001aabbccddeeff0000' + '2001000000000000');
    assert.deepEqual(r.ndOptions, [{ kind: 'unknown', type: 1, data: hex('020000000001aabbccddeeff0000') }, { kind: 'unknown', type: 32, data: hex('000000000000') }]);
    assert.equal(r.sll, undefined);
  });

  it('a zero-length or overrunning option is reported, not fatal (RFC 4861 §4.6: the message is to be discarded)', () => {
    const zero = msg(135, '00000000' + '20010db8000000000000000000000002' + '0101020000000001' + '0100000000000000');
    assert.equal(zero.ndOptionsError?.kind, 'bad_options');
    assert.equal(zero.ndOptions!.length, 1);
    assert.equal(zero.ndTarget, B.ip);
    const over = msg(136, '60000000' + '20010db8000000000000000000000002' + '02020200000000000001');
    assert.equal(over.ndOptionsError?.kind, 'bad_options');
  });

  it('other types (errors, MLD) keep their first word in rest; a wrong checksum is reported', () => {
    const tooBig = msg(2, '000005dc' + '6000000000000000');
    assert.deepEqual([tooBig.type, tooBig.rest.readUInt32BE(0), tooBig.ndOptions, tooBig.echo], [2, 1500, undefined, undefined]);
    const m = encodeIcmpv6(128, 0, hex('00010002'), v6(A.ip), v6(B.ip));
    m[5] ^= 1;
    const r = decodeIcmpv6(m, 0, m.length, v6(A.ip), v6(B.ip));
    assert.deepEqual(r.ok && r.value.checksumOk, false);
  });
});

describe('packet codec, IPv6 builders', () => {
  it('neighbour solicitation: solicited-node group, 33:33 MAC, hop limit 255, source link-layer option', () => {
    const p = parsed(buildNeighborSolicitation({ ethSrc: A.mac, ipSrc: A.ip, target: '2001:db8::abcd:1234' }));
    assert.deepEqual([p.eth.dst, p.ipv6!.dst, p.ipv6!.hopLimit, p.icmpv6!.ndTarget, p.icmpv6!.sll], ['33:33:ff:cd:12:34', 'ff02::1:ffcd:1234', 255, '2001:db8::abcd:1234', A.mac]);
    const dad = parsed(buildNeighborSolicitation({ ethSrc: A.mac, ipSrc: '::', target: A.ip }));
    assert.deepEqual([dad.ipv6!.src, dad.icmpv6!.sll, dad.icmpv6!.ndOptions], ['::', undefined, []]);
    const unicast = parsed(buildNeighborSolicitation({ ethSrc: A.mac, ethDst: B.mac, ipSrc: A.ip, ipDst: B.ip, target: B.ip, vlans: [7] }));
    assert.deepEqual([unicast.eth.dst, unicast.ipv6!.dst, unicast.eth.vlans], [B.mac, B.ip, [7]]);
  });

  it('neighbour advertisement: defaults, flags, and the answer to DAD goes to all nodes', () => {
    const u = parsed(buildNeighborAdvertisement({ ethSrc: B.mac, ipSrc: B.ip, router: true }));
    assert.deepEqual([u.eth.dst, u.ipv6!.dst, u.icmpv6!.ndTarget, u.icmpv6!.tll, u.icmpv6!.na], ['33:33:00:00:00:01', 'ff02::1', B.ip, B.mac, { router: true, solicited: false, override: true }]);
    assert.throws(() => buildNeighborAdvertisement({ ethSrc: B.mac, ipSrc: B.ip, ipDst: A.ip }), PacketBuildError);
    const dad = parsed(buildNeighborSolicitation({ ethSrc: A.mac, ipSrc: '::', target: B.ip }));
    const ans = parsed(buildNeighborAdvertisementReply(dad, B.mac));
    assert.deepEqual([ans.ipv6!.dst, ans.eth.dst, ans.icmpv6!.na!.solicited], ['ff02::1', '33:33:00:00:00:01', false]);
    assert.throws(() => buildNeighborAdvertisementReply(parsed(buildUdp6Frame({ ...L2, srcPort: 1, dstPort: 2 })), B.mac), PacketBuildError);
  });

  it('UDP over IPv6 never sends a zero checksum; a zero one does not verify', () => {
    const f = buildUdp6Frame({ ...L2, srcPort: 1, dstPort: 2, payload: Buffer.from('z') });
    assert.notEqual(f.readUInt16BE(60), 0);
    const zeroed = Buffer.from(f);
    zeroed.writeUInt16BE(0, 60);
    assert.deepEqual(verifyChecksums(zeroed), { ok: true, value: { ip: true, l4: false, l4Checked: true } });
    assert.deepEqual(recomputeChecksums(zeroed), { ok: true, value: undefined });
    assert.ok(zeroed.equals(f));
  });

  it('recomputeChecksums repairs TCP and ICMPv6 checksums', () => {
    for (const f of [
      buildTcp6Frame({ ...L2, srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: 0, window: 5, payload: Buffer.from('abc') }),
      buildIcmpv6EchoFrame({ ...L2, type: 'reply', id: 1, seq: 2, payload: Buffer.from('q') }),
    ]) {
      const broken = Buffer.from(f);
      broken[broken.length - 1] ^= 0xff;
      assert.equal(verifyChecksums(broken).ok && (verifyChecksums(broken) as { value: { l4: boolean } }).value.l4, false);
      recomputeChecksums(broken);
      broken[broken.length - 1] ^= 0xff;
      recomputeChecksums(broken);
      assert.ok(broken.equals(f));
    }
  });

  it('replaceTcpOptions / stripTcpOptionsFromFrame over IPv6 with extension headers', () => {
    const f = buildTcp6Frame({
      ...L2, srcPort: 1, dstPort: 2, seq: 3, ack: 0, flags: { syn: true }, window: 5, payload: Buffer.from('early data'),
      options: [{ kind: 'mss', value: 1440 }, { kind: 'sack_permitted' }, { kind: 'timestamp', tsval: 9, tsecr: 0 }],
      extHeaders: [{ kind: 'destination' }, { kind: 'routing', routingType: 2, segmentsLeft: 1, addresses: ['2001:db8::77'] }],
    });
    const r = stripTcpOptionsFromFrame(f, ['timestamp'], { dropPayload: true });
    assert.ok(r.ok);
    const p = parsed(r.value);
    assert.deepEqual(p.tcp!.options, [{ kind: 'mss', value: 1440 }, { kind: 'sack_permitted' }, { kind: 'eol' }]);
    assert.equal(p.payload.length, 0);
    assert.equal(p.ipv6!.payloadLength, 8 + 24 + 28); // extension headers, TCP header with 8 option bytes
    assert.equal(p.ipv6!.extHeaders.length, 2);
    assert.deepEqual(verifyChecksums(r.value), { ok: true, value: { ip: true, l4: true, l4Checked: true } });
    const same = replaceTcpOptions(f, parsed(f).tcp!.options);
    assert.ok(same.ok && same.value.equals(f));
  });

  it('builders reject bad addresses, ranges and extension header specs with PacketBuildError', () => {
    const base = { ...L2, srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: 0, window: 0 };
    const bad: Array<() => unknown> = [
      () => buildTcp6Frame({ ...base, ipSrc: '10.0.0.1' }),
      () => buildTcp6Frame({ ...base, ipDst: '2001:db8::g' }),
      () => buildTcp6Frame({ ...base, hopLimit: 256 }),
      () => buildTcp6Frame({ ...base, flowLabel: 0x100000 }),
      () => buildTcp6Frame({ ...base, trafficClass: -1 }),
      () => buildTcp6Frame({ ...base, srcPort: 65536 }),
      () => buildTcp6Frame({ ...base, extHeaders: [{ kind: 'routing', routingType: 0, segmentsLeft: 0, data: Buffer.alloc(3) }] }),
      () => buildTcp6Frame({ ...base, extHeaders: [{ kind: 'auth', spi: 1, seq: 1, icv: Buffer.alloc(3) }] }),
      () => buildTcp6Frame({ ...base, extHeaders: [{ kind: 'fragment', id: 1, fragmentOffset: 0x2000 }] }),
      () => buildTcp6Frame({ ...base, extHeaders: [{ kind: 'bogus' } as unknown as Ipv6ExtHeaderSpec] }),
      () => buildUdp6Frame({ ...L2, srcPort: 1, dstPort: 2, payload: Buffer.alloc(0x10000) }),
      () => buildIcmpv6EchoFrame({ ...L2, ethSrc: 'nope', type: 'request', id: 1, seq: 1 }),
      () => buildNeighborSolicitation({ ethSrc: A.mac, ipSrc: A.ip, target: '::1::' }),
    ];
    for (const [i, fn] of bad.entries()) assert.throws(fn, PacketBuildError, `case ${i}`);
  });

  it('an IPv4 address is not an IPv6 one; IPv6 frames fill no IPv4 fields', () => {
    assert.equal(encodeIpv6Header({ src: '1.2.3.4', dst: B.ip, nextHeader: 6, payloadLength: 0 }).ok, false);
    const p = parsed(buildUdp6Frame({ ...L2, srcPort: 1, dstPort: 2 }));
    assert.equal(p.ipv4, undefined);
    assert.equal(p.icmp, undefined);
  });
});
