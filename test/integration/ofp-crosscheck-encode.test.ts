// Cross-check our encoder against OVS's own decoder: every message type the controller sends is
// encoded with our codec and printed by `ovs-ofctl ofp-print <hex>`; the text must match exactly,
// so one wrong byte shows up as a different field, a different value or a decode error.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { run } from '../lib/exec.ts';
import {
  encodeMessage, flowMod, packetOut, seqShiftAction, OFPBAC, OFPET, OFPFF, OFPP, type Action, type OfpMessage,
} from '../../controller/openflow/index.ts';
import { conntrackExitFlush, conntrackForwardActions, conntrackHandshakeActions, conntrackHandshakeDoneActions, conntrackLeaveActions, conntrackMigrateActions, conntrackMigratedFlows, flagCopyFlows, interceptFlows, PRIORITY } from '../../controller/handoff/flow-plan.ts';
import { formatAction, formatInstructions, formatMatch } from '../../controller/api/flow-format.ts';

const STOCK_OFCTL = '/usr/bin/ovs-ofctl';
const PATCHED_OFCTL = '/usr/local/bin/ovs-ofctl';

async function ofpPrint(ofctl: string, msg: OfpMessage): Promise<string> {
  const hex = encodeMessage(msg).toString('hex');
  const r = await run(ofctl, ['ofp-print', hex], { allowFail: true });
  assert.equal(r.code, 0, `ofp-print failed: ${r.stderr}`);
  // A decode error is printed on stdout with a hex dump; the exact-text compare catches it.
  return r.stdout.trimEnd();
}

// An ARP request 10.0.0.1 -> 10.0.0.2 (42 bytes), so OVS prints the parsed packet.
const ARP = Buffer.from('ffffffffffff000000000001080600010800060400010000000000010a0000010000000000000a000002', 'hex');

