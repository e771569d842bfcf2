// QUIC services (`"protocol": "quic"` entries of `services[]`): parsed here, next to the TCP
// services of handoff/service-config.ts, with the same checks and the same error style (the
// message names the key: services[2].backends[0].port). IPv4 only.
import { ConfigError, checkBool as bool, checkInt as int, checkObject as obj, checkOneOf as oneOf, checkOnly as only, checkString as str } from '../config-checks.ts';
import type { QuicLbConfig } from './cid-steer.ts';
import { parseBackend, parseService, parseServices, type ServiceConfig, type Verdict } from '../handoff/service-config.ts';

export interface QuicBackendConfig {
  name: string;
  address: string;
  /** UDP port. */
  port: number;
  /** Optional: learned from ARP/traffic when absent. */
  mac?: string;
  /** Optional OpenFlow port number on the switch; learned when absent. */
  switchPort?: number;
  /** QUIC-LB server ID (hex, the service's `cid.serverIdLength` bytes) this backend puts in its CIDs. */
  serverId?: string;
}

export interface QuicServiceConfig {
  protocol: 'quic';
  name: string;
  /** Server 1's IPv4 address, which clients send to. */
  address: string;
  /** UDP port. */
  port: number;
  /** The backend a FORWARD verdict picks; its address:port is the service's. */
  primary: string;
  backends: QuicBackendConfig[];
  defaultVerdict: Verdict;
  /** How long a client's first datagrams are held at most before `defaultVerdict` applies. */
  verdictTimeoutMs: number;
  /** Backend a MIGRATE verdict picks, unless the alert's sid selects another. */
  migrateTo?: string;
  /** Rule sid → backend name. */
  sidBackends: Record<string, string>;
  /** idle_timeout of a client's NAT flows, seconds. */
  idleTimeout: number;
  /** Switch port that gets a copy of every held datagram (an IDS). */
  mirrorPort?: number;
  /** Follow a client to a new 4-tuple by the connection ID it sends to (docs/quic.md, "Connection-ID steering"). */
  cidSteering: boolean;
  /** The backends' QUIC-LB plaintext CID layout; with each backend's `serverId`. */
  cid?: QuicLbConfig;
}

const KEYS = ['protocol', 'name', 'address', 'port', 'primary', 'backends', 'defaultVerdict', 'verdictTimeoutMs', 'migrateTo', 'sidBackends', 'idleTimeout', 'mirrorPort', 'cidSteering', 'cid'] as const;
/** Keys of a TCP service that mean nothing for QUIC: named in the error rather than "unknown key". */
const TCP_ONLY: Record<string, string> = {
  options: 'TCP option policy',
  midStream: 'moves after the first segment: a QUIC connection is steered once, before any server holds state',
  speculativeReplay: 'a TCP handshake replayed ahead of the verdict: a QUIC connection is steered before any server sees it',
  mirrorAll: 'copies of every later segment: after its Initial a QUIC connection is encrypted',
  address6: 'IPv6: QUIC services are IPv4 only',
  mirrorSwitch: 'an IDS port on another fabric switch: QUIC services do not span a fabric yet',
  crossVlan: 'moves across fabric VLANs: QUIC services do not span a fabric yet',
};
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

function backend(v: unknown, key: string): QuicBackendConfig {
  const o = obj(v, key);
  if (o.address6 !== undefined) throw new ConfigError(`${key}.address6`, 'QUIC services are IPv4 only');
  const { serverId, ...rest } = o;
  const b: QuicBackendConfig = parseBackend(rest, key);
  if (!IPV4.test(b.address)) throw new ConfigError(`${key}.address`, `expected an IPv4 address (QUIC services are IPv4 only), got ${JSON.stringify(b.address)}`);
  if (serverId !== undefined) b.serverId = str(typeof serverId === 'string' ? serverId.toLowerCase() : serverId, `${key}.serverId`, /^([0-9a-f]{2}){1,19}$/, 'a QUIC-LB server ID in hex (1..19 bytes)');
  return b;
}

function quicLb(v: unknown, key: string): QuicLbConfig {
  const o = obj(v, key);
  only(o, key, ['length', 'offset', 'serverIdLength']);
  const length = int(o.length, `${key}.length`, 2, 20);
  // Byte 0 is the first octet (config rotation, length): the server ID starts after it.
  const offset = o.offset === undefined ? 1 : int(o.offset, `${key}.offset`, 1, 19);
  const serverIdLength = int(o.serverIdLength, `${key}.serverIdLength`, 1, 19);
  if (offset + serverIdLength > length) throw new ConfigError(key, `a server ID of ${serverIdLength} bytes at offset ${offset} does not fit in a ${length}-byte CID`);
  return { length, offset, serverIdLength };
}

