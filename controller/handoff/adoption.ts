// Switches coming and going (DESIGN.md §8): the switch's flow table is the durable state. A switch
// that (re)connects is reconciled with what the controller remembers (reconcile.ts), connections
// found only on the switch are adopted (flow-plan.ts adoptConnection), a switch that goes away
// keeps its connections for a grace period, and segments of connections nobody knows (held or
// mid-handshake when an earlier controller stopped) are forwarded with flows.
import { OFPET, type FlowStats, type OfpMessage } from '../openflow/index.ts';
import { ipOf, type ParsedFrame } from '../packet/index.ts';
import { dpidString, OpenFlowError, type SwitchConnection } from '../datapath/switch-connection.ts';
import { inConntrackOnly, makeConnection, NONE, tupleKey, type Connection } from './connection.ts';
import type { EngineCore } from './engine-core.ts';
import {
  conntrackMigratedFlows, DEFAULT_CONNTRACK_ZONE, deleteConnectionFlows, deleteTransitFlows, flagCopyFlows, flowsByConnection, interceptFlows, interceptsOver, probeFlows,
  type AdoptionContext, type ConnectionFlowSpec, type ConnectionMeta, type SwitchMode,
} from './flow-plan.ts';
import { hasFlows } from './phases.ts';
import { appCookie, APP_ID, cookieApp, connRoleOf, CONN_ROLE, COOKIE_APP_MASK } from '../cookies.ts';
import { passesConntrack, type SwitchCaps } from './conntrack.ts';
import { planReconciliation } from './reconcile.ts';
import { addressesOf, type ServiceConfig } from './service-config.ts';
import type { Direction } from './tcp-state.ts';

export interface ReconcileCounts { adopted: number; kept: number; reinstalled: number; dropped: number }

export class SwitchAdoption {
  /** dpid → timer that forgets a disconnected switch's connections when its grace period ends. */
  private readonly graceTimers = new Map<string, NodeJS.Timeout>();
  /** dpid → ids of connections that ended while their switch was away (their flows go on reconnect). */
  private readonly endedAway = new Map<string, Set<number>>();

  constructor(private readonly core: EngineCore) {}

  /**
   * A switch is (again) under this controller's control. `flows` is its connection and intercept
   * flows as read at connect time: connections are reconciled both ways, then the service
   * intercept flows are installed afresh.
   */
  async switchReady(sw: SwitchConnection, flows: FlowStats[]): Promise<void> {
    const core = this.core;
    const dpid = dpidString(sw.features!.datapathId);
    core.switches.set(dpid, sw);
    const grace = this.graceTimers.get(dpid);
    if (grace) { clearTimeout(grace); this.graceTimers.delete(dpid); }
    const { mode, fieldShift, ct } = await probe(sw);
    core.modes.set(dpid, mode);
    if (fieldShift) core.fieldShifts.add(dpid); else core.fieldShifts.delete(dpid);
    if (ct) core.noConntrack.delete(dpid); else core.noConntrack.add(dpid);
    if (!ct && core.services.some((s) => s.forwardVia === 'conntrack' || s.migrateVia === 'conntrack')) {
      core.log.warn('switch has no connection tracker (the ct action is refused): FORWARD and MIGRATE verdicts use flows there', { dpid });
    } else if (mode === 'fastpath' && !fieldShift && core.services.some((s) => s.migrateVia === 'conntrack')) {
      core.log.warn('switch cannot take a shift\'s delta from a field (ovs-patch 0008 missing): MIGRATE verdicts of migrateVia conntrack services use flows there', { dpid });
    }
    core.log.info(mode === 'fastpath' ? 'switch has inc/dec_tcp_seq/ack: migrated connections stay in the datapath' : 'switch lacks inc/dec_tcp_seq/ack: migrated connections are relayed through the controller (slow)', { dpid, mode });
    core.emit('switch_mode', dpid, mode);
    await this.reconcile(sw, dpid, mode, flows);
  }

