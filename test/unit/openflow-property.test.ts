// Property tests: random well-formed messages round-trip; random/truncated/mutated bytes never
// throw and always terminate with a typed result.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeMessage, encodeMessage, splitMessages, OXM_FIELDS, OFPT, OFPMP, NX_VENDOR_ID, OFPAT,
  type Action, type Instruction, type Match, type OfpMessage, type PortDesc,
} from '../../controller/openflow/index.ts';
import { formatIpv6, parseIpv6 } from '../../controller/packet/addr.ts';

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: 0xffffffffffffffffn });
const bytes = (max = 32) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const bytesOfLen = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a));
const mac = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((a) => [...a].map((x) => x.toString(16).padStart(2, '0')).join(':'));
const ipv4 = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((a) => [...a].join('.'));
// Half the bytes zero, so '::' compression and the mixed IPv4 forms come up.
const ipv6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).chain((a) => fc.uint8Array({ minLength: 16, maxLength: 16 }).map((z) => formatIpv6(Buffer.from(a.map((x, i) => (z[i]! < 128 ? 0 : x))))));
const name = (max: number) => fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_.'.split('')), maxLength: max });
const rec = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }) => fc.record(model, { noNullPrototype: true }) as fc.Arbitrary<T>;

// One arbitrary per OXM field, from the same table the codec uses (so new fields get covered).
function valueArb(kind: string, max?: number): fc.Arbitrary<unknown> {
  switch (kind) {
    case 'u8': return fc.integer({ min: 0, max: max ?? 0xff });
    case 'u16': return fc.integer({ min: 0, max: max ?? 0xffff });
    case 'u32': return fc.integer({ min: 0, max: max ?? 0xffffffff });
    case 'u64': return u64;
    case 'u128': return fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });
    case 'mac': return mac;
    case 'ipv6': return ipv6;
    default: return ipv4;
  }
}
function andMask(kind: string, v: unknown, m: unknown): unknown {
  if (typeof v === 'bigint') return v & (m as bigint);
  if (typeof v === 'number') return (v & (m as number)) >>> 0; // unsigned: JS's & is signed 32-bit
  if (kind === 'ipv6') {
    const [a, b] = [parseIpv6(v as string), parseIpv6(m as string)];
    if (!a.ok || !b.ok) throw new Error('bad generated IPv6 address');
    return formatIpv6(Buffer.from(a.value.map((x, i) => x & b.value[i]!)));
  }
  const sep = kind === 'mac' ? ':' : '.';
  const radix = kind === 'mac' ? 16 : 10;
  const a = (v as string).split(sep).map((x) => parseInt(x, radix));
  const b = (m as string).split(sep).map((x) => parseInt(x, radix));
  return a.map((x, i) => (kind === 'mac' ? (x & b[i]!).toString(16).padStart(2, '0') : String(x & b[i]!))).join(sep);
}
const fieldArbs: Record<string, fc.Arbitrary<unknown>> = {};
for (const d of OXM_FIELDS.filter((f) => f.encode)) {
  const v = valueArb(d.kind, d.max);
  // OF1.3 requires value bits under a 0 mask bit to be 0, so the generated value is ANDed with the mask.
  fieldArbs[d.key] = d.maskable ? fc.oneof(v, fc.tuple(v, v).map(([a, m]) => ({ value: andMask(d.kind, a, m), mask: m }))) : v;
}
const unknownOxm = rec({
  oxmClass: fc.constantFrom(0x0000, 0x0001, 0x8000),
  field: fc.integer({ min: 35, max: 127 }),
  hasMask: fc.boolean(),
  data: bytes(16),
}).filter((u) => !OXM_FIELDS.some((d) => d.oxmClass === u.oxmClass && d.field === u.field));
const matchArb: fc.Arbitrary<Match> = fc
  .tuple(fc.record(fieldArbs, { requiredKeys: [], noNullPrototype: true }), fc.array(unknownOxm, { maxLength: 2 }))
  .map(([m, u]) => (u.length ? { ...m, unknownOxm: u } : m) as Match);
const oneFieldArb: fc.Arbitrary<Match> = fc
  .constantFrom(...Object.keys(fieldArbs))
  .chain((k) => fieldArbs[k]!.map((v) => ({ [k]: v }) as Match));

