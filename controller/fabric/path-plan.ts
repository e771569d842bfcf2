// Every flow the fabric installs, as pure functions of the topology. Forwarding is by destination:
// on each switch one flow per host, `eth_dst=<host> → output:<port towards it>` (the host's own
// port on its switch, the next hop elsewhere), so all the flows for one host form a tree rooted at
// its switch. Recomputing them all from one topology keeps that tree loop-free when links change.
//
// With VLANs (vlans.ts) one such decision is rendered as several flows, one per way a frame of the
// host's VLAN can enter the switch: tagged over a trunk (`vlan_vid=<vid>`), or untagged at each of
// the VLAN's access ports there (`in_port=<p>,vlan_vid=none`); each pushes or pops the tag as the
// frame goes from trunk to access port or back. Guard flows keep the domains apart (see
// PRIORITY_OFFSET). Without VLANs nothing of this exists and the flows are as they always were.
import { OFPP, OFPCML_NO_BUFFER, OFPFF, OFPVID, flowMod, type Action, type FlowMod, type FlowStats, type Match } from '../openflow/index.ts';
import { APP_ID, appCookie, cookieApp, COOKIE_APP_MASK } from '../cookies.ts';
import { ETHERTYPE_LLDP } from '../packet/lldp.ts';
import { hostKey, splitHostKey, type Topology } from './topology.ts';
import { outputActions, type VlanPlan } from './vlans.ts';

/** Low bits of the fabric's cookies: which kind of flow (bits 0-31); a path flow's VLAN sits in bits 32-43. */
export const FABRIC_ROLE = { path: 0n, lldp: 1n, accessGuard: 2n, edgeGuard: 3n, ndTrap: 4n } as const;
export const PATH_COOKIE = appCookie(APP_ID.fabric, FABRIC_ROLE.path);
export const LLDP_COOKIE = appCookie(APP_ID.fabric, FABRIC_ROLE.lldp);
export const ACCESS_GUARD_COOKIE = appCookie(APP_ID.fabric, FABRIC_ROLE.accessGuard);
export const EDGE_GUARD_COOKIE = appCookie(APP_ID.fabric, FABRIC_ROLE.edgeGuard);
/** Neighbour advertisements to the controller (host-directory.ts naTrapFlow), at P + PRIORITY_OFFSET.ndTrap. */
export const ND_TRAP_COOKIE = appCookie(APP_ID.fabric, FABRIC_ROLE.ndTrap);
const ALL_ONES = 0xffffffffffffffffn;
const ROLE_MASK = 0xffffffffn;
const VLAN_SHIFT = 32n;
/** Selects every path flow, whatever its VLAN. */
const PATH_ROLE_MASK = COOKIE_APP_MASK | ROLE_MASK;

/** The cookie of a host's path flows: its VLAN in it, so that one delete takes all of a host's flows in one VLAN. */
export function pathCookie(vlan?: number): bigint { return vlan === undefined ? PATH_COOKIE : PATH_COOKIE | (BigInt(vlan) << VLAN_SHIFT); }
/** A path flow's cookie → {vlan}; undefined for any other cookie. */
export function pathCookieVlan(cookie: bigint): { vlan?: number } | undefined {
  if (cookieApp(cookie) !== APP_ID.fabric || (cookie & ROLE_MASK) !== FABRIC_ROLE.path) return undefined;
  const v = Number((cookie >> VLAN_SHIFT) & 0xfffn);
  return v === 0 ? {} : { vlan: v };
}

/**
 * Priorities above `learning.priority` (P). With VLANs: P + 4 drops tagged frames at every port
 * that is no link (a host cannot hop into a VLAN by tagging its frames); P + 2 are the VLAN hosts'
 * flows; P + 1 sends whatever else enters at an access port to the controller, so that the
 * no-VLAN domain's flows (P, `vlan_vid=none`) never see an access port's frames. With or without:
 * P + 3 traps neighbour advertisements, above every forwarding flow.
 */
export const PRIORITY_OFFSET = { accessGuard: 1, path: 2, ndTrap: 3, edgeGuard: 4 } as const;
/** The highest base priority VLAN mode can use (the edge guard sits 4 above). */
export const MAX_VLAN_BASE_PRIORITY = 0xffff - PRIORITY_OFFSET.edgeGuard;
/** Table 0, above everything else there: LLDP is never service traffic, and never forwarded. */
export const LLDP_PRIORITY = 65000;
export const TABLE = 0;

