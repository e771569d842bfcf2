// The `fabric` config section: `true` (LLDP discovery, defaults), or an object with the discovery
// timing and links given by hand ("dpid:port" ends) for switches whose links LLDP cannot see or
// that an operator wants fixed. Absent or `false`: no fabric, the learning switch forwards.
import { ConfigError, checkBool, checkInt, checkObject, checkOnly } from '../config-checks.ts';
import { OFPP } from '../openflow/index.ts';
import { portKey, type PortRef } from './topology.ts';

export interface FabricLinkConfig { a: PortRef; b: PortRef }
export interface FabricConfig {
  /** Discover links by LLDP probes (else only `links`). */
  lldp: boolean;
  /** A probe leaves every port this often (and at once when a port comes up). */
  lldpIntervalMs: number;
  /** A learnt link not confirmed by a probe for this long is gone. */
  linkTimeoutMs: number;
  /** Links known without LLDP. */
  links: FabricLinkConfig[];
}

export const FABRIC_DEFAULTS: FabricConfig = { lldp: true, lldpIntervalMs: 1000, linkTimeoutMs: 3500, links: [] };

const KEYS = ['lldp', 'lldpIntervalMs', 'linkTimeoutMs', 'links'] as const;

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
  if (o.links !== undefined) {
    if (!Array.isArray(o.links)) throw new ConfigError(`${key}.links`, `expected an array of {"a": "dpid:port", "b": "dpid:port"}, got ${JSON.stringify(o.links)}`);
    const used = new Map<string, string>();
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
  return cfg;
}
