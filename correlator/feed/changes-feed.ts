// Reads one database's _changes with the normal feed (since + limit):
// unpatched PouchDB Server ignores `timeout` on longpoll and dies on
// server-side `_selector` filters, so filtering happens in the correlator. Sequences
// are opaque strings (numbers on PouchDB Server, strings on CouchDB 3).
// `seq_interval` asks CouchDB 3 for the sequence of the page's last change
// only (the others come as null): it encodes every shard's position for
// each change otherwise, about a fifth of its CPU for a backlog read with
// documents. The correlator resumes from a page's `last_seq` only, so
// nothing needs the others; PouchDB Server ignores the parameter.
import type { CouchHttp } from '../../lib/couch/http.js';
import type { Change } from '../engine/normalize.js';

export interface FeedChange extends Change {
  /** null inside a page read with seq_interval (CouchDB 3): only the page's last_seq says where it ends. */
  seq: string | null;
}

export interface FeedPage {
  changes: FeedChange[];
  lastSeq: string;
  /** Changes still to read after this page, when the server says. */
  pending: number | null;
}

const seqText = (seq: unknown): string => (typeof seq === 'string' ? seq : JSON.stringify(seq));

/** The query of one page of a feed: the correlator's, and the benchmark's plain read that it is measured against. */
export function changesQuery(since: string, limit: number): URLSearchParams {
  return new URLSearchParams({ since, limit: String(limit), include_docs: 'true', feed: 'normal', seq_interval: String(limit) });
}

export class ChangesFeed {
  readonly http: CouchHttp;
  readonly headers: Record<string, string>;

  constructor(
    http: CouchHttp,
    readonly db: string,
    headers: Record<string, string>,
    private readonly limit: number,
  ) {
    this.http = http;
    this.headers = headers;
  }

  /** Documents of this feed's database by id. */
  fetch(ids: string[]): Promise<Map<string, Record<string, unknown>>> {
    return fetchDocs(this.http, this.db, this.headers, ids);
  }

  async poll(since: string): Promise<FeedPage> {
    const qs = changesQuery(since, this.limit);
    const res = await this.http.request<{
      results?: Array<{ seq: unknown; id: string; deleted?: boolean; doc?: Record<string, unknown> }>;
      last_seq?: unknown;
      pending?: number;
    }>('GET', `/${encodeURIComponent(this.db)}/_changes?${qs}`, { headers: this.headers });
    if (res.status !== 200) throw new Error(`_changes of ${this.db} answered ${res.status}: ${JSON.stringify(res.body)}`);
    const results = res.body.results ?? [];
    return {
      changes: results.map((r) => ({
        seq: r.seq === null || r.seq === undefined ? null : seqText(r.seq),
        id: r.id,
        deleted: r.deleted === true,
        doc: r.doc ?? null,
      })),
      lastSeq: res.body.last_seq === undefined ? since : seqText(res.body.last_seq),
      pending: typeof res.body.pending === 'number' ? res.body.pending : null,
    };
  }
}

/** Documents by id (to rebuild the engine's state on restart); missing or deleted ones are absent. */
export async function fetchDocs(http: CouchHttp, db: string, headers: Record<string, string>, ids: string[]): Promise<Map<string, Record<string, unknown>>> {
  const docs = new Map<string, Record<string, unknown>>();
  for (let i = 0; i < ids.length; i += 1000) {
    const keys = ids.slice(i, i + 1000);
    const res = await http.request<{ rows?: Array<{ id?: string; doc?: Record<string, unknown> | null }> }>(
      'POST',
      `/${encodeURIComponent(db)}/_all_docs?include_docs=true`,
      {
        headers,
        body: JSON.stringify({ keys }),
      },
    );
    if (res.status !== 200) throw new Error(`fetching ${keys.length} documents of ${db}: ${res.status} ${JSON.stringify(res.body)}`);
    for (const row of res.body.rows ?? []) if (row.id && row.doc) docs.set(row.id, row.doc);
  }
  return docs;
}
