/** MAC and IPv4 address conversion between wire bytes and the string forms used in the API. */
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
