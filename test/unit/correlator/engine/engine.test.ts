// Unit tests of correlator/engine/engine.ts (CorrelationEngine), the pure A x B
// join, and of its parts (key-sim.ts, eventBefore, fingerprint.ts). Time is
// injected: events come in through push(), feed progress through advance(),
// decisions are read with drain(now); nothing here reads a clock.
//
// One table case (or a few) per rule: window edges in both directions, B
// before A and A before B, Keep-Alive counter / TTL refresh / expiry,
// one_to_one, orphan delay against the watermark (lagging and idle feeds),
// network_emit, apache_always_emit, out-of-order events within the reorder
// slack. Then what the rewrite added: late events re-deciding their
// connection (a provisional orphan A corrected to correlated with revision 2,
// a provisional orphan B deleted), duplicates ignored, the memory cache
// (eviction decides an open connection early; a later event of it asks for a
// lookup, and provide() corrects the records to what an unbounded engine
// gives), versions and decided_at, snapshots v2 and restore. Then properties
// over a generated traffic set: the same outputs whatever the interleaving of
// the two feeds, one output per A, deterministic ids, and restart from a
// checkpoint giving the same records as one uninterrupted run.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CorrelationEngine, eventBefore, thinLadder } from '../../../../correlator/engine/engine.js';
import { fingerprint } from '../../../../correlator/engine/fingerprint.js';
import { KeySim, segmentGap, segmentStart } from '../../../../correlator/engine/key-sim.js';
import type {
  EngineConfig,
  EngineCounters,
  EngineSnapshot,
  InputEvent,
  LookupRequest,
  Output,
  PriorRecord,
  Side,
} from '../../../../correlator/engine/types.js';
import { mulberry32 } from '../../../../bench/prng.js';
import { asChanges, asEvents, firstAWithLateB, generateTraffic, type Traffic as GeneratedDocs } from '../../../../bench/traffic.js';
import { ClickHouseModel, SinkState } from '../../../helpers/arrival-schedule.js';

/** Noon, 2024-01-01 UTC: keeps record timestamps readable when a test prints them. */
const T0 = Date.UTC(2024, 0, 1, 12);
/** The wall clock given to drain(): an hour after T0 (versions and decided_at come from it). */
const NOW = T0 + 3_600_000;
/** Where run() advances both feeds at the end: past every deadline, well within allowed lateness. */
const END = T0 + 3_600_000;

function config(over: Partial<EngineConfig> = {}): EngineConfig {
  return {
    windowMs: 1000,
    apacheEmitDelayMs: 500,
    apacheAlwaysEmit: true,
    networkEmit: true,
    mode: 'one_to_many',
    maxHttpItems: 1000,
    maxNetworkItems: 1000,
    networkTtlMs: 30_000,
    reorderSlackMs: 0,
    allowedLatenessMs: 24 * 3_600_000,
    maxClockSkewMs: 300_000,
    ...over,
  };
}

/** The same config with a memory cache that never evicts: what every bounded run must end up equal to. */
const unbounded = (cfg: EngineConfig): EngineConfig => ({ ...cfg, maxHttpItems: 10_000_000, maxNetworkItems: 10_000_000 });

// Named connections: the engine only compares keys, but records carry the
// matching src_ip/src_port, as normalize.ts would produce them.
const CONNS: Record<string, { ip: string; port: number }> = {
  k1: { ip: '198.51.100.1', port: 50001 },
  k2: { ip: '198.51.100.2', port: 50002 },
  k3: { ip: '2001:db8::3', port: 50003 },
  k4: { ip: '198.51.100.4', port: 50004 },
};
const keyOf = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

type Step = { ev: Side; conn: string; t: number; doc?: Record<string, unknown> } | { advance: number; side?: Side } | { expect: string[] };

const A = (conn: string, t: number, doc?: Record<string, unknown>): Step => ({ ev: 'A', conn, t, doc });
const B = (conn: string, t: number, doc?: Record<string, unknown>): Step => ({ ev: 'B', conn, t, doc });
/** Both feeds (or one) have been seen up to T0 + t. */
const advance = (t: number, side?: Side): Step => ({ advance: t, side });
/** What drain() returns at this point (sorted summaries). */
const expectNow = (...summaries: string[]): Step => ({ expect: summaries });

/**
 * `a0+b1#2` correlated (A id, B id, keepalives); `a0 orphan`; `b1 orphan`;
 * `B-b1 deleted`; ` r2` appended when the revision is not 1.
 */
function summary(o: Output): string {
  const r = o.record;
  const rev = o.revision === 1 ? '' : ` r${o.revision}`;
  if (o.kind === 'deleted') return `${o.id} deleted${rev}`;
  if (o.kind === 'correlated') return `${r.a_id}+${r.b_id}#${r.keepalives}${rev}`;
  return `${o.kind === 'orphan_a' ? r.a_id : r.b_id} orphan${rev}`;
}
const summaries = (outs: Output[]) => outs.map(summary).sort();

/** Event builder with a feed index per side; ids are `a<index>` / `b<index>`. */
class Feeds {
  private readonly next: Record<Side, number> = { A: 0, B: 0 };

  event(side: Side, conn: string, t: number, doc: Record<string, unknown> = {}): InputEvent {
    const c = CONNS[conn];
    assert.ok(c, `unknown connection ${conn}`);
    const index = this.next[side]++;
    const time = T0 + t;
    return {
      side,
      index,
      id: `${side.toLowerCase()}${index}`,
      key: keyOf(c.ip, c.port),
      time,
      doc: { src_ip: c.ip, src_port: c.port, timestamp: time, ...doc },
    };
  }
}

/** What a sink holds: the latest output per id (by version), as the pipeline's sinks keep it. */
class Sink {
  readonly latest = new Map<string, Output>();

  apply(outs: readonly Output[]): void {
    for (const o of outs) {
      const prev = this.latest.get(o.id);
      if (!prev || prev.version < o.version) this.latest.set(o.id, o);
    }
  }

  prior(id: string): PriorRecord | undefined {
    const o = this.latest.get(id);
    if (!o) return undefined;
    return {
      fingerprint: o.kind === 'deleted' ? '' : fingerprint(o.record),
      revision: o.revision,
      deleted: o.kind === 'deleted',
      ...(o.kind === 'correlated' && { bId: String(o.record.b_id) }),
      ...(o.kind !== 'deleted' && typeof o.record.a_rev === 'string' && { aRev: o.record.a_rev }),
      ...(o.kind !== 'deleted' && typeof o.record.b_rev === 'string' && { bRev: o.record.b_rev }),
    };
  }

  /** Live records (deletions left out) as summaries without revisions: what a reader sees once quiet. */
  current(): string[] {
    return [...this.latest.values()]
      .filter((o) => o.kind !== 'deleted')
      .map((o) => summary({ ...o, revision: 1 }))
      .sort();
  }
}

/**
 * Drives an engine the way the pipeline does: every pushed event is "stored";
 * drain() answers lookups from the store (events of the key from `from` on,
 * priors from the sink) until none are asked, unless `answer` is false.
 */
class Harness {
  readonly engine: CorrelationEngine;
  readonly store = new Map<string, InputEvent>();
  readonly sink = new Sink();
  readonly asked: LookupRequest[] = [];
  clock = NOW;

  constructor(
    cfg: EngineConfig | CorrelationEngine,
    public answer = true,
  ) {
    this.engine = cfg instanceof CorrelationEngine ? cfg : new CorrelationEngine(cfg);
  }

  push(ev: InputEvent): void {
    this.store.set(`${ev.side}:${ev.id}`, ev);
    this.engine.push(ev);
  }

  /** Answers one lookup from the store, with priors from the sink. */
  provide(r: LookupRequest): void {
    const events = [...this.store.values()].filter((e) => e.key === r.key && e.time >= r.from);
    const priors = new Map<string, PriorRecord>();
    for (const e of events) {
      const p = this.sink.prior(`${e.side}-${e.id}`);
      if (p) priors.set(`${e.side}-${e.id}`, p);
    }
    this.engine.provide(r.key, r.from, events, priors);
  }

  drain(): Output[] {
    const out: Output[] = [];
    for (let round = 0; ; round++) {
      assert.ok(round < 10, 'lookups did not settle');
      const got = this.engine.drain(this.clock++);
      this.sink.apply(got);
      out.push(...got);
      if (!this.answer) return out;
      const reqs = this.engine.lookups();
      if (reqs.length === 0) return out;
      this.asked.push(...reqs);
      for (const r of reqs) this.provide(r);
    }
  }
}

interface Run {
  engine: CorrelationEngine;
  h: Harness;
  /** Everything drained, including what `expect` steps checked. */
  all: Output[];
  /** Drained after the last `expect` step (and the final advance). */
  rest: Output[];
}

/** Pushes the steps in order; at the end both feeds are advanced to END unless `final` is false. */
function run(cfg: EngineConfig, steps: Step[], final = true): Run {
  const h = new Harness(cfg);
  const engine = h.engine;
  const feeds = new Feeds();
  const all: Output[] = [];
  let pending: Output[] = [];
  const take = () => {
    const got = h.drain();
    all.push(...got);
    pending.push(...got);
  };
  for (const s of steps) {
    if ('ev' in s) h.push(feeds.event(s.ev, s.conn, s.t, s.doc));
    else if ('advance' in s) {
      for (const side of s.side ? [s.side] : (['A', 'B'] as const)) engine.advance(side, T0 + s.advance);
    } else {
      take();
      assert.deepEqual(summaries(pending), [...s.expect].sort(), 'outputs at an expect step');
      pending = [];
    }
  }
  if (final) {
    engine.advance('A', END);
    engine.advance('B', END);
  }
  take();
  return { engine, h, all, rest: pending };
}

/** The same events (no expect steps, no advances) pushed in event order into an unbounded engine: the records a reader must end up with. */
function reference(cfg: EngineConfig, steps: Step[]): string[] {
  return run(
    unbounded(cfg),
    steps.filter((s) => 'ev' in s),
  ).h.sink.current();
}

type CounterCheck = Partial<{ [K in keyof EngineCounters]: EngineCounters[K] extends number ? number : Partial<EngineCounters[K]> }>;

interface Case {
  name: string;
  cfg?: Partial<EngineConfig>;
  steps: Step[];
  /** Sorted summaries of what comes out after the last expect step. */
  out: string[];
  counters?: CounterCheck;
}

function checkCounters(actual: EngineCounters, expected: CounterCheck): void {
  for (const [k, v] of Object.entries(expected)) {
    const got = actual[k as keyof EngineCounters];
    if (typeof v === 'number') assert.equal(got, v, `counters.${k}`);
    else for (const [sub, n] of Object.entries(v as object)) assert.equal((got as Record<string, number>)[sub], n, `counters.${k}.${sub}`);
  }
}

function runCases(cases: Case[]): void {
  for (const c of cases) {
    test(c.name, () => {
      const r = run(config(c.cfg), c.steps);
      assert.deepEqual(summaries(r.rest), [...c.out].sort());
      if (c.counters) checkCounters(r.engine.counters, c.counters);
      // Decided in order, nothing was provisional: no correction, no lookup.
      assert.equal(r.engine.counters.corrections, 0, 'corrections');
      assert.equal(r.engine.counters.lookups, 0, 'lookups');
    });
  }
}

describe('CorrelationEngine: time window', () => {
  runCases([
    { name: 'an A exactly window after its B matches', steps: [B('k1', 0), A('k1', 1000)], out: ['a0+b0#1'] },
    {
      name: 'an A window+1 after its B does not match: both become orphans',
      steps: [B('k1', 0), A('k1', 1001)],
      out: ['a0 orphan', 'b0 orphan'],
      counters: { correlated: 0, orphans: { A: 1, B: 1 } },
    },
    {
      name: 'a B after its A within apache_emit_delay_ms (< window) matches',
      cfg: { windowMs: 1000, apacheEmitDelayMs: 500 },
      steps: [A('k1', 0), B('k1', 500)],
      out: ['a0+b0#1'],
    },
    {
      name: 'a B after its A by delay+1 (< window) comes too late: the A was already an orphan',
      cfg: { windowMs: 1000, apacheEmitDelayMs: 500 },
      steps: [A('k1', 0), B('k1', 501)],
      out: ['a0 orphan', 'b0 orphan'],
    },
    {
      name: 'a B after its A within the window (< delay) matches',
      cfg: { windowMs: 300, apacheEmitDelayMs: 800 },
      steps: [A('k1', 0), B('k1', 300)],
      out: ['a0+b0#1'],
    },
    {
      // The A is still waiting (its delay is 800) but the window bounds the reach.
      name: 'a B after its A by window+1 (< delay) does not match the waiting A',
      cfg: { windowMs: 300, apacheEmitDelayMs: 800 },
      steps: [A('k1', 0), B('k1', 301)],
      out: ['a0 orphan', 'b0 orphan'],
    },
    { name: 'another key never matches', steps: [B('k1', 0), A('k2', 10)], out: ['a0 orphan', 'b0 orphan'] },
  ]);
});

describe('CorrelationEngine: B before A and A before B', () => {
  runCases([
    { name: 'B first in time and in push order', steps: [B('k1', 0), A('k1', 200)], out: ['a0+b0#1'] },
    { name: 'A first in time and in push order', steps: [A('k1', 0), B('k1', 200)], out: ['a0+b0#1'] },
    { name: 'B earlier in time but pushed after the A', steps: [A('k1', 200), B('k1', 0)], out: ['a0+b0#1'] },
    { name: 'A earlier in time but pushed after the B', steps: [B('k1', 200), A('k1', 0)], out: ['a0+b0#1'] },
    { name: 'same time, either push order', steps: [A('k1', 0), B('k1', 0), A('k2', 5), B('k2', 5)], out: ['a0+b0#1', 'a1+b1#1'] },
    {
      // Decision order is (time, B before A): pushed first or not, the A sees
      // the B of its own instant, the most recent one, not the older b0.
      name: 'at equal times the B is decided first: the A joins the new B, not an older one',
      steps: [B('k1', 0), A('k1', 500), B('k1', 500)],
      out: ['a0+b1#1', 'b0 orphan'],
    },
    {
      name: 'the most recent fresh B of the key wins when two are buffered',
      steps: [B('k1', 0), B('k1', 400), A('k1', 500)],
      out: ['a0+b1#1', 'b0 orphan'],
    },
    {
      // Of equally recent Bs, the first in event order (document id) wins
      // (see 'ties are broken by document id, not feed position' below for
      // ids that disagree with feed positions).
      name: 'two Bs at the same instant: the one first in event order (smaller document id) is matched',
      steps: [B('k1', 100), B('k1', 100), A('k1', 200)],
      out: ['a0+b0#1', 'b1 orphan'],
    },
  ]);
});

describe('CorrelationEngine: Keep-Alive (one_to_many)', () => {
  runCases([
    {
      name: 'every later A on the connection matches the same B: keepalives 1, 2, 3',
      steps: [B('k1', 0), A('k1', 100), A('k1', 200), A('k1', 300)],
      out: ['a0+b0#1', 'a1+b0#2', 'a2+b0#3'],
      counters: { correlated: 3, orphans: { A: 0, B: 0 } },
    },
    {
      name: 'As waiting for the B are counted oldest first, then the As after it continue the count',
      steps: [A('k1', 0), A('k1', 100), B('k1', 150), A('k1', 400)],
      out: ['a0+b0#1', 'a1+b0#2', 'a2+b0#3'],
    },
    {
      // TTL 30 s counted from the latest match, not from the B's own time:
      // 30,400 is past B.time + TTL but within 500 + TTL; 60,400 is exactly
      // TTL after the previous match; 90,401 is 1 ms too late.
      name: 'TTL is refreshed at every match; an A exactly TTL after the last match still matches',
      cfg: { networkTtlMs: 30_000, windowMs: 1000 },
      steps: [B('k1', 0), A('k1', 500), A('k1', 30_400), A('k1', 60_400), A('k1', 90_401)],
      out: ['a0+b0#1', 'a1+b0#2', 'a2+b0#3', 'a3 orphan'],
    },
    {
      name: 'after TTL since the last match the B is gone: the A is an orphan, the matched B is no orphan',
      cfg: { networkTtlMs: 30_000 },
      steps: [B('k1', 0), A('k1', 500), A('k1', 30_501)],
      out: ['a0+b0#1', 'a1 orphan'],
      counters: { orphans: { A: 1, B: 0 }, dropped: { orphan_b_not_emitted: 0 } },
    },
    {
      name: 'an unmatched B lives for the window only, not the TTL',
      cfg: { networkTtlMs: 30_000, windowMs: 1000 },
      steps: [B('k1', 0), A('k1', 1001)],
      out: ['a0 orphan', 'b0 orphan'],
    },
    {
      name: 'two connections on two keys count separately',
      steps: [B('k1', 0), B('k2', 10), A('k1', 100), A('k2', 110), A('k1', 120)],
      out: ['a0+b0#1', 'a1+b1#1', 'a2+b0#2'],
    },
  ]);
});

describe('CorrelationEngine: one_to_one', () => {
  runCases([
    {
      name: 'the first A consumes the B; a second A on the same key is an orphan',
      cfg: { mode: 'one_to_one' },
      steps: [B('k1', 0), A('k1', 100), A('k1', 200)],
      out: ['a0+b0#1', 'a1 orphan'],
      counters: { correlated: 1, orphans: { A: 1, B: 0 } },
    },
    {
      name: 'of two As waiting for the B, the oldest gets it',
      cfg: { mode: 'one_to_one' },
      steps: [A('k1', 0), A('k1', 100), B('k1', 200)],
      out: ['a0+b0#1', 'a1 orphan'],
    },
    {
      name: 'a new B on the key serves the next A, keepalives stays 1',
      cfg: { mode: 'one_to_one' },
      steps: [B('k1', 0), A('k1', 100), B('k1', 150), A('k1', 200)],
      out: ['a0+b0#1', 'a1+b1#1'],
    },
  ]);
});

