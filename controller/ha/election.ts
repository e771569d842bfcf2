// Leader election for standby controllers through etcd (DESIGN.md §8). Every candidate holds a lease
// and tries to create one key with it; the creator leads until the key goes away. The key's
// create_revision is the generation id: etcd revisions only grow, so a later leader always has a larger
// one and the switch (OpenFlow role request) refuses the writes of a deposed master.
//
// TTL: etcd raises a lease TTL below its minimum, ceil(1.5 x election timeout) = 2 s with the
// default 1 s election timeout (measured on 3.4.23: TTL 1 is granted as 2; TTL 2 stays 2). A dead
// leader's key disappears ttl after its last renewal plus up to 0.5 s of etcd's expiry sweep;
// with renewals every ttl/3, takeover after kill -9 measured 1.4-2.5 s for ttl 2 (25 runs, also under
// CPU load; test/integration/ha-election.test.ts asserts < 3 s).
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { EtcdClient, EtcdError } from './etcd-client.ts';
import type { Logger } from '../log.ts';

export type ElectionRole = 'starting' | 'leader' | 'follower' | 'stopped';

export interface ElectionOptions {
  endpoints: string[];
  /** e.g. '/tcp-migrate/leader/<cluster-name>' */
  key: string;
  /** This controller's identity, written as the key's value. */
  name: string;
  ttlSec?: number;
  logger: Logger;
  /** Per etcd request; defaults to ttl/3 (at least 500 ms) so one stuck request cannot eat the lease. */
  requestTimeoutMs?: number;
}

export interface FollowerInfo { leader: string; generationId: bigint }

export interface ElectionEvents {
  leader: [generationId: bigint];
  follower: [info: FollowerInfo];
  deposed: [reason: string];
  etcd_unreachable: [error: EtcdError];
}

interface Lease { id: bigint; ttl: number }

export class Election extends EventEmitter<ElectionEvents> {
  readonly key: string;
  readonly name: string;
  readonly ttlSec: number;
  private readonly client: EtcdClient;
  private readonly log: Logger;
  private readonly stopCtl = new AbortController();
  private _role: ElectionRole = 'starting';
  private _generation?: bigint;
  private _leader?: string;
  private lease?: Lease;
  /** Our leases given up while etcd was unreachable: their key must not make us a follower of ourselves. */
  private readonly abandoned = new Set<bigint>();
  /** performance.now() when the last successful renewal was sent: etcd's expiry is at least ttl later. */
  private renewedAt = 0;
  private keepaliveTimer?: NodeJS.Timeout;
  private deadlineTimer?: NodeJS.Timeout;
  /** The current campaign + watch; aborting it makes the loop campaign again. */
  private term?: AbortController;
  private loop?: Promise<void>;
  private stopping?: Promise<void>;
  private unreachableSince?: number;

  constructor(opts: ElectionOptions) {
    super();
    this.key = opts.key;
    this.name = opts.name;
    this.ttlSec = opts.ttlSec ?? 2;
    this.log = opts.logger.child({ component: 'election', key: opts.key, candidate: opts.name });
    this.client = new EtcdClient({ endpoints: opts.endpoints, timeoutMs: opts.requestTimeoutMs ?? Math.max(500, Math.round((this.ttlSec * 1000) / 3)) });
  }

  get role(): ElectionRole { return this._role; }
  /** The current leader's generation (ours when leading); undefined while starting or stopped. */
  get generationId(): bigint | undefined { return this._generation; }
  get leader(): string | undefined { return this._leader; }
  private get stopped(): boolean { return this.stopCtl.signal.aborted; }

  start(): void {
    if (this.loop || this.stopped) return;
    this.loop = this.run().catch((e) => this.log.error('election loop failed', { err: e }));
  }

  /** Resigns: stops campaigning and revokes the lease, which deletes the key so a standby takes over at once. Final. */
  stop(): Promise<void> {
    return (this.stopping ??= this.resign());
  }

