// Types of the correlation engine. The engine is pure: events and time come
// in through method calls, decisions come out; it never reads a clock, a
// timer, a file or the network.

/** A: HTTP request logs. B: network/TLS logs of the same connections. */
export type Side = 'A' | 'B';

export interface InputEvent {
  side: Side;
  /** Position in its feed: strictly increasing per side (assigned by the feed adapter). */
  index: number;
  /** The source document's id, kept in the output for tracing. */
  id: string;
  /** `src_ip:src_port`, normalised (see normalize.ts). */
  key: string;
  /** Event time, milliseconds since the epoch. */
  time: number;
  /** The source document without `_id`/`_rev`. */
  doc: Record<string, unknown>;
  /** Its CouchDB revision when above 1 (changed by an admin since it was stored): records built from it carry it. */
  rev?: string;
}

export interface EngineConfig {
  windowMs: number;
  /** Orphan A after its time + this, if no B matched it. */
  apacheEmitDelayMs: number;
  apacheAlwaysEmit: boolean;
  networkEmit: boolean;
  mode: 'one_to_many' | 'one_to_one';
  maxHttpItems: number;
  maxNetworkItems: number;
  networkTtlMs: number;
  /**
   * Events are decided in event-time order once both feeds have progressed
   * this far past them, so events up to this much out of order within a
   * feed, or between feeds, give the same result however they interleave.
   */
  reorderSlackMs: number;
  /**
   * Events later than this behind the watermark are decided with what is
   * in memory (counted as too late); within it, the engine finds every
   * partner, in memory or through a lookup, and corrects what it emitted.
   */
  allowedLatenessMs: number;
  /**
   * How far past the wall clock (given by clock()) an event's time may move
   * a feed's progress: a document dated later (a sender's wrong clock, or
   * a hostile one) waits for the clock like any other and is counted, but
   * cannot drag the watermark ahead and make every later document too late.
   */
  maxClockSkewMs: number;
}

export type OutputKind = 'correlated' | 'orphan_a' | 'orphan_b' | 'deleted';

export interface Output {
  kind: OutputKind;
  /** Deterministic: derived from the source document ids only. */
  id: string;
  /**
   * The record, ending with its bookkeeping fields `revision` (1 for the
   * first decision, +1 for each correction) and `decided_at` (ISO 8601).
   * A `deleted` output (a provisional orphan B that a late A matched) holds
   * only the fields that locate it (timestamp, src_ip, src_port) and
   * `deleted: true`.
   */
  record: Record<string, unknown>;
  revision: number;
  /**
   * Strictly increasing over the engine's outputs (decision wall-clock ms,
   * bumped to stay increasing): the version ClickHouse keeps the latest of.
   */
  version: number;
  /**
   * Present when the record's source document was edited or deleted by an
   * admin: the event times of its earlier contents (epoch ms), where earlier
   * decisions of this id were placed (see SinkRecord.formerTimes).
   */
  formerTimes?: readonly number[];
}

/** What a sink already holds for a record id (from a lookup): its content fingerprint and revision. */
export interface PriorRecord {
  fingerprint: string;
  revision: number;
  deleted: boolean;
  /**
   * The event time (ms) the record is stored at, when known. The lookup view
   * may be ahead of the feed: an admin's edit of a document's time is then
   * decided before the feed brings it, so the engine never withdraws the
   * old content, and learns the old place only from here.
   */
  time?: number;
  /**
   * Its `decided_at` (ms): the version of the decision stored. One between a
   * restored checkpoint's last version and the first version written since
   * was written by the killed run after its checkpoint, and another sink may
   * not have it (see EngineSnapshot.killedRunVersions).
   */
  decidedAt?: number;
  /** The B document a correlated record names: a B delivered again past the horizon was matched if one does. */
  bId?: string;
  /** The revisions (above 1) of its A and B documents it was built from (a_rev, b_rev). */
  aRev?: string;
  bRev?: string;
}

/**
 * The engine needs every stored event of one connection from `from` on
 * (both sides) to re-decide it: a late event whose partners left memory.
 */
