// Scaling out: two correlator instances on one machine, each taking half of
// the connections (correlator.shard), write together exactly the records
// one instance writes alone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, http, JSON_TYPE, onEveryCopy, settled, type Stack, storedStatus } from '../helpers/stack.js';
import { isQuiet, until } from '../helpers/correlator-outputs.js';
import { startCorrelator, type RunningCorrelator } from '../../correlator/service.js';
import { createLogger } from '../../lib/logger.js';
import { adminClient } from '../../lib/couch/admin-client.js';
import { ensureCorrelatorDatabases } from '../../setup/ensure-correlator-dbs.js';
import type { Config } from '../../lib/config/load.js';

let stack: Stack;
const running: RunningCorrelator[] = [];
const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

before(async () => {
  stack = await startStack({
    yaml: {
      correlator: {
        // PouchDB Server does not number a _bulk_docs in array order: the
        // backlog below arrives shuffled by many seconds, well within this.
        reorder_slack_ms: 30_000,
        orphan_policy: { apache_emit_delay_ms: 200, network_emit: true },
        inputs: { poll_interval_ms: 50, batch_size: 100 },
        outputs: { clickhouse: { enabled: false }, couchdb: { flush_interval_ms: 50 } },
        metrics: { enabled: false },
      },
    },
  });
  await ensureCorrelatorDatabases(adminClient(stack.config), 'single');
  await ensureCorrelatorDatabases(adminClient(stack.config), 'sharded');
  // A backlog of 300 connections: keep-alives, orphans on both sides.
  // Ten minutes ago: every connection is past the network TTL (120 s) once read, so the correlators are quiet
  // as soon as they have read the backlog, not once the wall clock has moved two minutes past it.
  const t0 = Date.now() - 600_000;
  const as: unknown[] = [];
  const bs: unknown[] = [];
  for (let c = 0; c < 300; c++) {
    const conn = { src_ip: `198.51.100.${c % 250}`, src_port: 40000 + c, dst_ip: '192.0.2.1' };
    if (c % 5 !== 0) bs.push({ ...conn, dst_port: 443, ja4: `ja4-${c % 7}`, timestamp: t0 + c * 100 });
    for (let r = 0; r < 1 + (c % 3); r++) if (c % 11 !== 0) as.push({ ...conn, dst_port: 80, path: `/${c}/${r}`, timestamp: t0 + c * 100 + 5 + r * 20 });
  }
  for (const [app, docs] of [
    ['network', bs],
    ['http', as],
  ] as const) {
    const res = await http(`${stack.url}/log_${app}/_bulk_docs`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ docs }) });
    assert.equal(storedStatus(res.status), 201);
    // On a cluster: the correlators start once every copy holds the backlog,
    // or a lagging copy would deliver some of it late (a correction, revision 2).
    await onEveryCopy(
      stack,
      `log_${app}`,
      (res.json as Array<{ id: string }>).map((r) => r.id),
    );
  }
});
after(async () => {
  for (const c of running) await c.stop();
  await stack?.stop();
});

function configFor(output: string, shard: { index: number; count: number }): Config {
  const c = structuredClone(stack.config);
  c.correlator.outputs.couchdb.app = output;
  c.correlator.shard = shard;
  return c;
}

async function records(db: string): Promise<Map<string, string>> {
  const headers = { authorization: stack.auth.admin, ...JSON_TYPE };
  // Ids from one copy per range, contents by id from a quorum (a lagging copy may hold an older revision).
  const list = await http(`${stack.couchUrl}/${db}/_all_docs`, { headers });
  const keys = (list.json.rows as Array<{ id: string }>).map((r) => r.id).filter((id) => !id.startsWith('_design/'));
  const res = await http(`${stack.couchUrl}/${db}/_all_docs?include_docs=true`, { method: 'POST', headers, body: JSON.stringify({ keys }) });
  const rows = (res.json.rows as Array<{ id: string; doc: Record<string, unknown> | null }>).filter((r) => r.doc);
  // decided_at is bookkeeping (when each instance decided), not content.
  return new Map(rows.map(({ id, doc }) => [id, JSON.stringify({ ...doc, _rev: undefined, decided_at: undefined })]));
}

test('two shards together write exactly what one instance writes', async () => {
  running.push(await startCorrelator(configFor('single', { index: 0, count: 1 }), logger, { clickhouse: false }));
  running.push(await startCorrelator(configFor('sharded', { index: 0, count: 2 }), logger, { clickhouse: false }));
  running.push(await startCorrelator(configFor('sharded', { index: 1, count: 2 }), logger, { clickhouse: false }));
  await until('the three correlators to be quiet', async () => (running.every(isQuiet) ? true : null), 120_000);
  // Both outputs read from one copy of each shard range: on a cluster, again until they agree (then asserted in full).
  const read = async () => ({ single: await records('log_single'), sharded: await records('log_sharded') });
  const { single, sharded } = await settled(read, (r) => JSON.stringify([...r.single].sort()) === JSON.stringify([...r.sharded].sort()));
  for (const c of running) assert.deepEqual(c.engine.counters.late, { A: 0, B: 0 }, 'premise: nothing arrived later than the slack');
  assert.ok(single.size > 500, `${single.size} records`);
  assert.deepEqual([...sharded.keys()].sort(), [...single.keys()].sort());
  // Revisions included: with nothing late, every record is decided once.
  for (const [id, rec] of single) assert.equal(sharded.get(id), rec, id);
  const [, a, b] = running;
  assert.ok(a!.engine.counters.eventsIn.A > 0 && b!.engine.counters.eventsIn.A > 0, 'both shards did work');
  const cp = await http(`${stack.couchUrl}/couchlog_state_sharded/_local/correlator-1-of-2`, { headers: { authorization: stack.auth.admin } });
  assert.equal(cp.status, 200, 'each shard keeps its own checkpoint');
});
