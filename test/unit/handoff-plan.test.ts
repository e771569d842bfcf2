// The pure parts of the handoff: flow plans, TCP state tracking, option policy, service config.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { connectionFlows, needsRelay, interceptFlows, deleteConnectionFlows, PRIORITY, type ConnectionFlowSpec } from '../../controller/handoff/flow-plan.ts';
import { initialTrack, observe, bothFinSent, type SegmentInfo } from '../../controller/handoff/tcp-state.ts';
import { compareSynAcks, optionsToStrip, summarise } from '../../controller/handoff/option-policy.ts';
import { parseServices } from '../../controller/handoff/service-config.ts';
import { connIdOf, connRoleOf, CONN_ROLE } from '../../controller/cookies.ts';
import { decodeMessage, encodeMessage, OFPP, type OfpMessage } from '../../controller/openflow/index.ts';

const spec = (over: Partial<ConnectionFlowSpec> = {}): ConnectionFlowSpec => ({
  id: 7, idleTimeout: 30, mode: 'fastpath', ackDelta: 1000,
  client: { mac: '02:00:00:00:00:02', ip: '10.0.0.2', port: 40000, ofport: 2 },
  service: { mac: '02:00:00:00:00:01', ip: '10.0.0.1', port: 5001 },
  backend: { mac: '02:00:00:00:00:03', ip: '10.0.0.3', port: 5001, ofport: 3 },
  ...over,
});
const fm = (m: OfpMessage) => m as Extract<OfpMessage, { type: 'flow_mod' }>;
const actionsOf = (m: OfpMessage) => (fm(m).instructions[0] as { actions: any[] }).actions;

describe('flow plan', () => {
  it('migrated connection: NAT + ack shift to the backend, NAT back + seq shift to the client', () => {
    const [c2s, s2c] = connectionFlows(spec());
    assert.deepEqual(fm(c2s).match, { inPort: 2, ethType: 0x800, ipProto: 6, ipv4Src: '10.0.0.2', ipv4Dst: '10.0.0.1', tcpSrc: 40000, tcpDst: 5001 });
    assert.deepEqual(actionsOf(c2s), [
      { type: 'set_field', field: { ethDst: '02:00:00:00:00:03' } },
      { type: 'set_field', field: { ipv4Dst: '10.0.0.3' } },
      { type: 'nx_inc_tcp_ack', delta: 1000 },
      { type: 'output', port: 3 },
    ]);
    assert.deepEqual(fm(s2c).match, { inPort: 3, ethType: 0x800, ipProto: 6, ipv4Src: '10.0.0.3', ipv4Dst: '10.0.0.2', tcpSrc: 5001, tcpDst: 40000 });
    assert.deepEqual(actionsOf(s2c), [
      { type: 'set_field', field: { ethSrc: '02:00:00:00:00:01' } },
      { type: 'set_field', field: { ipv4Src: '10.0.0.1' } },
      { type: 'nx_dec_tcp_seq', delta: 1000 },
      { type: 'output', port: 2 },
    ]);
  });

  it('uses the smaller of d and 2^32-d', () => {
    const [c2s, s2c] = connectionFlows(spec({ ackDelta: 0xffffff00 }));
    assert.deepEqual(actionsOf(c2s).find((a) => a.type.startsWith('nx_')), { type: 'nx_dec_tcp_ack', delta: 0x100 });
    assert.deepEqual(actionsOf(s2c).find((a) => a.type.startsWith('nx_')), { type: 'nx_inc_tcp_seq', delta: 0x100 });
  });

  it('a connection still on the service backend needs no rewrite', () => {
    const flows = connectionFlows(spec({ ackDelta: 0, backend: { mac: '02:00:00:00:00:01', ip: '10.0.0.1', port: 5001, ofport: 1 } }));
    assert.deepEqual(actionsOf(flows[0]), [{ type: 'output', port: 1 }]);
    assert.deepEqual(actionsOf(flows[1]), [{ type: 'output', port: 2 }]);
  });

  it('FIN/RST copies go to the controller before any rewrite, with their own cookie role', () => {
    const flags = connectionFlows(spec()).filter((m) => fm(m).priority === PRIORITY.connectionFlags);
    assert.equal(flags.length, 4);
    for (const f of flags) {
      assert.deepEqual(actionsOf(f)[0], { type: 'output', port: OFPP.CONTROLLER, maxLen: 128 });
      assert.equal(connIdOf(fm(f).cookie), 7);
      assert.equal(connRoleOf(fm(f).cookie), CONN_ROLE.flags);
    }
  });

  it('relay only on a stock switch with a shifted sequence space', () => {
    assert.equal(needsRelay({ mode: 'relay', ackDelta: 5 }), true);
    assert.equal(needsRelay({ mode: 'relay', ackDelta: 0 }), false);
    assert.equal(needsRelay({ mode: 'fastpath', ackDelta: 5 }), false);
    const flows = connectionFlows(spec({ mode: 'relay' }));
    assert.equal(flows.length, 2);
    for (const f of flows) assert.deepEqual(actionsOf(f), [{ type: 'output', port: OFPP.CONTROLLER, maxLen: 0xffff }]);
  });

  it('every planned message survives the codec round trip', () => {
    const msgs = [...connectionFlows(spec()), ...connectionFlows(spec({ mode: 'relay' })), deleteConnectionFlows(7),
      ...interceptFlows({ index: 0, service: { ip: '10.0.0.1', port: 5001 }, backends: [{ ip: '10.0.0.1', port: 5001 }, { ip: '10.0.0.3', port: 5001 }] })];
    for (const m of msgs) {
      const bytes = encodeMessage({ ...m, xid: 1 });
      const r = decodeMessage(bytes);
      assert.ok(r.ok);
      // Decoding fills defaults (e.g. output max_len), so compare on the wire.
      assert.deepEqual(encodeMessage(r.value), bytes);
      assert.equal(r.value.type, 'flow_mod');
    }
  });
});

