// The _list guard against a scripted CouchDB: what is missing is a 404 of
// its own (kept briefly), what exists passes, and CouchDB failing for a
// moment is a 503 to retry, never remembered as "missing".
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ListGuard, listTarget } from '../../../../server/auth/list-guard.js';
import { CouchlogError } from '../../../../lib/errors.js';

let answer: { status: number; body: unknown } = { status: 200, body: {} };
let requests = 0;
let server: Server;
let upstream: string;

before(async () => {
  server = createServer((req, res) => {
    requests++;
    req.resume();
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer.body));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  upstream = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((ok) => server.close(() => ok())));

const URL_ = '/log_a/_design/report/_list/csv/attacks';
const DDOC = { lists: { csv: 'function(){}' }, views: { attacks: { map: 'function(){}' } } };
const guard = () => new ListGuard({ upstream, timeoutMs: 2000, retryAfterS: 3, ttlMs: 60_000 });

async function outcome(g: ListGuard): Promise<string> {
  try {
    await g.check(URL_, null);
    return 'passes';
  } catch (err) {
    assert.ok(err instanceof CouchlogError, String(err));
    return `${err.statusCode} ${err.code}`;
  }
}

test('the parts of a _list URL', () => {
  assert.deepEqual(listTarget(URL_), { db: 'log_a', ddoc: 'report', list: 'csv', viewDdoc: 'report', view: 'attacks' });
  assert.deepEqual(listTarget('/log_a/_design/report/_list/csv/other/v?x=1'), { db: 'log_a', ddoc: 'report', list: 'csv', viewDdoc: 'other', view: 'v' });
  assert.equal(listTarget('/log_a/_design/report/_view/attacks'), null);
});

test('an existing list and view pass; a missing list or view is 404', async () => {
  answer = { status: 200, body: DDOC };
  assert.equal(await outcome(guard()), 'passes');
  answer = { status: 200, body: { lists: {}, views: DDOC.views } };
  assert.equal(await outcome(guard()), '404 INGRESS_MISSING_LIST');
  answer = { status: 200, body: { lists: DDOC.lists, views: {} } };
  assert.equal(await outcome(guard()), '404 INGRESS_MISSING_VIEW');
  answer = { status: 404, body: { error: 'not_found', reason: 'missing' } };
  assert.equal(await outcome(guard()), '404 INGRESS_MISSING_LIST');
});

test('CouchDB failing for a moment: 503 with Retry-After, not cached; the next check after it recovers passes', async () => {
  const g = guard();
  for (const status of [500, 503]) {
    answer = { status, body: { error: 'internal_server_error' } };
    assert.equal(await outcome(g), '503 COUCHDB_UNAVAILABLE');
  }
  answer = { status: 200, body: DDOC };
  assert.equal(await outcome(g), 'passes');
});

test('a 404 is kept for the cache time; a caller CouchDB refuses is left for CouchDB to answer', async () => {
  const g = guard();
  answer = { status: 404, body: { error: 'not_found' } };
  assert.equal(await outcome(g), '404 INGRESS_MISSING_LIST');
  const before = requests;
  answer = { status: 200, body: DDOC };
  assert.equal(await outcome(g), '404 INGRESS_MISSING_LIST', 'cached');
  assert.equal(requests, before);
  answer = { status: 403, body: { error: 'forbidden' } };
  assert.equal(await outcome(guard()), 'passes');
});
