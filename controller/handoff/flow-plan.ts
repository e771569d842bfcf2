// Pure "flow plan": the OpenFlow messages that implement each handoff step, and its inverse,
// adoption: the connection a set of flows read back from a switch stands for. No I/O, so every
// flow the engine installs can be checked in unit tests (and by ovs-ofctl in the cross-checks).
import {
  ctFlushMessage, flowMod, seqShiftAction, encodeMatch, encodeInstructions, OFPP, OFPTT, OFPFF, OFPCML_NO_BUFFER,
  type Action, type FlowStats, type Instruction, type Match, type OfpMessage,
} from '../openflow/index.ts';
import { APP_ID, appCookie, connCookie, connIdOf, connRoleOf, CONN_ROLE, CONN_ROLE_MASK, INTERCEPT_ROLE, interceptCookie, SHARED_INTERCEPT_INDEX } from '../cookies.ts';
import { decodeRecord, encodeRecord, RecordError, type LeftBackend, type SynRecord } from './connection-record.ts';
import type { SynAckSummary } from './option-policy.ts';
import { isIpv6Address } from '../packet/addr.ts';

/**
 * Two tables. Table 0 steers service traffic (to the service, or from a backend's service port)
 * on to table 1, copying FIN/RST segments to the controller on the way, before any rewrite: one
 * set of copy flows per service instead of four per connection. Table 1 holds each connection's
 * two flows (and a mid-stream move's freeze flows) above the intercept flows that send everything
 * else of a service to the controller. Other traffic (the learning switch) stays in table 0.
 * Table 2: FIN/RST copies of what passed ct on the way (a backend's FIN, copied unless its
 * connection is kept in conntrack) or kept out of it (flagCopyFlows).
 */
export const TABLE = { steer: 0, connection: 1, copy: 2 } as const;
/** `transit` (table 0) is above the service's steer and FIN/RST-copy flows: a transit switch neither intercepts nor copies. */
export const PRIORITY = { intercept: 100, interceptSyn: 101, leg: 102, conntrack: 120, conntrackReply: 121, steer: 100, bypass: 150, connection: 200, flagCopy: 210, transit: 220, freeze: 300, freezePush: 301, freezeAll: 302, copyOnward: 0, copyFlag: 110, copySkip: 120, ctExit: 215, synAckCt: 205, synAckCopy: 103 } as const;
export const PROBE_TABLE = 253;
const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;
const IPPROTO_TCP = 6;
const TCP_FIN = 0x01;
const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const TCP_PSH = 0x08;
/** Enough of a FIN/RST copy to read the headers; the controller needs no payload. */
const FLAG_COPY_LEN = 128;
const ALL_ONES = 0xffffffffffffffffn;

export type SwitchMode = 'fastpath' | 'relay';
export interface L2L4 { mac: string; ip: string; port: number }
export interface Attached extends L2L4 { ofport: number }

const toController = (maxLen = OFPCML_NO_BUFFER): Action => ({ type: 'output', port: OFPP.CONTROLLER, maxLen });

export interface ConnectionFlowSpec {
  /** The connection's id; cookies carry it (and the flow's role) so FLOW_REMOVED and packet-ins name it. */
  id: number;
  idleTimeout: number;
  client: Attached;
  /** What the client believes it talks to (server 1's MAC, the service address and port). */
  service: L2L4;
  backend: Attached;
  /** Added to the client's ack (and SACK edges) to land in the backend's sequence space. */
  ackDelta: number;
  mode: SwitchMode;
  /** Copy client → service segments to this port (an IDS) before any rewrite. */
  mirrorPort?: number;
  /** Copy client → service segments to the controller (the built-in matcher inspects them). */
  inspect?: boolean;
  /** What the flows must carry for a later controller to adopt the connection (a note action). */
  meta?: ConnectionMeta;
  /**
   * The connection is closing (FIN both ways, or a RST): its flows carry what still comes (a FIN
   * sent again because the first was lost past the switch, the last ACKs) until it has been quiet
   * for `idleTimeout` seconds, then the switch removes them itself. They report no removal and a
   * later controller does not adopt them (role `closing`).
   */
  closing?: boolean;
  /**
   * Migrated in conntrack, then moved again: its conntrack entry NATs the client's segments to this
   * backend (the entry's target), and cannot change. Two flows in table 0 keep the entry's two
   * directions (client → service, this backend → client) out of ct, so that the connection's own
   * flows see its segments as they are on the wire, as for any other connection (ctExitFlows).
   */
  ctExit?: { ip: string; port: number };
}

/** Seconds of quiet after which a closing connection's flows go: the grace, in OpenFlow's whole seconds. */
export function closingIdleTimeout(closeGraceMs: number): number {
  return Math.max(1, Math.ceil(closeGraceMs / 1000));
}

/** The parts of a connection's state that its matches and rewrites do not already say. */
export interface ConnectionMeta {
  serviceName: string;
  backendName: string;
  migrations: number;
  createdAt: number;
  syn?: SynRecord;
  synAck?: SynAckSummary;
  /** The backend the last move left (reset again by a controller that adopts the connection). */
  left?: LeftBackend;
  /** Its conntrack entry still carries the FORWARD mark (forwardVia 'conntrack', given flows since). */
  conntrackMarked?: boolean;
}

function noteFor(s: ConnectionFlowSpec): Action[] {
  if (!s.meta) return [];
  const m = s.meta;
  const data = encodeRecord({
    serviceName: m.serviceName, serviceMac: s.service.mac, clientMac: s.client.mac, backendName: m.backendName,
    backendMac: s.backend.mac, ackDelta: s.ackDelta, migrations: m.migrations, createdAt: m.createdAt, syn: m.syn, synAck: m.synAck, left: m.left,
    ...(m.conntrackMarked && { conntrackMarked: true }),
  });
  return [{ type: 'nx_note', data }];
}

export { interceptCookie };

/** A connection's addresses are all of one family (the switch translates addresses, not families). */
const isV6 = isIpv6Address;

/** A TCP match on addresses of either family; the IPv4 form is the one the plan always used. */
function tcpMatch(inPort: number | undefined, src: string | undefined, dst: string | undefined, tcpSrc: number | undefined, tcpDst: number | undefined): Match {
  const v6 = (src !== undefined && isV6(src)) || (dst !== undefined && isV6(dst));
  return {
    ...(inPort !== undefined && { inPort }),
    ethType: v6 ? ETH_IPV6 : ETH_IPV4, ipProto: IPPROTO_TCP,
    ...(src !== undefined && (v6 ? { ipv6Src: src } : { ipv4Src: src })),
    ...(dst !== undefined && (v6 ? { ipv6Dst: dst } : { ipv4Dst: dst })),
    ...(tcpSrc !== undefined && { tcpSrc }),
    ...(tcpDst !== undefined && { tcpDst }),
  };
}

