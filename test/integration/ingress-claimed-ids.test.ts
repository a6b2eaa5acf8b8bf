// An id taken ahead by another document no longer hides the real one
// (server/write/claimed-ids.ts). Before, an anonymous writer could store a
// document under the id a shipper's line or a HEC event would have; the
// real one then got "conflict", counted as stored by the shipper and acked
// by HEC, and was never stored. Now the stored document is compared: a
// true retry stays a conflict (stored once), another document's id is
// answered ok with `stored_as`, an id only the ingress can compute, and
// that id is stable for retries. Runs on the embedded server and on CouchDB 3.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, http, JSON_TYPE, type Stack, storedStatus } from '../helpers/stack.js';
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

test('an id taken by another document: the real one is stored under a tagged id, and a retry stores nothing twice', async () => {
  assert.equal(storedStatus((await post('/log_web', { _id: 'evt-1', msg: 'forged by anonymous' })).status), 201);
  const real = { _id: 'evt-1', msg: 'REAL: root login from 6.6.6.6' };
  const first = await post('/log_web/_bulk_docs', { docs: [real, { _id: 'evt-plain', msg: 'untouched' }] });
  assert.equal(storedStatus(first.status), 201, first.text);
  assert.equal(first.json[0].ok, true);
  assert.equal(first.json[0].id, 'evt-1');
  assert.match(first.json[0].stored_as, /^evt-1~[0-9a-f]{24}$/);
  assert.equal(first.json[1].id, 'evt-plain');
  assert.equal(first.json[1].stored_as, undefined);
  assert.equal((await read('log_web', 'evt-1'))!.msg, 'forged by anonymous', 'the forged document stays: stored logs are never changed');
  assert.equal((await read('log_web', first.json[0].stored_as))!.msg, real.msg);
  // Sent again (an answer lost): the same tagged id, a conflict, nothing stored twice.
  const again = await post('/log_web/_bulk_docs', { docs: [real] });
  assert.equal(again.json[0].error, 'conflict', again.text);
  assert.equal((await docsOf('log_web')).filter((d) => d.msg === real.msg).length, 1);
  const metrics = await http(`${stack.url}/_couchlog/metrics`);
  assert.match(metrics.text, /couchlog_ingress_ids_taken_total\{db="log_web"\} 1/);
});

test('a true retry (the same fields; received_at is stamped anew) stays a plain conflict', async () => {
  const doc = { _id: 'evt-2', msg: 'the same twice', n: { a: [1, 2] } };
  assert.equal(storedStatus((await post('/log_web', doc)).status), 201);
  const second = await post('/log_web', { n: { a: [1, 2] }, msg: 'the same twice', _id: 'evt-2' });
  assert.equal(second.status, 409, second.text);
  assert.equal((await docsOf('log_web')).filter((d) => d.msg === 'the same twice').length, 1);
});

test('HEC with acks: an event whose id was taken is stored and acked for real', async () => {
  assert.equal(storedStatus((await post('/log_web', { _id: 'hec-evt-1', msg: 'nothing to see here' })).status), 201);
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
  const real = (await docsOf('log_web')).filter((d) => d.msg === 'REAL: sshd accepted password for root');
  assert.equal(real.length, 1, 'the acked event is stored');
  assert.match(String(real[0]!._id), /^hec-evt-1~/);
});

test("the shipper's predicted id taken ahead: the line is stored, not counted as already stored", async () => {
  const line = JSON.stringify({ event: 'sshd: accepted password for root from 6.6.6.6', host: 'db1' });
  const predicted = docId(sourceKey('stdin', 0), 0, line);
  assert.equal(storedStatus((await post('/log_shipped', { _id: predicted, event: 'nothing to see here' })).status), 201);
  const r = await ship(['-v', '--url', `${stack.url}/log_shipped`], { stdin: `${line}\n` });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /1 stored, 0 already stored/);
  const docs = await docsOf('log_shipped');
  assert.equal(docs.filter((d) => d.event === 'sshd: accepted password for root from 6.6.6.6').length, 1);
  // Run again: the line's own tagged id is taken by itself, so it is "already stored", once.
  const again = await ship(['-v', '--url', `${stack.url}/log_shipped`], { stdin: `${line}\n` });
  assert.match(again.stderr, /0 stored, 1 already stored/);
  assert.equal((await docsOf('log_shipped')).length, 2);
});
