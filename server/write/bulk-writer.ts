// Sends documents to CouchDB with one `_bulk_docs` and hands each document
// its own result, in the order it was given.
import type { CouchHttp } from '../../lib/couch/http.js';
import { CouchlogError, unavailable, type CouchErrorName } from '../../lib/errors.js';
import { matchResults, type DocResult } from '../../lib/couch/bulk-results.js';
import type { Metrics } from '../plugins/metrics.js';
import type { LogDoc } from './validate-docs.js';

export { matchResults, CONFLICT, type DocResult } from '../../lib/couch/bulk-results.js';

export interface WriteTarget {
  db: string;
  /** The caller's own credential headers, or the writer's. */
  headers: Record<string, string>;
  /** True when `headers` are the ingress's writer: a 401 then is our misconfiguration. */
  asWriter: boolean;
}

export class BulkWriter {
  constructor(
    private readonly http: CouchHttp,
    private readonly metrics: Metrics,
    private readonly retryAfterS: number,
  ) {}

  /** Every doc must carry an `_id`: results are matched to documents by id. */
  async write(target: WriteTarget, docs: Array<LogDoc & { _id: string }>, kind: 'group' | 'bulk'): Promise<DocResult[]> {
    this.metrics.batchSize.observe({ kind }, docs.length);
    const stop = this.metrics.couchLatency.startTimer({ op: 'bulk_docs' });
    let res;
    try {
      res = await this.http.request<unknown>('POST', `/${target.db}/_bulk_docs`, {
        headers: target.headers,
        body: JSON.stringify({ docs }),
      });
    } catch (err) {
      stop({ outcome: 'unreachable' });
      this.metrics.documents.inc({ db: target.db, result: 'unavailable' }, docs.length);
      throw err;
    }
    stop({ outcome: String(res.status) });
    if (res.status !== 201 && res.status !== 202) {
      this.metrics.documents.inc({ db: target.db, result: 'refused' }, docs.length);
      throw this.requestError(target, res.status, res.body);
    }
    const results = matchResults(docs, res.body);
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
      return unavailable('INGRESS_WRITER_REFUSED', `the ingress's writer account was refused by CouchDB (${b.reason ?? status}); run couchlog setup`, this.retryAfterS);
    }
    if (status >= 500) {
      return unavailable('COUCHDB_ERROR', `CouchDB failed: ${b.reason ?? status}`, this.retryAfterS);
    }
    const name = (b.error ?? 'bad_request') as CouchErrorName;
    return new CouchlogError(`COUCHDB_${name.toUpperCase()}`, status, name, b.reason ?? `CouchDB answered ${status}`);
  }
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
