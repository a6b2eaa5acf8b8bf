// A page the server cannot answer (documents of several MB each: PouchDB
// Server answers 500 "Invalid string length") is asked again smaller, down
// to one document, so the feed gets past it; the size grows back once pages
// are read again. The server here is a real HTTP server answering _changes
// from a list, and failing any page larger than it can build.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ChangesFeed } from '../../../../correlator/feed/changes-feed.js';
import { CouchHttp } from '../../../../lib/couch/http.js';

const TOTAL = 200;
/** Largest page the server can build; Infinity once "the big documents" are behind. */
let maxPage = 3;
const limits: number[] = [];
let server: Server;
let http: CouchHttp;

before(async () => {
  server = createServer((req, res) => {
    const q = new URL(req.url!, 'http://x').searchParams;
    const limit = Number(q.get('limit'));
    const since = Number(q.get('since'));
    limits.push(limit);
    res.setHeader('content-type', 'application/json');
    if (limit > maxPage) {
      res.statusCode = 500;
      return res.end('{"error":"RangeError","reason":"Invalid string length"}');
    }
    const results = [];
    for (let s = since + 1; s <= Math.min(TOTAL, since + limit); s++) results.push({ seq: s, id: `d${s}`, changes: [], doc: { _id: `d${s}`, n: s } });
    res.end(JSON.stringify({ results, last_seq: since + results.length, pending: TOTAL - since - results.length }));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  http = new CouchHttp(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { timeoutMs: 5000, retryAfterS: 1 });
});
after(async () => {
  await http.close();
  await new Promise<void>((ok) => server.close(() => ok()));
});

test('a page too large for the server is asked again smaller until it reads; then the size grows back', async () => {
  const feed = new ChangesFeed(http, 'log_big', {}, 16);
  const seen: number[] = [];
  let since = '0';
  let failures = 0;
  for (let polls = 0; polls < 200 && seen.length < TOTAL; polls++) {
    if (seen.length >= 12) maxPage = Infinity; // past the big documents
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
  assert.equal(Math.min(...limits), 2);
  assert.equal(limits.at(-1), 16, 'back to the configured size once the server can build pages again');
});