const setIpSrc = (ip: string): Action => ({ type: 'set_field', field: isV6(ip) ? { ipv6Src: ip } : { ipv4Src: ip } });
const setIpDst = (ip: string): Action => ({ type: 'set_field', field: isV6(ip) ? { ipv6Dst: ip } : { ipv4Dst: ip } });

/** The source and destination address a match names, of either family (masked ones are not a connection's). */
function matchSrc(m: Match): string | undefined {
  return typeof m.ipv4Src === 'string' && m.ipv4Src ? m.ipv4Src : typeof m.ipv6Src === 'string' && m.ipv6Src ? m.ipv6Src : undefined;
}
function matchDst(m: Match): string | undefined {
  return typeof m.ipv4Dst === 'string' && m.ipv4Dst ? m.ipv4Dst : typeof m.ipv6Dst === 'string' && m.ipv6Dst ? m.ipv6Dst : undefined;
}

export function clientToServiceMatch(s: ConnectionFlowSpec | { client: Attached; service: L2L4 }): Match {
  return tcpMatch(s.client.ofport, s.client.ip, s.service.ip, s.client.port, s.service.port);
}

export function backendToClientMatch(s: ConnectionFlowSpec): Match {
  return tcpMatch(s.backend.ofport, s.backend.ip, s.client.ip, s.backend.port, s.client.port);
}

function isServiceItself(s: ConnectionFlowSpec): boolean {
  return s.backend.ip === s.service.ip && s.backend.port === s.service.port && s.backend.mac === s.service.mac && (s.ackDelta >>> 0) === 0;
}

/** Client → backend: NAT to the backend and shift the ack into its sequence space. */
export function clientToBackendActions(s: ConnectionFlowSpec): Action[] {
  const out: Action[] = [];
  if (s.mirrorPort !== undefined) out.push({ type: 'output', port: s.mirrorPort });
  if (s.inspect) out.push(toController());
  if (!isServiceItself(s)) {
    out.push({ type: 'set_field', field: { ethDst: s.backend.mac } });
    if (s.backend.ip !== s.service.ip) out.push(setIpDst(s.backend.ip));
    if (s.backend.port !== s.service.port) out.push({ type: 'set_field', field: { tcpDst: s.backend.port } });
    if ((s.ackDelta >>> 0) !== 0) out.push(seqShiftAction('ack', s.ackDelta));
  }
  out.push({ type: 'output', port: s.backend.ofport });
  return out;
}

/** Backend → client: make it look like the service and shift seq back into the client's view. */
export function backendToClientActions(s: ConnectionFlowSpec): Action[] {
  const out: Action[] = [];
  if (!isServiceItself(s)) {
    out.push({ type: 'set_field', field: { ethSrc: s.service.mac } });
    if (s.backend.ip !== s.service.ip) out.push(setIpSrc(s.service.ip));
    if (s.backend.port !== s.service.port) out.push({ type: 'set_field', field: { tcpSrc: s.service.port } });
    if ((s.ackDelta >>> 0) !== 0) out.push(seqShiftAction('seq', -s.ackDelta));
  }
  out.push({ type: 'output', port: s.client.ofport });
  return out;
}

/**
 * One of a connection's flows. Only the client → backend main flow (`notify`) reports its removal:
 * its idle timeout is the connection's (TCP keeps both directions busy together), and one
 * FLOW_REMOVED per teardown instead of six spares the channel.
 */
function add(spec: ConnectionFlowSpec, priority: number, match: Match, actions: Action[], role: bigint = CONN_ROLE.main, notify = false): OfpMessage {
  return addIn(TABLE.connection, spec, priority, match, [{ type: 'apply_actions', actions }], role, notify);
}

function addIn(tableId: number, spec: ConnectionFlowSpec, priority: number, match: Match, instructions: Instruction[], role: bigint, notify = false): OfpMessage {
  const closing = !!spec.closing;
  return flowMod({
    command: 'add', tableId, priority, cookie: connCookie(spec.id, closing ? CONN_ROLE.closing : role), idleTimeout: spec.idleTimeout,
    flags: notify && !closing ? OFPFF.SEND_FLOW_REM : 0,
    match, instructions,
  });
}

/**
 * A connection migrated in conntrack that moves again (spec.ctExit): in table 0, above the
 * service's FIN/RST copies, its client's segments and those of the entry's target go to table 2
 * without passing ct (which would NAT them to that target for ever), and from there, their FIN/RST
 * copied, to table 1. The connection's idle timeout, and closing like its other flows.
 */
function ctExitFlows(s: ConnectionFlowSpec, target: { ip: string; port: number }): OfpMessage[] {
  const on: Instruction[] = [{ type: 'goto_table', tableId: TABLE.copy }];
  return [
    addIn(TABLE.steer, s, PRIORITY.ctExit, clientToServiceMatch(s), on, CONN_ROLE.ctExit),
    addIn(TABLE.steer, s, PRIORITY.ctExit, tcpMatch(undefined, target.ip, s.client.ip, target.port, s.client.port), on, CONN_ROLE.ctExit),
  ];
}

/**
 * The conntrack entry of a connection that leaves ct for good, deleted (NXT_CT_FLUSH, Open vSwitch
 * 3.1+). Its segments may still pass ct, which without the entry neither marks nor NATs them, so its
 * own flows take them. Left in place, the entry (with ct-exit flows keeping the segments from it, it
 * would see no FIN and stay established for conntrack's timeout, a day in the userspace datapath)
 * would hand a later connection from the same client port its mark and NAT, past the controller and
 * the analyzer.
 */
export function conntrackExitFlush(zone: number, s: { client: { ip: string; port: number }; service: { ip: string; port: number } }): OfpMessage {
  return ctFlushMessage({ zone, ipProto: IPPROTO_TCP, orig: { src: s.client.ip, dst: s.service.ip, srcPort: s.client.port, dstPort: s.service.port } });
}

/** A stock switch can do the NAT part itself; only a sequence shift needs the controller. */
export function needsRelay(s: Pick<ConnectionFlowSpec, 'mode' | 'ackDelta'>): boolean {
  return s.mode === 'relay' && (s.ackDelta >>> 0) !== 0;
}

