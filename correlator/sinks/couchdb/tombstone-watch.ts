// Deleted records are looked at again once a CouchDB cluster has settled.
// CouchDB takes a write without _rev over a tombstone, and a cluster copy
// may apply a write late: when a coordinator gives up waiting for a slow
// copy it answers the client, but the update queued at that copy still
// happens. A provisional record written, then deleted by a correction, can
// so come back, live, seconds later (seen on a loaded 3-node cluster).
//
// What must stay true: every deletion the sink wrote is checked again after
// each of `delaysMs`; a check that finds the record live with content
// decided before the deletion deletes it again (CouchDbDelivery does that),
// one decided after it is a newer decision and is left alone.
import type { SinkRecord } from '../sink.js';

interface Watched {
  rec: SinkRecord;
  stage: number;
  due: number;
  /** Checks of it that failed in a row. */
  failed: number;
}

/** Failed checks in a row after which a deletion is no longer watched (its failures are reported each time). */
const MAX_FAILED_CHECKS = 60;

export class TombstoneWatch {
  private readonly watched = new Map<string, Watched>();

  constructor(
    private readonly delaysMs: readonly number[],
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.watched.size;
  }

  /** Deletions just written: checked after the first delay, then each next one. A later deletion of an id replaces the earlier. */
  add(deletions: readonly SinkRecord[]): void {
    if (this.delaysMs.length === 0) return;
    for (const rec of deletions) this.watched.set(rec.id, { rec, stage: 0, due: this.now() + this.delaysMs[0]!, failed: 0 });
  }

  /** Deletions whose check is due, each moved on to its next delay (or forgotten after the last). */
  takeDue(): SinkRecord[] {
    const now = this.now();
    const out: SinkRecord[] = [];
    for (const [id, w] of this.watched) {
      if (w.due > now) continue;
      out.push(w.rec);
      const next = w.stage + 1;
      if (next < this.delaysMs.length) this.watched.set(id, { ...w, stage: next, due: now + this.delaysMs[next]! - this.delaysMs[w.stage]! });
      else this.watched.delete(id);
    }
    return out;
  }

  /** A record written again after its deletion (a newer decision): nothing to watch. */
  forget(id: string): void {
    this.watched.delete(id);
  }

  /** Checks that could not be made: made again at the next tick, at most MAX_FAILED_CHECKS times in a row. Answers how many were given up. */
  retry(recs: readonly SinkRecord[]): number {
    let givenUp = 0;
    for (const rec of recs) {
      const w = this.watched.get(rec.id);
      const failed = (w?.rec === rec ? w.failed : 0) + 1;
      if (failed > MAX_FAILED_CHECKS) {
        this.watched.delete(rec.id);
        givenUp += 1;
      } else this.watched.set(rec.id, { rec, stage: w?.rec === rec ? w.stage : 0, due: this.now(), failed });
    }
    return givenUp;
  }
}
