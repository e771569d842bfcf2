/**
 * In-place rewrites of a raw Ethernet/IPv4 or Ethernet/IPv6 frame with incremental checksum
 * updates (RFC 1624 eqn. 3), mirroring what OVS set-field and the patched inc/dec_tcp_seq/ack
 * actions do in the datapath. Every helper validates the frame first and changes nothing when it
 * returns an error, and none of them throws. IPv6 has no header checksum: only the upper-layer
 * checksum changes, through the pseudo-header for addresses.
 */
import { parseIpv4, parseIpv6, parseMac } from './addr.ts';
import { csumReplace16, csumReplace32, fold, onesSum } from './checksum.ts';
import { IPPROTO_TCP, IPPROTO_UDP } from './ipv4.ts';
import { IPPROTO_ICMPV6 } from './ipv6.ts';
import { locateIpv4, locateIpv6, locateL4Ports, locateTcp, type Ipv4Location, type TcpLocation } from './locate.ts';
import { err, ok, type Result } from './result.ts';
import { TCPOPT_EOL, TCPOPT_NOP, TCPOPT_SACK, TCPOPT_TIMESTAMP, type TcpOptionKind } from './tcp-options.ts';

function toIp(ip: string | number): Result<number> {
  if (typeof ip === 'number') {
    return Number.isInteger(ip) && ip >= 0 && ip <= 0xffff_ffff ? ok(ip >>> 0) : err('bad_argument', `invalid IPv4 address ${ip}`);
  }
  return parseIpv4(ip);
}

function isDelta(d: unknown): d is number {
  return typeof d === 'number' && Number.isInteger(d) && Math.abs(d) <= 0xffff_ffff;
}

/** Writes a new checksum computed by an incremental update of the existing one. */
function updateCsum16(frame: Buffer, csumOff: number, oldW: number, newW: number, udp = false): void {
  const hc = frame.readUInt16BE(csumOff);
  if (udp && hc === 0) return; // UDP checksum disabled: stays disabled.
  let n = csumReplace16(hc, oldW, newW);
  if (udp && n === 0) n = 0xffff; // RFC 768: a computed 0 is sent as all ones.
  frame.writeUInt16BE(n, csumOff);
}

function updateCsum32(frame: Buffer, csumOff: number, oldV: number, newV: number, udp = false): void {
  const hc = frame.readUInt16BE(csumOff);
  if (udp && hc === 0) return;
  let n = csumReplace32(hc, oldV, newV);
  if (udp && n === 0) n = 0xffff;
  frame.writeUInt16BE(n, csumOff);
}

/**
 * Runs `write`, which changes bytes [start, end) of a region whose checksum words are aligned
 * at `base`, and updates the checksum at `csumOff` from the old and new sums of the
 * word-aligned window around the change. Works for fields at odd offsets (TCP options need
 * not be aligned).
 */
function patchWithCsum(frame: Buffer, csumOff: number, base: number, start: number, end: number, write: () => void): void {
  const ws = start - ((start - base) & 1);
  const we = end + ((end - base) & 1);
  const oldSum = onesSum(frame, ws, we);
  write();
  const newSum = onesSum(frame, ws, we);
  const hc = frame.readUInt16BE(csumOff);
  frame.writeUInt16BE(~fold((~hc & 0xffff) + (~oldSum & 0xffff) + newSum) & 0xffff, csumOff);
}

/**
 * Where the upper layer's checksum lives when it covers the addresses through the pseudo-header
 * (TCP, UDP; ICMPv6 too, over IPv6): -1 when there is none in this frame (another protocol, or a
 * fragment without the L4 header).
 */