/**
 * The connection's flows, in table 1. Fast path: both directions rewritten in the switch (their
 * FIN/RST segments are copied to the controller by the service's flows in table 0). Relay (stock
 * switch with a shift): both directions go through the controller.
 */
export function connectionFlows(s: ConnectionFlowSpec): OfpMessage[] {
  const c2s = clientToServiceMatch(s);
  const s2c = backendToClientMatch(s);
  // The state note rides on the client → backend flow only; it is a no-op in the datapath.
  const note = noteFor(s);
  const flows = needsRelay(s)
    ? [add(s, PRIORITY.connection, c2s, [...note, toController()], CONN_ROLE.main, true), add(s, PRIORITY.connection, s2c, [toController()])]
    : [add(s, PRIORITY.connection, c2s, [...note, ...clientToBackendActions(s)], CONN_ROLE.main, true), add(s, PRIORITY.connection, s2c, backendToClientActions(s))];
  // Out of ct after the flows that then take its segments, never before.
  return s.ctExit ? [...flows, ...ctExitFlows(s, s.ctExit)] : flows;
}

/**
 * Mid-stream move: the client's next data segment is where the move happens. A segment with PSH
 * (the end of a client write; a pure ACK never has it) comes to the controller alone and is held
 * there; everything else keeps going to the current backend, with a copy to the controller, so a
 * download's ACKs are not slowed while the move waits, and data that follows a held segment is
 * still seen (and replayed to the target). OpenFlow cannot match "has payload": PSH is the signal.
 */
export function freezeFlows(s: ConnectionFlowSpec): OfpMessage[] {
  const m = clientToServiceMatch(s);
  const onward = clientToBackendActions({ ...s, inspect: false });
  return [
    flowMod({
      command: 'add', tableId: TABLE.connection, priority: PRIORITY.freezePush, cookie: connCookie(s.id, CONN_ROLE.freeze), hardTimeout: 60,
      match: { ...m, tcpFlags: { value: TCP_PSH, mask: TCP_PSH } }, instructions: [{ type: 'apply_actions', actions: [toController()] }],
    }),
    flowMod({
      command: 'add', tableId: TABLE.connection, priority: PRIORITY.freeze, cookie: connCookie(s.id, CONN_ROLE.freezeCopy), hardTimeout: 60,
      match: m, instructions: [{ type: 'apply_actions', actions: [toController(), ...onward] }],
    }),
  ];
}

/**
 * Once the move's segment is held, everything of the client's goes to the controller only: after
 * the move, a datapath megaflow cached from the freeze-copy flow would otherwise keep sending the
 * client's segments to the backend it left until the revalidator replaces it (hundreds of ms under
 * load). The splice waits `revalidateMs` after this flow, as the freeze itself does.
 */
export function fullFreezeFlow(spec: { id: number; client: Attached; service: L2L4 }): OfpMessage {
  return flowMod({
    command: 'add', tableId: TABLE.connection, priority: PRIORITY.freezeAll, cookie: connCookie(spec.id, CONN_ROLE.freeze), hardTimeout: 60,
    match: clientToServiceMatch(spec), instructions: [{ type: 'apply_actions', actions: [toController()] }],
  });
}

/**
 * The replay's target answers the controller through this flow, under the connection's cookie:
 * its SYN-ACKs to the client's port, exact addresses and ports. Sent only when a SYN went
 * unanswered (or the leg revisits addresses the connection used before): Open vSwitch can keep a
 * datapath flow from an earlier leg on the same addresses whose controller action no longer
 * delivers, seen in the fabric tests as a target answering every replayed SYN and the controller
 * getting none of it. A new rule for exactly that traffic makes the revalidators translate it
 * afresh. It expires by itself after `hardTimeout` seconds (the replay's retries); no delete is sent.
 */
export function legFlow(spec: { id: number; client: { ip: string; port: number }; target: { ip: string; port: number } }, hardTimeout: number): OfpMessage {
  return flowMod({
    command: 'add', tableId: TABLE.connection, priority: PRIORITY.leg, cookie: connCookie(spec.id, CONN_ROLE.leg), hardTimeout,
    match: { ...tcpMatch(undefined, spec.target.ip, spec.client.ip, spec.target.port, spec.client.port), tcpFlags: { value: TCP_SYN, mask: TCP_SYN } },
    instructions: [{ type: 'apply_actions', actions: [toController()] }],
  });
}

export function deleteFreezeFlows(spec: { id: number; client: Attached; service: L2L4 }): OfpMessage[] {
  const m = clientToServiceMatch(spec);
  return [
    flowMod({ command: 'delete_strict', tableId: TABLE.connection, priority: PRIORITY.freezeAll, cookie: connCookie(spec.id, CONN_ROLE.freeze), cookieMask: ALL_ONES, match: m }),
    flowMod({ command: 'delete_strict', tableId: TABLE.connection, priority: PRIORITY.freezePush, cookie: connCookie(spec.id, CONN_ROLE.freeze), cookieMask: ALL_ONES, match: { ...m, tcpFlags: { value: TCP_PSH, mask: TCP_PSH } } }),
    flowMod({ command: 'delete_strict', tableId: TABLE.connection, priority: PRIORITY.freeze, cookie: connCookie(spec.id, CONN_ROLE.freezeCopy), cookieMask: ALL_ONES, match: m }),
  ];
}

/**
 * Every flow of one connection (of the given roles; default: all), in every table: one delete per role, each by its
 * exact cookie. OVS finds rules by a cookie index only when the mask is all ones; any other mask
 * (one delete with the role bits masked out) walks the whole flow table, which at 10,000
 * connections stalled ovs-vswitchd for seconds per teardown (docs/benchmarks.md).
 */
export function deleteConnectionFlows(id: number, roles: readonly bigint[] = Object.values(CONN_ROLE)): OfpMessage[] {
  return roles.map((role) => flowMod({ command: 'delete', tableId: OFPTT.ALL, cookie: connCookie(id, role), cookieMask: ALL_ONES, match: {} }));
}

/**
 * A service's addresses (a dual-stack service's IPv6 one in `ip6`) and every backend address it may
 * use; `conntrackZone` for a service whose traffic passes conntrack (forwardVia or migrateVia
 * 'conntrack'); `conntrackNat` when its MIGRATE verdicts are kept there too (migrateVia), on a
 * switch that can take a shift's delta from a field.
 */
export interface InterceptSpec {
  index: number; service: { ip: string; ip6?: string; port: number }; backends: { ip: string; port: number }[];
  conntrackZone?: number; conntrackForward?: boolean; conntrackNat?: boolean;
}

