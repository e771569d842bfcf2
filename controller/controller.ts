// The controller core: owns the OpenFlow listener, prepares each switch (reads its flow table and
// hands each app the flows it owns, table-miss to the controller, full packets in Packet-Ins) and
// dispatches switch events to the apps. It never wipes a switch: its flows are the durable state.
import { EventEmitter } from 'node:events';
import { OFPP, OFPCML_NO_BUFFER, flowMod, type FlowStats, type OfpMessage } from './openflow/index.ts';
import { parseFrame } from './packet/index.ts';
import { OpenFlowServer } from './datapath/openflow-server.ts';
import { dpidString, type SwitchConnection } from './datapath/switch-connection.ts';
import { LearningSwitch } from './apps/learning-switch.ts';
import { FabricApp } from './fabric/fabric-app.ts';
import type { HostDirectory } from './fabric/host-directory.ts';
import { HandoffEngine } from './handoff/handoff-engine.ts';
import { AnalyzerBridge } from './analyzer-bridge.ts';
import { QuicSteerApp } from './quic-steer/quic-steer-app.ts';
import { APP_ID, appCookie, cookieApp } from './cookies.ts';
import type { App } from './apps/app.ts';
import { Election } from './ha/election.ts';
import { requestRole } from './ha/switch-role.ts';
import type { ControllerConfig } from './config.ts';
import type { Logger } from './log.ts';

const OFPC_FRAG_NORMAL = 0;
const ALL_ONES = 0xffffffffffffffffn;
/** Packet-Ins held while a switch is being reconciled (beyond this, the oldest are dropped: TCP retransmits). */
const MAX_EARLY_MESSAGES = 4096;
/** Messages the apps handle: only these are held during setup (the rest would be dropped anyway). */
const EARLY_TYPES = new Set<OfpMessage['type']>(['packet_in', 'flow_removed', 'port_status']);

/** A frame the controller received (Packet-In) or sent (Packet-Out), for packet capture. */
export interface CaptureRecord { direction: 'in' | 'out'; dpid: string; port: number; frame: Buffer; time: number }

/**
 * How this controller takes part: alone ('single', no roles: OpenFlow's EQUAL), or as one of
 * several sharing the switches through an etcd election ('master' writes, 'standby' only waits).
 */
export type ControlRole = 'single' | 'master' | 'standby';

/**
 * Events: 'switch_ready' (sw), 'switch_gone' (sw, reason), 'listening' ({host, port}), 'role' (ControlRole, generationId?),
 * 'capture' (CaptureRecord) for every frame in a Packet-In or Packet-Out while someone listens.
 */
export class Controller extends EventEmitter {
  readonly server: OpenFlowServer;
  /** Where hosts are (IP → MAC, switch, port): the learning switch, or the fabric app with `fabric`. */
  readonly learning: HostDirectory;
  /** With `fabric`: the app that forwards across switches, in place of the learning switch. */
  readonly fabric?: FabricApp;
  readonly engine: HandoffEngine;
  readonly analyzers: AnalyzerBridge;
  /** QUIC services (`"protocol": "quic"`): UDP steered by a verdict on the client's Initial. */
  readonly quic: QuicSteerApp;
  private readonly apps: App[] = [];
  readonly stats = { packetIns: 0, unparsedPacketIns: 0, unclaimedPacketIns: 0, appErrors: 0, setupFailures: 0 };
  private readonly election?: Election;
  private _role: ControlRole;
  private generation?: bigint;
  /** Per switch: its messages wait ('pending', while it is being prepared), reach the apps ('ready'), or are ignored ('passive', standby). */
  private readonly state = new Map<SwitchConnection, { mode: 'pending' | 'ready' | 'passive'; early: OfpMessage[] }>();

  constructor(readonly config: ControllerConfig, private readonly log: Logger, apps: App[] = []) {
    super();
    this.server = new OpenFlowServer({ ...config.listen, ...config.switch }, log.child({ component: 'openflow' }));
    if (config.fabric) this.fabric = new FabricApp({ ...config.fabric, ...config.learning }, log.child({ component: 'fabric' }));
    const forwarding = this.fabric ?? new LearningSwitch(config.learning, log.child({ component: 'learning' }));
    this.learning = forwarding;
    this.engine = new HandoffEngine(config.services, { ...config.handoff, inspectInController: !!config.analyzers.builtin, fabric: !!this.fabric }, forwarding, log.child({ component: 'handoff' }));
    this.quic = new QuicSteerApp(config.quicServices, forwarding, log.child({ component: 'quic' }), { maxConnections: config.handoff.maxConnections });
    this.analyzers = new AnalyzerBridge(config.analyzers, this.engine, log.child({ component: 'analyzers' }), this.quic);
    // Migration apps first; the learning switch (or the fabric) takes whatever they leave.
    this.apps.push(this.engine, this.quic, ...apps, forwarding);
    this._role = config.ha ? 'standby' : 'single';
    if (config.ha) {
      this.election = new Election({ endpoints: config.ha.etcd, key: config.ha.key, name: config.ha.name, ttlSec: config.ha.ttlSec, logger: log });
      this.election.on('leader', (gen) => this.becomeMaster(gen));
      this.election.on('follower', (info) => this.becomeStandby(`following ${info.leader}`, info.generationId));
      this.election.on('deposed', (why) => this.becomeStandby(`deposed: ${why}`));
    }
    this.server.on('switch_connected', (sw: SwitchConnection) => this.onSwitch(sw));
    this.server.on('switch_disconnected', (sw: SwitchConnection, reason: string) => {
      this.state.delete(sw);
      for (const app of this.apps) this.guard(app, () => app.switchGone?.(sw, reason));
      this.emit('switch_gone', sw, reason);
    });
  }