export function parseQuicService(v: unknown, key: string): QuicServiceConfig {
  const o = obj(v, key);
  for (const k of Object.keys(o)) if (TCP_ONLY[k]) throw new ConfigError(`${key}.${k}`, `a TCP service's key; not for "protocol": "quic" (${TCP_ONLY[k]})`);
  only(o, key, KEYS);
  oneOf(o.protocol, `${key}.protocol`, ['quic'] as const);
  const name = str(o.name, `${key}.name`, NAME, 'a name of letters, digits, _ . -');
  const address = str(o.address, `${key}.address`, IPV4, 'an IPv4 address (QUIC services are IPv4 only)');
  const port = int(o.port, `${key}.port`, 1, 65535);
  if (!Array.isArray(o.backends) || o.backends.length === 0) throw new ConfigError(`${key}.backends`, 'expected a non-empty array of backends');
  const backends = o.backends.map((b, i) => backend(b, `${key}.backends[${i}]`));
  const names = new Set<string>();
  backends.forEach((b, i) => {
    if (names.has(b.name)) throw new ConfigError(`${key}.backends[${i}].name`, `duplicate backend name '${b.name}'`);
    names.add(b.name);
  });
  const primary = o.primary === undefined ? backends[0]!.name : str(o.primary, `${key}.primary`, NAME, 'a backend name');
  const pb = backends.find((b) => b.name === primary);
  if (!pb) throw new ConfigError(`${key}.primary`, `no backend named '${primary}'`);
  // Clients resolve the service address to the primary: it must own it.
  if (pb.address !== address || pb.port !== port) {
    throw new ConfigError(`${key}.primary`, `backend '${primary}' is ${pb.address}:${pb.port}, but clients reach the primary on the service address ${address}:${port}`);
  }
  const sidIn = o.sidBackends === undefined ? {} : obj(o.sidBackends, `${key}.sidBackends`);
  const sidBackends: Record<string, string> = {};
  for (const [sid, n] of Object.entries(sidIn)) {
    if (!/^\d{1,10}$/.test(sid)) throw new ConfigError(`${key}.sidBackends.${sid}`, 'keys must be rule sids (numbers)');
    if (typeof n !== 'string' || !names.has(n)) throw new ConfigError(`${key}.sidBackends.${sid}`, `no backend named ${JSON.stringify(n)}`);
    sidBackends[sid] = n;
  }
  let migrateTo: string | undefined;
  if (o.migrateTo !== undefined) {
    migrateTo = str(o.migrateTo, `${key}.migrateTo`, NAME, 'a backend name');
    if (!names.has(migrateTo)) throw new ConfigError(`${key}.migrateTo`, `no backend named '${migrateTo}'`);
  } else migrateTo = backends.find((b) => b.name !== primary)?.name;
  const out: QuicServiceConfig = {
    protocol: 'quic', name, address, port, primary, backends,
    defaultVerdict: o.defaultVerdict === undefined ? 'FORWARD' : oneOf(o.defaultVerdict, `${key}.defaultVerdict`, ['MIGRATE', 'FORWARD'] as const),
    verdictTimeoutMs: o.verdictTimeoutMs === undefined ? 2000 : int(o.verdictTimeoutMs, `${key}.verdictTimeoutMs`, 1, 600000),
    sidBackends,
    idleTimeout: o.idleTimeout === undefined ? 300 : int(o.idleTimeout, `${key}.idleTimeout`, 1, 65535),
    cidSteering: true,
  };
  if (migrateTo !== undefined) out.migrateTo = migrateTo;
  if (o.mirrorPort !== undefined) out.mirrorPort = int(o.mirrorPort, `${key}.mirrorPort`, 1, 0xffffff00);
  out.cidSteering = o.cidSteering === undefined ? true : bool(o.cidSteering, `${key}.cidSteering`);
  if (o.cid !== undefined) {
    const lb = quicLb(o.cid, `${key}.cid`);
    out.cid = lb;
    const ids = new Map<string, string>();
    backends.forEach((b, i) => {
      if (b.serverId === undefined) return;
      if (b.serverId.length !== 2 * lb.serverIdLength) throw new ConfigError(`${key}.backends[${i}].serverId`, `expected ${lb.serverIdLength} bytes (cid.serverIdLength), got ${b.serverId.length / 2}`);
      if (ids.has(b.serverId)) throw new ConfigError(`${key}.backends[${i}].serverId`, `server ID ${b.serverId} already used by backend '${ids.get(b.serverId)}'`);
      ids.set(b.serverId, b.name);
    });
  } else {
    const i = backends.findIndex((b) => b.serverId !== undefined);
    if (i >= 0) throw new ConfigError(`${key}.backends[${i}].serverId`, 'a QUIC-LB server ID needs the service\'s "cid": { length, offset, serverIdLength }');
  }
  return out;
}

