// Moving a connection (DESIGN.md §2): on the first segment (held for its verdict) or mid-stream
// (freeze the client's packets, hold its next data segment). The client's SYN is replayed to the
// target with ISN = seq(held) − 1, the target's SYN-ACK is answered on the client's behalf, the
// connection's flows are replaced by NAT + seq/ack-shift flows, the held segment is released and
// the old backend reset. Any failure leaves the connection where it was.
import { OFPP } from '../openflow/index.ts';
import { OpenFlowError } from '../datapath/switch-connection.ts';
import { buildArpFrame, buildNeighborSolicitation, isIpv6Address, seqAdd, seqSub, type ParsedFrame } from '../packet/index.ts';
import { clientIsn, NONE, type Connection, type MoveRequest, type Replay } from './connection.ts';
import { EngineError, type ConnectionView, type EngineCore } from './engine-core.ts';
import { deleteBypassFlow, deleteFreezeFlows, freezeFlows, legFlow, type Attached } from './flow-plan.ts';
import { compareSynAcks, replayedSynOffer, summarise, type SynAckSummary } from './option-policy.ts';
import { replayAck, replaySyn, resetFor } from './segments.ts';
import { addressFor, type BackendConfig } from './service-config.ts';

/** The controller's own MAC for ARP probes (locally administered). */
const CONTROLLER_MAC = '02:00:00:00:00:fe';
export const REPLAY_TRIES = 3;
/** How long a mid-stream move waits for the client's next data segment before it is called off. */
export const FREEZE_TIMEOUT_MS = 30000;
const ARP_TIMEOUT_MS = 1000;
/** When the RST to a backend a connection left is sent again. */
export const RESET_REPEAT_MS = [200, 1000];
/** How often a repeat due while the connection's switch is away looks again. */
const RESET_RETRY_AWAY_MS = 250;

export class Mover {
  constructor(private readonly core: EngineCore) {}

  /**
   * API: move a connection to another backend, now (held) or at its next client data segment.
   * Resolves once the switch sends the client's packets to the controller (freeze in place).
   */
  async migrate(connId: number, targetName: string): Promise<ConnectionView> {
    const core = this.core;
    const c = core.table.get(connId);
    if (!c) throw new EngineError(404, `no connection ${connId}`);
    const target = c.service.backends.find((b) => b.name === targetName);
    if (!target) throw new EngineError(404, `service '${c.service.name}' has no backend named '${targetName}'`);
    if (target.name === c.backendName && c.phase !== 'held') throw new EngineError(409, `connection ${connId} is already on '${targetName}'`);
    const v6 = isIpv6Address(c.client.ip);
    const address = addressFor(target, v6);
    if (address === undefined) throw new EngineError(409, `backend '${targetName}' has no ${v6 ? 'IPv6' : 'IPv4'} address, and connection ${connId} is ${v6 ? 'IPv6' : 'IPv4'}`);
    try { this.checkVlan(c, target, address); } catch (e) { throw new EngineError(409, (e as Error).message); }
    if (c.phase === 'held' && !c.move) { core.parts.interception.applyVerdict(c, { verdict: 'MIGRATE', source: 'api', target: targetName }); return core.describe(c); }
    if (c.phase !== 'forwarded') throw new EngineError(409, `connection ${connId} is ${c.phase}; it can move once forwarded`);
    if (!c.service.midStream) throw new EngineError(409, `service '${c.service.name}' does not allow mid-stream migration`);
    await this.requestMove(c, target, 'api');
    return core.describe(c);
  }

  /** API: call off a mid-stream move that still waits for the client's next data segment. */
  cancel(connId: number): ConnectionView {
    const c = this.core.table.get(connId);
    if (!c) throw new EngineError(404, `no connection ${connId}`);
    if (c.phase !== 'freezing' || !c.move) throw new EngineError(409, `connection ${connId} has no move waiting (it is ${c.phase}${c.move ? ', and its move is under way' : ''})`);
    this.failMove(c, 'cancelled by the operator', { cancelled: true });
    return this.core.describe(c);
  }

