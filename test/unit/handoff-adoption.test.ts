// Adoption is the inverse of the flow plan: every kind of flow set the engine installs, read back
// as a switch returns it (through the wire codec), rebuilds the same connection.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  adoptConnection, connectionFlows, deleteConnectionFlows, flowsByConnection, freezeFlows, legFlow, type AdoptionContext, type ConnectionFlowSpec, type ConnectionMeta,
} from '../../controller/handoff/flow-plan.ts';
import { planReconciliation } from '../../controller/handoff/reconcile.ts';
import { decodeRecord, encodeRecord, RecordError, type ConnectionRecord } from '../../controller/handoff/connection-record.ts';
import { connCookie, connRoleOf, CONN_ROLE } from '../../controller/cookies.ts';
import { asFlowStats } from '../lib/scripted-switch.ts';
import { OFPP, type Action, type OfpMessage } from '../../controller/openflow/index.ts';

type FlowMod = Extract<OfpMessage, { type: 'flow_mod' }>;

type Spec = ConnectionFlowSpec & { meta: ConnectionMeta };

const META: ConnectionMeta = {
  serviceName: 'echo', backendName: 'server2', migrations: 1, createdAt: 1_790_000_000_123,
  syn: { isn: 0xfedcba98 | 0 /* SynRecord.isn is kept signed */, window: 64240, options: '020405b40402080a', tos: 0, ttl: 64 },
  synAck: { mss: 1460, wscale: 7, sackPermitted: true, timestamps: false, ecn: false },
};

const spec = (over: Partial<Spec> = {}): Spec => ({
  id: 7, idleTimeout: 30, mode: 'fastpath', ackDelta: 1000,
  client: { mac: '02:00:00:00:00:02', ip: '10.0.0.2', port: 40000, ofport: 2 },
  service: { mac: '02:00:00:00:00:01', ip: '10.0.0.1', port: 5001 },
  backend: { mac: '02:00:00:00:00:03', ip: '10.0.0.3', port: 5001, ofport: 3 },
  mirrorPort: undefined, inspect: false, meta: META,
  ...over,
});

/** The flows as a switch reports them: each Flow-Mod through the wire codec, then as flow stats. */
const asSwitchHasThem = asFlowStats;

const ctx = (over: Partial<AdoptionContext> = {}, service = { mirrorPort: undefined as number | undefined, inspect: false }): AdoptionContext => ({
  mode: 'fastpath', service: (name) => (name === 'echo' ? service : undefined), ...over,
});

function roundTrip(s: Spec, c = ctx({ mode: s.mode }, { mirrorPort: s.mirrorPort, inspect: !!s.inspect })) {
  return adoptConnection(asSwitchHasThem(connectionFlows(s)), c);
}

