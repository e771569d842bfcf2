/**
 * Unix datagram socket receiver on top of our native add-on (native/src/unix_dgram.c). Node
 * has no AF_UNIX SOCK_DGRAM, and the npm add-ons truncate at 64 KiB (Snort's Alertpkt is
 * 65,864 bytes): see docs/analyzers.md.
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
import { createRequire } from 'node:module';

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

export interface UnixDgramReceiverOptions {
  path: string;
  /** chmod applied right after bind (e.g. 0o660 so a snort group can send). */
  mode?: number;
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
