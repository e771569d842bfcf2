// The fabric as the controller knows it: switches and their ports, links between switches
// (learnt from LLDP or configured), and hosts attached to edge ports (ports with no switch on the
// other end). Pure: no I/O, no timers (the caller passes the time), deterministic answers.
//
// A host is a MAC in a VLAN (vlans.ts): the same MAC in two VLANs is two hosts. Its key is the MAC
// alone in the no-VLAN domain (so a fabric without VLANs names hosts by MAC, as it always did) and
// "<mac>@<vlan>" in a VLAN.
//
// Paths are hop counts (BFS). Ties are broken the same way every time, whatever order things were
// learnt in: the next hop towards a switch is the neighbour with the lowest datapath id among
// those on a shortest path, then the lowest local port. The spanning tree used for flooding is a
// BFS from the lowest datapath id of each connected part, visiting neighbours in that same order.

export interface PortRef { dpid: string; port: number }
export type LinkSource = 'lldp' | 'config';
/** An undirected link; `a` is the lower end (by dpid, then port). */
export interface Link { a: PortRef; b: PortRef; source: LinkSource; seen: number }
/** `vlan` is absent for a host in the no-VLAN domain. */
export interface HostAttachment { mac: string; dpid: string; port: number; seen: number; vlan?: number }
export interface PortInfo { up: boolean; hwAddr?: string }
export type HostLearnt = 'new' | 'moved' | 'same' | 'refused';

export const portKey = (r: PortRef): string => `${r.dpid}:${r.port}`;
/** A host's key: its MAC in the no-VLAN domain, "<mac>@<vlan>" in a VLAN. */
export const hostKey = (mac: string, vlan?: number): string => (vlan === undefined ? mac : `${mac}@${vlan}`);
export function splitHostKey(key: string): { mac: string; vlan?: number } {
  const at = key.indexOf('@');
  return at < 0 ? { mac: key } : { mac: key.slice(0, at), vlan: Number(key.slice(at + 1)) };
}
const cmpRef = (x: PortRef, y: PortRef): number => (x.dpid < y.dpid ? -1 : x.dpid > y.dpid ? 1 : x.port - y.port);
function ordered(x: PortRef, y: PortRef): [PortRef, PortRef] { return cmpRef(x, y) <= 0 ? [x, y] : [y, x]; }
const linkKey = (x: PortRef, y: PortRef): string => { const [a, b] = ordered(x, y); return `${portKey(a)}-${portKey(b)}`; };

/** One direction of a usable link, seen from `port` on the switch whose adjacency list holds it. */
interface Edge { port: number; peer: PortRef }

export class Topology {
  private readonly switches = new Map<string, Map<number, PortInfo>>();
  private readonly links = new Map<string, Link>();
  /** Port key → the link at that port (configured links included, usable or not). */
  private readonly byPort = new Map<string, Link>();
  /** Host key → where it is attached. */
  private readonly hostsByKey = new Map<string, HostAttachment>();
  /** MAC → the VLANs it was learnt in (only MACs learnt in some VLAN), for lookups by MAC alone. */
  private readonly vlansOfMac = new Map<string, Set<number>>();
  /** Bumped on every change that can alter paths or flooding; caches below are per version. */
  private _version = 0;
  private adjacency?: Map<string, Edge[]>;
  private readonly distances = new Map<string, Map<string, number>>();
  private tree?: Set<string>;

  /** `maxHosts`: beyond it the oldest host is forgotten (random source MACs must not grow it without bound). */
  constructor(private readonly maxHosts = 65536) {}

  get version(): number { return this._version; }

  private changed(): void {
    this._version++;
    this.adjacency = undefined;
    this.distances.clear();
    this.tree = undefined;
  }

  // ── switches and ports ──────────────────────────────────────────────────────────────────────

  hasSwitch(dpid: string): boolean { return this.switches.has(dpid); }
  switchIds(): string[] { return [...this.switches.keys()].sort(); }
  ports(dpid: string): [number, PortInfo][] { return [...(this.switches.get(dpid) ?? [])].sort((x, y) => x[0] - y[0]); }
  portInfo(dpid: string, port: number): PortInfo | undefined { return this.switches.get(dpid)?.get(port); }

  /** A switch connected (again): its ports as the switch describes them. Replaces what was known of it. */
  addSwitch(dpid: string, ports: { port: number; up: boolean; hwAddr?: string }[]): void {
    this.dropSwitchLinks(dpid);
    this.switches.set(dpid, new Map(ports.map((p) => [p.port, { up: p.up, ...(p.hwAddr ? { hwAddr: p.hwAddr } : {}) }])));
    this.changed();
  }

