// The dashboard's charts and topology view in a real headless Chromium, against a real controller,
// the patched OVS and Linux TCP in namespaces, with the built-in matcher as the analyzer: a client's
// "please migrate" is migrated to server2 at its first segment, then the test reads the charts'
// data (the uPlot instances' series, not pixels) and the topology's SVG elements, and checks that
// /metrics (prom-client) timed the same handoff. One screenshot per panel goes to the test output
// (TM_SCREENSHOT_DIR, default $TMPDIR/tcp-migrate-dashboard) for people.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, requireBrowser } from '../lib/browser.ts';
import { HandoffBed } from '../lib/handoff-net.ts';
import { stop, waitFor } from '../lib/exec.ts';
import { PATCHED_PREFIX, requirePatchedOvs } from '../lib/ovs.ts';
import { RULES } from '../lib/tcp-variants.ts';
import type { ApiServer } from '../../controller/api/index.ts';
import { LATENCY_BUCKETS, parsePrometheusText, sampleValue } from '../../controller/metrics.ts';
import { EventCollector, http, openConnection, startApi } from './api-helpers.ts';

const SHOTS = process.env.TM_SCREENSHOT_DIR ?? join(tmpdir(), 'tcp-migrate-dashboard');

/** A chart's series as the page holds them: labels and data arrays of its uPlot instance. */
interface ChartData { labels: string[]; data: (number | null)[][]; keys?: string[] }

