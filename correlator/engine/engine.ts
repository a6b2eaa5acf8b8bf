// The correlation engine: joins A (HTTP) and B (network) events of the same
// connection (src_ip:src_port). Pure: no I/O, no timers, no clock; events,
// feed progress, lookup answers and "now" come in, decisions come out.
//
// What must stay true:
//  - The records are a function of the set of stored events, not of when or
//    in what order they arrive: each connection's records are what KeySim
//    decides over that connection's events in event order (time, B before
//    A, document id). Events are released in that order once both feeds
//    are past them by `reorderSlackMs`, or by the disorder each feed has
//    recently shown if that is more (CouchDB 3 interleaves shards); an event that comes
//    later than that (a batch posted an hour late) re-runs its
//    connection's segment, and every record whose content changed is
//    emitted again under the same id with `revision` + 1 (or deleted: a
//    provisional orphan B that a late A matched). Decisions made before a
//    late event are therefore provisional; once the system is quiet the
//    outputs equal a replay of all stored events in event order.
//  - Memory is a bounded cache of connections (`maxHttpItems` /
//    `maxNetworkItems` events), least recently used first out. Every
//    connection knows from when its events are complete (`completeFrom`);
//    one evicted is remembered as key and latest time (`evicted`; beyond a
//    bound, `cacheFloor` rises past it instead). A late event whose
//    segment may reach before what is known asks for a lookup of its
//    connection (every stored event from the lateness horizon on, and what
//    the sinks hold for its records), answered through provide(). A long
//    connection folds its older events into a state (Base), so one that
//    never pauses (a proxy's upstream) holds a bounded number of them too.
//  - Re-delivered changes (same side and id) change nothing.
//  - exportState()/restore(): a restart continues from a snapshot of the
//    open connections (as document ids, plus a warm cache and the keys of
//    the others), deciding everything after it as an uninterrupted run
//    would; until the feeds catch up it re-writes what the crashed run may
//    have written differently after its checkpoint (`uncertain`), and a
//    record read back later with a version the crashed run wrote
//    (`killedRunVersions`).
import { fingerprint } from './fingerprint.js';
import { isoTime } from './iso-time.js';
import { KeySim, segmentGap, segmentStart, type SimState } from './key-sim.js';
import { outputId } from './merge-record.js';
import { LruLink, LruList } from './lru-list.js';
import { MinHeap } from './min-heap.js';
import type { BaseSnapshot, EngineConfig, EngineCounters, EngineSnapshot, InputEvent, LookupRequest, Output, OutputKind, PriorRecord, Side } from './types.js';

/** Event order: time, then B before A, then document id. Never feed position. */
export function eventBefore(x: InputEvent, y: InputEvent): boolean {
  if (x.time !== y.time) return x.time < y.time;
  if (x.side !== y.side) return x.side === 'B';
  return x.id < y.id;
}

interface Emitted {
  /** Fingerprint of the record last emitted; '' when deleted or never emitted. */
  fp: string;
  revision: number;
  deleted: boolean;
  /**
   * Re-derived after a restart, not emitted by this process: the crashed
   * run may have written something else after its checkpoint, so the next
   * decision of this id is written even if it looks the same.
   */
  unconfirmed?: boolean;
  /**
   * Taken from a lookup (what log_correlated holds) while its connection
   * was not uncertain. If one of the connection's events turns out to be
   * read again after a restart (released later), log_correlated may hold
   * what the crashed run wrote there after its checkpoint and another sink
   * never got: the entry becomes unconfirmed then.
   */
  fromLookup?: boolean;
  /**
   * Where the record is stored: the event time it was decided at, or for one
   * taken from a lookup PriorRecord.time. A decision elsewhere (another
   * content of the document, which a lookup through a view ahead of the feed
   * may bring before the feed withdraws the first) takes that place away.
   */
  time?: number;
}

/**
 * A connection's state after its events up to `after`, which it no longer
 * holds: a long, busy Keep-Alive connection (a proxy's upstream, every
 * request from one src_ip:src_port) keeps only its recent events, however
 * long it lives. A re-run that starts after `after` starts from `state`;
 * anything earlier needs the folded events back (a lookup).
 */
interface Base {
  after: InputEvent;
  state: SimState;
  /** Its number among the connection's folds (see thinLadder). */
  seq?: number;
}

/** One connection held in memory. */
class Conn {
  readonly events: InputEvent[] = [];
  /** Ids of its events per side, built only for long connections (a scan is cheaper for a few events). */
  private known: Record<Side, Set<string>> | null = null;
  readonly emitted = new Map<string, Emitted>();
  sim: KeySim;
  lastStepped: InputEvent | null = null;
  /** Earliest event admitted out of order and not yet re-run. */
  dirtyFrom: InputEvent | null = null;
  /**
   * The earliest of the out-of-order events not yet re-run that were within
   * the lateness horizon when they came, and the earliest horizon any of
   * them came under (Infinity: none). Whether its connection is looked up
   * is judged by them, not by the horizon at its decision nor by dirtyFrom:
   * a connection held undecided (drain(now, false)) while the feeds move on
   * must be decided as exactly as when its events arrived (else an event
   * within the horizon on arrival went without its lookup once a backlog
   * spanning more than allowed_lateness had been read meanwhile, or once a
   * too-late event of the same connection came before it).
   */
  dirtyExact: InputEvent | null = null;
  dirtyHorizon = Infinity;
  /**
   * Since the last re-run, an event within the horizon came late (behind
   * the release point, or held past the horizon's later position); and
   * whether a lookup of it was read back one more horizon (see resolve). A
   * connection made again after an eviction, its events in order, never
   * reads further back than its lookup. Not in snapshots: a connection
   * restored undecided is looked up from the horizon only.
   */
  lateExact = false;
  readBack = false;
  awaitingLookup = false;
  /**
   * Too-late events not held, waiting to be checked against what the sinks
   * hold before they are admitted (see toVerify()), and the `side:id` of
   * those still waiting: one withdrawn meanwhile, or brought by a lookup,
   * leaves the set and is passed over (a feed read again brings a long
   * connection's thousands at once).
   */
  unverified: InputEvent[] | null = null;
  unverifiedIds: Set<string> | null = null;
  /** How many of `unverified` the lookup out asked about (0: none out). */
  verifying = 0;
  /** The deadline queued for it in the engine's heap (NaN: none). */
  queuedDeadline = NaN;
  lastTime = -Infinity;
  removed = false;
  /** Events of each side it holds. */
  readonly count: Record<Side, number> = { A: 0, B: 0 };
  /** Some record of it has a revision above 1 or was deleted (a checkpoint then lists them). */
  revised = false;
  /**
   * Restored, or read again, after a restart and before the feeds caught
   * up: what the crashed run wrote for it after its checkpoint is unknown.
   * A B it matches is deleted in the sinks even without a known orphan
   * record (the sink writes nothing when there is none).
   */
  uncertain = false;
  /**
   * Looked up without what the sinks hold (no CouchDB sink): the record ids
   * of its events then, whose records (decided before they left memory) may
   * exist. The next decision of no record for one of them deletes it anyway,
   * as for an uncertain connection (a B matched now whose orphan record,
   * written when its A had not come, would otherwise stay). Kept per id
   * until that decision, not until the re-run: an A left unmatched is
   * decided only when its window closes (found by the arrival-order soak).
   */
  blind: Set<string> | null = null;
  /** What an admin's change (a withdrawal, a new content) left to decide; null for all but a few (see ConnChange). */
  change: ConnChange | null = null;
  /** Every held event comes after base.after (null: none folded). */
  base: Base | null = null;
  /**
   * Earlier bases, oldest first, ever sparser with age (see thinLadder): an
   * event late by more than the held events re-runs from the latest that
   * comes before it, looking up only what was folded since, not the whole
   * connection from the horizon.
   */
  older: Base[] = [];
  folds = 0;
  /** A state taken while stepping: the next base, once `trimEvery` more events are stepped past it. */
  mark: Base | null = null;
  stepsSinceMark = 0;
  /** Its places in the engine's least-recently-used lists of each side. */
  readonly linkA = new LruLink<Conn>(this);
  readonly linkB = new LruLink<Conn>(this);

  constructor(
    readonly key: string,
    /** Every event of this connection at or after this time is known. */
    public completeFrom: number,
    sim: KeySim,
  ) {
    this.sim = sim;
  }

  has(side: Side, id: string): boolean {
    const events = this.events;
    if (events.length <= 16) {
      for (const e of events) if (e.id === id && e.side === side) return true;
      return false;
    }
    if (this.known === null) {
      this.known = { A: new Set(), B: new Set() };
      for (const e of events) this.known[e.side].add(e.id);
    }
    return this.known[side].has(id);
  }

  added(ev: InputEvent): void {
    this.known?.[ev.side].add(ev.id);
  }

  /** Takes the event of this side and id out, if held. */
  remove(side: Side, id: string): InputEvent | null {
    const i = this.events.findIndex((e) => e.id === id && e.side === side);
    if (i < 0) return null;
    const [ev] = this.events.splice(i, 1);
    this.known?.[side].delete(id);
    this.count[side] -= 1;
    return ev!;
  }

  /** Takes its first `n` events out (folded into a base); answers them. */
  dropFirst(n: number): InputEvent[] {
    const gone = this.events.splice(0, n);
    for (const e of gone) {
      this.known?.[e.side].delete(e.id);
      this.count[e.side] -= 1;
    }
    return gone;
  }

  /** Something of it is still to be decided: out of order events, a lookup, withdrawals. */
  get unsettled(): boolean {
    return this.dirtyFrom !== null || this.awaitingLookup || this.change !== null || this.unverified !== null;
  }
}

/** What documents changed by an admin left to decide in one connection (kept apart: most connections never have any). */
interface ConnChange {
  /**
   * Its segments from this time on are decided exactly whatever their age
   * (looked up first when not all known): set by withdrawals and by the new
   * content of a changed document, which the lateness horizon does not
   * limit (an erasure or a fix may come days later).
   */
  exactFrom: number;
  /** Documents taken back (see withdraw()) whose connection is still to be decided without them. */
  withdrawals: Withdrawal[];
  /** Record ids of new contents (see replacedBy) whose stored state the next lookup brings. */
  ask: string[];
  /** Those asked: without a sink to ask, each is taken to exist (a decision without record deletes it). */
  asked: string[];
}

