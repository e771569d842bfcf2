/**
 * LLDP (IEEE 802.1AB) for link discovery between the controller's own switches: the controller
 * sends a probe out of every port (chassis id "dpid:<16 hex digits>" and port id the OpenFlow port
 * number in decimal, both locally assigned text, which tshark shows without warnings) and learns a
 * link when the probe comes back as a Packet-In on another switch's port.
 *
 * The decoder takes any well-formed LLDPDU (other devices' too); `lldpProbe` then says whether it
 * is one of ours. Like the rest of the codec, decoders return Results and never throw.
 */
import { decodeEthernet, encodeEthernet } from './ethernet.ts';
import { err, ok, PacketBuildError, unwrapOrThrow, type Result } from './result.ts';

export const ETHERTYPE_LLDP = 0x88cc;
/** Nearest-bridge group address: bridges never forward it, so a probe crosses exactly one link. */
export const LLDP_MULTICAST = '01:80:c2:00:00:0e';

export const LLDP_TLV = { END: 0, CHASSIS_ID: 1, PORT_ID: 2, TTL: 3 } as const;
export const CHASSIS_SUBTYPE_LOCAL = 7;
export const PORT_SUBTYPE_LOCAL = 7;
/** Ethernet's minimum frame length without FCS; probes are zero-padded to it. */
const MIN_FRAME = 60;
const DPID_PREFIX = 'dpid:';

export interface LldpTlv { type: number; value: Buffer }

export interface Lldp {
  chassisSubtype: number;
  chassisId: Buffer;
  portSubtype: number;
  portId: Buffer;
  /** Seconds the receiver may keep this information. */
  ttl: number;
  /** Optional TLVs between TTL and End, in order (values are views into the input). */
  optional: LldpTlv[];
}

/** The sender of one of our probes: the switch (16 hex digits, as dpidString) and its port. */
export interface LldpProbe { dpid: string; port: number; ttl: number }

/** Decodes an LLDPDU starting at `off` (the byte after the EtherType). Padding after End is ignored. */
export function decodeLldp(buf: Buffer, off: number): Result<Lldp> {
  if (!Buffer.isBuffer(buf)) return err('bad_argument', 'decodeLldp expects a Buffer');
  if (!Number.isInteger(off) || off < 0 || off > buf.length) return err('bad_argument', `invalid offset ${off}`);
  const tlvs: (LldpTlv & { at: number })[] = [];
  let p = off;
  for (;;) {
    // 802.1AB-2016 made End optional: a PDU may simply stop after its last TLV.
    if (p === buf.length && tlvs.length >= 3) break;
    if (buf.length - p < 2) return err('truncated', 'LLDP TLV header truncated', p);
    const h = buf.readUInt16BE(p);
    const type = h >> 9;
    const len = h & 0x1ff;
    if (buf.length - p - 2 < len) return err('truncated', `LLDP TLV type ${type} announces ${len} bytes, ${buf.length - p - 2} left`, p);
    if (type === LLDP_TLV.END) {
      if (len !== 0) return err('bad_value', `LLDP End TLV with length ${len}`, p);
      break;
    }
    tlvs.push({ type, value: buf.subarray(p + 2, p + 2 + len), at: p });
    p += 2 + len;
  }
  const [chassis, port, ttl, ...rest] = tlvs;
  // The three mandatory TLVs come first and in this order.
  if (!chassis || chassis.type !== LLDP_TLV.CHASSIS_ID) return err('bad_value', 'LLDPDU does not start with a Chassis ID TLV', chassis?.at ?? off);
  if (chassis.value.length < 2 || chassis.value.length > 256) return err('bad_value', `Chassis ID TLV length ${chassis.value.length} outside 2..256`, chassis.at);
  if (!port || port.type !== LLDP_TLV.PORT_ID) return err('bad_value', 'second LLDP TLV is not a Port ID', port?.at ?? off);
  if (port.value.length < 2 || port.value.length > 256) return err('bad_value', `Port ID TLV length ${port.value.length} outside 2..256`, port.at);
  if (!ttl || ttl.type !== LLDP_TLV.TTL) return err('bad_value', 'third LLDP TLV is not a TTL', ttl?.at ?? off);
  if (ttl.value.length !== 2) return err('bad_value', `TTL TLV length ${ttl.value.length}, expected 2`, ttl.at);
  for (const t of rest) {
    if (t.type === LLDP_TLV.CHASSIS_ID || t.type === LLDP_TLV.PORT_ID || t.type === LLDP_TLV.TTL) return err('bad_value', `mandatory LLDP TLV type ${t.type} repeated`, t.at);
  }
  return ok({
    chassisSubtype: chassis.value[0]!,
    chassisId: chassis.value.subarray(1),
    portSubtype: port.value[0]!,
    portId: port.value.subarray(1),
    ttl: ttl.value.readUInt16BE(0),
    optional: rest.map(({ type, value }) => ({ type, value })),
  });
}

/** Decodes a whole Ethernet frame carrying LLDP (`not_applicable` for any other EtherType). */
export function decodeLldpFrame(frame: Buffer): Result<{ src: string; dst: string; lldp: Lldp }> {
  if (!Buffer.isBuffer(frame)) return err('bad_argument', 'decodeLldpFrame expects a Buffer');
  const e = decodeEthernet(frame);
  if (!e.ok) return e;
  if (e.value.ethType !== ETHERTYPE_LLDP) return err('not_applicable', `EtherType 0x${e.value.ethType.toString(16)} is not LLDP`, 12);
  const l = decodeLldp(frame, e.value.l3Offset);
  if (!l.ok) return l;
  return ok({ src: e.value.src, dst: e.value.dst, lldp: l.value });
}

