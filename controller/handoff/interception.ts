// Interception: a service connection from its SYN to its verdict. The handshake goes through the
// controller, the client's first data segment is held until an analyzer (or the API, or the
// timeout) decides, and packets of connections that have flows but still reach the controller
// (copies, strays, relayed connections) are routed by phase.
import { OFPP } from '../openflow/index.ts';
import type { ParsedFrame } from '../packet/index.ts';
import { dpidString, type SwitchConnection } from '../datapath/switch-connection.ts';
import { connIdOf, connRoleOf, CONN_ROLE } from '../cookies.ts';
import type { PacketIn } from '../apps/app.ts';
import { tupleKey, type Connection } from './connection.ts';
import { EngineError, reparse, type EngineCore, type VerdictRequest } from './engine-core.ts';
import { applySynPolicy, summarise } from './option-policy.ts';
import { isIdentity } from './relay.ts';
import { initialTrack, observe, segmentInfo } from './tcp-state.ts';
import type { BackendConfig, ServiceConfig } from './service-config.ts';

/** Client segments queued behind a held one, at most. */
export const MAX_QUEUE = 32;

export class Interception {
  private readonly seenAlerts = new Set<string>();
  private fullWarned = 0;

  constructor(private readonly core: EngineCore) {}

  /** Routes a Packet-In: a tracked connection's packet, a new SYN to a service, or one nobody tracks. */
  packetIn(sw: SwitchConnection, pi: PacketIn, frame: ParsedFrame | undefined): boolean {
    const tcp = frame?.tcp;
    const ip = frame?.ipv4;
    if (!frame || !tcp || !ip || !sw.features) return false;
    const inPort = pi.match.inPort;
    if (inPort === undefined) return false;
    const { table, byServiceAddr } = this.core;

    const c2s = table.byClientTuple(tupleKey(ip.src, tcp.srcPort, ip.dst, tcp.dstPort));
    if (c2s && c2s.sw === sw) { this.fromClient(c2s, pi, frame, inPort); return true; }
    const s2c = table.byBackendTuple(tupleKey(ip.src, tcp.srcPort, ip.dst, tcp.dstPort));
    if (s2c && s2c.sw === sw) { this.fromBackend(s2c, pi, frame, inPort); return true; }

    const service = byServiceAddr.get(`${ip.dst}:${tcp.dstPort}`);
    if (service && tcp.flagSet.syn && !tcp.flagSet.ack) return this.newConnection(sw, service, frame, inPort);
    if (!this.core.switches.has(dpidString(sw.features.datapathId))) return false;
    if (service) return this.core.parts.adoption.degrade(sw, service, frame, 'c2s', inPort);
    const fromPrimary = byServiceAddr.get(`${ip.src}:${tcp.srcPort}`);
    if (fromPrimary) return this.core.parts.adoption.degrade(sw, fromPrimary, frame, 's2c', inPort);
    // Anything else (traffic of connections this controller does not track) is plain forwarding.
    return false;
  }

