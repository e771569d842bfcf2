// Known byte vectors: the real capture test/fixtures/ids/migrate.pcap (from the design's IDS samples), a Linux-style SYN,
// ARP and VLAN frames checked field by field.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  buildArpFrame,
  buildArpReply,
  buildIcmpEchoFrame,
  buildTcpFrame,
  buildUdpFrame,
  decodeTcpOptions,
  encodeTcpOptions,
  findOption,
  formatTcpFlags,
  parseFrame,
  readPcap,
  replaceTcpOptions,
  stripTcpOptions,
  stripTcpOptionsFromFrame,
  verifyChecksums,
  PacketBuildError,
  type ParsedFrame,
  type TcpOption,
} from '../../controller/packet/index.ts';

const PCAP = new URL('../fixtures/ids/migrate.pcap', import.meta.url).pathname;

function parsed(buf: Buffer): ParsedFrame {
  const r = parseFrame(buf);
  if (!r.ok) assert.fail(`parseFrame failed: ${r.error.kind} ${r.error.message}`);
  return r.value;
}

const C = { mac: '02:00:00:00:00:02', ip: '10.0.0.2', port: 40000 };
const S = { mac: '02:00:00:00:00:01', ip: '10.0.0.1', port: 5001 };

describe('packet codec: migrate.pcap (real capture)', () => {
  const r = readPcap(readFileSync(PCAP));
  if (!r.ok) throw new Error(`readPcap: ${r.error.message}`);
  const frames = r.value.frames;

  it('has 8 Ethernet frames with microsecond timestamps 1 ms apart', () => {
    assert.equal(r.value.linkType, 1);
    assert.equal(r.value.snaplen, 65535);
    assert.equal(frames.length, 8);
    frames.forEach((f, i) => {
      assert.equal(f.tsSec, 1700000000);
      assert.equal(f.tsUsec, i * 1000);
      assert.equal(f.origLen, f.data.length);
    });
  });

  it('decodes the handshake, the request and the FIN exchange', () => {
    const p = frames.map((f) => parsed(f.data));
    const summary = p.map((x) => [
      `${x.ipv4!.src}:${x.tcp!.srcPort}>${x.ipv4!.dst}:${x.tcp!.dstPort}`,
      formatTcpFlags(x.tcp!.flags),
      x.tcp!.seq,
      x.tcp!.ack,
      x.payload.length,
    ]);
    const c2s = '10.0.0.2:40000>10.0.0.1:5001';
    const s2c = '10.0.0.1:5001>10.0.0.2:40000';
    assert.deepEqual(summary, [
      [c2s, 'S', 1000, 0, 0],
      [s2c, 'S.', 5000, 1001, 0],
      [c2s, '.', 1001, 5001, 0],
      [c2s, 'P.', 1001, 5001, 31],
      [s2c, '.', 5001, 1032, 0],
      [c2s, 'F.', 1032, 5001, 0],
      [s2c, 'F.', 5001, 1033, 0],
      [c2s, '.', 1033, 5002, 0],
    ]);
    const syn = p[0]!;
    assert.deepEqual(syn.eth, { dst: S.mac, src: C.mac, ethType: 0x0800, vlans: [], tcis: [], tpids: [], l3Offset: 14 });
    assert.deepEqual(syn.tcp!.flagSet, { fin: false, syn: true, rst: false, psh: false, ack: false, urg: false, ece: false, cwr: false });
    assert.deepEqual(syn.tcp!.options, [], 'the captured SYN carries no TCP options');
    assert.equal(syn.tcp!.headerLength, 20);
    assert.equal(syn.tcp!.window, 8192);
    assert.equal(syn.tcp!.checksum, 0xc82e);
    assert.equal(syn.ipv4!.ttl, 64);
    assert.equal(syn.ipv4!.id, 1);
    assert.equal(syn.ipv4!.checksum, 0x66cd);
    assert.equal(syn.l3Offset, 14);
    assert.equal(syn.l4Offset, 34);
    assert.equal(p[3]!.payload.toString('latin1'), 'please migrate this connection\n');
    assert.equal(p[3]!.tcp!.flagSet.psh, true);
    for (const f of frames) assert.deepEqual(verifyChecksums(f.data), { ok: true, value: { ip: true, l4: true, l4Checked: true } });
  });

  it('buildTcpFrame reproduces every captured frame byte for byte', () => {
    for (const f of frames) {
      const x = parsed(f.data);
      const built = buildTcpFrame({
        ethSrc: x.eth.src,
        ethDst: x.eth.dst,
        ipSrc: x.ipv4!.src,
        ipDst: x.ipv4!.dst,
        srcPort: x.tcp!.srcPort,
        dstPort: x.tcp!.dstPort,
        seq: x.tcp!.seq,
        ack: x.tcp!.ack,
        flags: x.tcp!.flagSet,
        window: x.tcp!.window,
        payload: x.payload,
        ipId: 1,
        df: false,
      });
      assert.equal(built.toString('hex'), f.data.toString('hex'));
    }
  });
});

