// The relay mode's in-place rewrites on IPv6 frames: addresses (pseudo-header checksum, no IP
// header checksum), ports, seq/ack with SACK blocks, option NOP-ing. Each result is checked
// against a frame built with the expected fields, and against a full checksum verification.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  buildTcp6Frame, buildTcpFrame, buildUdp6Frame, buildIcmpv6EchoFrame, nopOutTcpOptions, parseFrame, recomputeChecksums, rewriteIpDst, rewriteIpSrc,
  rewriteIpv4Dst, rewriteIpv6Dst, rewriteIpv6Src, rewriteL4DstPort, rewriteL4SrcPort, rewriteTcpWindow, shiftSackBlocks, shiftTcpAck, shiftTcpSeq,
  shiftTcpTimestamps, verifyChecksums, type Tcp6FrameSpec, type TcpOption,
} from '../../controller/packet/index.ts';

const SACK_TS: TcpOption[] = [
  { kind: 'nop' }, { kind: 'nop' }, { kind: 'timestamp', tsval: 100, tsecr: 200 },
  { kind: 'nop' }, { kind: 'nop' }, { kind: 'sack', blocks: [{ left: 1000, right: 2000 }, { left: 0xfffffff0, right: 5 }] },
];

const base: Tcp6FrameSpec = {
  ethSrc: '02:00:00:00:00:02', ethDst: '02:00:00:00:00:01', ipSrc: '2001:db8::2', ipDst: '2001:db8::1',
  srcPort: 40000, dstPort: 5001, seq: 0x10000000, ack: 0x20000000, flags: { ack: true, psh: true }, window: 501,
  options: SACK_TS, payload: Buffer.from('GET / HTTP/1.1\r\n\r\n'), trafficClass: 0x28, hopLimit: 61, flowLabel: 0x12345,
};

const frame = (over: Partial<Tcp6FrameSpec> = {}): Buffer => buildTcp6Frame({ ...base, ...over });

function checksumsGood(b: Buffer): void {
  const v = verifyChecksums(b);
  assert.ok(v.ok && v.value.ip && v.value.l4 && v.value.l4Checked, JSON.stringify(v));
}

