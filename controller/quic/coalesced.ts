/**
 * Splitting a UDP datagram into its coalesced QUIC packets (RFC 9000 §12.2). Long headers of
 * known versions carry a Length, so packets can be walked; anything else (short header,
 * Version Negotiation, Retry, unknown version) runs to the end of the datagram.
 */
import { ok, qerr, type QuicResult } from './result.ts';
import { isLongHeader, parseLongHeader, parsePacketHeader, type PacketHeader } from './header.ts';

/** More packets than a datagram can usefully hold (one per packet number space, plus slack). */
export const MAX_COALESCED_PACKETS = 8;

export interface SplitDatagram {
  /** Packets in datagram order; each knows its `offset` and `packetLength`. */
  packets: PacketHeader[];
  /** Packets skipped because their DCID differs from the first one's (RFC 9000 §12.2 SHOULD ignore). */
  ignoredPackets: number;
  /** Bytes after the last packet that do not parse as one, ignored like a receiver would. */
  trailingBytes: number;
}

export interface SplitOptions {
  /** DCID length of short-header packets; default the first packet's DCID length. */
  shortDcidLen?: number;
  maxPackets?: number;
}

export function splitDatagram(datagram: Buffer, opts: SplitOptions = {}): QuicResult<SplitDatagram> {
  if (!Buffer.isBuffer(datagram)) return qerr('bad_argument', 'not a Buffer');
  const max = opts.maxPackets ?? MAX_COALESCED_PACKETS;
  const first = parsePacketHeader(datagram, 0, { shortDcidLen: opts.shortDcidLen ?? 0 });
  if (!first.ok) return first;
  const out: SplitDatagram = { packets: [first.value], ignoredPackets: 0, trailingBytes: 0 };
  let at = first.value.packetLength;
  const dcid = first.value.dcid;
  while (at < datagram.length) {
    if (out.packets.length + out.ignoredPackets >= max) return qerr('limit', `more than ${max} coalesced packets`, at);
    // After the first packet a parse failure is not the datagram's fault: senders may pad a
    // datagram with zeros outside any packet, and receivers drop what they cannot read.
    if (isZero(datagram, at)) {
      out.trailingBytes = datagram.length - at;
      break;
    }
    const h = isLongHeader(datagram[at]!)
      ? parseLongHeader(datagram, at)
      : parsePacketHeader(datagram, at, { shortDcidLen: opts.shortDcidLen ?? dcid.length });
    if (!h.ok) {
      out.trailingBytes = datagram.length - at;
      break;
    }
    if (h.value.dcid.equals(dcid)) out.packets.push(h.value);
    else out.ignoredPackets++;
    at += h.value.packetLength;
  }
  return ok(out);
}

function isZero(b: Buffer, from: number): boolean {
  for (let i = from; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