describe('dashboard charts and topology (headless Chromium, patched OVS)', function () {
  this.timeout(90000);
  let bed: HandoffBed | undefined;
  let api: ApiServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let base = '';
  const problems: string[] = [];

  before(async function () {
    this.timeout(120000);
    await requireBrowser(this);
    await requirePatchedOvs(this);
    bed = await HandoffBed.create({ prefix: PATCHED_PREFIX, services: { sidBackends: { 1000003: 'server3' } }, analyzers: { builtin: { rules: [RULES], vars: { HOME_NET: '10.0.0.0/8' } } } });
    ({ api, base } = await startApi(bed.controller));
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
    // uPlot comes from the controller (/static/), never from a CDN.
    page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith(base.replace('http', 'ws'))) problems.push(`external request: ${r.url()}`); });
  });
  after(async () => {
    await browser?.close();
    await api?.stop();
    await bed?.destroy();
  });

  const chart = (name: string): Promise<ChartData> => page.evaluate((n) => {
    const p = (globalThis as any).tmtCharts.plots[n];
    return { labels: p.series.map((s: any) => s.label), data: p.data.map((a: any) => Array.from(a)), keys: p.tmtKeys };
  }, name);
  /** Waits until `pred` holds for the chart's data (the per-second charts redraw once a second). */
  async function chartWhen(name: string, pred: (c: ChartData) => boolean, what: string): Promise<ChartData> {
    const end = Date.now() + 15000;
    for (;;) {
      const c = await chart(name);
      if (pred(c)) return c;
      if (Date.now() > end) throw new Error(`chart ${name}: timed out waiting for ${what}; it holds ${JSON.stringify(c)}`);
      await page.waitForTimeout(200);
    }
  }
  const series = (c: ChartData, label: string) => {
    const i = c.labels.indexOf(label);
    assert.ok(i > 0, `series '${label}' in ${JSON.stringify(c.labels)}`);
    return c.data[i];
  };
  const sum = (a: (number | null)[]) => a.reduce<number>((s, v) => s + (v ?? 0), 0);

  it('serves uPlot and the charts module itself, and nothing else under /static', async () => {
    const js = await http(base, 'GET', '/static/uplot.min.js');
    assert.equal(js.status, 200);
    assert.match(String(js.headers['content-type']), /^text\/javascript/);
    assert.match(js.text, /uPlot/);
    assert.equal((await http(base, 'GET', '/static/uplot.min.css')).status, 200);
    assert.match((await http(base, 'GET', '/static/charts.js')).text, /window\.tmtCharts/);
    assert.equal((await http(base, 'GET', '/static/..%2Fapi-server.ts')).status, 404);
    assert.equal((await http(base, 'GET', '/static/package.json')).status, 404);
    const page = await http(base, 'GET', '/');
    assert.match(String(page.headers['content-security-policy']), /script-src 'self' 'unsafe-inline'/);
  });

  it('a real migration shows up in the charts\' data, the topology and /metrics', async () => {
    await page.goto(base + '/');
    await page.locator('#ws-status.live').waitFor();
    for (const n of ['latencyHistogram', 'latency', 'rates', 'backends', 'verdicts']) await page.locator(`#chart-${n}[data-ready="true"]`).waitFor();
    // Nothing happened yet: every chart starts empty.
    assert.equal(sum((await chart('latencyHistogram')).data[1]), 0);
    assert.deepEqual((await chart('latency')).data[0], []);

    const events = await EventCollector.open(base);
    const c = bed!.scriptClient();
    try {
      const id = await openConnection(bed!, c);
      // The built-in matcher's rule 1000002 (content "migrate") says MIGRATE; the service's migrateTo is server2.
      assert.deepEqual(await c.cmd({ op: 'send', line: 'please migrate' }), { ok: true, reply: 'server2 please migrate' });
      const ev = await events.next((e) => e.type === 'migrated' && e.connection.id === id);
      assert.equal(ev.to, 'server2');
      const latencyMs: number = ev.latencyMs;

      // Latency over time: that migration's latency is a point, and p50 = p99 = it (the only one).
      const lat = await chartWhen('latency', (d) => d.data[1].length === 1, 'one migration');
      assert.deepEqual(series(lat, 'latency ms'), [latencyMs]);
      assert.deepEqual(series(lat, 'p50'), [latencyMs]);
      assert.deepEqual(series(lat, 'p99'), [latencyMs]);
      assert.ok(Math.abs(lat.data[0][0]! - Date.parse(ev.time) / 1000) < 5, 'plotted at the time of the migration');

      // Histogram: one migration, in the bucket of the controller's latency buckets that holds it.
      const hist = await chart('latencyHistogram');
      const bucket = LATENCY_BUCKETS.findIndex((b) => latencyMs / 1000 <= b);
      const expected = new Array(LATENCY_BUCKETS.length + 1).fill(0);
      expected[bucket < 0 ? LATENCY_BUCKETS.length : bucket] = 1;
      assert.deepEqual(series(hist, 'migrations'), expected);

      // Per second: exactly one setup and one migration since the page opened, no failure.
      const rates = await chartWhen('rates', (d) => sum(d.data[2]) === 1 && sum(d.data[1]) === 1, 'one setup and one migration');
      assert.equal(sum(series(rates, 'failures/s')), 0);
      assert.equal(sum(series(rates, 'setups/s')), 1);

      // Connections per backend: server2 carries it now, server1 nothing.
      const be = await chartWhen('backends', (d) => d.labels.includes('echo/server2') && series(d, 'echo/server2').at(-1) === 1, 'echo/server2 at 1');
      assert.equal(series(be, 'echo/server1').at(-1), 0);

      // Verdicts by analyzer and source: the built-in matcher's rule, once.
      const vd = await chartWhen('verdicts', (d) => (d.keys ?? []).includes('builtin/rule'), 'a builtin/rule verdict');
      assert.deepEqual(vd.keys, ['builtin/rule']);
      assert.deepEqual(vd.data[1], [1]);

      // Topology: the client on its switch port, the connection drawn (dashed: migrated) to server2.
      const dpid = bed!.controller.switches[0].describe();
      await page.locator(`#topology .switch[data-dpid="${dpid}"]`).waitFor({ state: 'attached' });
      const conn = page.locator(`#topology path.conn[data-conn-id="${id}"]`);
      // attached, not visible: a straight line has an empty box for Playwright's visibility test.
      await conn.and(page.locator('[data-backend="server2"]')).waitFor({ state: 'attached' });
      assert.equal(await conn.getAttribute('data-migrations'), '1');
      assert.match(await conn.getAttribute('class') ?? '', /\bmoved\b/);
      assert.match(await conn.getAttribute('data-client') ?? '', /^10\.0\.0\.2:\d+$/);
      assert.match(await page.locator('#topology [data-host="10.0.0.2"]').getAttribute('data-port') ?? '', /^\d+$/);
      assert.equal(await page.locator('#topology .backend[data-backend="server2"]').getAttribute('data-connections'), '1');
      assert.equal(await page.locator('#topology .backend[data-backend="server1"]').getAttribute('data-connections'), '0');

      // The same handoff in Prometheus terms.
      const m = parsePrometheusText((await http(base, 'GET', '/metrics')).text);
      assert.equal(sampleValue(m, 'tcp_migrate_handoff_latency_seconds_count', { kind: 'first_segment' }), 1);
      assert.equal(sampleValue(m, 'tcp_migrate_handoff_latency_seconds_sum', { kind: 'first_segment' }), latencyMs / 1000);
      assert.equal(sampleValue(m, 'tcp_migrate_verdicts_total', { analyzer: 'builtin', source: 'rule', verdict: 'MIGRATE' }), 1);
      assert.equal(sampleValue(m, 'tcp_migrate_verdict_latency_seconds_count', { analyzer: 'builtin', source: 'rule' }), 1);
      assert.equal(sampleValue(m, 'tcp_migrate_backend_connections', { service: 'echo', backend: 'server2' }), 1);
      assert.ok(sampleValue(m, 'process_resident_memory_bytes')! > 0);

      // One screenshot per panel, for people (not compared).
      mkdirSync(SHOTS, { recursive: true });
      const panels: [string, string][] = [
        ['charts', '#charts-section'], ['topology', '#topology-section'], ['analyzers', '#analyzers-section'],
        ['connections', '#connections-section'], ['migrations', 'section:has(#migrations)'],
      ];
      for (const [name, sel] of panels) {
        const png = await page.locator(sel).screenshot();
        assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
        writeFileSync(join(SHOTS, `dashboard-${name}.png`), png);
      }
      writeFileSync(join(SHOTS, 'dashboard.png'), await page.screenshot({ fullPage: true }));

      // Closed: the topology drops the line, the backend chart goes back to 0.
      await c.cmd({ op: 'close' });
      await conn.waitFor({ state: 'detached', timeout: 15000 });
      await chartWhen('backends', (d) => series(d, 'echo/server2').at(-1) === 0, 'echo/server2 back to 0');
    } finally { events.close(); c.end(); }
    assert.deepEqual(problems, []);
  });

  it('a migration that fails (the target refuses) counts as a failure, and the connection stays on server1', async () => {
    // server3 stops listening: the replayed SYN gets a RST.
    await stop(bed!.echo.server3, 2000);
    await waitFor(async () => !(await bed!.servers.server3.exec(['ss', '-Hltn', 'sport = :5001'])).stdout.includes('5001'), 'server3 to stop listening');
    const events = await EventCollector.open(base);
    const c = bed!.scriptClient();
    try {
      const before = await chart('rates');
      const id = await openConnection(bed!, c);
      // Rule 1000003 ("relocate"): MIGRATE, to server3 (sidBackends).
      assert.deepEqual(await c.cmd({ op: 'send', line: 'please relocate' }), { ok: true, reply: 'server1 please relocate' });
      const ev = await events.next((e) => e.type === 'migration_failed' && e.connection.id === id);
      assert.match(ev.why, /server3 refused the connection/);
      const rates = await chartWhen('rates', (d) => sum(d.data[3]) === sum(before.data[3]) + 1, 'one failure more');
      assert.equal(sum(series(rates, 'failures/s')), 1);
      assert.equal(sum(series(rates, 'migrations/s')), 1, 'still the one migration of the test before');
      assert.equal(sum(series(rates, 'setups/s')), 2);
      const vd = await chartWhen('verdicts', (d) => d.data[1][0] === 2, 'two builtin/rule verdicts');
      assert.deepEqual(vd.keys, ['builtin/rule']);
      // The latency charts hold completed migrations only.
      assert.equal((await chart('latency')).data[1].length, 1);
      const conn = page.locator(`#topology path.conn[data-conn-id="${id}"]`);
      await conn.and(page.locator('[data-backend="server1"]')).waitFor({ state: 'attached' });
      assert.equal(await conn.getAttribute('data-migrations'), '0');
      assert.doesNotMatch(await conn.getAttribute('class') ?? '', /\bmoved\b/);
      await c.cmd({ op: 'close' });
      await conn.waitFor({ state: 'detached', timeout: 15000 });
    } finally { events.close(); c.end(); }
    const m = parsePrometheusText((await http(base, 'GET', '/metrics')).text);
    assert.equal(sampleValue(m, 'tcp_migrate_migration_failures_total'), 1);
    assert.deepEqual(problems, []);
  });
});
