// Human-readable flows: match and actions in ovs-ofctl's spelling, so what the API and the CLI
// show can be compared line by line with `ovs-ofctl dump-flows`.
import { OFPP, type Action, type FlowStats, type Instruction, type Match, type Masked, type Subfield } from '../openflow/index.ts';
import { oxmBits, oxmDef } from '../openflow/oxm.ts';
import { parseIpv6 } from '../packet/addr.ts';
import { connIdOf, connRoleOf, CONN_ROLE } from '../cookies.ts';
import { decodeRecord, type ConnectionRecord } from '../handoff/connection-record.ts';

const PORT_NAMES: Record<number, string> = {
  [OFPP.IN_PORT]: 'IN_PORT', [OFPP.TABLE]: 'TABLE', [OFPP.NORMAL]: 'NORMAL', [OFPP.FLOOD]: 'FLOOD',
  [OFPP.ALL]: 'ALL', [OFPP.CONTROLLER]: 'CONTROLLER', [OFPP.LOCAL]: 'LOCAL', [OFPP.ANY]: 'ANY',
};

export function portName(p: number): string { return PORT_NAMES[p] ?? String(p); }

function hex(n: number | bigint): string { return '0x' + n.toString(16); }
/** As C's %#x, which ovs-ofctl uses for field values it sets: 0 has no prefix. */
function hexValue(n: number | bigint): string { return n === 0 || n === 0n ? '0' : hex(n); }

function masked<T extends string | number | bigint>(v: T | Masked<T>, show: (x: T) => string): string {
  if (typeof v === 'object' && v !== null && 'mask' in v) return `${show(v.value)}/${show(v.mask)}`;
  return show(v as T);
}

/** Leading one bits of a contiguous IPv6 mask, or -1 when the mask is not a prefix. */
function ipv6PrefixLength(mask: string): number {
  const r = parseIpv6(mask);
  if (!r.ok) return -1;
  let n = 0;
  for (const b of r.value) {
    if (b === 0xff) { n += 8; continue; }
    const ones = Math.clz32(~b & 0xff) - 24;
    if (((b << ones) & 0xff) !== 0) return -1; // a one bit after the first zero
    n += ones;
    break;
  }
  return r.value.subarray(Math.ceil(n / 8)).every((b) => b === 0) ? n : -1;
}

/** As ovs-ofctl prints IPv6 matches: an exact address, a CIDR prefix, or address/mask. */
function ipv6Masked(v: string | Masked<string>): string {
  if (typeof v === 'string') return v;
  const len = ipv6PrefixLength(v.mask);
  if (len === 128) return v.value;
  return len >= 0 ? `${v.value}/${len}` : `${v.value}/${v.mask}`;
}

/** ovs-ofctl prints the 20-bit flow label as five hex digits. */
function flabel(n: number): string {
  return '0x' + n.toString(16).padStart(5, '0');
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
  ['ipv6Src', 'ipv6_src', ipv6Masked],
  ['ipv6Dst', 'ipv6_dst', ipv6Masked],
  ['ipv6Flabel', 'ipv6_label', (v: number | Masked<number>) => masked(v, flabel)],
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
  // ovs-ofctl spells the ICMPv6 fields like the ICMPv4 ones (the protocol word tells them apart).
  ['icmpv6Type', 'icmp_type', (v: number) => String(v)],
  ['icmpv6Code', 'icmp_code', (v: number) => String(v)],
  ['ipv6NdTarget', 'nd_target', (v: string) => v],
  ['ipv6NdSll', 'nd_sll', (v: string) => v],
  ['ipv6NdTll', 'nd_tll', (v: string) => v],
  // No ovs-ofctl name (OVS does not implement OXM_OF_IPV6_EXTHDR); the OpenFlow name, in hex.
  ['ipv6Exthdr', 'ipv6_exthdr', (v: number | Masked<number>) => masked(v, hex)],
  ['tcpFlags', 'tcp_flags', tcpFlagsText],
];

