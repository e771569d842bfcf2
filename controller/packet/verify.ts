/** Full checksum verification and recomputation on a raw frame. */
import { internetChecksum, l4Checksum } from './checksum.ts';
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, writeIpv4HeaderChecksum } from './ipv4.ts';
import { locateIpv4 } from './locate.ts';
import { err, ok, type Result } from './result.ts';

export interface ChecksumStatus {
  /** IPv4 header checksum correct. */
  ip: boolean;
  /** TCP/UDP/ICMP checksum correct; true when there is nothing to check (see l4Checked). */
  l4: boolean;
  /** False for non-first fragments, first fragments (checksum covers other frames), other protocols. */
  l4Checked: boolean;
}

/** Verifies the IPv4 header checksum and the TCP/UDP (pseudo-header) or ICMP checksum. */
export function verifyChecksums(frame: Buffer): Result<ChecksumStatus> {
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
