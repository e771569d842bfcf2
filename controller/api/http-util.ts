// Small HTTP helpers for the API (node:http, no framework): JSON replies, errors that carry their
// status, bounded JSON bodies (and discarding unwanted ones), bearer-token checks.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** An error that becomes a JSON reply `{error, status}` with this status. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) { super(message); }
}

export const MAX_BODY_BYTES = 64 * 1024;

/** JSON.stringify that turns bigints into numbers (safe ranges) or decimal strings, Dates into ISO. */
export function toJson(v: unknown, pretty = false): string {
  return JSON.stringify(v, (_k, x) => {
    if (typeof x === 'bigint') return x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x.toString();
    if (Buffer.isBuffer(x)) return x.toString('hex');
    return x;
  }, pretty ? 2 : undefined);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = toJson(body) + '\n';
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { error: message, status }, headers);
}

/**
 * Reads a JSON object body of at most `limit` bytes. Rejects with 413 as soon as the limit is
 * passed (declared or counted), 400 on bad JSON. The rest of an oversized body is left to the
 * error reply (see discardBody), so the client gets the 413 rather than a reset connection.
 */
export function readJsonBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) { reject(new HttpError(413, `request body of ${declared} bytes exceeds the limit of ${limit} bytes`)); return; }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        done = true;
        chunks.length = 0;
        req.off('data', onData);
        req.pause();
        reject(new HttpError(413, `request body exceeds the limit of ${limit} bytes`));
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('error', (e) => { if (!done) { done = true; reject(new HttpError(400, `reading the request body failed: ${e.message}`)); } });
    req.on('end', () => {
      if (done) return;
      done = true;
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') { reject(new HttpError(400, 'expected a JSON object in the request body')); return; }
      let v: unknown;
      try { v = JSON.parse(text); } catch (e) { reject(new HttpError(400, `request body is not valid JSON: ${(e as Error).message}`)); return; }
      if (typeof v !== 'object' || v === null || Array.isArray(v)) { reject(new HttpError(400, `expected a JSON object in the request body, got ${Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'null' : typeof v}`)); return; }
      resolve(v as Record<string, unknown>);
    });
  });
}

/** How much of an unwanted request body the server reads and throws away before it gives up on the connection. */
export const DISCARD_LIMIT = 16 * 1024 * 1024;

/**
 * Reads and throws away the rest of a request body. Closing a socket with unread data makes the
 * kernel answer with a reset, which can destroy a reply the client has not read yet. Resolves
 * true once the body ended; false when the client went away or sent more than `limit` bytes (the
 * connection is then destroyed).
 */
export function discardBody(req: IncomingMessage, limit = DISCARD_LIMIT): Promise<boolean> {
  if (req.complete) return Promise.resolve(true);
  return new Promise((resolve) => {
    let size = 0;
    const finish = (ok: boolean) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      resolve(ok);
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) { req.socket.destroy(); finish(false); }
    };
    const onEnd = () => finish(true);
    const onClose = () => finish(req.complete);
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('close', onClose);
    req.resume();
  });
}

/** Throws 400 unless `o` has only the given keys. */
export function onlyKeys(o: Record<string, unknown>, known: string[]): void {
  for (const k of Object.keys(o)) if (!known.includes(k)) throw new HttpError(400, `unknown field '${k}' (known: ${known.join(', ')})`);
}

/** A required non-empty string field. */
export function stringField(o: Record<string, unknown>, key: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0) throw new HttpError(400, `field '${key}' must be a non-empty string${v === undefined ? ' (missing)' : `, got ${JSON.stringify(v)}`}`);
  return v;
}

function digest(s: string): Buffer { return createHash('sha256').update(s).digest(); }

/** A failed bearer-token check (401); `reason` labels the failure metric. */
export class AuthError extends HttpError {
  constructor(readonly reason: 'missing' | 'malformed' | 'invalid', message: string, wwwAuthenticate: string) {
    super(401, message, { 'WWW-Authenticate': wwwAuthenticate });
  }
}

/**
 * Bearer-token check for requests that change state. An empty configured token disables changes
 * (403) rather than allowing them: an API that accepts anything by default is a trap.
 */
export function requireToken(req: IncomingMessage, token: string): void {
  if (!token) throw new HttpError(403, 'changes through the API are disabled: set api.token in the controller config');
  const h = req.headers.authorization;
  if (!h) throw new AuthError('missing', 'missing Authorization header: send "Authorization: Bearer <api.token>"', 'Bearer realm="tcp-migrate"');
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  if (!m) throw new AuthError('malformed', 'malformed Authorization header: expected "Bearer <token>"', 'Bearer realm="tcp-migrate"');
  // Compare digests: constant time and equal lengths whatever the caller sent.
  if (!timingSafeEqual(digest(m[1]), digest(token))) throw new AuthError('invalid', 'invalid API token', 'Bearer realm="tcp-migrate", error="invalid_token"');
}

/** A positive integer from a path or query parameter, or 400 naming it. */
export function positiveInt(v: string, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d{1,16}$/.test(v) || Number(v) < 1 || Number(v) > max) throw new HttpError(400, `${what} must be a positive integer${max < Number.MAX_SAFE_INTEGER ? ` up to ${max}` : ''}, got ${JSON.stringify(v)}`);
  return Number(v);
}