describe('packet rewrites, IPv6', () => {
  it('NAT to a backend (destination address and port) equals the frame built for it', () => {
    const b = frame();
    assert.ok(rewriteIpv6Dst(b, '2001:db8::3').ok);
    assert.ok(rewriteL4DstPort(b, 6000).ok);
    checksumsGood(b);
    assert.ok(b.equals(frame({ ipDst: '2001:db8::3', dstPort: 6000 })));
  });

  it('NAT back to the service (source address and port) equals the frame built for it', () => {
    const b = frame({ ipSrc: '2001:db8::3', ipDst: '2001:db8::2', srcPort: 6000, dstPort: 40000 });
    assert.ok(rewriteIpv6Src(b, '2001:db8::1').ok);
    assert.ok(rewriteL4SrcPort(b, 5001).ok);
    checksumsGood(b);
    assert.ok(b.equals(frame({ ipSrc: '2001:db8::1', ipDst: '2001:db8::2', srcPort: 5001, dstPort: 40000 })));
  });

  it('the family-generic rewrites pick IPv6 by the address and refuse a frame of the other family', () => {
    const b = frame();
    assert.ok(rewriteIpDst(b, 'fd00::7').ok && rewriteIpSrc(b, 'fd00::8').ok);
    assert.ok(b.equals(frame({ ipSrc: 'fd00::8', ipDst: 'fd00::7' })));
    const before = Buffer.from(b);
    assert.equal(rewriteIpDst(b, '10.0.0.3').ok, false);
    assert.equal(rewriteIpv4Dst(b, '10.0.0.3').ok, false);
    assert.ok(b.equals(before));
    const v4 = buildTcpFrame({ ethSrc: base.ethSrc, ethDst: base.ethDst, ipSrc: '10.0.0.2', ipDst: '10.0.0.1', srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: { ack: true }, window: 5 });
    const v4Before = Buffer.from(v4);
    const r = rewriteIpv6Dst(v4, '2001:db8::3');
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.error.kind, 'not_applicable');
    assert.ok(v4.equals(v4Before));
    assert.equal(rewriteIpv6Dst(frame(), 'not-an-address').ok, false);
  });

  it('ack shift moves SACK edges too, seq shift leaves them; round trips restore the frame', () => {
    const b = frame();
    const r = shiftTcpAck(b, -0x30);
    assert.ok(r.ok && r.value.sackBlocks === 2 && !r.value.optionsMalformed);
    checksumsGood(b);
    const p = parseFrame(b);
    assert.ok(p.ok);
    assert.equal(p.value.tcp!.ack, 0x20000000 - 0x30);
    const sack = p.value.tcp!.options.find((o) => o.kind === 'sack');
    assert.deepEqual(sack && 'blocks' in sack ? sack.blocks : undefined, [{ left: 1000 - 0x30, right: 2000 - 0x30 }, { left: 0xffffffc0, right: (5 - 0x30) >>> 0 }]);
    assert.ok(shiftTcpSeq(b, 0x7fffffff).ok);
    checksumsGood(b);
    assert.ok(shiftTcpSeq(b, -0x7fffffff).ok && shiftTcpAck(b, 0x30).ok);
    assert.ok(b.equals(frame()));
    assert.equal((shiftSackBlocks(b, 9) as { value: number }).value, 2);
    checksumsGood(b);
  });

  it('timestamps, window and option NOP-ing keep the checksum right', () => {
    const b = frame();
    assert.ok(shiftTcpTimestamps(b, { tsval: 5, tsecr: -5 }).ok);
    assert.ok(rewriteTcpWindow(b, 1234).ok);
    checksumsGood(b);
    const n = nopOutTcpOptions(b, ['timestamp', 'sack']);
    assert.ok(n.ok && n.value === 2);
    checksumsGood(b);
    const p = parseFrame(b);
    assert.ok(p.ok && p.value.tcp!.options.every((o) => o.kind === 'nop'));
  });

  it('works behind VLAN tags and extension headers (Hop-by-Hop, Destination, atomic fragment)', () => {
    const ext = { vlans: [7], extHeaders: [{ kind: 'hop_by_hop' as const, options: [{ type: 5, data: Buffer.from([0, 0]) }] }, { kind: 'destination' as const }, { kind: 'fragment' as const, id: 9 }] };
    const b = frame(ext);
    assert.ok(rewriteIpv6Dst(b, '2001:db8::3').ok && rewriteL4DstPort(b, 6000).ok && shiftTcpAck(b, 77).ok && shiftTcpSeq(b, -77).ok);
    checksumsGood(b);
    const p = parseFrame(b);
    assert.ok(p.ok && p.value.ipv6!.dst === '2001:db8::3' && p.value.tcp!.dstPort === 6000 && p.value.tcp!.ack === 0x20000000 + 77);
  });

  it('a destination rewrite under a Routing header leaves the checksum (it covers the final destination)', () => {
    const b = frame({ extHeaders: [{ kind: 'routing', routingType: 2, segmentsLeft: 1, addresses: ['2001:db8::9'] }] });
    const p = parseFrame(b);
    assert.ok(p.ok && p.value.ipv6!.pseudoDst === '2001:db8::9');
    const csumOff = p.value.l4Offset! + 16;
    const csum = b.readUInt16BE(csumOff);
    assert.ok(rewriteIpv6Dst(b, '2001:db8::3').ok);
    checksumsGood(b);
    assert.equal(b.readUInt16BE(csumOff), csum);
    assert.ok(rewriteIpv6Src(b, '2001:db8::4').ok);
    checksumsGood(b);
  });

  it('UDP and ICMPv6 address rewrites update their pseudo-header checksums', () => {
    const u = buildUdp6Frame({ ethSrc: base.ethSrc, ethDst: base.ethDst, ipSrc: base.ipSrc, ipDst: base.ipDst, srcPort: 53, dstPort: 5353, payload: Buffer.from('q') });
    assert.ok(rewriteIpv6Src(u, 'fe80::1').ok && rewriteL4SrcPort(u, 54).ok);
    checksumsGood(u);
    const e = buildIcmpv6EchoFrame({ ethSrc: base.ethSrc, ethDst: base.ethDst, ipSrc: base.ipSrc, ipDst: base.ipDst, type: 'request', id: 1, seq: 2, payload: Buffer.from('ping') });
    assert.ok(rewriteIpv6Dst(e, '2001:db8::ff').ok);
    checksumsGood(e);
    // No ports and no TCP header: refused, untouched.
    const before = Buffer.from(e);
    assert.equal(rewriteL4DstPort(e, 1).ok, false);
    assert.equal(shiftTcpAck(e, 1).ok, false);
    assert.ok(e.equals(before));
  });

  it('a non-first fragment is refused for L4 rewrites and its address rewrite leaves no checksum to fix', () => {
    const b = buildUdp6Frame({ ethSrc: base.ethSrc, ethDst: base.ethDst, ipSrc: base.ipSrc, ipDst: base.ipDst, srcPort: 1, dstPort: 2, payload: Buffer.alloc(16, 1), extHeaders: [{ kind: 'fragment', id: 3, fragmentOffset: 2 }] });
    const p = parseFrame(b);
    assert.ok(p.ok && p.value.ipv6!.isFragment && !p.value.udp);
    const before = Buffer.from(b);
    assert.equal(rewriteL4DstPort(b, 9).ok, false);
    assert.equal(shiftTcpSeq(b, 9).ok, false);
    assert.ok(b.equals(before));
    assert.ok(rewriteIpv6Dst(b, '2001:db8::3').ok);
    // Only the address changed: the fragment's data (where a checksum would be) is untouched.
    assert.ok(b.subarray(b.length - 24).equals(before.subarray(before.length - 24)));
  });

  it('any rewrite sequence equals a full checksum recompute (property)', () => {
    const addr = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(':'));
    const u32 = fc.integer({ min: -0xffffffff, max: 0xffffffff });
    fc.assert(fc.property(addr, addr, fc.integer({ min: 0, max: 0xffff }), u32, u32, fc.uint8Array({ maxLength: 64 }), (src, dst, port, da, ds, pl) => {
      const b = frame({ payload: Buffer.from(pl) });
      assert.ok(rewriteIpv6Src(b, src).ok && rewriteIpv6Dst(b, dst).ok && rewriteL4DstPort(b, port).ok && shiftTcpAck(b, da).ok && shiftTcpSeq(b, ds).ok);
      const ref = Buffer.from(b);
      assert.ok(recomputeChecksums(ref).ok);
      assert.ok(b.equals(ref));
    }), { numRuns: 300 });
  });
});
