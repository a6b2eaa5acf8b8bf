// Unit tests of correlator/engine/engine.ts (CorrelationEngine), the pure A x B
// join. Time is injected: events come in through push(), feed progress through
// advance(), decisions are read with drain(); nothing here reads a clock.
//
// One table case (or a few) per rule of the issue: window edges in both
// directions, B before A and A before B, Keep-Alive counter / TTL refresh /
// expiry, one_to_one, orphan delay against the watermark (lagging and idle
// feeds), network_emit, apache_always_emit, buffer eviction, out-of-order
// events within the reorder slack. Then properties over a generated traffic
// set: the same outputs whatever the interleaving of the two feeds, one output
// per A, deterministic ids, replayFrom/oldestNeeded, and restart from a
// checkpoint giving the same records as one uninterrupted run.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CorrelationEngine } from '../../correlator/engine/engine.js';
import type { EngineConfig, EngineCounters, InputEvent, Output, Side } from '../../correlator/engine/types.js';
import { mulberry32 } from '../../lib/bench/prng.js';

/** Noon, 2024-01-01 UTC: keeps record timestamps readable when a test prints them. */
const T0 = Date.UTC(2024, 0, 1, 12);

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
    ...over,
  };
}

// Named connections: the engine only compares keys, but records carry the
// matching src_ip/src_port, as normalize.ts would produce them.
const CONNS: Record<string, { ip: string; port: number }> = {
  k1: { ip: '198.51.100.1', port: 50001 },
  k2: { ip: '198.51.100.2', port: 50002 },
  k3: { ip: '2001:db8::3', port: 50003 },
  k4: { ip: '198.51.100.4', port: 50004 },
};
const keyOf = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

type Step =
  | { ev: Side; conn: string; t: number; doc?: Record<string, unknown> }
  | { advance: number; side?: Side }
  | { expect: string[] };

const A = (conn: string, t: number, doc?: Record<string, unknown>): Step => ({ ev: 'A', conn, t, doc });
const B = (conn: string, t: number, doc?: Record<string, unknown>): Step => ({ ev: 'B', conn, t, doc });
/** Both feeds (or one) have been seen up to T0 + t. */
const advance = (t: number, side?: Side): Step => ({ advance: t, side });
/** What drain() returns at this point (sorted summaries). */
const expectNow = (...summaries: string[]): Step => ({ expect: summaries });

