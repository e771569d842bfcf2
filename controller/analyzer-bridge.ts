// Connects alert sources to the handoff engine: every alert with a verdict becomes a verdict for
// the connection its packet belongs to; held (and, with mirrorAll, copied) segments are shown to
// the built-in matcher, which answers synchronously. An IDS's no-match marker applies the default
// verdict at once (no-match.ts); health.ts watches whether each IDS still answers. QUIC services'
// clients (quic-steer/) get their verdicts the same way: the matcher reads their Initial, and
// alerts about their 4-tuples go to the QUIC app.
import { EventEmitter } from 'node:events';
import { BuiltinMatcher, SnortUnixsockSource, SuricataEveSource, isNoMatchMarker, type ActivityKind, type Alert, type AlertSource, type RuleReloadSummary } from './analyzers/index.ts';
import { analyzerRestartNeeded, snortSockets, type AnalyzersConfig } from './analyzers/analyzer-config.ts';
import { AnalyzerHealth, type AnalyzerHealthView } from './analyzers/health.ts';
import { NoMatchTracker, type NoMatchStats } from './analyzers/no-match.ts';
import type { HandoffEngine, ConnectionView } from './handoff/handoff-engine.ts';
import type { ParsedFrame } from './packet/index.ts';
import type { ClientInitialProgress } from './quic/index.ts';
import type { FlowKey } from './analyzers/types.ts';
import type { QuicConnView, QuicSteerApp } from './quic-steer/quic-steer-app.ts';
import type { Logger } from './log.ts';

/** Events: 'alert' (alert, connection id or undefined); 'analyzer_health' (analyzer, state, reason). */
export class AnalyzerBridge extends EventEmitter {
  readonly sources: AlertSource[] = [];
  readonly builtin?: BuiltinMatcher;
  readonly stats = { alerts: 0, withoutVerdict: 0, unknownConnection: 0 };
  readonly health: AnalyzerHealth;
  readonly noMatch: NoMatchTracker;
  /** Default verdicts applied by the verdict timeout, per service (tcp_migrate_verdict_timeouts_total). */
  readonly verdictTimeouts = new Map<string, number>();
  /** Default verdicts applied at once because an IDS saw the held segment and no rule matched, per analyzer kind. */
  readonly noMatchVerdicts = new Map<string, number>();
  /** Health name of each socket source: its kind, or kind:path when a kind has several sockets. */
  private readonly healthName = new Map<AlertSource, string>();
  private healthTimer: NodeJS.Timeout | undefined;
  /** The analyzers as started (sockets) with the rule files and vars in force: what reloads compare to. */
  private running: AnalyzersConfig;

  /** `quic`: QUIC services' app; alerts about its clients' 4-tuples go to it, not to the TCP engine. */
  constructor(cfg: AnalyzersConfig, private readonly engine: HandoffEngine, private readonly log: Logger, private readonly quic?: QuicSteerApp) {
    super();
    this.running = structuredClone(cfg);
    if (cfg.builtin) {
      this.builtin = new BuiltinMatcher({ ruleFiles: cfg.builtin.rules, vars: cfg.builtin.vars, logger: log });
      this.sources.push(this.builtin);
    }
    // One source per Snort socket: Snort 3 with several packet threads sends to <logdir>/<N>_snort_alert.
    for (const { path, key } of cfg.snort ? snortSockets(cfg.snort) : []) {
      const { mode, owner, group } = cfg.snort!;
      const createDir = cfg.snort!.logDir !== undefined;
      this.sources.push(new SnortUnixsockSource({ path, mode, owner, group, createDir, configKey: 'analyzers.snort', socketKey: key, logger: log }));
    }
    if (cfg.suricata) this.sources.push(new SuricataEveSource({ dgramPath: cfg.suricata.socket, streamPath: cfg.suricata.streamSocket, mode: cfg.suricata.mode, logger: log }));
    for (const s of this.sources) s.on('alert', (a) => this.onAlert(a, s));

    const ids = this.sources.filter((s) => s !== this.builtin);
    for (const s of ids) {
      const several = ids.filter((x) => x.name === s.name).length > 1;
      this.healthName.set(s, several && s instanceof SnortUnixsockSource ? `${s.name}:${s.path}` : s.name);
    }
    this.health = new AnalyzerHealth([...new Set(this.healthName.values())], { logger: log });
    this.health.on('change', (name: string, state: string, reason?: string) => this.emit('analyzer_health', name, state, reason));
    for (const [s, name] of this.healthName) {
      const em = s as unknown as EventEmitter;
      em.on('activity', (kind: ActivityKind) => this.health.record(name, kind));
      em.on('peers', (n: number) => this.health.peers(name, n));
    }
    this.noMatch = new NoMatchTracker([...new Set(ids.map((s) => s.name))], (id, by) => this.applyNoMatch(id, by));
    if (ids.length) {
      engine.on('held_frame', (c: ConnectionView, f: ParsedFrame) => this.heldForIds(c, f));
      engine.on('conn_closed', (c: ConnectionView) => this.noMatch.decided(c.id));
    }
    engine.on('verdict', (c: ConnectionView, req: { source: string }) => this.onVerdict(c, req));
    // After heldForIds: a verdict the built-in matcher gives at once must find the segment
    // registered, so that it cancels the IDS's marker for it.
    if (this.builtin) {
      engine.on('held_frame', (c: ConnectionView, f: ParsedFrame) => this.inspectHeld(c, f));
      engine.on('segment_frame', (_c: ConnectionView, f: ParsedFrame) => this.builtin!.inspect(f));
    }
    if (quic) {
      if (this.builtin) quic.on('initial', (c: QuicConnView, initial: ClientInitialProgress, flow: FlowKey) => this.inspectQuic(c, initial, flow));
      quic.on('verdict', (c: QuicConnView, req: { source: string }) => {
        if (req.source === 'timeout') this.verdictTimeouts.set(c.service, (this.verdictTimeouts.get(c.service) ?? 0) + 1);
      });
    }
  }

