// Teardown: FIN/RST tracked per direction (tcp-state.ts) from the FIN/RST copies, closing flows
// that the switch removes once the connection is quiet, a grace period after which the controller
// forgets it, idle timeouts (FLOW_REMOVED), and freeing everything a connection holds.
import { ipOf, seqSub, type ParsedFrame } from '../packet/index.ts';
import type { SwitchConnection } from '../datapath/switch-connection.ts';
import { APP_ID, connIdOf, connRoleOf, cookieApp, CONN_ROLE } from '../cookies.ts';
import type { FlowRemoved } from '../apps/app.ts';
import { clientKey, type Connection } from './connection.ts';
import type { EngineCore } from './engine-core.ts';
import { closingIdleTimeout, connectionFlows } from './flow-plan.ts';
import { bothFinSent, observe, segmentInfo, type Direction } from './tcp-state.ts';

/** Client tuples of recently finished connections: their late packets must not be adopted as new connections. */
const RECENTLY_CLOSED_MS = 60000;
const RECENTLY_CLOSED_MAX = 65536;
const OFPRR_IDLE_TIMEOUT = 0;
const CLIENT_CLOSED_IN_CONNTRACK = "closed by the client (kept in conntrack: the server's FIN is not copied)";

export class Teardown {
  private readonly recentlyClosed = new Map<string, number>();

  constructor(private readonly core: EngineCore) {}

  trackSegment(c: Connection, dir: Direction, frame: ParsedFrame): void {
    const core = this.core;
    const before = c.track;
    const seg = segmentInfo(frame);
    // Track in the client's view: a backend's own sequence numbers are shifted by the delta.
    if (dir === 's2c' && ipOf(frame).src === c.backend.ip && frame.tcp!.srcPort === c.backend.port) seg.seq = seqSub(seg.seq, c.ackDelta);
    const track = observe(c.track, dir, seg);
    // Most connections are in the same few states: share those (a FIN's sequence number is the connection's own).
    c.track = track.clientFinSeq === undefined && track.serverFinSeq === undefined ? core.shared.track.get(track) : track;
    if (before.client !== c.track.client || before.server !== c.track.server) core.emit('tcp_state', core.describe(c), dir);
    if (c.phase === 'closing' && (seg.fin || core.relayed(c)) && c.timers?.close) {
      // A FIN sent again: the first was lost after the switch copied it (the other end never had it).
      // The closing flows carry it; a relayed connection's segments need the controller, so until
      // the connection goes quiet the grace starts over with each.
      core.setTimer(c, 'close', this.graceOf(c), () => this.finish(c, bothFinSent(c.track) ? 'closed by both ends' : 'reset', true));
      return;
    }
    if (c.phase === 'closing' || c.phase === 'closed') return;
    if (frame.tcp!.flagSet.rst || bothFinSent(c.track)) this.closeSoon(c, frame.tcp!.flagSet.rst ? 'reset' : 'closed by both ends');
    else this.endIfClientClosed(c);
  }

  /**
   * A connection whose server FIN the switch does not copy (kept in conntrack:
   * ConntrackForwarding.serverFinUncopied) ends at its client's FIN, seen now or before its verdict
   * went to conntrack (with the held data). Whatever the server still sends, its conntrack entry
   * forwards; the controller only forgets it sooner. Not during a move, which takes it out of conntrack.
   */
  endIfClientClosed(c: Connection): void {
    if (c.phase !== 'forwarded' || c.track.clientFinSeq === undefined || c.move || c.replay) return;
    if (this.core.parts.conntrack.serverFinUncopied(c)) this.closeSoon(c, CLIENT_CLOSED_IN_CONNTRACK);
  }

  private closeSoon(c: Connection, why: string): void {
    const core = this.core;
    // A move whose target has answered is being spliced: it completes (one outcome: migrated) and the connection then closes.
    const splicing = c.replay?.targetIsn !== undefined;
    const failing = (c.replay || c.move) && !splicing;
    // Closing first: the failed move then restores the flows without releasing what was held.
    core.setPhase(c, 'closing');
    if (failing) core.parts.move.failMove(c, `connection ${why} during the move`);
    core.clearTimer(c, 'verdict');
    core.clearTimer(c, 'idle');
    // The final ACKs, and a FIN sent again because the first was lost past the switch (after the
    // sender's RTO, which a fixed grace can miss), must still cross: the flows are replaced by
    // closing ones, which the switch removes once the connection has been quiet for the grace.
    // (A failed move's restored flows are closing ones already: they are planned for this phase.)
    if (c.flowsInstalled !== undefined) core.send(c, connectionFlows(core.flowSpec(c)));
    core.setTimer(c, 'close', this.graceOf(c), () => this.finish(c, why, true));
  }

  /**
   * How long a closing connection is kept after its last FIN (relayed: its last segment). A relayed
   * one needs the controller for as long as its closing flows live, which is whole seconds.
   */
  private graceOf(c: Connection): number {
    const grace = this.core.opts.closeGraceMs;
    return this.core.relayed(c) ? closingIdleTimeout(grace) * 1000 : grace;
  }

  flowRemoved(sw: SwitchConnection, msg: FlowRemoved): void {
    if (cookieApp(msg.cookie) !== APP_ID.connection || connRoleOf(msg.cookie) !== CONN_ROLE.main) return;
    const id = connIdOf(msg.cookie);
    const c = id === undefined ? undefined : this.core.table.get(id);
    if (!c || c.sw !== sw || c.phase === 'closed') return;
    // The connection went quiet without FIN/RST reaching us.
    if (msg.reason === OFPRR_IDLE_TIMEOUT && c.phase === 'forwarded') this.finish(c, 'idle timeout', true);
  }

  /** Frees everything the connection holds: its flows (now, or when its switch is back), timers and table entries. */
  finish(c: Connection, why: string, removeFlows: boolean): void {
    const core = this.core;
    if (c.phase === 'closed') return;
    // Closing flows (sent when it started closing, or restored since) leave by their idle timeout.
    const closingFlows = c.phase === 'closing' && c.flowsInstalled !== undefined;
    core.clearTimers(c);
    core.setPhase(c, 'closed');
    core.table.remove(c);
    // A connection that never had flows deletes none: OVS revalidates every datapath flow after any
    // Flow-Mod, one that matches nothing included (half-open entries under a SYN flood, probes).
    const mayHaveFlows = c.flowsInstalled !== undefined || !!c.adopted;
    if (removeFlows && c.sw.connected && mayHaveFlows) {
      const deletes = closingFlows ? core.deleteAllButClosingFlows(c) : core.deleteFlowsOf(c);
      if (deletes.length) core.send(c, deletes);
    }
    if (c.transit.length) core.parts.transit.forget(c);
    else if (removeFlows && mayHaveFlows) core.parts.adoption.endedWhileAway(c);
    this.recentlyClosed.delete(clientKey(c));
    this.recentlyClosed.set(clientKey(c), Date.now());
    if (this.recentlyClosed.size > RECENTLY_CLOSED_MAX) this.recentlyClosed.delete(this.recentlyClosed.keys().next().value!);
    core.stats.closed++;
    core.emit('conn_closed', core.describe(c), why);
  }

  /** Whether the connection with this client key closed a short while ago (its late packets are not a new connection). */
  closedRecently(key: string): boolean {
    const at = this.recentlyClosed.get(key);
    return at !== undefined && Date.now() - at < RECENTLY_CLOSED_MS;
  }
}
