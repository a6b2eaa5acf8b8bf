// Benchmark (b) of the correlator, end to end: a backlog of A (HTTP) and B
// (network) documents in CouchDB drained by the correlator into ClickHouse
// and log_correlated, timed next to a plain `_changes?include_docs=true`
// read of the same two databases, in the same run, with the same page size
// and the same HTTP client. The ratio correlator/plain read says what the
// correlation, the sinks and the checkpoints cost on top of reading (target
// >= 0.5).
//
// The correlator runs with its default configuration (10 s window, 120 s
// TTL, orphan A's emitted, orphan B's not), only the page size is set.
// Runs against the embedded CouchDB-compatible server, and Debian's
// ClickHouse when it is installed (otherwise the ClickHouse sink is left out
// and the report says so). The backlog is loaded straight into CouchDB with
// _bulk_docs (the writer's credentials): the ingress is not what is measured.
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { correlatorStateDb, couchUrl, dbName, ensureSecrets, type Config } from '../lib/config/load.js';
import type { Protection } from '../lib/config/protection.js';
import { basicAuth } from '../lib/couch/basic-auth.js';
import { CouchHttp } from '../lib/couch/http.js';
import { loggerOptions } from '../lib/logger.js';
import type { EmbeddedCouch } from '../embedded/pouchdb-server.js';
import { EmbeddedClickhouse, findClickhouseServer } from '../embedded/clickhouse-server.js';
import { startCorrelator, type RunningCorrelator } from '../correlator/service.js';
import type { EngineCounters } from '../correlator/engine/types.js';
import { benchConfig, describeCouch, startCouchStack } from './bench-stack.js';
import { freePort } from './free-port.js';
import { listeningPid } from './listening-pid.js';
import { cpuMeter } from './process-cpu.js';
import { describeQuiet, waitForQuiet } from './machine-quiet.js';
import { generateTraffic } from './traffic.js';
import { changesQuery } from '../correlator/feed/changes-feed.js';
import { runBackfill } from '../cli/backfill-command.js';

export interface CorrelatorBenchOptions {
  /** A documents, and as many B documents. */
  events: number;
  /** Changes per _changes request, for the plain read and the correlator's feeds. */
  batchSize: number;
  /** Documents per _bulk_docs when loading the backlog. */
  loadChunk: number;
  seed: number;
  /** The sinks to run (both by default): timing one alone shows what each costs. */
  sinks: Array<'clickhouse' | 'couchdb'>;
  /**
   * in-order: both backlogs loaded, then drained; late-side: the B backlog
   * drained first, then the A backlog of the same connections (an hour
   * old) posted to the running correlator, and its drain timed.
   */
  scenario: 'in-order' | 'late-side';
  /** An external CouchDB (admin from COUCHDB_USER / COUCHDB_PASSWORD in `env`); null: the embedded server. */
  couchdbUrl: string | null;
  /** Where the config module reads the external admin's credentials. */
  env: Record<string, string | undefined>;
  /** How the input databases and log_correlated are kept append-only (validate_doc_update, or signatures + audit). */
  protection: Protection;
  /** Afterwards, `couchlog backfill` of log_correlated into the emptied ClickHouse table, timed next to a plain read of log_correlated. */
  backfill?: boolean;
}

export interface Timed {
  docs: number;
  seconds: number;
  docsPerSecond: number;
}

/**
 * CPU seconds each process used during a phase (null: not running or not
 * measurable); `couchdb main thread`: the embedded server's JavaScript thread
 * alone (PouchDB Server runs its JavaScript on one).
 */
export type PhaseCpu = Record<'couchdb' | 'clickhouse' | 'correlator', number | null> & { 'couchdb main thread'?: number | null };

