/**
 * Suricata alert source: EVE JSON records on a unix datagram socket (`filetype: unix_dgram`,
 * one record per datagram) and/or a unix stream socket (`filetype: unix_stream`, NDJSON).
 * Suricata connects to the socket we bind, so bind before starting Suricata.
 */
import { EventEmitter } from 'node:events';
import { chmod, lstat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { err, ok, parseFrame, type Result } from '../packet/index.ts';
import { silentLogger, type Logger } from '../log.ts';
import { UnixDgramReceiver, prepareSocketPath } from './unix-dgram.ts';
import { ThrottledLog } from '../log-throttle.ts';
import { frameFacts, stripQuotes, verdictOf, type ActivityKind, type Alert, type AlertSource } from './types.ts';

export type EveRecord =
  | { kind: 'alert'; alert: Alert; packetError?: string }
  | { kind: 'other'; eventType: string };

const LINKTYPE_ETHERNET = 1;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
const isU32 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
const isPort = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65535;

/** Suricata writes "+0000"; Date wants "+00:00". */
export function parseEveTime(s: unknown): Date | undefined {
  if (typeof s !== 'string') return undefined;
  const t = Date.parse(s.replace(/([+-]\d\d)(\d\d)$/, '$1:$2'));
  return Number.isNaN(t) ? undefined : new Date(t);
}

/** Parses one EVE JSON record (text of a datagram or line). Unknown fields are ignored. */
export function parseEveRecord(text: string, now: () => Date = () => new Date()): Result<EveRecord> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return err('bad_value', `invalid JSON: ${(e as Error).message}`);
  }
  if (!isObj(v)) return err('bad_value', 'EVE record is not a JSON object');
  if (typeof v.event_type !== 'string') return err('bad_value', 'EVE record has no string event_type');
  if (v.event_type !== 'alert') return ok({ kind: 'other', eventType: v.event_type });
  const al = v.alert;
  if (!isObj(al)) return err('bad_value', 'alert record without an "alert" object');
  if (!isU32(al.signature_id)) return err('bad_value', 'alert.signature_id is missing or not an unsigned integer');
  const rawMsg = typeof al.signature === 'string' ? al.signature : '';
  const msg = stripQuotes(rawMsg);
  const a: Alert = {
    source: 'suricata',
    msg,
    gid: isU32(al.gid) ? al.gid : 1,
    sid: al.signature_id,
    rev: isU32(al.rev) ? al.rev : 0,
    time: parseEveTime(v.timestamp) ?? now(),
  };
  const verdict = verdictOf(msg);
  if (verdict) a.verdict = verdict;
  if (typeof al.category === 'string' && al.category !== '') a.classification = al.category;
  if (isU32(al.severity)) a.priority = al.severity;

  let packetError: string | undefined;
  const linktype = isObj(v.packet_info) ? v.packet_info.linktype : LINKTYPE_ETHERNET;
  if (typeof v.packet === 'string' && v.packet !== '') {
    if (linktype !== LINKTYPE_ETHERNET) packetError = `packet linktype ${String(linktype)} is not Ethernet`;
    else {
      const fr = parseFrame(Buffer.from(v.packet, 'base64'));
      if (!fr.ok) packetError = `packet: ${fr.error.message}`;
      else Object.assign(a, frameFacts(fr.value));
    }
  }
  if (!a.flow && typeof v.src_ip === 'string' && typeof v.dest_ip === 'string' && isPort(v.src_port) && isPort(v.dest_port)) {
    a.flow = { srcIp: v.src_ip, srcPort: v.src_port, dstIp: v.dest_ip, dstPort: v.dest_port };
  }
  return ok(packetError === undefined ? { kind: 'alert', alert: a } : { kind: 'alert', alert: a, packetError });
}

