// /metrics on prom-client: every metric name and label the controller exported before the move
// to prom-client is still there, Node's process/GC metrics are added, the latency histograms
// follow the engine's events, and the strict parser the tests use reads prom-client's text.
import assert from 'node:assert/strict';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { Controller } from '../../controller/controller.ts';
import { parseConfig } from '../../controller/config.ts';
import { ControllerMetrics, LATENCY_BUCKETS, parsePrometheusText, sampleValue, verdictLabels } from '../../controller/metrics.ts';
import type { ConnectionView } from '../../controller/handoff/handoff-engine.ts';
import { LogCapture } from '../lib/log-capture.ts';

/** Every controller metric with its type, as exported by the hand-written registry this replaced (plus the new ones, marked). */
const CONTROLLER_METRICS: Record<string, string> = {
  tcp_migrate_connections: 'gauge',
  tcp_migrate_switches: 'gauge',
  tcp_migrate_connections_opened_total: 'counter',
  tcp_migrate_connections_closed_total: 'counter',
  tcp_migrate_forwards_total: 'counter',
  tcp_migrate_migrations_total: 'counter',
  tcp_migrate_migration_failures_total: 'counter',
  tcp_migrate_handoff_latency_seconds: 'histogram',
  tcp_migrate_packet_ins_total: 'counter',
  tcp_migrate_relayed_packets_total: 'counter',
  tcp_migrate_openflow_errors_total: 'counter',
  tcp_migrate_analyzer_alerts_total: 'counter',
  tcp_migrate_analyzer_alerts_by_source_total: 'counter',
  tcp_migrate_reconciled_connections_total: 'counter',
  tcp_migrate_verdict_timeouts_total: 'counter',
  tcp_migrate_analyzer_no_match_total: 'counter',
  tcp_migrate_analyzer_up: 'gauge',
  tcp_migrate_analyzer_last_record_age_seconds: 'gauge',
  tcp_migrate_openflow_refused_connections_total: 'counter',
  tcp_migrate_refused_connections_total: 'counter',
  tcp_migrate_half_open_connections: 'gauge',
  tcp_migrate_syn_data_held_total: 'counter',
  tcp_migrate_bypass_flows_total: 'counter',
  tcp_migrate_transit_total: 'counter',
  tcp_migrate_speculative_replays_total: 'counter',
  tcp_migrate_controller_role: 'gauge',
  // new with prom-client
  tcp_migrate_backend_connections: 'gauge',
  tcp_migrate_verdicts_total: 'counter',
  tcp_migrate_verdict_latency_seconds: 'histogram',
};

const SERVICE = {
  name: 'echo', address: '10.0.0.1', port: 5001, primary: 'server1', migrateTo: 'server2',
  backends: [{ name: 'server1', address: '10.0.0.1', port: 5001 }, { name: 'server2', address: '10.0.0.3', port: 5001 }],
};

function view(id: number, migrations = 0): ConnectionView {
  return { id, service: 'echo', migrations } as unknown as ConnectionView;
}