  private newConnection(sw: SwitchConnection, service: ServiceConfig, frame: ParsedFrame, inPort: number): boolean {
    const { table, stats, log, learning } = this.core;
    if (table.full) {
      stats.refusedFull++;
      if (Date.now() - this.fullWarned > 10000) { this.fullWarned = Date.now(); log.warn('connection table full; new connections are forwarded without interception', { max: table.max }); }
      return false;
    }
    const dpid = dpidString(sw.features!.datapathId);
    const primary = service.backends.find((b) => b.name === service.primary)!;
    const tcp = frame.tcp!;
    const ip = frame.ipv4!;
    const synOut = applySynPolicy(frame.raw, service.options);
    if (!synOut.ok) log.warn('cannot apply the option policy to a SYN; forwarding it untouched', { error: synOut.error.message });
    const syn = synOut.ok ? synOut.value : Buffer.from(frame.raw);
    const backendPort = primary.switchPort ?? learning.portForMac(dpid, frame.eth.dst) ?? OFPP.FLOOD;
    const c: Connection = {
      id: table.allocId(), service, sw, dpid, mode: this.core.modes.get(dpid) ?? 'relay',
      client: { mac: frame.eth.src, ip: ip.src, port: tcp.srcPort, ofport: inPort },
      serviceL2: { mac: frame.eth.dst, ip: ip.dst, port: tcp.dstPort },
      backend: { mac: frame.eth.dst, ip: primary.address, port: primary.port, ofport: backendPort },
      backendName: primary.name,
      phase: 'handshake', track: observe(initialTrack(), 'c2s', segmentInfo(frame)),
      syn, synParsed: reparse(syn) ?? frame, isnClient: tcp.seq, ackDelta: 0, queue: [], retired: [],
      createdAt: Date.now(), migrations: 0, timers: {},
    };
    table.add(c);
    learning.learnHost(ip.src, { mac: frame.eth.src, dpid, port: inPort, seen: Date.now() });
    stats.intercepted++;
    this.armIdle(c, this.core.opts.handshakeTimeoutMs);
    this.core.emit('conn_opened', this.core.describe(c));
    this.core.passOn(c, syn, c.backend.ofport, inPort);
    return true;
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
      return;
    }
    if (tcp.flagSet.syn && !tcp.flagSet.ack) {
      if (tcp.seq === c.isnClient && c.phase === 'handshake' && c.syn) { core.passOn(c, c.syn, c.backend.ofport, inPort); return; }
      if (c.phase === 'closing' || c.phase === 'closed' || tcp.seq !== c.isnClient) {
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
        if (seg.payloadLength === 0 || seg.rst) { core.passOn(c, frame.raw, c.backend.ofport, inPort); if (c.phase === 'handshake' && tcp.flagSet.ack) core.setPhase(c, 'established'); return; }
        this.hold(c, frame);
        return;
      case 'held':
      case 'replaying':
        if (c.held && tcp.seq === c.held.seq) {
          // Retransmission of the held segment: keep one copy (the longest), forward none.
          if (seg.payloadLength > c.held.len) c.held = heldOf(frame);
          return;
        }
        if (seg.payloadLength === 0 && !seg.fin && !seg.rst) return; // pure ACKs carry nothing the backend needs yet
        if (c.queue.length < MAX_QUEUE && !c.queue.some((q) => q.equals(frame.raw))) c.queue.push(Buffer.from(frame.raw));
        return;
      case 'freezing':
        if (seg.payloadLength > 0) { this.hold(c, frame); return; }
        core.relayToBackend(c, frame.raw);
        return;
      case 'forwarded':
      case 'closing':
        // A packet that raced the flow change (stale datapath cache) goes back through the table,
        // which now has the connection's flows; relayed connections are rewritten here instead.
        if (role === 'intercept') core.stray(c);
        if (!core.relayed(c)) { core.packetOut(c, frame.raw, OFPP.TABLE, inPort); return; }
        core.relayToBackend(c, frame.raw);
        return;
      case 'closed': return;
    }
  }

  private fromBackend(c: Connection, pi: PacketIn, frame: ParsedFrame, inPort: number): void {
    const core = this.core;
    const tcp = frame.tcp!;
    const ip = frame.ipv4!;
    const role = this.flowRole(pi, c);
    if (role === 'copy') { core.parts.teardown.trackSegment(c, 's2c', frame); return; }
    const fromTarget = c.replay && ip.src === c.replay.target.ip && tcp.srcPort === c.replay.target.port;
    if (fromTarget) { core.parts.move.fromTarget(c, frame, inPort); return; }
    const fromCurrent = ip.src === c.backend.ip && tcp.srcPort === c.backend.port;
    if (!fromCurrent || c.phase === 'replaying') {
      // A retired backend (or server 1 while its successor is being set up) must never reach the client.
      core.stats.droppedStray++;
      core.log.debug('dropped a segment from a backend the connection has left', { conn: c.id, from: `${ip.src}:${tcp.srcPort}` });
      return;
    }
    if (c.phase === 'handshake' && tcp.flagSet.syn && tcp.flagSet.ack) {
      c.backend = { ...c.backend, mac: frame.eth.src, ofport: inPort };
      if (!c.acceptedSynAck) c.acceptedSynAck = summarise(tcp.options);
      core.learning.learnHost(ip.src, { mac: frame.eth.src, dpid: c.dpid, port: inPort, seen: Date.now() });
    }
    core.parts.teardown.trackSegment(c, 's2c', frame);
    const hasFlows = c.phase === 'forwarded' || c.phase === 'closing' || c.phase === 'freezing' || !!c.move?.midStream;
    if (hasFlows && role === 'intercept') core.stray(c);
    if (hasFlows && !core.relayed(c)) { core.packetOut(c, frame.raw, OFPP.TABLE, inPort); return; }
    if (isIdentity(c)) { core.passOn(c, frame.raw, c.client.ofport, inPort); return; }
    core.relayToClient(c, frame.raw);
  }

