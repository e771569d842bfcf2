// Analyzer health: whether each IDS is still answering. A dead IDS is otherwise silent: its
// socket just stops delivering, and every held connection waits out the verdict timeout.
import { EventEmitter } from 'node:events';
import { silentLogger, type Logger } from '../log.ts';
import type { ActivityKind } from './types.ts';

export type HealthState = 'waiting' | 'up' | 'silent';

export interface AnalyzerHealthView {
  analyzer: string;
  /** waiting: nothing received yet; up: answering; silent: see reason. */
  state: HealthState;
  reason?: string;
  since: string;
  lastRecordAt?: string;
  lastAlertAt?: string;
  lastHeartbeatAt?: string;
  /** Connected writers of a stream socket; absent for datagram sockets (they cannot tell). */
  peers?: number;
  /** Held segments whose verdict timed out since this analyzer last sent anything. */
  timeoutsSinceRecord: number;
  /** Whether it has sent the no-match marker: then it answers every held segment, and timeouts mean trouble. */
  answersEverySegment: boolean;
}

export interface HealthOptions {
  /** Verdict timeouts in a row, with no record in between, that make an analyzer answering every segment silent. */
  silentAfterTimeouts?: number;
  /** A heartbeat is overdue after max(this, 3 × the last interval between heartbeats), ms. */
  minHeartbeatGraceMs?: number;
  logger?: Logger;
  now?: () => number;
}

interface Entry {
  state: HealthState; reason?: string; since: number;
  lastRecord?: number; lastAlert?: number; lastHeartbeat?: number; heartbeatGap?: number;
  peers?: number; timeouts: number; marker: boolean;
}

/**
 * Events: 'change' (analyzer, state, reason). An analyzer turns silent when its stream peer
 * disconnects, when its heartbeats stop, or, once it is known to answer every held segment (it
 * sent the no-match marker), after `silentAfterTimeouts` verdict timeouts with nothing from it.
 * Without marker or heartbeats silence cannot be told from "nothing matched", so timeouts alone
 * never make it silent. Any record makes it up again.
 */
export class AnalyzerHealth extends EventEmitter {
  private readonly entries = new Map<string, Entry>();
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly silentAfter: number;
  private readonly minGrace: number;

  constructor(analyzers: string[], opts: HealthOptions = {}) {
    super();
    this.log = opts.logger ?? silentLogger;
    this.now = opts.now ?? Date.now;
    this.silentAfter = opts.silentAfterTimeouts ?? 3;
    this.minGrace = opts.minHeartbeatGraceMs ?? 5000;
    for (const a of analyzers) this.entries.set(a, { state: 'waiting', since: this.now(), timeouts: 0, marker: false });
  }

  /** A valid record from the analyzer; `marker` when it was the no-match marker. */
  record(analyzer: string, kind: ActivityKind, marker = false): void {
    const e = this.entries.get(analyzer);
    if (!e) return;
    const t = this.now();
    e.lastRecord = t;
    if (kind === 'alert') e.lastAlert = t;
    if (kind === 'heartbeat') {
      if (e.lastHeartbeat !== undefined) e.heartbeatGap = t - e.lastHeartbeat;
      e.lastHeartbeat = t;
    }
    if (marker) e.marker = true;
    e.timeouts = 0;
    if (e.state !== 'up') this.set(analyzer, e, 'up');
  }

  /** Stream writers connected; 0 after some were connected means the IDS went away. */
  peers(analyzer: string, n: number): void {
    const e = this.entries.get(analyzer);
    if (!e) return;
    const before = e.peers ?? 0;
    e.peers = n;
    if (n === 0 && before > 0) this.set(analyzer, e, 'silent', 'its socket peer disconnected');
    else if (n > 0 && e.state === 'silent') this.set(analyzer, e, 'up');
  }

  /** A held segment that was shown to every IDS got no verdict in time. */
  verdictTimeout(): void {
    for (const [name, e] of this.entries) {
      e.timeouts++;
      if (e.marker && e.state !== 'silent' && e.timeouts >= this.silentAfter) {
        this.set(name, e, 'silent', `${e.timeouts} held segments timed out without a record from it (it answers every segment when alive)`);
      }
    }
  }

  /** Periodic check: heartbeats overdue. */
  tick(): void {
    const t = this.now();
    for (const [name, e] of this.entries) {
      if (e.state === 'silent' || e.lastHeartbeat === undefined || e.heartbeatGap === undefined) continue;
      const grace = Math.max(this.minGrace, 3 * e.heartbeatGap);
      const quiet = t - (e.lastRecord ?? e.lastHeartbeat);
      if (quiet > grace) this.set(name, e, 'silent', `no heartbeat for ${Math.round(quiet / 1000)} s (they came every ${Math.round(e.heartbeatGap / 1000)} s)`);
    }
  }

  state(analyzer: string): HealthState | undefined { return this.entries.get(analyzer)?.state; }

  views(): AnalyzerHealthView[] {
    const iso = (t?: number) => (t === undefined ? undefined : new Date(t).toISOString());
    return [...this.entries].map(([analyzer, e]) => {
      const v: AnalyzerHealthView = { analyzer, state: e.state, since: iso(e.since)!, timeoutsSinceRecord: e.timeouts, answersEverySegment: e.marker };
      if (e.reason) v.reason = e.reason;
      if (e.lastRecord !== undefined) v.lastRecordAt = iso(e.lastRecord);
      if (e.lastAlert !== undefined) v.lastAlertAt = iso(e.lastAlert);
      if (e.lastHeartbeat !== undefined) v.lastHeartbeatAt = iso(e.lastHeartbeat);
      if (e.peers !== undefined) v.peers = e.peers;
      return v;
    });
  }

  private set(analyzer: string, e: Entry, state: HealthState, reason?: string): void {
    const from = e.state;
    e.state = state;
    e.reason = reason;
    e.since = this.now();
    if (state === 'silent') {
      this.log.warn('analyzer silent: held connections will wait for the verdict timeout and get the default verdict', {
        analyzer, reason, lastRecordAt: e.lastRecord === undefined ? 'never' : new Date(e.lastRecord).toISOString(),
      });
    } else if (from === 'silent') this.log.info('analyzer answering again', { analyzer });
    this.emit('change', analyzer, state, reason);
  }
}