describe('metrics: the controller registry on prom-client', () => {
  let controller: Controller;
  let metrics: ControllerMetrics;
  beforeEach(() => {
    controller = new Controller(parseConfig({ listen: { host: '127.0.0.1', port: 0 }, api: { enabled: false }, services: [SERVICE] }), new LogCapture('error').logger);
    metrics = new ControllerMetrics(controller);
  });
  afterEach(() => metrics.dispose());

  it('keeps every metric name, type and label set, and parses strictly', async () => {
    const p = parsePrometheusText(await metrics.render());
    for (const [name, type] of Object.entries(CONTROLLER_METRICS)) assert.equal(p.types[name], type, `${name} is a ${type}`);
    assert.equal(sampleValue(p, 'tcp_migrate_connections', { phase: 'held' }), 0);
    assert.equal(sampleValue(p, 'tcp_migrate_switches', { mode: 'fastpath' }), 0);
    assert.equal(sampleValue(p, 'tcp_migrate_connections_opened_total'), 0);
    assert.equal(sampleValue(p, 'tcp_migrate_refused_connections_total', { reason: 'half_open_per_source' }), 0);
    assert.equal(sampleValue(p, 'tcp_migrate_openflow_refused_connections_total', { reason: 'duplicate_dpid' }), 0);
    assert.equal(sampleValue(p, 'tcp_migrate_reconciled_connections_total', { kind: 'degraded' }), 0);
    assert.equal(sampleValue(p, 'tcp_migrate_controller_role', { role: 'single' }), 1);
    assert.equal(sampleValue(p, 'tcp_migrate_controller_role', { role: 'master' }), 0);
    assert.equal(sampleValue(p, 'tcp_migrate_verdict_timeouts_total', { service: 'echo' }), 0);
    assert.equal(sampleValue(p, 'tcp_migrate_backend_connections', { service: 'echo', backend: 'server2' }), 0);
    assert.match(p.help.tcp_migrate_handoff_latency_seconds, /migration request/);
  });

  it('reads counters kept elsewhere at scrape time', async () => {
    controller.engine.stats.intercepted = 7;
    controller.engine.stats.halfOpenEvicted = 3;
    const p = parsePrometheusText(await metrics.render());
    assert.equal(sampleValue(p, 'tcp_migrate_connections_opened_total'), 7);
    assert.equal(sampleValue(p, 'tcp_migrate_refused_connections_total', { reason: 'half_open_evicted' }), 3);
  });

  it('adds Node\'s process and GC metrics', async () => {
    const p = parsePrometheusText(await metrics.render());
    assert.equal(p.types.process_cpu_user_seconds_total, 'counter');
    assert.ok(sampleValue(p, 'process_resident_memory_bytes')! > 0);
    assert.equal(p.types.nodejs_gc_duration_seconds, 'histogram');
    assert.equal(p.types.nodejs_eventloop_lag_seconds, 'gauge');
    assert.ok(sampleValue(p, 'nodejs_heap_size_used_bytes')! > 0);
    // Shared by every ControllerMetrics of the process: a second one renders without "registered twice".
    const second = new ControllerMetrics(controller);
    try { assert.equal(parsePrometheusText(await second.render()).types.process_cpu_user_seconds_total, 'counter'); } finally { second.dispose(); }
    const bare = new ControllerMetrics(controller, { processMetrics: false });
    try { assert.equal(parsePrometheusText(await bare.render()).types.process_cpu_user_seconds_total, undefined); } finally { bare.dispose(); }
  });

  it('observes handoff latency per kind from the engine\'s migrated events', async () => {
    controller.engine.emit('migrated', view(1), { from: 'server1', to: 'server2', latencyMs: 3, midStream: false });
    controller.engine.emit('migrated', view(2), { from: 'server1', to: 'server2', latencyMs: 700, midStream: true });
    const p = parsePrometheusText(await metrics.render());
    const b = (kind: string, le: string) => sampleValue(p, 'tcp_migrate_handoff_latency_seconds_bucket', { kind, le });
    assert.deepEqual([b('first_segment', '0.0025'), b('first_segment', '0.005'), b('first_segment', '+Inf')], [0, 1, 1]);
    assert.deepEqual([b('mid_stream', '0.5'), b('mid_stream', '1')], [0, 1]);
    assert.equal(sampleValue(p, 'tcp_migrate_handoff_latency_seconds_sum', { kind: 'mid_stream' }), 0.7);
    assert.equal(sampleValue(p, 'tcp_migrate_handoff_latency_seconds_count', { kind: 'first_segment' }), 1);
    const les = p.samples.filter((s) => s.name === 'tcp_migrate_handoff_latency_seconds_bucket' && s.labels.kind === 'mid_stream').map((s) => s.labels.le);
    assert.deepEqual(les, [...LATENCY_BUCKETS.map(String), '+Inf']);
  });

  it('times verdicts from the held segment, by analyzer and source; verdicts without a hold are counted, not timed', async () => {
    const e = controller.engine;
    e.emit('held', view(1));
    const t0 = process.hrtime.bigint();
    while (process.hrtime.bigint() - t0 < 5_000_000n) { /* at least 5 ms between held and verdict */ }
    e.emit('verdict', view(1), { verdict: 'MIGRATE', source: 'suricata', sid: 1000001 });
    e.emit('held', view(2));
    e.emit('verdict', view(2), { verdict: 'FORWARD', source: 'timeout' });
    e.emit('verdict', view(3), { verdict: 'MIGRATE', source: 'api', target: 'server2' });
    e.emit('held', view(4));
    e.emit('conn_closed', view(4), 'reset');
    e.emit('verdict', view(4), { verdict: 'FORWARD', source: 'suricata+snort (no rule matched)' });
    const p = parsePrometheusText(await metrics.render());
    assert.equal(sampleValue(p, 'tcp_migrate_verdicts_total', { analyzer: 'suricata', source: 'rule', verdict: 'MIGRATE' }), 1);
    assert.equal(sampleValue(p, 'tcp_migrate_verdicts_total', { analyzer: 'none', source: 'timeout', verdict: 'FORWARD' }), 1);
    assert.equal(sampleValue(p, 'tcp_migrate_verdicts_total', { analyzer: 'api', source: 'api', verdict: 'MIGRATE' }), 1);
    assert.equal(sampleValue(p, 'tcp_migrate_verdicts_total', { analyzer: 'suricata+snort', source: 'default', verdict: 'FORWARD' }), 1);
    assert.equal(sampleValue(p, 'tcp_migrate_verdict_latency_seconds_count', { analyzer: 'suricata', source: 'rule' }), 1);
    assert.ok(sampleValue(p, 'tcp_migrate_verdict_latency_seconds_sum', { analyzer: 'suricata', source: 'rule' })! >= 0.005);
    assert.equal(sampleValue(p, 'tcp_migrate_verdict_latency_seconds_bucket', { analyzer: 'suricata', source: 'rule', le: '0.001' }), 0);
    assert.equal(sampleValue(p, 'tcp_migrate_verdict_latency_seconds_count', { analyzer: 'none', source: 'timeout' }), 1);
    // No hold seen (api on a connection held before; conn 4 closed first): counted above, not timed.
    assert.equal(sampleValue(p, 'tcp_migrate_verdict_latency_seconds_count', { analyzer: 'api', source: 'api' }), undefined);
    assert.equal(sampleValue(p, 'tcp_migrate_verdict_latency_seconds_count', { analyzer: 'suricata+snort', source: 'default' }), undefined);
  });

  it('stops listening on dispose', async () => {
    metrics.dispose();
    controller.engine.emit('migrated', view(1), { from: 'server1', to: 'server2', latencyMs: 3, midStream: false });
    const p = parsePrometheusText(await metrics.render());
    assert.equal(sampleValue(p, 'tcp_migrate_handoff_latency_seconds_count', { kind: 'first_segment' }), undefined);
  });

  it('maps verdict sources to bounded labels', () => {
    assert.deepEqual(verdictLabels('builtin'), { analyzer: 'builtin', source: 'rule' });
    assert.deepEqual(verdictLabels('builtin (no rule matched)'), { analyzer: 'builtin', source: 'default' });
    assert.deepEqual(verdictLabels('timeout'), { analyzer: 'none', source: 'timeout' });
    assert.deepEqual(verdictLabels('api'), { analyzer: 'api', source: 'api' });
  });
});