// ------------------------------------------------------------------ FORWARD verdicts in conntrack
//
// A service with forwardVia 'conntrack' sends its traffic through ct(zone) on the way from table 0
// to table 1. The held segment of a FORWARDed connection leaves the controller committing the
// connection with ct_mark CT_FORWARDED and, in ct_label, the two switch ports its directions leave
// by (bits 0-15: the client's, 16-31: the backend's); two per-service flows in table 1 forward
// whatever carries that mark out of the port its label names. So a FORWARD verdict changes no flow
// table: no Flow-Mod, no datapath revalidation (docs/benchmarks.md, issue 13). The connection's
// later packets never reach the controller; its FIN/RST copies still do (table 0, before ct).

/** The zone when the config names none ('tm'). */
export const DEFAULT_CONNTRACK_ZONE = 0x746d;
/** How old a conntrack-FORWARDed connection gets before it is given flows of its own (handoff.conntrackFlowsAfterMs). */
export const DEFAULT_CONNTRACK_FLOWS_AFTER_MS = 2000;
/** ct_mark of a connection FORWARDed in conntrack; 0 once a move took it elsewhere. */
export const CT_FORWARDED = 1;
/** CS_TRACKED: the packet went through ct. */
const CS_TRACKED = 0x20;
/** The widest switch port a ct_label half holds (OpenFlow 1.0 port numbers, below the reserved ones). */
const CT_PORT_MAX = 0xfeff;

/** ct_label of a connection FORWARDed in conntrack: the ports of its two directions. */
export function conntrackLabel(clientPort: number, backendPort: number): bigint {
  return BigInt(clientPort) | (BigInt(backendPort) << 16n);
}

/** The inverse of conntrackLabel. */
export function conntrackLabelPorts(label: bigint): { client: number; backend: number } {
  return { client: Number(label & 0xffffn), backend: Number((label >> 16n) & 0xffffn) };
}

/** Whether a connection between these ports can be kept in conntrack (its ports fit the label). */
export function conntrackPortsFit(clientPort: number, backendPort: number): boolean {
  return [clientPort, backendPort].every((p) => Number.isInteger(p) && p >= 1 && p <= CT_PORT_MAX);
}

/**
 * A Packet-Out's actions for a segment of a connection FORWARDed in conntrack: (re)commit it with
 * its mark and ports (the same values every time, so a stray that raced the first commit does no
 * harm), then out of `outPort` directly: a packet sent back into the tables would meet ct again.
 */
export function conntrackForwardActions(zone: number, clientPort: number, backendPort: number, outPort: number): Action[] {
  return [
    { type: 'nx_ct', zone, commit: true, actions: [{ type: 'set_field', field: { ctMark: CT_FORWARDED } }, { type: 'set_field', field: { ctLabel: conntrackLabel(clientPort, backendPort) } }] },
    { type: 'output', port: outPort },
  ];
}

/**
 * The actions that take a connection out of conntrack's FORWARD path when a move gives it flows:
 * its entry's mark is set to 0 (by a Packet-Out of one of its client's segments, which goes no
 * further), so what the backend it left still sends meets the intercept flow, not the client.
 */
export function conntrackLeaveActions(zone: number): Action[] {
  return [{ type: 'nx_ct', zone, commit: true, actions: [{ type: 'set_field', field: { ctMark: 0 } }] }];
}

// ------------------------------------------------------------------ MIGRATE verdicts in conntrack
//
// A service with migrateVia 'conntrack' (on a switch whose shift actions take their delta from a
// field, ovs-patch 0008) passes its traffic through ct(zone, nat). The held segment of a MIGRATEd
// connection leaves the controller committing the connection with NAT to the target, ct_mark
// CT_MIGRATED with the two ports (bits 0-14 the client's, 15-29 the target's) and, in ct_label,
// the ack delta (bits 0-31), the target's MAC (32-79) and the service's (80-127). One flow per
// service turns what comes back (un-NATed to the service's address by ct) towards the client, and
// one shared flow per family sends the rest on to the target, each reading everything from ct:
// no Flow-Mod per connection. The entry's NAT cannot change, so such a connection stays where it
// went until its end (a later move is refused while its service keeps migrateVia 'conntrack').

/** ct_mark bit of a connection migrated in conntrack (its low 30 bits hold its two ports). */
export const CT_MIGRATED = 0x8000_0000;
/** The widest port the mark's halves hold. */
const CT_MIGRATED_PORT_MAX = 0x7fff;
const MAC_BITS = 48n;

/** Whether a connection between these ports can be migrated in conntrack (its ports fit the mark). */
export function conntrackMigratePortsFit(clientPort: number, backendPort: number): boolean {
  return [clientPort, backendPort].every((p) => Number.isInteger(p) && p >= 1 && p <= CT_MIGRATED_PORT_MAX);
}

/** ct_mark of a connection migrated in conntrack. */
export function conntrackMigratedMark(clientPort: number, backendPort: number): number {
  return (CT_MIGRATED | clientPort | (backendPort << 15)) >>> 0;
}

/** The inverse of conntrackMigratedMark (undefined for a mark without CT_MIGRATED). */
export function conntrackMigratedMarkPorts(mark: number): { client: number; backend: number } | undefined {
  if (!(mark & CT_MIGRATED)) return undefined;
  return { client: mark & CT_MIGRATED_PORT_MAX, backend: (mark >>> 15) & CT_MIGRATED_PORT_MAX };
}

const macToBig = (mac: string): bigint => BigInt(`0x${mac.replace(/:/g, '')}`);
const bigToMac = (v: bigint): string => v.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:');

/** ct_label of a connection migrated in conntrack: its ack delta, the target's MAC and the service's. */
export function conntrackMigratedLabel(ackDelta: number, backendMac: string, serviceMac: string): bigint {
  return BigInt(ackDelta >>> 0) | (macToBig(backendMac) << 32n) | (macToBig(serviceMac) << (32n + MAC_BITS));
}

/** The inverse of conntrackMigratedLabel. */
export function conntrackMigratedLabelParts(label: bigint): { ackDelta: number; backendMac: string; serviceMac: string } {
  const mask = (1n << MAC_BITS) - 1n;
  return { ackDelta: Number(label & 0xffffffffn), backendMac: bigToMac((label >> 32n) & mask), serviceMac: bigToMac((label >> (32n + MAC_BITS)) & mask) };
}

