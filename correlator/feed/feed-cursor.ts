// Where a feed stands: the `since` of its next poll and the index the next
// change will get. Indexes continue across restarts (the checkpoint keeps
// the next one), so a restored engine and the feed agree on them.

export class FeedCursor {
  constructor(
    public since: string,
    private nextIndex = 0,
  ) {}

  /** Records a change read from the feed; returns its index. A change without a sequence (seq_interval) leaves `since` to the page's end. */
  take(seq: string | null): number {
    if (seq !== null) this.since = seq;
    return this.nextIndex++;
  }

  endPage(lastSeq: string): void {
    this.since = lastSeq;
  }

  get next(): number {
    return this.nextIndex;
  }
}
