// A writer may choose its documents' `_id` (shippers and HEC clients do,
// so that a batch sent again stores nothing twice: a conflict means "stored
// already"). But ids share one namespace with every other writer, anonymous
// ones included, and a shipper's ids are predictable (source, offset, hash
// of the line): anyone could store a document under the id a real event
// will have, and the real event then answered "conflict", counted as
// stored, and was never stored. (Found by a black-box test: a forged
// document hid a "root login" line, and HEC acknowledged the real event.)
//
// So a conflict is checked: the stored document is read, and if it is the
// one sent (the same fields but `received_at`, which each attempt stamps
// anew) the conflict stands, a true retry. If it is another document, the
// one sent is stored under `<id>~<tag>`, where the tag is an HMAC of its
// content with a key only the ingress holds: the same document sent again
// gets the same id (still stored once), and nobody can take that id ahead
// of it, since nobody can compute it. The client is answered ok for its
// id, with `stored_as` naming where the document went.
//
// What must stay true: a document is never answered ok, nor conflict (which
// clients count as stored), unless it or the same content is stored; when
// the check cannot be made the request fails with 503 and is retried.
import { createHmac } from 'node:crypto';
import type { CouchHttp } from '../../lib/couch/http.js';
import { matchResults, type DocResult } from '../../lib/couch/bulk-results.js';
import { unavailable } from '../../lib/errors.js';
import type { LogDoc } from './validate-docs.js';

export type ClaimResult = DocResult | { ok: true; id: string; rev: string; stored_as: string };

interface Target {
  db: string;
  headers: Record<string, string>;
}

/** JSON with object keys sorted: two documents are the same when these agree. */
function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(obj[k])}`)
    .join(',')}}`;
}

/** A document's content as compared and tagged: without `_id`, `_rev` and the ingress's `received_at` stamp. */
function content(doc: Record<string, unknown>): string {
  const { _id: _i, _rev: _r, received_at: _t, ...rest } = doc;
  return canonical(rest);
}

export class ClaimedIds {
  private readonly key: Buffer;

  constructor(
    private readonly http: CouchHttp,
    /** Something only the ingress knows (the writer's password): the tags cannot be computed elsewhere. */
    secret: string,
    private readonly retryAfterS: number,
  ) {
    this.key = createHmac('sha256', 'couchlog claimed ids').update(secret).digest();
  }

  /** Where a document whose id was taken by another goes. */
  altId(doc: LogDoc & { _id: string }): string {
    return `${doc._id}~${createHmac('sha256', this.key).update(content(doc)).digest('hex').slice(0, 24)}`;
  }

  /** `results` with each conflict over another document's content replaced by the outcome of storing under altId. */
  async resolve(target: Target, docs: Array<LogDoc & { _id: string }>, results: DocResult[]): Promise<DocResult[]> {
    const conflicts: number[] = [];
    for (let i = 0; i < results.length; i++) {
      const r = results[i]!;
      if (!('ok' in r) && r.error === 'conflict') conflicts.push(i);
    }
    if (conflicts.length === 0) return results;
    const stored = await this.read(target, [...new Set(conflicts.map((i) => docs[i]!._id))]);
    const moved = conflicts.filter((i) => {
      const doc = stored.get(docs[i]!._id);
      return doc !== undefined && content(doc) !== content(docs[i]!);
    });
    if (moved.length === 0) return results;
    const alts = moved.map((i) => ({ ...docs[i]!, _id: this.altId(docs[i]!) }));
    const res = await this.http.request<unknown>('POST', `/${target.db}/_bulk_docs`, { headers: target.headers, body: JSON.stringify({ docs: alts }) });
    if (res.status !== 201 && res.status !== 202) throw unavailable('COUCHDB_ERROR', `CouchDB failed a write (${res.status}); retry`, this.retryAfterS);
    const altResults = matchResults(alts, res.body);
    const out: DocResult[] = [...results];
    moved.forEach((i, k) => {
      const r = altResults[k]!;
      // A conflict on the tagged id is this same document, stored there by an earlier attempt: a retry, as a plain conflict is.
      const storedAs: ClaimResult = { ok: true, id: docs[i]!._id, rev: 'ok' in r ? r.rev : '', stored_as: alts[k]!._id };
      out[i] = 'ok' in r ? storedAs : { id: docs[i]!._id, error: r.error, reason: r.reason };
    });
    return out;
  }

  /**
   * The stored documents of these ids. When they cannot be read the
   * request fails (503, the client retries): a conflict left unchecked
   * would be counted as stored by the client.
   */
  private async read(target: Target, ids: string[]): Promise<Map<string, Record<string, unknown>>> {
    const res = await this.http.request<{ rows?: Array<{ key?: string; doc?: Record<string, unknown> | null }> }>(
      'POST',
      `/${target.db}/_all_docs?include_docs=true`,
      { headers: target.headers, body: JSON.stringify({ keys: ids }) },
    );
    if (res.status !== 200) throw unavailable('COUCHDB_ERROR', `CouchDB failed to read back conflicting documents (${res.status}); retry`, this.retryAfterS);
    const out = new Map<string, Record<string, unknown>>();
    for (const row of res.body.rows ?? []) if (row.key !== undefined && row.doc) out.set(row.key, row.doc);
    return out;
  }
}