/**
 * A Packet-Out's actions for a client segment of a connection migrated in conntrack: commit it
 * (NAT to the target, the mark and label above; the same values every time, so a segment that
 * raced the first commit does no harm), then what the shared flow does, with the values at hand.
 */
export function conntrackMigrateActions(zone: number, s: Pick<ConnectionFlowSpec, 'client' | 'service' | 'backend' | 'ackDelta'>): Action[] {
  return [
    {
      type: 'nx_ct', zone, commit: true, actions: [
        { type: 'nx_nat', kind: 'dst', ipMin: s.backend.ip, portMin: s.backend.port },
        { type: 'set_field', field: { ctMark: conntrackMigratedMark(s.client.ofport, s.backend.ofport) } },
        { type: 'set_field', field: { ctLabel: conntrackMigratedLabel(s.ackDelta, s.backend.mac, s.service.mac) } },
      ],
    },
    { type: 'set_field', field: { ethDst: s.backend.mac } },
    ...((s.ackDelta >>> 0) !== 0 ? [seqShiftAction('ack', s.ackDelta)] : []),
    { type: 'output', port: s.backend.ofport },
  ];
}

const label = (ofs: number, nBits: number) => ({ field: 'ctLabel' as const, ofs, nBits });
const markBits = (ofs: number) => ({ field: 'ctMark' as const, ofs, nBits: 15 });
/** Out of the switch port a ct_label half names (bits ofs..ofs+15). */
const toLabelPort = (ofs: number): Action => ({ type: 'nx_output_reg', ...label(ofs, 16) });
/** What passed ct in the zone with this mark (the per-service and shared conntrack flows). */
const trackedMatch = (zone: number, ctMark: Match['ctMark']): Match => ({ ctState: { value: CS_TRACKED, mask: CS_TRACKED }, ctZone: zone, ctMark });
const migratedMatch = (zone: number): Match => trackedMatch(zone, { value: CT_MIGRATED, mask: CT_MIGRATED });

/**
 * In table 1, a service's half of the migrated-in-conntrack forwarding: what comes from its address
 * (a target's segment, which ct un-NATed) is a reply, and goes to the client with the service's
 * MAC and the sequence number shifted back into what the client expects. The direction is told by
 * address, not by ct's reply flag, which ct leaves off a segment its TCP window check fails.
 */
function conntrackMigratedReplyFlows(cookie: bigint, zone: number, fromService: Match[]): OfpMessage[] {
  return fromService.map((m) => flowMod({
    command: 'add', tableId: TABLE.connection, priority: PRIORITY.conntrackReply, cookie, match: { ...migratedMatch(zone), ...m },
    instructions: [{ type: 'apply_actions', actions: [
      { type: 'nx_reg_move', src: label(32 + Number(MAC_BITS), 48), dst: { field: 'ethSrc', ofs: 0, nBits: 48 } },
      { type: 'nx_dec_tcp_seq_reg', ...label(0, 32) },
      { type: 'nx_output_reg', ...markBits(0) },
    ] }],
  }));
}

/**
 * The shared half, one flow per address family for every service of the zone (cookie of no
 * service, SHARED_INTERCEPT_INDEX): the client's segments, NATed by ct, go to the target with its
 * MAC and the ack shifted into its sequence space.
 */
export function conntrackMigratedFlows(zone: number): OfpMessage[] {
  const cookie = interceptCookie(SHARED_INTERCEPT_INDEX, INTERCEPT_ROLE.ctMigrated);
  return [ETH_IPV4, ETH_IPV6].map((ethType) => flowMod({
    command: 'add', tableId: TABLE.connection, priority: PRIORITY.conntrack, cookie, match: { ...migratedMatch(zone), ethType, ipProto: IPPROTO_TCP },
    instructions: [{ type: 'apply_actions', actions: [
      { type: 'nx_reg_move', src: label(32, 48), dst: { field: 'ethDst', ofs: 0, nBits: 48 } },
      { type: 'nx_inc_tcp_ack_reg', ...label(0, 32) },
      { type: 'nx_output_reg', ...markBits(15) },
    ] }],
  }));
}

/** In table 1, the forwarding of a service's conntrack-FORWARDed connections: to the service by the backend's port, from it by the client's. */
function conntrackForwardFlows(cookie: bigint, zone: number, toService: Match[], fromPrimary: Match[]): OfpMessage[] {
  const tracked = trackedMatch(zone, CT_FORWARDED);
  const flow = (match: Match, ofs: number): OfpMessage => flowMod({
    command: 'add', tableId: TABLE.connection, priority: PRIORITY.conntrack, cookie, match: { ...tracked, ...match },
    instructions: [{ type: 'apply_actions', actions: [toLabelPort(ofs)] }],
  });
  return [...toService.map((m) => flow(m, 16)), ...fromPrimary.map((m) => flow(m, 0))];
}

/**
 * Table 2, on every switch: FIN/RST copies taken after ct, or without it. What arrives here: a
 * backend's FIN of a service that passes ct (after ct; a migrated-in-conntrack connection's
 * un-NATed), and every segment of a connection kept out of ct (ctExitFlows). Each goes on to table 1,
 * a FIN or RST copied to the controller first, except a FIN whose conntrack entry carries a verdict
 * (FORWARD or MIGRATE in conntrack): the controller ends such a connection at its client's FIN
 * instead (Teardown), one Packet-In fewer per connection. A FIN copied after ct is one of a
 * connection with no NAT in its entry, so it carries the addresses the connection is known by.
 * The copies' cookie is a service FIN/RST copy's (of no one service).
 */
export function flagCopyFlows(zone: number, ct = true): OfpMessage[] {
  const cookie = interceptCookie(SHARED_INTERCEPT_INDEX, INTERCEPT_ROLE.flagCopy);
  const on: Action = { type: 'nx_resubmit', inPort: OFPP.IN_PORT, tableId: TABLE.connection };
  const flow = (priority: number, match: Match, actions: Action[]): OfpMessage =>
    flowMod({ command: 'add', tableId: TABLE.copy, priority, cookie, match, instructions: [{ type: 'apply_actions', actions }] });
  return [
    flow(PRIORITY.copyOnward, {}, [on]),
    ...[ETH_IPV4, ETH_IPV6].flatMap((ethType) => [TCP_FIN, TCP_RST].map((flag) =>
      flow(PRIORITY.copyFlag, { ethType, ipProto: IPPROTO_TCP, tcpFlags: { value: flag, mask: flag } }, [toController(FLAG_COPY_LEN), on]))),
    // (A switch without a connection tracker refuses ct matches, and has no entries to skip for.)
    ...(ct ? [flow(PRIORITY.copySkip, trackedMatch(zone, CT_FORWARDED), [on]), flow(PRIORITY.copySkip, migratedMatch(zone), [on])] : []),
  ];
}

