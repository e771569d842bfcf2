// Interception: a service connection from its SYN to its verdict. The handshake goes through the
// controller, the client's first data segment is held until an analyzer (or the API, or the
// timeout) decides, and packets of connections that have flows but still reach the controller
// (copies, strays, relayed connections) are routed by phase.
import { OFPP, OFP_NO_BUFFER } from '../openflow/index.ts';
import { canonicalIpv6, ipOf, isIpv6Address, seqAdd, type ParsedFrame } from '../packet/index.ts';
import { dpidString, type SwitchConnection } from '../datapath/switch-connection.ts';
import { APP_ID, connIdOf, connRoleOf, cookieApp, CONN_ROLE, isFlagCopy, isSynAckCopy } from '../cookies.ts';
import type { PacketIn } from '../apps/app.ts';
import { clientIsn, clientKey, endpointKey, makeConnection, NONE, tupleKey, type Connection } from './connection.ts';
import { EngineError, ownCopy, reparse, synRecordOfFrame, type EngineCore, type VerdictRequest } from './engine-core.ts';
import { bypassFlow, fullFreezeFlow, type BypassSpec } from './flow-plan.ts';
import { LogThrottle } from '../log-throttle.ts';
import { resetFor, resetReply } from './segments.ts';
import { applySynPolicy, summarise } from './option-policy.ts';
import { isIdentity } from './relay.ts';
import { initialTrack, observe, segmentInfo } from './tcp-state.ts';
import { addressFor, type BackendConfig, type ServiceConfig } from './service-config.ts';

/** Client segments queued behind a held one, at most. */
export const MAX_QUEUE = 32;

/** Client tuples of connections refused under load, remembered (newest last) so their late segments are dropped. */
const REFUSED_MAX = 65536;
/** Every new connection's TCP states after its SYN (observe() returns new objects, so one shared value will do). */
const SYN_SENT = Object.freeze(observe(initialTrack(), 'c2s', { syn: true, ack: false, fin: false, rst: false, seq: 0, ackNo: 0, payloadLength: 0 }));
/** Interned service endpoints and MAC strings, at most (the caches start over beyond). */
const SHARED_MAX = 4096;
/** Bypass flows remembered, at most; beyond, every move deletes one whether or not it may exist. */
const BYPASSED_MAX = 65536;
/** One of a connection's two flows (its own, or the closing ones that replaced them). */
const isTwoWayFlow = (cookie: bigint) => connRoleOf(cookie) === CONN_ROLE.main || connRoleOf(cookie) === CONN_ROLE.closing;

export class Interception {
  private readonly seenAlerts = new Set<string>();
  private readonly refused = new Map<string, number>();
  private sweeper?: NodeJS.Timeout;
  private readonly ends = new Map<string, { serviceL2: Connection['serviceL2']; backend: Connection['backend'] }>();
  /**
   * Bypass flows sent (switch and match), so that a move deletes one only where one may be: OVS
   * revalidates every datapath flow after any Flow-Mod, one that matches nothing included.
   * `bypassUnknown` once more were sent than remembered: then every move deletes.
   */
  private readonly bypassed = new Set<string>();
  private bypassUnknown = false;

  /** One WARN per kind of overload (and source) every 10 s, with how many were left out. */
  private readonly loadLog: LogThrottle;

  constructor(private readonly core: EngineCore) { this.loadLog = new LogThrottle(core.log); }

