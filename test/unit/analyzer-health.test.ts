// Analyzer health (controller/analyzers/health.ts): when an IDS counts as silent, and the WARN.
import assert from 'node:assert/strict';
import { AnalyzerHealth } from '../../controller/analyzers/health.ts';
import { Logger } from '../../controller/log.ts';

function bed(names = ['suricata']) {
  const lines: string[] = [];
  const clock = { t: 1_700_000_000_000 };
  const changes: string[] = [];
  const h = new AnalyzerHealth(names, { logger: new Logger('info', 'text', {}, { write: (l) => lines.push(l) }), now: () => clock.t });
  h.on('change', (a: string, s: string, why?: string) => changes.push(`${a} ${s}${why ? `: ${why}` : ''}`));
  return { h, lines, clock, changes };
}

describe('analyzers: health', () => {
  it('waiting until the first record, then up; timeouts alone never make an IDS without the marker silent', () => {
    const { h, changes } = bed();
    assert.equal(h.state('suricata'), 'waiting');
    for (let i = 0; i < 10; i++) h.verdictTimeout();
    assert.equal(h.state('suricata'), 'waiting', 'cannot tell "dead" from "nothing matched"');
    h.record('suricata', 'alert');
    for (let i = 0; i < 10; i++) h.verdictTimeout();
    assert.equal(h.state('suricata'), 'up');
    assert.deepEqual(changes, ['suricata up']);
    assert.equal(h.views()[0]!.timeoutsSinceRecord, 10);
  });

  it('answering every segment (marker seen): 3 timeouts with no record in between → silent, one WARN; a record → up, INFO', () => {
    const { h, lines, changes, clock } = bed();
    h.record('suricata', 'alert', true);
    h.verdictTimeout();
    h.verdictTimeout();
    h.record('suricata', 'alert'); // any record resets the count
    h.verdictTimeout();
    h.verdictTimeout();
    assert.equal(h.state('suricata'), 'up');
    h.verdictTimeout();
    assert.equal(h.state('suricata'), 'silent');
    h.verdictTimeout();
    const warns = lines.filter((l) => / WARN /.test(l));
    assert.equal(warns.length, 1, lines.join(''));
    assert.match(warns[0]!, /analyzer silent: .* analyzer=suricata reason="3 held segments timed out/);
    clock.t += 1000;
    h.record('suricata', 'heartbeat');
    assert.equal(h.state('suricata'), 'up');
    assert.match(lines.at(-1)!, /INFO .*analyzer answering again analyzer=suricata/);
    assert.deepEqual(changes.map((c) => c.split(':')[0]), ['suricata up', 'suricata silent', 'suricata up']);
  });

  it('stream peer gone → silent at once; a new peer → up', () => {
    const { h } = bed();
    h.peers('suricata', 0);
    assert.equal(h.state('suricata'), 'waiting', 'no peer yet is not a peer gone');
    h.peers('suricata', 1);
    h.record('suricata', 'alert');
    h.peers('suricata', 0);
    assert.equal(h.state('suricata'), 'silent');
    assert.match(h.views()[0]!.reason!, /socket peer disconnected/);
    assert.equal(h.views()[0]!.peers, 0);
    h.peers('suricata', 1);
    assert.equal(h.state('suricata'), 'up');
  });

  it('heartbeats: overdue after max(5 s, 3 × their interval); none seen → never overdue', () => {
    const { h, clock } = bed(['suricata', 'snort']);
    h.record('snort', 'alert');
    h.record('suricata', 'heartbeat');
    clock.t += 2000;
    h.record('suricata', 'heartbeat');
    clock.t += 5000;
    h.tick();
    assert.equal(h.state('suricata'), 'up', '5 s is not more than the 6 s grace');
    clock.t += 1001;
    h.tick();
    assert.equal(h.state('suricata'), 'silent');
    assert.match(h.views()[0]!.reason!, /no heartbeat for 6 s \(they came every 2 s\)/);
    assert.equal(h.state('snort'), 'up', 'no heartbeats: silence says nothing');
    assert.deepEqual(Object.keys(h.views()[0]!).sort(), ['analyzer', 'answersEverySegment', 'lastHeartbeatAt', 'lastRecordAt', 'reason', 'since', 'state', 'timeoutsSinceRecord']);
  });

  it('unknown analyzer names are ignored', () => {
    const { h } = bed();
    h.record('nope', 'alert');
    h.peers('nope', 0);
    assert.deepEqual(h.views().map((v) => v.analyzer), ['suricata']);
  });
});