const TCP_FLAG_NAMES: [number, string][] = [[0x001, 'fin'], [0x002, 'syn'], [0x004, 'rst'], [0x008, 'psh'], [0x010, 'ack'], [0x020, 'urg'], [0x040, 'ece'], [0x080, 'cwr'], [0x100, 'ns']];

/** As ovs-ofctl: `+syn-ack` under a mask, `syn|ack` exact; hex when bits have no name. */
function tcpFlagsText(v: number | Masked<number>): string {
  if (typeof v === 'number') return v & ~0x1ff ? hex(v) : TCP_FLAG_NAMES.filter(([bit]) => v & bit).map(([, n]) => n).join('|') || '0';
  if ((v.mask & ~0x1ff) !== 0) return `${hex(v.value)}/${hex(v.mask)}`;
  return TCP_FLAG_NAMES.filter(([bit]) => v.mask & bit).map(([bit, n]) => `${v.value & bit ? '+' : '-'}${n}`).join('');
}

// CS_* bits of ct_state, in ovs-ofctl's order and spelling.
const CT_STATE_FLAGS: [number, string][] = [[0x01, 'new'], [0x02, 'est'], [0x04, 'rel'], [0x08, 'rpl'], [0x10, 'inv'], [0x20, 'trk'], [0x40, 'snat'], [0x80, 'dnat']];

/** `+trk-inv`: a set bit under the mask is +flag, a clear one -flag (unmasked: every bit counts). */
function ctStateText(v: number | Masked<number>): string {
  const value = typeof v === 'number' ? v : v.value;
  const mask = typeof v === 'number' ? 0xffffffff : v.mask;
  return CT_STATE_FLAGS.filter(([bit]) => mask & bit).map(([bit, name]) => `${value & bit ? '+' : '-'}${name}`).join('') || '0';
}

// Connection-tracking fields, printed before the protocol word as ovs-ofctl does.
const CT_MATCH_ORDER: [keyof Match, string, (v: never) => string][] = [
  ['ctState', 'ct_state', ctStateText],
  ['ctZone', 'ct_zone', (v: number) => String(v)],
  ['ctMark', 'ct_mark', (v: number | Masked<number>) => masked(v, hex)],
  ['ctLabel', 'ct_label', (v: bigint | Masked<bigint>) => masked(v, hex)],
];

function protoWord(m: Match): string | undefined {
  if (m.ethType === 0x0806) return 'arp';
  if (m.ethType === 0x86dd) return ({ 6: 'tcp6', 17: 'udp6', 58: 'icmp6', 132: 'sctp6' } as Record<number, string>)[m.ipProto ?? -1] ?? 'ipv6';
  if (m.ethType !== 0x0800) return undefined;
  return ({ 6: 'tcp', 17: 'udp', 1: 'icmp' } as Record<number, string>)[m.ipProto ?? -1] ?? 'ip';
}

/** `in_port=1,tcp,nw_src=10.0.0.2,...`; empty match → `*`. */
export function formatMatch(m: Match): string {
  const parts: string[] = [];
  if (m.inPort !== undefined) parts.push(`in_port=${portName(m.inPort)}`);
  for (const [key, name, show] of CT_MATCH_ORDER) {
    const v = m[key];
    if (v !== undefined) parts.push(`${name}=${(show as (x: unknown) => string)(v)}`);
  }
  const proto = protoWord(m);
  if (proto) parts.push(proto);
  else if (m.ethType !== undefined) parts.push(`dl_type=${hex(m.ethType)}`);
  if (m.ethType === 0x0800 && m.ipProto !== undefined && !['tcp', 'udp', 'icmp'].includes(proto ?? '')) parts.push(`nw_proto=${m.ipProto}`);
  if (m.ethType === 0x86dd && m.ipProto !== undefined && proto === 'ipv6') parts.push(`nw_proto=${m.ipProto}`);
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
  udpSrc: 'udp_src', udpDst: 'udp_dst', vlanVid: 'vlan_vid', ipDscp: 'ip_dscp', ipv6Src: 'ipv6_src', ipv6Dst: 'ipv6_dst',
  ipv6Flabel: 'ipv6_label', icmpv6Type: 'icmpv6_type', icmpv6Code: 'icmpv6_code', ipv6NdTarget: 'nd_target', ipv6NdSll: 'nd_sll',
  ipv6NdTll: 'nd_tll', ctMark: 'ct_mark', ctLabel: 'ct_label',
};

