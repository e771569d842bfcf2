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
  connectionFlows, conntrackExitFlush, conntrackForwardActions, conntrackHandshakeActions, conntrackHandshakeDoneActions, conntrackLeaveActions, conntrackMigrateActions, conntrackMigratePortsFit, conntrackPortsFit,
  DEFAULT_CONNTRACK_FLOWS_AFTER_MS, DEFAULT_CONNTRACK_ZONE,
} from './flow-plan.ts';
import { isIdentity } from './relay.ts';
import type { ServiceConfig } from './service-config.ts';

/** What a switch can do for verdicts kept in conntrack (probed at connect, SwitchAdoption.switchReady). */
export interface SwitchCaps {
  /** It has a connection tracker (the ct action); without one every verdict uses flows. */
  ct: boolean;
  /** Its shift actions can take their delta from a field (ovs-patch 0008): MIGRATE in conntrack. */
  fieldShift: boolean;
}

/**
 * Whether a service's traffic passes ct in table 0 on a switch with `caps`: it keeps FORWARD
 * verdicts in conntrack, or MIGRATE verdicts where the switch can.
 */
export function passesConntrack(s: ServiceConfig, caps: SwitchCaps): boolean {
  return caps.ct && (s.forwardVia === 'conntrack' || (s.migrateVia === 'conntrack' && caps.fieldShift));
}

export class ConntrackForwarding {
  /**
   * Connections kept in conntrack for good (conntrackFlowsAfterMs 0): when the controller forgets
   * them, having seen nothing of them for their service's idle timeout. One sweep for all, in place
   * of a timer each, which would cost a migrated connection about half of its memory again
   * (docs/benchmarks.md §7).
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
    return passesConntrack(c.service, this.core.capsOf(c.dpid)) && !this.core.opts.fabric && isIdentity(c) && conntrackPortsFit(c.client.ofport, c.backend.ofport);
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
    return c.service.forwardVia === 'conntrack' && this.core.capsOf(c.dpid).ct && !this.core.opts.fabric && c.flowsInstalled === undefined && !c.adopted && !c.freeze
      && c.backendName === c.service.primary && isIdentity(c) && conntrackPortsFit(c.client.ofport, c.backend.ofport);
  }

  /**
   * Whether this move can be kept in the switch's conntrack (c.backend already the target): a
   * first-segment move of a migrateVia 'conntrack' service (never committed, no flows of its own) on
   * a switch whose shift actions take their delta from a field, not one of a fabric, whose ports fit the mark.
   */
  takesMove(c: Connection): boolean {
    const core = this.core;
    const caps = core.capsOf(c.dpid);
    return c.service.migrateVia === 'conntrack' && !core.opts.fabric && c.mode === 'fastpath' && caps.ct && caps.fieldShift
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
    return c.conntrack !== undefined && passesConntrack(c.service, this.core.capsOf(c.dpid));
  }

  /**
   * A connection migrated in conntrack is to move again. Its entry's NAT cannot change, so its two
   * directions leave ct for good (its ct-exit flows in table 0) and it gets the two flows of a
   * connection migrated to that backend; from there the move goes on as for any other. The
   * messages, to go in before the move's freeze flows; none for any other connection.
   */
  exit(c: Connection): OfpMessage[] {
    if (c.conntrack !== 'migrated') return [];
    return this.outForGood(c, true);
  }

  /**
   * `c` leaves conntrack for good: the flows of where it is now (with its ct-exit flows, `exit`, that
   * keep its segments from ct); once they are in, its entry goes (deleteEntries). From then on it is
   * a connection with flows like any other: ended by their idle timeout, adopted after a restart.
   */
  private outForGood(c: Connection, exit: boolean): OfpMessage[] {
    c.conntrack = undefined;
    if (exit) c.ctExit = { ip: c.backend.ip, port: c.backend.port };
    // Sent, not yet confirmed; from now its flows' idle timeout ends it, not the sweep.
    c.flowsInstalled = false;
    this.forgetAt.delete(c);
    this.core.clearTimer(c, 'idle');
    return connectionFlows(this.core.flowSpec(c));
  }

