// Batching, retries and overflow shared by the sinks that talk to a server.
// The adapter only says how to deliver one batch and whether a failure is
// worth retrying; what must stay true here:
//  - a record is acknowledged only after delivery, dead-lettering or a
//    counted drop (drop_on_overflow);
//  - retriable failures back off exponentially with jitter (or as long as
//    the server's Retry-After asks), forever but loudly (log, metrics,
//    failingSince for /health); a refusal of our setup (`config`) is retried
//    the same way and logged as an error: it never dead-letters a stream;
//  - a permanent failure of a batch is narrowed down by halving it, so one
//    bad record does not dead-letter its neighbours (and a big batch with
//    one bad record costs about 2·log2(n) requests, not n);
//  - a batch is `batchSize` records while the sink keeps up; when more are
//    already waiting (a backlog: catching up, or the server slower than the
//    feed), they go together, up to `maxBatchSize`: servers like ClickHouse
//    pay per request (one part per INSERT), so a backlog drains in fewer,
//    larger writes;
//  - at most `concurrency` batches are in flight. Batches may then be
//    acknowledged out of order, which is safe because every record has a
//    deterministic id (a re-write is harmless) and the fan-out only lets a
//    checkpoint be saved once everything before it is acknowledged;
//  - but two writes of the SAME id go in the order they were written: a
//    batch waits, before its first attempt, until every earlier batch
//    holding one of its ids is acknowledged (retries included). A
//    correction, or the deletion of a provisional record, never lands
//    before the record it replaces.
import type { Logger } from '../../lib/logger.js';
import type { CorrelatorMetrics } from '../metrics.js';
import type { FailureKind, Sink, SinkRecord } from './sink.js';
import { DeadLetterFile } from './dead-letter-file.js';
import { inHalves, RetrySchedule } from '../../lib/retry.js';

export interface BatchingOptions {
  batchSize: number;
  /** Records per request while a backlog waits (>= batchSize; equal: no merging). */
  maxBatchSize: number;
  /** Batches in flight at once (>= 1): keeps the server busy while the next batch is prepared. */
  concurrency: number;
  flushIntervalMs: number;
  maxBufferSize: number;
  dropOnOverflow: boolean;
  retryInitialMs: number;
  retryMaxMs: number;
}

export interface Delivery {
  deliver(batch: SinkRecord[]): Promise<void>;
  classify(err: unknown): FailureKind;
  /** Optional: how long the server asked us to wait (Retry-After), in ms. */
  retryAfterMs?(err: unknown): number | null;
  /** Optional: release connections. */
  close?(): Promise<void>;
}

interface Item {
  rec: SinkRecord;
  done: () => void;
}

export class BatchingSink implements Sink {
  private queue: Item[] = [];
  /** The batches in flight. */
  private readonly sending = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Shutdown gave up waiting (abandon()): nothing more is tried, nothing more acknowledged. */
  private abandoned = false;
  private readonly wakers = new Set<() => void>();
  private inflight = 0;
  /** Dropping since the last write that was taken whole (drop_on_overflow). */
  private dropping = false;
  /** Per record id, the latest batch holding it that is not acknowledged yet. */
  private readonly lastBatchOf = new Map<string, Promise<void>>();
  failingSince: number | null = null;

  constructor(
    readonly name: string,
    private readonly delivery: Delivery,
    private readonly opts: BatchingOptions,
    private readonly deadLetter: DeadLetterFile,
    private readonly metrics: CorrelatorMetrics,
    private readonly log: Logger,
  ) {}

  get backlog(): number {
    return this.queue.length + this.inflight;
  }

  get full(): boolean {
    return !this.opts.dropOnOverflow && this.backlog >= this.opts.maxBufferSize;
  }

  write(records: SinkRecord[]): Promise<void> {
    const accepted: Array<Promise<void>> = [];
    let dropped = 0;
    for (const rec of records) {
      if (this.opts.dropOnOverflow && this.backlog >= this.opts.maxBufferSize) {
        dropped++;
        continue;
      }
      accepted.push(new Promise<void>((done) => this.queue.push({ rec, done })));
    }
    if (dropped > 0) {
      this.metrics.sinkDropped.inc({ sink: this.name }, dropped);
      // Once per overflow, not per record: the counter has the number.
      if (!this.dropping)
        this.log.warn(
          { sink: this.name, backlog: this.backlog },
          this.name === 'clickhouse'
            ? 'buffer full: dropping records (drop_on_overflow); couchlog backfill copies them from log_correlated later'
            : 'buffer full: dropping records (drop_on_overflow)',
        );
      this.dropping = true;
    } else if (accepted.length > 0) {
      this.dropping = false;
    }
    this.metrics.sinkBacklog.set({ sink: this.name }, this.backlog);
    this.schedule();
    return Promise.all(accepted).then(() => undefined);
  }

