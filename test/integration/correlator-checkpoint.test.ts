// Where the correlator keeps its checkpoint, and who may touch it. Until
// 2026-12-05 it was a _local document of log_correlated, whose members (the
// reader, the writer) could rewrite it straight against CouchDB: a cursor
// moved forward made the next start skip every document before it, and no
// audit would show records that were never made. Now it lives in
// couchlog_state_<app>, where only the correlator's role is a member:
//  - readers and the writer can neither read nor write it there, and a
//    checkpoint they forge in log_correlated is not read;
//  - the setup that creates the state database (an upgrade) moves the
//    checkpoints of an older couchlog over, so the correlator continues where
//    it stopped; later setups only delete what is in the old place (a member
//    could have put it there), even when the state database has none;
//  - without the state database the correlator refuses to start and says
//    to run setup, instead of reading everything again at every start.
// Runs on the embedded server and on Apache CouchDB 3.5 (one node, cluster).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { couchFlavor, http, JSON_TYPE, onEveryCopy, startStack, type Stack } from '../helpers/stack.js';
import { couchDocs, postBulk, until, type Doc } from '../helpers/correlator-outputs.js';
import { startCorrelator, type RunningCorrelator } from '../../correlator/service.js';
import { CorrelationEngine } from '../../correlator/engine/engine.js';
import { engineConfig } from '../../correlator/engine-config.js';
import { createLogger } from '../../lib/logger.js';
import { basicAuth } from '../../lib/couch/basic-auth.js';
import { runSetup } from '../../cli/run-setup.js';
import { STATE_DB_SECURITY } from '../../setup/ensure-correlator-dbs.js';

const STATE = 'couchlog_state_correlated';
const CHECKPOINT = `${STATE}/_local/correlator`;
const OLD_PLACE = 'log_correlated/_local/correlator';
const CONNECTIONS = 40;
const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

let stack: Stack;
let correlator: RunningCorrelator | null = null;
let admin: Record<string, string>;
let aIds: string[] = [];

before(async () => {
  stack = await startStack({
    yaml: {
      correlator: {
        orphan_policy: { apache_emit_delay_ms: 200, network_emit: true },
        inputs: { poll_interval_ms: 50 },
        outputs: { clickhouse: { enabled: false }, couchdb: { flush_interval_ms: 50 } },
        checkpoint_interval_ms: 100,
        metrics: { enabled: false },
      },
    },
  });
  admin = { authorization: stack.auth.admin };
  // A backlog two minutes old: every A has its B.
  const t0 = Date.now() - 120_000;
  const conn = (c: number) => ({ src_ip: `198.51.100.${c + 1}`, src_port: 40_000 + c, dst_ip: '192.0.2.1' });
  const bs: Doc[] = [];
  const as: Doc[] = [];
  for (let c = 0; c < CONNECTIONS; c++) {
    bs.push({ ...conn(c), dst_port: 443, ja4: `t13d1516h2_${c}`, timestamp: t0 + c * 1000 });
    as.push({ ...conn(c), dst_port: 80, path: `/p${c}`, timestamp: t0 + c * 1000 + 5 });
  }
  const bIds = await postBulk(stack, 'network', bs);
  aIds = await postBulk(stack, 'http', as);
  await onEveryCopy(stack, 'log_network', bIds);
  await onEveryCopy(stack, 'log_http', aIds);
});
after(async () => {
  await correlator?.stop();
  await stack?.stop();
});

const authOf = (who: 'reader' | 'writer' | 'correlator') =>
  who === 'correlator' ? basicAuth(stack.config.users.correlator.user, stack.config.users.correlator.password ?? '') : stack.auth[who];

async function correlatedAs(): Promise<Map<string, Doc>> {
  const docs = await couchDocs(stack, 'log_correlated');
  return new Map([...docs].filter(([id, doc]) => id.startsWith('A-') && doc.correlated === true));
}

async function updateSeq(db: string): Promise<string> {
  const res = await http(`${stack.couchUrl}/${db}`, { headers: admin });
  assert.equal(res.status, 200);
  return String(res.json.update_seq);
}

/**
 * A _local document as admin once the copy that answers has it in `status`:
 * on a cluster a read may come from a copy that has not seen the last write.
 */
async function settled(path: string, status: number): Promise<Record<string, unknown>> {
  return until(
    `${path} answering ${status}`,
    async () => {
      const res = await http(`${stack.couchUrl}/${path}`, { headers: admin });
      return res.status === status ? (res.json as Record<string, unknown>) : null;
    },
    10_000,
  );
}

/** A _local document as admin once five reads in a row gave the same revision (a cluster's copies agree). */
async function stable(path: string): Promise<Record<string, unknown>> {
  let last = '';
  let same = 0;
  return until(
    `${path} read the same five times`,
    async () => {
      const res = await http(`${stack.couchUrl}/${path}`, { headers: admin });
      const key = res.status === 200 ? String(res.json._rev) : `status ${res.status}`;
      same = key === last ? same + 1 : 0;
      last = key;
      return res.status === 200 && same >= 4 ? (res.json as Record<string, unknown>) : null;
    },
    20_000,
  );
}

