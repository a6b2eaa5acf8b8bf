// One running correlator per checkpoint. A second instance with the same
// configuration (a second host started by mistake, `docker compose up
// --scale correlator=2`, a systemd unit and a `couchlog up` side by side)
// would otherwise read the same feeds, overwrite the same checkpoint and
// write every record twice. The lease is a _local document next to the
// checkpoint (`couchlog_state_<app>/_local/lease-<instance>`): whoever holds
// it runs; the others wait on standby and take over when it is released (a
// clean stop) or no longer renewed (a crash, a frozen host).
//
// What must stay true:
//  - expiry is judged by each instance's own monotonic clock, never by
//    comparing wall clocks of two hosts: a standby takes over once the
//    document has not changed for `ttl` by its clock since it first saw that
//    revision; the holder gives up once `ttl` has passed, by its clock,
//    since it *sent* its last successful renewal — before any standby can
//    have seen that revision expire;
//  - every write is conditional on the revision read (CouchDB's MVCC): of
//    two instances that try at once, one wins, the other gets 409 and reads
//    again; a holder whose renewal meets 409 has lost the lease;
//  - a holder that lost it stops writing checkpoints at once (`mayWrite`)
//    and its pipeline is stopped; it then waits on standby like any other;
//  - a lease of another epoch of the state database (written before setup
//    last secured it, by whoever could get in) does not hold anyone back;
//  - a holder found on this host under a process id that no longer runs
//    (or this very process id: a previous life of a restarted container)
//    is gone: its lease is taken at once, so `kill -9` and a restart cost
//    no ttl.
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { CouchHttp } from '../../lib/couch/http.js';
import type { Logger } from '../../lib/logger.js';
import { OperationError } from '../../lib/errors.js';
import { readStateEpoch } from './checkpoint-store.js';

export interface LeaseDoc {
  _rev?: string;
  /** `host:pid:nonce` of the instance holding it; null once released. */
  holder: string | null;
  ttl_ms: number;
  /** The state database's epoch when written: a lease of an older epoch (written before setup last secured the database) does not count. */
  epoch?: string;
  /** Wall-clock times, for operators only: nothing compares them. */
  acquired_at?: string;
  renewed_at?: string;
  released_at?: string;
}

export interface LeaseOptions {
  ttlMs: number;
  /** This instance's identity (tests run several in one process); default `host:pid:nonce`. */
  holder?: string;
  /** Monotonic ms (default performance.now). */
  now?: () => number;
  /** Whether a process id runs on this host (default: signal 0). */
  alive?: (pid: number) => boolean;
  log: Logger;
}

/** Who holds the lease now, as last read: for /health and the standby's log. */
export interface LeaseStatus {
  held: boolean;
  holder: string | null;
  /** ms since the holder's document last changed, by this instance's clock (standby only). */
  unchangedForMs: number | null;
}

export type LeaseAttempt = { taken: true } | { taken: false; retryInMs: number };

