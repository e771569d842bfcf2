// Prometheus metrics: a minimal registry that renders the text exposition format (version 0.0.4)
// itself, and the controller's metric set bound to its events and counters.
// Format: https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
import type { Controller } from './controller.ts';
import type { SwitchConnection } from './datapath/switch-connection.ts';
import type { ConnectionView } from './handoff/handoff-engine.ts';
import type { Alert } from './analyzers/index.ts';

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Record<string, string>;
type MetricType = 'counter' | 'gauge' | 'histogram';

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function labelString(labels: Labels): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return '';
  return '{' + keys.map((k) => `${k}="${escapeLabelValue(labels[k])}"`).join(',') + '}';
}

// Series are keyed by their rendered label set, so the same labels in any order hit one series.
function seriesKey(labels: Labels): string {
  return labelString(Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
}

abstract class Metric {
  constructor(readonly name: string, readonly help: string, readonly type: MetricType) {
    if (!NAME_RE.test(name)) throw new Error(`bad metric name '${name}'`);
  }
  protected checkLabels(labels: Labels): void {
    for (const k of Object.keys(labels)) if (!LABEL_RE.test(k) || k.startsWith('__')) throw new Error(`bad label name '${k}' on ${this.name}`);
  }
  abstract samples(): string[];
  render(): string {
    return [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`, ...this.samples()].join('\n') + '\n';
  }
}

/** A value per label set; counters only go up, gauges are set. */
class Scalar extends Metric {
  private readonly series = new Map<string, { labels: Labels; value: number }>();
  protected put(labels: Labels, f: (old: number) => number): void {
    this.checkLabels(labels);
    const k = seriesKey(labels);
    const s = this.series.get(k);
    if (s) s.value = f(s.value); else this.series.set(k, { labels: { ...labels }, value: f(0) });
  }
  get(labels: Labels = {}): number { return this.series.get(seriesKey(labels))?.value ?? 0; }
  reset(): void { this.series.clear(); }
  samples(): string[] { return [...this.series.values()].map((s) => `${this.name}${labelString(s.labels)} ${formatValue(s.value)}`); }
}

export class Counter extends Scalar {
  constructor(name: string, help: string) { super(name, help, 'counter'); }
  inc(labels: Labels = {}, n = 1): void {
    if (!(n >= 0)) throw new Error(`counter ${this.name} can only go up`);
    this.put(labels, (v) => v + n);
  }
  /** For counters kept elsewhere (monotonic stats objects): copy the current total in. */
  setTotal(labels: Labels, total: number): void { this.put(labels, () => total); }
}

export class Gauge extends Scalar {
  constructor(name: string, help: string) { super(name, help, 'gauge'); }
  set(labels: Labels, v: number): void { this.put(labels, () => v); }
}

export class Histogram extends Metric {
  readonly buckets: number[];
  private readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(name: string, help: string, buckets: number[]) {
    super(name, help, 'histogram');
    this.buckets = [...buckets].sort((a, b) => a - b);
    if (this.buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b === this.buckets[i - 1]))) throw new Error(`bad buckets for ${name}`);
  }
  observe(v: number, labels: Labels = {}): void {
    this.checkLabels(labels);
    if ('le' in labels) throw new Error(`'le' is reserved on histogram ${this.name}`);
    const k = seriesKey(labels);
    let s = this.series.get(k);
    if (!s) { s = { labels: { ...labels }, counts: this.buckets.map(() => 0), sum: 0, count: 0 }; this.series.set(k, s); }
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) s.counts[i]++;
    s.sum += v;
    s.count++;
  }
  samples(): string[] {
    const out: string[] = [];
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) => out.push(`${this.name}_bucket${labelString({ ...s.labels, le: formatValue(b) })} ${s.counts[i]}`));
      out.push(`${this.name}_bucket${labelString({ ...s.labels, le: '+Inf' })} ${s.count}`);
      out.push(`${this.name}_sum${labelString(s.labels)} ${formatValue(s.sum)}`);
      out.push(`${this.name}_count${labelString(s.labels)} ${s.count}`);
    }
    return out;
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];
  private readonly collectors: (() => void)[] = [];
  counter(name: string, help: string): Counter { return this.add(new Counter(name, help)); }
  gauge(name: string, help: string): Gauge { return this.add(new Gauge(name, help)); }
  histogram(name: string, help: string, buckets: number[]): Histogram { return this.add(new Histogram(name, help, buckets)); }
  /** Runs before every render: refreshes values read from elsewhere (gauges, foreign counters). */
  onCollect(fn: () => void): void { this.collectors.push(fn); }
  render(): string {
    for (const c of this.collectors) c();
    return this.metrics.map((m) => m.render()).join('');
  }
  private add<M extends Metric>(m: M): M {
    if (this.metrics.some((x) => x.name === m.name)) throw new Error(`metric ${m.name} registered twice`);
    this.metrics.push(m);
    return m;
  }
}

export const PHASES = ['handshake', 'established', 'held', 'replaying', 'forwarded', 'freezing', 'closing'] as const;
/** Handoff latency buckets in seconds: a fast path migration takes milliseconds, a lossy one seconds. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The controller's metrics. Counters the controller already keeps (engine.stats, controller.stats)
 * are read at scrape time, so they count from controller start even if this was created later;
 * the latency histogram and the OpenFlow error counter need events and count from creation.
 */
export class ControllerMetrics {
  readonly registry = new Registry();
  private readonly latency: Histogram;
  private readonly ofpErrors: Counter;
  private readonly detach: (() => void)[] = [];
  private readonly watched = new WeakSet<SwitchConnection>();

  constructor(private readonly controller: Controller) {
    const r = this.registry;
    const connections = r.gauge('tcp_migrate_connections', 'Tracked TCP connections by handoff phase.');
    const switches = r.gauge('tcp_migrate_switches', 'Connected switches by datapath mode (fastpath: patched OVS; relay: the controller relays shifted connections).');
    const opened = r.counter('tcp_migrate_connections_opened_total', 'Connections intercepted (SYN to a service).');
    const closed = r.counter('tcp_migrate_connections_closed_total', 'Connections finished and removed from the table.');
    const forwarded = r.counter('tcp_migrate_forwards_total', 'Connections forwarded to their first backend.');
    const migrations = r.counter('tcp_migrate_migrations_total', 'Completed migrations (first-segment and mid-stream).');
    const failures = r.counter('tcp_migrate_migration_failures_total', 'Migrations that failed; the connection stayed where it was.');
    this.latency = r.histogram('tcp_migrate_handoff_latency_seconds', 'Time from the migration request to the spliced connection.', LATENCY_BUCKETS);
    const packetIns = r.counter('tcp_migrate_packet_ins_total', 'OpenFlow Packet-In messages received.');
    const relayed = r.counter('tcp_migrate_relayed_packets_total', 'Packets of shifted connections relayed through the controller (stock switch).');
    this.ofpErrors = r.counter('tcp_migrate_openflow_errors_total', 'OFPT_ERROR messages from switches and malformed messages, by kind.');
    const alerts = r.counter('tcp_migrate_analyzer_alerts_total', 'Alerts received from analyzers (Snort, Suricata, built-in).');
    const alertsBySource = r.counter('tcp_migrate_analyzer_alerts_by_source_total', 'Alerts received, by analyzer and verdict.');
    const adoption = r.counter('tcp_migrate_reconciled_connections_total', 'Connections reconciled with a (re)connecting switch: adopted from its flows, flows reinstalled, or found without their handshake after a restart (degraded to FORWARD).');
    const verdictTimeouts = r.counter('tcp_migrate_verdict_timeouts_total', 'Held segments that got no verdict in time (the service default applied), by service.');
    const noMatch = r.counter('tcp_migrate_analyzer_no_match_total', 'Default verdicts applied at once because the IDS saw the held segment and no verdict rule matched, by analyzer.');
    const analyzerUp = r.gauge('tcp_migrate_analyzer_up', 'Analyzer health: 1 answering, 0 silent (socket peer gone, heartbeat overdue, or held segments timing out), -1 nothing received yet.');
    const analyzerAge = r.gauge('tcp_migrate_analyzer_last_record_age_seconds', 'Seconds since the analyzer last sent anything (alert or heartbeat); absent before the first record.');
    const refused = r.counter('tcp_migrate_openflow_refused_connections_total', 'OpenFlow connections that never became a switch, by reason (handshake: garbage, wrong version, silence; tls: no valid certificate; duplicate_dpid: a live switch holds the datapath id; setup: the switch was disconnected because its setup failed).');
    const refusedSyns = r.counter('tcp_migrate_refused_connections_total', 'SYNs to services refused for want of room: table_full (handoff.maxConnections), half_open_evicted (the oldest handshake made room for a new one), half_open_per_source (one address at handoff.halfOpenPerSource).');
    const halfOpen = r.gauge('tcp_migrate_half_open_connections', 'Intercepted connections in their handshake (budget: handoff.halfOpenMax).');
    const synData = r.counter('tcp_migrate_syn_data_held_total', 'SYNs that carried data (TCP Fast Open): the data went to no server before a verdict.');
    const bypass = r.counter('tcp_migrate_bypass_flows_total', 'Flows installed for direct (not intercepted) traffic from a backend\'s service port.');
    const role = r.gauge('tcp_migrate_controller_role', 'This controller\'s role: 1 for the role it has (single, master or standby), 0 for the others.');

    r.onCollect(() => {
      const c = this.controller;
      const byPhase = new Map<string, number>(PHASES.map((p) => [p, 0]));
      for (const v of c.engine.connections()) byPhase.set(v.phase, (byPhase.get(v.phase) ?? 0) + 1);
      connections.reset();
      for (const [phase, n] of byPhase) connections.set({ phase }, n);
      switches.reset();
      const modes = { fastpath: 0, relay: 0, unknown: 0 };
      for (const sw of c.switches) modes[c.engine.modeOf(sw.describe()) ?? 'unknown']++;
      for (const [mode, n] of Object.entries(modes)) switches.set({ mode }, n);
      const s = c.engine.stats;
      opened.setTotal({}, s.intercepted);
      closed.setTotal({}, s.closed);
      forwarded.setTotal({}, s.forwarded);
      migrations.setTotal({}, s.migrated);
      failures.setTotal({}, s.migrationFailures);
      relayed.setTotal({}, s.relayed);
      packetIns.setTotal({}, c.stats.packetIns);
      alerts.setTotal({}, c.analyzers.stats.alerts);
      adoption.setTotal({ kind: 'adopted' }, s.adopted);
      adoption.setTotal({ kind: 'reinstalled' }, s.reinstalled);
      adoption.setTotal({ kind: 'degraded' }, s.degraded);
      refusedSyns.setTotal({ reason: 'table_full' }, s.refusedFull);
      refusedSyns.setTotal({ reason: 'half_open_evicted' }, s.halfOpenEvicted);
      refusedSyns.setTotal({ reason: 'half_open_per_source' }, s.halfOpenPerSourceRefused);
      halfOpen.set({}, c.engine.table.halfOpenCount);
      synData.setTotal({}, s.synDataHeld);
      bypass.setTotal({}, s.bypassFlows);
      const of = c.server.stats;
      refused.setTotal({ reason: 'handshake' }, of.handshakeFailures);
      refused.setTotal({ reason: 'tls' }, of.tlsFailures);
      refused.setTotal({ reason: 'duplicate_dpid' }, of.refusedDuplicates);
      refused.setTotal({ reason: 'setup' }, c.stats.setupFailures);
      for (const r of ['single', 'master', 'standby'] as const) role.set({ role: r }, c.role === r ? 1 : 0);
      for (const sv of c.engine.listServices()) verdictTimeouts.setTotal({ service: sv.name }, c.analyzers.verdictTimeouts.get(sv.name) ?? 0);
      for (const [analyzer, n] of c.analyzers.noMatchVerdicts) noMatch.setTotal({ analyzer }, n);
      analyzerUp.reset();
      analyzerAge.reset();
      const now = Date.now();
      for (const h of c.analyzers.healthViews()) {
        analyzerUp.set({ analyzer: h.analyzer }, h.state === 'up' ? 1 : h.state === 'silent' ? 0 : -1);
        if (h.lastRecordAt) analyzerAge.set({ analyzer: h.analyzer }, Math.max(0, (now - Date.parse(h.lastRecordAt)) / 1000));
      }
    });

    const onMigrated = (_v: ConnectionView, info: { latencyMs: number; midStream: boolean }) => {
      this.latency.observe(info.latencyMs / 1000, { kind: info.midStream ? 'mid_stream' : 'first_segment' });
    };
    const onAlert = (a: Alert) => alertsBySource.inc({ source: a.source, verdict: a.verdict ?? 'none' });
    const onSwitch = (sw: SwitchConnection) => this.watch(sw);
    // From the listener: malformed messages before the handshake count too (garbage instead of HELLO).
    const onMalformed = () => this.ofpErrors.inc({ kind: 'malformed' });
    controller.server.on('malformed', onMalformed);
    controller.engine.on('migrated', onMigrated);
    controller.analyzers.on('alert', onAlert);
    controller.server.on('switch_connected', onSwitch);
    for (const sw of controller.switches) this.watch(sw);
    this.detach.push(
      () => controller.engine.off('migrated', onMigrated),
      () => controller.analyzers.off('alert', onAlert),
      () => controller.server.off('switch_connected', onSwitch),
      () => controller.server.off('malformed', onMalformed),
    );
  }

  private watch(sw: SwitchConnection): void {
    if (this.watched.has(sw)) return;
    this.watched.add(sw);
    const onError = () => this.ofpErrors.inc({ kind: 'error' });
    sw.on('ofp_error', onError);
    this.detach.push(() => sw.off('ofp_error', onError));
  }

  render(): string { return this.registry.render(); }

  dispose(): void { for (const d of this.detach.splice(0)) d(); }
}

// ------------------------------------------------------------------ parsing (tests, CLI)

export interface Sample { name: string; labels: Labels; value: number }
export interface ParsedMetrics { types: Record<string, string>; help: Record<string, string>; samples: Sample[] }

/**
 * Parses the text format strictly enough to catch rendering bugs: every line is a comment, blank,
 * or `name{labels} value`; throws with the line number otherwise.
 */
export function parsePrometheusText(text: string): ParsedMetrics {
  const out: ParsedMetrics = { types: {}, help: {}, samples: [] };
  const lines = text.split('\n');
  if (lines.at(-1) !== '') throw new Error('exposition must end with a newline');
  lines.forEach((line, i) => {
    const where = `line ${i + 1}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (!m) return; // plain comment
      if (m[1] === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3])) throw new Error(`${where}: bad type '${m[3]}'`);
        out.types[m[2]] = m[3];
      } else out.help[m[2]] = m[3];
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`${where}: not a sample: ${line}`);
    const labels: Labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
      let pos = 0;
      while (pos < m[3].length) {
        re.lastIndex = pos;
        const lm = re.exec(m[3]);
        if (!lm) throw new Error(`${where}: bad labels: ${m[3]}`);
        labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
        pos = re.lastIndex;
      }
    }
    const raw = m[4];
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : raw === 'NaN' ? NaN : Number(raw);
    if (Number.isNaN(value) && raw !== 'NaN') throw new Error(`${where}: bad value '${raw}'`);
    out.samples.push({ name: m[1], labels, value });
  });
  return out;
}

/** Value of one sample (labels must match exactly the given subset); undefined when absent. */
export function sampleValue(p: ParsedMetrics, name: string, labels: Labels = {}): number | undefined {
  return p.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}
