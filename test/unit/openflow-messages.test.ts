// Message-level codec tests: encode -> exact bytes (OF 1.3.5 spec layouts), decode back.
import assert from 'node:assert/strict';
import {
  ctFlushMessage, decodeCtFlush, encodeCtFlush, NXT_CT_FLUSH, type CtFlush,
  decodeMessage, encodeMessage, errorCodeName, errorTypeName, flowMod, packetOut, splitMessages,
  OFP_NO_BUFFER, OFPBAC, OFPBRC, OFPET, OFPFF, OFPP, OFPMP, type OfpMessage,
} from '../../controller/openflow/index.ts';

/** Hex with optional whitespace/pipes for readability -> Buffer. */
function hex(s: string): Buffer {
  return Buffer.from(s.replace(/[\s|]/g, ''), 'hex');
}

function roundTrip(msg: OfpMessage, expected: string): void {
  const bytes = encodeMessage(msg);
  assert.equal(bytes.toString('hex'), hex(expected).toString('hex'));
  const back = decodeMessage(bytes);
  assert.ok(back.ok, back.ok ? '' : back.error.message);
  assert.deepEqual(back.value, msg);
}

describe('openflow codec: messages', () => {
  it('hello without elements', () => {
    roundTrip({ type: 'hello', xid: 7 }, '04 00 0008 00000007');
  });

  it('hello with a version bitmap (padded to 8)', () => {
    roundTrip({ type: 'hello', xid: 1, versions: [1, 4] }, '04 00 0010 00000001 | 0001 0008 00000012');
  });

  it('hello with a bitmap in the second word', () => {
    roundTrip({ type: 'hello', xid: 1, versions: [4, 33] }, '04 00 0018 00000001 | 0001 000c 00000010 00000002 | 00000000');
  });

  it('hello from a newer peer (version 6) still decodes; unknown elements are skipped', () => {
    const r = decodeMessage(hex('06 00 0018 00000009 | 0007 0007 aabbcc 00 | 0001 0008 00000050'));
    assert.deepEqual(r, { ok: true, value: { type: 'hello', xid: 9, versions: [4, 6] } });
  });

  it('hello element with length < 4 is an error, not a loop', () => {
    const r = decodeMessage(hex('04 00 0010 00000001 | 0001 0000 00000000'));
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.error.kind, 'bad_length');
  });

  it('error (standard form)', () => {
    roundTrip(
      { type: 'error', xid: 3, errType: OFPET.BAD_ACTION, code: OFPBAC.BAD_EXPERIMENTER, data: hex('0400000800000001') },
      '04 01 0014 00000003 | 0002 0002 | 0400000800000001',
    );
  });

  it('error (OFPET_EXPERIMENTER form)', () => {
    roundTrip(
      { type: 'error', xid: 3, errType: 0xffff, code: 0x1234, experimenter: 0x4f4e4600, data: hex('aa') },
      '04 01 0011 00000003 | ffff 1234 4f4e4600 | aa',
    );
  });

  it('error names', () => {
    assert.equal(errorTypeName(2), 'OFPET_BAD_ACTION');
    assert.equal(errorCodeName(2, 2), 'OFPBAC_BAD_EXPERIMENTER');
    assert.equal(errorCodeName(OFPET.BAD_REQUEST, OFPBRC.BAD_TYPE), 'OFPBRC_BAD_TYPE');
    assert.equal(errorCodeName(OFPET.FLOW_MOD_FAILED, 2), 'OFPFMFC_BAD_TABLE_ID');
    assert.equal(errorCodeName(OFPET.BAD_MATCH, 9), 'OFPBMC_BAD_PREREQ');
    assert.equal(errorCodeName(OFPET.TABLE_FEATURES_FAILED, 5), 'OFPTFFC_EPERM');
    assert.equal(errorTypeName(0xffff), 'OFPET_EXPERIMENTER');
    assert.equal(errorTypeName(77), 'OFPET_UNKNOWN_77');
    assert.equal(errorCodeName(2, 99), 'OFPBAC_UNKNOWN_99');
  });

  it('echo request / reply', () => {
    roundTrip({ type: 'echo_request', xid: 0xdeadbeef, data: Buffer.from('ab') }, '04 02 000a deadbeef 6162');
    roundTrip({ type: 'echo_reply', xid: 1, data: Buffer.alloc(0) }, '04 03 0008 00000001');
  });

  it('experimenter message', () => {
    roundTrip(
      { type: 'experimenter', xid: 1, experimenter: 0x2320, expType: 20, data: hex('0102') },
      '04 04 0012 00000001 | 00002320 00000014 0102',
    );
  });

  it('features request / reply', () => {
    roundTrip({ type: 'features_request', xid: 5 }, '04 05 0008 00000005');
    roundTrip(
      { type: 'features_reply', xid: 5, datapathId: 0x0000aabbccddeeffn, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0x4f },
      '04 06 0020 00000005 | 0000aabbccddeeff 00000000 fe 00 0000 0000004f 00000000',
    );
  });

  it('get_config / set_config', () => {
    roundTrip({ type: 'get_config_request', xid: 1 }, '04 07 0008 00000001');
    roundTrip({ type: 'get_config_reply', xid: 1, flags: 0, missSendLen: 128 }, '04 08 000c 00000001 0000 0080');
    roundTrip({ type: 'set_config', xid: 2, flags: 0, missSendLen: 0xffff }, '04 09 000c 00000002 0000 ffff');
  });

  it('packet_out with an output action and data', () => {
    roundTrip(
      packetOut({ xid: 4, inPort: OFPP.CONTROLLER, actions: [{ type: 'output', port: 1, maxLen: 0xffff }], data: hex('01020304') }),
      '04 0d 002c 00000004 | ffffffff fffffffd 0010 000000000000 | 0000 0010 00000001 ffff 000000000000 | 01020304',
    );
  });

  it('packet_in', () => {
    roundTrip(
      {
        type: 'packet_in', xid: 0, bufferId: OFP_NO_BUFFER, totalLen: 4, reason: 0, tableId: 0, cookie: 0n,
        match: { inPort: 1 }, data: hex('deadbeef'),
      },
      '04 0a 002e 00000000 | ffffffff 0004 00 00 0000000000000000 | 0001 000c 80000004 00000001 00000000 | 0000 | deadbeef',
    );
  });

  it('flow_removed', () => {
    roundTrip(
      {
        type: 'flow_removed', xid: 0, cookie: 0x42n, priority: 100, reason: 2, tableId: 0, durationSec: 3, durationNsec: 5,
        idleTimeout: 10, hardTimeout: 0, packetCount: 7n, byteCount: 700n, match: { ethType: 0x0806 },
      },
      '04 0b 0040 00000000 | 0000000000000042 0064 02 00 00000003 00000005 000a 0000 0000000000000007 00000000000002bc' +
        '| 0001 000a 80000a02 0806 000000000000',
    );
  });

  it('port_status', () => {
    roundTrip(
      {
        type: 'port_status', xid: 0, reason: 0,
        port: {
          portNo: 1, hwAddr: 'aa:bb:cc:00:00:01', name: 'p1', config: 0, state: 4, curr: 0x840, advertised: 0, supported: 0,
          peer: 0, currSpeed: 10000000, maxSpeed: 0,
        },
      },
      '04 0c 0050 00000000 | 00 00000000000000 | 00000001 00000000 aabbcc000001 0000 70310000000000000000000000000000' +
        '| 00000000 00000004 00000840 00000000 00000000 00000000 00989680 00000000',
    );
  });

  it('flow_mod with every command', () => {
    const commands = ['add', 'modify', 'modify_strict', 'delete', 'delete_strict'] as const;
    commands.forEach((command, i) => {
      roundTrip(
        flowMod({ xid: 1, command, match: {}, instructions: [] }),
        `04 0e 0038 00000001 | 0000000000000000 0000000000000000 00 0${i} 0000 0000 8000 ffffffff ffffffff ffffffff 0000 0000` +
          '| 0001 0004 00000000',
      );
    });
  });

  it('flow_mod with cookie, timeouts, flags, match and instructions', () => {
    roundTrip(
      flowMod({
        xid: 2, cookie: 0x1122334455667788n, cookieMask: 0xffffffffffffffffn, tableId: 3, idleTimeout: 30, hardTimeout: 60,
        priority: 200, flags: OFPFF.SEND_FLOW_REM | OFPFF.CHECK_OVERLAP,
        match: { ethType: 0x0800, ipProto: 6, tcpDst: 80 },
        instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: 2, maxLen: 0 }] }, { type: 'goto_table', tableId: 4 }],
      }),
      '04 0e 0068 00000002 | 1122334455667788 ffffffffffffffff 03 00 001e 003c 00c8 ffffffff ffffffff ffffffff 0003 0000' +
        '| 0001 0015 80000a02 0800 80001401 06 80001c02 0050 000000' +
        '| 0004 0018 00000000 | 0000 0010 00000002 0000 000000000000' +
        '| 0001 0008 04 000000',
    );
  });

  it('flowMod() defaults', () => {
    assert.deepEqual(flowMod(), {
      type: 'flow_mod', xid: 0, cookie: 0n, cookieMask: 0n, tableId: 0, command: 'add', idleTimeout: 0, hardTimeout: 0,
      priority: 0x8000, bufferId: OFP_NO_BUFFER, outPort: OFPP.ANY, outGroup: 0xffffffff, flags: 0, match: {}, instructions: [],
    });
  });

  it('barrier request / reply', () => {
    roundTrip({ type: 'barrier_request', xid: 9 }, '04 14 0008 00000009');
    roundTrip({ type: 'barrier_reply', xid: 9 }, '04 15 0008 00000009');
  });

  it('role request / reply', () => {
    roundTrip({ type: 'role_request', xid: 1, role: 2, generationId: 5n }, '04 18 0018 00000001 00000002 00000000 0000000000000005');
    roundTrip({ type: 'role_reply', xid: 1, role: 3, generationId: 0n }, '04 19 0018 00000001 00000003 00000000 0000000000000000');
  });

  it('multipart requests: desc, port_desc, flow, aggregate, port_stats, table', () => {
    roundTrip({ type: 'multipart_request', xid: 1, flags: 0, body: { kind: 'desc' } }, '04 12 0010 00000001 0000 0000 00000000');
    roundTrip({ type: 'multipart_request', xid: 1, flags: 0, body: { kind: 'port_desc' } }, '04 12 0010 00000001 000d 0000 00000000');
    roundTrip({ type: 'multipart_request', xid: 1, flags: 0, body: { kind: 'table' } }, '04 12 0010 00000001 0003 0000 00000000');
    roundTrip(
      { type: 'multipart_request', xid: 1, flags: 0, body: { kind: 'port_stats', portNo: OFPP.ANY } },
      '04 12 0018 00000001 0004 0000 00000000 | ffffffff 00000000',
    );
    const flowReq = { tableId: 0xff, outPort: OFPP.ANY, outGroup: 0xffffffff, cookie: 0x10n, cookieMask: 0xffn, match: { inPort: 2 } };
    const flowReqHex = 'ff 000000 ffffffff ffffffff 00000000 0000000000000010 00000000000000ff | 0001 000c 80000004 00000002 00000000';
    roundTrip({ type: 'multipart_request', xid: 1, flags: 0, body: { kind: 'flow', ...flowReq } }, `04 12 0040 00000001 0001 0000 00000000 | ${flowReqHex}`);
    roundTrip({ type: 'multipart_request', xid: 1, flags: 0, body: { kind: 'aggregate', ...flowReq } }, `04 12 0040 00000001 0002 0000 00000000 | ${flowReqHex}`);
  });

  it('multipart replies: desc, flow, aggregate, port_desc', () => {
    const desc = { kind: 'desc', mfrDesc: 'Nicira, Inc.', hwDesc: 'Open vSwitch', swDesc: '3.1.0', serialNum: 'None', dpDesc: 'None' } as const;
    const d = encodeMessage({ type: 'multipart_reply', xid: 1, flags: 0, body: desc });
    assert.equal(d.length, 16 + 1056);
    assert.deepEqual(decodeMessage(d), { ok: true, value: { type: 'multipart_reply', xid: 1, flags: 0, body: desc } });

    roundTrip(
      {
        type: 'multipart_reply', xid: 2, flags: 0,
        body: {
          kind: 'flow',
          flows: [{
            tableId: 0, durationSec: 1, durationNsec: 2, priority: 10, idleTimeout: 0, hardTimeout: 0, flags: 0, cookie: 0n,
            packetCount: 3n, byteCount: 4n, match: {}, instructions: [{ type: 'clear_actions' }],
          }],
        },
      },
      '04 13 0050 00000002 0001 0000 00000000 | 0040 00 00 00000001 00000002 000a 0000 0000 0000 00000000' +
        '0000000000000000 0000000000000003 0000000000000004 | 0001 0004 00000000 | 0005 0008 00000000',
    );
    roundTrip(
      { type: 'multipart_reply', xid: 3, flags: 1, body: { kind: 'aggregate', packetCount: 1n, byteCount: 2n, flowCount: 3 } },
      '04 13 0028 00000003 0002 0001 00000000 | 0000000000000001 0000000000000002 00000003 00000000',
    );
    const port = {
      portNo: OFPP.LOCAL, hwAddr: '02:00:00:00:00:01', name: 'br0', config: 1, state: 1, curr: 0, advertised: 0, supported: 0,
      peer: 0, currSpeed: 0, maxSpeed: 0,
    };
    const pd = encodeMessage({ type: 'multipart_reply', xid: 4, flags: 0, body: { kind: 'port_desc', ports: [port, { ...port, portNo: 1, name: 'p1' }] } });
    assert.equal(pd.length, 16 + 128);
    assert.deepEqual(decodeMessage(pd), {
      ok: true,
      value: { type: 'multipart_reply', xid: 4, flags: 0, body: { kind: 'port_desc', ports: [port, { ...port, portNo: 1, name: 'p1' }] } },
    });
  });

  it('a flow whose actions cannot be decoded costs only that flow: kept without instructions, with the reason; the rest of the reply stands', () => {
    const base = { tableId: 1, durationSec: 1, durationNsec: 2, priority: 10, idleTimeout: 0, hardTimeout: 0, flags: 0, packetCount: 3n, byteCount: 4n, match: {} };
    const bad = { ...base, cookie: 1n, instructions: [{ type: 'apply_actions' as const, actions: [{ type: 'nx_reg_move' as const, src: { field: 'ctLabel' as const, ofs: 32, nBits: 48 }, dst: { field: 'ethDst' as const, ofs: 0, nBits: 48 } }] }] };
    const good = { ...base, cookie: 2n, instructions: [{ type: 'clear_actions' as const }] };
    const wire = encodeMessage({ type: 'multipart_reply', xid: 9, flags: 0, body: { kind: 'flow', flows: [bad, good] } }).toString('hex');
    // The move's destination becomes a field header no one knows.
    assert.equal(wire.split('80000606').length, 2);
    const r = decodeMessage(Buffer.from(wire.replace('80000606', '00ffee06'), 'hex'));
    assert.ok(r.ok, !r.ok ? r.error.message : '');
    const flows = r.ok && r.value.type === 'multipart_reply' && r.value.body.kind === 'flow' ? r.value.body.flows : [];
    assert.equal(flows.length, 2);
    assert.deepEqual([flows[0]!.cookie, flows[0]!.instructions], [1n, []]);
    assert.match(flows[0]!.undecodable ?? '', /unknown field 0xffee06/);
    assert.deepEqual(flows[1], good);
  });

  it('multipart of an unmodelled type passes through as unknown', () => {
    roundTrip(
      { type: 'multipart_reply', xid: 1, flags: 0, body: { kind: 'unknown', mpType: OFPMP.TABLE_FEATURES, data: hex('0102030405060708') } },
      '04 13 0018 00000001 000c 0000 00000000 0102030405060708',
    );
  });

  it('unknown message types decode to {type: unknown}', () => {
    roundTrip({ type: 'unknown', xid: 1, msgType: 29, body: hex('00010203') }, '04 1d 000c 00000001 00010203');
    roundTrip({ type: 'unknown', xid: 1, msgType: 200, body: Buffer.alloc(0) }, '04 c8 0008 00000001');
  });

  describe('decode errors', () => {
    const cases: Array<[string, string, string]> = [
      ['short header', '04 00 00', 'truncated'],
      ['length < 8', '04 00 0004 00000001', 'bad_length'],
      ['length > buffer', '04 02 0010 00000001 00', 'truncated'],
      ['trailing bytes after message', '04 14 0008 00000001 00', 'bad_length'],
      ['wrong version', '01 14 0008 00000001', 'bad_version'],
      ['features_reply too short', '04 06 0010 00000001 0000000000000001', 'truncated'],
      ['barrier with a body', '04 14 000c 00000001 00000000', 'bad_length'],
      ['flow_mod bad command', '04 0e 0038 00000001 0000000000000000 0000000000000000 00 09 0000 0000 8000 ffffffff ffffffff ffffffff 0000 0000 0001 0004 00000000', 'bad_value'],
      ['match length < 4', '04 0e 0038 00000001 0000000000000000 0000000000000000 00 00 0000 0000 8000 ffffffff ffffffff ffffffff 0000 0000 0001 0000 00000000', 'bad_length'],
      ['match type standard', '04 0e 0038 00000001 0000000000000000 0000000000000000 00 00 0000 0000 8000 ffffffff ffffffff ffffffff 0000 0000 0000 0004 00000000', 'unsupported'],
      ['instruction length 0', '04 0e 0040 00000001 0000000000000000 0000000000000000 00 00 0000 0000 8000 ffffffff ffffffff ffffffff 0000 0000 0001 0004 00000000 0004 0000 00000000', 'bad_length'],
      ['action length 0 in packet_out', '04 0d 0020 00000004 ffffffff fffffffd 0008 000000000000 0000 0000 00000001', 'bad_length'],
      ['actions_len beyond message', '04 0d 0018 00000004 ffffffff fffffffd 0010 000000000000', 'truncated'],
      ['experimenter error without id', '04 01 000c 00000001 ffff 0001', 'truncated'],
    ];
    for (const [name, bytes, kind] of cases) {
      it(name, () => {
        const r = decodeMessage(hex(bytes));
        assert.equal(r.ok, false, `expected an error, got ${JSON.stringify(r.ok && r.value.type)}`);
        assert.equal(!r.ok && r.error.kind, kind, !r.ok ? r.error.message : '');
      });
    }

    it('a non-Buffer does not throw', () => {
      assert.equal(decodeMessage(undefined as unknown as Buffer).ok, false);
    });
  });

  describe('splitMessages', () => {
    const a = hex('04 14 0008 00000001');
    const b = hex('04 02 000a 00000002 6162');
    it('splits whole messages and keeps the partial tail', () => {
      const r = splitMessages(Buffer.concat([a, b, b.subarray(0, 5)]));
      assert.ok(r.ok);
      assert.deepEqual(r.value.messages.map((m) => m.toString('hex')), [a.toString('hex'), b.toString('hex')]);
      assert.equal(r.value.rest.toString('hex'), b.subarray(0, 5).toString('hex'));
    });
    it('keeps an incomplete body as rest', () => {
      const r = splitMessages(b.subarray(0, 9));
      assert.ok(r.ok);
      assert.equal(r.value.messages.length, 0);
      assert.equal(r.value.rest.length, 9);
    });
    it('errors on a header length < 8 (cannot make progress)', () => {
      const r = splitMessages(Buffer.concat([a, hex('04 00 0000 00000000')]));
      assert.equal(r.ok, false);
      assert.equal(!r.ok && r.error.kind, 'bad_length');
      assert.equal(!r.ok && r.error.offset, 10);
    });
    it('empty input', () => {
      assert.deepEqual(splitMessages(Buffer.alloc(0)), { ok: true, value: { messages: [], rest: Buffer.alloc(0) } });
    });
  });

  describe('encode errors are typed', () => {
    it('rejects out-of-range numbers and bad addresses', () => {
      assert.throws(() => encodeMessage(flowMod({ priority: 70000 })), { name: 'OfpEncodeError' });
      assert.throws(() => encodeMessage(flowMod({ match: { ipv4Dst: '10.0.0.256' } })), { name: 'OfpEncodeError' });
      assert.throws(() => encodeMessage(flowMod({ match: { ethDst: 'aa:bb' } })), { name: 'OfpEncodeError' });
      assert.throws(() => encodeMessage(flowMod({ match: { ipv4_dst: '1.2.3.4' } as never })), /unknown field "ipv4_dst"/);
      assert.throws(() => encodeMessage(flowMod({ match: { tcpDst: { value: 1, mask: 1 } as never } })), /mask/);
      assert.throws(() => encodeMessage({ type: 'nope', xid: 0 } as never), { name: 'OfpEncodeError' });
      assert.throws(() => encodeMessage(packetOut({ data: Buffer.alloc(70000) })), /65535/);
    });
  });
});

