// IPv6 property tests: build → parse round trips over random extension-header chains, VLANs and
// options; checksums that catch every flipped bit they cover; text forms that round-trip and
// match an independent RFC 5952 formatter.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  buildIcmpv6EchoFrame, buildNeighborAdvertisement, buildNeighborSolicitation, buildTcp6Frame, buildUdp6Frame, formatIpv6, optionLength,
  parseFrame, parseIpv6, recomputeChecksums, replaceTcpOptions, verifyChecksums,
  type Ipv6ExtHeaderSpec, type Ipv6Option, type NdOption, type ParsedFrame, type TcpOption,
} from '../../controller/packet/index.ts';

const RUNS = 300;
const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const bytesOf = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a));
const mac = bytesOf(6).map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':'));
/** 16 bytes with runs of zero groups, as real addresses have. */
const addrBytes = fc.tuple(bytesOf(16), fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }))
  .map(([b, z]) => { z.forEach((zero, g) => { if (zero) b.writeUInt16BE(0, 2 * g); }); return b; });
const ipv6 = addrBytes.map((b) => formatIpv6(b));
const vlans = fc.oneof(fc.constant<number[]>([]), fc.array(u16, { minLength: 1, maxLength: 2 }));

const option: fc.Arbitrary<Ipv6Option> = fc.oneof(
  fc.constant({ type: 0, data: Buffer.alloc(0) }),
  fc.record({ type: fc.integer({ min: 2, max: 255 }), data: bytes(10) }, { noNullPrototype: true }),
);
const routingData = (type: number) =>
  type === 0 || type === 2 || type === 4
    ? fc.array(addrBytes, { minLength: 1, maxLength: 3 }).chain((as) => bytesOf(4).map((h) => Buffer.concat([h, ...as])))
    : fc.integer({ min: 0, max: 3 }).chain((n) => bytesOf(4 + 8 * n));
const extHeader: fc.Arbitrary<Ipv6ExtHeaderSpec> = fc.oneof(
  fc.array(option, { maxLength: 4 }).map((options): Ipv6ExtHeaderSpec => ({ kind: 'destination', options })),
  fc.tuple(fc.constantFrom(0, 2, 3, 4, 253), fc.integer({ min: 0, max: 3 }))
    .chain(([routingType, segmentsLeft]) => routingData(routingType).map((data): Ipv6ExtHeaderSpec => ({ kind: 'routing', routingType, segmentsLeft, data }))),
  u32.map((id): Ipv6ExtHeaderSpec => ({ kind: 'fragment', id })), // atomic: the upper layer stays decodable
  fc.tuple(u32, u32, fc.integer({ min: 0, max: 3 })).map(([spi, seq, n]): Ipv6ExtHeaderSpec => ({ kind: 'auth', spi, seq, icv: Buffer.alloc(4 + 8 * n, 0x5a) })),
);
const chain: fc.Arbitrary<Ipv6ExtHeaderSpec[]> = fc.tuple(
  fc.option(fc.array(option, { maxLength: 4 }), { nil: undefined }),
  fc.array(extHeader, { maxLength: 5 }),
).map(([hbh, rest]) => (hbh ? [{ kind: 'hop_by_hop' as const, options: hbh }, ...rest] : rest));

/** The pseudo-header destination, worked out from the specs rather than from the decoded frame. */
function expectedPseudoDst(dst: string, exts: readonly Ipv6ExtHeaderSpec[]): string {
  let final = dst;
  for (const e of exts) {
    if (e.kind !== 'routing' || e.segmentsLeft === 0 || !e.data) continue;
    const n = (e.data.length - 4) / 16;
    if (e.routingType === 0 || e.routingType === 2) final = formatIpv6(e.data, 4 + 16 * (n - 1));
    if (e.routingType === 4) final = formatIpv6(e.data, 4);
  }
  return final;
}

const ipLayer = fc.record({
  ethSrc: mac, ethDst: mac, ipSrc: ipv6, ipDst: ipv6, hopLimit: u8, trafficClass: u8, flowLabel: fc.integer({ min: 0, max: 0xfffff }),
  extHeaders: chain, vlans,
}, { noNullPrototype: true });