export interface CorrelatorBenchReport {
  scenario: CorrelatorBenchOptions['scenario'];
  /** Which CouchDB was measured: "embedded PouchDB Server 4.2.0" or "Apache CouchDB 3.5.0 at http://...". */
  server: string;
  events: { A: number; B: number };
  batchSize: number;
  load: Timed;
  plainRead: Timed & { cpu: PhaseCpu };
  correlator: Timed & { cpu: PhaseCpu; outputs: number; outputsPerSecond: number; sinks: string[]; counters: EngineCounters };
  /**
   * (iii) The records the correlator stored, written again with _bulk_docs
   * into a database of their own (pages and concurrency of the CouchDB sink):
   * the writes a correlator cannot avoid. null: the CouchDB sink was not run.
   */
  recordsWrite: (Timed & { cpu: PhaseCpu }) | null;
  /** Correlator drain vs the unavoidable I/O: plain read then records written, one after the other. */
  ioRatio: number | null;
  /**
   * The best ratio this machine allows: the drain must at least read what
   * (i) read and write what (iii) wrote, so the CPU the CouchDB server needs
   * for (i) and (iii), spread over every core — and on the embedded server,
   * whose JavaScript runs on one thread, that thread's CPU for them — is the
   * shortest a drain can take. `withOthers` also spreads what ClickHouse and
   * the correlator used in (ii) over the cores. null: the server's CPU was
   * not measurable (an external server not listening on this machine).
   */
  ceiling: { cores: number; serverCpu: number; mainThreadCpu: number | null; serverOnly: number; withOthers: number } | null;
  /** What the sinks hold afterwards (null: sink not run). */
  check: { couchdb: number | null; clickhouseFinal: number | null; clickhouseRaw: number | null; expected: number };
  clickhouse: string;
  ratio: number;
  /**
   * (iv) `couchlog backfill` of log_correlated into the ClickHouse table,
   * emptied first, next to a plain read of log_correlated; `rows`: FINAL
   * rows before emptying and after the backfill (must be equal). Absent
   * unless asked for (and ClickHouse ran).
   */
  backfill?: { plainRead: Timed; run: Timed; ratio: number; rows: { before: number; after: number } };
}

export const TARGET_RATIO = 0.5;

const timed = (docs: number, t0: bigint): Timed => {
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { docs, seconds, docsPerSecond: docs / seconds };
};

/** A query as the sink's account (the embedded ClickHouse has a password since 2026-12-05: without it this failed with code 194). */
async function clickhouseQuery(s: Server, sql: string): Promise<string> {
  const { user, password } = s.config.clickhouse;
  const res = await fetch(`${s.clickhouseUrl}/`, { method: 'POST', body: sql, headers: { authorization: basicAuth(user, password ?? '') } });
  const text = await res.text();
  if (!res.ok) throw new Error(`ClickHouse: ${text}`);
  return text.trim();
}

interface Server {
  config: Config;
  http: CouchHttp;
  label: string;
  pids: Record<'couchdb' | 'clickhouse' | 'correlator', number | null>;
  /** The embedded server's pid, whose JavaScript thread is measured alone; empty for an external server. */
  mainThreads: Record<string, number | null>;
  clickhouseUrl: string | null;
  clickhouseNote: string;
  dbs: { a: string; b: string; out: string; copy: string; state: string };
  close(): Promise<void>;
}