/** A document taken back from a connection: its earlier content, and whether its own record goes. */
interface Withdrawal {
  ev: InputEvent;
  conn: Conn;
  /** The document lives on (edited, or made again): its new content decides its record. */
  keepRecord: boolean;
  /** The connection held it: what was emitted for it is known. */
  held: boolean;
  /** A lookup asked the sinks what they hold for its record. */
  asked: boolean;
  /**
   * Made while its connection waited for a lookup asked before it: that
   * connection was rebuilt from the view (what was emitted for the event
   * left memory with it), and the answer names no record the request did
   * not ask for. So its record is asked for even if the connection held it.
   */
  duringLookup?: boolean;
}

/** The release waits at most this much for a feed's observed disorder; later events are corrections. */
const MAX_DISORDER_MS = 5 * 60_000;
/** Per in-order event: the disorder estimate fades over a few thousand events. */
const DISORDER_DECAY = 0.999;

/** Events of recently used, closed connections a checkpoint keeps (as ids) to restart with a warm cache. */
const WARM_EVENTS = 20_000;
/** Connections a checkpoint names without their events (key and latest time), so a restart knows a new one is new. */
const FORGOTTEN_KEYS = 50_000;
/** Withdrawn documents remembered, so a lookup that still finds one (a lagging copy of a cluster's view) does not bring it back. */
const RECENT_WITHDRAWALS = 10_000;
/** Killed runs whose versions a checkpoint keeps (see killedRunVersions); beyond it, a crash loop forgets the oldest. */
const KILLED_RUNS_KEPT = 64;

interface PendingOutput {
  kind: OutputKind;
  id: string;
  record: Record<string, unknown>;
  revision: number;
}

export function emptyCounters(): EngineCounters {
  return {
    eventsIn: { A: 0, B: 0 },
    correlated: 0,
    orphans: { A: 0, B: 0 },
    evictions: { A: 0, B: 0 },
    dropped: { orphan_a_not_emitted: 0, orphan_b_not_emitted: 0 },
    late: { A: 0, B: 0 },
    tooLate: { A: 0, B: 0 },
    future: { A: 0, B: 0 },
    corrections: 0,
    lookups: 0,
    duplicates: 0,
    withdrawn: { A: 0, B: 0 },
  };
}

export class CorrelationEngine {
  readonly counters: EngineCounters = emptyCounters();
  private readonly gap: number;
  private readonly waiting = new MinHeap<InputEvent>(eventBefore);
  /** Ids of the waiting events, per side. */
  private readonly waitingIds: Record<Side, Set<string>> = { A: new Set(), B: new Set() };
  /**
   * Waiting events the crashed run before a restart may have read and
   * decided (held in the checkpoint, or read again before the replay ended):
   * their connections stay uncertain whenever they are released (the clock
   * and the disorder estimate may release them later than the crashed run did).
   */
  private readonly replayedIds: Record<Side, Set<string>> = { A: new Set(), B: new Set() };
  private readonly deadlines = new MinHeap<{ at: number; conn: Conn }>((x, y) => x.at < y.at);
  private readonly progress: Record<Side, number> = { A: -Infinity, B: -Infinity };
  /** No feed's progress passes this: the last clock() plus maxClockSkewMs (+Infinity before any clock, as in a replay). */
  private progressCap = Infinity;
  /**
   * Events dated past progressCap when they came: parked until the clock
   * reaches them, without moving any progress (one would make every live
   * event late) and outside `waiting` (many would crowd live events out of
   * its bound). Their ids are in waitingIds, and snapshots list them.
   */
  private readonly ahead = new MinHeap<InputEvent>(eventBefore);
  /**
   * How far behind its own progress each feed has recently delivered events:
   * a CouchDB 3 `_changes` interleaves shards, so a backlog arrives out of
   * order by much more than reorder_slack_ms. Releasing that much later
   * turns would-be late events (each a re-run and a correction) into
   * in-order ones; results are the same either way, only cheaper. Decays
   * as in-order events come, and when an idle feed follows the clock.
   */
  private readonly disorder: Record<Side, number> = { A: 0, B: 0 };
  /** Every event at or before this time has been decided. */
  private releasedUpTo = -Infinity;
  /** Connections by key. */
  private readonly conns = new Map<string, Conn>();
  /** Connections holding events of each side, least recently used first: eviction frees the side that is over. */
  private readonly lru: Record<Side, LruList<Conn>> = { A: new LruList(), B: new LruList() };
  /**
   * Connections evicted from memory, with their latest event time (least
   * recently evicted first): a new event of one of them may need what was
   * evicted. Bounded; an entry that leaves raises cacheFloor instead.
   */
  private readonly evicted = new Map<string, number>();
  /** No connection in neither `conns` nor `evicted` has an event at or after this time. */
  private cacheFloor = -Infinity;
  private readonly cached: Record<Side, number> = { A: 0, B: 0 };
  private readonly dirty = new Set<Conn>();
  private newLookups: LookupRequest[] = [];
  private pending = new Map<string, PendingOutput>();
  private lastVersion = 0;
  /**
   * Counts what changes a snapshot beyond the clock (events taken, lookups
   * answered, connections evicted or pruned): equal counts, equal held state.
   */
  changes = 0;
  /** After a restore, until both feeds have caught up: connections touched are `uncertain`. */
  private replaying: Record<Side, boolean> | null = null;
  /**
   * Versions runs killed after their checkpoint may have written to
   * log_correlated and not to another sink, as [after, before); the last
   * stays open (Infinity) until this run writes its first version. The
   * replay covers what the killed run read from the feeds, but a lookup may
   * have shown it documents the feeds had not delivered (a view ahead of a
   * lagging copy): decided then, they come after the replay, and a lookup
   * reads their records back. Versions follow the wall clock, so this
   * run's are above the killed run's.
   */
  private killedRunVersions: Array<[number, number]> = [];
  /** Set while a restored connection is re-run: decisions fill `emitted` without outputs. */
  private silent: Map<string, [number, boolean]> | null = null;
  /** Withdrawals not decided yet, by `side:id`: a push of the same id (edited, or made again) keeps its record. */
  private readonly withdrawing = new Map<string, Withdrawal[]>();
  /**
   * Per record id of a withdrawn document, the event times of its withdrawn
   * contents (oldest id first, bounded like withdrawnRecently): where
   * earlier decisions of the record were placed, which every later output
   * of the id names (Output.formerTimes) for sinks keyed by time. Kept
   * after the first output: the record may move again, and a deletion
   * named twice is harmless.
   */
  private formerTimes = new Map<string, number[]>();
  /** Recently withdrawn contents, `side:id` → contentOf (oldest first, bounded): see provide(). */
  private readonly withdrawnRecently = new Map<string, string>();
  /**
   * What was emitted for the records of changed documents, taken from the
   * connection of their earlier content: their new content, in whatever
   * connection, decides them from there (a moved B that matches there
   * deletes its orphan record here).
   */
  private readonly carried = new Map<string, Emitted>();
  /** `side:id` of new contents pushed and not yet admitted (see replacedBy). */
  private readonly replacing = new Set<string>();
  /** A lookup answered without what the sinks hold (no CouchDB sink): a withdrawn record not known here is deleted anyway. */
  private priorsUnknown = false;
  /**
   * Recently folded events, `side:id` → contentOf (oldest first, as many as
   * the cache holds events): the same content delivered again (a cluster's
   * `_changes` switching copies) is a duplicate, not a late event before a
   * connection's state, which would cost a lookup (or, past the horizon, be
   * decided alone over its correct record).
   */
  private readonly foldedRecently = new Map<string, string>();

  /**
   * A connection keeps a state every this many steps and folds the events up
   * to the one before into its base: it holds at most about twice this many
   * events, a small share of the cache.
   */
  private readonly trimEvery: number;

  constructor(private readonly cfg: EngineConfig) {
    this.gap = segmentGap(cfg);
    this.trimEvery = Math.max(2, Math.min(1024, Math.floor(Math.min(cfg.maxHttpItems, cfg.maxNetworkItems) / 16)));
  }

  /** One event, from either feed, in any order. */
  push(ev: InputEvent): void {
    if (this.withdrawing.size > 0) this.pushedAgain(ev);
    const folded = this.foldedRecently.size > 0 && this.foldedRecently.get(`${ev.side}:${ev.id}`) === contentOf(ev);
    if (folded || this.waitingIds[ev.side].has(ev.id) || this.conns.get(ev.key)?.has(ev.side, ev.id)) {
      // Already held (a lookup brought the new content first): nothing replaces anything on admission.
      if (this.replacing.size > 0) this.replacing.delete(`${ev.side}:${ev.id}`);
      this.counters.duplicates += 1;
      return;
    }
    this.counters.eventsIn[ev.side] += 1;
    this.changes += 1;
    if (ev.time > this.progressCap) {
      this.park(ev);
      return;
    }
    const lag = this.progress[ev.side] - ev.time;
    if (lag > this.disorder[ev.side]) this.disorder[ev.side] = Math.min(lag, MAX_DISORDER_MS);
    else this.disorder[ev.side] *= DISORDER_DECAY;
    if (ev.time > this.progress[ev.side]) this.progress[ev.side] = ev.time;
    if (ev.time <= this.releasedUpTo) {
      this.counters.late[ev.side] += 1;
      if (ev.time >= this.horizon()) this.admit(ev);
      else {
        this.counters.tooLate[ev.side] += 1;
        this.toVerify(ev);
      }
    } else {
      // Bounded memory even if one feed stalls for good: the oldest waiting
      // event is decided early (counted as late, like any ordering slip).
      this.hold(this.waiting, ev);
    }
    this.release();
  }

