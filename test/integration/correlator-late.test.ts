// Late sides through the ingress, with a running correlator, real servers:
//  - B documents of connections made an hour ago, then a few seconds later
//    the A documents of the same connections: every A is correlated;
//  - A documents first (provisional orphans), their B half an hour late: the
//    orphans are corrected under the same ids, revision 2, in CouchDB, in
//    ClickHouse (FINAL) and in the file sink (latest line per id);
//  - then seeded random schedules of generated traffic (batches, one side
//    late, a correlator restart in between): once quiet, log_correlated and
//    ClickHouse hold exactly the reference (a replay of every stored
//    document in event order), record for record.
// The memory cache is tiny here, so partners are found through the
// `_design/correlator` lookup view, as they would be after a long delay.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { http, JSON_TYPE, onEveryCopyWrite, type Stack, storedStatus } from '../helpers/stack.js';
import type { TestClickhouse } from '../helpers/clickhouse.js';
import { fileLatest, isQuiet, metricSum, startCorrelatorWithFileSink } from '../helpers/correlator-outputs.js';
import { startCorrelator, type RunningCorrelator } from '../../correlator/service.js';
import { engineConfig } from '../../correlator/engine-config.js';
import { createLogger } from '../../lib/logger.js';
import { generateTraffic } from '../../bench/traffic.js';
import { mulberry32 } from '../../bench/prng.js';
import { firstDifference, referenceResult, type StoredDoc } from '../helpers/arrival-schedule.js';

const HOUR = 3_600_000;
let ch: TestClickhouse;
let stack: Stack;
let correlator: RunningCorrelator;
let metricsUrl: string;
const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

before(async () => {
  ({ ch, stack, metricsUrl } = await startCorrelatorWithFileSink());
  correlator = await startCorrelator(stack.config, log, { clickhouse: true });
  // Both feeds read once and idle: the watermark follows the clock, so an hour-old document is late.
  await until(
    'the correlator to be idle',
    async () => {
      const s = correlator.pipeline.status();
      return s.A.caughtUp && s.B.caughtUp && Number.isFinite(correlator.engine.watermark) ? true : null;
    },
    20_000,
  );
});
after(async () => {
  await correlator?.stop();
  await stack?.stop();
  await ch?.stop();
});

type Doc = Record<string, unknown>;

async function post(app: string, docs: Doc[]): Promise<string[]> {
  const res = await http(`${stack.url}/log_${app}/_bulk_docs`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ docs }) });
  assert.equal(storedStatus(res.status), 201, res.text);
  return res.json.map((r: { id: string }) => r.id);
}

async function allDocs(db: string): Promise<Map<string, Doc>> {
  const res = await http(`${stack.couchUrl}/${db}/_all_docs?include_docs=true`, { headers: { authorization: stack.auth.admin } });
  assert.equal(res.status, 200, res.text.slice(0, 200));
  const out = new Map<string, Doc>();
  for (const row of res.json.rows as Array<{ id: string; doc: Doc }>) if (!row.id.startsWith('_design/')) out.set(row.id, row.doc);
  return out;
}

async function until<T>(what: string, probe: () => Promise<T | null>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v !== null) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(200);
  }
}

const conn = (port: number, t: number, extra: Doc = {}) => ({ src_ip: '198.51.100.77', src_port: port, dst_ip: '192.168.1.10', ...extra, timestamp: t });
const aDoc = (port: number, t: number) => conn(port, t, { dst_port: 8080, method: 'GET', host: 'late.example', path: `/p${port}` });
const bDoc = (port: number, t: number) =>
  conn(port, t, { dst_port: 443, ja4: 't13d1516h2_8daaf6152771_b0da82dd1658', tls_sni: 'late.example', conn_id: `c${port}` });