describe('metrics: the strict parser reads prom-client\'s text format', () => {
  it('counters, gauges, escaped label values and help, special values', async () => {
    const r = new Registry();
    const c = new Counter({ name: 'x_requests_total', help: 'line one\nback\\slash', labelNames: ['v'], registers: [r] });
    const g = new Gauge({ name: 'x_conns', help: 'Connections.', labelNames: ['phase'], registers: [r] });
    c.inc({ v: 'q"uote\n' }, 2);
    g.set({ phase: 'held' }, Infinity);
    g.set({ phase: 'closing' }, NaN);
    g.set({ phase: 'forwarded' }, -Infinity);
    const text = await r.metrics();
    assert.match(text, /^# HELP x_requests_total line one\\nback\\\\slash$/m);
    const p = parsePrometheusText(text);
    assert.equal(sampleValue(p, 'x_requests_total', { v: 'q"uote\n' }), 2);
    assert.equal(sampleValue(p, 'x_conns', { phase: 'held' }), Infinity);
    assert.equal(sampleValue(p, 'x_conns', { phase: 'forwarded' }), -Infinity);
    assert.ok(Number.isNaN(sampleValue(p, 'x_conns', { phase: 'closing' })));
    assert.equal(p.types.x_conns, 'gauge');
  });

  it('histograms: cumulative buckets, +Inf, _sum and _count', async () => {
    const r = new Registry();
    const h = new Histogram({ name: 'lat_seconds', help: 'Latency.', labelNames: ['kind'], buckets: [0.01, 0.1, 1], registers: [r] });
    for (const v of [0.005, 0.05, 0.5, 5]) h.observe({ kind: 'a' }, v);
    const p = parsePrometheusText(await r.metrics());
    const b = (le: string) => sampleValue(p, 'lat_seconds_bucket', { kind: 'a', le });
    assert.deepEqual([b('0.01'), b('0.1'), b('1'), b('+Inf')], [1, 2, 3, 4]);
    assert.equal(sampleValue(p, 'lat_seconds_count', { kind: 'a' }), 4);
    assert.equal(sampleValue(p, 'lat_seconds_sum', { kind: 'a' }), 5.555);
    assert.equal(p.types.lat_seconds, 'histogram');
  });

  it('rejects malformed lines', () => {
    assert.throws(() => parsePrometheusText('x 1'), /newline/);
    assert.throws(() => parsePrometheusText('x{a=1} 1\n'), /bad labels/);
    assert.throws(() => parsePrometheusText('x one\n'), /bad value/);
    assert.throws(() => parsePrometheusText('# TYPE x thing\n'), /bad type/);
  });
});
