// Arrival schedules for the "same records whatever the arrival timing"
// property: the same A and B documents delivered the way shippers deliver
// them — one side minutes or hours late, in batches of random size, the
// feeds interleaved at random, out of order within a feed, some changes
// delivered twice — plus a reference: every document replayed in event
// order by a fresh engine. Pure and seeded: a failure prints its seed.
import { CorrelationEngine } from '../../correlator/engine/engine.js';
import { fingerprint } from '../../correlator/engine/fingerprint.js';
import { toEvent, type NormalizeRules } from '../../correlator/engine/normalize.js';
import { IpFilter } from '../../correlator/engine/ip-filter.js';
import type { EngineConfig, InputEvent, LookupRequest, Output, PriorRecord, Side } from '../../correlator/engine/types.js';
import { mulberry32 } from '../../bench/prng.js';
import { dateTimeSeconds, rowTime } from '../../correlator/sinks/clickhouse/rows.js';

export interface StoredDoc {
  side: Side;
  id: string;
  doc: Record<string, unknown>;
}

/** One delivery: a page of changes from one feed, read at wall-clock `at`. */
export interface Delivery {
  at: number;
  side: Side;
  docs: StoredDoc[];
  /** An admin's changes to stored documents instead (docs empty): each document's next content, null when deleted. */
  admin?: AdminChange[];
}

export interface AdminChange {
  side: Side;
  id: string;
  next: StoredDoc | null;
}

export const RULES: NormalizeRules = { exclude: new IpFilter([]), includePorts: new Set(), where: null };

export function toEvents(docs: readonly StoredDoc[]): InputEvent[] {
  const out: InputEvent[] = [];
  for (const d of docs) {
    const ev = toEvent({ id: d.id, doc: d.doc }, d.side, 0, RULES);
    if (!('skip' in ev)) out.push(ev);
  }
  return out;
}

/**
 * ClickHouse's table as FINAL reads it: rows keyed by (second, id), the
 * highest version kept, written as the sink writes them (the record at its
 * time, deletion rows at its former times).
 */
export class ClickHouseModel {
  rows = new Map<string, { sec: number; id: string; version: number; deleted: boolean }>();

  apply(outputs: readonly Output[]): void {
    for (const o of outputs) {
      const own = rowTime({ id: o.id, record: o.record, version: o.version, deleted: o.kind === 'deleted' });
      this.put(own, o.id, o.version, o.kind === 'deleted');
      for (const t of o.formerTimes ?? []) if (dateTimeSeconds(t) !== own) this.put(dateTimeSeconds(t), o.id, o.version, true);
    }
  }

  private put(sec: number, id: string, version: number, deleted: boolean): void {
    const prev = this.rows.get(`${sec}|${id}`);
    if (prev && prev.version > version) return;
    this.rows.set(`${sec}|${id}`, { sec, id, version, deleted });
  }

  clone(): ClickHouseModel {
    const c = new ClickHouseModel();
    c.rows = new Map(this.rows);
    return c;
  }

  /** Null when every wanted record has exactly one live row, at its own second, and nothing else is live. */
  problem(want: ReadonlyMap<string, string>): string | null {
    const live = new Map<string, number[]>();
    for (const r of this.rows.values()) if (!r.deleted) live.set(r.id, [...(live.get(r.id) ?? []), r.sec]);
    for (const [id, secs] of live) {
      const wanted = want.get(id);
      if (wanted === undefined) return `${id}: live at ${secs.join(', ')}, not in the reference`;
      const sec = dateTimeSeconds(Date.parse((JSON.parse(wanted) as { timestamp: string }).timestamp));
      if (secs.length !== 1 || secs[0] !== sec) return `${id}: live at ${secs.join(', ')}, wanted at ${sec} only`;
    }
    for (const id of want.keys()) if (!live.has(id)) return `${id}: no live row`;
    return null;
  }
}

/** Latest content per record id, deletions applied: what a sink holds once quiet. */
export class SinkState {
  readonly records = new Map<string, Output>();

