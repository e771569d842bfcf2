/**
 * Pure decoder of Snort's unixsock `Alertpkt` datagram (Snort 2.9.x `spo_alert_unixsock.h`,
 * Snort 3 `alert_unixsock.cc`). Layout, sizes and quirks: the design's IDS notes (shared/ids/README.md), copied into
 * docs/analyzers.md. Never throws: malformed input is an error Result.
 */
import { endianness } from 'node:os';
import { err, ok, parseFrame, type DecodeError, type ParsedFrame, type Result } from '../packet/index.ts';
import { frameFacts, stripQuotes, verdictOf, type Alert, type FlowKey } from './types.ts';

export const ALERTMSG_LENGTH = 256;
export const SNAPLEN = 65535;
/** Snort 3 and Snort 2.9 without OpenAppId. */
export const ALERTPKT_SIZE = 65864;
/** Snort 2.9 with OpenAppId (`app_name[64]`, the 2.9.19 configure default). */
export const ALERTPKT_SIZE_APPID = 65928;
/** Snort 2.9.7/2.9.8-era OpenAppId builds (`app_name[16]`). */
export const ALERTPKT_SIZE_APPID16 = 65880;
export const ALERTPKT_SIZES: readonly number[] = [ALERTPKT_SIZE, ALERTPKT_SIZE_APPID16, ALERTPKT_SIZE_APPID];
/** What a receiver needs at least: the largest known struct (the npm add-ons use 64 KiB and lose the trailer). */
export const ALERTPKT_MAX_SIZE = ALERTPKT_SIZE_APPID;

export const NOPACKET_STRUCT = 0x1;
export const NO_TRANSHDR = 0x2;

/** Byte offsets in the struct (natural alignment, no packing). */
export const OFF = {
  alertmsg: 0,
  tsSec: 256, tsUsec: 260, caplen: 264, len: 268,
  dlthdr: 272, nethdr: 276, transhdr: 280, data: 284, val: 288,
  pkt: 292,
  padding: 65827,
  gid: 65828, sid: 65832, rev: 65836, classification: 65840, priority: 65844,
  eventId: 65848, eventRef: 65852, refTsSec: 65856, refTsUsec: 65860,
  appName: 65864,
} as const;

export interface AlertPkt {
  /** Datagram length (one of ALERTPKT_SIZES). */
  size: number;
  /** alertmsg up to the first NUL, as sent (Snort 3 keeps the rule's quotes). */
  rawMsg: string;
  /** rawMsg without surrounding quotes. */
  msg: string;
  tsSec: number; tsUsec: number; caplen: number; len: number;
  dlthdr: number; nethdr: number; transhdr: number; data: number; val: number;
  /** val & NOPACKET_STRUCT: there is no packet, all packet fields are zero. */
  noPacket: boolean;
  /** val & NO_TRANSHDR: the IP protocol is not TCP/UDP/ICMP. */
  noTranshdr: boolean;
  /** A copy of pkt[0:caplen]; absent when noPacket. */
  packet?: Buffer;
  /** parseFrame of the packet, when it parsed. */
  frame?: ParsedFrame;
  /** Why the packet did not parse (the alert itself is still valid). */
  frameError?: DecodeError;
  /** 5-tuple, seq/ack, payload length: from the frame, or from the struct's offsets if parseFrame failed. */
  flow?: FlowKey; seq?: number; ack?: number; payloadLength?: number;
  gid: number; sid: number; rev: number; classification: number; priority: number;
  eventId: number; eventRef: number; refTsSec: number; refTsUsec: number;
  /** OpenAppId tail (Snort 2.9 builds with it), when non-empty. */
  appName?: string;
}

export interface DecodeOptions {
  /** Byte order of the sender (Snort writes host order). Default: this host's. */
  littleEndian?: boolean;
}

const HOST_LE = endianness() === 'LE';

