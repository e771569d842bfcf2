// A small etcd v3 client over etcd's JSON gRPC gateway (plain HTTP + fetch, no gRPC dependency).
// The gateway speaks protobuf-JSON: bytes fields (keys, values) are base64, int64 fields are decimal
// strings, zero values (false, 0, PUT) are omitted. etcd 3.4 serves it under /v3/ (also /v3beta/;
// /v3alpha/ is gone). Lease ids are random int64s, so ids are bigints here, never JS numbers.

/** Why a request failed: `unreachable`/`timeout` may succeed on another endpoint, `server` is etcd's answer. */
export type EtcdErrorKind = 'unreachable' | 'timeout' | 'server' | 'protocol' | 'aborted';

export class EtcdError extends Error {
  constructor(readonly endpoint: string, message: string, readonly kind: EtcdErrorKind, readonly code?: number) {
    super(`etcd ${endpoint}: ${message}`);
    this.name = 'EtcdError';
  }
  /** etcd's "requested lease not found" (gRPC NOT_FOUND): the lease expired or was revoked. */
  get leaseNotFound(): boolean { return this.kind === 'server' && /lease not found/.test(this.message); }
}

export interface KeyValue {
  key: string;
  value: string;
  createRevision: bigint;
  modRevision: bigint;
  version: bigint;
  /** 0n when the key has no lease. */
  lease: bigint;
}

export interface WatchEvent { type: 'put' | 'delete'; kv: KeyValue }

export interface PutIfAbsentResult {
  succeeded: boolean;
  /** The store revision after the txn; when it succeeded, also the key's create_revision. */
  revision: bigint;
  /** The key as it is, when the put did not happen (it already existed). */
  kv?: KeyValue;
}

export interface EtcdClientOptions {
  endpoints: string[];
  /** Per request and per endpoint; for a watch, until etcd confirms it was created. */
  timeoutMs?: number;
}

export type Id = bigint | string;

const API = '/v3';
// gRPC codes after which another endpoint may do better: DEADLINE_EXCEEDED, UNAVAILABLE ("no leader", ...).
const RETRY_CODES = new Set([4, 14]);

export class EtcdClient {
  readonly endpoints: string[];
  readonly timeoutMs: number;
  private current = 0;

  constructor(opts: EtcdClientOptions) {
    if (opts.endpoints.length === 0) throw new Error('EtcdClient: no endpoints');
    this.endpoints = opts.endpoints.map((e) => e.replace(/\/+$/, ''));
    this.timeoutMs = opts.timeoutMs ?? 1000;
  }

  async leaseGrant(ttlSec: number, signal?: AbortSignal): Promise<{ id: bigint; ttl: number }> {
    // etcd may grant more than asked: it raises TTLs below its minimum (1.5 x election timeout, rounded up).
    const r = await this.call('/lease/grant', { TTL: ttlSec }, signal);
    return { id: toBigInt(r.ID), ttl: Number(toBigInt(r.TTL)) };
  }

  /** Renews the lease once; returns the remaining TTL in seconds, 0 when the lease no longer exists. */
  async leaseKeepAlive(id: Id, signal?: AbortSignal): Promise<number> {
    // A stream endpoint: the gateway answers one request body with one {"result": ...} message.
    const r = await this.call('/lease/keepalive', { ID: String(id) }, signal);
    return Number(toBigInt(r.result?.TTL));
  }

