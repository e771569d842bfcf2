/** Ethernet II with up to two 802.1Q / 802.1ad tags. */
import { formatMac, parseMac } from './addr.ts';
import { err, ok, type Result } from './result.ts';

export const ETH_HEADER_LEN = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_QINQ = 0x88a8;
/** Pre-standard QinQ outer TPID still emitted by some gear. */
export const ETHERTYPE_QINQ_OLD = 0x9100;
export const MAX_VLAN_TAGS = 2;

export interface Ethernet {
  dst: string;
  src: string;
  /** EtherType of the payload after all VLAN tags. */
  ethType: number;
  /** VLAN IDs (12 bits), outermost first. */
  vlans: number[];
  /** Full 16-bit TCIs (PCP, DEI, VID), outermost first. */
  tcis: number[];
  /** TPIDs of the tags, outermost first (0x8100, 0x88a8 or 0x9100). */
  tpids: number[];
  /** Offset of the L3 header. */
  l3Offset: number;
}

function isTpid(t: number): boolean {
  return t === ETHERTYPE_VLAN || t === ETHERTYPE_QINQ || t === ETHERTYPE_QINQ_OLD;
}

export function decodeEthernet(buf: Buffer): Result<Ethernet> {
  if (buf.length < ETH_HEADER_LEN) return err('truncated', `Ethernet header needs 14 bytes, got ${buf.length}`, 0);
  const vlans: number[] = [];
  const tcis: number[] = [];
  const tpids: number[] = [];
  let off = 12;
  let type = buf.readUInt16BE(off);
  while (isTpid(type)) {
    if (tcis.length === MAX_VLAN_TAGS) return err('unsupported', `more than ${MAX_VLAN_TAGS} VLAN tags`, off);
    if (buf.length < off + 6) return err('truncated', 'VLAN tag truncated', off);
    const tci = buf.readUInt16BE(off + 2);
    tpids.push(type);
    tcis.push(tci);
    vlans.push(tci & 0x0fff);
    off += 4;
    type = buf.readUInt16BE(off);
  }
  return ok({ dst: formatMac(buf, 0), src: formatMac(buf, 6), ethType: type, vlans, tcis, tpids, l3Offset: off + 2 });
}

/**
 * Locates the L3 header without allocating strings: returns [ethType, l3Offset] or null.
 * Used by the in-place rewrite helpers on the hot path.
 */
export function locateL3(buf: Buffer): { ethType: number; l3Offset: number } | null {
  if (buf.length < ETH_HEADER_LEN) return null;
  let off = 12;
  let type = buf.readUInt16BE(off);
  let tags = 0;
  while (isTpid(type)) {
    if (tags === MAX_VLAN_TAGS || buf.length < off + 6) return null;
    tags++;
    off += 4;
    type = buf.readUInt16BE(off);
  }
  return { ethType: type, l3Offset: off + 2 };
}

export interface EthernetSpec {
  dst: string;
  src: string;
  ethType: number;
  /**
   * VLAN tags, outermost first. A number is a TCI (a plain VID < 4096 is a TCI with PCP 0);
   * the outer of two tags uses TPID 0x88a8, a single tag 0x8100, unless `tpids` is given.
   */
  vlans?: number[];
  tpids?: number[];
}

export function encodeEthernet(spec: EthernetSpec): Result<Buffer> {
  const dst = parseMac(spec.dst);
  if (!dst.ok) return dst;
  const src = parseMac(spec.src);
  if (!src.ok) return src;
  const vlans = spec.vlans ?? [];
  if (vlans.length > MAX_VLAN_TAGS) return err('bad_argument', `at most ${MAX_VLAN_TAGS} VLAN tags`);
  if (!isU16(spec.ethType)) return err('bad_argument', `invalid EtherType ${spec.ethType}`);
  for (const tci of vlans) if (!isU16(tci)) return err('bad_argument', `invalid VLAN TCI ${tci}`);
  const b = Buffer.alloc(ETH_HEADER_LEN + 4 * vlans.length);
  dst.value.copy(b, 0);
  src.value.copy(b, 6);
  let off = 12;
  vlans.forEach((tci, i) => {
    const tpid = spec.tpids?.[i] ?? (vlans.length === 2 && i === 0 ? ETHERTYPE_QINQ : ETHERTYPE_VLAN);
    b.writeUInt16BE(tpid & 0xffff, off);
    b.writeUInt16BE(tci & 0xffff, off + 2);
    off += 4;
  });
  b.writeUInt16BE(spec.ethType, off);
  return ok(b);
}

export function isU16(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffff;
}