export interface PathFlowOptions { priority: number; idleTimeout: number; hardTimeout: number }
/** One forwarding decision: on switch `dpid`, frames for `mac` (in `vlan`; absent: no VLAN) leave by `port`. */
export interface PathFlow { dpid: string; mac: string; port: number; vlan?: number }
/** What each switch holds: dpid → (host key, topology.ts → output port). */
export type FlowTable = Map<string, Map<string, number>>;

/** Sends LLDP to the controller in full. */
export function lldpTrapFlow(): FlowMod {
  return flowMod({
    command: 'add', tableId: TABLE, priority: LLDP_PRIORITY, cookie: LLDP_COOKIE,
    match: { ethType: ETHERTYPE_LLDP },
    instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: OFPP.CONTROLLER, maxLen: OFPCML_NO_BUFFER }] }],
  });
}

/** Installs (or replaces: same match and priority) one forwarding flow. FLOW_REMOVED tells when it idles out. */
export function pathFlowMod(f: PathFlow, o: PathFlowOptions): FlowMod {
  return flowMod({
    command: 'add', tableId: TABLE, priority: o.priority, cookie: PATH_COOKIE,
    idleTimeout: o.idleTimeout, hardTimeout: o.hardTimeout, flags: OFPFF.SEND_FLOW_REM,
    match: { ethDst: f.mac },
    instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: f.port }] }],
  });
}

/**
 * The flows that carry out one decision. Without a VLAN plan: the single `eth_dst` flow above.
 * With one, a host in the no-VLAN domain gets `vlan_vid=none,eth_dst` (priority P), a host in a
 * VLAN one flow for tagged ingress and one per access port of its VLAN on the switch (P + 2), the
 * output port's side deciding push or pop. Every decision on a switch renders the same matches
 * whatever its port, so re-pointing replaces them all (Flow-Mod `add`).
 */
export function pathFlowMods(f: PathFlow, o: PathFlowOptions, plan?: VlanPlan): FlowMod[] {
  if (!plan) return [pathFlowMod(f, o)];
  const common = {
    command: 'add' as const, tableId: TABLE, cookie: pathCookie(f.vlan),
    idleTimeout: o.idleTimeout, hardTimeout: o.hardTimeout, flags: OFPFF.SEND_FLOW_REM,
  };
  const mod = (priority: number, match: Match, actions: Action[]) => flowMod({ ...common, priority, match, instructions: [{ type: 'apply_actions', actions }] });
  if (f.vlan === undefined) return [mod(o.priority, { vlanVid: OFPVID.NONE, ethDst: f.mac }, [{ type: 'output', port: f.port }])];
  const outVlan = plan.vlanOf(f.dpid, f.port);
  // Out of an access port of another VLAN, or an edge port in no VLAN: never (it would join two domains).
  if (outVlan !== undefined && outVlan !== f.vlan) return [];
  const toAccess = outVlan === f.vlan;
  const [untagged, tagged] = toAccess ? [[f.port], []] : [[], [f.port]];
  const priority = o.priority + PRIORITY_OFFSET.path;
  return [
    mod(priority, { vlanVid: OFPVID.PRESENT | f.vlan, ethDst: f.mac }, outputActions(f.vlan, true, untagged, tagged)),
    ...plan.accessPorts(f.dpid, f.vlan).map((inPort) => mod(priority, { inPort, vlanVid: OFPVID.NONE, ethDst: f.mac }, outputActions(f.vlan, false, untagged, tagged))),
  ];
}

/** Removes one host's forwarding flow from a switch (exactly that flow). */
export function deletePathFlowMod(mac: string, priority: number): FlowMod {
  return flowMod({ command: 'delete_strict', tableId: TABLE, priority, cookie: PATH_COOKIE, cookieMask: ALL_ONES, match: { ethDst: mac }, outPort: OFPP.ANY });
}

/** With VLANs: removes every flow of one host (MAC in a VLAN, or in none) from a switch, by its cookie. */
export function deleteHostFlowsMod(mac: string, vlan?: number): FlowMod {
  return flowMod({ command: 'delete', tableId: TABLE, cookie: pathCookie(vlan), cookieMask: ALL_ONES, match: { ethDst: mac }, outPort: OFPP.ANY });
}

/** Removes every forwarding flow of the fabric (of any VLAN) that outputs to `port` (a port that went down). */
export function deleteFlowsToPortMod(port: number): FlowMod {
  return flowMod({ command: 'delete', tableId: TABLE, cookie: PATH_COOKIE, cookieMask: PATH_ROLE_MASK, match: {}, outPort: port });
}

