// The no-match marker: the tracker (controller/analyzers/no-match.ts) and the bridge around it
// with real Suricata EVE records through SuricataEveSource.handleText (a datagram read batch)
// and a stand-in engine. A marker never beats a verdict for the same packet.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { NoMatchTracker } from '../../controller/analyzers/no-match.ts';
import { isNoMatchMarker, verdictOf } from '../../controller/analyzers/types.ts';
import { SuricataEveSource } from '../../controller/analyzers/suricata-eve.ts';
import { AnalyzerBridge } from '../../controller/analyzer-bridge.ts';
import { buildTcpFrame, parseFrame } from '../../controller/packet/index.ts';
import { silentLogger } from '../../controller/log.ts';
import type { HandoffEngine } from '../../controller/handoff/handoff-engine.ts';

const FLOW = { srcIp: '10.0.0.2', srcPort: 40000, dstIp: '10.0.0.1', dstPort: 5001 };

function tracker(required = ['suricata']) {
  const applied: [number, string[]][] = [];
  const deferred: (() => void)[] = [];
  const t = new NoMatchTracker(required, (id, by) => applied.push([id, by]), (fn) => deferred.push(fn));
  const settle = () => { for (const fn of deferred.splice(0)) fn(); };
  return { t, applied, settle };
}

describe('analyzers: no-match marker', () => {
  it('isNoMatchMarker: SEEN as a prefix, never a verdict', () => {
    for (const m of ['SEEN', 'SEEN no verdict rule matched', '"SEEN x"', ' seen_all', 'Seen']) {
      assert.equal(isNoMatchMarker(m), true, m);
      assert.equal(verdictOf(m), undefined, m);
    }
    for (const m of ['SEENX', 'UNSEEN', 'FORWARD SEEN', '', 'MIGRATE']) assert.equal(isNoMatchMarker(m), false, m);
    assert.equal(isNoMatchMarker(undefined as unknown as string), false);
  });

  it('the marker for the held packet decides it after the read batch; other packets are ignored', () => {
    const { t, applied, settle } = tracker();
    t.held(7, FLOW, 1001);
    assert.equal(t.marker('suricata', FLOW, 999), 'not held', 'another segment of the flow');
    assert.equal(t.marker('suricata', { ...FLOW, srcPort: 1 }, 1001), 'not held');
    assert.equal(t.marker('suricata', undefined, 1001), 'not held');
    assert.equal(t.marker('suricata', FLOW, 1001), 'pending');
    assert.equal(t.marker('suricata', FLOW, 1001), 'pending', 'a duplicate does not schedule twice');
    assert.deepEqual(applied, [], 'nothing before the batch is over');
    settle();
    assert.deepEqual(applied, [[7, ['suricata']]]);
    assert.equal(t.size, 0);
    assert.equal(t.stats.applied, 1);
  });

  it('a verdict read in the same batch, even after the marker, cancels it', () => {
    const { t, applied, settle } = tracker();
    t.held(7, FLOW, 1001);
    t.marker('suricata', FLOW, 1001);
    t.decided(7); // the MIGRATE alert behind it reached the engine
    settle();
    assert.deepEqual(applied, []);
    assert.equal(t.stats.afterVerdict, 1);
    assert.equal(t.marker('suricata', FLOW, 1001), 'not held', 'a marker after the verdict');
  });

  it('several IDSes: every one must have sent the marker', () => {
    const { t, applied, settle } = tracker(['snort', 'suricata']);
    t.held(3, FLOW, 5);
    assert.equal(t.marker('suricata', FLOW, 5), 'waiting');
    settle();
    assert.deepEqual(applied, []);
    assert.equal(t.marker('snort', FLOW, 5), 'pending');
    settle();
    assert.deepEqual(applied, [[3, ['suricata', 'snort']]]);
  });

  it('a verdict alert after the marker decided its packet is reported as late', () => {
    const { t, settle } = tracker();
    t.held(1, FLOW, 10);
    t.marker('suricata', FLOW, 10);
    settle();
    assert.equal(t.verdictAlert(FLOW, 11), false);
    assert.equal(t.verdictAlert(FLOW, undefined), false);
    assert.equal(t.verdictAlert(FLOW, 10), true);
    assert.equal(t.stats.lateVerdicts, 1);
  });

  it('a new held segment of the connection replaces the old one; the table is bounded', () => {
    const applied: number[] = [];
    const t = new NoMatchTracker(['suricata'], (id) => applied.push(id), (fn) => fn(), 4);
    t.held(1, FLOW, 10);
    t.held(1, FLOW, 20);
    assert.equal(t.marker('suricata', FLOW, 10), 'not held');
    for (let i = 2; i <= 6; i++) t.held(i, { ...FLOW, srcPort: i }, 1);
    assert.equal(t.size, 4);
    assert.equal(t.marker('suricata', FLOW, 20), 'not held', 'the oldest entry left');
    t.marker('suricata', { ...FLOW, srcPort: 6 }, 1);
    assert.deepEqual(applied, [6]);
  });
});

