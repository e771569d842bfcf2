// The handoff engine (DESIGN.md §2): intercepts service connections, holds the client's first
// data segment until a verdict, and either forwards the connection to server 1 or replays its
// handshake to another backend and splices the two halves with NAT + seq/ack shifting flows.
// This is the coordinator: it is the controller's App and the API's entry point, and hands each
// event to the concern that owns it:
//   interception.ts  SYN → handshake → held segment → verdict
//   move.ts          replay to a target, splice, mid-stream freeze, failure
//   relay.ts         the rewrite done in the controller for stock switches
//   teardown.ts      FIN/RST tracking, idle timeouts, freeing a connection
//   adoption.ts      switches (re)connecting and leaving: reconcile, adopt, grace period
// The phases and their allowed transitions are in phases.ts; engine-core.ts holds the shared state.
import { EventEmitter } from 'node:events';
import type { FlowStats } from '../openflow/index.ts';
import type { ParsedFrame } from '../packet/index.ts';
import type { SwitchConnection } from '../datapath/switch-connection.ts';
import { APP_ID } from '../cookies.ts';
import type { App, FlowRemoved, PacketIn } from '../apps/app.ts';
import type { HostDirectory } from '../fabric/host-directory.ts';
import type { Logger } from '../log.ts';
import type { Connection, ConnectionTable } from './connection.ts';
import { EngineCore, EngineError, type ConnectionView, type EngineOptions, type VerdictRequest } from './engine-core.ts';
import type { ConnectionFlowSpec, SwitchMode } from './flow-plan.ts';
import { Interception } from './interception.ts';
import { Mover } from './move.ts';
import { Teardown } from './teardown.ts';
import { Transit } from './transit.ts';
import { ConntrackForwarding } from './conntrack.ts';
import { SwitchAdoption } from './adoption.ts';
import { parseBackend, type BackendConfig, type ServiceConfig } from './service-config.ts';
import { applyServiceConfig } from './service-reload.ts';

export { EngineError, type ConnectionView, type EngineOptions, type VerdictRequest };

/**
 * Events (all carry plain snapshots from `describe()`):
 * 'conn_opened', 'conn_state' (c, from, to), 'held', 'verdict', 'forwarded', 'migrated',
 * 'migration_failed', 'conn_closed', 'switch_mode' (dpid, mode), 'held_frame' (c, frame) and
 * 'segment_frame' (c, frame) for inspectors, 'move_pending' (c, {to, reason}) once a mid-stream
 * move waits for the client's next data segment, 'move_cancelled' (c, {to, why}), 'tcp_state' (c, dir), 'reconciled' (dpid, counts).
 */
export class HandoffEngine extends EventEmitter implements App {
  readonly name = 'handoff';
  readonly cookieApps = [APP_ID.connection, APP_ID.intercept] as const;
  private readonly core: EngineCore;
  private onPathsChanged?: () => void;

  constructor(services: ServiceConfig[], opts: EngineOptions, learning: HostDirectory, log: Logger) {
    super();
    const core = new EngineCore(this, services, { ...opts }, learning, log);
    core.parts = { interception: new Interception(core), move: new Mover(core), teardown: new Teardown(core), adoption: new SwitchAdoption(core), transit: new Transit(core), conntrack: new ConntrackForwarding(core) };
    this.core = core;
    if (opts.fabric) {
      // The fabric re-routes its own flows on a link change; the connections' flows follow.
      this.onPathsChanged = () => core.parts.transit.pathsChanged();
      learning.on('link_down', this.onPathsChanged);
      learning.on('link_up', this.onPathsChanged);
    }
  }

  get table(): ConnectionTable { return this.core.table; }
  get stats(): EngineCore['stats'] { return this.core.stats; }

  // ---------------------------------------------------------------- the App: switches and packets

  switchReady(sw: SwitchConnection, flows: FlowStats[] = []): Promise<void> { return this.core.parts.adoption.switchReady(sw, flows); }
  switchGone(sw: SwitchConnection, reason: string): void { this.core.parts.adoption.switchGone(sw, reason); }
  packetIn(sw: SwitchConnection, pi: PacketIn, frame: ParsedFrame | undefined): boolean { return this.core.parts.interception.packetIn(sw, pi, frame); }
  flowRemoved(sw: SwitchConnection, msg: FlowRemoved): void { this.core.parts.teardown.flowRemoved(sw, msg); }

