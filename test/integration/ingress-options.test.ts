// Options of the write routes: auto_create with its limit, the per-IP rate
// limit, and callers who bring their own credentials to a write route.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, http, JSON_TYPE, type Stack, storedStatus, countDocs } from '../helpers/stack.js';

let stack: Stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

describe('auto_create', () => {
  before(async () => {
    await stack.restartIngress((c) => {
      c.ingress.auto_create = true;
      c.ingress.auto_create_max = 2;
    });
  });

  test('a new app is created on first write, secured, with its design document', async () => {
    const res = await http(`${stack.url}/log_newapp`, { method: 'POST', headers: JSON_TYPE, body: '{"first":true}' });
    assert.equal(storedStatus(res.status), 201);
    const admin = { authorization: stack.auth.admin };
    const sec = await http(`${stack.couchUrl}/log_newapp/_security`, { headers: admin });
    assert.deepEqual(sec.json.members.roles, ['log_writer', 'log_reader']);
    const ddoc = await http(`${stack.couchUrl}/log_newapp/_design/couchlog`, { headers: admin });
    assert.equal(ddoc.status, 200);
    assert.equal((await http(`${stack.url}/log_newapp/_all_docs`)).status, 401, 'anonymous reads refused on the new app too');
  });

  test('concurrent first writes to one new app all succeed', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => http(`${stack.url}/log_second`, { method: 'POST', headers: JSON_TYPE, body: '{}' })));
    assert.deepEqual(new Set(results.map((r) => storedStatus(r.status))), new Set([201]));
  });

  test('beyond auto_create_max new apps are refused', async () => {
    const res = await http(`${stack.url}/log_third`, { method: 'POST', headers: JSON_TYPE, body: '{}' });
    assert.equal(res.status, 403);
    assert.equal(res.json.code, 'INGRESS_APP_LIMIT');
    const dbs = await http(`${stack.couchUrl}/_all_dbs`, { headers: { authorization: stack.auth.admin } });
    assert.ok(!dbs.json.includes('log_third'));
  });

  test("the correlator's output database is never writable through the ingress", async () => {
    const before0 = await countDocs(stack, 'log_correlated');
    const res = await http(`${stack.url}/log_correlated`, { method: 'POST', headers: JSON_TYPE, body: '{"forged":"record"}' });
    assert.equal(res.status, 403);
    assert.equal(res.json.code, 'INGRESS_RESERVED_APP');
    const after0 = await countDocs(stack, 'log_correlated');
    assert.equal(after0, before0);
  });

  test('names outside the pattern never create anything', async () => {
    for (const name of ['log_UPPER', 'log_' + 'x'.repeat(80), 'log_-dash', 'log_a.b', 'log_']) {
      const res = await http(`${stack.url}/${name}`, { method: 'POST', headers: JSON_TYPE, body: '{}' });
      assert.ok(res.status === 401 || res.status === 400, `${name}: ${res.status}`);
    }
  });
});

describe('rate limit', () => {
  before(async () => {
    await stack.restartIngress((c) => {
      c.ingress.auto_create = false;
      c.ingress.rate_limit = { enabled: true, max: 5, window_ms: 60_000 };
    });
  });
  after(async () => {
    await stack.restartIngress((c) => {
      c.ingress.rate_limit.enabled = false;
    });
  });

  test('the client over its budget gets 429 with Retry-After, CouchDB-style', async () => {
    const statuses: number[] = [];
    let last;
    for (let i = 0; i < 7; i++) {
      last = await http(`${stack.url}/log_appname`, { method: 'POST', headers: JSON_TYPE, body: '{}' });
      statuses.push(storedStatus(last.status));
    }
    assert.deepEqual(statuses, [201, 201, 201, 201, 201, 429, 429]);
    assert.equal(last!.json.error, 'too_many_requests');
    assert.ok(Number(last!.headers.get('retry-after')) > 0);
  });
});

describe('callers with their own credentials on write routes', () => {
  test('are written as themselves: a reader is refused by CouchDB, the admin may write', async () => {
    const asReader = await http(`${stack.url}/log_appname`, {
      method: 'POST',
      headers: { ...JSON_TYPE, authorization: stack.auth.reader },
      body: '{"by":"reader"}',
    });
    assert.equal(asReader.status, 403, 'the validate function lets only log_writer add documents');
    assert.equal(asReader.json.error, 'forbidden');
    const asAdmin = await http(`${stack.url}/log_appname`, {
      method: 'POST',
      headers: { ...JSON_TYPE, authorization: stack.auth.admin },
      body: '{"by":"admin"}',
    });
    assert.equal(storedStatus(asAdmin.status), 201);
  });

  test('still follow the append-only rules', async () => {
    const res = await http(`${stack.url}/log_appname/_bulk_docs`, {
      method: 'POST',
      headers: { ...JSON_TYPE, authorization: stack.auth.admin },
      body: '{"docs":[{"_id":"x","_deleted":true}]}',
    });
    assert.equal(res.status, 403);
  });
});
