// Decode bytes captured from real OVS 3.1 (ovs-ofctl and ovs-vswitchd, see
// test/integration/ofp-crosscheck-decode.test.ts; regenerate with OFP_UPDATE_FIXTURES=1).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ofctlFlowModAdd } from '../fixtures/ovs-captured/expected.ts';
import {
  decodeMessage, encodeMessage, errorCodeName, errorTypeName, flowMod, OFP_NO_BUFFER, OFPCML_NO_BUFFER, OFPFF, OFPP, OFPR, OFPRR,
  type MessageOf, type OfpMessage, type OfpMessageType,
} from '../../controller/openflow/index.ts';

const DIR = new URL('../fixtures/ovs-captured/', import.meta.url);

function load(name: string): Buffer {
  return Buffer.from(readFileSync(new URL(`${name}.hex`, DIR), 'utf8').trim(), 'hex');
}

function decode<T extends OfpMessageType>(name: string, type: T): MessageOf<T> {
  const raw = load(name);
  const r = decodeMessage(raw);
  assert.ok(r.ok, r.ok ? '' : `${name}: ${r.error.kind} ${r.error.message}`);
  assert.equal(r.value.type, type);
  // Our encoding of what we decoded must mean the same thing (OVS orders OXMs differently, so
  // bytes can differ only in TLV order; messages without a match must be byte-identical).
  const again = encodeMessage(r.value);
  assert.deepEqual(decodeMessage(again), r);
  if (!('match' in r.value) && !(r.value.type === 'multipart_reply' && r.value.body.kind === 'flow') && !(r.value.type === 'multipart_request' && r.value.body.kind === 'flow')) {
    assert.equal(again.toString('hex'), raw.toString('hex'));
  }
  return r.value as MessageOf<T>;
}

const tcpMatch = { ethType: 0x800, ipProto: 6, ipv4Dst: '10.0.0.2', tcpDst: 80, tcpFlags: { value: 0x002, mask: 0x012 } };

