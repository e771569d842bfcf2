/**
 * Snort alert source: binds the unix datagram socket Snort's unixsock output sendto()s
 * (`snort -A unsock -l <dir>` for Snort 2.9, `-A alert_unixsock` for Snort 3; the path is
 * <logdir>/snort_alert, or <logdir>/<N>_snort_alert per Snort 3 packet thread: one source per
 * path) and turns each Alertpkt into an Alert. Snort sends each alert with a fresh sendto() on
 * an unconnected socket: alerts sent while nobody is bound are lost, the next one after a
 * (re)bind arrives, so the order of starting Snort and the controller does not matter.
 */
import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { silentLogger, type Logger } from '../log.ts';
import { alertFromAlertPkt, decodeAlertPkt } from './snort-alertpkt.ts';
import { resolveId, UnixDgramReceiver, unreachableDirs } from './unix-dgram.ts';
import { headHex } from './util.ts';
import { ThrottledLog } from '../log-throttle.ts';
import type { Alert, AlertSource } from './types.ts';

export const DEFAULT_SNORT_SOCKET = '/tmp/snort_alert';
/** The file name Snort's unixsock output uses in its log directory (Snort 3: `<N>_snort_alert` per packet thread). */
export const SNORT_SOCKET_NAME = 'snort_alert';

export interface SnortUnixsockOptions {
  /** Socket path; Snort uses <logdir>/snort_alert (or <logdir>/<N>_snort_alert per packet thread). */
  path?: string;
  /** File mode set after bind, e.g. 0o660 when Snort runs as another user in our group. */
  mode?: number;
  /** Owner and group (name or id) set after bind: the user/group Snort runs as after `-u`/`-g`. */
  owner?: string | number;
  group?: string | number;
  /** Create the socket's directory if missing (`analyzers.snort.logDir`: Snort may start later and needs it too). */
  createDir?: boolean;
  /** Config keys for error messages: the section (`analyzers.snort`) and the socket's own key (`analyzers.snort.sockets[1]`). */
  configKey?: string;
  socketKey?: string;
  /** Requested SO_RCVBUF (default 4 MiB). */
  rcvbuf?: number;
  /** Byte order of the sending Snort (default: this host's). */
  littleEndian?: boolean;
  logger?: Logger;
}

export class SnortUnixsockSource extends EventEmitter implements AlertSource {
  readonly name = 'snort';
  readonly path: string;
  readonly stats: Record<string, number> = {
    datagrams: 0, alerts: 0, bad_datagrams: 0, bad_size: 0, truncated: 0, frame_errors: 0,
    recv_errors: 0, listener_errors: 0,
  };
  private receiver: UnixDgramReceiver | null = null;
  private readonly log: Logger;
  private readonly bad: ThrottledLog;

  constructor(private readonly opts: SnortUnixsockOptions = {}) {
    super();
    this.path = opts.path ?? DEFAULT_SNORT_SOCKET;
    this.log = (opts.logger ?? silentLogger).child({ analyzer: 'snort', socket: this.path });
    this.bad = new ThrottledLog(this.log);
  }

  /** Binds the socket; resolves once alerts can be received. */
  async start(): Promise<void> {
    if (this.receiver) return;
    const section = this.opts.configKey ?? 'snort';
    const id = async (db: 'passwd' | 'group', v: string | number | undefined, k: string) => {
      if (v === undefined) return undefined;
      try { return await resolveId(db, v); } catch (e) { throw new Error(`${section}.${k}: ${(e as Error).message}`); }
    };
    const uid = await id('passwd', this.opts.owner, 'owner');
    const gid = await id('group', this.opts.group, 'group');
    const o: Parameters<typeof UnixDgramReceiver.open>[0] = {
      path: this.path,
      onDatagrams: (bufs, sizes) => { for (let i = 0; i < bufs.length; i++) this.handle(bufs[i]!, sizes[i]!); },
      onError: (e) => { this.stats.recv_errors!++; this.log.error('socket receive error', { error: e.message }); },
    };
    if (this.opts.mode !== undefined) o.mode = this.opts.mode;
    if (uid !== undefined) o.uid = uid;
    if (gid !== undefined) o.gid = gid;
    if (this.opts.rcvbuf !== undefined) o.rcvbuf = this.opts.rcvbuf;
    try {
      if (this.opts.createDir) await mkdir(dirname(this.path), { recursive: true, mode: 0o755 });
      this.receiver = await UnixDgramReceiver.open(o);
    } catch (e) {
      throw new Error(`${this.opts.socketKey ?? section}: cannot bind ${this.path}: ${(e as Error).message}`);
    }
    this.log.info('listening for Snort unixsock alerts', { rcvbuf: this.receiver.rcvbuf });
    if (uid !== undefined || gid !== undefined) {
      const dirs = await unreachableDirs(this.path, uid, gid);
      if (dirs.length) this.log.warn('Snort running as this owner/group cannot reach the socket: a directory above it is not searchable', { dirs: dirs.join(', '), owner: this.opts.owner, group: this.opts.group });
    }
  }

  /** Closes and unlinks the socket. */
  async stop(): Promise<void> {
    const r = this.receiver;
    this.receiver = null;
    if (r) await r.close();
  }

  /** Decodes one datagram and emits its alert; bad input is counted and logged. Public for tests/replay. */
  handle(buf: Buffer, realSize = buf.length): Alert | undefined {
    this.stats.datagrams!++;
    if (realSize > buf.length) {
      this.stats.truncated!++;
      this.bad.warn('datagram larger than the receive buffer, dropped', { size: realSize });
      return undefined;
    }
    const r = decodeAlertPkt(buf, this.opts.littleEndian === undefined ? {} : { littleEndian: this.opts.littleEndian });
    if (!r.ok) {
      if (r.error.message.startsWith('Alertpkt must be')) this.stats.bad_size!++;
      else this.stats.bad_datagrams!++;
      this.bad.warn('ignoring invalid Snort datagram', { size: buf.length, error: r.error.message, head: headHex(buf) });
      return undefined;
    }
    if (r.value.frameError) {
      this.stats.frame_errors!++;
      this.bad.warn('alert packet not decoded; alert kept without flow', { sid: r.value.sid, error: r.value.frameError.message });
    }
    const a = alertFromAlertPkt(r.value);
    this.stats.alerts!++;
    // Health first, on its own: a throwing health listener must not cost the alert.
    try { this.emit('activity', 'alert'); } catch { this.stats.listener_errors!++; }
    try {
      this.emit('alert', a);
    } catch (e) {
      this.stats.listener_errors!++;
      this.log.error('alert listener threw', { error: (e as Error).message, sid: a.sid });
    }
    return a;
  }

  override on(ev: 'alert', fn: (a: Alert) => void): this {
    return super.on(ev, fn);
  }
}
