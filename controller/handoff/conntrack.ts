// Verdicts kept in the switch's conntrack: FORWARD (a service with forwardVia 'conntrack') and
// first-segment MIGRATE (migrateVia 'conntrack'). Which connections qualify, the Packet-Outs that
// commit them (their handshake too, and take a FORWARD's mark away before a move), when such a
// connection gets flows of its own after all, and how a migrated one leaves ct to move again. The
// per-service flows are in flow-plan.ts (interceptFlows, conntrackMigratedFlows, flagCopyFlows);
// docs/migration.md, "FORWARD in conntrack", "Handshakes in conntrack" and "MIGRATE in conntrack".
import { OFP_NO_BUFFER, type Action, type OfpMessage } from '../openflow/index.ts';
import { inConntrackOnly, type Connection } from './connection.ts';
import type { EngineCore } from './engine-core.ts';
import {
  connectionFlows, conntrackForwardActions, conntrackHandshakeActions, conntrackHandshakeDoneActions, conntrackLeaveActions, conntrackMigrateActions, conntrackMigratePortsFit, conntrackPortsFit,
  DEFAULT_CONNTRACK_FLOWS_AFTER_MS, DEFAULT_CONNTRACK_ZONE,
} from './flow-plan.ts';
import { isIdentity } from './relay.ts';
import type { ServiceConfig } from './service-config.ts';

/**
 * Whether a service's traffic passes ct in table 0 on a switch whose shift actions can
 * (`fieldShift`) or cannot take their delta from a field: it keeps FORWARD verdicts in conntrack, or
 * MIGRATE verdicts where the switch can.
 */
export function passesConntrack(s: ServiceConfig, fieldShift: boolean): boolean {
  return s.forwardVia === 'conntrack' || (s.migrateVia === 'conntrack' && fieldShift);
}

export class ConntrackForwarding {
  /**
   * Connections kept in conntrack for good (a MIGRATE, or a FORWARD with conntrackFlowsAfterMs 0):
   * when the controller forgets them, having seen nothing of them for their service's idle timeout.
   * One sweep for all, in place of a timer each, which would cost a migrated connection about half
   * of its memory again (docs/benchmarks.md §7).
   */
  private readonly forgetAt = new Map<Connection, number>();
  /**
   * Deadlines are whole seconds since this engine started, rounded up (a connection is forgotten
   * between its idle timeout and a second later): small integers, which V8 keeps in the map itself
   * (a millisecond timestamp would be a heap number each).
   */
  private readonly epoch = Date.now();
  private seconds(round: (x: number) => number): number { return round((Date.now() - this.epoch) / 1000); }
  private sweeper?: NodeJS.Timeout;

  constructor(private readonly core: EngineCore) {}

  get zone(): number { return this.core.opts.conntrackZone ?? DEFAULT_CONNTRACK_ZONE; }
  private get flowsAfterMs(): number { return this.core.opts.conntrackFlowsAfterMs ?? DEFAULT_CONNTRACK_FLOWS_AFTER_MS; }

  /**
   * Whether this connection's handshake goes through conntrack (flow-plan.ts, "handshakes in
   * conntrack"): a service that passes ct, not on a fabric, its SYN to the service's own address,
   * ports that fit the label.
   */
  takesHandshake(c: Connection): boolean {
    return passesConntrack(c.service, this.core.fieldShifts.has(c.dpid)) && !this.core.opts.fabric && isIdentity(c) && conntrackPortsFit(c.client.ofport, c.backend.ofport);
  }

  /** What the SYN's Packet-Out does before its output: commit the handshake (server 1's SYN-ACK then goes to the client from the switch). */
  handshakeCommit(c: Connection): Action[] {
    return this.takesHandshake(c) ? conntrackHandshakeActions(this.zone, c.client.ofport, c.backend.ofport) : [];
  }

  /** What the client's ACK's Packet-Out does before its output: the handshake mark goes (a later SYN-ACK of server 1 is the controller's). */
  handshakeDone(c: Connection): Action[] {
    return this.takesHandshake(c) ? conntrackHandshakeDoneActions(this.zone) : [];
  }

