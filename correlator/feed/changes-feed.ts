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
import { OperationError } from '../../lib/errors.js';
import { holdsWitness, witnessQuery, type PositionWitness } from '../../lib/couch/position-witness.js';

export interface FeedChange extends Change {
  /** null inside a page read with seq_interval (CouchDB 3): only the page's last_seq says where it ends. */
  seq: string | null;
  /** The document's revision now (a deletion's tombstone included); null when the server did not say. */
  rev: string | null;
}

/** What a changed document held before (see ChangesFeed.earlierContents). */
export interface EarlierContents {
  /** The contents of its earlier revisions still stored, newest first; deleted revisions left out. */
  docs: Array<Record<string, unknown>>;
  /** Earlier revisions whose content is gone (compacted away), or a history that could not be read. */
  missing: number;
}

/** Earlier revisions read at most for one changed document: an admin's edits of a log document are few. */
const EARLIER_REVISIONS = 20;
/** Changed documents whose history is read at once. */
const HISTORY_CONCURRENCY = 8;

/**
 * Whether a change is a deletion or a revision above the first: the
 * document held something else before. Design documents never are events
 * (and CouchDB answers a GET of `_design%2F…` with a redirect).
 */
export function changedSinceStored(change: FeedChange): boolean {
  if (change.id.startsWith('_design/')) return false;
  return change.deleted === true || (change.rev !== null && !change.rev.startsWith('1-'));
}

export interface FeedPage {
  changes: FeedChange[];
  /** As many changes as asked for: more may follow at once (a short page: the feed is caught up). */
  full: boolean;
  lastSeq: string;
  /** Changes still to read after this page, when the server says. */
  pending: number | null;
}

const seqText = (seq: unknown): string => (typeof seq === 'string' ? seq : JSON.stringify(seq));

/** The query of one page of a feed: the correlator's, and the benchmark's plain read that it is measured against. */
export function changesQuery(since: string, limit: number): URLSearchParams {
  return new URLSearchParams({ since, limit: String(limit), include_docs: 'true', feed: 'normal', seq_interval: String(limit) });
}

/** Pages read at a reduced size before it is doubled again (see ChangesFeed.failed). */
const GROW_AFTER_PAGES = 8;

export class ChangesFeed {
  readonly http: CouchHttp;
  readonly headers: Record<string, string>;
  /**
   * The page size asked for: `limit`, halved (down to 1) after each failed
   * read and doubled back every GROW_AFTER_PAGES pages read. A page the
   * server cannot answer (documents of several MB each: PouchDB Server
   * fails with "Invalid string length") would otherwise be asked again, the
   * same, for ever, and the correlator would stop there.
   */
  private pageLimit: number;
  private readAtLimit = 0;

  constructor(
    http: CouchHttp,
    readonly db: string,
    headers: Record<string, string>,
    private readonly limit: number,
  ) {
    this.http = http;
    this.headers = headers;
    this.pageLimit = limit;
  }

  private failed(): void {
    this.pageLimit = Math.max(1, Math.floor(this.pageLimit / 2));
    this.readAtLimit = 0;
  }

  private read(): void {
    if (this.pageLimit === this.limit || ++this.readAtLimit < GROW_AFTER_PAGES) return;
    this.readAtLimit = 0;
    this.pageLimit = Math.min(this.limit, this.pageLimit * 2);
  }

  /** Documents of this feed's database by id. */
  fetch(ids: string[]): Promise<Map<string, Record<string, unknown>>> {
    return fetchDocs(this.http, this.db, this.headers, ids);
  }

