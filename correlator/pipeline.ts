// The correlator's adapters around the pure engine: two _changes feeds in,
// a fan-out of sinks out, checkpoints in between. What must stay true:
//  - a checkpoint is the feeds' positions plus the engine's state at one
//    moment, and it is saved only once every output produced before that
//    moment is acknowledged by every sink. After kill -9 a restart rebuilds
//    that engine and reads on from those positions: it decides everything
//    exactly as an uninterrupted run, re-writing at most the outputs made
//    after the checkpoint (same ids, same content: harmless);
//  - the feed that is behind in event time is read first, so a backlog is
//    replayed in the same order as live traffic and the release queue stays small;
//  - while a backlog is read, pages of both feeds are asked ahead
//    (ReadAhead), so CouchDB works on them while the engine and the sinks
//    handle the last one; a page is used only if it starts where the
//    cursor stands, so this changes when pages are read, never what is decided;
//  - a caught-up, idle feed advances with the wall clock (orphans on time);
//  - while a sink is full the feeds are not read (backpressure);
//  - shutdown: stop reading, flush and drain the sinks (bounded), then
//    save the checkpoint.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../lib/logger.js';
import { CorrelationEngine } from './engine/engine.js';
import { toEvent, type NormalizeRules } from './engine/normalize.js';
import type { EngineConfig, InputEvent, LookupRequest, Side } from './engine/types.js';
import type { ConnectionLookup, LookupAnswer } from './feed/connection-lookup.js';
import { changedSinceStored, type ChangesFeed, type EarlierContents, type FeedChange } from './feed/changes-feed.js';
import type { Checkpoint, CheckpointStore } from './feed/checkpoint-store.js';
import { SecondInstanceError } from './feed/writer-claim.js';
import { parseWitness, type PositionWitness } from '../lib/couch/position-witness.js';
import { PositionCheck } from '../lib/couch/position-check.js';
import { FeedCursor } from './feed/feed-cursor.js';
import { ReadAhead } from './feed/read-ahead.js';
import type { CorrelatorMetrics } from './metrics.js';
import type { FanOut } from './sinks/fan-out.js';

export interface PipelineOptions {
  batchSize: number;
  pollIntervalMs: number;
  checkpointIntervalMs: number;
  /** How long shutdown waits for sinks to drain before saving what is acknowledged. */
  drainTimeoutMs: number;
  /**
   * The sink whose records lookups read back (the CouchDB sink: log_correlated),
   * or null when none. Only it must have acknowledged everything before a
   * lookup: the others get the same records in the same order per id later,
   * and a checkpoint still waits for all of them.
   */
  lookupSink: string | null;
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
  /** For scheduling: nothing more to read now. Cleared at every idle poll, to look again. */
  caughtUp: boolean;
  /**
   * What status() reports: the last read of this feed reached its end, and
   * it has not failed since. Unlike caughtUp it does not flap off at each
   * idle poll, so a monitor reading /health sees an idle feed as caught up.
   */
  reachedEnd: boolean;
  /** Latest event time pushed from this feed. */
  progress: number;
  pending: number | null;
  failingSince: number | null;
  lastError: string | null;
  backoffMs: number;
  reader: ReadAhead;
  /** Whether the position is still in its database, and its witness (lib/couch/position-check.ts). */
  position: PositionCheck;
}

const NO_EARLIER: Map<string, EarlierContents> = new Map();

const witnessKey = (f: FeedState): string => (f.position.witness ? `${f.position.witness.id} ${f.position.witness.rev}` : '');

/** Pages asked ahead per feed: enough to keep CouchDB busy, little memory (pages of `batch_size`). */
const READ_AHEAD_PAGES = 2;

/**
 * Connections with late events are decided once the feeds are caught up,
 * not page by page (engine.drain(now, false)): a late backlog, or a backlog
 * CouchDB 3 hands out shard by shard, brings one connection's late events
 * pages apart, and deciding it at each page writes a correction each time.
 * Held at most this long, and at most this many (held connections cannot
 * leave the memory cache).
 */
const LATE_HOLD_MS = 2000;
const LATE_HOLD_MAX = 10_000;