/** ClickHouse rows as they stand (latest version per id, deletions out), id -> row. */
async function clickhouseCurrent(): Promise<Map<string, Doc>> {
  const text = await ch.query('SELECT * FROM couchlog.http_logs_current FORMAT JSONEachRow');
  const out = new Map<string, Doc>();
  for (const line of text.split('\n')) if (line) out.set((JSON.parse(line) as Doc).id as string, JSON.parse(line) as Doc);
  return out;
}

const metric = (name: string) => metricSum(metricsUrl, name);

describe('a side that arrives late is correlated as if it had come on time', () => {
  test('B an hour old posted, A posted seconds later: every A correlated, the provisional orphan Bs deleted everywhere', async () => {
    const t0 = Date.now() - HOUR;
    const ports = Array.from({ length: 20 }, (_, i) => 41_000 + i);
    const bIds = await post(
      'network',
      ports.map((p, i) => bDoc(p, t0 + i * 1000)),
    );
    // The Bs are decided first (provisional orphan Bs, network_emit is on)...
    await until('the provisional orphan Bs', async () => {
      const docs = await allDocs('log_correlated');
      return bIds.every((id) => docs.get(`B-${id}`)?.orphan_side === 'B') ? true : null;
    });
    await sleep(2000);
    const aIds = await post(
      'http',
      ports.map((p, i) => aDoc(p, t0 + i * 1000 + 40)),
    );
    const docs = await until('every A correlated', async () => {
      const d = await allDocs('log_correlated');
      return aIds.every((id) => d.get(`A-${id}`)?.correlated === true) && bIds.every((id) => !d.has(`B-${id}`)) ? d : null;
    });
    aIds.forEach((id, i) => {
      const r = docs.get(`A-${id}`)!;
      assert.equal(r.b_id, bIds[i]);
      assert.equal(r.keepalives, 1);
      assert.equal(r.ja4, 't13d1516h2_8daaf6152771_b0da82dd1658');
      assert.equal(typeof r.decided_at, 'string');
    });
    const rows = await until('ClickHouse to agree', async () => {
      const r = await clickhouseCurrent();
      return aIds.every((id) => r.get(`A-${id}`)?.correlated === 1) && bIds.every((id) => !r.has(`B-${id}`)) ? r : null;
    });
    assert.equal(rows.get(`A-${aIds[0]}`)!.ja4, 't13d1516h2_8daaf6152771_b0da82dd1658');
    const file = fileLatest(stack);
    for (const id of aIds) assert.equal(file.get(`A-${id}`)?.correlated, true, `file sink, A-${id}`);
    for (const id of bIds) assert.equal(file.get(`B-${id}`)?.deleted, true, `file sink, B-${id} deleted`);
    assert.ok((await metric('couchlog_correlator_late_events_total')) >= 40, `late events: ${await metric('couchlog_correlator_late_events_total')}`);
    assert.ok((await metric('couchlog_correlator_lookups_total')) > 0, 'a cache of 8 events: partners came through lookups');
    assert.ok((await metric('couchlog_correlator_corrections_total')) >= 20, `corrections: ${await metric('couchlog_correlator_corrections_total')}`);
  });

  test('A first, B half an hour late: the provisional orphans are corrected to revision 2 in every sink', async () => {
    const t0 = Date.now() - HOUR / 2;
    const ports = Array.from({ length: 12 }, (_, i) => 42_000 + i);
    const aIds = await post(
      'http',
      ports.map((p, i) => aDoc(p, t0 + i * 500)),
    );
    await until('provisional orphans, revision 1', async () => {
      const d = await allDocs('log_correlated');
      return aIds.every((id) => d.get(`A-${id}`)?.correlated === false && d.get(`A-${id}`)?.revision === 1) ? true : null;
    });
    const bIds = await post(
      'network',
      ports.map((p, i) => bDoc(p, t0 + i * 500 - 20)),
    );
    const docs = await until('the corrections in CouchDB', async () => {
      const d = await allDocs('log_correlated');
      return aIds.every((id) => d.get(`A-${id}`)?.correlated === true) ? d : null;
    });
    aIds.forEach((id, i) => {
      const r = docs.get(`A-${id}`)!;
      assert.equal(r.revision, 2, `A-${id}`);
      assert.equal(r.b_id, bIds[i]);
      assert.equal(r.orphan_side, '');
    });
    await until('the corrections in ClickHouse (FINAL)', async () => {
      const text = await ch.query(
        `SELECT id, correlated, revision, deleted FROM couchlog.http_logs FINAL WHERE id IN (${aIds.map((id) => `'A-${id}'`).join(',')}) FORMAT JSONEachRow`,
      );
      const rows = text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Doc);
      return rows.length === aIds.length && rows.every((r) => r.correlated === 1 && r.revision === 2 && r.deleted === 0) ? true : null;
    });
    // Both revisions are in the table; FINAL keeps the later.
    const raw = await ch.query(`SELECT count() FROM couchlog.http_logs WHERE id = 'A-${aIds[0]}'`);
    assert.ok(Number(raw.trim()) >= 1);
    const file = fileLatest(stack);
    for (const id of aIds) assert.deepEqual([file.get(`A-${id}`)?.correlated, file.get(`A-${id}`)?.revision], [true, 2], `file sink, A-${id}`);
  });

  test('idle feeds do not rewrite the checkpoint, and report themselves caught up all along', async () => {
    const checkpoint = async () =>
      (await http(`${stack.couchUrl}/couchlog_state_correlated/_local/correlator`, { headers: { authorization: stack.auth.admin } })).json as Doc;
    type Feeds = Record<string, { since: string; next_index: number; witness?: unknown }>;
    const positions = (cp: Doc) => Object.entries(cp.feeds as Feeds).map(([side, f]) => [side, f.since, f.next_index]);
    // Quiet, on the correlator's own account: nothing waits to be read, decided
    // (nor to expire with the clock), sent or saved. A checkpoint that merely
    // stopped moving for a while proves nothing on a slow cluster, where
    // checkpoints are spaced by ten times what saving one takes.
    await until('the correlator to be quiet', async () => (isQuiet(correlator) ? true : null));
    // /health's feeds once flapped to "not caught up" at every idle poll: sampled every 10 ms, they never do.
    const caughtUp = async (ms: number) => {
      for (const end = Date.now() + ms; Date.now() < end; await sleep(10)) {
        const s = correlator.pipeline.status();
        assert.ok(s.A.caughtUp && s.B.caughtUp, 'an idle feed reported not caught up');
      }
    };
    let before = await checkpoint();
    await caughtUp(2500); // checkpoint_interval_ms is 200: a dozen chances to rewrite it
    let after = await checkpoint();
    if (after._rev !== before._rev) {
      // The position check (every 30 s) fell in the window and adopted the last page's witness,
      // which is saved once: the positions and the engine's state are the same. Then nothing more.
      assert.deepEqual([positions(after), after.state_gzip], [positions(before), before.state_gzip]);
      assert.notDeepEqual(after.feeds, before.feeds, 'rewritten with nothing changed');
      await until('the correlator to be quiet', async () => (isQuiet(correlator) ? true : null));
      before = await checkpoint();
      await caughtUp(2500);
      after = await checkpoint();
    }
    assert.equal(after._rev, before._rev);
  });

  test('pauseReading: once it has resolved nothing more is read or decided, until reading resumes', async () => {
    const t = Date.now() - 30_000;
    const batch = (n: number) =>
      Array.from({ length: 10 }, (_, i) => ({
        src_ip: '198.51.100.77',
        src_port: 30_000 + n * 10 + i,
        dst_ip: '192.0.2.1',
        dst_port: 80,
        method: 'GET',
        path: '/',
        timestamp: t + i,
      }));
    const base = correlator.engine.counters.eventsIn.A;
    await post('http', batch(0));
    // Paused while the next batch is posted: a page already asked for may still be decided, before it resolves.
    const [, ids] = await Promise.all([correlator.pipeline.pauseReading(), post('http', batch(1))]);
    try {
      const frozen = correlator.engine.counters.eventsIn.A;
      await post('http', batch(2));
      await sleep(1000); // poll_interval_ms is 50
      assert.equal(correlator.engine.counters.eventsIn.A, frozen, 'read while paused');
    } finally {
      correlator.pipeline.paused = false;
    }
    await until('every document read', async () => (correlator.engine.counters.eventsIn.A === base + 30 ? true : null), 30_000);
    assert.equal(ids.length, 10);
  });

  test('readers and the ingress writer cannot change correlated records', async () => {
    const [id] = [...(await allDocs('log_correlated')).keys()];
    // By id (a quorum read), before and after: a listing answers from one copy, which may hold an older revision.
    const byId = async () =>
      (await http(`${stack.couchUrl}/log_correlated/${encodeURIComponent(id!)}`, { headers: { authorization: stack.auth.admin } })).json as Doc;
    const doc = await byId();
    const body = JSON.stringify({ ...doc, correlated: false });
    for (const who of ['reader', 'writer'] as const) {
      const put = () =>
        http(`${stack.couchUrl}/log_correlated/${encodeURIComponent(id!)}`, { method: 'PUT', headers: { ...JSON_TYPE, authorization: stack.auth[who] }, body });
      const res = await onEveryCopyWrite(put, (r) => r.status === 409);
      assert.ok(res.status === 403 || res.status === 401, `${who}: ${res.status} ${res.text}`);
    }
    assert.deepEqual(await byId(), doc);
  });
});

