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
//  - an instance that finds the claim taken by another one *after it had
//    written it itself* knows that a second instance is running: of the two,
//    the one that started later (start time, then instance id: both compare
//    the same pair, so both agree) stops; the earlier one takes the claim back
//    and goes on. Each sees the other's claim within a few saves.
// What must stay true: the check comes before the checkpoint is saved, so
// the instance that stops saves nothing after it learnt of the other; it
// costs one small read and one small write per checkpoint.
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { CouchHttp } from '../../lib/couch/http.js';
import { OperationError } from '../../lib/errors.js';

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

export class WriterClaim {
  readonly me: WriterIdentity;
  private rev: string | undefined;
  private written = false;

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

  private get path(): string {
    return `/${encodeURIComponent(this.db)}/_local/${encodeURIComponent(`${this.checkpointName}-writer`)}`;
  }

  /**
   * Before a save: throws SecondInstanceError when an instance that started
   * earlier has taken the claim since this one last wrote it; otherwise
   * writes this instance's claim.
   */
  async claim(): Promise<void> {
    const res = await this.http.request<Partial<WriterIdentity> & { _rev?: string }>('GET', this.path, { headers: this.headers });
    if (res.status !== 200 && res.status !== 404) throw new OperationError(`reading ${this.db}/_local/${this.checkpointName}-writer: ${res.status}`);
    this.rev = res.status === 200 ? res.body._rev : undefined;
    const other = res.status === 200 ? identity(res.body) : null;
    if (other && other.instance !== this.me.instance && this.written) {
      if (startedLater(this.me, other)) throw new SecondInstanceError(`${this.db}/_local/${this.checkpointName}`, other);
      this.onLaterInstance(other);
    }
    const put = await this.http.request<{ rev?: string }>('PUT', this.path, {
      headers: this.headers,
      body: JSON.stringify({ ...this.me, ...(this.rev ? { _rev: this.rev } : {}) }),
    });
    // A conflict is a claim written between the read and this write (the embedded server checks _local
    // revisions; CouchDB 3 does not): the next save sees who wrote it.
    if (put.status === 409) return;
    if (put.status !== 201 && put.status !== 200) throw new OperationError(`writing ${this.db}/_local/${this.checkpointName}-writer: ${put.status}`);
    this.rev = put.body.rev;
    this.written = true;
  }
}

function identity(body: Partial<WriterIdentity>): WriterIdentity | null {
  const { instance, host, pid, started_at } = body;
  if (typeof instance !== 'string' || typeof started_at !== 'string') return null;
  return { instance, host: typeof host === 'string' ? host : '?', pid: typeof pid === 'number' ? pid : 0, started_at };
}