  apply(outputs: readonly Output[]): void {
    for (const o of outputs) {
      const prev = this.records.get(o.id);
      if (prev && prev.version > o.version) continue;
      this.records.set(o.id, o);
    }
  }

  /** Live records, bookkeeping fields left out, as comparable JSON. */
  content(): Map<string, string> {
    const m = new Map<string, string>();
    for (const [id, o] of this.records) {
      if (o.kind === 'deleted') continue;
      const { revision: _r, decided_at: _d, ...rest } = o.record;
      m.set(id, JSON.stringify(rest));
    }
    return m;
  }

  prior(id: string): PriorRecord | undefined {
    const o = this.records.get(id);
    if (!o) return undefined;
    const time = Date.parse(String(o.record.timestamp));
    return {
      fingerprint: o.kind === 'deleted' ? '' : fingerprint(o.record),
      revision: o.revision,
      deleted: o.kind === 'deleted',
      ...(Number.isFinite(time) && { time }),
      decidedAt: o.version,
      ...(o.kind !== 'deleted' && typeof o.record.b_id === 'string' && { bId: o.record.b_id }),
      ...(o.kind !== 'deleted' && typeof o.record.a_rev === 'string' && { aRev: o.record.a_rev }),
      ...(o.kind !== 'deleted' && typeof o.record.b_rev === 'string' && { bRev: o.record.b_rev }),
    };
  }
}

/** The reference: all documents, replayed in event order by a fresh engine, then everything expired. */
export function referenceResult(cfg: EngineConfig, docs: readonly StoredDoc[]): Map<string, string> {
  const big = { ...cfg, maxHttpItems: 10_000_000, maxNetworkItems: 10_000_000 };
  const engine = new CorrelationEngine(big);
  const sink = new SinkState();
  const events = toEvents(docs).sort((x, y) => (x.time !== y.time ? x.time - y.time : x.side !== y.side ? (x.side === 'B' ? -1 : 1) : x.id < y.id ? -1 : 1));
  for (const ev of events) engine.push(ev);
  engine.advance('A', Infinity);
  engine.advance('B', Infinity);
  sink.apply(engine.drain(1));
  return sink.content();
}

export interface ScheduleOptions {
  seed: number;
  /** Largest delay of one whole side, ms (e.g. an hour). */
  maxSideDelayMs: number;
  /** Largest extra delay of one batch, ms. */
  maxBatchDelayMs: number;
  maxBatch: number;
  /** Share of changes delivered a second time (cluster re-delivery). */
  redeliverShare: number;
}

/** A random arrival schedule of the documents: per side delay, batches with their own delay, shuffled within a batch. */
export function randomSchedule(docs: readonly StoredDoc[], timeOf: (d: StoredDoc) => number, o: ScheduleOptions): Delivery[] {
  const rnd = mulberry32(o.seed);
  const sideDelay: Record<Side, number> = { A: 0, B: 0 };
  const late: Side = rnd() < 0.5 ? 'A' : 'B';
  sideDelay[late] = Math.floor(rnd() * o.maxSideDelayMs);
  const deliveries: Delivery[] = [];
  for (const side of ['A', 'B'] as const) {
    const mine = docs.filter((d) => d.side === side).sort((x, y) => timeOf(x) - timeOf(y));
    for (let i = 0; i < mine.length;) {
      const n = 1 + Math.floor(rnd() * o.maxBatch);
      const batch = mine.slice(i, i + n);
      i += n;
      // Within-feed disorder: a batch's documents in any order.
      for (let k = batch.length - 1; k > 0; k--) {
        const j = Math.floor(rnd() * (k + 1));
        [batch[k], batch[j]] = [batch[j]!, batch[k]!];
      }
      const last = Math.max(...batch.map(timeOf));
      const at = last + sideDelay[side] + Math.floor(rnd() * o.maxBatchDelayMs);
      deliveries.push({ at, side, docs: batch });
      if (rnd() < o.redeliverShare) deliveries.push({ at: at + Math.floor(rnd() * 5000), side, docs: batch.slice(0, 1 + Math.floor(rnd() * batch.length)) });
    }
  }
  // Ties in arrival time broken at random: the two feeds interleave either way.
  const tie = new Map(deliveries.map((d) => [d, rnd()]));
  return deliveries.sort((x, y) => x.at - y.at || tie.get(x)! - tie.get(y)!);
}

