// From client datagrams to SNI/ALPN: CRYPTO reassembly, the ClientHello reader, coalesced
// packets, and a ClientHello spread over several Initials and datagrams.
import assert from 'node:assert/strict';
import { errKind, unwrap } from '../lib/results.ts';
import { randomBytes } from 'node:crypto';
import {
  ClientInitialAssembler,
  CryptoReassembler,
  encodeClientHello,
  encodeClientInitial,
  encodeFrames,
  initialKeys,
  protectPacket,
  encodeLongHeader,
  encodeRetry,
  encodeVersionNegotiation,
  parseClientHello,
  parseClientInitial,
  readClientHello,
  splitDatagram,
  verifyRetry,
  EXT_QUIC_TRANSPORT_PARAMETERS_DRAFT,
  MAX_CRYPTO_RANGES,
  QUIC_V1,
  QUIC_V2,
  type ClientInitialProgress,
  type InitialFrame,
  type QuicResult,
} from '../../controller/quic/index.ts';



function complete(r: QuicResult<ClientInitialProgress>): Extract<ClientInitialProgress, { status: 'complete' }> {
  const v = unwrap(r);
  assert.equal(v.status, 'complete');
  return v as Extract<ClientInitialProgress, { status: 'complete' }>;
}

const DCID = Buffer.from('c0ffee00c0ffee01', 'hex');
const SCID = Buffer.from('5c1d', 'hex');
// X25519MLKEM768: a 1216-byte key share pushes a ClientHello past one packet, as browsers now send.
const PQ_HELLO = encodeClientHello({
  sni: 'pq.example.net', alpn: ['h3'],
  keyShares: [{ group: 0x11ec, key: randomBytes(1216) }, { group: 0x001d, key: randomBytes(32) }],
});

const crypto = (offset: number, data: Buffer): InitialFrame => ({ type: 'crypto', offset, data });

describe('QUIC codec: CRYPTO stream reassembly', () => {
  it('out of order, overlapping and duplicated pieces reassemble', () => {
    const data = randomBytes(300);
    const r = new CryptoReassembler();
    unwrap(r.add(200, data.subarray(200)));
    assert.equal(r.contiguousLength, 0);
    assert.equal(r.highestOffset, 300);
    unwrap(r.add(0, data.subarray(0, 50)));
    assert.equal(r.contiguousLength, 50);
    unwrap(r.add(40, data.subarray(40, 210)));
    unwrap(r.add(0, data.subarray(0, 300)));
    assert.equal(r.contiguousLength, 300);
    assert.ok(r.contiguous().equals(data));
    unwrap(r.add(10, Buffer.alloc(0)));
  });

  it('bytes that contradict earlier ones are an error', () => {
    const r = new CryptoReassembler();
    unwrap(r.add(0, Buffer.from('abcdef')));
    assert.equal(errKind(r.add(3, Buffer.from('dXf'))), 'bad_frame');
    unwrap(r.add(3, Buffer.from('defgh')));
    assert.equal(r.contiguous().toString(), 'abcdefgh');
  });

  it('the byte cap and the fragment cap hold', () => {
    const r = new CryptoReassembler(1000);
    assert.equal(errKind(r.add(990, Buffer.alloc(11))), 'limit');
    unwrap(r.add(990, Buffer.alloc(10)));
    assert.equal(errKind(r.add(2 ** 40, Buffer.alloc(1))), 'limit');
    const f = new CryptoReassembler();
    for (let i = 0; i < MAX_CRYPTO_RANGES; i++) unwrap(f.add(i * 2 + 1, Buffer.alloc(1)));
    assert.equal(errKind(f.add(1000, Buffer.alloc(1))), 'limit');
    unwrap(f.add(0, Buffer.alloc(1000))); // filling gaps merges ranges
    assert.equal(f.contiguousLength, 1000);
    assert.equal(errKind(f.add(-1, Buffer.alloc(1))), 'bad_argument');
  });
});