  private async reconcile(sw: SwitchConnection, dpid: string, mode: SwitchMode, flows: FlowStats[]): Promise<void> {
    const core = this.core;
    const known = new Map<number, ConnectionFlowSpec | undefined>();
    for (const c of core.table.all()) {
      if (c.dpid !== dpid) continue;
      c.sw = sw;
      c.mode = mode;
      // One FORWARDed in conntrack has no flows: the switch's conntrack carries it (still there after a
      // channel reset; after a switch restart its packets come as strays, which commit it again).
      known.set(c.id, hasFlows(c.phase) && !inConntrackOnly(c) ? core.flowSpec(c) : undefined);
    }
    const ended = this.endedAway.get(dpid) ?? new Set<number>();
    this.endedAway.delete(dpid);
    // Transit flows (fabric) are not connections of this switch: they go, and are learnt again as packets pass.
    const own = flows.filter((f) => connRoleOf(f.cookie) !== CONN_ROLE.transit);
    const plan = planReconciliation(known, ended, flowsByConnection(own), this.adoptionContext(mode, dpid));
    const msgs: OfpMessage[] = own.length === flows.length ? [] : [deleteTransitFlows()];
    for (const id of plan.reinstall) msgs.push(...core.reinstallMessages(core.table.get(id)!));
    const why: Record<string, number> = {};
    const drop = (id: number, reason: string) => { msgs.push(...deleteConnectionFlows(id)); why[reason] = (why[reason] ?? 0) + 1; };
    for (const d of plan.drop) {
      drop(d.id, d.why);
      core.log.warn('deleting flows the controller cannot adopt', { dpid, conn: d.id, why: d.why });
    }
    let adopted = 0;
    let inexact = 0;
    for (const a of plan.adopt) {
      if (core.table.get(a.id) || core.table.byClientTuple(tupleKey(a.spec.client.ip, a.spec.client.port, a.spec.service.ip, a.spec.service.port))) {
        drop(a.id, 'another connection has the same id or client');
        continue;
      }
      const c = this.adopt(sw, dpid, a.spec);
      if (!a.exact) { msgs.push(...core.reinstallMessages(c)); inexact++; }
      adopted++;
    }
    core.stats.adopted += adopted;
    core.stats.reinstalled += plan.reinstall.length + inexact;
    await sw.transact([...msgs, ...this.allIntercepts(dpid, flows.filter((f) => cookieApp(f.cookie) === APP_ID.intercept))]);
    const counts: ReconcileCounts = { adopted, kept: plan.keep.length, reinstalled: plan.reinstall.length + inexact, dropped: Object.values(why).reduce((a, b) => a + b, 0) };
    core.log.info('switch reconciled', { dpid, ...counts, ...(counts.dropped ? { why } : {}) });
    core.emit('reconciled', dpid, counts);
  }

  private adoptionContext(mode: SwitchMode, dpid: string): AdoptionContext {
    return {
      mode,
      service: (name) => {
        const s = this.core.service(name);
        return s && {
          mirrorPort: s.mirrorAll ? this.core.localMirror({ service: s, dpid }) : undefined,
          inspect: s.mirrorAll && (!!this.core.opts.inspectInController || this.core.remoteMirror({ service: s, dpid })),
        };
      },
    };
  }

  /** A connection rebuilt from its flows: forwarded (maybe migrated) as the flows say. */
  private adopt(sw: SwitchConnection, dpid: string, spec: ConnectionFlowSpec & { meta: ConnectionMeta }): Connection {
    const core = this.core;
    const c = makeConnection({
      id: spec.id, service: core.service(spec.meta.serviceName)!, sw, dpid, mode: spec.mode,
      client: spec.client, serviceL2: spec.service, backend: spec.backend, backendName: spec.meta.backendName,
      phase: 'forwarded', track: { client: 'ESTABLISHED', server: 'ESTABLISHED' },
      syn: spec.meta.syn, acceptedSynAck: spec.meta.synAck,
      ackDelta: spec.ackDelta, createdAt: spec.meta.createdAt, migrations: spec.meta.migrations, adopted: true, flowsInstalled: true,
      ...(spec.meta.conntrackMarked && { conntrack: 'marked' as const }),
      ...(spec.ctExit && { ctExit: spec.ctExit }),
      ...(spec.meta.left ? { leftBackend: core.shared.attached.get({ mac: spec.meta.left.mac, ip: spec.meta.left.ip, port: spec.meta.left.port, ofport: spec.meta.left.ofport }), leftSeq: spec.meta.left.seq } : {}),
    });
    core.table.add(c);
    core.learning.learnHost(c.client.ip, { mac: c.client.mac, dpid, port: c.client.ofport, seen: Date.now() });
    core.parts.move.resetLeft(c);
    core.emit('conn_opened', core.describe(c));
    return c;
  }