/** The CouchDB (embedded, or the external one asked for) and ClickHouse, set up with fresh databases. */
async function prepare(o: CorrelatorBenchOptions, dataDir: string, progress: (line: string) => void): Promise<Server> {
  // Databases of their own on an external server (a prefix of the run's own), removed afterwards.
  const { config, prefix } = benchConfig({ dataDir, couch: { couchdbUrl: o.couchdbUrl, env: o.env }, couchPort: await freePort() });
  // Logs are written (at info, as in production) but to /dev/null.
  const logger = pino(loggerOptions('info', 'bench'), pino.destination('/dev/null'));
  const apps = { a: `${prefix}http`, b: `${prefix}network`, out: config.correlator.outputs.couchdb.app };
  config.apps = { [apps.a]: { reports: [], tokens: [], protection: o.protection }, [apps.b]: { reports: [], tokens: [], protection: o.protection } };
  const c = config.correlator;
  c.inputs.http.app = apps.a;
  c.inputs.network.app = apps.b;
  c.outputs.couchdb.app = apps.out;
  c.inputs.batch_size = o.batchSize;
  c.metrics.enabled = false;
  c.outputs.couchdb.enabled = o.sinks.includes('couchdb');
  c.outputs.couchdb.protection = o.protection;
  // The ClickHouse sink keeps its default 1 s flush: the last batch of a drain, not full, waits it out (an
  // idle tail of at most 1 s in the figure), but at 200 ms ClickHouse took 5 INSERTs a second during the drain
  // and used 2.4x the CPU (5.0 against 2.1 CPU-s for 30,000 + 30,000 on CouchDB 3.5) on the cores it shares.
  // Under audit the records are signed: the key is made now (benchConfig ran before the protection was chosen).
  ensureSecrets(config);

  const binary = findClickhouseServer();
  let clickhouse: EmbeddedClickhouse | null = null;
  let clickhouseNote: string;
  if (!o.sinks.includes('clickhouse')) {
    config.clickhouse.enabled = false;
    clickhouseNote = 'not asked for (--sinks)';
  } else if (binary) {
    clickhouse = new EmbeddedClickhouse({
      binary,
      dataDir,
      host: '127.0.0.1',
      httpPort: await freePort(),
      tcpPort: await freePort(),
      startTimeoutMs: 60_000,
      // The password ensureSecrets made, as couchlog up runs it (the sink sends it).
      password: config.clickhouse.password,
      logger,
    });
    config.clickhouse = { ...config.clickhouse, enabled: true, url: clickhouse.url };
    clickhouseNote = `${binary} (its own data folder and ports)`;
  } else {
    config.clickhouse.enabled = false;
    clickhouseNote = 'not installed (no clickhouse-server): the ClickHouse sink is SKIPPED, only the CouchDB sink is written';
  }
  const url = couchUrl(config);
  const http = new CouchHttp(url, { timeoutMs: 300_000, retryAfterS: 5 });
  const admin = { authorization: basicAuth(config.couchdb.admin.user, config.couchdb.admin.password!) };
  if (config.couchdb.url === null) progress('starting the embedded CouchDB...');
  let embedded: EmbeddedCouch | null = null;
  let server: string;
  try {
    // Setup makes the ClickHouse table: the server is started first.
    if (clickhouse) await clickhouse.start();
    embedded = (await startCouchStack(config, logger, { ingress: false })).embedded;
    server = await describeCouch(url, embedded !== null, admin);
  } catch (err) {
    await http.close();
    await clickhouse?.stop(3000);
    await embedded?.stop();
    throw err;
  }
  const label = `${server}, protection ${o.protection}`;
  const dbs = { a: dbName(apps.a), b: dbName(apps.b), out: dbName(apps.out), copy: `${dbName(apps.out)}_copy`, state: correlatorStateDb(apps.out) };
  return {
    config,
    http,
    label,
    // An external server on this machine is measured too (its CPU, and the ceiling it sets).
    pids: { couchdb: embedded?.pid ?? (o.couchdbUrl ? listeningPid(o.couchdbUrl) : null), clickhouse: clickhouse?.pid ?? null, correlator: process.pid },
    mainThreads: embedded ? { 'couchdb main thread': embedded.pid ?? null } : {},
    clickhouseUrl: clickhouse?.url ?? null,
    clickhouseNote,
    dbs,
    async close() {
      if (!embedded) for (const db of Object.values(dbs)) await http.request('DELETE', `/${db}`, { headers: admin });
      await http.close();
      await clickhouse?.stop(3000);
      await embedded?.stop();
    },
  };
}

