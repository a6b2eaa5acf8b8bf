// Crash safety of the correlator, with one side late: the B backlog
// (6,000 documents; 2,000 on CouchDB 3) is drained by a running `couchlog correlator` (orphan
// Bs emitted, provisionally), then the A backlog of the same connections is
// posted, and while the correlator corrects its records the process is
// killed with SIGKILL at random moments several times and restarted; the
// last run finishes and stops on SIGTERM. Its outputs in CouchDB and
// ClickHouse must equal those of a clean run that reads both backlogs in
// event order (the reference): nothing lost (checkpoints never pass what is
// not acknowledged), nothing decided differently (connections rebuilt from
// re-read events, corrections re-derived), nothing visible twice
// (deterministic ids; ClickHouse rows merged by FINAL, deletions hidden).
//
// CRASH_SEED=n reproduces a run with other documents and kill times.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify as stringifyYaml } from 'yaml';
import { accountsEnv, couchFlavor, freePort, http, settled, startStack, type Stack } from '../helpers/stack.js';
import { startClickhouse, type TestClickhouse } from '../helpers/clickhouse.js';
import {
  addOutputs,
  clickhouseCounts,
  clickhouseRows,
  couchDocCount,
  couchDocs,
  diffMaps,
  metrics,
  postBulk,
  until,
  untilStable,
  type Doc,
} from '../helpers/correlator-outputs.js';
import { generateTraffic, mulberry32 } from '../../bench/traffic.js';
import { loadConfig, type Config } from '../../lib/config/load.js';
import { createLogger } from '../../lib/logger.js';
import { startCorrelator } from '../../correlator/service.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');
const CLI = join(ROOT, 'dist/scripts/couchlog.js');
const SEED = Number(process.env.CRASH_SEED ?? 20_000);
// Per side. On CouchDB 3 2,000: a 3-node cluster (two cores) took 553 s for
// 10,000, alone at the end of CI's cluster run, and 182-216 s for 4,000; with
// 2,000 it takes 91-135 s, one node 85 s with 4,000, and every kill still
// lands early in the replay (the A side read up to 305-405 of 2,000 at the
// last kill, in CI runs of both), so CI stays near 30 minutes; the embedded
// run reads faster (up to 4,703 read at the last kill, 503-3,403 in the CI
// runs of 2026-12-06/07): 6,000 (10,000 took 115 s of CI's embedded run).
const N = couchFlavor === 'embedded' ? 6_000 : 2_000;

let ch: TestClickhouse;
let stack: Stack;
let dir: string;
let configFile: string;
let env: NodeJS.ProcessEnv;
let metricsUrl: string;
let aIds: string[] = [];
const children: ChildProcess[] = [];
/** Output of every run, for the assertion messages. */
let output = '';

// Small batches and frequent checkpoints: many checkpoints for a kill to
// fall between. A 15 s Keep-Alive TTL (instead of 120 s) lets the
// checkpoint move on well within the 4 minutes of events, so restarts
// resume from the middle of the replay with Keep-Alive Bs that expired
// behind the checkpoint. The reorder slack covers PouchDB Server's
// _bulk_docs, which does not always assign sequence numbers in the order of
// the array: a 200-document bulk spans up to ~6.5 s of event time.
const correlatorYaml = (metricsPort: number) => ({
  log_level: 'warn',
  clickhouse: { enabled: true, url: ch.url },
  correlator: {
    inputs: { batch_size: 100, poll_interval_ms: 50 },
    reorder_slack_ms: 10_000,
    ttl: { network_ttl_s: 15 },
    orphan_policy: { network_emit: true },
    outputs: {
      clickhouse: { batch_size: 100, flush_interval_ms: 30, retry_initial_ms: 50, retry_max_ms: 1000 },
      couchdb: { batch_size: 100, flush_interval_ms: 30, retry_initial_ms: 50, retry_max_ms: 1000 },
    },
    checkpoint_interval_ms: 100,
    metrics: { port: metricsPort },
  },
});