describe('NXT_CT_FLUSH (ct-flush.ts)', () => {
  const cases: Array<[string, CtFlush]> = [
    ['a TCP connection in a zone (IPv4, mapped)', { zone: 29805, ipProto: 6, orig: { src: '10.0.0.3', dst: '10.0.0.1', srcPort: 40000, dstPort: 5001 } }],
    ['IPv6, both tuples, partial', { ipProto: 6, orig: { src: 'fd00::3', dstPort: 80 }, reply: { dst: 'fd00::3' } }],
    ['a whole zone', { zone: 7, ipProto: 0 }],
  ];
  for (const [name, f] of cases) {
    it(`round trip through an experimenter message: ${name}`, () => {
      const bytes = encodeMessage({ ...ctFlushMessage(f), xid: 9 });
      const m = decodeMessage(bytes);
      assert.ok(m.ok && m.value.type === 'experimenter');
      assert.deepEqual([m.value.experimenter, m.value.expType], [0x2320, NXT_CT_FLUSH]);
      assert.equal(bytes.length % 8, 0, 'properties padded to 8 bytes');
      assert.deepEqual(decodeCtFlush(m.value.data), { ok: true, value: f });
    });
  }

  it('bad input: a clear error, never a throw', () => {
    const good = encodeCtFlush(cases[0]![1]);
    const bad: Array<[string, Buffer, RegExp]> = [
      ['truncated header', good.subarray(0, 5), /truncated|need/i],
      ['padding not zero', Buffer.concat([Buffer.from([6, 1]), good.subarray(2)]), /padding/],
      ['property length shorter than its header', Buffer.concat([good.subarray(0, 8), Buffer.from([0, 2, 0, 2, 0, 0, 0, 0])]), /length 2/],
      ['a zone of 4 bytes', Buffer.concat([good.subarray(0, 8), Buffer.from([0, 2, 0, 8, 0, 0, 0, 1])]), /zone of 4 bytes/],
      ['an unknown property', Buffer.concat([good.subarray(0, 8), Buffer.from([0, 9, 0, 4, 0, 0, 0, 0])]), /unknown ct_flush property 9/],
      ['a property past the end', Buffer.concat([good.subarray(0, 8), Buffer.from([0, 2, 0, 40, 0, 0])]), /truncated|need/i],
    ];
    for (const [what, b, re] of bad) {
      const r = decodeCtFlush(b);
      assert.ok(!r.ok, what);
      assert.match(r.error.message, re, what);
    }
    assert.throws(() => encodeCtFlush({ ipProto: 6, orig: { src: '10.0.0.300' } }), { name: 'OfpEncodeError' });
    assert.throws(() => encodeCtFlush({ ipProto: 6, orig: { dstPort: 70000 } }), /dstPort/);
    assert.throws(() => encodeCtFlush({ ipProto: 6, zone: -1 }), /zone/);
  });
});