describe('CorrelationEngine: orphan A delay and the watermark', () => {
  test('an orphan A comes out only once min(progress) - slack passes A.time + delay', () => {
    const r = run(config({ apacheEmitDelayMs: 500, reorderSlackMs: 200 }), [
      A('k1', 1000),
      advance(1700), // 1700 - 200 = 1500 = A.time + delay: not passed yet
      expectNow(),
      advance(1701),
      expectNow('a0 orphan'),
    ]);
    assert.deepEqual(r.rest, []);
  });

  test('a lagging B feed does not turn As into false orphans', () => {
    run(config(), [
      A('k1', 1000),
      A('k2', 5000), // the A feed is far ahead; the B feed has said nothing yet
      expectNow(),
      B('k1', 1100),
      expectNow('a0+b0#1'),
      advance(20_000),
      expectNow('a1 orphan'),
    ]);
  });

  test('an idle B feed advanced by advance() lets orphans out on time', () => {
    const r = run(
      config(),
      [
        A('k1', 1000),
        A('k2', 5000),
        expectNow(),
        advance(5000, 'B'), // the B feed is caught up and idle at 5000
        expectNow('a0 orphan'),
        advance(5501, 'B'), // the A feed has only seen up to 5000: a1 must wait
        expectNow(),
        advance(5501, 'A'),
        expectNow('a1 orphan'),
      ],
      false,
    );
    assert.equal(r.engine.watermark, T0 + 5501);
  });

  test('an unmatched B is emitted (network_emit) once the watermark passes B.time + window', () => {
    run(config({ windowMs: 1000, networkEmit: true }), [B('k1', 0), advance(1000), expectNow(), advance(1001), expectNow('b0 orphan')]);
  });
});

describe('CorrelationEngine: orphan policy', () => {
  runCases([
    {
      name: 'network_emit: true emits an unmatched B as an orphan',
      cfg: { networkEmit: true },
      steps: [B('k1', 0)],
      out: ['b0 orphan'],
      counters: { orphans: { A: 0, B: 1 }, dropped: { orphan_b_not_emitted: 0 } },
    },
    {
      name: 'network_emit: false counts it as dropped instead',
      cfg: { networkEmit: false },
      steps: [B('k1', 0), B('k2', 10), A('k2', 20)],
      out: ['a0+b1#1'],
      counters: { orphans: { A: 0, B: 0 }, dropped: { orphan_b_not_emitted: 1 } },
    },
    {
      name: 'apache_always_emit: false counts an orphan A as dropped; correlated As still come out',
      cfg: { apacheAlwaysEmit: false },
      steps: [A('k1', 0), B('k2', 10), A('k2', 20)],
      out: ['a1+b0#1'],
      counters: { orphans: { A: 0, B: 0 }, dropped: { orphan_a_not_emitted: 1 } },
    },
  ]);

  test('orphan records carry correlated:false and the orphan side', () => {
    const r = run(config(), [A('k1', 0), B('k2', 0)]);
    const byKind = Object.fromEntries(r.all.map((o) => [o.kind, o.record]));
    assert.equal(byKind.orphan_a?.correlated, false);
    assert.equal(byKind.orphan_a?.orphan_side, 'A');
    assert.equal(byKind.orphan_b?.correlated, false);
    assert.equal(byKind.orphan_b?.orphan_side, 'B');
  });
});

describe('CorrelationEngine: out-of-order events', () => {
  // Feed order differs from time order by up to 250 ms, under the 300 ms slack.
  const feedA: [string, number][] = [
    ['k1', 1250],
    ['k2', 1000],
    ['k1', 1600],
    ['k3', 1400],
  ];
  const feedB: [string, number][] = [
    ['k2', 950],
    ['k1', 1200],
    ['k3', 1150],
    ['k4', 1500],
  ];
  const stepsA = feedA.map(([c, t]) => A(c, t));
  const stepsB = feedB.map(([c, t]) => B(c, t));
  const expected = ['a0+b1#1', 'a1+b0#1', 'a2+b1#2', 'a3+b2#1', 'b3 orphan'];
  const orders: Record<string, Step[]> = {
    'A feed first': [...stepsA, ...stepsB],
    'B feed first': [...stepsB, ...stepsA],
    alternating: stepsA.flatMap((a, i) => [a, stepsB[i]!]),
  };
  for (const [name, steps] of Object.entries(orders)) {
    test(`within the reorder slack: same output as in time order (${name})`, () => {
      const r = run(config({ reorderSlackMs: 300 }), steps);
      assert.deepEqual(summaries(r.all), expected);
      assert.deepEqual(r.engine.counters.late, { A: 0, B: 0 });
    });
  }

  test('the same events pushed in time order (feed indices kept) give that output', () => {
    const f = new Feeds();
    const events = [...feedA.map(([c, t]) => f.event('A', c, t)), ...feedB.map(([c, t]) => f.event('B', c, t))];
    const engine = new CorrelationEngine(config({ reorderSlackMs: 300 }));
    for (const e of events.sort((x, y) => x.time - y.time)) engine.push(e);
    engine.advance('A', END);
    engine.advance('B', END);
    assert.deepEqual(summaries(engine.drain(NOW)), expected);
  });

  test('an event out of order by more than the slack is counted late and still gets exactly one output', () => {
    const r = run(config({ reorderSlackMs: 300 }), [advance(3000, 'B'), A('k1', 2000), A('k2', 1000)]);
    assert.deepEqual(r.engine.counters.late, { A: 1, B: 0 });
    assert.deepEqual(r.engine.counters.tooLate, { A: 0, B: 0 });
    assert.deepEqual(summaries(r.all), ['a0 orphan', 'a1 orphan'], 'still exactly one output per A');
  });
});

// ---------------------------------------------------------------------------
// The parts: event order, one connection's rules (KeySim), fingerprints.

/** An event with an explicit id and index (Feeds ties ids to indexes). */
function ev(side: Side, conn: string, t: number, id: string, index = 0): InputEvent {
  const c = CONNS[conn]!;
  return { side, index, id, key: keyOf(c.ip, c.port), time: T0 + t, doc: { src_ip: c.ip, src_port: c.port, timestamp: T0 + t } };
}

describe('eventBefore: time, then B before A, then document id', () => {
  test('an earlier time comes first whatever the side and id', () => {
    assert.equal(eventBefore(ev('A', 'k1', 0, 'z'), ev('B', 'k1', 1, 'a')), true);
    assert.equal(eventBefore(ev('B', 'k1', 1, 'a'), ev('A', 'k1', 0, 'z')), false);
  });

  test('at the same time a B comes before an A, whatever their ids', () => {
    assert.equal(eventBefore(ev('B', 'k1', 5, 'zzz'), ev('A', 'k1', 5, 'aaa')), true);
    assert.equal(eventBefore(ev('A', 'k1', 5, 'aaa'), ev('B', 'k1', 5, 'zzz')), false);
  });

  test('same time and side: by document id as a string; the feed index is ignored', () => {
    // 'a10' < 'a9' as strings, though 9 < 10 as indexes.
    const x = ev('A', 'k1', 5, 'a10', 10);
    const y = ev('A', 'k1', 5, 'a9', 9);
    assert.equal(eventBefore(x, y), true);
    assert.equal(eventBefore(y, x), false);
    const early = ev('B', 'k1', 5, 'b1', 99);
    const late = ev('B', 'k1', 5, 'b2', 0);
    assert.equal(eventBefore(early, late), true, 'index 99 vs 0 does not matter');
  });

  test('strict: an event is not before itself', () => {
    const x = ev('A', 'k1', 5, 'a1');
    assert.equal(eventBefore(x, x), false);
  });

  test('ties are broken by document id, not feed position: in the engine too, in either push order', () => {
    // Two Bs at the same instant whose ids disagree with their feed positions:
    // 'b-z' came first in its feed (index 0), 'b-a' second (index 1). Of
    // equally recent Bs the first in event order is matched: 'b-a', by id.
    for (const order of [0, 1]) {
      const bs = [ev('B', 'k1', 100, 'b-z', 0), ev('B', 'k1', 100, 'b-a', 1)];
      const engine = new CorrelationEngine(config());
      for (const e of order === 0 ? bs : [...bs].reverse()) engine.push(e);
      engine.push(ev('A', 'k1', 200, 'a-1', 0));
      engine.advance('A', END);
      engine.advance('B', END);
      const outs = engine.drain(NOW);
      const a = outs.find((o) => o.id === 'A-a-1')!;
      assert.equal(a.record.b_id, 'b-a', `push order ${order}`);
      assert.deepEqual(
        outs.filter((o) => o.kind === 'orphan_b').map((o) => o.id),
        ['B-b-z'],
        `push order ${order}`,
      );
    }
  });
});

describe('KeySim: one connection, events in event order', () => {
  type Decision = [id: string, what: string | null, dropped: boolean];
  const what = (r: Record<string, unknown>) => (r.correlated ? `${r.a_id}+${r.b_id}#${r.keepalives}` : `${r.a_id ?? r.b_id} orphan`);
  function sim(over: Partial<EngineConfig> = {}): { s: KeySim; d: Decision[] } {
    const d: Decision[] = [];
    const s = new KeySim(config(over), (id, _ev, record, dropped) => d.push([id, record === null ? null : what(record), dropped]));
    return { s, d };
  }

  test('a B then an A within the window: the B is decided without a record, the A correlated; the B stays alive for the TTL', () => {
    const { s, d } = sim({ windowMs: 1000, networkTtlMs: 30_000 });
    s.step(ev('B', 'k1', 0, 'b0'));
    assert.deepEqual(d, []);
    assert.equal(s.nextDeadline(), T0 + 1000, 'an unmatched B lives for the window');
    s.step(ev('A', 'k1', 1000, 'a0'));
    assert.deepEqual(d, [
      ['B-b0', null, false],
      ['A-a0', 'a0+b0#1', false],
    ]);
    assert.equal(s.live, true);
    assert.equal(s.nextDeadline(), T0 + 1000 + 30_000, 'kept alive TTL after the match');
    s.step(ev('A', 'k1', 2000, 'a1'));
    assert.deepEqual(d.slice(2), [['A-a1', 'a1+b0#2', false]], 'the B is decided once; keepalives count on');
  });

  test('an A without a B waits apache_emit_delay_ms (strictly), then is an orphan', () => {
    const { s, d } = sim({ apacheEmitDelayMs: 500 });
    s.step(ev('A', 'k1', 0, 'a0'));
    assert.equal(s.nextDeadline(), T0 + 500);
    s.expire(T0 + 500);
    assert.deepEqual(d, [], 'deadline not passed yet');
    assert.equal(s.live, true);
    s.expire(T0 + 501);
    assert.deepEqual(d, [['A-a0', 'a0 orphan', false]]);
    assert.equal(s.live, false);
    assert.equal(s.nextDeadline(), Infinity);
    assert.equal(s.expiredTo, T0 + 501);
  });

  test('policy: an orphan A not emitted and an orphan B not emitted are decided as dropped', () => {
    const { s, d } = sim({ apacheAlwaysEmit: false, networkEmit: false });
    s.step(ev('A', 'k1', 0, 'a0'));
    s.step(ev('B', 'k1', 5000, 'b0')); // step() expires first: the A is an orphan before the B is seen
    s.expire(Infinity);
    assert.deepEqual(d, [
      ['A-a0', null, true],
      ['B-b0', null, true],
    ]);
  });

  test('a B reaches back min(window, delay) to waiting As, oldest first; beyond that it does not', () => {
    const { s, d } = sim({ windowMs: 300, apacheEmitDelayMs: 800 });
    s.step(ev('A', 'k1', 0, 'a0'));
    s.step(ev('A', 'k1', 100, 'a1'));
    s.step(ev('B', 'k1', 350, 'b0')); // 350 from a0 (> 300), 250 from a1
    assert.deepEqual(d, [
      ['B-b0', null, false],
      ['A-a1', 'a1+b0#1', false],
    ]);
    s.expire(Infinity);
    assert.deepEqual(d.slice(2), [['A-a0', 'a0 orphan', false]]);
  });

  test('one_to_one: the first A consumes the B; the next A waits and ends an orphan', () => {
    const { s, d } = sim({ mode: 'one_to_one' });
    s.step(ev('B', 'k1', 0, 'b0'));
    s.step(ev('A', 'k1', 10, 'a0'));
    s.step(ev('A', 'k1', 20, 'a1'));
    assert.deepEqual(d, [
      ['B-b0', null, false],
      ['A-a0', 'a0+b0#1', false],
    ]);
    assert.equal(s.size, 1, 'only a1 is held');
    s.expire(Infinity);
    assert.deepEqual(d.slice(2), [['A-a1', 'a1 orphan', false]]);
  });

  test('a matched B that expires is not an orphan', () => {
    const { s, d } = sim({ networkTtlMs: 1000 });
    s.step(ev('B', 'k1', 0, 'b0'));
    s.step(ev('A', 'k1', 10, 'a0'));
    s.expire(Infinity);
    assert.deepEqual(d, [
      ['B-b0', null, false],
      ['A-a0', 'a0+b0#1', false],
    ]);
    assert.equal(s.live, false);
  });

  test('segmentGap is the longest reach of any rule; segmentStart splits where events are further apart than it', () => {
    assert.equal(segmentGap(config({ windowMs: 1000, networkTtlMs: 30_000, apacheEmitDelayMs: 500 })), 30_000);
    assert.equal(segmentGap(config({ windowMs: 1000, networkTtlMs: 200, apacheEmitDelayMs: 5000 })), 5000);
    const evs = [0, 100, 100 + 30_000, 100 + 30_000 + 30_001].map((t, i) => ev('A', 'k1', t, `a${i}`));
    assert.equal(segmentStart(evs, 0, 30_000), 0);
    assert.equal(segmentStart(evs, 2, 30_000), 0, 'exactly the gap apart: the same segment');
    assert.equal(segmentStart(evs, 3, 30_000), 3, 'one ms more: a new segment');
  });
});

describe('fingerprint: the content of a record, not its bookkeeping', () => {
  const rec = { timestamp: '2024-01-01T12:00:00.000Z', src_ip: '198.51.100.1', src_port: 50001, correlated: true, keepalives: 2, a_id: 'a0', b_id: 'b0' };

  test('revision, decided_at, _id and _rev do not change it', () => {
    const fp = fingerprint(rec);
    assert.equal(fingerprint({ ...rec, revision: 7, decided_at: '2030-01-01T00:00:00.000Z' }), fp);
    assert.equal(fingerprint({ _id: 'A-a0', _rev: '3-abc', ...rec }), fp);
    assert.equal(fingerprint({ ...rec, missing: undefined }), fp, 'an undefined field is no field');
  });

  test('what a re-decision can change does: the partner, the keepalives count, correlated or not', () => {
    const fp = fingerprint(rec);
    assert.notEqual(fingerprint({ ...rec, keepalives: 3 }), fp);
    assert.notEqual(fingerprint({ ...rec, correlated: false }), fp);
    assert.notEqual(fingerprint({ ...rec, b_id: 'b1' }), fp);
    assert.notEqual(fingerprint({ ...rec, b_id: null, correlated: false, keepalives: 0 }), fp, 'an orphan of the same A');
    assert.notEqual(fingerprint({ ...rec, a_id: null }), fp);
  });

  test('a source revision above the first (an admin edit) is part of it; none leaves the fingerprint as it was', () => {
    const fp = fingerprint(rec);
    assert.notEqual(fingerprint({ ...rec, a_rev: '2-x' }), fp);
    assert.notEqual(fingerprint({ ...rec, a_rev: '2-x' }), fingerprint({ ...rec, a_rev: '3-y' }));
    assert.notEqual(fingerprint({ ...rec, b_rev: '2-x' }), fingerprint({ ...rec, a_rev: '2-x' }));
    assert.equal(fingerprint({ ...rec, a_rev: undefined }), fp);
  });

  test('a record read back from CouchDB (other key order, its own fields) has the same fingerprint', () => {
    const stored = {
      _id: 'A-a0',
      _rev: '2-x',
      b_id: 'b0',
      a_id: 'a0',
      keepalives: 2,
      correlated: true,
      src_port: 50001,
      src_ip: '198.51.100.1',
      timestamp: '2024-01-01T12:00:00.000Z',
      revision: 2,
      decided_at: 'x',
    };
    assert.equal(fingerprint(stored), fingerprint(rec));
  });
});

// ---------------------------------------------------------------------------
// Late events: decisions are provisional; a late event re-runs its connection
// and what changed is emitted again under the same id.

