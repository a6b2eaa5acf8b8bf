// ClickHouse outage under live load (issue 6): the test's ClickHouse server
// is stopped for a few seconds while A/B documents keep arriving, then
// started again on the same data folder and ports. Nothing may be lost,
// nothing may be visible twice (FINAL), /health must have said 503 while
// the sink was failing past its threshold, /metrics must show the retries,
// and with a small max_buffer_size and drop_on_overflow: false the feeds
// must have stopped being read (backpressure) rather than anything dropped.
// A second correlator with drop_on_overflow: true shows drops are counted,
// and that exactly the dropped records are missing from ClickHouse.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, http, settled, startStack, type Stack } from '../helpers/stack.js';
import { startClickhouse, type TestClickhouse } from '../helpers/clickhouse.js';
import { addOutputs, clickhouseCounts, clickhouseRows, couchDocs, metrics, postBulk, until, untilStable, type Doc } from '../helpers/correlator-outputs.js';
import { mulberry32 } from '../../bench/traffic.js';
import type { Config } from '../../lib/config/load.js';
import { createLogger } from '../../lib/logger.js';
import { startCorrelator, type RunningCorrelator } from '../../correlator/service.js';

let ch: TestClickhouse;
let stack: Stack;
const running: RunningCorrelator[] = [];
const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

before(async () => {
  ch = await startClickhouse();
  stack = await startStack({ yaml: { clickhouse: { enabled: true, url: ch.url } } });
  await addOutputs(stack, ch, 'correlated_drop', 'http_logs_drop');
});
after(async () => {
  for (const r of running) await r.stop().catch(() => undefined);
  await stack?.stop();
  // ClickHouse 18.16 goes on serving for seconds after SIGTERM, and its data is thrown away: no need to wait.
  await ch?.server.stop(1000);
  await ch?.stop();
});

/**
 * A correlator of its own documents (`run` field), with short windows so
 * live orphans come out within seconds, and a small ClickHouse buffer.
 */
async function correlatorFor(
  run: string,
  out: { app: string; table: string },
  clickhouse: { maxBuffer: number; dropOnOverflow: boolean },
): Promise<{ c: RunningCorrelator; url: string }> {
  const config: Config = structuredClone(stack.config);
  const port = await freePort();
  const c = config.correlator;
  c.inputs.http.where = { field: 'run', equals: run };
  c.inputs.network.where = { field: 'run', equals: run };
  c.inputs.batch_size = 20;
  c.inputs.poll_interval_ms = 50;
  c.reorder_slack_ms = 1000;
  c.time_window = { value: 2, unit: 's' };
  c.ttl.network_ttl_s = 5;
  c.orphan_policy = { apache_always_emit: true, apache_emit_delay_ms: 300, network_emit: true };
  Object.assign(c.outputs.clickhouse, {
    batch_size: 20,
    flush_interval_ms: 50,
    max_buffer_size: clickhouse.maxBuffer,
    drop_on_overflow: clickhouse.dropOnOverflow,
    retry_initial_ms: 50,
    retry_max_ms: 400,
    timeout_ms: 2000,
  });
  Object.assign(c.outputs.couchdb, { app: out.app, flush_interval_ms: 50 });
  c.checkpoint_interval_ms = 200;
  c.metrics = { ...c.metrics, port, sink_failing_threshold_ms: 500 };
  config.clickhouse.table = out.table;
  const r = await startCorrelator(config, logger, { clickhouse: true });
  running.push(r);
  return { c: r, url: `http://127.0.0.1:${port}` };
}

/** Live traffic: connections (B, then its A a few ms later), Keep-Alive requests, orphans of both sides. */
class LiveTraffic {
  private readonly rnd: () => number;
  private port = 1024;
  private readonly recent: Array<{ ip: string; port: number; at: number }> = [];
  readonly aIds: string[] = [];
  /** Expected per A id: correlated or not, and its keepalives. */
  readonly expectA = new Map<string, { correlated: boolean; keepalives: number }>();
  orphanB = 0;
  private readonly keepalives = new Map<string, number>();

  constructor(
    private readonly run: string,
    seed: number,
  ) {
    this.rnd = mulberry32(seed);
  }

