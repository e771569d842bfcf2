/**
 * Unix datagram socket receiver on top of our native add-on (native/src/unix_dgram.c). Node
 * has no AF_UNIX SOCK_DGRAM, and the npm add-ons truncate at 64 KiB (Snort's Alertpkt is
 * 65,864 bytes): see docs/analyzers.md.
 */
import { execFile } from 'node:child_process';
import { chmod, chown, lstat, stat, unlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

interface NativeHandle { readonly __brand: 'UnixDgramHandle' }
type NativeCallback = (err: string | null, bufs?: Buffer[], sizes?: number[]) => void;
export interface NativeUnixDgram {
  bind(path: string, rcvbuf: number, cb: NativeCallback): { handle: NativeHandle; rcvbuf: number };
  close(handle: NativeHandle): void;
  sendTo(path: string, buf: Buffer): number;
  probe(path: string): string;
  recvBufferSize: number;
}

const ADDON = new URL('../../native/build/Release/unix_dgram.node', import.meta.url).pathname;
let cached: NativeUnixDgram | Error | undefined;

/** Loads the add-on; throws a clear error if it was not built. */
export function loadNative(): NativeUnixDgram {
  if (cached === undefined) {
    try {
      cached = createRequire(import.meta.url)(ADDON) as NativeUnixDgram;
    } catch (e) {
      cached = new Error(`native unix datagram add-on not available (${ADDON}): ${(e as Error).message}. Build it with: npm run build:native`);
    }
  }
  if (cached instanceof Error) throw cached;
  return cached;
}

export function nativeAvailable(): boolean {
  try { loadNative(); return true; } catch { return false; }
}

/** Sends one datagram without blocking (throws with code EAGAIN if the receiver's queue is full). */
export function sendDgram(path: string, buf: Buffer): number {
  return loadNative().sendTo(path, buf);
}

/**
 * Makes `path` free for bind(): a stale socket file (nobody bound) is removed; a live one
 * (another receiver would lose its alerts) or a non-socket file is refused. `probe` tells a live
 * socket from a stale one ('live' or anything else); datagram sockets by default, stream sockets
 * pass a connect() probe.
 */
export async function prepareSocketPath(path: string, probe: (p: string) => string | Promise<string> = (p) => loadNative().probe(p)): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!st.isSocket()) throw new Error(`refusing to replace ${path}: it exists and is not a socket`);
  const state = await probe(path);
  if (state === 'live') throw new Error(`refusing to replace ${path}: another process is bound to it`);
  await unlink(path);
}

/**
 * A user (`passwd`) or group id from a name or a numeric id, through NSS (`getent`), so LDAP or
 * other directories work as they do for Snort. Rejects with a message naming what was not found.
 */
export function resolveId(db: 'passwd' | 'group', v: string | number): Promise<number> {
  if (typeof v === 'number') return Promise.resolve(v);
  return new Promise((resolve, reject) => {
    execFile('getent', [db, v], { timeout: 10000 }, (err, stdout) => {
      const id = Number(stdout.split(':')[2]);
      if (err || !Number.isInteger(id)) reject(new Error(`no such ${db === 'passwd' ? 'user' : 'group'} "${v}"${err && (err as NodeJS.ErrnoException).code === 'ENOENT' ? ' (getent not found)' : ''}`));
      else resolve(id);
    });
  });
}

/**
 * The directories above `path` that a process with `uid`/`gid` (and no other groups) cannot
 * search, so it could not reach a socket there. Root (uid 0) reaches everything.
 */
export async function unreachableDirs(path: string, uid: number | undefined, gid: number | undefined): Promise<string[]> {
  if (uid === 0) return [];
  const out: string[] = [];
  for (let d = dirname(path); ; d = dirname(d)) {
    const st = await stat(d).catch(() => undefined);
    if (st) {
      const bit = uid !== undefined && st.uid === uid ? 0o100 : gid !== undefined && st.gid === gid ? 0o010 : 0o001;
      if (!(st.mode & bit)) out.push(d);
    }
    if (dirname(d) === d) break;
  }
  return out;
}

export interface UnixDgramReceiverOptions {
  path: string;
  /** chmod applied right after bind (e.g. 0o660 so a snort group can send). */
  mode?: number;
  /** chown applied right after bind (before chmod): numeric uid / gid, see resolveId. */
  uid?: number;
  gid?: number;
  /** Requested SO_RCVBUF in bytes (default 4 MiB; SO_RCVBUFFORCE when running as root). */
  rcvbuf?: number;
  /** Called for each drained batch; sizes[i] is the real datagram length (> bufs[i].length if truncated). */
  onDatagrams: (bufs: Buffer[], sizes: number[]) => void;
  onError: (err: Error) => void;
}

export class UnixDgramReceiver {
  private handle: NativeHandle | null;
  /** Inode of the socket file we created, so close() never unlinks someone else's socket. */
  private ino = -1;
  private constructor(readonly path: string, handle: NativeHandle, readonly rcvbuf: number) {
    this.handle = handle;
  }

  /** Binds the socket (replacing a stale socket file) and starts draining it. */
  static async open(o: UnixDgramReceiverOptions): Promise<UnixDgramReceiver> {
    const n = loadNative();
    await prepareSocketPath(o.path, n.probe);
    const { handle, rcvbuf } = n.bind(o.path, o.rcvbuf ?? 4 * 1024 * 1024, (err, bufs, sizes) => {
      // Exceptions must not escape into the native callback: they would become fatal.
      try {
        if (err !== null) o.onError(new Error(err));
        else o.onDatagrams(bufs!, sizes!);
      } catch (e) {
        try { o.onError(e as Error); } catch { /* a broken error handler must not kill the receiver */ }
      }
    });
    const r = new UnixDgramReceiver(o.path, handle, rcvbuf);
    try {
      r.ino = (await lstat(o.path)).ino;
      if (o.uid !== undefined || o.gid !== undefined) await chown(o.path, o.uid ?? -1, o.gid ?? -1);
      if (o.mode !== undefined) await chmod(o.path, o.mode);
    } catch (e) {
      await r.close();
      throw e;
    }
    return r;
  }

  get open(): boolean { return this.handle !== null; }

  /** Stops receiving, closes the socket and unlinks its path. Idempotent. */
  async close(): Promise<void> {
    if (!this.handle) return;
    loadNative().close(this.handle);
    this.handle = null;
    try {
      if ((await lstat(this.path)).ino === this.ino) await unlink(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}
