// Groups documents into batches of at most `maxDocs` documents and about
// `maxBytes` bytes (counted in characters: a batch of UTF-8 text is at most
// three times bigger, still far under the ingress's 8 MiB).
export class Batcher<T extends { json: string }> {
  private current: T[] = [];
  private bytes = 0;
  private readonly full: T[][] = [];

  constructor(
    private readonly maxDocs: number,
    private readonly maxBytes: number,
  ) {}

  add(doc: T): void {
    this.current.push(doc);
    this.bytes += doc.json.length;
    if (this.current.length >= this.maxDocs || this.bytes >= this.maxBytes) this.close();
  }

  /** Full batches, oldest first (and with flush, the partial one too). */
  take(flush = false): T[][] {
    if (flush && this.current.length > 0) this.close();
    return this.full.splice(0);
  }

  private close(): void {
    this.full.push(this.current);
    this.current = [];
    this.bytes = 0;
  }
}
