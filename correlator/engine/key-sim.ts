// The correlation of ONE connection (src_ip:src_port): the seed's rules,
// applied to that connection's events in event order. Pure, no clock.
//
// What must stay true:
//  - Events are stepped in `eventOrder` (time, B before A, document id), so
//    the decisions are a function of the set of events, never of the order
//    a feed delivered them in. The engine re-runs a connection from the
//    start of its segment (see segmentStart) whenever an event arrives that
//    sorts before one already stepped.
//  - An A matches a live B of its key that is at most `windowMs` older (or
//    kept alive: in one_to_many a matched B lives `networkTtlMs` after its
//    latest match), the most recent one; an A without a B waits
//    `apacheEmitDelayMs` for a B that comes at most min(windowMs,
//    apacheEmitDelayMs) after it. one_to_one: the first A consumes the B.
//  - `expire(t)` ends what can no longer match anything before t: an A
//    still waiting becomes an orphan, a B never matched an orphan B.
//  - Every decision goes to `decide(outputId, record | null)`: null means
//    "decided, no record" (a B that matched, an orphan not emitted). A
//    later decision for the same id replaces an earlier one only across
//    re-runs; within one run each id is decided once.
import { correlatedRecord, orphanRecord, outputId } from './merge-record.js';
import type { EngineConfig, InputEvent } from './types.js';

export interface BEntry {
  ev: InputEvent;
  /** Event time of the latest A matched to it, null while unmatched. */
  lastMatch: number | null;
  keepalives: number;
  deadline: number;
}

export interface AEntry {
  ev: InputEvent;
  deadline: number;
}

/**
 * What a KeySim holds between two steps, as plain data (entries copied): a
 * run restarted from it continues exactly as the run it was taken from,
 * for events after the last one stepped and not before `expiredTo`.
 */
export interface SimState {
  bs: BEntry[];
  as: AEntry[];
  expiredTo: number;
}

/** `dropped`: an orphan that policy does not emit (counted), as opposed to a B that matched. */
export type Decide = (id: string, ev: InputEvent, record: Record<string, unknown> | null, dropped: boolean) => void;

export class KeySim {
  private bs: BEntry[] = [];
  private as: AEntry[] = [];
  /** Latest time expire() ran to: an event before it can no longer be stepped (the run must start over). */
  expiredTo = -Infinity;

  constructor(
    private readonly cfg: EngineConfig,
    private readonly decide: Decide,
    from?: SimState,
  ) {
    if (from) {
      this.bs = from.bs.map((b) => ({ ...b }));
      this.as = from.as.map((a) => ({ ...a }));
      this.expiredTo = from.expiredTo;
    }
  }

  /** Its state now, detached: later steps do not change it. */
  state(): SimState {
    return { bs: this.bs.map((b) => ({ ...b })), as: this.as.map((a) => ({ ...a })), expiredTo: this.expiredTo };
  }

  /** Entries that may still match or expire: the connection is open. */
  get live(): boolean {
    return this.bs.length > 0 || this.as.length > 0;
  }

  get size(): number {
    return this.bs.length + this.as.length;
  }

  /** The earliest time at which expire() would decide something. */
  nextDeadline(): number {
    let d = Infinity;
    for (const b of this.bs) if (b.deadline < d) d = b.deadline;
    for (const a of this.as) if (a.deadline < d) d = a.deadline;
    return d;
  }

  step(ev: InputEvent): void {
    this.expire(ev.time);
    if (ev.side === 'A') this.decideA(ev);
    else this.decideB(ev);
  }

  /** Ends every entry whose deadline is before `time`. */
  expire(time: number): void {
    if (time > this.expiredTo) this.expiredTo = time;
    // Called before every step: nothing allocated unless something is due.
    if (this.nextDeadline() >= time) return;
    if (this.as.length > 0) {
      const keep: AEntry[] = [];
      for (const a of this.as) {
        if (a.deadline < time) this.decide(outputId(a.ev), a.ev, this.cfg.apacheAlwaysEmit ? orphanRecord(a.ev) : null, !this.cfg.apacheAlwaysEmit);
        else keep.push(a);
      }
      this.as = keep;
    }
    if (this.bs.length > 0) {
      const keep: BEntry[] = [];
      for (const b of this.bs) {
        if (b.deadline >= time) keep.push(b);
        else if (b.lastMatch === null) this.decide(outputId(b.ev), b.ev, this.cfg.networkEmit ? orphanRecord(b.ev) : null, !this.cfg.networkEmit);
      }
      this.bs = keep;
    }
  }

  private decideA(a: InputEvent): void {
    const b = this.findB(a);
    if (b) this.correlate(a, b);
    else this.as.push({ ev: a, deadline: a.time + this.cfg.apacheEmitDelayMs });
  }

  /** The most recent live B that may match this A (the earliest in event order among equal times). */
  private findB(a: InputEvent): BEntry | null {
    let best: BEntry | null = null;
    for (const b of this.bs) {
      const fresh = a.time - b.ev.time <= this.cfg.windowMs;
      const keptAlive = b.lastMatch !== null && a.time <= b.lastMatch + this.cfg.networkTtlMs;
      if ((fresh || keptAlive) && (best === null || b.ev.time > best.ev.time)) best = b;
    }
    return best;
  }

  private decideB(b: InputEvent): void {
    const entry: BEntry = { ev: b, lastMatch: null, keepalives: 0, deadline: b.time + this.cfg.windowMs };
    if (this.as.length > 0) {
      // A's that came first and are still waiting, oldest first.
      const reach = Math.min(this.cfg.windowMs, this.cfg.apacheEmitDelayMs);
      const keep: AEntry[] = [];
      let consumed = false;
      for (const a of this.as) {
        if (consumed || b.time - a.ev.time > reach) keep.push(a);
        else {
          this.correlate(a.ev, entry);
          if (this.cfg.mode === 'one_to_one') consumed = true;
        }
      }
      this.as = keep;
      if (consumed) return;
    }
    this.bs.push(entry);
  }

  private correlate(a: InputEvent, b: BEntry): void {
    if (b.lastMatch === null && b.keepalives === 0) this.decide(outputId(b.ev), b.ev, null, false);
    b.keepalives = this.cfg.mode === 'one_to_many' ? b.keepalives + 1 : 1;
    this.decide(outputId(a), a, correlatedRecord(a, b.ev, b.keepalives), false);
    if (this.cfg.mode === 'one_to_one') {
      const i = this.bs.indexOf(b);
      if (i >= 0) this.bs.splice(i, 1);
      return;
    }
    b.lastMatch = a.time;
    b.deadline = a.time + this.cfg.networkTtlMs;
  }
}

/**
 * Longest gap between two events of one connection that still lets the
 * earlier influence the later: a B is fresh for `windowMs`, kept alive
 * `networkTtlMs` after a match, and an A waits `apacheEmitDelayMs`. Events
 * further apart than this belong to independent segments.
 */
export function segmentGap(cfg: EngineConfig): number {
  return Math.max(cfg.windowMs, cfg.networkTtlMs, cfg.apacheEmitDelayMs);
}

/** Index of the first event of the segment holding events[i] (events sorted by time). */
export function segmentStart(events: readonly InputEvent[], i: number, gap: number): number {
  let s = i;
  while (s > 0 && events[s]!.time - events[s - 1]!.time <= gap) s--;
  return s;
}