  /** Mid-stream: from now on the client's data segments come to the controller; its next one is held. */
  async requestMove(c: Connection, target: BackendConfig, reason: string, sid?: number): Promise<void> {
    const core = this.core;
    c.move = { target, reason, requestedAt: Date.now(), sid, midStream: true };
    c.frozenFrom = c.backendName;
    core.setPhase(c, 'freezing');
    // Barrier: once it returns, the client's next segment cannot slip past to the old backend.
    if (!core.relayed(c)) {
      c.freeze = 'now';
      // Migrated in conntrack: out of ct first, with flows of its own (ConntrackForwarding.exit).
      const exit = core.parts.conntrack.exit(c);
      // Back to a backend it left: a datapath flow from that earlier leg may still be cached for
      // the target's SYN-ACKs (legFlow); the leg's own flow goes in with the freeze and shares its wait.
      const address = addressFor(target, isIpv6Address(c.client.ip));
      const back = address !== undefined && c.retired.some((b) => b.ip === address && b.port === target.port);
      await c.sw.transact([...exit, ...freezeFlows(core.flowSpec(c)), ...(back ? [legFlow({ id: c.id, client: c.client, target: { ip: address, port: target.port } }, this.legSeconds())] : [])]);
      if (exit.length) { c.flowsInstalled = true; core.parts.conntrack.deleteEntries(c.sw, [c]); }
      // OVS answers the barrier once its flow table changed, but revalidates the datapath's cached
      // megaflows asynchronously: for a moment the client's packets can still take the old path.
      await new Promise((r) => setTimeout(r, core.opts.revalidateMs));
    }
    core.emit('move_pending', core.describe(c), { to: target.name, reason });
    core.setTimer(c, 'freeze', FREEZE_TIMEOUT_MS, () => {
      if (c.phase !== 'freezing') return;
      core.log.info('no client data segment to migrate at; move cancelled', { conn: c.id });
      this.failMove(c, 'no client data segment arrived within the freeze timeout');
    });
  }

  /** A segment is held and c.move says where it goes: replay the handshake to the target. */
  async startMove(c: Connection): Promise<void> {
    const core = this.core;
    const move = c.move!;
    const held = c.held!;
    const t = move.target;
    if (t.name === c.backendName) { c.move = undefined; await core.installAndRelease(c, 'forwarded').catch(() => undefined); return; }
    if (c.prepared && this.usePrepared(c, t.name, seqSub(held.seq, 1))) return;
    let target: Attached;
    try { target = await this.locate(c, t); } catch (e) { this.failMove(c, (e as Error).message); return; }
    if (c.phase !== 'held') return;
    if (!c.syn) { this.failMove(c, 'the connection was adopted without its handshake: its SYN options are unknown, so it cannot be replayed'); return; }
    const isn = seqSub(held.seq, 1);
    const syn = replaySyn(c.syn, c.acceptedSynAck, c.client, target, isn);
    this.openLeg(c, target);
    c.replay = { target, targetName: t.name, isn, syn, tries: 0 };
    core.table.indexBackend(c, target);
    core.setPhase(c, 'replaying');
    this.sendReplaySyn(c);
  }

  /** Before a SYN to a target: its answers must reach the controller, and no old reset of it may follow. */
  private openLeg(c: Connection, target: Attached): void {
    // Not a bypass flow of some earlier direct connection between the same addresses (if there may be one).
    const bypass = { inPort: target.ofport, src: { ip: target.ip, port: target.port }, dst: { ip: c.client.ip, port: c.client.port } };
    if (this.core.parts.interception.takeBypass(c.dpid, bypass)) this.core.send(c, [deleteBypassFlow(bypass)]);
    // Moving back to a backend it left: its old reset must not be repeated any more.
    cancelResetRepeats(c, target);
  }

  /**
   * The prepared handshake, if the move goes where it went and starts where it started (the held
   * segment is the first byte after the client's ISN): it becomes the replay, and a leg whose
   * SYN-ACK is in needs only the ACK. Otherwise it is reset. Whether it was used.
   */
  private usePrepared(c: Connection, targetName: string, isn: number): boolean {
    const p = c.prepared;
    if (!p) return false;
    if (p.targetName !== targetName || p.isn !== isn) { this.abandon(c, 'the move goes elsewhere'); return false; }
    c.prepared = undefined;
    this.core.stats.speculativeUsed++;
    c.replay = p;
    this.core.setPhase(c, 'replaying');
    if (p.targetIsn !== undefined) { this.accept(c, p.synAck!); return true; }
    // Its SYN is out and unanswered so far: the replay's retries take over from here.
    this.armReplayRetry(c);
    return true;
  }