  /** One tick: `pairs` new connections and some Keep-Alive and orphan traffic, timestamped now. */
  async tick(pairs: number): Promise<void> {
    const now = Date.now();
    const a: Array<[Doc, { correlated: boolean; keepalives: number }]> = [];
    const b: Doc[] = [];
    const ip = `198.51.100.${1 + Math.floor(this.rnd() * 250)}`;
    const base = (src_ip: string, src_port: number, t: number) => ({ run: this.run, src_ip, src_port, dst_ip: '192.168.1.10', timestamp: t });
    for (let i = 0; i < pairs; i++) {
      const port = this.port++;
      const key = `${ip}:${port}`;
      b.push({ ...base(ip, port, now - 5), dst_port: 443, ja4: 't13d1516h2_8daaf6152771_b0da82dd1658', tls_sni: 'www.example.com' });
      a.push([
        { ...base(ip, port, now), dst_port: 8080, method: 'GET', host: 'www.example.com', path: `/p/${port}` },
        { correlated: true, keepalives: 1 },
      ]);
      this.keepalives.set(key, 1);
      this.recent.push({ ip, port, at: now });
    }
    // A Keep-Alive request on a connection opened within the last second (well within the TTL).
    const alive = this.recent.filter((r) => now - r.at < 1000 && r.at < now);
    if (alive.length > 0 && this.rnd() < 0.5) {
      const r = alive[Math.floor(this.rnd() * alive.length)]!;
      const key = `${r.ip}:${r.port}`;
      const n = this.keepalives.get(key)! + 1;
      this.keepalives.set(key, n);
      a.push([
        { ...base(r.ip, r.port, now), dst_port: 8080, method: 'GET', host: 'www.example.com', path: `/again/${n}` },
        { correlated: true, keepalives: n },
      ]);
    }
    if (this.rnd() < 0.3) {
      const port = this.port++;
      a.push([
        { ...base('203.0.113.9', port, now), dst_port: 8080, method: 'GET', host: 'www.example.com', path: '/orphan' },
        { correlated: false, keepalives: 0 },
      ]);
    }
    if (this.rnd() < 0.3) {
      const port = this.port++;
      b.push({ ...base('203.0.113.10', port, now - 5), dst_port: 443, ja4: 'orphan' });
      this.orphanB += 1;
    }
    while (this.recent.length > 0 && now - this.recent[0]!.at > 2000) this.recent.shift();
    // B first, as a TLS terminator logs the handshake before the request.
    await postBulk(stack, 'network', b);
    const ids = await postBulk(
      stack,
      'http',
      a.map(([doc]) => doc),
    );
    ids.forEach((id, i) => {
      this.aIds.push(id);
      this.expectA.set(id, a[i]![1]);
    });
  }

  get expectedRecords(): number {
    return this.aIds.length + this.orphanB;
  }
}

interface HealthSample {
  status: number;
  full: boolean;
  backlog: number;
  unhealthy: boolean;
}

