// When a follower of a `_changes` feed (the correlator's two feeds, `couchlog
// forward`) looks whether its position is still in its database, and with
// which witness (position-witness.ts). What must stay true:
//  - the witness saved with a position is a change read before it from the
//    database the position is in. A page's last change becomes the witness
//    only once a later check found the current witness held (or when there
//    is none yet): taken at once, a page read from a database made again
//    between two checks would witness for the new database, and the next
//    check would pass while every document up to the old position is lost.
//    So the saved witness is up to one check interval older than the position;
//  - a check is made on the first page after a start and after failed reads
//    (a database being deleted fails them), at most every `intervalMs`
//    otherwise, so in-order reading costs one small request per interval;
//  - a check that cannot be made (the server away, the request refused)
//    never rewinds: it is reported, and left to the next interval;
//  - a revision called missing is asked for once more, after the database
//    has answered a read: PouchDB Server answers any storage error while
//    reading a document's revisions as 404 "missing", and a rewind costs a
//    whole re-read (a whole database sent to a SIEM again, for forward);
//  - for a position without a witness (saved before 2026-12-06, or with
//    only design documents read), a plain sequence past the database's
//    update_seq on an empty page (seq-ahead.ts); the first page read then
//    gives the witness at once, unchecked: nothing could check it.
import { isPlainSeq, seqAhead } from './seq-ahead.js';
import { witnessOf, type PositionWitness } from './position-witness.js';

export interface PositionProbe {
  /** Whether the database holds the witness's revision; throws when it cannot say. */
  holds(witness: PositionWitness): Promise<boolean>;
  /** The database's update_seq; throws when it cannot be read. */
  updateSeq(): Promise<unknown>;
}

/** Why a position is not in its database (logged with the rewind). */
export type PositionLost = { missing: PositionWitness } | { update_seq: unknown };

export class PositionCheck {
  private candidate: PositionWitness | null = null;
  private checkedAt = -Infinity;

  constructor(
    private readonly probe: PositionProbe,
    private readonly clock: () => number,
    /** The witness saved with the position the follower starts from (null: none, or an older checkpoint). */
    public witness: PositionWitness | null,
    /** Called when a due check could not be made (for a warning). */
    private readonly onUnknown: (err: unknown) => void,
    private readonly intervalMs = 30_000,
  ) {}

  /** A page was read: its last change is the next witness (see the header). */
  read(changes: ReadonlyArray<{ id: string; rev: string | null }>): void {
    const w = witnessOf(changes);
    if (w === null) return;
    if (this.witness === null) this.witness = w;
    else this.candidate = w;
  }

  /** A read failed: the next page is checked. */
  failed(): void {
    this.checkedAt = -Infinity;
  }

  /** The follower starts again from the start of the feed. */
  reset(): void {
    this.witness = null;
    this.candidate = null;
  }

  /**
   * Whether the position `since` (null: the start of the feed) is not in
   * its database any more, when a check is due; null when it is, when none
   * is due, or when the check could not be made.
   */
  async lost(since: unknown, emptyPage: boolean): Promise<PositionLost | null> {
    if (since === null || this.clock() - this.checkedAt < this.intervalMs) return null;
    this.checkedAt = this.clock();
    const witness = this.witness;
    const candidate = this.candidate;
    try {
      if (witness !== null) {
        if (!(await this.probe.holds(witness)) && (await this.confirmedMissing(witness))) return { missing: witness };
        // Held: every page read before the check came from this database.
        if (candidate !== null && this.witness === witness) this.witness = candidate;
        if (this.candidate === candidate) this.candidate = null;
        return null;
      }
      if (!emptyPage || !isPlainSeq(since)) return null;
      const updateSeq = await this.probe.updateSeq();
      return seqAhead(since, updateSeq) ? { update_seq: updateSeq } : null;
    } catch (err) {
      this.onUnknown(err);
      return null;
    }
  }

  /** Whether a witness called missing is missing still, once the database has answered a read (throws when it cannot say). */
  private async confirmedMissing(witness: PositionWitness): Promise<boolean> {
    await this.probe.updateSeq();
    return !(await this.probe.holds(witness));
  }
}
