// The positions `couchlog backfill --since` takes: what a server hands out
// as last_seq (PouchDB Server: a number; CouchDB 3: "N-opaque"), nothing
// else — a pasted slip would otherwise read nothing and report success.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSince } from '../../../cli/backfill-command.js';
import { UsageError } from '../../../lib/errors.js';

test('--since takes the sequences servers give, and refuses anything else with a usage error', () => {
  for (const ok of ['0', '42', '1801', '12-g1AAAAHJeJzLYWBgYMpgTmHgz8tPSTV0MDQy1zMAQsMcoEQiQ1L9_x8gJ_Q']) assert.equal(parseSince(ok), ok);
  for (const bad of ['', 'garbage', '-5', '4000-', '1.5', '01', ' 42', '42 ', '1-a b', '99999999999999999'])
    assert.throws(() => parseSince(bad), UsageError, bad);
});
