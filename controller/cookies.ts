// Flow cookies: the top byte names the app that owns a flow, so an operator reading
// `ovs-ofctl dump-flows` (and the controller itself, on FLOW_REMOVED) can tell them apart.
export const COOKIE_APP_SHIFT = 56n;
export const COOKIE_APP_MASK = 0xffn << COOKIE_APP_SHIFT;
/**
 * fabric: the multi-switch forwarding app (controller/fabric/), which replaces the learning switch when configured.
 * quic: QUIC services' steering and NAT flows (controller/quic-steer/).
 */
export const APP_ID = { core: 0x01n, learning: 0x02n, intercept: 0x03n, fabric: 0x04n, quic: 0x05n, connection: 0x10n } as const;

export function appCookie(app: bigint, low = 0n): bigint { return (app << COOKIE_APP_SHIFT) | (low & ((1n << COOKIE_APP_SHIFT) - 1n)); }
export function cookieApp(cookie: bigint): bigint { return cookie >> COOKIE_APP_SHIFT; }

/** Per-connection cookies: app byte, a role byte (which of the connection's flows), a 48-bit id. */
/**
 * The roles of a connection's flows (in its cookie, above the id).
 * - `freeze`: a mid-stream move's data segments to the controller; `freezeCopy`: the rest forwarded
 *   with a copy.
 * - `flags`: per-connection FIN/RST copies of the one-table layout (replaced by per-service copies;
 *   still recognised, and deleted, in flows adopted from a switch set up by an older controller).
 * - `transit`: on a fabric switch other than the connection's own, the flows that only carry its
 *   packets (handoff/transit.ts).
 * - `closing`: a closing connection's two flows, replaced with a short idle timeout so that the
 *   switch itself removes them once the connection has gone quiet (handoff/teardown.ts).
 * - `leg`: while a replay's target has not answered, its SYN-ACKs for the client's port go to the
 *   controller through a flow of the connection's own (handoff/move.ts: a stale cached path must
 *   not swallow them); gone by a hard timeout.
 * - `ctExit`: a connection migrated in conntrack that moves again (or that left conntrack on a switch
 *   that cannot delete its entry): two flows in table 0 that keep its packets (the entry's two
 *   directions) out of ct, whose NAT cannot change (handoff/conntrack.ts).
 */
export const CONN_ROLE = { main: 0n, flags: 1n, freeze: 2n, freezeCopy: 3n, transit: 4n, closing: 5n, leg: 6n, ctExit: 7n } as const;
const ROLE_SHIFT = 48n;
const ID_MASK = (1n << ROLE_SHIFT) - 1n;
export function connCookie(id: number, role: bigint = CONN_ROLE.main): bigint { return appCookie(APP_ID.connection, (role << ROLE_SHIFT) | (BigInt(id) & ID_MASK)); }
/** Mask that selects every flow of one connection whatever its role. */
export const CONN_COOKIE_MASK = COOKIE_APP_MASK | ID_MASK;
export function connIdOf(cookie: bigint): number | undefined {
  return cookieApp(cookie) === APP_ID.connection ? Number(cookie & ID_MASK) : undefined;
}
export function connRoleOf(cookie: bigint): bigint { return (cookie >> ROLE_SHIFT) & 0xffn; }
/** Mask that selects one role of every connection (with connCookie(0, role)). */
export const CONN_ROLE_MASK = COOKIE_APP_MASK | (0xffn << ROLE_SHIFT);

/**
 * A service's flows: intercept (steering in table 0, to the controller in table 1) and flagCopy
 * (FIN/RST copies in table 0, whose Packet-Ins are copies of packets the switch also forwarded).
 * Bypass flows use role 0 with a marker in the low bits.
 */
export const INTERCEPT_ROLE = { intercept: 0n, flagCopy: 1n, ctMigrated: 2n, synAckCopy: 3n } as const;
/** The service index of flows no one service owns (the forwarding of connections migrated in conntrack). */
export const SHARED_INTERCEPT_INDEX = 0xffff;
export function interceptCookie(serviceIndex: number, role: bigint = INTERCEPT_ROLE.intercept): bigint {
  return appCookie(APP_ID.intercept, (role << ROLE_SHIFT) | BigInt(serviceIndex));
}
/** Whether a Packet-In is a copy of server 1's SYN-ACK, which the switch sent to the client itself (a service that passes conntrack). */
export function isSynAckCopy(cookie: bigint): boolean {
  return cookieApp(cookie) === APP_ID.intercept && connRoleOf(cookie) === INTERCEPT_ROLE.synAckCopy;
}
/** Whether a Packet-In came from a service's FIN/RST copy flow. */
export function isFlagCopy(cookie: bigint): boolean {
  return cookieApp(cookie) === APP_ID.intercept && connRoleOf(cookie) === INTERCEPT_ROLE.flagCopy;
}