function pseudoHeaderChecksum(loc: { l4: number; end: number; protocol: number }, icmpv6: boolean): Result<{ at: number; udp: boolean }> {
  if (loc.l4 < 0) return ok({ at: -1, udp: false });
  if (loc.protocol === IPPROTO_TCP) return loc.end - loc.l4 < 20 ? err('truncated', 'TCP header truncated', loc.l4) : ok({ at: loc.l4 + 16, udp: false });
  if (loc.protocol === IPPROTO_UDP) return loc.end - loc.l4 < 8 ? err('truncated', 'UDP header truncated', loc.l4) : ok({ at: loc.l4 + 6, udp: true });
  if (icmpv6 && loc.protocol === IPPROTO_ICMPV6) return loc.end - loc.l4 < 8 ? err('truncated', 'ICMPv6 header truncated', loc.l4) : ok({ at: loc.l4 + 2, udp: false });
  return ok({ at: -1, udp: false });
}

function rewriteIpv4Addr(frame: Buffer, ip: string | number, which: 'src' | 'dst'): Result<void> {
  const a = toIp(ip);
  if (!a.ok) return a;
  const r = locateIpv4(frame);
  if (!r.ok) return r;
  const loc = r.value;
  // The L4 checksum lives in this frame only if this is the first (or only) fragment.
  const cs = pseudoHeaderChecksum(loc, false);
  if (!cs.ok) return cs;
  const { at: l4Csum, udp } = cs.value;
  const off = loc.l3 + (which === 'src' ? 12 : 16);
  const old = frame.readUInt32BE(off);
  frame.writeUInt32BE(a.value, off);
  updateCsum32(frame, loc.l3 + 10, old, a.value);
  if (l4Csum >= 0) updateCsum32(frame, l4Csum, old, a.value, udp);
  return ok(undefined);
}

/** Sets the IPv4 source address; updates the IP header checksum and the TCP/UDP checksum. */
export function rewriteIpv4Src(frame: Buffer, ip: string | number): Result<void> {
  return rewriteIpv4Addr(frame, ip, 'src');
}

/** Sets the IPv4 destination address; updates the IP header checksum and the TCP/UDP checksum. */
export function rewriteIpv4Dst(frame: Buffer, ip: string | number): Result<void> {
  return rewriteIpv4Addr(frame, ip, 'dst');
}

/** locateTcp for either IP version. */
function locateTcpAny(frame: Buffer): Result<TcpLocation> {
  const r6 = locateIpv6(frame, 'l4');
  if (!r6) return locateTcp(frame);
  if (!r6.ok) return r6;
  const loc = r6.value;
  if (loc.protocol !== IPPROTO_TCP) return err('not_applicable', `IPv6 upper-layer protocol ${loc.protocol} is not TCP`, loc.l3 + 6);
  if (loc.l4 < 0) return err('not_applicable', 'non-first IPv6 fragment has no TCP header', loc.l3 + 6);
  if (loc.end - loc.l4 < 20) return err('truncated', 'TCP header truncated', loc.l4);
  const thl = (frame[loc.l4 + 12]! >> 4) * 4;
  if (thl < 20) return err('bad_value', `TCP data offset ${thl / 4} < 5`, loc.l4 + 12);
  if (thl > loc.end - loc.l4) return err('truncated', 'TCP header longer than the datagram', loc.l4 + 12);
  return ok({ l3: loc.l3, hl: loc.hl, end: loc.end, protocol: loc.protocol, l4: loc.l4, thl });
}

/** locateL4Ports for either IP version. */
function locateL4PortsAny(frame: Buffer): Result<Ipv4Location & { csumOff: number; udp: boolean }> {
  const r6 = locateIpv6(frame, 'l4');
  if (!r6) return locateL4Ports(frame);
  if (!r6.ok) return r6;
  const loc = r6.value;
  if (loc.protocol !== IPPROTO_TCP && loc.protocol !== IPPROTO_UDP) return err('not_applicable', `IPv6 upper-layer protocol ${loc.protocol} has no ports`, loc.l3 + 6);
  if (loc.l4 < 0) return err('not_applicable', 'non-first IPv6 fragment has no L4 header', loc.l3 + 6);
  const udp = loc.protocol === IPPROTO_UDP;
  if (loc.end - loc.l4 < (udp ? 8 : 20)) return err('truncated', `${udp ? 'UDP' : 'TCP'} header truncated`, loc.l4);
  return ok({ l3: loc.l3, hl: loc.hl, end: loc.end, protocol: loc.protocol, l4: loc.l4, csumOff: loc.l4 + (udp ? 6 : 16), udp });
}