async function load(s: Server, db: string, docs: readonly Record<string, unknown>[], chunk: number): Promise<void> {
  const writer = { authorization: basicAuth(s.config.users.writer.user, s.config.users.writer.password!) };
  for (let i = 0; i < docs.length; i += chunk) {
    const res = await s.http.request('POST', `/${db}/_bulk_docs`, { headers: writer, body: JSON.stringify({ docs: docs.slice(i, i + chunk) }) });
    if (res.status !== 201) throw new Error(`loading ${db}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
  }
}

/** The baseline: `_changes?include_docs=true` of the databases, pages of batchSize, by the reader, with the correlator's own query (changesQuery). */
async function plainRead(s: Server, dbs: string[], batchSize: number): Promise<number> {
  const reader = { authorization: basicAuth(s.config.users.reader.user, s.config.users.reader.password!) };
  let read = 0;
  for (const db of dbs) {
    let since = '0';
    for (;;) {
      const qs = changesQuery(since, batchSize);
      const res = await s.http.request<{ results: Array<{ id: string }>; last_seq: unknown }>('GET', `/${db}/_changes?${qs}`, { headers: reader });
      if (res.status !== 200) throw new Error(`_changes of ${db}: ${res.status}`);
      read += res.body.results.filter((r) => !r.id.startsWith('_design/')).length;
      since = typeof res.body.last_seq === 'string' ? res.body.last_seq : JSON.stringify(res.body.last_seq);
      if (res.body.results.length < batchSize) break;
    }
  }
  return read;
}

/** Until the correlator has read `a` A and `b` B events and holds, asks and owes nothing. */
async function drained(running: RunningCorrelator, a: number, b: number): Promise<void> {
  for (;;) {
    const e = running.engine;
    // sizes() walks every connection on the correlator's own thread: asked only once the rest says done.
    const done = () => {
      const s = e.sizes();
      return s.waiting + s.open + s.awaitingLookup === 0;
    };
    if (e.counters.eventsIn.A >= a && e.counters.eventsIn.B >= b && running.pipeline.fanout.pending === 0 && done()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function benchCorrelator(o: CorrelatorBenchOptions, progress: (line: string) => void): Promise<CorrelatorBenchReport> {
  const dataDir = mkdtempSync(join(tmpdir(), 'couchlog-bench-correlator-'));
  const s = await prepare(o, dataDir, progress);
  try {
    progress(`measuring ${s.label}; ClickHouse ${s.clickhouseNote}`);
    progress(`generating ${o.events} A + ${o.events} B documents...`);
    // ~40 new connections per second of event time, ending an hour ago.
    const spanMs = Math.max(60_000, Math.round((o.events / 40) * 1000));
    const traffic = generateTraffic({ seed: o.seed, aCount: o.events, bCount: o.events, startMs: Date.now() - 3_600_000 - spanMs, spanMs });
    return o.scenario === 'in-order' ? await inOrder(o, s, traffic, progress) : await lateSide(o, s, traffic, progress);
  } finally {
    await s.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

type Traffic = ReturnType<typeof generateTraffic>;

async function inOrder(o: CorrelatorBenchOptions, s: Server, traffic: Traffic, progress: (line: string) => void): Promise<CorrelatorBenchReport> {
  progress(`loading both backlogs with _bulk_docs of ${o.loadChunk}...`);
  const t0 = process.hrtime.bigint();
  await Promise.all([load(s, s.dbs.a, traffic.a, o.loadChunk), load(s, s.dbs.b, traffic.b, o.loadChunk)]);
  const loaded = timed(2 * o.events, t0);

  progress(describeQuiet(await waitForQuiet()));
  progress(`(i) plain read: _changes?include_docs=true of ${s.dbs.a} and ${s.dbs.b}, pages of ${o.batchSize}...`);
  const readCpu = cpuMeter(s.pids, s.mainThreads);
  const t1 = process.hrtime.bigint();
  const read = await plainRead(s, [s.dbs.a, s.dbs.b], o.batchSize);
  const plain = { ...timed(read, t1), cpu: readCpu() as PhaseCpu };
  if (read !== 2 * o.events) throw new Error(`the plain read saw ${read} documents, expected ${2 * o.events}`);

  progress(describeQuiet(await waitForQuiet()));
  progress('(ii) the correlator, from start until every output is acknowledged by every sink...');
  const runCpu = cpuMeter(s.pids, s.mainThreads);
  const t2 = process.hrtime.bigint();
  const logger = pino({ level: 'silent' });
  const running = await startCorrelator(s.config, logger, { clickhouse: s.clickhouseUrl !== null });
  let counters: EngineCounters;
  let cpu: PhaseCpu;
  try {
    await drained(running, o.events, o.events);
    counters = structuredClone(running.engine.counters);
    cpu = runCpu() as PhaseCpu;
  } finally {
    await running.stop();
  }
  const run = timed(2 * o.events, t2);
  const r = await report(
    o,
    s,
    loaded,
    plain,
    run,
    cpu!,
    counters!,
    running.sinks.map((x) => x.name),
    progress,
  );
  if (o.backfill && s.clickhouseUrl !== null && s.config.correlator.outputs.couchdb.enabled) r.backfill = await backfillPhase(o, s, progress);
  return r;
}

/** (iv): the ClickHouse table emptied, then filled again from log_correlated by `couchlog backfill`; the plain read of log_correlated beside it. */
async function backfillPhase(o: CorrelatorBenchOptions, s: Server, progress: (line: string) => void): Promise<NonNullable<CorrelatorBenchReport['backfill']>> {
  const table = `${s.config.clickhouse.database}.${s.config.clickhouse.table}`;
  const rows = async () => Number(await clickhouseQuery(s, `SELECT count() FROM ${table} FINAL WHERE deleted = 0`));
  const before = await rows();
  await clickhouseQuery(s, `TRUNCATE TABLE ${table}`);
  progress(describeQuiet(await waitForQuiet()));
  progress(`(iv) plain read: _changes?include_docs=true of ${s.dbs.out}, pages of ${o.batchSize}...`);
  const t0 = process.hrtime.bigint();
  const read = await plainRead(s, [s.dbs.out], o.batchSize);
  const plain = timed(read, t0);
  progress(describeQuiet(await waitForQuiet()));
  progress(`(iv) couchlog backfill of ${s.dbs.out} into the emptied ${table}...`);
  const t1 = process.hrtime.bigint();
  const result = await runBackfill(s.config, { since: '0', decidedSince: null, giveUpAfterMs: 60_000, page: o.batchSize });
  const run = timed(result.copied, t1);
  return { plainRead: plain, run, ratio: run.docsPerSecond / plain.docsPerSecond, rows: { before, after: await rows() } };
}

async function lateSide(o: CorrelatorBenchOptions, s: Server, traffic: Traffic, progress: (line: string) => void): Promise<CorrelatorBenchReport> {
  progress(`loading the B backlog (${o.events} documents, an hour old)...`);
  const t0 = process.hrtime.bigint();
  await load(s, s.dbs.b, traffic.b, o.loadChunk);
  const loadedB = timed(o.events, t0);
  const logger = pino({ level: 'silent' });
  const running = await startCorrelator(s.config, logger, { clickhouse: s.clickhouseUrl !== null });
  let counters: EngineCounters;
  let cpu: PhaseCpu;
  let plain: Timed & { cpu: PhaseCpu };
  let run: Timed;
  try {
    progress('the correlator drains the B backlog (provisional orphan Bs) and idles...');
    await drained(running, 0, o.events);
    // Paused while the A side is posted, so the drain below is timed from a full backlog, not from the posting.
    await running.pipeline.pauseReading();
    progress(`posting the A backlog of the same connections, an hour late (${o.events} documents)...`);
    await load(s, s.dbs.a, traffic.a, o.loadChunk);

    progress(describeQuiet(await waitForQuiet()));
    progress(`(i) plain read: _changes?include_docs=true of ${s.dbs.a}, pages of ${o.batchSize}...`);
    const readCpu = cpuMeter(s.pids, s.mainThreads);
    const t1 = process.hrtime.bigint();
    const read = await plainRead(s, [s.dbs.a], o.batchSize);
    plain = { ...timed(read, t1), cpu: readCpu() as PhaseCpu };
    if (read !== o.events) throw new Error(`the plain read saw ${read} documents, expected ${o.events}`);

    progress(describeQuiet(await waitForQuiet()));
    progress('(ii) the running correlator drains the late A backlog: every A decided, corrections written, sinks acknowledged...');
    const before = structuredClone(running.engine.counters);
    const runCpu = cpuMeter(s.pids, s.mainThreads);
    const t2 = process.hrtime.bigint();
    running.pipeline.paused = false;
    await drained(running, o.events, o.events);
    run = timed(o.events, t2);
    cpu = runCpu() as PhaseCpu;
    counters = running.engine.counters;
    progress(
      `   ${counters.late.A - before.late.A} late A, ${counters.lookups - before.lookups} connections looked up, ${counters.corrections - before.corrections} corrections`,
    );
    counters = structuredClone(counters);
  } finally {
    await running.stop();
  }
  return report(
    o,
    s,
    loadedB,
    plain!,
    run!,
    cpu!,
    counters!,
    running.sinks.map((x) => x.name),
    progress,
  );
}

/** (iii): what log_correlated holds, stored again as plain new documents, as the sink sends them. */
async function recordsWrite(s: Server, batchSize: number, concurrency: number, progress: (line: string) => void): Promise<Timed & { cpu: PhaseCpu }> {
  const admin = { authorization: basicAuth(s.config.couchdb.admin.user, s.config.couchdb.admin.password!) };
  const all = await s.http.request<{ rows: Array<{ id: string; doc: Record<string, unknown> }> }>('GET', `/${s.dbs.out}/_all_docs?include_docs=true`, {
    headers: admin,
  });
  const docs = all.body.rows
    .filter((r) => !r.id.startsWith('_design/'))
    .map(({ doc }) => {
      const { _rev, ...rest } = doc;
      return rest;
    });
  await s.http.request('PUT', `/${s.dbs.copy}`, { headers: admin });
  progress(describeQuiet(await waitForQuiet()));
  const pages: string[] = [];
  for (let i = 0; i < docs.length; i += batchSize) pages.push(JSON.stringify({ docs: docs.slice(i, i + batchSize) }));
  const cpu = cpuMeter(s.pids, s.mainThreads);
  const t0 = process.hrtime.bigint();
  let next = 0;
  const worker = async () => {
    while (next < pages.length) {
      const res = await s.http.request('POST', `/${s.dbs.copy}/_bulk_docs`, { headers: admin, body: pages[next++]! });
      if (res.status !== 201) throw new Error(`storing the records again: ${res.status}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { ...timed(docs.length, t0), cpu: cpu() as PhaseCpu };
}

async function report(
  o: CorrelatorBenchOptions,
  s: Server,
  loaded: Timed,
  plain: Timed & { cpu: PhaseCpu },
  run: Timed,
  cpu: PhaseCpu,
  counters: EngineCounters,
  sinks: string[],
  progress: (line: string) => void,
): Promise<CorrelatorBenchReport> {
  const outputs = counters.correlated + counters.orphans.A + counters.orphans.B;
  const check = await checkSinks(s);
  const sink = s.config.correlator.outputs.couchdb;
  const write = sink.enabled ? await recordsWrite(s, sink.batch_size, sink.concurrency, progress) : null;
  return {
    scenario: o.scenario,
    server: s.label,
    events: { A: o.events, B: o.events },
    batchSize: o.batchSize,
    load: loaded,
    plainRead: plain,
    correlator: { ...run, cpu, outputs, outputsPerSecond: outputs / run.seconds, sinks, counters },
    check,
    clickhouse: s.clickhouseNote,
    ratio: run.docsPerSecond / plain.docsPerSecond,
    recordsWrite: write,
    ioRatio: write ? (plain.seconds + write.seconds) / run.seconds : null,
    ceiling: ceilingOf(plain, write, cpu),
  };
}

function ceilingOf(plain: Timed & { cpu: PhaseCpu }, write: (Timed & { cpu: PhaseCpu }) | null, drain: PhaseCpu): CorrelatorBenchReport['ceiling'] {
  if (write === null || plain.cpu.couchdb === null || write.cpu.couchdb === null) return null;
  const cores = availableParallelism();
  const serverCpu = plain.cpu.couchdb + write.cpu.couchdb;
  const [readMain, writeMain] = [plain.cpu['couchdb main thread'], write.cpu['couchdb main thread']];
  const mainThreadCpu = typeof readMain === 'number' && typeof writeMain === 'number' ? readMain + writeMain : null;
  const others = (drain.clickhouse ?? 0) + (drain.correlator ?? 0);
  const shortest = (spread: number) => Math.max(spread / cores, mainThreadCpu ?? 0);
  return { cores, serverCpu, mainThreadCpu, serverOnly: plain.seconds / shortest(serverCpu), withOthers: plain.seconds / shortest(serverCpu + others) };
}

/** What the sinks hold once quiet: the two must agree (ClickHouse counted as it stands: FINAL, deletions out). */
async function checkSinks(s: Server): Promise<CorrelatorBenchReport['check']> {
  const config = s.config;
  const admin = { authorization: basicAuth(config.couchdb.admin.user, config.couchdb.admin.password!) };
  const info = await s.http.request<{ doc_count: number }>('GET', `/${s.dbs.out}`, { headers: admin });
  const ddocs = await s.http.request<{ rows: unknown[] }>('GET', `/${s.dbs.out}/_all_docs?startkey=%22_design%2F%22&endkey=%22_design0%22`, { headers: admin });
  const couchdb = config.correlator.outputs.couchdb.enabled ? info.body.doc_count - ddocs.body.rows.length : null;
  const expected = couchdb ?? NaN;
  if (s.clickhouseUrl === null) return { couchdb, clickhouseFinal: null, clickhouseRaw: null, expected };
  const table = `${config.clickhouse.database}.${config.clickhouse.table}`;
  return {
    couchdb,
    clickhouseFinal: Number(await clickhouseQuery(s, `SELECT count() FROM ${table} FINAL WHERE deleted = 0`)),
    clickhouseRaw: Number(await clickhouseQuery(s, `SELECT count() FROM ${table}`)),
    expected,
  };
}

export function formatReport(r: CorrelatorBenchReport): string {
  const row = (name: string, t: Timed) =>
    `  ${name.padEnd(28)} ${t.docs.toString().padStart(8)} docs in ${t.seconds.toFixed(1).padStart(6)} s = ${t.docsPerSecond.toFixed(0).padStart(7)} docs/s`;
  const k = r.correlator.counters;
  const cpu = (c: PhaseCpu) =>
    `      CPU seconds: ${Object.entries(c)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => `${k} ${v!.toFixed(1)}`)
      .join(', ')}`;
  const ok = (n: number | null) => (n === null ? 'not run' : `${n}${n === r.check.expected ? '' : ` (log_correlated has ${r.check.expected})`}`);
  const late = r.scenario === 'late-side';
  return [
    `scenario: ${late ? 'late side — the B backlog drained first, then the A backlog of the same connections posted an hour late' : 'in order — both backlogs, then the drain'}`,
    `CouchDB: ${r.server}`,
    `backlog: ${r.events.A} A + ${r.events.B} B documents; pages of ${r.batchSize}; ClickHouse: ${r.clickhouse}`,
    row(late ? 'loading B (_bulk_docs)' : 'loading (_bulk_docs)', r.load),
    row(late ? '(i) plain _changes read of A' : '(i) plain _changes read', r.plainRead),
    cpu(r.plainRead.cpu),
    row(`(ii) correlator${late ? ' (late A)' : ''} -> ${r.correlator.sinks.join(' + ')}`, r.correlator),
    cpu(r.correlator.cpu),
    `  decisions: ${k.correlated} correlated, ${k.orphans.A} orphan A, ${k.orphans.B} orphan B (first revisions); ${k.corrections} corrections; late ${k.late.A + k.late.B}; ${k.lookups} lookups; ${k.evictions.A + k.evictions.B} evictions`,
    `  records as they stand: log_correlated ${r.check.couchdb ?? 'not run'}; ClickHouse FINAL WHERE deleted = 0 ${ok(r.check.clickhouseFinal)}${r.check.clickhouseRaw !== null ? `, without FINAL ${r.check.clickhouseRaw}` : ''}`,
    ...(r.recordsWrite
      ? [
          row('(iii) the records, _bulk_docs', r.recordsWrite),
          cpu(r.recordsWrite.cpu),
          `  (i) then (iii), one after the other, vs the correlator: ${r.ioRatio!.toFixed(2)}  (the reads and writes it cannot avoid)`,
          ...(r.ceiling
            ? [
                `  ceiling: CouchDB needs ${r.ceiling.serverCpu.toFixed(1)} CPU-s for (i) + (iii)` +
                  (r.ceiling.mainThreadCpu === null ? '' : `, ${r.ceiling.mainThreadCpu.toFixed(1)} of them on its one JavaScript thread`) +
                  `; on ${r.ceiling.cores} cores the ratio is at most ${r.ceiling.serverOnly.toFixed(2)}` +
                  ` (${r.ceiling.withOthers.toFixed(2)} with the CPU ClickHouse and the correlator used in (ii))`,
              ]
            : []),
        ]
      : []),
    `  ratio correlator/plain read: ${r.ratio.toFixed(2)}  (target >= ${TARGET_RATIO})`,
    ...(r.backfill
      ? [
          row('(iv) plain read of log_correlated', r.backfill.plainRead),
          row('(iv) couchlog backfill', r.backfill.run),
          `  ratio backfill/plain read: ${r.backfill.ratio.toFixed(2)}; ClickHouse FINAL rows ${r.backfill.rows.before} before emptying, ${r.backfill.rows.after} after the backfill${r.backfill.rows.after === r.backfill.rows.before ? '' : '  (DIFFERENT)'}`,
        ]
      : []),
  ].join('\n');
}