// A Linux 6.x SYN's option area: MSS 1460, SACK-permitted, timestamps, NOP, wscale 7.
const LINUX_SYN_OPTS = Buffer.from('020405b40402080a0001e2400000000001030307', 'hex');

describe('packet codec: TCP options', () => {
  it('decodes a Linux SYN option area and re-encodes it byte for byte', () => {
    const r = decodeTcpOptions(LINUX_SYN_OPTS);
    assert.ok(r.ok);
    assert.deepEqual(r.value, [
      { kind: 'mss', value: 1460 },
      { kind: 'sack_permitted' },
      { kind: 'timestamp', tsval: 123456, tsecr: 0 },
      { kind: 'nop' },
      { kind: 'wscale', shift: 7 },
    ]);
    const e = encodeTcpOptions(r.value);
    assert.ok(e.ok);
    assert.equal(e.value.toString('hex'), LINUX_SYN_OPTS.toString('hex'));
    assert.deepEqual(findOption(r.value, 'wscale'), { kind: 'wscale', shift: 7 });
    assert.equal(findOption(r.value, 'sack'), undefined);
  });

  it('SACK with 1-4 blocks, unknown kinds and odd-length known kinds survive byte-exact', () => {
    const vectors = [
      '0101050a000003e8000007d0', // NOP NOP SACK(1 block)
      '0101052200000001000000020000000300000004000000050000000600000007000000080000', // NOP NOP SACK(4 blocks) EOL + 1 pad byte
      '1e0401020101', // MPTCP-like unknown kind 30
      '020305000000000000000000', // MSS with wrong length 3 -> kept as unknown
      '22020000', // TFO cookie request (kind 34, len 2) + padding
      '00000000', // EOL only
      '0000000000000000', // EOL + longer-than-needed zero padding
      '01000102', // NOP, EOL, non-zero garbage after EOL
    ];
    for (const hex of vectors) {
      const raw = Buffer.from(hex, 'hex');
      const r = decodeTcpOptions(raw);
      assert.ok(r.ok, `${hex}: ${!r.ok && r.error.message}`);
      const e = encodeTcpOptions(r.value);
      assert.ok(e.ok, hex);
      // Encoded length is padded to 4; compare with the raw area padded the same way.
      const want = Buffer.concat([raw, Buffer.alloc((4 - (raw.length % 4)) % 4)]);
      assert.equal(e.value.toString('hex'), want.toString('hex'), hex);
    }
    const sack4 = decodeTcpOptions(Buffer.from('0101052200000001000000020000000300000004000000050000000600000007000000080000', 'hex'));
    assert.ok(sack4.ok);
    assert.deepEqual(findOption(sack4.value, 'sack')?.blocks, [
      { left: 1, right: 2 },
      { left: 3, right: 4 },
      { left: 5, right: 6 },
      { left: 7, right: 8 },
    ]);
    const mss3 = decodeTcpOptions(Buffer.from('020305000000000000000000', 'hex'));
    assert.ok(mss3.ok);
    assert.deepEqual(mss3.value[0], { kind: 'unknown', type: 2, data: Buffer.from([5]) });
  });

  it('rejects len < 2 and overruns like tcp_parse_options', () => {
    for (const hex of ['0200', '0201', '02', '0204', '01010a0c0000', '080a00000000']) {
      const r = decodeTcpOptions(Buffer.from(hex, 'hex'));
      assert.equal(r.ok, false, hex);
      if (!r.ok) assert.equal(r.error.kind, 'bad_options');
    }
  });

  it('encodeTcpOptions refuses more than 40 bytes and invalid values', () => {
    const ts: TcpOption = { kind: 'timestamp', tsval: 1, tsecr: 2 };
    assert.equal(encodeTcpOptions([ts, ts, ts, ts, ts]).ok, false);
    assert.equal(encodeTcpOptions([{ kind: 'mss', value: 70000 }]).ok, false);
    assert.equal(encodeTcpOptions([{ kind: 'sack', blocks: [] }]).ok, false);
    assert.equal(encodeTcpOptions([{ kind: 'unknown', type: 1, data: Buffer.alloc(2) }]).ok, false);
  });

  it('stripTcpOptions removes timestamps and SACK-permitted with their alignment NOPs', () => {
    const r = decodeTcpOptions(LINUX_SYN_OPTS);
    assert.ok(r.ok);
    const s = stripTcpOptions(r.value, ['timestamp', 'sack_permitted']);
    assert.deepEqual(s, [{ kind: 'mss', value: 1460 }, { kind: 'nop' }, { kind: 'wscale', shift: 7 }]);
    const e = encodeTcpOptions(s);
    assert.ok(e.ok);
    assert.equal(e.value.toString('hex'), '020405b401030307');
    // NOP NOP TS: the NOPs only aligned the timestamp, so they go too.
    const r2 = decodeTcpOptions(Buffer.from('0101080a0000000100000002', 'hex'));
    assert.ok(r2.ok);
    assert.deepEqual(stripTcpOptions(r2.value, ['timestamp']), []);
    const tfo = decodeTcpOptions(Buffer.from('020405b4220a0102030405060708', 'hex'));
    assert.ok(tfo.ok);
    assert.deepEqual(stripTcpOptions(tfo.value, [], { unknownTypes: [34] }), [{ kind: 'mss', value: 1460 }]);
  });

  it('stripTcpOptionsFromFrame shortens the header and keeps checksums valid', () => {
    const syn = buildTcpFrame({
      ethSrc: C.mac, ethDst: S.mac, ipSrc: C.ip, ipDst: S.ip, srcPort: C.port, dstPort: S.port,
      seq: 0xfffffff0, ack: 0, flags: { syn: true, ece: true, cwr: true }, window: 64240, optionsRaw: LINUX_SYN_OPTS, vlans: [10],
    });
    const r = stripTcpOptionsFromFrame(syn, ['timestamp', 'sack_permitted']);
    assert.ok(r.ok);
    const p = parsed(r.value);
    assert.deepEqual(p.tcp!.options, [{ kind: 'mss', value: 1460 }, { kind: 'nop' }, { kind: 'wscale', shift: 7 }]);
    assert.equal(p.tcp!.headerLength, 28);
    assert.equal(p.ipv4!.totalLength, 20 + 28);
    assert.equal(p.tcp!.seq, 0xfffffff0);
    assert.equal(p.tcp!.flags, 0x0c2);
    assert.deepEqual(p.eth.vlans, [10]);
    assert.deepEqual(verifyChecksums(r.value), { ok: true, value: { ip: true, l4: true, l4Checked: true } });
    const orig = decodeTcpOptions(LINUX_SYN_OPTS);
    assert.ok(orig.ok);
    const back = replaceTcpOptions(r.value, orig.value);
    assert.ok(back.ok);
    assert.equal(back.value.toString('hex'), syn.toString('hex'));
    assert.equal(stripTcpOptionsFromFrame(buildArpFrame({ op: 'request', ethSrc: C.mac, senderIp: C.ip, targetIp: S.ip }), ['timestamp']).ok, false);
  });

  it('malformed options do not fail parseFrame; they are reported in optionsError', () => {
    const f = buildTcpFrame({
      ethSrc: C.mac, ethDst: S.mac, ipSrc: C.ip, ipDst: S.ip, srcPort: 1, dstPort: 2, seq: 1, ack: 2,
      flags: { ack: true }, window: 100, optionsRaw: Buffer.from('0101050c00000001', 'hex'),
    });
    const p = parsed(f);
    assert.equal(p.tcp!.optionsError?.kind, 'bad_options');
    assert.deepEqual(p.tcp!.options, []);
    assert.equal(p.tcp!.optionsRaw.toString('hex'), '0101050c00000001');
  });
});

