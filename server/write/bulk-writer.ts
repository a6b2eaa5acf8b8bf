// Sends documents to CouchDB with one `_bulk_docs` and hands each document
// its own result, in the order it was given.
import type { CouchHttp } from '../../lib/couch/http.js';
import { couchdbRefusal, unavailable, type CouchlogError } from '../../lib/errors.js';
import { matchResults, type DocResult } from '../../lib/couch/bulk-results.js';
import type { Metrics } from '../plugins/metrics.js';
import type { LogDoc } from './validate-docs.js';
import type { ClaimedIds } from './claimed-ids.js';
import { isStoredWrite } from '../../lib/couch/write-status.js';

export { matchResults, CONFLICT, type DocResult } from '../../lib/couch/bulk-results.js';

export interface WriteTarget {
  db: string;
  /** The caller's own credential headers, or the writer's. */
  headers: Record<string, string>;
  /** True when `headers` are the ingress's writer: a 401 then is our misconfiguration. */
  asWriter: boolean;
}

/**
 * Results, and whether CouchDB answered 202 Accepted: a cluster stored the
 * documents on fewer copies than its write quorum so far (the others catch
 * up once they are back). The ingress passes that on as its own 202, as
 * CouchDB does, so a client can tell a write that is not yet durable.
 */
export interface Written<T> {
  results: T;
  accepted: boolean;
}

export class BulkWriter {
  constructor(
    private readonly http: CouchHttp,
    private readonly metrics: Metrics,
    private readonly retryAfterS: number,
    /** Conflicts over another document's content (an id taken ahead): see claimed-ids.ts. */
    private readonly claims: ClaimedIds,
  ) {}

  /** Every doc must carry an `_id`: results are matched to documents by id. */
  async write(target: WriteTarget, docs: Array<LogDoc & { _id: string }>, kind: 'group' | 'bulk'): Promise<Written<DocResult[]>> {
    const res = await this.post(target, docs, kind, false);
    return { results: await this.checked(target, docs, this.resultsOf(target, docs, res.body)), accepted: res.status === 202 };
  }

  private async checked(target: WriteTarget, docs: Array<LogDoc & { _id: string }>, results: DocResult[]): Promise<DocResult[]> {
    const { results: out, moved } = await this.claims.resolve(target, docs, results);
    if (moved > 0) this.metrics.idsTaken.inc({ db: target.db }, moved);
    return out;
  }

  /**
   * write() for an answer that goes straight back to the client: the JSON
   * text of the results. When CouchDB's answer already is that text (every
   * document stored, in order: the usual case) it is passed on as it came,
   * without building and serialising a result per document again.
   */
  async writeAnswer(target: WriteTarget, docs: Array<LogDoc & { _id: string }>, kind: 'group' | 'bulk'): Promise<Written<string | DocResult[]>> {
    const res = await this.post(target, docs, kind, true);
    const accepted = res.status === 202;
    const text = res.text === undefined ? null : verbatimAnswer(docs, res.body, res.text);
    if (text === null) return { results: await this.checked(target, docs, this.resultsOf(target, docs, res.body)), accepted };
    this.metrics.documents.inc({ db: target.db, result: 'ok' }, docs.length);
    return { results: text, accepted };
  }

  private async post(target: WriteTarget, docs: Array<LogDoc & { _id: string }>, kind: 'group' | 'bulk', keepText: boolean) {
    this.metrics.batchSize.observe({ kind }, docs.length);
    const stop = this.metrics.couchLatency.startTimer({ op: 'bulk_docs' });
    let res;
    try {
      res = await this.http.request<unknown>('POST', `/${target.db}/_bulk_docs`, {
        headers: target.headers,
        body: JSON.stringify({ docs }),
        keepText,
      });
    } catch (err) {
      stop({ outcome: 'unreachable' });
      this.metrics.documents.inc({ db: target.db, result: 'unavailable' }, docs.length);
      throw err;
    }
    stop({ outcome: String(res.status) });
    if (!isStoredWrite(res.status)) {
      const err = this.requestError(target, res.status, res.body);
      // A group-commit batch refused for one document CouchDB names is sent again without it
      // (group-commit.ts): the others are counted when that request settles.
      const named = kind === 'group' && docs.length > 1 ? tooLargeDocumentOf(err) : null;
      const resent = named !== null && docs.some((d) => d._id === named);
      this.metrics.documents.inc({ db: target.db, result: 'refused' }, resent ? 1 : docs.length);
      throw err;
    }
    return res;
  }

