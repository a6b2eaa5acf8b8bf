// Group commit: concurrent single-document POSTs to the same database with
// the same credentials are written together with one `_bulk_docs`. Each
// caller's promise settles only when its own document has been stored (or
// refused), with its own result. What must stay true:
//  - a batch never holds two documents with the same id (results are
//    matched by id, and CouchDB would conflict them against each other);
//  - with nothing in flight a document goes out at once (no added latency
//    when idle); under load documents wait at most `maxWaitMs`, or until
//    `maxDocs` are queued, and at most `maxInflight` batches run per key.
import { tooLargeDocumentOf, type DocResult, type WriteTarget, type Written } from './bulk-writer.js';
import type { LogDoc } from './validate-docs.js';

export interface GroupCommitOptions {
  maxDocs: number;
  maxWaitMs: number;
  maxInflight: number;
}

type IdDoc = LogDoc & { _id: string };

export type FlushFn = (target: WriteTarget, docs: IdDoc[]) => Promise<Written<DocResult[]>>;

interface Waiter {
  doc: IdDoc;
  resolve: (r: Written<DocResult>) => void;
  reject: (err: unknown) => void;
}

interface Queue {
  target: WriteTarget;
  pending: Waiter[];
  inflight: number;
  timer: NodeJS.Timeout | null;
  due: boolean;
}

export class GroupCommit {
  private readonly queues = new Map<string, Queue>();
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly opts: GroupCommitOptions,
    private readonly flush: FlushFn,
  ) {}

  /** `key` identifies database + credentials: only equal keys share a batch. */
  submit(key: string, target: WriteTarget, doc: IdDoc): Promise<Written<DocResult>> {
    let q = this.queues.get(key);
    if (!q) {
      q = { target, pending: [], inflight: 0, timer: null, due: false };
      this.queues.set(key, q);
    }
    const queue = q;
    return new Promise<Written<DocResult>>((resolve, reject) => {
      queue.pending.push({ doc, resolve, reject });
      if (queue.inflight === 0 || queue.pending.length >= this.opts.maxDocs) queue.due = true;
      else if (!queue.timer) queue.timer = setTimeout(() => this.onTimer(key, queue), this.opts.maxWaitMs);
      this.pump(key, queue);
    });
  }

  /**
   * Several documents of one request (HEC batches): queued together, so an
   * idle queue sends them in one batch rather than the first one alone.
   * Each result in the order given (accepted if any batch was); rejects if any batch failed as a whole.
   */
  async submitMany(key: string, target: WriteTarget, docs: IdDoc[]): Promise<Written<DocResult[]>> {
    let q = this.queues.get(key);
    if (!q) {
      q = { target, pending: [], inflight: 0, timer: null, due: false };
      this.queues.set(key, q);
    }
    const queue = q;
    const promises = docs.map((doc) => new Promise<Written<DocResult>>((resolve, reject) => queue.pending.push({ doc, resolve, reject })));
    if (queue.inflight === 0 || queue.pending.length >= this.opts.maxDocs) queue.due = true;
    else if (!queue.timer) queue.timer = setTimeout(() => this.onTimer(key, queue), this.opts.maxWaitMs);
    this.pump(key, queue);
    const each = await Promise.all(promises);
    return { results: each.map((w) => w.results), accepted: each.some((w) => w.accepted) };
  }

  private onTimer(key: string, q: Queue): void {
    q.timer = null;
    q.due = true;
    this.pump(key, q);
  }

  private pump(key: string, q: Queue): void {
    while (q.due && q.pending.length > 0 && q.inflight < this.opts.maxInflight) {
      const batch = this.takeBatch(q);
      q.inflight += 1;
      const run = this.send(q, batch).finally(() => {
        this.running.delete(run);
        q.inflight -= 1;
        if (q.pending.length > 0) q.due = true;
        this.pump(key, q);
        if (q.inflight === 0 && q.pending.length === 0) this.queues.delete(key);
      });
      this.running.add(run);
    }
    if (q.pending.length === 0) q.due = false;
    if (q.timer && (q.pending.length === 0 || q.due)) {
      clearTimeout(q.timer);
      q.timer = null;
    }
  }

  /** Up to maxDocs waiters with distinct ids; repeated ids wait for a later batch. */
  private takeBatch(q: Queue): Waiter[] {
    const batch: Waiter[] = [];
    const rest: Waiter[] = [];
    const ids = new Set<string>();
    for (const w of q.pending) {
      if (batch.length < this.opts.maxDocs && !ids.has(w.doc._id)) {
        ids.add(w.doc._id);
        batch.push(w);
      } else {
        rest.push(w);
      }
    }
    q.pending = rest;
    return batch;
  }

  private async send(q: Queue, batch: Waiter[]): Promise<void> {
    try {
      const { results, accepted } = await this.flush(
        q.target,
        batch.map((w) => w.doc),
      );
      batch.forEach((w, i) => w.resolve({ results: results[i]!, accepted }));
    } catch (err) {
      // CouchDB refused the whole request for one document over its
      // max_document_size, naming it: that caller gets the refusal, the
      // others' documents go again without it (before, every caller batched
      // with one anonymous oversize document got its 413, and HEC clients
      // drop events on a 413). One more request per such document, one at a
      // time; the ingress's own max_document_bytes keeps them rare.
      const culprit = batch.length > 1 ? batch.findIndex((w) => w.doc._id === tooLargeDocumentOf(err)) : -1;
      if (culprit >= 0) {
        batch[culprit]!.reject(err);
        await this.send(
          q,
          batch.filter((_, i) => i !== culprit),
        );
        return;
      }
      for (const w of batch) w.reject(err);
    }
  }

  /** Sends everything queued now and waits for every batch in flight. */
  async drain(): Promise<void> {
    for (const [key, q] of this.queues) {
      q.due = true;
      this.pump(key, q);
    }
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }
}
