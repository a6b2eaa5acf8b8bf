// Sends every output to every sink and remembers, until all of them have
// acknowledged it, from which feed positions it would have to be re-read:
// the checkpoint may not pass those positions before the acknowledgement.
import type { Output, Side } from '../engine/types.js';
import type { Sink } from './sink.js';

interface InFlight {
  A: number;
  B: number;
}

export class FanOut {
  private readonly inflight = new Set<InFlight>();
  private readonly running = new Set<Promise<void>>();

  constructor(readonly sinks: readonly Sink[]) {}

  write(outputs: Output[]): void {
    if (outputs.length === 0 || this.sinks.length === 0) return;
    const mark: InFlight = { A: Infinity, B: Infinity };
    for (const o of outputs) {
      if (o.replayFrom.A !== undefined && o.replayFrom.A < mark.A) mark.A = o.replayFrom.A;
      if (o.replayFrom.B !== undefined && o.replayFrom.B < mark.B) mark.B = o.replayFrom.B;
    }
    this.inflight.add(mark);
    const records = outputs.map((o) => ({ id: o.id, record: o.record }));
    const run = Promise.all(this.sinks.map((s) => s.write(records))).then(() => {
      this.inflight.delete(mark);
      this.running.delete(run);
    });
    this.running.add(run);
  }

  /** Smallest feed index of `side` some unacknowledged output depends on (Infinity: none). */
  oldestUnacked(side: Side): number {
    let min = Infinity;
    for (const m of this.inflight) if (m[side] < min) min = m[side];
    return min;
  }

  get full(): boolean {
    return this.sinks.some((s) => s.full);
  }

  get pending(): number {
    return this.inflight.size;
  }

  /** Waits until everything written so far is acknowledged, or `timeoutMs` passes. Returns true when all is acknowledged. */
  async drain(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const done = (async () => {
      while (this.running.size > 0) await Promise.all([...this.running]);
      return true;
    })();
    const ok = await Promise.race([done, timeout]);
    clearTimeout(timer);
    return ok;
  }

  async reopen(): Promise<void> {
    for (const s of this.sinks) await s.reopen?.();
  }
}
