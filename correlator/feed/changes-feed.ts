// Reads one database's _changes with the normal feed (since + limit):
// PouchDB Server ignores `timeout` on longpoll and dies on server-side
// `_selector` filters, so filtering happens in the correlator. Sequences
// are opaque strings (numbers on PouchDB Server, strings on CouchDB 3).
import type { CouchHttp } from '../../lib/couch/http.js';
import type { Change } from '../engine/normalize.js';

export interface FeedChange extends Change {
  seq: string;
}

export interface FeedPage {
  changes: FeedChange[];
  lastSeq: string;
  /** Changes still to read after this page, when the server says. */
  pending: number | null;
}

const seqText = (seq: unknown): string => (typeof seq === 'string' ? seq : JSON.stringify(seq));

export class ChangesFeed {
  constructor(
    private readonly http: CouchHttp,
    readonly db: string,
    private readonly headers: Record<string, string>,
    private readonly limit: number,
  ) {}

  async poll(since: string): Promise<FeedPage> {
    const qs = new URLSearchParams({ since, limit: String(this.limit), include_docs: 'true', feed: 'normal' });
    const res = await this.http.request<{ results?: Array<{ seq: unknown; id: string; deleted?: boolean; doc?: Record<string, unknown> }>; last_seq?: unknown; pending?: number }>(
      'GET',
      `/${encodeURIComponent(this.db)}/_changes?${qs}`,
      { headers: this.headers },
    );
    if (res.status !== 200) throw new Error(`_changes of ${this.db} answered ${res.status}: ${JSON.stringify(res.body)}`);
    const results = res.body.results ?? [];
    return {
      changes: results.map((r) => ({ seq: seqText(r.seq), id: r.id, deleted: r.deleted === true, doc: r.doc ?? null })),
      lastSeq: res.body.last_seq === undefined ? since : seqText(res.body.last_seq),
      pending: typeof res.body.pending === 'number' ? res.body.pending : null,
    };
  }
}