  /** The database's update_seq as CouchDB gives it; throws when it cannot be read. */
  async updateSeq(): Promise<unknown> {
    const res = await this.http.request<{ update_seq?: unknown }>('GET', `/${encodeURIComponent(this.db)}`, { headers: this.headers });
    if (res.status !== 200) throw new OperationError(`reading ${this.db}'s update_seq: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.update_seq;
  }

  /** Whether the database holds the witness of a position read before (lib/couch/position-witness.ts); throws when it cannot say. */
  async holds(witness: PositionWitness): Promise<boolean> {
    const res = await this.http.request('GET', witnessQuery(this.db, witness), { headers: this.headers });
    return holdsWitness(this.db, witness, res.status, res.body);
  }

  async poll(since: string): Promise<FeedPage> {
    const limit = this.pageLimit;
    const qs = changesQuery(since, limit);
    let res;
    try {
      res = await this.http.request<{
        results?: Array<{ seq: unknown; id: string; deleted?: boolean; doc?: Record<string, unknown>; changes?: Array<{ rev?: unknown }> }>;
        last_seq?: unknown;
        pending?: number;
      }>('GET', `/${encodeURIComponent(this.db)}/_changes?${qs}`, { headers: this.headers });
    } catch (err) {
      this.failed();
      throw err;
    }
    if (res.status !== 200) {
      if (res.status >= 500) this.failed();
      throw new OperationError(`_changes of ${this.db} answered ${res.status} (${limit} a page): ${JSON.stringify(res.body)}`);
    }
    this.read();
    const results = res.body.results ?? [];
    return {
      full: results.length >= limit,
      changes: results.map((r) => ({
        seq: r.seq === null || r.seq === undefined ? null : seqText(r.seq),
        id: r.id,
        deleted: r.deleted === true,
        doc: r.doc ?? null,
        rev: revOf(r),
      })),
      lastSeq: res.body.last_seq === undefined ? since : seqText(res.body.last_seq),
      pending: typeof res.body.pending === 'number' ? res.body.pending : null,
    };
  }

  /**
   * What changed documents held before (an admin's deletion or edit: see
   * changedSinceStored), for each id and its revision now: the contents of
   * its earlier revisions still stored (two requests a document: its
   * revision history, then those revisions). CouchDB and PouchDB Server
   * keep them until the database is compacted. A failed read throws
   * (retried with the page); a document gone meanwhile (purged) counts as missing.
   */
  async earlierContents(changes: ReadonlyArray<{ id: string; rev: string }>): Promise<Map<string, EarlierContents>> {
    const out = new Map<string, EarlierContents>();
    for (let i = 0; i < changes.length; i += HISTORY_CONCURRENCY) {
      const chunk = changes.slice(i, i + HISTORY_CONCURRENCY);
      const read = await Promise.all(chunk.map((c) => this.earlierOf(c.id, c.rev)));
      chunk.forEach((c, k) => out.set(c.id, read[k]!));
    }
    return out;
  }

  private async earlierOf(id: string, rev: string): Promise<EarlierContents> {
    // Without its revision the history cannot be asked for: counted like one that is gone.
    if (rev === '') return { docs: [], missing: 1 };
    const base = `/${encodeURIComponent(this.db)}/${encodeURIComponent(id)}`;
    const res = await this.http.request<{ _revisions?: { start?: unknown; ids?: unknown } }>('GET', `${base}?rev=${encodeURIComponent(rev)}&revs=true`, {
      headers: this.headers,
    });
    // Gone (purged), or refused for this document alone: counted, never retried for ever. A server error is retried.
    if (res.status === 404 || (res.status >= 400 && res.status < 500)) return { docs: [], missing: 1 };
    if (res.status !== 200) throw new OperationError(`reading the history of ${id} in ${this.db}: ${res.status} ${JSON.stringify(res.body)}`);
    const { start, ids } = res.body._revisions ?? {};
    if (typeof start !== 'number' || !Array.isArray(ids)) return { docs: [], missing: 1 };
    const earlier = ids.slice(1, 1 + EARLIER_REVISIONS).map((hash, k) => `${start - 1 - k}-${String(hash)}`);
    if (earlier.length === 0) return { docs: [], missing: 0 };
    const revs = await this.http.request<Array<{ ok?: Record<string, unknown>; missing?: string }>>(
      'GET',
      `${base}?open_revs=${encodeURIComponent(JSON.stringify(earlier))}`,
      { headers: this.headers },
    );
    if (revs.status !== 200 || !Array.isArray(revs.body))
      throw new OperationError(`reading earlier revisions of ${id} in ${this.db}: ${revs.status} ${JSON.stringify(revs.body)}`);
    const docs = revs.body.flatMap((r) => (r.ok && r.ok._deleted !== true ? [r.ok] : []));
    docs.sort((x, y) => revNumber(y._rev) - revNumber(x._rev));
    return { docs, missing: revs.body.filter((r) => r.missing !== undefined).length };
  }
}

const revNumber = (rev: unknown): number => (typeof rev === 'string' ? parseInt(rev, 10) || 0 : 0);

/** A change's revision: from its `changes` list, or its document. */
function revOf(r: { changes?: Array<{ rev?: unknown }>; doc?: Record<string, unknown> }): string | null {
  const rev = r.changes?.[0]?.rev ?? r.doc?._rev;
  return typeof rev === 'string' ? rev : null;
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
    if (res.status !== 200) throw new OperationError(`fetching ${keys.length} documents of ${db}: ${res.status} ${JSON.stringify(res.body)}`);
    for (const row of res.body.rows ?? []) if (row.id && row.doc) docs.set(row.id, row.doc);
  }
  return docs;
}