  /** Starts every source; if one fails, those already started are stopped again (their sockets unlinked). */
  async start(): Promise<void> {
    try {
      for (const s of this.sources) {
        await s.start();
        this.log.info('analyzer ready', { analyzer: s.name });
      }
    } catch (e) {
      await this.stop();
      throw e;
    }
    if (this.healthName.size && !this.healthTimer) {
      this.healthTimer = setInterval(() => this.health.tick(), 1000);
      this.healthTimer.unref();
    }
  }

  async stop(): Promise<void> {
    if (this.healthTimer) { clearInterval(this.healthTimer); this.healthTimer = undefined; }
    await Promise.all(this.sources.map((s) => s.stop().catch(() => undefined)));
  }

  /** Health of each IDS (the built-in matcher answers synchronously and has none). */
  healthViews(): AnalyzerHealthView[] { return this.health.views(); }

  /** GET /api/analyzers: each IDS's health, verdict timeouts per service, no-match counts. */
  view(): { analyzers: AnalyzerHealthView[]; builtin: boolean; verdictTimeouts: Record<string, number>; noMatch: NoMatchStats & { byAnalyzer: Record<string, number> } } {
    return {
      analyzers: this.healthViews(), builtin: !!this.builtin,
      verdictTimeouts: Object.fromEntries(this.verdictTimeouts),
      noMatch: { ...this.noMatch.stats, byAnalyzer: Object.fromEntries(this.noMatchVerdicts) },
    };
  }

  /**
   * Reads and checks what a reload to `cfg` would change, changing nothing yet: the built-in
   * matcher's rule files and vars are reloadable; analyzers added or removed and socket changes
   * are listed in restartNeeded and ignored. Rejects with RuleParseError (file:line: option) when
   * a rule is invalid. commit() puts the new rules in force; it cannot fail.
   */
  async prepareReload(cfg: AnalyzersConfig): Promise<{ changes: string[]; restartNeeded: string[]; commit(): void }> {
    const restartNeeded = analyzerRestartNeeded(this.running, cfg);
    if (!this.builtin) return { changes: [], restartNeeded, commit: () => undefined };
    // Builtin removed from the config: it keeps running (restart needed), with its current files.
    const prepared = await this.builtin.prepare(cfg.builtin ? { ruleFiles: cfg.builtin.rules, vars: cfg.builtin.vars } : {});
    const changes = ruleChanges(prepared.summary);
    return {
      changes, restartNeeded,
      commit: () => {
        prepared.commit();
        const now = this.builtin!.source();
        this.running.builtin = { rules: now.ruleFiles, vars: now.vars };
      },
    };
  }

  /**
   * Reloads the built-in matcher's rules (old rules stay on any error, which is thrown). Returns
   * one line per change, then one per difference that needs a restart ("... (needs a restart)").
   */
  async reload(cfg: AnalyzersConfig): Promise<string[]> {
    const p = await this.prepareReload(cfg);
    p.commit();
    return [...p.changes, ...p.restartNeeded.map((r) => `${r} (needs a restart)`)];
  }

