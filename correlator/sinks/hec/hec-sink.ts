// Correlated records to a Splunk HTTP Event Collector (output splunk_hec),
// with the sender `couchlog forward` uses (lib/hec/hec-sender.ts): a
// batch counts as delivered once HEC answered code 0 and, when the target
// acknowledges, its ack came back true. HEC has no ids and no updates, so
// every write of a record is a new event carrying the record's id: a
// correction is the same `id` with a higher `revision`, a deleted
// provisional record an event with `deleted: true` (search with
// `| dedup id sortby -revision` and drop the deleted ones).
import { HecSender, RefusedError, RetryableSendError, type HecSenderOptions } from '../../../lib/hec/hec-sender.js';
import type { Delivery } from '../batching-sink.js';
import type { FailureKind, SinkRecord } from '../sink.js';

export interface HecSinkMapping {
  index: string | null;
  source: string;
  sourcetype: string;
}

/** The HEC envelope of a correlated record: the record (plus `id`, `deleted`) is the event. */
export function hecEnvelopeOf(r: SinkRecord, m: HecSinkMapping): Record<string, unknown> {
  const env: Record<string, unknown> = {};
  const ts = r.record.timestamp;
  const ms = typeof ts === 'string' ? Date.parse(ts) : typeof ts === 'number' ? ts : NaN;
  if (Number.isFinite(ms)) env.time = ms / 1000;
  if (typeof r.record.host === 'string' && r.record.host !== '') env.host = r.record.host;
  env.source = m.source;
  env.sourcetype = m.sourcetype;
  if (m.index !== null) env.index = m.index;
  env.event = r.deleted ? { ...r.record, id: r.id, deleted: true } : { ...r.record, id: r.id };
  return env;
}

export class HecDelivery implements Delivery {
  private readonly sender: HecSender;

  constructor(
    options: HecSenderOptions,
    private readonly mapping: HecSinkMapping,
  ) {
    this.sender = new HecSender(options);
  }

  async deliver(batch: SinkRecord[]): Promise<void> {
    await this.sender.send(batch.map((r) => JSON.stringify(hecEnvelopeOf(r, this.mapping))));
  }

  classify(err: unknown): FailureKind {
    if (err instanceof RefusedError) return 'permanent';
    return err instanceof RetryableSendError && err.operatorMustFix ? 'config' : 'retry';
  }

  retryAfterMs(err: unknown): number | null {
    return err instanceof RetryableSendError ? err.retryAfterMs : null;
  }

  async close(): Promise<void> {
    await this.sender.close();
  }
}