const CASES: Array<[string, OfpMessage, string]> = [
  ['hello (no elements)', { type: 'hello', xid: 1 }, 'OFPT_HELLO (OF1.3) (xid=0x1):\n version bitmap: 0x01, 0x02, 0x03, 0x04'],
  ['hello (version bitmap)', { type: 'hello', xid: 2, versions: [1, 4] }, 'OFPT_HELLO (OF1.3) (xid=0x2):\n version bitmap: 0x01, 0x04'],
  ['hello (OF1.3 only)', { type: 'hello', xid: 2, versions: [4] }, 'OFPT_HELLO (OF1.3) (xid=0x2):\n version bitmap: 0x04'],
  [
    'echo_request',
    { type: 'echo_request', xid: 3, data: Buffer.from('hi') },
    'OFPT_ECHO_REQUEST (OF1.3) (xid=0x3): 2 bytes of payload\n00000000  68 69                                           |hi              |',
  ],
  ['echo_reply', { type: 'echo_reply', xid: 4, data: Buffer.alloc(0) }, 'OFPT_ECHO_REPLY (OF1.3) (xid=0x4): 0 bytes of payload'],
  ['features_request', { type: 'features_request', xid: 5 }, 'OFPT_FEATURES_REQUEST (OF1.3) (xid=0x5):'],
  ['get_config_request', { type: 'get_config_request', xid: 6 }, 'OFPT_GET_CONFIG_REQUEST (OF1.3) (xid=0x6):'],
  ['set_config', { type: 'set_config', xid: 7, flags: 0, missSendLen: 0xffff }, 'OFPT_SET_CONFIG (OF1.3) (xid=0x7): frags=normal miss_send_len=65535'],
  ['set_config (frag drop, 128)', { type: 'set_config', xid: 7, flags: 1, missSendLen: 128 }, 'OFPT_SET_CONFIG (OF1.3) (xid=0x7): frags=drop miss_send_len=128'],
  ['barrier_request', { type: 'barrier_request', xid: 8 }, 'OFPT_BARRIER_REQUEST (OF1.3) (xid=0x8):'],
  ['role_request', { type: 'role_request', xid: 9, role: 2, generationId: 0x42n }, 'OFPT_ROLE_REQUEST (OF1.3) (xid=0x9): role=primary generation_id=66'],
  [
    'error (data = the offending message)',
    { type: 'error', xid: 10, errType: OFPET.BAD_ACTION, code: OFPBAC.BAD_OUT_PORT, data: Buffer.from('0400000800000001', 'hex') },
    'OFPT_ERROR (OF1.3) (xid=0xa): OFPBAC_BAD_OUT_PORT\nOFPT_HELLO (OF1.3) (xid=0x1):\n version bitmap: 0x01, 0x02, 0x03, 0x04',
  ],
  ['multipart desc', { type: 'multipart_request', xid: 11, flags: 0, body: { kind: 'desc' } }, 'OFPST_DESC request (OF1.3) (xid=0xb):'],
  ['multipart port_desc', { type: 'multipart_request', xid: 12, flags: 0, body: { kind: 'port_desc' } }, 'OFPST_PORT_DESC request (OF1.3) (xid=0xc): port=ANY'],
  [
    'multipart flow',
    {
      type: 'multipart_request', xid: 13, flags: 0,
      body: { kind: 'flow', tableId: 0xff, outPort: OFPP.ANY, outGroup: 0xffffffff, cookie: 0x10n, cookieMask: 0xffn, match: { ethType: 0x800, ipv4Dst: '10.0.0.2' } },
    },
    // ofp-print does not show the cookie of a flow stats request; the aggregate case checks table/out_port.
    'OFPST_FLOW request (OF1.3) (xid=0xd): ip,nw_dst=10.0.0.2',
  ],
  [
    'multipart aggregate',
    { type: 'multipart_request', xid: 14, flags: 0, body: { kind: 'aggregate', tableId: 1, outPort: 2, outGroup: 0xffffffff, cookie: 0n, cookieMask: 0n, match: {} } },
    'OFPST_AGGREGATE request (OF1.3) (xid=0xe): table=1 out_port=2',
  ],
  ['multipart port_stats', { type: 'multipart_request', xid: 15, flags: 0, body: { kind: 'port_stats', portNo: OFPP.ANY } }, 'OFPST_PORT request (OF1.3) (xid=0xf): port_no=ANY'],
  ['multipart table', { type: 'multipart_request', xid: 16, flags: 0, body: { kind: 'table' } }, 'OFPST_TABLE request (OF1.3) (xid=0x10):'],
  [
    'packet_out to TABLE with data',
    packetOut({ xid: 17, inPort: OFPP.CONTROLLER, actions: [{ type: 'output', port: OFPP.TABLE }], data: ARP }),
    'OFPT_PACKET_OUT (OF1.3) (xid=0x11): in_port=CONTROLLER actions=TABLE data_len=42\n' +
      'arp,vlan_tci=0x0000,dl_src=00:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_spa=10.0.0.1,arp_tpa=10.0.0.2,arp_op=1,arp_sha=00:00:00:00:00:01,arp_tha=00:00:00:00:00:00',
  ],
  [
    'packet_out with set_field and in_port 1',
    packetOut({ xid: 18, inPort: 1, actions: [{ type: 'set_field', field: { ethSrc: '02:00:00:00:00:09' } }, { type: 'output', port: 2 }], data: ARP }),
    'OFPT_PACKET_OUT (OF1.3) (xid=0x12): in_port=1 actions=set_field:02:00:00:00:00:09->eth_src,output:2 data_len=42\n' +
      'arp,vlan_tci=0x0000,dl_src=00:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_spa=10.0.0.1,arp_tpa=10.0.0.2,arp_op=1,arp_sha=00:00:00:00:00:01,arp_tha=00:00:00:00:00:00',
  ],
  [
    'flow_mod add: TCP/IPv4/Ethernet fields, masks, tcp_flags, every flag, set_field actions',
    flowMod({
      xid: 0x12, cookie: 0x1234n, idleTimeout: 10, hardTimeout: 20, priority: 100,
      flags: OFPFF.SEND_FLOW_REM | OFPFF.CHECK_OVERLAP | OFPFF.RESET_COUNTS | OFPFF.NO_PKT_COUNTS | OFPFF.NO_BYT_COUNTS,
      match: {
        inPort: 1, ethSrc: '00:00:00:00:00:01', ethDst: { value: '00:00:00:00:00:00', mask: 'ff:ff:ff:ff:ff:00' }, ethType: 0x800, ipDscp: 10,
        ipEcn: 1, ipProto: 6, ipv4Src: '10.0.0.1', ipv4Dst: { value: '10.0.0.0', mask: '255.255.255.0' }, tcpSrc: 1234, tcpDst: 80,
        tcpFlags: { value: 0x002, mask: 0x012 },
      },
      instructions: [{
        type: 'apply_actions',
        actions: [
          { type: 'set_field', field: { ethDst: '00:00:00:00:00:03' } }, { type: 'set_field', field: { ipv4Dst: '10.0.0.3' } },
          { type: 'set_field', field: { tcpDst: 8080 } }, { type: 'dec_nw_ttl' }, { type: 'set_nw_ttl', ttl: 9 }, { type: 'output', port: 3 },
          { type: 'output', port: OFPP.CONTROLLER, maxLen: 128 },
        ],
      }],
    }),
    'OFPT_FLOW_MOD (OF1.3) (xid=0x12): ADD priority=100,tcp,in_port=1,dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:00/ff:ff:ff:ff:ff:00,' +
      'nw_src=10.0.0.1,nw_dst=10.0.0.0/24,nw_tos=40,nw_ecn=1,tp_src=1234,tp_dst=80,tcp_flags=+syn-ack cookie:0x1234 idle:10 hard:20 ' +
      'send_flow_rem check_overlap reset_counts no_packet_counts no_byte_counts ' +
      'actions=set_field:00:00:00:00:00:03->eth_dst,set_field:10.0.0.3->ip_dst,set_field:8080->tcp_dst,dec_ttl,mod_nw_ttl:9,output:3,CONTROLLER:128',
  ],
  [
    'flow_mod add: exact tcp_flags, masked eth_src/ipv4_src, set_field tcp/ip source',
    flowMod({
      xid: 0x19, match: { ethSrc: { value: '02:00:00:00:00:00', mask: '02:00:00:00:00:00' }, ethType: 0x800, ipProto: 6, ipv4Src: { value: '10.0.0.0', mask: '255.0.0.0' }, tcpFlags: 0x002 },
      instructions: [{ type: 'apply_actions', actions: [{ type: 'set_field', field: { ipv4Src: '10.0.0.1' } }, { type: 'set_field', field: { tcpSrc: 80 } }, { type: 'output', port: OFPP.NORMAL }] }],
    }),
    'OFPT_FLOW_MOD (OF1.3) (xid=0x19): ADD tcp,dl_src=02:00:00:00:00:00/02:00:00:00:00:00,nw_src=10.0.0.0/8,tcp_flags=syn actions=set_field:10.0.0.1->ip_src,set_field:80->tcp_src,NORMAL',
  ],
  [
    'flow_mod modify: ARP fields, cookie mask, write_actions/write_metadata/goto_table',
    flowMod({
      xid: 0x13, command: 'modify', cookie: 0x1n, cookieMask: 0xffn, tableId: 1,
      match: {
        ethType: 0x806, arpOp: 1, arpSpa: '10.0.0.1', arpTpa: { value: '10.0.0.0', mask: '255.255.255.0' }, arpSha: '00:00:00:00:00:01',
        arpTha: { value: '00:00:00:00:00:00', mask: 'ff:ff:ff:00:00:00' },
      },
      instructions: [
        { type: 'write_actions', actions: [{ type: 'output', port: OFPP.FLOOD }] },
        { type: 'write_metadata', metadata: 0x5n, mask: 0xffn },
        { type: 'goto_table', tableId: 2 },
      ],
    }),
    'OFPT_FLOW_MOD (OF1.3) (xid=0x13): MOD table:1 arp,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/24,arp_op=1,arp_sha=00:00:00:00:00:01,' +
      'arp_tha=00:00:00:00:00:00/ff:ff:ff:00:00:00 cookie:0x1/0xff actions=write_actions(FLOOD),write_metadata:0x5/0xff,goto_table:2',
  ],
  [
    'flow_mod modify_strict: VLAN fields and actions, clear_actions',
    flowMod({
      xid: 0x14, command: 'modify_strict', priority: 5, match: { inPort: 2, vlanVid: 0x1005, vlanPcp: 3 },
      instructions: [
        { type: 'apply_actions', actions: [{ type: 'pop_vlan' }, { type: 'push_vlan', ethType: 0x8100 }, { type: 'set_field', field: { vlanVid: 0x1006 } }, { type: 'output', port: OFPP.IN_PORT }] },
        { type: 'clear_actions' },
      ],
    }),
    'OFPT_FLOW_MOD (OF1.3) (xid=0x14): MOD_STRICT priority=5,in_port=2,dl_vlan=5,dl_vlan_pcp=3 actions=pop_vlan,push_vlan:0x8100,set_field:4102->vlan_vid,IN_PORT,clear_actions',
  ],
  [
    'flow_mod modify: masked vlan_vid (any tagged)',
    flowMod({ xid: 0x1a, command: 'modify', match: { vlanVid: { value: 0x1000, mask: 0x1000 } } }),
    'OFPT_FLOW_MOD (OF1.3) (xid=0x1a): MOD vlan_tci=0x1000/0x1000 actions=drop',
  ],
  [
    'flow_mod delete: UDP, masked metadata, out_port, full cookie mask',
    flowMod({
      xid: 0x15, command: 'delete', tableId: 0xff, outPort: 3, cookie: 0x42n, cookieMask: 0xffffffffffffffffn,
      match: { ethType: 0x800, ipProto: 17, udpSrc: 53, udpDst: 5353, metadata: { value: 0x10n, mask: 0xf0n } },
    }),
    'OFPT_FLOW_MOD (OF1.3) (xid=0x15): DEL table:255 udp,metadata=0x10/0xf0,tp_src=53,tp_dst=5353 cookie:0x42/0xffffffffffffffff out_port:3 actions=drop',
  ],
  [
    'flow_mod delete_strict: ICMP fields',
    flowMod({ xid: 0x16, command: 'delete_strict', priority: 7, match: { ethType: 0x800, ipProto: 1, icmpv4Type: 8, icmpv4Code: 0 } }),
    'OFPT_FLOW_MOD (OF1.3) (xid=0x16): DEL_STRICT priority=7,icmp,icmp_type=8,icmp_code=0 actions=drop',
  ],
  [
    'flow_mod add: meter, group, set_queue, MPLS actions, NX resubmit',
    flowMod({
      xid: 0x17, match: {},
      instructions: [
        { type: 'meter', meterId: 1 },
        {
          type: 'apply_actions',
          actions: [
            { type: 'group', groupId: 1 }, { type: 'set_queue', queueId: 2 }, { type: 'push_mpls', ethType: 0x8847 }, { type: 'set_mpls_ttl', ttl: 4 },
            { type: 'dec_mpls_ttl' }, { type: 'pop_mpls', ethType: 0x0800 }, { type: 'nx_resubmit', inPort: 3 }, { type: 'nx_resubmit', inPort: OFPP.IN_PORT, tableId: 2 },
          ],
        },
      ],
    }),
    'OFPT_FLOW_MOD (OF1.3) (xid=0x17): ADD actions=meter:1,group:1,set_queue:2,push_mpls:0x8847,set_mpls_ttl(4),dec_mpls_ttl,pop_mpls:0x0800,resubmit:3,resubmit(,2)',
  ],
];

