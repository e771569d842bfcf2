/**
 * Built-in analyzer: applies the Snort rule subset of rules.ts to one TCP segment (the segment
 * the controller holds), synchronously, without an external IDS. Gives the same (sid, verdict)
 * per segment as Suricata on single-segment payloads; unlike Suricata it never reassembles the
 * stream, so a pattern split across segments is not seen. QUIC rules of the same files are
 * matched against a client's decoded Initial instead (quic-matcher.ts, `matchQuic`).
 */
import { EventEmitter } from 'node:events';
import type { ParsedFrame } from '../packet/index.ts';
import { silentLogger, type Logger } from '../log.ts';
import type { ClientInitialProgress } from '../quic/index.ts';
import { addrMatch, flagsMatch, formatRuleError, loadRuleFiles, portMatch, ruleAlert, RuleParseError, type MatchAddr, type Rule } from './rules.ts';
import { matchQuicRules } from './quic-matcher.ts';
import { frameFacts, type Alert, type AlertSource, type FlowKey } from './types.ts';

// The QUIC side of the built-in matcher, part of the analyzers' public surface with it.
export { matchQuicRules, quicBuffer, quicVerdict, type CompleteInitial } from './quic-matcher.ts';

export interface BuiltinMatcherOptions {
  /** Rules already parsed (e.g. by parseRules). */
  rules?: Rule[];
  /** Rule files loaded by start() and reload(). */
  ruleFiles?: string[];
  /** Address/port variables for the rule files. */
  vars?: Record<string, string>;
  logger?: Logger;
}

/** Matches one frame against rules; pure. */
export function matchRules(rules: readonly Rule[], frame: ParsedFrame, time: Date = new Date()): Alert[] {
  const tcp = frame.tcp;
  if (!(frame.ipv4 || frame.ipv6) || !tcp) return [];
  const src: MatchAddr = frame.ipv4 ? frame.ipv4.srcNum : frame.ipv6!.srcBytes;
  const dst: MatchAddr = frame.ipv4 ? frame.ipv4.dstNum : frame.ipv6!.dstBytes;
  const payload = frame.payload;
  let lower: Buffer | undefined;
  const out: Alert[] = [];
  for (const r of rules) {
    if (r.proto !== 'tcp') continue;
    const fwd = addrMatch(r.src, src) && addrMatch(r.dst, dst) && portMatch(r.srcPorts, tcp.srcPort) && portMatch(r.dstPorts, tcp.dstPort);
    if (!fwd) {
      const rev = r.bidirectional && addrMatch(r.src, dst) && addrMatch(r.dst, src)
        && portMatch(r.srcPorts, tcp.dstPort) && portMatch(r.dstPorts, tcp.srcPort);
      if (!rev) continue;
    }
    if (r.flags && !flagsMatch(r.flags, tcp.flags)) continue;
    let ok = true;
    for (const c of r.contents) {
      let found: boolean;
      if (payload.length === 0) found = false;
      else if (c.nocase) {
        lower ??= asciiLowerCopy(payload);
        found = lower.indexOf(c.lower) >= 0;
      } else found = payload.indexOf(c.bytes) >= 0;
      // A negated content still needs a payload to inspect, as in Suricata.
      if (c.negated ? found || payload.length === 0 : !found) { ok = false; break; }
    }
    if (!ok) continue;
    out.push(ruleAlert(r, time, frameFacts(frame)));
  }
  return out;
}

function asciiLowerCopy(b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(b.length);
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    out[i] = c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
  }
  return out;
}

/** What a rule reload changed, by gid:sid; `changed`: same sid, different rule text. */
export interface RuleReloadSummary { rules: number; added: number; removed: number; changed: number }

/** Rule files and vars a reload reads (defaults: the ones in force). */
export interface RuleSource { ruleFiles?: string[]; vars?: Record<string, string> }

/** Rules loaded and parsed but not yet in force: commit() swaps them in (synchronously, cannot fail). */
export interface PreparedRules { summary: RuleReloadSummary; commit(): void }

export class BuiltinMatcher extends EventEmitter implements AlertSource {
  readonly name = 'builtin';
  readonly stats: Record<string, number> = { inspected: 0, not_tcp: 0, alerts: 0, rules: 0, reloads: 0, reload_errors: 0 };
  private rules: Rule[];
  private ruleFiles: string[];
  private vars: Record<string, string>;
  private readonly log: Logger;

