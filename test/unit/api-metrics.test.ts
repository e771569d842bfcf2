// The Prometheus text format written by controller/metrics.ts, checked against the format rules
// and round-tripped through the strict parser the integration tests use.
import assert from 'node:assert/strict';
import { Registry, escapeLabelValue, formatValue, parsePrometheusText, sampleValue } from '../../controller/metrics.ts';

describe('metrics: Prometheus text format', () => {
  it('renders counters and gauges with HELP and TYPE lines, ending in a newline', () => {
    const r = new Registry();
    const c = r.counter('x_requests_total', 'Requests.');
    const g = r.gauge('x_conns', 'Connections by phase.');
    c.inc();
    c.inc({}, 2);
    g.set({ phase: 'held' }, 3);
    g.set({ phase: 'forwarded' }, 0);
    assert.equal(r.render(), [
      '# HELP x_requests_total Requests.', '# TYPE x_requests_total counter', 'x_requests_total 3',
      '# HELP x_conns Connections by phase.', '# TYPE x_conns gauge', 'x_conns{phase="held"} 3', 'x_conns{phase="forwarded"} 0', '',
    ].join('\n'));
  });

  it('escapes label values and help text', () => {
    assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
    const r = new Registry();
    r.gauge('x', 'line one\nback\\slash').set({ v: 'q"uote\n' }, 1);
    const text = r.render();
    assert.match(text, /^# HELP x line one\\nback\\\\slash$/m);
    assert.match(text, /^x\{v="q\\"uote\\n"\} 1$/m);
    const p = parsePrometheusText(text);
    assert.equal(sampleValue(p, 'x', { v: 'q"uote\n' }), 1);
  });

  it('writes histograms with cumulative buckets, +Inf, _sum and _count', () => {
    const r = new Registry();
    const h = r.histogram('lat_seconds', 'Latency.', [0.1, 1, 0.01]);
    for (const v of [0.005, 0.05, 0.5, 5]) h.observe(v, { kind: 'a' });
    const p = parsePrometheusText(r.render());
    const b = (le: string) => sampleValue(p, 'lat_seconds_bucket', { kind: 'a', le });
    assert.deepEqual([b('0.01'), b('0.1'), b('1'), b('+Inf')], [1, 2, 3, 4]);
    assert.equal(sampleValue(p, 'lat_seconds_count', { kind: 'a' }), 4);
    assert.equal(sampleValue(p, 'lat_seconds_sum', { kind: 'a' }), 5.555);
    assert.equal(p.types.lat_seconds, 'histogram');
  });

  it('formats special values and refuses bad names and decreasing counters', () => {
    assert.equal(formatValue(Infinity), '+Inf');
    assert.equal(formatValue(-Infinity), '-Inf');
    assert.equal(formatValue(NaN), 'NaN');
    const r = new Registry();
    assert.throws(() => r.counter('bad-name', 'x'), /bad metric name/);
    const c = r.counter('ok_total', 'x');
    assert.throws(() => c.inc({}, -1), /only go up/);
    assert.throws(() => c.inc({ 'bad-label': 'x' }), /bad label name/);
    assert.throws(() => r.counter('ok_total', 'again'), /registered twice/);
    assert.throws(() => r.histogram('h', 'x', [1, 1]), /bad buckets/);
  });

  it('treats the same labels in any order as one series', () => {
    const r = new Registry();
    const c = r.counter('c_total', 'x');
    c.inc({ a: '1', b: '2' });
    c.inc({ b: '2', a: '1' });
    assert.equal(c.get({ b: '2', a: '1' }), 2);
    assert.equal(parsePrometheusText(r.render()).samples.length, 1);
  });

  it('the parser rejects malformed lines', () => {
    assert.throws(() => parsePrometheusText('x 1'), /newline/);
    assert.throws(() => parsePrometheusText('x{a=1} 1\n'), /bad labels/);
    assert.throws(() => parsePrometheusText('x one\n'), /bad value/);
    assert.throws(() => parsePrometheusText('# TYPE x thing\n'), /bad type/);
  });

  it('runs collectors before rendering', () => {
    const r = new Registry();
    const g = r.gauge('g', 'x');
    let n = 0;
    r.onCollect(() => g.set({}, ++n));
    assert.match(r.render(), /^g 1$/m);
    assert.match(r.render(), /^g 2$/m);
  });
});
