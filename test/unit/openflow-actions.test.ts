// Actions, Nicira extension actions and instructions: exact TLV bytes and decode back.
import assert from 'node:assert/strict';
import {
  decodeActions, decodeInstructions, encodeActions, encodeInstructions, seqShiftAction, OFPP,
  type Action, type Instruction,
} from '../../controller/openflow/index.ts';

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/[\s|]/g, ''), 'hex');
}

const ACTIONS: Array<[Action, string]> = [
  [{ type: 'output', port: 1, maxLen: 0xffff }, '0000 0010 00000001 ffff 000000000000'],
  [{ type: 'output', port: OFPP.CONTROLLER, maxLen: 128 }, '0000 0010 fffffffd 0080 000000000000'],
  [{ type: 'copy_ttl_out' }, '000b 0008 00000000'],
  [{ type: 'copy_ttl_in' }, '000c 0008 00000000'],
  [{ type: 'set_mpls_ttl', ttl: 9 }, '000f 0008 09 000000'],
  [{ type: 'dec_mpls_ttl' }, '0010 0008 00000000'],
  [{ type: 'push_vlan', ethType: 0x8100 }, '0011 0008 8100 0000'],
  [{ type: 'pop_vlan' }, '0012 0008 00000000'],
  [{ type: 'push_mpls', ethType: 0x8847 }, '0013 0008 8847 0000'],
  [{ type: 'pop_mpls', ethType: 0x0800 }, '0014 0008 0800 0000'],
  [{ type: 'set_queue', queueId: 7 }, '0015 0008 00000007'],
  [{ type: 'group', groupId: 5 }, '0016 0008 00000005'],
  [{ type: 'set_nw_ttl', ttl: 64 }, '0017 0008 40 000000'],
  [{ type: 'dec_nw_ttl' }, '0018 0008 00000000'],
  [{ type: 'set_field', field: { ipv4Dst: '10.0.0.3' } }, '0019 0010 80001804 0a000003 00000000'],
  [{ type: 'set_field', field: { ethDst: '00:00:00:00:00:03' } }, '0019 0010 80000606 000000000003 0000'],
  [{ type: 'set_field', field: { tcpDst: 8080 } }, '0019 0010 80001c02 1f90 000000000000'],
  [{ type: 'set_field', field: { metadata: 1n } }, '0019 0010 80000408 0000000000000001'],
  [{ type: 'push_pbb', ethType: 0x88e7 }, '001a 0008 88e7 0000'],
  [{ type: 'pop_pbb' }, '001b 0008 00000000'],
  [{ type: 'experimenter', experimenter: 0x00001234, data: hex('0102030405060708') }, 'ffff 0010 00001234 0102030405060708'],
  // Nicira seq/ack shifts (ovs-patch/): type 0xffff, len 16, vendor 0x2320, subtype, pad 2, u32 delta.
  [{ type: 'nx_inc_tcp_seq', delta: 5 }, 'ffff 0010 00002320 0050 0000 00000005'],
  [{ type: 'nx_dec_tcp_seq', delta: 0x12345678 }, 'ffff 0010 00002320 0051 0000 12345678'],
  [{ type: 'nx_inc_tcp_ack', delta: 0xffffffff }, 'ffff 0010 00002320 0052 0000 ffffffff'],
  [{ type: 'nx_dec_tcp_ack', delta: 1 }, 'ffff 0010 00002320 0053 0000 00000001'],
  [{ type: 'nx_resubmit', inPort: 3 }, 'ffff 0010 00002320 0001 0003 00000000'],
  [{ type: 'nx_resubmit', inPort: OFPP.IN_PORT, tableId: 2 }, 'ffff 0010 00002320 000e fff8 02 000000'],
  // NXAST_NOTE: payload padded with zeros to a multiple of 8 (16 bytes at least), as OVS does.
  [{ type: 'nx_note', data: hex('616263000000') }, 'ffff 0010 00002320 0008 616263000000'],
  [{ type: 'nx_note', data: hex('0102030405060708 000000000000') }, 'ffff 0018 00002320 0008 0102030405060708 000000000000'],
  // NXAST_CT (35): flags, zone_src 0 (immediate zone), zone, recirc table (0xff: none), pad 3, alg, then nested actions.
  [{ type: 'nx_ct', zone: 9, table: 1 }, 'ffff 0018 00002320 0023 0000 00000000 0009 01 000000 0000'],
  [
    { type: 'nx_ct', zone: 77, commit: true, actions: [{ type: 'set_field', field: { ctMark: 1 } }, { type: 'set_field', field: { ctLabel: 0x30002n } }] },
    'ffff 0040 00002320 0023 0001 00000000 004d ff 000000 0000 | 0019 0010 0001d604 00000001 00000000 | 0019 0018 0001d810 00000000000000000000000000030002',
  ],
  [{ type: 'nx_ct', zone: 1, force: true, commit: true, alg: 21 }, 'ffff 0018 00002320 0023 0003 00000000 0001 ff 000000 0015'],
  // NXAST_OUTPUT_REG (15): ofs_nbits = ofs << 6 | (n_bits - 1), the source field's NXM header, max_len, 6 zeros.
  [{ type: 'nx_output_reg', field: 'ctLabel', ofs: 16, nBits: 16 }, 'ffff 0018 00002320 000f 040f 0001d810 0000 000000000000'],
  [{ type: 'nx_output_reg', field: 'ctMark', ofs: 0, nBits: 16, maxLen: 128 }, 'ffff 0018 00002320 000f 000f 0001d604 0080 000000000000'],
  // The shifts with the delta from a field (ovs-patch 0008, subtypes 84-87): ofs_nbits, the source's NXM header, 8 zeros.
  [{ type: 'nx_inc_tcp_seq_reg', field: 'ctLabel', ofs: 32, nBits: 32 }, 'ffff 0018 00002320 0054 081f 0001d810 0000000000000000'],
  [{ type: 'nx_dec_tcp_seq_reg', field: 'ctLabel', ofs: 0, nBits: 32 }, 'ffff 0018 00002320 0055 001f 0001d810 0000000000000000'],
  [{ type: 'nx_inc_tcp_ack_reg', field: 'ctMark', ofs: 0, nBits: 32 }, 'ffff 0018 00002320 0056 001f 0001d604 0000000000000000'],
  [{ type: 'nx_dec_tcp_ack_reg', field: 'ctMark', ofs: 4, nBits: 8 }, 'ffff 0018 00002320 0057 0107 0001d604 0000000000000000'],
  // NXAST_REG_MOVE (6): n_bits, src_ofs, dst_ofs, the two fields' headers (an OXM one for eth_dst).
  [{ type: 'nx_reg_move', src: { field: 'ctLabel', ofs: 32, nBits: 48 }, dst: { field: 'ethDst', ofs: 0, nBits: 48 } }, 'ffff 0018 00002320 0006 0030 0020 0000 0001d810 80000606'],
  // NXAST_NAT (36): pad 2, flags, range_present, the ranges present, zeros to a multiple of 8.
  [{ type: 'nx_nat' }, 'ffff 0010 00002320 0024 0000 0000 0000'],
  [{ type: 'nx_nat', kind: 'dst', ipMin: '10.0.0.3', portMin: 5001 }, 'ffff 0018 00002320 0024 0000 0002 0011 0a000003 1389 0000'],
  [{ type: 'nx_nat', kind: 'src', ipMin: '10.0.0.5', ipMax: '10.0.0.9', portMin: 1000, portMax: 2000, persistent: true, random: true }, 'ffff 0020 00002320 0024 0000 0015 0033 0a000005 0a000009 03e8 07d0 00000000'],
  [{ type: 'nx_nat', kind: 'dst', ipMin: 'fd00::3', portMin: 443 }, 'ffff 0028 00002320 0024 0000 0002 0014 fd000000000000000000000000000003 01bb 000000000000'],
];

