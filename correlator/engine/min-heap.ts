// A binary min-heap: the engine's queues of events waiting for release and
// of deadlines waiting to pass. O(log n) push and pop.

export class MinHeap<T> {
  private readonly items: T[] = [];

  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const items = this.items;
    // Sift up with a hole: parents move down, the item is written once.
    let i = items.length;
    items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent]!;
      if (!this.less(item, p)) break;
      items[i] = p;
      i = parent;
    }
    items[i] = item;
  }

  pop(): T | undefined {
    const items = this.items;
    if (items.length === 0) return undefined;
    const top = items[0];
    const last = items.pop()!;
    const n = items.length;
    if (n > 0) {
      // Sift the last item down from the root with a hole, as in push.
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const m = r < n && this.less(items[r]!, items[l]!) ? r : l;
        if (!this.less(items[m]!, last)) break;
        items[i] = items[m]!;
        i = m;
      }
      items[i] = last;
    }
    return top;
  }

  values(): readonly T[] {
    return this.items;
  }

  /** Keeps only the items `pred` accepts (O(n): for rare removals, such as a withdrawn document). */
  keep(pred: (item: T) => boolean): void {
    const kept = this.items.filter(pred);
    if (kept.length === this.items.length) return;
    this.items.length = 0;
    for (const item of kept) this.push(item);
  }
}
