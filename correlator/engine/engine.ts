// The correlation engine: joins A (HTTP) and B (network) events of the same
// connection (src_ip:src_port). Pure: no I/O, no timers, no clock; events
// and feed progress come in, decisions come out.
//
// What must stay true:
//  - Decisions depend on event times and feed order only. Events wait in a
//    release queue until both feeds have progressed `reorderSlackMs` past
//    them (the watermark), then are decided in (time, B before A, feed
//    index) order. So a backlog replayed after downtime, or the same events
//    interleaved differently between the two feeds, give the same output.
//  - An A matches a buffered B of its key that is at most `windowMs` older,
//    or a B that a pending A is waiting for if it comes at most
//    min(windowMs, apacheEmitDelayMs) later. In one_to_many a matched B stays
//    for `networkTtlMs` after its latest match (Keep-Alive) and counts
//    keepalives 1, 2, 3...; in one_to_one the first A consumes it.
//  - Each A yields exactly one output (correlated or orphan, or a counted
//    drop when orphans are not emitted); each B at most one orphan.
//  - exportState() captures everything the engine holds (as source document
//    ids and feed indexes, without the documents) and restore() rebuilds an
//    engine that decides every later event exactly as this one would: a
//    restart continues from a snapshot instead of re-deciding the past
//    without the partners it had (which re-reading from the oldest held
//    event cannot avoid once Keep-Alive sessions overlap).
import { MinHeap } from './min-heap.js';
import { correlatedRecord, orphanRecord, outputId } from './merge-record.js';
import type { DropReason, EngineConfig, EngineCounters, EngineSnapshot, InputEvent, Output, Side } from './types.js';

interface BEntry {
  ev: InputEvent;
  /** Event time of the latest A matched to it, null while unmatched. */
  lastMatch: number | null;
  keepalives: number;
  deadline: number;
}

interface AEntry {
  ev: InputEvent;
  deadline: number;
}

interface Deadline {
  at: number;
  side: Side;
  index: number;
}

const earlier = (x: InputEvent, y: InputEvent) =>
  x.time !== y.time ? x.time < y.time : x.side !== y.side ? x.side === 'B' : x.index < y.index;

export function emptyCounters(): EngineCounters {
  return {
    eventsIn: { A: 0, B: 0 },
    correlated: 0,
    orphans: { A: 0, B: 0 },
    evictions: { A: 0, B: 0 },
    dropped: { http_buffer_full: 0, network_buffer_full: 0, orphan_a_not_emitted: 0, orphan_b_not_emitted: 0 },
    late: { A: 0, B: 0 },
  };
}

export class CorrelationEngine {
  readonly counters: EngineCounters = emptyCounters();
  private readonly waiting = new MinHeap<InputEvent>(earlier);
  private readonly deadlines = new MinHeap<Deadline>((x, y) => x.at < y.at);
  private readonly progress: Record<Side, number> = { A: -Infinity, B: -Infinity };
  /** Every event at or before this time has been decided (or counted late). */
  private releasedUpTo = -Infinity;
  /** B entries by key, and all of them by feed index in processing (time) order. */
  private readonly bByKey = new Map<string, BEntry[]>();
  private readonly bByIndex = new Map<number, BEntry>();
  /** A entries waiting for a B, likewise. */
  private readonly aByKey = new Map<string, AEntry[]>();
  private readonly aByIndex = new Map<number, AEntry>();
  private outputs: Output[] = [];

  constructor(private readonly cfg: EngineConfig) {}

  /** One event, in its feed's order. */
  push(ev: InputEvent): void {
    this.counters.eventsIn[ev.side] += 1;
    if (ev.time > this.progress[ev.side]) this.progress[ev.side] = ev.time;
    if (ev.time <= this.releasedUpTo) {
      // Out of order by more than the slack: decided now, counted.
      this.counters.late[ev.side] += 1;
      this.decide(ev);
    } else {
      this.waiting.push(ev);
      // Bounded memory even if one feed stalls for good: the oldest waiting
      // event is decided early (counted as late, like any ordering slip).
      if (this.waiting.size > this.cfg.maxHttpItems + this.cfg.maxNetworkItems) {
        const oldest = this.waiting.pop()!;
        this.counters.late[oldest.side] += 1;
        this.expireBefore(oldest.time);
        this.decide(oldest);
      }
    }
    this.release();
  }

  /** A feed that is caught up and idle has seen everything up to `time` (its wall clock). */
  advance(side: Side, time: number): void {
    if (time > this.progress[side]) this.progress[side] = time;
    this.release();
  }

