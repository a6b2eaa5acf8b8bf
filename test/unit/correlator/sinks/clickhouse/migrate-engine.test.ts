// Which tables setup migrates: couchlog's own table from before corrections,
// as 18.16 and current ClickHouse print its engine, and nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isUnversionedReplacing } from '../../../../../correlator/sinks/clickhouse/migrate-engine.js';

const CLAUSES = ' PARTITION BY toYYYYMM(log_date) ORDER BY (time, id) SETTINGS index_granularity = 8192';

test('ReplacingMergeTree without a version is migrated, printed with or without parentheses', () => {
  for (const engine of [`ReplacingMergeTree()${CLAUSES}`, `ReplacingMergeTree( )${CLAUSES}`, `ReplacingMergeTree${CLAUSES}`, 'ReplacingMergeTree']) {
    assert.equal(isUnversionedReplacing(engine), true, engine);
  }
});

test('a versioned, replicated, distributed or other table is left alone', () => {
  for (const engine of [
    `ReplacingMergeTree(version)${CLAUSES}`,
    `ReplacingMergeTree(version, is_deleted)${CLAUSES}`,
    `ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/couchlog/http_logs_local', '{replica}', version)${CLAUSES}`,
    `ReplicatedReplacingMergeTree${CLAUSES}`,
    'Distributed(logs, couchlog, http_logs_local, cityHash64(id))',
    `MergeTree${CLAUSES}`,
    `ReplacingMergeTreeX${CLAUSES}`,
    'View',
    '',
  ]) {
    assert.equal(isUnversionedReplacing(engine), false, engine);
  }
});