function rewriteIpv6Addr(frame: Buffer, ip: string, which: 'src' | 'dst'): Result<void> {
  const a = parseIpv6(ip);
  if (!a.ok) return a;
  const r = locateIpv6(frame, 'l4');
  if (!r) return err('not_applicable', 'not an IPv6 frame', 0);
  if (!r.ok) return r;
  const loc = r.value;
  const cs = pseudoHeaderChecksum(loc, true);
  if (!cs.ok) return cs;
  let l4Csum = cs.value.at;
  const udp = cs.value.udp;
  // With a Routing header naming a final destination, the pseudo-header carries that one, not
  // the fixed header's (the decoder returns the same buffer only when they are one): as OVS,
  // the checksum is then left alone for a destination rewrite.
  if (which === 'dst' && loc.ip.pseudoDstBytes !== loc.ip.dstBytes) l4Csum = -1;
  const off = loc.l3 + (which === 'src' ? 8 : 24);
  const oldSum = onesSum(frame, off, off + 16);
  a.value.copy(frame, off);
  if (l4Csum < 0) return ok(undefined);
  const hc = frame.readUInt16BE(l4Csum);
  if (udp && hc === 0) return ok(undefined); // not valid over IPv6, but not ours to fix
  let n = ~fold((~hc & 0xffff) + (~oldSum & 0xffff) + onesSum(frame, off, off + 16)) & 0xffff;
  if (udp && n === 0) n = 0xffff;
  frame.writeUInt16BE(n, l4Csum);
  return ok(undefined);
}

/** Sets the IPv6 source address; updates the TCP/UDP/ICMPv6 checksum (pseudo-header). */
export function rewriteIpv6Src(frame: Buffer, ip: string): Result<void> {
  return rewriteIpv6Addr(frame, ip, 'src');
}

/**
 * Sets the IPv6 destination address; updates the TCP/UDP/ICMPv6 checksum unless a Routing
 * header names the final destination (the pseudo-header's, which does not change).
 */
export function rewriteIpv6Dst(frame: Buffer, ip: string): Result<void> {
  return rewriteIpv6Addr(frame, ip, 'dst');
}

/** Sets the source address of either family: an address with ':' is IPv6 (the frame must match). */
export function rewriteIpSrc(frame: Buffer, ip: string): Result<void> {
  return typeof ip === 'string' && ip.includes(':') ? rewriteIpv6Src(frame, ip) : rewriteIpv4Src(frame, ip);
}

/** Sets the destination address of either family: an address with ':' is IPv6 (the frame must match). */
export function rewriteIpDst(frame: Buffer, ip: string): Result<void> {
  return typeof ip === 'string' && ip.includes(':') ? rewriteIpv6Dst(frame, ip) : rewriteIpv4Dst(frame, ip);
}

function rewritePort(frame: Buffer, port: number, which: 'src' | 'dst'): Result<void> {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) return err('bad_argument', `invalid port ${port}`);
  const r = locateL4PortsAny(frame);
  if (!r.ok) return r;
  const off = r.value.l4 + (which === 'src' ? 0 : 2);
  const old = frame.readUInt16BE(off);
  frame.writeUInt16BE(port, off);
  updateCsum16(frame, r.value.csumOff, old, port, r.value.udp);
  return ok(undefined);
}

/** Sets the TCP or UDP source port with an incremental checksum update. */
export function rewriteL4SrcPort(frame: Buffer, port: number): Result<void> {
  return rewritePort(frame, port, 'src');
}

