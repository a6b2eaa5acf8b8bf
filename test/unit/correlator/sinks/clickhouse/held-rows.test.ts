// ClickHouse string literals for ids the clients chose (18.16 has no query
// parameters). The real server parses them in test/integration/clickhouse-backfill.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sqlString } from '../../../../../correlator/sinks/clickhouse/held-rows.js';

test('sqlString escapes backslashes before quotes, so no id ends the literal early', () => {
  assert.equal(sqlString("A-it's"), "'A-it\\'s'");
  assert.equal(sqlString('A-back\\slash'), "'A-back\\\\slash'");
  assert.equal(sqlString("A-\\'"), "'A-\\\\\\''");
  for (const id of ["'", "\\'", "\\\\'", "x'); DROP TABLE t; --"]) {
    const lit = sqlString(id).slice(1, -1);
    // Unescaping the literal as ClickHouse does gives the id back.
    assert.equal(lit.replace(/\\(.)/g, '$1'), id);
    assert.ok(!/(^|[^\\])(\\\\)*'/.test(lit), `an unescaped quote in ${lit}`);
  }
});