describe('openflow codec: actions', () => {
  for (const [action, bytes] of ACTIONS) {
    it(`${action.type} ${JSON.stringify(action, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`, () => {
      const enc = encodeActions([action]);
      assert.equal(enc.toString('hex'), hex(bytes).toString('hex'));
      assert.deepEqual(decodeActions(enc), { ok: true, value: [action] });
    });
  }

  it('a move read back from OVS names eth_src/eth_dst by their NXM_0 headers: decoded to the same fields', () => {
    const fromOvs = hex('ffff 0018 00002320 0006 0030 0050 0000 0001d810 00000406 | ffff 0018 00002320 0006 0030 0020 0000 0001d810 00000206');
    assert.deepEqual(decodeActions(fromOvs), { ok: true, value: [
      { type: 'nx_reg_move', src: { field: 'ctLabel', ofs: 80, nBits: 48 }, dst: { field: 'ethSrc', ofs: 0, nBits: 48 } },
      { type: 'nx_reg_move', src: { field: 'ctLabel', ofs: 32, nBits: 48 }, dst: { field: 'ethDst', ofs: 0, nBits: 48 } },
    ] });
  });

  it('output defaults maxLen to OFPCML_NO_BUFFER', () => {
    assert.equal(encodeActions([{ type: 'output', port: 2 }]).toString('hex'), '0000001000000002ffff000000000000');
  });

  it('a short note is padded on the wire and decodes with its padding', () => {
    assert.equal(encodeActions([{ type: 'nx_note', data: hex('6162') }]).toString('hex'), 'ffff0010000023200008616200000000');
  });

  it('unknown NX subtypes and unknown action types are kept, not errors', () => {
    const nxOther = hex('ffff 0010 00002320 0063 616263000000');
    assert.deepEqual(decodeActions(nxOther), { ok: true, value: [{ type: 'experimenter', experimenter: 0x2320, data: hex('0063616263000000') }] });
    const unknown = hex('0063 0008 01020304');
    assert.deepEqual(decodeActions(unknown), { ok: true, value: [{ type: 'unknown', actionType: 0x63, data: hex('01020304') }] });
    assert.equal(encodeActions([{ type: 'unknown', actionType: 0x63, data: hex('01020304') }]).toString('hex'), unknown.toString('hex'));
  });

  it('experimenter data is zero-padded to 8 bytes', () => {
    assert.equal(encodeActions([{ type: 'experimenter', experimenter: 1, data: hex('aa') }]).toString('hex'), 'ffff001000000001aa00000000000000');
  });

  describe('errors', () => {
    const cases: Array<[string, string, string]> = [
      ['length 0', '0000 0000 00000001', 'bad_length'],
      ['length not a multiple of 8', '0000 000c 00000001 ffff0000', 'bad_length'],
      ['length past the end', '0000 0010 00000001', 'truncated'],
      ['output too long', '0000 0018 00000001 ffff 000000000000 0000000000000000', 'bad_length'],
      ['NX seq action with the wrong length', 'ffff 0018 00002320 0050 0000 00000005 0000000000000000', 'bad_length'],
      ['set_field with a truncated OXM', '0019 0008 80001804', 'truncated'],
      ['NX ct shorter than its fixed part', 'ffff 0010 00002320 0023 0000 00000000', 'bad_length'],
      ['NX ct with a zone from a field (not supported)', 'ffff 0018 00002320 0023 0000 0001d402 000f ff 000000 0000', 'bad_value'],
      ['NX ct with a bad nested action', 'ffff 0020 00002320 0023 0000 00000000 0009 ff 000000 0000 | 0000 0000 00000000', 'bad_length'],
      ['NX output_reg from an unknown field', 'ffff 0018 00002320 000f 000f 00ffee04 0000 000000000000', 'bad_value'],
      ['NX shift from a field wider than 32 bits', 'ffff 0018 00002320 0054 0020 0001d810 0000000000000000', 'bad_value'],
      ['NX shift from a field with reserved bytes set', 'ffff 0018 00002320 0054 001f 0001d810 0000000000000001', 'bad_value'],
      ['NX shift from an unknown field', 'ffff 0018 00002320 0056 001f 00ffee04 0000000000000000', 'bad_value'],
      ['NX move of the wrong length', 'ffff 0020 00002320 0006 0030 0020 0000 0001d810 80000606 00000000 00000000', 'bad_length'],
      ['NX nat with both src and dst', 'ffff 0010 00002320 0024 0000 0003 0000', 'bad_value'],
      ['NX nat whose ranges run past its length', 'ffff 0010 00002320 0024 0000 0002 0004 0000', 'truncated'],
    ];
    for (const [name, bytes, kind] of cases) {
      it(name, () => {
        const r = decodeActions(hex(bytes));
        assert.equal(r.ok, false);
        assert.equal(!r.ok && r.error.kind, kind, !r.ok ? r.error.message : '');
      });
    }
    it('set_field needs exactly one field', () => {
      assert.throws(() => encodeActions([{ type: 'set_field', field: { ipv4Dst: '1.2.3.4', tcpDst: 1 } }]), /exactly one/);
      assert.throws(() => encodeActions([{ type: 'set_field', field: {} }]), /exactly one/);
    });
    it('NX output_reg takes a port-sized range inside a known field; NX ct a real table', () => {
      assert.throws(() => encodeActions([{ type: 'nx_output_reg', field: 'ctMark', ofs: 0, nBits: 17 }]), /not a port number/);
      assert.throws(() => encodeActions([{ type: 'nx_output_reg', field: 'ctMark', ofs: 20, nBits: 16 }]), /not a port number/);
      assert.throws(() => encodeActions([{ type: 'nx_output_reg', field: 'nope' as 'ctMark', ofs: 0, nBits: 16 }]), /unknown field/);
      assert.throws(() => encodeActions([{ type: 'nx_ct', zone: 1, table: 255 }]), /not a table/);
      assert.throws(() => encodeActions([{ type: 'nx_ct', zone: 0x10000 }]), { name: 'OfpEncodeError' });
    });
    it('NX shifts from a field take at most 32 bits inside the field; move the same width both sides; nat a consistent range', () => {
      assert.throws(() => encodeActions([{ type: 'nx_inc_tcp_seq_reg', field: 'ctLabel', ofs: 0, nBits: 33 }]), /at most 32 bits/);
      assert.throws(() => encodeActions([{ type: 'nx_inc_tcp_seq_reg', field: 'ctMark', ofs: 8, nBits: 32 }]), /at most 32 bits/);
      assert.throws(() => encodeActions([{ type: 'nx_reg_move', src: { field: 'ctMark', ofs: 0, nBits: 8 }, dst: { field: 'ethDst', ofs: 0, nBits: 16 } }]), /8 source bits into 16/);
      assert.throws(() => encodeActions([{ type: 'nx_nat', ipMin: '10.0.0.1' }]), /needs kind/);
      assert.throws(() => encodeActions([{ type: 'nx_nat', kind: 'dst', ipMin: '10.0.0.1', ipMax: 'fd00::1' }]), /different families/);
      assert.throws(() => encodeActions([{ type: 'nx_nat', kind: 'dst', portMin: 80 }]), /needs an address/);
      assert.throws(() => encodeActions([{ type: 'nx_nat', kind: 'dst', ipMin: '10.0.0.1', portMin: 0 }]), /not a port/);
    });
    it('NX resubmit port must fit 16 bits', () => {
      assert.throws(() => encodeActions([{ type: 'nx_resubmit', inPort: 0x10000 }]), { name: 'OfpEncodeError' });
    });
  });
});

