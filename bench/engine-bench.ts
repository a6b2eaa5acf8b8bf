// Benchmark (a) of the correlator: the pure engine alone, on one thread, on
// A (HTTP) and B (TLS/network) streams from the shared traffic generator
// (bench/traffic.ts, the one the correlator tests use), as the
// feed normalises them. Measures
//  - events/s and outputs/s of engine.push()/drain() on events normalised
//    beforehand (generation and normalisation are not timed); the engine's
//    lookups (connections evicted from its memory cache, then seen again)
//    are answered from an in-memory index of the events, as the pipeline
//    answers them from a CouchDB view: the engine's work is timed, not I/O,
//  - the same with toEvent() (normalize.ts) in the timed loop,
//  - bytes per buffered event: heap growth while the engine holds N buffered
//    B and N pending A events (with and without their documents).
// The config is the correlator's defaults (10 s window, 120 s TTL, 500 ms
// orphan delay, 1 s reorder slack), so the buffers see realistic sizes.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { correlatorSchema } from '../lib/config/correlator-schema.js';
import { CorrelationEngine } from '../correlator/engine/engine.js';
import { engineConfig } from '../correlator/engine-config.js';
import { toEvent, type Change } from '../correlator/engine/normalize.js';
import { fingerprint } from '../correlator/engine/fingerprint.js';
import type { EngineConfig, EngineCounters, InputEvent, PriorRecord } from '../correlator/engine/types.js';
import { asChanges, asEvents, firstAWithLateB, generateTraffic, NO_RULES, unmatchedTraffic } from './traffic.js';

export interface EngineBenchOptions {
  /** A and B events in total (approximately: whole connections are generated). */
  events: number;
  /** New connections per second of event time: sets how many entries the buffers hold. */
  connectionsPerSecond: number;
  /** Timed runs over the same events; the median is reported. */
  runs: number;
  /** N buffered B events and N pending A events for the memory figure. */
  bufferN: number;
  seed: number;
}

export const TARGET_EVENTS_PER_SECOND = 200_000;

export interface Throughput {
  events: number;
  outputs: number;
  seconds: number;
  eventsPerSecond: number;
  outputsPerSecond: number;
  /** CPU time / wall time of the timed loop: ~1 means one core; below 1, the process was kept waiting (a busy machine). */
  cpuPerWall: number;
  /** Events per second of this process's CPU time (GC threads included): steadier than wall time on a shared machine. */
  eventsPerCpuSecond: number;
}

export interface EngineBenchReport {
  config: EngineConfig;
  generated: { A: number; B: number; connections: number; eventTimeSeconds: number; fieldsPerDoc: { A: number; B: number } };
  engine: Throughput;
  withNormalize: Throughput;
  /** Counters of the last engine-only run: the mix of cases the streams produced. */
  counters: EngineCounters;
  /** Largest sizes seen during the engine-only run: events waiting for release, connections held (and of them open), events cached per side. */
  peak: { waiting: number; connections: number; open: number; cachedA: number; cachedB: number };
  memory: { n: number; bytesPerEvent: number; engineBytesPerEvent: number; gc: 'expose-gc' | 'runtime flag' };
  target: number;
  ratio: number;
}

interface Streams {
  /** Each feed in its own order: by time, up to a small local disorder (far below the reorder slack). */
  A: Change[];
  B: Change[];
  connections: number;
  eventTimeSeconds: number;
}

/**
 * `events` events from the shared generator (bench/traffic.ts),
 * about 2.7 A per B as this benchmark has always measured: keep-alive runs
 * with gaps of up to 20 s, orphans on both sides, a tenth of the Bs arriving
 * after their first A stopped waiting; `connectionsPerSecond` new
 * connections per second of event time.
 */
export function generateStreams(events: number, connectionsPerSecond: number, cfg: EngineConfig, seed: number, t0 = Date.UTC(2024, 0, 1)): Streams {
  const aCount = Math.round(events * 0.73);
  const bCount = events - aCount;
  const orphanAShare = 0.05;
  const connections = bCount + Math.round(aCount * orphanAShare);
  const traffic = generateTraffic({
    seed,
    aCount,
    bCount,
    startMs: t0,
    spanMs: (connections / connectionsPerSecond) * 1000,
    orphanAShare,
    firstA: firstAWithLateB(Math.min(cfg.windowMs, cfg.apacheEmitDelayMs), 0.1, 2000),
    keepAliveGapMs: { min: 50, mean: 10_000, max: 20_000 },
  });
  const changes = asChanges(traffic, (side, i) => `${side === 'A' ? 'http' : 'tls'}-${seed}-${i}`);
  return { ...changes, connections, eventTimeSeconds: (traffic.lastMs - t0) / 1000 };
}

