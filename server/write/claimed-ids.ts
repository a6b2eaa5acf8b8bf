// A writer may choose its documents' `_id` (shippers and HEC clients do,
// so that a batch sent again stores nothing twice: a conflict means "stored
// already"). But ids share one namespace with every other writer, anonymous
// ones included, and a shipper's ids are predictable (source, offset, hash
// of the line): anyone could store a document under the id a real event
// will have, and the real event then answered "conflict", counted as
// stored, and was never stored. (Found by a black-box test: a forged
// document hid a "root login" line, and HEC acknowledged the real event.)
//
// So a conflict is checked: the stored document is read back and compared
// with the one sent (all fields but `received_at`, which each attempt
// stamps anew). The same content: a retry, nothing to do. Another content:
// the one sent is stored under `<id>~<tag>`, the tag an HMAC of (database,
// id, content) with a key only the ingress holds (ingress.id_tag_key, made
// once like a password). What must stay true:
//  - a document is answered conflict (which clients count as stored) only
//    when it, or the same content under its tagged id, is stored; when
//    that cannot be made sure, the request fails with 503 and is retried;
//  - both cases answer the same (409 conflict), so a writer learns nothing
//    about what is stored under an id it does not own: no content oracle;
//  - nobody but the ingress can make a tagged id (clients' ids of that form
//    are refused, validate-docs.ts) nor compute one (the key is not derived
//    from anything a writer could guess), so a conflict on a tagged id is
//    this same document, stored there by an earlier attempt;
//  - the read back is bounded by what was sent: a stored document much
//    larger than the one sent cannot be equal to it, so a tiny request
//    naming a huge stored document costs a small read, not the document.
import { createHmac } from 'node:crypto';
import type { CouchHttp } from '../../lib/couch/http.js';
import { CONFLICT, matchResults, type DocResult } from '../../lib/couch/bulk-results.js';
import { unavailable } from '../../lib/errors.js';
import { readAtMost } from '../../lib/read-at-most.js';
import type { LogDoc } from './validate-docs.js';
import { isStoredWrite } from '../../lib/couch/write-status.js';

interface Target {
  db: string;
  headers: Record<string, string>;
}

/** Bytes of stored documents read back beyond twice what was sent (an id, a rev, received_at and some slack). */
const READ_SLACK_BYTES = 64 * 1024;

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
  constructor(
    private readonly http: CouchHttp,
    /** ingress.id_tag_key: random, from secrets.env or the environment. */
    private readonly key: string,
    private readonly retryAfterS: number,
  ) {}

  /** Where a document whose id another document holds goes. */
  altId(db: string, doc: LogDoc & { _id: string }): string {
    const tag = createHmac('sha256', this.key)
      .update(`${db}\0${doc._id}\0${content(doc)}`)
      .digest('hex');
    return `${doc._id}~${tag.slice(0, 24)}`;
  }

  /**
   * `results`, with each conflict checked: another content is stored under
   * its tagged id, and answered conflict as a retry is. Returns how many
   * documents were moved.
   */
  async resolve(target: Target, docs: Array<LogDoc & { _id: string }>, results: DocResult[]): Promise<{ results: DocResult[]; moved: number }> {
    const conflicts: number[] = [];
    for (let i = 0; i < results.length; i++) {
      const r = results[i]!;
      if (!('ok' in r) && r.error === 'conflict') conflicts.push(i);
    }
    if (conflicts.length === 0) return { results, moved: 0 };
    let sent = 0;
    for (const i of conflicts) sent += JSON.stringify(docs[i]).length;
    const stored = await this.read(target, [...new Set(conflicts.map((i) => docs[i]!._id))], 2 * sent + READ_SLACK_BYTES);
    // Unread (over the budget, or not found on the copy asked): not known to be the same, so moved.
    const moved = conflicts.filter((i) => {
      const doc = stored?.get(docs[i]!._id);
      return doc === undefined || content(doc) !== content(docs[i]!);
    });
    if (moved.length === 0) return { results, moved: 0 };
    const alts = moved.map((i) => ({ ...docs[i]!, _id: this.altId(target.db, docs[i]!) }));
    const res = await this.http.request<unknown>('POST', `/${target.db}/_bulk_docs`, { headers: target.headers, body: JSON.stringify({ docs: alts }) });
    if (!isStoredWrite(res.status)) throw unavailable('COUCHDB_ERROR', `CouchDB failed a write (${res.status}); retry`, this.retryAfterS);
    const altResults = matchResults(alts, res.body);
    const out: DocResult[] = [...results];
    moved.forEach((i, k) => {
      const r = altResults[k]!;
      // Stored now, or by an earlier attempt (only this content can have this id): answered as a retry is.
      out[i] = 'ok' in r || r.error === 'conflict' ? { id: docs[i]!._id, ...CONFLICT } : { id: docs[i]!._id, error: r.error, reason: r.reason };
    });
    return { results: out, moved: altResults.filter((r) => 'ok' in r).length };
  }

  /**
   * The stored documents of these ids, read up to `budget` bytes: null when
   * there is more (some stored document is then much larger than anything
   * sent, so not the same). A failed read fails the request (503): a
   * conflict left unchecked would be counted as stored by the client.
   */
  private async read(target: Target, ids: string[], budget: number): Promise<Map<string, Record<string, unknown>> | null> {
    let text: string | null;
    let status: number;
    try {
      const res = await this.http.pool.request({
        method: 'POST',
        path: `/${target.db}/_all_docs?include_docs=true`,
        headers: { accept: 'application/json', 'content-type': 'application/json', ...target.headers },
        body: JSON.stringify({ keys: ids }),
      });
      status = res.statusCode;
      text = await readAtMost(res.body, budget);
    } catch (err) {
      throw this.http.unreachable(err);
    }
    if (text === null) return null;
    if (status !== 200) throw unavailable('COUCHDB_ERROR', `CouchDB failed to read back conflicting documents (${status}); retry`, this.retryAfterS);
    const body = JSON.parse(text) as { rows?: Array<{ key?: string; doc?: Record<string, unknown> | null }> };
    const out = new Map<string, Record<string, unknown>>();
    for (const row of body.rows ?? []) if (row.key !== undefined && row.doc) out.set(row.key, row.doc);
    return out;
  }
}
