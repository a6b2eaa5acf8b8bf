// Property: the correlator's records are a function of the stored documents,
// not of their arrival timing. For many seeded schedules of the same traffic
// (one side up to an hour late, random batches, feeds interleaved at random,
// disorder within a feed, re-delivered changes, a crash and restore from a
// checkpoint at a random point, a memory cache small enough that partners
// must be looked up), the records once quiet equal the reference: a fresh
// engine replaying every document in event order. Failures print the seed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { EngineConfig } from '../../../../correlator/engine/types.js';
import { eventTime } from '../../../../correlator/engine/normalize.js';
import { generateTraffic, mixTimeFormats } from '../../../../bench/traffic.js';
import { mulberry32 } from '../../../../bench/prng.js';
import {
  firstDifference,
  play,
  randomSchedule,
  referenceResult,
  withAdminChanges,
  type Delivery,
  type RunOptions,
  type StoredDoc,
} from '../../../helpers/arrival-schedule.js';

const T0 = Date.UTC(2026, 10, 27, 9);
const HOUR = 3_600_000;

function config(over: Partial<EngineConfig> = {}): EngineConfig {
  return {
    windowMs: 10_000,
    apacheEmitDelayMs: 500,
    apacheAlwaysEmit: true,
    networkEmit: true,
    mode: 'one_to_many',
    maxHttpItems: 100_000,
    maxNetworkItems: 100_000,
    networkTtlMs: 120_000,
    reorderSlackMs: 1000,
    allowedLatenessMs: 24 * HOUR,
    maxClockSkewMs: 300_000,
    ...over,
  };
}

/** The generated traffic, with every time format the correlator reads mixed in, and some exact ties. */
function traffic(seed: number, n: number, longConnections?: { count: number; requests: number }): StoredDoc[] {
  const t = mixTimeFormats(
    generateTraffic({ seed, aCount: n, bCount: Math.round(n * 0.7), startMs: T0, spanMs: 60_000, ...(longConnections && { longConnections }) }),
    seed ^ 0x5eed,
  );
  const id = (side: string, i: number) => `${side}${seed}-${i.toString().padStart(5, '0')}`;
  return [...t.a.map((doc, i) => ({ side: 'A' as const, id: id('a', i), doc })), ...t.b.map((doc, i) => ({ side: 'B' as const, id: id('b', i), doc }))];
}

const timeOf = (d: StoredDoc) => eventTime(d.doc)!;

function check(
  seed: number,
  cfg: EngineConfig,
  n: number,
  crash: boolean,
  stopWithLookupsPending = false,
  admin: { share: number; maxDelayMs: number } | null = null,
  priorsUnknown = false,
  lookups: Pick<RunOptions, 'viewAheadMs' | 'lookupDelay' | 'readAgainAfterMs'> = {},
  longConnections?: { count: number; requests: number },
): void {
  const docs = traffic(seed, n, longConnections);
  const rnd = mulberry32(seed);
  const delivered = randomSchedule(docs, timeOf, {
    seed,
    maxSideDelayMs: rnd() < 0.5 ? HOUR : 5 * 60_000,
    maxBatchDelayMs: 20_000,
    maxBatch: 1 + Math.floor(rnd() * 80),
    redeliverShare: 0.1,
  });
  // An admin's erasures and edits, minutes to days after the documents came: the reference is what is finally stored.
  const { schedule, finalDocs } = admin ? withAdminChanges(docs, delivered, timeOf, { seed, ...admin }) : { schedule: delivered, finalDocs: docs };
  const want = referenceResult(cfg, finalDocs);
  const crashAt = crash ? Math.floor(rnd() * schedule.length) : undefined;
  // A third of the crashes come before any checkpoint was saved.
  const firstCheckpointLate = crash && rnd() < 0.33;
  const stopAt = stopWithLookupsPending ? Math.floor(rnd() * schedule.length) : undefined;
  // Half the schedules hold connections with late events back at most deliveries, as the pipeline does while a backlog is read.
  const hold = rnd() < 0.5;
  const holdLate = hold ? () => rnd() < 0.7 : undefined;
  const { content, lagging, clickhouse, clickhouseLagging } = play(cfg, schedule, {
    crashAt,
    checkpointEvery: firstCheckpointLate ? schedule.length + 1 : 1 + Math.floor(rnd() * 10),
    stopWithLookupsPendingAt: stopAt,
    holdLate,
    priorsUnknown,
    ...lookups,
  });
  const what = `seed ${seed}${longConnections ? ` with ${longConnections.count} connections of ${longConnections.requests} requests` : ''} (${cfg.mode}, cache ${cfg.maxHttpItems}/${cfg.maxNetworkItems}, crash at ${crashAt}, late held: ${hold}, admin changes: ${JSON.stringify(admin)}${priorsUnknown ? ', no CouchDB sink' : ''}${lookups.viewAheadMs !== undefined ? `, view ${lookups.viewAheadMs} ms ahead` : ''}${lookups.lookupDelay ? `, answers ${lookups.lookupDelay} deliveries late` : ''}${lookups.readAgainAfterMs ? `, read again ${lookups.readAgainAfterMs / HOUR} h later` : ''})`;
  assert.equal(firstDifference(want, content), null, `${what}: ${firstDifference(want, content)}`);
  // The sink that lost what came after the checkpoint ends up the same.
  assert.equal(firstDifference(want, lagging), null, `${what}, the lagging sink: ${firstDifference(want, lagging)}`);
  // ClickHouse, keyed by (time, id): one live row per record, at its time, records that moved included.
  assert.equal(clickhouse.problem(want), null, `${what}, ClickHouse: ${clickhouse.problem(want)}`);
  assert.equal(clickhouseLagging.problem(want), null, `${what}, the lagging ClickHouse: ${clickhouseLagging.problem(want)}`);
}

