// The correlator's adapters around the pure engine: two _changes feeds in,
// a fan-out of sinks out, checkpoints in between. What must stay true:
//  - the checkpoint of a feed never passes a change the engine still holds
//    or depends on, nor one an unacknowledged output came from, so a
//    restart after kill -9 re-reads exactly what it needs (and the
//    deterministic ids make re-written outputs harmless);
//  - the feed that is behind in event time is read first, so a backlog is
//    replayed in the same order as live traffic and the release queue stays small;
//  - a caught-up, idle feed advances with the wall clock (orphans on time);
//  - while a sink is full the feeds are not read (backpressure);
//  - shutdown: stop reading, flush and drain the sinks (bounded), then
//    save the checkpoint.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../lib/logger.js';
import type { CorrelationEngine } from './engine/engine.js';
import { toEvent, type NormalizeRules } from './engine/normalize.js';
import type { Side } from './engine/types.js';
import type { ChangesFeed } from './feed/changes-feed.js';
import type { CheckpointStore } from './feed/checkpoint-store.js';
import { FeedCursor } from './feed/feed-cursor.js';
import type { CorrelatorMetrics } from './metrics.js';
import type { FanOut } from './sinks/fan-out.js';

export interface PipelineOptions {
  batchSize: number;
  pollIntervalMs: number;
  checkpointIntervalMs: number;
  /** How long shutdown waits for sinks to drain before saving what is acknowledged. */
  drainTimeoutMs: number;
}

export interface FeedStatus {
  db: string;
  since: string;
  caughtUp: boolean;
  pending: number | null;
  failingSince: number | null;
  lastError: string | null;
}

interface FeedState {
  side: Side;
  feed: ChangesFeed;
  rules: NormalizeRules;
  cursor: FeedCursor;
  caughtUp: boolean;
  /** Latest event time pushed from this feed. */
  progress: number;
  pending: number | null;
  failingSince: number | null;
  lastError: string | null;
  backoffMs: number;
}

export class CorrelatorPipeline {
  private readonly feeds: Record<Side, FeedState>;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private lastSaved = '';
  private lastCheckpointAt: number | null = null;
  /** When the saved checkpoint was last known to be current. */
  checkpointSavedAt: number | null = null;

  constructor(
    private readonly engine: CorrelationEngine,
    feeds: Record<Side, { feed: ChangesFeed; rules: NormalizeRules }>,
    readonly fanout: FanOut,
    private readonly checkpoints: CheckpointStore,
    private readonly metrics: CorrelatorMetrics,
    private readonly log: Logger,
    private readonly opts: PipelineOptions,
    private readonly clock: () => number = Date.now,
  ) {
    const state = (side: Side): FeedState => ({
      side,
      ...feeds[side],
      cursor: new FeedCursor('0'),
      caughtUp: false,
      progress: -Infinity,
      pending: null,
      failingSince: null,
      lastError: null,
      backoffMs: opts.pollIntervalMs,
    });
    this.feeds = { A: state('A'), B: state('B') };
  }

  async start(): Promise<void> {
    const cp = await this.checkpoints.load();
    for (const side of ['A', 'B'] as const) {
      const f = this.feeds[side];
      const saved = cp?.feeds[side];
      if (saved && saved.db === f.feed.db) f.cursor = new FeedCursor(saved.since);
      else if (saved) this.log.warn({ side, was: saved.db, now: f.feed.db }, 'checkpoint is for another database; reading this one from the start');
      this.log.info({ side, db: f.feed.db, since: f.cursor.since }, 'feed starts');
    }
    this.lastCheckpointAt = this.clock();
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      if (this.fanout.full) {
        await sleep(20);
      } else {
        const side = this.pickFeed();
        if (side === null) {
          await sleep(this.opts.pollIntervalMs);
          this.feeds.A.caughtUp = this.feeds.B.caughtUp = false;
        } else {
          await this.pollOnce(this.feeds[side]);
        }
      }
      if (this.clock() - (this.lastCheckpointAt ?? 0) >= this.opts.checkpointIntervalMs) await this.checkpoint();
    }
  }

  /** The feed behind in event time among those with more to read; null when both are caught up. */
  private pickFeed(): Side | null {
    const { A, B } = this.feeds;
    if (A.caughtUp && B.caughtUp) return null;
    if (A.caughtUp) return 'B';
    if (B.caughtUp) return 'A';
    return A.progress <= B.progress ? 'A' : 'B';
  }

  private async pollOnce(f: FeedState): Promise<void> {
    let page;
    try {
      page = await f.feed.poll(f.cursor.since);
    } catch (err) {
      this.feedFailed(f, err);
      await sleep(f.backoffMs);
      f.backoffMs = Math.min(f.backoffMs * 2, 30_000);
      return;
    }
    if (f.failingSince !== null) this.log.info({ side: f.side, db: f.feed.db }, 'feed recovered');
    f.failingSince = null;
    f.lastError = null;
    f.backoffMs = this.opts.pollIntervalMs;
    for (const change of page.changes) {
      const index = f.cursor.take(change.seq);
      const ev = toEvent(change, f.side, index, f.rules);
      if ('skip' in ev) {
        this.metrics.skipped.inc({ side: f.side, reason: ev.skip });
        continue;
      }
      if (ev.time > f.progress) f.progress = ev.time;
      this.engine.push(ev);
    }
    f.cursor.endPage(page.lastSeq);
    f.pending = page.pending;
    f.caughtUp = page.changes.length < this.opts.batchSize;
    if (f.caughtUp) this.engine.advance(f.side, this.clock());
    this.fanout.write(this.engine.drain());
  }

  private feedFailed(f: FeedState, err: unknown): void {
    const message = (err as Error).message;
    if (f.failingSince === null) this.log.warn({ side: f.side, db: f.feed.db, err: message }, 'feed read failed; retrying with backoff');
    f.failingSince ??= this.clock();
    f.lastError = message;
  }

  /** Saves, per feed, the position before the oldest change still needed. */
  async checkpoint(): Promise<void> {
    this.lastCheckpointAt = this.clock();
    const feeds = {} as Record<Side, { db: string; since: string }>;
    for (const side of ['A', 'B'] as const) {
      const f = this.feeds[side];
      const safe = Math.min(this.engine.oldestNeeded(side), this.fanout.oldestUnacked(side));
      feeds[side] = { db: f.feed.db, since: f.cursor.resumePoint(safe) };
      f.cursor.prune(safe);
    }
    const key = JSON.stringify(feeds);
    if (key === this.lastSaved) {
      this.checkpointSavedAt = this.clock();
      return;
    }
    try {
      await this.checkpoints.save({ feeds, saved_at: new Date(this.clock()).toISOString() });
      this.lastSaved = key;
      this.checkpointSavedAt = this.clock();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'checkpoint not saved; will retry');
    }
  }

  status(): Record<Side, FeedStatus> {
    const s = (f: FeedState): FeedStatus => ({ db: f.feed.db, since: f.cursor.since, caughtUp: f.caughtUp, pending: f.pending, failingSince: f.failingSince, lastError: f.lastError });
    return { A: s(this.feeds.A), B: s(this.feeds.B) };
  }

  /** Stop reading, flush and drain the sinks (bounded), save the checkpoint. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
    const sinks = Promise.all(this.fanout.sinks.map((s) => s.close()));
    const drained = await Promise.race([sinks.then(() => true), sleep(this.opts.drainTimeoutMs).then(() => false)]);
    if (!drained) this.log.warn({ unacknowledged: this.fanout.pending }, 'sinks did not drain in time; their records will be re-read on the next start');
    await this.checkpoint();
  }
}