  get role(): ControlRole { return this._role; }
  get generationId(): bigint | undefined { return this.generation; }

  private onSwitch(sw: SwitchConnection): void {
    const st = { mode: 'passive' as 'pending' | 'ready' | 'passive', early: [] as OfpMessage[] };
    this.state.set(sw, st);
    sw.on('message', (msg: OfpMessage) => {
      if (st.mode === 'ready') { this.dispatch(sw, msg); return; }
      // Messages that arrive while the apps adopt the switch's flows wait: a Packet-In of a
      // connection not yet adopted would otherwise look like a new, unknown one.
      if (st.mode === 'pending' && EARLY_TYPES.has(msg.type)) {
        if (st.early.length >= MAX_EARLY_MESSAGES) st.early.shift();
        st.early.push(msg);
      }
    });
    sw.on('packet_out', (msg: Extract<OfpMessage, { type: 'packet_out' }>) => {
      if (msg.data.length > 0) this.emit('capture', { direction: 'out', dpid: sw.describe(), port: msg.inPort, frame: msg.data, time: Date.now() } satisfies CaptureRecord);
    });
    if (this._role === 'single') this.take(sw);
    else if (this._role === 'master') this.take(sw, this.generation!);
    else this.watchOnly(sw);
  }

  /** Prepares the switch for the apps; as master, after the switch confirmed the role. */
  private take(sw: SwitchConnection, generation?: bigint): void {
    const st = this.state.get(sw);
    if (!st || st.mode !== 'passive') return;
    st.mode = 'pending';
    (async () => {
      if (generation !== undefined) {
        await requestRole(sw, 'master', generation);
        this.log.info('master of switch', { dpid: sw.describe(), generation: generation.toString() });
      }
      await this.prepare(sw, st);
    })().catch((e) => this.setupFailed(sw, st, e as Error));
  }

  /**
   * A half-prepared switch (no table-miss flow, connections not adopted, mode unknown) must not
   * stay attached: disconnect it, it reconnects (OVS backs off 1-8 s) and setup runs again.
   */
  private setupFailed(sw: SwitchConnection, st: { mode: string; early: OfpMessage[] }, e: Error): void {
    const wasPending = st.mode === 'pending';
    if (wasPending) { st.mode = 'passive'; st.early = []; }
    if (!sw.connected) { this.log.info('switch disconnected during setup', { dpid: sw.describe(), error: e.message }); return; }
    // The role changed meanwhile (now standby): the switch is attached as that role wants.
    if (!wasPending) { this.log.warn('switch setup failed after a role change; left to the new role', { dpid: sw.describe(), error: e.message }); return; }
    this.stats.setupFailures++;
    this.log.error('switch setup failed; disconnecting it so that it reconnects and setup runs again', { dpid: sw.describe(), error: e.message });
    sw.close(`setup failed: ${e.message}`);
  }

  private watchOnly(sw: SwitchConnection): void {
    if (this.generation === undefined) return; // no leader known yet: stay EQUAL-but-silent until one is
    requestRole(sw, 'slave', this.generation).then(
      () => this.log.info('standby for switch', { dpid: sw.describe(), generation: this.generation?.toString() }),
      (e) => this.log.warn('slave role request failed', { dpid: sw.describe(), error: (e as Error).message }),
    );
  }

  private becomeMaster(generation: bigint): void {
    this._role = 'master';
    this.generation = generation;
    this.log.info('elected master; taking the switches', { generation: generation.toString(), switches: this.server.connected.length });
    this.emit('role', this._role, generation);
    for (const sw of this.server.connected) this.take(sw, generation);
  }

  private becomeStandby(why: string, generation?: bigint): void {
    const was = this._role;
    this._role = 'standby';
    if (generation !== undefined) this.generation = generation;
    if (was === 'master') {
      // Another controller owns the switches now: forget everything, write nothing.
      this.log.warn('no longer master; forgetting connections and leaving the switches to the new master', { why });
      this.engine.forget(why);
      this.quic.forget(why);
      this.fabric?.forget(why);
    } else this.log.info('standby', { why, generation: this.generation?.toString() });
    for (const [sw, st] of this.state) { st.mode = 'passive'; st.early = []; this.watchOnly(sw); }
    this.emit('role', this._role, this.generation);
  }