  /** Routes a Packet-In: a tracked connection's packet, a new SYN to a service, or one nobody tracks. */
  packetIn(sw: SwitchConnection, pi: PacketIn, frame: ParsedFrame | undefined): boolean {
    const tcp = frame?.tcp;
    const ip = frame?.ipv4 ?? frame?.ipv6;
    if (!frame || !tcp || !ip || !sw.features) return false;
    const inPort = pi.match.inPort;
    if (inPort === undefined) return false;
    const { table, byServiceAddr } = this.core;
    // A FIN/RST copy from table 0: the switch carries the packet on (through the connection's
    // flows, or to the intercept flow, which sends it here in full), so nothing else acts on it.
    if (isFlagCopy(pi.cookie)) { this.flagCopy(sw, frame, inPort); return true; }
    if (isSynAckCopy(pi.cookie)) { this.synAckCopy(sw, frame, inPort); return true; }

    const c2s = table.byClientTuple(tupleKey(ip.src, tcp.srcPort, ip.dst, tcp.dstPort));
    if (c2s && c2s.sw === sw) { this.fromClient(c2s, pi, frame, inPort); return true; }
    const s2c = table.fromBackend(ip.src, tcp.srcPort, ip.dst, tcp.dstPort);
    if (s2c && s2c.sw === sw) { this.fromBackend(s2c, pi, frame, inPort); return true; }
    // A fabric switch on the connection's path that is not its client's: it only carries the packet.
    const passing = this.core.opts.fabric ? c2s ?? s2c : undefined;
    if (passing) { this.core.parts.transit.packetIn(passing, sw, frame, inPort); return true; }

    const service = byServiceAddr.get(endpointKey(ip.dst, tcp.dstPort));
    if (service && tcp.flagSet.syn && !tcp.flagSet.ack) return this.newConnection(sw, service, frame, inPort);
    // A connection refused under load stays refused: its late segments must not slip through
    // unanalysed. A client that already had its SYN-ACK is told at once (a RST), so it retries now.
    if (service && this.refused.has(tupleKey(ip.src, tcp.srcPort, ip.dst, tcp.dstPort))) {
      if (!tcp.flagSet.rst) this.core.sendOut(sw, resetReply(frame), inPort);
      return true;
    }
    if (!this.core.switches.has(dpidString(sw.features.datapathId))) return false;
    if (service) return this.core.parts.adoption.degrade(sw, service, frame, 'c2s', inPort);
    const fromPrimary = byServiceAddr.get(endpointKey(ip.src, tcp.srcPort));
    if (fromPrimary) {
      if (this.refused.has(tupleKey(ip.dst, tcp.dstPort, ip.src, tcp.srcPort))) return true;
      return this.core.parts.adoption.degrade(sw, fromPrimary, frame, 's2c', inPort);
    }
    if (cookieApp(pi.cookie) === APP_ID.intercept && this.core.backendPorts.has(endpointKey(ip.src, tcp.srcPort))) return this.bypass(sw, frame, inPort);
    // Anything else (traffic of connections this controller does not track) is plain forwarding.
    return false;
  }

  /** Direct traffic from a backend's service port (not through the service): a flow forwards the rest of it. */
  private bypass(sw: SwitchConnection, frame: ParsedFrame, inPort: number): boolean {
    const core = this.core;
    const dpid = dpidString(sw.features!.datapathId);
    const out = core.learning.portForMac(dpid, frame.eth.dst);
    if (out === undefined || out === inPort) return false;
    const ip = ipOf(frame);
    const tcp = frame.tcp!;
    core.stats.bypassFlows++;
    const spec = { inPort, src: { ip: ip.src, port: tcp.srcPort }, dst: { ip: ip.dst, port: tcp.dstPort } };
    if (!this.bypassUnknown) {
      this.bypassed.add(bypassKey(dpid, spec));
      if (this.bypassed.size > BYPASSED_MAX) { this.bypassed.clear(); this.bypassUnknown = true; }
    }
    try {
      sw.send(bypassFlow(spec, out));
      sw.send({ type: 'packet_out', xid: 0, bufferId: OFP_NO_BUFFER, inPort, actions: [{ type: 'output', port: out }], data: frame.raw });
    } catch (e) { core.log.debug('bypass flow not sent', { error: (e as Error).message }); }
    return true;
  }

  /** Whether a bypass flow with this match may be on the switch; forgotten, as the caller deletes it. */
  takeBypass(dpid: string, spec: BypassSpec): boolean {
    return this.bypassed.delete(bypassKey(dpid, spec)) || this.bypassUnknown;
  }

