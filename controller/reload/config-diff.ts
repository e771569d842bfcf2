// What a config reload would change, as lines an operator reads, and the config to run with.
// Pure: the reloader validates with it before anything is applied. Keys that only take effect at
// start (listeners, sockets, table sizes) are listed as needing a restart and keep their running
// values in `next`, so the running config always says what the process really does.
import type { ControllerConfig } from '../config.ts';
import type { AnalyzersConfig } from '../analyzers/analyzer-config.ts';
import { analyzerRestartNeeded } from '../analyzers/analyzer-config.ts';
import { endpoints, type BackendConfig, type ServiceConfig } from '../handoff/service-config.ts';
import { sameValue, unchangeableServiceChanges } from '../handoff/service-reload.ts';

export interface ConfigDiff {
  /** One line per change that the reload applies: "services.echo.defaultVerdict: FORWARD -> MIGRATE". */
  changes: string[];
  /** Changed keys that take effect only after a restart: "listen.port: 6653 -> 6654". */
  restartNeeded: string[];
  /** The loaded config with every restart-needing key kept at its running value. */
  next: ControllerConfig;
  /** The services differ: the engine must reconfigure them (and reinstall intercept flows). */
  servicesChanged: boolean;
  /** A live handoff timeout differs. */
  timeoutsChanged: boolean;
}

/** A reload that must not be applied at all (a service's address or primary changed). */
export class ReloadRefusedError extends Error {
  readonly status = 409;
  constructor(readonly reasons: string[]) {
    super(reasons.join('; '));
    this.name = 'ReloadRefusedError';
  }
}

/** Handoff settings the engine reads each time it uses them (arming a timer, releasing a held segment). */
export const LIVE_HANDOFF_KEYS = ['handshakeTimeoutMs', 'replayTimeoutMs', 'closeGraceMs', 'revalidateMs', 'releaseBeforeBarrier'] as const;
export type HandoffTimeouts = Pick<ControllerConfig['handoff'], (typeof LIVE_HANDOFF_KEYS)[number]>;

/** Sections with reloadable keys; every other section (listen, api, switch, learning, and any
 * added later) takes effect at start only: a change is listed as needing a restart, never lost. */
const LIVE_SECTIONS = new Set(['log', 'handoff', 'services', 'analyzers']);

/** Throws ReloadRefusedError when the loaded config changes something that cannot change live. */
export function diffConfig(running: ControllerConfig, loaded: ControllerConfig): ConfigDiff {
  const changes: string[] = [];
  const restart: string[] = [];
  const refusals: string[] = [];
  const next = structuredClone(loaded) as ControllerConfig & Record<string, unknown>;
  const run = running as ControllerConfig & Record<string, unknown>;
  const load = loaded as ControllerConfig & Record<string, unknown>;

  for (const k of new Set([...Object.keys(running), ...Object.keys(loaded)])) {
    if (LIVE_SECTIONS.has(k)) continue;
    deepLeaves(k, run[k], load[k], restart);
    keep(next, k, run[k]);
  }
  for (const k of keys(running.log, loaded.log)) {
    const a = (running.log as Record<string, unknown>)[k];
    const b = (loaded.log as Record<string, unknown>)[k];
    if (a === b) continue;
    (k === 'level' ? changes : restart).push(`log.${k}: ${fmt(a)} -> ${fmt(b)}`);
    if (k !== 'level') keep(next.log, k, a);
  }
  for (const k of keys(running.handoff, loaded.handoff)) {
    const a = (running.handoff as Record<string, unknown>)[k];
    const b = (loaded.handoff as Record<string, unknown>)[k];
    if (sameValue(a, b)) continue;
    const live = (LIVE_HANDOFF_KEYS as readonly string[]).includes(k);
    (live ? changes : restart).push(`handoff.${k}: ${fmt(a)} -> ${fmt(b)}`);
    if (!live) keep(next.handoff, k, a);
  }
  diffServices(running.services, loaded.services, changes, refusals);
  restart.push(...analyzerRestartNeeded(running.analyzers, loaded.analyzers));
  const rb = running.analyzers.builtin;
  const lb = loaded.analyzers.builtin;
  if (rb && lb) {
    if (!sameValue(rb.rules, lb.rules)) changes.push(`analyzers.builtin.rules: files ${rb.rules.join(', ')} -> ${lb.rules.join(', ')}`);
    leaves('analyzers.builtin.vars', rb.vars, lb.vars, changes);
  }
  next.analyzers = nextAnalyzers(running.analyzers, loaded.analyzers);
  if (refusals.length) throw new ReloadRefusedError(refusals);
  return {
    changes, restartNeeded: restart, next,
    servicesChanged: !sameValue(running.services, loaded.services),
    timeoutsChanged: LIVE_HANDOFF_KEYS.some((k) => running.handoff[k] !== loaded.handoff[k]),
  };
}