/**
 * An admin's erasures and edits, mixed into a schedule: some documents
 * deleted, some edited (a field, their time, or their connection: moved
 * into another one), a few changed twice (edited then deleted, or deleted
 * then made again), each at a random time after it was delivered. Returns
 * the schedule with them and the documents as finally stored.
 */
export function withAdminChanges(
  docs: readonly StoredDoc[],
  schedule: readonly Delivery[],
  timeOf: (d: StoredDoc) => number,
  o: { seed: number; share: number; maxDelayMs: number },
): { schedule: Delivery[]; finalDocs: StoredDoc[] } {
  const rnd = mulberry32(o.seed ^ 0xad317);
  const deliveredAt = new Map<string, number>();
  for (const d of schedule) for (const doc of d.docs) if (!deliveredAt.has(`${doc.side}:${doc.id}`)) deliveredAt.set(`${doc.side}:${doc.id}`, d.at);
  const current = new Map(docs.map((d) => [`${d.side}:${d.id}`, d as StoredDoc | null]));
  const changes: Delivery[] = [];
  const edit = (d: StoredDoc): StoredDoc => {
    const r = rnd();
    if (r < 0.4) return { ...d, doc: { ...d.doc, status: 451, note: 'edited' } };
    if (r < 0.7) {
      const { timestamp: _t, time: _u, received_at: _r, ...rest } = d.doc;
      return { ...d, doc: { ...rest, time: new Date(timeOf(d) + Math.floor((rnd() - 0.5) * 60_000)).toISOString() } };
    }
    const other = docs[Math.floor(rnd() * docs.length)]!;
    return { ...d, doc: { ...d.doc, src_ip: other.doc.src_ip, src_port: other.doc.src_port } };
  };
  const revised = (d: StoredDoc, n: number): StoredDoc => ({ ...d, doc: { ...d.doc, _rev: `${n}-${d.id}` } });
  for (const d of docs) {
    if (rnd() >= o.share) continue;
    const sid = `${d.side}:${d.id}`;
    let at = deliveredAt.get(sid)! + 1 + Math.floor(rnd() * o.maxDelayMs);
    const first = rnd() < 0.5 ? null : revised(edit(d), 2);
    changes.push({ at, side: d.side, docs: [], admin: [{ side: d.side, id: d.id, next: first }] });
    current.set(sid, first);
    if (rnd() < 0.2) {
      at += 1 + Math.floor(rnd() * o.maxDelayMs);
      const second = first === null ? revised(d, 3) : null;
      changes.push({ at, side: d.side, docs: [], admin: [{ side: d.side, id: d.id, next: second }] });
      current.set(sid, second);
    }
  }
  // After the deliveries of the same time: a document is changed once it is stored.
  const merged = [...schedule, ...changes].map((d, i) => ({ d, i: d.admin ? i + schedule.length : i }));
  merged.sort((x, y) => x.d.at - y.d.at || x.i - y.i);
  return { schedule: merged.map((m) => m.d), finalDocs: [...current.values()].filter((d): d is StoredDoc => d !== null) };
}

