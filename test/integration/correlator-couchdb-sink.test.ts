// The correlator's CouchDB sink against a real server: a retried batch never
// brings a deleted record back, and on a cluster that has lost copies a
// write answered 202 is read back from every copy before it counts as
// delivered (only a cluster the tests start can lose nodes).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { couchCluster, couchFlavor, http, JSON_TYPE, settled, startStack, storedStatus, type Stack } from '../helpers/stack.js';
import type { TestCouchdb3 } from '../helpers/couchdb3.js';
import { CouchHttp, type CouchRequest, type CouchResponse } from '../../lib/couch/http.js';
import { CouchDbDelivery } from '../../correlator/sinks/couchdb/couchdb-sink.js';
import type { SinkRecord } from '../../correlator/sinks/sink.js';
import { CheckpointStore } from '../../correlator/feed/checkpoint-store.js';
import { WriterClaim } from '../../correlator/feed/writer-claim.js';
import { CorrelationEngine } from '../../correlator/engine/engine.js';
import { engineConfig } from '../../correlator/engine-config.js';
import { adminClient } from '../../lib/couch/admin-client.js';
import { ensureCorrelatorDatabases } from '../../setup/ensure-correlator-dbs.js';

let stack: Stack;
before(async () => {
  stack = await startStack();
  for (const app of ['sinkretry', 'sinkpartial', 'sinkwatch', 'sinkrevive', 'sinkrole']) await ensureCorrelatorDatabases(adminClient(stack.config), app);
});
after(async () => {
  await stack?.stop();
});

/** A CouchHttp that loses the answer to the first _bulk_docs holding a deletion, after CouchDB applied it, as a cut connection would. */
class LosingHttp extends CouchHttp {
  lost = false;
  constructor(url: string) {
    super(url, { timeoutMs: 30_000, retryAfterS: 1 });
  }
  override async request<T = unknown>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, req: CouchRequest = {}): Promise<CouchResponse<T>> {
    const res = await super.request<T>(method, path, req);
    if (!this.lost && path.endsWith('/_bulk_docs') && String(req.body).includes('"_deleted":true')) {
      this.lost = true;
      throw new Error('the answer was lost');
    }
    return res;
  }
}

const orphanB = (id: string, revision: number, decidedAt: string, deleted = false): SinkRecord => ({
  id,
  version: revision,
  deleted,
  record: deleted
    ? { timestamp: '2026-12-03T10:00:00.000Z', src_ip: '192.0.2.7', src_port: 40000, deleted: true, revision, decided_at: decidedAt }
    : {
        timestamp: '2026-12-03T10:00:00.000Z',
        src_ip: '192.0.2.7',
        src_port: 40000,
        correlated: false,
        orphan_side: 'B',
        b_id: 'b1',
        revision,
        decided_at: decidedAt,
      },
});

async function revisionHistory(db: string, id: string): Promise<{ deleted: boolean; revs: number }> {
  const res = await http(`${stack.couchUrl}/${db}/${id}?open_revs=all&revs=true`, { headers: { authorization: stack.auth.admin, accept: 'application/json' } });
  const leaves = res.json as Array<{ ok: { _deleted?: boolean; _revisions: { start: number } } }>;
  assert.equal(leaves.length, 1, `one leaf: ${res.text}`);
  return { deleted: leaves[0]!.ok._deleted === true, revs: leaves[0]!.ok._revisions.start };
}

/** The live leaves of a record: each one's `revision` field, and the answer's text for messages. */
async function liveLeaves(db: string, id: string): Promise<{ text: string; live: Array<number | undefined> }> {
  const res = await http(`${stack.couchUrl}/${db}/${id}?open_revs=all`, { headers: { authorization: stack.auth.admin, accept: 'application/json' } });
  const all = res.json as Array<{ ok?: { _deleted?: boolean; revision?: number } }>;
  return { text: res.text, live: all.filter((l) => l.ok && !l.ok._deleted).map((l) => l.ok!.revision) };
}