describe('seeded schedules through the ingress equal the reference', () => {
  /** Every document the schedules posted, by id. */
  const scheduled = new Set<string>();

  /** Generated traffic an hour ago, posted in random batches, one side late, the correlator restarted once. */
  async function runSchedule(seed: number, longConnections?: { count: number; requests: number }): Promise<void> {
    const rnd = mulberry32(seed);
    const start = Date.now() - HOUR - Math.floor(rnd() * HOUR);
    const t = generateTraffic({ seed, aCount: 120, bCount: 80, startMs: start, spanMs: 30_000, ...(longConnections && { longConnections }) });
    const late = rnd() < 0.5 ? 'http' : 'network';
    const batches = (docs: Doc[]) => {
      const out: Doc[][] = [];
      for (let i = 0; i < docs.length;) {
        const n = 1 + Math.floor(rnd() * 40);
        out.push(docs.slice(i, i + n));
        i += n;
      }
      return out;
    };
    const early = late === 'http' ? batches(t.b) : batches(t.a);
    const lateBatches = late === 'http' ? batches(t.a) : batches(t.b);
    const earlyApp = late === 'http' ? 'network' : 'http';
    for (const b of early) for (const id of await post(earlyApp, b)) scheduled.add(id);
    await sleep(300 + Math.floor(rnd() * 1500));
    const restartAfter = Math.floor(rnd() * lateBatches.length);
    for (let i = 0; i < lateBatches.length; i++) {
      for (const id of await post(late, lateBatches[i]!)) scheduled.add(id);
      if (i === restartAfter) {
        await correlator.stop();
        correlator = await startCorrelator(stack.config, log, { clickhouse: true });
      }
    }
  }

  test('4 seeds, both sides settled: log_correlated and ClickHouse hold the reference record for record', async () => {
    for (const seed of [11, 12, 13]) await runSchedule(seed);
    // Two connections of 40 requests (a proxy's upstream): with a cache of 8 they are folded every 2 steps, and the restart continues from the folded state.
    await runSchedule(14, { count: 2, requests: 40 });
    const cfg = engineConfig(stack.config.correlator);
    const stored = async (): Promise<StoredDoc[]> => {
      const out: StoredDoc[] = [];
      for (const [side, db] of [
        ['A', 'log_http'],
        ['B', 'log_network'],
      ] as const) {
        for (const [id, doc] of await allDocs(db)) {
          const { _id, _rev, ...rest } = doc;
          out.push({ side, id, doc: rest });
        }
      }
      return out;
    };
    const strip = (d: Doc) => {
      const { _id, _rev, revision, decided_at, ...rest } = d;
      return JSON.stringify(rest);
    };
    // The inputs are read again with every try, like the records: on a
    // cluster, _all_docs answers from one copy of each shard range, which
    // may not hold the latest documents yet (a reference computed once
    // from such a read missed 20 A documents).
    let want = new Map<string, string>();
    await until(
      'log_correlated to equal the reference',
      async () => {
        const inputs = await stored();
        // A read without the last documents could equal outputs that lack them too: only a complete one counts.
        const read = new Set(inputs.map((d) => d.id));
        if ([...scheduled].some((id) => !read.has(id))) return null;
        want = referenceResult(cfg, inputs);
        const got = new Map([...(await allDocs('log_correlated'))].map(([id, d]) => [id, strip(d)]));
        const diff = firstDifference(want, got);
        if (diff) throw new Error(diff.slice(0, 600));
        return true;
      },
      90_000,
    );
    await until(
      'ClickHouse to hold the same ids',
      async () => {
        const rows = await clickhouseCurrent();
        const missing = [...want.keys()].filter((id) => !rows.has(id));
        const extra = [...rows.keys()].filter((id) => !want.has(id));
        if (missing.length || extra.length) throw new Error(`missing ${missing.slice(0, 3)} extra ${extra.slice(0, 3)}`);
        for (const [id, w] of want) {
          const r = rows.get(id)!;
          const rec = JSON.parse(w) as Doc;
          if (r.correlated !== (rec.correlated ? 1 : 0) || r.keepalives !== rec.keepalives || r.b_id !== (rec.b_id ?? ''))
            throw new Error(`${id}: ${JSON.stringify(r).slice(0, 300)} vs ${w.slice(0, 300)}`);
        }
        return true;
      },
      60_000,
    );
  });
});

