// Sends batches to the ingress, a few at a time, until each document has an
// outcome: stored, already stored (409: an earlier attempt got through), or
// rejected (the ingress refuses it; it goes to the reject file). What must
// stay true:
// - connection errors, timeouts, 429 and 5xx are retried with backoff and
//   jitter (Retry-After honoured), never forever: a batch that has made no
//   progress for retryForMs ends the run with GiveUpError;
// - a refused batch (400/403/413: the ingress refuses a request whole when
//   one document breaks a rule) is split in halves until the culprits are
//   single documents, which are rejected; the others are stored;
// - a fatal answer (401, 404: wrong URL or credentials) ends the run at once;
// - after the first failure no new batch starts and sleeping retries stop.
import { setTimeout as sleep } from 'node:timers/promises';
import { OperationError, InterruptedError } from '../lib/errors.js';
import { inHalves, RetrySchedule, type BackoffOptions } from '../lib/retry.js';
import type { IngressClient } from './ingress-client.js';

export interface OutDoc<U> {
  id: string;
  /** The document's JSON text, with its _id. */
  json: string;
  unit: U;
}

export type Outcome = { kind: 'stored' } | { kind: 'exists' } | { kind: 'rejected'; reason: string };

export interface SenderOptions<U> {
  concurrency: number;
  retryForMs: number;
  backoff: BackoffOptions;
  onOutcome: (doc: OutDoc<U>, outcome: Outcome) => void;
  /** Told about each wait (for --verbose). */
  onRetry?: (reason: string, delayMs: number) => void;
  signal?: AbortSignal;
}

/** The ingress refused for good (a fatal answer), or retries ran out. */
export class GiveUpError extends OperationError {
  override readonly name = 'GiveUpError';
}

export class Sender<U> {
  private readonly inflight = new Set<Promise<void>>();
  private failure: Error | null = null;
  private readonly abort = new AbortController();
  /** Documents sent again after a retryable failure (for the summary). */
  retries = 0;

  constructor(
    private readonly client: IngressClient,
    private readonly o: SenderOptions<U>,
  ) {
    o.signal?.addEventListener('abort', () => this.fail(new InterruptedError()), { once: true });
  }

  /** Starts sending `batch`; waits first while `concurrency` batches are in flight. */
  async submit(batch: Array<OutDoc<U>>): Promise<void> {
    while (this.inflight.size >= this.o.concurrency && this.failure === null) await Promise.race(this.inflight);
    if (this.failure) throw this.failure;
    if (batch.length === 0) return;
    const p: Promise<void> = this.send(batch)
      .catch((err: unknown) => this.fail(err as Error))
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  /** Waits for every batch; throws the first failure. */
  async drain(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
    if (this.failure) throw this.failure;
  }

  get failed(): Error | null {
    return this.failure;
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.abort.abort();
  }

  private async send(docs: Array<OutDoc<U>>): Promise<void> {
    let pending = docs;
    const retry = new RetrySchedule({ ...this.o.backoff, giveUpAfterMs: this.o.retryForMs });
    while (pending.length > 0) {
      if (this.failure) throw this.failure;
      let answer;
      try {
        answer = await this.client.send(
          pending.map((d) => d.json),
          pending.map((d) => d.id),
          this.abort.signal,
        );
      } catch (err) {
        if (this.failure) throw this.failure;
        throw err;
      }
      if (answer.kind === 'fatal') throw new OperationError(`${this.client.target.display}: ${answer.reason}`);
      if (answer.kind === 'refused') {
        if (pending.length === 1) {
          this.o.onOutcome(pending[0]!, { kind: 'rejected', reason: answer.reason });
          return;
        }
        await inHalves(pending, (part) => this.send(part));
        return;
      }
      let reason: string;
      let retryAfter: number | null = null;
      if (answer.kind === 'results') {
        const again: Array<OutDoc<U>> = [];
        answer.results.forEach((r, i) => {
          const doc = pending[i]!;
          if (r.kind === 'retry') again.push(doc);
          else this.o.onOutcome(doc, r.kind === 'rejected' ? { kind: 'rejected', reason: `${r.error}: ${r.reason}` } : r);
        });
        if (again.length < pending.length) retry.succeeded();
        pending = again;
        if (pending.length === 0) return;
        reason = 'the ingress could not say whether some documents were stored';
      } else {
        reason = answer.reason;
        retryAfter = answer.retryAfterMs;
      }
      // The last attempt comes at the deadline, not after it.
      const delay = retry.failed(retryAfter);
      if (delay === null) {
        throw new GiveUpError(
          `gave up after ${(retry.failingForMs / 1000).toFixed(1)} s of failures (${retry.failures} attempts): ${this.client.target.display}: ${reason}`,
        );
      }
      this.retries += pending.length;
      this.o.onRetry?.(reason, delay);
      try {
        await sleep(delay, undefined, { signal: this.abort.signal });
      } catch {
        throw this.failure ?? new InterruptedError();
      }
    }
  }
}