  private inspectHeld(c: ConnectionView, frame: ParsedFrame): void {
    const alerts = this.builtin!.inspect(frame);
    // No rule matched and no IDS is listening: the default applies now rather than after the timeout.
    if (!alerts.some((a) => a.verdict) && this.sources.length === 1) {
      try { this.engine.verdict(c.id, { verdict: this.engine.service(c.service)?.defaultVerdict ?? 'FORWARD', source: 'builtin (no rule matched)' }); } catch { /* closed meanwhile */ }
    }
  }

  /** A QUIC client's Initial, read whole: the built-in matcher's QUIC rules decide, as for a held segment. */
  private inspectQuic(c: QuicConnView, initial: ClientInitialProgress, flow: FlowKey): void {
    const alerts = this.builtin!.inspectQuic(initial, flow);
    if (!alerts.some((a) => a.verdict) && this.sources.length === 1) {
      this.quic!.verdict(c.id, { verdict: this.quic!.service(c.service)?.defaultVerdict ?? 'FORWARD', source: 'builtin (no rule matched)' });
    }
  }

  /** A held segment went to the IDS port: each IDS's marker for it can decide it (no-match.ts). */
  private heldForIds(c: ConnectionView, f: ParsedFrame): void {
    const ip = f.ipv4 ?? f.ipv6;
    if (this.engine.service(c.service)?.mirrorPort === undefined || !ip || !f.tcp) return;
    this.noMatch.held(c.id, { srcIp: ip.src, srcPort: f.tcp.srcPort, dstIp: ip.dst, dstPort: f.tcp.dstPort }, f.tcp.seq);
  }

  private applyNoMatch(connId: number, by: string[]): void {
    const c = this.engine.table.get(connId);
    if (!c || c.phase !== 'held' || c.move) return; // decided meanwhile: nothing to add
    for (const k of by) this.noMatchVerdicts.set(k, (this.noMatchVerdicts.get(k) ?? 0) + 1);
    try { this.engine.verdict(connId, { verdict: c.service.defaultVerdict, source: `${by.join('+')} (no rule matched)`, seq: c.held?.seq }); } catch { /* closed meanwhile */ }
  }

  private onVerdict(c: ConnectionView, req: { source: string }): void {
    this.noMatch.decided(c.id);
    if (req.source !== 'timeout') return;
    this.verdictTimeouts.set(c.service, (this.verdictTimeouts.get(c.service) ?? 0) + 1);
    // Only a segment the IDSes were shown says anything about them.
    if (this.engine.service(c.service)?.mirrorPort !== undefined) this.health.verdictTimeout();
  }

  private onAlert(a: Alert, from: AlertSource): void {
    this.stats.alerts++;
    if (!a.verdict && isNoMatchMarker(a.msg) && from !== this.builtin) {
      const name = this.healthName.get(from);
      if (name) this.health.record(name, 'alert', true);
      this.noMatch.marker(from.name, a.flow, a.seq);
      this.emit('alert', a, undefined);
      return;
    }
    if (!a.verdict) { this.stats.withoutVerdict++; this.emit('alert', a, undefined); return; }
    if (!a.flow) { this.log.warn('alert without a flow: cannot tell which connection it is about', { sid: a.sid, msg: a.msg }); this.emit('alert', a, undefined); return; }
    if (this.noMatch.verdictAlert(a.flow, a.seq)) {
      this.log.warn('a verdict alert came after the no-match marker for the same packet: the catch-all rule must rank below every verdict rule (docs/analyzers.md)', { sid: a.sid, msg: a.msg, flow: a.flow, seq: a.seq });
    }
    // A QUIC client's 4-tuple first: a TCP service may share the address and port (HTTP/3 beside HTTPS).
    const q = this.quic?.verdictForFlow(a.flow, { verdict: a.verdict, source: a.source, ...(a.sid !== undefined && { sid: a.sid }) });
    if (q) { this.emit('alert', a, undefined); return; }
    const c = this.engine.verdictForFlow(a.flow, { verdict: a.verdict, source: a.source, sid: a.sid, seq: a.seq });
    if (!c) {
      this.stats.unknownConnection++;
      this.log.info('alert for a connection the controller does not track', { sid: a.sid, flow: a.flow });
    }
    this.emit('alert', a, c?.id);
  }
}

/** "analyzers.builtin.rules: reloaded 3 rules (1 new, 0 removed)"; nothing when the rule set is the same. */
export function ruleChanges(s: RuleReloadSummary): string[] {
  if (!s.added && !s.removed && !s.changed) return [];
  return [`analyzers.builtin.rules: reloaded ${s.rules} rule${s.rules === 1 ? '' : 's'} (${s.added} new, ${s.removed} removed${s.changed ? `, ${s.changed} changed` : ''})`];
}