  private newConnection(sw: SwitchConnection, service: ServiceConfig, frame: ParsedFrame, inPort: number): boolean {
    const { table, stats, log, learning } = this.core;
    const tcp = frame.tcp!;
    const ip = ipOf(frame);
    if (table.full) {
      stats.refusedFull++;
      const forward = this.core.opts.whenFull === 'forward';
      this.loadLog.warn('table_full', '*', `connection table full; ${forward ? 'new connections are forwarded without interception (handoff.whenFull=forward)' : 'new SYNs are dropped until connections close (handoff.whenFull=refuse)'}`, { max: table.max });
      return !forward;
    }
    if (table.sourceAtBudget(ip.src)) {
      // One address with this many handshakes in progress is flooding (or a huge NAT): its next SYN waits for a retransmission.
      stats.halfOpenPerSourceRefused++;
      this.loadLog.warn('half_open_per_source', ip.src, 'half-open budget of one source reached; its new SYNs are dropped until its handshakes complete or time out', { perSource: table.limits.halfOpenPerSource });
      return true;
    }
    const victim = table.halfOpenVictim();
    if (victim) this.evict(victim);
    const dpid = this.core.shared.strings.get(dpidString(sw.features!.datapathId));
    const primary = service.backends.find((b) => b.name === service.primary)!;
    const synOut = applySynPolicy(frame.raw, service.options);
    if (!synOut.ok && frame.payload.length > 0) {
      // Data must never reach a server before a verdict, and this SYN cannot be rewritten without it.
      this.loadLog.warn('syn_unreadable', ip.src, 'a SYN with data and unreadable options; dropped', { error: synOut.error.message });
      return true;
    }
    if (!synOut.ok) log.warn('cannot apply the option policy to a SYN; forwarding it untouched', { error: synOut.error.message });
    const syn = synOut.ok ? synOut.value : Buffer.from(frame.raw);
    const sent = reparse(syn) ?? frame;
    if (frame.payload.length > 0) {
      // TCP Fast Open data: the client sends it again after the handshake, and that segment is held for the verdict.
      stats.synDataHeld++;
      log.debug('SYN carries data; it goes to no server before a verdict (the client retransmits it after the handshake)', { client: `${ip.src}:${tcp.srcPort}`, bytes: frame.payload.length });
    }
    const backendPort = primary.switchPort ?? learning.portForMac(dpid, frame.eth.dst) ?? OFPP.FLOOD;
    // The client reached the service on one of its addresses (dual-stack: either family): the primary's of that family.
    const ends = this.serviceEnds(service, ip.dst, primary, frame.eth.dst, backendPort);
    const c = makeConnection({
      id: table.allocId(), service, sw, dpid, mode: this.core.modes.get(dpid) ?? 'relay',
      client: { mac: this.core.shared.strings.get(frame.eth.src), ip: this.core.shared.strings.get(ip.src), port: tcp.srcPort, ofport: inPort },
      serviceL2: ends.serviceL2,
      backend: ends.backend,
      backendName: primary.name,
      phase: 'handshake', track: tcp.flagSet.rst ? observe(initialTrack(), 'c2s', segmentInfo(frame)) : SYN_SENT,
      syn: this.core.shareOptions(synRecordOfFrame(sent)), ackDelta: 0, createdAt: Date.now(), migrations: 0,
    });
    table.add(c);
    stats.intercepted++;
    this.sweepHandshakes();
    this.core.emit('conn_opened', this.core.describe(c));
    this.core.passOn(c, syn, c.backend.ofport, inPort, this.core.parts.conntrack.handshakeCommit(c));
    this.core.parts.move.prepare(c);
    return true;
  }

  /**
   * What the client sees and where its SYN goes are the same for every connection of a service
   * (until a connection moves, which replaces its own): shared, immutable objects, so that a
   * half-open entry costs little more than its client's address.
   */
  private serviceEnds(service: ServiceConfig, address: string, primary: BackendConfig, mac: string, ofport: number): { serviceL2: Connection['serviceL2']; backend: Connection['backend'] } {
    const key = `${service.name}|${primary.name}|${address}|${primary.port}|${mac}|${ofport}`;
    let e = this.ends.get(key);
    if (!e) {
      if (this.ends.size >= SHARED_MAX) this.ends.clear();
      // The primary's addresses are the service's (config-checked), so the one the client used is the primary's too.
      e = Object.freeze({
        serviceL2: Object.freeze({ mac, ip: address, port: service.port }),
        backend: Object.freeze({ mac, ip: addressFor(primary, isIpv6Address(address)) ?? address, port: primary.port, ofport }),
      });
      this.ends.set(key, e);
    }
    return e;
  }