  /** Revokes the lease (deleting its keys); false when it did not exist any more. */
  async leaseRevoke(id: Id, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.call('/lease/revoke', { ID: String(id) }, signal);
      return true;
    } catch (e) {
      if (e instanceof EtcdError && e.leaseNotFound) return false;
      throw e;
    }
  }

  /** Puts key=value with the lease if the key does not exist (create_revision == 0), else reads it, atomically. */
  async putIfAbsent(key: string, value: string, lease: Id, signal?: AbortSignal): Promise<PutIfAbsentResult> {
    const k = b64(key);
    const r = await this.call('/kv/txn', {
      compare: [{ key: k, target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
      success: [{ request_put: { key: k, value: b64(value), lease: String(lease) } }],
      failure: [{ request_range: { key: k } }],
    }, signal);
    const succeeded = r.succeeded === true;
    const revision = toBigInt(r.header?.revision);
    const raw = succeeded ? undefined : r.responses?.[0]?.response_range?.kvs?.[0];
    return { succeeded, revision, kv: raw ? decodeKv(raw) : undefined };
  }

  async range(key: string, signal?: AbortSignal): Promise<KeyValue | undefined> {
    const r = await this.call('/kv/range', { key: b64(key) }, signal);
    return r.kvs?.[0] ? decodeKv(r.kvs[0]) : undefined;
  }

  /**
   * Streams the key's events from `startRevision` to `onEvent` until `signal` aborts (then it resolves).
   * Rejects with an EtcdError when the stream breaks, ends, or etcd cancels the watch (e.g. compacted).
   */
  async watch(key: string, startRevision: Id, onEvent: (ev: WatchEvent) => void, signal: AbortSignal): Promise<void> {
    const body = { create_request: { key: b64(key), start_revision: String(startRevision) } };
    let s: OpenStream;
    try {
      s = await this.openStream('/watch', body, signal);
    } catch (e) {
      if (signal.aborted) return;
      throw e;
    }
    try {
      const reader = s.res.body!.pipeThrough(new TextDecoderStream()).getReader();
      const lines = new LineSplitter();
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (e) {
          if (signal.aborted) return;
          throw transportError(s.endpoint, e, s.timedOut);
        }
        if (signal.aborted) return;
        if (chunk.done) throw new EtcdError(s.endpoint, 'watch stream ended', 'unreachable');
        for (const line of lines.push(chunk.value)) {
          const msg = parseWatchMessage(s.endpoint, line);
          if (msg.created) clearTimeout(s.timer);
          for (const ev of msg.events) onEvent(ev);
        }
      }
    } finally {
      s.close();
    }
  }

  /** Opens a streaming POST, failing over on connect errors; its timer runs until the caller clears it. */
  private async openStream(path: string, body: unknown, signal: AbortSignal): Promise<OpenStream> {
    let last: EtcdError | undefined;
    for (let i = 0; i < this.endpoints.length; i++) {
      const idx = (this.current + i) % this.endpoints.length;
      const endpoint = this.endpoints[idx];
      if (signal.aborted) throw new EtcdError(endpoint, 'aborted', 'aborted'); // 'abort' would not fire again
      const ctl = new AbortController();
      const onAbort = (): void => ctl.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      const s: OpenStream = {
        endpoint, timedOut: false, res: undefined as unknown as Response,
        timer: setTimeout(() => { s.timedOut = true; ctl.abort(); }, this.timeoutMs),
        close: () => { clearTimeout(s.timer); signal.removeEventListener('abort', onAbort); ctl.abort(); },
      };
      try {
        s.res = await fetch(endpoint + API + path, { method: 'POST', body: JSON.stringify(body), headers: JSON_HEADERS, signal: ctl.signal });
        if (!s.res.ok || !s.res.body) {
          const text = await s.res.text().catch(() => '');
          throw new EtcdError(endpoint, `HTTP ${s.res.status} ${text.slice(0, 200)}`.trim(), 'server');
        }
        this.current = idx;
        return s;
      } catch (e) {
        s.close();
        if (signal.aborted) throw new EtcdError(endpoint, 'aborted', 'aborted');
        if (e instanceof EtcdError) throw e;
        last = transportError(endpoint, e, s.timedOut);
      }
    }
    throw last!;
  }

  /** POSTs to each endpoint in turn (starting with the last good one) until one answers. */
  private async call(path: string, body: unknown, signal?: AbortSignal): Promise<any> {
    let last: EtcdError | undefined;
    for (let i = 0; i < this.endpoints.length; i++) {
      const idx = (this.current + i) % this.endpoints.length;
      const endpoint = this.endpoints[idx];
      const timeout = AbortSignal.timeout(this.timeoutMs);
      const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
      try {
        const res = await fetch(endpoint + API + path, { method: 'POST', body: JSON.stringify(body), headers: JSON_HEADERS, signal: sig });
        const text = await res.text();
        const json = parseJson(endpoint, text);
        const err = json.error;
        if (err !== undefined || !res.ok) {
          const msg = typeof err === 'object' && err ? err.message : json.message ?? err ?? `HTTP ${res.status}`;
          const code = typeof err === 'object' && err ? err.grpc_code : json.code;
          throw new EtcdError(endpoint, String(msg), 'server', typeof code === 'number' ? code : undefined);
        }
        this.current = idx;
        return json;
      } catch (e) {
        if (signal?.aborted) throw new EtcdError(endpoint, 'aborted', 'aborted');
        const ee = e instanceof EtcdError ? e : transportError(endpoint, e, timeout.aborted);
        if (ee.kind === 'protocol' || (ee.kind === 'server' && !RETRY_CODES.has(ee.code ?? -1))) throw ee;
        last = ee;
      }
    }
    throw last!;
  }
}

