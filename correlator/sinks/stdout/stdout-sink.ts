// JSON lines on standard output (for piping into another tool). What must
// stay true:
//  - a record is acknowledged once stdout took its line (the write's
//    callback without error), never on a failed write;
//  - a reader that stopped reading makes the sink full (the feeds pause)
//    instead of memory growing: stdout to a pipe is asynchronous in Node;
//  - a reader that went away (EPIPE) does not end the process (under
//    `couchlog up` the ingress would go with it): the sink fails, loudly
//    and for good (nothing it holds is acknowledged, so the checkpoint
//    keeps those records to be decided again after a restart), and /health
//    says so;
//  - the process's own log lines go to stderr while this sink is on
//    (scripts/couchlog.ts), so stdout carries records only.
import type { Logger } from '../../../lib/logger.js';
import type { CorrelatorMetrics } from '../../metrics.js';
import type { Sink, SinkRecord } from '../sink.js';
import { recordLine } from '../record-line.js';

type Out = NodeJS.WritableStream & { writableNeedDrain?: boolean };

export class StdoutSink implements Sink {
  readonly name = 'stdout';
  failingSince: number | null = null;
  private pending = 0;

  constructor(
    private readonly metrics: CorrelatorMetrics,
    private readonly log: Logger,
    private readonly out: Out = process.stdout,
  ) {
    out.on('error', (err: Error) => this.failed(err));
  }

  get backlog(): number {
    return this.pending;
  }

  get full(): boolean {
    return this.failingSince !== null || this.out.writableNeedDrain === true;
  }

  write(records: SinkRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    this.pending += records.length;
    let text = '';
    for (const r of records) text += recordLine(r);
    return new Promise((resolve) => {
      if (this.failingSince !== null) return; // never acknowledged: see above
      this.out.write(text, (err) => {
        if (err) {
          this.failed(err);
          return;
        }
        this.pending -= records.length;
        this.metrics.sinkWrites.inc({ sink: this.name }, records.length);
        resolve();
      });
    });
  }

  private failed(err: Error): void {
    if (this.failingSince !== null) return;
    this.failingSince = Date.now();
    this.metrics.sinkFailures.inc({ sink: this.name, kind: 'retry' });
    this.log.error(
      { sink: this.name, err: err.message },
      'standard output cannot be written (the reading end went away?): records wait undelivered; restart the correlator with a reader',
    );
  }

  async close(): Promise<void> {}
}
