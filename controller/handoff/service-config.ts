// Services and their backends, as configured and as changed at run time.
// Validation names the offending key (services[0].backends[1].address) like the rest of the config.
import { canonicalIpv6, isIpv6Address } from '../packet/addr.ts';
import { ConfigError, checkBool as bool, checkInt as int, checkObject as obj, checkOneOf as oneOf, checkOnly as only, checkString as str } from '../config-checks.ts';

export type Verdict = 'MIGRATE' | 'FORWARD';

export interface BackendConfig {
  name: string;
  /** IPv4 or IPv6 (RFC 5952 text). */
  address: string;
  /** Its IPv6 address when `address` is IPv4: dual-stack, IPv6 connections use this one. */
  address6?: string;
  port: number;
  /** Optional: learned from ARP/traffic when absent. */
  mac?: string;
  /** Optional OpenFlow port number on the switch; learned when absent. */
  switchPort?: number;
}

export interface OptionPolicy {
  /** 'strip' (default): remove TCP timestamps from the client's SYN so PAWS cannot stall a migrated connection. */
  timestamps: 'strip' | 'keep';
  /** 'keep' (default): SACK blocks are shifted with the ack (patched switch or relay); 'strip' removes SACK-permitted. */
  sack: 'keep' | 'strip';
  /** What to do when the target's SYN-ACK differs from server 1's (window scale, SACK, timestamps, ECN) or has a smaller MSS. */
  mismatch: 'refuse' | 'warn';
  /**
   * 'strip' (default): remove MPTCP's MP_CAPABLE from the client's SYN, so the client knowingly
   * runs plain TCP (a replay cannot carry server 1's MPTCP keys to another server); 'pass' lets
   * MPTCP through: FORWARD works, a migrated connection falls back to plain TCP.
   */
  mptcp: 'strip' | 'pass';
}