describe('openflow codec: seqShiftAction', () => {
  const cases: Array<['seq' | 'ack', number, Action]> = [
    ['seq', 0, { type: 'nx_inc_tcp_seq', delta: 0 }],
    ['seq', 5, { type: 'nx_inc_tcp_seq', delta: 5 }],
    ['seq', -5, { type: 'nx_dec_tcp_seq', delta: 5 }],
    ['seq', 2 ** 32 - 5, { type: 'nx_dec_tcp_seq', delta: 5 }],
    ['ack', 2 ** 31, { type: 'nx_inc_tcp_ack', delta: 2 ** 31 }],
    ['ack', 2 ** 31 + 1, { type: 'nx_dec_tcp_ack', delta: 2 ** 31 - 1 }],
    ['ack', 2 ** 32 + 7, { type: 'nx_inc_tcp_ack', delta: 7 }],
    ['ack', 2 ** 32, { type: 'nx_inc_tcp_ack', delta: 0 }],
  ];
  for (const [kind, delta, expected] of cases) {
    it(`${kind} ${delta}`, () => assert.deepEqual(seqShiftAction(kind, delta), expected));
  }
  it('inc d and dec (2^32 - d) are the same arithmetic', () => {
    for (const d of [1, 1000, 2 ** 31 - 1, 2 ** 31 + 1, 2 ** 32 - 1, 123456789]) {
      const a = seqShiftAction('seq', d) as { type: string; delta: number };
      const applied = a.type.includes('inc') ? (d - a.delta) % 2 ** 32 : (d + a.delta) % 2 ** 32;
      assert.equal(applied, 0);
      assert.ok(a.delta <= 2 ** 31);
    }
  });
  it('rejects a non-integer delta', () => {
    assert.throws(() => seqShiftAction('seq', 1.5), { name: 'OfpEncodeError' });
  });
});