/** Fields as ovs-ofctl names them in actions' bit ranges (`NXM_NX_CT_LABEL[0..15]`). */
const FIELD_NXM_NAMES: Partial<Record<keyof Match, string>> = {
  ctMark: 'NXM_NX_CT_MARK', ctLabel: 'NXM_NX_CT_LABEL', ctState: 'NXM_NX_CT_STATE', ctZone: 'NXM_NX_CT_ZONE',
  ethDst: 'NXM_OF_ETH_DST', ethSrc: 'NXM_OF_ETH_SRC', ipv4Src: 'NXM_OF_IP_SRC', ipv4Dst: 'NXM_OF_IP_DST', tcpSrc: 'NXM_OF_TCP_SRC', tcpDst: 'NXM_OF_TCP_DST',
};

/** A bit range as ovs-ofctl prints it: `[]` for the whole field, `[n]` for one bit, `[a..b]` otherwise. */
function formatSubfield(sf: Subfield): string {
  const def = oxmDef(sf.field);
  const name = FIELD_NXM_NAMES[sf.field] ?? def?.name ?? sf.field;
  if (def && sf.ofs === 0 && sf.nBits === oxmBits(def)) return `${name}[]`;
  return sf.nBits === 1 ? `${name}[${sf.ofs}]` : `${name}[${sf.ofs}..${sf.ofs + sf.nBits - 1}]`;
}

/** nat(...) as ovs-ofctl prints it: `nat(dst=10.0.0.3:5001)`, `nat(src=[fd00::1]-[fd00::9]:1000-2000,random)`. */
function formatNat(a: Extract<Action, { type: 'nx_nat' }>): string {
  const parts: string[] = [];
  if (a.kind) {
    let range = '';
    if (a.ipMin !== undefined) {
      // ovs-ofctl brackets an IPv6 address only when a port follows.
      const bracket = a.ipMin.includes(':') && a.portMin !== undefined;
      const ip = (x: string): string => (bracket ? `[${x}]` : x);
      range = `=${ip(a.ipMin)}${a.ipMax !== undefined ? `-${ip(a.ipMax)}` : ''}`;
      if (a.portMin !== undefined) range += `:${a.portMin}${a.portMax !== undefined ? `-${a.portMax}` : ''}`;
    }
    parts.push(`${a.kind}${range}`);
    for (const f of ['persistent', 'hash', 'random'] as const) if (a[f]) parts.push(f);
  }
  return parts.length ? `nat(${parts.join(',')})` : 'nat';
}

