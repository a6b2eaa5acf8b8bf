// Reading what the correlator wrote, for tests that compare two runs:
// CouchDB documents by id (without _rev), ClickHouse rows by id, posting
// generated traffic, Prometheus text as numbers, and polling helpers.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, http, JSON_TYPE, startStack, type Stack, storedStatus } from './stack.js';
import { startClickhouse, type TestClickhouse } from './clickhouse.js';
import { adminClient } from '../../lib/couch/admin-client.js';
import { ensureCorrelatorDatabases } from '../../setup/ensure-correlator-dbs.js';
import { ensureClickhouse } from '../../correlator/sinks/clickhouse/ensure-table.js';
import { connect } from '../../correlator/sinks/clickhouse/clickhouse-delivery.js';
import type { RunningCorrelator } from '../../correlator/service.js';

export type Doc = Record<string, unknown>;

/**
 * A correlator that decides fast and remembers little: short delays and
 * window, and a cache of 8 events per side, so late partners are found
 * through the lookup view, as they would be after a long delay.
 */
export const SMALL_CACHE_CORRELATOR = {
  reorder_slack_ms: 200,
  orphan_policy: { apache_emit_delay_ms: 300, network_emit: true },
  time_window: { value: 5, unit: 's' },
  ttl: { network_ttl_s: 20 },
  buffers: { max_http_items: 8, max_network_items: 8 },
  inputs: { poll_interval_ms: 50, batch_size: 50 },
};

/**
 * What the correlator's integration tests start from: a ClickHouse of their
 * own, and a stack whose correlator section is `correlator` with its
 * metrics on a free port.
 */
export async function startCorrelatorStack(correlator: Record<string, unknown>): Promise<{ ch: TestClickhouse; stack: Stack; metricsUrl: string }> {
  const ch = await startClickhouse();
  try {
    const metricsPort = await freePort();
    const stack = await startStack({ yaml: { clickhouse: { enabled: true, url: ch.url }, correlator: { ...correlator, metrics: { port: metricsPort } } } });
    return { ch, stack, metricsUrl: `http://127.0.0.1:${metricsPort}` };
  } catch (err) {
    await ch.stop();
    throw err;
  }
}

/**
 * A small-cache correlator with every sink (CouchDB, ClickHouse, the file
 * sink in correlated.jsonl: see fileLatest) flushing every 50 ms: the
 * stack of the tests that follow one record through corrections.
 */
export async function startCorrelatorWithFileSink(): Promise<{ ch: TestClickhouse; stack: Stack; metricsUrl: string }> {
  return startCorrelatorStack({
    ...SMALL_CACHE_CORRELATOR,
    outputs: { clickhouse: { flush_interval_ms: 50 }, couchdb: { flush_interval_ms: 50 }, file: { enabled: true, path: 'correlated.jsonl' } },
    checkpoint_interval_ms: 200,
  });
}

/** The file sink's latest line per id (startCorrelatorWithFileSink's file). */
export function fileLatest(stack: Stack): Map<string, Doc> {
  const out = new Map<string, Doc>();
  for (const line of readFileSync(join(stack.dataDir, 'correlated.jsonl'), 'utf8').split('\n'))
    if (line) out.set((JSON.parse(line) as Doc).id as string, JSON.parse(line) as Doc);
  return out;
}

/** A second pair of outputs (log_<app> with its report views, couchlog.<table>) for a run to compare with the main one. */
export async function addOutputs(stack: Stack, ch: TestClickhouse, app: string, table: string): Promise<void> {
  await ensureCorrelatorDatabases(adminClient(stack.config), app);
  const client = connect({ url: ch.url, user: 'default', password: '', database: 'couchlog', table: 'http_logs', timeoutMs: 10_000 });
  try {
    await ensureClickhouse(client, 'couchlog', table);
  } finally {
    await client.close();
  }
}

/** Every non-design document of a database, id -> document without _id/_rev (and, with `content`, without the bookkeeping revision/decided_at). */
export async function couchDocs(stack: Stack, db: string, content = false): Promise<Map<string, Doc>> {
  const res = await http(`${stack.couchUrl}/${db}/_all_docs?include_docs=true`, { headers: { authorization: stack.auth.admin } });
  assert.equal(res.status, 200, `${db}/_all_docs: ${res.text.slice(0, 200)}`);
  const out = new Map<string, Doc>();
  for (const row of res.json.rows as Array<{ id: string; doc: Doc }>) {
    if (row.id.startsWith('_design/')) continue;
    const { _id, _rev, ...doc } = row.doc;
    if (content) {
      delete doc.revision;
      delete doc.decided_at;
    }
    out.set(row.id, doc);
  }
  return out;
}

/** Document count of a database (design documents included: compare like with like). */
export async function couchDocCount(stack: Stack, db: string): Promise<number> {
  const res = await http(`${stack.couchUrl}/${db}`, { headers: { authorization: stack.auth.admin } });
  assert.equal(res.status, 200, `${db}: ${res.text.slice(0, 200)}`);
  return res.json.doc_count as number;
}

/**
 * Rows of a ClickHouse table as they stand (FINAL, deletions left out), id ->
 * the row's JSON text: every column but the bookkeeping (revision,
 * decided_at, version), which say when a record was decided, not what it says.
 */