export interface ServiceLists { tcp: ServiceConfig[]; quic: QuicServiceConfig[] }

/**
 * `services[]`: each entry by its `protocol` ("tcp", the default, or "quic"). A list without QUIC
 * entries goes to the TCP parser whole, unchanged; in a mixed list each entry keeps its own index
 * in errors, and names are unique across both protocols (the API and logs name services).
 */
export function parseServiceList(v: unknown, key = 'services'): ServiceLists {
  if (!Array.isArray(v)) throw new ConfigError(key, 'expected an array of services');
  const protocols = v.map((s, i) => {
    const p = typeof s === 'object' && s !== null && !Array.isArray(s) ? (s as Record<string, unknown>).protocol : undefined;
    return p === undefined ? 'tcp' : oneOf(p, `${key}[${i}].protocol`, ['tcp', 'quic'] as const);
  });
  // "protocol": "tcp" said explicitly is the TCP parser's default, which does not know the key.
  const withoutProtocol = (s: unknown): unknown => {
    if (typeof s !== 'object' || s === null || Array.isArray(s) || !('protocol' in s)) return s;
    const { protocol: _p, ...rest } = s as Record<string, unknown>;
    return rest;
  };
  if (!protocols.includes('quic')) return { tcp: parseServices(v.map(withoutProtocol), key), quic: [] };
  const tcp: ServiceConfig[] = [];
  const quic: QuicServiceConfig[] = [];
  const names = new Map<string, number>();
  const endpoints = new Map<string, number>();
  v.forEach((s, i) => {
    const k = `${key}[${i}]`;
    const parsed = protocols[i] === 'quic' ? parseQuicService(s, k) : parseService(withoutProtocol(s), k);
    if (names.has(parsed.name)) throw new ConfigError(`${k}.name`, `duplicate service name '${parsed.name}' (also ${key}[${names.get(parsed.name)}])`);
    names.set(parsed.name, i);
    // TCP and UDP ports are separate spaces: an HTTPS service and its HTTP/3 twin share address and port.
    const addrs = protocols[i] === 'quic' ? [parsed.address] : [parsed.address, ...((parsed as ServiceConfig).address6 !== undefined ? [(parsed as ServiceConfig).address6!] : [])];
    for (const a of addrs) {
      const shown = `${a.includes(':') ? `[${a}]` : a}:${parsed.port}`;
      const e = `${protocols[i]} ${shown}`;
      if (endpoints.has(e)) throw new ConfigError(k, `service address ${shown} (${protocols[i]}) already used by ${key}[${endpoints.get(e)}]`);
      endpoints.set(e, i);
    }
    if (protocols[i] === 'quic') quic.push(parsed as QuicServiceConfig); else tcp.push(parsed as ServiceConfig);
  });
  return { tcp, quic };
}

/**
 * `quicServices`: the parsed form (what `check-config` prints, and what the CLI parses again after
 * its overrides), accepted as input too: QUIC services, `"protocol": "quic"` in each.
 */
export function parseQuicServices(v: unknown, key = 'quicServices'): QuicServiceConfig[] {
  if (!Array.isArray(v)) throw new ConfigError(key, 'expected an array of QUIC services');
  return v.map((s, i) => parseQuicService(s, `${key}[${i}]`));
}

/**
 * The QUIC services of both keys in one list, checked across them and against the TCP services:
 * names unique overall, one QUIC service per address and port.
 */
export function joinQuicServices(lists: ServiceLists, given: QuicServiceConfig[], key = 'quicServices'): ServiceLists {
  const names = new Set(lists.tcp.map((s) => s.name));
  const endpoints = new Set<string>();
  const quic = [...lists.quic, ...given];
  quic.forEach((s, i) => {
    // The entries of `services[]` were checked among themselves already: a clash found here is a `quicServices` entry's.
    const k = i >= lists.quic.length ? `${key}[${i - lists.quic.length}]` : 'services';
    if (names.has(s.name)) throw new ConfigError(`${k}.name`, `duplicate service name '${s.name}'`);
    names.add(s.name);
    const e = `${s.address}:${s.port}`;
    if (endpoints.has(e)) throw new ConfigError(k, `service address ${e} (quic) already used by another QUIC service`);
    endpoints.add(e);
  });
  return { tcp: lists.tcp, quic };
}