/**
 * A schedule with every option drawn from its seed: cache size, mode,
 * emission, horizon, admin changes minutes to two days late, a crash (a
 * third before any checkpoint), reading again, a view ahead, late lookup
 * answers, no CouchDB sink (not with reading again: without it a document
 * read again past the horizon is decided alone, docs/correlator.md), long
 * Keep-Alive connections.
 */
function mixedVariant(seed: number): void {
  const r = mulberry32(seed * 7919);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const cache = pick([4, 40, 100_000]);
  const cfg = config({
    maxHttpItems: cache,
    maxNetworkItems: cache,
    mode: pick(['one_to_one', 'one_to_many'] as const),
    networkEmit: r() < 0.7,
    apacheAlwaysEmit: r() < 0.7,
    allowedLatenessMs: r() < 0.8 ? 24 * HOUR : 120 * HOUR,
  });
  const admin = pick([null, { share: 0.08, maxDelayMs: 10 * 60_000 }, { share: 0.1, maxDelayMs: 30 * HOUR }, { share: 0.08, maxDelayMs: 48 * HOUR }]);
  const lookups: Pick<RunOptions, 'viewAheadMs' | 'lookupDelay' | 'readAgainAfterMs'> = {};
  if (r() < 0.4) lookups.readAgainAfterMs = pick([24, 48, 72]) * HOUR;
  if (r() < 0.2) lookups.viewAheadMs = pick([0, 60_000, HOUR]);
  if (r() < 0.2) lookups.lookupDelay = pick([1, 2, 3]);
  const priorsUnknown = r() < 0.2 && lookups.readAgainAfterMs === undefined;
  const long = r() < 0.3 ? { count: 2, requests: 60 } : undefined;
  check(seed, cfg, 200, r() < 0.8, r() < 0.1, admin, priorsUnknown, lookups, long);
}

