// An id taken ahead by another document no longer hides the real one
// (server/write/claimed-ids.ts). Before, an anonymous writer could store a
// document under the id a shipper's line or a HEC event would have; the
// real one then got "conflict", counted as stored by the shipper and acked
// by HEC, and was never stored. Now the stored document is compared: a
// true retry stays a conflict (stored once); another document is stored
// under <id>~<tag> (an HMAC of database, id and content with the ingress's
// own key) and answered conflict just the same, so nobody learns what is
// stored under an id from the answer. A second black-box test took tags
// learned in one place to another: tags now bind the database and the id,
// clients cannot send tagged ids, and the read back is bounded by what was
// sent. Runs on the embedded server and on CouchDB 3.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, http, JSON_TYPE, onEveryCopy, settled, type Stack, storedStatus } from '../helpers/stack.js';
import { ship } from '../helpers/shipper.js';
import { docId, sourceKey } from '../../shipper/doc-id.js';

const TOKEN = 'claimed-ids-token-0123456789abcdef';
let stack: Stack;
before(async () => {
  stack = await startStack({ yaml: { apps: { web: { tokens: [{ name: 'claims', secret: TOKEN, ack: true }] }, shipped: {} } } });
});
after(async () => {
  await stack?.stop();
});

async function read(db: string, id: string): Promise<Record<string, unknown> | null> {
  const res = await http(`${stack.couchUrl}/${db}/${encodeURIComponent(id)}`, { headers: { authorization: stack.auth.admin } });
  return res.status === 200 ? (res.json as Record<string, unknown>) : null;
}

async function docsOf(db: string): Promise<Array<Record<string, unknown>>> {
  const res = await http(`${stack.couchUrl}/${db}/_all_docs?include_docs=true`, { headers: { authorization: stack.auth.admin } });
  return (res.json.rows as Array<{ id: string; doc: Record<string, unknown> }>).filter((r) => !r.id.startsWith('_design/')).map((r) => r.doc);
}

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  http(`${stack.url}${path}`, { method: 'POST', headers: { ...JSON_TYPE, ...headers }, body: JSON.stringify(body) });

/**
 * The documents of `db` that `which` picks, read until there are at least `least`: on a cluster
 * _all_docs answers from one copy per shard range, which may not hold an acknowledged write yet.
 */
function docsWhere(db: string, which: (d: Record<string, unknown>) => boolean, least = 0): Promise<Array<Record<string, unknown>>> {
  return settled(
    async () => (await docsOf(db)).filter(which),
    (docs) => docs.length >= least,
  );
}

function tagged(db: string, id: string, least = 0): Promise<Array<Record<string, unknown>>> {
  return docsWhere(db, (d) => new RegExp(`^${id}~[0-9a-f]{24}$`).test(String(d._id)), least);
}

test('an id taken by another document: the real one is stored under a tagged id; answered as a retry; sent again, stored once', async () => {
  assert.equal(storedStatus((await post('/log_web', { _id: 'evt-1', msg: 'forged by anonymous' })).status), 201);
  await onEveryCopy(stack, 'log_web', ['evt-1']);
  const real = { _id: 'evt-1', msg: 'REAL: root login from 6.6.6.6' };
  const first = await post('/log_web/_bulk_docs', { docs: [real, { _id: 'evt-plain', msg: 'untouched' }] });
  assert.equal(storedStatus(first.status), 201, first.text);
  assert.deepEqual(first.json[0], { id: 'evt-1', error: 'conflict', reason: 'Document update conflict.' }, 'the same answer as a retry: no oracle');
  assert.equal(first.json[1].ok, true);
  assert.equal((await read('log_web', 'evt-1'))!.msg, 'forged by anonymous', 'the forged document stays: stored logs are never changed');
  const moved = await tagged('log_web', 'evt-1', 1);
  assert.equal(moved.length, 1);
  assert.equal(moved[0]!.msg, real.msg);
  const again = await post('/log_web/_bulk_docs', { docs: [real] });
  assert.equal(again.json[0].error, 'conflict', again.text);
  assert.equal((await docsWhere('log_web', (d) => d.msg === real.msg, 1)).length, 1, 'stored once');
  const metrics = await http(`${stack.url}/_couchlog/metrics`);
  assert.match(metrics.text, /couchlog_ingress_ids_taken_total\{db="log_web"\} 1/);
});

test('a true retry (the same fields; key order and received_at aside) stays a plain conflict and stores nothing', async () => {
  const doc = { _id: 'evt-2', msg: 'the same twice', n: { a: [1, 2] } };
  assert.equal(storedStatus((await post('/log_web', doc)).status), 201);
  await onEveryCopy(stack, 'log_web', ['evt-2']);
  const second = await post('/log_web', { n: { a: [1, 2] }, msg: 'the same twice', _id: 'evt-2' });
  assert.equal(second.status, 409, second.text);
  assert.equal((await docsOf('log_web')).filter((d) => d.msg === 'the same twice').length, 1);
  assert.deepEqual(await tagged('log_web', 'evt-2'), []);
});

