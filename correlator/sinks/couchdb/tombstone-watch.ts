// Deleted records are looked at again once a CouchDB cluster has settled.
// CouchDB takes a write without _rev over a tombstone, and a cluster copy
// may apply a write late: when a coordinator gives up waiting for a slow
// copy it answers the client, but the update queued at that copy still
// happens. A provisional record written, then deleted by a correction, can
// so come back, live, seconds later (seen on a loaded 3-node cluster).
//
// What must stay true: every deletion the sink wrote is checked again after
// each of `delaysMs`, also when a newer decision of the record was written
// since (a late copy can leave the earlier content as a branch beside it);
// a check deletes every live branch but the newest decision made after the
// deletion (CouchDbDelivery does that).
import type { SinkRecord } from '../sink.js';

interface Watched {
  rec: SinkRecord;
  /** The check to make next (an index into the delays). */
  stage: number;
  due: number;
  /** Checks of it that failed in a row. */
  failed: number;
  /** Taken by takeDue and not yet reported back (checked or retry). */
  inFlight: boolean;
}

/** Failed checks in a row after which a deletion is no longer watched (its failures are reported each time). */
const MAX_FAILED_CHECKS = 60;

/**
 * Deletions under watch. A check is taken (takeDue), then reported back:
 * checked() moves it on to its next delay (or forgets it after the last),
 * retry() makes it due again at once and counts the failure. A report about
 * a deletion that was replaced meanwhile (a later deletion of the id) is
 * ignored, so a slow check never brings an older deletion back.
 */
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
    for (const rec of deletions) this.watched.set(rec.id, { rec, stage: 0, due: this.now() + this.delaysMs[0]!, failed: 0, inFlight: false });
  }

  /** Deletions whose check is due (each taken once until reported back). */
  takeDue(): SinkRecord[] {
    const now = this.now();
    const out: SinkRecord[] = [];
    for (const w of this.watched.values()) {
      if (w.inFlight || w.due > now) continue;
      w.inFlight = true;
      out.push(w.rec);
    }
    return out;
  }

  /** Checks made: each moves on to its next delay, or is forgotten after the last. */
  checked(recs: readonly SinkRecord[]): void {
    for (const rec of recs) {
      const w = this.current(rec);
      if (!w) continue;
      const next = w.stage + 1;
      if (next >= this.delaysMs.length) {
        this.watched.delete(rec.id);
        continue;
      }
      Object.assign(w, { stage: next, due: this.now() + this.delaysMs[next]! - this.delaysMs[w.stage]!, failed: 0, inFlight: false });
    }
  }

  /** Checks that could not be made: made again at the next tick, at most MAX_FAILED_CHECKS times in a row. Answers how many were given up. */
  retry(recs: readonly SinkRecord[]): number {
    let givenUp = 0;
    for (const rec of recs) {
      const w = this.current(rec);
      if (!w) continue;
      if (w.failed + 1 > MAX_FAILED_CHECKS) {
        this.watched.delete(rec.id);
        givenUp += 1;
      } else Object.assign(w, { failed: w.failed + 1, due: this.now(), inFlight: false });
    }
    return givenUp;
  }

  /** The entry of that very deletion, if it is still the one watched. */
  private current(rec: SinkRecord): Watched | undefined {
    const w = this.watched.get(rec.id);
    return w?.rec === rec ? w : undefined;
  }
}