export interface RunOptions {
  /** Checkpoint, then crash and restore at these delivery indexes (kill -9: outputs since the checkpoint stay in the sink). */
  crashAt?: number;
  checkpointEvery?: number;
  /** At this delivery, stop while lookups are still unanswered (CouchDB failing at shutdown), checkpoint and restart. */
  stopWithLookupsPendingAt?: number;
  /** After this delivery, connections with late events stay undecided (drain(now, false)), as the pipeline holds them while a backlog is read. */
  holdLate?: (delivery: number) => boolean;
  /** Lookups answered without what the sinks hold, as without the CouchDB sink (priors null). */
  priorsUnknown?: boolean;
  /**
   * Lookups answered from the database as it stands this much later than the
   * feeds have read (CouchDB's view is updated at query time; the feeds lag):
   * documents and admin changes the feeds have not delivered yet are found.
   * A document changed again in that time is not delivered at its old place
   * in the feed (its change row moved), only with its later change.
   */
  viewAheadMs?: number;
  /** Lookup answers come this many deliveries after they were asked (a slow view). */
  lookupDelay?: number;
  /** This long after the last delivery, the feeds are read again from their start (a database restored, a cluster copy lost): every delivery again. */
  readAgainAfterMs?: number;
  /** A feed that is not caught up from `from` to `until` (wall clock): its watermark stays where its last document put it. */
  stall?: { side: Side; from: number; until: number };
}

/**
 * Plays a schedule through an engine the way the pipeline drives it: each
 * delivery pushed, both feeds advanced to the wall clock (they are caught
 * up with what is stored), lookups answered from what is stored by then,
 * with priors from the sink. Returns the sink's content once quiet.
 */