  /**
   * The half-open budget is used up: the oldest handshake in progress makes room. Server 1 gets a
   * RST for it (its half-open socket goes), and its late segments are dropped rather than let through.
   */
  private evict(c: Connection): void {
    const core = this.core;
    core.stats.halfOpenEvicted++;
    this.loadLog.warn('half_open_evicted', '*', 'half-open budget reached; the oldest handshakes in progress are dropped for new ones', { halfOpenMax: core.table.limits.halfOpenMax });
    core.packetOut(c, resetFor(c.client, c.backend, seqAdd(clientIsn(c) ?? 0, 1)), c.backend.ofport, c.client.ofport);
    this.refuse(clientKey(c));
    core.parts.teardown.finish(c, 'evicted: half-open budget reached', false);
  }

  private refuse(key: string): void {
    this.refused.delete(key);
    this.refused.set(key, Date.now());
    if (this.refused.size > REFUSED_MAX) this.refused.delete(this.refused.keys().next().value!);
  }


  /**
   * Teardown learns of FIN/RST from these copies: only for the connection's current ends (a retired
   * backend's RST must not close it) and not for relayed connections, whose every packet arrives in
   * full. A segment that reaches the controller in full as well is tracked twice; tracking is idempotent.
   * Nor from server 1 while a first-segment move replays away from it: its segments then never reach
   * the client (fromBackend drops them), so its FIN or RST ends nothing; the move goes on and server 1
   * gets its RST as usual. (A server whose application closes its listener when the move resets an
   * earlier connection, as iperf3's does, resets the connections still in its accept queue.)
   */
  private flagCopy(sw: SwitchConnection, frame: ParsedFrame, inPort: number): void {
    const { table } = this.core;
    const ip = ipOf(frame);
    const tcp = frame.tcp!;
    const key = tupleKey(ip.src, tcp.srcPort, ip.dst, tcp.dstPort);
    const c2s = table.byClientTuple(key);
    if (c2s) {
      if (c2s.sw === sw && inPort === c2s.client.ofport && !this.core.relayed(c2s)) this.core.parts.teardown.trackSegment(c2s, 'c2s', frame);
      return;
    }
    const s2c = table.fromBackend(ip.src, tcp.srcPort, ip.dst, tcp.dstPort);
    if (s2c && s2c.sw === sw && inPort === s2c.backend.ofport && ip.src === s2c.backend.ip && tcp.srcPort === s2c.backend.port && !this.core.relayed(s2c)) {
      if (s2c.phase === 'replaying' && s2c.flowsInstalled === undefined) return;
      this.core.parts.teardown.trackSegment(s2c, 's2c', frame);
    }
  }

