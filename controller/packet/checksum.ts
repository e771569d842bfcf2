/**
 * Internet checksum (RFC 1071), IPv4/IPv6 pseudo-headers, and incremental update (RFC 1624 eqn. 3).
 * Pure functions over Buffers; callers guarantee the ranges they pass are in bounds.
 */

/**
 * Ones-complement sum of buf[start, end) folded to 16 bits, added to `initial` (a previous
 * partial sum). An odd trailing byte is padded with a zero byte, as RFC 1071 requires.
 * Only valid as a partial sum when (end - start) is even, except for the last chunk.
 */
export function onesSum(buf: Buffer, start = 0, end = buf.length, initial = 0): number {
  let sum = initial;
  let i = start;
  // Summing 16-bit words into a double is exact up to 2^53, so fold only at the end.
  for (; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  return fold(sum);
}

/** Folds a non-negative integer to 16 bits with end-around carry. */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/** The Internet checksum of buf[start, end): ~onesSum. */
export function internetChecksum(buf: Buffer, start = 0, end = buf.length): number {
  return ~onesSum(buf, start, end) & 0xffff;
}

/** Ones-complement sum of the IPv4 pseudo-header (RFC 793 / RFC 768). */
export function pseudoHeaderSum(srcIp: number, dstIp: number, protocol: number, l4Length: number): number {
  return fold(
    (srcIp >>> 16) + (srcIp & 0xffff) + (dstIp >>> 16) + (dstIp & 0xffff) + protocol + l4Length,
  );
}

/**
 * Checksum of a TCP or UDP segment buf[start, end) with the IPv4 pseudo-header. The checksum
 * field inside the segment must be zeroed by the caller (or the result is used to verify: a
 * correct segment including its checksum field yields 0).
 */
export function l4Checksum(buf: Buffer, start: number, end: number, srcIp: number, dstIp: number, protocol: number): number {
  const ph = pseudoHeaderSum(srcIp >>> 0, dstIp >>> 0, protocol, end - start);
  return ~onesSum(buf, start, end, ph) & 0xffff;
}

/**
 * Ones-complement sum of the IPv6 pseudo-header (RFC 8200 §8.1): source and destination (the
 * first 16 bytes of each buffer), the 32-bit upper-layer length and the next-header value. With
 * a Routing header the destination is the final one (see Ipv6.pseudoDst).
 */
export function pseudoHeaderSum6(src: Buffer, dst: Buffer, nextHeader: number, l4Length: number): number {
  const s = onesSum(src, 0, 16, onesSum(dst, 0, 16));
  return fold(s + (l4Length >>> 16) + (l4Length & 0xffff) + nextHeader);
}

/**
 * Checksum of a TCP, UDP or ICMPv6 message buf[start, end) with the IPv6 pseudo-header; as
 * l4Checksum, a correct message including its checksum field yields 0.
 */
export function l4Checksum6(buf: Buffer, start: number, end: number, src: Buffer, dst: Buffer, nextHeader: number): number {
  return ~onesSum(buf, start, end, pseudoHeaderSum6(src, dst, nextHeader, end - start)) & 0xffff;
}

/**
 * RFC 1624 eqn. 3: new checksum after a 16-bit word changed from `oldWord` to `newWord`:
 * HC' = ~(~HC + ~m + m'). Unlike eqn. 2 this never turns a valid checksum into -0 wrongly.
 */
export function csumReplace16(hc: number, oldWord: number, newWord: number): number {
  const s = (~hc & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  return ~fold(s) & 0xffff;
}

/** RFC 1624 eqn. 3 for a 32-bit field (two 16-bit words at once), like Linux csum_replace4. */
export function csumReplace32(hc: number, oldValue: number, newValue: number): number {
  const o = oldValue >>> 0;
  const n = newValue >>> 0;
  const s = (~hc & 0xffff) + (~(o >>> 16) & 0xffff) + (~o & 0xffff) + (n >>> 16) + (n & 0xffff);
  return ~fold(s) & 0xffff;
}
