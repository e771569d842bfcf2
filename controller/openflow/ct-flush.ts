// NXT_CT_FLUSH (Open vSwitch 3.1+): delete the conntrack entries of one zone that match a tuple,
// from the OpenFlow channel. Carried in an OFPT_EXPERIMENTER message (Nicira, exp_type 32); the body
// is `struct nx_ct_flush` (ip_proto, 7 pad bytes) followed by properties (include/openflow/nicira-ext.h,
// lib/ofp-ct.c): the original and reply tuples as nested properties, the zone as a u16 one. Addresses
// travel as 16 bytes, IPv4 ones mapped (::ffff:a.b.c.d). The switch sends no reply on success.
import { NX_VENDOR_ID } from './constants.ts';
import type { OfpMessage } from './messages.ts';
import { bytesToIpv4, bytesToIpv6, ipv4ToBytes, ipv6ToBytes } from './oxm.ts';
import { Reader } from './reader.ts';
import { guard, OfpEncodeError, type Result } from './result.ts';
import { Writer } from './writer.ts';

/** The experimenter message type of NXT_CT_FLUSH. */
export const NXT_CT_FLUSH = 32;

/** Outer property types (enum nx_ct_flush_tlv_type). */
const PROP = { origTuple: 0, replyTuple: 1, zone: 2 } as const;
/** Nested tuple property types (enum nx_ct_flush_tuple_tlv_type); ICMP ones are not modelled. */
const TUPLE = { src: 0, dst: 1, srcPort: 2, dstPort: 3 } as const;

/** Any field left out matches every value. */
export interface CtTuple { src?: string; dst?: string; srcPort?: number; dstPort?: number }

export interface CtFlush {
  /** Absent: every zone. */
  zone?: number;
  /** IP protocol (6 for TCP); 0 matches any. */
  ipProto: number;
  orig?: CtTuple;
  reply?: CtTuple;
}

const V4_MAPPED = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

function addressBytes(ip: string, what: string): Buffer {
  return ip.includes(':') ? ipv6ToBytes(ip, what) : Buffer.concat([V4_MAPPED, ipv4ToBytes(ip, what)]);
}

function addressOf(b: Buffer): string {
  return b.subarray(0, 12).equals(V4_MAPPED) ? bytesToIpv4(b.subarray(12)) : bytesToIpv6(b);
}

/** One property: type, length (header + value, without the padding), value, padding to 8 bytes. */
function prop(w: Writer, type: number, value: Buffer, nested = false): void {
  // A nested property's value starts 8-byte aligned (ofpprop_start_nested): 4 pad bytes after the header.
  const pad = nested ? 4 : 0;
  const len = 4 + pad + value.length;
  w.u16(type, 'property type').u16(len, 'property length').zeros(pad);
  w.bytes(value, 'property value').zeros((8 - (len % 8)) % 8);
}

const u16Bytes = (v: number, what: string): Buffer => {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new OfpEncodeError(`${what}: expected an integer 0..65535, got ${String(v)}`);
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
};

function encodeTuple(t: CtTuple, what: string): Buffer {
  const w = new Writer(64);
  if (t.src !== undefined) prop(w, TUPLE.src, addressBytes(t.src, `${what}.src`));
  if (t.dst !== undefined) prop(w, TUPLE.dst, addressBytes(t.dst, `${what}.dst`));
  if (t.srcPort !== undefined) prop(w, TUPLE.srcPort, u16Bytes(t.srcPort, `${what}.srcPort`));
  if (t.dstPort !== undefined) prop(w, TUPLE.dstPort, u16Bytes(t.dstPort, `${what}.dstPort`));
  return w.toBuffer();
}

/** The experimenter body of an NXT_CT_FLUSH. */
export function encodeCtFlush(f: CtFlush): Buffer {
  const w = new Writer(128);
  w.u8(f.ipProto, 'ct_flush.ip_proto').zeros(7);
  for (const [type, t, what] of [[PROP.origTuple, f.orig, 'orig'], [PROP.replyTuple, f.reply, 'reply']] as const) {
    const body = t && encodeTuple(t, `ct_flush.${what}`);
    if (body?.length) prop(w, type, body, true);
  }
  if (f.zone !== undefined) prop(w, PROP.zone, u16Bytes(f.zone, 'ct_flush.zone'));
  return w.toBuffer();
}

/** Reads properties to the end: type, the value (length minus the header and `pad`), padding skipped. */
function readProps(r: Reader, pad: (type: number) => number, on: (type: number, value: Reader) => void): void {
  while (r.remaining > 0) {
    const type = r.u16('property type');
    const len = r.u16('property length');
    const skip = pad(type);
    if (len < 4 + skip) r.fail('bad_length', `property ${type}: length ${len} < ${4 + skip}`);
    r.skip(skip);
    on(type, r.sub(len - 4 - skip, `property ${type}`));
    r.skip(Math.min((8 - (len % 8)) % 8, r.remaining));
  }
}

function decodeTuple(r: Reader): CtTuple {
  const t: CtTuple = {};
  readProps(r, () => 0, (type, v) => {
    if (type === TUPLE.src || type === TUPLE.dst) {
      if (v.remaining !== 16) v.fail('bad_length', `tuple address of ${v.remaining} bytes (16 expected)`);
      t[type === TUPLE.src ? 'src' : 'dst'] = addressOf(v.bytes(16, 'address'));
    } else if (type === TUPLE.srcPort || type === TUPLE.dstPort) {
      if (v.remaining !== 2) v.fail('bad_length', `tuple port of ${v.remaining} bytes (2 expected)`);
      t[type === TUPLE.srcPort ? 'srcPort' : 'dstPort'] = v.u16('port');
    }
    // ICMP id/type/code: not modelled, skipped.
  });
  return t;
}

/** The inverse of encodeCtFlush. */
export function decodeCtFlush(body: Buffer): Result<CtFlush> {
  return guard(() => {
    const r = new Reader(body);
    const f: CtFlush = { ipProto: r.u8('ip_proto') };
    if (!r.bytes(7, 'pad').equals(Buffer.alloc(7))) r.fail('bad_value', 'nx_ct_flush padding must be zero', 1);
    readProps(r, (type) => (type === PROP.origTuple || type === PROP.replyTuple ? 4 : 0), (type, v) => {
      if (type === PROP.origTuple) f.orig = decodeTuple(v);
      else if (type === PROP.replyTuple) f.reply = decodeTuple(v);
      else if (type === PROP.zone) {
        if (v.remaining !== 2) v.fail('bad_length', `zone of ${v.remaining} bytes (2 expected)`);
        f.zone = v.u16('zone');
      } else v.fail('unsupported', `unknown ct_flush property ${type}`);
    });
    return f;
  });
}

/** An NXT_CT_FLUSH message (xid 0: the channel numbers it). */
export function ctFlushMessage(f: CtFlush): OfpMessage {
  return { type: 'experimenter', xid: 0, experimenter: NX_VENDOR_ID, expType: NXT_CT_FLUSH, data: encodeCtFlush(f) };
}