  /** Decisions made since the last call. */
  drain(): Output[] {
    const out = this.outputs;
    this.outputs = [];
    return out;
  }

  /** The watermark: both feeds have been seen up to here. */
  get watermark(): number {
    return Math.min(this.progress.A, this.progress.B);
  }

  sizes(): { waiting: number; pendingA: number; bufferedB: number } {
    return { waiting: this.waiting.size, pendingA: this.aByIndex.size, bufferedB: this.bByIndex.size };
  }

  /** Everything the engine holds, small enough for a checkpoint: ids and indexes, no documents. */
  exportState(): EngineSnapshot {
    const num = (x: number) => (Number.isFinite(x) ? x : null);
    return {
      v: 1,
      progress: { A: num(this.progress.A), B: num(this.progress.B) },
      releasedUpTo: num(this.releasedUpTo),
      waiting: this.waiting.values().map((e) => [e.side, e.index, e.id]),
      pendingA: [...this.aByIndex.values()].map((a) => [a.ev.index, a.ev.id]),
      networkB: [...this.bByIndex.values()].map((b) => [b.ev.index, b.ev.id, b.lastMatch, b.keepalives]),
    };
  }

  /**
   * An engine in the state `snap` describes. `events` gives back each held
   * event, rebuilt from its source document with the index it had (the feed
   * adapter fetches them by id). Entries whose document is gone are left out
   * and counted by the caller.
   */
  static restore(cfg: EngineConfig, snap: EngineSnapshot, events: (side: Side, index: number) => InputEvent | undefined): CorrelationEngine {
    const e = new CorrelationEngine(cfg);
    const inf = (x: number | null, fallback: number) => (x === null ? fallback : x);
    e.progress.A = inf(snap.progress.A, -Infinity);
    e.progress.B = inf(snap.progress.B, -Infinity);
    e.releasedUpTo = inf(snap.releasedUpTo, -Infinity);
    for (const [side, index] of snap.waiting) {
      const ev = events(side, index);
      if (ev) e.waiting.push(ev);
    }
    // Insertion order of the index maps is decision order, which eviction relies on.
    for (const [index] of snap.pendingA) {
      const ev = events('A', index);
      if (!ev) continue;
      const entry: AEntry = { ev, deadline: ev.time + cfg.apacheEmitDelayMs };
      listOf(e.aByKey, ev.key).push(entry);
      e.aByIndex.set(index, entry);
      e.deadlines.push({ at: entry.deadline, side: 'A', index });
    }
    for (const [index, , lastMatch, keepalives] of snap.networkB) {
      const ev = events('B', index);
      if (!ev) continue;
      const deadline = lastMatch === null ? ev.time + cfg.windowMs : lastMatch + cfg.networkTtlMs;
      const entry: BEntry = { ev, lastMatch, keepalives, deadline };
      listOf(e.bByKey, ev.key).push(entry);
      e.bByIndex.set(index, entry);
      e.deadlines.push({ at: deadline, side: 'B', index });
    }
    return e;
  }

  private release(): void {
    const until = this.watermark - this.cfg.reorderSlackMs;
    for (let ev = this.waiting.peek(); ev !== undefined && ev.time <= until; ev = this.waiting.peek()) {
      this.waiting.pop();
      this.expireBefore(ev.time);
      this.decide(ev);
    }
    if (until > this.releasedUpTo) {
      this.releasedUpTo = until;
      this.expireBefore(until);
    }
  }

  private decide(ev: InputEvent): void {
    if (ev.side === 'A') this.decideA(ev);
    else this.decideB(ev);
  }

  private decideA(a: InputEvent): void {
    const b = this.findB(a);
    if (b) {
      this.correlate(a, b);
      return;
    }
    const entry: AEntry = { ev: a, deadline: a.time + this.cfg.apacheEmitDelayMs };
    listOf(this.aByKey, a.key).push(entry);
    this.aByIndex.set(a.index, entry);
    this.deadlines.push({ at: entry.deadline, side: 'A', index: a.index });
    if (this.aByIndex.size > this.cfg.maxHttpItems) {
      const oldest = this.aByIndex.values().next().value!;
      this.counters.evictions.A += 1;
      this.removeA(oldest);
      this.orphanA(oldest.ev, 'http_buffer_full');
    }
  }

