// The `analyzers` section of the controller config: which alert sources run, and where.
import { ConfigError, checkObject as obj, checkOnly as only } from '../config-checks.ts';

export interface AnalyzersConfig {
  builtin?: { rules: string[]; vars: Record<string, string> };
  snort?: { socket: string; mode?: number };
  suricata?: { socket?: string; streamSocket?: string; mode?: number };
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
  if (o.snort !== undefined) {
    const s = obj(o.snort, `${key}.snort`);
    only(s, `${key}.snort`, ['socket', 'mode']);
    out.snort = { socket: s.socket === undefined ? '/tmp/snort_alert' : path(s.socket, `${key}.snort.socket`), mode: mode(s.mode, `${key}.snort.mode`) };
  }
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
  const fields: [string, unknown, unknown][] = [
    ['snort.socket', running.snort?.socket, next.snort?.socket],
    ['snort.mode', running.snort?.mode, next.snort?.mode],
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