  async start(): Promise<{ host: string; port: number }> {
    // Alert sockets first: an IDS that starts before them loses its alerts silently.
    await this.analyzers.start();
    const bound = await this.server.listen();
    this.emit('listening', bound);
    this.election?.start();
    return bound;
  }

  /** Closes the channels and sockets; the switches keep their flows (a restart adopts them). */
  async stop(): Promise<void> {
    // Resigning first lets a standby take over at once instead of after the lease runs out.
    await this.election?.stop();
    await this.server.close();
    this.engine.stop();
    this.quic.stop();
    this.fabric?.stop();
    await this.analyzers.stop();
  }

  get switches(): SwitchConnection[] { return this.server.connected; }

  private async prepare(sw: SwitchConnection, st: { mode: string; early: OfpMessage[] }): Promise<void> {
    const flows = await sw.flowStats();
    const unreadable = flows.filter((f) => f.undecodable !== undefined);
    // Such a flow is kept (without instructions): its owner reinstalls or deletes it like any flow that differs from its plan.
    if (unreadable.length) this.log.warn('flows whose actions this controller cannot decode', { dpid: sw.describe(), flows: unreadable.length, first: { cookie: '0x' + unreadable[0]!.cookie.toString(16), table: unreadable[0]!.tableId, priority: unreadable[0]!.priority, error: unreadable[0]!.undecodable } });
    const owned = new Map<bigint, App>();
    for (const app of this.apps) for (const a of app.cookieApps ?? []) owned.set(a, app);
    const byApp = new Map<App, FlowStats[]>();
    const unknown: FlowStats[] = [];
    for (const f of flows) {
      const app = owned.get(cookieApp(f.cookie));
      if (app) { const mine = byApp.get(app); if (mine) mine.push(f); else byApp.set(app, [f]); }
      else if (cookieApp(f.cookie) !== APP_ID.core) unknown.push(f);
    }
    if (unknown.length) this.log.warn('deleting flows no app of this controller owns', { dpid: sw.describe(), flows: unknown.length, cookies: [...new Set(unknown.map((f) => '0x' + f.cookie.toString(16)))].slice(0, 8) });
    await sw.transact([
      // Strict deletes: exactly the flows found, nothing that shares their match.
      ...unknown.map((f) => flowMod({ command: 'delete_strict', tableId: f.tableId, priority: f.priority, cookie: f.cookie, cookieMask: ALL_ONES, match: f.match })),
      { type: 'set_config', xid: 0, flags: OFPC_FRAG_NORMAL, missSendLen: OFPCML_NO_BUFFER },
      flowMod({
        command: 'add', priority: 0, cookie: appCookie(APP_ID.core),
        instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: OFPP.CONTROLLER, maxLen: OFPCML_NO_BUFFER }] }],
      }),
    ]);
    for (const app of this.apps) {
      // An app that could not take the switch (the engine's probe failed: mode unknown) fails the setup.
      try { await app.switchReady?.(sw, byApp.get(app) ?? []); } catch (e) { this.stats.appErrors++; throw new Error(`app ${app.name}: ${(e as Error).message}`); }
    }
    const held = st.early;
    st.early = [];
    if (st.mode === 'pending') { st.mode = 'ready'; for (const m of held) this.dispatch(sw, m); }
    this.log.info('switch ready', { dpid: dpidString(sw.features!.datapathId) });
    this.emit('switch_ready', sw);
  }

  private dispatch(sw: SwitchConnection, msg: OfpMessage): void {
    switch (msg.type) {
      case 'packet_in': {
        this.stats.packetIns++;
        if (this.listenerCount('capture') > 0) this.emit('capture', { direction: 'in', dpid: sw.describe(), port: msg.match.inPort ?? 0, frame: msg.data, time: Date.now() } satisfies CaptureRecord);
        const parsed = parseFrame(msg.data);
        if (!parsed.ok) {
          // Truncated or garbage frames are logged and dropped; they never reach the apps' state.
          this.stats.unparsedPacketIns++;
          this.log.debug('unparseable packet-in', { dpid: sw.describe(), error: parsed.error.message });
        }
        const frame = parsed.ok ? parsed.value : undefined;
        for (const app of this.apps) {
          let claimed = false;
          this.guard(app, () => { claimed = app.packetIn?.(sw, msg, frame) ?? false; });
          if (claimed) return;
        }
        this.stats.unclaimedPacketIns++;
        return;
      }
      case 'flow_removed': for (const app of this.apps) this.guard(app, () => app.flowRemoved?.(sw, msg)); return;
      case 'port_status': for (const app of this.apps) this.guard(app, () => app.portStatus?.(sw, msg)); return;
      default: this.log.debug('unhandled message', { dpid: sw.describe(), type: msg.type });
    }
  }

  /** An app bug must not take the controller down or stop the other apps. */
  private guard(app: App, fn: () => void): void {
    try { fn(); } catch (e) {
      this.stats.appErrors++;
      this.log.error('app failed', { app: app.name, error: (e as Error).stack ?? String(e) });
    }
  }
}
