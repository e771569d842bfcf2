// Controller configuration: defaults, and validation that names the offending key.
// A tiny declarative schema (no dependency): every field has a checker; unknown keys are errors,
// because a misspelt key silently falling back to a default is worse than refusing to start.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { LOG_LEVELS, type LogFormat, type LogLevel } from './log.ts';
import { ConfigError, checkBool, checkInt, checkOneOf, checkString } from './config-checks.ts';
import type { ServiceConfig } from './handoff/service-config.ts';
import { joinQuicServices, parseQuicServices, parseServiceList, type QuicServiceConfig, type ServiceLists } from './quic-steer/service-config.ts';
import { parseAnalyzers, type AnalyzersConfig } from './analyzers/analyzer-config.ts';
import { checkAllowedHost } from './api/host-policy.ts';
import { parseListenTls } from './datapath/listen-config.ts';
import type { ListenTls } from './datapath/openflow-server.ts';
import { parseFabric, type FabricConfig } from './fabric/fabric-config.ts';

export interface ControllerConfig {
  /** Where switches connect; with `tls`, only switches with a certificate signed by `tls.ca`. */
  listen: { host: string; port: number; tls?: ListenTls };
  log: { level: LogLevel; format: LogFormat };
  switch: { echoIntervalMs: number; deadTimeoutMs: number; requestTimeoutMs: number };
  learning: { idleTimeout: number; hardTimeout: number; priority: number };
  handoff: {
    maxConnections: number; halfOpenMax: number; halfOpenPerSource: number; whenFull: 'refuse' | 'forward';
    handshakeTimeoutMs: number; replayTimeoutMs: number; closeGraceMs: number; revalidateMs: number; switchGraceMs: number;
    /** The conntrack zone of services with forwardVia or migrateVia 'conntrack' (reserved for this controller on its switches). */
    conntrackZone: number;
    /** A conntrack-FORWARDed connection older than this gets flows of its own (adoptable, idle-timed by the switch); 0: never. */
    conntrackFlowsAfterMs: number;
    /** Send what was held right behind the connection's Flow-Mods instead of after the barrier's reply (OVS runs one channel's messages in order). */
    releaseBeforeBarrier: boolean;
  };
  services: ServiceConfig[];
  /** The `"protocol": "quic"` entries of `services[]` (docs/quic.md, "QUIC services"). */
  quicServices: QuicServiceConfig[];
  analyzers: AnalyzersConfig;
  api: { enabled: boolean; host: string; port: number; token: string; allowedHosts: string[] };
  /** Standby controllers: absent, this controller runs alone (OpenFlow role EQUAL, as without roles). */
  ha?: HaConfig;
  /** Several switches (docs/fabric.md): absent, the learning switch forwards on each switch alone. */
  fabric?: FabricConfig;
}

export interface HaConfig {
  /** etcd client URLs (http://host:2379). */
  etcd: string[];
  /** The election key every controller of one group of switches shares. */
  key: string;
  /** This controller's name in the election (default: host name and pid). */
  name: string;
  /** Lease TTL in seconds: a dead master is replaced about this long after it died. */
  ttlSec: number;
}

export const DEFAULT_CONFIG: ControllerConfig = {
  // Loopback unless told otherwise: the plain listener authenticates nobody (see listen.tls).
  listen: { host: '127.0.0.1', port: 6653 },
  log: { level: 'info', format: 'text' },
  switch: { echoIntervalMs: 5000, deadTimeoutMs: 15000, requestTimeoutMs: 10000 },
  learning: { idleTimeout: 60, hardTimeout: 0, priority: 10 },
  handoff: { maxConnections: 100000, halfOpenMax: 10000, halfOpenPerSource: 256, whenFull: 'refuse', handshakeTimeoutMs: 30000, replayTimeoutMs: 1000, closeGraceMs: 1000, revalidateMs: 100, switchGraceMs: 60000, releaseBeforeBarrier: true, conntrackZone: 0x746d, conntrackFlowsAfterMs: 2000 },
  services: [],
  quicServices: [],
  analyzers: {},
  api: { enabled: true, host: '127.0.0.1', port: 6680, token: '', allowedHosts: [] },
};

