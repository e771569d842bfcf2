// The controller's events as plain JSON objects {type, time, ...}: one place that subscribes to
// the controller, engine and analyzers, feeds the WebSocket stream, and remembers recent
// migrations (the dashboard and `tcp-migrate status` show them after the fact).
import { EventEmitter } from 'node:events';
import type { Controller } from '../controller.ts';
import type { SwitchConnection } from '../datapath/switch-connection.ts';
import type { ConnectionView, VerdictRequest } from '../handoff/handoff-engine.ts';
import type { Alert } from '../analyzers/index.ts';
import type { Logger } from '../log.ts';

export interface ApiEvent { type: string; time: string; [k: string]: unknown }

export interface SwitchView { dpid: string; remote: string; mode: 'fastpath' | 'relay' | 'unknown'; connected: boolean; connectedSince: string }

export interface MigrationRecord {
  time: string; connection: number; service: string; client: string;
  from: string; to: string; latencyMs: number; midStream: boolean; sid?: number;
}

const RECENT_MIGRATIONS = 100;

/** Events: 'event' (ApiEvent). */
export class EventHub extends EventEmitter {
  readonly migrations: MigrationRecord[] = [];
  private readonly detach: (() => void)[] = [];

  constructor(private readonly controller: Controller, private readonly log: Logger) {
    super();
    const engine = controller.engine;
    this.on_(controller, 'switch_ready', (sw: SwitchConnection) => this.publish('switch_up', { switch: this.switchView(sw) }));
    this.on_(controller, 'switch_gone', (sw: SwitchConnection, reason: string) => this.publish('switch_down', { dpid: sw.describe(), remote: sw.remote, reason }));
    this.on_(engine, 'conn_opened', (v: ConnectionView) => this.publish('connection_opened', { connection: v }));
    this.on_(engine, 'conn_state', (v: ConnectionView, from: string, to: string) => this.publish('connection_state', { connection: v, from, to }));
    this.on_(engine, 'verdict', (v: ConnectionView, req: VerdictRequest) => this.publish('verdict', { connection: v, verdict: req.verdict, source: req.source, target: req.target, sid: req.sid }));
    this.on_(engine, 'forwarded', (v: ConnectionView) => this.publish('forwarded', { connection: v }));
    this.on_(engine, 'move_pending', (v: ConnectionView, info: { to: string; reason: string }) => this.publish('migration_pending', { connection: v, to: info.to, reason: info.reason }));
    this.on_(engine, 'migrated', (v: ConnectionView, info: { from: string; to: string; latencyMs: number; midStream: boolean; sid?: number }) => {
      const rec: MigrationRecord = { time: new Date().toISOString(), connection: v.id, service: v.service, client: v.client, from: info.from, to: info.to, latencyMs: info.latencyMs, midStream: info.midStream, sid: info.sid };
      this.migrations.push(rec);
      if (this.migrations.length > RECENT_MIGRATIONS) this.migrations.shift();
      this.publish('migrated', { connection: v, from: info.from, to: info.to, latencyMs: info.latencyMs, midStream: info.midStream, sid: info.sid });
    });
    this.on_(engine, 'migration_failed', (v: ConnectionView, info: { to?: string; why: string }) => this.publish('migration_failed', { connection: v, to: info.to, why: info.why }));
    this.on_(engine, 'move_cancelled', (v: ConnectionView, info: { to?: string; why: string }) => this.publish('migration_cancelled', { connection: v, to: info.to, why: info.why }));
    this.on_(engine, 'conn_closed', (v: ConnectionView, why: string) => this.publish('connection_closed', { connection: v, why }));
    this.on_(controller.analyzers, 'alert', (a: Alert, connId: number | undefined) => this.publish('alert', {
      alert: { source: a.source, verdict: a.verdict, msg: a.msg, gid: a.gid, sid: a.sid, rev: a.rev, flow: a.flow, seq: a.seq, time: a.time.toISOString() },
      connection: connId ?? null,
    }));
  }

  /** Emits an event to every subscriber (the API also publishes backend changes). */
  publish(type: string, fields: Record<string, unknown>): void {
    const ev: ApiEvent = { type, time: new Date().toISOString(), ...fields };
    this.emit('event', ev);
  }

  switchView(sw: SwitchConnection): SwitchView {
    const dpid = sw.describe();
    return {
      dpid, remote: sw.remote, mode: this.controller.engine.modeOf(dpid) ?? 'unknown', connected: sw.connected,
      connectedSince: new Date(sw.connectedAt).toISOString(),
    };
  }

  dispose(): void {
    for (const d of this.detach.splice(0)) d();
    this.removeAllListeners();
  }

  // Listener bookkeeping so dispose() leaves the controller as it found it.
  private on_(em: EventEmitter, ev: string, fn: (...a: any[]) => void): void {
    const safe = (...a: any[]) => {
      // A serialisation bug must never throw into the engine's emit().
      try { fn(...a); } catch (e) { this.log.error('event not published', { event: ev, error: (e as Error).message }); }
    };
    em.on(ev, safe);
    this.detach.push(() => em.off(ev, safe));
  }
}
