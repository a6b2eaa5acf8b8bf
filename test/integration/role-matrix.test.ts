// The role policy through the ingress (README, "Security model"): every
// role x every route family x the methods that matter. Refusals are the
// ingress's own 403 (CouchDB-style body, code AUTH_ROLE_FORBIDDEN or
// AUTH_ADMIN_ONLY) decided before anything is forwarded: CouchDB's state is
// unchanged afterwards. Runs on the embedded server and on CouchDB 3.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, http, JSON_TYPE, type Stack } from '../helpers/stack.js';
import { couchSnapshot } from '../helpers/leak-probe-cases.js';

type Who = 'anonymous' | 'writer' | 'reader' | 'admin';
/** ok: the ingress let it through (CouchDB answered, < 500); 403 / 401: the ingress refused it. */
type Expect = 'ok' | 403 | 401;

interface Case {
  method: string;
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  expect: Record<Who, Expect>;
}

const WRITE: Record<Who, Expect> = { anonymous: 'ok', writer: 'ok', reader: 403, admin: 'ok' };
const READ: Record<Who, Expect> = { anonymous: 401, writer: 403, reader: 'ok', admin: 'ok' };
const ADMIN: Record<Who, Expect> = { anonymous: 401, writer: 403, reader: 403, admin: 'ok' };
/** Refused to everybody but admins; not sent as admin (it would change something). */
const ADMIN_ONLY: Record<Who, Expect> = { anonymous: 401, writer: 403, reader: 403, admin: 'ok' };
const PUBLIC: Record<Who, Expect> = { anonymous: 'ok', writer: 'ok', reader: 'ok', admin: 'ok' };

const DB = 'log_appname';
/** Not a log database; its _security makes the reader a member (an admin's database for something else). */
const OTHER = 'matrix_other';

