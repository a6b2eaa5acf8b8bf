// Where a feed stands: the `since` of its next poll, the index given to
// each change read, and for every index still of interest the `since` that
// would deliver that change again (what a checkpoint must store to replay it).

interface Mark {
  index: number;
  since: string;
}

export class FeedCursor {
  private nextIndex = 0;
  private marks: Mark[] = [];

  constructor(public since: string) {}

  /** Records a change read from the feed; returns its index. */
  take(seq: string): number {
    const index = this.nextIndex++;
    this.marks.push({ index, since: this.since });
    this.since = seq;
    return index;
  }

  endPage(lastSeq: string): void {
    this.since = lastSeq;
  }

  /** The `since` that re-reads everything from `index` on (Infinity: nothing needs re-reading). */
  resumePoint(index: number): string {
    if (index === Infinity) return this.since;
    const mark = this.marks.find((m) => m.index >= index);
    return mark ? mark.since : this.since;
  }

  /** Forgets the marks before `index`: they will never be asked for again. */
  prune(index: number): void {
    let drop = 0;
    while (drop < this.marks.length && this.marks[drop]!.index < index) drop++;
    if (drop > 0) this.marks = this.marks.slice(drop);
  }
}