/** Decodes one Alertpkt datagram. */
export function decodeAlertPkt(buf: Buffer, opts: DecodeOptions = {}): Result<AlertPkt> {
  if (!Buffer.isBuffer(buf)) return err('bad_argument', 'decodeAlertPkt expects a Buffer');
  if (!ALERTPKT_SIZES.includes(buf.length)) {
    const hint = buf.length === 65535 || buf.length === 65536
      ? ' (looks truncated to 64 KiB by a receiver with a too-small buffer: the sid trailer is lost)'
      : '';
    return err(buf.length < ALERTPKT_SIZE ? 'truncated' : 'bad_value',
      `Alertpkt must be ${ALERTPKT_SIZES.join(', ')} bytes, got ${buf.length}${hint}`);
  }
  const le = opts.littleEndian ?? HOST_LE;
  const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));

  const nul = buf.indexOf(0, OFF.alertmsg);
  // Snort copies at most 255 bytes into a zeroed 256-byte array, so byte 255 is always NUL.
  if (nul < 0 || nul >= ALERTMSG_LENGTH) return err('bad_value', 'alertmsg is not NUL-terminated within 256 bytes', 0);
  if (buf[OFF.padding] !== 0) return err('bad_value', `padding byte at ${OFF.padding} is ${buf[OFF.padding]}, expected 0 (not an Alertpkt?)`, OFF.padding);
  const rawMsg = buf.toString('utf8', 0, nul);

  const p: AlertPkt = {
    size: buf.length, rawMsg, msg: stripQuotes(rawMsg),
    tsSec: u32(OFF.tsSec), tsUsec: u32(OFF.tsUsec), caplen: u32(OFF.caplen), len: u32(OFF.len),
    dlthdr: u32(OFF.dlthdr), nethdr: u32(OFF.nethdr), transhdr: u32(OFF.transhdr), data: u32(OFF.data),
    val: u32(OFF.val), noPacket: false, noTranshdr: false,
    gid: u32(OFF.gid), sid: u32(OFF.sid), rev: u32(OFF.rev), classification: u32(OFF.classification),
    priority: u32(OFF.priority), eventId: u32(OFF.eventId), eventRef: u32(OFF.eventRef),
    refTsSec: u32(OFF.refTsSec), refTsUsec: u32(OFF.refTsUsec),
  };
  if (p.val & ~(NOPACKET_STRUCT | NO_TRANSHDR)) return err('bad_value', `val has unknown flag bits 0x${p.val.toString(16)}`, OFF.val);
  p.noPacket = (p.val & NOPACKET_STRUCT) !== 0;
  p.noTranshdr = (p.val & NO_TRANSHDR) !== 0;
  if (p.tsUsec >= 1_000_000 || p.refTsUsec >= 1_000_000) return err('bad_value', 'microsecond field ≥ 1e6 (wrong byte order or not an Alertpkt?)', OFF.tsUsec);

  if (buf.length > ALERTPKT_SIZE) {
    const tail = buf.subarray(OFF.appName);
    const end = tail.indexOf(0);
    const name = tail.toString('utf8', 0, end < 0 ? tail.length : end);
    if (name) p.appName = name;
  }

  if (p.noPacket) return ok(p);
  if (p.caplen > SNAPLEN) {
    // The pkt array holds at most 65535 bytes; a larger caplen cannot describe it.
    p.frameError = { kind: 'bad_value', message: `caplen ${p.caplen} exceeds the 65535-byte pkt array`, offset: OFF.caplen };
    return ok(p);
  }
  for (const [name, v] of [['dlthdr', p.dlthdr], ['nethdr', p.nethdr], ['transhdr', p.transhdr], ['data', p.data]] as const) {
    if (v > p.caplen) {
      p.frameError = { kind: 'bad_value', message: `${name} offset ${v} is beyond caplen ${p.caplen}` };
      return ok(p);
    }
  }
  p.packet = Buffer.from(buf.subarray(OFF.pkt, OFF.pkt + p.caplen));
  const fr = parseFrame(p.packet.subarray(p.dlthdr));
  if (fr.ok && (fr.value.ipv4 || fr.value.ipv6)) {
    p.frame = fr.value;
    Object.assign(p, frameFacts(fr.value));
  } else {
    if (!fr.ok) p.frameError = fr.error;
    // Not Ethernet/IPv4 as parseFrame knows it (e.g. a raw-IP DAQ): use Snort's own offsets.
    Object.assign(p, factsFromOffsets(p.packet, p));
  }
  return ok(p);
}