  private resultsOf(target: WriteTarget, docs: Array<{ _id: string }>, body: unknown): DocResult[] {
    const results = matchResults(docs, body);
    // One labelled increment per outcome, not per document (hot path).
    const counts = new Map<string, number>();
    for (const r of results) {
      const result = 'ok' in r ? 'ok' : r.error;
      counts.set(result, (counts.get(result) ?? 0) + 1);
    }
    for (const [result, n] of counts) this.metrics.documents.inc({ db: target.db, result }, n);
    return results;
  }

  private requestError(target: WriteTarget, status: number, body: unknown): CouchlogError {
    const b = (body ?? {}) as { error?: string; reason?: string };
    if (target.asWriter && (status === 401 || status === 403)) {
      // The ingress's own writer was refused: setup has not run, or the
      // password changed. Clients should retry once an operator fixes it.
      return unavailable(
        'INGRESS_WRITER_REFUSED',
        `the ingress's writer account was refused by CouchDB (${b.reason ?? status}); run couchlog setup`,
        this.retryAfterS,
      );
    }
    if (status >= 500) {
      return unavailable('COUCHDB_ERROR', `CouchDB failed: ${b.reason ?? status}`, this.retryAfterS);
    }
    // CouchDB names only the document's id for this one.
    if (status === 413 && b.error === 'document_too_large') return documentTooLarge(String(b.reason ?? ''));
    return couchdbRefusal(status, b.reason ?? `CouchDB answered ${status}`);
  }
}

const TOO_LARGE_ID = Symbol('document CouchDB refused as over its max_document_size');

/** CouchDB's 413 for one document of a `_bulk_docs` over its max_document_size (it names the document's id). */
export function documentTooLarge(id: string): CouchlogError {
  return Object.assign(couchdbRefusal(413, `document ${id} is larger than CouchDB's max_document_size`), { [TOO_LARGE_ID]: id });
}

/** The id of the one document CouchDB refused a whole `_bulk_docs` for (413 document_too_large), if that is what `err` is. */
export function tooLargeDocumentOf(err: unknown): string | null {
  const id = (err as { [TOO_LARGE_ID]?: unknown } | null)?.[TOO_LARGE_ID];
  return typeof id === 'string' ? id : null;
}

/** Length of {"ok":true,"id":"","rev":""} with no space: an ok result's text, less its id and rev. */
const OK_RESULT_CHARS = 28;

/**
 * `text` without its final newline when it is, character for character,
 * what JSON.stringify(matchResults(docs, body)) would give, else null.
 * `body` is `text` parsed. It must hold one ok result per document with
 * the document's id, in the documents' order; then `text` is exactly
 * that serialisation when it is no longer than its shortest possible
 * spelling (no space, no escape, no extra or repeated member: anything
 * else only adds characters) and each result lists ok, id, rev in that
 * order (checked at the one place each result can then start).
 */
export function verbatimAnswer(docs: Array<{ _id: string }>, body: unknown, text: string): string | null {
  if (!Array.isArray(body) || body.length !== docs.length || docs.length === 0) return null;
  let end = text.length;
  if (text.charCodeAt(end - 1) === 0x0a) end--;
  let shortest = 1 + docs.length; // brackets and commas
  for (let i = 0; i < docs.length; i++) {
    const raw = body[i] as { ok?: unknown; id?: unknown; rev?: unknown } | null;
    if (raw === null || typeof raw !== 'object' || raw.ok !== true) return null;
    const id = docs[i]!._id;
    const rev = raw.rev;
    if (raw.id !== id || typeof rev !== 'string') return null;
    shortest += OK_RESULT_CHARS + id.length + rev.length;
  }
  if (shortest !== end) return null;
  // {"ok":true,"id":… : "o" two characters in, "i" twelve in.
  let pos = 1;
  for (let i = 0; i < docs.length; i++) {
    if (text.charCodeAt(pos + 2) !== 0x6f || text.charCodeAt(pos + 12) !== 0x69) return null;
    pos += OK_RESULT_CHARS + 1 + docs[i]!._id.length + (body[i] as { rev: string }).rev.length;
  }
  return end === text.length ? text : text.slice(0, end);
}

/** The HTTP status CouchDB uses for a single document's error. */
export function statusOfError(error: string): number {
  switch (error) {
    case 'conflict':
      return 409;
    case 'forbidden':
      return 403;
    case 'unauthorized':
      return 401;
    case 'not_found':
      return 404;
    case 'unknown':
      // CouchDB said nothing about this document: it may or may not be
      // stored, so the client should retry (a retry with its own _id is safe).
      return 503;
    default:
      return 400;
  }
}
