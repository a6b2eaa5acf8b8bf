// A least-recently-used order over items that carry their own link (an
// intrusive doubly linked list): the engine moves a connection to the end
// of one or two of these lists on every event. A Map's delete + set did the
// same at the cost of hashing the key twice and leaving holes V8 compacts
// later; here a touch is a few pointer writes.
//
// What must stay true: iteration is oldest touch first (the order a Map
// keeps when every touch is delete + set), and an item is in a list at most
// once. Removing the item iteration stands on is allowed only through the
// successor captured before it (see oldest(): read `link.next` first).

/** One item's place in one list. Create one per item per list; never share it between lists. */
export class LruLink<T> {
  prev: LruLink<T> | null = null;
  next: LruLink<T> | null = null;
  linked = false;

  constructor(readonly item: T) {}
}

export class LruList<T> {
  private head: LruLink<T> | null = null;
  private tail: LruLink<T> | null = null;
  size = 0;

  /** Moves the item to the most recent end (adds it if absent). */
  touch(link: LruLink<T>): void {
    if (this.tail === link) return;
    if (link.linked) this.unlink(link);
    link.prev = this.tail;
    link.next = null;
    if (this.tail) this.tail.next = link;
    else this.head = link;
    this.tail = link;
    link.linked = true;
    this.size += 1;
  }

  /** Takes the item out (nothing if absent). */
  remove(link: LruLink<T>): void {
    if (link.linked) this.unlink(link);
  }

  /** The least recently touched link; walk on with `link.next` (read it before removing `link`). */
  oldest(): LruLink<T> | null {
    return this.head;
  }

  /** Items, most recently touched first. */
  newestFirst(): T[] {
    const out: T[] = [];
    for (let l = this.tail; l !== null; l = l.prev) out.push(l.item);
    return out;
  }

  private unlink(link: LruLink<T>): void {
    if (link.prev) link.prev.next = link.next;
    else this.head = link.next;
    if (link.next) link.next.prev = link.prev;
    else this.tail = link.prev;
    link.prev = link.next = null;
    link.linked = false;
    this.size -= 1;
  }
}