export function play(
  cfg: EngineConfig,
  schedule: readonly Delivery[],
  opts: RunOptions = {},
): { content: Map<string, string>; lagging: Map<string, string>; clickhouse: ClickHouseModel; clickhouseLagging: ClickHouseModel; engine: CorrelationEngine } {
  let engine = new CorrelationEngine(cfg);
  const sink = new SinkState();
  // A second sink (ClickHouse, say) that had acknowledged nothing since the
  // checkpoint when the process was killed: lookups read priors from the
  // first one (log_correlated), so a restart must not take them as written everywhere.
  let lagging = new SinkState();
  let laggingAtCheckpoint = new Map<string, Output>();
  // ClickHouse as the sink writes it, one that got everything and one that lost what came after the checkpoint.
  const clickhouse = new ClickHouseModel();
  let clickhouseLagging = new ClickHouseModel();
  let clickhouseAtCheckpoint = new ClickHouseModel();
  const stored = new Map<string, InputEvent>();
  let checkpoint: { snap: ReturnType<CorrelationEngine['exportState']>; at: number } | null = null;
  const every = opts.checkpointEvery ?? 7;
  let clock = 0;
  // The wall clock that stamps versions: a restart takes time (a minute here), so a restarted run's versions are above the killed run's, as in production.
  let restarts = 0;
  const wall = () => clock + restarts * 60_000;
  // The database at time t, for a view ahead of the feeds: documents first delivered by then, admin changes made by then.
  const firstAt = new Map<string, { at: number; doc: StoredDoc }>();
  for (const d of schedule) for (const doc of d.docs) if (!firstAt.has(`${doc.side}:${doc.id}`)) firstAt.set(`${doc.side}:${doc.id}`, { at: d.at, doc });
  const adminAt = schedule.flatMap((d) => (d.admin ?? []).map((c) => ({ at: d.at, c })));
  const databaseAt = (t: number): InputEvent[] => {
    const m = new Map<string, StoredDoc | null>();
    for (const [sid, { at, doc }] of firstAt) if (at <= t) m.set(sid, doc);
    for (const { at, c } of adminAt) if (at <= t) m.set(`${c.side}:${c.id}`, c.next);
    return toEvents([...m.values()].filter((d): d is StoredDoc => d !== null));
  };
  const ahead = opts.viewAheadMs;
  /** Both feeds caught up to the clock, but for one that is stalled now. */
  const caughtUp = (e: CorrelationEngine) => {
    for (const side of ['A', 'B'] as const) if (!(opts.stall?.side === side && clock >= opts.stall.from && clock < opts.stall.until)) e.advance(side, clock);
  };
  /** A change row the feed reads at `at` is there only if the document was not changed again in the database meanwhile. */
  const movedBy = (sid: string, at: number) => ahead !== undefined && adminAt.some(({ at: t, c }) => `${c.side}:${c.id}` === sid && t > at && t - ahead <= at);
  /** Lookups asked and not answered yet: [deliveries left, request]. */
  const queued: Array<[number, LookupRequest]> = [];
  const settle = (hold = false, final = false) => {
    for (let round = 0; round < 50; round++) {
      const outputs = engine.drain(wall(), !hold || final);
      sink.apply(outputs);
      lagging.apply(outputs);
      clickhouse.apply(outputs);
      clickhouseLagging.apply(outputs);
      let reqs = engine.lookups();
      if (final) reqs = [...queued.splice(0).map((q) => q[1]), ...reqs];
      else if (opts.lookupDelay) {
        for (const r of reqs) queued.push([opts.lookupDelay, r]);
        return;
      }
      if (reqs.length === 0) return;
      for (const r of reqs) answer(engine, r);
    }
    throw new Error('lookups did not settle');
  };
  /** The answers due after one more delivery. */
  const tick = () => {
    for (const q of queued) q[0] -= 1;
    const due = queued.filter((q) => q[0] <= 0);
    queued.splice(0, queued.length, ...queued.filter((q) => q[0] > 0));
    for (const [, r] of due) answer(engine, r);
  };
  const answer = (e: CorrelationEngine, r: LookupRequest) => {
    const pool = ahead !== undefined ? databaseAt(clock + ahead) : [...stored.values()];
    const events = pool.filter((ev) => ev.key === r.key && ev.time >= r.from);
    const priors = new Map<string, PriorRecord>();
    // What log_correlated holds: live records only (a deleted one reads as absent, as in fetchDocs).
    for (const id of [...events.map((ev) => `${ev.side}-${ev.id}`), ...(r.ids ?? [])]) {
      const p = sink.prior(id);
      if (p && !p.deleted) priors.set(id, p);
    }
    e.provide(r.key, r.from, events, opts.priorsUnknown ? null : priors);
  };
  // Every content each document has had, oldest first (null: deleted): the
  // feed gives its latest, and the pipeline withdraws the earlier ones.
  const history = new Map<string, Array<StoredDoc | null>>();
  const feedDelivers = (e: CorrelationEngine, versions: ReadonlyArray<StoredDoc | null>) => {
    const last = versions[versions.length - 1]!;
    // Content the rules skip (no time any more, say) takes the record away like a deletion.
    const now = last ? toEvents([last]) : [];
    for (const v of versions.slice(0, -1)) if (v) for (const ev of toEvents([v])) e.withdraw(ev, now.length > 0);
    for (const ev of now) e.push(ev);
  };
  /** A delivery; `again` when the feeds are read again after a restart (the admin's changes are made once). */
  const deliver = (e: CorrelationEngine, d: Delivery, again = false) => {
    for (const doc of d.docs) {
      const sid = `${doc.side}:${doc.id}`;
      if (movedBy(sid, d.at)) continue;
      if (!history.has(sid)) {
        history.set(sid, [doc]);
        for (const ev of toEvents([doc])) stored.set(sid, ev);
      }
      feedDelivers(e, history.get(sid)!);
    }
    for (const c of d.admin ?? []) {
      const sid = `${c.side}:${c.id}`;
      if (!history.has(sid)) history.set(sid, [firstAt.get(sid)!.doc]);
      const versions = history.get(sid)!;
      if (!again) {
        versions.push(c.next);
        stored.delete(sid);
        if (c.next) for (const ev of toEvents([c.next])) stored.set(sid, ev);
      }
      if (movedBy(sid, d.at)) continue;
      feedDelivers(e, versions);
    }
  };
  for (let i = 0; i < schedule.length; i++) {
    const d = schedule[i]!;
    clock = Math.max(clock, d.at);
    deliver(engine, d);
    caughtUp(engine);
    tick();
    if (opts.stopWithLookupsPendingAt === i) {
      const outputs = engine.drain(wall());
      sink.apply(outputs);
      lagging.apply(outputs);
      clickhouse.apply(outputs);
      clickhouseLagging.apply(outputs);
      engine.lookups(); // asked, never answered
      queued.length = 0;
      const snap = JSON.parse(JSON.stringify(engine.exportState()));
      engine = CorrelationEngine.restore(cfg, snap, (side, id) => stored.get(`${side}:${id}`));
      restarts += 1;
    }
    settle(opts.holdLate?.(i) ?? false);
    if (i % every === 0 && every <= schedule.length) {
      checkpoint = { snap: JSON.parse(JSON.stringify(engine.exportState())), at: i };
      laggingAtCheckpoint = new Map(lagging.records);
      clickhouseAtCheckpoint = clickhouseLagging.clone();
    }
    if (opts.crashAt === i) {
      queued.length = 0;
      restarts += 1;
      lagging = new SinkState();
      clickhouseLagging = checkpoint ? clickhouseAtCheckpoint.clone() : new ClickHouseModel();
      if (checkpoint) {
        for (const o of laggingAtCheckpoint.values()) lagging.apply([o]);
        engine = CorrelationEngine.restore(cfg, checkpoint.snap, (side, id) => stored.get(`${side}:${id}`));
      } else {
        // Killed before its first checkpoint: read from the start over a sink that holds records (pipeline.start()).
        engine = new CorrelationEngine(cfg);
        engine.replayFromStart();
      }
      // The feeds are read again from the checkpoint (or the start): everything since is delivered again.
      for (let k = (checkpoint?.at ?? -1) + 1; k <= i; k++) deliver(engine, schedule[k]!, true);
      caughtUp(engine);
      settle();
    }
  }
  if (opts.readAgainAfterMs !== undefined) {
    clock += opts.readAgainAfterMs;
    for (const d of [null, ...schedule]) {
      if (d) deliver(engine, d, true);
      caughtUp(engine);
      tick();
      settle();
    }
  }
  engine.advance('A', Infinity);
  engine.advance('B', Infinity);
  settle(false, true);
  return { content: sink.content(), lagging: lagging.content(), clickhouse, clickhouseLagging, engine };
}

