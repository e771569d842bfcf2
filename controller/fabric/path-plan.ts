// Every flow the fabric installs, as pure functions of the topology. Forwarding is by destination:
// on each switch one flow per host, `eth_dst=<host> → output:<port towards it>` (the host's own
// port on its switch, the next hop elsewhere), so all the flows for one host form a tree rooted at
// its switch. Recomputing them all from one topology keeps that tree loop-free when links change.
import { OFPP, OFPCML_NO_BUFFER, OFPFF, flowMod, type FlowMod, type FlowStats } from '../openflow/index.ts';
import { APP_ID, appCookie, COOKIE_APP_MASK } from '../cookies.ts';
import { ETHERTYPE_LLDP } from '../packet/lldp.ts';
import type { Topology } from './topology.ts';

/** Low bits of the fabric's cookies: which kind of flow. */
export const FABRIC_ROLE = { path: 0n, lldp: 1n } as const;
export const PATH_COOKIE = appCookie(APP_ID.fabric, FABRIC_ROLE.path);
export const LLDP_COOKIE = appCookie(APP_ID.fabric, FABRIC_ROLE.lldp);
const ALL_ONES = 0xffffffffffffffffn;
/** Table 0, above everything else there: LLDP is never service traffic, and never forwarded. */
export const LLDP_PRIORITY = 65000;
export const TABLE = 0;

export interface PathFlowOptions { priority: number; idleTimeout: number; hardTimeout: number }
/** One forwarding flow: on switch `dpid`, frames for `mac` leave by `port`. */
export interface PathFlow { dpid: string; mac: string; port: number }
/** What each switch holds: dpid → (host MAC → output port). */
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

/** Removes one host's forwarding flow from a switch (exactly that flow). */
export function deletePathFlowMod(mac: string, priority: number): FlowMod {
  return flowMod({ command: 'delete_strict', tableId: TABLE, priority, cookie: PATH_COOKIE, cookieMask: ALL_ONES, match: { ethDst: mac }, outPort: OFPP.ANY });
}

/** Removes every forwarding flow of the fabric that outputs to `port` (a port that went down). */
export function deleteFlowsToPortMod(port: number): FlowMod {
  return flowMod({ command: 'delete', tableId: TABLE, cookie: PATH_COOKIE, cookieMask: ALL_ONES, match: {}, outPort: port });
}

/** Removes every forwarding flow of the fabric for `mac` (the host moved or left). */
export function deleteFlowsForHostMod(mac: string): FlowMod {
  return flowMod({ command: 'delete', tableId: TABLE, cookie: appCookie(APP_ID.fabric), cookieMask: COOKIE_APP_MASK, match: { ethDst: mac }, outPort: OFPP.ANY });
}

/**
 * The flows that carry a frame for `mac` from switch `from` to the host: one per switch on the
 * shortest path, the host's own switch first (installing in that order means a switch starts
 * sending towards a neighbour that already knows the way). Undefined: host unknown or unreachable.
 */
export function flowsAlongPath(topo: Topology, from: string, mac: string): PathFlow[] | undefined {
  const host = topo.host(mac);
  if (!host) return undefined;
  const path = topo.path(from, host.dpid);
  if (!path) return undefined;
  return path.map((hop) => ({ dpid: hop.dpid, mac, port: hop.outPort ?? host.port })).reverse();
}

export interface Reconcile {
  /** Flows to install or re-point, nearest to their host first. */
  set: PathFlow[];
  /** Flows to remove: their host is unknown and their port is gone, or their host is unreachable. */
  remove: { dpid: string; mac: string }[];
}

/**
 * Brings what the switches hold in line with the topology: every installed flow whose host is
 * known is re-pointed to the current shortest path (or removed when there is none), and a
 * re-pointed flow gets the rest of its new path too, so that re-routed traffic does not stop at
 * each new switch to ask the controller. A flow whose host is unknown (adopted from a switch
 * after a restart) is kept while its port is up: nothing says it is wrong. `macs` limits the work
 * to some hosts (one that moved).
 */
export function planReconcile(topo: Topology, installed: FlowTable, macs?: ReadonlySet<string>): Reconcile {
  const set = new Map<string, PathFlow & { dist: number }>();
  const remove: { dpid: string; mac: string }[] = [];
  const want = (dpid: string, mac: string, dst: string, port: number) => {
    if (installed.get(dpid)?.get(mac) !== port) set.set(`${dpid}/${mac}`, { dpid, mac, port, dist: topo.distance(dpid, dst) ?? 0 });
  };
  for (const [dpid, flows] of installed) {
    for (const [mac, have] of flows) {
      if (macs && !macs.has(mac)) continue;
      const host = topo.host(mac);
      if (!host) {
        if (topo.portInfo(dpid, have)?.up !== true) remove.push({ dpid, mac });
        continue;
      }
      const port = topo.hasSwitch(dpid) ? topo.portTowardsHost(dpid, mac) : undefined;
      if (port === undefined) { remove.push({ dpid, mac }); continue; }
      if (port === have) continue;
      for (const f of flowsAlongPath(topo, dpid, mac) ?? []) if (installed.has(f.dpid)) want(f.dpid, mac, host.dpid, f.port);
    }
  }
  const out = [...set.values()].sort((x, y) => x.dist - y.dist || (x.dpid < y.dpid ? -1 : x.dpid > y.dpid ? 1 : 0) || (x.mac < y.mac ? -1 : 1));
  return { set: out.map(({ dpid, mac, port }) => ({ dpid, mac, port })), remove };
}

/** Forwarding flows read back from a switch (a controller restart): host MAC → output port. */
export function adoptPathFlows(flows: readonly FlowStats[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of flows) {
    if (f.cookie !== PATH_COOKIE || f.tableId !== TABLE || typeof f.match.ethDst !== 'string') continue;
    const apply = f.instructions.find((i) => i.type === 'apply_actions');
    const output = apply && 'actions' in apply ? apply.actions.find((a) => a.type === 'output') : undefined;
    if (output && output.type === 'output') out.set(f.match.ethDst, output.port);
  }
  return out;
}

/**
 * Hosts an adopted table reveals: a flow that outputs to an edge port (no link there) says its
 * host sits there. Only asked once links had time to be discovered.
 */
export function hostsFromFlows(topo: Topology, dpid: string, flows: ReadonlyMap<string, number>): { mac: string; port: number }[] {
  const found: { mac: string; port: number }[] = [];
  for (const [mac, port] of flows) {
    if (topo.host(mac) || topo.isLinkPort(dpid, port) || topo.portInfo(dpid, port)?.up !== true) continue;
    found.push({ mac, port });
  }
  return found.sort((x, y) => (x.mac < y.mac ? -1 : 1));
}