  /**
   * A segment of a service connection nobody tracks: it was in its handshake or held when an
   * earlier controller stopped (established connections are adopted from their flows). Such a
   * connection continues on server 1 without a verdict: it gets forwarding flows at once rather
   * than a life of Packet-Ins. SYN/FIN/RST and late packets of connections just closed are left
   * to plain forwarding.
   */
  degrade(sw: SwitchConnection, service: ServiceConfig, frame: ParsedFrame, dir: Direction, inPort: number): boolean {
    const core = this.core;
    const tcp = frame.tcp!;
    const ip = ipOf(frame);
    if (tcp.flagSet.syn || tcp.flagSet.fin || tcp.flagSet.rst || core.table.full) return false;
    const dpid = dpidString(sw.features!.datapathId);
    const client = dir === 'c2s' ? { mac: frame.eth.src, ip: ip.src, port: tcp.srcPort } : { mac: frame.eth.dst, ip: ip.dst, port: tcp.dstPort };
    const serverMac = dir === 'c2s' ? frame.eth.dst : frame.eth.src;
    // The service address the client uses (dual-stack: either family), which is the primary's too.
    const serviceIp = dir === 'c2s' ? ip.dst : ip.src;
    if (core.parts.teardown.closedRecently(tupleKey(client.ip, client.port, serviceIp, service.port))) return false;
    const primary = service.backends.find((b) => b.name === service.primary)!;
    const clientPort = dir === 'c2s' ? inPort : core.learning.portForMac(dpid, client.mac);
    const serverPort = dir === 's2c' ? inPort : primary.switchPort ?? core.learning.portForMac(dpid, serverMac);
    if (clientPort === undefined || serverPort === undefined) return false;
    const c = makeConnection({
      id: core.table.allocId(), service, sw, dpid, mode: core.modes.get(dpid) ?? 'relay',
      client: { ...client, ofport: clientPort },
      serviceL2: { mac: serverMac, ip: serviceIp, port: service.port },
      backend: { mac: serverMac, ip: serviceIp, port: primary.port, ofport: serverPort },
      backendName: primary.name, phase: 'forwarded', track: { client: 'ESTABLISHED', server: 'ESTABLISHED' },
      ackDelta: 0, createdAt: Date.now(), migrations: 0, adopted: true,
    });
    core.table.add(c);
    core.stats.degraded++;
    core.log.info('connection without a known handshake (from before a restart); forwarding it to the primary', { conn: c.id, client: `${client.ip}:${client.port}`, service: service.name });
    core.emit('conn_opened', core.describe(c));
    c.sw.transact(core.reinstallMessages(c)).then(() => {
      c.flowsInstalled = true;
      core.toPipeline(c, frame.raw, inPort);
      core.stats.forwarded++;
      core.emit('forwarded', core.describe(c));
    }, (e) => { core.log.error('installing forwarding flows failed', { conn: c.id, error: (e as Error).message }); core.parts.teardown.finish(c, 'flows could not be installed', false); });
    return true;
  }

  /**
   * The switch's channel closed. Its flows keep carrying traffic (fail_mode=secure), so its
   * connections are kept for the grace period: a switch that comes back reconciles with them.
   * Steps that were half done (a held segment, a replay, a freeze) are undone; the client
   * retransmits what was held.
   */
  switchGone(sw: SwitchConnection, reason: string): void {
    const core = this.core;
    let dpid: string | undefined;
    for (const [d, s] of core.switches) if (s === sw) { core.switches.delete(d); dpid = d; }
    const mine = [...core.table.all()].filter((c) => c.sw === sw);
    for (const c of mine) this.detach(c);
    if (!dpid || mine.length === 0) return;
    if (core.opts.switchGraceMs === 0) { for (const c of mine) core.parts.teardown.finish(c, `switch disconnected: ${reason}`, false); return; }
    core.log.info('switch gone; keeping its connections for the grace period', { dpid, connections: mine.length, graceMs: core.opts.switchGraceMs, reason });
    const d = dpid;
    const t = setTimeout(() => {
      this.graceTimers.delete(d);
      if (core.switches.has(d)) return;
      const left = [...core.table.all()].filter((c) => c.dpid === d);
      core.log.warn('switch did not come back within the grace period; forgetting its connections (their flows stay on the switch and are adopted if it returns)', { dpid: d, connections: left.length });
      for (const c of left) core.parts.teardown.finish(c, `switch did not come back: ${reason}`, false);
      this.endedAway.delete(d);
    }, core.opts.switchGraceMs);
    t.unref();
    this.graceTimers.set(d, t);
  }