test('tagged ids cannot be sent, nor a tag carried to another id or database', async () => {
  const refused = await post('/log_web', { _id: 'evt-3~0123456789abcdef01234567', msg: 'squat a tag' });
  assert.equal(refused.status, 400, refused.text);
  assert.equal(refused.json.code, 'INGRESS_BAD_ID');
  // The same content moved under two ids, in two databases: two different tags.
  const line = { msg: 'Failed password for root from 7.7.7.7' };
  for (const db of ['log_web', 'log_shipped']) {
    for (const id of ['t0', 't1']) {
      await post(`/${db}`, { _id: id, x: 0 });
      await onEveryCopy(stack, db, [id]);
      assert.equal((await post(`/${db}`, { _id: id, ...line })).status, 409);
    }
  }
  const tags = new Set<string>();
  for (const db of ['log_web', 'log_shipped'])
    for (const id of ['t0', 't1']) for (const d of await tagged(db, id, 1)) tags.add(String(d._id).slice(id.length + 1));
  assert.equal(tags.size, 4, 'a tag holds for its database and id only');
});

test('a huge stored document named by a tiny request costs a bounded read; the tiny one is stored under its tag', async () => {
  const big = { _id: 'bigkeys', ...Object.fromEntries(Array.from({ length: 60_000 }, (_, i) => [`k${i}`, i])) };
  assert.equal(storedStatus((await post('/log_web', big)).status), 201);
  // On a cluster a write racing a copy that does not hold the document yet would be a conflicting revision instead.
  await onEveryCopy(stack, 'log_web', ['bigkeys']);
  const started = Date.now();
  for (let i = 0; i < 5; i++) assert.equal((await post('/log_web', { _id: 'bigkeys', a: 1 })).status, 409);
  const ms = Date.now() - started;
  assert.equal((await tagged('log_web', 'bigkeys', 1)).length, 1, 'the small one is stored once, under its tag');
  // The same five against a small stored document, next to them: what the server itself takes (seconds on a loaded cluster).
  assert.equal(storedStatus((await post('/log_web', { _id: 'smallkeys', k: 1 })).status), 201);
  await onEveryCopy(stack, 'log_web', ['smallkeys']);
  const smallStarted = Date.now();
  for (let i = 0; i < 5; i++) assert.equal((await post('/log_web', { _id: 'smallkeys', a: 1 })).status, 409);
  const smallMs = Date.now() - smallStarted;
  // Five full reads of the 1 MB document would each cost the ingress a parse and a canonical copy; bounded, they cost about what a write does.
  assert.ok(ms < 3 * smallMs + 5_000, `${ms} ms for five, ${smallMs} ms for five against a small document`);
});

test('HEC with acks: an event whose id was taken is stored and acked for real', async () => {
  assert.equal(storedStatus((await post('/log_web', { _id: 'hec-evt-1', msg: 'nothing to see here' })).status), 201);
  // On a cluster a write racing a copy that does not hold it yet would be a conflicting revision instead.
  await onEveryCopy(stack, 'log_web', ['hec-evt-1']);
  const channel = '22222222-2222-2222-2222-222222222222';
  const headers = { authorization: `Splunk ${TOKEN}`, 'x-splunk-request-channel': channel };
  const sent = await http(`${stack.url}/services/collector/event`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ event: { _id: 'hec-evt-1', msg: 'REAL: sshd accepted password for root' } }),
  });
  assert.equal(sent.json.code, 0, sent.text);
  const ack = await http(`${stack.url}/services/collector/ack`, { method: 'POST', headers, body: JSON.stringify({ acks: [sent.json.ackId] }) });
  assert.equal(ack.json.acks[String(sent.json.ackId)], true);
  // On a cluster the copy _all_docs reads may take a moment to hold what a quorum acknowledged.
  let real: Array<Record<string, unknown>> = [];
  for (let i = 0; i < 50 && real.length === 0; i++) {
    real = (await docsOf('log_web')).filter((d) => d.msg === 'REAL: sshd accepted password for root');
    if (real.length === 0) await new Promise((ok) => setTimeout(ok, 200));
  }
  assert.equal(real.length, 1, `the acked event is stored (${JSON.stringify((await docsOf('log_web')).filter((d) => String(d._id).startsWith('hec-evt-1')))})`);
  assert.match(String(real[0]!._id), /^hec-evt-1~/);
});

test("the shipper's predicted id taken ahead: the line is stored, not counted as already stored", async () => {
  const line = JSON.stringify({ event: 'sshd: accepted password for root from 6.6.6.6', host: 'db1' });
  const predicted = docId(sourceKey('stdin', 0), 0, line);
  assert.equal(storedStatus((await post('/log_shipped', { _id: predicted, event: 'nothing to see here' })).status), 201);
  await onEveryCopy(stack, 'log_shipped', [predicted]);
  const r = await ship(['-v', '--url', `${stack.url}/log_shipped`], { stdin: `${line}\n` });
  assert.equal(r.code, 0, r.stderr);
  // Answered as a retry ("already stored"), and stored indeed, under its tag.
  const theLine = (d: Record<string, unknown>) => d.event === 'sshd: accepted password for root from 6.6.6.6';
  assert.equal((await docsWhere('log_shipped', theLine, 1)).length, 1);
  // Run again: stored once all the same.
  const again = await ship(['-v', '--url', `${stack.url}/log_shipped`], { stdin: `${line}\n` });
  assert.equal(again.code, 0, again.stderr);
  assert.equal((await docsWhere('log_shipped', theLine, 1)).length, 1);
});