  constructor(opts: BuiltinMatcherOptions = {}) {
    super();
    this.rules = opts.rules ? [...opts.rules] : [];
    this.ruleFiles = [...(opts.ruleFiles ?? [])];
    this.vars = { ...opts.vars };
    this.stats.rules = this.rules.length;
    this.log = (opts.logger ?? silentLogger).child({ analyzer: 'builtin' });
  }

  /** Loads the rule files, if any; rejects with RuleParseError listing every invalid rule. */
  async start(): Promise<void> {
    if (this.ruleFiles.length) await this.reload();
    this.log.info('built-in matcher ready', { rules: this.rules.length });
  }

  async stop(): Promise<void> {}

  /** The rule files and vars in force. */
  source(): { ruleFiles: string[]; vars: Record<string, string> } { return { ruleFiles: [...this.ruleFiles], vars: { ...this.vars } }; }

  /**
   * Reads and parses the rule files (by default the current ones) without touching the rules in
   * force: a config reload validates everything before it changes anything. Rejects with
   * RuleParseError (every error as file:line: option) when any rule is invalid or a file unreadable.
   */
  async prepare(src: RuleSource = {}): Promise<PreparedRules> {
    const ruleFiles = [...(src.ruleFiles ?? this.ruleFiles)];
    const vars = { ...(src.vars ?? this.vars) };
    const r = await loadRuleFiles(ruleFiles, vars);
    if (r.errors.length) {
      this.stats.reload_errors!++;
      for (const e of r.errors) this.log.error('invalid rule', { error: formatRuleError(e) });
      throw new RuleParseError(r.errors);
    }
    const summary = compareRules(this.rules, r.rules);
    return {
      summary,
      commit: () => {
        for (const w of r.warnings) this.log.warn('rule warning', { warning: formatRuleError(w) });
        this.ruleFiles = ruleFiles;
        this.vars = vars;
        this.setRules(r.rules);
        this.stats.reloads!++;
      },
    };
  }

  /** Re-reads the rule files (optionally others); on any error the current rules stay in force and the error is thrown. */
  async reload(src: RuleSource = {}): Promise<RuleReloadSummary> {
    const p = await this.prepare(src);
    p.commit();
    return p.summary;
  }

  setRules(rules: Rule[]): void {
    this.rules = [...rules];
    this.stats.rules = this.rules.length;
  }

  getRules(): readonly Rule[] { return this.rules; }

  /** Matches without emitting. */
  match(frame: ParsedFrame, time?: Date): Alert[] {
    return matchRules(this.rules, frame, time);
  }

  /**
   * Matches the QUIC rules against a client's Initial (`flow`: the client's datagram, client →
   * service), without emitting: the alerts in rule order, none until the Initial is complete.
   */
  matchQuic(initial: ClientInitialProgress, flow: FlowKey, time?: Date): Alert[] {
    return matchQuicRules(this.rules, initial, flow, time);
  }

  /** matchQuic, emitting 'alert' for each result, synchronously (a QUIC service's Initial, as inspect a held segment). */
  inspectQuic(initial: ClientInitialProgress, flow: FlowKey, time?: Date): Alert[] {
    this.stats.inspected!++;
    const alerts = matchQuicRules(this.rules, initial, flow, time);
    for (const a of alerts) {
      this.stats.alerts!++;
      this.emit('alert', a);
    }
    return alerts;
  }

  /** Matches and emits 'alert' for each result, synchronously; returns the alerts. */
  inspect(frame: ParsedFrame, time?: Date): Alert[] {
    this.stats.inspected!++;
    if (!frame.tcp) { this.stats.not_tcp!++; return []; }
    const alerts = matchRules(this.rules, frame, time);
    for (const a of alerts) {
      this.stats.alerts!++;
      this.emit('alert', a);
    }
    return alerts;
  }

  override on(ev: 'alert', fn: (a: Alert) => void): this {
    return super.on(ev, fn);
  }
}

/** Counts rules new, gone and rewritten between two rule sets, keyed by gid:sid. */
export function compareRules(before: readonly Rule[], after: readonly Rule[]): RuleReloadSummary {
  const key = (r: Rule) => `${r.gid}:${r.sid}`;
  const old = new Map(before.map((r) => [key(r), r.text]));
  let added = 0;
  let changed = 0;
  for (const r of after) {
    const t = old.get(key(r));
    if (t === undefined) added++;
    else if (t !== r.text) changed++;
  }
  const now = new Set(after.map(key));
  const removed = before.filter((r) => !now.has(key(r))).length;
  return { rules: after.length, added, removed, changed };
}