describe('adoption: the inverse of the flow plan', () => {
  const kinds: [string, Spec][] = [
    ['migrated (NAT address + ack shift)', spec()],
    ['migrated to another port on another host', spec({ backend: { mac: '02:00:00:00:00:04', ip: '10.0.0.4', port: 6000, ofport: 4 } })],
    ['migrated back to server 1 (same address, shifted)', spec({ backend: { mac: '02:00:00:00:00:01', ip: '10.0.0.1', port: 5001, ofport: 1 }, ackDelta: 77 })],
    ['forwarded to server 1 (no rewrite)', spec({ ackDelta: 0, backend: { mac: '02:00:00:00:00:01', ip: '10.0.0.1', port: 5001, ofport: 1 }, meta: { ...META, backendName: 'server1', migrations: 0 } })],
    ['a delta past 2^31 (dec actions)', spec({ ackDelta: 0xffffff00 })],
    ['relay (stock switch, shifted)', spec({ mode: 'relay' })],
    ['relay mode but unshifted (the switch does the NAT)', spec({ mode: 'relay', ackDelta: 0, backend: { mac: '02:00:00:00:00:01', ip: '10.0.0.1', port: 5001, ofport: 1 } })],
    ['with an IDS mirror and controller inspection', spec({ mirrorPort: 5, inspect: true })],
    ['an ECN connection', spec({ meta: { ...META, syn: { ...META.syn!, ecn: true }, synAck: { ...META.synAck!, ecn: true } } })],
    ['adopted earlier without its handshake (no SYN record)', spec({ meta: { ...META, syn: undefined, synAck: undefined } })],
    ['with the backend its last move left (reset again by an adopter)', spec({ meta: { ...META, left: { mac: '02:00:00:00:00:01', ip: '10.0.0.1', port: 5001, ofport: 1, seq: 0xfffffff0 } } })],
    ['migrated in conntrack, moving again: kept out of ct (its ct-exit flows in table 0)', spec({ ctExit: { ip: '10.0.0.3', port: 5001 } })],
    ['migrated in conntrack to server 2, then back to server 1, kept out of ct', spec({ backend: { mac: '02:00:00:00:00:01', ip: '10.0.0.1', port: 5001, ofport: 1 }, ackDelta: 77, ctExit: { ip: '10.0.0.3', port: 5001 } })],
  ];
  for (const [name, s] of kinds) {
    it(`${name}: flows parse back into the same connection`, () => {
      const a = roundTrip(s);
      assert.ok(a.ok, a.ok ? '' : a.why);
      assert.equal(a.exact, true);
      assert.deepEqual(a.spec, s);
    });
  }

  it('any connection the engine can describe round-trips (property)', () => {
    const mac = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 }).map((b) => b.map((x) => x.toString(16).padStart(2, '0')).join(':'));
    const ip = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.nat(255), fc.nat(255), fc.integer({ min: 1, max: 254 })).map((p) => p.join('.'));
    const port = fc.integer({ min: 1, max: 65535 });
    const ofport = fc.integer({ min: 1, max: 0xfeff });
    const arb = fc.record({
      id: fc.integer({ min: 1, max: 0xffffffffffff }), idleTimeout: fc.integer({ min: 1, max: 65535 }),
      mode: fc.constantFrom('fastpath' as const, 'relay' as const), ackDelta: fc.nat(0xffffffff),
      client: fc.record({ mac, ip, port, ofport }), service: fc.record({ mac, ip, port }), backend: fc.record({ mac, ip, port, ofport }),
      mirrorPort: fc.option(ofport, { nil: undefined }), inspect: fc.boolean(), ctExit: fc.option(fc.record({ ip, port }), { nil: undefined }),
      meta: fc.record({
        serviceName: fc.constant('echo'), backendName: fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/), migrations: fc.nat(1000), createdAt: fc.nat(2 ** 42),
        syn: fc.option(fc.record({ isn: fc.nat(0xffffffff).map((n) => n | 0), window: fc.nat(0xffff), options: fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u).toString('hex')), tos: fc.nat(255), ttl: fc.nat(255) }), { nil: undefined }),
        synAck: fc.option(fc.record({ mss: fc.option(fc.nat(0xffff), { nil: undefined }), wscale: fc.option(fc.nat(14), { nil: undefined }), sackPermitted: fc.boolean(), timestamps: fc.boolean(), ecn: fc.boolean() }), { nil: undefined }),
      }, { noNullPrototype: true }),
    }, { noNullPrototype: true });
    fc.assert(fc.property(arb, (s) => {
      // The client and the backend must differ, as on a real switch (else the two main flows collide).
      fc.pre(s.client.ip !== s.backend.ip || s.client.port !== s.backend.port);
      // Likewise its two ct-exit flows (client → service, the entry's target → client).
      fc.pre(!s.ctExit || ((s.client.ip !== s.service.ip || s.client.port !== s.service.port) && (s.client.ip !== s.ctExit.ip || s.client.port !== s.ctExit.port)));
      const a = roundTrip(s as Spec);
      assert.ok(a.ok, a.ok ? '' : a.why);
      assert.equal(a.exact, true);
      // Options the meta leaves out stay out (undefined) after the round trip.
      assert.deepEqual(JSON.parse(JSON.stringify(a.spec)), JSON.parse(JSON.stringify(s)));
    }), { numRuns: 300 });
  });

  it('kept out of ct: the two ct-exit flows are in table 0 above the FIN/RST copies, after the table-1 flows, and one missing makes the adoption inexact', () => {
    const s = spec({ ctExit: { ip: '10.0.0.3', port: 5001 } });
    const flows = connectionFlows(s) as FlowMod[];
    assert.deepEqual(flows.map((f) => [f.tableId, connRoleOf(f.cookie)]), [[1, CONN_ROLE.main], [1, CONN_ROLE.main], [0, CONN_ROLE.ctExit], [0, CONN_ROLE.ctExit]]);
    const exits = flows.filter((f) => f.tableId === 0);
    assert.deepEqual(exits.map((f) => [f.priority, f.idleTimeout, f.flags, f.instructions]), [0, 1].map(() => [215, 30, 0, [{ type: 'goto_table', tableId: 2 }]]));
    assert.deepEqual([exits[0]!.match.inPort, exits[0]!.match.ipv4Src, exits[0]!.match.ipv4Dst, exits[0]!.match.tcpSrc, exits[0]!.match.tcpDst], [2, '10.0.0.2', '10.0.0.1', 40000, 5001], 'the client\'s segments, as on the wire');
    assert.deepEqual([exits[1]!.match.ipv4Src, exits[1]!.match.ipv4Dst, exits[1]!.match.tcpSrc, exits[1]!.match.tcpDst], ['10.0.0.3', '10.0.0.2', 5001, 40000], 'the entry\'s target\'s');
    const closing = connectionFlows({ ...s, closing: true }) as FlowMod[];
    assert.ok(closing.every((f) => connRoleOf(f.cookie) === CONN_ROLE.closing), 'closing, they close with the rest');
    for (const drop of [2, 3]) {
      const a = adoptConnection(asSwitchHasThem(flows.filter((_f, i) => i !== drop)), ctx());
      assert.ok(a.ok);
      assert.equal(a.exact, false, `without exit flow ${drop - 2}`);
    }
  });

  it('a freeze flow left by an interrupted move makes the adoption inexact (reinstall)', () => {
    const s = spec();
    const flows = asSwitchHasThem([...connectionFlows(s), ...freezeFlows(s)]);
    const a = adoptConnection(flows, ctx());
    assert.ok(a.ok);
    assert.equal(a.exact, false);
    assert.deepEqual(a.spec, s);
  });

  it('a service setting changed since, or a flow of the connection edited, makes it inexact', () => {
    const s = spec();
    const flows = asSwitchHasThem(connectionFlows(s));
    const b = adoptConnection(flows, ctx({}, { mirrorPort: 9, inspect: false }));
    assert.ok(b.ok && !b.exact && b.spec.mirrorPort === 9);
    const longer = flows.map((f, i) => (i === 1 ? { ...f, idleTimeout: f.idleTimeout + 1 } : f));
    const c = adoptConnection(longer, ctx());
    assert.ok(c.ok && !c.exact);
  });

  it('flows of the one-table layout (per-connection FIN/RST copies, table 0) are adopted and reinstalled as two flows', () => {
    const s = spec();
    const oneTable = connectionFlows(s).map((m) => ({ ...(m as FlowMod), tableId: 0 }));
    const [c2s, s2c] = oneTable;
    for (const [base, flag] of [[c2s, 1], [c2s, 4], [s2c, 1], [s2c, 4]] as const) {
      const acts = (base.instructions[0] as { actions: Action[] }).actions.filter((a) => a.type !== 'nx_note');
      oneTable.push({ ...base, priority: 210, flags: 0, cookie: connCookie(s.id, CONN_ROLE.flags), match: { ...base.match, tcpFlags: { value: flag, mask: flag } }, instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: OFPP.CONTROLLER, maxLen: 128 }, ...acts] }] });
    }
    const a = adoptConnection(asSwitchHasThem(oneTable), ctx());
    assert.ok(a.ok, a.ok ? '' : a.why);
    assert.equal(a.exact, false);
    assert.deepEqual(a.spec, s);
    // What the reinstall deletes covers every role the old layout used.
    const roles = deleteConnectionFlows(s.id).map((m) => (m as FlowMod).cookie);
    for (const f of oneTable) assert.ok(roles.includes(f.cookie));
    assert.equal(connectionFlows(a.spec).length, 2);
  });

  it('relay flows on a switch that now has the patch are reinstalled as datapath flows', () => {
    const a = adoptConnection(asSwitchHasThem(connectionFlows(spec({ mode: 'relay' }))), ctx({ mode: 'fastpath' }));
    assert.ok(a.ok && !a.exact && a.spec.mode === 'fastpath');
  });

  it('refuses flows it cannot interpret, saying why', () => {
    const s = spec();
    const noNote = asSwitchHasThem(connectionFlows({ ...s, meta: undefined }));
    const r1 = adoptConnection(noNote, ctx());
    assert.ok(!r1.ok && /no flow carries a state note/.test(r1.why));
    const r2 = adoptConnection(asSwitchHasThem(connectionFlows(s)), ctx({ service: () => undefined }));
    assert.ok(!r2.ok && /service 'echo' is not configured/.test(r2.why));
    const garbled = asSwitchHasThem(connectionFlows(s)).map((f) => ({
      ...f, instructions: f.instructions.map((i) => (i.type === 'apply_actions' ? { ...i, actions: i.actions.map((x) => (x.type === 'nx_note' ? { ...x, data: Buffer.from('tcp-migrate/1 {"s":') } : x)) } : i)),
    }));
    const r3 = adoptConnection(garbled, ctx());
    assert.ok(!r3.ok && /unreadable note/.test(r3.why));
    const onlyOneWay = asSwitchHasThem(connectionFlows(s).slice(0, 1));
    const r4 = adoptConnection(onlyOneWay, ctx());
    assert.ok(!r4.ok && /no backend → client flow/.test(r4.why));
  });
});