export interface SuricataEveOptions {
  /** Socket for `filetype: unix_dgram`. */
  dgramPath?: string;
  /** Socket for `filetype: unix_stream`. */
  streamPath?: string;
  /** File mode for both sockets after bind (e.g. 0o660). */
  mode?: number;
  /** Requested SO_RCVBUF for the datagram socket (default 4 MiB). */
  rcvbuf?: number;
  /** Longest accepted NDJSON line (default 1 MiB); longer lines are dropped and counted. */
  maxLineBytes?: number;
  logger?: Logger;
}

export const DEFAULT_EVE_DGRAM_SOCKET = '/tmp/suricata-eve.sock';

export class SuricataEveSource extends EventEmitter implements AlertSource {
  readonly name = 'suricata';
  readonly stats: Record<string, number> = {
    records: 0, alerts: 0, ignored_events: 0, invalid_json: 0, invalid_alerts: 0, packet_errors: 0,
    oversized: 0, connections: 0, recv_errors: 0, listener_errors: 0,
  };
  private dgram: UnixDgramReceiver | null = null;
  private server: Server | null = null;
  private readonly conns = new Set<Socket>();
  private streamIno = -1;
  private readonly log: Logger;
  private readonly bad: ThrottledLog;
  readonly dgramPath: string | undefined;
  readonly streamPath: string | undefined;

  constructor(private readonly opts: SuricataEveOptions = {}) {
    super();
    this.dgramPath = opts.dgramPath ?? (opts.streamPath ? undefined : DEFAULT_EVE_DGRAM_SOCKET);
    this.streamPath = opts.streamPath;
    this.log = (opts.logger ?? silentLogger).child({ analyzer: 'suricata' });
    this.bad = new ThrottledLog(this.log);
  }

