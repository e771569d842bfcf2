// The `analyzers` section of the controller config: which alert sources run, and where.
import { join } from 'node:path';
import { ConfigError, checkInt, checkObject as obj, checkOnly as only } from '../config-checks.ts';
import { DEFAULT_SNORT_SOCKET, SNORT_SOCKET_NAME } from './snort-unixsock.ts';

/**
 * Snort's alert sockets, one of three ways: `socket` (one path), `sockets` (several), or `logDir`
 * with `threads` (Snort 3 `-l logDir -z threads`: `<logDir>/snort_alert` for one packet thread,
 * `<logDir>/<i>_snort_alert` for i < threads otherwise). `owner`/`group` (name or numeric id) and
 * `mode` are applied to every socket file right after bind, so a Snort that dropped privileges
 * (`-u`/`-g`) can still send.
 */
export interface SnortConfig {
  socket?: string;
  sockets?: string[];
  logDir?: string;
  threads?: number;
  mode?: number;
  owner?: string | number;
  group?: string | number;
}

export interface AnalyzersConfig {
  builtin?: { rules: string[]; vars: Record<string, string> };
  snort?: SnortConfig;
  suricata?: { socket?: string; streamSocket?: string; mode?: number };
}

/** The socket paths a Snort config binds, with the config key each one comes from (for errors). */
export function snortSockets(s: SnortConfig, key = 'analyzers.snort'): { path: string; key: string }[] {
  if (s.sockets) return s.sockets.map((path, i) => ({ path, key: `${key}.sockets[${i}]` }));
  if (s.logDir !== undefined) {
    const n = s.threads ?? 1;
    if (n === 1) return [{ path: join(s.logDir, SNORT_SOCKET_NAME), key: `${key}.logDir` }];
    return Array.from({ length: n }, (_, i) => ({ path: join(s.logDir!, `${i}_${SNORT_SOCKET_NAME}`), key: `${key}.logDir` }));
  }
  return [{ path: s.socket ?? DEFAULT_SNORT_SOCKET, key: `${key}.socket` }];
}

/** A user or group: a name (resolved when the socket is bound) or a numeric id. */
function principal(v: unknown, key: string): string | number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 2 ** 32) return v;
  if (typeof v === 'string' && /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/.test(v)) return v;
  if (typeof v === 'string' && /^\d{1,10}$/.test(v) && Number(v) < 2 ** 32) return Number(v);
  throw new ConfigError(key, `expected a ${key.endsWith('group') ? 'group' : 'user'} name or numeric id, got ${JSON.stringify(v)}`);
}

function parseSnort(v: unknown, key: string): SnortConfig {
  const s = obj(v, key);
  only(s, key, ['socket', 'sockets', 'logDir', 'threads', 'mode', 'owner', 'group']);
  const ways = (['socket', 'sockets', 'logDir'] as const).filter((k) => s[k] !== undefined);
  if (ways.length > 1) throw new ConfigError(`${key}.${ways[1]}`, `give one of socket, sockets or logDir (with threads), not ${ways.join(' and ')}`);
  if (s.threads !== undefined && s.logDir === undefined) throw new ConfigError(`${key}.threads`, 'only with logDir (the sockets are <logDir>/<i>_snort_alert)');
  const out: SnortConfig = {};
  if (s.sockets !== undefined) {
    if (!Array.isArray(s.sockets) || s.sockets.length === 0) throw new ConfigError(`${key}.sockets`, `expected a non-empty array of socket paths, got ${JSON.stringify(s.sockets)}`);
    out.sockets = s.sockets.map((p, i) => path(p, `${key}.sockets[${i}]`));
    const dup = out.sockets.find((p, i) => out.sockets!.indexOf(p) !== i);
    if (dup !== undefined) throw new ConfigError(`${key}.sockets`, `${dup} is listed twice`);
  } else if (s.logDir !== undefined) {
    out.logDir = path(s.logDir, `${key}.logDir`);
    if (s.threads !== undefined) out.threads = checkInt(s.threads, `${key}.threads`, 1, 1024);
  } else {
    out.socket = s.socket === undefined ? DEFAULT_SNORT_SOCKET : path(s.socket, `${key}.socket`);
  }
  const m = mode(s.mode, `${key}.mode`);
  if (m !== undefined) out.mode = m;
  const owner = principal(s.owner, `${key}.owner`);
  if (owner !== undefined) out.owner = owner;
  const group = principal(s.group, `${key}.group`);
  if (group !== undefined) out.group = group;
  return out;
}