  /** The switch is gone: its learnt links go with it (configured ones stay, unusable until it is back). Returns the usable links lost. */
  removeSwitch(dpid: string): Link[] {
    if (!this.switches.has(dpid)) return [];
    const lost = this.dropSwitchLinks(dpid);
    this.switches.delete(dpid);
    this.changed();
    return lost;
  }

  private dropSwitchLinks(dpid: string): Link[] {
    const lost: Link[] = [];
    for (const l of [...this.links.values()]) {
      if (l.a.dpid !== dpid && l.b.dpid !== dpid) continue;
      if (this.usable(l)) lost.push(l);
      if (l.source === 'lldp') this.deleteLink(l);
    }
    return lost;
  }

  /**
   * A port's state changed (PORT_STATUS, or a port first seen in a Packet-In). Going down drops
   * the learnt link and the hosts at that port. Says which link stopped or started being usable
   * (a configured link comes back with its port) and which hosts went (their keys).
   */
  setPort(dpid: string, port: number, up: boolean, hwAddr?: string): { linkDown?: Link; linkUp?: Link; hosts: string[]; changed: boolean } {
    const sw = this.switches.get(dpid);
    if (!sw) return { hosts: [], changed: false };
    const old = sw.get(port);
    const l = this.byPort.get(portKey({ dpid, port }));
    const wasUsable = l ? this.usable(l) : false;
    const mac = hwAddr ?? old?.hwAddr;
    sw.set(port, mac ? { up, hwAddr: mac } : { up });
    if (old && old.up === up) return { hosts: [], changed: false };
    const hosts: string[] = [];
    if (!up) {
      if (l?.source === 'lldp') this.deleteLink(l);
      for (const [key, h] of [...this.hostsByKey]) if (h.dpid === dpid && h.port === port) { this.dropHost(key, h); hosts.push(key); }
    }
    this.changed();
    const r: { linkDown?: Link; linkUp?: Link; hosts: string[]; changed: boolean } = { hosts, changed: true };
    if (l && wasUsable && !up) r.linkDown = l;
    if (l && !wasUsable && up && this.usable(l)) r.linkUp = l;
    return r;
  }

  /** The port is gone from the switch (PORT_STATUS delete). */
  removePort(dpid: string, port: number): { linkDown?: Link; hosts: string[] } {
    const r = this.setPort(dpid, port, false);
    this.switches.get(dpid)?.delete(port);
    this.changed();
    return { ...(r.linkDown ? { linkDown: r.linkDown } : {}), hosts: r.hosts };
  }

  // ── links ───────────────────────────────────────────────────────────────────────────────────

  /**
   * A probe sent from `from` arrived at `to` (source 'lldp': both switches must be known, a probe
   * from a switch this controller does not hold is no link it can use), or a configured link
   * (kept while its switches are away, usable when both are here with the ports up). A port has
   * one neighbour: a different link at either end is replaced. Hosts learnt at these ports were
   * learnt by mistake (their frames came over the link before it was known) and are forgotten
   * (`hosts`: their keys).
   */
  addLink(from: PortRef, to: PortRef, now: number, source: LinkSource = 'lldp'): { added: boolean; link?: Link; replaced: Link[]; hosts: string[] } {
    const none = { added: false, replaced: [] as Link[], hosts: [] as string[] };
    if (source === 'lldp' && (!this.switches.has(from.dpid) || !this.switches.has(to.dpid))) return none;
    if (from.dpid === to.dpid) return none; // a loop back into the same switch is not a path anywhere
    const key = linkKey(from, to);
    const have = this.links.get(key);
    if (have) { have.seen = now; return { ...none, link: have }; }
    const replaced: Link[] = [];
    for (const end of [from, to]) {
      const other = this.byPort.get(portKey(end));
      // A configured link is the operator's word: LLDP does not override it.
      if (other && other.source === 'config' && source === 'lldp') return none;
      if (other) { this.deleteLink(other); replaced.push(other); }
    }
    if (source === 'lldp') {
      // The probe crossed these ports: they exist and are up.
      for (const end of [from, to]) { const sw = this.switches.get(end.dpid)!; if (!sw.has(end.port)) sw.set(end.port, { up: true }); }
    }
    const [a, b] = ordered(from, to);
    const link: Link = { a: { ...a }, b: { ...b }, source, seen: now };
    this.links.set(key, link);
    this.byPort.set(portKey(a), link);
    this.byPort.set(portKey(b), link);
    const hosts: string[] = [];
    for (const [key, h] of [...this.hostsByKey]) {
      if ((h.dpid === a.dpid && h.port === a.port) || (h.dpid === b.dpid && h.port === b.port)) { this.dropHost(key, h); hosts.push(key); }
    }
    this.changed();
    return { added: true, link, replaced, hosts };
  }

  removeLink(x: PortRef, y: PortRef): Link | undefined {
    const l = this.links.get(linkKey(x, y));
    if (!l) return undefined;
    this.deleteLink(l);
    this.changed();
    return l;
  }