describe('CorrelationEngine: late events correct what was emitted', () => {
  test('a late B turns a provisional orphan A into a correlated record: revision 2, same id', () => {
    const h = new Harness(config());
    const f = new Feeds();
    h.push(f.event('A', 'k1', 0)); // a0
    h.engine.advance('A', T0 + 2000);
    h.engine.advance('B', T0 + 2000);
    const first = h.drain();
    assert.deepEqual(
      first.map((o) => [o.id, o.kind, o.revision]),
      [['A-a0', 'orphan_a', 1]],
    );
    h.push(f.event('B', 'k1', 100)); // b0: 100 ms after a0, within its delay; 1.9 s behind the watermark
    const second = h.drain();
    assert.deepEqual(
      second.map((o) => [o.id, o.kind, o.revision]),
      [['A-a0', 'correlated', 2]],
    );
    assert.equal(second[0]!.record.revision, 2, 'the record carries its revision');
    assert.equal(second[0]!.record.b_id, 'b0');
    assert.ok(second[0]!.version > first[0]!.version, 'a higher version replaces the provisional record');
    const c = h.engine.counters;
    assert.deepEqual(c.late, { A: 0, B: 1 });
    assert.deepEqual(c.tooLate, { A: 0, B: 0 });
    assert.equal(c.corrections, 1);
    assert.equal(c.lookups, 0, 'the connection was in memory');
    assert.equal(c.correlated, 0, 'a correction is not a new record');
    assert.deepEqual(h.sink.current(), reference(config(), [A('k1', 0), B('k1', 100)]));
  });

  test('a late A matching an already emitted orphan B deletes B-<id> (revision 2) and correlates', () => {
    const h = new Harness(config());
    const f = new Feeds();
    h.push(f.event('B', 'k1', 0)); // b0
    h.engine.advance('A', T0 + 5000);
    h.engine.advance('B', T0 + 5000);
    assert.deepEqual(summaries(h.drain()), ['b0 orphan']);
    h.push(f.event('A', 'k1', 500)); // a0, within b0's window
    const outs = h.drain();
    assert.deepEqual(summaries(outs), ['B-b0 deleted r2', 'a0+b0#1']);
    const del = outs.find((o) => o.kind === 'deleted')!;
    assert.equal(del.id, 'B-b0');
    assert.deepEqual(del.record, {
      timestamp: new Date(T0).toISOString(),
      src_ip: '198.51.100.1',
      src_port: 50001,
      deleted: true,
      revision: 2,
      decided_at: new Date(del.version).toISOString(),
    });
    assert.equal(h.engine.counters.corrections, 1);
    assert.deepEqual(h.sink.current(), ['a0+b0#1']);
  });

  test('a late event whose re-run changes nothing emits nothing', () => {
    const h = new Harness(config());
    const f = new Feeds();
    h.push(f.event('B', 'k1', 0));
    h.push(f.event('A', 'k1', 100));
    h.engine.advance('A', T0 + 5000);
    h.engine.advance('B', T0 + 5000);
    assert.deepEqual(summaries(h.drain()), ['a0+b0#1']);
    h.push(f.event('B', 'k1', 3000)); // late, same connection, too far from a0 to change it: only itself is new
    assert.deepEqual(summaries(h.drain()), ['b1 orphan']);
    assert.equal(h.engine.counters.corrections, 0);
  });

  test('a late A that comes between keep-alive requests renumbers the later ones', () => {
    const h = new Harness(config());
    const f = new Feeds();
    h.push(f.event('B', 'k1', 0)); // b0
    h.push(f.event('A', 'k1', 100)); // a0 #1
    h.push(f.event('A', 'k1', 300)); // a1 #2
    h.engine.advance('A', T0 + 2000);
    h.engine.advance('B', T0 + 2000);
    assert.deepEqual(summaries(h.drain()), ['a0+b0#1', 'a1+b0#2']);
    h.push(f.event('A', 'k1', 200)); // a2, between them
    assert.deepEqual(summaries(h.drain()), ['a1+b0#3 r2', 'a2+b0#2']);
  });

  test('later than allowed_lateness: counted too late, decided with what is in memory; only whether it was decided before is asked', () => {
    const cfg = config({ allowedLatenessMs: 10_000, maxHttpItems: 1, maxNetworkItems: 1 });
    const h = new Harness(cfg);
    const f = new Feeds();
    h.push(f.event('A', 'k1', 0));
    h.push(f.event('B', 'k2', 0));
    h.push(f.event('A', 'k3', 10)); // one A in memory at most: k1's connection leaves (a0 decided early)
    h.engine.advance('A', T0 + 60_000);
    h.engine.advance('B', T0 + 60_000);
    h.drain();
    h.push(f.event('B', 'k1', 100)); // would match a0, but 59.9 s late with 10 s allowed
    const outs = h.drain();
    assert.deepEqual(h.engine.counters.tooLate, { A: 0, B: 1 });
    // Not its connection from the horizon: its own record, and the A's it could have matched first (none name it).
    assert.deepEqual(
      h.asked.map((r) => [r.ids, r.from - T0, r.until - T0]),
      [[['B-b1'], 100 - 500, 100 + 1000]],
    );
    assert.deepEqual(summaries(outs), ['b1 orphan'], 'decided alone: a0 left memory and is not looked up');
    assert.deepEqual(h.sink.current(), ['a0 orphan', 'a1 orphan', 'b0 orphan', 'b1 orphan']);
  });

  test('a feed read again from its start days later (a database restored, a cluster copy lost): what was decided stays; a new document is decided alone', () => {
    // Each document past the horizon was decided alone, with nothing in memory: the second
    // request of a Keep-Alive connection was rewritten as its first, a matched B became an orphan.
    const cfg = config({ allowedLatenessMs: 3_600_000, windowMs: 10_000 });
    const h = new Harness(cfg);
    const f = new Feeds();
    const stored = [f.event('B', 'k1', 0), f.event('A', 'k1', 100), f.event('A', 'k1', 5000), f.event('B', 'k2', 0), f.event('A', 'k3', 0)];
    for (const e of stored) h.push(e);
    h.engine.advance('A', END);
    h.engine.advance('B', END);
    h.drain();
    const decided = h.sink.current();
    assert.deepEqual(decided, ['a0+b0#1', 'a1+b0#2', 'a2 orphan', 'b1 orphan']);
    const later = T0 + 2 * 86_400_000;
    h.engine.advance('A', later);
    h.engine.advance('B', later);
    h.drain();
    assert.equal(h.engine.sizes().connections, 0, 'all past the horizon: gone from memory');
    for (const e of [...stored].reverse()) h.engine.push(e);
    const fresh = f.event('B', 'k3', 50); // never seen: would have matched a2, which is not looked up
    h.push(fresh);
    const outs = h.drain();
    assert.deepEqual(summaries(outs), ['b2 orphan']);
    assert.equal(h.engine.counters.duplicates, stored.length);
    assert.deepEqual(h.sink.current(), [...decided, 'b2 orphan'].sort());
    // The connections made for the check are gone; the new B's stays until pruned.
    assert.deepEqual([h.engine.sizes().connections, h.engine.sizes().cachedA, h.engine.sizes().cachedB], [1, 0, 1]);
  });

  test('a checkpoint taken while such a check is out keeps the documents: the restored engine asks again', () => {
    const cfg = config({ allowedLatenessMs: 3_600_000, windowMs: 10_000 });
    const h = new Harness(cfg);
    const f = new Feeds();
    const b = f.event('B', 'k1', 0);
    const a = f.event('A', 'k1', 100);
    h.push(b);
    h.push(a);
    h.engine.advance('A', END);
    h.engine.advance('B', END);
    h.drain();
    const later = T0 + 2 * 86_400_000;
    h.engine.advance('A', later);
    h.engine.advance('B', later);
    h.drain();
    h.engine.push(a); // read again past the horizon
    h.engine.drain(NOW + 1);
    assert.deepEqual(
      h.engine.lookups().map((r) => r.ids),
      [['A-a0']],
    );
    const snap = JSON.parse(JSON.stringify(h.engine.exportState())) as EngineSnapshot;
    assert.deepEqual(snap.unverified, [['A', 'a0']]);
    const r = new Harness(CorrelationEngine.restore(cfg, snap, (side, id) => h.store.get(`${side}:${id}`)));
    for (const [k, v] of h.store) r.store.set(k, v);
    for (const [k, v] of h.sink.latest) r.sink.latest.set(k, v);
    assert.deepEqual(r.drain(), [], 'asked again, and a duplicate');
    assert.deepEqual(
      r.asked.map((q) => q.ids),
      [['A-a0']],
    );
    assert.equal(r.engine.counters.duplicates, 1);
  });
});

describe('CorrelationEngine: event times ahead of the clock', () => {
  test("a lookup reads up to the connection's latest known time, though past the clock: an event dated ahead and taken early is found", () => {
    // Found by a review: the lookup ended at the clock + max skew; an A dated ahead, taken early out
    // of a full parked queue and evicted since, was not read back, and a late B stayed an orphan.
    const cfg = config({ maxHttpItems: 2, maxNetworkItems: 2, maxClockSkewMs: 1000 });
    const H = T0;
    const at = (side: Side, id: string, port: number, time: number): InputEvent => ({
      side,
      index: 0,
      id,
      key: keyOf('10.0.0.1', port),
      time,
      doc: { src_ip: '10.0.0.1', src_port: port, timestamp: time },
    });
    const h = new Harness(cfg);
    // Lookups answered by the view up to the end of the hour of `until`, as by_conn_hour reads.
    h.provide = (r: LookupRequest) => {
      const end = (Math.floor(r.until / 3_600_000) + 1) * 3_600_000;
      const events = [...h.store.values()].filter((e) => e.key === r.key && e.time >= r.from && e.time < end);
      h.engine.provide(r.key, r.from, events, null);
    };
    h.engine.clock(H - 1400);
    h.push(at('A', 'aK', 1, H + 100)); // past the clock + skew: parked
    for (let i = 0; i < 6; i++) h.push(at('B', `bo${i}`, 100 + i, H + 3_600_000 + i)); // more parked: aK is taken early
    for (let i = 0; i < 20; i++) {
      h.push(at('B', `bn${i}`, 200 + i, H - 60_000 + i * 10));
      h.push(at('A', `an${i}`, 200 + i, H - 60_000 + i * 10 + 5));
    }
    h.engine.advance('A', H - 1500);
    h.engine.advance('B', H - 1500);
    h.drain();
    h.push(at('B', 'bK', 1, H - 500)); // late, its connection evicted: looked up
    h.engine.advance('A', H - 450);
    h.engine.advance('B', H - 450);
    h.drain();
    assert.ok(h.asked.length > 0 && h.asked.every((r) => r.key !== keyOf('10.0.0.1', 1) || r.until >= H + 100), JSON.stringify(h.asked));
    h.engine.clock(H + 10_000);
    h.engine.advance('A', Infinity);
    h.engine.advance('B', Infinity);
    h.drain();
    assert.deepEqual(h.sink.latest.get('A-aK')?.kind, 'correlated');
  });

  const DAY = 86_400_000;

  /** A backlog of k1..k3 connections two to three hours before `now`, B first, then A (the hour-late side). */
  function backlog(h: Harness, f: Feeds, base: number): void {
    for (const [i, conn] of ['k1', 'k2', 'k3'].entries()) h.push(f.event('B', conn, base + i * 1000));
    for (const [i, conn] of ['k1', 'k2', 'k3'].entries()) h.push(f.event('A', conn, base + i * 1000 + 50));
  }

  test('a pair dated days ahead does not move the watermark: later documents stay exact, nothing is too late', () => {
    // Found by a black-box test: one anonymous POST pair dated +3 days made every later document "too late" for days.
    const h = new Harness(config({ allowedLatenessMs: DAY }));
    const f = new Feeds();
    const now = T0 + 3 * 3_600_000;
    h.engine.clock(now);
    h.push(f.event('B', 'k4', 3 * DAY)); // b0, dated 3 days ahead of T0
    h.push(f.event('A', 'k4', 3 * DAY + 10)); // a0
    assert.deepEqual(h.engine.counters.future, { A: 1, B: 1 });
    assert.ok(!(h.engine.watermark > now + 300_000), `watermark ${h.engine.watermark} is past the clock + skew`);
    backlog(h, f, 0);
    assert.deepEqual(h.engine.counters.late, { A: 0, B: 0 }, 'the parked pair moved no progress: the backlog is in order');
    h.engine.advance('A', now);
    h.engine.advance('B', now);
    const first = h.drain();
    assert.deepEqual(h.engine.counters.tooLate, { A: 0, B: 0 });
    assert.deepEqual(summaries(first), ['a1+b1#1', 'a2+b2#1', 'a3+b3#1'], 'decided once, no correction');
    assert.deepEqual(h.sink.current(), ['a1+b1#1', 'a2+b2#1', 'a3+b3#1'], 'the backlog correlated; the future pair still waits for its time');
    // The clock reaches the future pair: it is decided like any other.
    h.engine.clock(T0 + 3 * DAY + 60_000);
    h.engine.advance('A', T0 + 3 * DAY + 60_000);
    h.engine.advance('B', T0 + 3 * DAY + 60_000);
    h.drain();
    assert.deepEqual(h.sink.current(), ['a0+b0#1', 'a1+b1#1', 'a2+b2#1', 'a3+b3#1']);
  });

  test('a snapshot whose progress ran ahead (taken before the rule) is brought back to the clock on restore', () => {
    const old = new Harness(config({ allowedLatenessMs: DAY }));
    const f = new Feeds();
    old.push(f.event('B', 'k4', 3 * DAY)); // no clock given: progress follows the events, as before the rule
    old.push(f.event('A', 'k4', 3 * DAY + 10));
    old.drain();
    assert.ok(old.engine.watermark > T0 + 2 * DAY);
    const h = new Harness(
      CorrelationEngine.restore(config({ allowedLatenessMs: DAY }), old.engine.exportState(), (side, id) => old.store.get(`${side}:${id}`)),
    );
    const now = T0 + 3 * 3_600_000;
    h.engine.clock(now);
    assert.ok(h.engine.watermark <= now + 300_000);
    backlog(h, f, 0);
    h.engine.advance('A', now);
    h.engine.advance('B', now);
    h.drain();
    assert.deepEqual(h.engine.counters.tooLate, { A: 0, B: 0 });
    assert.deepEqual(h.sink.current(), ['a1+b1#1', 'a2+b2#1', 'a3+b3#1']);
  });

  test('many documents dated ahead do not crowd live ones out of the waiting bound', () => {
    // Found by a code review: parked in `waiting`, a few of them made every later event late once the bound was reached.
    const h = new Harness(config({ allowedLatenessMs: DAY, maxHttpItems: 2, maxNetworkItems: 2 }));
    const f = new Feeds();
    const now = T0 + 3 * 3_600_000;
    h.engine.clock(now);
    for (let i = 0; i < 5; i++) h.push(f.event('B', 'k4', 3 * DAY + i));
    assert.equal(h.engine.counters.future.B, 5);
    backlog(h, f, 0);
    assert.deepEqual(h.engine.counters.late, { A: 0, B: 1 }, 'only the nearest parked event beyond the bound was decided early');
    h.engine.advance('A', now);
    h.engine.advance('B', now);
    h.drain();
    assert.deepEqual(
      h.sink.current().filter((x) => !x.includes('orphan')),
      ['a0+b5#1', 'a1+b6#1', 'a2+b7#1'],
    );
  });

  test('without a clock (a replay to the end) event times move the watermark as they are', () => {
    const h = new Harness(config());
    const f = new Feeds();
    h.push(f.event('B', 'k4', 3 * DAY));
    assert.deepEqual(h.engine.counters.future, { A: 0, B: 0 });
  });
});

describe('CorrelationEngine: duplicates, versions, decided_at', () => {
  test('a backlog drained at once does not run its versions ahead of the clock: a run restarted from an earlier checkpoint a moment later writes above it', () => {
    // Before, one version per output: 5,000 records in one drain ran 5 s ahead, and a run
    // killed then and restarted 2 s later numbered the B orphan's deletion below the orphan
    // row already written, which ClickHouse's FINAL then kept.
    const cfg = config({ maxHttpItems: 100_000, maxNetworkItems: 100_000 });
    const engine = new CorrelationEngine(cfg);
    const checkpoint = JSON.parse(JSON.stringify(engine.exportState())) as EngineSnapshot;
    const f = new Feeds();
    const backlog = Array.from({ length: 5000 }, (_, i) => ({ ...f.event('A', 'k2', 0), key: `203.0.113.${1 + (i % 200)}:${2000 + i}`, time: T0 + 100 + i }));
    const b = f.event('B', 'k1', 6000);
    const a = f.event('A', 'k1', 6100);
    const stored = new Map([...backlog, b, a].map((e) => [`${e.side}:${e.id}`, e]));
    for (const e of [...backlog, b]) engine.push(e);
    engine.advance('A', NOW);
    engine.advance('B', NOW);
    const burst = engine.drain(NOW);
    assert.equal(burst.length, 5001);
    const orphan = burst.find((o) => o.id === `B-${b.id}`)!;
    assert.equal(orphan.version, NOW);
    // kill -9; restarted 2 s later from the checkpoint; the first page also brings b's partner.
    const restarted = CorrelationEngine.restore(cfg, checkpoint, (side, id) => stored.get(`${side}:${id}`));
    restarted.replayFromStart();
    restarted.push(b);
    restarted.push(a);
    restarted.advance('A', NOW + 2000);
    restarted.advance('B', NOW + 2000);
    const deletion = restarted.drain(NOW + 2000).find((o) => o.id === orphan.id)!;
    assert.equal(deletion.kind, 'deleted');
    assert.ok(deletion.version > orphan.version, `the deletion (${deletion.version}) above the orphan row (${orphan.version})`);
  });

  test('a re-delivered change (same side and id) is ignored, before and after its release', () => {
    const h = new Harness(config());
    const f = new Feeds();
    const b0 = f.event('B', 'k1', 0);
    const a0 = f.event('A', 'k1', 100);
    h.push(b0);
    h.push({ ...b0, doc: { ...b0.doc, ja4: 'changed' } }); // waiting: ignored even with other content
    h.push(a0);
    h.engine.advance('A', T0 + 5000);
    h.engine.advance('B', T0 + 5000);
    const outs = h.drain();
    assert.deepEqual(summaries(outs), ['a0+b0#1']);
    assert.equal(outs[0]!.record.ja4, undefined);
    h.push(a0); // released and decided: ignored
    h.push(b0);
    assert.deepEqual(h.drain(), []);
    const c = h.engine.counters;
    assert.equal(c.duplicates, 3);
    assert.deepEqual(c.eventsIn, { A: 1, B: 1 });
    assert.deepEqual(c.late, { A: 0, B: 0 }, 'a duplicate is not a late event');
  });

  test('the same id on the other side is not a duplicate', () => {
    const engine = new CorrelationEngine(config());
    engine.push(ev('B', 'k1', 0, 'x'));
    engine.push(ev('A', 'k1', 10, 'x'));
    engine.advance('A', END);
    engine.advance('B', END);
    assert.equal(engine.counters.duplicates, 0);
    assert.deepEqual(
      engine.drain(NOW).map((o) => [o.id, o.kind]),
      [['A-x', 'correlated']],
    );
  });

  test('versions are strictly increasing from one drain to the next even when the wall clock goes back; one per drain; decided_at is the version as ISO 8601', () => {
    const engine = new CorrelationEngine(config());
    const f = new Feeds();
    engine.push(f.event('A', 'k1', 0));
    engine.push(f.event('A', 'k2', 0));
    engine.advance('A', T0 + 1000);
    engine.advance('B', T0 + 1000);
    const first = engine.drain(NOW);
    assert.deepEqual(
      first.map((o) => o.version),
      [NOW, NOW],
    );
    engine.push(f.event('A', 'k3', 2000));
    engine.advance('A', T0 + 3000);
    engine.advance('B', T0 + 3000);
    const second = engine.drain(NOW - 60_000); // the clock stepped back a minute
    assert.deepEqual(
      second.map((o) => o.version),
      [NOW + 1],
    );
    for (const o of [...first, ...second]) {
      assert.equal(o.record.decided_at, new Date(o.version).toISOString());
      assert.equal(o.record.revision, 1);
      assert.equal(o.revision, 1);
    }
    engine.push(f.event('A', 'k4', 4000));
    engine.advance('A', T0 + 5000);
    engine.advance('B', T0 + 5000);
    assert.deepEqual(
      engine.drain(NOW + 10_000).map((o) => o.version),
      [NOW + 10_000],
      'the clock again when it is ahead',
    );
  });
});

