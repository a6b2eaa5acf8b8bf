// Pages of one feed requested ahead of the pipeline, so CouchDB always has
// the next pages of both feeds to work on while the engine and the sinks
// handle the last one (on PouchDB Server one _changes request is a chain
// of LevelDB round trips: two feeds in flight read about twice as fast).
// What must stay true:
//  - a page is handed out only if it starts exactly where the pipeline's
//    cursor stands; anything else throws the queue away and asks afresh,
//    so reading ahead never changes what the engine sees, or in what order;
//  - the next page is asked for as soon as the previous one arrives full
//    (a short page means the feed is caught up: the pipeline polls it on
//    its own schedule), and never more than `depth` pages are held or in
//    flight;
//  - nothing is asked while the pipeline says not to (backpressure,
//    shutdown); the chain resumes when it next takes a page;
//  - a failed request is a value handed to the pipeline in turn, never an
//    unobserved rejection.
import type { FeedPage } from './changes-feed.js';

/** What ReadAhead needs of a feed (ChangesFeed). */
export interface PageSource {
  poll(since: string): Promise<FeedPage>;
}

export type PollResult = { page: FeedPage } | { error: unknown };

interface Ahead {
  since: string;
  result: Promise<PollResult>;
}

export class ReadAhead {
  private queue: Ahead[] = [];
  /** The newest page asked for; its successor is asked when it arrives full. */
  private tail: Ahead | null = null;
  /** The newest page arrived full while asking more was not allowed: where the chain resumes. */
  private paused: FeedPage | null = null;

  constructor(
    private readonly feed: PageSource,
    private readonly depth: number,
    /** Whether more may be asked for now. */
    private readonly allowed: () => boolean,
  ) {}

  /** The page that starts at `since`. */
  take(since: string): Promise<PollResult> {
    const head = this.queue.shift();
    if (head === undefined || head.since !== since) {
      this.queue = [];
      this.paused = null;
      return this.ask(since).result;
    }
    if (this.paused !== null) {
      const from = this.paused;
      this.paused = null;
      this.continueAfter(from);
    }
    return head.result;
  }

  /** Forgets what was asked ahead (its answers are ignored). */
  clear(): void {
    this.queue = [];
    this.tail = null;
    this.paused = null;
  }

  private ask(since: string): Ahead {
    const entry: Ahead = {
      since,
      result: this.feed.poll(since).then(
        (page) => {
          if (entry === this.tail) this.continueAfter(page);
          return { page };
        },
        (error: unknown) => ({ error }),
      ),
    };
    this.tail = entry;
    return entry;
  }

  private continueAfter(page: FeedPage): void {
    if (!page.full) return;
    if (this.queue.length >= this.depth || !this.allowed()) {
      this.paused = page;
      return;
    }
    this.queue.push(this.ask(page.lastSeq));
  }
}