  /**
   * The conntrack entries of connections that left ct for good (their flows confirmed): deleted
   * (conntrackExitFlush). Their segments may still pass ct (table 0), which, the entry gone, neither
   * NATs nor marks them: their own flows take them. And a later connection from the same client port
   * cannot meet the entry's mark and NAT. A switch that cannot (NXT_CT_FLUSH: Open vSwitch 3.1 or
   * later) is logged, and those connections get ct-exit flows instead, which keep their segments from
   * the entry (it then expires by conntrack's timeouts: until then a new connection from one of those
   * ports would meet it).
   */
  deleteEntries(sw: Connection['sw'], conns: Connection[]): void {
    if (!conns.length) return;
    const core = this.core;
    sw.transact(conns.map((c) => conntrackExitFlush(this.zone, core.flowSpec(c)))).catch((e) => {
      const exits = conns.filter((c) => !c.ctExit && c.flowsInstalled && c.phase !== 'closing' && c.phase !== 'closed');
      core.log.warn('the switch did not delete the conntrack entries of connections that left conntrack (NXT_CT_FLUSH needs Open vSwitch 3.1 or later): they get ct-exit flows instead; until the entries expire, a new connection from one of their client ports would be forwarded by them, past the controller',
        { conns: conns.length, first: conns[0]!.id, exits: exits.length, error: (e as Error).message });
      for (const c of exits) {
        c.ctExit = { ip: c.backend.ip, port: c.backend.port };
        core.send(c, core.reinstallMessages(c));
      }
    });
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
   * A connection kept in conntrack (FORWARDed, or migrated there) that outlives
   * handoff.conntrackFlowsAfterMs leaves it for good (giveFlows): the Flow-Mods go only to connections
   * long enough to be worth them, which from then on a restarted controller adopts and the switch's
   * idle timeout ends. With 0 it never does, and since the controller sees none of its traffic (only
   * FIN/RST copies and strays) it forgets it once it has seen nothing of it for the service's idle
   * timeout; the switch keeps forwarding it, only its listing and a later move are lost.
   */
  armTimer(c: Connection): void {
    this.keep(c);
    this.core.parts.teardown.endIfClientClosed(c);
  }

  /** From now on conntrack carries `c` (FORWARDed or migrated there): flows after conntrackFlowsAfterMs, or (0) forgotten when unseen. */
  keep(c: Connection): void {
    if (this.flowsAfterMs > 0) this.queueForFlows(c);
    else this.watch(c);
  }

  /**
   * Connections waiting for their flows, in the order they entered conntrack: all wait the same
   * time, so the queue is in deadline order and one timer (set for its head) serves all of them, in
   * place of a timer each (docs/benchmarks.md §7), and those due together share one barrier.
   */
  private readonly waiting: Connection[] = [];
  private readonly waitingUntil: number[] = [];
  private waitingHead = 0;
  private waitTimer?: NodeJS.Timeout;

  private queueForFlows(c: Connection): void {
    this.waiting.push(c);
    this.waitingUntil.push(Date.now() - this.epoch + this.flowsAfterMs);
    if (!this.waitTimer) this.armWaitTimer();
  }

  private armWaitTimer(): void {
    if (this.waitingHead >= this.waiting.length) return;
    const delay = Math.max(0, this.waitingUntil[this.waitingHead]! - (Date.now() - this.epoch));
    this.waitTimer = setTimeout(() => this.flowsDue(), delay);
    this.waitTimer.unref();
  }

  private flowsDue(): void {
    this.waitTimer = undefined;
    const now = Date.now() - this.epoch;
    const due: Connection[] = [];
    while (this.waitingHead < this.waiting.length && this.waitingUntil[this.waitingHead]! <= now) {
      due.push(this.waiting[this.waitingHead]!);
      this.waitingHead++;
    }
    // Dropped from the front now and then, not at every step (an array shift is a copy), and at
    // once when none are left (the queue would hold ended connections until the next ones came).
    if (this.waitingHead === this.waiting.length || (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length)) {
      this.waiting.splice(0, this.waitingHead);
      this.waitingUntil.splice(0, this.waitingHead);
      this.waitingHead = 0;
    }
    this.giveFlows(due.filter((c) => c.phase === 'forwarded'));
    this.armWaitTimer();
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
      const kept = c.phase === 'forwarded' && inConntrackOnly(c);
      if (kept && now < at) continue;
      this.forgetAt.delete(c);
      if (kept) this.core.parts.teardown.finish(c, `nothing seen of it for the idle timeout (${c.conntrack === 'migrated' ? 'migrated' : 'FORWARDed'} in conntrack)`, false);
    }
    if (this.forgetAt.size === 0) this.stop();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.waitTimer = undefined;
  }

  /** A segment of a connection kept in conntrack reached the controller: it is alive (without flows to come, its idle time starts over). */
  seen(c: Connection): void {
    if (c.phase === 'forwarded' && inConntrackOnly(c) && this.flowsAfterMs === 0) this.watch(c);
  }

  /**
   * Connections kept in conntrack leave it for good (outForGood): they lived long enough, or their
   * service stopped keeping that verdict there. Each gets the two flows of where it is (a migrated
   * one: of a connection migrated to its target, seeing the addresses on the wire, since its entry is
   * then deleted and ct no longer NATs it), one barrier per switch for all; no ct-exit flows (half
   * the Flow-Mods: its segments go on passing ct, at 0.9–1.0 of the throughput, docs/benchmarks.md §1 (e)).
   */
  giveFlows(conns: Connection[]): void {
    const core = this.core;
    const bySwitch = new Map<Connection['sw'], { conns: Connection[]; msgs: OfpMessage[] }>();
    for (const c of conns) {
      if (!inConntrackOnly(c) || c.phase === 'closed') continue;
      const batch = bySwitch.get(c.sw) ?? { conns: [], msgs: [] };
      bySwitch.set(c.sw, batch);
      batch.conns.push(c);
      for (const m of this.outForGood(c, false)) batch.msgs.push(m);
    }
    for (const [sw, batch] of bySwitch) {
      sw.transact(batch.msgs).then(
        () => {
          for (const c of batch.conns) if (c.flowsInstalled === false) c.flowsInstalled = true;
          this.deleteEntries(sw, batch.conns);
        },
        (e) => core.log.error('installing flows for connections leaving conntrack failed; their packets go through the controller', { conns: batch.conns.length, first: batch.conns[0]!.id, error: (e as Error).message }),
      );
    }
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