  private async resign(): Promise<void> {
    this._role = 'stopped'; // before the revoke: we must not act as leader once a standby can take over
    this._generation = undefined;
    this._leader = undefined;
    this.stopCtl.abort();
    this.term?.abort();
    clearTimeout(this.keepaliveTimer);
    clearTimeout(this.deadlineTimer);
    await this.loop;
    const leases = [...this.abandoned, ...(this.lease ? [this.lease.id] : [])];
    this.lease = undefined;
    this.abandoned.clear();
    for (const id of leases) {
      try { await this.client.leaseRevoke(id); } catch (e) { this.log.warn('resign: lease revoke failed; the key expires with the lease', { err: e }); }
    }
  }

  private async run(): Promise<void> {
    let backoff = 0;
    while (!this.stopped) {
      const term = (this.term = new AbortController());
      try {
        const lease = await this.ensureLease();
        const r = await this.client.putIfAbsent(this.key, this.name, lease.id, this.stopCtl.signal);
        this.reachable();
        if (this.stopped) break;
        const kv = r.kv;
        if (!r.succeeded && kv && this.abandoned.has(kv.lease)) {
          await this.revokeAbandoned(kv.lease); // our own stale key: clear it and campaign again
          continue;
        }
        if (r.succeeded || kv?.lease === lease.id) this.becomeLeader(r.succeeded ? r.revision : kv!.createRevision);
        else if (kv) this.becomeFollower(kv.value, kv.createRevision);
        else throw new EtcdError(this.client.endpoints.join(','), 'txn failed but returned no key', 'protocol');
        backoff = 0;
        const why = await this.watchKey(r.revision + 1n, lease.id, term.signal);
        if (why) this.depose(why);
      } catch (e) {
        if (this.stopped) break;
        if (e instanceof EtcdError && e.leaseNotFound) this.leaseGone('lease expired'); // then a fresh one, after a pause
        else this.unreachable(e);
        backoff = Math.min(backoff ? backoff * 2 : 100, Math.min(1000, (this.ttlSec * 1000) / 2));
        await sleep(backoff * (0.8 + Math.random() * 0.4), this.stopCtl.signal);
      }
    }
  }

  /** Watches the key after `from`; resolves with a reason to campaign again, or undefined when the term ends. */
  private async watchKey(from: bigint, leaseId: bigint, term: AbortSignal): Promise<string | undefined> {
    if (term.aborted) return undefined; // ended while we campaigned ('abort' will not fire again)
    const ctl = new AbortController();
    const onAbort = (): void => ctl.abort();
    term.addEventListener('abort', onAbort, { once: true });
    let why: string | undefined;
    try {
      await this.client.watch(this.key, from, (ev) => {
        if (why) return;
        if (ev.type === 'delete') why = this._role === 'leader' ? 'key deleted (lease expired or revoked)' : 'leader gone';
        else if (this._role === 'leader' && ev.kv.lease !== leaseId) why = `key taken by ${ev.kv.value}`;
        if (why) ctl.abort();
      }, ctl.signal);
    } finally {
      term.removeEventListener('abort', onAbort);
    }
    if (why) this.log.debug('campaigning again', { why });
    return why;
  }

  private async ensureLease(): Promise<Lease> {
    if (this.lease) return this.lease;
    const sentAt = performance.now();
    const lease = await this.client.leaseGrant(this.ttlSec, this.stopCtl.signal);
    this.lease = lease; // even if stopped meanwhile: stop() revokes it
    this.renewedAt = sentAt;
    if (lease.ttl !== this.ttlSec) this.log.info('etcd granted a different lease ttl', { requested: this.ttlSec, granted: lease.ttl });
    this.scheduleKeepalive();
    return lease;
  }

  private scheduleKeepalive(): void {
    clearTimeout(this.keepaliveTimer);
    if (!this.lease || this.stopped) return;
    this.keepaliveTimer = setTimeout(() => void this.keepalive(), (this.lease.ttl * 1000) / 3);
  }