/** Analyzers keep running as started; only the builtin's rule files and vars follow the file. */
function nextAnalyzers(running: AnalyzersConfig, loaded: AnalyzersConfig): AnalyzersConfig {
  const out: AnalyzersConfig = {};
  if (running.builtin) out.builtin = structuredClone(loaded.builtin ?? running.builtin);
  if (running.snort) out.snort = structuredClone(running.snort);
  if (running.suricata) out.suricata = structuredClone(running.suricata);
  return out;
}

function diffServices(running: ServiceConfig[], loaded: ServiceConfig[], out: string[], refusals: string[]): void {
  const loadedByName = new Map(loaded.map((s) => [s.name, s]));
  for (const s of running) {
    const n = loadedByName.get(s.name);
    if (!n) { out.push(`services.${s.name}: removed (${endpoints(s)})`); continue; }
    refusals.push(...unchangeableServiceChanges(s, n));
    diffService(s, n, out);
  }
  const runningNames = new Set(running.map((s) => s.name));
  for (const n of loaded) {
    if (!runningNames.has(n.name)) out.push(`services.${n.name}: added (${endpoints(n)}, backends ${n.backends.map((b) => b.name).join(', ')})`);
  }
}

/** Service keys diffed on their own (or refused: address, port, primary); the rest are plain values. */
const SERVICE_STRUCTURE = new Set(['name', 'address', 'address6', 'port', 'primary', 'backends', 'options', 'sidBackends']);

function diffService(s: ServiceConfig, n: ServiceConfig, out: string[]): void {
  const key = `services.${s.name}`;
  const addr = (b: BackendConfig) => endpoints(b);
  for (const b of s.backends) {
    const nb = n.backends.find((x) => x.name === b.name);
    if (!nb) { out.push(`${key}.backends: removed ${b.name} (${addr(b)})`); continue; }
    if (addr(b) !== addr(nb)) out.push(`${key}.backends.${b.name}: ${addr(b)} -> ${addr(nb)}`);
    leaves(`${key}.backends.${b.name}`, { mac: b.mac, switchPort: b.switchPort }, { mac: nb.mac, switchPort: nb.switchPort }, out);
  }
  for (const nb of n.backends) if (!s.backends.some((b) => b.name === nb.name)) out.push(`${key}.backends: added ${nb.name} (${addr(nb)})`);
  const so = s as unknown as Record<string, unknown>;
  const no = n as unknown as Record<string, unknown>;
  for (const k of keys(s, n)) if (!SERVICE_STRUCTURE.has(k) && !sameValue(so[k], no[k])) out.push(`${key}.${k}: ${fmt(so[k])} -> ${fmt(no[k])}`);
  leaves(`${key}.options`, s.options, n.options, out);
  leaves(`${key}.sidBackends`, s.sidBackends, n.sidBackends, out);
}

/** Like leaves, descending into nested objects; secrets (tokens) are reported without values. */
function deepLeaves(prefix: string, a: unknown, b: unknown, out: string[]): void {
  if (sameValue(a, b)) return;
  if (isPlainObject(a) && isPlainObject(b)) {
    for (const k of keys(a, b)) deepLeaves(`${prefix}.${k}`, a[k], b[k], out);
    return;
  }
  out.push(/token|secret|password/i.test(prefix.slice(prefix.lastIndexOf('.') + 1)) ? `${prefix}: changed` : `${prefix}: ${fmt(a)} -> ${fmt(b)}`);
}

/** Puts the running value (a copy) back into next, or removes the key it did not have. */
function keep(o: object, k: string, running: unknown): void {
  const r = o as Record<string, unknown>;
  if (running === undefined) delete r[k]; else r[k] = structuredClone(running);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function keys(a: object, b: object): Set<string> { return new Set([...Object.keys(a), ...Object.keys(b)]); }

/** "prefix.key: old -> new" for every key of two flat objects whose values differ. */
function leaves(prefix: string, a: object, b: object, out: string[]): void {
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  for (const k of keys(a, b)) {
    if (!sameValue(ao[k], bo[k])) out.push(`${prefix}.${k}: ${fmt(ao[k])} -> ${fmt(bo[k])}`);
  }
}

function fmt(v: unknown): string {
  if (v === undefined) return 'none';
  return typeof v === 'string' ? v : JSON.stringify(v);
}
