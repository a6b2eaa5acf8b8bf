// The checkpoint, a _local document of the correlated database (not
// replicated, not in _changes): each feed's position and next index, and a
// snapshot of the engine's state as document ids (the documents themselves
// are fetched again on restart). With the default buffers the snapshot is
// a few MB at most, below CouchDB's 8 MB document limit; save() refuses a
// larger one rather than fail half-way.
import type { CouchHttp } from '../../lib/couch/http.js';
import type { EngineSnapshot, Side } from '../engine/types.js';

export interface Checkpoint {
  feeds: Record<Side, { db: string; since: string; next_index: number }>;
  state: EngineSnapshot;
  saved_at: string;
}

/** CouchDB 3's default max_document_size is 8 MB; stay clear of it. */
export const MAX_CHECKPOINT_BYTES = 7_500_000;

export class CheckpointStore {
  private rev: string | undefined;

  constructor(
    private readonly http: CouchHttp,
    private readonly db: string,
    private readonly name: string,
    private readonly headers: Record<string, string>,
  ) {}

  private get path(): string {
    return `/${encodeURIComponent(this.db)}/_local/${encodeURIComponent(this.name)}`;
  }

  async load(): Promise<Checkpoint | null> {
    const res = await this.http.request<Checkpoint & { _rev?: string }>('GET', this.path, { headers: this.headers });
    if (res.status === 404) return null;
    if (res.status !== 200) throw new Error(`reading the checkpoint ${this.db}/_local/${this.name}: ${res.status}`);
    this.rev = res.body._rev;
    return { feeds: res.body.feeds, state: res.body.state, saved_at: res.body.saved_at };
  }

  /**
   * Whether the database already holds correlated records (ids A-… and B-…,
   * design documents aside): a run that died before its first checkpoint
   * may have written them.
   */
  async holdsRecords(): Promise<boolean> {
    const qs = new URLSearchParams({ startkey: '"A-"', endkey: '"B-\ufff0"', limit: '1' });
    const res = await this.http.request<{ rows?: unknown[] }>('GET', `/${encodeURIComponent(this.db)}/_all_docs?${qs}`, { headers: this.headers });
    if (res.status !== 200) throw new Error(`reading ${this.db}/_all_docs: ${res.status}`);
    return (res.body.rows?.length ?? 0) > 0;
  }

  async save(cp: Checkpoint): Promise<void> {
    const body = JSON.stringify({ ...cp, ...(this.rev ? { _rev: this.rev } : {}) });
    if (body.length > MAX_CHECKPOINT_BYTES) {
      throw new Error(`the checkpoint would be ${body.length} bytes, above ${MAX_CHECKPOINT_BYTES}: lower correlator.buffers`);
    }
    let res = await this.http.request<{ rev?: string }>('PUT', this.path, { headers: this.headers, body });
    if (res.status === 409) {
      // Someone else (an earlier run) moved it: take its revision and write ours.
      await this.load();
      res = await this.http.request<{ rev?: string }>('PUT', this.path, { headers: this.headers, body: JSON.stringify({ ...cp, _rev: this.rev }) });
    }
    if (res.status !== 201 && res.status !== 200) throw new Error(`saving the checkpoint: ${res.status} ${JSON.stringify(res.body)}`);
    this.rev = res.body.rev;
  }
}