  /**
   * A document taken back: deleted by an admin (an erasure), or edited
   * (`keepRecord`: its new content is pushed next and decides its record).
   * `ev` is its earlier content, which the engine may hold. Its connection
   * is decided again without it from its segment on, whatever its age (an
   * erasure may come days later), after a lookup when not all of that
   * segment is known or what the sinks hold for its record is not; its own
   * record is deleted unless kept. Withdrawing what was never held changes
   * no record, and withdrawing twice is harmless.
   */
  withdraw(ev: InputEvent, keepRecord = false): void {
    this.counters.withdrawn[ev.side] += 1;
    this.changes += 1;
    if (this.waitingIds[ev.side].has(ev.id)) {
      // Not decided yet, but maybe before: a change delivered again (a cluster, a restart) waits again
      // after its record was written, so what the sinks hold for it is asked like for any not held.
      const other = (e: InputEvent) => !(e.side === ev.side && e.id === ev.id);
      this.waiting.keep(other);
      this.ahead.keep(other);
      this.unwait(ev);
    }
    const conn = this.conns.get(ev.key) ?? this.connFor(ev.key);
    // Read again after a restart: the crashed run may have written its decisions to some sinks only.
    if (this.replaying && !conn.uncertain) this.makeUncertain(conn);
    // Waiting for its check: taken back like one waiting for release (found by a review: it was admitted after).
    conn.unverifiedIds?.delete(`${ev.side}:${ev.id}`);
    const held = this.takeContent(conn, ev, keepRecord);
    if (held) {
      this.cached[ev.side] -= 1;
      if (conn.dirtyFrom === held) conn.dirtyFrom = conn.events.find((e) => eventBefore(held, e)) ?? null;
      if (conn.lastStepped === held) conn.lastStepped = null;
    }
    if (keepRecord) this.carry(conn, outputId(ev));
    this.noteFormerTime(ev);
    const w: Withdrawal = { ev, conn, keepRecord, held: held !== null, asked: false, ...(conn.awaitingLookup && { duringLookup: true }) };
    const ch = changeOf(conn);
    ch.withdrawals.push(w);
    if (ev.time < ch.exactFrom) ch.exactFrom = ev.time;
    const sid = `${ev.side}:${ev.id}`;
    this.foldedRecently.delete(sid);
    this.withdrawing.set(sid, [...(this.withdrawing.get(sid) ?? []), w]);
    this.withdrawnRecently.delete(sid);
    this.withdrawnRecently.set(sid, contentOf(ev));
    if (this.withdrawnRecently.size > RECENT_WITHDRAWALS) this.withdrawnRecently.delete(this.withdrawnRecently.keys().next().value!);
    this.dirty.add(conn);
    this.touch(conn);
  }

  /**
   * Takes the withdrawn content out of its connection, if held. A held event
   * of the same document with a later revision is its new content, which a
   * lookup through a view ahead of the feed brought first: it stays, and its
   * record is written again at its next decision (made soon: its time is
   * decided exactly), naming the withdrawn content's place, where an
   * earlier record may be stored (found by a review: a folded connection
   * no longer knew the old content, and a ClickHouse row stayed live there).
   */
  private takeContent(conn: Conn, ev: InputEvent, keepRecord: boolean): InputEvent | null {
    const other = conn.has(ev.side, ev.id) ? conn.events.find((e) => e.side === ev.side && e.id === ev.id) : undefined;
    // Only a later revision of a document that lives on is a new content: a deleted document's
    // contents all go, and an earlier revision held (a change the feed coalesced) goes as before.
    if (other === undefined || !keepRecord || revisionOf(other) <= revisionOf(ev)) return conn.remove(ev.side, ev.id);
    const em = conn.emitted.get(outputId(ev));
    if (em) em.unconfirmed = true;
    this.decideExactly(conn, other.time);
    return null;
  }

  private noteFormerTime(ev: InputEvent): void {
    this.addFormerTime(outputId(ev), ev.time);
  }

  /** A record written where the lookup said it is stored, decided now at `ev`'s time elsewhere: the old place is named too. */
  private movedFromStored(id: string, prior: Emitted | undefined, ev: InputEvent): void {
    if (prior?.time !== undefined && prior.time !== ev.time) this.addFormerTime(id, prior.time);
  }

  private addFormerTime(id: string, time: number): void {
    const times = this.formerTimes.get(id) ?? [];
    if (!times.includes(time)) times.push(time);
    this.formerTimes.delete(id);
    this.formerTimes.set(id, times);
    if (this.formerTimes.size > RECENT_WITHDRAWALS) this.forgetFormerTimes();
  }

  /**
   * The oldest entry whose record has nothing pending: a document whose
   * withdrawal or new content is still to be decided keeps its times, however
   * many other documents change meanwhile (a mass erasure).
   */
  private forgetFormerTimes(): void {
    for (const id of this.formerTimes.keys()) {
      const sid = `${id[0]}:${id.slice(2)}`;
      if (this.carried.has(id) || this.withdrawing.has(sid) || this.replacing.has(sid) || this.pending.has(id)) continue;
      this.formerTimes.delete(id);
      return;
    }
  }

  /**
   * A withdrawn id pushed again (its new content, or the document made
   * again): its record stays, decided by that content. Answers whether a
   * withdrawal of it is pending (the event replaces earlier content).
   */
  private pushedAgain(ev: InputEvent): boolean {
    const sid = `${ev.side}:${ev.id}`;
    const pending = this.withdrawing.get(sid);
    if (pending === undefined) return false;
    for (const w of pending) {
      if (!w.keepRecord) this.carry(w.conn, outputId(w.ev));
      w.keepRecord = true;
    }
    this.replacing.add(sid);
    return true;
  }

  /** What was emitted for a record leaves the connection of its document's earlier content (see `carried`). */
  private carry(conn: Conn, id: string): void {
    const e = conn.emitted.get(id);
    if (e === undefined) return;
    this.carried.set(id, e);
    conn.emitted.delete(id);
  }

  /** What was emitted for a changed document's record, now this connection's (see `carried`). */
  private adoptCarried(conn: Conn, id: string): Emitted | undefined {
    const e = this.carried.get(id);
    if (e === undefined) return undefined;
    this.carried.delete(id);
    conn.emitted.set(id, e);
    return e;
  }

  /**
   * The new content of a changed document joined `conn`: decided exactly,
   * and what the sinks hold for its record is asked when not known here
   * (its earlier content's connection was not in memory).
   */
  private replacedBy(conn: Conn, ev: InputEvent): void {
    const id = outputId(ev);
    const ch = changeOf(conn);
    if (!conn.emitted.has(id) && !this.carried.has(id) && !ch.ask.includes(id)) ch.ask.push(id);
    this.decideExactly(conn, ev.time);
  }

  /** The connection is decided again from the segment holding `time`, exactly, whatever its age. */
  private decideExactly(conn: Conn | undefined, time: number): void {
    if (conn === undefined || conn.removed) return;
    const ch = changeOf(conn);
    if (time < ch.exactFrom) ch.exactFrom = time;
    this.dirty.add(conn);
  }

  /**
   * Reading from the start over sinks that already hold records (a run
   * killed before its first checkpoint): what is read until both feeds are
   * caught up is a replay, as after restore().
   */
  replayFromStart(): void {
    this.replaying = { A: true, B: true };
    this.killedRunVersions.push([this.lastVersion, Infinity]);
  }

  /** A version a killed run may have written after its checkpoint (see killedRunVersions). */
  private writtenByKilledRun(version: number): boolean {
    for (const [after, before] of this.killedRunVersions) if (version > after && version < before) return true;
    return false;
  }

  /**
   * The wall clock (ms), given before events are pushed: no feed's progress
   * runs more than maxClockSkewMs past it. A progress already past it (a
   * snapshot taken before this rule) is brought back to it.
   */
  clock(now: number): void {
    this.progressCap = now + this.cfg.maxClockSkewMs;
    let clamped = false;
    for (const side of ['A', 'B'] as const) {
      if (this.progress[side] > this.progressCap) {
        // Where an idle feed that follows the clock would be.
        this.progress[side] = now;
        clamped = true;
      }
    }
    // Its release point ran ahead too: brought back to where following the clock puts it, so events since are not all late.
    if (clamped) this.releasedUpTo = Math.min(this.releasedUpTo, now - this.cfg.reorderSlackMs);
    // Parked events whose time has come are pushed as if they came now.
    for (let ev = this.ahead.peek(); ev !== undefined && ev.time <= this.progressCap; ev = this.ahead.peek()) {
      this.ahead.pop();
      this.waitingIds[ev.side].delete(ev.id);
      this.counters.eventsIn[ev.side] -= 1;
      this.changes -= 1;
      this.push(ev);
    }
  }

  /** An event dated past the clock: parked (see `ahead`); beyond the bound, the nearest is decided early (counted as late). */
  private park(ev: InputEvent): void {
    this.counters.future[ev.side] += 1;
    this.hold(this.ahead, ev);
  }

  /** Holds an event in `queue` (waiting or ahead); past the buffers' bound, the queue's first is decided early, counted as late. */
  private hold(queue: MinHeap<InputEvent>, ev: InputEvent): void {
    queue.push(ev);
    this.waitingIds[ev.side].add(ev.id);
    if (this.replaying) this.replayedIds[ev.side].add(ev.id);
    if (queue.size > this.cfg.maxHttpItems + this.cfg.maxNetworkItems) {
      const first = queue.pop()!;
      this.counters.late[first.side] += 1;
      this.admit(first, this.unwait(first), true);
    }
  }

  /** A feed that is caught up and idle has seen everything up to `time` (its wall clock). */
  advance(side: Side, time: number): void {
    if (time > this.progress[side]) {
      // Caught up: what was out of order is read; the estimate halves every 10 s the feed follows the clock.
      const dt = Number.isFinite(this.progress[side]) ? time - this.progress[side] : Infinity;
      this.disorder[side] *= 0.5 ** (dt / 10_000);
      this.progress[side] = time;
    }
    // Released before the replay after a restart ends: the crashed run may
    // have released (and decided) these events too, by the same clock.
    this.release();
    if (this.replaying) {
      this.replaying[side] = false;
      if (!this.replaying.A && !this.replaying.B) this.replaying = null;
    }
  }

  /**
   * Decisions since the last call, at most one per record id, stamped with
   * `now` (wall-clock ms) as `decided_at`. Connections waiting for a lookup
   * are decided once provide() answers it.
   */
  drain(now: number, settleLate = true): Output[] {
    // Held back, connections with late events are decided once, with every
    // late event the next pages bring (CouchDB 3 interleaves its shards, so
    // one connection's late events come pages apart), not once per page:
    // each extra decision would be a correction to write.
    if (settleLate) for (const conn of [...this.dirty]) this.resolve(conn);
    const out: Output[] = [];
    if (this.pending.size === 0) return out;
    // One version for the whole drain (a record is in it at most once): it
    // only has to grow from one decision of a record to the next. One per
    // output ran ahead of the clock in a backlog (5,000 records in a
    // millisecond: 5 s ahead), and a run restarted from a checkpoint taken
    // before such a burst then numbered its corrections below rows the
    // killed run had already written: ClickHouse's FINAL kept those.
    const version = (this.lastVersion = Math.max(now, this.lastVersion + 1));
    const open = this.killedRunVersions[this.killedRunVersions.length - 1];
    if (open !== undefined && open[1] === Infinity) for (const w of this.killedRunVersions) w[1] = Math.min(w[1], version);
    for (const p of this.pending.values()) {
      p.record.revision = p.revision;
      p.record.decided_at = isoTime(version);
      const former = this.formerTimes.size > 0 ? this.formerTimes.get(p.id) : undefined;
      out.push({ kind: p.kind, id: p.id, record: p.record, revision: p.revision, version, ...(former ? { formerTimes: [...former] } : {}) });
    }
    this.pending = new Map();
    return out;
  }