describe('connection record (the state note)', () => {
  const rec: ConnectionRecord = {
    serviceName: 'echo', serviceMac: '02:00:00:00:00:01', clientMac: '02:00:00:00:00:02', backendName: 'server2', backendMac: '02:00:00:00:00:03',
    ackDelta: 0xfffffff0, migrations: 3, createdAt: 1_790_000_000_000, syn: META.syn, synAck: META.synAck,
  };
  it('round-trips, ignoring the zero padding the wire adds', () => {
    const enc = encodeRecord(rec);
    assert.deepEqual(decodeRecord(Buffer.concat([enc, Buffer.alloc(5)])), rec);
  });
  const bad: [string, string][] = [
    ['another program\'s note', 'hello'],
    ['truncated JSON', 'tcp-migrate/1 {"s":"echo"'],
    ['a bad MAC', 'tcp-migrate/1 {"s":"echo","sm":"zz","cm":"02:00:00:00:00:02","b":"x","bm":"02:00:00:00:00:03","d":0,"n":0,"t":0}'],
    ['a delta past 2^32', 'tcp-migrate/1 {"s":"echo","sm":"02:00:00:00:00:01","cm":"02:00:00:00:00:02","b":"x","bm":"02:00:00:00:00:03","d":4294967296,"n":0,"t":0}'],
    ['SYN options that are not hex', 'tcp-migrate/1 {"s":"echo","sm":"02:00:00:00:00:01","cm":"02:00:00:00:00:02","b":"x","bm":"02:00:00:00:00:03","d":0,"n":0,"t":0,"syn":{"isn":1,"w":1,"o":"xyz","tos":0,"ttl":64}}'],
  ];
  for (const [name, text] of bad) {
    it(`rejects ${name} with a RecordError`, () => assert.throws(() => decodeRecord(Buffer.from(text)), RecordError));
  }
});

