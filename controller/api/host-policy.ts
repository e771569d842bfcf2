// Which Host (and Origin) names the API answers to. A DNS-rebinding page reaches 127.0.0.1 under
// the attacker's own name; checking the name the browser sends keeps such pages from reading the
// API (connections, flows, packet captures, the event stream).
import { networkInterfaces } from 'node:os';
import { isIP } from 'node:net';

/** An authority as the API compares it: lower-case host name (IPv6 in brackets) and port ('' = none). */
export interface Authority { host: string; port: string }

/**
 * Parses `name`, `name:port`, `1.2.3.4:port`, `[::1]:port` (a Host header, an allowedHosts entry).
 * undefined for anything else: schemes, paths, user info, empty names. Port 80 counts as no port.
 */
export function parseAuthority(text: string): Authority | undefined {
  if (!text || /[\s/\\?#@]/.test(text)) return undefined;
  let u: URL;
  try { u = new URL(`http://${text}`); } catch { return undefined; }
  if (!u.hostname || u.hostname.endsWith('.')) return undefined;
  return { host: u.hostname, port: u.port };
}

/** Validates api.allowedHosts; throws an Error naming the bad entry (config.ts adds the key). */
export function checkAllowedHost(v: unknown): string {
  if (typeof v !== 'string' || parseAuthority(v) === undefined || v.includes('*')) {
    throw new Error(`expected a host name or address with an optional :port, without scheme, path or wildcard (e.g. "ctl.example.org" or "10.1.2.3:6680"), got ${JSON.stringify(v)}`);
  }
  return v;
}

const WILDCARDS = new Set(['', '0.0.0.0', '::', '[::]']);

export class HostPolicy {
  /** Names that must come with the API's own port (or none when it listens on 80). */
  private readonly own = new Set<string>();
  /** Configured names: `name` with no port or the API's port; `name:port` exactly. */
  private readonly extra: Authority[] = [];

  constructor(listenHost: string, private readonly port: number, allowed: readonly string[] = []) {
    const names: string[] = [];
    if (WILDCARDS.has(listenHost)) {
      // Bound to every address: each of this machine's own addresses is a name it is reached by
      // (an IP literal cannot be rebound to another site).
      for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) names.push(a.family === 'IPv6' ? `[${a.address.split('%')[0]}]` : a.address);
    } else names.push(isIP(listenHost) === 6 ? `[${listenHost}]` : listenHost);
    names.push('localhost', '127.0.0.1', '[::1]');
    for (const n of names) { const a = parseAuthority(n); if (a) this.own.add(a.host); }
    for (const e of allowed) { const a = parseAuthority(e); if (a) this.extra.push(a); }
  }

  /** True when a request carrying this Host header (or Origin authority) is for this API. */
  allows(authority: string | undefined): boolean {
    const a = authority === undefined ? undefined : parseAuthority(authority);
    if (!a) return false;
    const ownPort = String(this.port) === a.port || (a.port === '' && this.port === 80);
    if (this.own.has(a.host) && ownPort) return true;
    return this.extra.some((e) => e.host === a.host && (e.port === '' ? a.port === '' || ownPort : e.port === a.port));
  }

  /** True for an Origin header naming one of this API's own http(s) origins. */
  allowsOrigin(origin: string): boolean {
    let u: URL;
    try { u = new URL(origin); } catch { return false; }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return false;
    return this.allows(u.host || undefined);
  }

  /** The accepted names, for error messages and the start-up log line. */
  describe(): string[] {
    const port = this.port === 80 ? '' : `:${this.port}`;
    return [...[...this.own].map((h) => `${h}${port}`), ...this.extra.map((e) => (e.port ? `${e.host}:${e.port}` : e.host))];
  }
}