  /** The client's first data segment came before any pure ACK: the mark goes by a Packet-Out of it that goes no further. */
  handshakeDoneBy(c: Connection, frame: Buffer, inPort: number): void {
    const actions = this.handshakeDone(c);
    if (actions.length) this.core.send(c, [{ type: 'packet_out', xid: 0, bufferId: OFP_NO_BUFFER, inPort, actions, data: frame }]);
  }

  /**
   * Whether this FORWARD verdict can be kept in the switch's conntrack: a connection of a
   * forwardVia 'conntrack' service with no flows of its own yet, going to the primary unchanged, on
   * a switch that is not one of a fabric, whose ports fit the label.
   */
  takes(c: Connection): boolean {
    return c.service.forwardVia === 'conntrack' && !this.core.opts.fabric && c.flowsInstalled === undefined && !c.adopted && !c.freeze
      && c.backendName === c.service.primary && isIdentity(c) && conntrackPortsFit(c.client.ofport, c.backend.ofport);
  }

  /**
   * Whether this move can be kept in the switch's conntrack (c.backend already the target): a
   * first-segment move of a migrateVia 'conntrack' service (never committed, no flows of its own) on
   * a switch whose shift actions take their delta from a field, not one of a fabric, whose ports fit the mark.
   */
  takesMove(c: Connection): boolean {
    const core = this.core;
    return c.service.migrateVia === 'conntrack' && !core.opts.fabric && c.mode === 'fastpath' && core.fieldShifts.has(c.dpid)
      && c.flowsInstalled === undefined && !c.adopted && !c.freeze && c.conntrack === undefined
      && conntrackMigratePortsFit(c.client.ofport, c.backend.ofport);
  }

  /** The move is kept in conntrack: what was held leaves committing it, with its NAT, delta and MACs (EngineCore.release). */
  enterMoved(c: Connection): void {
    if (c.phase !== 'closing' && c.phase !== 'closed') c.conntrack = 'migrated';
  }

  /**
   * A client segment of a connection migrated in conntrack, sent on (and the connection committed
   * again) from the controller: the held segment, or one that raced the commit. (What its target
   * sends that reaches the controller is relayed, rewritten here: EngineCore.relayToClient.)
   */
  outMoved(c: Connection, frame: Buffer): void {
    this.core.send(c, [{ type: 'packet_out', xid: 0, bufferId: OFP_NO_BUFFER, inPort: c.client.ofport, actions: conntrackMigrateActions(this.zone, this.core.flowSpec(c)), data: frame }]);
  }

  /**
   * Whether the switch keeps this connection's server FIN from the controller (flagCopyFlows):
   * its conntrack entry carries a verdict and its service's traffic passes ct. Teardown then ends it
   * at its client's FIN.
   */
  serverFinUncopied(c: Connection): boolean {
    return c.conntrack !== undefined && passesConntrack(c.service, this.core.fieldShifts.has(c.dpid));
  }

  /**
   * A connection migrated in conntrack is to move again. Its entry's NAT cannot change, so its two
   * directions leave ct for good (its ct-exit flows in table 0) and it gets the two flows of a
   * connection migrated to that backend; from there the move goes on as for any other. The
   * messages, to go in before the move's freeze flows; none for any other connection.
   */
  exit(c: Connection): OfpMessage[] {
    if (c.conntrack !== 'migrated') return [];
    c.conntrack = undefined;
    c.ctExit = { ip: c.backend.ip, port: c.backend.port };
    // Sent, not yet confirmed; from now its flows' idle timeout ends it, not the sweep.
    c.flowsInstalled = false;
    this.forgetAt.delete(c);
    return connectionFlows(this.core.flowSpec(c));
  }

  /** From now on conntrack forwards it: what was held leaves committing it (EngineCore.release). */
  enter(c: Connection): void {
    if (c.phase !== 'closing' && c.phase !== 'closed') c.conntrack = 'forwards';
  }

  /** A segment of a connection FORWARDed in conntrack, sent on (and the connection committed again) from the controller. */
  out(c: Connection, frame: Buffer, dir: 'c2s' | 's2c', inPort: number): void {
    const port = dir === 'c2s' ? c.backend.ofport : c.client.ofport;
    this.core.send(c, [{ type: 'packet_out', xid: 0, bufferId: OFP_NO_BUFFER, inPort, actions: conntrackForwardActions(this.zone, c.client.ofport, c.backend.ofport, port), data: frame }]);
  }