  /** Learnt links not refreshed since `now - timeoutMs` are removed (a link that fails silently). */
  expireLinks(now: number, timeoutMs: number): Link[] {
    const gone = [...this.links.values()].filter((l) => l.source === 'lldp' && now - l.seen > timeoutMs);
    for (const l of gone) this.deleteLink(l);
    if (gone.length) this.changed();
    return gone;
  }

  private deleteLink(l: Link): void {
    this.links.delete(linkKey(l.a, l.b));
    if (this.byPort.get(portKey(l.a)) === l) this.byPort.delete(portKey(l.a));
    if (this.byPort.get(portKey(l.b)) === l) this.byPort.delete(portKey(l.b));
  }

  /** Both switches present, both ports up. */
  usable(l: Link): boolean {
    return this.switches.get(l.a.dpid)?.get(l.a.port)?.up === true && this.switches.get(l.b.dpid)?.get(l.b.port)?.up === true;
  }

  /** Usable links, sorted. */
  activeLinks(): Link[] { return [...this.links.values()].filter((l) => this.usable(l)).sort((x, y) => cmpRef(x.a, y.a) || cmpRef(x.b, y.b)); }
  /** Every link known, usable or not (configured links whose switch is away). */
  allLinks(): Link[] { return [...this.links.values()].sort((x, y) => cmpRef(x.a, y.a) || cmpRef(x.b, y.b)); }

  /** A port with a switch at the other end (learnt or configured): never a host's port. */
  isLinkPort(dpid: string, port: number): boolean { return this.byPort.has(portKey({ dpid, port })); }
  neighbour(dpid: string, port: number): PortRef | undefined {
    const l = this.byPort.get(portKey({ dpid, port }));
    if (!l) return undefined;
    return l.a.dpid === dpid && l.a.port === port ? l.b : l.a;
  }

  // ── hosts ───────────────────────────────────────────────────────────────────────────────────

  /**
   * A frame from `mac` (in `vlan`, absent: the no-VLAN domain) entered at this port. Refused at
   * link ports: there it is only passing through.
   */
  learnHost(mac: string, dpid: string, port: number, now: number, vlan?: number): HostLearnt {
    if (!this.switches.has(dpid) || this.isLinkPort(dpid, port)) return 'refused';
    const sw = this.switches.get(dpid)!;
    if (!sw.has(port)) sw.set(port, { up: true });
    const key = hostKey(mac, vlan);
    const old = this.hostsByKey.get(key);
    if (old && old.dpid === dpid && old.port === port) { old.seen = now; return 'same'; }
    if (!old && this.hostsByKey.size >= this.maxHosts) { const [k, h] = this.hostsByKey.entries().next().value!; this.dropHost(k, h); }
    this.hostsByKey.set(key, { mac, dpid, port, seen: now, ...(vlan === undefined ? {} : { vlan }) });
    if (vlan !== undefined) { let s = this.vlansOfMac.get(mac); if (!s) this.vlansOfMac.set(mac, (s = new Set())); s.add(vlan); }
    return old ? 'moved' : 'new';
  }

  private dropHost(key: string, h: HostAttachment): void {
    this.hostsByKey.delete(key);
    if (h.vlan === undefined) return;
    const s = this.vlansOfMac.get(h.mac);
    s?.delete(h.vlan);
    if (s?.size === 0) this.vlansOfMac.delete(h.mac);
  }

  forgetHost(mac: string, vlan?: number): boolean {
    const key = hostKey(mac, vlan);
    const h = this.hostsByKey.get(key);
    if (h) this.dropHost(key, h);
    return h !== undefined;
  }
  host(mac: string, vlan?: number): HostAttachment | undefined { return this.hostsByKey.get(hostKey(mac, vlan)); }
  hostByKey(key: string): HostAttachment | undefined { return this.hostsByKey.get(key); }
  hosts(): HostAttachment[] { return [...this.hostsByKey.values()]; }

  /**
   * A MAC whatever its VLAN, for callers that know no VLAN: the host in the no-VLAN domain, else
   * the one seen last among the VLANs it is in (one MAC in two VLANs is rare: a MAC is a host's).
   */
  hostAnyVlan(mac: string): HostAttachment | undefined {
    const plain = this.hostsByKey.get(mac);
    if (plain) return plain;
    let best: HostAttachment | undefined;
    for (const v of this.vlansOfMac.get(mac) ?? []) {
      const h = this.hostsByKey.get(hostKey(mac, v));
      if (h && (!best || h.seen > best.seen)) best = h;
    }
    return best;
  }

  // ── paths ───────────────────────────────────────────────────────────────────────────────────

