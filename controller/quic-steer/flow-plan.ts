// Pure flow plan of QUIC services: the OpenFlow messages that steer a service's UDP traffic and
// NAT one client's datagrams to its backend, and the controller-side rewrite of a held datagram.
// No I/O, so every flow can be checked in unit tests. The layout is the TCP engine's
// (handoff/flow-plan.ts): table 0 steers a service's traffic to table 1, where per-client flows
// (priority 200) sit above the intercept flows that send the rest to the controller (priority 100).
import { flowMod, OFPP, OFPTT, OFPFF, OFPCML_NO_BUFFER, type Action, type Match, type OfpMessage } from '../openflow/index.ts';
import { APP_ID, appCookie, COOKIE_APP_MASK, cookieApp } from '../cookies.ts';
import { TABLE } from '../handoff/flow-plan.ts';
import { rewriteEthDst, rewriteEthSrc, rewriteIpDst, rewriteIpSrc, rewriteL4DstPort, rewriteL4SrcPort, type Result } from '../packet/index.ts';

export { TABLE };
export const PRIORITY = { intercept: 100, steer: 100, connection: 200 } as const;
const ETH_IPV4 = 0x0800;
const IPPROTO_UDP = 17;
const ALL_ONES = 0xffffffffffffffffn;

/**
 * Cookies: the app byte (APP_ID.quic), a role byte, and 48 low bits: the service's index for
 * its steering flows, the connection's id for its NAT flows.
 */
export const QUIC_ROLE = { steer: 0n, connection: 1n } as const;
const ROLE_SHIFT = 48n;
const LOW_MASK = (1n << ROLE_SHIFT) - 1n;
export function steerCookie(serviceIndex: number): bigint { return appCookie(APP_ID.quic, (QUIC_ROLE.steer << ROLE_SHIFT) | BigInt(serviceIndex)); }
export function quicConnCookie(id: number): bigint { return appCookie(APP_ID.quic, (QUIC_ROLE.connection << ROLE_SHIFT) | (BigInt(id) & LOW_MASK)); }
/** The connection id a cookie of this app names, or undefined (a steering flow, another app's flow). */
export function quicConnIdOf(cookie: bigint): number | undefined {
  if (cookieApp(cookie) !== APP_ID.quic || ((cookie >> ROLE_SHIFT) & 0xffn) !== QUIC_ROLE.connection) return undefined;
  return Number(cookie & LOW_MASK);
}

export interface L2L4 { mac: string; ip: string; port: number }
export interface Attached extends L2L4 { ofport: number }

const toController: Action = { type: 'output', port: OFPP.CONTROLLER, maxLen: OFPCML_NO_BUFFER };

function udpMatch(m: { inPort?: number; src?: string; dst?: string; srcPort?: number; dstPort?: number }): Match {
  return {
    ...(m.inPort !== undefined && { inPort: m.inPort }),
    ethType: ETH_IPV4, ipProto: IPPROTO_UDP,
    ...(m.src !== undefined && { ipv4Src: m.src }),
    ...(m.dst !== undefined && { ipv4Dst: m.dst }),
    ...(m.srcPort !== undefined && { udpSrc: m.srcPort }),
    ...(m.dstPort !== undefined && { udpDst: m.dstPort }),
  };
}

/** A service's address:port, and every backend address:port its answers may come from. */
export interface SteerSpec { index: number; service: { ip: string; port: number }; backends: { ip: string; port: number }[] }

/**
 * A service's flows: in table 0, UDP to the service (and from a backend's service port: the
 * answers that the NAT flows turn back into the service's) goes on to table 1; in table 1, below
 * the clients' NAT flows, the rest goes to the controller.
 */
export function steerFlows(s: SteerSpec): OfpMessage[] {
  const cookie = steerCookie(s.index);
  const matches = [udpMatch({ dst: s.service.ip, dstPort: s.service.port })];
  const seen = new Set<string>();
  for (const b of s.backends) {
    const k = `${b.ip}:${b.port}`;
    if (seen.has(k)) continue;
    seen.add(k);
    matches.push(udpMatch({ src: b.ip, srcPort: b.port }));
  }
  return matches.flatMap((match) => [
    flowMod({ command: 'add', tableId: TABLE.steer, priority: PRIORITY.steer, cookie, match, instructions: [{ type: 'goto_table', tableId: TABLE.connection }] }),
    flowMod({ command: 'add', tableId: TABLE.connection, priority: PRIORITY.intercept, cookie, match, instructions: [{ type: 'apply_actions', actions: [toController] }] }),
  ]);
}

/** Every steering flow of every QUIC service (services may have been renumbered since). */
export function deleteAllSteerFlows(): OfpMessage {
  return flowMod({ command: 'delete', tableId: OFPTT.ALL, cookie: appCookie(APP_ID.quic, QUIC_ROLE.steer << ROLE_SHIFT), cookieMask: COOKIE_APP_MASK | (0xffn << ROLE_SHIFT), match: {} });
}

export interface NatSpec {
  /** The connection's id, in its flows' cookies (FLOW_REMOVED names it). */
  id: number;
  idleTimeout: number;
  client: Attached;
  /** What the client believes it talks to: the primary's MAC, the service address and port. */
  service: L2L4;
  backend: Attached;
}

