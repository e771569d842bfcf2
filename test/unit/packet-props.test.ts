// Property tests: build→parse round trips, byte-exact option re-encoding, and incremental
// checksum updates equal to a full recompute after arbitrary rewrites.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  buildTcpFrame,
  buildUdpFrame,
  decodeTcpOptions,
  encodeTcpOptions,
  findOption,
  ipv4FromUint32,
  optionLength,
  parseFrame,
  recomputeChecksums,
  rewriteEthDst,
  rewriteEthSrc,
  rewriteIpv4Dst,
  rewriteIpv4Src,
  rewriteL4DstPort,
  rewriteL4SrcPort,
  rewriteTcpWindow,
  nopOutTcpOptions,
  seqAdd,
  shiftSackBlocks,
  shiftTcpAck,
  shiftTcpSeq,
  shiftTcpTimestamps,
  verifyChecksums,
  type TcpFrameSpec,
  type TcpOption,
} from '../../controller/packet/index.ts';

const RUNS = 400;
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const mac = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':'));
const ip = u32.map(ipv4FromUint32);
const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));

const typedOption: fc.Arbitrary<TcpOption> = fc.oneof(
  fc.constant<TcpOption>({ kind: 'nop' }),
  u16.map((value): TcpOption => ({ kind: 'mss', value })),
  fc.integer({ min: 0, max: 255 }).map((shift): TcpOption => ({ kind: 'wscale', shift })),
  fc.constant<TcpOption>({ kind: 'sack_permitted' }),
  fc.array(fc.record({ left: u32, right: u32 }, { noNullPrototype: true }), { minLength: 1, maxLength: 4 }).map(
    (blocks): TcpOption => ({ kind: 'sack', blocks }),
  ),
  fc.record({ tsval: u32, tsecr: u32 }, { noNullPrototype: true }).map((t): TcpOption => ({ kind: 'timestamp', ...t })),
  fc
    .record({ type: fc.integer({ min: 9, max: 255 }), data: bytes(8) }, { noNullPrototype: true })
    .map((u): TcpOption => ({ kind: 'unknown', ...u })),
);
const optionList = fc
  .array(typedOption, { maxLength: 8 })
  .filter((l) => l.reduce((n, o) => n + optionLength(o), 0) <= 40);

const vlans = fc.oneof(
  fc.constant<number[]>([]),
  fc.array(u16, { minLength: 1, maxLength: 2 }),
);

const tcpSpec: fc.Arbitrary<TcpFrameSpec> = fc.record(
  {
    ethSrc: mac,
    ethDst: mac,
    ipSrc: ip,
    ipDst: ip,
    srcPort: u16,
    dstPort: u16,
    seq: u32,
    ack: u32,
    flags: fc.integer({ min: 0, max: 0x1ff }),
    window: u16,
    options: optionList,
    payload: bytes(64),
    ttl: fc.integer({ min: 0, max: 255 }),
    ipId: u16,
    urgent: u16,
    df: fc.boolean(),
    tos: fc.integer({ min: 0, max: 255 }),
    vlans,
  },
  { noNullPrototype: true },
);

function mustParse(b: Buffer) {
  const r = parseFrame(b);
  if (!r.ok) assert.fail(`${r.error.kind}: ${r.error.message}`);
  return r.value;
}