  /**
   * A conntrack-FORWARDed connection that outlives handoff.conntrackFlowsAfterMs gets its two flows:
   * from then on the switch's idle timeout ends it and a restarted controller adopts it, and the
   * Flow-Mods are spent only on connections that live long enough to be worth them. With 0 it never
   * does, and since the controller sees none of its traffic (only FIN/RST copies and strays) it
   * forgets it once it has seen nothing of it for the service's idle timeout; the switch keeps
   * forwarding it, only its listing and a later move are lost.
   */
  armTimer(c: Connection): void {
    if (this.flowsAfterMs > 0) this.core.setTimer(c, 'idle', this.flowsAfterMs, () => { if (c.phase === 'forwarded') this.giveFlows(c); });
    else this.watch(c);
    this.core.parts.teardown.endIfClientClosed(c);
  }

  /** From now, `c` is forgotten after its service's idle timeout unless seen again (seen()). */
  private watch(c: Connection): void {
    this.forgetAt.delete(c);
    this.forgetAt.set(c, this.seconds(Math.ceil) + c.service.idleTimeout);
    if (this.sweeper) return;
    this.sweeper = setInterval(() => this.sweep(), 250);
    this.sweeper.unref();
  }

  private sweep(): void {
    const now = this.seconds(Math.floor);
    for (const [c, at] of this.forgetAt) {
      const kept = c.phase === 'forwarded' && (c.conntrack === 'migrated' || (c.conntrack === 'forwards' && this.flowsAfterMs === 0));
      if (kept && now < at) continue;
      this.forgetAt.delete(c);
      if (kept) this.core.parts.teardown.finish(c, `nothing seen of it for the idle timeout (${c.conntrack === 'migrated' ? 'migrated' : 'FORWARDed'} in conntrack)`, false);
    }
    if (this.forgetAt.size === 0) this.stop();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /**
   * A connection migrated in conntrack gets no flows while its service keeps migrateVia 'conntrack'
   * (its traffic passes ct with NAT in table 0): the controller forgets it once it has seen nothing of
   * it for the service's idle timeout, as a FORWARD with conntrackFlowsAfterMs 0.
   */
  watchMoved(c: Connection): void {
    this.watch(c);
  }

  /** A segment of a connection kept in conntrack reached the controller: it is alive (without flows to come, its idle time starts over). */
  seen(c: Connection): void {
    if (c.phase === 'forwarded' && (c.conntrack === 'migrated' || this.flowsAfterMs === 0)) this.watch(c);
  }

  /**
   * A connection kept in conntrack gets the two flows of its verdict (a FORWARD lived long enough,
   * or its service stopped using conntrack; a migrated one: its service left migrateVia 'conntrack',
   * so table 0 no longer applies the entry's NAT and its flows see the addresses on the wire).
   */
  giveFlows(c: Connection): void {
    const core = this.core;
    if (!inConntrackOnly(c) || c.phase === 'closed') return;
    // Its entry keeps the mark: the flows' state note says so, for whoever moves it later.
    c.conntrack = 'marked';
    c.flowsInstalled = false;
    // From now on an idle FLOW_REMOVED ends it, not the controller's timer.
    core.clearTimer(c, 'idle');
    c.sw.transact(core.reinstallMessages(c)).then(
      () => { c.flowsInstalled = true; },
      (e) => core.log.error('installing flows for a connection leaving conntrack failed; its packets go through the controller', { conn: c.id, error: (e as Error).message }),
    );
  }

  /**
   * Before a move's flows go in: the connection's conntrack entry (if it has a marked one) loses the
   * mark, by a Packet-Out of the held client segment that goes no further, so that the backend it
   * leaves no longer reaches the client through the per-service flows.
   */
  leave(c: Connection): OfpMessage[] {
    if (!c.conntrack) return [];
    c.conntrack = undefined;
    if (!c.held) return [];
    return [{ type: 'packet_out', xid: 0, bufferId: OFP_NO_BUFFER, inPort: c.client.ofport, actions: conntrackLeaveActions(this.zone), data: c.held.frame }];
  }
}