  private fromClient(c: Connection, pi: PacketIn, frame: ParsedFrame, inPort: number): void {
    const core = this.core;
    const tcp = frame.tcp!;
    const seg = segmentInfo(frame);
    const role = this.flowRole(pi, c);
    // Flag copies from installed flows were already forwarded by the switch: only learn from them.
    if (role === 'copy') {
      core.parts.teardown.trackSegment(c, 'c2s', frame);
      if (seg.payloadLength > 0) core.emit('segment_frame', core.describe(c), frame);
      // mirrorAll to an IDS on another fabric switch: the flow's copy goes on from here.
      if (c.service.mirrorAll && isTwoWayFlow(pi.cookie) && core.remoteMirror(c)) core.mirror(c, frame.raw);
      // A freeze copy after the move: the datapath's cached freeze megaflow also sent this data to
      // the backend the connection left, until revalidation. Its new flows take it now (the client
      // need not wait for a retransmission).
      if (seg.payloadLength > 0 && c.phase === 'forwarded' && connRoleOf(pi.cookie) === CONN_ROLE.freezeCopy && c.frozenFrom !== undefined && c.frozenFrom !== c.backendName) {
        core.toPipeline(c, frame.raw, inPort);
        return;
      }
      // Data behind a mid-stream move's held segment reached the old backend (out of order, past
      // the hole the held one left) and must reach the target too: it is released after the held one.
      if (seg.payloadLength > 0 && c.move?.midStream && (c.phase === 'held' || c.phase === 'replaying') && c.held && tcp.seq !== c.held.seq) {
        if (c.queue.some((q) => q.equals(frame.raw))) return;
        // Losing one would leave the target without data the client believes delivered: call the move off instead.
        if (c.queue.length >= MAX_QUEUE) { core.parts.move.failMove(c, `more than ${MAX_QUEUE} client segments behind the held one`); return; }
        c.queue = c.queue.concat([ownCopy(frame.raw)]);
      }
      return;
    }
    if (tcp.flagSet.syn && !tcp.flagSet.ack) {
      if (tcp.seq === clientIsn(c) && c.phase === 'handshake') {
        // A retransmitted SYN goes through the same policy (options, and any data, removed).
        const again = applySynPolicy(frame.raw, c.service.options);
        if (again.ok) core.passOn(c, again.value, c.backend.ofport, inPort, core.parts.conntrack.handshakeCommit(c));
        return;
      }
      if (c.phase === 'closing' || c.phase === 'closed' || tcp.seq !== clientIsn(c)) {
        // A new connection reusing the 4-tuple: forget the old one.
        core.parts.teardown.finish(c, 'replaced by a new SYN on the same address/port pair', true);
        this.packetIn(c.sw, pi, frame);
        return;
      }
      return; // retransmitted SYN after the handshake: stale
    }
    core.parts.teardown.trackSegment(c, 'c2s', frame);
    switch (c.phase) {
      case 'handshake':
      case 'established':
        if (c.phase === 'handshake' && tcp.flagSet.ack && !seg.rst) {
          // Learnt only now: a spoofed SYN must not teach the controller where an address lives.
          core.learning.learnHost(c.client.ip, { mac: c.client.mac, dpid: c.dpid, port: c.client.ofport, seen: Date.now() });
        }
        const acked = c.phase === 'handshake' && tcp.flagSet.ack && !seg.rst;
        if (seg.payloadLength === 0 || seg.rst) {
          core.passOn(c, frame.raw, c.backend.ofport, inPort, acked ? core.parts.conntrack.handshakeDone(c) : []);
          if (acked) core.setPhase(c, 'established');
          return;
        }
        if (acked) core.parts.conntrack.handshakeDoneBy(c, frame.raw, inPort);
        this.hold(c, frame);
        return;
      case 'held':
      case 'replaying':
        if (c.held && tcp.seq === c.held.seq) {
          // Retransmission of the held segment: keep one copy (the longest), forward none. The IDS
          // gets it again while it decides: its first copy may have been lost on the way.
          if (seg.payloadLength > c.held.len) c.held = heldOf(frame);
          if (c.phase === 'held' && !c.move) core.mirror(c, frame.raw);
          return;
        }
        if (seg.payloadLength === 0 && !seg.fin && !seg.rst) return; // pure ACKs carry nothing the backend needs yet
        if (c.queue.length < MAX_QUEUE && !c.queue.some((q) => q.equals(frame.raw))) c.queue = c.queue.concat([ownCopy(frame.raw)]);
        return;
      case 'freezing':
        if (seg.payloadLength > 0) { this.hold(c, frame); return; }
        core.relayToBackend(c, frame.raw);
        return;
      case 'forwarded':
      case 'closing':
        // Without confirmed flows (a connection that closed before it had any, flows the switch
        // refused or has not confirmed yet) its segments go on from here: sent to the table they
        // could come straight back.
        if (!c.flowsInstalled) { this.withoutFlows(c, role, frame.raw, 'c2s', inPort); return; }
        // A packet that raced the flow change (stale datapath cache) goes back through the table,
        // which now has the connection's flows; relayed connections are rewritten here instead.
        if (role === 'intercept') core.stray(c);
        if (!core.relayed(c)) { core.toPipeline(c, frame.raw, inPort); return; }
        core.relayToBackend(c, frame.raw);
        return;
      case 'closed': return;
    }
  }