// ---------------------------------------------------------------------------
// Memory is a cache of connections: when a side holds more events than
// allowed, the least recently used connection leaves (an open one is decided
// early, provisionally). A later event of it asks for a lookup; answered
// with the stored events, the records are corrected to what an unbounded
// engine gives.

describe('CorrelationEngine: the memory cache (max_http_items / max_network_items)', () => {
  const httpSteps = [advance(25, 'B'), A('k1', 0), A('k2', 10), A('k3', 20), expectNow('a0 orphan'), B('k1', 100)];

  test('max_http_items: the LRU open connection is decided early; a later B of it is looked up and a0 corrected (revision 2)', () => {
    const cfg = config({ maxHttpItems: 2 });
    const r = run(cfg, httpSteps);
    // a0 came out at once (watermark 20), long before its 500 ms delay: provisional.
    assert.deepEqual(summaries(r.rest), ['a0+b0#1 r2', 'a1 orphan', 'a2 orphan']);
    const c = r.engine.counters;
    // k1 leaves memory, then comes back with its lookup, which pushes another A connection out.
    assert.deepEqual(c.evictions, { A: 2, B: 0 });
    assert.equal(c.lookups, 1);
    assert.equal(c.corrections, 1);
    assert.equal(c.correlated, 0, 'a corrected record is not counted as a new one');
    assert.deepEqual(c.dropped, { orphan_a_not_emitted: 0, orphan_b_not_emitted: 0 }, 'nothing is lost');
    assert.deepEqual(r.h.sink.current(), reference(cfg, httpSteps), 'what an unbounded engine gives');
    assert.deepEqual(r.h.sink.current(), ['a0+b0#1', 'a1 orphan', 'a2 orphan']);
  });

  /** As of `at`: A events of k1, k2 and k3, 10 ms apart, in a cache of two, so that k1 is the one to leave memory. */
  function threeAs(h: Harness, f: Feeds, at: number): void {
    h.engine.advance('B', T0 + at + 25);
    for (const [conn, dt] of [
      ['k1', 0],
      ['k2', 10],
      ['k3', 20],
    ] as const)
      h.push(f.event('A', conn, at + dt));
  }

  test('the lookup names the connection and the lateness horizon; its connection waits, undecided, until provide()', () => {
    const cfg = config({ maxHttpItems: 2 });
    const h = new Harness(cfg, false);
    h.engine.clock(NOW);
    const f = new Feeds();
    threeAs(h, f, 0);
    assert.deepEqual(summaries(h.drain()), ['a0 orphan']);
    assert.equal(h.engine.sizes().connections, 2, 'k1 left memory');
    h.push(f.event('B', 'k1', 100));
    h.engine.advance('A', T0 + 10_000);
    h.engine.advance('B', T0 + 10_000);
    const before = h.drain();
    assert.deepEqual(summaries(before), ['a1 orphan', 'a2 orphan'], 'b0 is not decided without its partners');
    assert.equal(h.engine.sizes().awaitingLookup, 1);
    const reqs = h.engine.lookups();
    // from = the lateness horizon when b0 was admitted (the watermark was b0's own time, T0 + 100,
    // when A's feed moved on) - the segment gap (TTL 30 s); until = the clock + max_clock_skew (later documents wait for the clock).
    assert.deepEqual(reqs, [
      { key: '198.51.100.1:50001', src_ip: '198.51.100.1', src_port: 50001, from: T0 + 100 - 24 * 3_600_000 - 30_000, until: NOW + 300_000 },
    ]);
    assert.deepEqual(h.engine.lookups(), [], 'asked once');
    assert.deepEqual(h.drain(), [], 'still waiting');
    h.provide(reqs[0]!);
    const after = h.drain();
    assert.deepEqual(summaries(after), ['a0+b0#1 r2']);
    assert.equal(h.engine.sizes().awaitingLookup, 0);
    assert.deepEqual(h.sink.current(), ['a0+b0#1', 'a1 orphan', 'a2 orphan']);
  });

  // Found by a longer run of the arrival-order property (seed 40219): a connection held undecided
  // (the pipeline holds late ones while a backlog is read) was judged by the horizon at its
  // decision; once the feeds had moved more than allowed_lateness meanwhile, its late B went
  // without a lookup and stayed an orphan although it came minutes after its A.
  for (const restart of [false, true]) {
    test(`a late event held undecided while the feeds move past the horizon is still looked up${restart ? ', across a restart' : ''}`, () => {
      const cfg = config({ maxHttpItems: 2, allowedLatenessMs: 3_600_000 });
      let h = new Harness(cfg);
      const f = new Feeds();
      threeAs(h, f, 0);
      h.engine.advance('A', T0 + 60_000);
      h.engine.advance('B', T0 + 60_000);
      assert.deepEqual(summaries(h.drain()), ['a0 orphan', 'a1 orphan', 'a2 orphan']);
      assert.equal(h.engine.sizes().connections, 2, 'k1 left memory');
      // k1's B, two minutes late: held, as while a backlog is read.
      h.push(f.event('B', 'k1', 100));
      h.engine.advance('A', T0 + 120_000);
      h.engine.advance('B', T0 + 120_000);
      assert.deepEqual(h.engine.drain(h.clock++, false), []);
      assert.equal(h.engine.held, 1);
      if (restart) {
        const snap = JSON.parse(JSON.stringify(h.engine.exportState())) as ReturnType<CorrelationEngine['exportState']>;
        const { store, sink } = h;
        h = new Harness(CorrelationEngine.restore(cfg, snap, (side, id) => store.get(`${side}:${id}`)));
        for (const [k, v] of store) h.store.set(k, v);
        h.sink.apply([...sink.latest.values()]);
      }
      // Meanwhile the feeds moved on by more than allowed_lateness (a backlog of a day read at once).
      h.engine.advance('A', T0 + 2 * 3_600_000);
      h.engine.advance('B', T0 + 2 * 3_600_000);
      h.drain();
      assert.equal(h.asked.length, 1, 'b0 was looked up');
      assert.deepEqual(h.sink.current(), ['a0+b0#1', 'a1 orphan', 'a2 orphan']);
    });
  }

  // Found by a review: a too-late B of the same connection, held with it, came first in time and
  // decided for both: the one within the horizon went without its lookup too.
  test('held with a too-late event of its connection, an event within the horizon on arrival is still looked up', () => {
    const HOUR = 3_600_000;
    const cfg = config({ maxHttpItems: 2, allowedLatenessMs: HOUR, maxClockSkewMs: 1e12 });
    const outcome = (hold: boolean): string[] => {
      const h = new Harness(cfg);
      const f = new Feeds();
      threeAs(h, f, 2.5 * HOUR);
      h.engine.advance('A', T0 + 3 * HOUR);
      h.engine.advance('B', T0 + 3 * HOUR);
      h.drain();
      h.push(f.event('B', 'k1', HOUR)); // too late: the horizon is at T0 + 2 h
      if (hold) assert.deepEqual(h.engine.drain(h.clock++, false), []);
      else h.drain();
      h.push(f.event('B', 'k1', 2.5 * HOUR + 100)); // within it; its A (a0) left memory
      h.drain();
      return h.sink.current();
    };
    assert.deepEqual(outcome(true), outcome(false));
    assert.ok(outcome(true).includes('a0+b1#1'), outcome(true).join(' '));
  });

  test('max_http_items with apache_always_emit: false: the evicted A is dropped provisionally, then correlated after the lookup', () => {
    const cfg = config({ maxHttpItems: 2, apacheAlwaysEmit: false });
    const steps = [advance(25, 'B'), A('k1', 0), A('k2', 10), A('k3', 20), expectNow(), B('k1', 100)];
    const r = run(cfg, steps);
    assert.deepEqual(summaries(r.rest), ['a0+b0#1']);
    assert.deepEqual(r.h.sink.current(), reference(cfg, steps));
    assert.deepEqual(r.engine.counters.evictions, { A: 2, B: 0 }, 'k1 out, then another one when the lookup brings k1 back');
    assert.equal(r.engine.counters.lookups, 1);
  });

  test('max_network_items: the LRU B is an orphan early; a later A of it is looked up: the orphan B is deleted, the A correlated', () => {
    const cfg = config({ maxNetworkItems: 2 });
    const steps = [advance(25, 'A'), B('k1', 0), B('k2', 10), B('k3', 20), expectNow('b0 orphan'), A('k1', 30)];
    const r = run(cfg, steps);
    assert.deepEqual(summaries(r.rest), ['B-b0 deleted r2', 'a0+b0#1', 'b1 orphan', 'b2 orphan']);
    assert.deepEqual(r.engine.counters.evictions, { A: 0, B: 2 }, 'k1 out, then another one when the lookup brings k1 back');
    assert.equal(r.engine.counters.lookups, 1);
    assert.deepEqual(r.h.sink.current(), reference(cfg, steps));
    assert.deepEqual(r.h.sink.current(), ['a0+b0#1', 'b1 orphan', 'b2 orphan']);
  });

  test('max_network_items with network_emit: false: the evicted B is a provisional drop, then matched by the later A', () => {
    const cfg = config({ maxNetworkItems: 2, networkEmit: false });
    const steps = [advance(25, 'A'), B('k1', 0), B('k2', 10), B('k3', 20), expectNow(), A('k1', 30)];
    const r = run(cfg, steps);
    assert.deepEqual(summaries(r.rest), ['a0+b0#1']);
    assert.deepEqual(r.h.sink.current(), reference(cfg, steps));
  });

  test('an evicted connection whose B already matched: nothing changes, neither an orphan nor a drop, no lookup', () => {
    const r = run(config({ maxNetworkItems: 2 }), [B('k1', 0), A('k1', 5), B('k2', 10), B('k4', 20)]);
    assert.deepEqual(summaries(r.rest), ['a0+b0#1', 'b1 orphan', 'b2 orphan']);
    checkCounters(r.engine.counters, { evictions: { A: 1, B: 1 }, orphans: { B: 2 }, dropped: { orphan_b_not_emitted: 0 }, lookups: 0, corrections: 0 });
  });

  test('memory stays within the limits; sizes() reports it', () => {
    const engine = new CorrelationEngine(config({ maxHttpItems: 3, maxNetworkItems: 2 }));
    const f = new Feeds();
    engine.advance('B', T0 + 100);
    engine.advance('A', T0 + 100);
    const conns = ['k1', 'k2', 'k3', 'k4'];
    for (let i = 0; i < 8; i++) engine.push(f.event(i % 2 === 0 ? 'A' : 'B', conns[i % 4]!, 101 + i));
    engine.advance('A', T0 + 200);
    engine.advance('B', T0 + 200);
    const s = engine.sizes();
    assert.ok(s.cachedA <= 3 && s.cachedB <= 2, JSON.stringify(s));
    assert.equal(s.waiting, 0);
    assert.ok(engine.counters.evictions.A + engine.counters.evictions.B > 0, 'something was evicted');
    assert.ok(s.open <= s.connections);
  });

  test('a stalled feed: waiting events are bounded too; the oldest is decided early, counted late, and corrected when its partner comes', () => {
    const cfg = config({ maxHttpItems: 2, maxNetworkItems: 1 });
    const h = new Harness(cfg);
    const f = new Feeds();
    // The B feed says nothing: As wait for release, at most 2 + 1 of them.
    for (const [conn, t] of [
      ['k1', 0],
      ['k2', 10],
      ['k3', 20],
      ['k4', 30],
    ] as const)
      h.push(f.event('A', conn, t));
    assert.equal(h.engine.sizes().waiting, 3);
    assert.equal(h.engine.counters.late.A, 1, 'a0 was admitted early');
    h.push(f.event('B', 'k1', 50)); // a0's partner, at last
    h.engine.advance('A', T0 + 10_000);
    h.engine.advance('B', T0 + 10_000);
    h.drain();
    assert.deepEqual(h.sink.current(), ['a0+b0#1', 'a1 orphan', 'a2 orphan', 'a3 orphan']);
  });
});

// ---------------------------------------------------------------------------
// Snapshots (v2: ids only) and restore.