  private adj(): Map<string, Edge[]> {
    if (this.adjacency) return this.adjacency;
    const m = new Map<string, Edge[]>();
    for (const dpid of this.switches.keys()) m.set(dpid, []);
    for (const l of this.activeLinks()) {
      m.get(l.a.dpid)!.push({ port: l.a.port, peer: l.b });
      m.get(l.b.dpid)!.push({ port: l.b.port, peer: l.a });
    }
    for (const edges of m.values()) edges.sort((x, y) => (x.peer.dpid < y.peer.dpid ? -1 : x.peer.dpid > y.peer.dpid ? 1 : x.port - y.port));
    this.adjacency = m;
    return m;
  }

  /** Hop counts from every switch that can reach `dst` (BFS from it; links are symmetric). */
  private distancesTo(dst: string): Map<string, number> {
    let d = this.distances.get(dst);
    if (d) return d;
    d = new Map();
    if (this.switches.has(dst)) {
      const adj = this.adj();
      d.set(dst, 0);
      const queue = [dst];
      for (let i = 0; i < queue.length; i++) {
        const x = queue[i]!;
        for (const e of adj.get(x)!) if (!d.has(e.peer.dpid)) { d.set(e.peer.dpid, d.get(x)! + 1); queue.push(e.peer.dpid); }
      }
    }
    this.distances.set(dst, d);
    return d;
  }

  /** Hops between two switches, undefined when there is no path. */
  distance(from: string, to: string): number | undefined { return this.distancesTo(to).get(from); }

  /** The port of `from` that leads one hop closer to `to` (undefined: same switch, or no path). */
  nextHop(from: string, to: string): number | undefined {
    if (from === to) return undefined;
    const d = this.distancesTo(to);
    const mine = d.get(from);
    if (mine === undefined) return undefined;
    // Edges are sorted by (peer dpid, local port): the first one that gets closer is the tie-break.
    for (const e of this.adj().get(from) ?? []) if (d.get(e.peer.dpid) === mine - 1) return e.port;
    return undefined;
  }

  /** The switches from `from` to `to` with the port each leaves by (the last one has none). */
  path(from: string, to: string): { dpid: string; outPort?: number }[] | undefined {
    if (this.distance(from, to) === undefined) return undefined;
    const hops: { dpid: string; outPort?: number }[] = [];
    let at = from;
    while (at !== to) {
      const out = this.nextHop(at, to)!;
      hops.push({ dpid: at, outPort: out });
      at = this.neighbour(at, out)!.dpid;
    }
    hops.push({ dpid: to });
    return hops;
  }

  /** Where a switch sends frames for `mac` (in `vlan`): the host's own port on its switch, else the next hop. */
  portTowardsHost(dpid: string, mac: string, vlan?: number): number | undefined {
    const h = this.hostsByKey.get(hostKey(mac, vlan));
    if (!h) return undefined;
    if (h.dpid === dpid) return h.port;
    return this.nextHop(dpid, h.dpid);
  }

  // ── flooding ────────────────────────────────────────────────────────────────────────────────

  /** Ports (as "dpid:port") of the links in the spanning tree of the usable links. */
  treePorts(): Set<string> {
    if (this.tree) return this.tree;
    const adj = this.adj();
    const tree = new Set<string>();
    const seen = new Set<string>();
    for (const root of this.switchIds()) {
      if (seen.has(root)) continue;
      seen.add(root);
      const queue = [root];
      for (let i = 0; i < queue.length; i++) {
        const x = queue[i]!;
        for (const e of adj.get(x)!) {
          if (seen.has(e.peer.dpid)) continue;
          seen.add(e.peer.dpid);
          queue.push(e.peer.dpid);
          tree.add(portKey({ dpid: x, port: e.port }));
          tree.add(portKey(e.peer));
        }
      }
    }
    this.tree = tree;
    return tree;
  }

  /** The spanning tree's links. */
  treeLinks(): Link[] { const t = this.treePorts(); return this.activeLinks().filter((l) => t.has(portKey(l.a))); }

  /**
   * Where a broadcast (or a frame for an unknown host) that entered `dpid` at `inPort` goes: every
   * up edge port and tree port but the one it came in by. Arriving over a link that is not in the
   * tree, it is a copy some other path already delivers: `drop`.
   */
  floodPorts(dpid: string, inPort: number | undefined): { drop: boolean; ports: number[] } {
    const tree = this.treePorts();
    if (inPort !== undefined && this.isLinkPort(dpid, inPort) && !tree.has(portKey({ dpid, port: inPort }))) return { drop: true, ports: [] };
    const ports: number[] = [];
    for (const [port, info] of this.ports(dpid)) {
      if (port === inPort || !info.up) continue;
      if (this.isLinkPort(dpid, port) && !tree.has(portKey({ dpid, port }))) continue;
      ports.push(port);
    }
    return { drop: false, ports };
  }
}