// ------------------------------------------------------------------ handshakes in conntrack
//
// A service that passes ct has its SYNs leave the controller committing the connection in the
// handshake zone (the verdict zone + 1) with mark CT_HANDSHAKE and the two ports in the label, so
// that server 1's SYN-ACK, through ct in that zone, goes from the switch straight to the client, a
// copy to the controller: one controller crossing fewer before the first byte. The client's ACK (or
// its first data segment, if it comes first) takes the mark away again, so that a later SYN-ACK of
// server 1 (a move back to it replays the same addresses) reaches the controller as ever.

/** ct_mark, in the handshake zone, of a connection whose SYN went to server 1 and is not yet acknowledged. */
export const CT_HANDSHAKE = 2;

/** The handshake zone: the verdict zone's neighbour (handoff.conntrackZone + 1). */
export function handshakeZoneOf(zone: number): number {
  return zone + 1;
}

/** Before the SYN's output: it commits the connection in the handshake zone, marked, with its two ports. */
export function conntrackHandshakeActions(zone: number, clientPort: number, backendPort: number): Action[] {
  return [{ type: 'nx_ct', zone: handshakeZoneOf(zone), commit: true, actions: [
    { type: 'set_field', field: { ctMark: CT_HANDSHAKE } }, { type: 'set_field', field: { ctLabel: conntrackLabel(clientPort, backendPort) } },
  ] }];
}

/** Before the client's ACK's output (or alone, with its first data segment): the handshake mark goes. */
export function conntrackHandshakeDoneActions(zone: number): Action[] {
  return [{ type: 'nx_ct', zone: handshakeZoneOf(zone), commit: true, actions: [{ type: 'set_field', field: { ctMark: 0 } }] }];
}

/** tcp_flags=+fin-rst: a segment with both is the RST copy flow's, which copies it always. */
const FIN_NOT_RST = { value: TCP_FIN, mask: TCP_FIN | TCP_RST };

/**
 * A service's flows: in table 0, its traffic (client → service, and anything from a backend's
 * service port) steered to table 1, FIN/RST segments copied to the controller first (truncated:
 * only the headers matter; a service that passes conntrack: a backend's FIN through ct to table 2,
 * flagCopyFlows); in table 1, below the connections' flows, the rest to the controller.
 */
export function interceptFlows(s: InterceptSpec): OfpMessage[] {
  const cookie = interceptCookie(s.index);
  const copyCookie = interceptCookie(s.index, INTERCEPT_ROLE.flagCopy);
  const serviceIps = [s.service.ip, ...(s.service.ip6 !== undefined ? [s.service.ip6] : [])];
  const matches: Match[] = serviceIps.map((ip) => tcpMatch(undefined, undefined, ip, undefined, s.service.port));
  const fromBackends: Match[] = [];
  const seen = new Set<string>();
  for (const b of s.backends) {
    const k = `${b.ip}:${b.port}`;
    if (seen.has(k)) continue;
    seen.add(k);
    fromBackends.push(tcpMatch(undefined, b.ip, undefined, b.port, undefined));
  }
  const toService = [...matches];
  matches.push(...fromBackends);
  const zone = s.conntrackZone;
  // Through conntrack on the way to table 1 (applying a migrated connection's NAT), or straight there.
  const ct = (table: number): Action => ({ type: 'nx_ct', zone: zone!, table, ...(s.conntrackNat && { actions: [{ type: 'nx_nat' }] }) });
  const toConnTable: Instruction = zone === undefined
    ? { type: 'goto_table', tableId: TABLE.connection }
    : { type: 'apply_actions', actions: [ct(TABLE.connection)] };
  const flows: OfpMessage[] = [];
  // A backend's SYN-ACK goes up through a flow of its own. Same action, but the datapath flow it
  // leaves behind then matches SYN segments only: the backend's first data segment after the
  // connection's flows went in cannot take that cached path to the controller (a Packet-In and a
  // Packet-Out more, and its latency) while the revalidators catch up; it is translated afresh.
  for (const match of fromBackends) {
    flows.push(flowMod({ command: 'add', tableId: TABLE.connection, priority: PRIORITY.interceptSyn, cookie, match: { ...match, tcpFlags: { value: TCP_SYN, mask: TCP_SYN } }, instructions: [{ type: 'apply_actions', actions: [toController()] }] }));
  }
  for (const match of matches) {
    flows.push(flowMod({ command: 'add', tableId: TABLE.steer, priority: PRIORITY.steer, cookie, match, instructions: [toConnTable] }));
    for (const flag of [TCP_FIN, TCP_RST]) {
      if (zone !== undefined && flag === TCP_FIN && fromBackends.includes(match)) {
        // Through ct to table 2, which copies it unless its connection is kept in conntrack.
        flows.push(flowMod({
          command: 'add', tableId: TABLE.steer, priority: PRIORITY.flagCopy, cookie: copyCookie, match: { ...match, tcpFlags: FIN_NOT_RST },
          instructions: [{ type: 'apply_actions', actions: [ct(TABLE.copy)] }],
        }));
        continue;
      }
      flows.push(flowMod({
        command: 'add', tableId: TABLE.steer, priority: PRIORITY.flagCopy, cookie: copyCookie, match: { ...match, tcpFlags: { value: flag, mask: flag } },
        instructions: toConnTable.type === 'goto_table'
          ? [{ type: 'apply_actions', actions: [toController(FLAG_COPY_LEN)] }, toConnTable]
          : [{ type: 'apply_actions', actions: [toController(FLAG_COPY_LEN), ...toConnTable.actions] }],
      }));
    }
    flows.push(flowMod({ command: 'add', tableId: TABLE.connection, priority: PRIORITY.intercept, cookie, match, instructions: [{ type: 'apply_actions', actions: [toController()] }] }));
  }
  if (zone !== undefined) {
    // Server 1's SYN-ACK: through ct in the handshake zone; with the mark its SYN left, straight to
    // the client, copied to the controller (headers and options: the copy length is enough).
    const hz = handshakeZoneOf(zone);
    const synAckCookie = interceptCookie(s.index, INTERCEPT_ROLE.synAckCopy);
    for (const match of fromBackends) {
      const syn = { ...match, tcpFlags: { value: TCP_SYN, mask: TCP_SYN } };
      flows.push(flowMod({ command: 'add', tableId: TABLE.steer, priority: PRIORITY.synAckCt, cookie, match: syn, instructions: [{ type: 'apply_actions', actions: [{ type: 'nx_ct', zone: hz, table: TABLE.connection }] }] }));
      flows.push(flowMod({
        command: 'add', tableId: TABLE.connection, priority: PRIORITY.synAckCopy, cookie: synAckCookie, match: { ...trackedMatch(hz, CT_HANDSHAKE), ...syn },
        instructions: [{ type: 'apply_actions', actions: [toController(FLAG_COPY_LEN), toLabelPort(0)] }],
      }));
    }
  }
  // FORWARD goes to the primary, and a migrated connection's replies are un-NATed: from the service's addresses.
  const fromService = serviceIps.map((ip) => tcpMatch(undefined, ip, undefined, s.service.port, undefined));
  if (zone !== undefined && s.conntrackForward !== false) flows.push(...conntrackForwardFlows(cookie, zone, toService, fromService));
  if (zone !== undefined && s.conntrackNat) flows.push(...conntrackMigratedReplyFlows(cookie, zone, fromService));
  return flows;
}

