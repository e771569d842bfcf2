// The pure parts of the handoff: flow plans, TCP state tracking, option policy, service config.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { connectionFlows, needsRelay, interceptFlows, interceptsOver, deleteConnectionFlows, interceptCookie, BYPASS_COOKIE, PRIORITY, TABLE, type ConnectionFlowSpec } from '../../controller/handoff/flow-plan.ts';
import { initialTrack, observe, bothFinSent, type SegmentInfo } from '../../controller/handoff/tcp-state.ts';
import { applySynPolicy, compareSynAcks, optionsToStrip, summarise } from '../../controller/handoff/option-policy.ts';
import { replaySyn } from '../../controller/handoff/segments.ts';
import { buildTcpFrame, encodeTcpOptions, parseFrame, verifyChecksums, type TcpOption } from '../../controller/packet/index.ts';

const checksumsOk = (f: Buffer): boolean => { const r = verifyChecksums(f); return r.ok && r.value.ip && r.value.l4 && r.value.l4Checked; };
const encodeOpts = (o: TcpOption[]): Buffer => { const r = encodeTcpOptions(o); if (!r.ok) throw new Error(r.error.message); return r.value; };
import { parseServices } from '../../controller/handoff/service-config.ts';
import { connIdOf, connRoleOf, CONN_ROLE, isFlagCopy } from '../../controller/cookies.ts';
import { decodeMessage, encodeMessage, OFPFF, OFPP, type FlowStats, type OfpMessage } from '../../controller/openflow/index.ts';

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

  it('a connection has two flows, both in the connection table, and only the client → backend one reports its removal', () => {
    const flows = connectionFlows(spec());
    assert.equal(flows.length, 2);
    for (const f of flows) {
      assert.equal(fm(f).tableId, TABLE.connection);
      assert.equal(connIdOf(fm(f).cookie), 7);
      assert.equal(connRoleOf(fm(f).cookie), CONN_ROLE.main);
    }
    assert.deepEqual(flows.map((f) => fm(f).flags), [OFPFF.SEND_FLOW_REM, 0]);
  });

  it('intercept flows go in over what the switch has: adds replace in place (no delete of a flow the plan keeps), then strict deletes of the rest', () => {
    const plan = interceptFlows({ index: 0, service: { ip: '10.0.0.1', port: 5001 }, backends: [{ ip: '10.0.0.3', port: 5001 }] });
    const asStats = (m: OfpMessage, cookie?: bigint) => { const f = fm(m); return { tableId: f.tableId, priority: f.priority, cookie: cookie ?? f.cookie, match: f.match, instructions: f.instructions, idleTimeout: 0, hardTimeout: 0, flags: 0, durationSec: 1, packetCount: 0n, byteCount: 0n } as unknown as FlowStats; };
    // What a switch has: the same flows under another service index (renumbered), one of a removed service, a bypass flow.
    const gone = interceptFlows({ index: 1, service: { ip: '10.0.0.9', port: 80 }, backends: [] })[0]!;
    const bypass = { ...asStats(plan[0]!), cookie: BYPASS_COOKIE, priority: PRIORITY.bypass, match: { inPort: 3, ethType: 0x800, ipProto: 6, ipv4Src: '10.0.0.3', ipv4Dst: '10.0.0.2', tcpSrc: 5001, tcpDst: 40000 } } as FlowStats;
    const present = [...plan.map((m) => asStats(m, interceptCookie(7))), asStats(gone), bypass];
    const msgs = interceptsOver(plan, present).map(fm);
    assert.deepEqual(msgs.slice(0, plan.length), plan, 'the plan first, as it is');
    const dels = msgs.slice(plan.length);
    assert.deepEqual(dels.map((d) => [d.command, d.cookie, d.cookieMask, d.priority]), [['delete_strict', fm(gone).cookie, 0xffffffffffffffffn, fm(gone).priority], ['delete_strict', BYPASS_COOKIE, 0xffffffffffffffffn, PRIORITY.bypass]]);
    assert.deepEqual(interceptsOver(plan, []).map(fm), plan.map(fm), 'a bare switch: the adds only');
  });

  it('a service steers its traffic to the connection table, copying FIN/RST to the controller before any rewrite', () => {
    const flows = interceptFlows({ index: 2, service: { ip: '10.0.0.1', port: 5001 }, backends: [{ ip: '10.0.0.1', port: 5001 }, { ip: '10.0.0.3', port: 5001 }, { ip: '10.0.0.3', port: 5001 }] }).map(fm);
    // One set per distinct match: the service address, each distinct backend source.
    const matches = [{ ipv4Dst: '10.0.0.1', tcpDst: 5001 }, { ipv4Src: '10.0.0.1', tcpSrc: 5001 }, { ipv4Src: '10.0.0.3', tcpSrc: 5001 }];
    // Plus one SYN flow in table 1 per backend source (its SYN-ACK's datapath flow then covers SYN segments only).
    assert.equal(flows.length, matches.length * 4 + 2);
    for (const m of matches) {
      const mine = flows.filter((f) => Object.entries(m).every(([k, v]) => (f.match as Record<string, unknown>)[k] === v));
      const steer = mine.filter((f) => f.tableId === TABLE.steer && f.priority === PRIORITY.steer);
      assert.equal(steer.length, 1);
      assert.deepEqual(steer[0].instructions, [{ type: 'goto_table', tableId: TABLE.connection }]);
      assert.equal(steer[0].cookie, interceptCookie(2));
      const copies = mine.filter((f) => f.priority === PRIORITY.flagCopy);
      assert.deepEqual(copies.map((f) => f.match.tcpFlags), [{ value: 0x01, mask: 0x01 }, { value: 0x04, mask: 0x04 }]);
      for (const c of copies) {
        assert.equal(c.tableId, TABLE.steer);
        assert.equal(isFlagCopy(c.cookie), true);
        assert.deepEqual(c.instructions, [{ type: 'apply_actions', actions: [{ type: 'output', port: OFPP.CONTROLLER, maxLen: 128 }] }, { type: 'goto_table', tableId: TABLE.connection }]);
      }
      const intercept = mine.filter((f) => f.tableId === TABLE.connection && f.match.tcpFlags === undefined);
      assert.equal(intercept.length, 1);
      const syn = mine.filter((f) => f.tableId === TABLE.connection && f.match.tcpFlags !== undefined);
      if (m.tcpDst !== undefined) assert.deepEqual(syn, [], 'client → service: the SYN, its ACK and data all go up anyway');
      else {
        assert.deepEqual(syn.map((f) => [f.priority, f.match.tcpFlags, f.cookie, f.instructions]), [[PRIORITY.interceptSyn, { value: 0x02, mask: 0x02 }, interceptCookie(2), intercept[0].instructions]]);
        assert.ok(PRIORITY.interceptSyn > PRIORITY.intercept && PRIORITY.interceptSyn < PRIORITY.connection && PRIORITY.interceptSyn < PRIORITY.bypass);
      }
      assert.equal(intercept[0].priority, PRIORITY.intercept);
      assert.ok(intercept[0].priority < PRIORITY.connection && intercept[0].priority < PRIORITY.bypass);
      assert.equal(isFlagCopy(intercept[0].cookie), false);
    }
    // The service removed: every flow above goes, each by a strict delete under its own exact cookie.
    const present = flows.map((f) => ({ tableId: f.tableId, priority: f.priority, cookie: f.cookie, match: f.match, instructions: f.instructions, idleTimeout: 0, hardTimeout: 0, flags: 0, durationSec: 1, durationNsec: 0, packetCount: 0n, byteCount: 0n }) as FlowStats);
    const dels = interceptsOver([], present).map(fm);
    assert.equal(dels.length, flows.length);
    assert.deepEqual(new Set(dels.map((d) => d.cookie)), new Set(flows.map((f) => f.cookie)));
    for (const d of dels) assert.deepEqual([d.command, d.cookieMask], ['delete_strict', 0xffffffffffffffffn]);
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
    const msgs = [...connectionFlows(spec()), ...connectionFlows(spec({ mode: 'relay' })), ...deleteConnectionFlows(7),
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
    assert.deepEqual(optionsToStrip({ timestamps: 'strip', sack: 'keep', mismatch: 'refuse', mptcp: 'strip' }), ['timestamp']);
    assert.deepEqual(optionsToStrip({ timestamps: 'keep', sack: 'strip', mismatch: 'refuse', mptcp: 'strip' }), ['sack_permitted']);
  });

  const client = { mac: '02:00:00:00:00:01', ip: '10.0.0.2', port: 40000 };
  const server = { mac: '02:00:00:00:00:02', ip: '10.0.0.1', port: 80 };
  const synOptions: TcpOption[] = [
    { kind: 'mss', value: 1460 }, { kind: 'sack_permitted' }, { kind: 'timestamp', tsval: 1, tsecr: 0 }, { kind: 'nop' }, { kind: 'wscale', shift: 7 },
    { kind: 'unknown', type: 30, data: Buffer.from('0081', 'hex') }, { kind: 'unknown', type: 34, data: Buffer.alloc(0) },
  ];
  const tfoSyn = () => buildTcpFrame({
    ethSrc: client.mac, ethDst: server.mac, ipSrc: client.ip, ipDst: server.ip, srcPort: client.port, dstPort: server.port,
    seq: 1000, ack: 0, flags: { syn: true, ece: true, cwr: true }, window: 64240, options: synOptions, payload: Buffer.from('migrate hello'),
  });
  const kindsOf = (f: Buffer) => { const p = parseFrame(f); assert.ok(p.ok); return p.value.tcp!.options.map((o) => (o.kind === 'unknown' ? o.type : o.kind)).filter((k) => k !== 'eol'); };

  it('removes data, the TFO option and MP_CAPABLE from a SYN; keeps MPTCP on request', () => {
    const out = applySynPolicy(tfoSyn(), { timestamps: 'strip', sack: 'keep', mismatch: 'refuse', mptcp: 'strip' });
    assert.ok(out.ok);
    const p = parseFrame(out.value);
    assert.ok(p.ok && p.value.tcp && p.value.ipv4);
    assert.equal(p.value.payload.length, 0, 'SYN data removed');
    assert.equal(p.value.ipv4.totalLength, out.value.length - 14, 'IP length follows');
    assert.ok(checksumsOk(out.value), 'checksums recomputed');
    assert.equal(p.value.tcp.seq, 1000);
    assert.ok(p.value.tcp.flagSet.ece && p.value.tcp.flagSet.cwr, 'the ECN request is the client\'s to make');
    assert.deepEqual(kindsOf(out.value).filter((k) => k !== 'nop'), ['mss', 'sack_permitted', 'wscale']);
    const pass = applySynPolicy(tfoSyn(), { timestamps: 'keep', sack: 'keep', mismatch: 'refuse', mptcp: 'pass' });
    assert.ok(pass.ok);
    assert.ok(kindsOf(pass.value).includes(30) && !kindsOf(pass.value).includes(34));
  });

  it('replays to a target only what the first backend accepted', () => {
    const rec = { isn: 1000, window: 64240, options: encodeOpts([{ kind: 'mss', value: 1460 }, { kind: 'sack_permitted' }, { kind: 'timestamp', tsval: 1, tsecr: 0 }, { kind: 'nop' }, { kind: 'wscale', shift: 7 }]).toString('hex'), tos: 0, ttl: 64, ecn: true };
    const target = { ...server, ip: '10.0.0.3' };
    const all = replaySyn(rec, { mss: 1460, wscale: 9, sackPermitted: true, timestamps: true, ecn: true }, client, target, 999);
    assert.deepEqual(kindsOf(all).filter((k) => k !== 'nop'), ['mss', 'sack_permitted', 'timestamp', 'wscale']);
    const pa = parseFrame(all);
    assert.ok(pa.ok && pa.value.tcp!.flagSet.ece && pa.value.tcp!.flagSet.cwr && pa.value.tcp!.seq === 999);
    // A SYN-cookie SYN-ACK without timestamps carries neither window scale nor SACK; no ECN either.
    const cookie = replaySyn(rec, { mss: 1460, sackPermitted: false, timestamps: false, ecn: false }, client, target, 999);
    assert.deepEqual(kindsOf(cookie).filter((k) => k !== 'nop'), ['mss']);
    const pc = parseFrame(cookie);
    assert.ok(pc.ok && !pc.value.tcp!.flagSet.ece && !pc.value.tcp!.flagSet.cwr);
    assert.ok(checksumsOk(cookie));
  });

  it('reads ECN acceptance from a SYN-ACK (ECE without CWR)', () => {
    assert.equal(summarise([], { ece: true, cwr: false }).ecn, true);
    assert.equal(summarise([], { ece: true, cwr: true }).ecn, false);
    assert.equal(summarise([], { ece: false, cwr: false }).ecn, false);
  });

  it('flags SACK and ECN a target does not honour', () => {
    const s1 = summarise([{ kind: 'mss', value: 1460 }, { kind: 'sack_permitted' }], { ece: true, cwr: false });
    const noSack = summarise([{ kind: 'mss', value: 1460 }], { ece: true, cwr: false });
    const noEcn = summarise([{ kind: 'mss', value: 1460 }, { kind: 'sack_permitted' }]);
    assert.deepEqual(compareSynAcks(s1, noSack).map((m) => m.option), ['sack']);
    assert.deepEqual(compareSynAcks(s1, noEcn).map((m) => m.option), ['ecn']);
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
    assert.deepEqual(s.options, { timestamps: 'strip', sack: 'keep', mismatch: 'refuse', mptcp: 'strip' });
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