describe("CorrelationEngine: a long, busy Keep-Alive connection (a load balancer's upstream)", () => {
  const PROXY = { ip: '192.0.2.10', port: 41000 };
  const proxyKey = keyOf(PROXY.ip, PROXY.port);
  const ev = (side: Side, id: string, ip: string, port: number, t: number): InputEvent => ({
    side,
    index: 0,
    id,
    key: keyOf(ip, port),
    time: T0 + t,
    doc: { src_ip: ip, src_port: port, timestamp: T0 + t },
  });

  /** One B, then a request every `everyMs` on the same src_ip:src_port, beside short connections (a B and its A) every 50 ms. */
  function traffic(requests: number, everyMs: number): InputEvent[] {
    const out = [ev('B', 'bp', PROXY.ip, PROXY.port, 0)];
    for (let i = 1; i <= requests; i++) out.push(ev('A', `ap${String(i).padStart(6, '0')}`, PROXY.ip, PROXY.port, i * everyMs));
    for (let t = 10, i = 0; t < requests * everyMs; t += 50, i++) {
      const port = 10_000 + (i % 20_000);
      out.push(ev('B', `bo${i}`, '198.51.100.9', port, t), ev('A', `ao${i}`, '198.51.100.9', port, t + 5));
    }
    return out.sort((x, y) => (eventBefore(x, y) ? -1 : 1));
  }

  /** Pushes in event order, both feeds advanced as they go; answers the largest number of events the engine held at any time. */
  function feed(h: Harness, events: readonly InputEvent[]): number {
    let most = 0;
    for (const [i, e] of events.entries()) {
      h.push(e);
      if (i % 50 === 49) {
        h.engine.advance('A', e.time);
        h.engine.advance('B', e.time);
        h.drain();
        const { cachedA, cachedB } = h.engine.sizes();
        most = Math.max(most, cachedA + cachedB);
      }
    }
    h.engine.advance('A', T0 + 10 * 3_600_000);
    h.engine.advance('B', T0 + 10 * 3_600_000);
    h.drain();
    return most;
  }

  test('10 minutes at 40 requests/s: memory stays within the cache, nothing is looked up, every request is numbered', () => {
    const cfg = config({ maxHttpItems: 1000, maxNetworkItems: 1000 });
    const events = traffic(24_000, 25);
    const h = new Harness(cfg);
    // Before: the connection held all of its 24,001 events, whatever the cache.
    const most = feed(h, events);
    assert.ok(most <= 2000, `held at most ${most} events against a cache of 1000 + 1000`);
    assert.equal(h.engine.counters.lookups, 0);
    const last = h.sink.latest.get('A-ap024000');
    assert.equal(last?.record.keepalives, 24_000);
    const ref = new Harness(unbounded(cfg));
    feed(ref, events);
    assert.deepEqual(h.sink.current(), ref.sink.current());
  });

  test('a plain-HTTP upstream (no B: every request waits, then an orphan): what the engine remembers of its records stays bounded too', () => {
    // Found by a review: an A decided after its event was folded kept its remembered record for the connection's life.
    const cfg = config({ maxHttpItems: 1000, maxNetworkItems: 1000 });
    const h = new Harness(cfg);
    let most = 0;
    for (let i = 1; i <= 24_000; i++) {
      const e = ev('A', `ap${String(i).padStart(6, '0')}`, PROXY.ip, PROXY.port, i * 25);
      h.push(e);
      if (i % 50 === 0) {
        h.engine.advance('A', e.time);
        h.engine.advance('B', e.time);
        h.drain();
        most = Math.max(most, h.engine.sizes().remembered);
      }
    }
    assert.ok(most <= 500, `remembered up to ${most} records (before: a third of the requests, 8,154 of 24,000)`);
    assert.ok(h.engine.sizes().cachedA <= 200, `held ${h.engine.sizes().cachedA} events`);
    assert.equal(h.sink.latest.get('A-ap023000')?.kind, 'orphan_a');
  });

  test('a late request after the folded part is decided from the base, without a lookup; one before it is looked up; records as an unbounded engine', () => {
    // A cache of 32 folds every 2 steps: nearly all of the connection is folded.
    const cfg = config({ maxHttpItems: 32, maxNetworkItems: 32 });
    const all = [ev('B', 'b0', PROXY.ip, PROXY.port, 0)];
    for (let i = 1; i <= 30; i++) all.push(ev('A', `a${String(i).padStart(2, '0')}`, PROXY.ip, PROXY.port, i * 100));
    const lateEarly = all.find((e) => e.id === 'a02')!;
    const lateRecent = all.find((e) => e.id === 'a29')!;
    const h = new Harness(cfg);
    for (const e of all) if (e !== lateEarly && e !== lateRecent) h.push(e);
    h.engine.advance('A', T0 + 3100);
    h.engine.advance('B', T0 + 3100);
    h.drain();
    assert.ok(h.engine.sizes().cachedA < 10, `held ${h.engine.sizes().cachedA} of 28 requests`);
    assert.equal(h.sink.latest.get('A-a30')?.record.keepalives, 28);

    h.push(lateRecent);
    h.drain();
    assert.equal(h.engine.counters.lookups, 0, 'decided from the base');
    assert.equal(h.sink.latest.get('A-a29')?.record.keepalives, 28);
    assert.equal(h.sink.latest.get('A-a30')?.record.keepalives, 29);
    assert.equal(h.sink.latest.get('A-a30')?.revision, 2);

    h.push(lateEarly);
    h.drain();
    assert.equal(h.engine.counters.lookups, 1, 'the folded events are looked up');
    assert.equal(h.asked[0]?.key, proxyKey);
    const ref = new Harness(unbounded(cfg));
    for (const e of all) ref.push(e);
    ref.engine.advance('A', T0 + 3100);
    ref.engine.advance('B', T0 + 3100);
    ref.drain();
    assert.deepEqual(h.sink.current(), ref.sink.current());
    assert.equal(h.sink.latest.get('A-a30')?.record.keepalives, 30);
    // Folded again after the re-run.
    assert.ok(h.engine.sizes().cachedA < 10, `held ${h.engine.sizes().cachedA} after the re-run`);
  });

  test('a request later than the held ones re-runs from the latest earlier state before it: the lookup reads from there, not from the horizon', () => {
    const cfg = config({ maxHttpItems: 32, maxNetworkItems: 32 });
    const all = [ev('B', 'b0', PROXY.ip, PROXY.port, 0)];
    for (let i = 1; i <= 400; i++) all.push(ev('A', `a${String(i).padStart(3, '0')}`, PROXY.ip, PROXY.port, i * 100));
    const late = all.find((e) => e.id === 'a300')!;
    const h = new Harness(cfg);
    for (const e of all) if (e !== late) h.push(e);
    h.engine.advance('A', T0 + 40_100);
    h.engine.advance('B', T0 + 40_100);
    h.drain();
    h.push(late);
    h.drain();
    assert.equal(h.asked.length, 1);
    // The state kept nearest before a300 (t = 30,000 ms): at most a few hundred ms of requests before it are read again.
    const from = h.asked[0]!.from - T0;
    assert.ok(from >= 20_000 && from < 30_000, `looked up from ${from} ms`);
    assert.equal(h.sink.latest.get('A-a400')?.record.keepalives, 400);
    assert.equal(h.sink.latest.get('A-a300')?.record.keepalives, 300);
    assert.equal(h.sink.latest.get('A-a299')?.revision, 1, 'records before it are not rewritten');
  });

  test('the earlier states kept thin out with age: about 2·log2(n) of n, never one dropped before', () => {
    const kept: Array<{ seq: number }> = [];
    let before = new Set<number>();
    for (let n = 1; n <= 5000; n++) {
      kept.push({ seq: n - 1 });
      thinLadder(kept as never, n);
      const now = new Set(kept.map((b) => b.seq));
      for (const seq of now) assert.ok(seq === n - 1 || before.has(seq), `fold ${seq} came back at ${n}`);
      assert.ok(kept.length <= 2 * Math.log2(n) + 2, `${kept.length} kept after ${n}`);
      before = now;
    }
    // Sparser with age: the gap to the next older one at most twice the age (a lookup reads at most about three times the lateness).
    const seqs = kept.map((b) => b.seq);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! - seqs[i - 1]! <= 2 * Math.max(1, 5000 - seqs[i]!), `${seqs}`);
  });

  /** A B, then a request every 10 s for 12 hours on one connection, fed in order with the clock; answers the harness and every event. */
  function twelveHours(cfg: EngineConfig): { h: Harness; all: InputEvent[]; now: number } {
    const h = new Harness(cfg);
    const all = [ev('B', 'b0', PROXY.ip, PROXY.port, 0)];
    for (let i = 1, t = 10; t < 12 * 3_600_000; t += 10_000, i++) all.push(ev('A', `a${String(i).padStart(5, '0')}`, PROXY.ip, PROXY.port, t));
    for (const [i, e] of all.entries()) {
      h.push(e);
      if (i % 50 === 49) {
        h.engine.clock(e.time);
        h.engine.advance('A', e.time);
        h.engine.advance('B', e.time);
        h.drain();
      }
    }
    const now = T0 + 12 * 3_600_000;
    h.engine.clock(now);
    h.engine.advance('A', now);
    h.engine.advance('B', now);
    h.drain();
    return { h, all, now };
  }

  test('late requests hours back read about their lateness, again and again: re-runs keep the earlier states', () => {
    // Found by a review: a re-run from an earlier state kept only its last, and after two late
    // requests one half an hour late read the whole connection (4,322 documents of 4,321).
    const cfg = config({ maxHttpItems: 64, maxNetworkItems: 64, allowedLatenessMs: 24 * 3_600_000 });
    const { h, now } = twelveHours(cfg);
    const read: number[] = [];
    for (const [id, hoursBack] of [
      ['l1', 3],
      ['l2', 11.9],
      ['l3', 0.5],
    ] as const) {
      const t = 12 * 3_600_000 - hoursBack * 3_600_000 + 3;
      h.asked.length = 0;
      h.push(ev('A', id, PROXY.ip, PROXY.port, t));
      h.drain();
      const r = h.asked[0]!;
      read.push([...h.store.values()].filter((e) => e.key === proxyKey && e.time >= r.from).length);
      assert.ok(
        now - r.from <= 3.5 * hoursBack * 3_600_000 + 60_000,
        `${id}: read from ${(now - r.from) / 3_600_000} h back for a request ${hoursBack} h late`,
      );
    }
    assert.ok(read[2]! < 600, `half an hour late read ${read[2]} documents`);
    assert.equal(h.sink.latest.get('A-a04319')?.record.keepalives, 4322);
  });

  test('a folded request delivered again (a cluster switching copies) is a duplicate: no lookup, nothing written; its new content after an edit is not', () => {
    // Folded ones are remembered as many as the cache holds events (128 here: 21 minutes of this connection).
    const cfg = config({ maxHttpItems: 64, maxNetworkItems: 64, allowedLatenessMs: 10 * 60_000 });
    const { h } = twelveHours(cfg);
    const [lookups, duplicates] = [h.engine.counters.lookups, h.engine.counters.duplicates];
    const past = h.store.get('A:a04250')!; // 11.7 min back: folded, past the horizon
    const within = h.store.get('A:a04300')!; // 3.3 min back: folded, within it
    h.push(past);
    h.push(within);
    assert.deepEqual(h.drain(), []);
    assert.equal(h.engine.counters.lookups, lookups);
    assert.equal(h.engine.counters.duplicates, duplicates + 2);
    // An admin's edit of it: withdrawn, and its new content decided (from a kept state before it).
    const edited: InputEvent = { ...within, rev: '2-x', doc: { ...within.doc, status: 451 } };
    h.engine.withdraw(within, true);
    h.push(edited);
    h.drain();
    assert.equal(h.sink.latest.get('A-a04300')?.record.status, 451);
    assert.equal(h.sink.latest.get('A-a04300')?.record.keepalives, 4300);
  });

  test('a request past the horizon before the folded part is decided alone, without looking the connection up', () => {
    // Found by a review: it was looked up from a state kept long before the horizon, every time.
    // What is asked is only whether the two were decided before (a feed read again): their records.
    const cfg = config({ maxHttpItems: 64, maxNetworkItems: 64, allowedLatenessMs: 3_600_000 });
    const { h } = twelveHours(cfg);
    const asked = h.asked.length;
    h.push(ev('A', 'old1', PROXY.ip, PROXY.port, 6 * 3_600_000 + 3));
    h.push(ev('A', 'old2', PROXY.ip, PROXY.port, 5 * 3_600_000 + 3));
    h.drain();
    assert.deepEqual(
      h.asked.slice(asked).map((r) => [r.ids, (r.from - T0) / 3_600_000, (r.until - T0) / 3_600_000]),
      [[['A-old1', 'A-old2'], 5 + 3 / 3_600_000, 6 + 3 / 3_600_000]],
    );
    assert.equal(h.engine.counters.tooLate.A, 2);
    assert.equal(h.sink.latest.get('A-old1')?.kind, 'orphan_a');
    assert.ok(h.engine.sizes().cachedA < 200);
  });

  test('a checkpoint taken while the connection waits undecided keeps its states: after the restart its chain, longer than the horizon, keeps its B', () => {
    // Found by a review: the states went, the restart looked the connection up from the
    // horizon, and 2,164 correlated records came out as orphans.
    const cfg = config({ maxHttpItems: 64, maxNetworkItems: 64, allowedLatenessMs: 6 * 3_600_000 });
    const { h, now } = twelveHours(cfg);
    const held = h.engine.exportState().keys.find((k) => k[0] === proxyKey)![2];
    const second = held[2]!;
    const late = ev('A', 'late', PROXY.ip, PROXY.port, h.store.get(`${second[0]}:${second[1]}`)!.time - T0 + 1);
    h.push(late);
    h.engine.drain(now, false); // held undecided, as the pipeline does while a backlog is read
    const snap = JSON.parse(JSON.stringify(h.engine.exportState())) as EngineSnapshot;
    assert.ok(
      (snap.bases ?? []).some(([key]) => key === proxyKey),
      'the states are in the checkpoint',
    );
    const r = new Harness(CorrelationEngine.restore(cfg, snap, (side, id) => h.store.get(`${side}:${id}`)));
    for (const [k, v] of h.store) r.store.set(k, v);
    for (const [k, v] of h.sink.latest) r.sink.latest.set(k, v);
    r.engine.clock(now);
    r.engine.advance('A', now);
    r.engine.advance('B', now);
    const outs = r.drain();
    assert.ok(
      r.asked.every((q) => now - q.from < 3_600_000),
      `looked up from ${r.asked.map((q) => (now - q.from) / 3_600_000)} h back`,
    );
    assert.equal(outs.filter((o) => o.kind === 'orphan_a').length, 0, 'no correlated record turned orphan');
    assert.equal(r.sink.latest.get('A-late')?.kind, 'correlated');
  });

  test('a checkpoint keeps the base: a restored engine continues the numbering without a lookup, as the original', () => {
    const cfg = config({ maxHttpItems: 32, maxNetworkItems: 32 });
    const all = [ev('B', 'b0', PROXY.ip, PROXY.port, 0)];
    for (let i = 1; i <= 40; i++) all.push(ev('A', `a${String(i).padStart(2, '0')}`, PROXY.ip, PROXY.port, i * 100));
    const original = new Harness(cfg);
    for (const e of all.slice(0, 21)) original.push(e);
    original.engine.advance('A', T0 + 2000);
    original.engine.advance('B', T0 + 2000);
    original.drain();
    const snap: EngineSnapshot = JSON.parse(JSON.stringify(original.engine.exportState()));
    assert.equal(snap.bases?.[0]?.[0], proxyKey, 'the base is in the checkpoint');
    assert.equal(snap.bases?.[0]?.[1].bs[0]?.[0], 'b0');
    const restored = new Harness(CorrelationEngine.restore(cfg, snap, (side, id) => original.store.get(`${side}:${id}`)));
    for (const h of [original, restored]) {
      for (const e of all.slice(21)) h.push(e);
      h.engine.advance('A', T0 + 10_000);
      h.engine.advance('B', T0 + 10_000);
    }
    const after = original.drain();
    assert.deepEqual(restored.drain(), after);
    assert.equal(restored.engine.counters.lookups, 0);
    assert.equal(after.find((o) => o.id === 'A-a40')?.record.keepalives, 40);
  });
});

describe('CorrelationEngine: ids and state snapshots', () => {
  test('output ids are A-<doc id> for every A output and B-<doc id> for orphan Bs', () => {
    const r = run(config(), [B('k1', 0), A('k1', 10), A('k2', 20), B('k3', 30)]);
    const ids = Object.fromEntries(r.all.map((o) => [summary(o), o.id]));
    assert.deepEqual(ids, { 'a0+b0#1': 'A-a0', 'a1 orphan': 'A-a1', 'b1 orphan': 'B-b1' });
  });

  test('exportState v2 lists open connections and waiting events by side and document id, as JSON', () => {
    const engine = new CorrelationEngine(config({ networkTtlMs: 5000 }));
    const f = new Feeds();
    assert.deepEqual(engine.exportState(), {
      v: 2,
      progress: { A: null, B: null },
      releasedUpTo: null,
      cacheFloor: null,
      lastVersion: 0,
      waiting: [],
      keys: [],
      evicted: [],
      disorder: { A: 0, B: 0 },
    });
    engine.push(f.event('A', 'k2', 0)); // a0
    engine.push(f.event('B', 'k1', 0)); // b0
    engine.push(f.event('A', 'k1', 100)); // a1 -> b0
    engine.push(f.event('B', 'k3', 200)); // b1, not released yet
    engine.drain(NOW);
    const snap = engine.exportState();
    assert.deepEqual(JSON.parse(JSON.stringify(snap)), snap, 'survives JSON');
    assert.deepEqual(snap.waiting, [['B', 'b1']]);
    // Complete from the segment start - gap (5 s); no revision above 1 yet. (The order of connections carries no meaning.)
    assert.deepEqual(
      [...snap.keys].sort((x, y) => (x[0] < y[0] ? -1 : 1)),
      [
        [
          '198.51.100.1:50001',
          T0 - 5000,
          [
            ['B', 'b0'],
            ['A', 'a1'],
          ],
          [],
        ],
        ['198.51.100.2:50002', T0 - 5000, [['A', 'a0']], []],
      ],
    );
    assert.deepEqual(snap.progress, { A: T0 + 100, B: T0 + 200 });
    assert.equal(snap.releasedUpTo, T0 + 100);
    assert.equal(snap.lastVersion, NOW);
  });

  test('exportState keeps the revisions above 1 and the deletions of the open segment', () => {
    const h = new Harness(config());
    const f = new Feeds();
    h.push(f.event('B', 'k1', 1500)); // b0
    h.engine.advance('A', T0 + 3000);
    h.engine.advance('B', T0 + 3000);
    assert.deepEqual(summaries(h.drain()), ['b0 orphan']);
    h.push(f.event('A', 'k1', 2400)); // a0: late, within b0's window: b0 deleted (revision 2)
    assert.deepEqual(summaries(h.drain()), ['B-b0 deleted r2', 'a0+b0#1']);
    const snap = h.engine.exportState();
    assert.deepEqual(snap.keys, [
      [
        '198.51.100.1:50001',
        T0 + 1500 - 30_000,
        [
          ['B', 'b0'],
          ['A', 'a0'],
        ],
        [['B-b0', 2, true]],
      ],
    ]);
  });

  test('a restored engine decides the rest exactly as the original (the same outputs, versions included)', () => {
    const f = new Feeds();
    const events = [
      f.event('A', 'k2', 0),
      f.event('B', 'k1', 0),
      f.event('A', 'k1', 100),
      f.event('B', 'k3', 200),
      f.event('A', 'k1', 3000),
      f.event('A', 'k3', 3100),
    ];
    const cfg = config({ networkTtlMs: 5000 });
    const original = new CorrelationEngine(cfg);
    for (const e of events.slice(0, 4)) original.push(e);
    original.drain(NOW);
    const snap = JSON.parse(JSON.stringify(original.exportState()));
    const restored = CorrelationEngine.restore(cfg, snap, (side, id) => events.find((e) => e.side === side && e.id === id));
    for (const e of events.slice(4)) {
      original.push(e);
      restored.push(e);
    }
    for (const e of [original, restored]) {
      e.advance('A', T0 + 20_000);
      e.advance('B', T0 + 20_000);
    }
    const after = original.drain(NOW + 1000);
    assert.deepEqual(summaries(after), ['a0 orphan', 'a2+b0#2', 'a3 orphan', 'b1 orphan']);
    assert.deepEqual(restored.drain(NOW + 1000), after);
    // The same held state; completeness bounds may be tighter after a restore (a restart knows less about older connections), never looser.
    const held = (e: CorrelationEngine) => {
      const { cacheFloor: _c, killedRunVersions: _k, keys, ...rest } = e.exportState();
      return {
        ...rest,
        keys: keys.map(([key, , events, revs, undecided]) => [key, events, revs, undecided]).sort((x, y) => (String(x[0]) < String(y[0]) ? -1 : 1)),
      };
    };
    assert.deepEqual(held(restored), held(original));
    // Only the restored one names the versions a killed run may have written: after the checkpoint's, before its own first.
    assert.deepEqual(restored.exportState().killedRunVersions, [[NOW, NOW + 1000]]);
    assert.equal(original.exportState().killedRunVersions, undefined);
  });

  test('exportState/restore round trip with corrections: the restored engine continues the revisions (3) as an uninterrupted one', () => {
    const cfg = config({ networkTtlMs: 5000 });
    const f = new Feeds();
    const a0 = f.event('A', 'k1', 0);
    const b0 = f.event('B', 'k1', 100);
    const a1 = f.event('A', 'k1', 3000);
    const b1 = f.event('B', 'k1', 50);
    // Before the snapshot: a0 orphan, then late b0 corrects it (revision 2).
    const before = (h: Harness) => {
      h.push(a0);
      h.engine.advance('A', T0 + 2000);
      h.engine.advance('B', T0 + 2000);
      h.drain();
      h.push(b0);
      h.drain();
    };
    // After: a1 keeps b0 alive; then a late b1 takes a0 (revision 3), a1 follows it, b0 is an orphan.
    const after = (h: Harness) => {
      const out: Output[] = [];
      h.push(a1);
      h.engine.advance('A', T0 + 4000);
      h.engine.advance('B', T0 + 4000);
      out.push(...h.drain());
      h.push(b1);
      h.engine.advance('A', T0 + 60_000);
      h.engine.advance('B', T0 + 60_000);
      out.push(...h.drain());
      return out;
    };
    const uninterrupted = new Harness(cfg);
    before(uninterrupted);
    const snap = JSON.parse(JSON.stringify(uninterrupted.engine.exportState()));
    const clockAtSnapshot = uninterrupted.clock;
    const want = after(uninterrupted);
    // b0 came 1.9 s late: the release then waits that much longer for the B feed (its observed
    // disorder), so a1 is decided once, with b1, instead of provisionally with b0 first.
    assert.deepEqual(summaries(want), ['a0+b1#1 r3', 'a1+b1#2', 'b0 orphan']);

    const first = new Harness(cfg);
    before(first);
    // The crash: a new engine from the snapshot, the same store and sink.
    const second = new Harness(CorrelationEngine.restore(cfg, snap, (side, id) => first.store.get(`${side}:${id}`)));
    for (const [k, v] of first.store) second.store.set(k, v);
    for (const [k, v] of first.sink.latest) second.sink.latest.set(k, v);
    second.clock = clockAtSnapshot;
    const got = after(second);
    // Every output of the uninterrupted engine, with its revision; a restarted engine also writes
    // again what it cannot know the crashed run left behind (a matched B deleted, a record confirmed).
    const key = (o: Output) => `${o.id}|${o.kind}|${o.revision}|${JSON.stringify({ ...o.record, decided_at: undefined })}`;
    const gotKeys = new Set(got.map(key));
    for (const o of want) assert.ok(gotKeys.has(key(o)), `missing after the restart: ${key(o)}`);
    assert.deepEqual(second.sink.current(), uninterrupted.sink.current());
    assert.deepEqual(second.sink.current(), reference(cfg, [A('k1', 0), B('k1', 100), A('k1', 3000), B('k1', 50)]));
  });
});