function spawnCorrelator(): ChildProcess {
  const child = spawn(process.execPath, [CLI, '--config', configFile, 'correlator'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (d: Buffer) => {
    output += d.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  children.push(child);
  return child;
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve({ code: child.exitCode, signal: child.signalCode })
    : new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((ok) => child.once('exit', (code, signal) => ok({ code, signal })));

async function waitUntilServing(child: ChildProcess): Promise<void> {
  await until(
    'the correlator to serve /health (a restart first fetches the documents its checkpoint names)',
    async () => {
      if (child.exitCode !== null) throw new Error(`the correlator exited with ${child.exitCode}:\n${output.slice(-3000)}`);
      try {
        const res = await http(`${metricsUrl}/health`);
        return res.status === 200 || res.status === 503 ? true : null;
      } catch {
        return null;
      }
    },
    120_000,
    50,
  );
}

/** Outputs written so far: log_correlated documents (with the design documents and nothing else). */
const correlatedCount = () => couchDocCount(stack, 'log_correlated');

/** The saved feed positions, 0 before the first save (PouchDB Server's sequences are numbers; CouchDB 3's are "N-opaque", N counting the changes). */
async function checkpoint(): Promise<{ A: number; B: number }> {
  const res = await http(`${stack.couchUrl}/couchlog_state_correlated/_local/correlator`, { headers: { authorization: stack.auth.admin } });
  if (res.status === 404) return { A: 0, B: 0 };
  return { A: parseInt(String(res.json.feeds.A.since), 10), B: parseInt(String(res.json.feeds.B.since), 10) };
}

const lateIn = (m: Map<string, number>) =>
  (m.get('couchlog_correlator_late_events_total{side="A"}') ?? 0) + (m.get('couchlog_correlator_late_events_total{side="B"}') ?? 0);

describe(`kill -9 while a late side of ${N.toLocaleString('en')} documents is correlated against ${N.toLocaleString('en')} already decided`, () => {
  const kills: Array<{ resumedFrom: { A: number; B: number }; afterMs: number; outputsAtKill: number; late: number; aRead: number }> = [];
  let bDrainedRecords = 0;
  let finalRun: { resumedFrom: { A: number; B: number }; late: number };
  let finalExit: { code: number | null; signal: NodeJS.Signals | null };
  let cleanStats: { correlated: number; orphanA: number; orphanB: number; late: number };

  before(async () => {
    ch = await startClickhouse();
    stack = await startStack({ yaml: { clickhouse: { enabled: true, url: ch.url } } });
    // The clean run's outputs, next to the crash run's.
    await addOutputs(stack, ch, 'correlated_clean', 'http_logs_clean');

    // The B side first, in the past; the A side once the correlator has drained it.
    const traffic = generateTraffic({ seed: SEED, aCount: N, bCount: N, startMs: Date.now() - 10 * 60_000, spanMs: 4 * 60_000 });
    await postBulk(stack, 'network', traffic.b, 200);

    dir = mkdtempSync(join(tmpdir(), 'couchlog-crash-'));
    const metricsPort = await freePort();
    metricsUrl = `http://127.0.0.1:${metricsPort}`;
    configFile = join(dir, 'couchlog.yml');
    writeFileSync(configFile, stringifyYaml(correlatorYaml(metricsPort)));
    env = { ...process.env, COUCHLOG_DATA: join(dir, 'data'), ...accountsEnv(stack) };
    delete env.COUCHLOG_CONFIG;

    // The first run drains the B backlog and idles; then the A side comes, late.
    const first = spawnCorrelator();
    await waitUntilServing(first);
    await untilStable(
      'the B backlog drained',
      async () => {
        const m = await metrics(metricsUrl);
        const read = m.get('couchlog_correlator_events_in_total{side="B"}') ?? 0;
        const open = m.get('couchlog_correlator_buffer_size{buffer="open_connections"}') ?? 1;
        return { key: `${read}/${open}`, ready: read >= N && open === 0 };
      },
      0,
      90_000,
    );
    bDrainedRecords = await correlatedCount();
    const posting = postBulk(stack, 'http', traffic.a, 200).then((ids) => (aIds = ids));

    // Kill at seeded moments after each start has come up, and restart.
    const rnd = mulberry32(SEED ^ 0x5eed);
    const killCount = 4 + Math.floor(rnd() * 3);
    for (let i = 0; i < killCount; i++) {
      const resumedFrom = await checkpoint();
      const child = i === 0 ? first : spawnCorrelator();
      if (i > 0) await waitUntilServing(child);
      const afterMs = 300 + Math.round(rnd() * 1200);
      await sleep(afterMs);
      const late = lateIn(await metrics(metricsUrl));
      assert.equal(child.exitCode, null, `the correlator exited by itself:\n${output.slice(-3000)}`);
      child.kill('SIGKILL');
      const how = await exited(child);
      assert.equal(how.signal, 'SIGKILL');
      kills.push({ resumedFrom, afterMs, outputsAtKill: await correlatedCount(), late, aRead: (await checkpoint()).A });
    }
    await posting;

    // The last run finishes the replay; done when the engine holds nothing,
    // the sinks have nothing pending and the outputs stop changing.
    const resumedFrom = await checkpoint();
    const last = spawnCorrelator();
    await waitUntilServing(last);
    await untilStable(
      'the last run',
      async () => {
        const m = await metrics(metricsUrl);
        const zero = (name: string) => (m.get(name) ?? 0) === 0;
        // Caught up on both feeds, nothing held or looked up (a lookup round on a cold view can take seconds).
        const health = (await http(`${metricsUrl}/health`)).json as {
          feeds: Record<'A' | 'B', { caughtUp: boolean }>;
          engine: { waiting: number; open: number; awaitingLookup: number };
        };
        const ready =
          health.feeds.A.caughtUp &&
          health.feeds.B.caughtUp &&
          health.engine.waiting + health.engine.open + health.engine.awaitingLookup === 0 &&
          zero('couchlog_correlator_sink_backlog{sink="clickhouse"}') &&
          zero('couchlog_correlator_sink_backlog{sink="couchdb"}') &&
          m.has('couchlog_correlator_sink_writes_total{sink="couchdb"}');
        const counts = await clickhouseCounts(ch, 'http_logs');
        return { key: `${await correlatedCount()}/${counts.raw}/${m.get('couchlog_correlator_events_in_total{side="A"}')}`, ready };
      },
      1500,
      // Nothing changing for 90 s is a stuck run; one still making progress
      // (three CouchDB nodes on two cores, a loaded CI runner) gets up to 450 s.
      90_000,
    );
    finalRun = { resumedFrom, late: lateIn(await metrics(metricsUrl)) };
    last.kill('SIGTERM');
    // An unref'd timer: it must not keep the test process alive once the child has exited.
    finalExit = await Promise.race([exited(last), sleep(20_000, undefined, { ref: false }).then(() => ({ code: null, signal: 'timeout' as NodeJS.Signals }))]);

    // The clean run: same settings, its own outputs (and so its own checkpoint).
    const { config } = loadConfig({ file: configFile, env: { ...env, COUCHLOG_CORRELATOR_METRICS_PORT: String(await freePort()) } });
    const clean: Config = config;
    clean.correlator.outputs.couchdb.app = 'correlated_clean';
    clean.clickhouse.table = 'http_logs_clean';
    const running = await startCorrelator(clean, createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'), { clickhouse: true });
    try {
      // Progress-aware like the last run's wait: on a loaded 3-node cluster the clean run's 20,000 documents took over 90 s.
      await untilStable(
        'the clean run',
        async () => {
          const e = running.engine;
          const s = e.sizes();
          const pending = running.pipeline.fanout.pending;
          const ready = e.counters.eventsIn.A === N && e.counters.eventsIn.B === N && s.waiting + s.open + s.awaitingLookup === 0 && pending === 0;
          const outputs = e.counters.correlated + e.counters.orphans.A + e.counters.orphans.B + e.counters.corrections;
          return { key: `${e.counters.eventsIn.A}/${e.counters.eventsIn.B}/${outputs}/${pending}/${s.awaitingLookup}`, ready };
        },
        500,
        90_000,
      );
      const c = running.engine.counters;
      cleanStats = { correlated: c.correlated, orphanA: c.orphans.A, orphanB: c.orphans.B, late: c.late.A + c.late.B };
    } finally {
      await running.stop();
    }
  });

  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await stack?.stop();
    // ClickHouse 18.16 goes on serving for seconds after SIGTERM, and its data is thrown away: no need to wait.
    await ch?.server.stop(1000);
    await ch?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the kills landed in the middle of the replay, runs resumed from saved checkpoints, SIGTERM stopped the last with exit code 0', async (t) => {
    t.diagnostic(`kills: ${JSON.stringify(kills)}; last run: ${JSON.stringify(finalRun)}; clean run: ${JSON.stringify(cleanStats)}`);
    assert.ok(kills.length >= 4, `${kills.length} kills`);
    assert.ok(bDrainedRecords > 0, 'the B side was decided (orphan Bs) before the A side came');
    const finalA = (await checkpoint()).A;
    const midway = kills.filter((k) => k.aRead < finalA);
    assert.ok(
      midway.length >= 3,
      `only ${midway.length} of ${kills.length} kills happened before the late A side was read: ${JSON.stringify(kills)} (final A position ${finalA})`,
    );
    // Not every run started over from the beginning: the checkpoint moved between kills.
    const resumed = [...kills, finalRun].filter((k) => k.resumedFrom.A > 0 && k.resumedFrom.B > 0);
    assert.ok(resumed.length >= 3, `only ${resumed.length} runs resumed from a saved checkpoint: ${JSON.stringify(kills)}`);
    assert.deepEqual(finalExit, { code: 0, signal: null }, output.slice(-3000));
  });

  test('premise: the A side came late (decided against B records already written) and the clean run read in order', async () => {
    assert.ok(kills.some((k) => k.late > 0) || finalRun.late > 0, `no late event: ${JSON.stringify(kills)}`);
    // The embedded server's feeds are in order; CouchDB 3 interleaves shards, so a few late events are normal there.
    if (couchFlavor === 'embedded') assert.equal(cleanStats.late, 0, 'late events in the clean run');
  });

  /**
   * Both outputs, read again until they agree (at most 30 s): on a cluster a listing answers from one copy of each
   * shard range, which may not hold the last batches of a run yet. Asserted in full by the tests below.
   */
  let outputs: Promise<{ crashed: Map<string, Doc>; clean: Map<string, Doc> }> | null = null;
  const converged = () =>
    (outputs ??= settled(
      async () => ({ crashed: await couchDocs(stack, 'log_correlated', true), clean: await couchDocs(stack, 'log_correlated_clean', true) }),
      ({ crashed, clean }) => diffMaps<Doc>(crashed, clean, (x, y) => JSON.stringify(x) === JSON.stringify(y)).count === 0,
    ));

  test('every A yields exactly one record; the rest are orphan Bs; counts match the clean run', async () => {
    await converged();
    const docs = await couchDocs(stack, 'log_correlated');
    const aRecords = [...docs.keys()].filter((id) => id.startsWith('A-'));
    const bRecords = [...docs.entries()].filter(([id]) => id.startsWith('B-'));
    assert.equal(aRecords.length, N);
    assert.deepEqual(new Set(aRecords), new Set(aIds.map((id) => `A-${id}`)));
    assert.ok(bRecords.every(([, d]) => d.orphan_side === 'B' && d.correlated === false));
    const cleanB = [...(await couchDocs(stack, 'log_correlated_clean')).keys()].filter((id) => id.startsWith('B-')).length;
    assert.equal(docs.size, N + cleanB, 'records = one per A + the orphan Bs of a clean run');
    assert.ok(cleanStats.orphanA > 0 && cleanStats.orphanB > 0 && cleanStats.correlated > 0, JSON.stringify(cleanStats));
    // Keep-Alive happened: some B matched several A's.
    assert.ok([...docs.values()].some((d) => (d.keepalives as number) >= 3));
  });

  test('log_correlated equals the clean run, document by document', async () => {
    const { crashed, clean } = await converged();
    const d = diffMaps<Doc>(crashed, clean, (x, y) => JSON.stringify(x) === JSON.stringify(y));
    let why = '';
    if (d.count > 0) {
      // For a leftover orphan B: the record that took its B, with its bookkeeping.
      const full = await couchDocs(stack, 'log_correlated');
      const extra = [...crashed.keys()].find((id) => !clean.has(id) && id.startsWith('B-'));
      if (extra) {
        const taker = [...full.entries()].find(([, doc]) => doc.b_id === extra.slice(2));
        why = `\n${extra}: ${JSON.stringify({ revision: full.get(extra)?.revision, decided_at: full.get(extra)?.decided_at })}; taken by ${taker ? `${taker[0]} ${JSON.stringify({ revision: taker[1].revision, decided_at: taker[1].decided_at })}` : 'nothing'}\n${output.slice(-2000)}`;
      }
    }
    assert.equal(d.count, 0, `${d.count} records differ (first: crash run, second: clean run):\n${d.examples.join('\n')}${why}`);
  });

  test('ClickHouse with FINAL equals the clean run, row by row, and shows no duplicate', async () => {
    const crashed = await clickhouseRows(ch, 'http_logs');
    const clean = await clickhouseRows(ch, 'http_logs_clean');
    const cleanDocs = await couchDocs(stack, 'log_correlated_clean');
    assert.equal(clean.size, cleanDocs.size, 'ClickHouse and log_correlated hold the same records');
    const d = diffMaps(crashed, clean, (x, y) => x === y);
    assert.equal(d.count, 0, `${d.count} rows differ (first: crash run, second: clean run):\n${d.examples.join('\n')}`);
    const counts = await clickhouseCounts(ch, 'http_logs');
    assert.equal(counts.final, crashed.size, 'FINAL WHERE deleted = 0: one row per record');
    // Without FINAL, replayed records may be there twice until ClickHouse merges them.
    assert.ok(counts.raw >= counts.final, JSON.stringify(counts));
  });
});