  /**
   * speculativeReplay: the client's SYN, as server 1 gets it, goes to migrateTo too, from the start,
   * so a MIGRATE verdict on the first data segment finds that leg's SYN-ACK in (its round trip
   * overlaps server 1's and the client's; opened at server 1's SYN-ACK, a verdict given at once, as
   * the built-in matcher's is, often waited for it). The first data segment starts right after the
   * client's ISN, so the replay's ISN is the client's own. Called again at server 1's SYN-ACK
   * (serverAccepted) for a connection whose target was not located at its SYN.
   */
  prepare(c: Connection): void {
    const core = this.core;
    const s = c.service;
    if (!s.speculativeReplay || !s.migrateTo || s.migrateTo === c.backendName || c.prepared || !c.syn) return;
    const t = s.backends.find((b) => b.name === s.migrateTo);
    const address = t && addressFor(t, isIpv6Address(c.client.ip));
    if (!t || address === undefined) return;
    // Only where the target is known already: a speculation must not send a probe per connection
    // (a target that is down would get a broadcast for every one). A move's own replay probes.
    const target = this.known(c, t, address);
    if (!target) { core.log.debug('no speculative replay: the target is not located yet', { conn: c.id, to: t.name }); return; }
    try { this.checkVlan(c, t, address); } catch { return; }
    this.openLeg(c, target);
    const isn = clientIsn(c)!;
    c.prepared = { target, targetName: t.name, isn, syn: replaySyn(c.syn, c.acceptedSynAck, c.client, target, isn), tries: 1 };
    core.table.indexBackend(c, target);
    core.stats.speculativeOpened++;
    core.packetOut(c, c.prepared.syn, target.ofport, c.client.ofport);
  }

  /**
   * Server 1's SYN-ACK is in (c.acceptedSynAck). A leg that offered more than server 1 accepted (a
   * SYN-cookie SYN-ACK without window scaling, say) is reset: the target could agree to what the
   * client never got; a verdict's replay then offers only what server 1 accepted. No leg yet: one
   * is opened now, offering just that.
   */
  serverAccepted(c: Connection): void {
    if (!c.prepared) { this.prepare(c); return; }
    const full = replayedSynOffer(c.syn!, undefined);
    const accepted = replayedSynOffer(c.syn!, c.acceptedSynAck);
    if (!full.options.equals(accepted.options) || full.ecn !== accepted.ecn) this.abandon(c, 'server 1 accepted less than the SYN offered');
  }

  /** A segment from the prepared leg's target: its SYN-ACK is kept for the verdict; a RST ends the leg. */
  fromPrepared(c: Connection, frame: ParsedFrame, inPort: number): void {
    const p = c.prepared!;
    const tcp = frame.tcp!;
    if (tcp.flagSet.rst) { this.abandon(c, 'refused by the target (RST)', false); return; }
    if (!(tcp.flagSet.syn && tcp.flagSet.ack) || tcp.ack !== seqAdd(p.isn, 1) || p.targetIsn !== undefined) return;
    p.target = this.core.shared.attached.get({ ...p.target, mac: this.core.shared.strings.get(frame.eth.src), ofport: inPort });
    p.targetIsn = tcp.seq;
    p.synAck = summarise(tcp.options, tcp.flagSet);
  }

  /** The prepared leg will not be used: the target's half-open socket is reset (unless it refused the leg itself), its late segments dropped. */
  abandon(c: Connection, why: string, reset = true): void {
    const p = c.prepared;
    if (!p) return;
    c.prepared = undefined;
    // seq = ISN + 1, the target's RCV.NXT whether or not its SYN-ACK reached us: nothing else was sent to it.
    if (reset) this.core.packetOut(c, resetFor(c.client, p.target, seqAdd(p.isn, 1)), p.target.ofport, c.client.ofport);
    this.core.retire(c, p.target);
    this.core.stats.speculativeAbandoned++;
    this.core.log.debug('speculative replay reset', { conn: c.id, to: p.targetName, why });
  }

