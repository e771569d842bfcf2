// Snort unixsock Alertpkt decoder, against the real Snort 3.12.2.0 datagram and variants of it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { buildTcpFrame } from '../../controller/packet/index.ts';
import {
  ALERTPKT_SIZE, ALERTPKT_SIZE_APPID, ALERTPKT_SIZE_APPID16, OFF, NOPACKET_STRUCT,
  alertFromAlertPkt, decodeAlertPkt, encodeAlertPkt,
} from '../../controller/analyzers/snort-alertpkt.ts';
import { verdictOf, stripQuotes } from '../../controller/analyzers/types.ts';

const fixture = (n: string): Buffer => readFileSync(new URL(`../fixtures/ids/${n}`, import.meta.url));
const REAL = fixture('snort3-unixsock-alert.bin');

describe('analyzers: verdictOf', () => {
  it('reads MIGRATE/FORWARD prefixes, case-insensitive, quotes stripped', () => {
    assert.equal(verdictOf('MIGRATE'), 'MIGRATE');
    assert.equal(verdictOf('"MIGRATE"'), 'MIGRATE');
    assert.equal(verdictOf('  "forward traffic" '), 'FORWARD');
    assert.equal(verdictOf('Migrate to server3'), 'MIGRATE');
    assert.equal(verdictOf('"MIGRATE'), 'MIGRATE');
    assert.equal(verdictOf('please MIGRATE'), undefined);
    assert.equal(verdictOf(''), undefined);
    assert.equal(verdictOf('""'), undefined);
    assert.equal(verdictOf('ET POLICY something'), undefined);
  });
  it('stripQuotes removes one pair of quotes only', () => {
    assert.equal(stripQuotes('"a "b""'), 'a "b"');
    assert.equal(stripQuotes('plain'), 'plain');
  });
});