/** Push order of a feed adapter reading both feeds at the same pace: merged by event time, each feed in its own order. */
function mergeOrder<T extends { time: number }>(a: T[], b: T[]): T[] {
  const out: T[] = new Array(a.length + b.length);
  let i = 0;
  let j = 0;
  for (let k = 0; k < out.length; k++) out[k] = j >= b.length || (i < a.length && a[i]!.time <= b[j]!.time) ? a[i++]! : b[j++]!;
  return out;
}

const DRAIN_EVERY = 500; // like one page of _changes

function timed(run: () => { events: number; outputs: number }): Throughput {
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const { events, outputs } = run();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return {
    events,
    outputs,
    seconds,
    eventsPerSecond: events / seconds,
    outputsPerSecond: outputs / seconds,
    cpuPerWall: cpuSeconds / seconds,
    eventsPerCpuSecond: events / cpuSeconds,
  };
}

function median(xs: Throughput[]): Throughput {
  return [...xs].sort((x, y) => x.eventsPerSecond - y.eventsPerSecond)[Math.floor(xs.length / 2)]!;
}

/**
 * Answers the engine's lookups the way the pipeline does (every stored event
 * of the connection from `from` on, and what the sinks hold for its records),
 * from memory: the events of the run indexed by key, the outputs so far.
 */
class Lookups {
  /**
   * What the sinks hold for each record, as a lookup reports it: only the
   * fingerprint, as the pipeline's view lookup does. Keeping every emitted
   * record here instead made this benchmark time V8 marking its own copy of
   * all outputs, not the engine.
   */
  private readonly emitted = new Map<string, PriorRecord>();

  constructor(private readonly byKey: ReadonlyMap<string, readonly InputEvent[]>) {}

  static index(events: readonly InputEvent[]): Map<string, InputEvent[]> {
    const byKey = new Map<string, InputEvent[]>();
    for (const ev of events) {
      const list = byKey.get(ev.key);
      if (list) list.push(ev);
      else byKey.set(ev.key, [ev]);
    }
    return byKey;
  }

  /** drain(), then lookups answered and drained again until none are asked. */
  drain(engine: CorrelationEngine): number {
    let n = 0;
    for (let round = 0; round < 10; round++) {
      const outs = engine.drain(Date.now());
      for (const o of outs)
        this.emitted.set(o.id, { fingerprint: o.kind === 'deleted' ? '' : fingerprint(o.record), revision: o.revision, deleted: o.kind === 'deleted' });
      n += outs.length;
      const requests = engine.lookups();
      if (requests.length === 0) break;
      for (const r of requests) {
        const events = (this.byKey.get(r.key) ?? []).filter((ev) => ev.time >= r.from);
        const priors = new Map<string, PriorRecord>();
        for (const ev of events) {
          const id = `${ev.side}-${ev.id}`;
          const prior = this.emitted.get(id);
          if (prior) priors.set(id, prior);
        }
        engine.provide(r.key, r.from, events, priors);
      }
    }
    return n;
  }
}

/**
 * Both feeds advanced an hour past the last event: everything is decided.
 * Not Infinity: at an infinite watermark the lateness horizon is infinite
 * too and the engine asks for no lookup (the last events would be decided
 * without partners that left memory).
 */
function finish(engine: CorrelationEngine, lookups: Lookups, lastTime: number): number {
  engine.advance('A', lastTime + 3_600_000);
  engine.advance('B', lastTime + 3_600_000);
  return lookups.drain(engine);
}

/** global.gc, or the same function obtained at run time when node was started without --expose-gc. */
function getGc(): { gc: () => void; how: 'expose-gc' | 'runtime flag' } {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return { gc: g, how: 'expose-gc' };
  setFlagsFromString('--expose-gc');
  return { gc: runInNewContext('gc') as () => void, how: 'runtime flag' };
}

function heapAfterGc(gc: () => void): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

/**
 * Pushes N unmatched B and N unmatched A (2N connections) and releases
 * them: all stay held and open (B in its window, A in its delay), none
 * evicted, nothing decided yet.
 */
function fill(engine: CorrelationEngine, events: { A: InputEvent[]; B: InputEvent[] }, releaseAt: number): void {
  for (const ev of events.B) engine.push(ev);
  for (const ev of events.A) engine.push(ev);
  engine.advance('A', releaseAt);
  engine.advance('B', releaseAt);
  const s = engine.sizes();
  const n = events.A.length;
  const held = s.cachedA === n && s.cachedB === n && s.connections === 2 * n && s.open === 2 * n && s.waiting === 0 && s.awaitingLookup === 0;
  if (!held || engine.counters.evictions.A + engine.counters.evictions.B !== 0 || engine.drain(0).length !== 0)
    throw new Error(`memory fill did not hold ${n} + ${n} events: ${JSON.stringify(s)}`);
}