// Last in this file: the pair dated ahead stays held (its time has not come),
// which a reference replay to the end would decide.
describe('a document dated days ahead', () => {
  test('does not drag the watermark: documents posted after it, two hours old, are still exact', async () => {
    const DAY = 24 * HOUR;
    const future = Date.now() + 3 * DAY;
    // A sender's clock three days ahead, or a hostile anonymous POST.
    const ahead = (extra: Doc) => ({ src_ip: '203.0.113.250', src_port: 1111, dst_ip: '192.168.1.10', timestamp: future, ...extra });
    await post('network', [ahead({ ja4: 'future' })]);
    await post('http', [ahead({ timestamp: future + 10, method: 'GET', path: '/future' })]);
    await until('the correlator to read the pair', async () => ((await metric('couchlog_correlator_future_events_total')) >= 2 ? true : null));
    assert.ok(correlator.engine.watermark <= Date.now() + 6 * 60_000, `watermark ${new Date(correlator.engine.watermark).toISOString()}`);
    const tooLate = await metric('couchlog_correlator_too_late_total');
    const t0 = Date.now() - 2 * HOUR;
    const ports = Array.from({ length: 6 }, (_, i) => 43_000 + i);
    const bIds = await post(
      'network',
      ports.map((p, i) => bDoc(p, t0 + i * 1000)),
    );
    const aIds = await post(
      'http',
      ports.map((p, i) => aDoc(p, t0 + i * 1000 + 40)),
    );
    await until('every A correlated', async () => {
      const d = await allDocs('log_correlated');
      return aIds.every((id, i) => d.get(`A-${id}`)?.correlated === true && d.get(`A-${id}`)?.b_id === bIds[i]) ? true : null;
    });
    assert.equal(await metric('couchlog_correlator_too_late_total'), tooLate, 'nothing decided as too late');
  });
});
