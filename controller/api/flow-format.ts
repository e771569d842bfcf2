// Human-readable flows: match and actions in ovs-ofctl's spelling, so what the API and the CLI
// show can be compared line by line with `ovs-ofctl dump-flows`.
import { OFPP, type Action, type FlowStats, type Instruction, type Match, type Masked } from '../openflow/index.ts';
import { connIdOf, connRoleOf, CONN_ROLE } from '../cookies.ts';
import { decodeRecord, type ConnectionRecord } from '../handoff/connection-record.ts';

const PORT_NAMES: Record<number, string> = {
  [OFPP.IN_PORT]: 'IN_PORT', [OFPP.TABLE]: 'TABLE', [OFPP.NORMAL]: 'NORMAL', [OFPP.FLOOD]: 'FLOOD',
  [OFPP.ALL]: 'ALL', [OFPP.CONTROLLER]: 'CONTROLLER', [OFPP.LOCAL]: 'LOCAL', [OFPP.ANY]: 'ANY',
};

export function portName(p: number): string { return PORT_NAMES[p] ?? String(p); }

function hex(n: number | bigint): string { return '0x' + n.toString(16); }

function masked<T extends string | number | bigint>(v: T | Masked<T>, show: (x: T) => string): string {
  if (typeof v === 'object' && v !== null && 'mask' in v) return `${show(v.value)}/${show(v.mask)}`;
  return show(v as T);
}

// ovs-ofctl field names, in the order ovs-ofctl prints them.
const MATCH_ORDER: [keyof Match, string, (v: never) => string][] = [
  ['inPort', 'in_port', (v: number) => portName(v)],
  ['inPhyPort', 'in_phy_port', (v: number) => String(v)],
  ['metadata', 'metadata', (v: bigint | Masked<bigint>) => masked(v, hex)],
  ['ethSrc', 'dl_src', (v: string | Masked<string>) => masked(v, String)],
  ['ethDst', 'dl_dst', (v: string | Masked<string>) => masked(v, String)],
  ['vlanVid', 'vlan_tci', (v: number | Masked<number>) => masked(v, hex)],
  ['vlanPcp', 'dl_vlan_pcp', (v: number) => String(v)],
  ['ipv4Src', 'nw_src', (v: string | Masked<string>) => masked(v, String)],
  ['ipv4Dst', 'nw_dst', (v: string | Masked<string>) => masked(v, String)],
  ['ipDscp', 'ip_dscp', (v: number) => String(v)],
  ['ipEcn', 'nw_ecn', (v: number) => String(v)],
  ['arpOp', 'arp_op', (v: number) => String(v)],
  ['arpSpa', 'arp_spa', (v: string | Masked<string>) => masked(v, String)],
  ['arpTpa', 'arp_tpa', (v: string | Masked<string>) => masked(v, String)],
  ['arpSha', 'arp_sha', (v: string | Masked<string>) => masked(v, String)],
  ['arpTha', 'arp_tha', (v: string | Masked<string>) => masked(v, String)],
  ['tcpSrc', 'tp_src', (v: number) => String(v)],
  ['tcpDst', 'tp_dst', (v: number) => String(v)],
  ['udpSrc', 'tp_src', (v: number) => String(v)],
  ['udpDst', 'tp_dst', (v: number) => String(v)],
  ['icmpv4Type', 'icmp_type', (v: number) => String(v)],
  ['icmpv4Code', 'icmp_code', (v: number) => String(v)],
  ['tcpFlags', 'tcp_flags', (v: number | Masked<number>) => masked(v, hex)],
];

function protoWord(m: Match): string | undefined {
  if (m.ethType === 0x0806) return 'arp';
  if (m.ethType !== 0x0800) return undefined;
  return ({ 6: 'tcp', 17: 'udp', 1: 'icmp' } as Record<number, string>)[m.ipProto ?? -1] ?? 'ip';
}

/** `in_port=1,tcp,nw_src=10.0.0.2,...`; empty match → `*`. */
export function formatMatch(m: Match): string {
  const parts: string[] = [];
  if (m.inPort !== undefined) parts.push(`in_port=${portName(m.inPort)}`);
  const proto = protoWord(m);
  if (proto) parts.push(proto);
  else if (m.ethType !== undefined) parts.push(`dl_type=${hex(m.ethType)}`);
  if (m.ethType === 0x0800 && m.ipProto !== undefined && !['tcp', 'udp', 'icmp'].includes(proto ?? '')) parts.push(`nw_proto=${m.ipProto}`);
  for (const [key, name, show] of MATCH_ORDER) {
    if (key === 'inPort') continue;
    const v = m[key];
    if (v !== undefined) parts.push(`${name}=${(show as (x: unknown) => string)(v)}`);
  }
  if (m.unknownOxm?.length) parts.push(`unknown_oxm(${m.unknownOxm.length})`);
  return parts.length ? parts.join(',') : '*';
}

const SET_FIELD_NAMES: Partial<Record<keyof Match, string>> = {
  ethSrc: 'eth_src', ethDst: 'eth_dst', ipv4Src: 'ip_src', ipv4Dst: 'ip_dst', tcpSrc: 'tcp_src', tcpDst: 'tcp_dst',
  udpSrc: 'udp_src', udpDst: 'udp_dst', vlanVid: 'vlan_vid', ipDscp: 'ip_dscp',
};