export interface TransitSpec { id: number; src: { ip: string; port: number }; dst: { ip: string; port: number }; outPort: number; idleTimeout: number }

/**
 * On a fabric switch the connection only passes (not its client's): its packets of one direction,
 * as they are on the wire there, go on towards their destination without reaching the service's
 * steer and copy flows. The client's switch does the interception, NAT and shifts.
 */
export function transitFlow(t: TransitSpec): OfpMessage {
  return flowMod({
    command: 'add', tableId: TABLE.steer, priority: PRIORITY.transit, cookie: connCookie(t.id, CONN_ROLE.transit), idleTimeout: t.idleTimeout,
    match: tcpMatch(undefined, t.src.ip, t.dst.ip, t.src.port, t.dst.port), instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: t.outPort }] }],
  });
}

/** The transit flows of one connection, or (no id) of every connection: on a path change they are learnt again. */
export function deleteTransitFlows(id?: number): OfpMessage {
  return id === undefined
    ? flowMod({ command: 'delete', tableId: TABLE.steer, cookie: connCookie(0, CONN_ROLE.transit), cookieMask: CONN_ROLE_MASK, match: {} })
    : flowMod({ command: 'delete', tableId: TABLE.steer, cookie: connCookie(id, CONN_ROLE.transit), cookieMask: ALL_ONES, match: {} });
}

/** Cookie of bypass flows: intercept-owned (a switch reconcile replaces them with the intercept flows). */
export const BYPASS_COOKIE = appCookie(APP_ID.intercept, 0xb7a55n << 24n);
/** Seconds a bypass flow outlives its last packet. */
export const BYPASS_IDLE_TIMEOUT = 10;

export interface BypassSpec { inPort: number; src: { ip: string; port: number }; dst: { ip: string; port: number } }

function bypassMatch(b: BypassSpec): Match {
  return tcpMatch(b.inPort, b.src.ip, b.dst.ip, b.src.port, b.dst.port);
}

/**
 * Traffic from a backend's service port that belongs to no intercepted connection (a client
 * talking to the backend directly) is caught by the intercept flows; this flow forwards the rest
 * of it in the switch instead of one Packet-In per packet.
 */
export function bypassFlow(b: BypassSpec, outPort: number): OfpMessage {
  return flowMod({
    command: 'add', tableId: TABLE.connection, priority: PRIORITY.bypass, cookie: BYPASS_COOKIE, idleTimeout: BYPASS_IDLE_TIMEOUT,
    match: bypassMatch(b), instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: outPort }] }],
  });
}

/** A replay to a backend must reach the controller: any bypass flow for the same addresses goes first. */
export function deleteBypassFlow(b: BypassSpec): OfpMessage {
  return flowMod({ command: 'delete_strict', tableId: TABLE.connection, priority: PRIORITY.bypass, cookie: BYPASS_COOKIE, cookieMask: ALL_ONES, match: bypassMatch(b) });
}

/**
 * The intercept flows `plan` over those a switch has (`present`): the adds first, each replacing a
 * flow of the same table, priority and match in place, so the switch never lacks one (a segment of
 * a connection it carries in the dark, migrated without a flow of its own, would otherwise take the
 * learnt L2 path to server 1 raw, and server 1 would reset it); then a strict delete of each present
 * flow the plan does not hold (a removed service's, a bypass flow).
 */
export function interceptsOver(plan: OfpMessage[], present: FlowStats[]): OfpMessage[] {
  const key = (f: { tableId?: number; priority?: number; match?: Match }) => `${f.tableId ?? 0}|${f.priority ?? 0}|${encodeMatch(f.match ?? {}).toString('hex')}`;
  const planned = new Set(plan.flatMap((m) => (m.type === 'flow_mod' ? [key(m)] : [])));
  const stale = present.filter((f) => !planned.has(key(f)));
  return [...plan, ...stale.map((f) => flowMod({ command: 'delete_strict', tableId: f.tableId, priority: f.priority, cookie: f.cookie, cookieMask: ALL_ONES, match: f.match }))];
}

/**
 * A flow using inc_tcp_seq in a scratch table: the switch rejects it unless it has the patch; and one
 * taking the delta from a field, which it rejects unless it has ovs-patch 0008.
 */
export function probeFlows(): { addCt: OfpMessage; add: OfpMessage; addFromField: OfpMessage; remove: OfpMessage } {
  const cookie = appCookie(APP_ID.core, 0xbeefn);
  const match: Match = { ethType: ETH_IPV4, ipProto: IPPROTO_TCP };
  return {
    addCt: flowMod({ command: 'add', tableId: PROBE_TABLE, priority: 3, cookie, match, instructions: [{ type: 'apply_actions', actions: [{ type: 'nx_ct', zone: DEFAULT_CONNTRACK_ZONE }] }] }),
    add: flowMod({ command: 'add', tableId: PROBE_TABLE, priority: 1, cookie, match, instructions: [{ type: 'apply_actions', actions: [seqShiftAction('seq', 1)] }] }),
    addFromField: flowMod({ command: 'add', tableId: PROBE_TABLE, priority: 2, cookie, match, instructions: [{ type: 'apply_actions', actions: [{ type: 'nx_inc_tcp_seq_reg', field: 'ctLabel', ofs: 32, nBits: 32 }] }] }),
    remove: flowMod({ command: 'delete', tableId: PROBE_TABLE, cookie, cookieMask: ALL_ONES, match: {} }),
  };
}