const INSTRUCTIONS: Array<[Instruction, string]> = [
  [{ type: 'goto_table', tableId: 1 }, '0001 0008 01 000000'],
  [{ type: 'write_metadata', metadata: 0xabn, mask: 0xffn }, '0002 0018 00000000 00000000000000ab 00000000000000ff'],
  [{ type: 'write_actions', actions: [{ type: 'output', port: 1, maxLen: 0 }] }, '0003 0018 00000000 0000 0010 00000001 0000 000000000000'],
  [{ type: 'apply_actions', actions: [] }, '0004 0008 00000000'],
  [
    { type: 'apply_actions', actions: [{ type: 'dec_nw_ttl' }, { type: 'output', port: 2, maxLen: 0xffff }] },
    '0004 0020 00000000 0018 0008 00000000 0000 0010 00000002 ffff 000000000000',
  ],
  [{ type: 'clear_actions' }, '0005 0008 00000000'],
  [{ type: 'meter', meterId: 3 }, '0006 0008 00000003'],
  [{ type: 'experimenter', experimenter: 0x2320, data: hex('01020304') }, 'ffff 000c 00002320 01020304'.replace('000c', '0010') + '00000000'],
];

describe('openflow codec: instructions', () => {
  for (const [instr, bytes] of INSTRUCTIONS.slice(0, -1)) {
    it(`${instr.type} ${JSON.stringify(instr, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`, () => {
      const enc = encodeInstructions([instr]);
      assert.equal(enc.toString('hex'), hex(bytes).toString('hex'));
      assert.deepEqual(decodeInstructions(enc), { ok: true, value: [instr] });
    });
  }
  it('experimenter instruction is padded to 8', () => {
    const [instr, bytes] = INSTRUCTIONS.at(-1)!;
    assert.equal(encodeInstructions([instr]).toString('hex'), hex(bytes).toString('hex'));
    assert.deepEqual(decodeInstructions(hex(bytes)), { ok: true, value: [{ type: 'experimenter', experimenter: 0x2320, data: hex('0102030400000000') }] });
  });
  it('unknown instruction types are kept', () => {
    assert.deepEqual(decodeInstructions(hex('0007 0008 00000009')), { ok: true, value: [{ type: 'unknown', instrType: 7, data: hex('00000009') }] });
  });
  it('errors: zero length, bad nested action length, overlong goto_table', () => {
    for (const [bytes, kind] of [
      ['0001 0000 01000000', 'bad_length'],
      ['0004 0010 00000000 0000 0000 00000000', 'bad_length'],
      ['0001 0010 01000000 0000000000000000', 'bad_length'],
      ['0004 0018 00000000 0000 0010 00000001', 'truncated'],
    ] as const) {
      const r = decodeInstructions(hex(bytes));
      assert.equal(r.ok, false, bytes);
      assert.equal(!r.ok && r.error.kind, kind, bytes);
    }
  });
});