const JSON_HEADERS = { 'content-type': 'application/json' };

interface OpenStream { endpoint: string; res: Response; timer: NodeJS.Timeout; timedOut: boolean; close(): void }

function transportError(endpoint: string, e: unknown, timedOut: boolean): EtcdError {
  if (timedOut) return new EtcdError(endpoint, 'timed out', 'timeout');
  const cause = (e as { cause?: { code?: string; message?: string } })?.cause;
  const what = cause?.code ?? cause?.message ?? (e as Error)?.message ?? String(e);
  return new EtcdError(endpoint, `unreachable (${what})`, 'unreachable');
}

function parseJson(endpoint: string, text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    throw new EtcdError(endpoint, `not JSON: ${text.slice(0, 200)}`, 'protocol');
  }
}

// ---- decoding (exported for unit tests) ----

export function b64(s: string): string { return Buffer.from(s, 'utf8').toString('base64'); }
export function unb64(s: unknown): string { return typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : ''; }

/** An int64 from protobuf-JSON: a decimal string (or, defensively, a safe integer); absent means 0. */
export function toBigInt(v: unknown): bigint {
  if (v === undefined || v === null) return 0n;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  throw new TypeError(`not an int64: ${JSON.stringify(v)}`);
}

export function decodeKv(raw: any): KeyValue {
  return {
    key: unb64(raw.key),
    value: unb64(raw.value),
    createRevision: toBigInt(raw.create_revision),
    modRevision: toBigInt(raw.mod_revision),
    version: toBigInt(raw.version),
    lease: toBigInt(raw.lease),
  };
}

export interface WatchMessage { created: boolean; events: WatchEvent[] }

/** One line of the watch stream; throws EtcdError for an error or a cancelled watch. */
export function parseWatchMessage(endpoint: string, line: string): WatchMessage {
  const json = parseJson(endpoint, line);
  if (json.error) {
    const err = json.error;
    throw new EtcdError(endpoint, String(typeof err === 'object' ? err.message : json.message ?? err), 'server', typeof err === 'object' ? err.grpc_code : json.code);
  }
  const r = json.result ?? {};
  if (r.canceled) {
    const why = r.cancel_reason || (r.compact_revision ? `compacted at revision ${r.compact_revision}` : 'canceled');
    throw new EtcdError(endpoint, `watch canceled: ${why}`, 'server');
  }
  const events: WatchEvent[] = (r.events ?? []).map((e: any) => ({ type: e.type === 'DELETE' ? 'delete' : 'put', kv: decodeKv(e.kv ?? {}) }));
  return { created: r.created === true, events };
}

/** Splits a stream of text chunks into complete lines; a partial line waits for the next chunk. */
export class LineSplitter {
  private rest = '';
  push(chunk: string): string[] {
    const parts = (this.rest + chunk).split('\n');
    this.rest = parts.pop()!;
    return parts.filter((l) => l.trim() !== '');
  }
  /** Whatever is buffered without a newline yet. */
  get pending(): string { return this.rest; }
}