function cases(id: string): Case[] {
  return [
    // write routes
    { method: 'POST', path: `/${DB}`, body: { msg: 'role matrix' }, expect: WRITE },
    { method: 'POST', path: `/${DB}/_bulk_docs`, body: { docs: [{ msg: 'role matrix bulk' }] }, expect: WRITE },
    // public
    { method: 'GET', path: '/_session', expect: PUBLIC },
    { method: 'GET', path: '/_couchlog/health', expect: PUBLIC },
    // documents, database, server reads
    { method: 'GET', path: '/', expect: READ },
    { method: 'GET', path: '/_all_dbs', expect: READ },
    { method: 'GET', path: `/${DB}`, expect: READ },
    { method: 'HEAD', path: `/${DB}`, expect: READ },
    { method: 'GET', path: `/${DB}/${id}`, expect: READ },
    { method: 'HEAD', path: `/${DB}/${id}`, expect: READ },
    { method: 'GET', path: `/${DB}/${id}?revs_info=true`, expect: READ },
    { method: 'GET', path: `/${DB}/_all_docs`, expect: READ },
    { method: 'POST', path: `/${DB}/_all_docs`, body: { keys: [id] }, expect: READ },
    { method: 'GET', path: `/${DB}/_changes?limit=5`, expect: READ },
    // (a _selector filter kills PouchDB Server: refused to all but admins, and not sent as admin here)
    { method: 'GET', path: `/${DB}/_changes?filter=_selector`, expect: ADMIN_ONLY },
    { method: 'POST', path: `/${DB}/_changes`, body: { selector: {} }, expect: ADMIN_ONLY },
    // any filter naming something missing kills PouchDB Server; keys are read decoded
    { method: 'GET', path: `/${DB}/_changes?filter=x/y`, expect: ADMIN_ONLY },
    { method: 'GET', path: `/${DB}/_changes?filter=_view&view=x/y`, expect: ADMIN_ONLY },
    { method: 'GET', path: `/${DB}/_changes?%66ilter=_selector`, expect: ADMIN_ONLY },
    { method: 'POST', path: `/${DB}/_find`, body: { selector: { msg: { $exists: true } } }, expect: READ },
    { method: 'POST', path: `/${DB}/_explain`, body: { selector: { msg: { $exists: true } } }, expect: READ },
    { method: 'POST', path: `/${DB}/_bulk_get`, body: { docs: [{ id }] }, expect: READ },
    { method: 'GET', path: `/${DB}/_index`, expect: READ },
    { method: 'GET', path: `/${DB}/_design/logs`, expect: READ },
    { method: 'GET', path: `/${DB}/_design/logs/_view/by_time`, expect: READ },
    { method: 'POST', path: `/${DB}/_design/logs/_view/by_time`, body: { keys: [] }, expect: READ },
    { method: 'GET', path: `/${DB}/_design/logs/_list/csv/by_time`, expect: READ },
    // what writes or administers
    { method: 'POST', path: `/${DB}/_index`, body: { index: { fields: ['msg'] } }, expect: ADMIN_ONLY },
    { method: 'PUT', path: `/${DB}/${id}`, body: { changed: true }, expect: ADMIN_ONLY },
    { method: 'DELETE', path: `/${DB}/${id}?rev=1-x`, expect: ADMIN_ONLY },
    // (COPY is not routed at all: 404 for everybody, see leak-probe.test.ts)
    { method: 'PUT', path: `/${DB}/_local/correlator`, body: { seq: 0 }, expect: ADMIN_ONLY },
    { method: 'GET', path: `/${DB}/_local/correlator`, expect: ADMIN },
    { method: 'GET', path: `/${DB}/_local_docs`, expect: ADMIN },
    { method: 'PUT', path: `/${DB}/_design/evil`, body: { views: {} }, expect: ADMIN_ONLY },
    { method: 'PUT', path: `/${DB}/_design%2Fevil`, body: { views: {} }, expect: ADMIN_ONLY },
    { method: 'POST', path: `/${DB}/_design/logs/_update/x`, body: {}, expect: ADMIN_ONLY },
    { method: 'GET', path: `/${DB}/_security`, expect: ADMIN },
    { method: 'PUT', path: `/${DB}/_security`, body: { members: {} }, expect: ADMIN_ONLY },
    { method: 'POST', path: `/${DB}/_purge`, body: { [id]: ['1-x'] }, expect: ADMIN_ONLY },
    { method: 'POST', path: `/${DB}/_compact`, body: {}, expect: ADMIN_ONLY },
    { method: 'POST', path: `/${DB}/_view_cleanup`, body: {}, expect: ADMIN_ONLY },
    { method: 'POST', path: `/${DB}/_revs_diff`, body: { [id]: ['1-x'] }, expect: ADMIN_ONLY },
    { method: 'POST', path: '/_replicate', body: { source: '_users', target: 'log_copy', create_target: true }, expect: ADMIN_ONLY },
    { method: 'GET', path: '/_users/_all_docs', expect: ADMIN },
    { method: 'GET', path: '/_users/org.couchdb.user:reader', expect: ADMIN },
    { method: 'GET', path: '/_config', expect: ADMIN },
    { method: 'GET', path: '/_node/_local/_config', expect: ADMIN },
    { method: 'GET', path: '/_active_tasks', expect: ADMIN },
    { method: 'GET', path: '/_replicator/_all_docs', expect: ADMIN },
    // a database that is not a log database: refused to readers even where its _security lets them in
    { method: 'GET', path: `/${OTHER}`, expect: ADMIN },
    { method: 'GET', path: `/${OTHER}/visible`, expect: ADMIN },
    { method: 'GET', path: `/${OTHER}/_all_docs`, expect: ADMIN },
    { method: 'POST', path: `/${OTHER}/_find`, body: { selector: {} }, expect: ADMIN },
    { method: 'PUT', path: '/log_created_by_matrix', expect: ADMIN_ONLY },
    { method: 'DELETE', path: `/${DB}`, expect: ADMIN_ONLY },
  ];
}

let stack: Stack;
let id: string;