/** `a0+b1#2` correlated (A id, B id, keepalives); `a0 orphan`; `b1 orphan`. */
function summary(o: Output): string {
  const r = o.record;
  if (o.kind === 'correlated') return `${r.a_id}+${r.b_id}#${r.keepalives}`;
  return `${o.kind === 'orphan_a' ? r.a_id : r.b_id} orphan`;
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

interface Run {
  engine: CorrelationEngine;
  /** Everything drained, including what `expect` steps checked. */
  all: Output[];
  /** Drained after the last `expect` step (and the final advance). */
  rest: Output[];
}

/** Pushes the steps in order; at the end both feeds are advanced past everything unless `final` is false. */
function run(cfg: EngineConfig, steps: Step[], final = true): Run {
  const engine = new CorrelationEngine(cfg);
  const feeds = new Feeds();
  const all: Output[] = [];
  let pending: Output[] = [];
  const take = () => {
    const got = engine.drain();
    all.push(...got);
    pending.push(...got);
  };
  for (const s of steps) {
    if ('ev' in s) engine.push(feeds.event(s.ev, s.conn, s.t, s.doc));
    else if ('advance' in s) {
      for (const side of s.side ? [s.side] : (['A', 'B'] as const)) engine.advance(side, T0 + s.advance);
    } else {
      take();
      assert.deepEqual(summaries(pending), [...s.expect].sort(), 'outputs at an expect step');
      pending = [];
    }
  }
  if (final) {
    engine.advance('A', Infinity);
    engine.advance('B', Infinity);
  }
  take();
  return { engine, all, rest: pending };
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

describe('CorrelationEngine: bounded buffers', () => {
  runCases([
    {
      // The B feed is idle at 25, so each A is decided as it comes; the third
      // pending A pushes the oldest out long before its own delay is up. The B
      // at 100 would have matched a0 (within 500 ms) had it still been there.
      name: 'max_http_items: the oldest pending A is evicted at once as an orphan',
      cfg: { maxHttpItems: 2 },
      steps: [advance(25, 'B'), A('k1', 0), A('k2', 10), A('k3', 20), expectNow('a0 orphan'), B('k1', 100)],
      out: ['a1 orphan', 'a2 orphan', 'b0 orphan'],
      counters: { evictions: { A: 1, B: 0 }, orphans: { A: 3, B: 1 }, correlated: 0 },
    },
    {
      name: 'max_http_items with apache_always_emit: false: the evicted A is a counted drop',
      cfg: { maxHttpItems: 2, apacheAlwaysEmit: false },
      steps: [advance(25, 'B'), A('k1', 0), A('k2', 10), A('k3', 20), expectNow()],
      out: [],
      counters: { evictions: { A: 1 }, dropped: { http_buffer_full: 1, orphan_a_not_emitted: 2 }, orphans: { A: 0 } },
    },
    {
      name: 'max_network_items: the oldest buffered B is evicted at once as an orphan and matches nothing after',
      cfg: { maxNetworkItems: 2 },
      steps: [advance(25, 'A'), B('k1', 0), B('k2', 10), B('k3', 20), expectNow('b0 orphan'), A('k1', 30)],
      out: ['a0 orphan', 'b1 orphan', 'b2 orphan'],
      counters: { evictions: { A: 0, B: 1 }, orphans: { A: 1, B: 3 } },
    },
    {
      name: 'max_network_items with network_emit: false: the evicted B is a counted drop',
      cfg: { maxNetworkItems: 2, networkEmit: false },
      steps: [advance(25, 'A'), B('k1', 0), B('k2', 10), B('k3', 20), expectNow()],
      out: [],
      counters: { evictions: { B: 1 }, dropped: { network_buffer_full: 1, orphan_b_not_emitted: 2 } },
    },
    {
      name: 'an evicted B that already matched is neither an orphan nor a drop',
      cfg: { maxNetworkItems: 2 },
      steps: [B('k1', 0), A('k1', 5), B('k2', 10), B('k4', 20)],
      out: ['a0+b0#1', 'b1 orphan', 'b2 orphan'],
      counters: { evictions: { B: 1 }, orphans: { B: 2 }, dropped: { network_buffer_full: 0, orphan_b_not_emitted: 0 } },
    },
  ]);
});

describe('CorrelationEngine: out-of-order events', () => {
  // Feed order differs from time order by up to 250 ms, under the 300 ms slack.
  const feedA: [string, number][] = [['k1', 1250], ['k2', 1000], ['k1', 1600], ['k3', 1400]];
  const feedB: [string, number][] = [['k2', 950], ['k1', 1200], ['k3', 1150], ['k4', 1500]];
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
    engine.advance('A', Infinity);
    engine.advance('B', Infinity);
    assert.deepEqual(summaries(engine.drain()), expected);
  });

  test('an event out of order by more than the slack is decided at once and counted late', () => {
    const r = run(config({ reorderSlackMs: 300 }), [advance(3000, 'B'), A('k1', 2000), A('k2', 1000)]);
    assert.deepEqual(r.engine.counters.late, { A: 1, B: 0 });
    assert.deepEqual(summaries(r.all), ['a0 orphan', 'a1 orphan'], 'still exactly one output per A');
  });
});

describe('CorrelationEngine: ids and state snapshots', () => {
  test('output ids are A-<doc id> for every A output and B-<doc id> for orphan Bs', () => {
    const r = run(config(), [B('k1', 0), A('k1', 10), A('k2', 20), B('k3', 30)]);
    const ids = Object.fromEntries(r.all.map((o) => [summary(o), o.id]));
    assert.deepEqual(ids, { 'a0+b0#1': 'A-a0', 'a1 orphan': 'A-a1', 'b1 orphan': 'B-b1' });
  });

  test('exportState lists what the engine holds, by feed index and document id, as JSON', () => {
    const engine = new CorrelationEngine(config({ networkTtlMs: 5000 }));
    const f = new Feeds();
    assert.deepEqual(engine.exportState(), { v: 1, progress: { A: null, B: null }, releasedUpTo: null, waiting: [], pendingA: [], networkB: [] });
    engine.push(f.event('A', 'k2', 0)); // a0
    engine.push(f.event('B', 'k1', 0)); // b0
    engine.push(f.event('A', 'k1', 100)); // a1 -> b0
    engine.push(f.event('B', 'k3', 200)); // b1, not released yet
    const snap = engine.exportState();
    assert.deepEqual(JSON.parse(JSON.stringify(snap)), snap, 'survives JSON');
    assert.deepEqual(snap.pendingA, [[0, 'a0']], 'a0 waits for a B (orphan delay)');
    assert.deepEqual(snap.networkB, [[0, 'b0', T0 + 100, 1]], 'b0 kept alive after its first match');
    assert.deepEqual(snap.waiting, [['B', 1, 'b1']]);
    assert.equal(snap.progress.A, T0 + 100);
  });

  test('a restored engine decides the rest exactly as the original', () => {
    const f = new Feeds();
    const events = [f.event('A', 'k2', 0), f.event('B', 'k1', 0), f.event('A', 'k1', 100), f.event('B', 'k3', 200), f.event('A', 'k1', 3000), f.event('A', 'k3', 3100)];
    const cfg = config({ networkTtlMs: 5000 });
    const original = new CorrelationEngine(cfg);
    for (const ev of events.slice(0, 4)) original.push(ev);
    original.drain();
    const snap = JSON.parse(JSON.stringify(original.exportState()));
    const restored = CorrelationEngine.restore(cfg, snap, (side, index) => events.find((e) => e.side === side && e.index === index));
    for (const ev of events.slice(4)) {
      original.push(ev);
      restored.push(ev);
    }
    for (const e of [original, restored]) {
      e.advance('A', T0 + 20_000);
      e.advance('B', T0 + 20_000);
    }
    const after = original.drain();
    assert.deepEqual(summaries(after), ['a0 orphan', 'a2+b0#2', 'a3 orphan', 'b1 orphan']);
    assert.deepEqual(restored.drain(), after);
    assert.deepEqual(restored.exportState(), original.exportState());
  });
});