  private sendReplaySyn(c: Connection): void {
    const r = c.replay!;
    // A SYN went unanswered: the target's answer may be meeting a stale datapath flow (legFlow).
    if (r.tries === 1) this.core.send(c, [legFlow({ id: c.id, client: c.client, target: r.target }, this.legSeconds())]);
    r.tries++;
    this.core.packetOut(c, r.syn, r.target.ofport, c.client.ofport);
    this.armReplayRetry(c);
  }

  /** A leg flow outlives the replay's retries (replayTimeoutMs × 1, × 2, …), in whole seconds. */
  private legSeconds(): number {
    const waits = (REPLAY_TRIES * (REPLAY_TRIES - 1)) / 2;
    return Math.ceil((this.core.opts.replayTimeoutMs * waits) / 1000) + 1;
  }

  private armReplayRetry(c: Connection): void {
    const r = c.replay!;
    r.timer = setTimeout(() => {
      r.timer = undefined;
      if (c.phase !== 'replaying' || c.replay !== r || r.targetIsn !== undefined) return;
      if (r.tries >= REPLAY_TRIES) { this.failMove(c, `no SYN-ACK from ${r.targetName} after ${r.tries} SYNs`); return; }
      this.sendReplaySyn(c);
    }, this.core.opts.replayTimeoutMs * r.tries);
  }

  /** A segment from the target of a replay in progress. */
  fromTarget(c: Connection, frame: ParsedFrame, inPort: number): void {
    const core = this.core;
    const r = c.replay!;
    const tcp = frame.tcp!;
    if (r.targetIsn !== undefined && !(tcp.flagSet.syn && tcp.flagSet.ack)) {
      // Spliced: the flows are going in and the held segment went out right behind them, so the
      // target may answer before the barrier's reply is back (a stale datapath cache brings its
      // segment here). The move's outcome is decided: it belongs to the migrated connection and
      // takes the new flows (a Packet-Out is translated against them), a reset included. Before the
      // flows are sent (a mid-stream splice waits for revalidation first) nothing of it goes on.
      if (c.backend !== r.target) return;
      core.parts.teardown.trackSegment(c, 's2c', frame);
      if (core.relayed(c)) core.relayToClient(c, frame.raw); else core.toPipeline(c, frame.raw, inPort);
      return;
    }
    if (tcp.flagSet.rst) {
      this.failMove(c, `${r.targetName} refused the connection (RST)`);
      return;
    }
    if (!(tcp.flagSet.syn && tcp.flagSet.ack)) return;
    if (r.targetIsn !== undefined) { if (r.ack) core.packetOut(c, r.ack, r.target.ofport, c.client.ofport); return; }
    if (tcp.ack !== seqAdd(r.isn, 1)) { core.log.debug('SYN-ACK from target acknowledges something else', { conn: c.id }); return; }
    r.target = core.shared.attached.get({ ...r.target, mac: core.shared.strings.get(frame.eth.src), ofport: inPort });
    r.targetIsn = tcp.seq;
    this.accept(c, summarise(tcp.options, tcp.flagSet));
  }

  /** The target's SYN-ACK (its ISN in c.replay.targetIsn) is in: check its options, answer it and splice. */
  private accept(c: Connection, theirs: SynAckSummary): void {
    const core = this.core;
    const r = c.replay!;
    const problems = c.acceptedSynAck ? compareSynAcks(c.acceptedSynAck, theirs) : [];
    if (problems.length) {
      const detail = problems.map((p) => `${p.option}: ${String(p.original)} vs ${String(p.target)} (${p.why})`).join('; ');
      if (c.service.options.mismatch === 'refuse') {
        core.packetOut(c, resetFor(c.client, r.target, seqAdd(r.isn, 1)), r.target.ofport, c.client.ofport);
        this.failMove(c, `target's TCP options differ: ${detail}`);
        return;
      }
      core.log.warn('target TCP options differ; migrating anyway (policy: warn)', { conn: c.id, detail });
    }
    const held = c.held!;
    r.ack = replayAck(c.client, r.target, held.seq, seqAdd(r.targetIsn!, 1), held.window);
    core.packetOut(c, r.ack, r.target.ofport, c.client.ofport);
    if (r.timer) { clearTimeout(r.timer); r.timer = undefined; }
    this.splice(c).catch((e) => this.failMove(c, `installing migrated flows failed: ${(e as Error).message}`));
  }