const tcpOption: fc.Arbitrary<TcpOption> = fc.oneof(
  fc.constant<TcpOption>({ kind: 'nop' }),
  u16.map((value): TcpOption => ({ kind: 'mss', value })),
  fc.integer({ min: 0, max: 14 }).map((shift): TcpOption => ({ kind: 'wscale', shift })),
  fc.constant<TcpOption>({ kind: 'sack_permitted' }),
  fc.record({ tsval: u32, tsecr: u32 }, { noNullPrototype: true }).map((t): TcpOption => ({ kind: 'timestamp', ...t })),
);
const tcpOptions = fc.array(tcpOption, { maxLength: 6 }).filter((l) => l.reduce((n, o) => n + optionLength(o), 0) <= 40);
const padded = (opts: TcpOption[]) => (opts.reduce((n, o) => n + optionLength(o), 0) % 4 !== 0 ? [...opts, { kind: 'eol' } as TcpOption] : opts);

function mustParse(b: Buffer): ParsedFrame {
  const r = parseFrame(b);
  if (!r.ok) assert.fail(`${r.error.kind}: ${r.error.message}`);
  return r.value;
}

const GOOD = { ok: true, value: { ip: true, l4: true, l4Checked: true } };

type IpLayer = typeof ipLayer extends fc.Arbitrary<infer T> ? T : never;

function checkIpLayer(p: ParsedFrame, spec: IpLayer): void {
  assert.deepEqual([p.eth.src, p.eth.dst, p.eth.tcis], [spec.ethSrc, spec.ethDst, spec.vlans]);
  const ip = p.ipv6!;
  assert.deepEqual([ip.src, ip.dst, ip.hopLimit, ip.trafficClass, ip.flowLabel], [spec.ipSrc, spec.ipDst, spec.hopLimit, spec.trafficClass, spec.flowLabel]);
  assert.deepEqual(ip.extHeaders.map((e) => e.kind), spec.extHeaders.map((e) => e.kind));
  assert.equal(ip.pseudoDst, expectedPseudoDst(spec.ipDst, spec.extHeaders));
  assert.equal(ip.isFragment, false);
  assert.equal(ip.totalLength + p.l3Offset, p.raw.length);
}