/** Sets the TCP or UDP destination port with an incremental checksum update. */
export function rewriteL4DstPort(frame: Buffer, port: number): Result<void> {
  return rewritePort(frame, port, 'dst');
}

function rewriteMac(frame: Buffer, mac: string, off: number): Result<void> {
  const m = parseMac(mac);
  if (!m.ok) return m;
  if (!Buffer.isBuffer(frame) || frame.length < 14) return err('truncated', 'Ethernet header truncated', 0);
  m.value.copy(frame, off);
  return ok(undefined);
}

export function rewriteEthSrc(frame: Buffer, mac: string): Result<void> {
  return rewriteMac(frame, mac, 6);
}

export function rewriteEthDst(frame: Buffer, mac: string): Result<void> {
  return rewriteMac(frame, mac, 0);
}

function shiftField(frame: Buffer, loc: TcpLocation, fieldOff: number, delta: number): void {
  const off = loc.l4 + fieldOff;
  const old = frame.readUInt32BE(off);
  const v = (old + delta) >>> 0;
  frame.writeUInt32BE(v, off);
  updateCsum32(frame, loc.l4 + 16, old, v);
}

/** seq += delta (mod 2^32), like the patched OVS inc_tcp_seq (negative delta = dec). */
export function shiftTcpSeq(frame: Buffer, delta: number): Result<void> {
  if (!isDelta(delta)) return err('bad_argument', `invalid delta ${delta}`);
  const r = locateTcpAny(frame);
  if (!r.ok) return r;
  shiftField(frame, r.value, 4, delta);
  return ok(undefined);
}

/**
 * Calls `visit(type, off, len)` for each option of a TCP header, after checking that the
 * whole area walks cleanly (Linux tcp_parse_options rules). Returns false, without having
 * called `visit`, if the area is malformed.
 */
function walkOptions(frame: Buffer, start: number, end: number, visit: (type: number, off: number, len: number) => void): boolean {
  for (let pass = 0; pass < 2; pass++) {
    let i = start;
    while (i < end) {
      const type = frame[i]!;
      if (type === TCPOPT_EOL) break;
      if (type === TCPOPT_NOP) {
        if (pass === 1) visit(type, i, 1);
        i++;
        continue;
      }
      if (i + 1 >= end) return false;
      const len = frame[i + 1]!;
      if (len < 2 || i + len > end) return false;
      if (pass === 1) visit(type, i, len);
      i += len;
    }
  }
  return true;
}

function shiftSackIn(frame: Buffer, loc: TcpLocation, delta: number): Result<number> {
  let blocks = 0;
  const start = loc.l4 + 20;
  const good = walkOptions(frame, start, loc.l4 + loc.thl, (type, off, len) => {
    // Same validity rule as the decoder: 2 + 8n bytes, n ≥ 1.
    if (type !== TCPOPT_SACK || len < 10 || (len - 2) % 8 !== 0) return;
    patchWithCsum(frame, loc.l4 + 16, loc.l4, off + 2, off + len, () => {
      for (let e = off + 2; e < off + len; e += 4) frame.writeUInt32BE((frame.readUInt32BE(e) + delta) >>> 0, e);
    });
    blocks += (len - 2) / 8;
  });
  if (!good) return err('bad_options', 'malformed TCP options; SACK blocks left untouched', start);
  return ok(blocks);
}

/**
 * Shifts every SACK block edge by delta (mod 2^32). Returns the number of blocks shifted.
 * Malformed options: error 'bad_options' and nothing is changed.
 */
export function shiftSackBlocks(frame: Buffer, delta: number): Result<number> {
  if (!isDelta(delta)) return err('bad_argument', `invalid delta ${delta}`);
  const r = locateTcpAny(frame);
  if (!r.ok) return r;
  return shiftSackIn(frame, r.value, delta);
}

