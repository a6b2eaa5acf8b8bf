// The correlator's /health and /metrics over a pipeline stand-in (the real
// pipeline behind them is exercised by the correlator integration tests):
// a sink or feed failing past the threshold makes /health 503 (and a stop
// for another instance, 503 "stopped"), engine
// counters reach /metrics, and building the server raises no deprecation
// warning (Fastify 5 warned about the option this file used before).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildCorrelatorHttp, type HealthDeps } from '../../../correlator/http-server.js';
import { CorrelatorMetrics } from '../../../correlator/metrics.js';
import { CorrelationEngine } from '../../../correlator/engine/engine.js';
import type { CorrelatorPipeline } from '../../../correlator/pipeline.js';
import { SecondInstanceError } from '../../../correlator/feed/writer-claim.js';
import { createLogger } from '../../../lib/logger.js';

const NOW = Date.parse('2026-12-05T12:00:00Z');

function stand(sinkFailingSince: number | null, feedFailingSince: number | null = null, superseded: SecondInstanceError | null = null) {
  const engine = new CorrelationEngine({
    windowMs: 10_000,
    apacheEmitDelayMs: 1000,
    apacheAlwaysEmit: true,
    networkEmit: true,
    mode: 'one_to_many',
    maxHttpItems: 100,
    maxNetworkItems: 100,
    networkTtlMs: 60_000,
    reorderSlackMs: 1000,
    allowedLatenessMs: 86_400_000,
    maxClockSkewMs: 300_000,
  });
  engine.counters.correlated = 7;
  const feed = { pending: 3, caughtUp: true, failingSince: feedFailingSince };
  const pipeline = {
    engine,
    status: () => ({ A: feed, B: { ...feed, failingSince: null } }),
    fanout: { sinks: [{ name: 'clickhouse', backlog: 5, full: false, failingSince: sinkFailingSince }] },
    lookupFailingSince: null,
    checkpointSavedAt: NOW - 2000,
    superseded,
  } as unknown as CorrelatorPipeline;
  const deps: HealthDeps = { pipeline, metrics: new CorrelatorMetrics(), failingThresholdMs: 60_000, clock: () => NOW, logger: createLogger('silent') };
  return buildCorrelatorHttp(deps);
}

describe('correlator /health and /metrics', () => {
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  after(() => process.off('warning', onWarning));

  test('healthy: 200 with sinks, feeds, engine sizes and checkpoint age', async () => {
    const app = stand(NOW - 10_000);
    const res = await app.inject({ method: 'GET', url: '/health' });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.equal(body.status, 'ok');
    assert.equal(body.sinks.clickhouse.backlog, 5);
    assert.equal(body.sinks.clickhouse.unhealthy, false, 'failing for 10 s, under the 60 s threshold');
    assert.equal(body.checkpoint_age_s, 2);
    assert.equal(typeof body.engine.waiting, 'number');
    await app.close();
  });

  test('a sink or a feed failing past the threshold: 503 unhealthy', async () => {
    for (const app of [stand(NOW - 60_000), stand(null, NOW - 61_000)]) {
      const res = await app.inject({ method: 'GET', url: '/health' });
      assert.equal(res.statusCode, 503, res.body);
      assert.equal(res.json().status, 'unhealthy');
      await app.close();
    }
  });

  test('stopped for another instance: 503 stopped, naming it without its claim bookkeeping', async () => {
    const other = { instance: 'b7c1', host: 'log2', pid: 4242, started_at: '2026-12-05T11:00:00.000Z' };
    const err = new SecondInstanceError('couchlog_state_correlated/_local/correlator', { ...other, seq: 17, released: false } as typeof other);
    const app = stand(null, null, err);
    const res = await app.inject({ method: 'GET', url: '/health' });
    assert.equal(res.statusCode, 503, res.body);
    const body = res.json();
    assert.equal(body.status, 'stopped');
    assert.deepEqual(body.stopped, { code: 'CORRELATOR_SECOND_INSTANCE', reason: err.message, other });
    await app.close();
  });

  test('/metrics carries the engine counters and sink backlog as of the scrape', async () => {
    const app = stand(null);
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(res.body, /^couchlog_correlator_correlated_total 7$/m);
    assert.match(res.body, /^couchlog_correlator_sink_backlog\{sink="clickhouse"\} 5$/m);
    await app.close();
  });

  test('no deprecation warning from building the server', async () => {
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      warnings.map((w) => `${w.name}: ${w.message}`),
      [],
    );
  });
});