  /** The target's leg exists: install its flows, release the held segment, reset the old backend. */
  private async splice(c: Connection): Promise<void> {
    const core = this.core;
    const r = c.replay!;
    // A mid-stream move: the datapath must have dropped the freeze-copy megaflow (which forwards to
    // the backend being left) before the new flows go in.
    const wait = c.fullFreezeAt === undefined ? 0 : c.fullFreezeAt + core.opts.revalidateMs - Date.now();
    c.fullFreezeAt = undefined;
    if (wait > 0) {
      await new Promise((res) => setTimeout(res, wait));
      if (c.replay !== r || c.phase === 'closed') return;
    }
    const held = c.held!;
    const old = { backend: c.backend, name: c.backendName, client: c.client };
    // The client's ack (server-1 space as the client sees it) must land on target ISN + 1.
    const ackDelta = seqSub(seqAdd(r.targetIsn!, 1), held.ack);
    c.backend = r.target;
    c.backendName = r.targetName;
    c.ackDelta = ackDelta | 0;
    core.retire(c, old.backend);
    // In the flows' state note until the next move: whoever adopts the connection resets it again.
    c.leftBackend = core.shared.attached.get(old.backend);
    c.leftSeq = held.seq | 0;
    if (c.freeze === 'now') c.freeze = 'past';
    // Counted before the install: the flows' state note records it.
    c.migrations++;
    const move = c.move;
    const sw = c.sw;
    const ct = core.parts.conntrack;
    if (ct.takesMove(c)) {
      // No Flow-Mod: the held segment commits the move (NAT, delta, MACs) to the switch's conntrack.
      ct.enterMoved(c);
      core.release(c, 'forwarded');
      if (c.phase === 'forwarded') ct.keep(c);
    } else {
      try {
        await core.installAndRelease(c, 'forwarded');
      } catch (e) {
        // The switch refusing the flows is a failed move (the caller's failMove), as before.
        if (sw.connected || e instanceof OpenFlowError) throw e;
        // The channel dropped before the switch confirmed the flows. The move is not undone: the held
        // segment may already have reached the target, and the switch's return reconciles the
        // connection to what memory now says (the target: its flows kept, or reinstalled). So the old
        // backend is reset all the same, its RST going out through the switch's new channel (the
        // repeats wait for it); without it, that backend would keep an ESTABLISHED socket for ever.
        this.resetOldBackend(c, old.backend, held.seq);
        // Released only after the confirmation (releaseBeforeBarrier false): the held segment is given
        // up, the client sends it again, and the reconciled flows carry it to the target.
        if (c.phase === 'replaying') { c.held = undefined; c.queue = NONE; core.setPhase(c, 'forwarded'); }
        core.log.warn('switch gone before it confirmed a move\'s flows; the connection stays on its new backend, the old one is reset once the switch is back', { conn: c.id, from: old.name, to: c.backendName, error: (e as Error).message });
        this.moved(c, move, r, old.name, ackDelta);
        return;
      }
    }
    // The held segment went out before the flows were confirmed, so the connection may already be
    // on its next move (a client that answers fast, an API call): that move's state is its own.
    const next = c.replay !== r ? c.replay : undefined;
    // seq == the old backend's RCV.NXT exactly: the held segment never reached it. Not while the
    // next move opens a leg to that very backend (its repeats are cancelled by then too).
    if (!(next && next.target.ip === old.backend.ip && next.target.port === old.backend.port)) this.resetOldBackend(c, old.backend, held.seq);
    this.moved(c, move, r, old.name, ackDelta);
  }

  /** The move is done (its flows confirmed, or standing with the switch away): counted, its state cleared, reported. */
  private moved(c: Connection, move: MoveRequest | undefined, r: Replay, from: string, ackDelta: number): void {
    const core = this.core;
    const latencyMs = Date.now() - (move?.requestedAt ?? Date.now());
    core.stats.migrated++;
    if (c.move === move) c.move = undefined;
    if (c.replay === r) c.replay = undefined;
    core.log.info('connection migrated', { conn: c.id, from, to: c.backendName, ackDelta, latencyMs, midStream: !!move?.midStream });
    core.emit('migrated', core.describe(c), { from, to: c.backendName, latencyMs, midStream: !!move?.midStream, sid: move?.sid });
    // Migrated in conntrack, its client's FIN already seen (with the held data): it ends now.
    core.parts.teardown.endIfClientClosed(c);
  }