  private detach(c: Connection): void {
    const core = this.core;
    core.clearTimer(c, 'verdict');
    core.clearTimer(c, 'freeze');
    // A move being spliced (the target answered, the connection is on it in memory, its flows await
    // the switch's confirmation) stands: the splice settles it (move.ts) when that confirmation fails.
    if (c.replay?.targetIsn !== undefined && c.backend === c.replay.target) return;
    if (c.replay?.timer) clearTimeout(c.replay.timer);
    const wasMoving = !!c.move;
    c.move = undefined;
    c.replay = undefined;
    if (c.freeze === 'now') c.freeze = 'past';
    c.held = undefined;
    c.queue = NONE;
    if (c.phase === 'held' || c.phase === 'replaying') core.setPhase(c, 'established');
    else if (c.phase === 'freezing') core.setPhase(c, 'forwarded');
    if (wasMoving) core.emit('migration_failed', core.describe(c), { why: 'switch disconnected during the move' });
  }

  /** A connection finished while its switch is away: its flows are deleted when the switch returns. */
  endedWhileAway(c: Connection): void {
    if (!this.graceTimers.has(c.dpid)) return;
    const ended = this.endedAway.get(c.dpid) ?? new Set<number>();
    ended.add(c.id);
    this.endedAway.set(c.dpid, ended);
  }

  /**
   * Another controller took the switches (or this one lost its election): drop every connection
   * from memory without touching a flow; the new master adopts them from the switches.
   */
  forget(why: string): void {
    const core = this.core;
    this.stop();
    this.endedAway.clear();
    core.switches.clear();
    const all = [...core.table.all()];
    for (const c of all) core.parts.teardown.finish(c, why, false);
    if (all.length) core.log.info('forgot connections', { connections: all.length, why });
  }

  /** Stops timers (the switch's flows are left alone: a restarted controller adopts them). */
  stop(): void {
    for (const t of this.graceTimers.values()) clearTimeout(t);
    this.graceTimers.clear();
    for (const c of this.core.table.all()) this.core.clearTimers(c);
  }

  /** Every service's intercept flows on switch `dpid`, over the intercept flows it has (`present`: interceptsOver). */
  allIntercepts(dpid: string, present: FlowStats[]): OfpMessage[] {
    const core = this.core;
    const caps = core.capsOf(dpid);
    const zone = core.parts.conntrack.zone;
    return interceptsOver([
      // Table 2 before the table-0 flows that send to it (a table miss there drops); always, since
      // a connection kept out of ct (ctExit) needs it whatever the services say now.
      ...flagCopyFlows(zone, caps.ct),
      ...core.services.flatMap((s, i) => interceptFor(s, i, zone, caps)),
      ...(caps.ct && caps.fieldShift && core.services.some((s) => s.migrateVia === 'conntrack') ? conntrackMigratedFlows(zone) : []),
    ], present);
  }

  /** The same after a change of services: the switch's intercept flows are read first. */
  async replaceIntercepts(sw: SwitchConnection, dpid: string): Promise<void> {
    const present = await sw.flowStats(appCookie(APP_ID.intercept), COOKIE_APP_MASK);
    await sw.transact(this.allIntercepts(dpid, present));
  }
}

/** A service's intercept flows, on a switch with `caps` (a connection tracker; shift actions that take their delta from a field). */
export function interceptFor(s: ServiceConfig, index: number, conntrackZone = DEFAULT_CONNTRACK_ZONE, caps: SwitchCaps = { ct: true, fieldShift: false }): OfpMessage[] {
  const forward = s.forwardVia === 'conntrack';
  const nat = s.migrateVia === 'conntrack' && caps.fieldShift;
  return interceptFlows({
    index, service: { ip: s.address, ...(s.address6 !== undefined && { ip6: s.address6 }), port: s.port },
    backends: s.backends.flatMap((b) => addressesOf(b).map((ip) => ({ ip, port: b.port }))),
    ...(passesConntrack(s, caps) && { conntrackZone, conntrackForward: forward, conntrackNat: nat }),
  });
}

/**
 * Flow-Mods in a scratch table, each confirmed by a Barrier: an error for the one with ct means a
 * switch without a connection tracker; for the one with inc_tcp_seq an unpatched switch, for the
 * third (the delta from a field) one without ovs-patch 0008.
 */
async function probe(sw: SwitchConnection): Promise<{ mode: SwitchMode; fieldShift: boolean; ct: boolean }> {
  const p = probeFlows();
  // Whether the switch takes this flow (a refused action: false; any other error is no answer).
  const takes = (flow: OfpMessage): Promise<boolean> => sw.transact([flow]).then(() => true, (e) => {
    if (e instanceof OpenFlowError && e.errType === OFPET.BAD_ACTION) return false;
    throw e;
  });
  const ct = await takes(p.addCt);
  const patched = await takes(p.add);
  const fieldShift = patched && await takes(p.addFromField);
  await sw.transact([p.remove]);
  return { mode: patched ? 'fastpath' : 'relay', fieldShift, ct };
}