// ---------------------------------------------------------------------------
// Generated traffic: a fixed, seeded set of A and B events from the shared
// generator (bench/traffic.ts), normalised by toEvent as the feed
// does, reshaped for GEN_CFG's short window and TTL: keep-alive connections,
// As before and after their B, Bs that come after their A stopped waiting,
// keep-alive gaps past the TTL, orphans on both sides, IPv6 and IPv4-mapped
// addresses, keys reused by later connections (a small pool of source
// ports), and each feed out of time order by less than the reorder slack.

const GEN_CFG = config({ windowMs: 2000, apacheEmitDelayMs: 800, networkTtlMs: 6000, reorderSlackMs: 400, maxHttpItems: 5000, maxNetworkItems: 5000 });

interface Traffic {
  A: InputEvent[];
  B: InputEvent[];
}

/** The events, and the documents they were made of. */
function generatedTraffic(seed: number, aCount: number, cfg: EngineConfig): Traffic & { docs: GeneratedDocs } {
  const docs = generateTraffic({
    seed,
    aCount,
    bCount: Math.round((aCount * 2) / 3),
    startMs: T0,
    spanMs: aCount * 200,
    orphanAShare: 0.1,
    clients: 6,
    ports: [50001, 50002, 50003, 50004],
    firstA: firstAWithLateB(Math.min(cfg.windowMs, cfg.apacheEmitDelayMs), 0.15, 1500),
    keepAliveGapMs: { min: 200, mean: 2500, max: cfg.networkTtlMs + 3000 },
    disorderMs: Math.min(150, cfg.reorderSlackMs - 1),
  });
  return { ...asEvents(asChanges(docs, (side, i) => `${side.toLowerCase()}-${seed}-${i}`)), docs };
}

type Push = { push: InputEvent } | { advance: Side; to: number };

/** Interleavings of the two feeds; each keeps its own order. */
const interleavings: Record<string, (tr: Traffic) => Push[]> = {
  'all B first': (tr) => [...tr.B, ...tr.A].map((e) => ({ push: e })),
  'all A first': (tr) => [...tr.A, ...tr.B].map((e) => ({ push: e })),
  'pages of 25, A first': (tr) => pages(tr, 25),
  'pages of 100, B first': (tr) => pages(tr, 100, 'B'),
  ...Object.fromEntries(
    [
      [1, 0.5],
      [2, 0.5],
      [3, 0.9], // A feed much faster
      [4, 0.1], // B feed much faster
      [5, 0.7],
    ].map(([seed, pA]) => [`random seed ${seed}, P(A)=${pA}`, (tr: Traffic) => random(tr, seed!, pA!, false)]),
  ),
  'random with idle-feed advances, seed 6': (tr) => random(tr, 6, 0.5, true),
  'random with idle-feed advances, seed 7': (tr) => random(tr, 7, 0.2, true),
  // By event time, with the B feed running 20 s behind the A feed.
  'B feed 20 s behind': (tr) => byTime(tr, 0, 20_000),
  'A feed 20 s behind': (tr) => byTime(tr, 20_000, 0),
};

function pages(tr: Traffic, size: number, first: Side = 'A'): Push[] {
  const out: Push[] = [];
  const pos = { A: 0, B: 0 };
  let side = first;
  while (pos.A < tr.A.length || pos.B < tr.B.length) {
    for (const e of tr[side].slice(pos[side], pos[side] + size)) out.push({ push: e });
    pos[side] += size;
    side = side === 'A' ? 'B' : 'A';
  }
  return out;
}

/** Smallest time of the events from position i on, per position. */
function suffixMin(events: InputEvent[]): number[] {
  const m = new Array<number>(events.length + 1).fill(Infinity);
  for (let i = events.length - 1; i >= 0; i--) m[i] = Math.min(events[i]!.time, m[i + 1]!);
  return m;
}

function random(tr: Traffic, seed: number, pA: number, heartbeats: boolean): Push[] {
  const rnd = mulberry32(seed * 7919);
  const out: Push[] = [];
  const pos = { A: 0, B: 0 };
  const min = { A: suffixMin(tr.A), B: suffixMin(tr.B) };
  while (pos.A < tr.A.length || pos.B < tr.B.length) {
    const side: Side = pos.B >= tr.B.length || (pos.A < tr.A.length && rnd() < pA) ? 'A' : 'B';
    out.push({ push: tr[side][pos[side]++]! });
    if (heartbeats && rnd() < 0.2) {
      // What a caught-up feed adapter would say: nothing before its next event is still to come.
      const s: Side = rnd() < 0.5 ? 'A' : 'B';
      out.push({ advance: s, to: min[s][pos[s]]! - 1 });
    }
  }
  return out;
}

/** Merge by event time (plus a lag per feed) of the feeds' heads: each feed keeps its own order. */
function byTime(tr: Traffic, lagA: number, lagB: number): Push[] {
  const out: Push[] = [];
  let i = 0;
  let j = 0;
  while (i < tr.A.length || j < tr.B.length) {
    const takeA = j >= tr.B.length || (i < tr.A.length && tr.A[i]!.time + lagA <= tr.B[j]!.time + lagB);
    out.push({ push: takeA ? tr.A[i++]! : tr.B[j++]! });
  }
  return out;
}

function runPushes(cfg: EngineConfig, pushes: Push[]): { engine: CorrelationEngine; outputs: Output[] } {
  const engine = new CorrelationEngine(cfg);
  const outputs: Output[] = [];
  for (const p of pushes) {
    if ('push' in p) engine.push(p.push);
    else engine.advance(p.advance, p.to);
    outputs.push(...engine.drain(NOW));
  }
  engine.advance('A', Infinity);
  engine.advance('B', Infinity);
  outputs.push(...engine.drain(NOW));
  return { engine, outputs };
}

/** id -> output; asserts ids are unique. */
function byId(outputs: Output[], what: string): Map<string, Output> {
  const m = new Map<string, Output>();
  for (const o of outputs) {
    assert.ok(!m.has(o.id), `${what}: output id ${o.id} emitted twice`);
    m.set(o.id, o);
  }
  return m;
}

/** What must not depend on when an output was drained: everything but decided_at (and the version). */
function content(o: Output): { kind: string; revision: number; record: Record<string, unknown> } {
  const { decided_at: _d, ...record } = o.record;
  return { kind: o.kind, revision: o.revision, record };
}

function assertSameOutputs(actual: Map<string, Output>, expected: Map<string, Output>, what: string): void {
  for (const [id, o] of expected) {
    const got = actual.get(id);
    assert.ok(got, `${what}: ${id} (${summary(o)}) is missing`);
    assert.deepEqual(content(got), content(o), `${what}: ${id} differs`);
  }
  const extra = [...actual.keys()].filter((id) => !expected.has(id));
  assert.deepEqual(extra, [], `${what}: outputs the reference run does not have`);
}

describe('CorrelationEngine: generated traffic', () => {
  const traffic = generatedTraffic(20240101, 300, GEN_CFG);
  const reference = runPushes(GEN_CFG, byTime(traffic, 0, 0));
  const refById = byId(reference.outputs, 'time order');

  test('the generated set covers the cases it is meant to', () => {
    const n = traffic.A.length + traffic.B.length;
    assert.ok(n >= 300 && n <= 800, `a few hundred events (${n})`);
    const kinds = reference.outputs.map((o) => o.kind);
    const maxKeepalives = Math.max(...reference.outputs.map((o) => o.record.keepalives as number));
    assert.ok(kinds.filter((k) => k === 'correlated').length > 100, 'correlated');
    assert.ok(kinds.filter((k) => k === 'orphan_a').length > 20, 'orphan A');
    assert.ok(kinds.filter((k) => k === 'orphan_b').length > 10, 'orphan B');
    assert.ok(maxKeepalives >= 4, `keep-alive runs (max ${maxKeepalives})`);
    const correlated = reference.outputs.filter((o) => o.kind === 'correlated').map((o) => o.record);
    assert.ok(
      correlated.some((r) => (r.a_timestamp as number) < (r.b_timestamp as number)),
      'an A before its B',
    );
    assert.ok(
      correlated.some((r) => (r.a_timestamp as number) > (r.b_timestamp as number)),
      'an A after its B',
    );
    const sources = [...traffic.A, ...traffic.B].map((e) => e.doc.src_ip as string);
    assert.ok(
      sources.some((ip) => ip.includes(':')),
      'IPv6 sources',
    );
    assert.ok(
      traffic.docs.b.some((d) => String(d.src_ip).startsWith('::ffff:')),
      'B sources written as IPv4-mapped IPv6',
    );
    const keys = new Map<string, Set<unknown>>();
    for (const e of traffic.B) keys.set(e.key, (keys.get(e.key) ?? new Set()).add(e.doc.conn_id));
    assert.ok(
      [...keys.values()].some((conns) => conns.size > 1),
      'keys reused by later connections',
    );
    // Feeds really are out of time order (but by less than the slack).
    const disorder = (evs: InputEvent[]) => evs.some((e, i) => i > 0 && e.time < evs[i - 1]!.time);
    assert.ok(disorder(traffic.A) && disorder(traffic.B), 'both feeds out of time order somewhere');
    assert.deepEqual(reference.engine.counters.late, { A: 0, B: 0 });
  });

  test('each A yields exactly one output; B outputs are orphans only; ids are A-<id> / B-<id>', () => {
    const aIds = reference.outputs.filter((o) => o.id.startsWith('A-')).map((o) => o.id.slice(2));
    assert.deepEqual(aIds.sort(), traffic.A.map((e) => e.id).sort());
    for (const o of reference.outputs) {
      if (o.kind === 'orphan_b') assert.equal(o.id, `B-${o.record.b_id}`);
      else assert.equal(o.id, `A-${o.record.a_id}`);
    }
    const c = reference.engine.counters;
    assert.equal(c.correlated + c.orphans.A, traffic.A.length);
    assert.deepEqual(c.eventsIn, { A: traffic.A.length, B: traffic.B.length });
  });

  test('keepalives count 1, 2, 3... per B in A time order', () => {
    const perB = new Map<string, { time: number; n: number }[]>();
    for (const o of reference.outputs) {
      if (o.kind !== 'correlated') continue;
      const list = perB.get(o.record.b_id as string) ?? [];
      list.push({ time: o.record.a_timestamp as number, n: o.record.keepalives as number });
      perB.set(o.record.b_id as string, list);
    }
    for (const [b, list] of perB) {
      list.sort((x, y) => x.time - y.time || x.n - y.n);
      assert.deepEqual(
        list.map((x) => x.n),
        list.map((_, i) => i + 1),
        `keepalives of ${b}`,
      );
    }
  });

  for (const [name, plan] of Object.entries(interleavings)) {
    test(`feeds progressing at different speeds give the same outputs: ${name}`, () => {
      const r = runPushes(GEN_CFG, plan(traffic));
      assertSameOutputs(byId(r.outputs, name), refById, name);
      assert.deepEqual(r.engine.counters, reference.engine.counters, `${name}: counters`);
    });
  }

  test('a second generated set (other seed, one_to_one) is interleaving-independent too', () => {
    const cfg = { ...GEN_CFG, mode: 'one_to_one' as const };
    const tr = generatedTraffic(77, 220, cfg);
    const ref = byId(runPushes(cfg, byTime(tr, 0, 0)).outputs, 'time order');
    for (const [name, plan] of Object.entries(interleavings)) assertSameOutputs(byId(runPushes(cfg, plan(tr)).outputs, name), ref, name);
  });
});

// ---------------------------------------------------------------------------
// Restart: the pipeline saves the engine's state (exportState) with the feed
// positions once every output before that point is acknowledged; after a
// crash, a restored engine reads on from those positions. Outputs made after
// the snapshot come out again and must be identical (the sinks rely on
// "writing it twice is harmless"); the union must be the uninterrupted run.

function restartFromSnapshot(cfg: EngineConfig, tr: Traffic, snapAt: Record<Side, number>, crashAt: Record<Side, number>, what: string): Map<string, Output> {
  const all = [...tr.A, ...tr.B];
  const first = new CorrelationEngine(cfg);
  for (const p of byTime({ A: tr.A.slice(0, snapAt.A), B: tr.B.slice(0, snapAt.B) }, 0, 0)) if ('push' in p) first.push(p.push);
  const acked = first.drain(NOW);
  const snap = JSON.parse(JSON.stringify(first.exportState()));
  // The first run goes on until the crash; what it wrote after the snapshot may or may not have landed.
  for (const p of byTime({ A: tr.A.slice(snapAt.A, crashAt.A), B: tr.B.slice(snapAt.B, crashAt.B) }, 0, 0)) if ('push' in p) first.push(p.push);
  const lost = byId(first.drain(NOW), `${what}: after the snapshot`);
  const second = CorrelationEngine.restore(cfg, snap, (side, id) => all.find((e) => e.side === side && e.id === id));
  for (const p of byTime({ A: tr.A.slice(snapAt.A), B: tr.B.slice(snapAt.B) }, 0, 0)) if ('push' in p) second.push(p.push);
  second.advance('A', Number.MAX_SAFE_INTEGER);
  second.advance('B', Number.MAX_SAFE_INTEGER);
  const union = byId(acked, `${what}: before the snapshot`);
  for (const o of second.drain(NOW)) {
    const had = lost.get(o.id) ?? union.get(o.id);
    // After a restart a B that matched is deleted in the sinks whether or not the crashed run wrote it as an orphan.
    if (o.kind === 'deleted' && !had) continue;
    if (had) assert.deepEqual(content(o), content(had), `${what}: ${o.id} decided differently after the restart`);
    union.set(o.id, o);
  }
  assert.deepEqual(second.lookups(), [], `${what}: no lookup needed`);
  return union;
}

