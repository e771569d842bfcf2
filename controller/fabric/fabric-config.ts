// The `fabric` config section: `true` (LLDP discovery, defaults), or an object with the discovery
// timing, links given by hand ("dpid:port" ends) for switches whose links LLDP cannot see or
// that an operator wants fixed, and VLAN access ports. Absent or `false`: no fabric, the learning
// switch forwards.
import { ConfigError, checkBool, checkInt, checkObject, checkOnly } from '../config-checks.ts';
import { OFPP } from '../openflow/index.ts';
import { portKey, type PortRef } from './topology.ts';

export interface FabricLinkConfig { a: PortRef; b: PortRef }
/** One access port: hosts on it are in `vlan`, their frames untagged on the wire. */
export interface FabricAccessPort { port: PortRef; vlan: number }
export interface FabricVlanConfig {
  /** Access ports; every link is a trunk carrying every VLAN tagged (and the no-VLAN domain untagged). */
  access: FabricAccessPort[];
}
export interface FabricConfig {
  /** Discover links by LLDP probes (else only `links`). */
  lldp: boolean;
  /** A probe leaves every port this often (and at once when a port comes up). */
  lldpIntervalMs: number;
  /** A learnt link not confirmed by a probe for this long is gone. */
  linkTimeoutMs: number;
  /** Links known without LLDP. */
  links: FabricLinkConfig[];
  /** VLANs (absent: none, the fabric ignores tags as a plain bridge does). */
  vlans?: FabricVlanConfig;
}

export const FABRIC_DEFAULTS: FabricConfig = { lldp: true, lldpIntervalMs: 1000, linkTimeoutMs: 3500, links: [] };

const KEYS = ['lldp', 'lldpIntervalMs', 'linkTimeoutMs', 'links', 'vlans'] as const;
/** 802.1Q: VID 0 means "no VLAN" (priority tag) and 4095 is reserved. */
export const VLAN_MIN = 1;
export const VLAN_MAX = 4094;

/** "00000000000000a1:2" (or "a1:2", "0xa1:2") → {dpid: 16 hex digits, port}. */
export function parsePortRef(v: unknown, key: string): PortRef {
  const m = typeof v === 'string' ? /^(?:0x)?([0-9a-fA-F]{1,16}):(\d{1,10})$/.exec(v) : null;
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= OFPP.MAX)) throw new ConfigError(key, `expected "<datapath id in hex>:<OpenFlow port 1..${OFPP.MAX}>", e.g. "00000000000000a1:2", got ${JSON.stringify(v)}`);
  return { dpid: m[1]!.toLowerCase().padStart(16, '0'), port };
}

export function parseFabric(v: unknown, key: string): FabricConfig | undefined {
  if (v === false) return undefined;
  if (v === true) return { ...FABRIC_DEFAULTS, links: [] };
  const o = checkObject(v, key);
  checkOnly(o, key, KEYS);
  const cfg: FabricConfig = {
    lldp: o.lldp === undefined ? FABRIC_DEFAULTS.lldp : checkBool(o.lldp, `${key}.lldp`),
    lldpIntervalMs: o.lldpIntervalMs === undefined ? FABRIC_DEFAULTS.lldpIntervalMs : checkInt(o.lldpIntervalMs, `${key}.lldpIntervalMs`, 100, 600_000),
    linkTimeoutMs: o.linkTimeoutMs === undefined ? FABRIC_DEFAULTS.linkTimeoutMs : checkInt(o.linkTimeoutMs, `${key}.linkTimeoutMs`, 200, 3_600_000),
    links: [],
  };
  if (cfg.linkTimeoutMs <= cfg.lldpIntervalMs) throw new ConfigError(`${key}.linkTimeoutMs`, `must be larger than ${key}.lldpIntervalMs (${cfg.lldpIntervalMs}): a link would expire between two probes`);
  /** Port key → the configured link it is an end of. */
  const used = new Map<string, string>();
  if (o.links !== undefined) {
    if (!Array.isArray(o.links)) throw new ConfigError(`${key}.links`, `expected an array of {"a": "dpid:port", "b": "dpid:port"}, got ${JSON.stringify(o.links)}`);
    o.links.forEach((l, i) => {
      const k = `${key}.links[${i}]`;
      const lo = checkObject(l, k);
      checkOnly(lo, k, ['a', 'b']);
      const a = parsePortRef(lo.a, `${k}.a`);
      const b = parsePortRef(lo.b, `${k}.b`);
      if (a.dpid === b.dpid) throw new ConfigError(k, `both ends on switch ${a.dpid}: a link joins two switches`);
      for (const [end, r] of [['a', a], ['b', b]] as const) {
        const prev = used.get(portKey(r));
        // A port has one neighbour; two links at one port is a typo, not a topology.
        if (prev) throw new ConfigError(`${k}.${end}`, `port ${portKey(r)} is already an end of ${prev}`);
        used.set(portKey(r), k);
      }
      cfg.links.push({ a, b });
    });
  }
  if (o.vlans !== undefined) cfg.vlans = parseVlans(o.vlans, `${key}.vlans`, used);
  return cfg;
}

/**
 * `"vlans": {"access": [{"port": "<dpid>:<port>", "vlan": 10}, ...]}`. `linkPorts` are the ends of
 * configured links (port key → the link's key): a port is a link (trunk) or an access port, not both.
 */
function parseVlans(v: unknown, key: string, linkPorts: ReadonlyMap<string, string>): FabricVlanConfig {
  const o = checkObject(v, key);
  checkOnly(o, key, ['access']);
  const shape = '[{"port": "<datapath id in hex>:<OpenFlow port>", "vlan": <1..4094>}, ...]';
  if (!Array.isArray(o.access)) throw new ConfigError(`${key}.access`, `expected an array ${shape}, got ${JSON.stringify(o.access)}`);
  // VLANs with no access port would be no VLANs at all: say so rather than run a fabric that tags nothing.
  if (o.access.length === 0) throw new ConfigError(`${key}.access`, `lists no access port: give at least one, or leave out ${key}`);
  const seen = new Map<string, string>();
  const access: FabricAccessPort[] = o.access.map((e, i) => {
    const k = `${key}.access[${i}]`;
    const eo = checkObject(e, k);
    checkOnly(eo, k, ['port', 'vlan']);
    const port = parsePortRef(eo.port, `${k}.port`);
    if (eo.vlan === undefined) throw new ConfigError(`${k}.vlan`, `missing: the VLAN id (${VLAN_MIN}..${VLAN_MAX}) of the hosts on ${portKey(port)}`);
    const vlan = checkInt(eo.vlan, `${k}.vlan`, VLAN_MIN, VLAN_MAX);
    const pk = portKey(port);
    const link = linkPorts.get(pk);
    if (link) throw new ConfigError(`${k}.port`, `port ${pk} is an end of ${link}: a link is a trunk for every VLAN, not an access port`);
    const prev = seen.get(pk);
    if (prev) throw new ConfigError(`${k}.port`, `port ${pk} is already listed at ${prev}: an access port is in one VLAN`);
    seen.set(pk, k);
    return { port, vlan };
  });
  return { access };
}