interface MemoryCase {
  cfg: EngineConfig;
  n: number;
  seed: number;
  t0: number;
  gc: () => void;
}

function memoryEvents(m: MemoryCase): { A: InputEvent[]; B: InputEvent[] } {
  return asEvents(asChanges(unmatchedTraffic({ seed: m.seed, n: m.n, startMs: m.t0, spanMs: 400 }), (side, i) => `${side}-${m.seed}-${i}`));
}

// Each measurement is a function of its own, and what it builds is created in
// a callee: when it returns, nothing it allocated is reachable from a stack
// frame, so the next baseline starts clean.

/** Engine bookkeeping only: the events (documents included) exist before the baseline. */
function engineOverheadBytes(m: MemoryCase): number {
  const events = memoryEvents(m);
  const engine = new CorrelationEngine(m.cfg);
  const base = heapAfterGc(m.gc);
  fill(engine, events, m.t0 + 400 + m.cfg.reorderSlackMs);
  const after = heapAfterGc(m.gc);
  if (engine.sizes().cachedA !== m.n || events.A.length !== m.n) throw new Error('the engine lost its entries');
  return (after - base) / (2 * m.n);
}

function filledEngine(m: MemoryCase): CorrelationEngine {
  const engine = new CorrelationEngine(m.cfg);
  fill(engine, memoryEvents(m), m.t0 + 400 + m.cfg.reorderSlackMs);
  return engine;
}

/** Everything the engine keeps alive: the documents are created after the baseline and only the engine holds them. */
function totalBytes(m: MemoryCase): number {
  const base = heapAfterGc(m.gc);
  const engine = filledEngine(m);
  const after = heapAfterGc(m.gc);
  if (engine.sizes().cachedB !== m.n) throw new Error('the engine lost its entries');
  return (after - base) / (2 * m.n);
}

/** Heap per event while the engine holds N buffered B (unmatched, inside the window) and N pending A (no B, inside the orphan delay). */
export function measureMemory(cfg: EngineConfig, n: number, seed: number): EngineBenchReport['memory'] {
  const { gc, how } = getGc();
  // Room for all of them: the point is the cost per entry, not the eviction.
  const m: MemoryCase = { cfg: { ...cfg, maxHttpItems: n + 1, maxNetworkItems: n + 1 }, n, seed, t0: Date.UTC(2024, 0, 1), gc };
  const total = totalBytes(m);
  const engine = engineOverheadBytes(m);
  return { n, bytesPerEvent: total, engineBytesPerEvent: engine, gc: how };
}