describe('CorrelationEngine: restart from a checkpoint', () => {
  test('a held document moved to another connection before the restart stays out of its old one: the replay brings it', () => {
    // Found by a review's soak: restore filed the document's current content (moved since) under
    // its old connection, where a keep-alive request after it was counted one too many.
    const cfg = config({ networkTtlMs: 30_000 });
    const K1 = { ip: '198.51.100.21', port: 50021 };
    const K2 = { ip: '198.51.100.22', port: 50022 };
    const at = (side: Side, id: string, k: { ip: string; port: number }, t: number, rev?: string): InputEvent => ({
      side,
      index: 0,
      id,
      key: keyOf(k.ip, k.port),
      time: T0 + t,
      doc: { src_ip: k.ip, src_port: k.port, timestamp: T0 + t },
      ...(rev && { rev }),
    });
    const b1 = at('B', 'b1', K1, 0);
    const b2 = at('B', 'b2', K2, 50);
    const x1 = at('A', 'x', K1, 100);
    const y = at('A', 'y', K1, 200);
    const x2 = at('A', 'x', K2, 150, '2-x');
    const before = new Harness(cfg);
    for (const e of [b1, b2, x1, y]) before.push(e);
    // Released and decided, the connection still open (its B alive for the TTL).
    before.engine.advance('A', T0 + 300);
    before.engine.advance('B', T0 + 300);
    before.drain();
    assert.equal(before.sink.latest.get('A-y')?.record.keepalives, 2);
    const snap = JSON.parse(JSON.stringify(before.engine.exportState())) as EngineSnapshot;
    // The database now: x moved to K2.
    const now = new Map([b1, b2, y, x2].map((e) => [`${e.side}:${e.id}`, e]));
    const h = new Harness(CorrelationEngine.restore(cfg, snap, (side, id) => now.get(`${side}:${id}`)));
    for (const [id, o] of before.sink.latest) h.sink.latest.set(id, o);
    h.engine.withdraw(x1, true);
    h.push(x2);
    h.engine.advance('A', END);
    h.engine.advance('B', END);
    h.drain();
    const ref = new Harness(unbounded(cfg));
    for (const e of [b1, b2, x2, y]) ref.push(e);
    ref.engine.advance('A', END);
    ref.engine.advance('B', END);
    ref.drain();
    assert.deepEqual(h.sink.current(), ref.sink.current());
    assert.equal(h.sink.latest.get('A-y')?.record.keepalives, 1);
  });

  test('restart while a keep-alive B and a waiting A are held: same records, keepalives continue', () => {
    const f = new Feeds();
    const tr: Traffic = {
      B: [f.event('B', 'k3', -5000), f.event('B', 'k1', 0), f.event('B', 'k2', 900), f.event('B', 'k1', 40_000)],
      A: [
        f.event('A', 'k4', -5000),
        f.event('A', 'k1', 100),
        f.event('A', 'k1', 200),
        f.event('A', 'k2', 700),
        f.event('A', 'k1', 3000),
        f.event('A', 'k1', 9000),
      ],
    };
    const cfg = config();
    const reference = byId(runPushes(cfg, byTime(tr, 0, 0)).outputs, 'uninterrupted');
    assert.deepEqual([...reference.values()].map(summary).sort(), [
      'a0 orphan',
      'a1+b1#1',
      'a2+b1#2',
      'a3+b2#1',
      'a4+b1#3',
      'a5+b1#4',
      'b0 orphan',
      'b3 orphan',
    ]);
    const union = restartFromSnapshot(cfg, tr, { A: 4, B: 3 }, { A: 5, B: 3 }, 'keep-alive');
    assertSameOutputs(union, reference, 'keep-alive restart');
  });

  // The cases that re-reading from the oldest held event got wrong: an A
  // whose B expired behind the checkpoint, a B consumed in one_to_one.
  test('an A decided before the snapshot is not decided again (one_to_many, expired B)', () => {
    const f = new Feeds();
    const tr: Traffic = {
      B: [f.event('B', 'k1', 0), f.event('B', 'k2', 200)],
      A: [f.event('A', 'k1', 100), f.event('A', 'k2', 300), f.event('A', 'k1', 400), f.event('A', 'k2', 1300)],
    };
    const cfg = config({ networkTtlMs: 1000 });
    const reference = byId(runPushes(cfg, byTime(tr, 0, 0)).outputs, 'uninterrupted');
    assert.deepEqual([...reference.values()].map(summary).sort(), ['a0+b0#1', 'a1+b1#1', 'a2+b0#2', 'a3+b1#2']);
    assertSameOutputs(restartFromSnapshot(cfg, tr, { A: 3, B: 2 }, { A: 4, B: 2 }, 'expired B'), reference, 'one_to_many');
  });

  test('a B consumed before the snapshot is not given to another A (one_to_one)', () => {
    const f = new Feeds();
    const tr: Traffic = {
      B: [f.event('B', 'k2', 0), f.event('B', 'k1', 10)],
      A: [f.event('A', 'k1', 20), f.event('A', 'k1', 30)],
    };
    const cfg = config({ mode: 'one_to_one' });
    const reference = byId(runPushes(cfg, byTime(tr, 0, 0)).outputs, 'uninterrupted');
    assert.deepEqual([...reference.values()].map(summary).sort(), ['a0+b1#1', 'a1 orphan', 'b0 orphan']);
    assertSameOutputs(restartFromSnapshot(cfg, tr, { A: 1, B: 2 }, { A: 2, B: 2 }, 'consumed B'), reference, 'one_to_one');
  });

  const traffic = generatedTraffic(4242, 300, GEN_CFG);
  const reference = byId(runPushes(GEN_CFG, byTime(traffic, 0, 0)).outputs, 'uninterrupted');
  const cuts: [string, number, number, number][] = [
    ['half of each feed', 0.5, 0.5, 0.1],
    ['A feed ahead', 0.6, 0.35, 0.2],
    ['B feed ahead', 0.3, 0.55, 0.05],
  ];
  for (const [name, fa, fb, more] of cuts) {
    test(`generated traffic, snapshot with ${name}, crash later: same records as one run`, () => {
      const snapAt = { A: Math.floor(traffic.A.length * fa), B: Math.floor(traffic.B.length * fb) };
      const crashAt = {
        A: Math.min(traffic.A.length, snapAt.A + Math.floor(traffic.A.length * more)),
        B: Math.min(traffic.B.length, snapAt.B + Math.floor(traffic.B.length * more)),
      };
      assertSameOutputs(restartFromSnapshot(GEN_CFG, traffic, snapAt, crashAt, name), reference, name);
    });
  }
});

describe('late events held back until the backlog is read (drain(now, false))', () => {
  // A keep-alive connection whose four A's arrive an hour late, in the
  // order CouchDB 3's shards may hand them out, one page each.
  const late = () => [ev('A', 'k1', 300, 'a3'), ev('A', 'k1', 100, 'a1'), ev('A', 'k1', 400, 'a4'), ev('A', 'k1', 200, 'a2')];
  const play = (hold: boolean) => {
    const engine = new CorrelationEngine(config());
    const outs: Output[] = [];
    engine.push(ev('B', 'k1', 0, 'b0'));
    engine.advance('A', END);
    engine.advance('B', END);
    outs.push(...engine.drain(NOW));
    let clock = NOW;
    for (const a of late()) {
      engine.push(a);
      outs.push(...engine.drain(++clock, !hold));
    }
    assert.equal(engine.held, hold ? 1 : 0, 'one connection held while the pages come');
    outs.push(...engine.drain(++clock));
    assert.equal(engine.held, 0);
    return { outs, engine };
  };

  test('decided once: no provisional keep-alive numbering to correct', () => {
    const { outs, engine } = play(true);
    const records = outs.filter((o) => o.id.startsWith('A-'));
    assert.deepEqual(records.map((o) => `${o.id}#${o.record.keepalives} r${o.revision}`).sort(), ['A-a1#1 r1', 'A-a2#2 r1', 'A-a3#3 r1', 'A-a4#4 r1']);
    assert.equal(engine.counters.corrections, 1, 'only the orphan B, decided before any A came, is corrected');
  });

  test('the same records as deciding page by page, which writes corrections', () => {
    const last = (outs: Output[]) => new Map(outs.map((o) => [o.id, `${o.kind} ${fingerprint(o.record)}`]));
    const held = play(true);
    const eager = play(false);
    assert.deepEqual(last(held.outs), last(eager.outs));
    assert.ok(eager.engine.counters.corrections > 1, 'page by page, earlier A’s renumber the later ones');
  });
});

describe('CorrelationEngine: documents an admin deletes or edits (withdraw)', () => {
  const T = (e: CorrelationEngine, t: number) => {
    e.advance('A', T0 + t);
    e.advance('B', T0 + t);
    return e.drain(T0 + t).map((o) => [o.id, o.kind, o.revision, o.record.keepalives ?? null, o.record.a_rev ?? null]);
  };

  test('a deleted B: its As are decided again without it (orphans, revision 2); a deleted A: its record is deleted', () => {
    const e = new CorrelationEngine(config());
    const b = ev('B', 'k1', 0, 'b1');
    const a1 = ev('A', 'k1', 100, 'a1');
    const a2 = ev('A', 'k1', 200, 'a2');
    for (const x of [b, a1, a2]) e.push(x);
    assert.deepEqual(T(e, 5000), [
      ['A-a1', 'correlated', 1, 1, null],
      ['A-a2', 'correlated', 1, 2, null],
    ]);
    e.withdraw(b);
    assert.deepEqual(T(e, 6000), [
      ['A-a1', 'orphan_a', 2, 0, null],
      ['A-a2', 'orphan_a', 2, 0, null],
    ]);
    e.withdraw(a1);
    assert.deepEqual(T(e, 7000), [['A-a1', 'deleted', 3, null, null]]);
    assert.deepEqual(e.counters.withdrawn, { A: 1, B: 1 });
    // Withdrawing again (a change read twice) writes nothing.
    e.withdraw(a1);
    e.withdraw(b);
    assert.deepEqual(T(e, 8000), []);
  });

  test('an edited A: its record is rewritten with the new content and its revision; moved to another connection, decided there', () => {
    const e = new CorrelationEngine(config());
    const b = ev('B', 'k2', 0, 'b2');
    const a = ev('A', 'k1', 100, 'a1');
    e.push(b);
    e.push(a);
    assert.deepEqual(T(e, 5000), [
      ['A-a1', 'orphan_a', 1, 0, null],
      ['B-b2', 'orphan_b', 1, 0, null],
    ]);
    const edited: InputEvent = { ...a, doc: { ...a.doc, note: 'fixed' }, rev: '2-x' };
    e.withdraw(a, true);
    e.push(edited);
    assert.deepEqual(T(e, 6000), [['A-a1', 'orphan_a', 2, 0, '2-x']]);
    const k2 = ev('A', 'k2', 100, 'a1');
    const moved: InputEvent = { ...k2, doc: { ...k2.doc, note: 'fixed' }, rev: '3-y' };
    e.withdraw(edited, true);
    e.push(moved);
    assert.deepEqual(T(e, 7000), [
      ['B-b2', 'deleted', 2, null, null],
      ['A-a1', 'correlated', 3, 1, '3-y'],
    ]);
  });

  test('outputs of a changed document name the times its earlier contents were decided at (formerTimes), for sinks keyed by time', () => {
    const e = new CorrelationEngine(config());
    const times = (outs: Output[]) => outs.map((o) => [o.id, o.kind, (o.formerTimes ?? []).map((t) => t - T0)]);
    const T = (t: number) => {
      e.advance('A', T0 + t);
      e.advance('B', T0 + t);
      return times(e.drain(T0 + t));
    };
    const a = ev('A', 'k1', 100, 'a1');
    const b = ev('B', 'k3', 0, 'b3');
    e.push(a);
    e.push(b);
    assert.deepEqual(T(5000), [
      ['A-a1', 'orphan_a', []],
      ['B-b3', 'orphan_b', []],
    ]);
    // The A's clock fixed: 100 ms -> 2.3 s (another second: ClickHouse's key moves); its record says where it was.
    const fixed: InputEvent = { ...a, time: T0 + 2300, rev: '2-x' };
    e.withdraw(a, true);
    e.push(fixed);
    assert.deepEqual(T(6000), [['A-a1', 'orphan_a', [100]]]);
    // Edited again and deleted before the correlator read either change: both contents are withdrawn,
    // and the deletion names both times, whichever it is placed at.
    e.withdraw({ ...a, time: T0 + 900, rev: '3-y' });
    e.withdraw(fixed);
    const [deleted] = e.drain(T0 + 7000);
    assert.equal(deleted?.kind, 'deleted');
    assert.deepEqual(
      [...deleted!.formerTimes!].sort((x, y) => x - y).map((t) => t - T0),
      [100, 900, 2300],
    );
    // A B moved onto an A's connection: its orphan record is deleted, and the deletion names its former time.
    const moved: InputEvent = { ...ev('B', 'k4', 50, 'b3'), rev: '2-z' };
    e.push(ev('A', 'k4', 60, 'a4'));
    e.withdraw(b, true);
    e.push(moved);
    const outs = times((e.advance('A', T0 + 9000), e.advance('B', T0 + 9000), e.drain(T0 + 9000)));
    assert.deepEqual(
      outs.find((o) => o[0] === 'B-b3'),
      ['B-b3', 'deleted', [0]],
    );
    assert.deepEqual(
      outs.find((o) => o[0] === 'A-a4'),
      ['A-a4', 'correlated', []],
    );
  });

  test('formerTimes survive a restart while the new content waits, and a mass erasure does not push out a pending move', () => {
    const e = new CorrelationEngine(config());
    const a = ev('A', 'k1', 0, 'x');
    e.push(a);
    e.advance('A', T0 + 10_000);
    e.advance('B', T0 + 10_000);
    assert.deepEqual(
      e.drain(T0 + 10_000).map((o) => [o.id, o.kind, o.revision]),
      [['A-x', 'orphan_a', 1]],
    );
    // Moved to another connection and 9.8 s later: the new content waits for the reorder slack.
    const moved: InputEvent = { ...ev('A', 'k2', 9_800, 'x'), rev: '2-x' };
    e.withdraw(a, true);
    e.push(moved);
    assert.deepEqual(e.drain(T0 + 10_001), []);
    // A checkpoint now; the restarted engine is not given the change again.
    const snap = JSON.parse(JSON.stringify(e.exportState())) as EngineSnapshot;
    const r = CorrelationEngine.restore(config(), snap, (side, id) => (side === 'A' && id === 'x' ? moved : undefined));
    // So many other documents erased meanwhile that the bounded memory of former times turns over.
    for (let i = 0; i < 10_050; i++) r.withdraw(ev('B', 'k3', -5000 - i, `erased-${i}`));
    r.clock(T0 + 30_000);
    r.advance('A', T0 + 30_000);
    r.advance('B', T0 + 30_000);
    let outs = r.drain(T0 + 30_000);
    for (const q of r.lookups()) {
      r.provide(q.key, q.from, q.key === moved.key ? [moved] : [], new Map());
      outs = outs.concat(r.drain(T0 + 30_001));
    }
    const x = outs.find((o) => o.id === 'A-x');
    assert.deepEqual([x?.kind, x?.revision, x?.formerTimes], ['orphan_a', 2, [T0]]);
  });

  test('a deleted B delivered again after its connection left memory: its orphan record is asked for and deleted', () => {
    const e = new CorrelationEngine(config({ maxHttpItems: 1, maxNetworkItems: 1 }));
    const b = ev('B', 'k1', 0, 'b1');
    e.push(b);
    assert.deepEqual(T(e, 5000), [['B-b1', 'orphan_b', 1, 0, null]]);
    // Another connection's B pushes k1 out of a one-event cache, with what was emitted for b1.
    e.push(ev('B', 'k2', 4000, 'b2'));
    T(e, 9000);
    // The feed delivers b1 again (a cluster), then its deletion.
    e.push(b);
    e.withdraw(b);
    assert.deepEqual(T(e, 10_000), []);
    const req = e.lookups().find((q) => q.key === b.key);
    assert.deepEqual(req?.ids, ['B-b1'], 'what the sinks hold for the B is asked with the lookup');
    e.provide(req!.key, req!.from, [], new Map([['B-b1', { fingerprint: 'x', revision: 1, deleted: false }]]));
    assert.deepEqual(T(e, 11_000), [['B-b1', 'deleted', 2, null, null]]);
  });

  test('a deletion days later, the connection long gone from memory: a lookup brings its events and what the sink holds', () => {
    const e = new CorrelationEngine(config({ allowedLatenessMs: 3_600_000 }));
    const b = ev('B', 'k1', 0, 'b1');
    const a = ev('A', 'k1', 100, 'a1');
    e.push(b);
    e.push(a);
    assert.deepEqual(T(e, 5000), [['A-a1', 'correlated', 1, 1, null]]);
    // Two days on: the connection is pruned (past the lateness horizon).
    assert.deepEqual(T(e, 2 * 86_400_000), []);
    assert.equal(e.sizes().connections, 0);
    e.withdraw(b);
    assert.deepEqual(T(e, 2 * 86_400_000 + 1000), []);
    const [req] = e.lookups();
    assert.equal(req?.key, keyOf('198.51.100.1', 50001));
    assert.ok(req!.from <= T0, `the lookup reaches back to the deleted event: ${req!.from - T0}`);
    assert.deepEqual(req!.ids, ['B-b1']);
    // What a lookup finds: the A (the B is deleted), and the A's record as log_correlated holds it.
    e.provide(
      req!.key,
      req!.from,
      [a],
      new Map([
        [
          'A-a1',
          {
            fingerprint: fingerprint({ a_id: 'a1', b_id: 'b1', keepalives: 1, correlated: true, timestamp: new Date(T0 + 100).toISOString() }),
            revision: 1,
            deleted: false,
          },
        ],
      ]),
    );
    assert.deepEqual(T(e, 2 * 86_400_000 + 2000), [['A-a1', 'orphan_a', 2, 0, null]]);
  });
});

/** Answers the engine's lookups from `view` (what is stored now), with what `sink` holds for the records found. */
function answerFrom(e: CorrelationEngine, view: readonly InputEvent[], sink: SinkState): void {
  for (const r of e.lookups()) {
    const found = view.filter((v) => v.key === r.key && v.time >= r.from);
    const priors = new Map<string, PriorRecord>();
    for (const v of found) {
      const p = sink.prior(`${v.side}-${v.id}`);
      if (p) priors.set(`${v.side}-${v.id}`, p);
    }
    e.provide(r.key, r.from, found, priors);
  }
}