describe('QUIC codec: ClientHello', () => {
  it('reads SNI, ALPN, supported_versions and transport parameters', () => {
    const ch = unwrap(parseClientHello(encodeClientHello({ sni: 'Api.Example.com', alpn: ['h3', 'h3-29'], supportedVersions: [0x0304, 0x7f1d] })));
    assert.equal(ch.sni, 'Api.Example.com');
    assert.deepEqual(ch.alpn, ['h3', 'h3-29']);
    assert.deepEqual(ch.supportedVersions, [0x0304, 0x7f1d]);
    assert.equal(ch.hasQuicTransportParameters, true);
    const bare = unwrap(parseClientHello(encodeClientHello({ transportParameters: null, supportedVersions: [] })));
    assert.equal(bare.sni, undefined);
    assert.deepEqual(bare.alpn, []);
    assert.deepEqual(bare.supportedVersions, []);
    assert.equal(bare.hasQuicTransportParameters, false);
    const draft = unwrap(parseClientHello(encodeClientHello({ transportParameters: null, extraExtensions: [{ type: EXT_QUIC_TRANSPORT_PARAMETERS_DRAFT, data: Buffer.alloc(2) }] })));
    assert.equal(draft.hasQuicTransportParameters, true);
  });

  it('every proper prefix is "need more", never an error', () => {
    const msg = encodeClientHello({ sni: 'a.b', alpn: ['h3'] });
    for (let n = 0; n < msg.length; n++) {
      const r = unwrap(readClientHello(msg.subarray(0, n)));
      assert.equal(r.complete, false, `prefix ${n}`);
      if (!r.complete && n >= 4) assert.equal(r.needed, msg.length);
    }
    const r = unwrap(readClientHello(Buffer.concat([msg, Buffer.from('trailing')])));
    assert.ok(r.complete && r.length === msg.length);
  });

  function withExtensions(exts: Buffer): Buffer {
    const body = Buffer.concat([Buffer.from('0303', 'hex'), Buffer.alloc(32), Buffer.from('00000213010100', 'hex'), u16(exts.length), exts]);
    return Buffer.concat([Buffer.from([1]), Buffer.from([body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  }
  function u16(n: number): Buffer {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(n);
    return b;
  }
  function ext(type: number, data: Buffer): Buffer {
    return Buffer.concat([u16(type), u16(data.length), data]);
  }
  function sni(...names: [number, string][]): Buffer {
    const list = Buffer.concat(names.map(([t, n]) => Buffer.concat([Buffer.from([t]), u16(n.length), Buffer.from(n, 'latin1')])));
    return ext(0, Buffer.concat([u16(list.length), list]));
  }

  it('ambiguous or malformed ClientHellos are bad_tls', () => {
    assert.equal(unwrap(parseClientHello(withExtensions(sni([0, 'ok.example'])))).sni, 'ok.example');
    assert.equal(unwrap(parseClientHello(withExtensions(sni([7, 'other'], [0, 'x.example'])))).sni, 'x.example');
    const bad: [string, Buffer][] = [
      ['duplicate extension', withExtensions(Buffer.concat([sni([0, 'a']), sni([0, 'b'])]))],
      ['two host names', withExtensions(sni([0, 'a'], [0, 'b']))],
      ['non-ASCII host name', withExtensions(sni([0, 'caf\u00e9']))],
      ['space in host name', withExtensions(sni([0, 'a b']))],
      ['empty server_name', withExtensions(ext(0, Buffer.alloc(0)))],
      ['empty ALPN id', withExtensions(ext(16, Buffer.from('0003026833' + '00', 'hex').subarray(0, 6)))],
      ['empty ALPN list', withExtensions(ext(16, u16(0)))],
      ['odd supported_versions', withExtensions(ext(43, Buffer.from('030304ff', 'hex')))],
      ['extension overruns', withExtensions(Buffer.from('000000ff00', 'hex'))],
      ['no extensions', Buffer.from('010000260303' + '00'.repeat(32) + '00000213010100', 'hex')],
      ['not a ClientHello', Buffer.from('020000000000', 'hex')],
    ];
    for (const [what, msg] of bad) assert.equal(errKind(parseClientHello(msg)), 'bad_tls', what);
    assert.equal(errKind(readClientHello(Buffer.from('01ffffff', 'hex'))), 'limit');
  });
});

describe('QUIC codec: client Initial datagrams', () => {
  const hello = encodeClientHello({ sni: 'svc.example.org', alpn: ['h3'] });

  it('one Initial: version, CIDs, token, SNI, ALPN', () => {
    for (const version of [QUIC_V1, QUIC_V2]) {
      const token = Buffer.from('address-validation-token');
      const dg = encodeClientInitial({ version, dcid: DCID, scid: SCID, token, pn: 0, frames: [crypto(0, hello)] });
      assert.equal(dg.length, 1200);
      const r = complete(parseClientInitial(dg));
      assert.equal(r.version, version);
      assert.ok(r.dcid.equals(DCID) && r.scid.equals(SCID) && r.token.equals(token));
      assert.equal(r.sni, 'svc.example.org');
      assert.deepEqual(r.alpn, ['h3']);
      assert.deepEqual(r.clientHello.supportedVersions, [0x0304]);
      assert.deepEqual(r.packetNumbers, [0]);
    }
  });

  it('coalesced: Initial + 0-RTT + zero padding; a packet for another DCID is ignored', () => {
    const initial = encodeClientInitial({ version: QUIC_V1, dcid: DCID, scid: SCID, pn: 0, frames: [crypto(0, hello)], padTo: 0 });
    const zeroRtt = Buffer.concat([encodeLongHeader({ version: QUIC_V1, type: '0rtt', dcid: DCID, scid: SCID, pnLength: 1, length: 40 }), randomBytes(40)]);
    const other = Buffer.concat([encodeLongHeader({ version: QUIC_V1, type: 'handshake', dcid: Buffer.alloc(8, 9), scid: SCID, pnLength: 1, length: 30 }), randomBytes(30)]);
    const dg = Buffer.concat([initial, zeroRtt, other, Buffer.alloc(1200 - initial.length - zeroRtt.length - other.length)]);
    const split = unwrap(splitDatagram(dg));
    assert.equal(split.packets.length, 2);
    assert.equal(split.ignoredPackets, 1);
    assert.equal(split.trailingBytes, 1200 - initial.length - zeroRtt.length - other.length);
    const r = complete(parseClientInitial(dg));
    assert.equal(r.skippedPackets, 1);
    assert.equal(r.sni, 'svc.example.org');
  });

  it('a ClientHello split over two Initials of one datagram, in reverse order', () => {
    const cut = 100;
    const second = encodeClientInitial({ version: QUIC_V2, dcid: DCID, scid: SCID, pn: 1, frames: [crypto(cut, hello.subarray(cut))], padTo: 0 });
    const first = encodeClientInitial({ version: QUIC_V2, dcid: DCID, scid: SCID, pn: 0, frames: [crypto(0, hello.subarray(0, cut))], padTo: 1200 - second.length });
    const r = complete(parseClientInitial(Buffer.concat([second, first])));
    assert.deepEqual(r.packetNumbers, [1, 0]);
    assert.equal(r.sni, 'svc.example.org');
  });

  it('a post-quantum ClientHello over two datagrams: "need more", then complete', () => {
    assert.ok(PQ_HELLO.length > 1300);
    const cut = 1000;
    const d1 = encodeClientInitial({ version: QUIC_V1, dcid: DCID, scid: SCID, pn: 0, frames: [crypto(0, PQ_HELLO.subarray(0, cut))] });
    const d2 = encodeClientInitial({ version: QUIC_V1, dcid: DCID, scid: SCID, pn: 1, frames: [crypto(cut, PQ_HELLO.subarray(cut))] });
    for (const order of [[d1, d2], [d2, d1]]) {
      const a = new ClientInitialAssembler();
      const r1 = unwrap(a.push(order[0]!));
      assert.equal(r1.status, 'need_more');
      assert.equal(r1.datagrams, 1);
      const r2 = complete(a.push(order[1]!));
      assert.equal(r2.sni, 'pq.example.net');
      assert.deepEqual(r2.alpn, ['h3']);
      assert.equal(r2.datagrams, 2);
      assert.equal(r2.cryptoBytes, PQ_HELLO.length);
      assert.equal(complete(a.push(Buffer.alloc(5))).sni, 'pq.example.net', 'complete is final');
    }
    assert.equal(unwrap(parseClientInitial(d1)).status, 'need_more');
  });

  it('a retransmitted datagram is harmless; a changed DCID or SCID is not', () => {
    const d1 = encodeClientInitial({ version: QUIC_V1, dcid: DCID, scid: SCID, pn: 0, frames: [crypto(0, PQ_HELLO.subarray(0, 800))] });
    const again = encodeClientInitial({ version: QUIC_V1, dcid: DCID, scid: SCID, pn: 1, frames: [crypto(0, PQ_HELLO.subarray(0, 800))] });
    const a = new ClientInitialAssembler();
    assert.equal(unwrap(a.push(d1)).status, 'need_more');
    assert.equal(unwrap(a.push(again)).status, 'need_more');
    const otherDcid = encodeClientInitial({ version: QUIC_V1, dcid: Buffer.alloc(8, 1), scid: SCID, pn: 2, frames: [crypto(800, PQ_HELLO.subarray(800))] });
    assert.equal(errKind(a.push(otherDcid)), 'bad_value');
    const b = new ClientInitialAssembler();
    unwrap(b.push(d1));
    assert.equal(errKind(b.push(encodeClientInitial({ version: QUIC_V1, dcid: DCID, scid: Buffer.alloc(2), pn: 2, frames: [crypto(800, PQ_HELLO.subarray(800))] }))), 'bad_value');
    const c = new ClientInitialAssembler();
    unwrap(c.push(d1));
    assert.equal(errKind(c.push(encodeClientInitial({ version: QUIC_V2, dcid: DCID, scid: SCID, pn: 2, frames: [crypto(800, PQ_HELLO.subarray(800))] }))), 'bad_value');
  });

  it('errors are final', () => {
    const a = new ClientInitialAssembler();
    assert.equal(errKind(a.push(Buffer.alloc(10))), 'bad_value');
    const good = encodeClientInitial({ version: QUIC_V1, dcid: DCID, scid: SCID, pn: 0, frames: [crypto(0, hello)] });
    assert.equal(errKind(a.push(good)), 'bad_value');
  });

  it('what is not a decodable client Initial is a typed error', () => {
    const ok = encodeClientInitial({ version: QUIC_V1, dcid: DCID, scid: SCID, pn: 0, frames: [crypto(0, hello)] });
    assert.equal(errKind(parseClientInitial(ok.subarray(0, 1199))), 'bad_value');
    assert.equal(complete(parseClientInitial(ok.subarray(0, ok.length), { minDatagramSize: 0 })).sni, 'svc.example.org');
    const corrupt = Buffer.from(ok);
    corrupt[600]! ^= 0x80;
    assert.equal(errKind(parseClientInitial(corrupt)), 'decrypt_failed');

    const unknown = Buffer.from(ok);
    unknown.writeUInt32BE(0x1a2a3a4a, 1);
    const u = parseClientInitial(unknown);
    assert.equal(errKind(u), 'unsupported');
    if (!u.ok) assert.equal(u.error.version, 0x1a2a3a4a);

    const vn = encodeVersionNegotiation({ dcid: SCID, scid: DCID, versions: [QUIC_V1] });
    assert.equal(errKind(parseClientInitial(vn, { minDatagramSize: 0 })), 'unsupported');
    const hs = Buffer.concat([encodeLongHeader({ version: QUIC_V1, type: 'handshake', dcid: DCID, scid: SCID, pnLength: 1, length: 1181 }), Buffer.alloc(1181)]);
    assert.equal(hs.length, 1200);
    assert.equal(errKind(parseClientInitial(hs)), 'unsupported');
    const short = Buffer.concat([Buffer.from([0x40]), DCID, Buffer.alloc(1191)]);
    assert.equal(errKind(parseClientInitial(short)), 'unsupported');
    const retry = unwrap(encodeRetry({ version: QUIC_V1, dcid: SCID, scid: DCID, token: Buffer.alloc(1100), odcid: DCID }));
    assert.equal(errKind(parseClientInitial(Buffer.concat([retry, Buffer.alloc(1200 - retry.length)]), { minDatagramSize: 0 })), 'unsupported');

    // A frame an Initial may not carry (STREAM, 0x08) inside an authentic packet.
    const keys = unwrap(initialKeys(QUIC_V1, DCID)).client;
    const payload = Buffer.concat([encodeFrames([crypto(0, hello)]), Buffer.from('0800026869', 'hex'), Buffer.alloc(900)]);
    const header = Buffer.concat([
      encodeLongHeader({ version: QUIC_V1, type: 'initial', dcid: DCID, scid: SCID, pnLength: 1, length: 1 + payload.length + 16 }), Buffer.from([0]),
    ]);
    const stream = protectPacket(header, header.length - 1, 0, payload, keys);
    assert.equal(errKind(parseClientInitial(stream, { minDatagramSize: 0 })), 'bad_frame');
  });

  it('caps: datagrams, CRYPTO bytes', () => {
    const a = new ClientInitialAssembler({ maxDatagrams: 2 });
    const part = (pn: number) => encodeClientInitial({ version: QUIC_V1, dcid: DCID, scid: SCID, pn, frames: [crypto(0, PQ_HELLO.subarray(0, 10))] });
    unwrap(a.push(part(0)));
    unwrap(a.push(part(1)));
    assert.equal(errKind(a.push(part(2))), 'limit');
    const b = new ClientInitialAssembler({ maxCryptoBytes: 1000 });
    assert.equal(errKind(b.push(encodeClientInitial({ version: QUIC_V1, dcid: DCID, scid: SCID, pn: 0, frames: [crypto(0, PQ_HELLO.subarray(0, 1001))] }))), 'limit');
  });

  it('a CONNECTION_CLOSE in an Initial is reported', () => {
    const dg = encodeClientInitial({
      version: QUIC_V1, dcid: DCID, scid: SCID, pn: 0,
      frames: [crypto(0, hello), { type: 'connection_close', errorCode: 0x0a, frameType: 0, reason: Buffer.from('bye') }],
    });
    const r = complete(parseClientInitial(dg));
    assert.equal(r.connectionClose?.errorCode, 0x0a);
    assert.equal(r.connectionClose?.reason.toString(), 'bye');
  });

  it('Retry built here verifies; a changed token does not', () => {
    const retry = unwrap(encodeRetry({ version: QUIC_V2, dcid: SCID, scid: Buffer.alloc(8, 3), token: Buffer.from('tok'), odcid: DCID }));
    assert.equal(unwrap(verifyRetry(retry, DCID)).token.toString(), 'tok');
    const bad = Buffer.from(retry);
    bad[retry.length - 17]! ^= 1;
    assert.equal(errKind(verifyRetry(bad, DCID)), 'decrypt_failed');
    assert.equal(errKind(verifyRetry(Buffer.concat([Buffer.from([0x40]), Buffer.alloc(30)]), DCID)), 'bad_value');
  });
});
