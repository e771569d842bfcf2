/** MAC, IPv4 and IPv6 address conversion between wire bytes and the string forms used in the API. */
import { err, ok, type Result } from './result.ts';

const MAC_RE = /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})$/;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Formats 6 bytes at `off` as lower-case 'aa:bb:cc:dd:ee:ff'. Caller guarantees bounds. */
export function formatMac(buf: Buffer, off = 0): string {
  return `${HEX[buf[off]!]}:${HEX[buf[off + 1]!]}:${HEX[buf[off + 2]!]}:${HEX[buf[off + 3]!]}:${HEX[buf[off + 4]!]}:${HEX[buf[off + 5]!]}`;
}

/** Parses 'aa:bb:cc:dd:ee:ff' (or '-' separated, any case) into 6 bytes. */
export function parseMac(s: string): Result<Buffer> {
  if (typeof s !== 'string') return err('bad_argument', 'MAC address must be a string');
  const m = MAC_RE.exec(s);
  if (!m) return err('bad_argument', `invalid MAC address ${JSON.stringify(s)}`);
  return ok(Buffer.from([m[1], m[3], m[4], m[5], m[6], m[7]].map((h) => parseInt(h!, 16))));
}

/** Formats the 32-bit big-endian value at `off` as a dotted quad. Caller guarantees bounds. */
export function formatIpv4(buf: Buffer, off = 0): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

/** Parses a strict dotted quad ('10.0.0.1'; no leading zeros, no shorthand) into a uint32. */
export function parseIpv4(s: string): Result<number> {
  if (typeof s !== 'string') return err('bad_argument', 'IPv4 address must be a string');
  const parts = s.split('.');
  if (parts.length !== 4) return err('bad_argument', `invalid IPv4 address ${JSON.stringify(s)}`);
  let v = 0;
  for (const p of parts) {
    // Leading zeros are rejected because some tools read them as octal.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return err('bad_argument', `invalid IPv4 address ${JSON.stringify(s)}`);
    const n = Number(p);
    if (n > 255) return err('bad_argument', `invalid IPv4 address ${JSON.stringify(s)}`);
    v = v * 256 + n;
  }
  return ok(v >>> 0);
}

/** Dotted quad → 4 network-order bytes. */
export function ipv4ToBytes(s: string): Result<Buffer> {
  const r = parseIpv4(s);
  if (!r.ok) return r;
  const b = Buffer.alloc(4);
  b.writeUInt32BE(r.value, 0);
  return ok(b);
}

export function ipv4FromUint32(n: number): string {
  const v = n >>> 0;
  return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}

/**
 * Formats the 16 bytes at `off` as RFC 5952 canonical text: lower case, no leading zeros, the
 * longest run (first on a tie) of two or more zero groups as '::'. The RFC 4291 IPv4-mapped and
 * IPv4-compatible forms are in mixed notation (RFC 5952 §5) exactly where glibc's inet_ntop
 * uses it ('::ffff:192.0.2.1', '::192.0.2.1' but '::1', '::102'), so the text equals what
 * ovs-ofctl, ip(8) and tcpdump print. Caller guarantees bounds.
 */
export function formatIpv6(buf: Buffer, off = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((buf[off + 2 * i]! << 8) | buf[off + 2 * i + 1]!);
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0) {
    if (g[5] === 0xffff) return `::ffff:${formatIpv4(buf, off + 12)}`;
    if (g[5] === 0 && g[6] !== 0) return `::${formatIpv4(buf, off + 12)}`;
  }
  let bestAt = -1;
  let bestLen = 1; // a single zero group is never compressed
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}

const IPV6_GROUP_RE = /^[0-9a-fA-F]{1,4}$/;

/**
 * Parses any valid RFC 4291 §2.2 text form into 16 bytes: full, '::'-compressed (leading,
 * inner, trailing), any case, and an embedded dotted quad in the last 32 bits. Zone ids
 * ('%eth0') and prefix lengths are rejected: neither is part of an address on the wire.
 */
export function parseIpv6(s: string): Result<Buffer> {
  if (typeof s !== 'string') return err('bad_argument', 'IPv6 address must be a string');
  const bad = () => err('bad_argument', `invalid IPv6 address ${JSON.stringify(s)}`);
  if (s.length < 2 || s.length > 45) return bad();
  const halves = s.split('::');
  if (halves.length > 2) return bad();
  const parseSide = (side: string): number[] | null => {
    if (side === '') return [];
    const parts = side.split(':');
    const out: number[] = [];
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIpv4(p);
        if (!v4.ok) return null;
        out.push(v4.value >>> 16, v4.value & 0xffff);
      } else if (IPV6_GROUP_RE.test(p)) {
        out.push(parseInt(p, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = parseSide(halves[0]!);
  const tail = halves.length === 2 ? parseSide(halves[1]!) : [];
  if (!head || !tail) return bad();
  // An embedded IPv4 address may only end the address, so not before a '::'.
  if (halves.length === 2 && halves[0]!.includes('.')) return bad();
  let groups: number[];
  if (halves.length === 2) {
    const fill = 8 - head.length - tail.length;
    if (fill < 1) return bad(); // '::' stands for at least one zero group
    groups = [...head, ...new Array<number>(fill).fill(0), ...tail];
  } else {
    if (head.length !== 8) return bad();
    groups = head;
  }
  const b = Buffer.alloc(16);
  groups.forEach((x, i) => b.writeUInt16BE(x, 2 * i));
  return ok(b);
}

/** Any valid IPv6 text → its RFC 5952 canonical form (so equal addresses compare equal as strings). */
export function canonicalIpv6(s: string): Result<string> {
  const r = parseIpv6(s);
  return r.ok ? ok(formatIpv6(r.value)) : r;
}

/**
 * Whether a text address is IPv6: config, flows and records write IPv6 with ':', IPv4 never, so
 * the family of an address travels with it.
 */
export function isIpv6Address(ip: string): boolean {
  return ip.includes(':');
}