export interface LookupRequest {
  key: string;
  src_ip: string;
  src_port: number;
  from: number;
  /**
   * Stored events dated after this wait for the clock anyway (parked, see
   * maxClockSkewMs) and are not known to the connection: the lookup need not
   * read past it. Infinity without a clock (a replay).
   */
  until: number;
  /** Record ids whose stored state is wanted besides those of the events found: records of withdrawn documents. */
  ids?: string[];
}

/**
 * What the engine holds, as source document ids (JSON; a checkpoint stores
 * it). Infinite times are null.
 */
export interface EngineSnapshot {
  v: 2;
  progress: Record<Side, number | null>;
  releasedUpTo: number | null;
  cacheFloor: number | null;
  lastVersion: number;
  /** Events not yet released: [side, document id]. */
  waiting: Array<[Side, string]>;
  /**
   * Connections that may still change: [key, complete from (null: -inf),
   * the events of their open segment as [side, id], the record ids whose
   * revision is above 1 or that are deleted as [id, revision, deleted],
   * true when it was still to be decided (a lookup pending at shutdown),
   * and, when it was to be decided exactly whatever its age (documents
   * changed by an admin), the documents withdrawn from it and not yet
   * decided without them as [side, id, event time, keep their record] and
   * the time from which it is decided exactly (null when there are none),
   * and the lateness horizon when its first out-of-order event came (its
   * lookup is judged by that horizon, not a later one)].
   */
  keys: Array<
    [
      string,
      number | null,
      Array<[Side, string]>,
      Array<[string, number, boolean]>,
      boolean?,
      (Array<[Side, string, number, boolean]> | null)?,
      (number | null)?,
      number?,
    ]
  >;
  /** Bases of the connections above whose earlier events were folded (see BaseSnapshot), by key, each connection's oldest first. */
  bases?: Array<[string, BaseSnapshot]>;
  /** Connections known but not held above (evicted, or left out of the snapshot): [key, latest event time], the most recent first. */
  evicted: Array<[string, number]>;
  /** Each feed's recent disorder (ms): the release waits as long after a restart. */
  disorder?: Record<Side, number>;
  /** Record ids of documents an admin changed: the event times their records were placed at (Output.formerTimes). */
  formerTimes?: Array<[string, number[]]>;
  /** Records of changed documents whose new content is not decided yet: [id, revision, deleted] of what was written. */
  carried?: Array<[string, number, boolean]>;
  /**
   * Versions that runs killed after a checkpoint may have written to one
   * sink and not another, as [after, before) (before null: this run has
   * written nothing yet). A record read back from log_correlated with a
   * version in one is written again at its next decision, even unchanged.
   */
  killedRunVersions?: Array<[number, number | null]>;
  /** Too-late events still to be checked against what the sinks hold (delivered again, or new): [side, id]. */
  unverified?: Array<[Side, string]>;
}

/**
 * A long connection's state after the events it no longer holds: the last
 * of them as [side, id, time], the time its state was expired to, its B
 * entries as [id, latest match time (null: unmatched), keepalives,
 * deadline] and its waiting A's as [id, deadline].
 */
export interface BaseSnapshot {
  after: [Side, string, number];
  /** Its number among the connection's folds. */
  seq?: number;
  expiredTo: number;
  bs: Array<[string, number | null, number, number]>;
  as: Array<[string, number]>;
}

/** Why an event or an entry left the engine without an output. */
export type DropReason = 'orphan_a_not_emitted' | 'orphan_b_not_emitted';

export interface EngineCounters {
  eventsIn: Record<Side, number>;
  correlated: number;
  orphans: Record<Side, number>;
  evictions: Record<Side, number>;
  dropped: Record<DropReason, number>;
  /** Events that arrived after the release point had passed them (out of order by more than the slack). */
  late: Record<Side, number>;
  /** Late by more than allowed_lateness: decided with what was in memory. */
  tooLate: Record<Side, number>;
  /** Dated more than maxClockSkewMs past the clock when they arrived: they did not move the watermark. */
  future: Record<Side, number>;
  /** Records emitted again with changed content (revision > 1), and deletions. */
  corrections: number;
  /** Connections looked up: partners of a late event had left memory, or a document past the horizon may have been decided before. */
  lookups: number;
  /** Re-delivered changes (same side and document id) ignored. */
  duplicates: number;
  /** Documents taken back (deleted or edited by an admin): earlier contents withdrawn. */
  withdrawn: Record<Side, number>;
}
