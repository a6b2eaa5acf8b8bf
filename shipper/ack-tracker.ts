// Which prefix of a file is acknowledged. Every line read is registered in
// order; it is done once its document is stored (or known to be stored),
// written to the reject file, or deliberately skipped (blank, filtered).
// The frontier is the offset before which every line is done: --truncate
// removes up to it, --state resumes from it.
//
// A document made of several lines that are not adjacent (an audit event
// whose records arrived interleaved with another's) must not be cut by the
// frontier: reading again from there would see only part of it. So the
// frontier never falls inside such a document's span; it moves back to the
// document's first line, and the lines after that are read again next time
// (their documents are sent again with the same ids: nothing is stored twice).

export class AckTracker {
  /** Offsets and ends of lines not yet passed by the frontier; index i is line base+i. */
  private offsets: number[] = [];
  private ends: number[] = [];
  private done: boolean[] = [];
  private base = 0;
  private head = 0;
  /** Spans [first, end) of done multi-line documents that may straddle the frontier. */
  private spans: Array<[number, number]> = [];
  private last: number;

  constructor(startOffset: number) {
    this.last = startOffset;
  }

  /** Registers the next line; returns its index. */
  add(offset: number, end: number): number {
    this.offsets.push(offset);
    this.ends.push(end);
    this.done.push(false);
    this.last = end;
    return this.base + this.offsets.length - 1;
  }

  /** Marks lines done: one line, or all the lines of one document. */
  markDone(indexes: number | readonly number[]): void {
    if (typeof indexes === 'number') {
      this.set(indexes);
    } else {
      let first = Infinity;
      let end = -Infinity;
      let contiguous = true;
      let prev = -2;
      for (const i of [...indexes].sort((a, b) => a - b)) {
        this.set(i);
        const k = i - this.base;
        if (k >= 0) {
          first = Math.min(first, this.offsets[k]!);
          end = Math.max(end, this.ends[k]!);
        }
        if (prev !== -2 && i !== prev + 1) contiguous = false;
        prev = i;
      }
      if (!contiguous && first < end) this.spans.push([first, end]);
    }
    this.advance();
  }

  /** Offset before which every line is done. */
  frontier(): number {
    let f = this.head < this.offsets.length ? this.offsets[this.head]! : this.lastEnd();
    // Never inside a done multi-line document: move back to its start.
    let moved = true;
    while (moved) {
      moved = false;
      for (const [first, end] of this.spans) {
        if (first < f && f < end) {
          f = first;
          moved = true;
        }
      }
    }
    return f;
  }

  /** True when every registered line is done. */
  allDone(): boolean {
    return this.head >= this.offsets.length;
  }

  /** End of the last registered line (where reading stopped). */
  lastEnd(): number {
    return this.last;
  }

  private set(index: number): void {
    const k = index - this.base;
    if (k >= 0 && k < this.done.length) this.done[k] = true;
  }

  private advance(): void {
    while (this.head < this.done.length && this.done[this.head]) this.head++;
    // Drop what the frontier has passed, in large steps (cheap amortized).
    if (this.head > 4096 && this.head * 2 > this.done.length) {
      this.offsets = this.offsets.slice(this.head);
      this.ends = this.ends.slice(this.head);
      this.done = this.done.slice(this.head);
      this.base += this.head;
      this.head = 0;
      const f = this.offsets.length > 0 ? this.offsets[0]! : this.lastEnd();
      this.spans = this.spans.filter(([, end]) => end > f);
    }
  }
}
