// Leak probe: anonymous requests, with every method that matters, to every
// CouchDB route that reads or acts. None may return a stored document or
// change anything, and none may crash the embedded server (PouchDB Server
// dies on an anonymous `PUT /<name>`).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, http, JSON_TYPE, type Stack, onEveryCopy, settled, storedStatus } from '../helpers/stack.js';
import { MARKER, METHODS, PROBE_BODY as BODY, couchSnapshot, isWriteRoute, probePaths as paths } from '../helpers/leak-probe-cases.js';

let stack: Stack;
let id: string;

before(async () => {
  stack = await startStack();
  const res = await http(`${stack.url}/log_appname`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ secret: MARKER }) });
  assert.equal(storedStatus(res.status), 201);
  id = res.json.id;
  // On a cluster GET /db answers doc_count and update_seq from one copy per shard range: the marker on every copy first.
  await onEveryCopy(stack, 'log_appname', [id]);
});
after(async () => {
  await stack?.stop();
});

const snapshot = () => couchSnapshot(stack);

/** Two snapshots 1 s apart: equal once no copy still has a write to catch up on. */
async function twoSnapshots(): Promise<[string, string]> {
  const first = await snapshot();
  await new Promise((r) => setTimeout(r, 1000));
  return [first, await snapshot()];
}

describe('anonymous leak probe', () => {
  let before0: string;
  let pid: number | undefined;
  before(async () => {
    before0 = (await settled(twoSnapshots, ([a, b]) => a === b))[1];
    pid = stack.couch.pid;
  });

  for (const method of METHODS) {
    test(`${method} on every read or admin route`, async () => {
      const failures: string[] = [];
      for (const raw of paths()) {
        const path = raw.replace('__ID__', id);
        if (isWriteRoute(method, path)) continue;
        const hasBody = method === 'POST' || method === 'PUT';
        const headers: Record<string, string> = hasBody ? { ...JSON_TYPE } : {};
        if (method === 'COPY') headers.destination = 'copied-doc';
        const res = await http(`${stack.url}${path}`, { method, headers, body: hasBody ? BODY.replaceAll('__ID__', id) : undefined });
        if (res.text.includes(MARKER) || res.text.includes(id)) failures.push(`${method} ${path}: leaked a document (${res.status})`);
        if (res.status < 400) failures.push(`${method} ${path}: answered ${res.status}`);
        if (res.status >= 500) failures.push(`${method} ${path}: server error ${res.status}`);
      }
      assert.deepEqual(failures, []);
    });
  }

  test('public routes answer but reveal nothing', async () => {
    // CouchDB 3 with require_valid_user refuses every anonymous request but the
    // login (POST /_session), even GET /_session and /_utils: the ingress
    // passes on what CouchDB itself answers, and that reveals nothing.
    const session = await http(`${stack.url}/_session`);
    assert.equal(session.status, (await http(`${stack.couchUrl}/_session`)).status);
    if (session.status === 200) assert.equal(session.json.userCtx.name, null);
    else assert.equal(session.status, 401);
    const login = await http(`${stack.url}/_session`, { method: 'POST', headers: JSON_TYPE, body: '{"name":"reader","password":"not-the-password"}' });
    assert.equal(login.status, 401);
    const fauxton = await http(`${stack.url}/_utils/`);
    assert.equal(fauxton.status, (await http(`${stack.couchUrl}/_utils/`)).status);
    if (fauxton.status === 200) assert.match(fauxton.text, /<html/i);
    else assert.equal(fauxton.status, 401);
    assert.ok(!fauxton.text.includes(MARKER));
  });

  test('garbage credentials are refused, not passed on', async () => {
    for (const authorization of ['Basic', 'Basic !!!', 'Bearer x', `Basic ${Buffer.from('nobody:nothing').toString('base64')}`]) {
      const res = await http(`${stack.url}/log_appname/_all_docs`, { headers: { authorization } });
      assert.equal(res.status, 401, authorization);
      assert.ok(!res.text.includes(MARKER));
    }
    const cookie = await http(`${stack.url}/log_appname/_all_docs`, { headers: { cookie: 'AuthSession=forged' } });
    assert.equal(cookie.status, 401);
  });

  test('nothing changed and the server never died', async () => {
    // A copy behind when read answers an older state (a cluster): read again until equal.
    assert.equal(await settled(snapshot, (s) => s === before0), before0);
    assert.equal(stack.couch.pid, pid);
    assert.equal(stack.couch.restarts, 0);
  });
});

describe('authenticated callers are still bound by CouchDB', () => {
  test('a reader cannot create or delete databases, nor write design documents', async () => {
    const headers = { ...JSON_TYPE, authorization: stack.auth.reader };
    assert.equal((await http(`${stack.url}/probe_db`, { method: 'PUT', headers })).status, 403);
    assert.equal((await http(`${stack.url}/log_appname`, { method: 'DELETE', headers })).status, 403);
    const ddoc = await http(`${stack.url}/log_appname/_design/evil`, { method: 'PUT', headers, body: '{"views":{}}' });
    assert.ok(ddoc.status === 401 || ddoc.status === 403, String(ddoc.status));
    assert.equal(stack.couch.restarts, 0);
  });

  test('a session cookie from POST /_session works like Basic auth', async () => {
    const pw = stack.config.users.reader.password!;
    const login = await http(`${stack.url}/_session`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ name: 'reader', password: pw }) });
    assert.equal(login.status, 200);
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
    assert.match(cookie, /^AuthSession=/);
    const res = await http(`${stack.url}/log_appname/${id}`, { headers: { cookie } });
    assert.equal(res.status, 200);
    assert.equal(res.json.secret, MARKER);
  });
});