// ---------------------------------------------------------------------------
// Generated traffic: a fixed, seeded set of A and B events with keep-alive
// connections, As before and after their B, orphans on both sides, keys
// reused by later connections, and each feed out of time order by less than
// the reorder slack.

const GEN_CFG = config({ windowMs: 2000, apacheEmitDelayMs: 800, networkTtlMs: 6000, reorderSlackMs: 400, maxHttpItems: 5000, maxNetworkItems: 5000 });


interface Traffic {
  A: InputEvent[];
  B: InputEvent[];
}

function generateTraffic(seed: number, connections: number, cfg: EngineConfig): Traffic {
  const rnd = mulberry32(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const ips = ['203.0.113.10', '203.0.113.11', '198.51.100.7', '2001:db8::42', '192.0.2.200'];
  const ports = [50001, 50002, 50003, 50004];
  const reach = Math.min(cfg.windowMs, cfg.apacheEmitDelayMs);
  const raw: Record<Side, { time: number; key: string; doc: Record<string, unknown> }[]> = { A: [], B: [] };
  let t = T0;
  for (let c = 0; c < connections; c++) {
    t += int(50, 700);
    const ip = pick(ips);
    const port = pick(ports);
    const key = keyOf(ip, port);
    const base = { src_ip: ip, src_port: port, dst_ip: '192.0.2.1' };
    const a = (time: number, i: number) =>
      raw.A.push({ time, key, doc: { ...base, dst_port: rnd() < 0.8 ? 443 : 8443, timestamp: time, method: pick(['GET', 'POST']), host: 'shop.example', path: `/c${c}/r${i}`, 'header_User-Agent': pick(['curl/8.5', 'Mozilla/5.0']), tls_version: rnd() < 0.9 ? '1.3' : '1.2' } });
    const b = (time: number) =>
      raw.B.push({ time, key, doc: { ...base, dst_port: 443, timestamp: time, ja3: `ja3-${c % 7}`, ja4: `t13d_${c % 5}`, tls_version: '1.3', ip_meta_ttl: 64, conn_id: `conn-${seed}-${c}` } });
    const kind = rnd();
    if (kind < 0.55) {
      // Keep-alive connection: the first A up to `reach` before the B or within the window after it.
      b(t);
      let at = t + int(-reach + 100, cfg.windowMs - 100);
      const n = int(1, 5);
      for (let i = 0; i < n; i++) {
        a(at, i);
        at += int(200, cfg.networkTtlMs - 1000);
      }
      if (rnd() < 0.2) a(at + cfg.networkTtlMs + int(1, 3000), n); // after the TTL: an orphan unless the key is reused
    } else if (kind < 0.7) {
      a(t, 0);
      if (rnd() < 0.5) a(t + int(100, 3000), 1);
    } else if (kind < 0.85) {
      b(t);
    } else {
      // The B shows up after the A has stopped waiting for it.
      a(t, 0);
      b(t + reach + int(1, 1500));
    }
  }
  // Feed order: time plus a jitter below the slack, so each feed is out of time order by less than the slack.
  const feed = (side: Side): InputEvent[] =>
    raw[side]
      .map((e) => ({ e, order: e.time + int(0, cfg.reorderSlackMs - 1) }))
      .sort((x, y) => x.order - y.order)
      .map(({ e }, index) => ({ side, index, id: `${side.toLowerCase()}-${seed}-${index}`, key: e.key, time: e.time, doc: e.doc }));
  return { A: feed('A'), B: feed('B') };
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
    outputs.push(...engine.drain());
  }
  engine.advance('A', Infinity);
  engine.advance('B', Infinity);
  outputs.push(...engine.drain());
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

function assertSameOutputs(actual: Map<string, Output>, expected: Map<string, Output>, what: string): void {
  for (const [id, o] of expected) {
    const got = actual.get(id);
    assert.ok(got, `${what}: ${id} (${summary(o)}) is missing`);
    assert.deepEqual({ kind: got.kind, record: got.record }, { kind: o.kind, record: o.record }, `${what}: ${id} differs`);
  }
  const extra = [...actual.keys()].filter((id) => !expected.has(id));
  assert.deepEqual(extra, [], `${what}: outputs the reference run does not have`);
}

describe('CorrelationEngine: generated traffic', () => {
  const traffic = generateTraffic(20240101, 160, GEN_CFG);
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
      assert.deepEqual(list.map((x) => x.n), list.map((_, i) => i + 1), `keepalives of ${b}`);
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
    const tr = generateTraffic(77, 120, cfg);
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
  const acked = first.drain();
  const snap = JSON.parse(JSON.stringify(first.exportState()));
  // The first run goes on until the crash; what it wrote after the snapshot may or may not have landed.
  for (const p of byTime({ A: tr.A.slice(snapAt.A, crashAt.A), B: tr.B.slice(snapAt.B, crashAt.B) }, 0, 0)) if ('push' in p) first.push(p.push);
  const lost = byId(first.drain(), `${what}: after the snapshot`);
  const second = CorrelationEngine.restore(cfg, snap, (side, index) => all.find((e) => e.side === side && e.index === index));
  for (const p of byTime({ A: tr.A.slice(snapAt.A), B: tr.B.slice(snapAt.B) }, 0, 0)) if ('push' in p) second.push(p.push);
  second.advance('A', Number.MAX_SAFE_INTEGER);
  second.advance('B', Number.MAX_SAFE_INTEGER);
  const union = byId(acked, `${what}: before the snapshot`);
  for (const o of second.drain()) {
    const had = lost.get(o.id) ?? union.get(o.id);
    if (had) assert.deepEqual({ kind: o.kind, record: o.record }, { kind: had.kind, record: had.record }, `${what}: ${o.id} decided differently after the restart`);
    union.set(o.id, o);
  }
  return union;
}

describe('CorrelationEngine: restart from a checkpoint', () => {
  test('restart while a keep-alive B and a waiting A are held: same records, keepalives continue', () => {
    const f = new Feeds();
    const tr: Traffic = {
      B: [f.event('B', 'k3', -5000), f.event('B', 'k1', 0), f.event('B', 'k2', 900), f.event('B', 'k1', 40_000)],
      A: [f.event('A', 'k4', -5000), f.event('A', 'k1', 100), f.event('A', 'k1', 200), f.event('A', 'k2', 700), f.event('A', 'k1', 3000), f.event('A', 'k1', 9000)],
    };
    const cfg = config();
    const reference = byId(runPushes(cfg, byTime(tr, 0, 0)).outputs, 'uninterrupted');
    assert.deepEqual([...reference.values()].map(summary).sort(), ['a0 orphan', 'a1+b1#1', 'a2+b1#2', 'a3+b2#1', 'a4+b1#3', 'a5+b1#4', 'b0 orphan', 'b3 orphan']);
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

  const traffic = generateTraffic(4242, 160, GEN_CFG);
  const reference = byId(runPushes(GEN_CFG, byTime(traffic, 0, 0)).outputs, 'uninterrupted');
  const cuts: [string, number, number, number][] = [
    ['half of each feed', 0.5, 0.5, 0.1],
    ['A feed ahead', 0.6, 0.35, 0.2],
    ['B feed ahead', 0.3, 0.55, 0.05],
  ];
  for (const [name, fa, fb, more] of cuts) {
    test(`generated traffic, snapshot with ${name}, crash later: same records as one run`, () => {
      const snapAt = { A: Math.floor(traffic.A.length * fa), B: Math.floor(traffic.B.length * fb) };
      const crashAt = { A: Math.min(traffic.A.length, snapAt.A + Math.floor(traffic.A.length * more)), B: Math.min(traffic.B.length, snapAt.B + Math.floor(traffic.B.length * more)) };
      assertSameOutputs(restartFromSnapshot(GEN_CFG, traffic, snapAt, crashAt, name), reference, name);
    });
  }
});