function path(v: unknown, key: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.includes('\0')) throw new ConfigError(key, `expected a file path, got ${JSON.stringify(v)}`);
  return v;
}
function mode(v: unknown, key: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^0?[0-7]{3}$/.test(v)) throw new ConfigError(key, `expected an octal file mode like "0660", got ${JSON.stringify(v)}`);
  return parseInt(v, 8);
}

export function parseAnalyzers(v: unknown, key = 'analyzers'): AnalyzersConfig {
  const o = obj(v, key);
  only(o, key, ['builtin', 'snort', 'suricata']);
  const out: AnalyzersConfig = {};
  if (o.builtin !== undefined) {
    const b = obj(o.builtin, `${key}.builtin`);
    only(b, `${key}.builtin`, ['rules', 'vars']);
    if (!Array.isArray(b.rules) || b.rules.length === 0) throw new ConfigError(`${key}.builtin.rules`, 'expected a non-empty array of rule file paths');
    const vars: Record<string, string> = {};
    for (const [k, val] of Object.entries(b.vars === undefined ? {} : obj(b.vars, `${key}.builtin.vars`))) {
      if (typeof val !== 'string') throw new ConfigError(`${key}.builtin.vars.${k}`, 'expected a string');
      vars[k] = val;
    }
    out.builtin = { rules: b.rules.map((r, i) => path(r, `${key}.builtin.rules[${i}]`)), vars };
  }
  if (o.snort !== undefined) out.snort = parseSnort(o.snort, `${key}.snort`);
  if (o.suricata !== undefined) {
    const s = obj(o.suricata, `${key}.suricata`);
    only(s, `${key}.suricata`, ['socket', 'streamSocket', 'mode']);
    out.suricata = {
      socket: s.socket === undefined ? undefined : path(s.socket, `${key}.suricata.socket`),
      streamSocket: s.streamSocket === undefined ? undefined : path(s.streamSocket, `${key}.suricata.streamSocket`),
      mode: mode(s.mode, `${key}.suricata.mode`),
    };
    if (!out.suricata.socket && !out.suricata.streamSocket) out.suricata.socket = '/tmp/suricata-eve.sock';
  }
  return out;
}

/**
 * What differs between two analyzers sections that a running controller cannot change: adding or
 * removing an analyzer, and the IDS sockets (bound once at start). Builtin rule files and vars
 * are reloadable and not listed. One "key: old -> new" line per difference.
 */
export function analyzerRestartNeeded(running: AnalyzersConfig, next: AnalyzersConfig, key = 'analyzers'): string[] {
  const out: string[] = [];
  for (const name of ['builtin', 'snort', 'suricata'] as const) {
    const a = running[name];
    const b = next[name];
    if (!a !== !b) out.push(`${key}.${name}: ${a ? 'removed' : 'added'}`);
  }
  const sockets = (c?: SnortConfig) => (c ? snortSockets(c).map((s) => s.path).join(', ') : undefined);
  const single = !!running.snort && !!next.snort && snortSockets(running.snort).length === 1 && snortSockets(next.snort).length === 1;
  const fields: [string, unknown, unknown][] = [
    [single ? 'snort.socket' : 'snort.sockets', sockets(running.snort), sockets(next.snort)],
    ['snort.mode', running.snort?.mode, next.snort?.mode],
    ['snort.owner', running.snort?.owner, next.snort?.owner],
    ['snort.group', running.snort?.group, next.snort?.group],
    ['suricata.socket', running.suricata?.socket, next.suricata?.socket],
    ['suricata.streamSocket', running.suricata?.streamSocket, next.suricata?.streamSocket],
    ['suricata.mode', running.suricata?.mode, next.suricata?.mode],
  ];
  for (const [k, a, b] of fields) {
    const [section] = k.split('.') as ['snort' | 'suricata'];
    // Only within an analyzer present on both sides; adding/removing one is reported above.
    if (!running[section] || !next[section] || a === b) continue;
    const fmt = (v: unknown) => (v === undefined ? 'none' : k.endsWith('mode') ? `0${(v as number).toString(8)}` : String(v));
    out.push(`${key}.${k}: ${fmt(a)} -> ${fmt(b)}`);
  }
  return out;
}
