// correlator/sinks/couchdb/couchdb-sink.ts, its pure part: a batch writes
// only the latest decision of each id (the server side is in
// test/integration/correlator-couchdb-sink.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { latestOfEach, PermanentDeliveryError, refusalError, SinkSetupError, staleLeaves } from '../../../../../correlator/sinks/couchdb/couchdb-sink.js';
import { OperationError } from '../../../../../lib/errors.js';
import type { SinkRecord } from '../../../../../correlator/sinks/sink.js';
import { mulberry32 } from '../../../../../bench/prng.js';

const rec = (id: string, version: number, deleted = false): SinkRecord => ({ id, version, deleted, record: { revision: version } });

test('the last record of each id is kept, in batch order; a batch without repeats is kept whole', () => {
  const batch = [rec('A-1', 1), rec('B-1', 2), rec('A-2', 3), rec('B-1', 4, true), rec('A-1', 5)];
  assert.deepEqual(
    latestOfEach(batch).map((r) => [r.id, r.version]),
    [
      ['A-2', 3],
      ['B-1', 4],
      ['A-1', 5],
    ],
  );
  const plain = [rec('A-1', 1), rec('A-2', 2)];
  assert.deepEqual(latestOfEach(plain), plain);
});

test('property: for random batches, exactly one record per id survives, the last one, and order is kept', () => {
  const rand = mulberry32(11);
  for (let round = 0; round < 500; round++) {
    const batch = Array.from({ length: 1 + Math.floor(rand() * 40) }, (_, i) => rec(`id${Math.floor(rand() * 8)}`, i, rand() < 0.3));
    const kept = latestOfEach(batch);
    const ids = kept.map((r) => r.id);
    assert.equal(new Set(ids).size, ids.length, 'one per id');
    assert.deepEqual(new Set(ids), new Set(batch.map((r) => r.id)), 'every id');
    for (const r of kept)
      assert.equal(
        r,
        [...batch].reverse().find((b) => b.id === r.id),
        'the last of its id',
      );
    assert.deepEqual(
      kept.map((r) => r.version),
      [...kept.map((r) => r.version)].sort((x, y) => x - y),
      'in batch order',
    );
  }
});

test("per-document refusals: the account's are the operator's to fix, a missing result is retried, only the records' own go to the dead letters", () => {
  const r = (error: string, reason: string) => ({ id: 'A-1', error, reason });
  assert.equal(refusalError([]), null);
  const role = refusalError([r('forbidden', 'only the correlator (role log_correlator) may write correlated records')]);
  assert.ok(role instanceof SinkSetupError, String(role));
  assert.ok(refusalError([r('unauthorized', 'You are not a db or server admin.')]) instanceof SinkSetupError);
  assert.ok(refusalError([r('forbidden', 'only admins may write design documents')]) instanceof SinkSetupError);
  const unknown = refusalError([r('unknown', 'CouchDB gave no result for this document')]);
  assert.ok(unknown instanceof OperationError && !(unknown instanceof SinkSetupError), String(unknown));
  const data = refusalError([r('forbidden', 'a correlated record is only replaced by a later revision'), r('bad_request', 'Document must be a JSON object')]);
  assert.ok(data instanceof PermanentDeliveryError, String(data));
  assert.match(data.message, /2 document\(s\) refused/);
  // One account refusal in a batch decides it: the others were refused for the same account.
  assert.ok(
    refusalError([r('bad_request', 'x'), r('forbidden', 'only the correlator (role log_correlator) may write correlated records')]) instanceof SinkSetupError,
  );
});

test('a deleted record checked again: every live branch decided before the deletion goes, and of those after it all but the newest', () => {
  const deletion: SinkRecord = { id: 'B-1', version: 9, deleted: true, record: { revision: 2, decided_at: '2026-12-03T10:00:02.000Z' } };
  const leaf = (rev: string, at?: string) => ({ rev, doc: at === undefined ? {} : { decided_at: at } });
  const stale = (leaves: ReturnType<typeof leaf>[]) => staleLeaves(deletion, leaves).map((l) => l.rev);
  assert.deepEqual(stale([]), []);
  // The earlier content brought back by a late copy: deleted again, whatever its branch.
  assert.deepEqual(stale([leaf('3-a', '2026-12-03T10:00:01.000Z')]), ['3-a']);
  assert.deepEqual(stale([leaf('3-a', '2026-12-03T10:00:02.000Z')]), ['3-a'], 'decided with the deletion: not newer');
  assert.deepEqual(stale([leaf('3-a')]), ['3-a'], 'no decided_at: not a newer decision');
  // A newer decision stays; the earlier content beside it goes, winner or not.
  assert.deepEqual(stale([leaf('3-a', '2026-12-03T10:00:03.000Z'), leaf('3-b', '2026-12-03T10:00:01.000Z')]), ['3-b']);
  assert.deepEqual(stale([leaf('3-b', '2026-12-03T10:00:01.000Z'), leaf('3-a', '2026-12-03T10:00:03.000Z')]), ['3-b']);
  // Two newer decisions: the newest stays; equal ones keep the same branch whichever order they are read in.
  assert.deepEqual(stale([leaf('3-a', '2026-12-03T10:00:04.000Z'), leaf('3-b', '2026-12-03T10:00:03.000Z')]), ['3-b']);
  assert.deepEqual(stale([leaf('3-a', '2026-12-03T10:00:04.000Z'), leaf('3-b', '2026-12-03T10:00:04.000Z')]), ['3-a']);
  assert.deepEqual(stale([leaf('3-b', '2026-12-03T10:00:04.000Z'), leaf('3-a', '2026-12-03T10:00:04.000Z')]), ['3-a']);
});