  /** Connections with late events not decided yet (drain(now, false) holds them). */
  get held(): number {
    return this.dirty.size;
  }

  /** Lookups asked for since the last call (each connection once until provided). */
  lookups(): LookupRequest[] {
    const l = this.newLookups;
    this.newLookups = [];
    return l;
  }

  /**
   * The answer to a lookup: the stored events of the connection from
   * `from` on (both sides, any that are already known are ignored), and
   * what the sinks hold for its record ids (null: unknown).
   */
  provide(key: string, from: number, events: readonly InputEvent[], priors: ReadonlyMap<string, PriorRecord> | null): void {
    const conn = this.conns.get(key);
    if (!conn || !conn.awaitingLookup) return;
    conn.awaitingLookup = false;
    this.changes += 1;
    if (conn.verifying > 0) {
      this.verified(conn, priors);
      return;
    }
    conn.completeFrom = Math.min(conn.completeFrom, from);
    for (const ev of events) {
      // Every stored event not held yet joins, whatever its time: one past
      // the release point may have been taken early (a full release queue)
      // and evicted since; one the feed has not delivered yet is recognised
      // as a duplicate when it comes. Only those waiting for release stay there.
      if (conn.has(ev.side, ev.id) || this.waitingIds[ev.side].has(ev.id)) continue;
      // Folded into the base (a lookup asked only for records): known already.
      if (conn.base !== null && !eventBefore(conn.base.after, ev)) continue;
      if (this.withdrawnRecently.size > 0 && this.withdrawnRecently.get(`${ev.side}:${ev.id}`) === contentOf(ev)) continue;
      // Held now, as stored: no longer to be checked (else it was admitted a second time).
      conn.unverifiedIds?.delete(`${ev.side}:${ev.id}`);
      this.insert(conn, ev);
      if (conn.dirtyFrom === null || eventBefore(ev, conn.dirtyFrom)) conn.dirtyFrom = ev;
    }
    if (!priors) {
      this.priorsUnknown = true;
      conn.blind ??= new Set();
      for (const ev of conn.events) {
        const id = outputId(ev);
        if (!conn.emitted.has(id)) conn.blind.add(id);
      }
      // Withdrawn events are no longer among them: those asked about may have records too (a held
      // one asked because its connection had left memory: found by the arrival-order soak).
      for (const w of conn.change?.withdrawals ?? []) if (w.asked && !conn.emitted.has(outputId(w.ev))) conn.blind.add(outputId(w.ev));
    }
    if (priors) {
      for (const [id, p] of priors) {
        if (conn.emitted.has(id)) continue;
        // Replaying after a crash, log_correlated may hold a record another sink never got (killed
        // between their acknowledgments): unconfirmed, it is written again as it stands.
        const killed = p.decidedAt !== undefined && this.killedRunVersions.length > 0 && this.writtenByKilledRun(p.decidedAt);
        conn.emitted.set(id, {
          fp: p.deleted ? '' : p.fingerprint,
          revision: p.revision,
          deleted: p.deleted,
          ...(conn.uncertain || killed ? { unconfirmed: true } : { fromLookup: true }),
          ...(p.time !== undefined && { time: p.time }),
        });
        if (p.revision > 1 || p.deleted) conn.revised = true;
      }
    }
    this.dirty.add(conn);
    this.touch(conn);
    this.evictIfFull(conn);
  }

  /**
   * Events before this are too late to be exact. A watermark at +Infinity
   * (both feeds declared complete, as a replay to the end does) puts no
   * event beyond the horizon.
   */
  private horizon(): number {
    const w = this.watermark;
    return Number.isFinite(w) ? w - this.cfg.allowedLatenessMs : -Infinity;
  }

  /** The watermark: both feeds have been seen up to here. */
  get watermark(): number {
    return Math.min(this.progress.A, this.progress.B);
  }

  /** `remembered`: records whose last output the connections in memory remember (fingerprint and revision). */
  sizes(): { waiting: number; connections: number; open: number; cachedA: number; cachedB: number; awaitingLookup: number; remembered: number } {
    let open = 0;
    let awaiting = 0;
    let remembered = 0;
    for (const c of this.conns.values()) {
      if (c.sim.live) open += 1;
      if (c.awaitingLookup) awaiting += 1;
      remembered += c.emitted.size;
    }
    return {
      waiting: this.waiting.size + this.ahead.size,
      connections: this.conns.size,
      open,
      cachedA: this.cached.A,
      cachedB: this.cached.B,
      awaitingLookup: awaiting,
      remembered,
    };
  }

  // ---- release, admission, re-runs -------------------------------------------------

  private release(): void {
    const slack = (side: Side) => Math.max(this.cfg.reorderSlackMs, this.disorder[side]);
    const until = Math.min(this.progress.A - slack('A'), this.progress.B - slack('B'));
    for (let ev = this.waiting.peek(); ev !== undefined && ev.time <= until; ev = this.waiting.peek()) {
      this.waiting.pop();
      this.admit(ev, this.unwait(ev), true);
    }
    if (until > this.releasedUpTo) this.releasedUpTo = until;
    this.expireDue();
    this.pruneBeyondHorizon();
  }

  /** Ends what can no longer match anything in connections whose deadline has passed. */
  private expireDue(): void {
    const until = this.releasedUpTo;
    for (let d = this.deadlines.peek(); d !== undefined && d.at < until; d = this.deadlines.peek()) {
      this.deadlines.pop();
      const conn = d.conn;
      if (conn.removed || conn.queuedDeadline !== d.at) continue;
      conn.queuedDeadline = NaN;
      if (conn.unsettled) continue;
      conn.sim.expire(until);
      this.queueDeadline(conn);
    }
  }

  private queueDeadline(conn: Conn): void {
    const at = conn.sim.nextDeadline();
    if (at === Infinity || at === conn.queuedDeadline) return;
    if (!Number.isNaN(conn.queuedDeadline) && conn.queuedDeadline < at) return; // an earlier wake-up is queued
    conn.queuedDeadline = at;
    this.deadlines.push({ at, conn });
  }

  /** Forgets a popped waiting event; answers whether it was read during a replay. */
  private unwait(ev: InputEvent): boolean {
    this.waitingIds[ev.side].delete(ev.id);
    return this.replayedIds[ev.side].delete(ev.id);
  }

  /**
   * A released (or late) event joins its connection: stepped when in order,
   * else the connection is re-run at drain. A `held` event waited in a
   * queue: it was not late when it came, so it is decided exactly however
   * far the watermark ran meanwhile (a replay after a kill before the first
   * checkpoint releases a day's backlog only when its feeds catch up and
   * the watermark jumps to the clock: judged by that horizon, the killed
   * run's exact records were rewritten as orphans, seed 21199).
   */
  private admit(ev: InputEvent, replayed = false, held = false): void {
    const conn = this.conns.get(ev.key) ?? this.connFor(ev.key);
    this.insert(conn, ev);
    this.touch(conn);
    if ((this.replaying || replayed) && !conn.uncertain) this.makeUncertain(conn);
    // Before any step: what its decision replaces must be known first.
    if (this.replacing.size > 0 && this.replacing.delete(`${ev.side}:${ev.id}`)) this.replacedBy(conn, ev);
    const inOrder = !conn.unsettled && ev.time >= conn.sim.expiredTo && (conn.lastStepped === null || eventBefore(conn.lastStepped, ev));
    // A new connection whose segment may reach into what was evicted must be looked up first. New:
    // no other event of it since it is complete (a too-late one held, older, does not count: found by a review).
    const mayMissPartners =
      conn.base === null &&
      ev.time - this.gap < conn.completeFrom &&
      (conn.events.length === 1 || conn.events.every((e) => e === ev || e.time < conn.completeFrom));
    if (inOrder && !mayMissPartners) {
      conn.sim.step(ev);
      conn.lastStepped = ev;
      const folded = this.marked(conn, ev);
      if (folded) this.fold(conn, folded);
      if (ev.time <= this.releasedUpTo) conn.sim.expire(this.releasedUpTo);
      this.queueDeadline(conn);
    } else {
      if (conn.dirtyFrom === null || eventBefore(ev, conn.dirtyFrom)) conn.dirtyFrom = ev;
      const now = this.horizon();
      // Held past the horizon: looked up as far back as when it was at the watermark.
      const horizon = held && ev.time < now ? ev.time - this.cfg.allowedLatenessMs : now;
      if (ev.time >= horizon) {
        if (conn.dirtyExact === null || eventBefore(ev, conn.dirtyExact)) conn.dirtyExact = ev;
        if (horizon < conn.dirtyHorizon) conn.dirtyHorizon = horizon;
        if (ev.time <= this.releasedUpTo || horizon !== now) conn.lateExact = true;
      }
      this.dirty.add(conn);
    }
    this.evictIfFull(conn);
  }

  /**
   * The crashed run before a restart may have decided this connection after
   * its checkpoint: what a lookup took from log_correlated for it before
   * that was known is written again at its next decision, for the sinks
   * that may not have it.
   */
  private makeUncertain(conn: Conn): void {
    conn.uncertain = true;
    for (const e of conn.emitted.values()) if (e.fromLookup) e.unconfirmed = true;
  }

  /** Least recently used first: touching moves it to the end of the lists of the sides it holds. */
  private touch(conn: Conn): void {
    if (conn.count.A > 0) this.lru.A.touch(conn.linkA);
    if (conn.count.B > 0) this.lru.B.touch(conn.linkB);
  }