/** 5-tuple and seq/ack from Snort's nethdr/transhdr/data offsets (IPv4 only). */
function factsFromOffsets(pkt: Buffer, p: AlertPkt): Pick<AlertPkt, 'flow' | 'seq' | 'ack' | 'payloadLength'> {
  const n = p.nethdr;
  if (n + 20 > pkt.length || pkt[n]! >> 4 !== 4 || p.noTranshdr || p.transhdr < n + 20) return {};
  const proto = pkt[n + 9];
  if (proto !== 6 && proto !== 17) return {};
  const t = p.transhdr;
  const need = proto === 6 ? 20 : 8;
  if (t + need > pkt.length) return {};
  const ip = (o: number): string => `${pkt[o]}.${pkt[o + 1]}.${pkt[o + 2]}.${pkt[o + 3]}`;
  const out: Pick<AlertPkt, 'flow' | 'seq' | 'ack' | 'payloadLength'> = {
    flow: { srcIp: ip(n + 12), srcPort: pkt.readUInt16BE(t), dstIp: ip(n + 16), dstPort: pkt.readUInt16BE(t + 2) },
  };
  if (proto === 6) { out.seq = pkt.readUInt32BE(t + 4); out.ack = pkt.readUInt32BE(t + 8); }
  if (p.data >= t + need) out.payloadLength = pkt.length - p.data;
  return out;
}

/** The common Alert for a decoded Alertpkt. */
export function alertFromAlertPkt(p: AlertPkt, now: () => Date = () => new Date()): Alert {
  const a: Alert = {
    source: 'snort',
    msg: p.msg,
    gid: p.gid, sid: p.sid, rev: p.rev,
    time: p.refTsSec ? new Date(p.refTsSec * 1000 + Math.floor(p.refTsUsec / 1000))
      : p.tsSec ? new Date(p.tsSec * 1000 + Math.floor(p.tsUsec / 1000)) : now(),
  };
  const v = verdictOf(p.msg);
  if (v) a.verdict = v;
  // Snort sends 0 when the rule has no classtype/priority: absent, not "class 0".
  if (p.classification) a.classification = p.classification;
  if (p.priority) a.priority = p.priority;
  if (p.flow) a.flow = p.flow;
  if (p.seq !== undefined) a.seq = p.seq;
  if (p.ack !== undefined) a.ack = p.ack;
  if (p.payloadLength !== undefined) a.payloadLength = p.payloadLength;
  return a;
}

/** Builds an Alertpkt datagram (tests, and a documentation of the layout by construction). */
export interface AlertPktSpec {
  msg: string; packet?: Buffer; gid?: number; sid: number; rev?: number; classification?: number; priority?: number;
  tsSec?: number; tsUsec?: number; nethdr?: number; transhdr?: number; data?: number; val?: number;
  eventId?: number; size?: number; appName?: string; littleEndian?: boolean;
}

export function encodeAlertPkt(s: AlertPktSpec): Buffer {
  const size = s.size ?? ALERTPKT_SIZE;
  const b = Buffer.alloc(size);
  const le = s.littleEndian ?? HOST_LE;
  const w = (o: number, v: number): void => { if (le) b.writeUInt32LE(v >>> 0, o); else b.writeUInt32BE(v >>> 0, o); };
  b.write(s.msg, OFF.alertmsg, ALERTMSG_LENGTH - 1, 'utf8');
  b[255] = 0;
  const pkt = s.packet;
  const val = s.val ?? (pkt ? 0 : NOPACKET_STRUCT);
  if (pkt) {
    w(OFF.tsSec, s.tsSec ?? 0); w(OFF.tsUsec, s.tsUsec ?? 0);
    w(OFF.caplen, pkt.length); w(OFF.len, pkt.length);
    w(OFF.dlthdr, 0); w(OFF.nethdr, s.nethdr ?? 14); w(OFF.transhdr, s.transhdr ?? 34); w(OFF.data, s.data ?? 54);
    pkt.copy(b, OFF.pkt, 0, Math.min(pkt.length, SNAPLEN));
  }
  w(OFF.val, val);
  w(OFF.gid, s.gid ?? 1); w(OFF.sid, s.sid); w(OFF.rev, s.rev ?? 0);
  w(OFF.classification, s.classification ?? 0); w(OFF.priority, s.priority ?? 0);
  w(OFF.eventId, s.eventId ?? 1); w(OFF.eventRef, s.eventId ?? 1);
  w(OFF.refTsSec, s.tsSec ?? 0); w(OFF.refTsUsec, s.tsUsec ?? 0);
  if (s.appName && size > ALERTPKT_SIZE) b.write(s.appName.slice(0, size - ALERTPKT_SIZE - 1), OFF.appName, 'utf8');
  return b;
}