  /** Drops every connection from memory, flows untouched: another controller is master now. */
  forget(why: string): void { this.core.parts.adoption.forget(why); }
  /** Stops timers; the switches keep their flows (a restarted controller adopts them). */
  stop(): void {
    this.core.parts.interception.stop();
    this.core.parts.adoption.stop();
    this.core.parts.conntrack.stop();
    // A stopped engine acts no more: no verdict, idle or close timer of a connection fires later.
    for (const c of this.table.all()) this.core.clearTimers(c);
    if (this.onPathsChanged) { this.core.learning.off('link_down', this.onPathsChanged); this.core.learning.off('link_up', this.onPathsChanged); }
  }
  modeOf(dpid: string): SwitchMode | undefined { return this.core.modes.get(dpid); }

  // ---------------------------------------------------------------- verdicts and moves

  verdict(connId: number, req: VerdictRequest): void { this.core.parts.interception.verdict(connId, req); }
  verdictForFlow(flow: { srcIp: string; srcPort: number; dstIp: string; dstPort: number }, req: VerdictRequest): Connection | undefined {
    return this.core.parts.interception.verdictForFlow(flow, req);
  }
  migrate(connId: number, targetName: string): Promise<ConnectionView> { return this.core.parts.move.migrate(connId, targetName); }
  /** Calls off a mid-stream move still waiting for the client's next data segment (409 otherwise). */
  cancelMove(connId: number): ConnectionView { return this.core.parts.move.cancel(connId); }

  /** API: move every forwarded (or held) connection of a service. */
  async migrateService(serviceName: string, targetName: string): Promise<ConnectionView[]> {
    const s = this.service(serviceName);
    if (!s) throw new EngineError(404, `no service named '${serviceName}'`);
    if (!s.backends.some((b) => b.name === targetName)) throw new EngineError(404, `service '${serviceName}' has no backend named '${targetName}'`);
    const todo = [...this.table.all()].filter((c) => c.service === s && c.backendName !== targetName && (c.phase === 'forwarded' || (c.phase === 'held' && !c.move)));
    return Promise.all(todo.map((c) => this.migrate(c.id, targetName)));
  }

  // ---------------------------------------------------------------- services and backends (runtime)

  listServices(): ServiceConfig[] { return this.core.services; }
  service(name: string): ServiceConfig | undefined { return this.core.service(name); }

  async addBackend(serviceName: string, input: unknown): Promise<BackendConfig> {
    const s = this.service(serviceName);
    if (!s) throw new EngineError(404, `no service named '${serviceName}'`);
    let b: BackendConfig;
    try { b = parseBackend(input, 'backend'); } catch (e) { throw new EngineError(400, (e as Error).message); }
    if (s.backends.some((x) => x.name === b.name)) throw new EngineError(409, `service '${serviceName}' already has a backend named '${b.name}'`);
    s.backends.push(b);
    this.core.indexServices();
    await this.reinstallIntercepts();
    this.core.log.info('backend added', { service: s.name, backend: b.name, address: `${b.address}:${b.port}` });
    return b;
  }

  async removeBackend(serviceName: string, backendName: string): Promise<void> {
    const s = this.service(serviceName);
    if (!s) throw new EngineError(404, `no service named '${serviceName}'`);
    const i = s.backends.findIndex((b) => b.name === backendName);
    if (i < 0) throw new EngineError(404, `service '${serviceName}' has no backend named '${backendName}'`);
    if (s.primary === backendName) throw new EngineError(409, `'${backendName}' is the service's primary backend`);
    const busy = this.busyOn(s, backendName);
    if (busy.length) throw new EngineError(409, `'${backendName}' still serves ${busy.length} connection(s); migrate them first`);
    s.backends.splice(i, 1);
    if (s.migrateTo === backendName) s.migrateTo = s.backends.find((b) => b.name !== s.primary)?.name;
    for (const [sid, name] of Object.entries(s.sidBackends)) if (name === backendName) delete s.sidBackends[sid];
    this.core.indexServices();
    await this.reinstallIntercepts();
    this.core.log.info('backend removed', { service: s.name, backend: backendName });
  }

