// Applies a reloaded services list to the running one. Connections hold references to their
// ServiceConfig (and moves to a BackendConfig), so the running objects are updated in place:
// replacing them would leave live connections on a stale copy that no later change reaches.
// Everything is validated before anything changes: a refused reload leaves no half-applied state.
import { isDeepStrictEqual } from 'node:util';
import { endpoints, type BackendConfig, type ServiceConfig } from './service-config.ts';

/** Connections a backend of a running service serves (on it, or moving to it). */
export type BusyCount = (service: ServiceConfig, backendName: string) => number;

export interface ServiceReloadResult {
  /** Running services that were updated in place (same objects as before). */
  changed: ServiceConfig[];
  /** New services, appended to the running list. */
  added: ServiceConfig[];
  /** Services taken out of the running list. */
  removed: ServiceConfig[];
  /** Why the reload was refused; when non-empty nothing was changed. */
  errors: string[];
}

/** JSON equality: an absent optional key equals one set to undefined (parsers differ on that). */
export function sameValue(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(a === undefined ? a : JSON.parse(JSON.stringify(a)), b === undefined ? b : JSON.parse(JSON.stringify(b)));
}

/**
 * Changes to a service that cannot be made while it runs, whatever its connections: its address
 * and its primary (connections reach the primary on the service address, and a connection's
 * first backend is the primary), so a changed primary would strand them.
 */
export function unchangeableServiceChanges(running: ServiceConfig, next: ServiceConfig): string[] {
  const key = `services.${running.name}`;
  const out: string[] = [];
  if (running.address !== next.address || running.address6 !== next.address6 || running.port !== next.port) {
    out.push(`${key}: the service address, which is its primary's, cannot change while the controller runs (${endpoints(running)} -> ${endpoints(next)}); add the new address as another service, or restart`);
  }
  if (running.primary !== next.primary) {
    out.push(`${key}.primary: cannot change while the controller runs (${running.primary} -> ${next.primary}): every connection starts on the primary at the service address`);
  } else {
    const a = running.backends.find((b) => b.name === running.primary);
    const b = next.backends.find((x) => x.name === next.primary);
    if (a && b && (a.address !== b.address || a.address6 !== b.address6 || a.port !== b.port) && (running.address === next.address && running.address6 === next.address6 && running.port === next.port)) {
      out.push(`${key}.primary: backend '${a.name}' cannot move from ${endpoints(a)} to ${endpoints(b)}: it is the service address`);
    }
  }
  return out;
}

/**
 * Makes `running` (mutated in place) equal to `next`, matching services and backends by name.
 * Refuses, changing nothing, to remove a service or backend that still serves connections, to
 * move a busy backend to another address, or to change a service's address or primary.
 * New objects (added services and backends) are copies of `next`'s, never shared with it.
 */
export function applyServiceConfig(running: ServiceConfig[], next: ServiceConfig[], busy: BusyCount): ServiceReloadResult {
  const errors: string[] = [];
  const nextByName = new Map(next.map((s) => [s.name, s]));
  const runningNames = new Set(running.map((s) => s.name));

  // 1. Validate.
  for (const s of running) {
    const n = nextByName.get(s.name);
    if (!n) {
      const total = s.backends.reduce((sum, b) => sum + busy(s, b.name), 0);
      if (total > 0) errors.push(`services.${s.name}: cannot remove the service: it still serves ${total} connection(s)`);
      continue;
    }
    errors.push(...unchangeableServiceChanges(s, n));
    for (const b of s.backends) {
      const nb = n.backends.find((x) => x.name === b.name);
      const inUse = busy(s, b.name);
      if (inUse === 0) continue;
      if (!nb) errors.push(`services.${s.name}.backends: cannot remove ${b.name}: it still serves ${inUse} connection(s); migrate them first`);
      else if (nb.address !== b.address || nb.address6 !== b.address6 || nb.port !== b.port) {
        errors.push(`services.${s.name}.backends.${b.name}: cannot move from ${endpoints(b)} to ${endpoints(nb)}: it still serves ${inUse} connection(s); migrate them first`);
      }
    }
  }
  if (errors.length) return { changed: [], added: [], removed: [], errors };

  // 2. Mutate.
  const changed: ServiceConfig[] = [];
  const removed: ServiceConfig[] = [];
  for (let i = running.length - 1; i >= 0; i--) {
    if (!nextByName.has(running[i]!.name)) removed.unshift(...running.splice(i, 1));
  }
  for (const s of running) {
    const n = nextByName.get(s.name)!;
    if (sameValue(s, n)) continue;
    updateService(s, n);
    changed.push(s);
  }
  const added = next.filter((n) => !runningNames.has(n.name)).map((n) => structuredClone(n));
  running.push(...added);
  return { changed, added, removed, errors: [] };
}

/** Copies every field of `n` into `s`, keeping the identity of s, its arrays and its backends. */
function updateService(s: ServiceConfig, n: ServiceConfig): void {
  const old = new Map(s.backends.map((b) => [b.name, b]));
  const backends = n.backends.map((nb) => {
    const b = old.get(nb.name);
    if (!b) return structuredClone(nb);
    updateBackend(b, nb);
    return b;
  });
  s.backends.splice(0, s.backends.length, ...backends);
  for (const sid of Object.keys(s.sidBackends)) if (!(sid in n.sidBackends)) delete s.sidBackends[sid];
  Object.assign(s.sidBackends, structuredClone(n.sidBackends));
  Object.assign(s.options, structuredClone(n.options));
  // Every other key is a plain value (verdict settings, timeouts, mirror...): copied, or removed if gone.
  const so = s as unknown as Record<string, unknown>;
  const no = n as unknown as Record<string, unknown>;
  for (const k of new Set([...Object.keys(so), ...Object.keys(no)])) {
    if (k === 'backends' || k === 'sidBackends' || k === 'options') continue;
    if (k in no) so[k] = structuredClone(no[k]); else delete so[k];
  }
}

function updateBackend(b: BackendConfig, n: BackendConfig): void {
  b.address = n.address;
  if (n.address6 === undefined) delete b.address6; else b.address6 = n.address6;
  b.port = n.port;
  if (n.mac === undefined) delete b.mac; else b.mac = n.mac;
  if (n.switchPort === undefined) delete b.switchPort; else b.switchPort = n.switchPort;
}