export function clientToServiceMatch(s: Pick<NatSpec, 'client' | 'service'>): Match {
  return udpMatch({ inPort: s.client.ofport, src: s.client.ip, dst: s.service.ip, srcPort: s.client.port, dstPort: s.service.port });
}

export function backendToClientMatch(s: Pick<NatSpec, 'client' | 'backend'>): Match {
  return udpMatch({ inPort: s.backend.ofport, src: s.backend.ip, dst: s.client.ip, srcPort: s.backend.port, dstPort: s.client.port });
}

/** Client → backend: to the backend's MAC, address and port (only what differs is rewritten). */
export function clientToBackendActions(s: NatSpec): Action[] {
  const out: Action[] = [];
  if (s.backend.mac !== s.service.mac) out.push({ type: 'set_field', field: { ethDst: s.backend.mac } });
  if (s.backend.ip !== s.service.ip) out.push({ type: 'set_field', field: { ipv4Dst: s.backend.ip } });
  if (s.backend.port !== s.service.port) out.push({ type: 'set_field', field: { udpDst: s.backend.port } });
  out.push({ type: 'output', port: s.backend.ofport });
  return out;
}

/** Backend → client: from the service's MAC, address and port, as the client expects. */
export function backendToClientActions(s: NatSpec): Action[] {
  const out: Action[] = [];
  if (s.backend.mac !== s.service.mac) out.push({ type: 'set_field', field: { ethSrc: s.service.mac } });
  if (s.backend.ip !== s.service.ip) out.push({ type: 'set_field', field: { ipv4Src: s.service.ip } });
  if (s.backend.port !== s.service.port) out.push({ type: 'set_field', field: { udpSrc: s.service.port } });
  out.push({ type: 'output', port: s.client.ofport });
  return out;
}

/**
 * One client's two NAT flows in table 1. Both idle out by themselves; only the client → backend
 * flow reports its removal (QUIC acknowledges in both directions, so the client's side going
 * quiet is the connection going quiet), and the app then deletes the other. With `copyAnswers`
 * the backend → client flow also copies each answer to the controller, which reads the server's
 * chosen connection ID from its first long header and then takes the copy off (`stopCopying`):
 * OpenFlow cannot match QUIC header bits, and the answers must not wait for the controller.
 */
export function natFlows(s: NatSpec, o: { copyAnswers?: boolean } = {}): OfpMessage[] {
  const cookie = quicConnCookie(s.id);
  return [
    flowMod({ command: 'add', tableId: TABLE.connection, priority: PRIORITY.connection, cookie, idleTimeout: s.idleTimeout, flags: OFPFF.SEND_FLOW_REM, match: clientToServiceMatch(s), instructions: [{ type: 'apply_actions', actions: clientToBackendActions(s) }] }),
    backendToClientFlow(s, 'add', o.copyAnswers ?? false),
  ];
}

function backendToClientFlow(s: NatSpec, command: 'add' | 'modify_strict', copy: boolean): OfpMessage {
  // The copy first: it carries the backend's own address and port, as the controller tracks them.
  const actions = [...(copy ? [toController] : []), ...backendToClientActions(s)];
  return flowMod({ command, tableId: TABLE.connection, priority: PRIORITY.connection, cookie: quicConnCookie(s.id), idleTimeout: s.idleTimeout, match: backendToClientMatch(s), instructions: [{ type: 'apply_actions', actions }] });
}

/** The backend → client flow without its copy to the controller (its counters and timeout kept). */
export function stopCopying(s: NatSpec): OfpMessage { return backendToClientFlow(s, 'modify_strict', false); }

/** Both NAT flows of one connection, by their exact cookie (OVS finds them by its cookie index). */
export function deleteNatFlows(id: number): OfpMessage {
  return flowMod({ command: 'delete', tableId: OFPTT.ALL, cookie: quicConnCookie(id), cookieMask: ALL_ONES, match: {} });
}

/** A client datagram as the client → backend flow would send it (a copy; the input is not changed). */
export function rewriteToBackend(frame: Buffer, s: NatSpec): Result<Buffer> {
  const out = Buffer.from(frame);
  for (const r of [
    s.backend.mac !== s.service.mac ? rewriteEthDst(out, s.backend.mac) : undefined,
    s.backend.ip !== s.service.ip ? rewriteIpDst(out, s.backend.ip) : undefined,
    s.backend.port !== s.service.port ? rewriteL4DstPort(out, s.backend.port) : undefined,
  ]) if (r && !r.ok) return r;
  return { ok: true, value: out };
}

/** A backend datagram as the backend → client flow would send it (a copy). */
export function rewriteToClient(frame: Buffer, s: NatSpec): Result<Buffer> {
  const out = Buffer.from(frame);
  for (const r of [
    s.backend.mac !== s.service.mac ? rewriteEthSrc(out, s.service.mac) : undefined,
    s.backend.ip !== s.service.ip ? rewriteIpSrc(out, s.service.ip) : undefined,
    s.backend.port !== s.service.port ? rewriteL4SrcPort(out, s.service.port) : undefined,
  ]) if (r && !r.ok) return r;
  return { ok: true, value: out };
}
