// Feed positions, saved as a _local document of the correlated database:
// _local documents are not replicated and not in _changes, and a small
// document (positions only, never engine state) stays far below CouchDB's
// 8 MB limit. Engine state is rebuilt by re-reading from these positions.
import type { CouchHttp } from '../../lib/couch/http.js';
import type { Side } from '../engine/types.js';

export interface Checkpoint {
  feeds: Record<Side, { db: string; since: string }>;
  saved_at: string;
}

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
    return { feeds: res.body.feeds, saved_at: res.body.saved_at };
  }

  async save(cp: Checkpoint): Promise<void> {
    const body = JSON.stringify({ ...cp, ...(this.rev ? { _rev: this.rev } : {}) });
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