/** Our probe's sender, or `unsupported` for an LLDPDU some other device sent. */
export function lldpProbe(l: Lldp): Result<LldpProbe> {
  if (l.chassisSubtype !== CHASSIS_SUBTYPE_LOCAL) return err('unsupported', `chassis id subtype ${l.chassisSubtype} is not ours`);
  const text = l.chassisId.toString('latin1');
  if (!/^dpid:[0-9a-f]{16}$/.test(text)) return err('unsupported', `chassis id ${JSON.stringify(text.slice(0, 40))} is not a datapath id`);
  const portText = l.portId.toString('latin1');
  const port = /^(0|[1-9][0-9]{0,9})$/.test(portText) ? Number(portText) : NaN;
  if (l.portSubtype !== PORT_SUBTYPE_LOCAL || !(port <= 0xffffffff)) return err('unsupported', `port id ${JSON.stringify(portText.slice(0, 20))} (subtype ${l.portSubtype}) is not an OpenFlow port number`);
  return ok({ dpid: text.slice(DPID_PREFIX.length), port, ttl: l.ttl });
}

export interface LldpSpec {
  chassisSubtype: number;
  chassisId: Buffer;
  portSubtype: number;
  portId: Buffer;
  ttl: number;
  optional?: LldpTlv[];
}

/** Encodes an LLDPDU (mandatory TLVs, optional ones, End). */
export function encodeLldp(spec: LldpSpec): Result<Buffer> {
  const u8 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xff;
  if (!u8(spec.chassisSubtype) || !u8(spec.portSubtype)) return err('bad_argument', 'LLDP subtypes are one byte');
  if (!Buffer.isBuffer(spec.chassisId) || spec.chassisId.length < 1 || spec.chassisId.length > 255) return err('bad_argument', 'LLDP chassis id must be 1..255 bytes');
  if (!Buffer.isBuffer(spec.portId) || spec.portId.length < 1 || spec.portId.length > 255) return err('bad_argument', 'LLDP port id must be 1..255 bytes');
  if (!Number.isInteger(spec.ttl) || spec.ttl < 0 || spec.ttl > 0xffff) return err('bad_argument', `invalid LLDP TTL ${spec.ttl}`);
  const ttl = Buffer.alloc(2);
  ttl.writeUInt16BE(spec.ttl, 0);
  const tlvs: LldpTlv[] = [
    { type: LLDP_TLV.CHASSIS_ID, value: Buffer.concat([Buffer.from([spec.chassisSubtype]), spec.chassisId]) },
    { type: LLDP_TLV.PORT_ID, value: Buffer.concat([Buffer.from([spec.portSubtype]), spec.portId]) },
    { type: LLDP_TLV.TTL, value: ttl },
  ];
  for (const t of spec.optional ?? []) {
    if (!Number.isInteger(t.type) || t.type < 4 || t.type > 127) return err('bad_argument', `optional LLDP TLV type ${t.type} outside 4..127`);
    if (!Buffer.isBuffer(t.value) || t.value.length > 511) return err('bad_argument', 'LLDP TLV value must be at most 511 bytes');
    tlvs.push(t);
  }
  const parts: Buffer[] = [];
  for (const t of tlvs) {
    const h = Buffer.alloc(2);
    h.writeUInt16BE((t.type << 9) | t.value.length, 0);
    parts.push(h, t.value);
  }
  parts.push(Buffer.alloc(2)); // End
  return ok(Buffer.concat(parts));
}

export interface LldpProbeSpec {
  /** The switch's datapath id: a bigint or up to 16 hex digits. */
  dpid: bigint | string;
  /** OpenFlow port number the probe leaves by. */
  port: number;
  /** Source MAC: the port's own address. */
  srcMac: string;
  /** Seconds; default 120 (802.1AB's default hold time × interval). */
  ttl?: number;
}

/** Builds one of our probes as a full Ethernet frame (zero-padded to 60 bytes). Throws PacketBuildError. */
export function buildLldpFrame(spec: LldpProbeSpec): Buffer {
  const dpid = typeof spec.dpid === 'bigint' ? spec.dpid : /^[0-9a-fA-F]{1,16}$/.test(spec.dpid) ? BigInt('0x' + spec.dpid) : undefined;
  if (dpid === undefined || dpid < 0n || dpid > 0xffffffffffffffffn) throw new PacketBuildError('bad_argument', `invalid datapath id ${String(spec.dpid)}`);
  if (!Number.isInteger(spec.port) || spec.port < 0 || spec.port > 0xffffffff) throw new PacketBuildError('bad_argument', `invalid port ${spec.port}`);
  const eth = unwrapOrThrow(encodeEthernet({ dst: LLDP_MULTICAST, src: spec.srcMac, ethType: ETHERTYPE_LLDP }));
  const pdu = unwrapOrThrow(encodeLldp({
    chassisSubtype: CHASSIS_SUBTYPE_LOCAL, chassisId: Buffer.from(DPID_PREFIX + dpid.toString(16).padStart(16, '0'), 'latin1'),
    portSubtype: PORT_SUBTYPE_LOCAL, portId: Buffer.from(String(spec.port), 'latin1'), ttl: spec.ttl ?? 120,
  }));
  const frame = Buffer.concat([eth, pdu]);
  return frame.length >= MIN_FRAME ? frame : Buffer.concat([frame, Buffer.alloc(MIN_FRAME - frame.length)]);
}