  /** The most recent B of the key that may match this A. */
  private findB(a: InputEvent): BEntry | null {
    const list = this.bByKey.get(a.key);
    if (!list) return null;
    let best: BEntry | null = null;
    for (const b of list) {
      const fresh = a.time - b.ev.time <= this.cfg.windowMs;
      const keptAlive = b.lastMatch !== null && a.time <= b.lastMatch + this.cfg.networkTtlMs;
      if ((fresh || keptAlive) && (best === null || b.ev.time > best.ev.time)) best = b;
    }
    return best;
  }

  private decideB(b: InputEvent): void {
    const entry: BEntry = { ev: b, lastMatch: null, keepalives: 0, deadline: b.time + this.cfg.windowMs };
    // A's that came first and are still waiting, oldest first.
    const waitingAs = this.aByKey.get(b.key);
    if (waitingAs) {
      const reach = Math.min(this.cfg.windowMs, this.cfg.apacheEmitDelayMs);
      for (const a of [...waitingAs]) {
        if (b.time - a.ev.time > reach) continue;
        this.removeA(a);
        this.correlate(a.ev, entry);
        if (this.cfg.mode === 'one_to_one') return;
      }
    }
    listOf(this.bByKey, b.key).push(entry);
    this.bByIndex.set(b.index, entry);
    this.deadlines.push({ at: entry.deadline, side: 'B', index: b.index });
    if (this.bByIndex.size > this.cfg.maxNetworkItems) {
      const oldest = this.bByIndex.values().next().value!;
      this.counters.evictions.B += 1;
      this.removeB(oldest);
      if (oldest.lastMatch === null) this.orphanB(oldest.ev, 'network_buffer_full');
    }
  }

  private correlate(a: InputEvent, b: BEntry): void {
    b.keepalives = this.cfg.mode === 'one_to_many' ? b.keepalives + 1 : 1;
    this.counters.correlated += 1;
    this.outputs.push({
      kind: 'correlated',
      id: outputId(a),
      record: correlatedRecord(a, b.ev, b.keepalives),
    });
    if (this.cfg.mode === 'one_to_one') {
      if (this.bByIndex.has(b.ev.index)) this.removeB(b);
      return;
    }
    b.lastMatch = a.time;
    b.deadline = a.time + this.cfg.networkTtlMs;
    if (this.bByIndex.has(b.ev.index)) this.deadlines.push({ at: b.deadline, side: 'B', index: b.ev.index });
  }

  /** Entries whose deadline is before `time` can no longer match anything. */
  private expireBefore(time: number): void {
    for (let d = this.deadlines.peek(); d !== undefined && d.at < time; d = this.deadlines.peek()) {
      this.deadlines.pop();
      if (d.side === 'A') {
        const a = this.aByIndex.get(d.index);
        if (!a || a.deadline !== d.at) continue;
        this.removeA(a);
        this.orphanA(a.ev, null);
      } else {
        const b = this.bByIndex.get(d.index);
        // A refreshed Keep-Alive B has a newer deadline in the heap: this one is stale.
        if (!b || b.deadline !== d.at) continue;
        this.removeB(b);
        if (b.lastMatch === null) this.orphanB(b.ev, null);
      }
    }
  }

  private orphanA(a: InputEvent, evicted: DropReason | null): void {
    if (!this.cfg.apacheAlwaysEmit) {
      this.counters.dropped[evicted ?? 'orphan_a_not_emitted'] += 1;
      return;
    }
    this.counters.orphans.A += 1;
    this.outputs.push({ kind: 'orphan_a', id: outputId(a), record: orphanRecord(a) });
  }

  private orphanB(b: InputEvent, evicted: DropReason | null): void {
    if (!this.cfg.networkEmit) {
      this.counters.dropped[evicted ?? 'orphan_b_not_emitted'] += 1;
      return;
    }
    this.counters.orphans.B += 1;
    this.outputs.push({ kind: 'orphan_b', id: outputId(b), record: orphanRecord(b) });
  }

  private removeA(a: AEntry): void {
    this.aByIndex.delete(a.ev.index);
    removeFrom(this.aByKey, a.ev.key, a);
  }

  private removeB(b: BEntry): void {
    this.bByIndex.delete(b.ev.index);
    removeFrom(this.bByKey, b.ev.key, b);
  }
}

function listOf<T>(map: Map<string, T[]>, key: string): T[] {
  let list = map.get(key);
  if (!list) {
    list = [];
    map.set(key, list);
  }
  return list;
}

function removeFrom<T>(map: Map<string, T[]>, key: string, item: T): void {
  const list = map.get(key);
  if (!list) return;
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
  if (list.length === 0) map.delete(key);
}
