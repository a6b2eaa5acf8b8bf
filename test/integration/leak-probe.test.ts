// Leak probe: anonymous requests, with every method that matters, to every
// CouchDB route that reads or acts. None may return a stored document or
// change anything, and none may crash the embedded server (PouchDB Server
// dies on an anonymous `PUT /<name>`).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, http, JSON_TYPE, type Stack } from '../helpers/stack.js';

const MARKER = 'leak-probe-marker-7f3a9c';
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'COPY'] as const;

let stack: Stack;
let id: string;

before(async () => {
  stack = await startStack();
  const res = await http(`${stack.url}/log_appname`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ secret: MARKER }) });
  assert.equal(res.status, 201);
  id = res.json.id;
});
after(async () => {
  await stack?.stop();
});

function paths(): string[] {
  const db = '/log_appname';
  return [
    '/',
    '/_all_dbs',
    '/_active_tasks',
    '/_db_updates',
    '/_uuids',
    '/_config',
    '/_config/admins',
    '/_config/admins/intruder',
    '/_config/couch_httpd_auth/require_valid_user',
    '/_node/_local/_config',
    '/_node/nonode@nohost/_config/admins',
    '/_node/_local/_stats',
    '/_users',
    '/_users/_all_docs',
    '/_users/org.couchdb.user:reader',
    '/_users/org.couchdb.user:intruder',
    '/_replicator',
    '/_replicate',
    '/_restart',
    '/_utils/_all_dbs',
    '/_utils/..%2f_all_dbs',
    '/_utils/%2e%2e/log_appname/_all_docs',
    db,
    `${db}/_all_docs`,
    `${db}/_all_docs?include_docs=true`,
    `${db}/_find`,
    `${db}/_explain`,
    `${db}/_index`,
    `${db}/_bulk_get`,
    `${db}/_changes`,
    `${db}/_changes?include_docs=true&feed=normal`,
    `${db}/_revs_diff`,
    `${db}/_missing_revs`,
    `${db}/_purge`,
    `${db}/_compact`,
    `${db}/_view_cleanup`,
    `${db}/_security`,
    `${db}/_temp_view`,
    `${db}/_design/couchlog`,
    `${db}/_design/couchlog/_view/anything`,
    `${db}/_design/couchlog/_list/html/anything`,
    `${db}/_design/couchlog/_show/x`,
    `${db}/_design/evil`,
    `${db}/_local/checkpoint`,
    `${db}/__ID__`,
    `${db}/__ID__?revs_info=true`,
    '/log_fail2ban/_all_docs',
    '/log_newdb_probe',
    '/newdb_probe',
    '/LOG_APPNAME/_all_docs',
  ];
}

/** A body that would make each route act, were it allowed to. */
const BODY = JSON.stringify({
  selector: {},
  keys: ['__ID__'],
  docs: [{ id: '__ID__' }],
  index: { fields: ['secret'] },
  source: 'log_appname',
  target: 'stolen_copy',
  create_target: true,
  map: 'function(doc){emit(doc._id, doc)}',
  views: { all: { map: 'function(doc){emit(doc._id, doc)}' } },
  members: { names: ['intruder'], roles: [] },
  admins: { names: ['intruder'], roles: [] },
  name: 'intruder',
  password: 'intruder-password',
  roles: ['_admin'],
  type: 'user',
});

async function snapshot(): Promise<string> {
  const admin = { authorization: stack.auth.admin };
  const dbs = (await http(`${stack.couchUrl}/_all_dbs`, { headers: admin })).json as string[];
  const state: Record<string, unknown> = { dbs };
  for (const db of dbs) {
    const info = (await http(`${stack.couchUrl}/${db}`, { headers: admin })).json;
    const security = (await http(`${stack.couchUrl}/${db}/_security`, { headers: admin })).json;
    state[db] = { docs: info.doc_count, deleted: info.doc_del_count, seq: info.update_seq, security };
  }
  state.admins = (await http(`${stack.couchUrl}/_config/admins`, { headers: admin })).json;
  state.rvu = (await http(`${stack.couchUrl}/_config/couch_httpd_auth/require_valid_user`, { headers: admin })).json;
  return JSON.stringify(state);
}

describe('anonymous leak probe', () => {
  let before0: string;
  let pid: number | undefined;
  before(async () => {
    before0 = await snapshot();
    pid = stack.couch.pid;
  });

  for (const method of METHODS) {
    test(`${method} on every read or admin route`, async () => {
      const failures: string[] = [];
      for (const raw of paths()) {
        const path = raw.replace('__ID__', id);
        // POST /log_<app> is the write route: it is meant to store documents.
        if (method === 'POST' && /^\/log_(appname|fail2ban)$/.test(path)) continue;
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
    const session = await http(`${stack.url}/_session`);
    assert.equal(session.status, 200);
    assert.equal(session.json.userCtx.name, null);
    const login = await http(`${stack.url}/_session`, { method: 'POST', headers: JSON_TYPE, body: '{"name":"reader","password":"not-the-password"}' });
    assert.equal(login.status, 401);
    const fauxton = await http(`${stack.url}/_utils/`);
    assert.equal(fauxton.status, 200);
    assert.match(fauxton.text, /<html/i);
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

  test('nothing changed and the embedded server never died', async () => {
    assert.equal(await snapshot(), before0);
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
