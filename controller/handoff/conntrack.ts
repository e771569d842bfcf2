// FORWARD verdicts kept in the switch's conntrack (a service with forwardVia 'conntrack'): which
// connections qualify, the Packet-Outs that commit them (and take the mark away before a move),
// and when such a connection gets flows of its own after all. The per-service flows are in
// flow-plan.ts (interceptFlows); docs/migration.md, "FORWARD in conntrack".
import { OFP_NO_BUFFER, type OfpMessage } from '../openflow/index.ts';
import type { Connection } from './connection.ts';
import type { EngineCore } from './engine-core.ts';
import {
  conntrackForwardActions, conntrackLeaveActions, conntrackPortsFit, DEFAULT_CONNTRACK_FLOWS_AFTER_MS, DEFAULT_CONNTRACK_ZONE,
} from './flow-plan.ts';
import { isIdentity } from './relay.ts';

export class ConntrackForwarding {
  constructor(private readonly core: EngineCore) {}

  get zone(): number { return this.core.opts.conntrackZone ?? DEFAULT_CONNTRACK_ZONE; }
  private get flowsAfterMs(): number { return this.core.opts.conntrackFlowsAfterMs ?? DEFAULT_CONNTRACK_FLOWS_AFTER_MS; }

  /**
   * Whether this FORWARD verdict can be kept in the switch's conntrack: a connection of a
   * forwardVia 'conntrack' service with no flows of its own yet, going to the primary unchanged, on
   * a switch that is not one of a fabric, whose ports fit the label.
   */
  takes(c: Connection): boolean {
    return c.service.forwardVia === 'conntrack' && !this.core.opts.fabric && c.flowsInstalled === undefined && !c.adopted && !c.freeze
      && c.backendName === c.service.primary && isIdentity(c) && conntrackPortsFit(c.client.ofport, c.backend.ofport);
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
    const core = this.core;
    if (this.flowsAfterMs > 0) {
      core.setTimer(c, 'idle', this.flowsAfterMs, () => { if (c.phase === 'forwarded') this.giveFlows(c); });
      return;
    }
    core.setTimer(c, 'idle', c.service.idleTimeout * 1000, () => {
      if (c.phase === 'forwarded' && c.conntrack === 'forwards') core.parts.teardown.finish(c, 'nothing seen of it for the idle timeout (FORWARDed in conntrack)', false);
    });
  }

  /** A segment of a conntrack-FORWARDed connection reached the controller: it is alive (without flows to come, its idle time starts over). */
  seen(c: Connection): void {
    if (c.phase === 'forwarded' && this.flowsAfterMs === 0) this.armTimer(c);
  }

  /** A conntrack-FORWARDed connection gets the two flows of a FORWARD (it lived long enough, or its service stopped using conntrack). */
  giveFlows(c: Connection): void {
    const core = this.core;
    if (c.conntrack !== 'forwards' || c.phase === 'closed') return;
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