/** Samples /health every 100 ms until stopped. */
function watchHealth(url: string): { samples: HealthSample[]; stop: () => Promise<void> } {
  const samples: HealthSample[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const res = await http(`${url}/health`);
        const s = res.json.sinks.clickhouse;
        samples.push({ status: res.status, full: s.full, backlog: s.backlog, unhealthy: s.unhealthy });
      } catch {
        samples.push({ status: 0, full: false, backlog: 0, unhealthy: false });
      }
      await sleep(100);
    }
  })();
  return {
    samples,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

describe('ClickHouse stopped under load, then started again', () => {
  const traffic = new LiveTraffic('outage', 61);
  let url: string;
  let samples: HealthSample[] = [];
  let duringOutage: HealthSample[] = [];

  before(async () => {
    ({ url } = await correlatorFor('outage', { app: 'correlated', table: 'http_logs' }, { maxBuffer: 50, dropOnOverflow: false }));
    const health = watchHealth(url);
    const tick = () => traffic.tick(5);
    for (let i = 0; i < 15; i++) await Promise.all([tick(), sleep(100)]);
    // Down for ~3 s of traffic, plus however long the restart takes.
    // ClickHouse 18.16 keeps serving for seconds after SIGTERM: the stop
    // escalates to SIGKILL after 300 ms, so the outage starts now.
    const stopping = ch.server.stop(300);
    const outageStart = health.samples.length;
    for (let i = 0; i < 30; i++) await Promise.all([tick(), sleep(100)]);
    await stopping;
    const restarting = ch.server.start();
    while (!(await Promise.race([restarting.then(() => true), sleep(0).then(() => false)]))) await Promise.all([tick(), sleep(100)]);
    duringOutage = health.samples.slice(outageStart);
    for (let i = 0; i < 15; i++) await Promise.all([tick(), sleep(100)]);
    // Everything is in both sinks: one record per A, plus the orphan Bs.
    // Until both hold exactly the records and stay so: on a CouchDB 3 cluster a provisional record may stand for a moment before its correction.
    await untilStable(
      `${traffic.expectedRecords} records in ClickHouse and log_correlated`,
      async () => {
        const counts = await clickhouseCounts(ch, 'http_logs');
        const docs = await couchDocs(stack, 'log_correlated');
        return { key: `${counts.final}/${docs.size}`, ready: counts.final === traffic.expectedRecords && docs.size === traffic.expectedRecords };
      },
      1000,
      45_000,
    );
    await sleep(500);
    await health.stop();
    samples = health.samples;
  });

  test('/health said 503 while ClickHouse was down, and is ok again', async (t) => {
    const m = await metrics(url);
    t.diagnostic(
      `${traffic.expectedRecords} records; ${duringOutage.length} health samples during the outage, ${duringOutage.filter((s) => s.status === 503).length} of them 503; ` +
        `largest ClickHouse backlog ${Math.max(...samples.map((s) => s.backlog))}; retries ${m.get('couchlog_correlator_sink_retries_total{sink="clickhouse"}')}; ` +
        `late events ${m.get('couchlog_correlator_late_events_total{side="A"}')}/${m.get('couchlog_correlator_late_events_total{side="B"}')}`,
    );
    assert.ok(
      duringOutage.some((s) => s.status === 503 && s.unhealthy),
      `no 503 during the outage: ${JSON.stringify(duringOutage.map((s) => s.status))}`,
    );
    assert.equal(samples.at(-1)!.status, 200);
    assert.equal((await http(`${url}/health`)).status, 200);
  });

  test('backpressure: the full sink stopped the feeds instead of growing or dropping', async () => {
    assert.ok(
      duringOutage.some((s) => s.full),
      'the ClickHouse sink never reported full',
    );
    // Reading stops once 50 are held; the poll after a pause may still add
    // what its events release at once (up to reorder_slack_ms of traffic).
    // Without backpressure the backlog would reach nearly everything posted
    // during the outage.
    const most = Math.max(...samples.map((s) => s.backlog));
    assert.ok(most <= 200, `the ClickHouse sink held ${most} records`);
    assert.ok(traffic.expectedRecords > 2 * most, `too little traffic to show backpressure: ${traffic.expectedRecords} records, ${most} held`);
    const m = await metrics(url);
    assert.equal(m.get('couchlog_correlator_sink_dropped_total{sink="clickhouse"}') ?? 0, 0);
    assert.equal(m.get('couchlog_correlator_sink_dead_letters_total{sink="clickhouse"}') ?? 0, 0);
  });

  test('/metrics shows the failures and the retries', async () => {
    const m = await metrics(url);
    assert.ok((m.get('couchlog_correlator_sink_retries_total{sink="clickhouse"}') ?? 0) > 0, 'no retries counted');
    assert.ok((m.get('couchlog_correlator_sink_failures_total{sink="clickhouse",kind="retry"}') ?? 0) > 0, 'no failures counted');
    assert.equal(m.get('couchlog_correlator_sink_failures_total{sink="clickhouse",kind="permanent"}') ?? 0, 0);
  });

  test('nothing lost, nothing visible twice, the same records in both sinks', async () => {
    // The counts above do not tell a provisional orphan A from its correction, and a listing answers from one
    // copy of each shard range: read again until every A holds its final values (at most 30 s), then assert.
    const final = (docs: Map<string, Doc>) =>
      [...traffic.expectA].every(([id, want]) => {
        const d = docs.get(`A-${id}`);
        return d?.correlated === want.correlated && d.keepalives === want.keepalives;
      });
    const { docs, rows, counts } = await settled(
      async () => ({
        docs: await couchDocs(stack, 'log_correlated'),
        rows: await clickhouseRows(ch, 'http_logs'),
        counts: await clickhouseCounts(ch, 'http_logs'),
      }),
      (r) =>
        final(r.docs) && r.docs.size === traffic.expectedRecords && JSON.stringify([...r.rows.keys()].sort()) === JSON.stringify([...r.docs.keys()].sort()),
    );
    assert.equal(docs.size, traffic.expectedRecords);
    assert.equal(counts.final, traffic.expectedRecords);
    // Ids without FINAL may also include provisional records since deleted (CouchDB 3 reorders the feeds).
    assert.ok(counts.distinct >= traffic.expectedRecords, JSON.stringify(counts));
    assert.deepEqual([...rows.keys()].sort(), [...docs.keys()].sort());
    for (const [id, want] of traffic.expectA) {
      const d = docs.get(`A-${id}`);
      assert.ok(d, `no record for A ${id}`);
      assert.deepEqual({ correlated: d.correlated, keepalives: d.keepalives }, want, `A ${id}`);
    }
    assert.equal([...docs.values()].filter((d) => d.orphan_side === 'B').length, traffic.orphanB);
  });
});

describe('drop_on_overflow: true while ClickHouse is down', () => {
  const traffic = new LiveTraffic('drop', 62);
  let url: string;

  before(async () => {
    ({ url } = await correlatorFor('drop', { app: 'correlated_drop', table: 'http_logs_drop' }, { maxBuffer: 20, dropOnOverflow: true }));
    await ch.server.stop(300);
    for (let i = 0; i < 20; i++) await Promise.all([traffic.tick(5), sleep(100)]);
    // CouchDB is not dropping: every record (orphan Bs after their window) reaches it during the outage.
    // Exactly those, and staying so: on a CouchDB 3 cluster a provisional record may stand for a moment before its correction.
    await untilStable(
      'every record in log_correlated_drop',
      async () => {
        const size = (await couchDocs(stack, 'log_correlated_drop')).size;
        return { key: String(size), ready: size === traffic.expectedRecords };
      },
      1000,
      30_000,
    );
    await ch.server.start();
    await until(
      'the ClickHouse sink to drain',
      async () => {
        const m = await metrics(url);
        return (m.get('couchlog_correlator_sink_backlog{sink="clickhouse"}') ?? 1) === 0 && (await clickhouseCounts(ch, 'http_logs_drop')).final > 0
          ? true
          : null;
      },
      30_000,
      250,
    );
  });

  test('the records beyond max_buffer_size are dropped, counted, and only those are missing', async () => {
    const m = await metrics(url);
    const dropped = m.get('couchlog_correlator_sink_dropped_total{sink="clickhouse"}') ?? 0;
    assert.ok(dropped > 0, 'nothing was dropped');
    const docs = await couchDocs(stack, 'log_correlated_drop');
    assert.equal(docs.size, traffic.expectedRecords, 'the CouchDB sink drops nothing');
    const counts = await clickhouseCounts(ch, 'http_logs_drop');
    const corrections = m.get('couchlog_correlator_corrections_total') ?? 0;
    const got = `ClickHouse ${counts.final} records, ${dropped} outputs dropped, ${corrections} corrections, ${traffic.expectedRecords} expected`;
    if (corrections === 0) {
      // Each record decided once: every output dropped is exactly one record missing.
      assert.equal(counts.final + dropped, traffic.expectedRecords, got);
      assert.equal(counts.final, counts.distinct, 'one live row per id');
    } else {
      // A CouchDB 3 cluster reorders the feeds, so some records are decided again. A dropped output then either
      // hides a record (at most one per drop) or, when it was a deletion, leaves a provisional one standing
      // (at most one per correction).
      assert.ok(counts.final + dropped >= traffic.expectedRecords, `more missing than dropped: ${got}`);
      assert.ok(counts.final <= traffic.expectedRecords + Math.min(dropped, corrections), `more standing than dropped deletions explain: ${got}`);
      // Without FINAL, ids also include records since deleted.
      assert.ok(counts.distinct >= counts.final, JSON.stringify(counts));
    }
    // The correlator kept reading: dropping is the alternative to backpressure.
    assert.equal(m.get('couchlog_correlator_events_in_total{side="A"}'), traffic.aIds.length);
  });
});
