// Connects alert sources to the handoff engine: every alert with a verdict becomes a verdict for
// the connection its packet belongs to; held (and, with mirrorAll, copied) segments are shown to
// the built-in matcher, which answers synchronously.
import { EventEmitter } from 'node:events';
import { BuiltinMatcher, SnortUnixsockSource, SuricataEveSource, type Alert, type AlertSource, type RuleReloadSummary } from './analyzers/index.ts';
import { analyzerRestartNeeded, snortSockets, type AnalyzersConfig } from './analyzers/analyzer-config.ts';
import type { HandoffEngine, ConnectionView } from './handoff/handoff-engine.ts';
import type { ParsedFrame } from './packet/index.ts';
import type { Logger } from './log.ts';

/** Events: 'alert' (alert, connection id or undefined). */
export class AnalyzerBridge extends EventEmitter {
  readonly sources: AlertSource[] = [];
  readonly builtin?: BuiltinMatcher;
  readonly stats = { alerts: 0, withoutVerdict: 0, unknownConnection: 0 };
  /** The analyzers as started (sockets) with the rule files and vars in force: what reloads compare to. */
  private running: AnalyzersConfig;

  constructor(cfg: AnalyzersConfig, private readonly engine: HandoffEngine, private readonly log: Logger) {
    super();
    this.running = structuredClone(cfg);
    if (cfg.builtin) {
      this.builtin = new BuiltinMatcher({ ruleFiles: cfg.builtin.rules, vars: cfg.builtin.vars, logger: log });
      this.sources.push(this.builtin);
      engine.on('held_frame', (c: ConnectionView, f: ParsedFrame) => this.inspectHeld(c, f));
      engine.on('segment_frame', (_c: ConnectionView, f: ParsedFrame) => this.builtin!.inspect(f));
    }
    // One source per Snort socket: Snort 3 with several packet threads sends to <logdir>/<N>_snort_alert.
    for (const { path, key } of cfg.snort ? snortSockets(cfg.snort) : []) {
      const { mode, owner, group } = cfg.snort!;
      const createDir = cfg.snort!.logDir !== undefined;
      this.sources.push(new SnortUnixsockSource({ path, mode, owner, group, createDir, configKey: 'analyzers.snort', socketKey: key, logger: log }));
    }
    if (cfg.suricata) this.sources.push(new SuricataEveSource({ dgramPath: cfg.suricata.socket, streamPath: cfg.suricata.streamSocket, mode: cfg.suricata.mode, logger: log }));
    for (const s of this.sources) s.on('alert', (a) => this.onAlert(a));
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
  }

  async stop(): Promise<void> { await Promise.all(this.sources.map((s) => s.stop().catch(() => undefined))); }

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

  private onAlert(a: Alert): void {
    this.stats.alerts++;
    if (!a.verdict) { this.stats.withoutVerdict++; this.emit('alert', a, undefined); return; }
    if (!a.flow) { this.log.warn('alert without a flow: cannot tell which connection it is about', { sid: a.sid, msg: a.msg }); this.emit('alert', a, undefined); return; }
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
