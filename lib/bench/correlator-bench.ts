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
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig, ensureSecrets, type Config } from '../config/load.js';
import { basicAuth } from '../couch/basic-auth.js';
import { CouchHttp } from '../couch/http.js';
import { loggerOptions } from '../logger.js';
import { startEmbeddedCouch } from '../commands/couchdb.js';
import { EmbeddedClickhouse, findClickhouseServer } from '../embedded/clickhouse-server.js';
import { runSetup } from '../setup/run-setup.js';
import { startCorrelator } from '../../correlator/service.js';
import type { EngineCounters } from '../../correlator/engine/types.js';
import { freePort } from './free-port.js';
import { cpuMeter } from './process-cpu.js';
import { generateTraffic } from './correlator-traffic.js';

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
}

export interface Timed {
  docs: number;
  seconds: number;
  docsPerSecond: number;
}

/** CPU seconds each process used during a phase (null: not running or not measurable). */
export type PhaseCpu = Record<'couchdb' | 'clickhouse' | 'correlator', number | null>;

export interface CorrelatorBenchReport {
  events: { A: number; B: number };
  batchSize: number;
  load: Timed;
  plainRead: Timed & { cpu: PhaseCpu };
  correlator: Timed & { cpu: PhaseCpu; outputs: number; outputsPerSecond: number; sinks: string[]; counters: EngineCounters };
  /** What the sinks hold afterwards (null: sink not run). */
  check: { couchdb: number | null; clickhouseFinal: number | null; clickhouseRaw: number | null };
  clickhouse: string;
  ratio: number;
}

export const TARGET_RATIO = 0.5;

const timed = (docs: number, t0: bigint): Timed => {
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { docs, seconds, docsPerSecond: docs / seconds };
};

async function clickhouseQuery(url: string, sql: string): Promise<string> {
  const res = await fetch(`${url}/`, { method: 'POST', body: sql });
  const text = await res.text();
  if (!res.ok) throw new Error(`ClickHouse: ${text}`);
  return text.trim();
}