describe('packet codec, IPv6: properties', () => {
  it('buildTcp6Frame → parseFrame returns every field, and the checksum verifies', () => {
    fc.assert(fc.property(ipLayer, fc.record({ srcPort: u16, dstPort: u16, seq: u32, ack: u32, flags: fc.integer({ min: 0, max: 0x1ff }), window: u16, urgent: u16, options: tcpOptions, payload: bytes(64) }, { noNullPrototype: true }), (l3, l4) => {
      const f = buildTcp6Frame({ ...l3, ...l4 });
      const p = mustParse(f);
      checkIpLayer(p, l3);
      const t = p.tcp!;
      assert.deepEqual([t.srcPort, t.dstPort, t.seq, t.ack, t.flags, t.window, t.urgent], [l4.srcPort, l4.dstPort, l4.seq, l4.ack, l4.flags, l4.window, l4.urgent]);
      assert.deepEqual(t.options, padded(l4.options));
      assert.ok(p.payload.equals(l4.payload));
      assert.deepEqual(verifyChecksums(f), GOOD);
    }), { numRuns: RUNS });
  });

  it('buildUdp6Frame and buildIcmpv6EchoFrame → parseFrame', () => {
    fc.assert(fc.property(ipLayer, u16, u16, bytes(64), fc.boolean(), (l3, a, b, payload, echo) => {
      const f = echo
        ? buildIcmpv6EchoFrame({ ...l3, type: a % 2 ? 'request' : 'reply', id: a, seq: b, payload })
        : buildUdp6Frame({ ...l3, srcPort: a, dstPort: b, payload });
      const p = mustParse(f);
      checkIpLayer(p, l3);
      if (echo) {
        assert.deepEqual([p.icmpv6!.type, p.icmpv6!.echo, p.icmpv6!.checksumOk], [a % 2 ? 128 : 129, { id: a, seq: b }, true]);
      } else {
        assert.deepEqual([p.udp!.srcPort, p.udp!.dstPort, p.udp!.length], [a, b, 8 + payload.length]);
        assert.notEqual(p.udp!.checksum, 0);
      }
      assert.ok(p.payload.equals(payload));
      assert.deepEqual(verifyChecksums(f), GOOD);
    }), { numRuns: RUNS });
  });

  it('neighbour solicitation / advertisement → parseFrame: target, flags, link-layer options, extra options', () => {
    const ndOption: fc.Arbitrary<NdOption> = fc.oneof(
      u32.map((mtu): NdOption => ({ kind: 'mtu', mtu })),
      fc.tuple(fc.integer({ min: 3, max: 255 }).filter((t) => t !== 5), fc.integer({ min: 0, max: 3 })).chain(([type, n]) => bytesOf(6 + 8 * n).map((data): NdOption => ({ kind: 'unknown', type: type === 3 ? 200 : type, data }))),
    );
    fc.assert(fc.property(mac, mac, ipv6, ipv6, vlans, fc.boolean(), fc.boolean(), fc.boolean(), fc.array(ndOption, { maxLength: 3 }), (m1, m2, src, target, v, sol, router, solicit, extra) => {
      const f = solicit
        ? buildNeighborSolicitation({ ethSrc: m1, ipSrc: src, target, sll: m2, options: extra, vlans: v })
        : buildNeighborAdvertisement({ ethSrc: m1, ethDst: m2, ipSrc: src, ipDst: target, target: src, router, solicited: sol, tll: m2, options: extra, vlans: v });
      const p = mustParse(f);
      const m = p.icmpv6!;
      assert.equal(p.ipv6!.hopLimit, 255);
      assert.equal(m.ndTarget, solicit ? target : src);
      assert.equal(solicit ? m.sll : m.tll, m2);
      if (!solicit) assert.deepEqual(m.na, { router, solicited: sol, override: true });
      assert.deepEqual(m.ndOptions!.slice(1), extra);
      assert.equal(m.ndOptionsError, undefined);
      assert.deepEqual(verifyChecksums(f), GOOD);
    }), { numRuns: RUNS });
  });

  it('replaceTcpOptions keeps the extension headers and payload, and every checksum', () => {
    fc.assert(fc.property(ipLayer, tcpOptions, tcpOptions, bytes(40), fc.boolean(), (l3, before, after, payload, drop) => {
      const f = buildTcp6Frame({ ...l3, srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: { syn: true }, window: 5, options: before, payload });
      const r = replaceTcpOptions(f, after, { dropPayload: drop });
      assert.ok(r.ok);
      const p = mustParse(r.value);
      checkIpLayer(p, l3);
      assert.deepEqual(p.tcp!.options, padded(after));
      assert.ok(p.payload.equals(drop ? Buffer.alloc(0) : payload));
      assert.deepEqual(verifyChecksums(r.value), GOOD);
    }), { numRuns: RUNS });
  });

  it('a flipped bit anywhere the checksum covers (pseudo-header source, upper-layer message) is caught; recompute restores it', () => {
    fc.assert(fc.property(ipLayer, bytes(60), fc.nat(), fc.integer({ min: 0, max: 7 }), fc.constantFrom('tcp', 'udp', 'icmpv6'), (l3, payload, at, bit, kind) => {
      const f = kind === 'tcp'
        ? buildTcp6Frame({ ...l3, srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: 0, window: 5, payload })
        : kind === 'udp' ? buildUdp6Frame({ ...l3, srcPort: 1, dstPort: 2, payload }) : buildIcmpv6EchoFrame({ ...l3, type: 'request', id: 1, seq: 2, payload });
      const p = mustParse(f);
      const l4 = p.l4Offset!;
      // Source address bytes, or the message after its length-bearing header fields.
      const region = [...Array.from({ length: 16 }, (_, i) => p.l3Offset + 8 + i), ...Array.from({ length: f.length - l4 }, (_, i) => l4 + i)]
        .filter((o) => !(kind === 'udp' && (o === l4 + 4 || o === l4 + 5)));
      const off = region[at % region.length]!;
      const g = Buffer.from(f);
      g[off]! ^= 1 << bit;
      const v = verifyChecksums(g);
      assert.ok(v.ok);
      // A UDP checksum of 0xffff flipped to 0: "none" is itself wrong over IPv6, still caught.
      assert.equal(v.value.l4, false, `bit ${bit} at ${off}`);
      g[off]! ^= 1 << bit;
      g.writeUInt16BE(0x1234, l4 + (kind === 'tcp' ? 16 : kind === 'udp' ? 6 : 2));
      recomputeChecksums(g);
      assert.ok(g.equals(f));
    }), { numRuns: RUNS });
  });
});