const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it runs, as another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** A holder on this host whose process is gone (or is this process id: a restarted container's previous life). */
export function holderGone(holder: string, me: string, alive: (pid: number) => boolean): boolean {
  const [host, pid] = holder.split(':');
  const [myHost, myPid] = me.split(':');
  if (host !== myHost || pid === undefined || !/^\d+$/.test(pid)) return false;
  return pid === myPid || !alive(Number(pid));
}

export class InstanceLease {
  readonly holder: string;
  private rev: string | undefined;
  private held = false;
  private lostReason: string | null = null;
  /** Standby: the revision last seen and when (own clock) it was first seen. */
  private seen: { rev: string; holder: string; at: number } | null = null;
  /** Holder: when (own clock) the last renewal that succeeded was sent. */
  private renewedSentAt = 0;
  private readonly now: () => number;
  private readonly alive: (pid: number) => boolean;
  private readonly log: Logger;
  private epoch: string | undefined;
  private acquiredAt: string | undefined;

  constructor(
    private readonly http: CouchHttp,
    private readonly db: string,
    private readonly name: string,
    private readonly headers: Record<string, string>,
    private readonly o: LeaseOptions,
  ) {
    this.holder = o.holder ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.now = o.now ?? (() => performance.now());
    this.alive = o.alive ?? processAlive;
    this.log = o.log;
  }

  get ttlMs(): number {
    return this.o.ttlMs;
  }

  /** How often the holder renews, and the standby looks. */
  get renewEveryMs(): number {
    return Math.max(50, Math.floor(this.o.ttlMs / 3));
  }

  private get path(): string {
    return `/${encodeURIComponent(this.db)}/_local/lease-${encodeURIComponent(this.name)}`;
  }

  /**
   * Held, not lost, and within a ttl of the last renewal sent: the
   * checkpoint store asks before every write. A holder that could not renew
   * stops writing at that moment, not at its next renewal attempt.
   */
  get mayWrite(): boolean {
    return this.held && this.lostReason === null && this.now() < this.renewedSentAt + this.o.ttlMs;
  }

  /** Until when (own monotonic clock) this instance may act as the holder; null when it does not hold the lease. */
  get validUntil(): number | null {
    return this.held && this.lostReason === null ? this.renewedSentAt + this.o.ttlMs : null;
  }

  status(): LeaseStatus {
    return {
      held: this.mayWrite,
      holder: this.mayWrite ? this.holder : (this.seen?.holder ?? null),
      unchangedForMs: this.mayWrite || this.seen === null ? null : Math.round(this.now() - this.seen.at),
    };
  }

  private async write(doc: LeaseDoc): Promise<number> {
    const body = JSON.stringify({ ...doc, epoch: this.epoch, ...(this.rev ? { _rev: this.rev } : {}) });
    const res = await this.http.request<{ rev?: string }>('PUT', this.path, { headers: this.headers, body });
    if (res.status === 201 || res.status === 200) this.rev = res.body.rev;
    if (res.status === 401 || res.status === 403)
      throw new OperationError(`the correlator's lease in ${this.db} cannot be written with the correlator's account: ${res.status}: run couchlog setup`);
    return res.status;
  }

  private fresh(): LeaseDoc {
    const at = new Date().toISOString();
    return { holder: this.holder, ttl_ms: this.o.ttlMs, acquired_at: at, renewed_at: at };
  }

  /**
   * One look at the lease: taken (now held by this instance) or not, and
   * when to look again. Errors of CouchDB reject; the caller retries.
   */
  async tryAcquire(): Promise<LeaseAttempt> {
    // Also the check that the state database is there and set up (an error that says to run setup).
    this.epoch = await readStateEpoch(this.http, this.db, this.headers);
    const res = await this.http.request<LeaseDoc & { _rev: string }>('GET', this.path, { headers: this.headers });
    const later = { taken: false as const, retryInMs: this.renewEveryMs };
    if (res.status === 404) {
      this.rev = undefined;
      return this.take(this.fresh(), null);
    }
    if (res.status !== 200) throw new Error(`reading ${this.db}/_local/lease-${this.name}: ${res.status}`);
    const doc = res.body;
    this.rev = doc._rev;
    const other = doc.holder;
    if (other === null || other === this.holder) return this.take(this.fresh(), null);
    if (doc.epoch !== this.epoch) return this.take(this.fresh(), `${other} (a lease of another epoch of ${this.db}: written before setup last secured it)`);
    if (holderGone(other, this.holder, this.alive)) return this.take(this.fresh(), `${other} (its process is gone)`);
    const now = this.now();
    if (this.seen === null || this.seen.rev !== doc._rev) {
      if (this.seen?.holder !== other)
        this.log.warn(
          { holder: other, ttl_ms: doc.ttl_ms },
          `another correlator holds the lease ${this.name} (the same checkpoint): on standby until it stops or stops renewing it`,
        );
      this.seen = { rev: doc._rev, holder: other, at: now };
      return later;
    }
    // The holder's own ttl, if longer than ours: it renews by its ttl, not by ours.
    const ttl = Math.max(this.o.ttlMs, typeof doc.ttl_ms === 'number' ? doc.ttl_ms : 0);
    if (now - this.seen.at < ttl) return { taken: false, retryInMs: Math.min(this.renewEveryMs, Math.max(10, ttl - (now - this.seen.at))) };
    return this.take(this.fresh(), `${other} (not renewed for ${Math.round((now - this.seen.at) / 1000)} s)`);
  }

  private async take(doc: LeaseDoc, from: string | null): Promise<LeaseAttempt> {
    const sent = this.now();
    const status = await this.write(doc);
    if (status === 409) return { taken: false, retryInMs: 0 };
    if (status !== 201 && status !== 200) throw new Error(`writing ${this.db}/_local/lease-${this.name}: ${status}`);
    this.held = true;
    this.lostReason = null;
    this.seen = null;
    this.renewedSentAt = sent;
    this.acquiredAt = doc.acquired_at;
    if (from !== null) this.log.warn({ lease: this.name, from }, `took over the lease from ${from}`);
    return { taken: true };
  }

  /**
   * One renewal. Returns null while held, or why the lease is lost: taken
   * by another instance (409), or not renewed for a whole ttl (this
   * instance must assume a standby took it).
   */
  async renew(): Promise<string | null> {
    if (this.lostReason !== null) return this.lostReason;
    const sent = this.now();
    if (sent - this.renewedSentAt >= this.o.ttlMs)
      return this.lose(`not renewed for ${Math.round((sent - this.renewedSentAt) / 1000)} s (frozen, or CouchDB out of reach)`);
    let status: number;
    try {
      status = await this.write({ holder: this.holder, ttl_ms: this.o.ttlMs, acquired_at: this.acquiredAt, renewed_at: new Date().toISOString() });
    } catch (err) {
      this.log.warn({ lease: this.name, err: (err as Error).message }, 'renewing the lease failed; trying again');
      return this.now() - this.renewedSentAt >= this.o.ttlMs ? this.lose('not renewed for a whole ttl: CouchDB out of reach') : null;
    }
    if (status === 409) return this.lose('another correlator took it over');
    if (status !== 201 && status !== 200) {
      this.log.warn({ lease: this.name, status }, 'renewing the lease failed; trying again');
      return this.now() - this.renewedSentAt >= this.o.ttlMs ? this.lose('not renewed for a whole ttl') : null;
    }
    this.renewedSentAt = sent;
    return null;
  }

  private lose(why: string): string {
    this.lostReason ??= why;
    this.held = false;
    return this.lostReason;
  }

  /** Whether the stored lease still names this instance (one read): before a checkpoint overwrites someone else's write. */
  async confirm(): Promise<boolean> {
    if (!this.mayWrite) return false;
    const res = await this.http.request<LeaseDoc>('GET', this.path, { headers: this.headers });
    return res.status === 200 && res.body.holder === this.holder;
  }

  /** On a clean stop: a standby takes over at once instead of after a ttl. Best effort. */
  async release(): Promise<void> {
    if (!this.mayWrite) return;
    this.held = false;
    try {
      await this.write({ holder: null, ttl_ms: this.o.ttlMs, released_at: new Date().toISOString() });
    } catch (err) {
      this.log.warn({ lease: this.name, err: (err as Error).message }, 'releasing the lease failed: a standby takes over after its ttl');
    }
  }

  /** After a loss, to wait on standby again. */
  reset(): void {
    this.lostReason = null;
    this.held = false;
  }
}
