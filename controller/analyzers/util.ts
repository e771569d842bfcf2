// Small helpers shared by the socket-based alert sources.

/** Hex of the first bytes of a datagram, for log lines about garbage. */
export function headHex(b: Buffer, n = 16): string {
  return b.subarray(0, n).toString('hex') + (b.length > n ? '…' : '');
}