describe('reconciliation plan', () => {
  const s1 = spec({ id: 1 });
  const s2 = spec({ id: 2, client: { mac: '02:00:00:00:00:12', ip: '10.0.0.12', port: 40001, ofport: 6 } });
  const s3 = spec({ id: 3, client: { mac: '02:00:00:00:00:13', ip: '10.0.0.13', port: 40002, ofport: 7 } });
  const s4 = spec({ id: 4, client: { mac: '02:00:00:00:00:14', ip: '10.0.0.14', port: 40003, ofport: 8 } });

  it('keeps, reinstalls, adopts and drops, each for its reason', () => {
    const table = asSwitchHasThem([
      ...connectionFlows(s1),                                 // known, exact → keep
      ...connectionFlows(s2).slice(0, 1),                     // known, a flow missing → reinstall
      ...connectionFlows(s4),                                 // unknown → adopt
      ...connectionFlows({ ...s3, meta: undefined }),         // unknown, no note → drop
      ...connectionFlows(spec({ id: 9, client: { mac: '02:00:00:00:00:19', ip: '10.0.0.19', port: 1, ofport: 9 } })), // ended while away → drop
    ]);
    const known = new Map<number, ConnectionFlowSpec | undefined>([[1, s1], [2, s2], [5, spec({ id: 5 })], [6, undefined]]);
    const plan = planReconciliation(known, new Set([9]), flowsByConnection(table), ctx());
    assert.deepEqual(plan.keep, [1]);
    assert.deepEqual(plan.reinstall.sort(), [2, 5]);   // 5: known, its flows are gone (the switch restarted)
    assert.deepEqual(plan.adopt.map((a) => [a.id, a.exact]), [[4, true]]);
    assert.deepEqual(plan.drop.map((d) => d.id).sort(), [3, 9]);
    assert.match(plan.drop.find((d) => d.id === 9)!.why, /ended while the switch was away/);
  });

  it('a connection whose phase has no flows loses whatever flows it has', () => {
    const table = asSwitchHasThem(freezeFlows(s1));
    const plan = planReconciliation(new Map([[1, undefined]]), new Set(), flowsByConnection(table), ctx());
    assert.deepEqual(plan.drop, [{ id: 1, why: 'the connection has no flows in its phase' }]);
  });

  it('a closing connection\'s flows (role closing, short idle timeout) are left to expire; a known closing connection keeps them', () => {
    const closing = (x: Spec): Spec => ({ ...x, closing: true, idleTimeout: 1 });
    const flows = asSwitchHasThem([...connectionFlows(closing(s1)), ...connectionFlows(closing(s2)), ...connectionFlows(s3), ...connectionFlows(closing(s3))]);
    for (const f of asSwitchHasThem(connectionFlows(closing(s1)))) {
      assert.equal(connRoleOf(f.cookie), CONN_ROLE.closing);
      assert.equal(f.idleTimeout, 1);
      assert.equal(f.flags & 1, 0, 'no FLOW_REMOVED');
    }
    // 1: known and closing (exact) → kept; 2: unknown, closing only → neither adopted nor deleted;
    // 3: unknown, live flows and closing ones of an earlier connection with its id → the live ones adopted.
    const plan = planReconciliation(new Map([[1, closing(s1)]]), new Set(), flowsByConnection(flows), ctx());
    assert.deepEqual(plan.keep, [1]);
    assert.deepEqual(plan.reinstall, []);
    assert.deepEqual(plan.drop, []);
    assert.deepEqual(plan.adopt.map((a) => [a.id, a.exact, a.spec.client.ip, a.spec.idleTimeout]), [[3, true, s3.client.ip, s3.idleTimeout]]);
  });

  it('a replay\'s leg flow is neither adopted nor a reason to reinstall: it expires by itself', () => {
    const leg = legFlow({ id: 1, client: s1.client, target: s1.backend }, 4);
    const leg9 = legFlow({ id: 9, client: s2.client, target: s2.backend }, 4);
    const flows = asSwitchHasThem([...connectionFlows(s1), leg, leg9]);
    const plan = planReconciliation(new Map([[1, s1]]), new Set(), flowsByConnection(flows), ctx());
    assert.deepEqual([plan.keep, plan.reinstall, plan.adopt.length, plan.drop], [[1], [], 0, []]);
  });

  it('groups flows by connection id and ignores other apps\' flows', () => {
    const other = { ...asSwitchHasThem(connectionFlows(s1))[0], cookie: 0x0200000000000000n };
    const g = flowsByConnection([...asSwitchHasThem(connectionFlows(s1)), other]);
    assert.deepEqual([...g.keys()], [1]);
    assert.equal(g.get(1)!.length, 2);
    assert.equal(g.get(1)![0].cookie, connCookie(1, CONN_ROLE.main));
  });
});