  private fromBackend(c: Connection, pi: PacketIn, frame: ParsedFrame, inPort: number): void {
    const core = this.core;
    const tcp = frame.tcp!;
    const ip = ipOf(frame);
    const role = this.flowRole(pi, c);
    if (role === 'copy') { core.parts.teardown.trackSegment(c, 's2c', frame); return; }
    if (c.prepared && ip.src === c.prepared.target.ip && tcp.srcPort === c.prepared.target.port) { core.parts.move.fromPrepared(c, frame, inPort); return; }
    const fromTarget = c.replay && ip.src === c.replay.target.ip && tcp.srcPort === c.replay.target.port;
    if (fromTarget) { core.parts.move.fromTarget(c, frame, inPort); return; }
    const fromCurrent = ip.src === c.backend.ip && tcp.srcPort === c.backend.port;
    if (!fromCurrent || c.phase === 'replaying') {
      // A retired backend (or server 1 while its successor is being set up) must never reach the client.
      core.stats.droppedStray++;
      core.log.debug('dropped a segment from a backend the connection has left', { conn: c.id, from: `${ip.src}:${tcp.srcPort}` });
      return;
    }
    this.serverAnswered(c, frame, inPort);
    core.parts.teardown.trackSegment(c, 's2c', frame);
    const hasFlows = c.phase === 'forwarded' || c.phase === 'closing' || c.phase === 'freezing' || !!c.move?.midStream;
    if (hasFlows && !c.flowsInstalled) { this.withoutFlows(c, role, frame.raw, 's2c', inPort); return; }
    if (hasFlows && role === 'intercept') core.stray(c);
    if (hasFlows && !core.relayed(c)) { core.toPipeline(c, frame.raw, inPort); return; }
    if (isIdentity(c)) { core.passOn(c, frame.raw, c.client.ofport, inPort); return; }
    core.relayToClient(c, frame.raw);
  }

  /** Server 1's SYN-ACK during the handshake: where it is, and what it accepted of the client's SYN. */
  private serverAnswered(c: Connection, frame: ParsedFrame, inPort: number): void {
    const core = this.core;
    const tcp = frame.tcp!;
    if (c.phase !== 'handshake' || !tcp.flagSet.syn || !tcp.flagSet.ack) return;
    c.backend = core.shared.attached.get({ ...c.backend, mac: core.shared.strings.get(frame.eth.src), ofport: inPort });
    if (!c.acceptedSynAck) {
      c.acceptedSynAck = core.shared.synAck.get(summarise(tcp.options, tcp.flagSet));
      core.parts.move.serverAccepted(c);
    }
    core.learning.learnHost(ipOf(frame).src, { mac: frame.eth.src, dpid: c.dpid, port: inPort, seen: Date.now() });
  }

  /**
   * A copy of server 1's SYN-ACK, which the switch sent to the client itself (its SYN committed the
   * handshake in conntrack): learnt from as the SYN-ACK itself would be, and copied to the IDS, which
   * must see the whole handshake; nothing goes to the client from here.
   */
  private synAckCopy(sw: SwitchConnection, frame: ParsedFrame, inPort: number): void {
    const ip = ipOf(frame);
    const tcp = frame.tcp!;
    const c = this.core.table.fromBackend(ip.src, tcp.srcPort, ip.dst, tcp.dstPort);
    if (!c || c.sw !== sw || ip.src !== c.backend.ip || tcp.srcPort !== c.backend.port) return;
    this.serverAnswered(c, frame, inPort);
    this.core.parts.teardown.trackSegment(c, 's2c', frame);
    if (c.service.mirrorPort !== undefined) this.core.mirror(c, frame.raw);
  }

