/**
 * Classic libpcap files (LINKTYPE_ETHERNET, microsecond timestamps): an in-memory record
 * encoder, a file-backed writer, and a reader (for tests and tooling).
 * Format: https://www.tcpdump.org/manpages/pcap-savefile.5.html
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { err, ok, type Result } from './result.ts';

export const PCAP_MAGIC_USEC = 0xa1b2c3d4;
export const PCAP_MAGIC_NSEC = 0xa1b23c4d;
export const LINKTYPE_ETHERNET = 1;
export const DEFAULT_SNAPLEN = 262144;

/** Encodes the global header and per-packet records (little-endian, like most writers). */
export class PcapWriter {
  readonly snaplen: number;
  readonly linkType: number;

  constructor(opts: { snaplen?: number; linkType?: number } = {}) {
    this.snaplen = opts.snaplen ?? DEFAULT_SNAPLEN;
    this.linkType = opts.linkType ?? LINKTYPE_ETHERNET;
  }

  /** The 24-byte global header. */
  header(): Buffer {
    const b = Buffer.alloc(24);
    b.writeUInt32LE(PCAP_MAGIC_USEC, 0);
    b.writeUInt16LE(2, 4);
    b.writeUInt16LE(4, 6);
    // thiszone and sigfigs are always 0 in practice.
    b.writeUInt32LE(this.snaplen, 16);
    b.writeUInt32LE(this.linkType, 20);
    return b;
  }

  /**
   * One record: 16-byte header + the frame, truncated to snaplen. `tsMs` is a Unix time in
   * milliseconds (fractions kept to the microsecond); default now.
   */
  record(frame: Buffer, tsMs: number = Date.now()): Buffer {
    const totalUs = Math.round(tsMs * 1000);
    const sec = Math.floor(totalUs / 1_000_000);
    const usec = totalUs - sec * 1_000_000;
    const incl = Math.min(frame.length, this.snaplen);
    const b = Buffer.alloc(16 + incl);
    b.writeUInt32LE(sec >>> 0, 0);
    b.writeUInt32LE(usec, 4);
    b.writeUInt32LE(incl, 8);
    b.writeUInt32LE(frame.length, 12);
    frame.copy(b, 16, 0, incl);
    return b;
  }
}

/**
 * A pcap file being written. Writes are buffered by a stream (non-blocking); a write error is
 * kept and reported by close() instead of crashing the process.
 */
export class PcapFile {
  readonly path: string;
  private readonly stream: WriteStream;
  private readonly writer: PcapWriter;
  private error: Error | null = null;
  private closed = false;
  /** Number of frames written so far. */
  count = 0;

  private constructor(path: string, stream: WriteStream, writer: PcapWriter) {
    this.path = path;
    this.stream = stream;
    this.writer = writer;
    stream.on('error', (e) => {
      this.error ??= e;
    });
  }

  /** Creates (truncates) the file and writes the global header. Rejects if it cannot be opened. */
  static open(path: string, opts: { snaplen?: number } = {}): Promise<PcapFile> {
    return new Promise((resolve, reject) => {
      const stream = createWriteStream(path);
      const onError = (e: Error): void => reject(e);
      stream.once('error', onError);
      stream.once('open', () => {
        stream.off('error', onError);
        const f = new PcapFile(path, stream, new PcapWriter(opts));
        stream.write(f.writer.header());
        resolve(f);
      });
    });
  }

  /** Appends a frame; returns false once the file is closed or failed. */
  write(frame: Buffer, tsMs?: number): boolean {
    if (this.closed || this.error) return false;
    this.stream.write(this.writer.record(frame, tsMs));
    this.count++;
    return true;
  }

  /** Flushes and closes; rejects with the first write error, if any. */
  close(): Promise<void> {
    if (this.closed) return this.error ? Promise.reject(this.error) : Promise.resolve();
    this.closed = true;
    return new Promise((resolve, reject) => {
      this.stream.end(() => (this.error ? reject(this.error) : resolve()));
      this.stream.once('error', (e) => reject(e));
    });
  }
}

export interface PcapRecord {
  tsSec: number;
  /** Microseconds (nanosecond files are converted). */
  tsUsec: number;
  /** Original length on the wire (≥ data.length when truncated by snaplen). */
  origLen: number;
  data: Buffer;
}

export interface PcapContents {
  linkType: number;
  snaplen: number;
  nanosecond: boolean;
  littleEndian: boolean;
  frames: PcapRecord[];
}

/** Reads a classic pcap file (either byte order, µs or ns). Never throws. */
export function readPcap(buf: Buffer): Result<PcapContents> {
  if (!Buffer.isBuffer(buf)) return err('bad_argument', 'readPcap expects a Buffer');
  if (buf.length < 24) return err('truncated', `pcap global header needs 24 bytes, got ${buf.length}`, 0);
  const le = buf.readUInt32LE(0);
  let littleEndian: boolean;
  let nanosecond: boolean;
  if (le === PCAP_MAGIC_USEC || le === PCAP_MAGIC_NSEC) {
    littleEndian = true;
    nanosecond = le === PCAP_MAGIC_NSEC;
  } else {
    const be = buf.readUInt32BE(0);
    if (be !== PCAP_MAGIC_USEC && be !== PCAP_MAGIC_NSEC) {
      return err('unsupported', `not a classic pcap file (magic 0x${le.toString(16)}; pcapng is not supported)`, 0);
    }
    littleEndian = false;
    nanosecond = be === PCAP_MAGIC_NSEC;
  }
  const u32 = (o: number): number => (littleEndian ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const snaplen = u32(16);
  const linkType = u32(20) & 0x0fff_ffff; // upper bits carry FCS info
  const frames: PcapRecord[] = [];
  let off = 24;
  while (off < buf.length) {
    if (buf.length - off < 16) return err('truncated', 'pcap record header truncated', off);
    const incl = u32(off + 8);
    if (incl > buf.length - off - 16) return err('truncated', `pcap record of ${incl} bytes truncated`, off);
    const frac = u32(off + 4);
    frames.push({
      tsSec: u32(off),
      tsUsec: nanosecond ? Math.floor(frac / 1000) : frac,
      origLen: u32(off + 12),
      data: Buffer.from(buf.subarray(off + 16, off + 16 + incl)),
    });
    off += 16 + incl;
  }
  return ok({ linkType, snaplen, nanosecond, littleEndian, frames });
}