/** PUT a _local document as `who`, over whatever revision is there (a cluster's lagging copy: tried again). */
async function putAs(who: 'admin' | 'reader', path: string, body: Record<string, unknown>): Promise<void> {
  const headers = { authorization: who === 'admin' ? stack.auth.admin : authOf('reader'), ...JSON_TYPE };
  await until(
    `${who} PUT ${path}`,
    async () => {
      const current = await http(`${stack.couchUrl}/${path}`, { headers });
      const rev = current.status === 200 ? { _rev: current.json._rev } : {};
      const res = await http(`${stack.couchUrl}/${path}`, { method: 'PUT', headers, body: JSON.stringify({ ...body, ...rev }) });
      if (res.status === 409) return null;
      assert.ok([201, 202].includes(res.status), `${who} PUT ${path}: ${res.status} ${res.text}`);
      return true;
    },
    10_000,
  );
}

describe('the correlator checkpoint', () => {
  test('lives in a database only the correlator role uses; one that readers forge in log_correlated is not read', async () => {
    const security = await http(`${stack.couchUrl}/${STATE}/_security`, { headers: admin });
    assert.deepEqual(security.json, STATE_DB_SECURITY);
    for (const who of ['reader', 'writer'] as const) {
      const headers = { authorization: authOf(who), ...JSON_TYPE };
      const put = await http(`${stack.couchUrl}/${CHECKPOINT}`, { method: 'PUT', headers, body: '{"feeds":{}}' });
      assert.ok([401, 403].includes(put.status), `${who} PUT ${CHECKPOINT}: ${put.status} ${put.text}`);
      const get = await http(`${stack.couchUrl}/${CHECKPOINT}`, { headers });
      assert.ok([401, 403].includes(get.status), `${who} GET ${CHECKPOINT}: ${get.status}`);
      const sec = await http(`${stack.couchUrl}/${STATE}/_security`, { method: 'PUT', headers, body: JSON.stringify({ members: { roles: ['log_reader'] } }) });
      assert.ok([401, 403].includes(sec.status), `${who} PUT ${STATE}/_security: ${sec.status}`);
    }
    assert.equal((await http(`${stack.couchUrl}/${CHECKPOINT}`, { headers: admin })).status, 404, 'nothing was written');
    assert.equal((await http(`${stack.couchUrl}/${STATE}`, { headers: { authorization: authOf('correlator') } })).status, 200);

    // What a reader could do to the correlator before: a cursor at the end of both feeds, in the old place.
    // (Members may still write _local documents there: CouchDB has no finer permission. Nobody reads it now.)
    const forged = {
      feeds: {
        A: { db: 'log_http', since: await updateSeq('log_http'), next_index: 1_000_000 },
        B: { db: 'log_network', since: await updateSeq('log_network'), next_index: 1_000_000 },
      },
      saved_at: new Date().toISOString(),
      // What an engine that has seen nothing exports: the old correlator took it as it was.
      state: new CorrelationEngine(engineConfig(stack.config.correlator)).exportState(),
    };
    const put = await http(`${stack.couchUrl}/${OLD_PLACE}`, {
      method: 'PUT',
      headers: { authorization: authOf('reader'), ...JSON_TYPE },
      body: JSON.stringify(forged),
    });
    assert.ok([201, 202].includes(put.status), `premise: a member writes _local documents of log_correlated (${put.status} ${put.text})`);

    correlator = await startCorrelator(stack.config, logger, { clickhouse: false });
    const done = await until('every A correlated', async () => ((await correlatedAs()).size === CONNECTIONS ? true : null), 60_000, 200);
    assert.ok(done);
    assert.deepEqual(correlator.engine.counters.eventsIn, { A: CONNECTIONS, B: CONNECTIONS }, 'read from the start, not from the forged cursor');
    await until('a checkpoint saved', async () => ((await http(`${stack.couchUrl}/${CHECKPOINT}`, { headers: admin })).status === 200 ? true : null), 30_000);
  });

  test('the setup that creates the state database (the upgrade) moves the checkpoints an older couchlog left; the correlator continues from them', async () => {
    await correlator!.stop();
    correlator = null;
    const saved = await stable(CHECKPOINT);
    assert.equal(typeof saved.state_gzip, 'string');
    const content = { feeds: saved.feeds, saved_at: saved.saved_at, state_gzip: saved.state_gzip };
    // As an older couchlog left it: no state database, the checkpoint in log_correlated.
    assert.ok([200, 202].includes((await http(`${stack.couchUrl}/${STATE}`, { method: 'DELETE', headers: admin })).status));
    await putAs('admin', OLD_PLACE, content);
    // CouchDB 3 lists _local documents: an older sharded run's checkpoints move too, whatever this config's shard count.
    const shardCheckpoint = 'log_correlated/_local/correlator-1-of-2';
    if (couchFlavor === 'couchdb3') await putAs('admin', shardCheckpoint, { ...content, saved_at: 'shard' });

    const first = await runSetup(stack.config);
    for (const change of [`created database ${STATE}`, `moved the checkpoint ${OLD_PLACE} to ${STATE}`])
      assert.ok(first.changes.includes(change), `${change}: ${first.changes.join('\n')}`);
    const moved = await settled(CHECKPOINT, 200);
    assert.deepEqual({ feeds: moved.feeds, saved_at: moved.saved_at, state_gzip: moved.state_gzip }, content);
    await settled(OLD_PLACE, 404);
    if (couchFlavor === 'couchdb3') {
      assert.ok(first.changes.includes(`moved the checkpoint ${shardCheckpoint} to ${STATE}`), first.changes.join('\n'));
      assert.equal((await settled(`${STATE}/_local/correlator-1-of-2`, 200)).saved_at, 'shard');
      await settled(shardCheckpoint, 404);
    }
    assert.deepEqual((await runSetup(stack.config)).changes, [], 'a second setup changes nothing');

    correlator = await startCorrelator(stack.config, logger, { clickhouse: false });
    const [id] = await postBulk(stack, 'http', [
      { src_ip: '198.51.100.1', src_port: 40_000, dst_ip: '192.0.2.1', dst_port: 80, path: '/after', timestamp: Date.now() - 60_000 },
    ]);
    await until('the new A decided', async () => ((await couchDocs(stack, 'log_correlated')).has(`A-${id}`) ? true : null), 30_000, 200);
    assert.deepEqual(correlator.engine.counters.eventsIn, { A: 1, B: 0 }, 'continued from the moved checkpoint: only the new A was read');
  });

  test('later setups never carry a checkpoint over from the old place: one a reader puts there is deleted, even when the state database has none', async () => {
    await correlator!.stop();
    correlator = null;
    const current = await stable(CHECKPOINT);
    const forged = {
      feeds: { A: { db: 'log_http', since: '999999', next_index: 0 }, B: { db: 'log_network', since: '999999', next_index: 0 } },
      saved_at: 'forged',
    };
    const deleted = `deleted the checkpoint ${OLD_PLACE} (the correlator's is in ${STATE}; one there now is stale or forged)`;
    await putAs('reader', OLD_PLACE, forged);
    const report = await runSetup(stack.config);
    assert.ok(report.changes.includes(deleted), report.changes.join('\n'));
    await settled(OLD_PLACE, 404);
    assert.deepEqual(await stable(CHECKPOINT), current, 'the current one untouched');

    // The rebuild of docs/production.md: the admin deletes the checkpoint. A forged one must not take its place.
    const del = await http(`${stack.couchUrl}/${CHECKPOINT}?rev=${encodeURIComponent(String(current._rev))}`, { method: 'DELETE', headers: admin });
    assert.equal(del.status, 200, del.text);
    await settled(CHECKPOINT, 404);
    await putAs('reader', OLD_PLACE, forged);
    const again = await runSetup(stack.config);
    assert.ok(again.changes.includes(deleted), again.changes.join('\n'));
    assert.ok(!again.changes.some((c) => c.startsWith('moved')), again.changes.join('\n'));
    await settled(OLD_PLACE, 404);
    assert.equal((await http(`${stack.couchUrl}/${CHECKPOINT}`, { headers: admin })).status, 404);
  });

  test('without the state database the correlator does not start and says to run setup', async () => {
    assert.ok([200, 202].includes((await http(`${stack.couchUrl}/${STATE}`, { method: 'DELETE', headers: admin })).status));
    await assert.rejects(startCorrelator(stack.config, logger, { clickhouse: false }), {
      name: 'OperationError',
      message: new RegExp(`state database ${STATE} does not exist: run couchlog setup`),
    });
    const report = await runSetup(stack.config);
    assert.ok(report.changes.includes(`created database ${STATE}`), report.changes.join('\n'));
    // No checkpoint but records: a replay, which changes none of them.
    const before = await couchDocs(stack, 'log_correlated');
    correlator = await startCorrelator(stack.config, logger, { clickhouse: false });
    await until('the replay read both feeds', async () => (correlator!.engine.counters.eventsIn.B === CONNECTIONS ? true : null), 30_000);
    await until('a checkpoint saved', async () => ((await http(`${stack.couchUrl}/${CHECKPOINT}`, { headers: admin })).status === 200 ? true : null), 30_000);
    await correlator.stop();
    correlator = null;
    assert.deepEqual(await couchDocs(stack, 'log_correlated'), before);
  });
});
