// docs/grafana-dashboard.json: a dashboard model Grafana's file provisioning loads as it is (no
// import-time ${DS_...} inputs), laid out on Grafana's 24-column grid, whose every PromQL query
// parses with Prometheus's own grammar (@prometheus-io/lezer-promql) and names only metrics the
// controller exports (checked against a live ControllerMetrics render on prom-client).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parser } from '@prometheus-io/lezer-promql';
import { Controller } from '../../controller/controller.ts';
import { parseConfig } from '../../controller/config.ts';
import { ControllerMetrics, parsePrometheusText } from '../../controller/metrics.ts';
import { LogCapture } from '../lib/log-capture.ts';

const FILE = new URL('../../docs/grafana-dashboard.json', import.meta.url);
const PANEL_TYPES = new Set(['row', 'timeseries', 'heatmap', 'stat', 'gauge', 'barchart', 'table', 'text', 'bargauge', 'histogram', 'state-timeline']);

interface Target { refId: string; expr: string; datasource?: { type: string; uid: string } }
interface Panel { id: number; type: string; title: string; gridPos: { h: number; w: number; x: number; y: number }; datasource?: { type: string; uid: string }; targets?: Target[]; panels?: Panel[] }

/** Grafana's interval variables, replaced as Grafana does before the query reaches Prometheus. */
function expand(expr: string): string {
  return expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '1m').replace(/\$\{__rate_interval\}|\$\{__interval\}/g, '1m');
}

/** Syntax errors and metric names of a PromQL expression, from Prometheus's lezer grammar. */
function promql(expr: string): { errors: number[]; metrics: string[] } {
  const tree = parser.parse(expr);
  const errors: number[] = [];
  const metrics: string[] = [];
  tree.iterate({ enter: (n) => {
    if (n.type.isError) errors.push(n.from);
    if (n.name === 'Identifier') metrics.push(expr.slice(n.from, n.to));
  } });
  return { errors, metrics };
}

describe('docs/grafana-dashboard.json', () => {
  const dash = JSON.parse(readFileSync(FILE, 'utf8'));
  const panels: Panel[] = dash.panels;
  const queries = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })));

  it('is a dashboard model file provisioning loads as it is', () => {
    assert.equal(typeof dash.title, 'string');
    assert.match(dash.uid, /^[a-zA-Z0-9_-]{1,40}$/, 'uid: at most 40 letters, digits, - and _');
    assert.ok(Number.isInteger(dash.schemaVersion) && dash.schemaVersion >= 36, 'schemaVersion');
    assert.ok(dash.id === null || dash.id === undefined, 'no database id (provisioning assigns one)');
    assert.equal(dash.dashboard, undefined, 'the model itself, not an API envelope {dashboard: ...}');
    assert.equal(dash.__inputs, undefined, 'no import-time inputs: provisioning does not substitute them');
    const ds = dash.templating.list.find((v: { name: string }) => v.name === 'datasource');
    assert.deepEqual([ds?.type, ds?.query], ['datasource', 'prometheus']);
    assert.doesNotMatch(JSON.stringify(dash), /\$\{DS_/);
  });

  it('lays its panels out on the 24-column grid, without overlaps, with unique ids', () => {
    assert.ok(panels.length >= 10);
    const ids = new Set<number>();
    for (const p of panels) {
      assert.ok(PANEL_TYPES.has(p.type), `${p.title}: panel type ${p.type}`);
      assert.ok(!ids.has(p.id), `panel id ${p.id} is unique`);
      ids.add(p.id);
      const g = p.gridPos;
      assert.ok(g.w >= 1 && g.x >= 0 && g.x + g.w <= 24 && g.h >= 1 && g.y >= 0, `${p.title}: gridPos ${JSON.stringify(g)}`);
      if (p.type !== 'row') {
        assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' }, `${p.title}: the datasource variable`);
        assert.ok(p.targets && p.targets.length > 0, `${p.title}: has queries`);
        assert.equal(new Set(p.targets.map((t) => t.refId)).size, p.targets.length, `${p.title}: unique refIds`);
      }
    }
    for (const a of panels) for (const b of panels) {
      if (a === b) continue;
      const overlap = a.gridPos.x < b.gridPos.x + b.gridPos.w && b.gridPos.x < a.gridPos.x + a.gridPos.w && a.gridPos.y < b.gridPos.y + b.gridPos.h && b.gridPos.y < a.gridPos.y + a.gridPos.h;
      assert.ok(!overlap, `${a.title} and ${b.title} overlap`);
    }
  });

  it('every query is valid PromQL (Prometheus\'s grammar) and names only metrics the controller exports', async () => {
    const controller = new Controller(parseConfig({ listen: { host: '127.0.0.1', port: 0 }, api: { enabled: false } }), new LogCapture('error').logger);
    const metrics = new ControllerMetrics(controller);
    let exported: Set<string>;
    try {
      const p = parsePrometheusText(await metrics.render());
      exported = new Set(Object.keys(p.types).flatMap((n) => (p.types[n] === 'histogram' ? [`${n}_bucket`, `${n}_sum`, `${n}_count`] : [n])));
    } finally { metrics.dispose(); }
    assert.ok(queries.length >= 15);
    for (const q of queries) {
      const { errors, metrics: names } = promql(expand(q.expr));
      assert.deepEqual(errors, [], `${q.panel} ${q.refId}: PromQL syntax error in ${q.expr}`);
      assert.ok(names.length > 0, `${q.panel} ${q.refId}: names a metric`);
      for (const n of names) assert.ok(exported.has(n), `${q.panel} ${q.refId}: ${n} is not a metric the controller exports`);
    }
    // The checker itself: a broken query and an unknown metric are caught.
    assert.notDeepEqual(promql('sum(rate(tcp_migrate_migrations_total[1m])').errors, []);
    assert.ok(!exported.has('tcp_migrate_migrations'));
  });

  it('shows the dashboard\'s charts: latency histogram and quantiles, rates, backends, verdicts, analyzer health, process', () => {
    const all = queries.map((q) => q.expr).join('\n');
    for (const m of ['tcp_migrate_handoff_latency_seconds_bucket', 'tcp_migrate_connections_opened_total', 'tcp_migrate_migrations_total', 'tcp_migrate_migration_failures_total',
      'tcp_migrate_backend_connections', 'tcp_migrate_verdicts_total', 'tcp_migrate_verdict_latency_seconds_bucket', 'tcp_migrate_analyzer_up', 'process_cpu_seconds_total', 'nodejs_gc_duration_seconds_sum']) {
      assert.ok(all.includes(m), `a panel uses ${m}`);
    }
    assert.match(all, /histogram_quantile\(0\.99, sum by \(le[^)]*\) \(rate\(tcp_migrate_handoff_latency_seconds_bucket/);
  });
});