export async function benchCorrelator(o: CorrelatorBenchOptions, progress: (line: string) => void): Promise<CorrelatorBenchReport> {
  const dataDir = mkdtempSync(join(tmpdir(), 'couchlog-bench-correlator-'));
  const env = { COUCHLOG_DATA: dataDir, COUCHLOG_COUCHDB_PORT: String(await freePort()), COUCHLOG_LOG_LEVEL: 'info' };
  const { config } = loadConfig({ env, cwd: dataDir });
  ensureSecrets(config);
  // Logs are written (at info, as in production) but to /dev/null.
  const logger = pino(loggerOptions('info', 'bench'), pino.destination('/dev/null'));

  const binary = findClickhouseServer();
  let clickhouse: EmbeddedClickhouse | null = null;
  let clickhouseNote: string;
  if (!o.sinks.includes('clickhouse')) {
    config.clickhouse.enabled = false;
    clickhouseNote = 'not asked for (--sinks)';
  } else if (binary) {
    clickhouse = new EmbeddedClickhouse({ binary, dataDir, host: '127.0.0.1', httpPort: await freePort(), tcpPort: await freePort(), startTimeoutMs: 60_000, logger });
    config.clickhouse = { ...config.clickhouse, enabled: true, url: clickhouse.url };
    clickhouseNote = `${binary} (its own data folder and ports)`;
  } else {
    config.clickhouse.enabled = false;
    clickhouseNote = 'not installed (no clickhouse-server): the ClickHouse sink is SKIPPED, only log_correlated is written';
  }
  const c = config.correlator;
  c.inputs.batch_size = o.batchSize;
  c.metrics.enabled = false;
  c.outputs.couchdb.enabled = o.sinks.includes('couchdb');

  progress(`starting the embedded CouchDB${clickhouse ? ' and ClickHouse' : ''}...`);
  const couch = await startEmbeddedCouch(config, logger);
  const http = new CouchHttp(couch.url, { timeoutMs: 120_000, retryAfterS: 5 });
  try {
    if (clickhouse) await clickhouse.start();
    await runSetup(config);
    if (!clickhouse) progress(`ClickHouse ${clickhouseNote}`);

    progress(`generating ${o.events} A + ${o.events} B documents...`);
    // ~40 new connections per second of event time, ending an hour ago: a
    // backlog, with the buffers holding what the default window and TTL keep.
    const spanMs = Math.max(60_000, Math.round((o.events / 40) * 1000));
    const traffic = generateTraffic({ seed: o.seed, aCount: o.events, bCount: o.events, startMs: Date.now() - 3_600_000 - spanMs, spanMs });

    progress(`loading them with _bulk_docs of ${o.loadChunk}...`);
    const writer = { authorization: basicAuth(config.users.writer.user, config.users.writer.password!) };
    const t0 = process.hrtime.bigint();
    await Promise.all(
      (['http', 'network'] as const).map(async (app) => {
        const docs = app === 'http' ? traffic.a : traffic.b;
        for (let i = 0; i < docs.length; i += o.loadChunk) {
          const res = await http.request('POST', `/log_${app}/_bulk_docs`, { headers: writer, body: JSON.stringify({ docs: docs.slice(i, i + o.loadChunk) }) });
          if (res.status !== 201) throw new Error(`loading log_${app}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
        }
      }),
    );
    const load = timed(2 * o.events, t0);

    progress(`(i) plain read: _changes?include_docs=true of log_http and log_network, pages of ${o.batchSize}...`);
    const reader = { authorization: basicAuth(config.users.reader.user, config.users.reader.password!) };
    // The reader and the correlator run in this process.
    const pids = { couchdb: couch.pid ?? null, clickhouse: clickhouse?.pid ?? null, correlator: process.pid };
    const readCpu = cpuMeter(pids);
    const t1 = process.hrtime.bigint();
    let read = 0;
    for (const db of ['log_http', 'log_network']) {
      let since = '0';
      for (;;) {
        const qs = new URLSearchParams({ since, limit: String(o.batchSize), include_docs: 'true', feed: 'normal' });
        const res = await http.request<{ results: Array<{ id: string }>; last_seq: unknown }>('GET', `/${db}/_changes?${qs}`, { headers: reader });
        if (res.status !== 200) throw new Error(`_changes of ${db}: ${res.status}`);
        read += res.body.results.filter((r) => !r.id.startsWith('_design/')).length;
        since = typeof res.body.last_seq === 'string' ? res.body.last_seq : JSON.stringify(res.body.last_seq);
        if (res.body.results.length < o.batchSize) break;
      }
    }
    const plainRead = { ...timed(read, t1), cpu: readCpu() as PhaseCpu };
    if (read !== 2 * o.events) throw new Error(`the plain read saw ${read} documents, expected ${2 * o.events}`);

    progress('(ii) the correlator, from start until every output is acknowledged by every sink...');
    const runCpu = cpuMeter(pids);
    const t2 = process.hrtime.bigint();
    const running = await startCorrelator(config, logger, { clickhouse: clickhouse !== null });
    let counters: EngineCounters;
    let cpu: PhaseCpu;
    try {
      for (;;) {
        const e = running.engine;
        const s = e.sizes();
        if (e.counters.eventsIn.A === o.events && e.counters.eventsIn.B === o.events && s.waiting + s.open + s.awaitingLookup === 0 && running.pipeline.fanout.pending === 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      counters = structuredClone(running.engine.counters);
      cpu = runCpu() as PhaseCpu;
    } finally {
      await running.stop();
    }
    const outputs = counters.correlated + counters.orphans.A + counters.orphans.B;
    const run = timed(2 * o.events, t2);
    const correlator = { ...run, cpu: cpu!, outputs, outputsPerSecond: outputs / run.seconds, sinks: running.sinks.map((s) => s.name), counters };

    const check = await checkSinks(http, config, clickhouse?.url ?? null);
    return { events: { A: o.events, B: o.events }, batchSize: o.batchSize, load, plainRead, correlator, check, clickhouse: clickhouseNote, ratio: correlator.docsPerSecond / plainRead.docsPerSecond };
  } finally {
    await http.close();
    await clickhouse?.stop(3000);
    await couch.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function checkSinks(http: CouchHttp, config: Config, clickhouseUrl: string | null): Promise<CorrelatorBenchReport['check']> {
  const admin = { authorization: basicAuth(config.couchdb.admin.user, config.couchdb.admin.password!) };
  const db = `log_${config.correlator.outputs.couchdb.app}`;
  const info = await http.request<{ doc_count: number }>('GET', `/${db}`, { headers: admin });
  const ddocs = await http.request<{ rows: unknown[] }>('GET', `/${db}/_all_docs?startkey=%22_design%2F%22&endkey=%22_design0%22`, { headers: admin });
  const couchdb = config.correlator.outputs.couchdb.enabled ? info.body.doc_count - ddocs.body.rows.length : null;
  if (clickhouseUrl === null) return { couchdb, clickhouseFinal: null, clickhouseRaw: null };
  const table = `${config.clickhouse.database}.${config.clickhouse.table}`;
  return {
    couchdb,
    clickhouseFinal: Number(await clickhouseQuery(clickhouseUrl, `SELECT count() FROM ${table} FINAL`)),
    clickhouseRaw: Number(await clickhouseQuery(clickhouseUrl, `SELECT count() FROM ${table}`)),
  };
}

export function formatReport(r: CorrelatorBenchReport): string {
  const row = (name: string, t: Timed) => `  ${name.padEnd(28)} ${t.docs.toString().padStart(8)} docs in ${t.seconds.toFixed(1).padStart(6)} s = ${t.docsPerSecond.toFixed(0).padStart(7)} docs/s`;
  const k = r.correlator.counters;
  const cpu = (c: PhaseCpu) =>
    `      CPU seconds: ${Object.entries(c)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => `${k} ${v!.toFixed(1)}`)
      .join(', ')}`;
  const ok = (n: number | null) => (n === null ? 'not run' : `${n}${n === r.correlator.outputs ? ' (all)' : ` (EXPECTED ${r.correlator.outputs})`}`);
  return [
    `backlog: ${r.events.A} A + ${r.events.B} B documents; pages of ${r.batchSize}; ClickHouse: ${r.clickhouse}`,
    row('loading (_bulk_docs)', r.load),
    row('(i) plain _changes read', r.plainRead),
    cpu(r.plainRead.cpu),
    row(`(ii) correlator -> ${r.correlator.sinks.join(' + ')}`, r.correlator),
    cpu(r.correlator.cpu),
    `  outputs: ${r.correlator.outputs} (${k.correlated} correlated, ${k.orphans.A} orphan A, ${k.orphans.B} orphan B; late ${k.late.A + k.late.B}) = ${r.correlator.outputsPerSecond.toFixed(0)} records/s`,
    `  acknowledged: log_correlated ${ok(r.check.couchdb)}; ClickHouse FINAL ${ok(r.check.clickhouseFinal)}${r.check.clickhouseRaw !== null ? `, without FINAL ${r.check.clickhouseRaw}` : ''}`,
    `  ratio correlator/plain read: ${r.ratio.toFixed(2)}  (target >= ${TARGET_RATIO})`,
  ].join('\n');
}