  /**
   * A segment of a connection without confirmed flows, passed on (rewritten if it was moved) by the
   * controller. A forwarded one's intercepted segments count as strays, so flows the switch refused
   * are tried again (a connection that closed before it had any has none to try).
   */
  private withoutFlows(c: Connection, role: 'copy' | 'flow' | 'intercept', raw: Buffer, dir: 'c2s' | 's2c', inPort: number): void {
    const core = this.core;
    // FORWARDed in conntrack: a segment that raced the commit, or one after a switch restart emptied
    // its conntrack. It goes on committing the connection again (the same values: harmless).
    if (c.conntrack === 'forwards') {
      core.parts.conntrack.out(c, raw, dir, inPort);
      core.parts.conntrack.seen(c);
      return;
    }
    // Migrated in conntrack: the client's segment commits it again; the target's is rewritten here.
    if (c.conntrack === 'migrated') {
      if (dir === 'c2s') core.parts.conntrack.outMoved(c, raw); else core.relayToClient(c, raw);
      core.parts.conntrack.seen(c);
      return;
    }
    if (c.phase === 'forwarded' && role === 'intercept') core.stray(c);
    if (isIdentity(c)) core.passOn(c, raw, dir === 'c2s' ? c.backend.ofport : c.client.ofport, inPort);
    else if (dir === 'c2s') core.relayToBackend(c, raw);
    else core.relayToClient(c, raw);
  }

  /**
   * Which flow sent this packet-in: a copy of a packet the switch forwarded itself (FIN/RST copies,
   * inspection copies of a non-relayed connection), a relay/freeze flow, or the intercept flow.
   */
  private flowRole(pi: PacketIn, c: Connection): 'copy' | 'flow' | 'intercept' {
    if (connIdOf(pi.cookie) !== c.id) return 'intercept';
    const role = connRoleOf(pi.cookie);
    if (role === CONN_ROLE.flags || role === CONN_ROLE.freezeCopy || (isTwoWayFlow(pi.cookie) && !this.core.relayed(c))) return 'copy';
    return 'flow';
  }

  // ---------------------------------------------------------------- holding and verdicts

  private hold(c: Connection, frame: ParsedFrame): void {
    const core = this.core;
    c.held = heldOf(frame);
    c.queue = NONE;
    if (c.phase === 'freezing') {
      // Mid-stream: the move was decided already; this segment is the boundary it happens at.
      core.clearTimer(c, 'freeze');
      if (c.freeze === 'now') { core.send(c, [fullFreezeFlow(core.flowIdentity(c))]); c.fullFreezeAt = Date.now(); }
      core.setPhase(c, 'held');
      core.emit('held', core.describe(c));
      void core.parts.move.startMove(c);
      return;
    }
    core.setPhase(c, 'held');
    core.clearTimer(c, 'idle');
    core.mirror(c, frame.raw);
    core.setTimer(c, 'verdict', c.service.verdictTimeoutMs, () => {
      if (c.phase !== 'held' || c.move) return;
      core.log.info('no verdict in time, applying the default', { conn: c.id, verdict: c.service.defaultVerdict });
      this.applyVerdict(c, { verdict: c.service.defaultVerdict, source: 'timeout' });
    });
    core.emit('held', core.describe(c));
    core.emit('held_frame', core.describe(c), frame);
  }

  /** Entry point for analyzers and the API: a verdict about a connection. */
  verdict(connId: number, req: VerdictRequest): void {
    const c = this.core.table.get(connId);
    if (!c) throw new EngineError(404, `no connection ${connId}`);
    this.applyVerdict(c, req);
  }

  /** A verdict for the connection a packet belongs to (client → service tuple, either orientation); duplicate alerts count once. */
  verdictForFlow(flow: { srcIp: string; srcPort: number; dstIp: string; dstPort: number }, req: VerdictRequest): Connection | undefined {
    const { table, stats } = this.core;
    // IDSs spell IPv6 their own way (Suricata's EVE writes every group in full): the table's keys are RFC 5952.
    const srcIp = canonicalAddress(flow.srcIp);
    const dstIp = canonicalAddress(flow.dstIp);
    const c = table.byClientTuple(tupleKey(srcIp, flow.srcPort, dstIp, flow.dstPort))
      ?? table.byClientTuple(tupleKey(dstIp, flow.dstPort, srcIp, flow.srcPort));
    if (!c) { stats.alertsUnknownConn++; return undefined; }
    const dedupe = `${c.id}:${req.sid ?? ''}:${req.seq ?? ''}:${req.verdict}`;
    if (this.seenAlerts.has(dedupe)) { stats.alertsDuplicate++; return c; }
    this.seenAlerts.add(dedupe);
    if (this.seenAlerts.size > 10000) this.seenAlerts.delete(this.seenAlerts.values().next().value!);
    this.applyVerdict(c, req);
    return c;
  }