export function formatAction(a: Action): string {
  switch (a.type) {
    case 'output':
      return a.port === OFPP.CONTROLLER ? `CONTROLLER:${a.maxLen ?? 0xffff}` : `output:${portName(a.port)}`;
    case 'set_field': {
      const [k, v] = Object.entries(a.field).find(([key]) => key !== 'unknownOxm') ?? ['unknown', '?'];
      const name = SET_FIELD_NAMES[k as keyof Match] ?? k;
      // ovs-ofctl prints a flow label in hex, other numbers in decimal.
      const text = k === 'ipv6Flabel' && typeof v === 'number' ? hex(v) : k === 'ctMark' && typeof v === 'number' ? hexValue(v) : typeof v === 'bigint' ? hexValue(v) : typeof v === 'object' && v !== null ? JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? hex(x) : x)) : String(v);
      return `set_field:${text}->${name}`;
    }
    case 'nx_inc_tcp_seq': return `inc_tcp_seq:${a.delta}`;
    case 'nx_dec_tcp_seq': return `dec_tcp_seq:${a.delta}`;
    case 'nx_inc_tcp_ack': return `inc_tcp_ack:${a.delta}`;
    case 'nx_dec_tcp_ack': return `dec_tcp_ack:${a.delta}`;
    case 'nx_note': return `note:${[...a.data].map((b) => b.toString(16).padStart(2, '0')).join('.')}`;
    case 'nx_resubmit': return `resubmit(${a.inPort === OFPP.IN_PORT ? '' : portName(a.inPort)},${a.tableId ?? ''})`;
    case 'nx_ct': {
      // ovs-ofctl's order: flags, table, zone (omitted when 0), exec, alg.
      const args = [...(a.commit ? ['commit'] : []), ...(a.force ? ['force'] : []), ...(a.table !== undefined ? [`table=${a.table}`] : []), ...(a.zone ? [`zone=${a.zone}`] : [])];
      // A nat first among the nested actions is printed outside exec().
      const nested = a.actions ?? [];
      const nat = nested[0]?.type === 'nx_nat' ? nested[0] : undefined;
      if (nat) args.push(formatAction(nat));
      const rest = nat ? nested.slice(1) : nested;
      if (rest.length) args.push(`exec(${rest.map(formatAction).join(',')})`);
      if (a.alg) args.push(`alg=${a.alg}`);
      return `ct(${args.join(',')})`;
    }
    case 'nx_output_reg': return `output:${formatSubfield(a)}`;
    case 'nx_inc_tcp_seq_reg': return `inc_tcp_seq:${formatSubfield(a)}`;
    case 'nx_dec_tcp_seq_reg': return `dec_tcp_seq:${formatSubfield(a)}`;
    case 'nx_inc_tcp_ack_reg': return `inc_tcp_ack:${formatSubfield(a)}`;
    case 'nx_dec_tcp_ack_reg': return `dec_tcp_ack:${formatSubfield(a)}`;
    case 'nx_reg_move': return `move:${formatSubfield(a.src)}->${formatSubfield(a.dst)}`;
    case 'nx_nat': return formatNat(a);
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

export type FlowRole = 'main' | 'flags' | 'freeze' | 'freeze-copy' | 'transit' | 'closing' | 'leg' | 'ct-exit' | 'other';

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
  /** Fabric: the switch of a transit flow (another than the connection's own). */
  dpid?: string;
}

const ROLE_NAMES = new Map<bigint, FlowRole>([
  [CONN_ROLE.main, 'main'], [CONN_ROLE.flags, 'flags'], [CONN_ROLE.freeze, 'freeze'], [CONN_ROLE.freezeCopy, 'freeze-copy'],
  [CONN_ROLE.transit, 'transit'], [CONN_ROLE.closing, 'closing'], [CONN_ROLE.leg, 'leg'], [CONN_ROLE.ctExit, 'ct-exit'],
]);

function roleOf(cookie: bigint): FlowRole {
  return ROLE_NAMES.get(connRoleOf(cookie)) ?? 'other';
}

/** A flow-stats entry in readable form; `clientIp` tells the two directions apart. */
export function flowView(f: FlowStats, clientIp?: string): FlowView {
  const srcField = f.match.ipv4Src ?? f.match.ipv6Src;
  const src = typeof srcField === 'string' ? srcField : srcField?.value;
  return {
    cookie: '0x' + f.cookie.toString(16),
    role: connIdOf(f.cookie) === undefined ? 'other' : roleOf(f.cookie),
    direction: clientIp && src ? (src === clientIp ? 'client→backend' : 'backend→client') : undefined,
    tableId: f.tableId, priority: f.priority, idleTimeout: f.idleTimeout, hardTimeout: f.hardTimeout,
    durationSec: f.durationSec,
    // Counts beyond 2^53 are not reachable by any test bed; Number keeps the JSON plain.
    packets: Number(f.packetCount), bytes: Number(f.byteCount),
    match: formatMatch(f.match), ...(f.undecodable !== undefined ? { actions: `(not decoded: ${f.undecodable})` } : actionsAndState(f.instructions)),
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