  /** A connection not in memory: complete from past what was evicted of it, or the cache floor. */
  private connFor(key: string): Conn {
    const evictedUpTo = this.evicted.get(key);
    this.evicted.delete(key);
    const conn = this.newConn(key, Math.max(this.cacheFloor, evictedUpTo === undefined ? -Infinity : evictedUpTo + 1));
    // What was known of the key stays known when it leaves again holding only older events (a too-late
    // one on a key reused since): evicted or pruned at an older time, a later partner went without a lookup.
    if (evictedUpTo !== undefined) conn.lastTime = evictedUpTo;
    return conn;
  }

  private newConn(key: string, completeFrom: number): Conn {
    const conn: Conn = new Conn(key, completeFrom, null as unknown as KeySim);
    conn.sim = this.simFor(conn);
    this.conns.set(key, conn);
    return conn;
  }

  private simFor(conn: Conn, from?: SimState): KeySim {
    return new KeySim(this.cfg, (id, ev, record, dropped) => this.decided(conn, id, ev, record, dropped), from);
  }

  /**
   * After a step (in event order, nothing expired past the event): every
   * `trimEvery` steps the state is marked, and the mark it replaces is
   * answered, to be folded (see Base). Folding one mark behind keeps the
   * latest events held: a little lateness re-runs from memory.
   */
  private marked(conn: Conn, ev: InputEvent): Base | null {
    if (++conn.stepsSinceMark < this.trimEvery) return null;
    const before = conn.mark;
    conn.mark = { after: ev, state: conn.sim.state() };
    conn.stepsSinceMark = 0;
    return before !== null && before !== conn.base ? before : null;
  }

  /** The events up to `base.after` leave memory, and so does what was emitted for them, but for the entries the base still holds. */
  private fold(conn: Conn, base: Base, prune = true): void {
    const events = conn.events;
    let n = 0;
    while (n < events.length && !eventBefore(base.after, events[n]!)) n++;
    if (conn.base !== null) conn.older.push(conn.base);
    base.seq = ++conn.folds;
    conn.base = base;
    thinLadder(conn.older, conn.folds);
    for (const ev of conn.dropFirst(n)) {
      this.cached[ev.side] -= 1;
      const sid = `${ev.side}:${ev.id}`;
      this.foldedRecently.delete(sid);
      this.foldedRecently.set(sid, contentOf(ev));
    }
    const bound = this.cfg.maxHttpItems + this.cfg.maxNetworkItems;
    for (const sid of this.foldedRecently.keys()) {
      if (this.foldedRecently.size <= bound) break;
      this.foldedRecently.delete(sid);
    }
    this.changes += 1;
    if (prune) this.forgetFolded(conn);
  }

  /**
   * A too-late event not held: decided alone (with what memory holds), but
   * first checked against what the sinks hold. A feed read again from its
   * start (a database restored from a backup, a cluster copy lost) delivers
   * every document again, most past the horizon; deciding those alone
   * overwrote their exact records (a Keep-Alive request renumbered 1, an A
   * or B matched then made an orphan). The new content of a document being
   * withdrawn (an admin's change, read now) goes on as before; an edited one
   * read again is checked with its revision (a restore keeps revisions).
   */
  private toVerify(ev: InputEvent): void {
    if (this.withdrawing.has(`${ev.side}:${ev.id}`) || this.replacing.has(`${ev.side}:${ev.id}`)) {
      this.admit(ev);
      return;
    }
    const conn = this.conns.get(ev.key) ?? this.connFor(ev.key);
    const sid = `${ev.side}:${ev.id}`;
    if (conn.unverifiedIds?.has(sid)) {
      this.counters.duplicates += 1;
      return;
    }
    (conn.unverifiedIds ??= new Set()).add(sid);
    (conn.unverified ??= []).push(ev);
    this.dirty.add(conn);
  }

  /**
   * Asks what the sinks hold for the records of a connection's unverified
   * events, and for a B the records of the A's it could have matched first
   * (from min(window, emit delay) before it to window after it): one that
   * names it means it was matched.
   */
  private askVerification(conn: Conn): boolean {
    const ids = conn.unverifiedIds;
    const evs = ids === null ? [] : conn.unverified!.filter((ev) => ids.has(`${ev.side}:${ev.id}`));
    if (evs.length === 0) {
      conn.unverified = null;
      conn.unverifiedIds = null;
      return false;
    }
    conn.unverified = evs;
    let from = Infinity;
    let until = -Infinity;
    for (const ev of evs) {
      const reach = ev.side === 'B' ? [Math.min(this.cfg.windowMs, this.cfg.apacheEmitDelayMs), this.cfg.windowMs] : [0, 0];
      from = Math.min(from, ev.time - reach[0]!);
      until = Math.max(until, ev.time + reach[1]!);
    }
    const [ip, port] = splitKey(conn.key);
    conn.awaitingLookup = true;
    conn.verifying = evs.length;
    this.counters.lookups += 1;
    this.newLookups.push({ key: conn.key, src_ip: ip, src_port: port, from, until, ids: evs.map(outputId) });
    this.dirty.delete(conn);
    return true;
  }

  /**
   * The answer about unverified events: one whose record the sinks hold
   * (not written by a killed run, which another sink may lack), or a B a
   * stored record names, was decided before: a duplicate. The rest are
   * admitted, too late, as before. Without what the sinks hold (no CouchDB
   * sink) every one is admitted.
   */
  private verified(conn: Conn, priors: ReadonlyMap<string, PriorRecord> | null): void {
    const ids = conn.unverifiedIds!;
    const evs = conn.unverified!.splice(0, conn.verifying).filter((ev) => ids.delete(`${ev.side}:${ev.id}`));
    conn.verifying = 0;
    if (ids.size === 0) {
      conn.unverified = null;
      conn.unverifiedIds = null;
    }
    if (priors === null) this.priorsUnknown = true;
    // A record names the source revision it was built from when above 1 (a_rev, b_rev): an edit read
    // again is a duplicate only of a record built from that edit.
    const named = new Set<string>();
    for (const p of priors?.values() ?? []) if (p.bId !== undefined) named.add(`${p.bId}\u0000${p.bRev ?? ''}`);
    let lastTime = conn.lastTime;
    for (const ev of evs) {
      const p = priors?.get(outputId(ev));
      const rev = ev.rev ?? '';
      const same = p !== undefined && (ev.side === 'A' ? p.aRev : p.bRev) === ev.rev;
      const stored = same && !(p.decidedAt !== undefined && this.killedRunVersions.length > 0 && this.writtenByKilledRun(p.decidedAt));
      if (stored || (ev.side === 'B' && named.has(`${ev.id}\u0000${rev}`))) {
        this.counters.duplicates += 1;
        if (ev.time > lastTime) lastTime = ev.time;
      } else this.admit(ev);
    }
    if (conn.unsettled) {
      // What else it had to decide (a late event within the horizon, more unverified ones) waited for this answer.
      this.dirty.add(conn);
    } else if (conn.sim.live) {
      // Its deadline may have passed while it waited (expireDue passes over unsettled connections).
      conn.sim.expire(this.releasedUpTo);
      this.queueDeadline(conn);
    } else if (conn.events.length === 0 && this.conns.get(conn.key) === conn) {
      // Made for these alone, all duplicates: it goes again, its key remembered up to them.
      if (Number.isFinite(lastTime)) this.forget(conn.key, lastTime);
      this.removeConn(conn);
    }
  }

  /** Decides the held events at or before the base alone (too late ones), and takes them out: the rest re-runs from the base. */
  private decideAlone(conn: Conn): void {
    const after = conn.base!.after;
    let n = 0;
    while (n < conn.events.length && !eventBefore(after, conn.events[n]!)) n++;
    for (const ev of conn.dropFirst(n)) {
      this.cached[ev.side] -= 1;
      const sim = this.simFor(conn);
      sim.step(ev);
      sim.expire(Infinity);
    }
    conn.dirtyFrom = conn.events[0] ?? null;
  }

  /** What was emitted is remembered only where a re-run may decide again (see fold). */
  private forgetFolded(conn: Conn): void {
    // What was emitted is kept for the held events, the entries of every base
    // kept (their prior when a re-run starts there) and withdrawn documents
    // still to be decided; the rest is final (a lookup brings it back when
    // asked). Not only the folded events': an A decided after its event was
    // folded, or priors a lookup brought, would stay for the connection's life.
    const keep = new Set<string>();
    for (const e of conn.events) keep.add(outputId(e));
    for (const b of conn.base ? [...conn.older, conn.base] : conn.older) {
      for (const x of b.state.bs) keep.add(outputId(x.ev));
      for (const a of b.state.as) keep.add(outputId(a.ev));
    }
    for (const w of conn.change?.withdrawals ?? []) keep.add(outputId(w.ev));
    for (const id of conn.emitted.keys()) if (!keep.has(id)) conn.emitted.delete(id);
  }

  /**
   * Whether the connection's base serves its next re-run: that starts after
   * it (null). Otherwise (a late event, a withdrawal or a changed document
   * at or before it) the latest earlier base that does becomes the base,
   * or none does, and the connection knows its events only from past what
   * was folded: answers from when a lookup must bring them back (the
   * earlier base's last event; -Infinity: from the horizon).
   */
  private baseServes(conn: Conn): number | null {
    const newest = conn.base;
    if (newest === null) return null;
    const first = conn.dirtyFrom;
    const exactFrom = conn.change?.exactFrom ?? Infinity;
    const serves = (b: Base) =>
      (first === null || (eventBefore(b.after, first) && first.time >= b.state.expiredTo)) &&
      (exactFrom === Infinity || (exactFrom > b.after.time && exactFrom >= b.state.expiredTo));
    if (serves(newest)) return null;
    conn.completeFrom = Math.max(conn.completeFrom, newest.after.time + 1);
    conn.mark = null;
    conn.stepsSinceMark = 0;
    while (conn.older.length > 0) {
      const b = conn.older.pop()!;
      if (serves(b)) {
        conn.base = b;
        // The folds after it are gone: the next is numbered after it, so the ladder thins as if they never were.
        conn.folds = b.seq ?? conn.folds;
        return b.after.time;
      }
    }
    conn.base = null;
    return -Infinity;
  }

  private insert(conn: Conn, ev: InputEvent): void {
    const events = conn.events;
    let i = events.length;
    while (i > 0 && eventBefore(ev, events[i - 1]!)) i--;
    events.splice(i, 0, ev);
    conn.added(ev);
    if (ev.time > conn.lastTime) conn.lastTime = ev.time;
    this.cached[ev.side] += 1;
    conn.count[ev.side] += 1;
  }