export async function clickhouseRows(ch: TestClickhouse, table: string): Promise<Map<string, string>> {
  const text = await ch.query(`SELECT * FROM couchlog.${table} FINAL WHERE deleted = 0 ORDER BY id FORMAT JSONEachRow`);
  const rows = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const { revision: _r, decided_at: _d, version: _v, ...row } = JSON.parse(line) as { id: string } & Record<string, unknown>;
    assert.ok(!rows.has(row.id), `FINAL shows id ${row.id} twice in ${table}`);
    rows.set(row.id, JSON.stringify(row));
  }
  return rows;
}

/** count() without FINAL, count() with FINAL, distinct ids. */
export async function clickhouseCounts(ch: TestClickhouse, table: string): Promise<{ raw: number; final: number; distinct: number }> {
  const one = async (sql: string) => Number((await ch.query(`${sql} FORMAT TSV`)).trim());
  return {
    raw: await one(`SELECT count() FROM couchlog.${table}`),
    final: await one(`SELECT count() FROM couchlog.${table} FINAL WHERE deleted = 0`),
    distinct: await one(`SELECT uniqExact(id) FROM couchlog.${table}`),
  };
}

/** POSTs documents through the ingress with _bulk_docs, in chunks; returns the ids in order. */
export async function postBulk(stack: Stack, app: string, docs: readonly Doc[], chunk = 1000): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < docs.length; i += chunk) {
    const res = await http(`${stack.url}/log_${app}/_bulk_docs`, {
      method: 'POST',
      headers: JSON_TYPE,
      body: JSON.stringify({ docs: docs.slice(i, i + chunk) }),
    });
    assert.equal(storedStatus(res.status), 201, res.text.slice(0, 300));
    for (const r of res.json as Array<{ id: string; ok?: boolean }>) {
      assert.equal(r.ok, true, JSON.stringify(r));
      ids.push(r.id);
    }
  }
  return ids;
}

/** Prometheus text -> `name{labels}` -> value. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** The sum of a metric over all its labels. */
export async function metricSum(url: string, name: string): Promise<number> {
  let sum = 0;
  for (const [k, v] of await metrics(url)) if (k === name || k.startsWith(`${name}{`)) sum += v;
  return sum;
}

export async function metrics(url: string): Promise<Map<string, number>> {
  const res = await http(`${url}/metrics`);
  assert.equal(res.status, 200);
  return parseMetrics(res.text);
}

/** Polls until `probe` returns something other than null, or fails with what it was waiting for. */
export async function until<T>(what: string, probe: () => Promise<T | null>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * Whether a correlator has, on its own account, nothing left to read,
 * decide, expire with the clock, send or save. A pause in its output proves
 * none of that on a slow cluster, where checkpoints are spaced by ten times
 * what saving one takes and a copy may deliver a change late.
 */
export function isQuiet(c: RunningCorrelator): boolean {
  const s = c.pipeline.status();
  const z = c.engine.sizes();
  const idle = s.A.caughtUp && s.B.caughtUp && c.engine.held === 0 && z.waiting === 0 && z.open === 0 && z.awaitingLookup === 0;
  return idle && c.pipeline.checkpointCurrent;
}

/**
 * Until sample() is ready and its key has not changed for stableMs. Fails
 * once nothing has changed for timeoutMs, or after five times that in all:
 * a slow machine that still makes progress (a loaded CI runner, a cluster
 * on two cores) gets the time it needs, a stuck one fails.
 */
export async function untilStable(what: string, sample: () => Promise<{ key: string; ready: boolean }>, stableMs: number, timeoutMs: number): Promise<string> {
  const start = Date.now();
  let last = '';
  let since = start;
  let changed = start;
  for (;;) {
    const { key, ready } = await sample();
    const now = Date.now();
    if (key !== last) changed = now;
    if (key !== last || !ready) {
      last = key;
      since = now;
    } else if (now - since >= stableMs) {
      return key;
    }
    if (now - changed > timeoutMs) throw new Error(`nothing changed for ${timeoutMs} ms while waiting for ${what} to settle (last: ${last}, ready: ${ready})`);
    if (now - start > 5 * timeoutMs) throw new Error(`timed out after ${5 * timeoutMs} ms waiting for ${what} to settle (last: ${last}, ready: ${ready})`);
    await sleep(150);
  }
}

/** How two id -> value maps differ: the number of differing ids and a few examples, for assertion messages. */
export function diffMaps<T>(left: Map<string, T>, right: Map<string, T>, same: (x: T, y: T) => boolean, max = 6): { count: number; examples: string[] } {
  const examples: string[] = [];
  let count = 0;
  const note = (text: string) => {
    count += 1;
    if (examples.length < max) examples.push(text);
  };
  for (const [id, v] of left) {
    const w = right.get(id);
    if (w === undefined) note(`only in the first: ${id} ${JSON.stringify(v)}`);
    else if (!same(v, w)) note(`differs: ${id}\n   first:  ${JSON.stringify(v)}\n   second: ${JSON.stringify(w)}`);
  }
  for (const [id, w] of right) if (!left.has(id)) note(`only in the second: ${id} ${JSON.stringify(w)}`);
  return { count, examples };
}