  /**
   * Frees the old backend's half with a RST, sent again a little later: an old backend that lost
   * it would otherwise keep an ESTABLISHED socket for ever (it has nothing to send, so nothing
   * would tell it). A repeat that arrives after the socket is gone is dropped silently; it is
   * cancelled if the connection moves back to that backend meanwhile.
   */
  /** An adopted connection's last move: its RST may never have gone out (the controller that moved it stopped first). */
  resetLeft(c: Connection): void {
    const old = c.leftBackend;
    if (!old || c.leftSeq === undefined) return;
    this.core.retire(c, old);
    this.core.table.indexBackend(c, old);
    this.resetOldBackend(c, old, c.leftSeq >>> 0);
  }

  private resetOldBackend(c: Connection, old: Attached, rcvNxt: number): void {
    const core = this.core;
    const rst = resetFor(c.client, old, rcvNxt);
    core.packetOut(c, rst, old.ofport, c.client.ofport);
    // A newer reset to the same backend supersedes the repeats of an older one.
    cancelResetRepeats(c, old);
    // One timer at a time, and nothing left on the connection once the last repeat is out. A repeat
    // due while the switch is away waits for it (the first RST may have been lost with the
    // channel): it goes out through the switch's new channel once the connection is reconciled.
    const key = backendKey(old);
    const since = Date.now();
    const repeat = (i: number, wait: number): void => {
      (c.resetRepeats ??= new Map()).set(key, setTimeout(() => {
        if (!c.sw.connected && c.phase !== 'closed' && Date.now() - since < core.opts.switchGraceMs) { repeat(i, RESET_RETRY_AWAY_MS); return; }
        core.packetOut(c, rst, old.ofport, c.client.ofport);
        if (i + 1 < RESET_REPEAT_MS.length) { repeat(i + 1, RESET_REPEAT_MS[i + 1] - RESET_REPEAT_MS[i]); return; }
        c.resetRepeats?.delete(key);
        if (c.resetRepeats?.size === 0) c.resetRepeats = undefined;
      }, wait).unref());
    };
    repeat(0, RESET_REPEAT_MS[0]);
  }

  /** The move is off: the connection goes on (or back) to its current backend with what was held. */
  failMove(c: Connection, why: string, o: { cancelled?: boolean } = {}): void {
    const core = this.core;
    if (!o.cancelled) core.stats.migrationFailures++;
    const move = c.move;
    const r = c.replay;
    if (r?.timer) clearTimeout(r.timer);
    // The target may still retransmit its SYN-ACK: keep dropping its packets (and free the key with the connection).
    if (r) core.retire(c, r.target);
    c.move = undefined;
    c.replay = undefined;
    if (o.cancelled) {
      core.log.info('move cancelled; the connection stays where it was', { conn: c.id, to: move?.target.name });
      core.emit('move_cancelled', core.describe(c), { to: move?.target.name, why });
    } else {
      core.log.warn('migration failed; the connection stays where it was', { conn: c.id, to: move?.target.name, why });
      core.emit('migration_failed', core.describe(c), { to: move?.target.name, why });
    }
    if (c.phase === 'closed') return;
    const frozen = c.freeze === 'now';
    if (frozen) c.freeze = 'past';
    c.fullFreezeAt = undefined;
    if (c.held || c.phase === 'replaying') {
      core.installAndRelease(c, 'forwarded').catch((e) => {
        core.log.error('restoring flows failed; passing the connection on without them for now', { conn: c.id, error: (e as Error).message });
        core.releaseWithoutFlows(c);
      });
    }
    else {
      if (frozen) core.send(c, deleteFreezeFlows(core.flowIdentity(c)));
      if (c.phase !== 'closing') core.setPhase(c, 'forwarded');
      // Still kept in conntrack: a client FIN seen during the move ends it now.
      core.parts.teardown.endIfClientClosed(c);
    }
  }

  /** Where a backend is: config, what the switch has shown us, or an ARP probe (IPv6: a neighbour solicitation). */
  private async locate(c: Connection, b: BackendConfig): Promise<Attached> {
    const v6 = isIpv6Address(c.client.ip);
    const address = addressFor(b, v6);
    if (address === undefined) throw new Error(`backend ${b.name} has no ${v6 ? 'IPv6' : 'IPv4'} address, and the connection is ${v6 ? 'IPv6' : 'IPv4'}`);
    const at = await this.find(c, b, address, v6);
    this.checkVlan(c, b, address);
    return at;
  }

