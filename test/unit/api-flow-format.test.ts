// Readable flows for the API and CLI: ovs-ofctl's spelling of the flows the engine installs.
import assert from 'node:assert/strict';
import { formatMatch, formatAction, formatInstructions, flowView } from '../../controller/api/flow-format.ts';
import { connectionFlows, type ConnectionFlowSpec } from '../../controller/handoff/flow-plan.ts';
import { OFPP, seqShiftAction, type FlowStats } from '../../controller/openflow/index.ts';
import { connCookie, CONN_ROLE } from '../../controller/cookies.ts';

const spec: ConnectionFlowSpec = {
  id: 7, idleTimeout: 60, mode: 'fastpath', ackDelta: 1000,
  client: { mac: '02:00:00:00:00:02', ip: '10.0.0.2', port: 40000, ofport: 2 },
  service: { mac: '02:00:00:00:00:01', ip: '10.0.0.1', port: 5001 },
  backend: { mac: '02:00:00:00:00:03', ip: '10.0.0.3', port: 5001, ofport: 3 },
};

describe('API flow formatting', () => {
  it('formats matches like ovs-ofctl', () => {
    assert.equal(formatMatch({}), '*');
    assert.equal(formatMatch({ inPort: 2, ethType: 0x0800, ipProto: 6, ipv4Src: '10.0.0.2', ipv4Dst: '10.0.0.1', tcpSrc: 40000, tcpDst: 5001 }),
      'in_port=2,tcp,nw_src=10.0.0.2,nw_dst=10.0.0.1,tp_src=40000,tp_dst=5001');
    assert.equal(formatMatch({ ethType: 0x0800, ipProto: 6, tcpFlags: { value: 1, mask: 1 } }), 'tcp,tcp_flags=+fin');
    assert.equal(formatMatch({ ethType: 0x0800, ipProto: 6, tcpFlags: { value: 0x02, mask: 0x12 } }), 'tcp,tcp_flags=+syn-ack');
    assert.equal(formatMatch({ ethType: 0x0800, ipProto: 6, tcpFlags: 0x12 }), 'tcp,tcp_flags=syn|ack');
    assert.equal(formatMatch({ ethType: 0x0800, ipProto: 6, tcpFlags: { value: 0x200, mask: 0x200 } }), 'tcp,tcp_flags=0x200/0x200');
    assert.equal(formatMatch({ ctState: { value: 0x20, mask: 0x30 }, ctZone: 9, ctMark: 1, ctLabel: { value: 2n, mask: 3n } }), 'ct_state=-inv+trk,ct_zone=9,ct_mark=0x1,ct_label=0x2/0x3');
    assert.equal(formatMatch({ ethType: 0x0806 }), 'arp');
    assert.equal(formatMatch({ ethType: 0x0800, ipProto: 47 }), 'ip,nw_proto=47');
    assert.equal(formatMatch({ ethType: 0x86dd }), 'ipv6');
    assert.equal(formatMatch({ ipv4Dst: { value: '10.0.0.0', mask: '255.255.255.0' } }), 'nw_dst=10.0.0.0/255.255.255.0');
  });

  it('formats actions, including the seq/ack shifts and reserved ports', () => {
    assert.equal(formatAction({ type: 'output', port: 3 }), 'output:3');
    assert.equal(formatAction({ type: 'output', port: OFPP.CONTROLLER, maxLen: 128 }), 'CONTROLLER:128');
    assert.equal(formatAction({ type: 'output', port: OFPP.TABLE }), 'output:TABLE');
    assert.equal(formatAction({ type: 'set_field', field: { ipv4Dst: '10.0.0.3' } }), 'set_field:10.0.0.3->ip_dst');
    assert.equal(formatAction(seqShiftAction('ack', 1000)), 'inc_tcp_ack:1000');
    assert.equal(formatAction(seqShiftAction('seq', -1000)), 'dec_tcp_seq:1000');
    assert.equal(formatAction({ type: 'dec_nw_ttl' }), 'dec_nw_ttl');
    assert.equal(formatInstructions([]), 'drop');
    assert.equal(formatInstructions([{ type: 'goto_table', tableId: 1 }]), 'goto_table:1');
  });

  it('describes the engine\'s connection flows with role, direction and counts', () => {
    const flows = connectionFlows(spec).map((m) => {
      if (m.type !== 'flow_mod') throw new Error('expected flow mods');
      const f: FlowStats = { tableId: 0, durationSec: 5, durationNsec: 0, priority: m.priority, idleTimeout: m.idleTimeout, hardTimeout: m.hardTimeout, flags: m.flags, cookie: m.cookie, packetCount: 12n, byteCount: 3456n, match: m.match, instructions: m.instructions };
      return flowView(f, '10.0.0.2');
    });
    const main = flows.filter((f) => f.role === 'main');
    assert.equal(main.length, 2);
    const c2b = main.find((f) => f.direction === 'client→backend')!;
    assert.equal(c2b.match, 'in_port=2,tcp,nw_src=10.0.0.2,nw_dst=10.0.0.1,tp_src=40000,tp_dst=5001');
    assert.equal(c2b.actions, 'set_field:02:00:00:00:00:03->eth_dst,set_field:10.0.0.3->ip_dst,inc_tcp_ack:1000,output:3');
    const b2c = main.find((f) => f.direction === 'backend→client')!;
    assert.equal(b2c.actions, 'set_field:02:00:00:00:00:01->eth_src,set_field:10.0.0.1->ip_src,dec_tcp_seq:1000,output:2');
    assert.equal(c2b.packets, 12);
    assert.equal(c2b.bytes, 3456);
    assert.equal(c2b.cookie, '0x' + connCookie(7, CONN_ROLE.main).toString(16));
    assert.equal(flows.length, 2, 'FIN/RST copies are per service, not per connection');
  });

  it('shows the state note decoded, not among the actions; an unreadable note says why', () => {
    const meta = { serviceName: 'echo', backendName: 'server2', migrations: 1, createdAt: 1_790_000_000_000 };
    const [c2s] = connectionFlows({ ...spec, meta });
    if (c2s.type !== 'flow_mod') throw new Error('expected a flow mod');
    const stats = (instructions: FlowStats['instructions']): FlowStats => ({ tableId: 0, durationSec: 0, durationNsec: 0, priority: c2s.priority, idleTimeout: 60, hardTimeout: 0, flags: 0, cookie: c2s.cookie, packetCount: 0n, byteCount: 0n, match: c2s.match, instructions });
    const v = flowView(stats(c2s.instructions), '10.0.0.2');
    assert.equal(v.actions, 'set_field:02:00:00:00:00:03->eth_dst,set_field:10.0.0.3->ip_dst,inc_tcp_ack:1000,output:3');
    assert.deepEqual(v.state, { ...meta, serviceMac: spec.service.mac, clientMac: spec.client.mac, backendMac: spec.backend.mac, ackDelta: 1000 });
    const bad = flowView(stats([{ type: 'apply_actions', actions: [{ type: 'nx_note', data: Buffer.from('something else') }, { type: 'output', port: 3 }] }]));
    assert.equal(bad.actions, 'output:3');
    assert.match((bad.state as { unreadable: string }).unreadable, /not a tcp-migrate note/);
  });
});