const seg = (over: Partial<SegmentInfo>): SegmentInfo => ({ syn: false, ack: true, fin: false, rst: false, seq: 0, ackNo: 0, payloadLength: 0, ...over });

describe('TCP state tracking', () => {
  it('follows a handshake and an orderly close', () => {
    let t = observe(initialTrack(), 'c2s', seg({ syn: true, ack: false, seq: 100 }));
    assert.equal(t.client, 'SYN_SENT');
    t = observe(t, 's2c', seg({ syn: true, seq: 500, ackNo: 101 }));
    assert.equal(t.server, 'SYN_RECEIVED');
    t = observe(t, 'c2s', seg({ seq: 101, ackNo: 501 }));
    assert.deepEqual([t.client, t.server], ['ESTABLISHED', 'ESTABLISHED']);
    t = observe(t, 'c2s', seg({ fin: true, seq: 101, ackNo: 501 }));
    assert.deepEqual([t.client, t.server], ['FIN_WAIT_1', 'CLOSE_WAIT']);
    t = observe(t, 's2c', seg({ fin: true, seq: 501, ackNo: 102 }));
    // The server's FIN also acknowledges the client's: FIN_WAIT_1 → FIN_WAIT_2 → TIME_WAIT at once.
    assert.deepEqual([t.client, t.server], ['TIME_WAIT', 'LAST_ACK']);
    assert.equal(bothFinSent(t), true);
    t = observe(t, 'c2s', seg({ seq: 102, ackNo: 502 }));
    assert.equal(t.server, 'CLOSED');
  });

  it('a RST closes both sides', () => {
    const t = observe({ client: 'ESTABLISHED', server: 'ESTABLISHED' }, 's2c', seg({ rst: true }));
    assert.deepEqual([t.client, t.server], ['CLOSED', 'CLOSED']);
  });

  it('never throws on arbitrary segment sequences', () => {
    fc.assert(fc.property(fc.array(fc.record({ dir: fc.constantFrom('c2s' as const, 's2c' as const), syn: fc.boolean(), ack: fc.boolean(), fin: fc.boolean(), rst: fc.boolean(), seq: fc.nat(), ackNo: fc.nat(), payloadLength: fc.nat(1500) }), { maxLength: 20 }), (segs) => {
      let t = initialTrack();
      for (const s of segs) t = observe(t, s.dir, s);
      return typeof t.client === 'string';
    }));
  });
});

describe('TCP option policy', () => {
  it('strips timestamps by default and SACK-permitted only on request', () => {
    assert.deepEqual(optionsToStrip({ timestamps: 'strip', sack: 'keep', mismatch: 'refuse' }), ['timestamp']);
    assert.deepEqual(optionsToStrip({ timestamps: 'keep', sack: 'strip', mismatch: 'refuse' }), ['sack_permitted']);
  });

  it('flags window-scale differences and a smaller target MSS', () => {
    const s1 = summarise([{ kind: 'mss', value: 1460 }, { kind: 'wscale', shift: 7 }, { kind: 'sack_permitted' }]);
    assert.deepEqual(compareSynAcks(s1, s1), []);
    const s2 = summarise([{ kind: 'mss', value: 1400 }, { kind: 'wscale', shift: 9 }, { kind: 'sack_permitted' }]);
    assert.deepEqual(compareSynAcks(s1, s2).map((m) => m.option), ['wscale', 'mss']);
    assert.deepEqual(compareSynAcks(s2, s1).map((m) => m.option), ['wscale']);
  });
});

describe('service config', () => {
  const base = { name: 'web', address: '10.0.0.1', port: 80, backends: [{ name: 's1', address: '10.0.0.1', port: 80 }, { name: 's2', address: '10.0.0.3', port: 8080 }] };
  it('fills defaults', () => {
    const [s] = parseServices([base]);
    assert.equal(s.primary, 's1');
    assert.equal(s.migrateTo, 's2');
    assert.equal(s.defaultVerdict, 'FORWARD');
    assert.deepEqual(s.options, { timestamps: 'strip', sack: 'keep', mismatch: 'refuse' });
  });
  const bad: [unknown, RegExp][] = [
    [{ ...base, backends: [] }, /services\[0\]\.backends/],
    [{ ...base, primary: 's2' }, /services\[0\]\.primary/],
    [{ ...base, backends: [{ name: 's1', address: '10.0.0.1', port: 80 }, { name: 's1', address: '10.0.0.3', port: 80 }] }, /duplicate backend name/],
    [{ ...base, backends: [base.backends[0], { name: 'x', address: '10.0.0.300', port: 80 }] }, /services\[0\]\.backends\[1\]\.address/],
    [{ ...base, sidBackends: { '1000003': 'nope' } }, /services\[0\]\.sidBackends\.1000003/],
    [{ ...base, optionz: {} }, /services\[0\]\.optionz.*unknown key/],
    [{ ...base, options: { timestamps: 'shift' } }, /services\[0\]\.options\.timestamps/],
  ];
  for (const [input, re] of bad) it(`rejects ${re}`, () => assert.throws(() => parseServices([input]), re));
});