describe('records do not depend on arrival timing', () => {
  test('one_to_many, memory large enough: 60 seeded schedules', () => {
    for (let seed = 1; seed <= 60; seed++) check(seed, config(), 300, seed % 3 === 0);
  });

  test('one_to_many, a small cache: partners are looked up (40 schedules)', () => {
    for (let seed = 101; seed <= 140; seed++) check(seed, config({ maxHttpItems: 40, maxNetworkItems: 40 }), 300, seed % 2 === 0);
  });

  test('one_to_one, orphan B not emitted, small cache (40 schedules)', () => {
    for (let seed = 201; seed <= 240; seed++)
      check(seed, config({ mode: 'one_to_one', networkEmit: false, maxHttpItems: 60, maxNetworkItems: 30 }), 300, seed % 2 === 1);
  });

  test('a short emit delay and window, orphans A not emitted (30 schedules)', () => {
    for (let seed = 301; seed <= 330; seed++)
      check(seed, config({ windowMs: 2000, apacheEmitDelayMs: 100, apacheAlwaysEmit: false, networkTtlMs: 5000 }), 300, true);
  });

  test('one_to_one, orphan A not emitted, orphan B emitted, small cache (30 schedules and two kept seeds)', () => {
    const cfg = config({ mode: 'one_to_one', networkEmit: true, apacheAlwaysEmit: false, maxHttpItems: 25, maxNetworkItems: 25 });
    // 52 and 300 failed in a soak (2026-12-05): after a restart, an A that the crashed run had written as
    // matched, and that the replay found matched to another A's B and not to be emitted, kept its record.
    for (const seed of [52, 300]) check(seed, cfg, 300, true);
    for (let seed = 501; seed <= 530; seed++) check(seed, cfg, 300, seed % 2 === 0, seed % 2 === 1);
  });

  test('stopped while lookups were unanswered: the checkpoint keeps those connections undecided (30 schedules)', () => {
    for (let seed = 401; seed <= 430; seed++) check(seed, config({ maxHttpItems: 30, maxNetworkItems: 30 }), 300, false, true);
  });

  test('seeds a longer run (variants above, seeds 10,000 on) found failing, kept', () => {
    // 13173: killed before the first checkpoint; after the restart a lookup took a connection's records
    // from log_correlated while the events read again for it still waited for release, so they counted
    // as written everywhere and the sink that had lost them never got them back.
    check(13173, config({ mode: 'one_to_one', networkEmit: false, maxHttpItems: 60, maxNetworkItems: 30 }), 300, true);
    // 40219: the late B side of 28 connections was held undecided through fifteen deliveries (admin
    // changes hours apart) until the watermark had moved past allowed_lateness; judged by the horizon
    // at their decision instead of at their arrival, they were decided without a lookup: orphans.
    check(40219, config({ maxHttpItems: 40, maxNetworkItems: 40 }), 300, false, false, { share: 0.08, maxDelayMs: 48 * HOUR });
  });

  test('documents deleted or edited by an admin (erasures, fixes), minutes to two days later: 60 schedules', () => {
    // Within the lateness horizon and days later, past it (a change is exact whatever its age), with
    // crashes: a restart reads again what is older than the horizon as too late, checked against
    // log_correlated. (Until 2026-12-07 crashes were left out here past the horizon: see the test of
    // a kill before the first checkpoint.)
    const soon = { share: 0.08, maxDelayMs: 10 * 60_000 };
    const days = { share: 0.08, maxDelayMs: 48 * HOUR };
    for (let seed = 601; seed <= 620; seed++) check(seed, config(), 300, seed % 2 === 0, false, soon);
    for (let seed = 621; seed <= 640; seed++) check(seed, config({ maxHttpItems: 40, maxNetworkItems: 40 }), 300, seed % 2 === 0, seed % 3 === 0, days);
    for (let seed = 641; seed <= 660; seed++) {
      const variant = { mode: 'one_to_one' as const, networkEmit: seed % 2 === 0, apacheAlwaysEmit: seed % 3 !== 0, maxHttpItems: 30, maxNetworkItems: 30 };
      check(seed, config({ ...variant, allowedLatenessMs: 120 * HOUR }), 300, seed % 2 === 0, false, days);
    }
  });

  test('without the CouchDB sink (lookups cannot say which records exist), orphan Bs emitted, small caches: 40 schedules', () => {
    // Found by a longer run with lookups answered without priors: 27 % of schedules left orphan B
    // records (written before their A came, then matched) that a lookup could not know of.
    const days = { share: 0.08, maxDelayMs: 48 * HOUR };
    for (let seed = 701; seed <= 740; seed++) {
      const variant = {
        mode: seed % 3 === 0 ? ('one_to_one' as const) : ('one_to_many' as const),
        apacheAlwaysEmit: seed % 4 !== 0,
        maxHttpItems: 40,
        maxNetworkItems: 40,
      };
      check(
        seed,
        config({ ...variant, allowedLatenessMs: seed % 5 === 0 ? 120 * HOUR : 24 * HOUR }),
        300,
        seed % 2 === 0,
        seed % 7 === 0,
        seed % 5 === 0 ? days : null,
        true,
      );
    }
  });

  test('without the CouchDB sink: records that a lookup could not know of still go when decided later (found by the soak)', () => {
    const days = { share: 0.08, maxDelayMs: 48 * HOUR };
    const cases: Array<[number, EngineConfig, { share: number; maxDelayMs: number } | null]> = [
      // one_to_one, orphan As not emitted: a late A took the B that a later A had been correlated
      // with; that A, now an orphan, is decided only when its window closes, after the re-run, when
      // the engine had forgotten that the lookup could not say which records existed.
      [71914, config({ mode: 'one_to_one', apacheAlwaysEmit: false, networkEmit: true, maxHttpItems: 30, maxNetworkItems: 30 }), null],
      // An A held by its connection, deleted by an admin after the connection had left memory and
      // the A had come back (delivered again): withdrawn, it was no longer among the connection's
      // events the lookup could not vouch for, and its orphan record stayed.
      [
        88892,
        config({ mode: 'one_to_one', networkEmit: true, apacheAlwaysEmit: true, maxHttpItems: 30, maxNetworkItems: 30, allowedLatenessMs: 120 * HOUR }),
        days,
      ],
    ];
    for (const [seed, cfg, admin] of cases) check(seed, cfg, 300, true, false, admin, true);
  });

  test('lookups answered by a view ahead of the feeds (what is stored now, admin changes the feeds have not read yet included): 40 schedules', () => {
    // CouchDB updates the lookup view when it is queried; the feeds lag behind. Found by an
    // adversarial review: an admin's time edit decided this way left two live ClickHouse rows.
    // With kill -9: the next test.
    const aheads = [0, 1000, 60_000, HOUR];
    for (let seed = 701; seed <= 740; seed++) {
      const admin = seed % 2 === 0 ? { share: 0.1, maxDelayMs: 10 * 60_000 } : { share: 0.1, maxDelayMs: 48 * HOUR };
      const cache = [1, 3, 8, 40][seed % 4]!;
      const cfg = config({ maxHttpItems: cache, maxNetworkItems: cache, mode: seed % 3 === 0 ? 'one_to_one' : 'one_to_many', allowedLatenessMs: 120 * HOUR });
      check(seed, cfg, 200, false, false, admin, false, { viewAheadMs: aheads[seed % aheads.length] });
    }
  });

  test('a view ahead of the feeds and a kill -9 (a lagging copy of a cluster): 40 schedules and four kept seeds', () => {
    // The killed run decided documents a lookup showed it before the feeds delivered them, and
    // wrote them to log_correlated only; they come after the replay, and a lookup reads their
    // records back (a review's seeds 2318 and 4130: the lagging sink missed 82 and 90 records).
    // Before killedRunVersions, 10 of seeds 861-1260 failed, none of 861-900: four are kept.
    const seeds = [...Array.from({ length: 40 }, (_, i) => 861 + i), 964, 997, 1130, 1228];
    for (const seed of seeds) {
      const cache = [4, 8, 40][seed % 3]!;
      const admin = seed % 4 === 0 ? { share: 0.08, maxDelayMs: 10 * 60_000 } : seed % 4 === 1 ? { share: 0.08, maxDelayMs: 48 * HOUR } : null;
      const cfg = config({ maxHttpItems: cache, maxNetworkItems: cache, mode: seed % 5 === 0 ? 'one_to_one' : 'one_to_many', allowedLatenessMs: 120 * HOUR });
      const long = seed % 2 === 0 ? { count: 2, requests: 120 } : undefined;
      check(seed, cfg, 250, true, false, admin, false, { viewAheadMs: seed % 3 === 0 ? 60_000 : HOUR }, long);
    }
  });

  test('the feeds read again from their start one to three days later (a database restored, a cluster copy lost), past the horizon: 40 schedules', () => {
    // Every document again, most of them too late to be decided exactly: those decided before
    // must stay as they are (each was decided alone, and records changed: found 2026-12-07).
    for (let seed = 901; seed <= 940; seed++) {
      const cache = [4, 40, 100_000][seed % 3]!;
      const cfg = config({ maxHttpItems: cache, maxNetworkItems: cache, mode: seed % 4 === 0 ? 'one_to_one' : 'one_to_many', networkEmit: seed % 5 !== 1 });
      const long = seed % 2 === 0 ? { count: 2, requests: 60 } : undefined;
      check(
        seed,
        cfg,
        200,
        seed % 3 === 1,
        false,
        null,
        false,
        { readAgainAfterMs: (24 + (seed % 3) * 24) * HOUR, ...(seed % 4 === 1 && { lookupDelay: 2 }) },
        long,
      );
    }
  });

  test('killed before its first checkpoint after reading more than allowed_lateness, every other variant mixed in: 60 schedules and seven kept seeds', () => {
    // The replay from the start released what the killed run had read only when its feeds caught up and
    // the watermark jumped to the clock, a day past those documents: judged by that horizon, each was
    // decided alone and the killed run's exact records were rewritten as orphans. Seed 21199 of a
    // read-again soak; the others 6 of 1,500 schedules of mixedVariants (none of 1,500 since).
    check(21199, config({ maxHttpItems: 40, maxNetworkItems: 40 }), 200, true, false, { share: 0.1, maxDelayMs: 30 * HOUR }, false, {
      readAgainAfterMs: 48 * HOUR,
    });
    for (const seed of [30520, 30789, 30800, 30829, 31150, 31168]) mixedVariant(seed);
    for (let seed = 30000; seed < 30060; seed++) mixedVariant(seed);
  });

  test('lookup answers that come 1 to 4 deliveries after they were asked, with admin changes and crashes: 40 schedules', () => {
    // An adversarial review found a document deleted while its connection waited for an answer
    // keeping its record (4 of 1,500 of its schedules; engine.test.ts has that case exactly).
    for (let seed = 741; seed <= 780; seed++) {
      const cache = [1, 3, 8, 40][seed % 4]!;
      const cfg = config({ maxHttpItems: cache, maxNetworkItems: cache, allowedLatenessMs: 120 * HOUR });
      check(seed, cfg, 200, seed % 3 === 0, false, { share: 0.1, maxDelayMs: 10 * 60_000 }, false, { lookupDelay: 1 + (seed % 4) });
    }
  });

  test('long, busy Keep-Alive connections (a proxy upstream) folded into a base, small caches, crashes, admin changes, late answers: 60 schedules', () => {
    // Such a connection keeps only its recent events (earlier ones folded into a state): late
    // events after the fold re-run from that state, earlier ones and admin changes look it up.
    const long = { count: 3, requests: 60 };
    for (let seed = 801; seed <= 840; seed++) {
      const cache = [8, 20, 40][seed % 3]!;
      const admin = seed % 3 === 0 ? { share: 0.08, maxDelayMs: 10 * 60_000 } : seed % 3 === 1 ? { share: 0.08, maxDelayMs: 48 * HOUR } : null;
      const cfg = config({ maxHttpItems: cache, maxNetworkItems: cache, mode: seed % 4 === 0 ? 'one_to_one' : 'one_to_many', allowedLatenessMs: 120 * HOUR });
      check(seed, cfg, 300, seed % 2 === 0, seed % 7 === 0, admin, seed % 5 === 0, { lookupDelay: seed % 4 }, long);
    }
    for (let seed = 841; seed <= 860; seed++) {
      const cfg = config({ maxHttpItems: 20, maxNetworkItems: 20, allowedLatenessMs: 120 * HOUR });
      check(seed, cfg, 300, false, false, { share: 0.1, maxDelayMs: 48 * HOUR }, false, { viewAheadMs: [0, 60_000, HOUR][seed % 3] }, long);
    }
  });

  test('a lookup that begins inside a segment reads that segment from its start (found by a review, 2026-12-07)', () => {
    const cfg = config({ allowedLatenessMs: HOUR });
    const A = (id: string, port: number, t: number): StoredDoc => ({
      side: 'A',
      id,
      doc: { src_ip: '10.0.0.1', src_port: port, dst_ip: '192.168.1.10', dst_port: 8080, method: 'GET', path: '/', status: 200, timestamp: t },
    });
    const B = (id: string, port: number, t: number): StoredDoc => ({
      side: 'B',
      id,
      doc: { src_ip: '10.0.0.1', src_port: port, dst_ip: '192.168.1.10', dst_port: 443, conn_id: id, timestamp: t },
    });
    const onKey = (m: Map<string, string>) => new Map([...m].filter(([id]) => /^(A-ka|B-kb)/.test(id)));
    const run = (c: EngineConfig, docs: StoredDoc[], schedule: Delivery[], opts: RunOptions = {}) => {
      schedule.sort((x, y) => x.at - y.at);
      return firstDifference(onKey(referenceResult(c, docs)), onKey(play(c, schedule, opts).content));
    };
    // A 5-minute Keep-Alive chain, one request of it posted an hour late: within the horizon, but
    // the chain began before it. Its lookup read from the horizon on, and the re-run without the
    // chain's B rewrote three correlated requests and the late one as orphans.
    {
      const docs: StoredDoc[] = [];
      const schedule: Delivery[] = [];
      const deliver = (d: StoredDoc, at: number) => (docs.push(d), schedule.push({ at, side: d.side, docs: [d] }));
      for (let i = 0; i * 20_000 < 2 * HOUR; i++) {
        deliver(B(`fb${i}`, 20_000 + i, T0 + i * 20_000), T0 + i * 20_000 + 2000);
        deliver(A(`fa${i}`, 20_000 + i, T0 + i * 20_000 + 300), T0 + i * 20_000 + 2000);
      }
      deliver(B('kb0', 5000, T0), T0 + 2000);
      for (const s of [2, 100, 200, 300]) deliver(A(`ka${s}`, 5000, T0 + s * 1000), T0 + s * 1000 + 2000);
      deliver(A('kaL', 5000, T0 + 250_000), T0 + HOUR + 200_000);
      assert.equal(run(config({ ...cfg, maxHttpItems: 2, maxNetworkItems: 2 }), docs, schedule), null);
    }
    // The same chain, then an orphan B and a new connection on the same port an hour later, while
    // the A feed stalls for two hours and its backlog comes newest first: the new B, released past
    // the horizon, looked up from the middle of the old chain and rewrote its last two requests.
    {
      const docs: StoredDoc[] = [];
      const schedule: Delivery[] = [];
      const t1 = T0 + HOUR + 271_000;
      const stall = { side: 'A' as const, from: t1 - 30_000, until: t1 + 2 * HOUR };
      const backlog: StoredDoc[] = [];
      const deliver = (d: StoredDoc, at: number) => {
        docs.push(d);
        if (d.side === stall.side && at >= stall.from && at < stall.until) backlog.push(d);
        else schedule.push({ at, side: d.side, docs: [d] });
      };
      const step = (t: number) => (t > t1 - 110_000 && t < t1 - 30_000 ? 5_000 : t >= t1 - 30_000 && t < t1 + 2 * HOUR ? 60_000 : 20_000);
      for (let t = T0, i = 0; t < t1 + 2.5 * HOUR; t += step(t), i++) {
        deliver(B(`fb${i}`, 20_000 + i, t), t + 2000);
        deliver(A(`fa${i}`, 20_000 + i, t + 300), t + 2000);
      }
      deliver(B('kb0', 5000, T0), T0 + 2000);
      for (const s of [2, 100, 200, 300]) deliver(A(`ka${s}`, 5000, T0 + s * 1000), T0 + s * 1000 + 2000);
      deliver(B('kbz', 5000, t1 - 110_000), t1 - 108_000);
      deliver(B('kb1', 5000, t1), t1 + 2000);
      deliver(A('ka1', 5000, t1 + 300), t1 + 2000);
      backlog.sort((x, y) => timeOf(y) - timeOf(x));
      schedule.push({ at: stall.until, side: 'A', docs: backlog });
      assert.equal(run(config({ ...cfg, maxHttpItems: 400, maxNetworkItems: 10 }), docs, schedule, { stall }), null);
    }
  });

  test('the reference is itself independent of feed order: sides and ties reversed give the same', () => {
    const cfg = config();
    const docs = traffic(7, 300);
    assert.equal(firstDifference(referenceResult(cfg, docs), referenceResult(cfg, [...docs].reverse())), null);
  });
});
