// Which correlator instance writes a checkpoint: a small _local document next
// to it (`_local/<checkpoint>-writer`), rewritten with every save.
//
// Two instances on one checkpoint (a second host with the same
// configuration, `docker compose up --scale correlator=2`) would each write
// every record and overwrite each other's checkpoint. Apache CouchDB 3 does
// no revision checks on _local documents, so this cannot exclude anyone at
// the moment of writing (a lease built on that was taken back on
// 2026-12-05). It detects instead, and converges:
//  - an instance that has never written takes the claim over at once: a
//    restart after a crash, or a failover to another host, must not wait;
//  - an instance that finds a claim of another one written *after its own
//    last claim* (each claim carries a sequence number above the last one
//    read), and changed since it last read one of that instance's claims (a
//    dead instance's claim never changes), knows that a second instance is
//    running: of the two, the one that started later (start time, then
//    instance id: both compare the same pair, so both agree) stops; the
//    earlier one takes the claim back and goes on. Each sees the other's
//    claim within a few saves;
//  - a clean stop's last save marks the claim released, or, when another
//    instance claimed the checkpoint meanwhile, saves nothing (it is that
//    one's now: start new, then stop old is a correct failover).
// What must stay true: the check comes before the checkpoint is saved, so
// the instance that stops saves nothing after it learnt of the other; it
// costs one small read and one small write per checkpoint.
import { hostname } from 'node:os';
import { randomInt, randomUUID } from 'node:crypto';
import type { CouchHttp } from '../../lib/couch/http.js';
import { OperationError } from '../../lib/errors.js';
import { isStoredLocalWrite } from '../../lib/couch/write-status.js';

export interface WriterIdentity {
  instance: string;
  host: string;
  pid: number;
  started_at: string;
}

/** Another instance writes the same checkpoint and started before this one: this one must stop. */
export class SecondInstanceError extends OperationError {
  override readonly name = 'SecondInstanceError';
  readonly code = 'CORRELATOR_SECOND_INSTANCE';
  constructor(
    readonly checkpoint: string,
    readonly other: WriterIdentity,
  ) {
    super(
      `another correlator writes the checkpoint ${checkpoint} (host ${other.host}, pid ${other.pid}, started ${other.started_at}) and started before this one: ` +
        'stopping this one; run one correlator per checkpoint (docs/correlator.md, Scaling)',
    );
  }
}

/** Whether a started after b (the one of two instances that stops). */
export function startedLater(a: WriterIdentity, b: WriterIdentity): boolean {
  return a.started_at === b.started_at ? a.instance > b.instance : a.started_at > b.started_at;
}

/** The claim as stored: who, and the claim's sequence number (each write one above the last one read). */
interface StoredClaim extends WriterIdentity {
  seq: number;
  /** Written by an instance's last save on a clean stop: free for the next one. */
  released: boolean;
}

/** What a final save may do (see release()). */
export type Release = 'released' | 'held-by-another';

/** Times a claim is read and written again when another write came in between (the embedded server's 409). */
const CONFLICT_TRIES = 3;
/** Other instances' claims remembered (more means a crash loop of many instances: forgotten and learnt again). */
const MAX_SEEN = 64;
/** The largest random part of a claim's sequence step. */
const SEQ_JITTER = 1000;