before(async () => {
  stack = await startStack();
  const res = await http(`${stack.url}/${DB}`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ msg: 'seed' }) });
  assert.equal(res.status, 201);
  id = res.json.id;
  const admin = { authorization: stack.auth.admin, ...JSON_TYPE };
  const made = await http(`${stack.couchUrl}/${OTHER}`, { method: 'PUT', headers: admin });
  assert.ok(made.status === 201 || made.status === 412, made.text);
  const security = { members: { roles: ['log_reader'] }, admins: { roles: [] } };
  assert.equal((await http(`${stack.couchUrl}/${OTHER}/_security`, { method: 'PUT', headers: admin, body: JSON.stringify(security) })).status, 200);
  const doc = await http(`${stack.couchUrl}/${OTHER}/visible`, { method: 'PUT', headers: admin, body: JSON.stringify({ secret: 'not a log' }) });
  assert.ok(doc.status === 201 || doc.status === 409, doc.text);
  // CouchDB itself would let the reader in: the ingress's refusal is the layer under test.
  const direct = await http(`${stack.couchUrl}/${OTHER}/visible`, { headers: { authorization: stack.auth.reader } });
  assert.equal(direct.status, 200, direct.text);
});
after(async () => {
  if (stack) await http(`${stack.couchUrl}/${OTHER}`, { method: 'DELETE', headers: { authorization: stack.auth.admin } });
  await stack?.stop();
});

function authOf(who: Who): Record<string, string> {
  return who === 'anonymous' ? {} : { authorization: stack.auth[who] };
}

async function send(c: Case, who: Who) {
  const headers: Record<string, string> = { ...authOf(who), ...c.headers };
  if (c.body !== undefined) headers['content-type'] = 'application/json';
  return http(`${stack.url}${c.path}`, { method: c.method, headers, body: c.body === undefined ? undefined : JSON.stringify(c.body) });
}