export { ConfigError };

type Checker = (v: unknown, key: string) => unknown;

const int = (min: number, max: number): Checker => (v, key) => checkInt(v, key, min, max);
const oneOf = (values: readonly string[]): Checker => (v, key) => checkOneOf(v, key, values);
const host: Checker = (v, key) => checkString(v, key, /^\S+$/, 'a host name or address');
const bool: Checker = (v, key) => checkBool(v, key);

type Schema = { [k: string]: Checker | Schema };

const SCHEMA: Schema = {
  listen: { host, port: int(0, 65535), tls: (v, key) => parseListenTls(v, key) },
  log: { level: oneOf(LOG_LEVELS), format: oneOf(['json', 'text']) },
  switch: { echoIntervalMs: int(100, 3_600_000), deadTimeoutMs: int(200, 3_600_000), requestTimeoutMs: int(100, 3_600_000) },
  learning: { idleTimeout: int(0, 65535), hardTimeout: int(0, 65535), priority: int(1, 65535) },
  handoff: { maxConnections: int(1, 10_000_000), halfOpenMax: int(1, 10_000_000), halfOpenPerSource: int(1, 10_000_000), whenFull: oneOf(['refuse', 'forward']), handshakeTimeoutMs: int(100, 3_600_000), replayTimeoutMs: int(50, 60_000), closeGraceMs: int(0, 600_000), revalidateMs: int(0, 10_000), switchGraceMs: int(0, 3_600_000), releaseBeforeBarrier: bool, conntrackZone: int(1, 65534), conntrackFlowsAfterMs: int(0, 3_600_000) },
  services: (v, key) => parseServiceList(v, key),
  quicServices: (v, key) => parseQuicServices(v, key),
  analyzers: (v, key) => parseAnalyzers(v, key),
  ha: (v, key) => parseHa(v, key),
  fabric: (v, key) => parseFabric(v, key),
  api: {
    enabled: checkBool,
    host, port: int(0, 65535),
    // Bearer token for requests that change state; empty means changes are refused.
    token: (v, key) => checkString(v, key, /^\S*$/, 'a token string without spaces'),
    // Host names (besides the listen address and localhost) clients may reach the API by.
    allowedHosts: (v, key) => {
      if (!Array.isArray(v)) throw new ConfigError(key, `expected an array of host names, got ${JSON.stringify(v)}`);
      return v.map((h, i) => { try { return checkAllowedHost(h); } catch (e) { throw new ConfigError(`${key}[${i}]`, (e as Error).message); } });
    },
  },
};

function parseHa(v: unknown, key: string): HaConfig {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(key, `expected an object, got ${JSON.stringify(v)}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['etcd', 'key', 'name', 'ttlSec'].includes(k)) throw new ConfigError(`${key}.${k}`, 'unknown key (known: etcd, key, name, ttlSec)');
  if (!Array.isArray(o.etcd) || o.etcd.length === 0) throw new ConfigError(`${key}.etcd`, 'expected a non-empty array of etcd client URLs');
  const etcd = o.etcd.map((u, i) => {
    let url: URL | undefined;
    try { url = typeof u === 'string' ? new URL(u) : undefined; } catch { url = undefined; }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new ConfigError(`${key}.etcd[${i}]`, `expected an http:// or https:// URL, got ${JSON.stringify(u)}`);
    return String(u).replace(/\/+$/, '');
  });
  return {
    etcd,
    key: o.key === undefined ? '/tcp-migrate/leader/default' : checkString(o.key, `${key}.key`, /^\/\S+$/, 'a key path starting with /'),
    name: o.name === undefined ? `${hostname()}:${process.pid}` : checkString(o.name, `${key}.name`, /^\S{1,128}$/, 'a name without spaces'),
    ttlSec: o.ttlSec === undefined ? 2 : checkInt(o.ttlSec, `${key}.ttlSec`, 1, 60),
  };
}

