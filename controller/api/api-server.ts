// The operator API: JSON over node:http, a WebSocket event stream (ws), a live pcap stream, the
// Prometheus scrape endpoint and the dashboard page. Reads are open (bound to localhost by
// default) but only under the API's own names (Host and Origin checked against DNS rebinding);
// requests that change state need the configured bearer token, and failures are rate-limited.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Controller, CaptureRecord } from '../controller.ts';
import { EngineError, type ConnectionView, type LoadView } from '../handoff/handoff-engine.ts';
import { FREEZE_TIMEOUT_MS } from '../handoff/move.ts';
import { APP_ID, COOKIE_APP_MASK, appCookie } from '../cookies.ts';
import type { FlowStats } from '../openflow/index.ts';
import { flowsByConnection } from '../handoff/flow-plan.ts';
import { endpointIp } from '../handoff/connection.ts';
import { PcapWriter } from '../packet/index.ts';
import { ControllerMetrics, PROMETHEUS_CONTENT_TYPE } from '../metrics.ts';
import type { Logger } from '../log.ts';
import type { ReloadResult } from '../reload/reloader.ts';
import { EventHub, type ApiEvent } from './events.ts';
import { flowView, type FlowView } from './flow-format.ts';
import { AuthError, DISCARD_LIMIT, HttpError, discardBody, onlyKeys, positiveInt, readJsonBody, requireToken, sendError, sendJson, stringField, toJson } from './http-util.ts';
import { HostPolicy } from './host-policy.ts';
import { topologyView } from './topology.ts';
import { AuthLimiter, clientAddress } from './auth-limiter.ts';
import { LogThrottle } from '../log-throttle.ts';
import type { Counter } from '../metrics.ts';

/** `allowedHosts`: names besides the listen address, localhost, 127.0.0.1 and [::1] that clients may use in Host. */
export interface ApiConfig { enabled: boolean; host: string; port: number; token: string; allowedHosts?: string[] }

/** What POST /api/reload calls (a Reloader): reloads the config and rule files, all or nothing. */
export interface ReloadHandle { reload(trigger?: string): Promise<ReloadResult> }

type Params = Record<string, string>;
type Handler = (req: IncomingMessage, res: ServerResponse, params: Params, url: URL) => Promise<void> | void;
interface Route { method: 'GET' | 'POST' | 'DELETE'; pattern: string; path: RegExp; handler: Handler; changes?: boolean; stream?: boolean }

/** A WebSocket client that falls this far behind is disconnected rather than buffered forever. */
const WS_MAX_BUFFERED = 4 * 1024 * 1024;
const MAX_CAPTURE_SECONDS = 86400;

export interface ConnectionFlows {
  id: number; service: string; dpid: string; client: string; backend: string; phase: string;
  packets: number; bytes: number; flows: FlowView[];
}

/** Main flows first (they carry the traffic), then the FIN/RST copies, then a pending move's freeze. */
const ROLE_ORDER = ['main', 'freeze', 'flags', 'transit', 'other'];

