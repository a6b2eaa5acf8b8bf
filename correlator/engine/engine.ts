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
//  - Every output says from which feed index on its inputs must be re-read
//    to decide it again (replayFrom), and oldestNeeded() says the same for
//    what the engine still holds: together they bound safe checkpoints.
import { MinHeap } from './min-heap.js';
import { correlatedRecord, orphanRecord, outputId } from './merge-record.js';
import type { DropReason, EngineConfig, EngineCounters, InputEvent, Output, Side } from './types.js';

interface BEntry {
  ev: InputEvent;
  /** Event time of the latest A matched to it, null while unmatched. */
  lastMatch: number | null;
  keepalives: number;
  /** Feed index of the first A matched to it: replaying it rebuilds the keepalives count. */
  firstMatchA: number | null;
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
    dropped: { http_buffer_full: 0, network_buffer_full: 0, orphan_a_not_emitted: 0, orphan_b_not_emitted: 0, late: 0 },
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

  /** Smallest feed index of `side` whose event the engine still holds or depends on (Infinity: none). */
  oldestNeeded(side: Side): number {
    let min = Infinity;
    for (const ev of this.waiting.values()) if (ev.side === side && ev.index < min) min = ev.index;
    if (side === 'A') {
      for (const index of this.aByIndex.keys()) if (index < min) min = index;
      for (const b of this.bByIndex.values()) if (b.firstMatchA !== null && b.firstMatchA < min) min = b.firstMatchA;
    } else {
      for (const index of this.bByIndex.keys()) if (index < min) min = index;
    }
    return min;
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
    const entry: BEntry = { ev: b, lastMatch: null, keepalives: 0, firstMatchA: null, deadline: b.time + this.cfg.windowMs };
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
    const firstA = b.firstMatchA ?? a.index;
    this.counters.correlated += 1;
    this.outputs.push({
      kind: 'correlated',
      id: outputId(a),
      record: correlatedRecord(a, b.ev, b.keepalives),
      replayFrom: { A: Math.min(firstA, a.index), B: b.ev.index },
    });
    if (this.cfg.mode === 'one_to_one') {
      if (this.bByIndex.has(b.ev.index)) this.removeB(b);
      return;
    }
    b.lastMatch = a.time;
    b.firstMatchA = firstA;
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
    this.outputs.push({ kind: 'orphan_a', id: outputId(a), record: orphanRecord(a), replayFrom: { A: a.index } });
  }

  private orphanB(b: InputEvent, evicted: DropReason | null): void {
    if (!this.cfg.networkEmit) {
      this.counters.dropped[evicted ?? 'orphan_b_not_emitted'] += 1;
      return;
    }
    this.counters.orphans.B += 1;
    this.outputs.push({ kind: 'orphan_b', id: outputId(b), record: orphanRecord(b), replayFrom: { B: b.index } });
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
