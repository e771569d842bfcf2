/** ARP for Ethernet/IPv4 (RFC 826). */
import { formatIpv4, formatMac, ipv4ToBytes, parseMac } from './addr.ts';
import { err, ok, type Result } from './result.ts';

export const ARP_LEN = 28;
export const ARP_OP_REQUEST = 1;
export const ARP_OP_REPLY = 2;

export interface Arp {
  htype: number;
  ptype: number;
  hlen: number;
  plen: number;
  /** 1 request, 2 reply (other values are passed through). */
  op: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

export function decodeArp(buf: Buffer, off: number): Result<Arp> {
  if (buf.length - off < 8) return err('truncated', 'ARP header truncated', off);
  const htype = buf.readUInt16BE(off);
  const ptype = buf.readUInt16BE(off + 2);
  const hlen = buf[off + 4]!;
  const plen = buf[off + 5]!;
  if (htype !== 1 || ptype !== 0x0800 || hlen !== 6 || plen !== 4) {
    return err('unsupported', `ARP htype=${htype} ptype=0x${ptype.toString(16)} hlen=${hlen} plen=${plen} is not Ethernet/IPv4`, off);
  }
  if (buf.length - off < ARP_LEN) return err('truncated', `ARP needs ${ARP_LEN} bytes, got ${buf.length - off}`, off);
  return ok({
    htype,
    ptype,
    hlen,
    plen,
    op: buf.readUInt16BE(off + 6),
    senderMac: formatMac(buf, off + 8),
    senderIp: formatIpv4(buf, off + 14),
    targetMac: formatMac(buf, off + 18),
    targetIp: formatIpv4(buf, off + 24),
  });
}

export interface ArpSpec {
  op: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

export function encodeArp(spec: ArpSpec): Result<Buffer> {
  const sm = parseMac(spec.senderMac);
  if (!sm.ok) return sm;
  const tm = parseMac(spec.targetMac);
  if (!tm.ok) return tm;
  const si = ipv4ToBytes(spec.senderIp);
  if (!si.ok) return si;
  const ti = ipv4ToBytes(spec.targetIp);
  if (!ti.ok) return ti;
  if (!Number.isInteger(spec.op) || spec.op < 0 || spec.op > 0xffff) return err('bad_argument', `invalid ARP op ${spec.op}`);
  const b = Buffer.alloc(ARP_LEN);
  b.writeUInt16BE(1, 0);
  b.writeUInt16BE(0x0800, 2);
  b[4] = 6;
  b[5] = 4;
  b.writeUInt16BE(spec.op, 6);
  sm.value.copy(b, 8);
  si.value.copy(b, 14);
  tm.value.copy(b, 18);
  ti.value.copy(b, 24);
  return ok(b);
}
