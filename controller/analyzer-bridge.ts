// Connects alert sources to the handoff engine: every alert with a verdict becomes a verdict for
// the connection its packet belongs to; held (and, with mirrorAll, copied) segments are shown to
// the built-in matcher, which answers synchronously.
import { EventEmitter } from 'node:events';
import { BuiltinMatcher, SnortUnixsockSource, SuricataEveSource, type Alert, type AlertSource } from './analyzers/index.ts';
import type { AnalyzersConfig } from './analyzers/analyzer-config.ts';
import type { HandoffEngine, ConnectionView } from './handoff/handoff-engine.ts';
import type { ParsedFrame } from './packet/index.ts';
import type { Logger } from './log.ts';

/** Events: 'alert' (alert, connection id or undefined). */
export class AnalyzerBridge extends EventEmitter {
  readonly sources: AlertSource[] = [];
  readonly builtin?: BuiltinMatcher;
  readonly stats = { alerts: 0, withoutVerdict: 0, unknownConnection: 0 };

  constructor(cfg: AnalyzersConfig, private readonly engine: HandoffEngine, private readonly log: Logger) {
    super();
    if (cfg.builtin) {
      this.builtin = new BuiltinMatcher({ ruleFiles: cfg.builtin.rules, vars: cfg.builtin.vars, logger: log });
      this.sources.push(this.builtin);
      engine.on('held_frame', (c: ConnectionView, f: ParsedFrame) => this.inspectHeld(c, f));
      engine.on('segment_frame', (_c: ConnectionView, f: ParsedFrame) => this.builtin!.inspect(f));
    }
    if (cfg.snort) this.sources.push(new SnortUnixsockSource({ path: cfg.snort.socket, mode: cfg.snort.mode, logger: log }));
    if (cfg.suricata) this.sources.push(new SuricataEveSource({ dgramPath: cfg.suricata.socket, streamPath: cfg.suricata.streamSocket, mode: cfg.suricata.mode, logger: log }));
    for (const s of this.sources) s.on('alert', (a) => this.onAlert(a));
  }

  async start(): Promise<void> {
    for (const s of this.sources) {
      await s.start();
      this.log.info('analyzer ready', { analyzer: s.name });
    }
  }

  async stop(): Promise<void> { await Promise.all(this.sources.map((s) => s.stop().catch(() => undefined))); }

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
