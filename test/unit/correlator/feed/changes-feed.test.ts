// A page the server cannot answer (documents of several MB each: PouchDB
// Server answers 500 "Invalid string length") is asked again smaller, down
// to one document, so the feed gets past it; the size grows back once pages
// are read again. The server here is a real HTTP server answering _changes
// from a list, and failing any page larger than it can build.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChangesFeed, changedSinceStored } from '../../../../correlator/feed/changes-feed.js';
import { CouchHttp } from '../../../../lib/couch/http.js';
import { startBigDocChanges, type BigDocChanges } from '../../../helpers/big-doc-changes.js';

const TOTAL = 200;
let couch: BigDocChanges;
let http: CouchHttp;

before(async () => {
  couch = await startBigDocChanges(TOTAL, 3);
  http = new CouchHttp(couch.url, { timeoutMs: 5000, retryAfterS: 1 });
});
after(async () => {
  await http.close();
  await couch.close();
});

test('a page too large for the server is asked again smaller until it reads; then the size grows back', async () => {
  const feed = new ChangesFeed(http, 'log_big', {}, 16);
  const seen: number[] = [];
  let since = '0';
  let failures = 0;
  for (let polls = 0; polls < 200 && seen.length < TOTAL; polls++) {
    if (seen.length >= 12) couch.maxPage = Infinity; // past the big documents
    try {
      const page = await feed.poll(since);
      for (const c of page.changes) seen.push((c.doc as { n: number }).n);
      since = page.lastSeq;
    } catch (err) {
      assert.match((err as Error).message, /answered 500 \(\d+ a page\)/);
      failures++;
    }
  }
  assert.deepEqual(
    seen,
    Array.from({ length: TOTAL }, (_, i) => i + 1),
    'every change, once, in order',
  );
  assert.equal(failures, 3, 'halved 16 -> 8 -> 4 -> 2, one failure each');
  assert.equal(Math.min(...couch.limits), 2);
  assert.equal(couch.limits.at(-1), 16, 'back to the configured size once the server can build pages again');
});

test('changedSinceStored: deletions and revisions above the first are an admin change; first revisions, unknown revisions and design documents are not', () => {
  const c = (rev: string | null, deleted = false) => ({ seq: '1', id: 'd', deleted, doc: null, rev });
  assert.equal(changedSinceStored(c('1-a')), false);
  assert.equal(changedSinceStored(c(null)), false);
  assert.equal(changedSinceStored(c('2-b')), true);
  assert.equal(changedSinceStored(c('12-b')), true);
  assert.equal(changedSinceStored(c('2-b', true)), true);
  // Design documents are never events (setup updates them: revision 2 and on).
  assert.equal(changedSinceStored({ ...c('3-b'), id: '_design/correlator' }), false);
  assert.equal(changedSinceStored({ ...c('2-b', true), id: '_design/couchlog' }), false);
});
