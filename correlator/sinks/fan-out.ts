// Sends every batch of outputs to every sink and numbers the batches, so
// the pipeline knows when everything up to a point has been acknowledged by
// every sink: only then may a checkpoint taken at that point be saved.
import type { Output } from '../engine/types.js';
import type { Sink } from './sink.js';

export class FanOut {
  private nextWrite = 1;
  private readonly unacked = new Set<number>();
  private readonly running = new Set<Promise<void>>();

  constructor(readonly sinks: readonly Sink[]) {}

  write(outputs: Output[]): void {
    if (outputs.length === 0 || this.sinks.length === 0) return;
    const seq = this.nextWrite++;
    this.unacked.add(seq);
    const records = outputs.map((o) => ({ id: o.id, record: o.record, version: o.version, deleted: o.kind === 'deleted' }));
    const run = Promise.all(this.sinks.map((s) => s.write(records))).then(() => {
      this.unacked.delete(seq);
      this.running.delete(run);
    });
    this.running.add(run);
  }

  /** Resolves once every batch written so far is acknowledged by every sink. */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  /** The number of the latest batch written. */
  get lastWrite(): number {
    return this.nextWrite - 1;
  }

  /** Every batch numbered up to this has been acknowledged by every sink. */
  get ackedThrough(): number {
    let min = this.nextWrite;
    for (const seq of this.unacked) if (seq < min) min = seq;
    return min - 1;
  }

  get full(): boolean {
    return this.sinks.some((s) => s.full);
  }

  get pending(): number {
    return this.unacked.size;
  }

  async reopen(): Promise<void> {
    for (const s of this.sinks) await s.reopen?.();
  }
}
