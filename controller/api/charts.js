// tcp-migrate dashboard charts, drawn with uPlot (npm package `uplot`, served by the controller at
// /static/uplot.min.js). Fed by the dashboard page: recent migrations (GET /api/migrations), the
// WebSocket events, and the services' backend connection counts. Every chart keeps its data in
// its uPlot instance (`tmtCharts.plots.<name>.data`), which is what the browser tests read.
// Served as /static/charts.js; a plain script (no build step) that defines window.tmtCharts.
(function () {
  'use strict';
  // Upper bounds in ms: LATENCY_BUCKETS of controller/metrics.ts (seconds) × 1000, then +Inf.
  const LATENCY_BUCKETS_MS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
  const HISTORY_S = 300; // per-second charts keep five minutes
  const MAX_MIGRATIONS = 1000;
  const PERCENTILE_WINDOW = 100; // p50/p99 over the last 100 migrations
  const COLORS = ['#1a56db', '#137333', '#b3261e', '#b06000', '#7e22ce', '#0e7490', '#be185d', '#4d7c0f'];

  const st = {
    migrations: [], // {t (s), latencyMs, key}, sorted by t
    seen: new Set(),
    perSecond: new Map(), // second → {setups, migrations, failures}
    backendKeys: [], // 'service/backend'
    backendNow: new Map(), // 'service/backend' → connections now
    backendHistory: [], // [{t, counts: Map}]
    verdicts: new Map(), // 'analyzer/source' → count
  };
  const plots = {};
  let root = null;

  /** Same mapping as verdictLabels() in controller/metrics.ts. */
  function verdictKey(source) {
    if (source === 'timeout') return 'none/timeout';
    if (source === 'api') return 'api/api';
    const m = /^(.*) \(no rule matched\)$/.exec(source);
    return m ? `${m[1]}/default` : `${source}/rule`;
  }

  function percentile(sorted, p) {
    if (!sorted.length) return null;
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  }

  function bucketLabel(i) {
    if (i >= LATENCY_BUCKETS_MS.length) return `>${LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1] / 1000}s`;
    const b = LATENCY_BUCKETS_MS[i];
    return b >= 1000 ? `≤${b / 1000}s` : `≤${b}ms`;
  }

  function width(el) { return Math.max(280, (el.clientWidth || 560) - 4); }

  /** Creates (or re-creates, when the series change) the uPlot chart in `#chart-<name>`. */
  function makePlot(name, opts, data) {
    const el = root.querySelector(`#chart-${name}`);
    if (plots[name]) plots[name].destroy();
    el.replaceChildren();
    plots[name] = new uPlot(Object.assign({ width: width(el), height: 170, legend: { live: false } }, opts), data, el);
    el.dataset.ready = 'true';
    return plots[name];
  }

  // Time charts show at least the last minute (a lone point would otherwise get an axis of years).
  const timeScale = () => ({ x: { time: true, range: (_u, min, max) => (min == null || max == null ? [Date.now() / 1000 - 60, Date.now() / 1000] : max - min < 60 ? [max - 60, max + 1] : [min, max]) } });
  // Time axes: wall-clock times, spaced so that labels never overlap.
  const timeAxis = () => ({ space: 90, values: (_u, splits) => splits.map((t) => new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })) });
  const bars = () => uPlot.paths.bars({ size: [0.7, 60] });
  const categoryAxis = (labels) => ({ values: (_u, splits) => splits.map((i) => (Number.isInteger(i) && labels[i] !== undefined ? labels[i] : '')), gap: 4, size: 36 });

  function latencyHistogram() {
    const counts = new Array(LATENCY_BUCKETS_MS.length + 1).fill(0);
    for (const m of st.migrations) {
      let i = LATENCY_BUCKETS_MS.findIndex((b) => m.latencyMs <= b);
      if (i < 0) i = LATENCY_BUCKETS_MS.length;
      counts[i]++;
    }
    return [counts.map((_c, i) => i), counts];
  }

  function latencyOverTime() {
    const x = [], lat = [], p50 = [], p99 = [];
    st.migrations.forEach((m, i) => {
      const win = st.migrations.slice(Math.max(0, i - PERCENTILE_WINDOW + 1), i + 1).map((w) => w.latencyMs).sort((a, b) => a - b);
      x.push(m.t); lat.push(m.latencyMs); p50.push(percentile(win, 50)); p99.push(percentile(win, 99));
    });
    return [x, lat, p50, p99];
  }

  function nowSecond() { return Math.floor(Date.now() / 1000); }

  function rates() {
    const end = nowSecond();
    const x = [], setups = [], migrations = [], failures = [];
    for (let t = end - HISTORY_S + 1; t <= end; t++) {
      const c = st.perSecond.get(t);
      x.push(t); setups.push(c ? c.setups : 0); migrations.push(c ? c.migrations : 0); failures.push(c ? c.failures : 0);
    }
    return [x, setups, migrations, failures];
  }

  function backendData() {
    const x = st.backendHistory.map((h) => h.t);
    return [x, ...st.backendKeys.map((k) => st.backendHistory.map((h) => (h.counts.has(k) ? h.counts.get(k) : null)))];
  }

  function verdictData() {
    const keys = [...st.verdicts.keys()].sort();
    return { keys, data: [keys.map((_k, i) => i), keys.map((k) => st.verdicts.get(k))] };
  }

  // ------------------------------------------------------------------ drawing

  function drawLatency() {
    const hist = latencyHistogram();
    if (!plots.latencyHistogram) {
      makePlot('latencyHistogram', {
        scales: { x: { time: false, range: [-0.5, LATENCY_BUCKETS_MS.length + 0.5] } },
        axes: [categoryAxis(hist[0].map((_v, i) => bucketLabel(i))), { label: 'migrations' }],
        series: [{ label: 'bucket' }, { label: 'migrations', fill: 'rgba(26,86,219,.35)', stroke: COLORS[0], paths: bars(), points: { show: false } }],
      }, hist);
    } else plots.latencyHistogram.setData(hist);
    const over = latencyOverTime();
    if (!plots.latency) {
      makePlot('latency', {
        scales: timeScale(),
        axes: [timeAxis(), { label: 'ms' }],
        series: [{ label: 'time' },
          { label: 'latency ms', stroke: COLORS[3], width: 0, points: { show: true, size: 6, fill: COLORS[3] } },
          { label: 'p50', stroke: COLORS[0], width: 1.5, spanGaps: true },
          { label: 'p99', stroke: COLORS[2], width: 1.5, spanGaps: true }],
      }, over);
    } else plots.latency.setData(over);
    // uPlot does not range a lone point through the scale's range function: set the window itself.
    if (over[0].length) {
      const min = over[0][0], max = over[0][over[0].length - 1];
      plots.latency.setScale('x', max - min < 60 ? { min: max - 60, max: max + 1 } : { min, max });
    }
  }

  function drawRates() {
    const d = rates();
    if (!plots.rates) {
      makePlot('rates', {
        scales: timeScale(),
        axes: [timeAxis(), { label: 'per second' }],
        series: [{ label: 'time' }, { label: 'setups/s', stroke: COLORS[0] }, { label: 'migrations/s', stroke: COLORS[1] }, { label: 'failures/s', stroke: COLORS[2] }],
      }, d);
    } else plots.rates.setData(d);
  }

  function drawBackends() {
    const d = backendData();
    const labels = plots.backends ? plots.backends.series.slice(1).map((s) => s.label) : null;
    if (!labels || labels.join('\n') !== st.backendKeys.join('\n')) {
      makePlot('backends', {
        scales: timeScale(),
        axes: [timeAxis(), { label: 'connections' }],
        series: [{ label: 'time' }, ...st.backendKeys.map((k, i) => ({ label: k, stroke: COLORS[i % COLORS.length], width: 1.5 }))],
      }, d);
    } else plots.backends.setData(d);
  }

  function drawVerdicts() {
    const { keys, data } = verdictData();
    const labels = plots.verdicts ? plots.verdicts.tmtKeys : null;
    if (!labels || labels.join('\n') !== keys.join('\n')) {
      const p = makePlot('verdicts', {
        scales: { x: { time: false, range: [-0.5, Math.max(keys.length, 1) - 0.5] } },
        axes: [categoryAxis(keys), { label: 'verdicts' }],
        series: [{ label: 'analyzer/source' }, { label: 'verdicts', fill: 'rgba(19,115,51,.35)', stroke: COLORS[1], paths: bars(), points: { show: false } }],
      }, data);
      p.tmtKeys = keys;
    } else plots.verdicts.setData(data);
  }

  // ------------------------------------------------------------------ feeding

  function addMigration(m) {
    // The same migration comes from GET /api/migrations and the WebSocket, with times taken apart: not part of the key.
    const key = `${m.connection}|${m.from}|${m.to}|${m.latencyMs}`;
    if (st.seen.has(key)) return false;
    st.seen.add(key);
    const rec = { t: Date.parse(m.time) / 1000, latencyMs: m.latencyMs, key };
    let i = st.migrations.length;
    while (i > 0 && st.migrations[i - 1].t > rec.t) i--;
    st.migrations.splice(i, 0, rec);
    while (st.migrations.length > MAX_MIGRATIONS) st.seen.delete(st.migrations.shift().key);
    return true;
  }

  function count(ev, field) {
    const t = Math.floor(Date.parse(ev.time) / 1000);
    let c = st.perSecond.get(t);
    if (!c) st.perSecond.set(t, (c = { setups: 0, migrations: 0, failures: 0 }));
    c[field]++;
  }

  function tick() {
    const t = nowSecond();
    for (const k of st.perSecond.keys()) if (k <= t - HISTORY_S) st.perSecond.delete(k);
    st.backendHistory.push({ t, counts: new Map(st.backendNow) });
    while (st.backendHistory.length && st.backendHistory[0].t <= t - HISTORY_S) st.backendHistory.shift();
    drawRates();
    drawBackends();
  }

  window.tmtCharts = {
    plots,
    init(el) {
      root = el;
      drawLatency(); drawRates(); drawBackends(); drawVerdicts();
      setInterval(tick, 1000);
      window.addEventListener('resize', () => { for (const [name, p] of Object.entries(plots)) p.setSize({ width: width(root.querySelector(`#chart-${name}`)), height: 170 }); });
    },
    /** GET /api/migrations (the controller's last 100): fills the latency charts after a (re)load. */
    migrations(list) {
      let added = false;
      for (const m of list) added = addMigration(m) || added;
      if (added) drawLatency();
    },
    /** Every WebSocket event. Migrations' latencies; setups, migrations and failures per second; verdicts by analyzer and source. */
    event(ev) {
      if (ev.type === 'connection_opened') count(ev, 'setups');
      else if (ev.type === 'migration_failed') count(ev, 'failures');
      else if (ev.type === 'migrated') {
        count(ev, 'migrations');
        if (addMigration({ connection: ev.connection.id, from: ev.from, to: ev.to, latencyMs: ev.latencyMs, time: ev.time })) drawLatency();
      } else if (ev.type === 'verdict') {
        const k = verdictKey(ev.source);
        st.verdicts.set(k, (st.verdicts.get(k) || 0) + 1);
        drawVerdicts();
      }
    },
    /** GET /api/services: the connections each backend serves now, sampled every second. */
    services(list) {
      st.backendNow = new Map();
      for (const s of list) for (const b of s.backends) st.backendNow.set(`${s.name}/${b.name}`, b.connections);
      const keys = [...st.backendNow.keys()];
      for (const k of st.backendKeys) if (!st.backendNow.has(k)) keys.push(k); // removed backends keep their history
      st.backendKeys = [...new Set([...st.backendKeys, ...keys])].sort();
    },
    bucketLabel,
    LATENCY_BUCKETS_MS,
  };
})();