describe('packet codec: properties', () => {
  it('buildTcpFrame → parseFrame returns every field', () => {
    fc.assert(
      fc.property(tcpSpec, (s) => {
        const f = buildTcpFrame(s);
        const p = mustParse(f);
        assert.equal(p.eth.src, s.ethSrc);
        assert.equal(p.eth.dst, s.ethDst);
        assert.deepEqual(p.eth.tcis, s.vlans);
        assert.equal(p.ipv4!.src, s.ipSrc);
        assert.equal(p.ipv4!.dst, s.ipDst);
        assert.equal(p.ipv4!.ttl, s.ttl);
        assert.equal(p.ipv4!.id, s.ipId);
        assert.equal(p.ipv4!.tos, s.tos);
        assert.equal(p.ipv4!.flags.df, s.df);
        const t = p.tcp!;
        assert.deepEqual(
          [t.srcPort, t.dstPort, t.seq, t.ack, t.flags, t.window, t.urgent],
          [s.srcPort, s.dstPort, s.seq, s.ack, s.flags, s.window, s.urgent],
        );
        assert.equal(t.optionsError, undefined);
        // Decoded options are the input, plus an EOL when padding was needed.
        const opts = s.options ?? [];
        const padded = opts.reduce((n, o) => n + optionLength(o), 0) % 4 !== 0;
        assert.deepEqual(t.options, padded ? [...opts, { kind: 'eol' }] : opts);
        assert.ok(p.payload.equals(s.payload ?? Buffer.alloc(0)));
        assert.deepEqual(verifyChecksums(f), { ok: true, value: { ip: true, l4: true, l4Checked: true } });
      }),
      { numRuns: RUNS },
    );
  });

  it('option areas re-encode byte-identically (including unknown and odd-length kinds, EOL padding)', () => {
    // Areas are built from chunks so most decode; pure random bytes would rarely be valid.
    const chunk = fc.oneof(
      fc.constant(Buffer.from([1])),
      fc.constant(Buffer.from([0])),
      fc.tuple(fc.integer({ min: 2, max: 255 }), bytes(10)).map(([t, d]) => Buffer.concat([Buffer.from([t, d.length + 2]), d])),
      bytes(4),
    );
    fc.assert(
      fc.property(fc.array(chunk, { maxLength: 10 }), (chunks) => {
        let area = Buffer.concat(chunks);
        area = Buffer.concat([area, Buffer.alloc((4 - (area.length % 4)) % 4)]).subarray(0, 40);
        const d = decodeTcpOptions(area);
        if (!d.ok) return; // malformed areas are covered by the fuzz tests
        const e = encodeTcpOptions(d.value);
        assert.ok(e.ok);
        assert.equal(e.value.toString('hex'), area.toString('hex'));
      }),
      { numRuns: 2000 },
    );
  });

  it('encode → decode → encode is stable for typed option lists', () => {
    fc.assert(
      fc.property(optionList, (opts) => {
        const e = encodeTcpOptions(opts);
        assert.ok(e.ok);
        const d = decodeTcpOptions(e.value);
        assert.ok(d.ok);
        const e2 = encodeTcpOptions(d.value);
        assert.ok(e2.ok);
        assert.ok(e2.value.equals(e.value));
      }),
      { numRuns: RUNS },
    );
  });

  type Op =
    | { op: 'ipSrc' | 'ipDst'; v: number }
    | { op: 'sport' | 'dport' | 'window'; v: number }
    | { op: 'ethSrc' | 'ethDst'; v: string }
    | { op: 'seq' | 'ack' | 'sack'; v: number }
    | { op: 'ts'; v: number; w: number }
    | { op: 'nopTs' };
  const delta = fc.integer({ min: -0xffff_ffff, max: 0xffff_ffff });
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ op: fc.constantFrom('ipSrc' as const, 'ipDst' as const), v: u32 }, { noNullPrototype: true }),
    fc.record({ op: fc.constantFrom('sport' as const, 'dport' as const, 'window' as const), v: u16 }, { noNullPrototype: true }),
    fc.record({ op: fc.constantFrom('ethSrc' as const, 'ethDst' as const), v: mac }, { noNullPrototype: true }),
    fc.record({ op: fc.constantFrom('seq' as const, 'ack' as const, 'sack' as const), v: delta }, { noNullPrototype: true }),
    fc.record({ op: fc.constant('ts' as const), v: delta, w: delta }, { noNullPrototype: true }),
    fc.constant<Op>({ op: 'nopTs' }),
  );

  function apply(f: Buffer, o: Op): void {
    const r = (() => {
      switch (o.op) {
        case 'ipSrc': return rewriteIpv4Src(f, o.v);
        case 'ipDst': return rewriteIpv4Dst(f, ipv4FromUint32(o.v));
        case 'sport': return rewriteL4SrcPort(f, o.v);
        case 'dport': return rewriteL4DstPort(f, o.v);
        case 'window': return rewriteTcpWindow(f, o.v);
        case 'ethSrc': return rewriteEthSrc(f, o.v);
        case 'ethDst': return rewriteEthDst(f, o.v);
        case 'seq': return shiftTcpSeq(f, o.v);
        case 'ack': return shiftTcpAck(f, o.v);
        case 'sack': return shiftSackBlocks(f, o.v);
        case 'ts': return shiftTcpTimestamps(f, { tsval: o.v, tsecr: o.w });
        case 'nopTs': return nopOutTcpOptions(f, ['timestamp']);
      }
    })();
    assert.ok(r.ok, !r.ok ? r.error.message : '');
  }

  it('incremental TCP checksum updates equal a full recompute after random rewrites', () => {
    fc.assert(
      fc.property(tcpSpec, fc.array(op, { minLength: 1, maxLength: 8 }), (s, ops) => {
        const f = buildTcpFrame(s);
        for (const o of ops) apply(f, o);
        const ref = Buffer.from(f);
        assert.ok(recomputeChecksums(ref).ok);
        assert.equal(f.toString('hex'), ref.toString('hex'));
      }),
      { numRuns: RUNS },
    );
  });

  it('rewrites change exactly the intended fields (seq/ack/SACK mod 2^32)', () => {
    fc.assert(
      fc.property(tcpSpec, delta, delta, ip, u16, (s, ds, da, newIp, port) => {
        const f = buildTcpFrame(s);
        const before = mustParse(Buffer.from(f)).tcp!;
        assert.ok(shiftTcpSeq(f, ds).ok);
        const a = shiftTcpAck(f, da);
        assert.ok(a.ok);
        assert.ok(rewriteIpv4Dst(f, newIp).ok);
        assert.ok(rewriteL4SrcPort(f, port).ok);
        const p = mustParse(f);
        const t = p.tcp!;
        assert.equal(t.seq, seqAdd(s.seq, ds));
        assert.equal(t.ack, seqAdd(s.ack, da));
        assert.equal(p.ipv4!.dst, newIp);
        assert.equal(t.srcPort, port);
        assert.equal(t.dstPort, s.dstPort);
        const sb = findOption(before.options, 'sack');
        const sa = findOption(t.options, 'sack');
        if (sb) {
          assert.deepEqual(sa!.blocks, sb.blocks.map((b) => ({ left: seqAdd(b.left, da), right: seqAdd(b.right, da) })));
        }
        const expectedBlocks = before.options.reduce((n, o) => n + (o.kind === 'sack' ? o.blocks.length : 0), 0);
        assert.deepEqual(a.value, { sackBlocks: expectedBlocks, optionsMalformed: false });
        // Everything except the rewritten fields is unchanged.
        assert.deepEqual(t.options.filter((o) => o.kind !== 'sack'), before.options.filter((o) => o.kind !== 'sack'));
        assert.ok(p.payload.equals(s.payload ?? Buffer.alloc(0)));
      }),
      { numRuns: RUNS },
    );
  });

  it('incremental UDP updates equal a full recompute; checksum 0 stays 0', () => {
    fc.assert(
      fc.property(
        mac, mac, ip, ip, u16, u16, bytes(40), fc.boolean(), vlans, u32, u16, u32, u16,
        (es, ed, is, id, sp, dp, payload, noChecksum, vl, nip, np, nip2, np2) => {
          const f = buildUdpFrame({ ethSrc: es, ethDst: ed, ipSrc: is, ipDst: id, srcPort: sp, dstPort: dp, payload, noChecksum, vlans: vl });
          assert.ok(rewriteIpv4Src(f, nip).ok);
          assert.ok(rewriteL4DstPort(f, np).ok);
          assert.ok(rewriteIpv4Dst(f, nip2).ok);
          assert.ok(rewriteL4SrcPort(f, np2).ok);
          const ref = Buffer.from(f);
          assert.ok(recomputeChecksums(ref).ok);
          assert.equal(f.toString('hex'), ref.toString('hex'));
          const p = mustParse(f);
          assert.equal(p.udp!.checksum === 0, noChecksum);
          assert.deepEqual(verifyChecksums(f).ok && verifyChecksums(f), { ok: true, value: { ip: true, l4: true, l4Checked: !noChecksum } });
          // TCP-only helpers refuse UDP without touching it.
          const copy = Buffer.from(f);
          const r = shiftTcpSeq(f, 5);
          assert.equal(r.ok, false);
          assert.ok(f.equals(copy));
        },
      ),
      { numRuns: RUNS },
    );
  });
});
