// Helpers for the API tests: an ApiServer on an ephemeral loopback port over a HandoffBed's
// controller, a small HTTP client, and a WebSocket event collector with awaitable matches.
import { request } from 'node:http';
import { WebSocket } from 'ws';
import { ApiServer } from '../../controller/api/index.ts';
import { Logger } from '../../controller/log.ts';
import type { Controller } from '../../controller/controller.ts';
import type { HandoffBed, ScriptClient } from '../lib/handoff-net.ts';
import { SERVICE } from '../lib/handoff-net.ts';

export const TOKEN = 'test-token-5d1c';

export async function startApi(controller: Controller, token = TOKEN): Promise<{ api: ApiServer; base: string }> {
  const api = new ApiServer(controller, { enabled: true, host: '127.0.0.1', port: 0, token }, new Logger((process.env.TM_LOG_LEVEL as 'warn') ?? 'warn', 'text'));
  const { port } = await api.start();
  return { api, base: `http://127.0.0.1:${port}` };
}

export interface Reply { status: number; headers: Record<string, string | string[] | undefined>; text: string; json: any }

/** One HTTP request with full control over headers and raw body (fetch would normalise some). */
export function http(base: string, method: string, path: string, opts: { body?: unknown; raw?: string | Buffer; token?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...opts.headers };
    let payload: Buffer | undefined;
    if (opts.raw !== undefined) payload = Buffer.from(opts.raw);
    else if (opts.body !== undefined) { payload = Buffer.from(JSON.stringify(opts.body)); headers['Content-Type'] = 'application/json'; }
    if (payload) headers['Content-Length'] = String(payload.length);
    if (opts.token !== undefined) headers.Authorization = `Bearer ${opts.token}`;
    const req = request(base + path, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    // The server may answer (413) and close before the whole body is written.
    req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'EPIPE' || (e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e)));
    req.end(payload);
  });
}

/** Collects the event stream; `next(pred)` resolves with the first (past or future) matching event. */
export class EventCollector {
  readonly events: any[] = [];
  private waiters: { pred: (e: any) => boolean; resolve: (e: any) => void }[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => {
      const e = JSON.parse(String(d));
      this.events.push(e);
      this.waiters = this.waiters.filter((w) => (w.pred(e) ? (w.resolve(e), false) : true));
    });
  }

  /** Resolves once the server's hello arrived, i.e. the subscription is live. */
  static async open(base: string, headers: Record<string, string> = {}): Promise<EventCollector> {
    const ws = new WebSocket(base.replace(/^http/, 'ws') + '/api/events', { headers });
    const c = new EventCollector(ws);
    await c.next((e) => e.type === 'hello', 5000);
    return c;
  }

  next(pred: (e: any) => boolean, timeoutMs = 15000): Promise<any> {
    const seen = this.events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no matching event within ${timeoutMs} ms; got: ${this.events.map((e) => e.type).join(', ')}`)), timeoutMs);
      const onClose = () => { clearTimeout(t); reject(new Error('event stream closed')); };
      this.ws.once('close', onClose);
      this.ws.once('error', onClose);
      this.waiters.push({ pred, resolve: (e) => { clearTimeout(t); this.ws.off('close', onClose); this.ws.off('error', onClose); resolve(e); } });
    });
  }

  close(): void { this.ws.terminate(); }
}

/** Connects a script client to the service and returns the controller's id for the connection. */
export async function openConnection(bed: HandoffBed, c: ScriptClient): Promise<number> {
  const r = await c.cmd({ op: 'connect', host: SERVICE.ip, port: SERVICE.port });
  if (!r.ok) throw new Error(`connect failed: ${r.error}`);
  const port = Number(String(r.local).split(':')[1]);
  const conn = bed.engine.connections().find((x) => x.client === `10.0.0.2:${port}`);
  if (!conn) throw new Error('the controller does not track the connection');
  return conn.id;
}