  /** Binds the configured sockets; resolves once Suricata can connect. */
  async start(): Promise<void> {
    try {
      if (this.dgramPath && !this.dgram) {
        const o: Parameters<typeof UnixDgramReceiver.open>[0] = {
          path: this.dgramPath,
          onDatagrams: (bufs, sizes) => {
            for (let i = 0; i < bufs.length; i++) {
              if (sizes[i]! > bufs[i]!.length) {
                this.stats.oversized!++;
                this.bad.warn('EVE datagram larger than the receive buffer, dropped', { size: sizes[i] });
                continue;
              }
              this.handleText(bufs[i]!.toString('utf8'), 'dgram');
            }
          },
          onError: (e) => { this.stats.recv_errors!++; this.log.error('socket receive error', { error: e.message }); },
        };
        if (this.opts.mode !== undefined) o.mode = this.opts.mode;
        if (this.opts.rcvbuf !== undefined) o.rcvbuf = this.opts.rcvbuf;
        this.dgram = await UnixDgramReceiver.open(o);
        this.log.info('listening for EVE datagrams', { socket: this.dgramPath, rcvbuf: this.dgram.rcvbuf });
      }
      if (this.streamPath && !this.server) await this.listenStream(this.streamPath);
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  private async listenStream(path: string): Promise<void> {
    await prepareStreamPath(path);
    const server = createServer((s) => this.onConnection(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => { server.off('error', reject); resolve(); });
    });
    server.on('error', (e) => this.log.error('stream socket error', { error: e.message }));
    this.server = server;
    this.streamIno = (await lstat(path)).ino;
    if (this.opts.mode !== undefined) await chmod(path, this.opts.mode);
    this.log.info('listening for EVE NDJSON', { socket: path });
  }

  private onConnection(s: Socket): void {
    this.stats.connections!++;
    this.conns.add(s);
    this.peersChanged();
    const max = this.opts.maxLineBytes ?? 1024 * 1024;
    let parts: Buffer[] = [];
    let pending = 0;
    let skipping = false; // inside an oversized line: drop until the next newline
    s.on('data', (chunk: Buffer) => {
      let start = 0;
      for (let nl = chunk.indexOf(10, start); nl >= 0; nl = chunk.indexOf(10, start)) {
        if (!skipping) {
          if (pending + (nl - start) > max) {
            this.stats.oversized!++;
            this.bad.warn('EVE line longer than maxLineBytes, dropped', { max });
          } else {
            parts.push(chunk.subarray(start, nl));
            const line = Buffer.concat(parts).toString('utf8');
            if (line.trim()) this.handleText(line, 'stream');
          }
        }
        parts = [];
        pending = 0;
        skipping = false;
        start = nl + 1;
      }
      if (start < chunk.length && !skipping) {
        parts.push(chunk.subarray(start));
        pending += chunk.length - start;
        if (pending > max) {
          this.stats.oversized!++;
          this.bad.warn('EVE line longer than maxLineBytes, dropped', { max });
          parts = [];
          pending = 0;
          skipping = true;
        }
      }
    });
    s.on('error', (e) => this.log.warn('EVE stream connection error', { error: e.message }));
    s.on('close', () => {
      this.conns.delete(s);
      if (this.server) this.peersChanged(); // not while stopping: we closed it
      // A last line without newline (Suricata always ends records with one, but be tolerant).
      if (!skipping && pending > 0) {
        const line = Buffer.concat(parts).toString('utf8');
        if (line.trim()) this.handleText(line, 'stream');
      }
    });
  }

  /** Handles the text of one datagram or line (a datagram may carry several lines). Public for tests/replay. */
  handleText(text: string, via: 'dgram' | 'stream' = 'dgram'): Alert[] {
    const out: Alert[] = [];
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      this.stats.records!++;
      const r = parseEveRecord(line);
      if (!r.ok) {
        if (r.error.message.startsWith('invalid JSON') || r.error.message.startsWith('EVE record')) this.stats.invalid_json!++;
        else this.stats.invalid_alerts!++;
        this.bad.warn('ignoring invalid EVE record', { via, error: r.error.message, head: line.slice(0, 80) });
        continue;
      }
      if (r.value.kind === 'other') {
        this.stats.ignored_events!++;
        this.activity(r.value.eventType === 'stats' ? 'heartbeat' : 'other');
        continue;
      }
      if (r.value.packetError) {
        this.stats.packet_errors!++;
        this.bad.warn('EVE packet not decoded; using the record 5-tuple', { sid: r.value.alert.sid, error: r.value.packetError });
      }
      const a = r.value.alert;
      this.stats.alerts!++;
      this.activity('alert');
      out.push(a);
      try {
        this.emit('alert', a);
      } catch (e) {
        this.stats.listener_errors!++;
        this.log.error('alert listener threw', { error: (e as Error).message, sid: a.sid });
      }
    }
    return out;
  }

  /** Health signals must not break alert handling: a throwing listener is only counted. */
  private activity(kind: ActivityKind): void {
    try { this.emit('activity', kind); } catch { this.stats.listener_errors!++; }
  }

  private peersChanged(): void {
    try { this.emit('peers', this.conns.size); } catch { this.stats.listener_errors!++; }
  }

  async stop(): Promise<void> {
    const d = this.dgram;
    this.dgram = null;
    if (d) await d.close();
    const srv = this.server;
    this.server = null;
    if (srv) {
      for (const c of this.conns) c.destroy();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
      // net removes the socket file itself on close(); make sure, without touching a newer one.
      try {
        if ((await lstat(this.streamPath!)).ino === this.streamIno) await unlink(this.streamPath!);
      } catch { /* already gone */ }
    }
  }

  override on(ev: 'alert', fn: (a: Alert) => void): this;
  override on(ev: 'activity', fn: (kind: ActivityKind) => void): this;
  override on(ev: 'peers', fn: (connected: number) => void): this;
  override on(ev: string, fn: (...args: any[]) => void): this {
    return super.on(ev, fn);
  }
}

/** Like a datagram socket path, but a stream socket is live when connect() succeeds. */
function prepareStreamPath(path: string): Promise<void> {
  return prepareSocketPath(path, (p) => new Promise<string>((resolve) => {
    const c = createConnection(p);
    c.once('connect', () => { c.destroy(); resolve('live'); });
    c.once('error', () => resolve('stale'));
  }));
}
