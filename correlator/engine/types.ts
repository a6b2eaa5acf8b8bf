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
}

export type OutputKind = 'correlated' | 'orphan_a' | 'orphan_b';

export interface Output {
  kind: OutputKind;
  /** Deterministic: derived from the source document ids only. */
  id: string;
  record: Record<string, unknown>;
}

/**
 * What the engine holds, as source document ids and feed indexes (JSON;
 * a checkpoint stores it). Infinite times are null.
 */
export interface EngineSnapshot {
  v: 1;
  progress: Record<Side, number | null>;
  releasedUpTo: number | null;
  /** Events not yet released: [side, feed index, document id]. */
  waiting: Array<[Side, number, string]>;
  /** A's waiting for a B, in decision order: [feed index, document id]. */
  pendingA: Array<[number, string]>;
  /** Buffered B's, in decision order: [feed index, document id, last match time, keepalives]. */
  networkB: Array<[number, string, number | null, number]>;
}

/** Why an event or an entry left the engine without an output. */
export type DropReason = 'http_buffer_full' | 'network_buffer_full' | 'orphan_a_not_emitted' | 'orphan_b_not_emitted';

export interface EngineCounters {
  eventsIn: Record<Side, number>;
  correlated: number;
  orphans: Record<Side, number>;
  evictions: Record<Side, number>;
  dropped: Record<DropReason, number>;
  /** Events that arrived after the release point had passed them (out of order by more than the slack). */
  late: Record<Side, number>;
}