describe('role matrix', () => {
  for (const who of ['anonymous', 'writer', 'reader'] as const) {
    test(`${who}: every route family`, async () => {
      const before0 = await couchSnapshot(stack);
      const failures: string[] = [];
      let writes = 0;
      for (const c of cases(id)) {
        const want = c.expect[who];
        const res = await send(c, who);
        const label = `${who} ${c.method} ${c.path}: ${res.status} ${res.text.slice(0, 160)}`;
        if (want === 'ok') {
          // CouchDB may still refuse on its own (CouchDB 3: anonymous GET /_session with
          // require_valid_user, _all_dbs for non-admins): only the ingress's refusals carry a code.
          const refusedByIngress = typeof res.json?.code === 'string' && res.json.code.startsWith('AUTH_');
          if (refusedByIngress || res.status >= 500 || (c.method === 'HEAD' && res.status >= 400)) failures.push(`${label} (expected to pass)`);
          if (res.status === 201) writes++;
        } else {
          if (res.status !== want) failures.push(`${label} (expected ${want})`);
          else if (c.method !== 'HEAD') {
            if (res.json?.error !== (want === 403 ? 'forbidden' : 'unauthorized') || typeof res.json?.code !== 'string')
              failures.push(`${label} (not the ingress's CouchDB-style body)`);
          }
        }
      }
      assert.deepEqual(failures, []);
      // Only the write routes changed anything: same databases, security, config; only log_appname grew.
      const after0 = JSON.parse(await couchSnapshot(stack));
      const was = JSON.parse(before0);
      assert.equal(after0[DB].docs, was[DB].docs + writes);
      delete after0[DB];
      delete was[DB];
      assert.deepEqual(after0, was);
    });
  }

  test('admin: reads and admin reads pass (nothing sent that would change anything)', async () => {
    const failures: string[] = [];
    for (const c of cases(id)) {
      if (c.expect.admin !== 'ok' || c.expect === ADMIN_ONLY) continue;
      if (c.method !== 'GET' && c.method !== 'HEAD' && c.expect !== WRITE && c.expect !== READ) continue;
      const res = await send(c, 'admin');
      if (res.status >= 500 || (typeof res.json?.code === 'string' && res.json.code.startsWith('AUTH_')))
        failures.push(`admin ${c.method} ${c.path}: ${res.status} ${res.text.slice(0, 160)}`);
    }
    assert.deepEqual(failures, []);
  });

  test('the writer and readers cannot read through the ingress (defect 3) or run _replicate (defect 1)', async () => {
    for (const path of [`/${DB}/_all_docs`, `/${DB}/_changes`]) {
      const res = await http(`${stack.url}${path}`, { headers: { authorization: stack.auth.writer } });
      assert.equal(res.status, 403);
      assert.equal(res.json.code, 'AUTH_ROLE_FORBIDDEN');
      assert.ok(!res.text.includes(id));
    }
    const find = await http(`${stack.url}/${DB}/_find`, {
      method: 'POST',
      headers: { ...JSON_TYPE, authorization: stack.auth.writer },
      body: '{"selector":{}}',
    });
    assert.equal(find.status, 403);
    for (const who of ['reader', 'writer'] as const) {
      const rep = await http(`${stack.url}/_replicate`, {
        method: 'POST',
        headers: { ...JSON_TYPE, authorization: stack.auth[who] },
        body: JSON.stringify({ source: `http://127.0.0.1:${new URL(stack.couchUrl).port}/_users`, target: 'log_copy', create_target: true }),
      });
      assert.equal(rep.status, 403);
      assert.ok(!rep.text.includes('/work/') && !rep.text.includes('node_modules'), 'no server paths in the answer');
    }
    const dbs = (await http(`${stack.couchUrl}/_all_dbs`, { headers: { authorization: stack.auth.admin } })).json as string[];
    assert.ok(!dbs.includes('log_copy'));
  });

  test('_local documents of log databases (where the correlator kept its checkpoint until 2026-12-04) cannot be written through the ingress by readers or the writer (defect 2)', async () => {
    for (const who of ['reader', 'writer'] as const) {
      const res = await http(`${stack.url}/log_correlated/_local/correlator`, {
        method: 'PUT',
        headers: { ...JSON_TYPE, authorization: stack.auth[who] },
        body: '{"seq":"0"}',
      });
      assert.equal(res.status, 403);
      assert.equal(res.json.error, 'forbidden');
    }
  });

  test('_users/_all_docs as the reader: 403, no internal error text (defect 6)', async () => {
    const res = await http(`${stack.url}/_users/_all_docs`, { headers: { authorization: stack.auth.reader } });
    assert.equal(res.status, 403);
    assert.deepEqual(Object.keys(res.json).sort(), ['code', 'error', 'reason']);
  });

  test('the dashboard and report pages stay reachable for readers', async () => {
    const res = await http(`${stack.url}/log_fail2ban/_design/report/_list/html/attacks`, { headers: { authorization: stack.auth.reader } });
    assert.notEqual(res.status, 403);
    assert.ok(res.status < 500);
    const changes = await http(`${stack.url}/${DB}/_changes?descending=true&include_docs=true&limit=5`, {
      headers: { authorization: stack.auth.reader, 'x-requested-with': 'XMLHttpRequest' },
    });
    assert.equal(changes.status, 200);
  });
});

describe('a _list of something missing', () => {
  test('answers 404 and leaves the server running (PouchDB Server dies on it)', async () => {
    const pid = stack.couch.pid;
    for (const path of [
      `/${DB}/_design/logs/_list/nope/by_time`,
      `/${DB}/_design/nope/_list/csv/by_time`,
      `/${DB}/_design/logs/_list/csv/nope`,
      `/${DB}/_design/logs/_list/csv/nope/by_time`,
      `/${DB}/_design/logs/_list/csv`,
    ]) {
      for (const who of ['reader', 'admin'] as const) {
        const res = await http(`${stack.url}${path}`, { headers: { authorization: stack.auth[who] } });
        // (a list without a view is not a read route for readers: 403)
        const want = who === 'reader' && path.endsWith('/_list/csv') ? 403 : 404;
        assert.equal(res.status, want, `${who} ${path}: ${res.status} ${res.text.slice(0, 120)}`);
      }
    }
    const ok = await http(`${stack.url}/${DB}/_design/logs/_list/csv/by_time`, { headers: { authorization: stack.auth.reader } });
    assert.equal(ok.status, 200);
    assert.equal(stack.couch.pid, pid, 'the server did not restart');
  });
});
