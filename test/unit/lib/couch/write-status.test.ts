// Unit tests of lib/couch/write-status.ts: which statuses mean a write is
// stored. A cluster's 202 must count (it once did not, for checkpoints), and
// nothing that is a refusal or an outage may.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isStoredLocalWrite, isStoredWrite } from '../../../../lib/couch/write-status.js';

const REFUSED = [200, 204, 400, 401, 403, 404, 409, 412, 413, 415, 429, 500, 502, 503];

test('201 and 202 are stored writes; every refusal or outage is not (200 is not a _bulk_docs answer)', () => {
  assert.equal(isStoredWrite(201), true);
  assert.equal(isStoredWrite(202), true);
  for (const s of REFUSED) assert.equal(isStoredWrite(s), false, String(s));
});

test('a _local PUT is stored on 200 (PouchDB Server), 201 and 202 (a cluster short of its quorum), nothing else', () => {
  for (const s of [200, 201, 202]) assert.equal(isStoredLocalWrite(s), true, String(s));
  for (const s of REFUSED.filter((x) => x !== 200)) assert.equal(isStoredLocalWrite(s), false, String(s));
});
