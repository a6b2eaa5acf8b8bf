// Correlated records into CouchDB (log_correlated), with their
// deterministic ids as _id: a conflict means "already written", so a replay
// after a crash stores nothing twice.
import type { CouchHttp } from '../../lib/couch/http.js';
import { matchResults } from '../../lib/couch/bulk-results.js';
import type { Delivery } from './batching-sink.js';
import type { FailureKind, SinkRecord } from './sink.js';

/** Some documents were refused for a reason retrying cannot fix. */
export class PermanentDeliveryError extends Error {
  override readonly name = 'PermanentDeliveryError';
}

/** CouchDB refuses top-level fields starting with "_" other than its own. */
function toDoc(r: SinkRecord): Record<string, unknown> {
  const doc: Record<string, unknown> = { _id: r.id };
  const rec = r.record;
  for (const k in rec) if (k.charCodeAt(0) !== 95 /* _ */) doc[k] = rec[k];
  return doc;
}

export class CouchDbDelivery implements Delivery {
  constructor(
    private readonly http: CouchHttp,
    private readonly db: string,
    private readonly headers: Record<string, string>,
  ) {}

  async deliver(batch: SinkRecord[]): Promise<void> {
    const docs = batch.map(toDoc) as Array<{ _id: string }>;
    const res = await this.http.request<unknown>('POST', `/${encodeURIComponent(this.db)}/_bulk_docs`, {
      headers: this.headers,
      body: JSON.stringify({ docs }),
    });
    if (res.status === 400 || res.status === 413) throw new PermanentDeliveryError(`CouchDB refused the batch: ${res.status} ${JSON.stringify(res.body)}`);
    if (res.status !== 201 && res.status !== 202) throw new Error(`CouchDB answered ${res.status}: ${JSON.stringify(res.body)}`);
    const refused = matchResults(docs, res.body).filter((r) => 'error' in r && r.error !== 'conflict');
    if (refused.length > 0) {
      const first = refused[0] as { id: string; error: string; reason: string };
      throw new PermanentDeliveryError(`${refused.length} document(s) refused, e.g. ${first.id}: ${first.error} ${first.reason}`);
    }
  }

  classify(err: unknown): FailureKind {
    return err instanceof PermanentDeliveryError ? 'permanent' : 'retry';
  }
}
