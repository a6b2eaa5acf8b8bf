// The benchmarks that run couchlog's own scripts as separate processes (as
// they run in production) find them where the build puts them: a move of
// bench/ once left both pointing outside dist/, and only a benchmark run
// would have shown it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { JSONFORMAT, SHIP } from '../../../bench/ship-bench.js';
import { COUCHLOG_SCRIPT } from '../../../bench/hec-bench.js';

test('bench:ship and bench:hec spawn the compiled jsonformat, ship and couchlog scripts', () => {
  for (const script of [JSONFORMAT, SHIP, COUCHLOG_SCRIPT]) {
    assert.match(script, /[/\\]dist[/\\]scripts[/\\][a-z]+\.js$/, script);
    assert.ok(existsSync(script), `${script} exists`);
  }
});