describe('ofp cross-check: our encoder vs ovs-ofctl ofp-print', function () {
  before(function () {
    if (!existsSync(STOCK_OFCTL)) throw new Error(`${STOCK_OFCTL} missing: install openvswitch-switch`);
  });

  for (const [name, msg, expected] of CASES) {
    it(name, async () => {
      assert.equal(await ofpPrint(STOCK_OFCTL, msg), expected);
    });
  }

  describe('conntrack: a service with forwardVia conntrack, and the Packet-Outs of its connections', () => {
    const flows = interceptFlows({ index: 0, service: { ip: '10.0.0.1', port: 5001 }, backends: [{ ip: '10.0.0.1', port: 5001 }], conntrackZone: 77 })
      .filter((m): m is Extract<OfpMessage, { type: 'flow_mod' }> => m.type === 'flow_mod');
    const cases: Array<[string, Extract<OfpMessage, { type: 'flow_mod' }>, string]> = [
      ['steer through ct', flows.find((f) => f.tableId === 0 && f.priority === PRIORITY.steer)!, 'priority=100,tcp,nw_dst=10.0.0.1,tp_dst=5001 cookie:0x300000000000000 actions=ct(table=1,zone=77)'],
      ['FIN copy, then ct', flows.find((f) => f.tableId === 0 && f.priority === PRIORITY.flagCopy)!, 'priority=210,tcp,nw_dst=10.0.0.1,tp_dst=5001,tcp_flags=+fin cookie:0x301000000000000 actions=CONTROLLER:128,ct(table=1,zone=77)'],
      ['a backend\'s FIN through ct to table 2', flows.find((f) => f.tableId === 0 && f.priority === PRIORITY.flagCopy && f.match.tcpSrc !== undefined)!, 'priority=210,tcp,nw_src=10.0.0.1,tp_src=5001,tcp_flags=+fin-rst cookie:0x301000000000000 actions=ct(table=2,zone=77)'],
      ...flagCopyFlows(77).map((f, i): [string, Extract<OfpMessage, { type: 'flow_mod' }>, string] => [
        `table 2, ${['onward', 'FIN copy', 'RST copy', 'FIN copy (IPv6)', 'RST copy (IPv6)', 'no copy: FORWARDed in conntrack', 'no copy: migrated in conntrack'][i]}`, f as Extract<OfpMessage, { type: 'flow_mod' }>,
        [
          'table:2 priority=0 cookie:0x30100000000ffff actions=resubmit(,1)',
          'table:2 priority=110,tcp,tcp_flags=+fin cookie:0x30100000000ffff actions=CONTROLLER:128,resubmit(,1)',
          'table:2 priority=110,tcp,tcp_flags=+rst cookie:0x30100000000ffff actions=CONTROLLER:128,resubmit(,1)',
          'table:2 priority=110,tcp6,tcp_flags=+fin cookie:0x30100000000ffff actions=CONTROLLER:128,resubmit(,1)',
          'table:2 priority=110,tcp6,tcp_flags=+rst cookie:0x30100000000ffff actions=CONTROLLER:128,resubmit(,1)',
          'table:2 priority=120,ct_state=+trk,ct_zone=77,ct_mark=0x1 cookie:0x30100000000ffff actions=resubmit(,1)',
          'table:2 priority=120,ct_state=+trk,ct_zone=77,ct_mark=0x80000000/0x80000000 cookie:0x30100000000ffff actions=resubmit(,1)',
        ][i]!,
      ]),
      ['a backend\'s SYN-ACK through the handshake zone', flows.find((f) => f.priority === PRIORITY.synAckCt)!, 'priority=205,tcp,nw_src=10.0.0.1,tp_src=5001,tcp_flags=+syn cookie:0x300000000000000 actions=ct(table=1,zone=78)'],
      ['a handshake\'s SYN-ACK: copied, and to the client by the label', flows.find((f) => f.priority === PRIORITY.synAckCopy)!, 'table:1 priority=103,ct_state=+trk,ct_zone=78,ct_mark=0x2,tcp,nw_src=10.0.0.1,tp_src=5001,tcp_flags=+syn cookie:0x303000000000000 actions=CONTROLLER:128,output:NXM_NX_CT_LABEL[0..15]'],
      ['to the backend by the label', flows.find((f) => f.priority === PRIORITY.conntrack && f.match.tcpDst)!, 'table:1 priority=120,ct_state=+trk,ct_zone=77,ct_mark=0x1,tcp,nw_dst=10.0.0.1,tp_dst=5001 cookie:0x300000000000000 actions=output:NXM_NX_CT_LABEL[16..31]'],
      ['to the client by the label', flows.find((f) => f.priority === PRIORITY.conntrack && f.match.tcpSrc)!, 'table:1 priority=120,ct_state=+trk,ct_zone=77,ct_mark=0x1,tcp,nw_src=10.0.0.1,tp_src=5001 cookie:0x300000000000000 actions=output:NXM_NX_CT_LABEL[0..15]'],
    ];
    for (const [name, f, text] of cases) {
      it(`flow_mod: ${name}; the API prints match and actions as ovs-ofctl does`, async () => {
        assert.equal(await ofpPrint(STOCK_OFCTL, { ...f, xid: 0x40 }), `OFPT_FLOW_MOD (OF1.3) (xid=0x40): ADD ${text}`);
        // ovs-ofctl prints nothing for a match of everything, the API '*'.
        const ofctlMatch = text.replace(/^(table:\d+ )?priority=\d+,?/, '').replace(/ ?cookie:.*$/, '') || '*';
        assert.equal(formatMatch(f.match), ofctlMatch);
        assert.equal(formatInstructions(f.instructions), text.replace(/^.* actions=/, ''));
      });
    }
    for (const [name, actions, text] of [
      ['commit the FORWARD, out to server 1', conntrackForwardActions(77, 2, 1, 1), 'ct(commit,zone=77,exec(set_field:0x1->ct_mark,set_field:0x10002->ct_label)),output:1'],
      ['leave conntrack (mark 0)', conntrackLeaveActions(77), 'ct(commit,zone=77,exec(set_field:0->ct_mark))'],
      ['commit the handshake (the SYN)', conntrackHandshakeActions(77, 2, 1), 'ct(commit,zone=78,exec(set_field:0x2->ct_mark,set_field:0x10002->ct_label))'],
      ['the handshake mark goes (the client\'s ACK)', conntrackHandshakeDoneActions(77), 'ct(commit,zone=78,exec(set_field:0->ct_mark))'],
    ] as const) {
      it(`packet_out: ${name}`, async () => {
        assert.equal(await ofpPrint(STOCK_OFCTL, packetOut({ xid: 0x41, inPort: 2, actions: [...actions] })), `OFPT_PACKET_OUT (OF1.3) (xid=0x41): in_port=2 actions=${text} data_len=0`);
        assert.equal(actions.map(formatAction).join(','), text);
      });
    }

    // A connection leaving ct for good has its entry deleted (conntrackExitFlush): what OVS reads.
    for (const [name, client, service, printed] of [
      ['IPv4', { ip: '10.0.0.3', port: 40000 }, { ip: '10.0.0.1', port: 5001 }, "'ct_nw_src=10.0.0.3,ct_nw_dst=10.0.0.1,ct_tp_src=40000,ct_tp_dst=5001,ct_nw_proto=6' 'ct_nw_src=::,ct_nw_dst=::,ct_tp_src=0,ct_tp_dst=0'"],
      ['IPv6', { ip: 'fd00::3', port: 40001 }, { ip: 'fd00::1', port: 5001 }, "'ct_ipv6_src=fd00::3,ct_ipv6_dst=fd00::1,ct_tp_src=40001,ct_tp_dst=5001,ct_nw_proto=6' 'ct_ipv6_src=::,ct_ipv6_dst=::,ct_tp_src=0,ct_tp_dst=0'"],
    ] as const) {
      it(`NXT_CT_FLUSH of a connection's entry (${name})`, async () => {
        const msg = { ...conntrackExitFlush(77, { client, service }), xid: 0x31 };
        assert.equal(await ofpPrint(STOCK_OFCTL, msg), `NXT_CT_FLUSH (OF1.3) (xid=0x31): zone=77 ${printed}`);
      });
    }
  });

  describe('Nicira seq/ack actions (patched OVS)', function () {
    before(function () {
      if (existsSync(PATCHED_OFCTL)) return;
      const why = `${PATCHED_OFCTL} missing: build the patched OVS (ovs-patch/) to cross-check inc/dec_tcp_seq/ack`;
      if (process.env.CI) throw new Error(why);
      this.skip();
    });

    it('inc/dec_tcp_seq/ack in apply_actions', async () => {
      const msg = flowMod({
        xid: 0x20, priority: 10, match: { ethType: 0x800, ipProto: 6 },
        instructions: [{
          type: 'apply_actions',
          actions: [
            { type: 'nx_inc_tcp_seq', delta: 5 }, { type: 'nx_dec_tcp_seq', delta: 6 }, { type: 'nx_inc_tcp_ack', delta: 7 },
            { type: 'nx_dec_tcp_ack', delta: 4294967295 }, { type: 'output', port: 1 },
          ],
        }],
      });
      assert.equal(
        await ofpPrint(PATCHED_OFCTL, msg),
        'OFPT_FLOW_MOD (OF1.3) (xid=0x20): ADD priority=10,tcp actions=inc_tcp_seq:5,dec_tcp_seq:6,inc_tcp_ack:7,dec_tcp_ack:4294967295,output:1',
      );
    });

    it('seqShiftAction output is what OVS decodes', async () => {
      const msg = flowMod({
        xid: 0x21, match: { ethType: 0x800, ipProto: 6 },
        instructions: [{ type: 'apply_actions', actions: [seqShiftAction('ack', -100), seqShiftAction('seq', 2 ** 32 + 3), { type: 'output', port: 2 }] }],
      });
      assert.equal(await ofpPrint(PATCHED_OFCTL, msg), 'OFPT_FLOW_MOD (OF1.3) (xid=0x21): ADD tcp actions=dec_tcp_ack:100,inc_tcp_seq:3,output:2');
    });

    describe('MIGRATE in conntrack: the delta from a field, move, nat (ovs-patch 0008)', () => {
      const service = interceptFlows({ index: 0, service: { ip: '10.0.0.1', ip6: 'fd00::1', port: 5001 }, backends: [{ ip: '10.0.0.3', port: 5001 }], conntrackZone: 77, conntrackForward: false, conntrackNat: true })
        .filter((m): m is Extract<OfpMessage, { type: 'flow_mod' }> => m.type === 'flow_mod');
      const shared = conntrackMigratedFlows(77).filter((m): m is Extract<OfpMessage, { type: 'flow_mod' }> => m.type === 'flow_mod');
      const cases: Array<[string, Extract<OfpMessage, { type: 'flow_mod' }>, string]> = [
        ['steer through ct with nat', service.find((f) => f.tableId === 0 && f.priority === PRIORITY.steer)!, 'priority=100,tcp,nw_dst=10.0.0.1,tp_dst=5001 cookie:0x300000000000000 actions=ct(table=1,zone=77,nat)'],
        ['a reply (un-NATed) to the client', service.find((f) => f.priority === PRIORITY.conntrackReply && f.match.ipv4Src)!, 'table:1 priority=121,ct_state=+trk,ct_zone=77,ct_mark=0x80000000/0x80000000,tcp,nw_src=10.0.0.1,tp_src=5001 cookie:0x300000000000000 actions=move:NXM_NX_CT_LABEL[80..127]->NXM_OF_ETH_SRC[],dec_tcp_seq:NXM_NX_CT_LABEL[0..31],output:NXM_NX_CT_MARK[0..14]'],
        ['a reply over IPv6', service.find((f) => f.priority === PRIORITY.conntrackReply && f.match.ipv6Src)!, 'table:1 priority=121,ct_state=+trk,ct_zone=77,ct_mark=0x80000000/0x80000000,tcp6,ipv6_src=fd00::1,tp_src=5001 cookie:0x300000000000000 actions=move:NXM_NX_CT_LABEL[80..127]->NXM_OF_ETH_SRC[],dec_tcp_seq:NXM_NX_CT_LABEL[0..31],output:NXM_NX_CT_MARK[0..14]'],
        ['the client\'s segments (NATed) to the target', shared[0]!, 'table:1 priority=120,ct_state=+trk,ct_zone=77,ct_mark=0x80000000/0x80000000,tcp cookie:0x30200000000ffff actions=move:NXM_NX_CT_LABEL[32..79]->NXM_OF_ETH_DST[],inc_tcp_ack:NXM_NX_CT_LABEL[0..31],output:NXM_NX_CT_MARK[15..29]'],
        ['the same over IPv6', shared[1]!, 'table:1 priority=120,ct_state=+trk,ct_zone=77,ct_mark=0x80000000/0x80000000,tcp6 cookie:0x30200000000ffff actions=move:NXM_NX_CT_LABEL[32..79]->NXM_OF_ETH_DST[],inc_tcp_ack:NXM_NX_CT_LABEL[0..31],output:NXM_NX_CT_MARK[15..29]'],
      ];
      for (const [name, f, text] of cases) {
        it(`flow_mod: ${name}; the API prints it as ovs-ofctl does`, async () => {
          assert.equal(await ofpPrint(PATCHED_OFCTL, { ...f, xid: 0x42 }), `OFPT_FLOW_MOD (OF1.3) (xid=0x42): ADD ${text}`);
          assert.equal(formatInstructions(f.instructions), text.replace(/^.* actions=/, ''));
        });
      }
      const spec = (ip: string, backendIp: string) => ({
        client: { mac: '02:00:00:00:00:02', ip, port: 40000, ofport: 2 }, service: { mac: '02:00:00:00:00:01', ip: '10.0.0.1', port: 5001 },
        backend: { mac: '02:00:00:00:00:03', ip: backendIp, port: 5002, ofport: 3 }, ackDelta: -5,
      });
      for (const [name, actions, text] of [
        ['commit the MIGRATE, out to server 2', conntrackMigrateActions(77, spec('10.0.0.2', '10.0.0.3')), 'ct(commit,zone=77,nat(dst=10.0.0.3:5002),exec(set_field:0x80018002->ct_mark,set_field:0x20000000001020000000003fffffffb->ct_label)),set_field:02:00:00:00:00:03->eth_dst,dec_tcp_ack:5,output:3'],
        ['the same over IPv6', conntrackMigrateActions(77, spec('fd00::2', 'fd00::3')), 'ct(commit,zone=77,nat(dst=[fd00::3]:5002),exec(set_field:0x80018002->ct_mark,set_field:0x20000000001020000000003fffffffb->ct_label)),set_field:02:00:00:00:00:03->eth_dst,dec_tcp_ack:5,output:3'],
        ['nat without a range, and with flags', [{ type: 'nx_ct', zone: 1, commit: true, actions: [{ type: 'nx_nat', kind: 'src', ipMin: '10.0.0.5', ipMax: '10.0.0.9', portMin: 1000, portMax: 2000, random: true }] }, { type: 'nx_ct', zone: 1, table: 2, actions: [{ type: 'nx_nat' }] }] as Action[], 'ct(commit,zone=1,nat(src=10.0.0.5-10.0.0.9:1000-2000,random)),ct(table=2,zone=1,nat)'],
        ['move with one bit, and a whole field', [{ type: 'nx_reg_move', src: { field: 'ctMark', ofs: 3, nBits: 1 }, dst: { field: 'ethDst', ofs: 7, nBits: 1 } }, { type: 'nx_reg_move', src: { field: 'ethSrc', ofs: 0, nBits: 48 }, dst: { field: 'ethDst', ofs: 0, nBits: 48 } }] as Action[], 'move:NXM_NX_CT_MARK[3]->NXM_OF_ETH_DST[7],move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]'],
      ] as const) {
        it(`packet_out: ${name}`, async () => {
          assert.equal(await ofpPrint(PATCHED_OFCTL, packetOut({ xid: 0x43, inPort: 2, actions: [...actions] })), `OFPT_PACKET_OUT (OF1.3) (xid=0x43): in_port=2 actions=${text} data_len=0`);
          assert.equal(actions.map(formatAction).join(','), text);
        });
      }
    });

    it('packet_out with a seq action', async () => {
      const msg = packetOut({ xid: 0x22, inPort: OFPP.CONTROLLER, actions: [{ type: 'nx_dec_tcp_seq', delta: 1000 }, { type: 'output', port: 1 }] });
      assert.equal(await ofpPrint(PATCHED_OFCTL, msg), 'OFPT_PACKET_OUT (OF1.3) (xid=0x22): in_port=CONTROLLER actions=dec_tcp_seq:1000,output:1 data_len=0');
    });
  });
});