  /**
   * Which flow sent this packet-in: a copy of a packet the switch forwarded itself (FIN/RST copies,
   * inspection copies of a non-relayed connection), a relay/freeze flow, or the intercept flow.
   */
  private flowRole(pi: PacketIn, c: Connection): 'copy' | 'flow' | 'intercept' {
    if (connIdOf(pi.cookie) !== c.id) return 'intercept';
    const role = connRoleOf(pi.cookie);
    if (role === CONN_ROLE.flags || (role === CONN_ROLE.main && !this.core.relayed(c))) return 'copy';
    return 'flow';
  }

  // ---------------------------------------------------------------- holding and verdicts

  private hold(c: Connection, frame: ParsedFrame): void {
    const core = this.core;
    c.held = heldOf(frame);
    c.queue = [];
    if (c.phase === 'freezing') {
      // Mid-stream: the move was decided already; this segment is the boundary it happens at.
      core.clearTimer(c, 'freeze');
      core.setPhase(c, 'held');
      core.emit('held', core.describe(c));
      void core.parts.move.startMove(c);
      return;
    }
    core.setPhase(c, 'held');
    core.clearTimer(c, 'idle');
    if (c.service.mirrorPort !== undefined) core.packetOut(c, frame.raw, c.service.mirrorPort, c.client.ofport);
    c.timers.verdict = setTimeout(() => {
      c.timers.verdict = undefined;
      if (c.phase !== 'held' || c.move) return;
      core.log.info('no verdict in time, applying the default', { conn: c.id, verdict: c.service.defaultVerdict });
      this.applyVerdict(c, { verdict: c.service.defaultVerdict, source: 'timeout' });
    }, c.service.verdictTimeoutMs);
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
    const c = table.byClientTuple(tupleKey(flow.srcIp, flow.srcPort, flow.dstIp, flow.dstPort))
      ?? table.byClientTuple(tupleKey(flow.dstIp, flow.dstPort, flow.srcIp, flow.srcPort));
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
    c.lastVerdict = { verdict: req.verdict, source: req.source, sid: req.sid, at: Date.now() };
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

  /** Handshake timeout, or (once established) forwarding a client that sends nothing. */
  armIdle(c: Connection, ms: number): void {
    const core = this.core;
    core.clearTimer(c, 'idle');
    c.timers.idle = setTimeout(() => {
      c.timers.idle = undefined;
      if (c.phase === 'handshake') { core.parts.teardown.finish(c, 'handshake did not complete', true); return; }
      if (c.phase === 'established') {
        // Client connected but sends nothing (server-speaks-first protocols): stop intercepting.
        core.log.info('no client data; forwarding without a verdict', { conn: c.id });
        core.forward(c);
      }
    }, ms);
  }
}

/** The backend a MIGRATE verdict names: the request's, the rule's (sidBackends), or the service's. */
export function targetFor(c: Pick<Connection, 'service'>, req: VerdictRequest): BackendConfig | undefined {
  const name = req.target ?? (req.sid !== undefined ? c.service.sidBackends[String(req.sid)] : undefined) ?? c.service.migrateTo;
  return c.service.backends.find((b) => b.name === name);
}

function heldOf(f: ParsedFrame) {
  return { frame: Buffer.from(f.raw), seq: f.tcp!.seq, ack: f.tcp!.ack, len: f.payload.length, window: f.tcp!.window, heldAt: Date.now() };
}
