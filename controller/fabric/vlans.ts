// VLANs in the fabric, as pure decisions: which VLAN a frame belongs to where it enters, and what a
// switch must do to a frame (tag, untag) as it leaves. Hosts sit on access ports of one VLAN and
// send untagged frames; links between switches are trunks that carry every VLAN tagged (802.1Q,
// TPID 0x8100) and the "no VLAN" domain untagged. Every port not configured as an access port is
// in the no-VLAN domain. Without `vlans` in the config there is no plan and tags are ignored, as a
// plain bridge ignores them.
import { OFPVID, type Action } from '../openflow/index.ts';
import { ETHERTYPE_VLAN } from '../packet/ethernet.ts';
import { portKey, type PortRef } from './topology.ts';
import type { FabricAccessPort } from './fabric-config.ts';

/** The VLAN a frame or host is in; `undefined` is the no-VLAN domain. */
export type VlanId = number | undefined;

export class VlanPlan {
  private readonly byPort = new Map<string, number>();
  /** dpid → vlan → its access ports there, sorted. */
  private readonly bySwitch = new Map<string, Map<number, number[]>>();
  private readonly ids = new Set<number>();

  constructor(access: readonly FabricAccessPort[]) {
    for (const a of access) {
      this.byPort.set(portKey(a.port), a.vlan);
      this.ids.add(a.vlan);
      let sw = this.bySwitch.get(a.port.dpid);
      if (!sw) this.bySwitch.set(a.port.dpid, (sw = new Map()));
      const ports = sw.get(a.vlan) ?? [];
      ports.push(a.port.port);
      sw.set(a.vlan, ports.sort((x, y) => x - y));
    }
  }

  /** The VLAN of an access port; undefined for any other port. */
  vlanOf(dpid: string, port: number): VlanId { return this.byPort.get(portKey({ dpid, port })); }
  isAccess(ref: PortRef): boolean { return this.byPort.has(portKey(ref)); }
  has(vlan: number): boolean { return this.ids.has(vlan); }
  vlans(): number[] { return [...this.ids].sort((x, y) => x - y); }
  /** Access ports of `vlan` on a switch, sorted. */
  accessPorts(dpid: string, vlan: number): number[] { return this.bySwitch.get(dpid)?.get(vlan) ?? []; }
  /** Every access port of a switch, whatever its VLAN, sorted. */
  accessPortsOn(dpid: string): number[] { return [...(this.bySwitch.get(dpid)?.values() ?? [])].flat().sort((x, y) => x - y); }
}

/** Where a frame entered: its VLAN, and whether it came tagged (over a trunk). Or why it is dropped. */
export type Ingress = { ok: true; vlan: VlanId; tagged: boolean } | { ok: false; why: string };

/**
 * The VLAN of a frame entering at `dpid:inPort` with the given tags (outermost first). An access
 * port takes untagged frames only, into its VLAN; a link takes one tag of a configured VLAN, or
 * none (the no-VLAN domain); any other port is a no-VLAN edge port and takes untagged frames only.
 * Without a plan every frame is in the no-VLAN domain whatever its tags (as before VLANs).
 */
export function classifyIngress(plan: VlanPlan | undefined, dpid: string, inPort: number, isLink: boolean, tags: readonly number[]): Ingress {
  if (!plan) return { ok: true, vlan: undefined, tagged: false };
  const access = plan.vlanOf(dpid, inPort);
  if (access !== undefined) return tags.length ? { ok: false, why: 'tagged frame at an access port' } : { ok: true, vlan: access, tagged: false };
  if (!isLink) return tags.length ? { ok: false, why: 'tagged frame at an edge port in no VLAN' } : { ok: true, vlan: undefined, tagged: false };
  if (tags.length === 0) return { ok: true, vlan: undefined, tagged: false };
  if (tags.length > 1) return { ok: false, why: 'more than one tag on a link' };
  // VID 0 is a priority tag, not a VLAN; an unknown VID is a VLAN nobody here is in.
  if (!plan.has(tags[0]!)) return { ok: false, why: `VLAN ${tags[0]} is not configured` };
  return { ok: true, vlan: tags[0]!, tagged: true };
}

/** The actions that give a frame a tag (before outputs to trunks). */
export function pushVlanActions(vlan: number): Action[] {
  return [{ type: 'push_vlan', ethType: ETHERTYPE_VLAN }, { type: 'set_field', field: { vlanVid: OFPVID.PRESENT | vlan } }];
}

/**
 * Outputs for a frame of `vlan` that arrived tagged or not: `untagged` ports get it without a tag
 * (access ports, and every port in the no-VLAN domain), `tagged` ports with one (trunks of a VLAN).
 * The outputs that keep the frame as it came go first, then one pop or push, then the others.
 */
export function outputActions(vlan: VlanId, arrivedTagged: boolean, untagged: readonly number[], tagged: readonly number[]): Action[] {
  const out = (ports: readonly number[]): Action[] => ports.map((port) => ({ type: 'output' as const, port }));
  if (vlan === undefined) return out([...untagged, ...tagged]);
  if (arrivedTagged) return [...out(tagged), ...(untagged.length ? [{ type: 'pop_vlan' as const }, ...out(untagged)] : [])];
  return [...out(untagged), ...(tagged.length ? [...pushVlanActions(vlan), ...out(tagged)] : [])];
}

/**
 * Splits the ports a broadcast of `vlan` is flooded out of (the topology's floodPorts: up edge
 * ports and spanning-tree ports) by the VLAN plan: in a VLAN, its access ports untagged and the
 * tree's links tagged; in the no-VLAN domain, the edge ports that are no access port and the tree's
 * links, all untagged. Other VLANs' access ports never get it.
 */
export function splitFloodPorts(plan: VlanPlan, dpid: string, vlan: VlanId, ports: readonly number[], isLink: (port: number) => boolean): { untagged: number[]; tagged: number[] } {
  const untagged: number[] = [];
  const tagged: number[] = [];
  for (const p of ports) {
    if (isLink(p)) (vlan === undefined ? untagged : tagged).push(p);
    else if (plan.vlanOf(dpid, p) === vlan) untagged.push(p);
  }
  return { untagged, tagged };
}