export function formatAction(a: Action): string {
  switch (a.type) {
    case 'output':
      return a.port === OFPP.CONTROLLER ? `CONTROLLER:${a.maxLen ?? 0xffff}` : `output:${portName(a.port)}`;
    case 'set_field': {
      const [k, v] = Object.entries(a.field).find(([key]) => key !== 'unknownOxm') ?? ['unknown', '?'];
      const name = SET_FIELD_NAMES[k as keyof Match] ?? k;
      return `set_field:${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}->${name}`;
    }
    case 'nx_inc_tcp_seq': return `inc_tcp_seq:${a.delta}`;
    case 'nx_dec_tcp_seq': return `dec_tcp_seq:${a.delta}`;
    case 'nx_inc_tcp_ack': return `inc_tcp_ack:${a.delta}`;
    case 'nx_dec_tcp_ack': return `dec_tcp_ack:${a.delta}`;
    case 'nx_note': return `note:${[...a.data].map((b) => b.toString(16).padStart(2, '0')).join('.')}`;
    case 'nx_resubmit': return `resubmit(${a.inPort === OFPP.IN_PORT ? '' : portName(a.inPort)},${a.tableId ?? ''})`;
    case 'group': return `group:${a.groupId}`;
    case 'set_queue': return `set_queue:${a.queueId}`;
    case 'experimenter': return `experimenter(${hex(a.experimenter)})`;
    case 'unknown': return `unknown_action(${a.actionType})`;
    default: {
      const rest = Object.entries(a).filter(([k]) => k !== 'type').map(([, v]) => String(v));
      return rest.length ? `${a.type}:${rest.join(',')}` : a.type;
    }
  }
}

/** Instructions as ovs-ofctl prints them: apply_actions unwrapped, the rest spelled out. */
export function formatInstructions(ins: Instruction[]): string {
  if (ins.length === 0) return 'drop';
  return ins.map((i) => {
    switch (i.type) {
      case 'apply_actions': return i.actions.length ? i.actions.map(formatAction).join(',') : 'drop';
      case 'write_actions': return `write_actions(${i.actions.map(formatAction).join(',')})`;
      case 'goto_table': return `goto_table:${i.tableId}`;
      case 'clear_actions': return 'clear_actions';
      case 'write_metadata': return `write_metadata:${hex(i.metadata)}/${hex(i.mask)}`;
      case 'meter': return `meter:${i.meterId}`;
      default: return i.type;
    }
  }).join(',');
}

export type FlowRole = 'main' | 'flags' | 'freeze' | 'freeze-copy' | 'other';

export interface FlowView {
  cookie: string;
  role: FlowRole;
  /** 'client→backend' or 'backend→client', from the match's source address. */
  direction?: string;
  tableId: number;
  priority: number;
  idleTimeout: number;
  hardTimeout: number;
  durationSec: number;
  packets: number;
  bytes: number;
  match: string;
  /** The actions as ovs-ofctl prints them, without the connection's state note (shown decoded in `state`). */
  actions: string;
  /** The connection's state note (client → backend flow), decoded: what a restarted controller adopts from. */
  state?: ConnectionRecord | { unreadable: string };
}

function roleOf(cookie: bigint): FlowRole {
  const r = connRoleOf(cookie);
  return r === CONN_ROLE.main ? 'main' : r === CONN_ROLE.flags ? 'flags' : r === CONN_ROLE.freeze ? 'freeze' : r === CONN_ROLE.freezeCopy ? 'freeze-copy' : 'other';
}

/** A flow-stats entry in readable form; `clientIp` tells the two directions apart. */
export function flowView(f: FlowStats, clientIp?: string): FlowView {
  const src = typeof f.match.ipv4Src === 'string' ? f.match.ipv4Src : f.match.ipv4Src?.value;
  return {
    cookie: '0x' + f.cookie.toString(16),
    role: connIdOf(f.cookie) === undefined ? 'other' : roleOf(f.cookie),
    direction: clientIp && src ? (src === clientIp ? 'client→backend' : 'backend→client') : undefined,
    tableId: f.tableId, priority: f.priority, idleTimeout: f.idleTimeout, hardTimeout: f.hardTimeout,
    durationSec: f.durationSec,
    // Counts beyond 2^53 are not reachable by any test bed; Number keeps the JSON plain.
    packets: Number(f.packetCount), bytes: Number(f.byteCount),
    match: formatMatch(f.match), ...actionsAndState(f.instructions),
  };
}

/** Splits the tcp-migrate state note off the actions: operators read it decoded, not as ovs-ofctl's hex. */
function actionsAndState(ins: Instruction[]): { actions: string; state?: FlowView['state'] } {
  let state: FlowView['state'];
  const rest = ins.map((i) => {
    if (i.type !== 'apply_actions') return i;
    const note = i.actions.find((a): a is Extract<Action, { type: 'nx_note' }> => a.type === 'nx_note');
    if (!note) return i;
    try { state = decodeRecord(note.data); } catch (e) { state = { unreadable: (e as Error).message }; }
    return { ...i, actions: i.actions.filter((a) => a !== note) };
  });
  return { actions: formatInstructions(rest), ...(state ? { state } : {}) };
}
