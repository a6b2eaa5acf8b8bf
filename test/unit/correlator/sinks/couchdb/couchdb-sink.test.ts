// correlator/sinks/couchdb/couchdb-sink.ts, its pure part: a batch writes
// only the latest decision of each id (the server side is in
// test/integration/correlator-couchdb-sink.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { latestOfEach } from '../../../../../correlator/sinks/couchdb/couchdb-sink.js';
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