/** With VLANs: what enters at access port `port` and no VLAN flow takes goes to the controller (P + 1). */
export function accessGuardMod(port: number, base: number): FlowMod {
  return flowMod({
    command: 'add', tableId: TABLE, priority: base + PRIORITY_OFFSET.accessGuard, cookie: ACCESS_GUARD_COOKIE, match: { inPort: port },
    instructions: [{ type: 'apply_actions', actions: [{ type: 'output', port: OFPP.CONTROLLER, maxLen: OFPCML_NO_BUFFER }] }],
  });
}

/** With VLANs: a tagged frame entering at `port` (no link there) is dropped (P + 4). `remove`: the strict delete of that guard. */
export function edgeGuardMod(port: number, base: number, remove = false): FlowMod {
  const match: Match = { inPort: port, vlanVid: { value: OFPVID.PRESENT, mask: OFPVID.PRESENT } };
  const priority = base + PRIORITY_OFFSET.edgeGuard;
  if (remove) return flowMod({ command: 'delete_strict', tableId: TABLE, priority, cookie: EDGE_GUARD_COOKIE, cookieMask: ALL_ONES, match, outPort: OFPP.ANY });
  return flowMod({ command: 'add', tableId: TABLE, priority, cookie: EDGE_GUARD_COOKIE, match, instructions: [] });
}

/** With VLANs: the ports of a switch that take no tagged frame, i.e. every port that is no link's end. */
export function edgeGuardPorts(topo: Topology, dpid: string, plan: VlanPlan): Set<number> {
  const ports = new Set<number>(plan.accessPortsOn(dpid));
  for (const [port] of topo.ports(dpid)) if (!topo.isLinkPort(dpid, port)) ports.add(port);
  return ports;
}

/** Removes every forwarding flow of the fabric for `mac` (the host moved or left). */
export function deleteFlowsForHostMod(mac: string): FlowMod {
  return flowMod({ command: 'delete', tableId: TABLE, cookie: appCookie(APP_ID.fabric), cookieMask: COOKIE_APP_MASK, match: { ethDst: mac }, outPort: OFPP.ANY });
}

/**
 * The flows that carry a frame for `mac` (in `vlan`) from switch `from` to the host: one per switch
 * on the shortest path, the host's own switch first (installing in that order means a switch starts
 * sending towards a neighbour that already knows the way). Undefined: host unknown or unreachable.
 */
export function flowsAlongPath(topo: Topology, from: string, mac: string, vlan?: number): PathFlow[] | undefined {
  const host = topo.host(mac, vlan);
  if (!host) return undefined;
  const path = topo.path(from, host.dpid);
  if (!path) return undefined;
  const v = vlan === undefined ? {} : { vlan };
  return path.map((hop) => ({ dpid: hop.dpid, mac, port: hop.outPort ?? host.port, ...v })).reverse();
}

export interface Reconcile {
  /** Flows to install or re-point, nearest to their host first. */
  set: PathFlow[];
  /** Flows to remove: their host is unknown and their port is gone, or their host is unreachable. */
  remove: { dpid: string; mac: string; vlan?: number }[];
}

/**
 * Brings what the switches hold in line with the topology: every installed flow whose host is
 * known is re-pointed to the current shortest path (or removed when there is none), and a
 * re-pointed flow gets the rest of its new path too, so that re-routed traffic does not stop at
 * each new switch to ask the controller. A flow whose host is unknown (adopted from a switch
 * after a restart) is kept while its port is up: nothing says it is wrong. `keys` (host keys,
 * topology.ts: the MAC without VLANs) limits the work to some hosts (one that moved).
 */
export function planReconcile(topo: Topology, installed: FlowTable, keys?: ReadonlySet<string>): Reconcile {
  const set = new Map<string, PathFlow & { dist: number }>();
  const remove: { dpid: string; mac: string; vlan?: number }[] = [];
  const want = (f: PathFlow, dst: string) => {
    if (installed.get(f.dpid)?.get(hostKey(f.mac, f.vlan)) !== f.port) set.set(`${f.dpid}/${hostKey(f.mac, f.vlan)}`, { ...f, dist: topo.distance(f.dpid, dst) ?? 0 });
  };
  for (const [dpid, flows] of installed) {
    for (const [key, have] of flows) {
      if (keys && !keys.has(key)) continue;
      const { mac, vlan } = splitHostKey(key);
      const v = vlan === undefined ? {} : { vlan };
      const host = topo.host(mac, vlan);
      if (!host) {
        if (topo.portInfo(dpid, have)?.up !== true) remove.push({ dpid, mac, ...v });
        continue;
      }
      const port = topo.hasSwitch(dpid) ? topo.portTowardsHost(dpid, mac, vlan) : undefined;
      if (port === undefined) { remove.push({ dpid, mac, ...v }); continue; }
      if (port === have) continue;
      for (const f of flowsAlongPath(topo, dpid, mac, vlan) ?? []) if (installed.has(f.dpid)) want(f, host.dpid);
    }
  }
  const out = [...set.values()].sort((x, y) => x.dist - y.dist || (x.dpid < y.dpid ? -1 : x.dpid > y.dpid ? 1 : 0) || (x.mac < y.mac ? -1 : x.mac > y.mac ? 1 : (x.vlan ?? 0) - (y.vlan ?? 0)));
  return { set: out.map(({ dist: _, ...f }) => f), remove };
}

