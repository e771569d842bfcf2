// The IPv6 packet codec against the real world, both ways:
//  (a) frames our builders make are dissected by tshark with good checksums and no warnings;
//  (b) what Linux sends between two namespaces (neighbour discovery, ping -6, a TCP exchange, a
//      UDP datagram answered by port unreachable, MLD) decodes with our codec, checksums verified,
//      and field by field as tshark reads the same capture;
//  (c) the IPv6 text forms agree with glibc's inet_ntop/inet_pton.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { Host } from '../lib/netns.ts';
import { run, stop, waitFor } from '../lib/exec.ts';
import {
  buildIcmpv6EchoFrame, buildNeighborAdvertisement, buildNeighborAdvertisementReply, buildNeighborSolicitation, buildTcp6Frame, buildUdp6Frame,
  formatIpv6, parseFrame, parseIpv6, PcapWriter, readPcap, replaceTcpOptions, verifyChecksums, ICMPV6_NEIGHBOR_ADVERT, ICMPV6_NEIGHBOR_SOLICIT,
  type ParsedFrame,
} from '../../controller/packet/index.ts';

/** tshark expert severities (epan/proto.h): chat 0x200000, note 0x400000, warn 0x600000, error 0x800000. */
const PI_WARN = 0x600000;

interface TsharkFrame {
  protocols: string;
  experts: { severity: number; message: string }[];
  fields: Record<string, string>;
}

const FIELDS = [
  'ipv6.src', 'ipv6.dst', 'ipv6.nxt', 'ipv6.plen', 'ipv6.hlim', 'tcp.srcport', 'tcp.dstport', 'tcp.seq_raw', 'tcp.ack_raw', 'tcp.len',
  'tcp.checksum.status', 'udp.srcport', 'udp.dstport', 'udp.checksum.status', 'icmpv6.type', 'icmpv6.code', 'icmpv6.checksum.status',
  'icmpv6.nd.ns.target_address', 'icmpv6.nd.na.target_address', 'icmpv6.opt.linkaddr',
];

/** Dissects a pcap with checksum validation on; one entry per frame. */
async function tshark(pcap: string): Promise<TsharkFrame[]> {
  const args = ['-r', pcap, '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=|',
    '-e', 'frame.protocols', '-e', '_ws.expert.severity', '-e', '_ws.expert.message', ...FIELDS.flatMap((f) => ['-e', f])];
  const r = await run('tshark', args);
  return r.stdout.split('\n').filter((l) => l.length > 0).map((line) => {
    const [protocols, sev, msg, ...rest] = line.split('\t');
    const sevs = sev ? sev.split('|').map(Number) : [];
    const msgs = msg ? msg.split('|') : [];
    return {
      protocols: protocols!,
      experts: sevs.map((severity, i) => ({ severity, message: msgs[i] ?? '' })),
      fields: Object.fromEntries(FIELDS.map((f, i) => [f, rest[i] ?? ''])),
    };
  });
}

function writePcap(path: string, frames: Buffer[]): void {
  const w = new PcapWriter();
  writeFileSync(path, Buffer.concat([w.header(), ...frames.map((f, i) => w.record(f, 1_700_000_000_000 + i))]));
}

function mustParse(f: Buffer): ParsedFrame {
  const r = parseFrame(f);
  if (!r.ok) assert.fail(`parseFrame: ${r.error.kind} ${r.error.message} in ${f.toString('hex')}`);
  return r.value;
}