describe('CorrelationEngine: the lookup view ahead of the feed', () => {
  /** An engine with a small cache, the sinks it writes (ClickHouse keyed by time), and events of connection `key`. */
  function rig(key: string) {
    const e = new CorrelationEngine(config({ windowMs: 10_000, maxHttpItems: 1, maxNetworkItems: 1, networkTtlMs: 120_000, reorderSlackMs: 1000 }));
    const sink = new SinkState();
    const ch = new ClickHouseModel();
    const ev = (side: Side, id: string, t: number, k = key, note = ''): InputEvent => ({
      side,
      index: 0,
      id,
      key: k,
      time: T0 + t,
      doc: { src_ip: k.split(':')[0], src_port: Number(k.split(':')[1]), ...(note && { note }) },
    });
    return { e, sink, ch, ev };
  }

  test("an admin's edit of a document's time, decided through a lookup before the feed brings it: the old place is taken away too", () => {
    // Found by an adversarial review: CouchDB's view answers with what is stored now, so the
    // edit (x moved 30 s back) is decided before the feed has withdrawn x's first content;
    // when the feed then brings the edit, nothing changes and nothing is written. The record
    // had no former time, and ClickHouse (keyed by time) kept a live row at each place.
    const K = '198.51.100.7:50000';
    const { e, sink, ch, ev } = rig(K);
    const step = (now: number) => {
      e.advance('A', T0 + now);
      e.advance('B', T0 + now);
      const outs = e.drain(T0 + now);
      sink.apply(outs);
      ch.apply(outs);
    };
    const b = ev('B', 'b', -100);
    const x1 = ev('A', 'x', 0);
    const x2 = ev('A', 'x', -30_000, K, 'moved');
    const z = ev('A', 'z', 3000);
    e.push(b);
    e.push(x1);
    step(2000); // A-x correlated at T0
    e.push(ev('A', 'o', 2500, '203.0.113.1:1234'));
    step(3000); // another connection: K leaves memory (a cache of 1)
    e.push(z); // late: its connection is looked up
    step(5000);
    const view = [b, x2, z]; // what is stored now: x already moved
    answerFrom(e, view, sink);
    step(5000);
    // The feed reads the edit now: the earlier content withdrawn, the new one pushed.
    e.withdraw(x1, true);
    e.push(x2);
    step(6000);
    e.advance('A', Infinity);
    e.advance('B', Infinity);
    step(7000);
    // One live row per record, at the time its record has now.
    assert.equal(ch.problem(sink.content()), null);
    const x = JSON.parse(sink.content().get('A-x')!) as Record<string, unknown>;
    assert.deepEqual([x.note, x.timestamp, x.correlated], ['moved', new Date(T0 - 30_000).toISOString(), false]);
  });

  test('the same without the CouchDB sink (a lookup cannot say where the record is): the new content held first is not taken for the old one', () => {
    // Found by a review of folding (seed 664 of its harness; 2 of its 400 schedules failed before
    // folding too): x's first content had left memory with its connection; a lookup through the
    // view brought its new content as a new event, written at the new place with nothing known of
    // the old one; the feed's withdrawal of the old content then took the new content out instead
    // (matched by id), its re-decision wrote nothing, and ClickHouse kept a live row at the old place.
    const K = '198.51.100.8:50000';
    const { e, sink, ch, ev } = rig(K);
    const b = ev('B', 'b', -100);
    const x1 = ev('A', 'x', 0);
    const x2: InputEvent = { ...ev('A', 'x', 20_000, K, 'moved'), rev: '2-x' };
    const z = ev('A', 'z', 3000);
    const view = [b, x2, z]; // what is stored once z is: x already moved
    // Lookups answered by the view, without what the sinks hold.
    const step = (now: number) => {
      e.advance('A', T0 + now);
      e.advance('B', T0 + now);
      for (let round = 0; round < 5; round++) {
        const outs = e.drain(T0 + now);
        sink.apply(outs);
        ch.apply(outs);
        for (const r of e.lookups())
          e.provide(
            r.key,
            r.from,
            view.filter((v) => v.key === r.key && v.time >= r.from),
            null,
          );
      }
    };
    e.push(b);
    e.push(x1);
    step(2000); // A-x correlated at T0
    e.push(ev('A', 'o', 2500, '203.0.113.1:1234'));
    step(3000); // another connection: K leaves memory (a cache of 1)
    e.push(z); // late: its connection is looked up, and x's new content found
    step(25_000);
    // The feed reads the edit now: the earlier content withdrawn, the new one pushed.
    e.withdraw(x1, true);
    e.push(x2);
    step(26_000);
    e.advance('A', Infinity);
    e.advance('B', Infinity);
    step(27_000);
    assert.equal(ch.problem(sink.content()), null);
    const x = JSON.parse(sink.content().get('A-x')!) as Record<string, unknown>;
    assert.deepEqual([x.note, x.timestamp], ['moved', new Date(T0 + 20_000).toISOString()]);
  });

  test('a folded plain-HTTP connection: the edit brought by a lookup before the feed takes the old place away', () => {
    // Found by the review's harness (seed 8588): the record of an A still open in a kept state was
    // remembered without its place; a lookup through the view brought its edit (moved 4 s back),
    // decided at the new place with nothing named at the old one, and ClickHouse kept both rows live.
    const cfg = config({ windowMs: 10_000, maxHttpItems: 32, maxNetworkItems: 32, networkTtlMs: 120_000, reorderSlackMs: 1000 });
    const e = new CorrelationEngine(cfg);
    const sink = new SinkState();
    const ch = new ClickHouseModel();
    const K = '198.51.100.9:50000';
    const ev = (id: string, t: number, rev?: string): InputEvent => ({
      side: 'A',
      index: 0,
      id,
      key: K,
      time: T0 + t,
      doc: { src_ip: '198.51.100.9', src_port: 50000, ...(rev && { note: 'moved' }) },
      ...(rev && { rev }),
    });
    const as = Array.from({ length: 12 }, (_, i) => ev(`a${i}`, 1000 * i));
    const x2 = ev('a7', 3500, '2-a7'); // a7 moved from 7 s to 3.5 s
    const late = ev('w', 2500);
    const stored = () => [...as.filter((a) => a.id !== 'a7'), x2, late];
    const step = (now: number) => {
      e.advance('A', T0 + now);
      e.advance('B', T0 + now);
      for (let round = 0; round < 5; round++) {
        const outs = e.drain(T0 + now);
        sink.apply(outs);
        ch.apply(outs);
        for (const r of e.lookups()) {
          const found = stored().filter((v) => v.time >= r.from);
          const priors = new Map<string, PriorRecord>();
          for (const v of found) {
            const p = sink.prior(`${v.side}-${v.id}`);
            if (p)
              priors.set(`${v.side}-${v.id}`, {
                ...p,
                time: Date.parse(JSON.parse(sink.content().get(`${v.side}-${v.id}`) ?? '{}').timestamp ?? '') || undefined,
              });
          }
          e.provide(r.key, r.from, found, priors);
        }
      }
    };
    for (const a of as) {
      e.push(a);
      step(a.time - T0 + 600);
    }
    e.push(late); // before the kept state: looked up, and the view has a7's edit already
    step(13_000);
    e.withdraw(as[7]!, true);
    e.push(x2);
    step(14_000);
    e.advance('A', Infinity);
    e.advance('B', Infinity);
    step(15_000);
    assert.equal(ch.problem(sink.content()), null);
  });
  test('killed after a lookup showed documents the feeds had not delivered: their records, written to log_correlated only, reach every sink once read back', () => {
    // Found by a review's harness (seeds 2318 and 4130: 82 and 90 records missing from the sink
    // that lost what came after the checkpoint). The killed run decided a, which only the view
    // had, and wrote it to log_correlated alone. The restarted run's replay read the feeds all
    // at once, in order, so it looked nothing up and never saw a; a, delivered after the replay,
    // was looked up with its record read back from log_correlated, taken as written everywhere.
    const K = '198.51.100.10:50000';
    const { ev } = rig(K);
    const cfg = config({ windowMs: 10_000, maxHttpItems: 1, maxNetworkItems: 1, networkTtlMs: 120_000, reorderSlackMs: 1000 });
    const couch = new SinkState(); // log_correlated: lookups read their priors here
    const other = new SinkState(); // ClickHouse, say: nothing since the checkpoint acknowledged
    const b = ev('B', 'b', -100);
    const a = ev('A', 'a', 0); // stored, not yet delivered by the feed
    const z = ev('A', 'z', 1500);
    const o = ev('B', 'o', 2500, '203.0.113.1:1234');
    const view = [b, a, z, o];
    const step = (e: CorrelationEngine, now: number, wall: number) => {
      e.advance('A', T0 + now);
      e.advance('B', T0 + now);
      for (let round = 0; round < 5; round++) {
        const outs = e.drain(wall);
        couch.apply(outs);
        other.apply(outs);
        answerFrom(e, view, couch);
      }
    };
    const killed = new CorrelationEngine(cfg);
    killed.push(b);
    step(killed, 2000, T0 + 2000);
    const checkpoint = JSON.parse(JSON.stringify(killed.exportState())) as ReturnType<CorrelationEngine['exportState']>;
    killed.push(o); // released, o pushes K out of memory (a cache of one B)
    step(killed, 4000, T0 + 4000);
    killed.push(z); // late: K is looked up, and the view has a already
    step(killed, 5000, T0 + 5000);
    assert.equal(JSON.parse(couch.content().get('A-a')!).keepalives, 1, 'the killed run wrote A-a');
    // kill -9: the other sink keeps what it had at the checkpoint (nothing). A minute later:
    other.records.clear();
    const e = CorrelationEngine.restore(cfg, checkpoint, (side, id) => view.find((v) => v.side === side && v.id === id));
    e.push(o);
    e.push(z); // read again, in order with b this time: no lookup
    step(e, 5000, T0 + 65_000);
    e.push(a); // the feed delivers a; K has left memory again
    step(e, 6000, T0 + 66_000);
    e.advance('A', Infinity);
    e.advance('B', Infinity);
    step(e, 200_000, T0 + 200_000);
    assert.ok(other.records.has('A-a'), 'A-a is written again for the sink that never got it');
    assert.deepEqual(other.content(), couch.content());
    // From the checkpoint's last version (it had written nothing) to the restarted run's first.
    assert.deepEqual(e.exportState().killedRunVersions, [[0, T0 + 65_000]]);
  });
});

describe('CorrelationEngine: a deletion while its connection waits for a lookup', () => {
  test("the deleted document's record is asked for again and deleted, though the first request did not name it", () => {
    // Found by an adversarial review: x's change delivered again (a cluster) after its
    // connection left memory asks a lookup; an admin deletes x before the answer, which
    // names no record the request did not ask for: A-x stayed, an orphan of a deleted document.
    const e = new CorrelationEngine(config({ windowMs: 10_000, maxHttpItems: 1, maxNetworkItems: 1, networkTtlMs: 120_000, reorderSlackMs: 1000 }));
    const sink = new SinkState();
    const ev = (id: string, ip: string, t: number): InputEvent => ({
      side: 'A',
      index: 0,
      id,
      key: `${ip}:40000`,
      time: T0 + t,
      doc: { src_ip: ip, src_port: 40000, n: id },
    });
    const step = (now: number) => {
      e.advance('A', T0 + now);
      e.advance('B', T0 + now);
      sink.apply(e.drain(T0 + now));
    };
    const x = ev('x', '198.51.100.1', 0);
    e.push(x);
    step(5000); // A-x, an orphan
    e.push(ev('y', '198.51.100.2', 4000));
    step(6000); // x's connection leaves memory (a cache of 1)
    e.push(x); // delivered again
    step(7000);
    const [first, ...none] = e.lookups();
    assert.ok(first && none.length === 0);
    e.withdraw(x, false); // deleted before the answer
    step(8000);
    e.provide(first.key, first.from, [], new Map()); // the view no longer holds x; nothing was asked about A-x
    step(8500);
    const again = e.lookups();
    assert.deepEqual(
      again.map((r) => r.ids),
      [['A-x']],
    );
    e.provide(again[0]!.key, again[0]!.from, [], new Map([['A-x', sink.prior('A-x')!]]));
    e.advance('A', Infinity);
    e.advance('B', Infinity);
    sink.apply(e.drain(T0 + 9000));
    assert.deepEqual([...sink.content().keys()], ['A-y']);
    assert.equal(sink.records.get('A-x')?.kind, 'deleted');
  });
});

describe('CorrelationEngine: documents read again past the horizon, while their check is out (found by a review)', () => {
  const H = 3_600_000;
  const base = (over: Partial<EngineConfig> = {}) =>
    config({ windowMs: 10_000, networkTtlMs: 120_000, reorderSlackMs: 1000, allowedLatenessMs: H, maxHttpItems: 1000, maxNetworkItems: 1000, ...over });
  const K: [string, number] = ['198.51.100.7', 50000];
  const mk = (side: Side, id: string, ip: string, port: number, t: number, doc: Record<string, unknown> = {}, rev?: string): InputEvent => ({
    side,
    index: 0,
    id,
    key: `${ip}:${port}`,
    time: T0 + t,
    doc: { src_ip: ip, src_port: port, timestamp: T0 + t, ...doc },
    ...(rev && { rev }),
  });
  /** An engine driven as the pipeline does; lookups answered from `stored` with priors from the sink, now or when told. */
  function rig(cfg: EngineConfig) {
    const r = {
      e: new CorrelationEngine(cfg),
      sink: new SinkState(),
      stored: new Map<string, InputEvent>(),
      pending: [] as LookupRequest[],
      put(ev: InputEvent): InputEvent {
        r.stored.set(`${ev.side}:${ev.id}`, ev);
        return ev;
      },
      answer(q: LookupRequest): void {
        const evs = [...r.stored.values()].filter((s) => s.key === q.key && s.time >= q.from);
        const priors = new Map<string, PriorRecord>();
        for (const id of [...evs.map((s) => `${s.side}-${s.id}`), ...(q.ids ?? [])]) {
          const p = r.sink.prior(id);
          if (p && !p.deleted) priors.set(id, p);
        }
        r.e.provide(q.key, q.from, evs, priors);
      },
      step(t: number, settle = true, answerNow = true): void {
        r.e.advance('A', T0 + t);
        r.e.advance('B', T0 + t);
        for (let round = 0; round < 6; round++) {
          r.sink.apply(r.e.drain(T0 + t + round, settle));
          r.pending.push(...r.e.lookups());
          if (!answerNow) return;
          for (const q of r.pending.splice(0)) r.answer(q);
        }
      },
      end(t: number): Map<string, Record<string, unknown>> {
        r.e.advance('A', Infinity);
        r.e.advance('B', Infinity);
        r.step(t);
        return new Map([...r.sink.content()].map(([id, json]) => [id, JSON.parse(json) as Record<string, unknown>]));
      },
    };
    return r;
  }

  test("an open connection's deadline passing while a duplicate is checked: it is still decided, and leaves memory", () => {
    const r = rig(base());
    const old = r.put(mk('A', 'old', ...K, 0));
    r.e.push(old);
    r.step(2000);
    r.step(2 * H);
    const a1 = r.put(mk('A', 'a1', ...K, 2 * H));
    r.e.push(a1);
    r.step(2 * H + 1000); // waiting for a B until +500
    r.e.push(old); // read again: too late, a duplicate
    for (let k = 1; k <= 20; k++) {
      r.e.advance('A', T0 + 2 * H + k * 10_000);
      r.e.advance('B', T0 + 2 * H + k * 10_000);
      r.sink.apply(r.e.drain(T0 + 2 * H + k * 10_000, false)); // held (a backlog read): the deadline passes meanwhile
    }
    r.step(2 * H + 200_000);
    assert.equal(r.sink.content().has('A-a1'), true, 'decided once its deadline passed');
    assert.equal(r.e.sizes().open, 0);
    assert.equal(r.e.counters.duplicates, 1);
  });

  for (const how of ['held', 'asked'] as const) {
    test(`an admin's deletion of a document waiting for its check (${how}) takes it back`, () => {
      const r = rig(base());
      r.step(2 * H);
      const x = r.put(mk('B', 'x', ...K, 0, { ja3: 'x' }));
      const y = r.put(mk('A', 'y', ...K, 200));
      r.e.push(x);
      r.e.push(y);
      if (how === 'held') r.step(2 * H + 100, false);
      else r.step(2 * H + 100, true, false);
      r.stored.delete('B:x');
      r.e.withdraw(x, false);
      r.step(2 * H + 2000);
      const out = r.end(3 * H);
      assert.deepEqual([out.get('A-y')?.correlated, out.has('B-x')], [false, false], 'the erasure is carried out: y without x');
    });
  }

  test('one a regular lookup brings while it waits for its check is stepped once', () => {
    const r = rig(base({ maxHttpItems: 1, maxNetworkItems: 1 }));
    const C = 3 * H;
    const e0 = r.put(mk('A', 'e0', ...K, C - H + 100_000));
    r.put(mk('B', 'b0', ...K, C - H - 61_000));
    const x = r.put(mk('A', 'x', ...K, C - H - 60_000));
    r.put(mk('A', 'a2', ...K, C - H - 59_000));
    r.step(C - H + 50_000);
    r.e.push(e0);
    r.step(C - H + 102_000);
    r.e.push(r.put(mk('A', 'z', '203.0.113.9', 1234, C - H + 103_000)));
    r.step(C - H + 105_000); // K leaves memory
    r.step(C);
    r.e.push(r.put(mk('A', 'aL', ...K, C - H + 110_000))); // late, within the horizon: K is looked up
    r.step(C + 10, true, false);
    r.e.push(x); // too late: to be checked while the lookup, whose range holds it, is out
    for (const q of r.pending.splice(0)) r.answer(q);
    r.step(C + 20);
    const out = r.end(C + H);
    assert.deepEqual(
      ['A-x', 'A-a2'].map((id) => out.get(id)?.keepalives),
      [1, 2],
    );
  });

  for (const [kind, viaRestore] of [
    ['new', false],
    ['new', true],
    ['decided before', false],
    ['decided before', true],
  ] as const) {
    test(`a too-late document (${kind}) on a key that left memory since${viaRestore ? ', checked across a restart' : ''}: a later partner is still looked up`, () => {
      const cfg = base({ maxHttpItems: 1, maxNetworkItems: 1 });
      const r = rig(cfg);
      const old = r.put(mk('A', 'old', ...K, 0));
      if (kind !== 'new') {
        r.e.push(old);
        r.step(2000);
      }
      r.step(2 * H);
      r.e.push(r.put(mk('A', 'a1', ...K, 2 * H + 5000)));
      r.step(2 * H + 5200);
      r.e.push(r.put(mk('A', 'z', '203.0.113.9', 1234, 2 * H + 5300)));
      r.step(2 * H + 7000); // K leaves memory: a1 decided early (an orphan for now)
      r.e.push(old);
      if (viaRestore) {
        r.step(2 * H + 7100, true, false);
        r.pending.length = 0;
        const snap = JSON.parse(JSON.stringify(r.e.exportState())) as EngineSnapshot;
        r.e = CorrelationEngine.restore(cfg, snap, (side, id) => r.stored.get(`${side}:${id}`));
      }
      r.step(2 * H + 7200);
      r.step(2 * H + 7300);
      r.e.push(r.put(mk('B', 'b1', ...K, 2 * H + 4000))); // a1's TLS log, 5 s late: within the horizon
      r.step(2 * H + 30_000);
      const out = r.end(3 * H);
      assert.deepEqual([out.get('A-a1')?.correlated, out.get('A-a1')?.b_id, out.has('B-b1')], [true, 'b1', false]);
    });
  }

  test('an edited document read again (a restore that keeps revisions, nothing withdrawn first) is a duplicate of its record', () => {
    const r = rig(base({ allowedLatenessMs: 24 * H }));
    const b0 = r.put(mk('B', 'b0', ...K, 0));
    const a1 = r.put(mk('A', 'a1', ...K, 100));
    const a2 = r.put(mk('A', 'a2', ...K, 5000, { status: 200 }));
    for (const v of [b0, a1, a2]) r.e.push(v);
    r.step(60_000);
    const fixed = r.put(mk('A', 'a2', ...K, 5000, { status: 451 }, '2-abc')); // an admin's fix
    r.e.withdraw(a2, true);
    r.e.push(fixed);
    r.step(120_000);
    const before = new Map(r.sink.content());
    r.step(3 * 24 * H);
    for (const v of [b0, a1, fixed]) r.e.push(v);
    r.step(3 * 24 * H + 10_000);
    assert.deepEqual(new Map(r.sink.content()), before);
    assert.equal(r.e.counters.duplicates, 3);
  });
});