describe('the CouchDB sink', () => {
  test("an account CouchDB refuses (no role log_correlator, not a member) is the operator's to fix: retried, never dead-lettered", async () => {
    // Found by a code review: the validate_doc_update's 'only the correlator' refusal of every
    // record was taken as bad records, and all of log_correlated went to the dead-letter file.
    const httpClient = new CouchHttp(stack.couchUrl, { timeoutMs: 30_000, retryAfterS: 1 });
    try {
      for (const [who, authorization] of [
        ['a reader (a member, without the role)', stack.auth.reader],
        ['the writer (not a member)', stack.auth.writer],
      ] as const) {
        const delivery = new CouchDbDelivery(httpClient, 'log_sinkrole', { authorization });
        const err = await delivery.deliver([orphanB('B-role', 1, '2026-12-05T10:00:01.000Z')]).then(
          () => null,
          (e: unknown) => e,
        );
        await delivery.close();
        assert.ok(err instanceof Error, `${who}: refused`);
        assert.equal(delivery.classify(err), 'config', `${who}: ${(err as Error).message}`);
      }
      const stored = await http(`${stack.couchUrl}/log_sinkrole/B-role`, { headers: { authorization: stack.auth.admin } });
      assert.equal(stored.status, 404, 'nothing written');
    } finally {
      await httpClient.pool.close();
    }
  });

  test('a batch holding a provisional record and its deletion, retried after its answer was lost, never brings the record back', async () => {
    // The deletion's answer is lost: the batching sink delivers the whole batch again.
    const httpClient = new LosingHttp(stack.couchUrl);
    const delivery = new CouchDbDelivery(httpClient, 'log_sinkretry', { authorization: stack.auth.admin });
    const batch = [orphanB('B-b1', 1, '2026-12-03T10:00:01.000Z'), orphanB('B-b1', 2, '2026-12-03T10:00:02.000Z', true)];
    await assert.rejects(delivery.deliver(batch), /the answer was lost/);
    await delivery.deliver(batch);
    await delivery.close();
    // Only the deletion is written (a tombstone): writing the superseded record first, and again over the tombstone on the retry, made four revisions, the third one live.
    assert.deepEqual(await revisionHistory('log_sinkretry', 'B-b1'), { deleted: true, revs: 1 });
    await httpClient.pool.close();
  });

  test("a record decided again after its deletion is written over the tombstone (CouchDB 3 refuses the tombstone's _rev there)", async () => {
    const httpClient = new CouchHttp(stack.couchUrl, { timeoutMs: 30_000, retryAfterS: 1 });
    let corrections = 0;
    const delivery = new CouchDbDelivery(httpClient, 'log_sinkrevive', { authorization: stack.auth.admin }, { onCorrection: (n) => (corrections += n) });
    await delivery.deliver([orphanB('B-r1', 1, '2026-12-03T10:00:01.000Z')]);
    await delivery.deliver([orphanB('B-r1', 2, '2026-12-03T10:00:02.000Z', true)]);
    // The partner that took it is given to another (one_to_one): B-r1 is an orphan again.
    await delivery.deliver([orphanB('B-r1', 3, '2026-12-03T10:00:03.000Z')]);
    assert.equal(corrections, 2);
    // Still watched: a late copy could bring the first content back as a branch beside the newer decision.
    assert.equal(delivery.watched, 1, 'the deletion stays watched');
    // On a loaded cluster such a branch does appear now and then (CI of 8fd39de, the test below): the watch's
    // checks (2 s, 15 s) delete it. Only the newer decision stays live.
    const settledLeaves = await settled(
      () => liveLeaves('log_sinkrevive', 'B-r1'),
      ({ live }) => live.length === 1,
      20_000,
    );
    assert.deepEqual(settledLeaves.live, [3], settledLeaves.text);
    const res = await http(`${stack.couchUrl}/log_sinkrevive/B-r1?revs=true`, { headers: { authorization: stack.auth.admin } });
    assert.equal((res.json as { revision: number }).revision, 3);
    // The third revision of its branch; on a cluster one more when the late write came before the sink read it.
    const generation = (res.json as { _revisions: { start: number } })._revisions.start;
    assert.ok(couchCluster ? generation >= 3 : generation === 3, res.text);
    await delivery.close();
    await httpClient.pool.close();
  });

  test('a deleted record that comes back (a copy applying the earlier write late) is deleted again; a newer decision is left alone, the earlier content beside it is not', async () => {
    const httpClient = new CouchHttp(stack.couchUrl, { timeoutMs: 30_000, retryAfterS: 1 });
    let resurrected = 0;
    const delivery = new CouchDbDelivery(
      httpClient,
      'log_sinkwatch',
      { authorization: stack.auth.admin },
      // The late checks leave room for the reads and writes below: on a loaded 3-node cluster they took more than
      // 600 ms once, and checks that all ran before the late write found nothing to undo.
      { recheckDelaysMs: [200, 600, 5_000, 20_000], onResurrection: (n) => (resurrected += n) },
    );
    const orphan = (id: string) => orphanB(id, 1, '2026-12-03T10:00:01.000Z');
    const ids = ['B-w1', 'B-w2', 'B-w3'];
    await delivery.deliver(ids.map(orphan));
    await delivery.deliver(ids.map((id) => orphanB(id, 2, '2026-12-03T10:00:02.000Z', true)));
    const deletedAt = Date.now();
    assert.equal(delivery.watched, 3);
    // On a cluster the deletions may not be on every copy yet: a copy that lacks them would take the writes below as
    // other branches (conflicts), which is not the case this test is about. Reading with r=3 repairs the copies.
    // Read until it shows (CI of 1530747, loaded 3-node run: the first such read still answered the live revision).
    for (const id of ids) {
      let last = '';
      for (const deadline = Date.now() + 5_000; ; await sleep(100)) {
        const res = await http(`${stack.couchUrl}/log_sinkwatch/${id}?r=3&open_revs=all`, {
          headers: { authorization: stack.auth.admin, accept: 'application/json' },
        });
        last = res.text;
        const leaves = res.json as Array<{ ok?: { _deleted?: boolean } }>;
        if (Array.isArray(leaves) && leaves.length === 1 && leaves[0]!.ok?._deleted === true) break;
        assert.ok(Date.now() < deadline, `${id}: one deleted leaf on every copy, got ${last}`);
      }
    }
    const raw = (doc: Record<string, unknown>) =>
      http(`${stack.couchUrl}/log_sinkwatch/_bulk_docs`, {
        method: 'POST',
        headers: { authorization: stack.auth.admin, ...JSON_TYPE },
        body: JSON.stringify({ docs: [doc] }),
      });
    // What a slow copy does late: the first write, without _rev, over the tombstone.
    assert.equal(storedStatus((await raw({ _id: 'B-w1', ...orphan('B-w1').record })).status), 201);
    // A newer decision of B-w2, written over the tombstone as the sink writes one: without _rev.
    assert.equal(storedStatus((await raw({ _id: 'B-w2', ...orphanB('B-w2', 3, '2026-12-03T10:00:03.000Z').record })).status), 201);
    // B-w3: the newer decision, and beside it the earlier content as a branch of its own, as a late copy leaves
    // it on a cluster (CI of 76dd246: B-w2 had 3-… revision 3 and 3-… revision 1). Made here on every server.
    // Written by the sink itself, as the correlator does: its watch of the deletion goes on (a review found
    // that such a write ended it, and with it the check of the branch below).
    await delivery.deliver([orphanB('B-w3', 3, '2026-12-03T10:00:03.000Z')]);
    // The earlier content over the tombstone, as a copy applying it late writes it: generation 3 on the tombstone's branch.
    const w3 = await http(`${stack.couchUrl}/log_sinkwatch/B-w3?revs=true`, { headers: { authorization: stack.auth.admin } });
    const [, ...tombstonePath] = (w3.json._revisions as { ids: string[] }).ids;
    const lateRev = '0123456789abcdef0123456789abcdef';
    const branch = await http(`${stack.couchUrl}/log_sinkwatch/_bulk_docs`, {
      method: 'POST',
      headers: { authorization: stack.auth.admin, ...JSON_TYPE },
      body: JSON.stringify({
        new_edits: false,
        docs: [{ _id: 'B-w3', _rev: `3-${lateRev}`, _revisions: { start: 3, ids: [lateRev, ...tombstonePath] }, ...orphan('B-w3').record }],
      }),
    });
    assert.equal(storedStatus(branch.status), 201, branch.text);
    const before = await http(`${stack.couchUrl}/log_sinkwatch/B-w3?open_revs=all`, {
      headers: { authorization: stack.auth.admin, accept: 'application/json' },
    });
    // PouchDB Server answers [] to that write but does not store it (CouchDB 3 does): there, B-w3 is B-w2 again.
    // On a loaded cluster a copy may also apply the first write late, over the tombstone, after the reads above
    // (CI of 8fd39de: a third leaf 3-… of revision 1): the very case the checks are for, so it may be there too.
    const branched = (before.json as Array<{ ok?: { _rev?: string } }>).some((l) => l.ok?._rev === `3-${lateRev}`);
    assert.ok(branched || couchFlavor === 'embedded', `the branch is stored on CouchDB 3: ${before.text}`);
    const wroteAfterMs = Date.now() - deletedAt;
    assert.ok(wroteAfterMs < 20_000, `the late writes came ${wroteAfterMs} ms after the deletions, after the last check`);
    for (const deadline = Date.now() + 30_000; delivery.watched > 0 && Date.now() < deadline;) await sleep(100);
    assert.equal(delivery.watched, 0, 'every check made');
    // B-w1 and B-w3's branch; B-w2 too when a late copy left its earlier content as a branch.
    assert.ok(resurrected >= (branched ? 2 : 1), `resurrections undone: ${resurrected}`);
    assert.equal((await revisionHistory('log_sinkwatch', 'B-w1')).deleted, true, 'the late write is undone');
    const leaves = (id: string) => liveLeaves('log_sinkwatch', id);
    assert.deepEqual((await leaves('B-w1')).live, [], (await leaves('B-w1')).text);
    // On a cluster the raw write of B-w2 can also land as two branches that both hold the newer decision (CI of
    // 415ff09: leaves 1-… and 3-…): the newest decision stays on one of them, and only that.
    for (const id of ['B-w2', 'B-w3']) {
      const { text, live } = await leaves(id);
      assert.deepEqual(live, [3], `${id}: the newer decision stays, alone: ${text}`);
    }
    await delivery.close();
    await httpClient.pool.close();
  });

  test(
    'on a cluster with two of three nodes killed, a write answered 202 is read back from every copy and counted; checkpoints and claims answered 202 are saved',
    { skip: couchCluster ? false : 'needs a CouchDB 3 cluster the tests start (COUCHLOG_TEST_COUCHDB_NODES=3)' },
    async () => {
      await (stack.couch as TestCouchdb3).killOtherNodes!();
      const httpClient = new CouchHttp(stack.couchUrl, { timeoutMs: 30_000, retryAfterS: 1 });
      let partial = 0;
      const delivery = new CouchDbDelivery(httpClient, 'log_sinkpartial', { authorization: stack.auth.admin }, { onPartialWrite: (n) => (partial += n) });
      await delivery.deliver([orphanB('B-p1', 1, '2026-12-03T10:00:01.000Z'), orphanB('B-p2', 1, '2026-12-03T10:00:01.000Z')]);
      assert.equal(partial, 2);
      const res = await http(`${stack.couchUrl}/log_sinkpartial/B-p1?r=1`, { headers: { authorization: stack.auth.admin } });
      assert.equal(res.status, 200);
      // The correlator's own _local documents get 202 too (until 2026-12-06 a failed save: none was ever saved).
      const admin = { authorization: stack.auth.admin };
      const claim = new WriterClaim(httpClient, 'couchlog_state_sinkpartial', 'correlator', admin, () => {});
      const store = new CheckpointStore(httpClient, 'couchlog_state_sinkpartial', 'log_sinkpartial', 'correlator', admin, claim);
      await store.load();
      const cp = {
        feeds: { A: { db: 'log_http', since: '0', next_index: 0 }, B: { db: 'log_network', since: '0', next_index: 0 } },
        state: new CorrelationEngine(engineConfig(stack.config.correlator)).exportState(),
        saved_at: new Date().toISOString(),
      };
      assert.equal(await store.save(cp), true);
      const last = { ...cp, saved_at: new Date(Date.now() + 1000).toISOString() };
      assert.equal(await store.save(last, true), true, "a clean stop's last save");
      const saved = await http(`${stack.couchUrl}/couchlog_state_sinkpartial/_local/correlator?r=1`, { headers: admin });
      assert.equal(saved.json.saved_at, last.saved_at);
      const writer = await http(`${stack.couchUrl}/couchlog_state_sinkpartial/_local/correlator-writer?r=1`, { headers: admin });
      assert.equal(writer.json.instance, claim.me.instance);
      assert.equal(writer.json.released, true);
      await delivery.close();
      await httpClient.pool.close();
    },
  );
});
