/**
 * In-place rewrites of a raw Ethernet/IPv4 frame with incremental checksum updates
 * (RFC 1624 eqn. 3), mirroring what OVS set-field and the patched inc/dec_tcp_seq/ack actions
 * do in the datapath. Every helper validates the frame first and changes nothing when it
 * returns an error, and none of them throws.
 */
import { parseIpv4, parseMac } from './addr.ts';
import { csumReplace16, csumReplace32, fold, onesSum } from './checksum.ts';
import { IPPROTO_TCP, IPPROTO_UDP } from './ipv4.ts';
import { locateIpv4, locateL4Ports, locateTcp, type TcpLocation } from './locate.ts';
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

function rewriteIpv4Addr(frame: Buffer, ip: string | number, which: 'src' | 'dst'): Result<void> {
  const a = toIp(ip);
  if (!a.ok) return a;
  const r = locateIpv4(frame);
  if (!r.ok) return r;
  const loc = r.value;
  // The L4 checksum covers the address through the pseudo-header; it lives in this frame
  // only if this is the first (or only) fragment.
  let l4Csum = -1;
  let udp = false;
  if (loc.l4 >= 0 && loc.protocol === IPPROTO_TCP) {
    if (loc.end - loc.l4 < 20) return err('truncated', 'TCP header truncated', loc.l4);
    l4Csum = loc.l4 + 16;
  } else if (loc.l4 >= 0 && loc.protocol === IPPROTO_UDP) {
    if (loc.end - loc.l4 < 8) return err('truncated', 'UDP header truncated', loc.l4);
    l4Csum = loc.l4 + 6;
    udp = true;
  }
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

function rewritePort(frame: Buffer, port: number, which: 'src' | 'dst'): Result<void> {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) return err('bad_argument', `invalid port ${port}`);
  const r = locateL4Ports(frame);
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
  const r = locateTcp(frame);
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
  const r = locateTcp(frame);
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
  const r = locateTcp(frame);
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
  const r = locateTcp(frame);
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
  const r = locateTcp(frame);
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
  const r = locateTcp(frame);
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