/** An independent RFC 5952 formatter: regex over the zero-padded text (glibc's mixed IPv4 forms aside). */
function referenceFormat(b: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i).toString(16));
  if (groups.slice(0, 5).every((g) => g === '0') && (groups[5] === 'ffff' || (groups[5] === '0' && groups[6] !== '0'))) {
    return `::${groups[5] === 'ffff' ? 'ffff:' : ''}${[...b.subarray(12)].join('.')}`;
  }
  const text = groups.join(':');
  let best: RegExpExecArray | undefined;
  for (const m of text.matchAll(/(?:^|:)0(?::0)+(?=:|$)/g)) if (!best || m[0].replace(/^:/, '').length > best[0].replace(/^:/, '').length) best = m as RegExpExecArray;
  if (!best) return text;
  const start = best.index + (best[0].startsWith(':') ? 1 : 0);
  const end = best.index + best[0].length;
  const head = text.slice(0, start).replace(/:$/, '');
  const tail = text.slice(end).replace(/^:/, '');
  return `${head}::${tail}`;
}

describe('packet codec, IPv6: text form properties', () => {
  it('formatIpv6 agrees with an independent RFC 5952 formatter, and parses back to the same bytes', () => {
    fc.assert(fc.property(addrBytes, (b) => {
      const s = formatIpv6(b);
      assert.equal(s, referenceFormat(b));
      const r = parseIpv6(s);
      assert.ok(r.ok && r.value.equals(b), s);
      assert.ok(!/[A-F]/.test(s) && !/(^|:)0[0-9a-f]/.test(s), `not canonical: ${s}`);
    }), { numRuns: 3000 });
  });

  it('every valid spelling of an address parses to the same bytes', () => {
    const spelling = fc.tuple(addrBytes, fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 8, maxLength: 8 }), fc.boolean(), fc.boolean(), fc.nat());
    fc.assert(fc.property(spelling, ([b, widths, upper, quad, pick]) => {
      let groups = Array.from({ length: 8 }, (_, i) => {
        const h = b.readUInt16BE(2 * i).toString(16);
        return h.padStart(Math.max(widths[i]!, h.length), '0');
      });
      if (upper) groups = groups.map((g) => g.toUpperCase());
      const parts: string[] = quad ? [...groups.slice(0, 6), [...b.subarray(12)].join('.')] : groups;
      // Compress any run of zero groups (not only the longest), or none.
      const zeroRuns: [number, number][] = [];
      for (let i = 0; i < parts.length; i++) {
        if (!/^0+$/.test(parts[i]!)) continue;
        let j = i;
        while (j < parts.length && /^0+$/.test(parts[j]!)) j++;
        for (let a = i; a < j; a++) for (let z = a + 1; z <= j; z++) zeroRuns.push([a, z]);
        i = j;
      }
      let text = parts.join(':');
      if (zeroRuns.length > 0 && pick % 3 !== 0) {
        const [a, z] = zeroRuns[pick % zeroRuns.length]!;
        text = `${parts.slice(0, a).join(':')}::${parts.slice(z).join(':')}`;
      }
      const r = parseIpv6(text);
      assert.ok(r.ok, text);
      assert.ok(r.value.equals(b), text);
    }), { numRuns: 3000 });
  });
});