describe('packet codec: ARP, VLAN, UDP, ICMP, padding', () => {
  it('ARP request → reply (Ethernet/IPv4), fields and wire bytes', () => {
    const req = buildArpFrame({ op: 'request', ethSrc: C.mac, senderIp: C.ip, targetIp: S.ip });
    assert.equal(
      req.toString('hex'),
      'ffffffffffff' + '020000000002' + '0806' + '0001080006040001' + '020000000002' + '0a000002' + '000000000000' + '0a000001',
    );
    const p = parsed(req);
    assert.deepEqual(p.arp, {
      htype: 1, ptype: 0x0800, hlen: 6, plen: 4, op: 1,
      senderMac: C.mac, senderIp: C.ip, targetMac: '00:00:00:00:00:00', targetIp: S.ip,
    });
    const rep = parsed(buildArpReply(p, S.mac));
    assert.equal(rep.eth.dst, C.mac);
    assert.equal(rep.eth.src, S.mac);
    assert.deepEqual(rep.arp, {
      htype: 1, ptype: 0x0800, hlen: 6, plen: 4, op: 2,
      senderMac: S.mac, senderIp: S.ip, targetMac: C.mac, targetIp: C.ip,
    });
    assert.throws(() => buildArpReply(rep, S.mac), PacketBuildError);
  });

  it('parses ARP padded to 60 bytes and with two VLAN tags', () => {
    const req = buildArpFrame({ op: 'request', ethSrc: C.mac, senderIp: C.ip, targetIp: S.ip, vlans: [0x2064, 7] });
    const padded = Buffer.concat([req, Buffer.alloc(60 - Math.min(60, req.length))]);
    const p = parsed(padded);
    assert.deepEqual(p.eth.vlans, [100, 7]);
    assert.deepEqual(p.eth.tcis, [0x2064, 7]);
    assert.deepEqual(p.eth.tpids, [0x88a8, 0x8100]);
    assert.equal(p.l3Offset, 22);
    assert.equal(p.arp?.targetIp, S.ip);
    const rep = parsed(buildArpReply(p, S.mac));
    assert.deepEqual(rep.eth.tcis, [0x2064, 7]);
  });

  it('three VLAN tags are unsupported; 802.3 length frames parse as L2 only; IPv6 is decoded (test/unit/packet-ipv6*)', () => {
    const three = Buffer.from('ffffffffffff020000000002' + '81000001' + '81000002' + '81000003' + '0800' + '00'.repeat(20), 'hex');
    const r = parseFrame(three);
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.error.kind, 'unsupported');
    const v6 = parseFrame(Buffer.from('333300000001020000000002' + '86dd' + '60000000', 'hex'));
    assert.equal(!v6.ok && v6.error.kind, 'truncated');
    const llc = parsed(Buffer.from('0180c2000000020000000002' + '0026' + '424203000000', 'hex'));
    assert.equal(llc.eth.ethType, 0x26);
    assert.equal(llc.payload.length, 6);
  });

  it('Ethernet padding after a short TCP segment is not payload', () => {
    const f = buildTcpFrame({ ethSrc: C.mac, ethDst: S.mac, ipSrc: C.ip, ipDst: S.ip, srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: { rst: true }, window: 0 });
    const p = parsed(Buffer.concat([f, Buffer.from('deadbeefcafe', 'hex')]));
    assert.equal(p.payload.length, 0);
    assert.deepEqual(verifyChecksums(Buffer.concat([f, Buffer.alloc(6, 0xff)])).ok, true);
  });

  it('UDP and ICMP echo build/parse with valid checksums', () => {
    const u = buildUdpFrame({ ethSrc: C.mac, ethDst: S.mac, ipSrc: C.ip, ipDst: S.ip, srcPort: 5353, dstPort: 53, payload: Buffer.from('abc') });
    const pu = parsed(u);
    assert.deepEqual(pu.udp && { ...pu.udp, checksum: 0 }, { srcPort: 5353, dstPort: 53, length: 11, checksum: 0 });
    assert.equal(pu.payload.toString(), 'abc');
    assert.deepEqual(verifyChecksums(u), { ok: true, value: { ip: true, l4: true, l4Checked: true } });
    const i = buildIcmpEchoFrame({ ethSrc: C.mac, ethDst: S.mac, ipSrc: C.ip, ipDst: S.ip, type: 'request', id: 0x1234, seq: 7, payload: Buffer.from('ping') });
    const pi = parsed(i);
    assert.equal(pi.icmp?.type, 8);
    assert.deepEqual(pi.icmp?.echo, { id: 0x1234, seq: 7 });
    assert.equal(pi.icmp?.checksumOk, true);
    assert.equal(pi.payload.toString(), 'ping');
  });

  it('IPv4 options are kept and a fragment is not decoded past IPv4', () => {
    const f = buildTcpFrame({
      ethSrc: C.mac, ethDst: S.mac, ipSrc: C.ip, ipDst: S.ip, srcPort: 1, dstPort: 2, seq: 3, ack: 4,
      flags: 0x18, window: 9, ipOptions: Buffer.from('94040000', 'hex'), payload: Buffer.from('x'),
    });
    const p = parsed(f);
    assert.equal(p.ipv4!.headerLength, 24);
    assert.equal(p.ipv4!.options.toString('hex'), '94040000');
    assert.equal(p.l4Offset, 38);
    assert.equal(p.payload.toString(), 'x');
    const frag = Buffer.from(f);
    frag.writeUInt16BE(0x2000, 14 + 6); // MF
    const pf = parsed(frag);
    assert.equal(pf.ipv4!.isFragment, true);
    assert.equal(pf.tcp, undefined);
  });

  it('builders reject bad addresses and ranges with PacketBuildError', () => {
    const base = { ethSrc: C.mac, ethDst: S.mac, ipSrc: C.ip, ipDst: S.ip, srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: 0, window: 1 };
    assert.throws(() => buildTcpFrame({ ...base, ethSrc: '02:00:00:00:00' }), PacketBuildError);
    assert.throws(() => buildTcpFrame({ ...base, ipDst: '10.0.0.256' }), PacketBuildError);
    assert.throws(() => buildTcpFrame({ ...base, ipDst: '010.0.0.1' }), PacketBuildError);
    assert.throws(() => buildTcpFrame({ ...base, srcPort: 65536 }), PacketBuildError);
    assert.throws(() => buildTcpFrame({ ...base, seq: -1 }), PacketBuildError);
    assert.throws(() => buildTcpFrame({ ...base, optionsRaw: Buffer.alloc(3) }), PacketBuildError);
    assert.throws(() => buildUdpFrame({ ...base, payload: Buffer.alloc(70000) }), PacketBuildError);
    // Upper-case MACs are accepted on input and normalised to lower case on output.
    assert.equal(parsed(buildTcpFrame({ ...base, ethSrc: 'AA:BB:CC:DD:EE:0F' })).eth.src, 'aa:bb:cc:dd:ee:0f');
  });
});