// ---------------------------------------------------------------- adoption (the inverse)

/** What adoption needs from the running controller: the switch's mode and the service's current settings. */
export interface AdoptionContext {
  mode: SwitchMode;
  /** The service by name, or undefined when it is no longer configured. */
  service(name: string): { mirrorPort?: number; inspect: boolean } | undefined;
}

export type Adoption =
  /** `exact`: the switch holds precisely the flows the plan gives for `spec` (else: reinstall them). */
  | { ok: true; id: number; spec: ConnectionFlowSpec & { meta: ConnectionMeta }; exact: boolean }
  | { ok: false; id: number; why: string };

function actionsOfFlow(f: { instructions: Instruction[] }): Action[] {
  const i = f.instructions.find((x) => x.type === 'apply_actions');
  return i && 'actions' in i ? i.actions : [];
}

/** One flow on the wire (table, priority, cookie, timeouts, removal notice, match and instructions), for comparing plan and switch. */
function flowKey(f: { tableId?: number; priority?: number; cookie?: bigint; idleTimeout?: number; hardTimeout?: number; flags?: number; match?: Match; instructions?: Instruction[] }): string {
  const instr = (f.instructions ?? []).map((i) => (i.type === 'apply_actions'
    ? { ...i, actions: i.actions.map((a) => (a.type === 'nx_note' ? { ...a, data: stripZeros(a.data) } : a)) } : i));
  return [f.tableId ?? 0, f.priority ?? 0, (f.cookie ?? 0n).toString(16), f.idleTimeout ?? 0, f.hardTimeout ?? 0, (f.flags ?? 0) & OFPFF.SEND_FLOW_REM, encodeMatch(f.match ?? {}).toString('hex'), encodeInstructions(instr).toString('hex')].join('|');
}

function stripZeros(b: Buffer): Buffer {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return b.subarray(0, end);
}

/**
 * The connection that one connection id's flows (as read back with flow stats) stand for: the
 * client → backend flow's match names the client and the service, the backend → client flow's
 * match names the backend, and the note on the first carries the rest. The result is checked by
 * planning the flows again: anything else on the switch (a freeze flow, a missing FIN/RST copy,
 * a changed service setting) makes the adoption inexact, and the caller reinstalls.
 */
export function adoptConnection(flows: FlowStats[], ctx: AdoptionContext): Adoption {
  const id = connIdOf(flows[0]?.cookie ?? 0n) ?? -1;
  const main = flows.filter((f) => connRoleOf(f.cookie) === CONN_ROLE.main && f.priority === PRIORITY.connection);
  const noted = main.filter((f) => actionsOfFlow(f).some((a) => a.type === 'nx_note'));
  if (noted.length !== 1) return { ok: false, id, why: noted.length ? 'more than one flow carries a state note' : 'no flow carries a state note (flows of an older version, or edited by hand)' };
  const c2s = noted[0];
  const note = actionsOfFlow(c2s).find((a) => a.type === 'nx_note') as { data: Buffer };
  let rec;
  try { rec = decodeRecord(note.data); } catch (e) { return { ok: false, id, why: e instanceof RecordError ? e.message : String(e) }; }
  const m = c2s.match;
  const clientIp = matchSrc(m);
  const serviceIp = matchDst(m);
  if (m.inPort === undefined || !clientIp || !serviceIp || m.tcpSrc === undefined || m.tcpDst === undefined) {
    return { ok: false, id, why: 'the client → service flow does not match one TCP connection' };
  }
  const client = { mac: rec.clientMac, ip: clientIp, port: m.tcpSrc, ofport: m.inPort };
  const s2c = main.find((f) => f !== c2s && matchDst(f.match) === client.ip && f.match.tcpDst === client.port);
  const b = s2c?.match;
  const backendIp = b && matchSrc(b);
  if (!b || b.inPort === undefined || !backendIp || b.tcpSrc === undefined) return { ok: false, id, why: 'no backend → client flow' };
  const service = ctx.service(rec.serviceName);
  if (!service) return { ok: false, id, why: `service '${rec.serviceName}' is not configured` };
  // Kept out of ct: the exit flow of the entry's target names it (the plan check below wants both).
  const exit = flows.find((f) => connRoleOf(f.cookie) === CONN_ROLE.ctExit && matchDst(f.match) === client.ip && f.match.tcpDst === client.port);
  const exitIp = exit && matchSrc(exit.match);
  const ctExit = exitIp && exit.match.tcpSrc !== undefined ? { ip: exitIp, port: exit.match.tcpSrc } : undefined;
  const spec: ConnectionFlowSpec & { meta: ConnectionMeta } = {
    id, idleTimeout: c2s.idleTimeout, mode: ctx.mode, ackDelta: rec.ackDelta,
    client, service: { mac: rec.serviceMac, ip: serviceIp, port: m.tcpDst },
    backend: { mac: rec.backendMac, ip: backendIp, port: b.tcpSrc, ofport: b.inPort },
    mirrorPort: service.mirrorPort, inspect: service.inspect, ...(ctExit && { ctExit }),
    meta: { serviceName: rec.serviceName, backendName: rec.backendName, migrations: rec.migrations, createdAt: rec.createdAt, syn: rec.syn, synAck: rec.synAck, ...(rec.left ? { left: rec.left } : {}), ...(rec.conntrackMarked && { conntrackMarked: true }) },
  };
  return { ok: true, id, spec, exact: flowsMatchPlan(spec, flows) };
}

/** Whether the switch holds exactly the flows the plan gives for `spec` (nothing missing, nothing else). */
export function flowsMatchPlan(spec: ConnectionFlowSpec, flows: FlowStats[]): boolean {
  const planned = connectionFlows(spec).map((f) => flowKey(f as Extract<OfpMessage, { type: 'flow_mod' }>)).sort();
  const present = flows.map((f) => flowKey(f)).sort();
  return planned.length === present.length && planned.every((k, i) => k === present[i]);
}

/** Groups flows by the connection id in their cookies (flows of other apps are left out). */
export function flowsByConnection(flows: FlowStats[]): Map<number, FlowStats[]> {
  const out = new Map<number, FlowStats[]>();
  for (const f of flows) {
    const id = connIdOf(f.cookie);
    if (id === undefined) continue;
    const list = out.get(id);
    if (list) list.push(f); else out.set(id, [f]);
  }
  return out;
}