export function benchEngine(o: EngineBenchOptions, progress: (line: string) => void = () => {}): EngineBenchReport {
  const cfg = engineConfig(correlatorSchema.parse({}));
  progress(`generating ~${o.events.toLocaleString('en-US')} events (${o.connectionsPerSecond} connections/s of event time)...`);
  const streams = generateStreams(o.events, o.connectionsPerSecond, cfg, o.seed);
  const events = asEvents(streams);
  const order = mergeOrder(events.A, events.B);
  // The same push order for the normalising run: by the events' times, as above.
  const changeOrder = order.map((ev) => ({ side: ev.side, index: ev.index, change: (ev.side === 'A' ? streams.A : streams.B)[ev.index]! }));

  const lastTime = order.reduce((m, ev) => Math.max(m, ev.time), -Infinity);
  // Untimed: the index the lookups are answered from (in production, a CouchDB view).
  const stored = Lookups.index(order);
  const runEngine = (evs: InputEvent[], onPeak?: (e: CorrelationEngine) => void) => {
    const engine = new CorrelationEngine(cfg);
    const lookups = new Lookups(stored);
    let outputs = 0;
    for (let i = 0; i < evs.length; i++) {
      engine.push(evs[i]!);
      if (i % DRAIN_EVERY === DRAIN_EVERY - 1) {
        outputs += lookups.drain(engine);
        onPeak?.(engine);
      }
    }
    outputs += finish(engine, lookups, lastTime);
    return { engine, outputs };
  };

  progress('warming up...');
  runEngine(order.slice(0, Math.min(order.length, 100_000)));
  // Each timed run starts from a collected heap: no run pays for the garbage of the one before.
  const { gc } = getGc();

  const engineRuns: Throughput[] = [];
  const engines: CorrelationEngine[] = [];
  for (let r = 0; r < o.runs; r++) {
    progress(`engine alone, run ${r + 1}/${o.runs}...`);
    engines.length = 0;
    heapAfterGc(gc);
    engineRuns.push(
      timed(() => {
        const { engine, outputs } = runEngine(order);
        engines[0] = engine; // for its counters
        return { events: order.length, outputs };
      }),
    );
  }
  const counters = engines[0]!.counters;

  // Peak buffer sizes, in an untimed run (sizes() costs nothing, but keep the timed loop bare).
  const peak = { waiting: 0, connections: 0, open: 0, cachedA: 0, cachedB: 0 };
  runEngine(order, (e) => {
    const s = e.sizes();
    peak.waiting = Math.max(peak.waiting, s.waiting);
    peak.connections = Math.max(peak.connections, s.connections);
    peak.open = Math.max(peak.open, s.open);
    peak.cachedA = Math.max(peak.cachedA, s.cachedA);
    peak.cachedB = Math.max(peak.cachedB, s.cachedB);
  });

  const normRuns: Throughput[] = [];
  for (let r = 0; r < o.runs; r++) {
    progress(`toEvent + engine, run ${r + 1}/${o.runs}...`);
    heapAfterGc(gc);
    normRuns.push(
      timed(() => {
        const engine = new CorrelationEngine(cfg);
        const lookups = new Lookups(stored);
        let outputs = 0;
        for (let i = 0; i < changeOrder.length; i++) {
          const { side, index, change } = changeOrder[i]!;
          const ev = toEvent(change, side, index, NO_RULES);
          if (!('skip' in ev)) engine.push(ev);
          if (i % DRAIN_EVERY === DRAIN_EVERY - 1) outputs += lookups.drain(engine);
        }
        outputs += finish(engine, lookups, lastTime);
        return { events: changeOrder.length, outputs };
      }),
    );
  }

  progress(`memory: ${o.bufferN.toLocaleString('en-US')} buffered B + ${o.bufferN.toLocaleString('en-US')} pending A...`);
  const memory = measureMemory(cfg, o.bufferN, o.seed + 1);
  const engineFig = median(engineRuns);
  const fields = (c: Change | undefined) => Object.keys(c?.doc ?? {}).filter((k) => k !== '_id' && k !== '_rev').length;
  return {
    config: cfg,
    generated: {
      A: streams.A.length,
      B: streams.B.length,
      connections: streams.connections,
      eventTimeSeconds: streams.eventTimeSeconds,
      fieldsPerDoc: { A: fields(streams.A[0]), B: fields(streams.B[0]) },
    },
    engine: engineFig,
    withNormalize: median(normRuns),
    counters,
    peak,
    memory,
    target: TARGET_EVENTS_PER_SECOND,
    ratio: engineFig.eventsPerSecond / TARGET_EVENTS_PER_SECOND,
  };
}

export function formatReport(r: EngineBenchReport): string {
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  const row = (name: string, t: Throughput) =>
    `  ${name.padEnd(16)} ${n(t.eventsPerSecond).padStart(10)} events/s ${n(t.outputsPerSecond).padStart(10)} outputs/s   ${t.seconds.toFixed(2)} s, cpu/wall ${t.cpuPerWall.toFixed(2)}, ${n(t.eventsPerCpuSecond)} events/cpu-s`;
  const c = r.counters;
  return [
    `correlator engine, defaults: window ${r.config.windowMs} ms, TTL ${r.config.networkTtlMs / 1000} s, orphan delay ${r.config.apacheEmitDelayMs} ms, slack ${r.config.reorderSlackMs} ms, ${r.config.mode}`,
    `  events: ${n(r.generated.A)} A (${r.generated.fieldsPerDoc.A} fields) + ${n(r.generated.B)} B (${r.generated.fieldsPerDoc.B} fields), ${n(r.generated.connections)} connections over ${n(r.generated.eventTimeSeconds)} s of event time`,
    `  decided: ${n(c.correlated)} correlated, ${n(c.orphans.A)} orphan A, ${n(c.orphans.B)} orphan B, ${n(c.dropped.orphan_b_not_emitted)} orphan B not emitted, ${n(c.evictions.A + c.evictions.B)} evictions, ${n(c.late.A + c.late.B)} late, ${n(c.corrections)} corrections, ${n(c.lookups)} lookups`,
    `  peak memory: ${n(r.peak.connections)} connections (${n(r.peak.open)} open), ${n(r.peak.cachedA)} A + ${n(r.peak.cachedB)} B events cached, ${n(r.peak.waiting)} waiting for release`,
    '(a) throughput, one thread (median run)',
    row('engine alone', r.engine),
    row('toEvent + engine', r.withNormalize),
    `  ratio engine/target: ${r.ratio.toFixed(2)}x  (target >= ${n(r.target)} events/s)`,
    `(a) memory, ${n(r.memory.n)} buffered B + ${n(r.memory.n)} pending A (gc via ${r.memory.gc})`,
    `  ${n(r.memory.bytesPerEvent)} bytes per buffered event, document included; ${n(r.memory.engineBytesPerEvent)} of them the engine's own bookkeeping`,
  ].join('\n');
}