export class CorrelatorPipeline {
  private readonly feeds: Record<Side, FeedState>;
  private stopping = false;
  /** Resolves when stop() is called: every wait of the loop ends on it, so shutdown never waits on a backoff or a failing sink. */
  private readonly stopSignal: Promise<void>;
  private signalStop: () => void = () => {};
  private loop: Promise<void> | null = null;
  private stopped: Promise<void> | null = null;
  engine: CorrelationEngine;
  /** A checkpoint taken, waiting for the outputs before it to be acknowledged. */
  private pendingCheckpoint: { cp: Checkpoint; through: number; held: string } | null = null;
  private lastCheckpointAt: number | null = null;
  /** When the saved checkpoint was last known to be current. */
  checkpointSavedAt: number | null = null;
  /** Feed positions and engine changes of the last saved checkpoint (see heldState). */
  private savedHeldState: string | null = null;
  /** How long the last checkpoint took to take and to save (spaces them under load). */
  private captureMs = 0;
  private saveMs = 0;
  /**
   * While paused, the feeds are not read (the engine and its memory stay as
   * they are; checkpoints go on). For maintenance and for benchmarks that
   * load a backlog before timing how it drains.
   */
  paused = false;
  /** A feed's page is being read or decided (what pauseReading waits for). */
  private polling = false;
  /** Wall-clock ms since connection lookups have been failing, null when fine. */
  lookupFailingSince: number | null = null;
  /** Since when connections with late events are held undecided (see LATE_HOLD_MS). */
  private lateHeldSince: number | null = null;
  /** Set when another instance writes this checkpoint and started first: nothing is read or saved any more. */
  superseded: SecondInstanceError | null = null;
  private signalSuperseded: (err: SecondInstanceError) => void = () => {};
  /** Resolves when this instance must stop because another one writes its checkpoint (see feed/writer-claim.ts). */
  readonly supersededSignal: Promise<SecondInstanceError> = new Promise((resolve) => (this.signalSuperseded = resolve));