/** A stand-in engine with what the bridge uses: events, services, connections, verdicts. */
class FakeEngine extends EventEmitter {
  readonly verdicts: { id: number; verdict: string; source: string }[] = [];
  readonly conn = { id: 1, service: { name: 'echo', defaultVerdict: 'FORWARD', mirrorPort: 5 }, held: { seq: 1001 }, phase: 'held' };
  readonly table = { get: (id: number) => (id === 1 ? this.conn : undefined) };
  service(name: string) { return name === 'echo' ? this.conn.service : undefined; }
  view() { return { id: 1, service: 'echo' }; }
  verdict(id: number, req: { verdict: string; source: string }): void { this.apply(id, req); }
  verdictForFlow(_f: unknown, req: { verdict: string; source: string }) { this.apply(1, req); return this.conn; }
  private apply(id: number, req: { verdict: string; source: string }): void {
    this.verdicts.push({ id, verdict: req.verdict, source: req.source });
    this.emit('verdict', this.view(), req);
  }
}

function eveAlert(msg: string, sid: number, seq = 1001): string {
  const frame = buildTcpFrame({ ethSrc: '02:00:00:00:00:02', ethDst: '02:00:00:00:00:01', ipSrc: FLOW.srcIp, ipDst: FLOW.dstIp, srcPort: FLOW.srcPort, dstPort: FLOW.dstPort, seq, ack: 5001, flags: { ack: true, psh: true }, payload: Buffer.from('x'), window: 8192 });
  return JSON.stringify({ event_type: 'alert', alert: { signature: msg, signature_id: sid, gid: 1, rev: 1 }, packet: frame.toString('base64'), packet_info: { linktype: 1 } });
}

function heldFrame(seq = 1001, text = 'just hello') {
  const fr = parseFrame(buildTcpFrame({ ethSrc: '02:00:00:00:00:02', ethDst: '02:00:00:00:00:01', ipSrc: FLOW.srcIp, ipDst: FLOW.dstIp, srcPort: FLOW.srcPort, dstPort: FLOW.dstPort, seq, ack: 5001, flags: { ack: true, psh: true }, payload: Buffer.from(text), window: 8192 }));
  assert.ok(fr.ok);
  return fr.value;
}

describe('analyzers: the bridge with the no-match marker (Suricata EVE records)', () => {
  function setup() {
    const engine = new FakeEngine();
    const bridge = new AnalyzerBridge({ suricata: { socket: '/nonexistent/eve.sock' } }, engine as unknown as HandoffEngine, silentLogger);
    const eve = bridge.sources[0] as SuricataEveSource;
    engine.emit('held_frame', engine.view(), heldFrame());
    const batchDone = () => new Promise((r) => setImmediate(r));
    return { engine, bridge, eve, batchDone };
  }

  it('marker alone → the service default, from "suricata (no rule matched)"', async () => {
    const { engine, bridge, eve, batchDone } = setup();
    eve.handleText(eveAlert('SEEN no verdict rule matched', 1999999));
    await batchDone();
    assert.deepEqual(engine.verdicts, [{ id: 1, verdict: 'FORWARD', source: 'suricata (no rule matched)' }]);
    assert.deepEqual(Object.fromEntries(bridge.noMatchVerdicts), { suricata: 1 });
    assert.equal(bridge.healthViews()[0]!.answersEverySegment, true);
  });

  it('MIGRATE then the marker (the IDS\'s order) → MIGRATE only', async () => {
    const { engine, eve, batchDone } = setup();
    eve.handleText(`${eveAlert('MIGRATE', 1000002)}\n${eveAlert('SEEN no verdict rule matched', 1999999)}\n`);
    await batchDone();
    assert.deepEqual(engine.verdicts, [{ id: 1, verdict: 'MIGRATE', source: 'suricata' }]);
  });

  it('the marker, then MIGRATE in the same read batch (a wrongly ranked rule) → MIGRATE still wins', async () => {
    const { engine, eve, batchDone } = setup();
    eve.handleText(eveAlert('SEEN no verdict rule matched', 1999999));
    eve.handleText(eveAlert('MIGRATE', 1000002));
    await batchDone();
    assert.deepEqual(engine.verdicts, [{ id: 1, verdict: 'MIGRATE', source: 'suricata' }]);
  });

  it('built-in matcher beside Suricata: its MIGRATE at hold time cancels the later marker', async () => {
    const engine = new FakeEngine();
    const rules = new URL('../../snort-rules/migrate.rules', import.meta.url).pathname;
    const bridge = new AnalyzerBridge({ builtin: { rules: [rules], vars: { HOME_NET: '10.0.0.0/8' } }, suricata: { socket: '/nonexistent/eve.sock' } }, engine as unknown as HandoffEngine, silentLogger);
    await bridge.builtin!.start();
    engine.on('verdict', () => { engine.conn.phase = 'replaying'; });
    engine.emit('held_frame', engine.view(), heldFrame(1001, 'please migrate'));
    (bridge.sources[1] as SuricataEveSource).handleText(eveAlert('SEEN no verdict rule matched', 1999999));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(engine.verdicts, [{ id: 1, verdict: 'MIGRATE', source: 'builtin' }]);
  });

  it('a marker about another segment of the flow does nothing; the verdict timeout is counted per service', async () => {
    const { engine, bridge, eve, batchDone } = setup();
    eve.handleText(eveAlert('SEEN no verdict rule matched', 1999999, 999));
    await batchDone();
    assert.deepEqual(engine.verdicts, []);
    engine.verdict(1, { verdict: 'FORWARD', source: 'timeout' });
    assert.deepEqual(Object.fromEntries(bridge.verdictTimeouts), { echo: 1 });
    assert.equal(bridge.view().analyzers[0]!.timeoutsSinceRecord, 1);
  });
});