/** What a connecting switch holds of the fabric's flows, sorted out (see adoptFlows). */
export interface Adopted {
  /** Forwarding decisions: host key → output port. */
  paths: Map<string, number>;
  /** How many flows render each decision (several with VLANs). */
  renderings: Map<string, number>;
  /** Ports with an edge guard (VLANs). */
  edgeGuards: Set<number>;
  /** Fabric flows that do not fit the configuration (VLANs added, removed or changed since): to delete. */
  stray: FlowStats[];
}

/**
 * Sorts the fabric's flows read back from a switch (a controller restart, a reconnect). Path flows
 * that fit the VLAN plan (or the lack of one) are adopted; so are edge guards; the LLDP flow and
 * access guards are installed again anyway; anything else of the fabric's is stray.
 */
export function adoptFlows(flows: readonly FlowStats[], plan: VlanPlan | undefined, dpid: string): Adopted {
  const out: Adopted = { paths: new Map(), renderings: new Map(), edgeGuards: new Set(), stray: [] };
  for (const f of flows) {
    if (cookieApp(f.cookie) !== APP_ID.fabric) continue;
    const role = f.cookie & ROLE_MASK;
    if (f.cookie === LLDP_COOKIE || f.cookie === ND_TRAP_COOKIE) continue;
    if (f.cookie === ACCESS_GUARD_COOKIE && plan && f.match.inPort !== undefined && plan.vlanOf(dpid, f.match.inPort) !== undefined) continue;
    if (f.cookie === EDGE_GUARD_COOKIE && plan && f.match.inPort !== undefined) { out.edgeGuards.add(f.match.inPort); continue; }
    const path = role === FABRIC_ROLE.path ? pathCookieVlan(f.cookie) : undefined;
    const port = outputPort(f);
    const fits = path !== undefined && f.tableId === TABLE && typeof f.match.ethDst === 'string' && port !== undefined && (
      !plan ? path.vlan === undefined && f.match.vlanVid === undefined
        : path.vlan === undefined ? f.match.vlanVid === OFPVID.NONE && f.match.inPort === undefined : plan.has(path.vlan));
    if (!fits) { out.stray.push(f); continue; }
    const key = hostKey(f.match.ethDst as string, path!.vlan);
    out.paths.set(key, port!);
    out.renderings.set(key, (out.renderings.get(key) ?? 0) + 1);
  }
  return out;
}

function outputPort(f: FlowStats): number | undefined {
  const apply = f.instructions.find((i) => i.type === 'apply_actions');
  const output = apply && 'actions' in apply ? apply.actions.find((a) => a.type === 'output') : undefined;
  return output && output.type === 'output' ? output.port : undefined;
}

/** Forwarding flows read back from a switch without VLANs: host MAC → output port. */
export function adoptPathFlows(flows: readonly FlowStats[]): Map<string, number> {
  return adoptFlows(flows, undefined, '').paths;
}

/** The strict delete of a stray flow found on a switch: exactly it, nothing that shares its match. */
export function deleteStrayMod(f: FlowStats): FlowMod {
  return flowMod({ command: 'delete_strict', tableId: f.tableId, priority: f.priority, cookie: f.cookie, cookieMask: ALL_ONES, match: f.match, outPort: OFPP.ANY });
}

/**
 * Hosts an adopted table reveals: a flow that outputs to an edge port (no link there) says its
 * host sits there. Only asked once links had time to be discovered.
 */
export function hostsFromFlows(topo: Topology, dpid: string, flows: ReadonlyMap<string, number>): { mac: string; port: number; vlan?: number }[] {
  const found: { mac: string; port: number; vlan?: number }[] = [];
  for (const [key, port] of flows) {
    const { mac, vlan } = splitHostKey(key);
    if (topo.host(mac, vlan) || topo.isLinkPort(dpid, port) || topo.portInfo(dpid, port)?.up !== true) continue;
    found.push({ mac, port, ...(vlan === undefined ? {} : { vlan }) });
  }
  return found.sort((x, y) => (x.mac < y.mac ? -1 : x.mac > y.mac ? 1 : (x.vlan ?? 0) - (y.vlan ?? 0)));
}