const DASHBOARD_URL = new URL('./dashboard.html', import.meta.url);
/** The dashboard's scripts and styles, served from the controller (no CDN): uPlot from its npm package, the charts module beside this file. */
const STATIC_FILES: Record<string, { path: () => string; type: string }> = {
  'uplot.min.js': { path: () => createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uplot.min.css': { path: () => createRequire(import.meta.url).resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
  'charts.js': { path: () => new URL('./charts.js', import.meta.url).pathname, type: 'text/javascript; charset=utf-8' },
};

export class ApiServer {
  private server?: Server;
  private wss?: WebSocketServer;
  private hub?: EventHub;
  private metrics?: ControllerMetrics;
  private readonly sockets = new Set<Socket>();
  private readonly streams = new Set<ServerResponse>();
  private readonly routes: Route[];
  private flowsInFlight?: Promise<{ switches: { dpid: string; flows?: number; error?: string }[]; stats: Map<number, Map<string, FlowStats[]>> }>;
  private dashboard?: string;
  private readonly staticFiles = new Map<string, Buffer>();
  private policy?: HostPolicy;
  private readonly limiter = new AuthLimiter();
  private readonly throttle: LogThrottle;
  private refused?: Counter;
  private authFailures?: Counter;

  constructor(private readonly controller: Controller, private readonly config: ApiConfig, private readonly log: Logger, private readonly reloader?: ReloadHandle) {
    this.throttle = new LogThrottle(log);
    // '/api/connections/:id' → a regex with a named group per ':param' (one path segment each).
    const p = (pattern: string) => ({ pattern, path: new RegExp(`^${pattern.replace(/:(\w+)/g, '(?<$1>[^/]+)')}$`) });
    this.routes = [
      { method: 'GET', ...p('/'), handler: (_q, res) => this.serveDashboard(res) },
      { method: 'GET', ...p('/metrics'), handler: (_q, res) => this.serveMetrics(res) },
      { method: 'GET', ...p('/static/:file'), handler: (_q, res, a) => this.serveStatic(res, a.file) },
      { method: 'GET', ...p('/api'), handler: (_q, res) => sendJson(res, 200, { routes: this.routes.map((r) => `${r.method} ${r.pattern}`) }) },
      { method: 'GET', ...p('/api/switches'), handler: (_q, res) => sendJson(res, 200, { switches: this.controller.switches.map((sw) => this.hub!.switchView(sw)), controller: this.controllerView() }) },
      { method: 'GET', ...p('/api/services'), handler: (_q, res) => sendJson(res, 200, { services: this.services() }) },
      { method: 'GET', ...p('/api/services/:name'), handler: (_q, res, a) => sendJson(res, 200, { service: this.services().find((s) => s.name === a.name) ?? notFound(`no service named '${a.name}'`) }) },
      { method: 'POST', ...p('/api/services/:name/backends'), changes: true, handler: (q, res, a) => this.addBackend(q, res, a) },
      { method: 'DELETE', ...p('/api/services/:name/backends/:backend'), changes: true, handler: (_q, res, a) => this.removeBackend(res, a) },
      { method: 'POST', ...p('/api/services/:name/migrate'), changes: true, handler: (q, res, a) => this.migrateService(q, res, a) },
      { method: 'GET', ...p('/api/connections'), handler: (_q, res, _a, url) => sendJson(res, 200, { connections: this.connections(url) }) },
      { method: 'GET', ...p('/api/connections/:id'), handler: (_q, res, a) => sendJson(res, 200, { connection: this.connection(a.id) }) },
      { method: 'POST', ...p('/api/connections/:id/migrate'), changes: true, handler: (q, res, a) => this.migrateConnection(q, res, a) },
      { method: 'DELETE', ...p('/api/connections/:id/migrate'), changes: true, handler: (_q, res, a) => {
        const view = this.controller.engine.cancelMove(positiveInt(a.id, 'connection id'));
        sendJson(res, 200, { connection: view, message: `the move of connection ${view.id} is cancelled; it stays on ${view.backend}` });
      } },
      { method: 'POST', ...p('/api/reload'), changes: true, handler: (q, res) => this.reload(q, res) },
      { method: 'GET', ...p('/api/migrations'), handler: (_q, res) => sendJson(res, 200, { migrations: this.hub!.migrations }) },
      { method: 'GET', ...p('/api/analyzers'), handler: (_q, res) => sendJson(res, 200, this.controller.analyzers.view()) },
      { method: 'GET', ...p('/api/topology'), handler: (_q, res) => sendJson(res, 200, topologyView(this.controller)) },
      { method: 'GET', ...p('/api/quic'), handler: (_q, res) => sendJson(res, 200, this.controller.quic.view()) },
      { method: 'GET', ...p('/api/flows'), handler: (_q, res, _a, url) => this.flows(res, url) },
      { method: 'GET', ...p('/api/capture'), stream: true, handler: (q, res, _a, url) => this.capture(q, res, url) },
      { method: 'GET', ...p('/api/events'), stream: true, handler: () => { throw new HttpError(426, 'this endpoint is a WebSocket: send an Upgrade: websocket request', { Upgrade: 'websocket' }); } },
    ];
  }

  async start(): Promise<{ host: string; port: number }> {
    if (this.server) throw new Error('API server already started');
    this.dashboard = readFileSync(DASHBOARD_URL, 'utf8');
    for (const [name, f] of Object.entries(STATIC_FILES)) this.staticFiles.set(name, readFileSync(f.path()));
    this.hub = new EventHub(this.controller, this.log);
    this.metrics = new ControllerMetrics(this.controller);
    this.wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
    this.hub.on('event', (ev: ApiEvent) => this.broadcast(ev));
    this.refused = this.metrics.counter('tcp_migrate_api_refused_requests_total', 'API requests refused before they were served: foreign Host, foreign Origin, or rate-limited after failed authentication.', ['reason']);
    this.authFailures = this.metrics.counter('tcp_migrate_api_auth_failures_total', 'API requests with a missing, malformed or wrong bearer token.', ['reason']);
    for (const reason of ['host', 'origin', 'rate_limited']) this.refused.inc({ reason }, 0);
    for (const reason of ['missing', 'malformed', 'invalid']) this.authFailures.inc({ reason }, 0);
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e) => this.fail(req, res, e)).catch((e) => { this.log.error('API reply failed', { error: (e as Error).message }); res.destroy(); });
    });
    server.on('upgrade', (req, socket, head) => this.upgrade(req, socket as Socket, head));
    server.on('connection', (s: Socket) => { this.sockets.add(s); s.once('close', () => this.sockets.delete(s)); });
    // Slow or idle clients must not pin sockets; streams turn the timeout off themselves.
    server.requestTimeout = 30000;
    server.headersTimeout = 10000;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.config.port, this.config.host, () => { server.off('error', reject); resolve(); });
      });
    } catch (e) {
      // Leave the controller as it was: no listeners from a server that never came up.
      this.hub.dispose();
      this.metrics.dispose();
      this.hub = undefined;
      this.metrics = undefined;
      throw e;
    }
    server.on('error', (e) => this.log.error('API server error', { error: e.message }));
    this.server = server;
    const addr = server.address();
    const bound = typeof addr === 'object' && addr ? { host: addr.address, port: addr.port } : { host: this.config.host, port: this.config.port };
    this.policy = new HostPolicy(this.config.host, bound.port, this.config.allowedHosts ?? []);
    this.log.info('API listening', { ...bound, changes: this.config.token ? 'token required' : 'disabled (no api.token)', allowedHosts: this.policy.describe() });
    return bound;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const ws of this.wss?.clients ?? []) ws.terminate();
    this.wss?.close();
    for (const r of this.streams) r.end();
    this.streams.clear();
    this.hub?.dispose();
    this.metrics?.dispose();
    if (!server) return;
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  // ------------------------------------------------------------------ dispatch

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.checkHostAndOrigin(req);
    let url: URL;
    try { url = new URL(req.url ?? '/', 'http://api.invalid'); } catch { throw new HttpError(400, 'bad request URL'); }
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const matching = this.routes.map((r) => ({ r, m: r.path.exec(path) })).filter((x) => x.m);
    if (matching.length === 0) throw new HttpError(404, `no such endpoint: ${req.method} ${url.pathname}`);
    // One path can have routes for several methods; none for this method is a 405 listing them.
    const hit = matching.find((x) => x.r.method === method);
    if (!hit) {
      const allow = [...new Set(matching.map((x) => x.r.method))];
      throw new HttpError(405, `${req.method} is not allowed on ${url.pathname} (allowed: ${allow.join(', ')})`, { Allow: allow.join(', ') });
    }
    if (req.method === 'HEAD' && hit.r.stream) throw new HttpError(405, `HEAD is not allowed on ${url.pathname}`, { Allow: 'GET' });
    if (hit.r.changes) this.authenticate(req, url.pathname);
    const params: Params = {};
    for (const [k, v] of Object.entries(hit.m!.groups ?? {})) {
      try { params[k] = decodeURIComponent(v); } catch { throw new HttpError(400, `bad percent-encoding in ${k}`); }
    }
    await hit.r.handler(req, res, params, url);
    if (hit.r.changes) this.log.info('API change', { method: req.method, path: url.pathname, status: res.statusCode });
  }

  /** 421 for a Host that is not one of the API's names, 403 for a foreign Origin (DNS rebinding, other sites). */
  private checkHostAndOrigin(req: IncomingMessage): void {
    const host = req.headers.host;
    const client = clientAddress(req.socket.remoteAddress);
    if (!this.policy!.allows(host)) {
      this.refused!.inc({ reason: 'host' });
      this.throttle.warn('host', client, 'API request refused: Host is not one of the API\'s names', { host: host ?? null, url: req.url });
      throw new HttpError(421, `${host === undefined ? 'missing Host header' : `Host ${JSON.stringify(host)} is not a name of this API`}: use one of ${this.policy!.describe().join(', ')}, or add the name to api.allowedHosts`);
    }
    // Browsers send Origin with WebSocket and cross-site requests: another site's page gets nothing.
    const origin = req.headers.origin;
    if (origin !== undefined && !this.policy!.allowsOrigin(origin)) {
      this.refused!.inc({ reason: 'origin' });
      this.throttle.warn('origin', client, 'API request refused: cross-origin', { origin, url: req.url });
      throw new HttpError(403, `cross-origin request from ${origin} refused (the API's origins: http://${this.policy!.describe()[0]}, ...; see api.allowedHosts)`);
    }
  }

  /** The bearer token, with failures rate-limited per client address (429 while it is blocked). */
  private authenticate(req: IncomingMessage, path: string): void {
    const client = clientAddress(req.socket.remoteAddress);
    const wait = this.limiter.retryAfter(client);
    if (wait > 0) {
      this.refused!.inc({ reason: 'rate_limited' });
      this.throttle.warn('rate', client, 'API request refused: too many failed authentications from this address', { method: req.method, path, retryAfterSec: wait });
      throw new HttpError(429, `too many failed authentication attempts from ${client}: retry after ${wait} s`, { 'Retry-After': String(wait) });
    }
    try { requireToken(req, this.config.token); } catch (e) {
      if (e instanceof AuthError) {
        this.limiter.fail(client);
        this.authFailures!.inc({ reason: e.reason });
        this.throttle.warn('auth', client, 'API authentication failed', { method: req.method, path, reason: e.reason });
      }
      throw e;
    }
  }

  private async fail(req: IncomingMessage, res: ServerResponse, e: unknown): Promise<void> {
    let status = 500;
    let message = 'internal error';
    let headers: Record<string, string> = {};
    if (e instanceof HttpError) { status = e.status; message = e.message; headers = e.headers; }
    else if (e instanceof EngineError) { status = e.status; message = e.message; }
    else {
      // Switch trouble (timeouts, rejected Flow-Mods) is not the client's fault, nor a crash.
      status = 502;
      message = `the switch could not carry out the request: ${(e as Error).message}`;
      this.log.warn('API request failed', { error: (e as Error).stack ?? String(e) });
    }
    if (res.headersSent || res.destroyed) { res.destroy(); return; }
    if (!req.complete) {
      const declared = Number(req.headers['content-length']);
      // Not worth reading: say so and close (the client may see a reset instead of the reply).
      if (declared > DISCARD_LIMIT) headers = { ...headers, Connection: 'close' };
      else {
        // The unread rest of the body is thrown away (a reply followed by a close with unread data
        // would reach the client as a reset). A client that asked for Connection: close gets the
        // reply after its body, because the server closes the socket right after replying.
        const drained = discardBody(req);
        if (!res.shouldKeepAlive && !(await drained)) return;
      }
    }
    sendError(res, status, message, headers);
  }

  // ------------------------------------------------------------------ resources

  private services() {
    const views = this.controller.engine.connections();
    return this.controller.engine.listServices().map((s) => ({
      name: s.name, address: s.address, address6: s.address6 ?? null, port: s.port, primary: s.primary, migrateTo: s.migrateTo ?? null,
      defaultVerdict: s.defaultVerdict, verdictTimeoutMs: s.verdictTimeoutMs, midStream: s.midStream, speculativeReplay: s.speculativeReplay,
      idleTimeout: s.idleTimeout, mirrorPort: s.mirrorPort ?? null, sidBackends: s.sidBackends,
      backends: s.backends.map((b) => ({ ...b, connections: views.filter((v) => v.service === s.name && v.backend === b.name && v.phase !== 'closed').length })),
      connections: views.filter((v) => v.service === s.name).length,
    }));
  }

  private connections(url: URL): ConnectionView[] {
    for (const k of url.searchParams.keys()) if (k !== 'service') throw new HttpError(400, `unknown query parameter '${k}' (known: service)`);
    const service = url.searchParams.get('service');
    if (service !== null && !this.controller.engine.service(service)) throw new HttpError(404, `no service named '${service}'`);
    return this.controller.engine.connections().filter((v) => service === null || v.service === service).sort((a, b) => a.id - b.id);
  }

  private connection(idText: string): ConnectionView {
    const id = positiveInt(idText, 'connection id');
    return this.controller.engine.connections().find((v) => v.id === id) ?? notFound(`no connection ${id} (closed connections leave the table)`);
  }

  private async addBackend(req: IncomingMessage, res: ServerResponse, a: Params): Promise<void> {
    if (!this.controller.engine.service(a.name)) throw new HttpError(404, `no service named '${a.name}'`);
    const body = await readJsonBody(req);
    const backend = await this.controller.engine.addBackend(a.name, body);
    this.hub!.publish('backend_added', { service: a.name, backend });
    sendJson(res, 201, { service: a.name, backend }, { Location: `/api/services/${encodeURIComponent(a.name)}` });
  }

  private async removeBackend(res: ServerResponse, a: Params): Promise<void> {
    await this.controller.engine.removeBackend(a.name, a.backend);
    this.hub!.publish('backend_removed', { service: a.name, backend: a.backend });
    sendJson(res, 200, { service: a.name, removed: a.backend });
  }

  private async migrateBody(req: IncomingMessage): Promise<string> {
    const body = await readJsonBody(req);
    onlyKeys(body, ['to']);
    return stringField(body, 'to');
  }

  private async migrateConnection(req: IncomingMessage, res: ServerResponse, a: Params): Promise<void> {
    const id = positiveInt(a.id, 'connection id');
    const to = await this.migrateBody(req);
    const view = await this.controller.engine.migrate(id, to);
    // 202: a forwarded connection moves at its client's next data segment, not now.
    sendJson(res, 202, { connection: view, to, message: migrateMessage(view) });
  }

  private async migrateService(req: IncomingMessage, res: ServerResponse, a: Params): Promise<void> {
    const to = await this.migrateBody(req);
    const views = await this.controller.engine.migrateService(a.name, to);
    sendJson(res, 202, { service: a.name, to, connections: views, message: `${views.length} connection(s) will move to '${to}'` });
  }

  private async reload(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.reloader) throw new HttpError(501, 'this controller was started without reload support');
    // No parameters: a body is optional and, if sent, must be an empty object.
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (hasBody) onlyKeys(await readJsonBody(req), []);
    const r = await this.reloader.reload('api');
    if (!r.ok) throw new HttpError(r.status, r.error);
    sendJson(res, 200, { changes: r.changes, restartNeeded: r.restartNeeded });
  }

  private serveDashboard(res: ServerResponse): void {
    const html = this.dashboard!;
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(html), 'Cache-Control': 'no-store',
      // Self-contained page: nothing may load from elsewhere, and other sites may not frame it.
      'Content-Security-Policy': "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
      'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer',
    });
    res.end(html);
  }

  /** The dashboard's own scripts and styles (/static/uplot.min.js, /static/uplot.min.css, /static/charts.js). */
  private serveStatic(res: ServerResponse, name: string): void {
    const body = this.staticFiles.get(name);
    if (!body || !Object.hasOwn(STATIC_FILES, name)) throw new HttpError(404, `no static file '${name}' (known: ${Object.keys(STATIC_FILES).join(', ')})`);
    res.writeHead(200, { 'Content-Type': STATIC_FILES[name].type, 'Content-Length': body.length, 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' });
    res.end(body);
  }

  private async serveMetrics(res: ServerResponse): Promise<void> {
    const text = await this.metrics!.render();
    res.writeHead(200, { 'Content-Type': PROMETHEUS_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
    res.end(text);
  }

  /** single (no ha section), or master/standby in an etcd election, with the OpenFlow generation_id. */
  private controllerView(): { role: string; generationId?: string; load: LoadView } {
    const g = this.controller.generationId;
    return { role: this.controller.role, ...(g !== undefined ? { generationId: g.toString() } : {}), load: this.controller.engine.load() };
  }

  // ------------------------------------------------------------------ flows

  /** One flow-stats request per switch for every per-connection flow, shared by concurrent callers. */
  private collectFlows() {
    this.flowsInFlight ??= (async () => {
      const connApp = appCookie(APP_ID.connection);
      const switches: { dpid: string; flows?: number; error?: string }[] = [];
      // By connection, then switch: on a fabric a connection's id also names its transit flows on other switches.
      const stats = new Map<number, Map<string, FlowStats[]>>();
      await Promise.all(this.controller.switches.map(async (sw) => {
        const dpid = sw.describe();
        try {
          let n = 0;
          for (const [id, flows] of flowsByConnection(await sw.flowStats(connApp, COOKIE_APP_MASK))) {
            n += flows.length;
            let bySwitch = stats.get(id);
            if (!bySwitch) stats.set(id, (bySwitch = new Map()));
            bySwitch.set(dpid, flows);
          }
          switches.push({ dpid, flows: n });
        } catch (e) {
          switches.push({ dpid, error: (e as Error).message });
        }
      }));
      return { switches, stats };
    })().finally(() => { this.flowsInFlight = undefined; });
    return this.flowsInFlight;
  }

  private async flows(res: ServerResponse, url: URL): Promise<void> {
    for (const k of url.searchParams.keys()) if (k !== 'service' && k !== 'id') throw new HttpError(400, `unknown query parameter '${k}' (known: service, id)`);
    const service = url.searchParams.get('service');
    const idText = url.searchParams.get('id');
    const id = idText === null ? undefined : positiveInt(idText, 'id');
    if (service !== null && !this.controller.engine.service(service)) throw new HttpError(404, `no service named '${service}'`);
    let views = this.controller.engine.connections().filter((v) => (service === null || v.service === service) && (id === undefined || v.id === id));
    if (id !== undefined && views.length === 0) throw new HttpError(404, `no connection ${id}`);
    const { switches, stats } = await this.collectFlows();
    views = views.sort((a, b) => a.id - b.id);
    const connections: ConnectionFlows[] = views.map((v) => {
      const clientIp = endpointIp(v.client);
      const bySwitch = stats.get(v.id);
      // Its own switch's flows, and the transit flows of the switches on its paths (a flow of another role elsewhere is another connection's).
      const own = (bySwitch?.get(v.dpid) ?? []).map((f) => flowView(f, clientIp));
      const transit = [...(bySwitch ?? [])].filter(([dpid]) => dpid !== v.dpid)
        .flatMap(([dpid, fs]) => fs.map((f) => ({ ...flowView(f, clientIp), dpid }))).filter((f) => f.role === 'transit');
      const flows = [...own, ...transit]
        .sort((a, b) => ROLE_ORDER.indexOf(a.role) - ROLE_ORDER.indexOf(b.role) || (a.dpid ?? '').localeCompare(b.dpid ?? '') || (b.direction ?? '').localeCompare(a.direction ?? ''));
      // Totals from the main flows only: flag copies and freeze flows see (some of) the same packets.
      const main = flows.filter((f) => f.role === 'main');
      return {
        id: v.id, service: v.service, dpid: v.dpid, client: v.client, backend: v.backend, phase: v.phase,
        packets: main.reduce((s, f) => s + f.packets, 0), bytes: main.reduce((s, f) => s + f.bytes, 0), flows,
      };
    });
    sendJson(res, 200, { time: new Date().toISOString(), switches, connections });
  }

  // ------------------------------------------------------------------ streams

  private capture(req: IncomingMessage, res: ServerResponse, url: URL): void {
    for (const k of url.searchParams.keys()) if (k !== 'count' && k !== 'seconds') throw new HttpError(400, `unknown query parameter '${k}' (known: count, seconds)`);
    const countText = url.searchParams.get('count');
    const secondsText = url.searchParams.get('seconds');
    const count = countText === null ? undefined : positiveInt(countText, 'count', 1e9);
    let seconds: number | undefined;
    if (secondsText !== null) {
      seconds = Number(secondsText);
      if (!/^\d+(\.\d+)?$/.test(secondsText) || !(seconds > 0) || seconds > MAX_CAPTURE_SECONDS) throw new HttpError(400, `seconds must be a number in (0, ${MAX_CAPTURE_SECONDS}], got ${JSON.stringify(secondsText)}`);
    }
    const pcap = new PcapWriter();
    req.socket.setTimeout(0);
    res.writeHead(200, {
      'Content-Type': 'application/vnd.tcpdump.pcap', 'Cache-Control': 'no-store',
      'Content-Disposition': 'attachment; filename="tcp-migrate.pcap"', 'X-Content-Type-Options': 'nosniff',
    });
    res.write(pcap.header());
    // Flush the header now so the client knows the capture is live before any frame arrives.
    res.flushHeaders();
    this.streams.add(res);
    let written = 0;
    let dropped = 0;
    const finish = () => {
      this.controller.off('capture', onFrame);
      if (timer) clearTimeout(timer);
      this.streams.delete(res);
      if (dropped) this.log.warn('capture client too slow: frames dropped', { dropped, written });
    };
    const onFrame = (r: CaptureRecord) => {
      // A slow reader loses frames instead of making the controller buffer without bound.
      if (res.writableLength > 4 * 1024 * 1024) { dropped++; return; }
      res.write(pcap.record(r.frame, r.time));
      written++;
      if (count !== undefined && written >= count) { finish(); res.end(); }
    };
    const timer = seconds !== undefined ? setTimeout(() => { finish(); res.end(); }, seconds * 1000) : undefined;
    this.controller.on('capture', onFrame);
    res.once('close', finish);
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const reject = (status: number, message: string) => {
      const body = toJson({ error: message, status }) + '\n';
      const reason = ({ 403: 'Forbidden', 404: 'Not Found', 421: 'Misdirected Request' } as Record<number, string>)[status] ?? 'Bad Request';
      socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    };
    socket.on('error', () => socket.destroy());
    // The same Host and Origin checks as every other request.
    try { this.checkHostAndOrigin(req); } catch (e) { reject((e as HttpError).status, (e as HttpError).message); return; }
    let path: string;
    try { path = new URL(req.url ?? '/', 'http://api.invalid').pathname.replace(/\/+$/, ''); } catch { reject(400, 'bad request URL'); return; }
    if (path !== '/api/events') { reject(404, `no WebSocket endpoint at ${path}`); return; }
    this.wss!.handleUpgrade(req, socket, head, (ws) => this.subscribe(ws));
  }

  private subscribe(ws: WebSocket): void {
    ws.on('error', () => ws.terminate());
    // The stream is one-way; anything the client sends is ignored.
    ws.on('message', () => undefined);
    ws.send(toJson({ type: 'hello', time: new Date().toISOString(), switches: this.controller.switches.length, connections: this.controller.engine.table.size }));
  }

  private broadcast(ev: ApiEvent): void {
    if (!this.wss || this.wss.clients.size === 0) return;
    const text = toJson(ev);
    for (const ws of this.wss.clients) {
      if (ws.readyState !== ws.OPEN) continue;
      if (ws.bufferedAmount > WS_MAX_BUFFERED) { ws.close(1013, 'event stream consumer too slow'); continue; }
      ws.send(text);
    }
  }
}

function notFound(message: string): never { throw new HttpError(404, message); }

function migrateMessage(v: ConnectionView): string {
  if (v.phase === 'freezing') {
    return `connection ${v.id} moves at the client's next data segment (the end of a client write); until then its traffic stays on ${v.backend}. `
      + `A connection whose client only receives (a download) moves when the client next sends, or the move is called off after ${FREEZE_TIMEOUT_MS / 1000} s; `
      + `cancel it sooner with DELETE /api/connections/${v.id}/migrate (tcp-migrate migrate ${v.id} --cancel)`;
  }
  if (v.phase === 'held' || v.phase === 'replaying') return `connection ${v.id} is being moved now (first segment held)`;
  return `connection ${v.id} is ${v.phase}`;
}
