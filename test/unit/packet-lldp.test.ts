// LLDP codec: the probe the fabric sends (exact bytes), round trips, other devices' LLDPDUs, and
// fuzzing: random, truncated and bit-flipped input never throws and always yields a Result.
import assert from 'node:assert/strict';
import { PACKET_ERROR_KINDS, unwrap as must, wellFormedIn } from '../lib/results.ts';
import fc from 'fast-check';
import {
  buildLldpFrame, decodeLldp, decodeLldpFrame, encodeLldp, lldpProbe, ETHERTYPE_LLDP, LLDP_MULTICAST, type Lldp,
} from '../../controller/packet/lldp.ts';
import { buildArpFrame, parseFrame, PacketBuildError } from '../../controller/packet/index.ts';

const wellFormed = wellFormedIn(PACKET_ERROR_KINDS);

const PROBE = buildLldpFrame({ dpid: '00000000000000a1', port: 3, srcMac: '02:11:22:33:44:55', ttl: 4 });

describe('LLDP codec', () => {
  it('builds the probe byte for byte: chassis "dpid:<16 hex>", port "<n>" (both locally assigned), TTL, End, zero padding to 60', () => {
    assert.equal(PROBE.toString('hex'),
      '0180c200000e' + '021122334455' + '88cc'
      + '0216' + '07' + Buffer.from('dpid:00000000000000a1').toString('hex')
      + '0402' + '07' + '33'
      + '0602' + '0004'
      + '0000'
      + '00'.repeat(12));
    assert.equal(PROBE.length, 60);
  });

  it('decodes its own probe, and parseFrame passes LLDP through with only Ethernet decoded', () => {
    const d = must(decodeLldpFrame(PROBE));
    assert.equal(d.dst, LLDP_MULTICAST);
    assert.equal(d.src, '02:11:22:33:44:55');
    assert.deepEqual(must(lldpProbe(d.lldp)), { dpid: '00000000000000a1', port: 3, ttl: 4 });
    const f = must(parseFrame(PROBE));
    assert.equal(f.eth.ethType, ETHERTYPE_LLDP);
    assert.equal(f.ipv4, undefined);
    assert.deepEqual(must(lldpProbe(must(decodeLldp(f.raw, f.l3Offset)))), { dpid: '00000000000000a1', port: 3, ttl: 4 });
  });

  it('round-trips any datapath id, port number and TTL (dpid as bigint or hex text)', () => {
    fc.assert(fc.property(
      fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }), fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffff }),
      fc.uint8Array({ minLength: 6, maxLength: 6 }), fc.boolean(),
      (dpid, port, ttl, mac, asText) => {
        const srcMac = [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
        const frame = buildLldpFrame({ dpid: asText ? dpid.toString(16) : dpid, port, ttl, srcMac });
        const d = must(decodeLldpFrame(frame));
        assert.equal(d.src, srcMac);
        assert.deepEqual(must(lldpProbe(d.lldp)), { dpid: dpid.toString(16).padStart(16, '0'), port, ttl });
      },
    ), { numRuns: 300 });
  });

  it('round-trips any LLDPDU with optional TLVs (encodeLldp ∘ decodeLldp)', () => {
    const tlv = fc.record({ type: fc.integer({ min: 4, max: 127 }), value: fc.uint8Array({ maxLength: 511 }).map((u) => Buffer.from(u)) }, { noNullPrototype: true });
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 255 }), fc.uint8Array({ minLength: 1, maxLength: 255 }), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ minLength: 1, maxLength: 255 }),
      fc.integer({ min: 0, max: 0xffff }), fc.array(tlv, { maxLength: 5 }),
      (cs, cid, ps, pid, ttl, optional) => {
        const spec = { chassisSubtype: cs, chassisId: Buffer.from(cid), portSubtype: ps, portId: Buffer.from(pid), ttl, optional };
        const pdu = must(encodeLldp(spec));
        const back: Lldp = must(decodeLldp(pdu, 0));
        assert.equal(back.chassisSubtype, cs);
        assert.deepEqual(back.chassisId, spec.chassisId);
        assert.equal(back.portSubtype, ps);
        assert.deepEqual(back.portId, spec.portId);
        assert.equal(back.ttl, ttl);
        assert.deepEqual(back.optional.map((t) => [t.type, t.value.toString('hex')]), optional.map((t) => [t.type, t.value.toString('hex')]));
      },
    ), { numRuns: 200 });
  });

  it("another device's LLDPDU decodes, and is not taken for a probe", () => {
    const macChassis = must(encodeLldp({ chassisSubtype: 4, chassisId: Buffer.from('021122334455', 'hex'), portSubtype: 5, portId: Buffer.from('eth0'), ttl: 120, optional: [{ type: 5, value: Buffer.from('host') }] }));
    const l = must(decodeLldp(macChassis, 0));
    assert.equal(l.optional[0]!.value.toString(), 'host');
    const p = lldpProbe(l);
    assert.equal(!p.ok && p.error.kind, 'unsupported');
    // Our chassis text but a port id that is not a number.
    const odd = must(decodeLldp(must(encodeLldp({ chassisSubtype: 7, chassisId: Buffer.from('dpid:00000000000000a1'), portSubtype: 7, portId: Buffer.from('eth0'), ttl: 1 })), 0));
    assert.equal(lldpProbe(odd).ok, false);
    const big = must(decodeLldp(must(encodeLldp({ chassisSubtype: 7, chassisId: Buffer.from('dpid:00000000000000a1'), portSubtype: 7, portId: Buffer.from('4294967296'), ttl: 1 })), 0));
    assert.equal(lldpProbe(big).ok, false);
  });

  it('refuses malformed PDUs with a kind: order of the mandatory TLVs, their lengths, a non-empty End', () => {
    const tlv = (type: number, value: Buffer) => { const h = Buffer.alloc(2); h.writeUInt16BE((type << 9) | value.length); return Buffer.concat([h, value]); };
    const chassis = tlv(1, Buffer.from('\x07dpid:00000000000000a1', 'latin1'));
    const port = tlv(2, Buffer.from('\x073', 'latin1'));
    const ttl = tlv(3, Buffer.from([0, 4]));
    const end = Buffer.alloc(2);
    const kind = (b: Buffer) => { const r = decodeLldp(b, 0); return r.ok ? 'ok' : r.error.kind; };
    assert.equal(kind(Buffer.concat([chassis, port, ttl, end])), 'ok');
    assert.equal(kind(Buffer.concat([chassis, port, ttl])), 'ok', 'End is optional since 802.1AB-2016');
    assert.equal(kind(Buffer.concat([port, chassis, ttl, end])), 'bad_value');
    assert.equal(kind(Buffer.concat([chassis, ttl, port, end])), 'bad_value');
    assert.equal(kind(Buffer.concat([chassis, port, tlv(3, Buffer.from([4])), end])), 'bad_value');
    assert.equal(kind(Buffer.concat([tlv(1, Buffer.from([7])), port, ttl, end])), 'bad_value');
    assert.equal(kind(Buffer.concat([chassis, port, ttl, tlv(2, Buffer.from('\x074', 'latin1')), end])), 'bad_value');
    assert.equal(kind(Buffer.concat([chassis, port, ttl, Buffer.from([0, 1, 0])])), 'bad_value');
    assert.equal(kind(Buffer.concat([chassis, port, end])), 'bad_value');
    assert.equal(kind(Buffer.alloc(0)), 'truncated');
  });

  it('every prefix that cuts into the mandatory TLVs is an error (truncated)', () => {
    const pdu = PROBE.subarray(14);
    const mandatoryEnd = 24 + 4 + 4; // chassis, port, TTL
    for (let n = 0; n < mandatoryEnd; n++) {
      const r = decodeLldp(pdu.subarray(0, n), 0);
      assert.equal(r.ok, false, `prefix ${n}`);
      if (!r.ok) assert.equal(r.error.kind, 'truncated', `prefix ${n}: ${r.error.message}`);
    }
    for (let n = 0; n < 14 + mandatoryEnd; n++) assert.equal(decodeLldpFrame(PROBE.subarray(0, n)).ok, false, `frame prefix ${n}`);
  });

  it('fuzz: random bytes, offsets, bit flips and wrong arguments never throw', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: -2, max: 310 }), (u, off) => {
      const b = Buffer.from(u);
      wellFormed(decodeLldp(b, off));
      wellFormed(decodeLldpFrame(b));
      const withType = Buffer.concat([PROBE.subarray(0, 14), b]);
      const r = decodeLldpFrame(withType);
      wellFormed(r);
      if (r.ok) wellFormed(lldpProbe(r.value.lldp));
    }), { numRuns: 2000 });
    fc.assert(fc.property(fc.array(fc.nat({ max: PROBE.length * 8 - 1 }), { minLength: 1, maxLength: 6 }), (bits) => {
      const b = Buffer.from(PROBE);
      for (const bit of bits) b[bit >> 3]! ^= 1 << (bit & 7);
      const r = decodeLldpFrame(b);
      wellFormed(r);
      if (r.ok) wellFormed(lldpProbe(r.value.lldp));
    }), { numRuns: 2000 });
    for (const bad of [undefined, null, 'lldp', 42, {}, [1, 2]]) {
      wellFormed(decodeLldp(bad as unknown as Buffer, 0));
      wellFormed(decodeLldpFrame(bad as unknown as Buffer));
    }
    const arp = buildArpFrame({ op: 'request', ethSrc: '02:00:00:00:00:01', senderIp: '10.0.0.1', targetIp: '10.0.0.2' });
    const r = decodeLldpFrame(arp);
    assert.equal(!r.ok && r.error.kind, 'not_applicable');
  });

  it('the builder refuses a bad spec with PacketBuildError', () => {
    const base = { dpid: 'a1', port: 1, srcMac: '02:00:00:00:00:01' };
    for (const spec of [{ ...base, dpid: 'xyz' }, { ...base, dpid: '1'.repeat(17) }, { ...base, dpid: -1n }, { ...base, port: -1 }, { ...base, port: 2 ** 32 },
      { ...base, srcMac: 'nope' }, { ...base, ttl: 70000 }]) {
      assert.throws(() => buildLldpFrame(spec as Parameters<typeof buildLldpFrame>[0]), PacketBuildError, JSON.stringify(spec, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
    }
  });
});