function merge(schema: Schema, defaults: Record<string, unknown>, input: unknown, path: string): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new ConfigError(path || '(root)', `expected an object, got ${JSON.stringify(input)}`);
  const out: Record<string, unknown> = { ...defaults };
  for (const [k, v] of Object.entries(input)) {
    const key = path ? `${path}.${k}` : k;
    const spec = schema[k];
    if (spec === undefined) throw new ConfigError(key, `unknown key (known: ${Object.keys(schema).join(', ')})`);
    out[k] = typeof spec === 'function' ? spec(v, key) : merge(spec, defaults[k] as Record<string, unknown>, v, key);
  }
  return out;
}

/** The names of the services whose raw config says forwardVia / migrateVia. */
function explicitVia(input: unknown): { forwardVia: Set<string>; migrateVia: Set<string> } {
  const raw = (input as { services?: unknown } | null)?.services;
  const list = Array.isArray(raw) ? raw : [];
  const named = (key: string) => new Set(list.flatMap((s) => (typeof s === 'object' && s !== null && key in s ? [String((s as { name?: unknown }).name)] : [])));
  return { forwardVia: named('forwardVia'), migrateVia: named('migrateVia') };
}

/** A service whose forwardVia / migrateVia took the default (conntrack) gets flows instead. */
function defaultVia(s: ServiceConfig, explicit: { forwardVia: Set<string>; migrateVia: Set<string> }): ServiceConfig {
  return { ...s, forwardVia: explicit.forwardVia.has(s.name) ? s.forwardVia : 'flows', migrateVia: explicit.migrateVia.has(s.name) ? s.migrateVia : 'flows' };
}

/** Validates a parsed config object, filling in defaults. Throws ConfigError naming the bad key. */
export function parseConfig(input: unknown): ControllerConfig {
  const cfg = merge(SCHEMA, DEFAULT_CONFIG as unknown as Record<string, unknown>, input ?? {}, '') as unknown as ControllerConfig;
  // services[] holds both protocols; the QUIC entries have a list of their own (given as such too).
  const lists = Array.isArray(cfg.services) ? { tcp: cfg.services, quic: [] } : cfg.services as unknown as ServiceLists;
  ({ tcp: cfg.services, quic: cfg.quicServices } = joinQuicServices(lists, cfg.quicServices));
  // A verdict kept in one switch's conntrack says nothing to the other switches on the path: on a
  // fabric, conntrack said is refused and the default is flows.
  if (cfg.fabric) {
    const explicit = explicitVia(input);
    cfg.services = cfg.services.map((s) => defaultVia(s, explicit));
  }
  for (const via of ['forwardVia', 'migrateVia'] as const) {
    const ct = cfg.services.findIndex((s) => s[via] === 'conntrack');
    if (cfg.fabric && ct >= 0) throw new ConfigError(`services[${ct}].${via}`, "'conntrack' is for a single switch; with fabric use 'flows'");
  }
  if (cfg.switch.deadTimeoutMs <= cfg.switch.echoIntervalMs) {
    throw new ConfigError('switch.deadTimeoutMs', `must be larger than switch.echoIntervalMs (${cfg.switch.echoIntervalMs})`);
  }
  return cfg;
}

export function loadConfigFile(path: string): ControllerConfig {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { throw new ConfigError('(file)', `cannot read: ${(e as Error).message}`, path); }
  let json: unknown;
  try { json = JSON.parse(text); } catch (e) { throw new ConfigError('(file)', `not valid JSON: ${(e as Error).message}`, path); }
  try { return parseConfig(json); } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(e.key, e.message.replace(/^invalid config at '[^']*': /, ''), path);
    throw e;
  }
}
