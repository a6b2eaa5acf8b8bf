// Determinism (issue 6): the same documents correlated live, as they arrive
// over a few seconds, and later as a backlog by fresh correlators (one
// reading big pages, one tiny pages, so the two feeds interleave
// differently) give identical records, id by id. The live documents carry
// current timestamps and arrive promptly: a running correlator decides
// anything older than its watermark minus reorder_slack_ms at once, as late
// (engine.ts), and only on-time documents are promised the same decisions.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startStack, type Stack } from '../helpers/stack.js';
import { couchDocs, diffMaps, postBulk, until, type Doc } from '../helpers/correlator-outputs.js';
import { generateTraffic, type TrafficDoc } from '../../lib/bench/correlator-traffic.js';
import type { Config } from '../../lib/config/load.js';
import { createLogger } from '../../lib/logger.js';
import { adminClient } from '../../lib/setup/run-setup.js';
import { ensureAppDatabase } from '../../lib/setup/ensure-app-db.js';
import { startCorrelator, type RunningCorrelator } from '../../correlator/service.js';
import type { EngineCounters } from '../../correlator/engine/types.js';

const A_COUNT = 700;
const B_COUNT = 600;
const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

let stack: Stack;
const running: RunningCorrelator[] = [];

// Short window, delay and TTL so the live run settles within seconds of the last document.
const correlatorYaml = {
  reorder_slack_ms: 1000,
  time_window: { value: 1500, unit: 'ms' },
  ttl: { network_ttl_s: 3 },
  orphan_policy: { apache_emit_delay_ms: 400, network_emit: true },
  inputs: { batch_size: 50, poll_interval_ms: 50 },
  outputs: { couchdb: { flush_interval_ms: 50 } },
  checkpoint_interval_ms: 200,
  metrics: { enabled: false },
};

before(async () => {
  stack = await startStack({ yaml: { correlator: correlatorYaml } });
  for (const app of ['correlated_backlog', 'correlated_small']) await ensureAppDatabase(adminClient(stack.config), app, ['correlated']);
});
after(async () => {
  for (const r of running) await r.stop().catch(() => undefined);
  await stack?.stop();
});

/** Starts a correlator writing to log_<app>, with its inputs read `batchSize` changes at a time. */
async function correlator(app: string, batchSize: number): Promise<RunningCorrelator> {
  const config: Config = structuredClone(stack.config);
  config.correlator.outputs.couchdb.app = app;
  config.correlator.inputs.batch_size = batchSize;
  const r = await startCorrelator(config, logger, { clickhouse: false });
  running.push(r);
  return r;
}

/** Until the correlator has read every document and holds and owes nothing. */
async function settled(r: RunningCorrelator, what: string): Promise<EngineCounters> {
  await until(
    what,
    async () => {
      const c = r.engine.counters;
      const s = r.engine.sizes();
      const done = c.eventsIn.A === A_COUNT && c.eventsIn.B === B_COUNT && s.waiting + s.open + s.awaitingLookup === 0 && r.pipeline.fanout.pending === 0;
      return done ? true : null;
    },
    30_000,
  );
  return structuredClone(r.engine.counters);
}

const eventMs = (d: TrafficDoc) => (d.timestamp > 1e17 ? Math.floor(d.timestamp / 1e6) : d.timestamp);

describe('live and backlog give the same records', () => {
  let live: Map<string, Doc>;
  let liveCounters: EngineCounters;

  before(async () => {
    const r = await correlator('correlated', 50);
    // ~3 s of connections starting half a second from now; each document is
    // posted once its own event time has come, as a log shipper would.
    const traffic = generateTraffic({ seed: 3, aCount: A_COUNT, bCount: B_COUNT, startMs: Date.now() + 500, spanMs: 3000, disorderMs: 100 });
    const queues = { http: [...traffic.a], network: [...traffic.b] };
    while (queues.http.length + queues.network.length > 0) {
      const now = Date.now();
      await Promise.all(
        (['http', 'network'] as const).map(async (app) => {
          const q = queues[app];
          let n = 0;
          while (n < q.length && eventMs(q[n]!) <= now) n++;
          if (n > 0) await postBulk(stack, app, q.splice(0, n));
        }),
      );
      await sleep(40);
    }
    liveCounters = await settled(r, 'the live run');
    live = await couchDocs(stack, 'log_correlated');
  });

  test('premise: the live documents arrived on time and the traffic has every case', () => {
    assert.deepEqual(liveCounters.late, { A: 0, B: 0 }, 'documents arrived later than reorder_slack_ms');
    assert.equal(live.size, A_COUNT + liveCounters.orphans.B);
    const recs = [...live.values()];
    assert.ok(recs.some((d) => d.orphan_side === 'A'), 'an orphan A');
    assert.ok(recs.some((d) => d.orphan_side === 'B'), 'an orphan B');
    assert.ok(recs.some((d) => (d.keepalives as number) >= 3), 'a Keep-Alive run');
    assert.ok(recs.some((d) => d.correlated === true && (d.a_timestamp as number) < (d.b_timestamp as number)), 'an A logged before its B, still matched');
  });

  for (const [app, batchSize] of [
    ['correlated_backlog', 500],
    ['correlated_small', 7],
  ] as const) {
    test(`a fresh correlator over the backlog (pages of ${batchSize}) writes the same records to log_${app}`, async () => {
      const counters = await settled(await correlator(app, batchSize), `the backlog run into log_${app}`);
      assert.deepEqual(counters.late, { A: 0, B: 0 });
      const backlog = await couchDocs(stack, `log_${app}`);
      const d = diffMaps<Doc>(live, backlog, (x, y) => JSON.stringify(x) === JSON.stringify(y));
      assert.equal(d.count, 0, `${d.count} records differ (first: live, second: backlog):\n${d.examples.join('\n')}`);
      assert.deepEqual({ ...counters, late: null }, { ...liveCounters, late: null });
    });
  }
});