const knownActionCodes = new Set<number>(Object.values(OFPAT));
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  rec({ type: fc.constant('output' as const), port: u32, maxLen: u16 }),
  fc.constantFrom(...(['copy_ttl_out', 'copy_ttl_in', 'dec_mpls_ttl', 'pop_vlan', 'dec_nw_ttl', 'pop_pbb'] as const).map((type) => ({ type }))),
  rec({ type: fc.constantFrom('set_mpls_ttl' as const, 'set_nw_ttl' as const), ttl: u8 }),
  rec({ type: fc.constantFrom('push_vlan' as const, 'push_mpls' as const, 'pop_mpls' as const, 'push_pbb' as const), ethType: u16 }),
  rec({ type: fc.constant('set_queue' as const), queueId: u32 }),
  rec({ type: fc.constant('group' as const), groupId: u32 }),
  rec({ type: fc.constant('set_field' as const), field: oneFieldArb }),
  rec({
    type: fc.constant('experimenter' as const),
    experimenter: u32.filter((e) => e !== NX_VENDOR_ID),
    data: fc.integer({ min: 0, max: 3 }).chain((n) => bytesOfLen(8 * n)),
  }),
  rec({
    type: fc.constant('unknown' as const),
    actionType: u16.filter((t) => !knownActionCodes.has(t)),
    data: fc.integer({ min: 0, max: 3 }).chain((n) => bytesOfLen(4 + 8 * n)),
  }),
  rec({ type: fc.constantFrom('nx_inc_tcp_seq' as const, 'nx_dec_tcp_seq' as const, 'nx_inc_tcp_ack' as const, 'nx_dec_tcp_ack' as const), delta: u32 }),
  rec({ type: fc.constant('nx_resubmit' as const), inPort: fc.integer({ min: 0, max: 0xfeff }) }),
  rec({ type: fc.constant('nx_resubmit' as const), inPort: fc.integer({ min: 0xffffff00, max: 0xffffffff }), tableId: u8 }),
);
const actionsArb = fc.array(actionArb, { maxLength: 5 });

const instructionArb: fc.Arbitrary<Instruction> = fc.oneof(
  rec({ type: fc.constant('goto_table' as const), tableId: u8 }),
  rec({ type: fc.constant('write_metadata' as const), metadata: u64, mask: u64 }),
  rec({ type: fc.constantFrom('write_actions' as const, 'apply_actions' as const), actions: actionsArb }),
  fc.constant({ type: 'clear_actions' as const }),
  rec({ type: fc.constant('meter' as const), meterId: u32 }),
  rec({ type: fc.constant('experimenter' as const), experimenter: u32, data: fc.integer({ min: 0, max: 2 }).chain((n) => bytesOfLen(8 * n)) }),
  rec({ type: fc.constant('unknown' as const), instrType: fc.integer({ min: 7, max: 0xfffe }), data: fc.integer({ min: 0, max: 2 }).chain((n) => bytesOfLen(4 + 8 * n)) }),
);
const instructionsArb = fc.array(instructionArb, { maxLength: 4 });

const portArb: fc.Arbitrary<PortDesc> = rec({
  portNo: u32, hwAddr: mac, name: name(15), config: u32, state: u32, curr: u32, advertised: u32, supported: u32, peer: u32,
  currSpeed: u32, maxSpeed: u32,
});

const flowStatsReq = { tableId: u8, outPort: u32, outGroup: u32, cookie: u64, cookieMask: u64, match: matchArb };
const knownMsgCodes = new Set<number>([...Object.values(OFPT)].filter((c) => ![15, 16, 17, 22, 23, 26, 27, 28, 29].includes(c)));
const knownMpTypes = new Set<number>([OFPMP.DESC, OFPMP.FLOW, OFPMP.AGGREGATE, OFPMP.TABLE, OFPMP.PORT_STATS, OFPMP.PORT_DESC]);
const xid = u32;

