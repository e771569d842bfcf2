// pcap writer/reader, checked against a real tool: tcpdump reads what PcapFile writes and
// reports the expected addresses, sequence numbers and correct checksums, including for
// frames rewritten in place by the incremental-checksum helpers.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildTcpFrame,
  buildUdpFrame,
  parseFrame,
  PcapFile,
  PcapWriter,
  readPcap,
  rewriteEthDst,
  rewriteIpv4Dst,
  rewriteL4DstPort,
  shiftTcpAck,
  shiftTcpSeq,
  rewriteIpv4Src,
  rewriteL4SrcPort,
} from '../../controller/packet/index.ts';

const C = { mac: '02:00:00:00:00:02', ip: '10.0.0.2', port: 40000 };
const S1 = { mac: '02:00:00:00:00:01', ip: '10.0.0.1', port: 5001 };
const S2 = { mac: '02:00:00:00:00:03', ip: '10.0.0.3', port: 5002 };

function tcpdump(file: string): string {
  // -S: absolute sequence numbers; -vv: checksum verification (UDP needs two v); -e: MACs.
  return execFileSync('tcpdump', ['-r', file, '-nn', '-vv', '-S', '-e'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('packet codec: pcap', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'packet-pcap-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('PcapFile output is read by tcpdump with correct checksums, including rewritten frames', async () => {
    const file = join(dir, 'handoff.pcap');
    const pcap = await PcapFile.open(file);
    const syn = buildTcpFrame({
      ethSrc: C.mac, ethDst: S1.mac, ipSrc: C.ip, ipDst: S1.ip, srcPort: C.port, dstPort: S1.port,
      seq: 4294967000, ack: 0, flags: { syn: true }, window: 64240,
      options: [{ kind: 'mss', value: 1460 }, { kind: 'sack_permitted' }, { kind: 'nop' }, { kind: 'wscale', shift: 7 }],
    });
    // The client's data segment as it will reach S2: rewritten in place like the datapath does.
    const data = buildTcpFrame({
      ethSrc: C.mac, ethDst: S1.mac, ipSrc: C.ip, ipDst: S1.ip, srcPort: C.port, dstPort: S1.port,
      seq: 4294967001, ack: 1001, flags: { psh: true, ack: true }, window: 502,
      options: [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'sack', blocks: [{ left: 2001, right: 3001 }] }],
      payload: Buffer.from('please migrate this connection\n'),
    });
    assert.ok(rewriteEthDst(data, S2.mac).ok);
    assert.ok(rewriteIpv4Dst(data, S2.ip).ok);
    assert.ok(rewriteL4DstPort(data, S2.port).ok);
    assert.ok(shiftTcpAck(data, 0x7fff_0000).ok);
    const reply = buildTcpFrame({
      ethSrc: S2.mac, ethDst: C.mac, ipSrc: S2.ip, ipDst: C.ip, srcPort: S2.port, dstPort: C.port,
      seq: 0x7fff_0000 + 1001, ack: 4294967032, flags: { psh: true, ack: true }, window: 509, payload: Buffer.from('ok\n'),
    });
    assert.ok(rewriteIpv4Src(reply, S1.ip).ok);
    assert.ok(rewriteL4SrcPort(reply, S1.port).ok);
    assert.ok(shiftTcpSeq(reply, -0x7fff_0000).ok);
    const udp = buildUdpFrame({ ethSrc: C.mac, ethDst: S1.mac, ipSrc: C.ip, ipDst: S1.ip, srcPort: 31001, dstPort: 31002, payload: Buffer.from('q') });
    assert.ok(rewriteIpv4Dst(udp, S2.ip).ok);
    for (const [i, f] of [syn, data, reply, udp].entries()) assert.ok(pcap.write(f, 1_700_000_000_000 + i * 1.5));
    assert.equal(pcap.count, 4);
    await pcap.close();
    assert.equal(pcap.write(syn), false, 'write after close is refused');

    const out = tcpdump(file);
    // tcpdump flags a bad IPv4 header checksum as "bad cksum", a bad TCP one as "incorrect".
    assert.doesNotMatch(out, /incorrect|bad cksum|bad udp cksum/, out);
    assert.equal(out.match(/\(correct\)/g)?.length, 3, out);
    assert.match(out, /02:00:00:00:00:02 > 02:00:00:00:00:01/);
    assert.match(out, /10\.0\.0\.2\.40000 > 10\.0\.0\.1\.5001: Flags \[S\], cksum 0x[0-9a-f]{4} \(correct\), seq 4294967000, win 64240, options \[mss 1460,sackOK,nop,wscale 7,eol\]/);
    assert.match(out, /10\.0\.0\.2\.40000 > 10\.0\.0\.3\.5002: Flags \[P\.\], cksum 0x[0-9a-f]{4} \(correct\), seq 4294967001:4294967032, ack 2147419113, win 502, options \[nop,nop,sack 1 \{2147420113:2147421113\}\], length 31/);
    assert.match(out, /10\.0\.0\.1\.5001 > 10\.0\.0\.2\.40000: Flags \[P\.\], cksum 0x[0-9a-f]{4} \(correct\), seq 1001:1004, ack 4294967032, win 509, length 3/);
    assert.match(out, /10\.0\.0\.2\.31001 > 10\.0\.0\.3\.31002: \[udp sum ok\] UDP, length 1/);

    // The reader gets the same frames and timestamps back.
    const r = readPcap(readFileSync(file));
    assert.ok(r.ok);
    assert.deepEqual(r.value.frames.map((f) => [f.tsSec, f.tsUsec]), [[1_700_000_000, 0], [1_700_000_000, 1500], [1_700_000_000, 3000], [1_700_000_000, 4500]]);
    assert.ok(r.value.frames[1]!.data.equals(data));
    const p = parseFrame(r.value.frames[1]!.data);
    assert.ok(p.ok);
    assert.equal(p.value.payload.toString(), 'please migrate this connection\n');
  });

  it('control: tcpdump does report a wrong TCP checksum in our files', async () => {
    const file = join(dir, 'bad.pcap');
    const pcap = await PcapFile.open(file);
    const f = buildTcpFrame({ ethSrc: C.mac, ethDst: S1.mac, ipSrc: C.ip, ipDst: S1.ip, srcPort: 1, dstPort: 2, seq: 1, ack: 0, flags: { syn: true }, window: 1 });
    f[14 + 20 + 4] ^= 0x01; // change seq without fixing the checksum
    pcap.write(f);
    await pcap.close();
    assert.match(tcpdump(file), /incorrect/);
  });

  it('PcapWriter truncates to snaplen and keeps the original length', () => {
    const w = new PcapWriter({ snaplen: 20 });
    const frame = Buffer.alloc(60, 0xab);
    const file = Buffer.concat([w.header(), w.record(frame, 1234.567)]);
    const r = readPcap(file);
    assert.ok(r.ok);
    assert.equal(r.value.snaplen, 20);
    assert.deepEqual(r.value.frames.map((f) => [f.tsSec, f.tsUsec, f.origLen, f.data.length]), [[1, 234567, 60, 20]]);
  });

  it('readPcap reads big-endian and nanosecond files', () => {
    const hdr = Buffer.alloc(24);
    hdr.writeUInt32BE(0xa1b23c4d, 0);
    hdr.writeUInt16BE(2, 4);
    hdr.writeUInt16BE(4, 6);
    hdr.writeUInt32BE(65535, 16);
    hdr.writeUInt32BE(1, 20);
    const rec = Buffer.alloc(16 + 3);
    rec.writeUInt32BE(10, 0);
    rec.writeUInt32BE(123_456_789, 4);
    rec.writeUInt32BE(3, 8);
    rec.writeUInt32BE(3, 12);
    rec.write('abc', 16);
    const r = readPcap(Buffer.concat([hdr, rec]));
    assert.ok(r.ok);
    assert.equal(r.value.nanosecond, true);
    assert.equal(r.value.littleEndian, false);
    assert.deepEqual(r.value.frames.map((f) => [f.tsSec, f.tsUsec, f.data.toString()]), [[10, 123456, 'abc']]);
    const bad = readPcap(Buffer.from('0a0d0d0a' + '00'.repeat(24), 'hex'));
    assert.equal(bad.ok, false);
    if (!bad.ok) assert.equal(bad.error.kind, 'unsupported');
  });

  it('PcapFile.open rejects an unwritable path', async () => {
    const file = join(dir, 'no-such-dir', 'x.pcap');
    await assert.rejects(PcapFile.open(file), /ENOENT/);
    writeFileSync(join(dir, 'plain'), '');
    await assert.rejects(PcapFile.open(join(dir, 'plain', 'x.pcap')));
  });
});
