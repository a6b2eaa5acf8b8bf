// Sends every batch of outputs to every sink and numbers the batches, so
// the pipeline knows when everything up to a point has been acknowledged by
// every sink: only then may a checkpoint taken at that point be saved.
import type { Output } from '../engine/types.js';
import type { Sink, SinkRecord } from './sink.js';

export class FanOut {
  private nextWrite = 1;
  private readonly unacked = new Set<number>();
  private readonly running = new Set<Promise<void>>();
  /** Per sink, its writes not yet acknowledged. */
  private readonly runningIn = new Map<Sink, Set<Promise<void>>>();

  constructor(readonly sinks: readonly Sink[]) {
    for (const s of sinks) this.runningIn.set(s, new Set());
  }

  write(outputs: Output[]): void {
    if (outputs.length === 0 || this.sinks.length === 0) return;
    const seq = this.nextWrite++;
    this.unacked.add(seq);
    const records = outputs.map((o): SinkRecord => ({
      id: o.id,
      record: o.record,
      version: o.version,
      deleted: o.kind === 'deleted',
      ...(o.formerTimes ? { formerTimes: o.formerTimes } : {}),
    }));
    const run = Promise.all(
      this.sinks.map((s) => {
        const mine = this.runningIn.get(s)!;
        const written = s.write(records).then(() => {
          mine.delete(written);
        });
        mine.add(written);
        return written;
      }),
    ).then(() => {
      this.unacked.delete(seq);
      this.running.delete(run);
    });
    this.running.add(run);
  }

  /** Resolves once every batch written so far is acknowledged by every sink, or by the one named. */
  async settled(sinkName?: string): Promise<void> {
    if (sinkName === undefined) {
      while (this.running.size > 0) await Promise.all([...this.running]);
      return;
    }
    for (const [s, mine] of this.runningIn) if (s.name === sinkName) while (mine.size > 0) await Promise.all([...mine]);
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
