/** Full checksum verification and recomputation on a raw frame (IPv4 or IPv6). */
import { internetChecksum, l4Checksum, l4Checksum6 } from './checksum.ts';
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, writeIpv4HeaderChecksum } from './ipv4.ts';
import { IPPROTO_ICMPV6 } from './ipv6.ts';
import { locateIpv4, locateIpv6 } from './locate.ts';
import { err, ok, type Result } from './result.ts';

export interface ChecksumStatus {
  /** IPv4 header checksum correct (always true for IPv6, which has none). */
  ip: boolean;
  /** TCP/UDP/ICMP checksum correct; true when there is nothing to check (see l4Checked). */
  l4: boolean;
  /** False for non-first fragments, first fragments (checksum covers other frames), other protocols. */
  l4Checked: boolean;
}

/**
 * Verifies the IPv4 header checksum and the TCP/UDP (pseudo-header) or ICMP checksum, or over
 * IPv6 the TCP/UDP/ICMPv6 checksum (pseudo-header with the final destination). A zero UDP
 * checksum means "none" over IPv4 and is wrong over IPv6 (RFC 8200 §8.1).
 */
export function verifyChecksums(frame: Buffer): Result<ChecksumStatus> {
  const v6 = ipv6Upper(frame);
  if (v6) {
    if (!v6.ok) return v6;
    const { l4, end, protocol, src, dst } = v6.value;
    if (l4 < 0) return ok({ ip: true, l4: true, l4Checked: false });
    const c = checksummedRange6(frame, protocol, l4, end);
    if (!c.ok) return c;
    if (!c.value) return ok({ ip: true, l4: true, l4Checked: false });
    return ok({ ip: true, l4: l4Checksum6(frame, l4, c.value.end, src, dst, protocol) === 0, l4Checked: true });
  }
  const r = locateIpv4(frame);
  if (!r.ok) return r;
  const { l3, hl, end, protocol, l4 } = r.value;
  const ip = internetChecksum(frame, l3, l3 + hl) === 0;
  const mf = (frame[l3 + 6]! & 0x20) !== 0;
  if (l4 < 0 || mf) return ok({ ip, l4: true, l4Checked: false });
  const src = frame.readUInt32BE(l3 + 12);
  const dst = frame.readUInt32BE(l3 + 16);
  if (protocol === IPPROTO_TCP) {
    if (end - l4 < 20) return err('truncated', 'TCP header truncated', l4);
    return ok({ ip, l4: l4Checksum(frame, l4, end, src, dst, IPPROTO_TCP) === 0, l4Checked: true });
  }
  if (protocol === IPPROTO_UDP) {
    if (end - l4 < 8) return err('truncated', 'UDP header truncated', l4);
    const ulen = frame.readUInt16BE(l4 + 4);
    if (ulen < 8 || ulen > end - l4) return err('bad_value', `bad UDP length ${ulen}`, l4 + 4);
    if (frame.readUInt16BE(l4 + 6) === 0) return ok({ ip, l4: true, l4Checked: false });
    return ok({ ip, l4: l4Checksum(frame, l4, l4 + ulen, src, dst, IPPROTO_UDP) === 0, l4Checked: true });
  }
  if (protocol === IPPROTO_ICMP) {
    if (end - l4 < 8) return err('truncated', 'ICMP header truncated', l4);
    return ok({ ip, l4: internetChecksum(frame, l4, end) === 0, l4Checked: true });
  }
  return ok({ ip, l4: true, l4Checked: false });
}

/**
 * Recomputes the IPv4 header checksum and the TCP/UDP/ICMP checksum from scratch, in place.
 * The reference the incremental helpers are tested against.
 */
export function recomputeChecksums(frame: Buffer): Result<void> {
  const v6 = ipv6Upper(frame);
  if (v6) {
    if (!v6.ok) return v6;
    const { l4, end, protocol, src, dst } = v6.value;
    if (l4 < 0) return ok(undefined);
    const c = checksummedRange6(frame, protocol, l4, end);
    if (!c.ok) return c;
    if (!c.value) return ok(undefined);
    frame.writeUInt16BE(0, c.value.csumOff);
    let sum = l4Checksum6(frame, l4, c.value.end, src, dst, protocol);
    if (protocol === IPPROTO_UDP && sum === 0) sum = 0xffff;
    frame.writeUInt16BE(sum, c.value.csumOff);
    return ok(undefined);
  }
  const r = locateIpv4(frame);
  if (!r.ok) return r;
  const { l3, hl, end, protocol, l4 } = r.value;
  const mf = (frame[l3 + 6]! & 0x20) !== 0;
  let csumOff = -1;
  let cend = end;
  if (l4 >= 0 && !mf) {
    if (protocol === IPPROTO_TCP && end - l4 >= 20) csumOff = l4 + 16;
    else if (protocol === IPPROTO_UDP && end - l4 >= 8) {
      const ulen = frame.readUInt16BE(l4 + 4);
      if (ulen >= 8 && ulen <= end - l4 && frame.readUInt16BE(l4 + 6) !== 0) {
        csumOff = l4 + 6;
        cend = l4 + ulen;
      }
    } else if (protocol === IPPROTO_ICMP && end - l4 >= 8) csumOff = l4 + 2;
  }
  writeIpv4HeaderChecksum(frame, l3, hl);
  if (csumOff >= 0) {
    frame.writeUInt16BE(0, csumOff);
    let c: number;
    if (protocol === IPPROTO_ICMP) c = internetChecksum(frame, l4, end);
    else c = l4Checksum(frame, l4, cend, frame.readUInt32BE(l3 + 12), frame.readUInt32BE(l3 + 16), protocol);
    if (protocol === IPPROTO_UDP && c === 0) c = 0xffff;
    frame.writeUInt16BE(c, csumOff);
  }
  return ok(undefined);
}

/** The upper layer of an IPv6 frame for its checksum: none behind any fragment header (the checksum covers other frames). */
function ipv6Upper(frame: Buffer): Result<{ l4: number; end: number; protocol: number; src: Buffer; dst: Buffer }> | null {
  const r = locateIpv6(frame, 'none');
  if (!r || !r.ok) return r;
  const { l4, end, protocol, ip } = r.value;
  return ok({ l4, end, protocol, src: ip.srcBytes, dst: ip.pseudoDstBytes });
}

/** The checksum field and the end of the range it covers, for TCP/UDP/ICMPv6; null for other protocols. */
function checksummedRange6(frame: Buffer, protocol: number, l4: number, end: number): Result<{ csumOff: number; end: number } | null> {
  if (protocol === IPPROTO_TCP) {
    if (end - l4 < 20) return err('truncated', 'TCP header truncated', l4);
    return ok({ csumOff: l4 + 16, end });
  }
  if (protocol === IPPROTO_UDP) {
    if (end - l4 < 8) return err('truncated', 'UDP header truncated', l4);
    const ulen = frame.readUInt16BE(l4 + 4);
    if (ulen < 8 || ulen > end - l4) return err('bad_value', `bad UDP length ${ulen}`, l4 + 4);
    return ok({ csumOff: l4 + 6, end: l4 + ulen });
  }
  if (protocol === IPPROTO_ICMPV6) {
    if (end - l4 < 8) return err('truncated', 'ICMPv6 header truncated', l4);
    return ok({ csumOff: l4 + 2, end });
  }
  return ok(null);
}