const messageArb: fc.Arbitrary<OfpMessage> = fc.oneof(
  rec({ type: fc.constant('hello' as const), xid }),
  rec({ type: fc.constant('hello' as const), xid, versions: fc.uniqueArray(fc.integer({ min: 1, max: 127 }), { minLength: 1, maxLength: 6 }).map((v) => v.sort((a, b) => a - b)) }),
  rec({ type: fc.constant('error' as const), xid, errType: fc.integer({ min: 0, max: 0xfffe }), code: u16, data: bytes(64) }),
  rec({ type: fc.constant('error' as const), xid, errType: fc.constant(0xffff), code: u16, experimenter: u32, data: bytes(64) }),
  rec({ type: fc.constantFrom('echo_request' as const, 'echo_reply' as const), xid, data: bytes(64) }),
  rec({ type: fc.constant('experimenter' as const), xid, experimenter: u32, expType: u32, data: bytes(32) }),
  rec({ type: fc.constantFrom('features_request' as const, 'get_config_request' as const, 'barrier_request' as const, 'barrier_reply' as const), xid }),
  rec({ type: fc.constant('features_reply' as const), xid, datapathId: u64, nBuffers: u32, nTables: u8, auxiliaryId: u8, capabilities: u32 }),
  rec({ type: fc.constantFrom('get_config_reply' as const, 'set_config' as const), xid, flags: u16, missSendLen: u16 }),
  rec({ type: fc.constant('packet_in' as const), xid, bufferId: u32, totalLen: u16, reason: u8, tableId: u8, cookie: u64, match: matchArb, data: bytes(128) }),
  rec({
    type: fc.constant('flow_removed' as const), xid, cookie: u64, priority: u16, reason: u8, tableId: u8, durationSec: u32, durationNsec: u32,
    idleTimeout: u16, hardTimeout: u16, packetCount: u64, byteCount: u64, match: matchArb,
  }),
  rec({ type: fc.constant('port_status' as const), xid, reason: u8, port: portArb }),
  rec({ type: fc.constant('packet_out' as const), xid, bufferId: u32, inPort: u32, actions: actionsArb, data: bytes(128) }),
  rec({
    type: fc.constant('flow_mod' as const), xid, cookie: u64, cookieMask: u64, tableId: u8,
    command: fc.constantFrom('add' as const, 'modify' as const, 'modify_strict' as const, 'delete' as const, 'delete_strict' as const),
    idleTimeout: u16, hardTimeout: u16, priority: u16, bufferId: u32, outPort: u32, outGroup: u32, flags: u16, match: matchArb, instructions: instructionsArb,
  }),
  rec({
    type: fc.constant('multipart_request' as const), xid, flags: u16,
    body: fc.oneof(
      fc.constantFrom({ kind: 'desc' as const }, { kind: 'table' as const }, { kind: 'port_desc' as const }),
      rec({ kind: fc.constantFrom('flow' as const, 'aggregate' as const), ...flowStatsReq }),
      rec({ kind: fc.constant('port_stats' as const), portNo: u32 }),
      rec({ kind: fc.constant('unknown' as const), mpType: u16.filter((t) => !knownMpTypes.has(t)), data: bytes(32) }),
    ),
  }),
  rec({
    type: fc.constant('multipart_reply' as const), xid, flags: u16,
    body: fc.oneof(
      rec({ kind: fc.constant('desc' as const), mfrDesc: name(255), hwDesc: name(40), swDesc: name(40), serialNum: name(31), dpDesc: name(40) }),
      rec({
        kind: fc.constant('flow' as const),
        flows: fc.array(rec({
          tableId: u8, durationSec: u32, durationNsec: u32, priority: u16, idleTimeout: u16, hardTimeout: u16, flags: u16, cookie: u64,
          packetCount: u64, byteCount: u64, match: matchArb, instructions: instructionsArb,
        }), { maxLength: 3 }),
      }),
      rec({ kind: fc.constant('aggregate' as const), packetCount: u64, byteCount: u64, flowCount: u32 }),
      rec({ kind: fc.constant('table' as const), tables: fc.array(rec({ tableId: u8, activeCount: u32, lookupCount: u64, matchedCount: u64 }), { maxLength: 3 }) }),
      rec({
        kind: fc.constant('port_stats' as const),
        ports: fc.array(rec({
          portNo: u32, rxPackets: u64, txPackets: u64, rxBytes: u64, txBytes: u64, rxDropped: u64, txDropped: u64, rxErrors: u64,
          txErrors: u64, rxFrameErr: u64, rxOverErr: u64, rxCrcErr: u64, collisions: u64, durationSec: u32, durationNsec: u32,
        }), { maxLength: 3 }),
      }),
      rec({ kind: fc.constant('port_desc' as const), ports: fc.array(portArb, { maxLength: 3 }) }),
      rec({ kind: fc.constant('unknown' as const), mpType: u16.filter((t) => !knownMpTypes.has(t)), data: bytes(32) }),
    ),
  }),
  rec({ type: fc.constantFrom('role_request' as const, 'role_reply' as const), xid, role: u32, generationId: u64 }),
  rec({ type: fc.constant('unknown' as const), xid, msgType: u8.filter((t) => !knownMsgCodes.has(t)), body: bytes(32) }),
);

