// tcpdump inside a test namespace, read back with the project's pcap reader and packet codec: what a
// host really sent and received, an oracle independent of the controller's own view.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Host } from './netns.ts';
import { parseFrame, readPcap, seqAdd, seqGt, type ParsedFrame } from '../../controller/packet/index.ts';

export interface Segment {
  src: string; sport: number; dst: string; dport: number;
  seq: number; ack: number; syn: boolean; fin: boolean; rst: boolean; len: number; payload: Buffer;
}

export class Capture {
  private kept?: { t: number; frame: ParsedFrame }[];
  private constructor(private readonly child: ChildProcess, private readonly dir: string) {}

  /** Starts tcpdump on the host's eth0 with a BPF `filter`; resolves once it is capturing. */
  static async start(host: Host, filter: string): Promise<Capture> {
    const dir = mkdtempSync('/tmp/tmt-cap-');
    // --immediate-mode: without it packets wait in the kernel ring for a block timeout, and a capture
    // stopped soon after loses them. -Z root: Debian's tcpdump otherwise drops to a user that cannot
    // write the 0700 directory.
    const child = host.spawn(['tcpdump', '-i', 'eth0', '-nn', '-U', '--immediate-mode', '-Z', 'root', '-B', '8192', '-w', join(dir, 'cap.pcap'), filter]);
    const cap = new Capture(child, dir);
    let err = '';
    try {
      await new Promise<void>((resolve, reject) => {
        child.stderr!.on('data', (d: Buffer) => { err += d.toString(); if (err.includes('listening on')) resolve(); });
        child.once('exit', (code) => reject(new Error(`tcpdump in ${host.name} exited ${code}: ${err.trim()}`)));
      });
    } catch (e) { rmSync(dir, { recursive: true, force: true }); throw e; }
    return cap;
  }

  /** Frames captured so far (tcpdump -U writes each packet as it comes), or all of them once stopped. */
  frames(): ParsedFrame[] { return this.records().map((r) => r.frame); }

  /** Each frame with its capture time (wall clock, ms since the epoch, µs resolution). */
  private records(): { t: number; frame: ParsedFrame }[] {
    if (this.kept) return this.kept;
    let buf: Buffer;
    try { buf = readFileSync(join(this.dir, 'cap.pcap')); } catch { return []; }
    const pcap = readPcap(buf);
    // -U writes whole packets, but a read can still meet one half written: callers poll again.
    if (!pcap.ok) return [];
    const out: { t: number; frame: ParsedFrame }[] = [];
    for (const f of pcap.value.frames) {
      const p = parseFrame(f.data);
      if (p.ok) out.push({ t: f.tsSec * 1000 + f.tsUsec / 1000, frame: p.value });
    }
    return out;
  }

  /** The TCP segments among frames(). */
  segments(): Segment[] { return this.timedSegments().map((s) => s.seg); }

  /** The TCP segments with their capture times (wall clock, ms). */
  timedSegments(): { t: number; seg: Segment }[] {
    return this.records().filter(({ frame: f }) => (f.ipv4 || f.ipv6) && f.tcp).map(({ t, frame: { ipv4, ipv6, tcp, payload } }) => ({
      t,
      seg: {
        src: (ipv4 ?? ipv6)!.src, sport: tcp!.srcPort, dst: (ipv4 ?? ipv6)!.dst, dport: tcp!.dstPort, seq: tcp!.seq, ack: tcp!.ack,
        syn: tcp!.flagSet.syn, fin: tcp!.flagSet.fin, rst: tcp!.flagSet.rst, len: payload.length, payload: Buffer.from(payload),
      },
    }));
  }

  /** Stops tcpdump (everything it captured stays readable) and removes its file. Safe to call twice. */
  async stop(): Promise<Segment[]> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const gone = once(this.child, 'exit');
      this.child.kill('SIGINT');
      await gone;
    }
    if (!this.kept) {
      this.kept = this.records();
      rmSync(this.dir, { recursive: true, force: true });
    }
    return this.segments();
  }
}

/**
 * The resets a backend received on one client tuple, each checked against the backend's RCV.NXT at
 * that moment: the end of all data the client side had sent it since the last SYN (SYN and FIN
 * count one). docs/migration.md: the old backend gets a RST with seq == its RCV.NXT exactly.
 */
export function resetsAt(segs: Segment[], client: { ip: string; port: number }): { seq: number; rcvNxt: number | undefined }[] {
  let rcvNxt: number | undefined;
  const out: { seq: number; rcvNxt: number | undefined }[] = [];
  for (const s of segs) {
    if (s.src !== client.ip || s.sport !== client.port) continue;
    if (s.rst) { out.push({ seq: s.seq, rcvNxt }); continue; }
    if (s.syn) { rcvNxt = seqAdd(s.seq, 1); continue; }
    // Only data and FIN advance RCV.NXT; a pure ACK's seq may run ahead of it (one the datapath
    // still sent to the old backend in the moment after a move, before its megaflows were revalidated).
    if (s.len === 0 && !s.fin) continue;
    const end = seqAdd(s.seq, s.len + (s.fin ? 1 : 0));
    if (rcvNxt === undefined || seqGt(end, rcvNxt)) rcvNxt = end;
  }
  return out;
}