export class WriterClaim {
  readonly me: WriterIdentity;
  private rev: string | undefined;
  /** The sequence number of this instance's last claim written; 0 before the first. */
  private lastSeq = 0;
  /** The last sequence number read of each other instance's claim (see claimingToo). */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly http: CouchHttp,
    private readonly db: string,
    private readonly checkpointName: string,
    private readonly headers: Record<string, string>,
    /** Called when another instance that started later is seen writing (it will stop). */
    private readonly onLaterInstance: (other: WriterIdentity) => void,
    startedAt: Date = new Date(),
  ) {
    this.me = { instance: randomUUID(), host: hostname(), pid: process.pid, started_at: startedAt.toISOString() };
  }

  private get where(): string {
    return `${this.db}/_local/${this.checkpointName}-writer`;
  }

  private get path(): string {
    return `/${encodeURIComponent(this.db)}/_local/${encodeURIComponent(`${this.checkpointName}-writer`)}`;
  }

  /**
   * Before a save: throws SecondInstanceError when an instance that started
   * earlier is claiming the checkpoint too; otherwise writes this instance's
   * claim.
   */
  async claim(): Promise<void> {
    for (let tries = 1; ; tries++) {
      const other = await this.read();
      if (this.claimingToo(other)) {
        if (startedLater(this.me, other)) throw new SecondInstanceError(this.where, other);
        this.onLaterInstance(other);
      }
      if ((await this.write(other, false)) || tries >= CONFLICT_TRIES) return;
    }
  }

  /**
   * Before the last save of a clean stop: when another instance is claiming
   * the checkpoint too, it is that one's now ('held-by-another': the caller
   * saves nothing; taking it back would stop the other one, as when an
   * operator starts the new instance before stopping the old). Otherwise the
   * claim is marked released, so that an instance running meanwhile does
   * not take this one's last claim for a second instance.
   */
  async release(): Promise<Release> {
    for (let tries = 1; ; tries++) {
      const other = await this.read();
      if (this.claimingToo(other)) return 'held-by-another';
      if ((await this.write(other, true)) || tries >= CONFLICT_TRIES) return 'released';
    }
  }

  /**
   * Whether another, live instance claims the checkpoint: its claim was
   * written after this instance's last one, and it has changed since this
   * instance last read one of its claims. A dead instance's claim never
   * changes, so neither a restart (which takes it over at once) nor a stale
   * read (a lagging copy of a cluster's shard, or a 404 there before the
   * first claim) can make it look live.
   */
  private claimingToo(other: StoredClaim | null): other is StoredClaim {
    if (!other || other.instance === this.me.instance || other.released) return false;
    const before = this.seen.get(other.instance);
    if (before === undefined && this.seen.size >= MAX_SEEN) this.seen.clear();
    this.seen.set(other.instance, other.seq);
    return this.lastSeq > 0 && other.seq > this.lastSeq && before !== undefined && before !== other.seq;
  }

  private async read(): Promise<StoredClaim | null> {
    const res = await this.http.request<Partial<StoredClaim> & { _rev?: string }>('GET', this.path, { headers: this.headers });
    if (res.status !== 200 && res.status !== 404) throw new OperationError(`reading ${this.where}: ${res.status}`);
    this.rev = res.status === 200 ? res.body._rev : undefined;
    return res.status === 200 ? stored(res.body) : null;
  }

  /** False when another write came in between (409 on the embedded server; CouchDB 3 does not check _local revisions). */
  private async write(current: StoredClaim | null, released: boolean): Promise<boolean> {
    // A random step: two instances that read the same claim and write in step still write different
    // numbers, so each sees the other's above its own sooner or later.
    const seq = Math.max(current?.seq ?? 0, this.lastSeq) + 1 + randomInt(SEQ_JITTER);
    const put = await this.http.request<{ rev?: string }>('PUT', this.path, {
      headers: this.headers,
      body: JSON.stringify({ ...this.me, seq, released, ...(this.rev ? { _rev: this.rev } : {}) }),
    });
    if (put.status === 409) return false;
    // 202: a loaded cluster stored it on fewer copies than its write quorum so far; it is written.
    if (!isStoredLocalWrite(put.status)) throw new OperationError(`writing ${this.where}: ${put.status}`);
    this.rev = put.body.rev;
    this.lastSeq = seq;
    return true;
  }
}

function stored(body: Partial<StoredClaim>): StoredClaim | null {
  const { instance, host, pid, started_at, seq, released } = body;
  if (typeof instance !== 'string' || typeof started_at !== 'string') return null;
  return {
    instance,
    host: typeof host === 'string' ? host : '?',
    pid: typeof pid === 'number' ? pid : 0,
    started_at,
    seq: typeof seq === 'number' && Number.isFinite(seq) ? seq : 0,
    released: released === true,
  };
}