  /**
   * With the fabric's VLANs, a backend in another VLAN than the primary's is not where the
   * service's clients may go (VLANs are an isolation boundary): refused unless the service says
   * `crossVlan`. A host the fabric saw in no VLAN, or not yet, is not checked.
   */
  private checkVlan(c: Connection, b: BackendConfig, address: string): void {
    if (c.service.crossVlan) return;
    const primary = c.service.backends.find((x) => x.name === c.service.primary);
    const primaryAt = primary && addressFor(primary, isIpv6Address(address));
    const want = primaryAt === undefined ? undefined : this.core.learning.hosts.get(primaryAt)?.vlan;
    const got = this.core.learning.hosts.get(address)?.vlan;
    if (want === got || want === undefined || got === undefined) return;
    throw new Error(`backend ${b.name} is in VLAN ${got}, the service's primary (${primary!.name}) in VLAN ${want}: a move across VLANs needs "crossVlan": true on the service`);
  }

  /** Where a backend is, from the config or what the switch has shown the controller; undefined if that is not enough. */
  private known(c: Connection, b: BackendConfig, address: string): Attached | undefined {
    const { learning } = this.core;
    // On a fabric a backend may sit on another switch: the connection's flows send to the port towards it.
    const seen = learning.hosts.get(address);
    const known = seen && (this.core.opts.fabric || seen.dpid === c.dpid) ? seen : undefined;
    const mac = b.mac ?? known?.mac;
    const port = b.switchPort ?? (mac ? learning.portForMac(c.dpid, mac) : undefined) ?? (known?.dpid === c.dpid ? known.port : undefined);
    return mac && port !== undefined ? { mac, ip: address, port: b.port, ofport: port } : undefined;
  }

  private async find(c: Connection, b: BackendConfig, address: string, v6: boolean): Promise<Attached> {
    const { learning } = this.core;
    const fabric = !!this.core.opts.fabric;
    const at = this.known(c, b, address);
    if (at) return at;
    const found = new Promise<Attached>((resolve, reject) => {
      const onHost = (ip: string, loc: { mac: string; port: number; dpid: string }) => {
        if (ip !== address || (!fabric && loc.dpid !== c.dpid)) return;
        const at = b.switchPort ?? (loc.dpid === c.dpid ? loc.port : learning.portForMac(c.dpid, loc.mac));
        if (at === undefined) return;
        clearTimeout(t);
        learning.off('host', onHost);
        resolve({ mac: b.mac ?? loc.mac, ip: address, port: b.port, ofport: at });
      };
      const t = setTimeout(() => { learning.off('host', onHost); reject(new Error(`backend ${b.name} (${address}) did not answer ${v6 ? 'neighbour solicitation' : 'ARP'}`)); }, ARP_TIMEOUT_MS);
      learning.on('host', onHost);
    });
    this.core.packetOut(c, locateProbe(address), OFPP.FLOOD, OFPP.CONTROLLER);
    return found;
  }
}

/**
 * A question whose answer shows where an address lives, without touching anyone's neighbour
 * cache: an ARP probe (sender 0.0.0.0, RFC 5227), or a neighbour solicitation from '::' (as
 * duplicate address detection sends, RFC 4862 §5.4.2), which the owner answers to all nodes.
 */
export function locateProbe(address: string): Buffer {
  return isIpv6Address(address)
    ? buildNeighborSolicitation({ ethSrc: CONTROLLER_MAC, ipSrc: '::', target: address })
    : buildArpFrame({ op: 'request', ethSrc: CONTROLLER_MAC, senderMac: CONTROLLER_MAC, senderIp: '0.0.0.0', targetIp: address });
}

const backendKey = (b: { ip: string; port: number }) => `${b.ip}:${b.port}`;

function cancelResetRepeats(c: Connection, b: { ip: string; port: number }): void {
  const timer = c.resetRepeats?.get(backendKey(b));
  if (!timer) return;
  clearTimeout(timer);
  c.resetRepeats!.delete(backendKey(b));
}