/**
 * The differences between two record sets, for a failure message: how
 * many records differ, are missing or are extra, and the first few of
 * each with only the fields that differ (whole records are too long to
 * read in a test report, and the report cuts them).
 */
export function firstDifference(want: Map<string, string>, got: Map<string, string>): string | null {
  const changed: string[] = [];
  const missing: string[] = [];
  for (const [id, w] of want) {
    const g = got.get(id);
    if (g === undefined) missing.push(id);
    else if (g !== w) changed.push(`${id}: ${fieldDifference(w, g)}`);
  }
  const extra = [...got.keys()].filter((id) => !want.has(id));
  if (changed.length + missing.length + extra.length === 0) return null;
  const few = (xs: string[]) => xs.slice(0, 3).join('; ') + (xs.length > 3 ? '; ...' : '');
  return [
    `${changed.length} differ, ${missing.length} missing, ${extra.length} not in the reference (of ${want.size})`,
    changed.length ? `differ: ${few(changed)}` : '',
    missing.length ? `missing: ${few(missing)}` : '',
    extra.length ? `extra: ${few(extra.map((id) => `${id} ${compact(got.get(id)!)}`))}` : '',
  ]
    .filter(Boolean)
    .join('\n  ');
}

function fieldDifference(want: string, got: string): string {
  const w = JSON.parse(want) as Record<string, unknown>;
  const g = JSON.parse(got) as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(w), ...Object.keys(g)])].filter((k) => JSON.stringify(w[k]) !== JSON.stringify(g[k]));
  return keys.map((k) => `${k} want ${JSON.stringify(w[k])} got ${JSON.stringify(g[k])}`).join(', ');
}

function compact(json: string): string {
  const r = JSON.parse(json) as Record<string, unknown>;
  return JSON.stringify({ correlated: r.correlated, orphan_side: r.orphan_side, a_id: r.a_id, b_id: r.b_id, keepalives: r.keepalives });
}