describe('analyzers: Snort Alertpkt decoder', () => {
  it('decodes the real Snort 3 datagram field by field', () => {
    assert.equal(REAL.length, ALERTPKT_SIZE);
    const r = decodeAlertPkt(REAL);
    assert.ok(r.ok, !r.ok ? r.error.message : '');
    const p = r.value;
    assert.equal(p.rawMsg, '"MIGRATE"');
    assert.equal(p.msg, 'MIGRATE');
    assert.deepEqual(
      [p.tsSec, p.tsUsec, p.caplen, p.len, p.dlthdr, p.nethdr, p.transhdr, p.data, p.val],
      [1700000000, 3000, 85, 85, 0, 14, 34, 54, 0]);
    assert.deepEqual([p.gid, p.sid, p.rev, p.classification, p.priority, p.eventId, p.eventRef, p.refTsSec, p.refTsUsec],
      [1, 1000002, 0, 0, 0, 1, 1, 1700000000, 3000]);
    assert.equal(p.noPacket, false);
    assert.equal(p.packet!.length, 85);
    assert.deepEqual(p.flow, { srcIp: '10.0.0.2', srcPort: 40000, dstIp: '10.0.0.1', dstPort: 5001 });
    assert.equal(p.seq, 1001);
    assert.equal(p.ack, 5001);
    assert.equal(p.payloadLength, 31);
    assert.equal(p.frame!.payload.toString(), 'please migrate this connection\n');
    const a = alertFromAlertPkt(p);
    assert.deepEqual(a, {
      source: 'snort', verdict: 'MIGRATE', msg: 'MIGRATE', gid: 1, sid: 1000002, rev: 0,
      flow: { srcIp: '10.0.0.2', srcPort: 40000, dstIp: '10.0.0.1', dstPort: 5001 }, seq: 1001, ack: 5001, payloadLength: 31,
      time: new Date(1700000000003),
    });
  });

  it('accepts the OpenAppId sizes (65,928 and 65,880) and reads app_name', () => {
    for (const size of [ALERTPKT_SIZE_APPID, ALERTPKT_SIZE_APPID16]) {
      const b = Buffer.alloc(size);
      REAL.copy(b);
      b.write('HTTP', OFF.appName);
      const r = decodeAlertPkt(b);
      assert.ok(r.ok);
      assert.equal(r.value.sid, 1000002);
      assert.equal(r.value.appName, 'HTTP');
      assert.equal(r.value.seq, 1001);
    }
  });

  it('rejects wrong sizes with a clear message (64 KiB truncation named)', () => {
    for (const n of [0, 1, 292, 65535, 65536, ALERTPKT_SIZE - 1, ALERTPKT_SIZE + 1, 70000]) {
      const r = decodeAlertPkt(Buffer.alloc(n));
      assert.ok(!r.ok, `size ${n}`);
      assert.match(r.error.message, /Alertpkt must be 65864, 65880, 65928 bytes/);
      if (n === 65536) assert.match(r.error.message, /64 KiB/);
    }
    assert.ok(!decodeAlertPkt('x' as unknown as Buffer).ok);
  });

  it('Snort 2 style msg without quotes, classification/priority present, NOPACKET_STRUCT', () => {
    const b = encodeAlertPkt({ msg: 'FORWARD web', sid: 1000001, rev: 2, classification: 3, priority: 2 });
    const r = decodeAlertPkt(b);
    assert.ok(r.ok);
    assert.equal(r.value.noPacket, true);
    assert.equal(r.value.val, NOPACKET_STRUCT);
    assert.equal(r.value.packet, undefined);
    const a = alertFromAlertPkt(r.value, () => new Date(5));
    assert.equal(a.verdict, 'FORWARD');
    assert.equal(a.msg, 'FORWARD web');
    assert.equal(a.classification, 3);
    assert.equal(a.priority, 2);
    assert.equal(a.flow, undefined);
    assert.deepEqual(a.time, new Date(5));
  });

  it('big-endian senders decode with littleEndian:false', () => {
    const frame = buildTcpFrame({ ethSrc: '02:00:00:00:00:02', ethDst: '02:00:00:00:00:01', ipSrc: '10.1.2.3', ipDst: '10.0.0.1', srcPort: 1234, dstPort: 80, seq: 7, ack: 9, flags: { ack: true, psh: true }, window: 100, payload: Buffer.from('hi') });
    const b = encodeAlertPkt({ msg: 'MIGRATE', sid: 42, packet: frame, littleEndian: false, tsSec: 10 });
    const r = decodeAlertPkt(b, { littleEndian: false });
    assert.ok(r.ok);
    assert.equal(r.value.sid, 42);
    assert.equal(r.value.seq, 7);
    // Read in the wrong order it is either rejected (microseconds ≥ 1e6, offsets past caplen) or a different sid.
    const wrong = decodeAlertPkt(b, { littleEndian: true });
    assert.ok(!wrong.ok || wrong.value.sid !== 42);
  });

  it('bad caplen / offsets keep the alert but drop the packet', () => {
    const b = Buffer.from(REAL);
    b.writeUInt32LE(70000, OFF.caplen);
    let r = decodeAlertPkt(b);
    assert.ok(r.ok);
    assert.equal(r.value.sid, 1000002);
    assert.equal(r.value.packet, undefined);
    assert.match(r.value.frameError!.message, /caplen 70000 exceeds/);
    const c = Buffer.from(REAL);
    c.writeUInt32LE(200, OFF.data);
    r = decodeAlertPkt(c);
    assert.ok(r.ok);
    assert.match(r.value.frameError!.message, /data offset 200 is beyond caplen 85/);
  });

  it('falls back to Snort offsets when the frame is not Ethernet (raw IP link type)', () => {
    const eth = Buffer.from(REAL.subarray(OFF.pkt, OFF.pkt + 85));
    const raw = eth.subarray(14);
    const b = encodeAlertPkt({ msg: '"MIGRATE"', sid: 7, packet: raw, nethdr: 0, transhdr: 20, data: 40, tsSec: 1 });
    const r = decodeAlertPkt(b);
    assert.ok(r.ok);
    assert.deepEqual(r.value.flow, { srcIp: '10.0.0.2', srcPort: 40000, dstIp: '10.0.0.1', dstPort: 5001 });
    assert.equal(r.value.seq, 1001);
    assert.equal(r.value.payloadLength, 31);
  });

  it('garbage of the right size is rejected, not mis-decoded', () => {
    const g = Buffer.alloc(ALERTPKT_SIZE, 0x41);
    const r = decodeAlertPkt(g);
    assert.ok(!r.ok);
    const h = Buffer.from(REAL);
    h[OFF.padding] = 1;
    assert.ok(!decodeAlertPkt(h).ok);
    const v = Buffer.from(REAL);
    v.writeUInt32LE(0x10, OFF.val);
    assert.match((decodeAlertPkt(v) as { error: { message: string } }).error.message, /unknown flag bits/);
  });

  it('never throws on random datagrams of the accepted sizes', () => {
    fc.assert(fc.property(fc.constantFrom(ALERTPKT_SIZE, ALERTPKT_SIZE_APPID), fc.array(fc.tuple(fc.nat(ALERTPKT_SIZE - 1), fc.nat(255)), { maxLength: 40 }), (size, flips) => {
      const b = Buffer.alloc(size);
      REAL.copy(b);
      for (const [o, v] of flips) b[o] = v;
      const r = decodeAlertPkt(b);
      if (r.ok) alertFromAlertPkt(r.value);
    }), { numRuns: 300 });
  });

  it('encode/decode round trip: every field back, the message cut to whole characters within 255 bytes', () => {
    const u32 = fc.integer({ min: 0, max: 0xffffffff });
    // Any Unicode text (multi-byte characters included; short, and long enough to be cut), with and
    // without the quotes Snort 3 keeps.
    const anyText = fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ unit: 'binary', minLength: 60, maxLength: 300, size: 'max' }));
    const text = fc.tuple(anyText, fc.boolean()).map(([t, q]) => (q ? `"${t}"` : t).replace(/\0/g, ''));
    fc.assert(fc.property(text, u32, u32, u32, (msg, sid, rev, gid) => {
      const r = decodeAlertPkt(encodeAlertPkt({ msg, sid, rev, gid }));
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      const sent = utf8Prefix(msg, 255);
      assert.equal(r.value.rawMsg, sent);
      assert.equal(r.value.msg, stripQuotes(sent));
      assert.deepEqual([r.value.sid, r.value.rev, r.value.gid], [sid, rev, gid]);
    }), { numRuns: 300 });
  });
});

/** The longest prefix of `s` of whole characters whose UTF-8 form fits in `max` bytes (what Buffer.write keeps). */
function utf8Prefix(s: string, max: number): string {
  let out = '';
  for (const ch of s) {
    if (Buffer.byteLength(out + ch) > max) break;
    out += ch;
  }
  return out;
}