  /** Re-runs a connection from the segment of its earliest out-of-order event, or asks for a lookup first. */
  private resolve(conn: Conn): void {
    const first = conn.dirtyFrom;
    const ch = conn.change;
    if (conn.awaitingLookup || conn.removed || (first === null && ch === null && conn.unverified === null)) {
      this.dirty.delete(conn);
      return;
    }
    if (conn.unverified !== null && this.askVerification(conn)) return;
    if (first === null && ch === null) {
      this.dirty.delete(conn);
      return;
    }
    // Only too late (none within the horizon) and before the folded part: decided alone, with what
    // is here, as documents past the horizon are, rather than looked up from a state kept long before it.
    if (conn.base !== null && ch === null && conn.dirtyExact === null && first !== null && !eventBefore(conn.base.after, first)) {
      this.decideAlone(conn);
      this.resolve(conn);
      return;
    }
    // Before the rest: what reaches before the base needs the events it folded, looked up again.
    const foldedFrom = this.baseServes(conn);
    const baseLost = foldedFrom !== null;
    const events = conn.events;
    let start = first === null ? events.length : segmentStart(events, events.indexOf(first), this.gap);
    const horizon = Math.min(this.horizon(), conn.dirtyHorizon);
    // An earlier base serves: only what was folded after it is read again, however old.
    let from = foldedFrom !== null && foldedFrom !== -Infinity ? foldedFrom : horizon - this.gap - this.cfg.reorderSlackMs;
    // A segment that reaches back into the base is known: the base holds what came before.
    // Not for a connection restored undecided (completeFrom Infinity): what the sinks hold is asked first.
    const knownBefore = (s: number) => (s === 0 && conn.base !== null && conn.completeFrom !== Infinity) || events[s]!.time - this.gap >= conn.completeFrom;
    // From the earliest event that was within the horizon on arrival (or the next one, if it was withdrawn since).
    const exact = conn.dirtyExact;
    const xi = exact === null ? -1 : events.findIndex((e) => !eventBefore(e, exact));
    let lookup = baseLost || (xi >= 0 && !knownBefore(segmentStart(events, xi, this.gap)) && conn.completeFrom > from);
    const asking: string[] = [];
    if (ch !== null) {
      // The segment of each withdrawn or replacing event, whatever its age: a withdrawal can split it.
      const wFrom = ch.exactFrom;
      let i = 0;
      while (i < events.length && events[i]!.time < wFrom - this.gap) i++;
      if (events.length > 0) start = Math.min(start, segmentStart(events, Math.min(i, events.length - 1), this.gap));
      const earliest = Math.min(wFrom, events[start]?.time ?? Infinity) - this.gap - this.cfg.reorderSlackMs;
      const heldUnknown: string[] = [];
      for (const w of ch.withdrawals) {
        const id = outputId(w.ev);
        if (!w.keepRecord && !w.asked && !conn.emitted.has(id)) (w.held && !w.duringLookup ? heldUnknown : asking).push(id);
      }
      for (const id of ch.ask) if (!conn.emitted.has(id) && !this.carried.has(id)) asking.push(id);
      const reachesUnknown = !(start === 0 && conn.base !== null) && conn.completeFrom > earliest;
      if (reachesUnknown || asking.length > 0 || baseLost) {
        lookup = true;
        from = Math.min(from, earliest);
      }
      // A held event with nothing emitted for it was decided without a record while its connection
      // was all in memory, unless the connection left memory since (taking what was emitted with it)
      // and the event came back (a change delivered again): that connection is looked up anyway,
      // and what the sinks hold for the event's record is asked with it (found by a review: an
      // orphan B record stayed after its deletion).
      if (lookup) asking.push(...heldUnknown);
    }
    // Looked up already for a late event, and the segment to re-run still begins within a gap of
    // where that lookup began: it may reach further back (a Keep-Alive chain across the horizon, an
    // earlier connection on a reused port), and re-run without its beginning its B was lost and its
    // records, exact until then, were rewritten as orphans (found by a review, 2026-12-07). Read back
    // one more horizon, once per re-run: not for a connection made again after an eviction with its
    // events in order (a busy NAT port, never a gap apart, read its history again at every eviction),
    // nor without the CouchDB sink (the re-run would rewrite every record read back).
    const back = conn.completeFrom - this.cfg.allowedLatenessMs;
    if (
      !lookup &&
      conn.lateExact &&
      !conn.readBack &&
      !this.priorsUnknown &&
      xi >= 0 &&
      start < events.length &&
      !knownBefore(start) &&
      Number.isFinite(back) &&
      conn.completeFrom <= from
    ) {
      lookup = true;
      from = back;
      conn.readBack = true;
    }
    const base = conn.base;
    if (lookup && base !== null && (baseLost || start === 0)) {
      // Its base holds what came before it: only what came after is read, and what the sinks hold
      // for the base's open entries is asked (a connection restored undecided knows none of it).
      from = Math.max(from, base.after.time);
      for (const x of [...base.state.bs, ...base.state.as]) {
        const id = outputId(x.ev);
        if (!conn.emitted.has(id) && !asking.includes(id)) asking.push(id);
      }
    }
    if (lookup) {
      const [ip, port] = splitKey(conn.key);
      conn.awaitingLookup = true;
      this.counters.lookups += 1;
      if (ch !== null) {
        for (const w of ch.withdrawals) if (asking.includes(outputId(w.ev))) w.asked = true;
        ch.asked.push(...ch.ask);
        ch.ask = [];
      }
      // Stored events past the clock's cap wait for it (parked), but for those taken early (a full
      // queue) or before the clock went back: the connection's latest known time covers them (found by a review).
      const known = Math.max(conn.lastTime, Number.isFinite(conn.completeFrom) ? conn.completeFrom - 1 : -Infinity);
      const until = Math.max(this.progressCap, known);
      this.newLookups.push({ key: conn.key, src_ip: ip, src_port: port, from, until, ...(asking.length > 0 ? { ids: asking } : {}) });
      this.dirty.delete(conn);
      return;
    }
    if (ch !== null && this.priorsUnknown) for (const id of ch.asked) if (!conn.emitted.has(id)) conn.emitted.set(id, { fp: '', revision: 1, deleted: false });
    this.rerun(conn, Math.min(start, Math.max(events.length - 1, 0)));
    this.dirty.delete(conn);
    conn.change = null;
    if (ch !== null && ch.withdrawals.length > 0) this.settleWithdrawals(conn, ch.withdrawals);
  }

  /** After its re-run without them: the records of withdrawn documents are deleted (unless kept); an emptied connection leaves. */
  private settleWithdrawals(conn: Conn, withdrawals: readonly Withdrawal[]): void {
    for (const w of withdrawals) {
      const sid = `${w.ev.side}:${w.ev.id}`;
      const rest = (this.withdrawing.get(sid) ?? []).filter((x) => x !== w);
      if (rest.length > 0) this.withdrawing.set(sid, rest);
      else this.withdrawing.delete(sid);
      if (w.keepRecord) continue;
      const id = outputId(w.ev);
      // Without a sink to ask (no CouchDB sink), a record that may exist is deleted anyway.
      if (!w.held && !conn.emitted.has(id) && this.priorsUnknown) conn.emitted.set(id, { fp: '', revision: 1, deleted: false });
      this.decided(conn, id, w.ev, null, false);
    }
    if (conn.events.length === 0 && !conn.sim.live) {
      this.forget(conn.key, Number.isFinite(conn.lastTime) ? conn.lastTime : Math.max(...withdrawals.map((w) => w.ev.time)));
      this.removeConn(conn);
    }
  }

  /** Decides the connection again from events[start] (a segment start: nothing before it matters). */
  private rerun(conn: Conn, start: number): void {
    const events = conn.events;
    // What earlier segments still hold (the connection was unsettled when
    // their deadlines passed: expireDue skips it) is decided first: all of
    // it ends before the re-run part, and before anything withdrawn.
    const bound = Math.min(events[start]?.time ?? Infinity, conn.change?.exactFrom ?? Infinity);
    if (conn.sim.live && bound !== Infinity) conn.sim.expire(bound);
    const base = start === 0 ? conn.base : null;
    conn.sim = this.simFor(conn, base?.state);
    conn.mark = base;
    conn.stepsSinceMark = 0;
    // Every mark of the re-run is folded (the ladder rebuilt as the steps went), not only the last.
    const folded: Base[] = [];
    for (let i = start; i < events.length; i++) {
      conn.sim.step(events[i]!);
      const m = this.marked(conn, events[i]!);
      if (m) folded.push(m);
    }
    conn.sim.expire(this.releasedUpTo);
    conn.lastStepped = events[events.length - 1] ?? null;
    conn.dirtyFrom = null;
    conn.dirtyExact = null;
    conn.dirtyHorizon = Infinity;
    conn.lateExact = false;
    conn.readBack = false;
    conn.queuedDeadline = NaN;
    this.queueDeadline(conn);
    folded.forEach((m, i) => this.fold(conn, m, i === folded.length - 1));
  }