  /**
   * Full batches go at once while a slot is free; a partial one goes after
   * flush_interval_ms (at once when closing).
   */
  private schedule(): void {
    while (this.sending.size < this.opts.concurrency && this.queue.length > 0) {
      if (this.queue.length < this.opts.batchSize && !this.closed) {
        this.timer ??= setTimeout(() => {
          this.timer = null;
          if (this.queue.length > 0 && this.sending.size < this.opts.concurrency) this.send();
          this.schedule();
        }, this.opts.flushIntervalMs);
        return;
      }
      this.send();
    }
  }

  private send(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const backlog = this.queue.length > this.opts.batchSize;
    const batch = this.queue.splice(0, backlog ? Math.max(this.opts.batchSize, this.opts.maxBatchSize) : this.opts.batchSize);
    this.inflight += batch.length;
    const before = new Set<Promise<void>>();
    for (const item of batch) {
      const p = this.lastBatchOf.get(item.rec.id);
      if (p) before.add(p);
    }
    const records = batch.map((i) => i.rec);
    const sent: Promise<void> = (before.size > 0 ? Promise.all(before).then(() => this.deliverWithRetry(records)) : this.deliverWithRetry(records)).then(
      () => {
        for (const item of batch) if (this.lastBatchOf.get(item.rec.id) === sent) this.lastBatchOf.delete(item.rec.id);
        this.inflight -= batch.length;
        this.sending.delete(sent);
        for (const item of batch) item.done();
        this.metrics.sinkWrites.inc({ sink: this.name }, batch.length);
        this.metrics.sinkBacklog.set({ sink: this.name }, this.backlog);
        this.schedule();
      },
      (err: unknown) => {
        // Abandoned: the records stay unacknowledged (the checkpoint keeps them for the next start).
        if (err !== ABANDONED) throw err;
        this.sending.delete(sent);
      },
    );
    this.sending.add(sent);
    for (const item of batch) this.lastBatchOf.set(item.rec.id, sent);
  }

  /** Delivers the batch, or dead-letters the records that can never be delivered. */
  private async deliverWithRetry(batch: SinkRecord[]): Promise<void> {
    const retry = new RetrySchedule({ baseMs: this.opts.retryInitialMs, maxMs: this.opts.retryMaxMs });
    for (;;) {
      if (this.abandoned) throw ABANDONED;
      try {
        await this.delivery.deliver(batch);
        if (this.failingSince !== null) this.log.info({ sink: this.name }, 'sink recovered');
        this.failingSince = null;
        return;
      } catch (err) {
        const kind = this.delivery.classify(err);
        this.metrics.sinkFailures.inc({ sink: this.name, kind });
        if (kind === 'permanent') {
          await this.narrowDown(batch, err);
          return;
        }
        this.failingSince ??= Date.now();
        this.metrics.sinkRetries.inc({ sink: this.name });
        const delay = retry.failed(this.delivery.retryAfterMs?.(err) ?? null)!;
        const fields = { sink: this.name, err: (err as Error).message, retryInMs: Math.round(delay), records: batch.length };
        if (kind === 'config')
          this.log.error(fields, 'the sink refuses our setup (credentials, permissions, schema or URL): fix it; the records wait and are retried');
        else this.log.warn(fields, 'sink write failed; retrying');
        await this.pause(delay);
      }
    }
  }

  private async narrowDown(batch: SinkRecord[], err: unknown): Promise<void> {
    if (batch.length === 1) {
      await this.setAside(batch[0]!, err);
      return;
    }
    await inHalves(batch, (part) => this.deliverWithRetry(part));
  }

  /**
   * Writes a refused record to the dead-letter file. A record is never
   * dropped because that file cannot be written (disk full, permissions):
   * it is retried with backoff, loudly, until it can.
   */
  private async setAside(rec: SinkRecord, err: unknown): Promise<void> {
    const retry = new RetrySchedule({ baseMs: this.opts.retryInitialMs, maxMs: this.opts.retryMaxMs });
    for (;;) {
      if (this.abandoned) throw ABANDONED;
      try {
        await this.deadLetter.add(this.name, rec, err);
        // The server answered and the file took the record: healthy again.
        this.failingSince = null;
        break;
      } catch (fileErr) {
        this.failingSince ??= Date.now();
        const delay = retry.failed()!;
        this.log.error(
          { sink: this.name, id: rec.id, file: this.deadLetter.path, err: (fileErr as Error).message, retryInMs: Math.round(delay) },
          'the dead-letter file cannot be written; retrying',
        );
        await this.pause(delay);
      }
    }
    this.metrics.sinkDeadLetters.inc({ sink: this.name });
    this.log.error({ sink: this.name, id: rec.id, err: (err as Error).message }, 'record refused for good; written to the dead-letter file');
  }

  /** Waits ms, or less if abandon() is called meanwhile. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  abandon(): void {
    this.abandoned = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const wake of [...this.wakers]) wake();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.schedule();
    while (this.sending.size > 0) {
      await Promise.all(this.sending);
      this.schedule();
    }
    await this.delivery.close?.();
    await this.deadLetter.close();
  }
}

/** What a retry loop throws once the sink is abandoned: its records are not acknowledged. */
const ABANDONED = new Error('abandoned at shutdown');