  constructor(
    private readonly engineConfig: EngineConfig,
    feeds: Record<Side, { feed: ChangesFeed; rules: NormalizeRules }>,
    readonly fanout: FanOut,
    private readonly lookup: ConnectionLookup,
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
      reachedEnd: false,
      progress: -Infinity,
      pending: null,
      failingSince: null,
      lastError: null,
      backoffMs: opts.pollIntervalMs,
      reader: new ReadAhead(feeds[side].feed, READ_AHEAD_PAGES, () => !this.stopping && !this.fanout.full && !this.paused),
      position: this.positionCheck(feeds[side].feed, side, null),
    });
    this.feeds = { A: state('A'), B: state('B') };
    this.engine = new CorrelationEngine(engineConfig);
    this.stopSignal = new Promise((resolve) => (this.signalStop = resolve));
  }

  /**
   * Sets `paused` and resolves once no page is being read or decided: a
   * page already asked for when `paused` was set is still decided, so
   * whoever needs the feeds to read nothing more from now on waits here.
   */
  async pauseReading(): Promise<void> {
    this.paused = true;
    while (this.polling && !this.stopping) await sleep(5);
  }

  /** Waits ms, or less if stop() is called meanwhile. */
  private async pause(ms: number): Promise<void> {
    await Promise.race([sleep(ms), this.stopSignal]);
  }

  async start(): Promise<void> {
    const { checkpoint: cp, ignored } = await this.checkpoints.load();
    if (ignored) this.log.warn(`${ignored}: the feeds are read from the start`);
    const sameDbs = cp !== null && (['A', 'B'] as const).every((side) => cp.feeds[side]?.db === this.feeds[side].feed.db);
    if (cp && !sameDbs) this.log.warn({ checkpoint: cp.feeds }, 'the checkpoint is for other databases: reading from the start');
    // A checkpoint of an older engine holds state this one cannot rebuild: the
    // feeds are read again from the start (records have the same ids: nothing is duplicated).
    const same = sameDbs && cp.state?.v === 2;
    if (cp && sameDbs && !same) this.log.warn('the checkpoint is from an older correlator: reading the feeds again from the start');
    if (!cp && (await this.checkpoints.oldCheckpointLeft()))
      this.log.warn(
        `${this.checkpoints.oldPlace} exists (a checkpoint of an earlier couchlog, or written by a member of that database): not read, since its members can write it; the feeds are read from the start`,
      );
    if (cp && same) {
      for (const side of ['A', 'B'] as const) {
        this.feeds[side].cursor = new FeedCursor(cp.feeds[side].since, cp.feeds[side].next_index);
        this.feeds[side].position = this.positionCheck(this.feeds[side].feed, side, parseWitness(cp.feeds[side].witness));
      }
      this.engine = await this.restoreEngine(cp);
    } else if (await this.checkpoints.holdsRecords()) {
      // No checkpoint to continue from, but records: an earlier run wrote them (killed before its
      // first checkpoint, or its checkpoint is unusable). Treated as a replay after a crash.
      this.log.info('no checkpoint to continue from, but log_correlated holds records: the first pass is a replay');
      this.engine.replayFromStart();
    }
    for (const side of ['A', 'B'] as const) {
      const f = this.feeds[side];
      this.log.info({ side, db: f.feed.db, since: f.cursor.since, held: this.engine.sizes() }, 'feed starts');
    }
    this.lastCheckpointAt = this.clock();
    this.checkpointSavedAt = cp && same ? this.clock() : null;
    this.loop = this.run();
  }

  /** The engine as the checkpoint left it: its held events are fetched again by id. */
  private async restoreEngine(cp: Checkpoint): Promise<CorrelationEngine> {
    const state = cp.state;
    const wanted: Record<Side, Set<string>> = { A: new Set(), B: new Set() };
    for (const [side, id] of state.waiting) wanted[side].add(id);
    for (const [, , events] of state.keys) for (const [side, id] of events) wanted[side].add(id);
    for (const [side, id] of state.unverified ?? []) wanted[side].add(id);
    for (const [, base] of state.bases ?? []) {
      for (const [id] of base.bs) wanted.B.add(id);
      for (const [id] of base.as) wanted.A.add(id);
    }
    const events = new Map<string, InputEvent>();
    for (const side of ['A', 'B'] as const) {
      const f = this.feeds[side];
      const docs = await f.feed.fetch([...wanted[side]]);
      for (const id of wanted[side]) {
        const doc = docs.get(id);
        const ev = doc ? toEvent({ id, doc }, side, -1, f.rules) : null;
        if (ev && !('skip' in ev)) {
          events.set(`${side}:${id}`, ev);
          continue;
        }
        // Counted like any skipped change: gone (deleted), or skipped now by rules changed since (where, exclude_source_ips...).
        const reason = ev ? ev.skip : 'deleted';
        this.metrics.skipped.inc({ side, reason });
        this.log.warn(
          { side, id, reason },
          ev ? 'a document held at the checkpoint is skipped by the rules now; left out' : 'a document held at the checkpoint is gone; left out',
        );
      }
    }
    return CorrelationEngine.restore(this.engineConfig, state, (side, id) => events.get(`${side}:${id}`));
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      if (this.fanout.full || this.paused) {
        await this.pause(20);
      } else {
        const side = this.pickFeed();
        if (side === null) {
          await this.pause(this.opts.pollIntervalMs);
          this.feeds.A.caughtUp = this.feeds.B.caughtUp = false;
        } else {
          this.polling = true;
          try {
            await this.pollOnce(this.feeds[side]);
          } finally {
            this.polling = false;
          }
        }
      }
      if (this.checkpointDue()) await this.checkpoint();
      else await this.saveIfAcknowledged();
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
    const result = await f.reader.take(f.cursor.since);
    if ('error' in result) {
      this.feedFailed(f, result.error);
      await this.pause(f.backoffMs);
      f.backoffMs = Math.min(f.backoffMs * 2, 30_000);
      f.reachedEnd = false;
      return;
    }
    const { page } = result;
    if (await this.rewoundIfElsewhere(f, page.changes.length === 0)) return;
    const earlier = await this.earlierContents(f, page.changes);
    if (earlier === null) return;
    if (f.failingSince !== null) this.log.info({ side: f.side, db: f.feed.db }, 'feed recovered');
    f.failingSince = null;
    f.lastError = null;
    f.backoffMs = this.opts.pollIntervalMs;
    this.engine.clock(this.clock());
    for (const change of page.changes) {
      const index = f.cursor.take(change.seq);
      const ev = toEvent(change, f.side, index, f.rules);
      const before = earlier.get(change.id);
      const withdrawn = before ? this.withdrawEarlier(f, change.id, before.docs, !('skip' in ev)) : 0;
      if ('skip' in ev) {
        if (withdrawn === 0) this.metrics.skipped.inc({ side: f.side, reason: ev.skip });
        continue;
      }
      if (ev.time > f.progress) f.progress = ev.time;
      this.engine.push(ev);
    }
    f.cursor.endPage(page.lastSeq);
    f.position.read(page.changes);
    f.pending = page.pending;
    f.caughtUp = f.reachedEnd = !page.full;
    if (f.caughtUp) this.engine.advance(f.side, this.clock());
    await this.decide();
  }

  /**
   * What the deleted or edited documents of a page held before (an
   * admin's change: the ingress only ever writes first revisions, so the
   * common page asks nothing). Null when it could not be read: the page is
   * read again after a backoff, as after a failed read, so no change is
   * taken without its earlier content.
   */
  private async earlierContents(f: FeedState, changes: readonly FeedChange[]): Promise<Map<string, EarlierContents> | null> {
    const changed = changes.filter(changedSinceStored);
    if (changed.length === 0) return NO_EARLIER;
    try {
      const earlier = await f.feed.earlierContents(changed.map((c) => ({ id: c.id, rev: c.rev ?? '' })));
      const unreadable = changed.filter((c) => (earlier.get(c.id)?.missing ?? 0) > 0);
      if (unreadable.length > 0) {
        for (const c of unreadable) this.metrics.withdrawalsUnreadable.inc({ side: f.side }, earlier.get(c.id)!.missing);
        this.log.warn(
          { side: f.side, db: f.feed.db, documents: unreadable.length, first: unreadable[0]!.id },
          'deleted or edited documents whose earlier content is gone (the database was compacted since): records built from it stay as they are; see docs/correlator.md to rebuild',
        );
      }
      return earlier;
    } catch (err) {
      this.feedFailed(f, err);
      await this.pause(f.backoffMs);
      f.backoffMs = Math.min(f.backoffMs * 2, 30_000);
      return null;
    }
  }

  /** Takes back what a changed document held before; `keep`: its new content is an event (and decides its record). Answers how many. */
  private withdrawEarlier(f: FeedState, id: string, docs: ReadonlyArray<Record<string, unknown>>, keep: boolean): number {
    let n = 0;
    for (const doc of docs) {
      const old = toEvent({ id, doc }, f.side, -1, f.rules);
      if ('skip' in old) continue;
      this.engine.withdraw(old, keep);
      n += 1;
    }
    return n;
  }

  private positionCheck(feed: ChangesFeed, side: Side, witness: PositionWitness | null): PositionCheck {
    const probe = { holds: (w: PositionWitness) => feed.holds(w), updateSeq: () => feed.updateSeq() };
    const unknown = (err: unknown) =>
      this.log.warn({ side, db: feed.db, err: (err as Error).message }, 'could not check that the feed position is still in its database; will look again');
    return new PositionCheck(probe, this.clock, witness, unknown);
  }

  /**
   * A feed position that is not in its database any more (the database was
   * deleted and made again, or restored from an older copy) would skip
   * every document before it, or read nothing for ever: that feed is read
   * again from the start (what was correlated stays; the documents read
   * again are decided as any). When and how: lib/couch/position-check.ts.
   */
  private async rewoundIfElsewhere(f: FeedState, emptyPage: boolean): Promise<boolean> {
    const lost = await f.position.lost(f.cursor.since === '0' ? null : f.cursor.since, emptyPage);
    if (lost === null) return false;
    this.metrics.rewinds.inc({ side: f.side });
    this.log.warn(
      { side: f.side, db: f.feed.db, since: f.cursor.since, ...lost },
      'the feed position is not in the database (made again, or restored from an older copy): reading it from the start',
    );
    f.reader.clear();
    f.cursor = new FeedCursor('0', f.cursor.next);
    f.position.reset();
    return true;
  }

  /**
   * Sends what the engine decided, then answers its lookups (late events
   * whose partners left memory) and sends what it decides with them. The
   * sink lookups read (log_correlated) is drained before a lookup, so it
   * sees every record already emitted; no other sink is waited for (a
   * ClickHouse that is down must not stop the CouchDB output).
   */
  private async decide(): Promise<void> {
    this.fanout.write(this.engine.drain(this.clock(), this.settleLate()));
    for (let round = 0; round < 3; round++) {
      const requests = this.engine.lookups();
      if (requests.length === 0) return;
      // Stopping while that sink fails: the connections stay undecided in the checkpoint, decided after the restart.
      if (!(await this.lookupSinkSettled())) return;
      const end = this.metrics.lookupSeconds.startTimer();
      const answers = await this.lookupWithRetry(requests);
      end();
      // Stopping while CouchDB failed: the connections stay undecided in the checkpoint, decided after the restart.
      if (answers === null) return;
      for (const a of answers) this.engine.provide(a.request.key, a.request.from, a.events, a.priors);
      this.fanout.write(this.engine.drain(this.clock()));
    }
  }

  /** Whether the sink lookups read has acknowledged everything written; false when stop() came first. */
  private async lookupSinkSettled(): Promise<boolean> {
    if (this.opts.lookupSink === null) return !this.stopping;
    let settled = false;
    await Promise.race([this.fanout.settled(this.opts.lookupSink).then(() => (settled = true)), this.stopSignal]);
    return settled && !this.stopping;
  }

  /** Whether held connections with late events are decided now (see LATE_HOLD_MS). */
  private settleLate(): boolean {
    const now = this.clock();
    if (this.engine.held === 0) {
      this.lateHeldSince = null;
      return true;
    }
    this.lateHeldSince ??= now;
    const settle =
      this.stopping || (this.feeds.A.caughtUp && this.feeds.B.caughtUp) || this.engine.held >= LATE_HOLD_MAX || now - this.lateHeldSince >= LATE_HOLD_MS;
    if (settle) this.lateHeldSince = null;
    return settle;
  }

  private async lookupWithRetry(requests: LookupRequest[]): Promise<LookupAnswer[] | null> {
    for (let backoff = this.opts.pollIntervalMs; ; backoff = Math.min(backoff * 2, 30_000)) {
      try {
        const answers = await this.lookup.run(requests);
        this.lookupFailingSince = null;
        return answers;
      } catch (err) {
        // The engine holds these connections until answered; nothing is decided without them.
        this.lookupFailingSince ??= this.clock();
        this.metrics.lookupFailures.inc();
        this.log.warn({ err: (err as Error).message, connections: requests.length }, 'connection lookup failed; retrying with backoff');
        if (this.stopping) return null;
        await this.pause(backoff);
        if (this.stopping) return null;
      }
    }
  }

  private feedFailed(f: FeedState, err: unknown): void {
    const message = (err as Error).message;
    this.metrics.feedFailures.inc({ side: f.side });
    if (f.failingSince === null) this.log.warn({ side: f.side, db: f.feed.db, err: message }, 'feed read failed; retrying with backoff');
    f.failingSince ??= this.clock();
    f.lastError = message;
    // A database deleted and made again fails reads meanwhile: the next page is checked.
    f.position.failed();
  }

  /**
   * Takes a checkpoint now (between pages: the engine has decided what it
   * read) unless one is already waiting, and saves the waiting one once
   * every output before it is acknowledged.
   */
  async checkpoint(): Promise<void> {
    // Stopped for another instance: the checkpoint is that one's, and /health's checkpoint age stays the last save's.
    if (this.superseded) return;
    this.lastCheckpointAt = this.clock();
    if (this.pendingCheckpoint === null) {
      // Idle feeds: nothing read, nothing held changed (only the watermark
      // moved with the clock, which a restart re-derives). Rewriting the
      // same checkpoint every second would only grow the database.
      const held = this.heldState();
      if (this.fanout.pending === 0 && held === this.savedHeldState) {
        this.checkpointSavedAt = this.clock();
        return;
      }
      const started = this.clock();
      this.pendingCheckpoint = { cp: this.capture(), through: this.fanout.lastWrite, held };
      this.captureMs = this.clock() - started;
    }
    await this.saveIfAcknowledged();
  }

  /**
   * Whether the saved checkpoint holds everything: none waits to be saved,
   * every output is acknowledged, and the feeds and the engine stand where
   * it says. Until something is read or decided, no checkpoint is written.
   */
  get checkpointCurrent(): boolean {
    return this.pendingCheckpoint === null && this.fanout.pending === 0 && this.heldState() === this.savedHeldState;
  }

  /** What a checkpoint says beyond the clock: feed positions, their witnesses and the engine's changes. */
  private heldState(): string {
    const { A, B } = this.feeds;
    // A witness adopted after the position last moved is saved too (lib/couch/position-check.ts).
    return `${A.cursor.since}|${B.cursor.since}|${this.engine.changes}|${witnessKey(A)}|${witnessKey(B)}`;
  }

  /**
   * Checkpoints cost time in proportion to what the engine holds: while a
   * backlog is read they are spaced so that taking and saving them stays
   * under a tenth of the time (never less often than every 30 s).
   */
  private checkpointDue(): boolean {
    const spacing = Math.min(30_000, Math.max(this.opts.checkpointIntervalMs, 10 * (this.captureMs + this.saveMs)));
    return this.clock() - (this.lastCheckpointAt ?? 0) >= spacing;
  }

  private capture(): Checkpoint {
    const feed = (f: FeedState) => ({
      db: f.feed.db,
      since: f.cursor.since,
      next_index: f.cursor.next,
      ...(f.position.witness && { witness: f.position.witness }),
    });
    return { feeds: { A: feed(this.feeds.A), B: feed(this.feeds.B) }, state: this.engine.exportState(), saved_at: new Date(this.clock()).toISOString() };
  }

  private async saveIfAcknowledged(): Promise<void> {
    const pending = this.pendingCheckpoint;
    if (!pending || this.fanout.ackedThrough < pending.through || this.superseded) return;
    try {
      const started = this.clock();
      // While stopping, this is the last save: it leaves the checkpoint to another instance seen claiming it.
      if (!(await this.checkpoints.save(pending.cp, this.stopping))) {
        this.pendingCheckpoint = null;
        this.log.warn("another correlator is claiming the checkpoint too: this one stops without saving it (it is that one's now)");
        return;
      }
      this.saveMs = this.clock() - started;
      this.checkpointSavedAt = Date.parse(pending.cp.saved_at);
      this.savedHeldState = pending.held;
      this.pendingCheckpoint = null;
    } catch (err) {
      this.pendingCheckpoint = null;
      if (err instanceof SecondInstanceError) {
        this.stepDown(err);
        return;
      }
      this.metrics.checkpointFailures.inc();
      this.log.warn({ err: (err as Error).message }, 'checkpoint not saved; will retry');
    }
  }

  /** Another instance writes this checkpoint: read nothing more, save nothing more; the service stops this one. */
  private stepDown(err: SecondInstanceError): void {
    this.superseded = err;
    this.metrics.secondInstance.inc({ stopped: 'this' });
    this.log.error({ other: err.other, code: err.code }, err.message);
    this.stopping = true;
    this.signalStop();
    this.signalSuperseded(err);
  }

  status(): Record<Side, FeedStatus> {
    const s = (f: FeedState): FeedStatus => ({
      db: f.feed.db,
      since: f.cursor.since,
      caughtUp: f.reachedEnd,
      pending: f.pending,
      failingSince: f.failingSince,
      lastError: f.lastError,
    });
    return { A: s(this.feeds.A), B: s(this.feeds.B) };
  }

  /**
   * Stop reading, flush and drain the sinks (bounded), save the checkpoint.
   * A second call waits for the first: `couchlog up` stops a superseded
   * pipeline on its own, and the whole service again at the end.
   */
  stop(): Promise<void> {
    this.stopped ??= this.stopOnce();
    return this.stopped;
  }

  private async stopOnce(): Promise<void> {
    this.stopping = true;
    this.signalStop();
    await this.loop;
    for (const side of ['A', 'B'] as const) this.feeds[side].reader.clear();
    const sinks = Promise.all(this.fanout.sinks.map((s) => s.close()));
    const drained = await Promise.race([sinks.then(() => true), sleep(this.opts.drainTimeoutMs).then(() => false)]);
    if (drained) {
      this.pendingCheckpoint = null;
      await this.checkpoint();
    } else {
      // Only a checkpoint taken before what is unacknowledged may be saved.
      this.log.warn({ unacknowledged: this.fanout.pending }, 'sinks did not drain in time; what they hold is decided again on the next start');
      await this.saveIfAcknowledged();
      // Their retries would otherwise go on (and keep the process alive) for as long as the server is away.
      for (const s of this.fanout.sinks) s.abandon?.();
      await Promise.race([sinks, sleep(1000)]);
    }
  }
}
