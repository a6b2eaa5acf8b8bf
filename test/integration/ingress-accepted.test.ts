// On a CouchDB cluster that has lost copies, CouchDB stores a write on the
// copies it can reach and answers 202 Accepted instead of 201 (fewer
// copies than its write quorum hold it so far). The ingress passes that on
// for single documents (group commit) and for bulks, as CouchDB would, so
// a client can tell a write that is not yet durable. Only a cluster the
// tests started can lose nodes: elsewhere this suite is skipped.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { couchCluster, http, JSON_TYPE, startStack, type Stack } from '../helpers/stack.js';
import type { TestCouchdb3 } from '../helpers/couchdb3.js';

const skip = couchCluster ? false : 'needs a CouchDB 3 cluster the tests start (COUCHLOG_TEST_COUCHDB_NODES=3)';
let stack: Stack;

before(async () => {
  if (skip) return;
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

test('with every copy up: 201; with two of three nodes killed: 202 for single POSTs and bulks, and the documents are stored', { skip }, async () => {
  const post = (path: string, body: unknown) => http(`${stack.url}/log_appname${path}`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify(body) });
  // A loaded cluster answers 202 now and then even with every copy up (a copy slower than the quorum's wait):
  // with every copy up, 201 comes within a few tries; an ingress that turned every answer into 202 never gives it.
  let before = await post('', { msg: 'all copies up' });
  for (let i = 0; i < 5 && before.status === 202; i++) before = await post('', { msg: 'all copies up' });
  assert.equal(before.status, 201, before.text);

  await (stack.couch as TestCouchdb3).killOtherNodes!();
  const single = await post('', { msg: 'one copy left' });
  assert.equal(single.status, 202, single.text);
  assert.equal(single.json.ok, true);
  assert.match(single.headers.get('location') ?? '', /^\/log_appname\//);
  const bulk = await post('/_bulk_docs', { docs: [{ msg: 'bulk 1' }, { msg: 'bulk 2' }] });
  assert.equal(bulk.status, 202, bulk.text);
  assert.deepEqual(
    bulk.json.map((r: { ok?: boolean }) => r.ok),
    [true, true],
  );
  const array = await post('', [{ msg: 'array 1' }]);
  assert.equal(array.status, 202, array.text);

  // Stored on the copy that is left: read back from it.
  for (const id of [single.json.id, ...bulk.json.map((r: { id: string }) => r.id), array.json[0].id]) {
    const res = await http(`${stack.couchUrl}/log_appname/${id}?r=1`, { headers: { authorization: stack.auth.admin } });
    assert.equal(res.status, 200, `${id}: ${res.text}`);
  }
});