describe('openflow codec: messages captured from OVS 3.1', () => {
  describe('from ovs-ofctl', () => {
    it('hello', () => {
      assert.deepEqual(decode('ofctl-hello', 'hello'), { type: 'hello', xid: 1, versions: [4] });
    });

    it('flow_mod add (tcp_flags as ONF experimenter OXM)', () => {
      const m = decode('ofctl-flow-mod-add', 'flow_mod');
      assert.deepEqual(m, ofctlFlowModAdd(6));
    });

    it('flow_mod modify', () => {
      const m = decode('ofctl-flow-mod-modify', 'flow_mod');
      assert.equal(m.command, 'modify');
      assert.equal(m.cookieMask, 0xffffffffffffffffn);
      assert.deepEqual(m.match, { ethType: 0x800, ipProto: 6, tcpDst: 80 });
    });

    it('flow_mod delete_strict', () => {
      const m = decode('ofctl-flow-mod-delete-strict', 'flow_mod');
      assert.deepEqual(m, flowMod({ xid: 6, command: 'delete_strict', tableId: 0xff, priority: 5, outPort: 3, match: { ethType: 0x800, ipProto: 6, ipv4Dst: '10.0.0.2' } }));
    });

    it('packet_out', () => {
      const m = decode('ofctl-packet-out', 'packet_out');
      assert.equal(m.inPort, 1);
      assert.equal(m.bufferId, OFP_NO_BUFFER);
      assert.deepEqual(m.actions, [{ type: 'set_field', field: { ipv4Dst: '10.0.0.9' } }, { type: 'output', port: 2, maxLen: 0 }]);
      assert.equal(m.data.length, 34);
    });

    it('multipart flow request', () => {
      const m = decode('ofctl-multipart-flow-request', 'multipart_request');
      assert.deepEqual(m.body, { kind: 'flow', tableId: 0xff, outPort: OFPP.ANY, outGroup: 0xffffffff, cookie: 0n, cookieMask: 0n, match: { ethType: 0x800, ipProto: 6, ipv4Dst: '10.0.0.2' } });
    });
  });

  describe('from ovs-vswitchd', () => {
    it('hello', () => {
      assert.deepEqual(decode('vswitchd-hello', 'hello'), { type: 'hello', xid: 1, versions: [4] });
    });

    it('features_reply', () => {
      assert.deepEqual(decode('vswitchd-features-reply', 'features_reply'), {
        type: 'features_reply', xid: 102, datapathId: 0xabcn, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0x4f,
      });
    });

    it('echo_reply', () => {
      assert.equal(decode('vswitchd-echo-reply', 'echo_reply').data.toString(), 'tcp-migrate echo');
    });

    it('barrier_reply', () => {
      assert.deepEqual(decode('vswitchd-barrier-reply', 'barrier_reply'), { type: 'barrier_reply', xid: 110 });
    });

    it('desc reply', () => {
      assert.deepEqual(decode('vswitchd-desc-reply', 'multipart_reply').body, {
        kind: 'desc', mfrDesc: 'Nicira, Inc.', hwDesc: 'Open vSwitch', swDesc: '3.1.0', serialNum: 'None', dpDesc: 'None',
      });
    });

    it('port_desc reply', () => {
      const m = decode('vswitchd-port-desc-reply', 'multipart_reply');
      assert.equal(m.body.kind, 'port_desc');
      if (m.body.kind !== 'port_desc') return;
      assert.equal(m.body.ports.length, 1);
      assert.equal(m.body.ports[0]!.portNo, OFPP.LOCAL);
      assert.match(m.body.ports[0]!.name, /^tmtx\d+$/);
      assert.equal(m.body.ports[0]!.currSpeed, 10000000);
    });

    it('port_status (add)', () => {
      const m = decode('vswitchd-port-status-add', 'port_status');
      assert.equal(m.reason, 0);
      assert.equal(m.port.portNo, 5);
      assert.match(m.port.name, /^tmtp\d+$/);
      assert.match(m.port.hwAddr, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    });

    it('packet_in after packet-out (reason ACTION at OF1.3)', () => {
      const m = decode('vswitchd-packet-in', 'packet_in');
      assert.deepEqual({ ...m, data: m.data.length }, {
        type: 'packet_in', xid: 0, bufferId: OFP_NO_BUFFER, totalLen: 46, reason: OFPR.ACTION, tableId: 0, cookie: 0n, match: { inPort: 5 }, data: 46,
      });
    });

    it('packet_in for real traffic (table miss, reason NO_MATCH)', () => {
      const m = decode('vswitchd-packet-in-arp', 'packet_in');
      assert.equal(m.reason, OFPR.NO_MATCH);
      assert.deepEqual(m.match, { inPort: 6 });
      assert.equal(m.totalLen, 42);
      assert.equal(m.data.readUInt16BE(12), 0x0806);
    });

    it('flow stats reply', () => {
      const m = decode('vswitchd-flow-stats-reply', 'multipart_reply');
      assert.equal(m.body.kind, 'flow');
      if (m.body.kind !== 'flow') return;
      const [f] = m.body.flows;
      assert.deepEqual({ ...f!, durationNsec: 0 }, {
        tableId: 0, durationSec: 0, durationNsec: 0, priority: 100, idleTimeout: 300, hardTimeout: 0, flags: OFPFF.SEND_FLOW_REM, cookie: 0x77n,
        packetCount: 0n, byteCount: 0n, match: tcpMatch,
        instructions: [{ type: 'apply_actions', actions: [{ type: 'set_field', field: { ipv4Dst: '10.0.0.3' } }, { type: 'output', port: 5, maxLen: OFPCML_NO_BUFFER }] }],
      });
    });

    it('flow_removed', () => {
      const m = decode('vswitchd-flow-removed', 'flow_removed');
      assert.deepEqual({ ...m, durationNsec: 0 }, {
        type: 'flow_removed', xid: 0, cookie: 0x77n, priority: 100, reason: OFPRR.DELETE, tableId: 0, durationSec: 0, durationNsec: 0,
        idleTimeout: 300, hardTimeout: 0, packetCount: 0n, byteCount: 0n, match: tcpMatch,
      });
    });

    it('error for the seq-action probe on stock OVS', () => {
      const m = decode('vswitchd-error-nx-seq-unsupported', 'error');
      assert.equal(`${errorTypeName(m.errType)}/${errorCodeName(m.errType, m.code)}`, 'OFPET_BAD_ACTION/OFPBAC_BAD_EXP_TYPE');
    });

    it('flow stats reply from patched OVS with the four Nicira seq/ack actions', () => {
      const m = decode('patched-flow-stats-reply-nx-seq', 'multipart_reply');
      assert.equal(m.body.kind, 'flow');
      if (m.body.kind !== 'flow') return;
      assert.deepEqual(m.body.flows[0]!.instructions, [{
        type: 'apply_actions',
        actions: [
          { type: 'nx_inc_tcp_seq', delta: 5 }, { type: 'nx_dec_tcp_seq', delta: 6 }, { type: 'nx_inc_tcp_ack', delta: 7 },
          { type: 'nx_dec_tcp_ack', delta: 0xffffffff }, { type: 'output', port: OFPP.IN_PORT, maxLen: OFPCML_NO_BUFFER },
        ],
      }]);
    });

    it('errors carry the offending request', () => {
      const table = decode('vswitchd-error-bad-table', 'error');
      assert.equal(`${errorTypeName(table.errType)}/${errorCodeName(table.errType, table.code)}`, 'OFPET_BAD_REQUEST/OFPBRC_EPERM');
      const action = decode('vswitchd-error-bad-action', 'error');
      assert.equal(`${errorTypeName(action.errType)}/${errorCodeName(action.errType, action.code)}`, 'OFPET_BAD_ACTION/OFPBAC_BAD_TYPE');
      // The data is the start of our flow_mod; it decodes as one (OVS echoes the whole 72 bytes).
      const inner = decodeMessage(action.data);
      assert.ok(inner.ok);
      assert.equal((inner.value as OfpMessage).type, 'flow_mod');
      assert.equal(inner.value.xid, action.xid);
    });
  });
});