export interface ServiceConfig {
  name: string;
  /** IPv4 or IPv6 (RFC 5952 text): server 1's address, which clients connect to. */
  address: string;
  /** The service's IPv6 address when `address` is IPv4 (dual-stack): the primary's `address6`. */
  address6?: string;
  port: number;
  /** The backend connections reach first; its address:port must be the service's. */
  primary: string;
  backends: BackendConfig[];
  defaultVerdict: Verdict;
  verdictTimeoutMs: number;
  /** Backend a MIGRATE verdict moves a connection to, unless the alert's sid selects another. */
  migrateTo?: string;
  /** Rule sid → backend name (per-rule targets). */
  sidBackends: Record<string, string>;
  options: OptionPolicy;
  /** idle_timeout of per-connection flows, seconds. */
  idleTimeout: number;
  /** Allow migrations after the first segment (API or later alerts). */
  midStream: boolean;
  /**
   * Open the replayed handshake to `migrateTo` while the first segment is still on its way (from
   * server 1's SYN-ACK on), so that a MIGRATE verdict needs only the ACK, the flows and the release.
   * Costs every other connection a SYN, SYN-ACK and RST to that backend; off by default.
   */
  speculativeReplay: boolean;
  /** Switch port that mirrors held segments (and, with mirrorAll, all service traffic) to an IDS. */
  mirrorPort?: number;
  /**
   * Fabric: the switch (datapath id, 16 hex digits) `mirrorPort` is on, when not the connection's
   * own. Held segments and handshakes reach it; mirrorAll copies only from connections on that switch.
   */
  mirrorSwitch?: string;
  mirrorAll: boolean;
  /** Fabric VLANs: allow a move to a backend in another VLAN than the primary's (refused by default). */
  crossVlan: boolean;
  /**
   * Where a FORWARD verdict is kept: `conntrack` (the default, unless mirrorAll or a fabric: the
   * switch's connection tracker, in `handoff.conntrackZone`; no Flow-Mod per connection, about twice
   * the setup rate; one that outlives handoff.conntrackFlowsAfterMs leaves ct for good with flows of
   * its own) or `flows` (two flows per connection from the start). On a switch without conntrack,
   * flows.
   */
  forwardVia: 'flows' | 'conntrack';
  /**
   * Where a first-segment MIGRATE verdict is kept: `conntrack` (the default, as forwardVia: NAT, ack
   * delta and MACs in the switch's connection tracker; needs a switch whose shift actions take their
   * delta from a field, ovs-patch 0008, else flows are used) or `flows`. A connection migrated in
   * conntrack leaves it for good when it outlives handoff.conntrackFlowsAfterMs or moves again
   * (ConntrackForwarding.exit).
   */
  migrateVia: 'flows' | 'conntrack';
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** An IPv4 address, or an IPv6 one in its RFC 5952 form (what the packet codec writes, so addresses compare as strings). */
function ipAddress(v: unknown, key: string): string {
  if (typeof v === 'string' && v.includes(':')) {
    const c = canonicalIpv6(v);
    if (!c.ok) throw new ConfigError(key, `expected an IPv4 or IPv6 address, got ${JSON.stringify(v)}`);
    return c.value;
  }
  return str(v, key, IPV4, 'an IPv4 or IPv6 address');
}

/** A datapath id as the controller writes it (16 lower-case hex digits); 0x and shorter forms accepted. */
function dpidOf(v: unknown, key: string, withPort: boolean): string {
  if (!withPort) throw new ConfigError(key, 'only with mirrorPort (the port on that switch)');
  const t = typeof v === 'string' ? v.toLowerCase().replace(/^0x/, '').replace(/:/g, '') : '';
  if (!/^[0-9a-f]{1,16}$/.test(t)) throw new ConfigError(key, `expected a datapath id (up to 16 hex digits, e.g. "00000000000000a3"), got ${JSON.stringify(v)}`);
  return t.padStart(16, '0');
}

/** `address6`: an IPv6 address next to an IPv4 `address` (dual-stack). */
function secondAddress(v: unknown, key: string, first: string): string | undefined {
  if (v === undefined) return undefined;
  if (first.includes(':')) throw new ConfigError(key, 'only with an IPv4 address: this address is IPv6 already');
  const a = ipAddress(v, key);
  if (!a.includes(':')) throw new ConfigError(key, 'expected an IPv6 address');
  return a;
}


/** A backend's (or service's) address of one family, if it has one. */
export function addressFor(x: { address: string; address6?: string }, v6: boolean): string | undefined {
  if (isIpv6Address(x.address) === v6) return x.address;
  return v6 ? x.address6 : undefined;
}

/** address:port, [address6]:port when dual-stack (IPv6 in brackets); the API's JSON (address6 null) too. */
export function endpoints(x: { address: string; address6?: string | null; port: number }): string {
  return addressesOf(x).map((a) => (isIpv6Address(a) ? `[${a}]:${x.port}` : `${a}:${x.port}`)).join(' ');
}

/** Every address of a backend or service (one, or two when dual-stack). */
export function addressesOf(x: { address: string; address6?: string | null }): string[] {
  return x.address6 === undefined || x.address6 === null ? [x.address] : [x.address, x.address6];
}
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export function parseBackend(v: unknown, key: string): BackendConfig {
  const o = obj(v, key);
  only(o, key, ['name', 'address', 'address6', 'port', 'mac', 'switchPort']);
  const b: BackendConfig = {
    name: str(o.name, `${key}.name`, NAME, 'a name of letters, digits, _ . -'),
    address: ipAddress(o.address, `${key}.address`),
    port: int(o.port, `${key}.port`, 1, 65535),
  };
  const a6 = secondAddress(o.address6, `${key}.address6`, b.address);
  if (a6 !== undefined) b.address6 = a6;
  if (o.mac !== undefined) b.mac = str(typeof o.mac === 'string' ? o.mac.toLowerCase() : o.mac, `${key}.mac`, MAC, 'a MAC address aa:bb:cc:dd:ee:ff');
  if (o.switchPort !== undefined) b.switchPort = int(o.switchPort, `${key}.switchPort`, 1, 0xffffff00);
  return b;
}

export function parseService(v: unknown, key: string): ServiceConfig {
  const o = obj(v, key);
  only(o, key, ['name', 'address', 'address6', 'port', 'primary', 'backends', 'defaultVerdict', 'verdictTimeoutMs', 'migrateTo', 'sidBackends', 'options', 'idleTimeout', 'midStream', 'speculativeReplay', 'mirrorPort', 'mirrorSwitch', 'mirrorAll', 'crossVlan', 'forwardVia', 'migrateVia']);
  if (!Array.isArray(o.backends) || o.backends.length === 0) throw new ConfigError(`${key}.backends`, 'expected a non-empty array of backends');
  const backends = o.backends.map((b, i) => parseBackend(b, `${key}.backends[${i}]`));
  const names = new Set<string>();
  backends.forEach((b, i) => {
    if (names.has(b.name)) throw new ConfigError(`${key}.backends[${i}].name`, `duplicate backend name '${b.name}'`);
    names.add(b.name);
  });
  const address = ipAddress(o.address, `${key}.address`);
  const address6 = secondAddress(o.address6, `${key}.address6`, address);
  const port = int(o.port, `${key}.port`, 1, 65535);
  const primary = o.primary === undefined ? backends[0].name : str(o.primary, `${key}.primary`, NAME, 'a backend name');
  const pb = backends.find((b) => b.name === primary);
  if (!pb) throw new ConfigError(`${key}.primary`, `no backend named '${primary}'`);
  if (pb.address !== address || pb.port !== port) {
    throw new ConfigError(`${key}.primary`, `backend '${primary}' is ${pb.address}:${pb.port}, but connections reach the primary on the service address ${address}:${port}`);
  }
  if (pb.address6 !== address6) {
    throw new ConfigError(`${key}.primary`, `backend '${primary}' has address6 ${pb.address6 ?? '(none)'}, but the service's is ${address6 ?? '(none)'}: the primary's addresses are the service's`);
  }
  backends.forEach((b, i) => {
    if (addressFor(b, false) !== undefined && addressFor({ address, address6 }, false) !== undefined) return;
    if (addressFor(b, true) !== undefined && addressFor({ address, address6 }, true) !== undefined) return;
    throw new ConfigError(`${key}.backends[${i}].address`, `backend '${b.name}' (${endpoints(b)}) has no address of the service's family (${endpoints({ address, address6, port })})`);
  });
  const optIn = o.options === undefined ? {} : obj(o.options, `${key}.options`);
  only(optIn, `${key}.options`, ['timestamps', 'sack', 'mismatch', 'mptcp']);
  const options: OptionPolicy = {
    timestamps: optIn.timestamps === undefined ? 'strip' : oneOf(optIn.timestamps, `${key}.options.timestamps`, ['strip', 'keep'] as const),
    sack: optIn.sack === undefined ? 'keep' : oneOf(optIn.sack, `${key}.options.sack`, ['keep', 'strip'] as const),
    mismatch: optIn.mismatch === undefined ? 'refuse' : oneOf(optIn.mismatch, `${key}.options.mismatch`, ['refuse', 'warn'] as const),
    mptcp: optIn.mptcp === undefined ? 'strip' : oneOf(optIn.mptcp, `${key}.options.mptcp`, ['strip', 'pass'] as const),
  };
  const sidIn = o.sidBackends === undefined ? {} : obj(o.sidBackends, `${key}.sidBackends`);
  const sidBackends: Record<string, string> = {};
  for (const [sid, name] of Object.entries(sidIn)) {
    if (!/^\d{1,10}$/.test(sid)) throw new ConfigError(`${key}.sidBackends.${sid}`, 'keys must be rule sids (numbers)');
    if (typeof name !== 'string' || !names.has(name)) throw new ConfigError(`${key}.sidBackends.${sid}`, `no backend named ${JSON.stringify(name)}`);
    sidBackends[sid] = name;
  }
  let migrateTo: string | undefined;
  if (o.migrateTo !== undefined) {
    migrateTo = str(o.migrateTo, `${key}.migrateTo`, NAME, 'a backend name');
    if (!names.has(migrateTo)) throw new ConfigError(`${key}.migrateTo`, `no backend named '${migrateTo}'`);
  } else {
    migrateTo = backends.find((b) => b.name !== primary)?.name;
  }
  return {
    name: str(o.name, `${key}.name`, NAME, 'a name of letters, digits, _ . -'),
    address, ...(address6 !== undefined && { address6 }), port, primary, backends,
    defaultVerdict: o.defaultVerdict === undefined ? 'FORWARD' : oneOf(o.defaultVerdict, `${key}.defaultVerdict`, ['MIGRATE', 'FORWARD'] as const),
    verdictTimeoutMs: o.verdictTimeoutMs === undefined ? 2000 : int(o.verdictTimeoutMs, `${key}.verdictTimeoutMs`, 1, 600000),
    migrateTo, sidBackends, options,
    idleTimeout: o.idleTimeout === undefined ? 300 : int(o.idleTimeout, `${key}.idleTimeout`, 1, 65535),
    midStream: o.midStream === undefined ? true : bool(o.midStream, `${key}.midStream`),
    speculativeReplay: o.speculativeReplay === undefined ? false : bool(o.speculativeReplay, `${key}.speculativeReplay`),
    mirrorPort: o.mirrorPort === undefined ? undefined : int(o.mirrorPort, `${key}.mirrorPort`, 1, 0xffffff00),
    ...(o.mirrorSwitch !== undefined && { mirrorSwitch: dpidOf(o.mirrorSwitch, `${key}.mirrorSwitch`, o.mirrorPort !== undefined) }),
    mirrorAll: o.mirrorAll === undefined ? false : bool(o.mirrorAll, `${key}.mirrorAll`),
    crossVlan: o.crossVlan === undefined ? false : bool(o.crossVlan, `${key}.crossVlan`),
    forwardVia: viaOf(o, key, 'forwardVia'),
    migrateVia: viaOf(o, key, 'migrateVia'),
  };
}

/**
 * A service's forwardVia / migrateVia. Unsaid: conntrack, unless the service has mirrorAll (parseConfig
 * also makes it flows on a fabric, defaultVia).
 */
function viaOf(o: Record<string, unknown>, key: string, name: 'forwardVia' | 'migrateVia'): 'flows' | 'conntrack' {
  const v = o[name] === undefined ? (o.mirrorAll === true ? 'flows' : 'conntrack') : oneOf(o[name], `${key}.${name}`, ['flows', 'conntrack'] as const);
  // The conntrack path forwards by per-service flows: they carry no per-connection IDS copies.
  if (v === 'conntrack' && o.mirrorAll === true) throw new ConfigError(`${key}.${name}`, "'conntrack' cannot carry mirrorAll's copies of every segment: use 'flows' with mirrorAll");
  return v;
}

export function parseServices(v: unknown, key = 'services'): ServiceConfig[] {
  if (!Array.isArray(v)) throw new ConfigError(key, 'expected an array of services');
  const list = v.map((s, i) => parseService(s, `${key}[${i}]`));
  const seen = new Map<string, number>();
  list.forEach((s, i) => {
    for (const a of addressesOf(s)) {
      const k = isIpv6Address(a) ? `[${a}]:${s.port}` : `${a}:${s.port}`;
      if (seen.has(k)) throw new ConfigError(`${key}[${i}]`, `service address ${k} already used by ${key}[${seen.get(k)}]`);
      seen.set(k, i);
    }
    if (list.findIndex((x) => x.name === s.name) !== i) throw new ConfigError(`${key}[${i}].name`, `duplicate service name '${s.name}'`);
  });
  return list;
}