  /**
   * Reload: the running services become `next` (updated in place: connections keep their service
   * objects). Refused with 409, changing nothing, when a removed backend or service still serves
   * connections. Intercept flows are reinstalled on every switch.
   */
  async reconfigureServices(next: ServiceConfig[]): Promise<string[]> {
    const core = this.core;
    const r = applyServiceConfig(core.services, next, (s, backend) => this.busyOn(s, backend).length);
    if (r.errors.length) throw new EngineError(409, r.errors.join('; '));
    core.indexServices();
    // The services have changed already: a switch that fails here gets its intercept flows at its
    // next reconnect (reconcile installs them afresh), so say so rather than fail the reload.
    const failed: string[] = [];
    await Promise.all([...core.switches].map(([dpid, sw]) => core.parts.adoption.replaceIntercepts(sw, dpid).catch((e) => { failed.push(`${dpid}: ${(e as Error).message}`); })));
    // A service that no longer keeps FORWARDs in conntrack no longer sends its traffic through ct:
    // its conntrack-FORWARDed connections get flows of their own (until then, what reaches the
    // controller of them goes on from there).
    const moved = [...this.table.all()].filter((c) => (c.conntrack === 'forwards' && c.service.forwardVia !== 'conntrack') || (c.conntrack === 'migrated' && c.service.migrateVia !== 'conntrack'));
    core.parts.conntrack.giveFlows(moved);
    const lines = [
      ...r.added.map((s) => `services.${s.name}: added (${s.address}:${s.port})`),
      ...r.removed.map((s) => `services.${s.name}: removed`),
    ];
    if (r.added.length || r.removed.length || r.changed.length) lines.push(`intercept flows reinstalled on ${core.switches.size - failed.length} switch(es)`);
    if (moved.length) lines.push(`${moved.length} connection(s) kept in conntrack given flows of their own`);
    for (const f of failed) { lines.push(`intercept flows NOT reinstalled on switch ${f} (they will be at its next reconnect)`); core.log.warn('intercept flows not reinstalled after a reload', { switch: f }); }
    return lines;
  }

  /** Reload: handoff timeouts (each read when its timer is next armed) and releaseBeforeBarrier (at the next release). */
  setHandoffTimeouts(t: Partial<Pick<EngineOptions, 'handshakeTimeoutMs' | 'replayTimeoutMs' | 'closeGraceMs' | 'revalidateMs' | 'releaseBeforeBarrier'>>): void {
    Object.assign(this.core.opts, t);
  }

  /** Connections on `backend` of service `s`, or moving to it. */
  private busyOn(s: ServiceConfig, backend: string): Connection[] {
    return [...this.table.all()].filter((c) => c.service === s && c.phase !== 'closed' && (c.backendName === backend || c.move?.target.name === backend));
  }

  /** After a backend changed: the intercept flows over what each switch has (the other services' are unchanged: replaced in place). */
  private async reinstallIntercepts(): Promise<void> {
    const core = this.core;
    await Promise.all([...core.switches].map(([dpid, sw]) => core.parts.adoption.replaceIntercepts(sw, dpid)));
  }

  // ---------------------------------------------------------------- views

  flowSpec(c: Connection): ConnectionFlowSpec { return this.core.flowSpec(c); }
  describe(c: Connection): ConnectionView { return this.core.describe(c); }
  connections(): ConnectionView[] { return [...this.table.all()].map((c) => this.core.describe(c)); }

  /** The connection table's budgets and what was refused for want of room (status, /api/switches, metrics). */
  load(): LoadView {
    const t = this.table;
    const s = this.core.stats;
    return {
      halfOpen: t.halfOpenCount, halfOpenMax: t.limits.halfOpenMax, halfOpenPerSource: t.limits.halfOpenPerSource,
      established: t.size - t.halfOpenCount, maxConnections: t.limits.max, whenFull: this.core.opts.whenFull ?? 'refuse',
      refused: { tableFull: s.refusedFull, halfOpenEvicted: s.halfOpenEvicted, halfOpenPerSource: s.halfOpenPerSourceRefused },
    };
  }
}

export interface LoadView {
  halfOpen: number; halfOpenMax: number; halfOpenPerSource: number; established: number; maxConnections: number; whenFull: 'refuse' | 'forward';
  refused: { tableFull: number; halfOpenEvicted: number; halfOpenPerSource: number };
}