/** decodeMessage must return a typed result and never throw. */
function decodesSafely(buf: Buffer): void {
  const r = decodeMessage(buf);
  assert.equal(typeof r.ok, 'boolean');
  if (!r.ok) {
    assert.ok(['truncated', 'bad_length', 'bad_version', 'bad_type', 'bad_value', 'unsupported'].includes(r.error.kind));
    assert.equal(typeof r.error.message, 'string');
    // The boundary converts unexpected exceptions too; those would be codec bugs.
    assert.ok(!r.error.message.startsWith('internal decoder error'), r.error.message);
  }
}

describe('openflow codec: properties', () => {
  it('encode -> decode round-trips every well-formed message', () => {
    fc.assert(
      fc.property(messageArb, (msg) => {
        const buf = encodeMessage(msg);
        assert.equal(buf.readUInt16BE(2), buf.length);
        assert.equal(buf[0], 4);
        const r = decodeMessage(buf);
        assert.ok(r.ok, r.ok ? '' : `${r.error.kind}: ${r.error.message}`);
        assert.deepEqual(r.value, msg);
      }),
      { numRuns: 3000 },
    );
  });

  it('encoding is canonical: decode -> encode gives the same bytes', () => {
    fc.assert(
      fc.property(messageArb, (msg) => {
        const buf = encodeMessage(msg);
        const r = decodeMessage(buf);
        assert.ok(r.ok);
        assert.equal(encodeMessage(r.value).toString('hex'), buf.toString('hex'));
      }),
      { numRuns: 1000 },
    );
  });

  it('every truncation of a valid message decodes to an error (never throws)', () => {
    fc.assert(
      fc.property(messageArb, (msg) => {
        const buf = encodeMessage(msg);
        for (let n = 0; n < buf.length; n++) {
          const r = decodeMessage(buf.subarray(0, n));
          assert.equal(r.ok, false, `prefix ${n}/${buf.length} decoded`);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('truncating the body while fixing the header length never throws', () => {
    fc.assert(
      fc.property(messageArb, (msg) => {
        const buf = encodeMessage(msg);
        for (let n = 8; n < buf.length; n++) {
          const cut = Buffer.from(buf.subarray(0, n));
          cut.writeUInt16BE(n, 2);
          decodesSafely(cut);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('mutated valid messages never throw', () => {
    fc.assert(
      fc.property(messageArb, fc.array(fc.tuple(fc.nat(), u8), { minLength: 1, maxLength: 6 }), (msg, flips) => {
        const buf = Buffer.from(encodeMessage(msg));
        for (const [pos, val] of flips) buf[pos % buf.length] = val;
        decodesSafely(buf);
      }),
      { numRuns: 3000 },
    );
  });

  it('random bytes with a consistent header never throw', () => {
    fc.assert(
      fc.property(u8, bytes(200), xid, (type, body, x) => {
        const buf = Buffer.alloc(8 + body.length);
        buf.writeUInt8(4, 0);
        buf.writeUInt8(type % 32, 1);
        buf.writeUInt16BE(buf.length, 2);
        buf.writeUInt32BE(x, 4);
        body.copy(buf, 8);
        decodesSafely(buf);
      }),
      { numRuns: 5000 },
    );
  });

  it('fully random bytes never throw', () => {
    fc.assert(fc.property(bytes(100), (b) => decodesSafely(b)), { numRuns: 3000 });
  });

  it('splitMessages reassembles a stream cut at arbitrary points', () => {
    fc.assert(
      fc.property(fc.array(messageArb, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 6 }), (msgs, cuts) => {
        const stream = Buffer.concat(msgs.map(encodeMessage));
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const out: Buffer[] = [];
        let pending: Buffer = Buffer.alloc(0);
        let prev = 0;
        for (const p of [...points, stream.length]) {
          pending = Buffer.concat([pending, stream.subarray(prev, p)]);
          prev = p;
          const r = splitMessages(pending);
          assert.ok(r.ok);
          out.push(...r.value.messages);
          pending = Buffer.from(r.value.rest);
        }
        assert.equal(pending.length, 0);
        assert.deepEqual(out.map((b) => decodeMessage(b)), msgs.map((m) => ({ ok: true, value: m })));
      }),
      { numRuns: 300 },
    );
  });
});