  applyVerdict(c: Connection, req: VerdictRequest): void {
    const core = this.core;
    // The verdict, source and rule repeat across connections (shared); only the time is the connection's own.
    c.lastVerdict = core.shared.verdicts.get({ verdict: req.verdict, source: req.source, sid: req.sid });
    c.verdictAt = Date.now();
    core.emit('verdict', core.describe(c), req);
    if (c.phase === 'held' && !c.move) {
      core.clearTimer(c, 'verdict');
      if (req.verdict === 'FORWARD') { core.forward(c); return; }
      const target = targetFor(c, req);
      if (!target) { core.log.warn('MIGRATE verdict but no target backend; forwarding', { conn: c.id }); core.forward(c); return; }
      c.move = { target, reason: `${req.source} verdict`, requestedAt: Date.now(), sid: req.sid, midStream: false };
      void core.parts.move.startMove(c);
      return;
    }
    if (req.verdict === 'MIGRATE' && c.phase === 'forwarded' && c.service.midStream) {
      const target = targetFor(c, req);
      if (target && target.name !== c.backendName) {
        core.parts.move.requestMove(c, target, `${req.source} verdict`, req.sid).catch((e) => core.parts.move.failMove(c, `freezing the connection failed: ${(e as Error).message}`));
      }
      return;
    }
    core.log.debug('verdict ignored in this phase', { conn: c.id, phase: c.phase, verdict: req.verdict });
  }

  /**
   * Handshake timeouts without a timer per entry (a flood's entries must stay small): the
   * half-open set is in arrival order, so one periodic sweep drops expired entries from its front.
   */
  private sweepHandshakes(): void {
    if (this.sweeper) return;
    const every = Math.min(1000, Math.max(10, Math.floor(this.core.opts.handshakeTimeoutMs / 4)));
    this.sweeper = setInterval(() => {
      const core = this.core;
      const deadline = Date.now() - core.opts.handshakeTimeoutMs;
      for (const c of core.table.halfOpenOldestFirst()) {
        if (c.createdAt > deadline) break;
        // Server 1 may hold a half-open socket for it (a spoofed SYN's): free it, as on eviction.
        core.packetOut(c, resetFor(c.client, c.backend, seqAdd(clientIsn(c) ?? 0, 1)), c.backend.ofport, c.client.ofport);
        core.parts.teardown.finish(c, 'handshake did not complete', true);
      }
      if (core.table.halfOpenCount === 0) this.stop();
    }, every);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /** Handshake timeout, or (once established) forwarding a client that sends nothing. */
  armIdle(c: Connection, ms: number): void {
    const core = this.core;
    core.setTimer(c, 'idle', ms, () => {
      if (c.phase === 'handshake') { core.parts.teardown.finish(c, 'handshake did not complete', true); return; }
      if (c.phase === 'established') {
        // Client connected but sends nothing (server-speaks-first protocols): stop intercepting.
        core.log.info('no client data; forwarding without a verdict', { conn: c.id });
        core.forward(c);
      }
    });
  }
}

/** The backend a MIGRATE verdict names: the request's, the rule's (sidBackends), or the service's. */
export function targetFor(c: Pick<Connection, 'service'>, req: VerdictRequest): BackendConfig | undefined {
  const name = req.target ?? (req.sid !== undefined ? c.service.sidBackends[String(req.sid)] : undefined) ?? c.service.migrateTo;
  return c.service.backends.find((b) => b.name === name);
}

/** An address as the connection table spells it (IPv6 in RFC 5952 form); unparseable text is kept (it matches nothing). */
function canonicalAddress(ip: string): string {
  if (!isIpv6Address(ip)) return ip;
  const c = canonicalIpv6(ip);
  return c.ok ? c.value : ip;
}

function bypassKey(dpid: string, b: BypassSpec): string {
  return `${dpid}|${b.inPort}|${tupleKey(b.src.ip, b.src.port, b.dst.ip, b.dst.port)}`;
}

function heldOf(f: ParsedFrame) {
  return { frame: ownCopy(f.raw), seq: f.tcp!.seq, ack: f.tcp!.ack, len: f.payload.length, window: f.tcp!.window, heldAt: Date.now() };
}