  /** Every decision of every connection comes here: emitted when it differs from what was emitted. */
  private decided(conn: Conn, id: string, ev: InputEvent, record: Record<string, unknown> | null, dropped: boolean): void {
    const prior = conn.emitted.get(id) ?? (this.carried.size > 0 ? this.adoptCarried(conn, id) : undefined);
    if (this.silent) {
      const saved = this.silent.get(id);
      if (saved) conn.revised = true;
      if (record !== null) conn.emitted.set(id, { fp: fingerprint(record), revision: saved?.[0] ?? 1, deleted: false, unconfirmed: true, time: ev.time });
      else if (saved) conn.emitted.set(id, { fp: '', revision: saved[0], deleted: true, unconfirmed: true });
      return;
    }
    const queued = this.pending.get(id);
    const blind = conn.blind !== null && conn.blind.delete(id);
    if (conn.blind?.size === 0) conn.blind = null;
    if (record === null) {
      // A B's orphan record can exist only where orphan Bs are emitted.
      const mayExist = conn.uncertain || (blind && (ev.side === 'A' || this.cfg.networkEmit));
      if (prior === undefined && mayExist && (!dropped || ev.side === 'A')) {
        // Replaying after a crash: the crashed run may have written a record under this id that
        // this decision does not keep: a B as an orphan (matched now), an A matched to a B that
        // now goes to another A (one_to_one) while orphan As are not emitted.
        if (dropped) this.counters.dropped.orphan_a_not_emitted += 1;
        conn.emitted.set(id, { fp: '', revision: 1, deleted: false });
        this.decided(conn, id, ev, null, false);
        return;
      }
      if (prior === undefined) {
        if (dropped) {
          // Counted once per id: a revision-0 entry remembers it.
          this.counters.dropped[ev.side === 'A' ? 'orphan_a_not_emitted' : 'orphan_b_not_emitted'] += 1;
          conn.emitted.set(id, { fp: '', revision: 0, deleted: true });
        }
        return;
      }
      if (prior.deleted && !prior.unconfirmed) return;
      // A confirmation of a deletion keeps its revision; a new deletion is the next one.
      const revision = queued ? queued.revision : prior.deleted ? prior.revision : prior.revision + 1;
      conn.emitted.set(id, { fp: '', revision, deleted: true });
      conn.revised = true;
      this.counters.corrections += 1;
      this.movedFromStored(id, prior, ev);
      this.pending.delete(id);
      this.pending.set(id, {
        kind: 'deleted',
        id,
        revision,
        record: { timestamp: isoTime(ev.time), src_ip: ev.doc.src_ip, src_port: ev.doc.src_port, deleted: true },
      });
      return;
    }
    const fp = fingerprint(record);
    const same = prior !== undefined && !prior.deleted && prior.fp === fp;
    if (same && !prior.unconfirmed) return;
    if (same) {
      // After a restart: written again as it stands (same revision), over whatever the crashed run left.
      conn.emitted.set(id, { fp: prior.fp, revision: prior.revision, deleted: prior.deleted, time: ev.time });
      this.movedFromStored(id, prior, ev);
      this.pending.delete(id);
      this.pending.set(id, {
        kind: record.correlated === true ? 'correlated' : ev.side === 'A' ? 'orphan_a' : 'orphan_b',
        id,
        record,
        revision: queued ? queued.revision : prior.revision,
      });
      return;
    }
    if (prior !== undefined && prior.revision === 0) {
      // A drop counted when it was decided without record: it has one now.
      this.counters.dropped[ev.side === 'A' ? 'orphan_a_not_emitted' : 'orphan_b_not_emitted'] -= 1;
    }
    const revision = queued ? queued.revision : (prior?.revision ?? 0) + 1;
    // Where it is stored now: a later decision of the document's other content, at another time, names it (see movedFromStored).
    conn.emitted.set(id, { fp, revision, deleted: false, time: ev.time });
    if (revision > 1) conn.revised = true;
    const kind: OutputKind = record.correlated === true ? 'correlated' : ev.side === 'A' ? 'orphan_a' : 'orphan_b';
    if (prior === undefined || prior.revision === 0) {
      if (kind === 'correlated') this.counters.correlated += 1;
      else this.counters.orphans[ev.side] += 1;
    } else {
      this.counters.corrections += 1;
    }
    this.movedFromStored(id, prior, ev);
    this.pending.delete(id);
    this.pending.set(id, { kind, id, record, revision });
  }

  // ---- memory -------------------------------------------------------------

  /** Least recently used connections leave when a side holds more events than allowed; open ones are decided early. */
  private evictIfFull(current: Conn): void {
    for (;;) {
      // Only connections holding events of the side that is over free room:
      // evicting others would throw out recent connections for nothing.
      const side: Side | null = this.cached.A > this.cfg.maxHttpItems ? 'A' : this.cached.B > this.cfg.maxNetworkItems ? 'B' : null;
      if (side === null) return;
      const victim = this.firstEvictable(current, side);
      if (!victim) return;
      if (victim.count.A > 0) this.counters.evictions.A += 1;
      if (victim.count.B > 0) this.counters.evictions.B += 1;
      // Provisional: a later event of this connection finds it again through a lookup and corrects it.
      if (victim.sim.live) victim.sim.expire(Infinity);
      this.forget(victim.key, victim.lastTime);
      this.removeConn(victim);
    }
  }

  private forget(key: string, lastTime: number): void {
    this.evicted.delete(key);
    this.evicted.set(key, lastTime);
    // A few dozen bytes an entry: many more connections than the cache holds
    // events, so new connections of in-order traffic are known to be new.
    const cap = 16 * (this.cfg.maxHttpItems + this.cfg.maxNetworkItems);
    for (const [k, t] of this.evicted) {
      if (this.evicted.size <= cap) break;
      this.cacheFloor = Math.max(this.cacheFloor, t + 1);
      this.evicted.delete(k);
    }
  }

  private firstEvictable(current: Conn, side: Side): Conn | undefined {
    for (let l = this.lru[side].oldest(); l !== null; l = l.next) {
      const c = l.item;
      if (c !== current && !c.unsettled) return c;
    }
    return undefined;
  }

  /** Connections past the lateness horizon can never change again. */
  private pruneBeyondHorizon(): void {
    const limit = this.horizon() - this.gap - this.cfg.reorderSlackMs;
    for (const side of ['A', 'B'] as const) {
      for (let l = this.lru[side].oldest(); l !== null;) {
        const c = l.item;
        const next = l.next; // read before removeConn unlinks it
        if (c.lastTime >= limit) break; // roughly time-ordered: stop at the first recent one
        if (!(c.sim.live || c.unsettled)) {
          // What is pruned may still be asked for exactly (a withdrawal): a connection made again later knows it is not complete.
          if (c.lastTime + 1 > this.cacheFloor) this.cacheFloor = c.lastTime + 1;
          this.removeConn(c);
        }
        l = next;
      }
    }
  }

  private removeConn(c: Conn): void {
    this.changes += 1;
    for (const e of c.events) this.cached[e.side] -= 1;
    c.removed = true;
    this.conns.delete(c.key);
    this.lru.A.remove(c.linkA);
    this.lru.B.remove(c.linkB);
    this.dirty.delete(c);
  }

  // ---- snapshot -----------------------------------------------------------

  /**
   * Forgets killed runs' versions once the horizon has passed them (their
   * documents were stored before `before`, so a lookup no longer reaches
   * them), and beyond a bound (a crash loop) the oldest. Returns how many are left.
   */
  private pruneKilledRunVersions(): number {
    const w = this.killedRunVersions;
    const past = this.horizon() - this.cfg.maxClockSkewMs;
    const kept = w.filter(([, before]) => before === Infinity || before >= past).slice(-KILLED_RUNS_KEPT);
    if (kept.length !== w.length) this.killedRunVersions = kept;
    return kept.length;
  }

  /** Open connections and waiting events as ids: enough to continue exactly after a restart. */
  exportState(): EngineSnapshot {
    const num = (x: number) => (Number.isFinite(x) ? x : null);
    const keys: EngineSnapshot['keys'] = [];
    const recent = this.releasedUpTo - this.gap;
    const saved = new Set<Conn>();
    const bases: Array<[string, BaseSnapshot]> = [];
    const revsOf = (c: Conn, events: readonly InputEvent[]) => {
      const revs: Array<[string, number, boolean]> = [];
      // Held from the first: the base goes with them.
      if (c.base !== null && (events.length === 0 || events[0] === c.events[0])) {
        for (const b of [...c.older, c.base]) {
          bases.push([c.key, baseSnapshot(b)]);
          events = [...b.state.bs.map((x) => x.ev), ...b.state.as.map((a) => a.ev), ...events];
        }
      }
      if (!c.revised) return revs;
      for (const e of events) {
        const id = `${e.side}-${e.id}`;
        const em = c.emitted.get(id);
        if (em && (em.revision > 1 || (em.deleted && em.revision > 0))) revs.push([id, em.revision, em.deleted]);
      }
      return revs;
    };
    for (const c of this.conns.values()) {
      if (c.unsettled) {
        // Not decided yet (a lookup was pending at shutdown): every event, decided again after the restart.
        const ch = c.change;
        const withdrawn = (ch?.withdrawals ?? []).map((w): [Side, string, number, boolean] => [w.ev.side, w.ev.id, w.ev.time, w.keepRecord]);
        const events = c.events.map((e): [Side, string] => [e.side, e.id]);
        // -Infinity (a feed without progress yet) kept as the least safe integer: JSON has no infinities.
        const horizon = c.dirtyExact === null ? null : Math.max(c.dirtyHorizon, Number.MIN_SAFE_INTEGER);
        // Its kept states too: a chain longer than the horizon keeps its B after the restart (found by a review).
        if (c.base !== null) for (const b of [...c.older, c.base]) bases.push([c.key, baseSnapshot(b)]);
        if (horizon !== null) keys.push([c.key, num(c.completeFrom), events, [], true, ch && withdrawn, ch && ch.exactFrom, horizon]);
        else keys.push(ch !== null ? [c.key, num(c.completeFrom), events, [], true, withdrawn, ch.exactFrom] : [c.key, num(c.completeFrom), events, [], true]);
        saved.add(c);
        continue;
      }
      if (!c.sim.live && c.lastTime < recent) continue;
      const start = c.events.length === 0 ? 0 : segmentStart(c.events, c.events.length - 1, this.gap);
      const segment = c.events.slice(start);
      if (segment.length === 0 && c.base === null) continue;
      const completeFrom = segment.length === 0 ? c.completeFrom : Math.max(c.completeFrom, segment[0]!.time - this.gap);
      keys.push([c.key, num(completeFrom), segment.map((e) => [e.side, e.id]), revsOf(c, segment)]);
      saved.add(c);
    }
    // The most recently used of the rest, whole, within a budget: a restart
    // then starts with a warm cache instead of looking up every connection a
    // late side touches (an hour-late backlog that was being corrected).
    let budget = Math.min(WARM_EVENTS, Math.floor((this.cfg.maxHttpItems + this.cfg.maxNetworkItems) / 2));
    for (const side of ['B', 'A'] as const) {
      const recentFirst = this.lru[side].newestFirst();
      for (const c of recentFirst) {
        if (budget <= 0) break;
        if (saved.has(c)) continue;
        saved.add(c);
        budget -= c.events.length;
        keys.push([c.key, num(c.completeFrom), c.events.map((e) => [e.side, e.id]), revsOf(c, c.events)]);
      }
    }
    // Every other connection, in memory or evicted, as [key, latest event
    // time], the most recent first, within a budget: after a restart an
    // event of a connection never seen is known to be new (no lookup); the
    // cache floor rises only past what the budget left out.
    const forgotten: Array<[string, number]> = [];
    for (const c of this.conns.values()) if (!saved.has(c)) forgotten.push([c.key, c.lastTime]);
    for (const [k, t] of this.evicted) forgotten.push([k, t]);
    forgotten.sort((x, y) => y[1] - x[1]);
    let cacheFloor = this.cacheFloor;
    if (forgotten.length > FORGOTTEN_KEYS) {
      cacheFloor = Math.max(cacheFloor, forgotten[FORGOTTEN_KEYS]![1] + 1);
      forgotten.length = FORGOTTEN_KEYS;
    }
    const unverified: Array<[Side, string]> = [];
    for (const c of this.conns.values())
      for (const ev of c.unverified ?? []) if (c.unverifiedIds?.has(`${ev.side}:${ev.id}`)) unverified.push([ev.side, ev.id]);
    return {
      v: 2,
      progress: { A: num(this.progress.A), B: num(this.progress.B) },
      releasedUpTo: num(this.releasedUpTo),
      cacheFloor: num(cacheFloor),
      lastVersion: this.lastVersion,
      waiting: [...this.waiting.values(), ...this.ahead.values()].map((e) => [e.side, e.id]),
      keys,
      evicted: forgotten,
      disorder: { ...this.disorder },
      ...(bases.length > 0 ? { bases } : {}),
      ...(this.formerTimes.size > 0 ? { formerTimes: [...this.formerTimes] } : {}),
      ...(this.carried.size > 0 ? { carried: [...this.carried].map(([id, em]): [string, number, boolean] => [id, em.revision, em.deleted]) } : {}),
      ...(unverified.length > 0 ? { unverified } : {}),
      ...(this.pruneKilledRunVersions() > 0
        ? { killedRunVersions: this.killedRunVersions.map(([after, before]): [number, number | null] => [after, before === Infinity ? null : before]) }
        : {}),
    };
  }