function parseIpv6Bytes(s: string): Buffer {
  const r = parseIpv6(s);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

describe('packet codec, IPv6: against tshark, Linux and glibc', function () {
  let dir = '';
  before(() => { dir = mkdtempSync('/tmp/tmt-v6-'); });
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  describe('IPv6 codec vs tshark: frames we build', function () {
    this.timeout(60000);
    const A = { mac: '02:00:00:00:00:0a', ip: '2001:db8::a' };
    const B = { mac: '02:00:00:00:00:0b', ip: '2001:db8::b' };
    const L2 = { ethSrc: A.mac, ethDst: B.mac, ipSrc: A.ip, ipDst: B.ip };
    const tcp = (o: Partial<Parameters<typeof buildTcp6Frame>[0]>) =>
      buildTcp6Frame({ ...L2, srcPort: 40000, dstPort: 5001, seq: 1000, ack: 0, flags: 0, window: 64240, ...o });
    const back = { ethSrc: B.mac, ethDst: A.mac, ipSrc: B.ip, ipDst: A.ip, srcPort: 5001, dstPort: 40000 };
    const syn = tcp({ flags: { syn: true }, options: [{ kind: 'mss', value: 1440 }, { kind: 'sack_permitted' }, { kind: 'timestamp', tsval: 1, tsecr: 0 }, { kind: 'nop' }, { kind: 'wscale', shift: 7 }] });
    const ns = buildNeighborSolicitation({ ethSrc: A.mac, ipSrc: A.ip, target: B.ip });
    const routed = (i: number) => ({ ...L2, ipDst: '2001:db8::99', srcPort: 41000 + i, dstPort: 5001, seq: 1, ack: 0, flags: { syn: true }, window: 1000 });
    const cases: Array<[string, Buffer, string]> = [
      // One consistent TCP conversation, so tshark's sequence analysis has nothing to warn about.
      ['TCP SYN with options', syn, 'eth:ethertype:ipv6:tcp'],
      ['TCP SYN-ACK', buildTcp6Frame({ ...back, seq: 5000, ack: 1001, flags: { syn: true, ack: true }, window: 65160, options: [{ kind: 'mss', value: 1440 }] }), 'eth:ethertype:ipv6:tcp'],
      ['TCP ACK', tcp({ seq: 1001, ack: 5001, flags: { ack: true } }), 'eth:ethertype:ipv6:tcp'],
      ['TCP data (odd length)', tcp({ seq: 1001, ack: 5001, flags: { ack: true, psh: true }, payload: Buffer.from('hello, v6') }), 'eth:ethertype:ipv6:tcp:data'],
      ['TCP data back', buildTcp6Frame({ ...back, seq: 5001, ack: 1010, flags: { ack: true, psh: true }, window: 500, payload: Buffer.from('hi') }), 'eth:ethertype:ipv6:tcp:data'],
      ['TCP FIN', tcp({ seq: 1010, ack: 5003, flags: { ack: true, fin: true } }), 'eth:ethertype:ipv6:tcp'],
      ['SYN with timestamps stripped (replaceTcpOptions)', (() => {
        const r = replaceTcpOptions(tcp({ srcPort: 40100, flags: { syn: true }, options: [{ kind: 'mss', value: 1440 }, { kind: 'timestamp', tsval: 5, tsecr: 0 }] }), [{ kind: 'mss', value: 1440 }]);
        assert.ok(r.ok);
        return r.value;
      })(), 'eth:ethertype:ipv6:tcp'],
      ['TCP over two VLAN tags', tcp({ srcPort: 40200, flags: { syn: true }, vlans: [0x2064, 7] }), 'eth:ethertype:ieee8021ad:ethertype:vlan:ethertype:ipv6:tcp'],
      ['TCP after HBH, Destination, Routing (type 2), Fragment (atomic), AH, Destination', buildTcp6Frame({
        ...routed(0),
        extHeaders: [
          { kind: 'hop_by_hop', options: [{ type: 5, data: Buffer.from([0, 0]) }] },
          { kind: 'destination', options: [{ type: 0x1e, data: Buffer.from([1, 2, 3]) }] },
          { kind: 'routing', routingType: 2, segmentsLeft: 1, addresses: [B.ip] },
          { kind: 'fragment', id: 9 },
          { kind: 'auth', spi: 0x100, seq: 1, icv: Buffer.alloc(12) },
          { kind: 'destination' },
        ],
      }), 'eth:ethertype:ipv6:ipv6.hopopts:ipv6.dstopts:ipv6.routing:ipv6.fraghdr:ah:ipv6.dstopts:tcp'],
      // SRv6: the checksum covers Segment List[0], the last segment, not the current destination.
      ['TCP behind an SRv6 header with segments left', buildTcp6Frame({
        ...routed(1),
        extHeaders: [{ kind: 'routing', routingType: 4, segmentsLeft: 1, data: Buffer.concat([Buffer.from([1, 0, 0, 0]), parseIpv6Bytes(B.ip), parseIpv6Bytes('2001:db8::99')]) }],
      }), 'eth:ethertype:ipv6:ipv6.routing:tcp'],
      ['UDP', buildUdp6Frame({ ...L2, srcPort: 40000, dstPort: 40001, payload: Buffer.from('datagram') }), 'eth:ethertype:ipv6:udp:data'],
      ['UDP with an empty payload', buildUdp6Frame({ ...L2, srcPort: 40002, dstPort: 40003 }), 'eth:ethertype:ipv6:udp'],
      ['ICMPv6 echo request', buildIcmpv6EchoFrame({ ...L2, type: 'request', id: 7, seq: 1, payload: Buffer.from('0123456789abcdef') }), 'eth:ethertype:ipv6:icmpv6:data'],
      ['ICMPv6 echo reply (odd payload)', buildIcmpv6EchoFrame({ ethSrc: B.mac, ethDst: A.mac, ipSrc: B.ip, ipDst: A.ip, type: 'reply', id: 7, seq: 1, payload: Buffer.from('xyz') }), 'eth:ethertype:ipv6:icmpv6:data'],
      ['neighbour solicitation', ns, 'eth:ethertype:ipv6:icmpv6'],
      ['neighbour solicitation for DAD (from ::, no source link-layer option)', buildNeighborSolicitation({ ethSrc: A.mac, ipSrc: '::', target: A.ip }), 'eth:ethertype:ipv6:icmpv6'],
      ['neighbour advertisement answering the solicitation', buildNeighborAdvertisementReply(mustParse(ns), B.mac), 'eth:ethertype:ipv6:icmpv6'],
      ['unsolicited neighbour advertisement from a router, VLAN tagged', buildNeighborAdvertisement({ ethSrc: B.mac, ipSrc: 'fe80::b', router: true, vlans: [100] }), 'eth:ethertype:vlan:ethertype:ipv6:icmpv6'],
    ];

    let dissected: TsharkFrame[] = [];
    before(async () => {
      const pcap = join(dir, 'built.pcap');
      writePcap(pcap, cases.map(([, f]) => f));
      dissected = await tshark(pcap);
      assert.equal(dissected.length, cases.length);
    });

    cases.forEach(([name, frame, protocols], i) => {
      it(name, () => {
        const t = dissected[i]!;
        const p = mustParse(frame);
        assert.equal(t.protocols, protocols);
        // Chat-level notes (a SYN opens a connection) are fine; warnings and errors are not.
        const bad = t.experts.filter((e) => e.severity >= PI_WARN);
        assert.deepEqual(bad, [], `tshark warns: ${JSON.stringify(t.experts)}`);
        const f = t.fields;
        assert.equal(f['ipv6.src'], p.ipv6!.src);
        assert.equal(f['ipv6.dst'], p.ipv6!.dst);
        assert.equal(Number(f['ipv6.plen']), p.ipv6!.payloadLength);
        // checksum.status 1 = "Good" (validated by tshark, not merely present).
        if (p.tcp) {
          assert.equal(f['tcp.checksum.status'], '1');
          assert.deepEqual([Number(f['tcp.seq_raw']), Number(f['tcp.ack_raw']), Number(f['tcp.len'])], [p.tcp.seq, p.tcp.ack, p.payload.length]);
        }
        if (p.udp) assert.equal(f['udp.checksum.status'], '1');
        if (p.icmpv6) {
          assert.equal(f['icmpv6.checksum.status'], '1');
          assert.equal(Number(f['icmpv6.type']), p.icmpv6.type);
          const target = f['icmpv6.nd.ns.target_address'] || f['icmpv6.nd.na.target_address'];
          assert.equal(target || undefined, p.icmpv6.ndTarget);
          assert.equal(f['icmpv6.opt.linkaddr'] || undefined, p.icmpv6.sll ?? p.icmpv6.tll);
        }
        assert.deepEqual(verifyChecksums(frame), { ok: true, value: { ip: true, l4: true, l4Checked: true } });
      });
    });
  });

  describe('IPv6 codec vs Linux: frames captured between two namespaces', function () {
    this.timeout(60000);
    const id = 'tmt' + randomBytes(2).toString('hex');
    const ADDR = { a: 'fd00:6::a', b: 'fd00:6::b' };
    const MAC = { a: '02:06:00:00:00:0a', b: '02:06:00:00:00:0b' };
    const hosts: Host[] = [];
    let frames: Buffer[] = [];
    let parsed: ParsedFrame[] = [];
    let dissected: TsharkFrame[] = [];
    const MESSAGE = 'hello over IPv6, echoed back';

    /** A namespace with eth0 (one end of the pair, already moved in), IPv6 on, no DAD, TX checksum offload off; eth0 up if `up`. */
    async function setUp(h: Host, addr: string, mac: string, up: boolean): Promise<void> {
      const x = (...a: string[]) => h.exec(a);
      await x('sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=0');
      await x('sysctl', '-qw', 'net.ipv6.conf.eth0.disable_ipv6=0');
      // DAD would hold the addresses tentative for a second; 'nodad' below covers the global one.
      await x('sysctl', '-qw', 'net.ipv6.conf.eth0.accept_dad=0');
      await x('ip', 'link', 'set', 'eth0', 'address', mac);
      await x('ip', '-6', 'addr', 'add', `${addr}/64`, 'dev', 'eth0', 'nodad');
      // The veth would otherwise leave TCP/UDP checksums to an offload that never happens on the wire.
      await x('ethtool', '-K', 'eth0', 'tx', 'off');
      await x('ip', 'link', 'set', 'lo', 'up');
      if (up) await x('ip', 'link', 'set', 'eth0', 'up');
    }

    before(async function () {
      for (const tool of ['tcpdump', 'tshark', 'ping', 'ethtool']) {
        const r = await run('which', [tool], { allowFail: true });
        if (r.code !== 0) throw new Error(`${tool} missing: run topo/install-deps.sh`);
      }
      const a = new Host('v6a', `${id}-v6a`, ADDR.a, MAC.a, `${id}-a`);
      const b = new Host('v6b', `${id}-v6b`, ADDR.b, MAC.b, `${id}-b`);
      hosts.push(a, b);
      await run('ip', ['netns', 'add', a.ns]);
      await run('ip', ['netns', 'add', b.ns]);
      // Created in the root namespace with 'tmt' names, so test/cleanup.sh finds them after a crash.
      await run('ip', ['link', 'add', a.peer, 'type', 'veth', 'peer', 'name', b.peer]);
      await run('ip', ['link', 'set', a.peer, 'netns', a.ns]);
      await run('ip', ['link', 'set', b.peer, 'netns', b.ns]);
      await a.exec(['ip', 'link', 'set', a.peer, 'name', 'eth0']);
      await b.exec(['ip', 'link', 'set', b.peer, 'name', 'eth0']);
      await setUp(a, ADDR.a, MAC.a, true);
      // B comes up once A captures: its MLD reports (behind a Hop-by-Hop header) are then on record.
      await setUp(b, ADDR.b, MAC.b, false);

      const pcap = join(dir, 'linux.pcap');
      const dump = a.spawn(['tcpdump', '-i', 'eth0', '-nn', '-U', '--immediate-mode', '-Z', 'root', '-s', '0', '-w', pcap, 'ip6']);
      let dumpErr = '';
      await new Promise<void>((resolve, reject) => {
        dump.stderr!.on('data', (d: Buffer) => { dumpErr += d.toString(); if (dumpErr.includes('listening on')) resolve(); });
        dump.once('exit', (code) => reject(new Error(`tcpdump exited ${code}: ${dumpErr.trim()}`)));
      });

      await b.exec(['ip', 'link', 'set', 'eth0', 'up']);
      await waitFor(async () => (await a.exec(['ip', '-o', 'link', 'show', 'eth0'])).stdout.includes('LOWER_UP'), 'the veth carrier');

      // Neighbour discovery happens on the first ping; echo request/reply after it.
      await a.exec(['ping', '-6', '-n', '-c', '3', '-i', '0.2', '-W', '2', ADDR.b]);

      // A TCP exchange: B echoes what A sends, then both sides close.
      const node = process.execPath;
      const server = b.spawn([node, '-e', `require('net').createServer((s) => { s.on('data', (d) => s.write(d)); s.on('end', () => s.end()); }).listen(5001, '${ADDR.b}')`]);
      await waitFor(async () => (await b.exec(['ss', '-Hltn', 'sport = :5001'])).stdout.includes('5001'), 'the echo server to listen');
      const client = await a.exec([node, '-e',
        `const s = require('net').connect(5001, '${ADDR.b}', () => s.end(${JSON.stringify(MESSAGE)})); let got = ''; s.on('data', (d) => { got += d; }); s.on('close', () => process.stdout.write(got));`], { timeoutMs: 10000 });
      assert.equal(client.stdout, MESSAGE);
      await stop(server, 1000);

      // A UDP datagram to a closed port: B answers with ICMPv6 port unreachable quoting it.
      await a.exec([node, '-e', `const s = require('dgram').createSocket('udp6'); s.send('knock', 5002, '${ADDR.b}', () => setTimeout(() => s.close(), 300));`], { timeoutMs: 10000 });

      // Let the last packets reach the capture file, then stop tcpdump.
      await new Promise((r) => setTimeout(r, 300));
      const gone = once(dump, 'exit');
      dump.kill('SIGINT');
      await gone;
      const r = readPcap(readFileSync(pcap));
      if (!r.ok) throw new Error(`capture unreadable: ${r.error.message}`);
      frames = r.value.frames.map((f) => f.data);
      parsed = frames.map(mustParse);
      dissected = await tshark(pcap);
    });

    after(async () => {
      for (const h of hosts) {
        await Promise.all([...h.children].map((c) => stop(c, 1000)));
        const pids = await run('ip', ['netns', 'pids', h.ns], { allowFail: true });
        for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) { try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ } }
        await run('ip', ['netns', 'del', h.ns], { allowFail: true });
        // Only left in the root namespace if setup failed before moving it.
        await run('ip', ['link', 'del', h.peer], { allowFail: true });
      }
    });

    it('every captured frame decodes, and every checksum over IPv6 verifies', () => {
      assert.ok(frames.length >= 10, `only ${frames.length} frames captured`);
      assert.equal(parsed.length, frames.length);
      for (const [i, p] of parsed.entries()) {
        assert.ok(p.ipv6, `frame ${i} is not IPv6`);
        if (p.tcp || p.udp || p.icmpv6) {
          assert.deepEqual(verifyChecksums(frames[i]!), { ok: true, value: { ip: true, l4: true, l4Checked: true } }, `frame ${i}`);
        }
        if (p.icmpv6) assert.equal(p.icmpv6.checksumOk, true, `frame ${i}`);
        if (p.tcp) assert.equal(p.tcp.optionsError, undefined);
        if (p.icmpv6?.ndOptions) assert.equal(p.icmpv6.ndOptionsError, undefined);
      }
    });

    it('neighbour solicitation and advertisement, with their link-layer address options', () => {
      const ns = parsed.find((p) => p.icmpv6?.type === ICMPV6_NEIGHBOR_SOLICIT && p.icmpv6.ndTarget === ADDR.b);
      assert.ok(ns, 'no NS for B captured');
      assert.equal(ns.ipv6!.hopLimit, 255);
      assert.equal(ns.icmpv6!.sll, MAC.a);
      const na = parsed.find((p) => p.icmpv6?.type === ICMPV6_NEIGHBOR_ADVERT && p.icmpv6.ndTarget === ADDR.b);
      assert.ok(na, 'no NA from B captured');
      assert.equal(na.ipv6!.hopLimit, 255);
      assert.equal(na.icmpv6!.na!.solicited, true);
      assert.equal(na.icmpv6!.tll ?? na.eth.src, MAC.b);
      // What our codec would have answered is what Linux answered, up to the options Linux chose.
      const ours = mustParse(buildNeighborAdvertisementReply(ns, MAC.b));
      assert.equal(ours.ipv6!.dst, na.ipv6!.dst);
      assert.equal(ours.icmpv6!.ndTarget, na.icmpv6!.ndTarget);
    });

    it('ping -6: echo requests and replies', () => {
      const req = parsed.filter((p) => p.icmpv6?.type === 128 && p.ipv6!.src === ADDR.a);
      const rep = parsed.filter((p) => p.icmpv6?.type === 129 && p.ipv6!.src === ADDR.b);
      assert.equal(req.length, 3);
      assert.equal(rep.length, 3);
      assert.deepEqual(rep.map((p) => p.icmpv6!.echo!.seq), req.map((p) => p.icmpv6!.echo!.seq));
      assert.ok(req.every((p) => p.payload.length === 56), 'ping -6 sends 56 data bytes');
    });

    it('TCP: SYN, SYN-ACK, data both ways, FIN both ways', () => {
      const segs = parsed.filter((p) => p.tcp && (p.tcp.srcPort === 5001 || p.tcp.dstPort === 5001));
      const syn = segs.find((p) => p.tcp!.flagSet.syn && !p.tcp!.flagSet.ack);
      const synAck = segs.find((p) => p.tcp!.flagSet.syn && p.tcp!.flagSet.ack);
      assert.ok(syn && synAck, 'handshake not captured');
      assert.equal(syn.ipv6!.src, ADDR.a);
      assert.equal(synAck.tcp!.ack, (syn.tcp!.seq + 1) >>> 0);
      assert.ok(syn.tcp!.options.some((o) => o.kind === 'mss'), 'Linux SYN carries an MSS');
      const data = (from: string) => Buffer.concat(segs.filter((p) => p.ipv6!.src === from).map((p) => p.payload)).toString();
      assert.equal(data(ADDR.a), MESSAGE);
      assert.equal(data(ADDR.b), MESSAGE);
      assert.ok(segs.some((p) => p.tcp!.flagSet.fin && p.ipv6!.src === ADDR.a));
      assert.ok(segs.some((p) => p.tcp!.flagSet.fin && p.ipv6!.src === ADDR.b));
    });

    it('UDP datagram, and the ICMPv6 port unreachable quoting it', () => {
      const udp = parsed.find((p) => p.udp?.dstPort === 5002);
      assert.ok(udp);
      assert.equal(udp.payload.toString(), 'knock');
      const unreach = parsed.find((p) => p.icmpv6?.type === 1 && p.icmpv6.code === 4);
      assert.ok(unreach, 'no port unreachable captured');
      // The quoted packet starts with the offending IPv6 header (after the 4 unused bytes).
      const quoted = unreach.raw.subarray(unreach.l4Offset! + 8, unreach.l4Offset! + 48);
      assert.equal(formatIpv6(quoted, 24), ADDR.b);
    });

    it('every captured frame reads the same in tshark and in our codec', () => {
      assert.equal(dissected.length, parsed.length);
      for (const [i, p] of parsed.entries()) {
        // An ICMPv6 error quotes a packet: tshark lists the quoted headers' fields after the outer ones.
        const f = Object.fromEntries(Object.entries(dissected[i]!.fields).map(([k, v]) => [k, v.split('|')[0]!]));
        const ip = p.ipv6!;
        const what = `frame ${i + 1} (${dissected[i]!.protocols})`;
        assert.equal(f['ipv6.src'], ip.src, what);
        assert.equal(f['ipv6.dst'], ip.dst, what);
        assert.equal(Number(f['ipv6.plen']), ip.payloadLength, what);
        assert.equal(Number(f['ipv6.hlim']), ip.hopLimit, what);
        // The fixed header's Next Header (tshark lists one per header).
        assert.equal(Number(f['ipv6.nxt']), ip.nextHeader, what);
        assert.deepEqual(dissected[i]!.experts.filter((e) => e.severity >= PI_WARN), [], what);
        if (p.tcp) {
          assert.deepEqual([f['tcp.srcport'], f['tcp.dstport'], f['tcp.seq_raw'], f['tcp.ack_raw'], f['tcp.len']].map(Number),
            [p.tcp.srcPort, p.tcp.dstPort, p.tcp.seq, p.tcp.ack, p.payload.length], what);
          assert.equal(f['tcp.checksum.status'], '1', what);
        }
        if (p.udp) {
          assert.deepEqual([Number(f['udp.srcport']), Number(f['udp.dstport'])], [p.udp.srcPort, p.udp.dstPort], what);
          assert.equal(f['udp.checksum.status'], '1', what);
        }
        if (p.icmpv6) {
          assert.deepEqual([Number(f['icmpv6.type']), Number(f['icmpv6.code'])], [p.icmpv6.type, p.icmpv6.code], what);
          assert.equal(f['icmpv6.checksum.status'], '1', what);
          const target = f['icmpv6.nd.ns.target_address'] || f['icmpv6.nd.na.target_address'];
          assert.equal(target || undefined, p.icmpv6.ndTarget, what);
          const lla = f['icmpv6.opt.linkaddr'];
          assert.equal(lla || undefined, p.icmpv6.sll ?? p.icmpv6.tll, what);
        }
      }
    });

    it('MLDv2 reports behind a Hop-by-Hop header (Router Alert); any router solicitation decoded', () => {
      const mld = parsed.filter((p) => p.icmpv6?.type === 143);
      assert.ok(mld.length > 0, 'no MLDv2 report captured');
      for (const p of parsed.filter((x) => x.ipv6!.nextHeader === 0)) {
        const hbh = p.ipv6!.extHeaders[0]!;
        assert.equal(hbh.kind, 'hop_by_hop');
        assert.ok(hbh.kind === 'hop_by_hop' && hbh.options.some((o) => o.type === 5), 'Router Alert option');
        assert.deepEqual([p.ipv6!.protocol, p.ipv6!.hopLimit, p.icmpv6?.checksumOk], [58, 1, true]);
      }
      assert.ok(mld.every((p) => p.ipv6!.nextHeader === 0));
      // Router solicitations come after a random delay of up to a second: checked when present.
      for (const rs of parsed.filter((p) => p.icmpv6?.type === 133)) {
        assert.deepEqual([rs.ipv6!.dst, rs.ipv6!.hopLimit, rs.icmpv6!.ndOptionsError], ['ff02::2', 255, undefined]);
      }
    });
  });

  describe('IPv6 text forms vs glibc (inet_ntop / inet_pton via python3)', function () {
    this.timeout(60000);

    async function python(script: string, input: string): Promise<string[]> {
      const r = await run('python3', ['-c', script], { input });
      return r.stdout.split('\n').slice(0, -1);
    }

    /** Random addresses with runs of zero groups and the IPv4-mapped/compatible shapes glibc prints specially. */
    function randomAddresses(n: number): Buffer[] {
      const out: Buffer[] = [];
      for (let i = 0; i < n; i++) {
        const b = randomBytes(16);
        const zeros = randomBytes(8);
        for (let g = 0; g < 8; g++) if (zeros[g]! < 160) b.writeUInt16BE(0, 2 * g);
        if (i % 7 === 0) { b.fill(0, 0, 10); b.writeUInt16BE(0xffff, 10); }
        if (i % 11 === 0) b.fill(0, 0, 12);
        out.push(b);
      }
      return out;
    }

    it('formatIpv6 prints what inet_ntop prints', async () => {
      const addrs = randomAddresses(4000);
      const theirs = await python('import socket,sys\nfor l in sys.stdin: print(socket.inet_ntop(socket.AF_INET6, bytes.fromhex(l.strip())))',
        addrs.map((a) => a.toString('hex')).join('\n') + '\n');
      const diffs = addrs.map((a, i) => [formatIpv6(a), theirs[i]]).filter(([ours, libc]) => ours !== libc);
      assert.deepEqual(diffs.slice(0, 10), []);
    });

    it('parseIpv6 accepts exactly what inet_pton accepts, with the same bytes', async () => {
      // Strings from a grammar that makes both valid and subtly invalid forms.
      const pick = <T>(a: readonly T[]): T => a[randomBytes(1)[0]! % a.length]!;
      const group = () => pick(['0', '1', 'ff', 'FFFF', '0db8', '00000', 'g1', '', '12345', 'abc']);
      const quad = () => Array.from({ length: pick([3, 4, 4, 4, 5]) }, () => pick(['0', '1', '10', '255', '256', '01', '192'])).join('.');
      const strings: string[] = ['::', '::1', '1::', ':::', '1::2::3', '::ffff:1.2.3.4', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8'];
      // Valid addresses written every way RFC 4291 allows, some then damaged by one character.
      for (const a of randomAddresses(2000)) {
        const groups = Array.from({ length: 8 }, (_, g) => a.readUInt16BE(2 * g).toString(16).padStart(pick([1, 2, 4]), '0')).map((x) => (pick([true, false]) ? x.toUpperCase() : x));
        let text = groups.join(':');
        if (pick([true, false])) text = groups.slice(0, 6).join(':') + ':' + [...a.subarray(12)].join('.');
        const zeroRun = /(^|:)(0+:)+0+(:|$)/.exec(text);
        if (zeroRun && pick([true, true, false])) text = text.slice(0, zeroRun.index) + '::' + text.slice(zeroRun.index + zeroRun[0].length);
        if (pick([false, false, false, true])) {
          const at = randomBytes(1)[0]! % (text.length + 1);
          text = text.slice(0, at) + pick([':', '.', '0', 'f', '', 'x']) + text.slice(at + pick([0, 1]));
        }
        strings.push(text);
      }
      for (let i = 0; i < 3000; i++) {
        const n = pick([1, 2, 3, 5, 6, 7, 8, 9]);
        const groups = Array.from({ length: n }, group);
        if (pick([true, false])) groups.splice(pick([0, 1, 2, n]), 0, '');
        let s = groups.join(':');
        if (pick([false, false, true])) s = s + (s.endsWith(':') || s === '' ? '' : ':') + quad();
        if (pick([false, false, false, true])) s = s.replace(/^:?/, '::');
        strings.push(s);
      }
      const theirs = await python(
        'import socket,sys\nfor l in sys.stdin:\n  s=l.rstrip("\\n")\n  try: print(socket.inet_pton(socket.AF_INET6, s).hex())\n  except OSError: print("invalid")',
        strings.join('\n') + '\n',
      );
      const diffs: string[] = [];
      strings.forEach((s, i) => {
        const r = parseIpv6(s);
        const ours = r.ok ? r.value.toString('hex') : 'invalid';
        if (ours !== theirs[i]) diffs.push(`${JSON.stringify(s)}: ours ${ours}, glibc ${theirs[i]}`);
      });
      assert.deepEqual(diffs.slice(0, 10), []);
      assert.ok(strings.filter((s) => parseIpv6(s).ok).length > 1500, 'enough valid forms were tried');
    });
  });
});
