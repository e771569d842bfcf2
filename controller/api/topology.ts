// GET /api/topology: what the dashboard's topology view draws. Switches, the hosts the controller
// has seen on their ports (learning switch: IP → MAC, datapath, port), the services' backends
// with the port each was seen on, and every tracked connection from its client to the backend
// that serves it now. Links between switches come from the fabric app (`fabric` in the config,
// docs/fabric.md); without it each switch stands alone and `links` is empty.
import type { Controller } from '../controller.ts';
import { endpointIp } from '../handoff/connection.ts';
import { addressesOf } from '../handoff/service-config.ts';

export interface TopologyHost { ip: string; mac: string; dpid: string; port: number; lastSeen: string; roles: string[] }
export interface TopologyBackend { service: string; name: string; address: string; address6?: string; port: number; primary: boolean; dpid?: string; ofport?: number; connections: number }
export interface TopologyConnection { id: number; service: string; dpid: string; client: string; backend: string; backendAddress: string; phase: string; migrations: number }
export interface TopologyView {
  switches: { dpid: string; remote: string; mode: string; ports: number[] }[];
  hosts: TopologyHost[];
  backends: TopologyBackend[];
  connections: TopologyConnection[];
  /** `tree`: the link is on the spanning tree broadcasts are flooded along. */
  links: { a: { dpid: string; port: number }; b: { dpid: string; port: number }; tree: boolean }[];
}

export function topologyView(controller: Controller): TopologyView {
  const engine = controller.engine;
  const views = engine.connections().filter((v) => v.phase !== 'closed');
  const hostsByIp = controller.learning.hosts;
  const roles = new Map<string, Set<string>>();
  const role = (ip: string, r: string) => { let s = roles.get(ip); if (!s) roles.set(ip, (s = new Set())); s.add(r); };
  const backends: TopologyBackend[] = [];
  for (const s of engine.listServices()) {
    for (const b of s.backends) {
      for (const a of addressesOf(b)) role(a, `backend ${s.name}/${b.name}`);
      const at = addressesOf(b).map((a) => hostsByIp.get(a)).find((h) => h !== undefined);
      backends.push({
        service: s.name, name: b.name, address: b.address, ...(b.address6 !== undefined && { address6: b.address6 }), port: b.port, primary: b.name === s.primary,
        ...(at ? { dpid: at.dpid, ofport: at.port } : {}),
        connections: views.filter((v) => v.service === s.name && v.backend === b.name).length,
      });
    }
  }
  for (const v of views) role(endpointIp(v.client), 'client');
  const hosts: TopologyHost[] = [...hostsByIp].map(([ip, h]) => ({ ip, mac: h.mac, dpid: h.dpid, port: h.port, lastSeen: new Date(h.seen).toISOString(), roles: [...(roles.get(ip) ?? [])] }))
    .sort((a, b) => a.dpid.localeCompare(b.dpid) || a.port - b.port || a.ip.localeCompare(b.ip));
  const switches = controller.switches.map((sw) => {
    const dpid = sw.describe();
    return { dpid, remote: sw.remote, mode: engine.modeOf(dpid) ?? 'unknown', ports: [...new Set(hosts.filter((h) => h.dpid === dpid).map((h) => h.port))].sort((a, b) => a - b) };
  });
  const connections = views.map((v) => ({ id: v.id, service: v.service, dpid: v.dpid, client: v.client, backend: v.backend, backendAddress: v.backendAddress, phase: v.phase, migrations: v.migrations }))
    .sort((a, b) => a.id - b.id);
  const fabric = controller.fabric?.describe();
  const onTree = new Set(fabric?.tree.map((l) => `${l.a.dpid}:${l.a.port}-${l.b.dpid}:${l.b.port}`));
  const links = (fabric?.links ?? []).map((l) => ({ a: { dpid: l.a.dpid, port: l.a.port }, b: { dpid: l.b.dpid, port: l.b.port }, tree: onTree.has(`${l.a.dpid}:${l.a.port}-${l.b.dpid}:${l.b.port}`) }));
  return { switches, hosts, backends, connections, links };
}