  /**
   * An engine in the state `snap` describes. `eventOf` gives back each held
   * event from its source document (the pipeline fetches them by id);
   * events whose document is gone are left out (the caller logs them).
   */
  static restore(cfg: EngineConfig, snap: EngineSnapshot, eventOf: (side: Side, id: string) => InputEvent | undefined): CorrelationEngine {
    const e = new CorrelationEngine(cfg);
    const inf = (x: number | null, fallback: number) => (x === null ? fallback : x);
    e.progress.A = inf(snap.progress.A, -Infinity);
    e.progress.B = inf(snap.progress.B, -Infinity);
    e.releasedUpTo = inf(snap.releasedUpTo, -Infinity);
    e.lastVersion = snap.lastVersion;
    e.replaying = { A: true, B: true };
    for (const [after, before] of snap.killedRunVersions ?? []) e.killedRunVersions.push([after, before ?? Infinity]);
    e.killedRunVersions.push([snap.lastVersion, Infinity]);
    if (snap.disorder) Object.assign(e.disorder, snap.disorder);
    // Connections not in the snapshot had no event this recent.
    // Connections not in the snapshot are listed in `evicted`, or older than the snapshot's cache floor.
    e.cacheFloor = inf(snap.cacheFloor, -Infinity);
    for (const [key, t] of [...snap.evicted].reverse()) e.evicted.set(key, t);
    // A changed document's record: where it was placed, and what was written for it while its new content waits
    // (unconfirmed: the crashed run may have written more, so its next decision is written whatever it is).
    for (const [id, times] of snap.formerTimes ?? []) e.formerTimes.set(id, [...times]);
    for (const [id, revision, deleted] of snap.carried ?? []) e.carried.set(id, { fp: '', revision, deleted, unconfirmed: true });
    for (const [side, id] of snap.waiting) {
      const ev = eventOf(side, id);
      if (!ev) continue;
      e.waiting.push(ev);
      e.waitingIds[side].add(id);
      e.replayedIds[side].add(id);
    }
    const bases = new Map<string, BaseSnapshot[]>();
    for (const [key, b] of snap.bases ?? []) bases.set(key, [...(bases.get(key) ?? []), b]);
    for (const [key, completeFrom, events, revs, undecided, withdrawn, exactFrom, dirtyHorizon] of snap.keys) {
      const conn = e.newConn(key, inf(completeFrom, -Infinity));
      // Known up to where it is complete from (as connFor): left again with older events only, it is remembered there.
      if (completeFrom !== null) conn.lastTime = completeFrom - 1;
      for (const [side, id] of events) {
        // A document moved to another connection since (an admin's edit read after the checkpoint) is not this one's:
        // the replay brings its change. Filed here, it stayed counted in its old connection (found by a review's soak).
        const ev = eventOf(side, id);
        if (ev && ev.key === key) e.insert(conn, ev);
      }
      e.touch(conn);
      conn.uncertain = true;
      const ladder = (bases.get(key) ?? []).map((b) => restoredBase(conn.key, b, eventOf));
      conn.base = ladder.pop() ?? null;
      conn.older = ladder;
      conn.folds = conn.base?.seq ?? 0;
      if (undecided) {
        // What was emitted for it is unknown here: a lookup brings what log_correlated holds,
        // which may be more than another sink got before the crash (uncertain: written again).
        conn.completeFrom = Infinity;
        conn.dirtyFrom = conn.events[0] ?? null;
        if (conn.dirtyFrom) {
          // Without a horizon kept (an older snapshot), the one of the restored state, as before.
          const horizon = typeof dirtyHorizon === 'number' ? dirtyHorizon : e.horizon();
          conn.dirtyExact = conn.events.find((ev) => ev.time >= horizon) ?? null;
          if (conn.dirtyExact) conn.dirtyHorizon = horizon;
          e.dirty.add(conn);
        }
        if (withdrawn) e.restoreWithdrawals(conn, withdrawn);
        if (typeof exactFrom === 'number') e.decideExactly(conn, exactFrom);
        continue;
      }
      e.silent = new Map(revs.map(([id, rev, deleted]) => [id, [rev, deleted]]));
      e.rerun(conn, 0);
      e.silent = null;
    }
    // Checked again (the answer was lost with the process); events of documents gone since are left out.
    for (const [side, id] of snap.unverified ?? []) {
      const ev = eventOf(side, id);
      if (ev) e.toVerify(ev);
    }
    return e;
  }

  /**
   * Withdrawals a snapshot held undecided: what was emitted for them is
   * asked again. Their earlier content is gone; the connection's key and the
   * event time locate a deleted record, as a deletion needs no more.
   */
  private restoreWithdrawals(conn: Conn, withdrawn: ReadonlyArray<[Side, string, number, boolean]>): void {
    const [ip, port] = splitKey(conn.key);
    for (const [side, id, time, keepRecord] of withdrawn) {
      const ev: InputEvent = { side, index: -1, id, key: conn.key, time, doc: { src_ip: ip, src_port: port } };
      const w: Withdrawal = { ev, conn, keepRecord, held: false, asked: false };
      this.noteFormerTime(ev);
      changeOf(conn).withdrawals.push(w);
      const sid = `${side}:${id}`;
      this.withdrawing.set(sid, [...(this.withdrawing.get(sid) ?? []), w]);
      // A deleted document's stale copy in a lookup is not taken back (its revision is not kept: the first assumed).
      if (!keepRecord) this.withdrawnRecently.set(sid, contentOf(ev));
    }
    this.dirty.add(conn);
  }
}

function baseSnapshot(base: Base): BaseSnapshot {
  const { after, state } = base;
  return {
    after: [after.side, after.id, after.time],
    ...(base.seq !== undefined && { seq: base.seq }),
    expiredTo: state.expiredTo,
    bs: state.bs.map((b) => [b.ev.id, b.lastMatch, b.keepalives, b.deadline]),
    as: state.as.map((a) => [a.ev.id, a.deadline]),
  };
}

/** A base from a snapshot: entries whose document is gone are left out, as held events are. */
function restoredBase(key: string, snap: BaseSnapshot, eventOf: (side: Side, id: string) => InputEvent | undefined): Base {
  const [side, id, time] = snap.after;
  const [ip, port] = splitKey(key);
  const after: InputEvent = { side, index: -1, id, key, time, doc: { src_ip: ip, src_port: port } };
  const state: SimState = { bs: [], as: [], expiredTo: snap.expiredTo };
  for (const [bid, lastMatch, keepalives, deadline] of snap.bs) {
    const ev = eventOf('B', bid);
    if (ev?.key === key) state.bs.push({ ev, lastMatch, keepalives, deadline });
  }
  for (const [aid, deadline] of snap.as) {
    const ev = eventOf('A', aid);
    if (ev?.key === key) state.as.push({ ev, deadline });
  }
  return { after, state, ...(snap.seq !== undefined && { seq: snap.seq }) };
}

/**
 * Keeps the earlier bases ever sparser with age: after `n` folds, the one of
 * fold m stays while m is a multiple of the largest power of two not above
 * n - m, and the first always. About 2·log2(n) stay, and one dropped would
 * never be kept again (the rule only tightens as n grows).
 */
export function thinLadder(older: Base[], n: number): void {
  let w = 0;
  for (const b of older) {
    const seq = b.seq ?? 0;
    const step = 2 ** Math.floor(Math.log2(Math.max(1, n - seq)));
    // The first stays too: a late event anywhere after it is then exact, however long ago the connection began.
    if (seq % step === 0 || seq === 1) older[w++] = b;
  }
  older.length = w;
}

/** The connection's ConnChange, made when its first change comes. */
function changeOf(conn: Conn): ConnChange {
  return (conn.change ??= { exactFrom: Infinity, withdrawals: [], ask: [], asked: [] });
}

/** The generation of an event's CouchDB revision (`rev` is set above the first). */
const revisionOf = (ev: InputEvent): number => (ev.rev === undefined ? 1 : parseInt(ev.rev, 10) || 1);

/** Which content of a document an event is: its connection, time and revision. */
const contentOf = (ev: InputEvent): string => `${ev.key}|${ev.time}|${ev.rev ?? ''}`;

/** `1.2.3.4:80` or `[2001:db8::1]:80` back into address and port. */
export function splitKey(key: string): [string, number] {
  const at = key.lastIndexOf(':');
  const host = key.slice(0, at);
  return [host.startsWith('[') ? host.slice(1, -1) : host, Number(key.slice(at + 1))];
}
