// Prometheus metrics on prom-client (the ecosystem's standard client): the controller's metric set,
// bound to its events and counters, plus Node's default process/GC metrics. The text exposition
// format (version 0.0.4) is prom-client's; parsePrometheusText below reads it back for tests and the CLI.
// Format: https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Controller } from './controller.ts';
import type { SwitchConnection } from './datapath/switch-connection.ts';
import type { ConnectionView, VerdictRequest } from './handoff/handoff-engine.ts';
import type { Alert } from './analyzers/index.ts';

export { Counter, Gauge, Histogram, Registry };
export const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

type Labels = Record<string, string>;

export const PHASES = ['handshake', 'established', 'held', 'replaying', 'forwarded', 'freezing', 'closing'] as const;
/** Handoff latency buckets in seconds: a fast path migration takes milliseconds, a lossy one seconds. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Verdict latency buckets in seconds: the built-in matcher answers in microseconds, an IDS in milliseconds, a timeout after handoff.verdictTimeoutMs. */
export const VERDICT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * A verdict's source as bounded labels: `rule` (an analyzer's rule matched: snort, suricata,
 * builtin), `default` (an IDS saw the segment and no rule matched: "suricata (no rule matched)"),
 * `timeout` (no answer in time), `api` (an operator's migrate request). The dashboard's verdict
 * chart uses the same mapping (controller/api/charts.js).
 */
export function verdictLabels(source: string): { analyzer: string; source: 'rule' | 'default' | 'timeout' | 'api' } {
  if (source === 'timeout') return { analyzer: 'none', source: 'timeout' };
  if (source === 'api') return { analyzer: 'api', source: 'api' };
  const m = /^(.*) \(no rule matched\)$/.exec(source);
  if (m) return { analyzer: m[1], source: 'default' };
  return { analyzer: source, source: 'rule' };
}

/**
 * Node's default metrics (process_cpu_seconds_total, process_resident_memory_bytes,
 * nodejs_eventloop_lag_seconds, nodejs_gc_duration_seconds, nodejs_heap_size_*, ...), collected
 * once per process: their collectors (a GC observer, an event-loop delay monitor) live as long as
 * the process, so every ControllerMetrics shares this one registry.
 */
let processRegistry: Registry | undefined;
export function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** A counter kept elsewhere (a monotonic stats object): its series are copied in at scrape time. */
function statsCounter(r: Registry, name: string, help: string, labelNames: string[], read: () => [Labels, number][]): Counter<string> {
  return new Counter({
    name, help, labelNames, registers: [r],
    collect() { this.reset(); for (const [l, v] of read()) this.inc(l, v); },
  });
}

function statsGauge(r: Registry, name: string, help: string, labelNames: string[], read: () => [Labels, number][]): Gauge<string> {
  return new Gauge({
    name, help, labelNames, registers: [r],
    collect() { this.reset(); for (const [l, v] of read()) this.set(l, v); },
  });
}

/**
 * The controller's metrics. Counters the controller already keeps (engine.stats, controller.stats)
 * are read at scrape time, so they count from controller start even if this was created later;
 * the latency histograms, the verdict counter and the OpenFlow error counter need events and
 * count from creation.
 */
export class ControllerMetrics {
  readonly registry = new Registry();
  private readonly latency: Histogram<string>;
  private readonly verdictLatency: Histogram<string>;
  private readonly verdicts: Counter<string>;
  private readonly ofpErrors: Counter<string>;
  private readonly detach: (() => void)[] = [];
  private readonly watched = new WeakSet<SwitchConnection>();
  /** When each held connection's segment was held: the start of its verdict latency. */
  private readonly heldAt = new Map<number, bigint>();

  constructor(private readonly controller: Controller, opts: { processMetrics?: boolean } = {}) {
    const r = this.registry;
    const c = () => this.controller;
    const s = () => this.controller.engine.stats;
    const one = (v: number): [Labels, number][] => [[{}, v]];
    statsGauge(r, 'tcp_migrate_connections', 'Tracked TCP connections by handoff phase.', ['phase'], () => {
      const byPhase = new Map<string, number>(PHASES.map((p) => [p, 0]));
      for (const v of c().engine.connections()) byPhase.set(v.phase, (byPhase.get(v.phase) ?? 0) + 1);
      return [...byPhase].map(([phase, n]) => [{ phase }, n]);
    });
    statsGauge(r, 'tcp_migrate_switches', 'Connected switches by datapath mode (fastpath: patched OVS; relay: the controller relays shifted connections).', ['mode'], () => {
      const modes = { fastpath: 0, relay: 0, unknown: 0 };
      for (const sw of c().switches) modes[c().engine.modeOf(sw.describe()) ?? 'unknown']++;
      return Object.entries(modes).map(([mode, n]) => [{ mode }, n]);
    });
    statsGauge(r, 'tcp_migrate_backend_connections', 'Tracked connections by service and the backend that serves them now.', ['service', 'backend'], () => {
      const n = new Map<string, number>();
      for (const sv of c().engine.listServices()) for (const b of sv.backends) n.set(`${sv.name}\0${b.name}`, 0);
      for (const v of c().engine.connections()) {
        const k = `${v.service}\0${v.backend}`;
        if (v.phase !== 'closed' && n.has(k)) n.set(k, n.get(k)! + 1);
      }
      return [...n].map(([k, count]) => { const [service, backend] = k.split('\0'); return [{ service, backend }, count]; });
    });
    statsCounter(r, 'tcp_migrate_connections_opened_total', 'Connections intercepted (SYN to a service).', [], () => one(s().intercepted));
    statsCounter(r, 'tcp_migrate_connections_closed_total', 'Connections finished and removed from the table.', [], () => one(s().closed));
    statsCounter(r, 'tcp_migrate_forwards_total', 'Connections forwarded to their first backend.', [], () => one(s().forwarded));
    statsCounter(r, 'tcp_migrate_migrations_total', 'Completed migrations (first-segment and mid-stream).', [], () => one(s().migrated));
    statsCounter(r, 'tcp_migrate_migration_failures_total', 'Migrations that failed; the connection stayed where it was.', [], () => one(s().migrationFailures));
    this.latency = new Histogram({ name: 'tcp_migrate_handoff_latency_seconds', help: 'Time from the migration request to the spliced connection.', labelNames: ['kind'], buckets: LATENCY_BUCKETS, registers: [r] });
    statsCounter(r, 'tcp_migrate_packet_ins_total', 'OpenFlow Packet-In messages received.', [], () => one(c().stats.packetIns));
    statsCounter(r, 'tcp_migrate_relayed_packets_total', 'Packets of shifted connections relayed through the controller (stock switch).', [], () => one(s().relayed));
    this.ofpErrors = new Counter({ name: 'tcp_migrate_openflow_errors_total', help: 'OFPT_ERROR messages from switches and malformed messages, by kind.', labelNames: ['kind'], registers: [r] });
    statsCounter(r, 'tcp_migrate_analyzer_alerts_total', 'Alerts received from analyzers (Snort, Suricata, built-in).', [], () => one(c().analyzers.stats.alerts));
    const alertsBySource = new Counter({ name: 'tcp_migrate_analyzer_alerts_by_source_total', help: 'Alerts received, by analyzer and verdict.', labelNames: ['source', 'verdict'], registers: [r] });
    this.verdicts = new Counter({ name: 'tcp_migrate_verdicts_total', help: 'Verdicts applied to held connections, by analyzer, source (rule: a rule matched; default: an IDS saw the segment and no rule matched; timeout: no answer in time; api: an operator) and verdict.', labelNames: ['analyzer', 'source', 'verdict'], registers: [r] });
    this.verdictLatency = new Histogram({ name: 'tcp_migrate_verdict_latency_seconds', help: 'Time from holding a connection\'s first data segment to its verdict, by analyzer and source (as tcp_migrate_verdicts_total).', labelNames: ['analyzer', 'source'], buckets: VERDICT_BUCKETS, registers: [r] });
    statsCounter(r, 'tcp_migrate_reconciled_connections_total', 'Connections reconciled with a (re)connecting switch: adopted from its flows, flows reinstalled, or found without their handshake after a restart (degraded to FORWARD).', ['kind'],
      () => [[{ kind: 'adopted' }, s().adopted], [{ kind: 'reinstalled' }, s().reinstalled], [{ kind: 'degraded' }, s().degraded]]);
    // Services keep their last count after they are removed (a counter must not go back).
    const timeouts = new Map<string, number>();
    statsCounter(r, 'tcp_migrate_verdict_timeouts_total', 'Held segments that got no verdict in time (the service default applied), by service.', ['service'], () => {
      for (const sv of c().engine.listServices()) timeouts.set(sv.name, c().analyzers.verdictTimeouts.get(sv.name) ?? 0);
      return [...timeouts].map(([service, n]) => [{ service }, n]);
    });
    statsCounter(r, 'tcp_migrate_analyzer_no_match_total', 'Default verdicts applied at once because the IDS saw the held segment and no verdict rule matched, by analyzer.', ['analyzer'],
      () => [...c().analyzers.noMatchVerdicts].map(([analyzer, n]) => [{ analyzer }, n]));
    statsGauge(r, 'tcp_migrate_analyzer_up', 'Analyzer health: 1 answering, 0 silent (socket peer gone, heartbeat overdue, or held segments timing out), -1 nothing received yet.', ['analyzer'],
      () => c().analyzers.healthViews().map((h) => [{ analyzer: h.analyzer }, h.state === 'up' ? 1 : h.state === 'silent' ? 0 : -1]));
    statsGauge(r, 'tcp_migrate_analyzer_last_record_age_seconds', 'Seconds since the analyzer last sent anything (alert or heartbeat); absent before the first record.', ['analyzer'], () => {
      const now = Date.now();
      return c().analyzers.healthViews().filter((h) => h.lastRecordAt).map((h) => [{ analyzer: h.analyzer }, Math.max(0, (now - Date.parse(h.lastRecordAt!)) / 1000)]);
    });
    statsCounter(r, 'tcp_migrate_openflow_refused_connections_total', 'OpenFlow connections that never became a switch, by reason (handshake: garbage, wrong version, silence; tls: no valid certificate; duplicate_dpid: a live switch holds the datapath id; setup: the switch was disconnected because its setup failed).', ['reason'], () => {
      const of = c().server.stats;
      return [[{ reason: 'handshake' }, of.handshakeFailures], [{ reason: 'tls' }, of.tlsFailures], [{ reason: 'duplicate_dpid' }, of.refusedDuplicates], [{ reason: 'setup' }, c().stats.setupFailures]];
    });
    statsCounter(r, 'tcp_migrate_refused_connections_total', 'SYNs to services refused for want of room: table_full (handoff.maxConnections), half_open_evicted (the oldest handshake made room for a new one), half_open_per_source (one address at handoff.halfOpenPerSource).', ['reason'],
      () => [[{ reason: 'table_full' }, s().refusedFull], [{ reason: 'half_open_evicted' }, s().halfOpenEvicted], [{ reason: 'half_open_per_source' }, s().halfOpenPerSourceRefused]]);
    statsGauge(r, 'tcp_migrate_half_open_connections', 'Intercepted connections in their handshake (budget: handoff.halfOpenMax).', [], () => one(c().engine.table.halfOpenCount));
    statsCounter(r, 'tcp_migrate_syn_data_held_total', 'SYNs that carried data (TCP Fast Open): the data went to no server before a verdict.', [], () => one(s().synDataHeld));
    statsCounter(r, 'tcp_migrate_bypass_flows_total', 'Flows installed for direct (not intercepted) traffic from a backend\'s service port.', [], () => one(s().bypassFlows));
    statsCounter(r, 'tcp_migrate_transit_total', 'Fabric: connection packets a switch other than the connection\'s sent up and the controller passed on with a transit flow (packets), of those with nowhere to go (dropped), and path changes that re-aimed connections (reroutes).', ['kind'],
      () => [[{ kind: 'packets' }, s().transitPackets], [{ kind: 'dropped' }, s().transitDropped], [{ kind: 'reroutes' }, s().transitReroutes]]);
    statsCounter(r, 'tcp_migrate_speculative_replays_total', 'speculativeReplay: handshakes opened to a service\'s migrateTo before the verdict (opened), taken by a MIGRATE verdict (used), reset because none did (abandoned).', ['outcome'],
      () => [[{ outcome: 'opened' }, s().speculativeOpened], [{ outcome: 'used' }, s().speculativeUsed], [{ outcome: 'abandoned' }, s().speculativeAbandoned]]);
    statsGauge(r, 'tcp_migrate_controller_role', 'This controller\'s role: 1 for the role it has (single, master or standby), 0 for the others.', ['role'],
      () => (['single', 'master', 'standby'] as const).map((role) => [{ role }, c().role === role ? 1 : 0]));
    if (opts.processMetrics !== false) this.includeProcess = true;

    const onMigrated = (_v: ConnectionView, info: { latencyMs: number; midStream: boolean }) => {
      this.latency.observe({ kind: info.midStream ? 'mid_stream' : 'first_segment' }, info.latencyMs / 1000);
    };
    const onHeld = (v: ConnectionView) => { if (v.migrations === 0 && !this.heldAt.has(v.id)) this.heldAt.set(v.id, process.hrtime.bigint()); };
    const onVerdict = (v: ConnectionView, req: VerdictRequest) => {
      const l = verdictLabels(req.source);
      this.verdicts.inc({ ...l, verdict: req.verdict });
      const t0 = this.heldAt.get(v.id);
      if (t0 === undefined) return;
      this.heldAt.delete(v.id);
      this.verdictLatency.observe(l, Number(process.hrtime.bigint() - t0) / 1e9);
    };
    const onClosed = (v: ConnectionView) => { this.heldAt.delete(v.id); };
    const onAlert = (a: Alert) => alertsBySource.inc({ source: a.source, verdict: a.verdict ?? 'none' });
    const onSwitch = (sw: SwitchConnection) => this.watch(sw);
    // From the listener: malformed messages before the handshake count too (garbage instead of HELLO).
    const onMalformed = () => this.ofpErrors.inc({ kind: 'malformed' });
    const engine = controller.engine;
    controller.server.on('malformed', onMalformed);
    engine.on('migrated', onMigrated);
    engine.on('held', onHeld);
    engine.on('verdict', onVerdict);
    engine.on('conn_closed', onClosed);
    controller.analyzers.on('alert', onAlert);
    controller.server.on('switch_connected', onSwitch);
    for (const sw of controller.switches) this.watch(sw);
    this.detach.push(
      () => engine.off('migrated', onMigrated),
      () => engine.off('held', onHeld),
      () => engine.off('verdict', onVerdict),
      () => engine.off('conn_closed', onClosed),
      () => controller.analyzers.off('alert', onAlert),
      () => controller.server.off('switch_connected', onSwitch),
      () => controller.server.off('malformed', onMalformed),
    );
  }

  private includeProcess = false;

  /** A counter the caller increments (the API's refused requests), in this registry. */
  counter(name: string, help: string, labelNames: string[] = []): Counter<string> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  private watch(sw: SwitchConnection): void {
    if (this.watched.has(sw)) return;
    this.watched.add(sw);
    const onError = () => this.ofpErrors.inc({ kind: 'error' });
    sw.on('ofp_error', onError);
    this.detach.push(() => sw.off('ofp_error', onError));
  }

  /** The exposition text: the controller's metrics, then the process's (unless created without them). */
  async render(): Promise<string> {
    const own = await this.registry.metrics();
    return this.includeProcess ? own + '\n' + await processMetrics().metrics() : own;
  }

  dispose(): void {
    for (const d of this.detach.splice(0)) d();
    this.heldAt.clear();
  }
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
    const isNaNText = /^nan$/i.test(raw); // Prometheus (Go's ParseFloat) reads any case; prom-client writes "Nan"
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : isNaNText ? NaN : Number(raw);
    if (Number.isNaN(value) && !isNaNText) throw new Error(`${where}: bad value '${raw}'`);
    out.samples.push({ name: m[1], labels, value });
  });
  return out;
}

/** Value of one sample (labels must match exactly the given subset); undefined when absent. */
export function sampleValue(p: ParsedMetrics, name: string, labels: Labels = {}): number | undefined {
  return p.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}
