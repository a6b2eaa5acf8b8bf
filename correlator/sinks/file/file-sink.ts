// JSON lines appended to a file; SIGHUP reopens it, so logrotate can move
// the file away and the next records go to a fresh one. What must stay true:
//  - a record is acknowledged once its line is on disk (fdatasync), never
//    before: the correlator saves checkpoints past acknowledged records;
//  - lines go out in the order written (one writer loop), so a correction
//    never lands before the line it corrects;
//  - what is waiting goes out together, one write and one fdatasync (group
//    commit), so syncing costs per burst, not per record;
//  - a failure (disk full, file removed) leaves no fragment (LineAppender),
//    is retried with backoff, logged and counted, and makes the sink full,
//    so the feeds stop being read instead of memory growing.
import type { Logger } from '../../../lib/logger.js';
import { RetrySchedule } from '../../../lib/retry.js';
import type { CorrelatorMetrics } from '../../metrics.js';
import type { Sink, SinkRecord } from '../sink.js';
import { LineAppender } from '../../../lib/line-appender.js';
import { recordLine } from '../record-line.js';

/** Records waiting beyond which the sink says it is full (the feeds pause). */
const MAX_WAITING = 10_000;

interface Waiting {
  text: string;
  count: number;
  done: () => void;
}

export interface FileSinkOptions {
  retryInitialMs: number;
  retryMaxMs: number;
}

export class FileSink implements Sink {
  readonly name = 'file';
  failingSince: number | null = null;
  private readonly file: LineAppender;
  private queue: Waiting[] = [];
  private waitingRecords = 0;
  /** The writer loop, while it runs. */
  private writing: Promise<void> | null = null;
  /** Shutdown gave up waiting: no more retries; what waits stays unacknowledged. */
  private abandoned = false;
  private wake: (() => void) | null = null;

  constructor(
    readonly path: string,
    private readonly metrics: CorrelatorMetrics,
    private readonly log: Logger,
    private readonly o: FileSinkOptions = { retryInitialMs: 200, retryMaxMs: 10_000 },
  ) {
    this.file = new LineAppender(path, { mode: 0o640, sync: true });
  }

  get backlog(): number {
    return this.waitingRecords;
  }

  get full(): boolean {
    return this.failingSince !== null || this.waitingRecords >= MAX_WAITING;
  }

  write(records: SinkRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    let text = '';
    for (const r of records) text += recordLine(r);
    return new Promise((done) => {
      this.queue.push({ text, count: records.length, done });
      this.waitingRecords += records.length;
      this.kick();
    });
  }

  /** Starts the writer loop unless it runs; a write that came as it ended starts it again. */
  private kick(): void {
    if (this.writing || this.abandoned) return;
    this.writing = this.writeAll().finally(() => {
      this.writing = null;
      if (this.queue.length > 0) this.kick();
    });
  }

  private async writeAll(): Promise<void> {
    while (this.queue.length > 0) {
      if (this.abandoned) return;
      const batch = this.queue;
      this.queue = [];
      if (!(await this.appendWithRetry(batch.map((w) => w.text).join('')))) return;
      for (const w of batch) {
        this.waitingRecords -= w.count;
        w.done();
        this.metrics.sinkWrites.inc({ sink: this.name }, w.count);
      }
      this.metrics.sinkBacklog.set({ sink: this.name }, this.waitingRecords);
    }
  }

  /** true once written; false when abandoned first. */
  private async appendWithRetry(text: string): Promise<boolean> {
    const retry = new RetrySchedule({ baseMs: this.o.retryInitialMs, maxMs: this.o.retryMaxMs });
    for (;;) {
      if (this.abandoned) return false;
      try {
        await this.file.append(text);
        if (this.failingSince !== null) this.log.info({ sink: this.name, file: this.path }, 'sink recovered');
        this.failingSince = null;
        return true;
      } catch (err) {
        this.failingSince ??= Date.now();
        this.metrics.sinkFailures.inc({ sink: this.name, kind: 'retry' });
        this.metrics.sinkRetries.inc({ sink: this.name });
        const delay = retry.failed()!;
        this.log.error({ sink: this.name, file: this.path, err: (err as Error).message, retryInMs: Math.round(delay) }, 'the file sink cannot write; retrying');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => ((this.wake = null), resolve()), delay);
          this.wake = () => {
            clearTimeout(timer);
            this.wake = null;
            resolve();
          };
        });
      }
    }
  }

  async reopen(): Promise<void> {
    await this.file.reopen();
  }

  abandon(): void {
    this.abandoned = true;
    this.wake?.();
  }

  async close(): Promise<void> {
    while (this.writing) await this.writing;
    await this.file.close();
  }
}