/**
 * ack += delta (mod 2^32), and every SACK block edge by the same delta, as Linux
 * nf_conntrack_seqadj does (SACK edges are in the same sequence space as the ack). If the
 * options are malformed the ack is still shifted and the options are left untouched
 * (`sackBlocks` 0, `optionsMalformed` true).
 */
export function shiftTcpAck(frame: Buffer, delta: number): Result<{ sackBlocks: number; optionsMalformed: boolean }> {
  if (!isDelta(delta)) return err('bad_argument', `invalid delta ${delta}`);
  const r = locateTcpAny(frame);
  if (!r.ok) return r;
  shiftField(frame, r.value, 8, delta);
  const s = shiftSackIn(frame, r.value, delta);
  return ok(s.ok ? { sackBlocks: s.value, optionsMalformed: false } : { sackBlocks: 0, optionsMalformed: true });
}

/**
 * Shifts the timestamp option's TSval and/or TSecr (mod 2^32), for translating between two
 * servers' timestamp clocks. Returns true if a timestamp option was found and changed.
 */
export function shiftTcpTimestamps(frame: Buffer, deltas: { tsval?: number; tsecr?: number }): Result<boolean> {
  const dv = deltas.tsval ?? 0;
  const de = deltas.tsecr ?? 0;
  if (!isDelta(dv) || !isDelta(de)) return err('bad_argument', 'invalid timestamp delta');
  const r = locateTcpAny(frame);
  if (!r.ok) return r;
  const loc = r.value;
  let found = false;
  const good = walkOptions(frame, loc.l4 + 20, loc.l4 + loc.thl, (type, off, len) => {
    if (type !== TCPOPT_TIMESTAMP || len !== 10 || found) return;
    found = true;
    patchWithCsum(frame, loc.l4 + 16, loc.l4, off + 2, off + 10, () => {
      frame.writeUInt32BE((frame.readUInt32BE(off + 2) + dv) >>> 0, off + 2);
      frame.writeUInt32BE((frame.readUInt32BE(off + 6) + de) >>> 0, off + 6);
    });
  });
  if (!good) return err('bad_options', 'malformed TCP options; timestamps left untouched', loc.l4 + 20);
  return ok(found);
}

/** Sets the TCP window field (e.g. to translate between window-scale factors). */
export function rewriteTcpWindow(frame: Buffer, window: number): Result<void> {
  if (!Number.isInteger(window) || window < 0 || window > 0xffff) return err('bad_argument', `invalid window ${window}`);
  const r = locateTcpAny(frame);
  if (!r.ok) return r;
  const off = r.value.l4 + 14;
  const old = frame.readUInt16BE(off);
  frame.writeUInt16BE(window, off);
  updateCsum16(frame, r.value.l4 + 16, old, window);
  return ok(undefined);
}

const KIND_TYPES: Partial<Record<TcpOptionKind, number>> = { mss: 2, wscale: 3, sack_permitted: 4, sack: 5, timestamp: 8 };

/**
 * Overwrites options of the given kinds with NOPs, in place, keeping the header length (the
 * cheap alternative to stripTcpOptionsFromFrame). Returns how many options were blanked.
 */
export function nopOutTcpOptions(frame: Buffer, kinds: readonly TcpOptionKind[], unknownTypes: readonly number[] = []): Result<number> {
  const r = locateTcpAny(frame);
  if (!r.ok) return r;
  const loc = r.value;
  const types = new Set<number>(unknownTypes);
  for (const k of kinds) if (KIND_TYPES[k] !== undefined) types.add(KIND_TYPES[k]!);
  let n = 0;
  const good = walkOptions(frame, loc.l4 + 20, loc.l4 + loc.thl, (type, off, len) => {
    if (type === TCPOPT_NOP || !types.has(type)) return;
    patchWithCsum(frame, loc.l4 + 16, loc.l4, off, off + len, () => frame.fill(TCPOPT_NOP, off, off + len));
    n++;
  });
  if (!good) return err('bad_options', 'malformed TCP options; nothing changed', loc.l4 + 20);
  return ok(n);
}