  private async keepalive(): Promise<void> {
    const lease = this.lease;
    if (!lease || this.stopped) return;
    const sentAt = performance.now();
    try {
      const ttl = await this.client.leaseKeepAlive(lease.id, this.stopCtl.signal);
      if (this.lease !== lease || this.stopped) return;
      if (ttl <= 0) return this.leaseGone('lease expired');
      this.renewedAt = sentAt;
      this.reachable();
      if (this._role === 'leader') this.armDeadline();
    } catch (e) {
      if (this.lease !== lease || this.stopped) return;
      this.unreachable(e);
      // A follower's watch may have died silently with the connection (no FIN in a partition): renew it.
      if (this._role !== 'leader') this.term?.abort();
    } finally {
      if (this.lease === lease) this.scheduleKeepalive();
    }
  }

  /** A leader that has not renewed within the ttl may already be replaced: it deposes itself. */
  private armDeadline(): void {
    clearTimeout(this.deadlineTimer);
    if (!this.lease) return;
    const left = this.renewedAt + this.lease.ttl * 1000 - performance.now();
    this.deadlineTimer = setTimeout(() => {
      if (this._role !== 'leader' || this.stopped) return;
      this.depose(`no lease renewal for ${this.lease?.ttl ?? this.ttlSec} s (etcd unreachable)`);
      this.dropLease(true);
      this.term?.abort();
    }, Math.max(0, left));
  }

  private leaseGone(reason: string): void {
    this.dropLease(false);
    this.depose(reason);
    this.term?.abort(); // campaign again with a fresh lease
  }

  /** Forgets the lease; `abandon` also revokes it in the background (it may still be alive in etcd). */
  private dropLease(abandon: boolean): void {
    clearTimeout(this.keepaliveTimer);
    clearTimeout(this.deadlineTimer);
    const lease = this.lease;
    this.lease = undefined;
    if (abandon && lease) {
      this.abandoned.add(lease.id);
      void this.revokeAbandoned(lease.id).catch(() => { /* retried if its key is found at the next campaign */ });
    }
  }

  private async revokeAbandoned(id: bigint): Promise<void> {
    await this.client.leaseRevoke(id, this.stopCtl.signal);
    this.abandoned.delete(id);
  }

  private becomeLeader(gen: bigint): void {
    if (this.stopped) return;
    if (this._role === 'leader' && this._generation === gen) return;
    this.depose(`generation changed to ${gen}`);
    this._role = 'leader';
    this._generation = gen;
    this._leader = this.name;
    this.armDeadline();
    this.log.info('elected leader', { generation: gen.toString() });
    this.safeEmit('leader', gen);
  }

  private becomeFollower(leader: string, gen: bigint): void {
    if (this.stopped) return;
    if (this._role === 'follower' && this._generation === gen) return;
    this.depose(`key owned by ${leader}`);
    clearTimeout(this.deadlineTimer);
    this._role = 'follower';
    this._generation = gen;
    this._leader = leader;
    this.log.info('following', { leader, generation: gen.toString() });
    this.safeEmit('follower', { leader, generationId: gen });
  }

  /** No-op unless leading. */
  private depose(reason: string): void {
    if (this._role !== 'leader') return;
    clearTimeout(this.deadlineTimer);
    this._role = 'starting';
    this._generation = undefined;
    this._leader = undefined;
    this.log.warn('deposed', { reason });
    this.safeEmit('deposed', reason);
  }

  private unreachable(e: unknown): void {
    const err = e instanceof EtcdError ? e : new EtcdError('-', e instanceof Error ? e.message : String(e), 'protocol');
    if (!(e instanceof EtcdError)) this.log.error('election: unexpected error', { err: e });
    else if (this.unreachableSince === undefined) this.log.warn('etcd unreachable', { err: err.message });
    else this.log.debug('etcd still unreachable', { err: err.message });
    this.unreachableSince ??= performance.now();
    this.safeEmit('etcd_unreachable', err);
  }

  private reachable(): void {
    if (this.unreachableSince === undefined) return;
    this.log.info('etcd reachable again', { afterMs: Math.round(performance.now() - this.unreachableSince) });
    this.unreachableSince = undefined;
  }

  // A throwing listener must not break the timers or the loop.
  private safeEmit<K extends keyof ElectionEvents>(event: K, ...args: ElectionEvents[K]): void {
    try {
      (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
    } catch (e) {
      this.log.error('election listener threw', { event, err: e });
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => { clearTimeout(t); signal.removeEventListener('abort', done); resolve(); };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
