// Setup against the embedded server: idempotent (a second run changes
// nothing, not even a design document revision), and it repairs drift.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, http, JSON_TYPE, freePort, type Stack } from '../helpers/stack.js';
import { adminClient } from '../../lib/couch/admin-client.js';
import { runSetup } from '../../cli/run-setup.js';

let stack: Stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

async function revisions(): Promise<Record<string, string>> {
  const admin = { authorization: stack.auth.admin };
  const out: Record<string, string> = {};
  for (const db of ['log_appname', 'log_fail2ban']) {
    const ddocs = await http(`${stack.couchUrl}/${db}/_all_docs?startkey=%22_design%2F%22&endkey=%22_design0%22`, { headers: admin });
    for (const row of ddocs.json.rows as Array<{ id: string; value: { rev: string } }>) out[`${db}/${row.id}`] = row.value.rev;
  }
  for (const user of ['writer', 'reader']) {
    out[user] = (await http(`${stack.couchUrl}/_users/org.couchdb.user:${user}`, { headers: admin })).json._rev;
  }
  return out;
}

test('a second setup changes nothing, not even a design document revision', async () => {
  const before0 = await revisions();
  assert.deepEqual(
    Object.keys(before0)
      .filter((k) => k.includes('_design'))
      .sort(),
    ['log_appname/_design/couchlog', 'log_appname/_design/logs', 'log_fail2ban/_design/couchlog', 'log_fail2ban/_design/logs', 'log_fail2ban/_design/report'],
  );
  const report = await runSetup(stack.config);
  assert.deepEqual(report.changes, []);
  assert.deepEqual(await revisions(), before0);
});

test('setup restores a loosened _security object and a changed design document', async () => {
  const admin = { ...JSON_TYPE, authorization: stack.auth.admin };
  await http(`${stack.couchUrl}/log_appname/_security`, { method: 'PUT', headers: admin, body: '{"members":{"names":[],"roles":[]}}' });
  const ddoc = (await http(`${stack.couchUrl}/log_appname/_design/couchlog`, { headers: admin })).json;
  await http(`${stack.couchUrl}/log_appname/_design/couchlog`, {
    method: 'PUT',
    headers: admin,
    body: JSON.stringify({ ...ddoc, validate_doc_update: 'function(){}' }),
  });
  const report = await runSetup(stack.config);
  assert.deepEqual(
    report.changes.sort(),
    ['set log_appname/_security (members: roles log_writer, log_reader; admins: none)', 'updated log_appname/_design/couchlog'].sort(),
  );
  const sec = (await http(`${stack.couchUrl}/log_appname/_security`, { headers: admin })).json;
  assert.deepEqual(sec.members.roles, ['log_writer', 'log_reader']);
  assert.deepEqual((await runSetup(stack.config)).changes, []);
});

test('a changed reader password is applied by the next setup', async () => {
  stack.config.users.reader.password = 'a-new-reader-password';
  const report = await runSetup(stack.config);
  assert.deepEqual(report.changes, ['updated user "reader" (password)']);
  const auth = `Basic ${Buffer.from('reader:a-new-reader-password').toString('base64')}`;
  // CouchDB 3 caches users and learns of the change from _users' changes
  // feed, a moment later. Few tries: after 5 failures it locks the account
  // out for this address (chttpd_auth_lockout).
  let session = await http(`${stack.couchUrl}/_session`, { headers: { authorization: auth } });
  for (const wait of [1000, 2000, 4000]) {
    if (session.status !== 401) break;
    await new Promise((ok) => setTimeout(ok, wait));
    session = await http(`${stack.couchUrl}/_session`, { headers: { authorization: auth } });
  }
  assert.equal(session.json?.userCtx?.name, 'reader', `${session.status} ${session.text}`);
});

test('require_valid_user is on', async () => {
  const admin = adminClient(stack.config);
  const { flavor } = await admin.serverInfo();
  // Where each server keeps it (PouchDB Server: /_config; CouchDB 3: /_node/_local/_config, both sections).
  const keys =
    flavor === 'couchdb'
      ? [
          ['chttpd', 'require_valid_user'],
          ['chttpd_auth', 'require_valid_user'],
        ]
      : [['couch_httpd_auth', 'require_valid_user']];
  for (const [section, key] of keys) {
    const res = await http(`${stack.couchUrl}${await admin.configPath(section!, key!)}`, { headers: { authorization: stack.auth.admin } });
    assert.equal(res.json, 'true', `${section}/${key}: ${res.text}`);
  }
  if (flavor === 'couchdb') {
    // CouchDB 3 enforces it itself (PouchDB Server does not: the ingress does).
    const anonymous = await http(`${stack.couchUrl}/log_appname`);
    assert.equal(anonymous.status, 401, anonymous.text);
  }
});

test('an external ClickHouse that does not answer leaves setup unfinished (couchlog setup exits 1); the embedded one not running is a note', async () => {
  // Found by a newcomer's test: setup printed a note and exited 0, so an upgrade script could not tell the table was not made.
  const closed = `http://127.0.0.1:${await freePort()}`;
  const external = await runSetup({ ...stack.config, clickhouse: { ...stack.config.clickhouse, enabled: true, url: closed } });
  assert.equal(external.unfinished.length, 1, JSON.stringify(external));
  assert.match(external.unfinished[0]!, /ClickHouse at http:\/\/127\.0\.0\.1:\d+ is not reachable: its table was not created/);
  const embedded = await runSetup({
    ...stack.config,
    clickhouse: { ...stack.config.clickhouse, enabled: true, url: null, embedded: { ...stack.config.clickhouse.embedded, http_port: await freePort() } },
  });
  assert.deepEqual(embedded.unfinished, []);
  assert.equal(embedded.notes.length, 1);
});

test("with the correlator's ClickHouse output off, setup leaves ClickHouse alone: no probe, no note", async () => {
  const closed = `http://127.0.0.1:${await freePort()}`;
  const config = structuredClone(stack.config);
  config.clickhouse = { ...config.clickhouse, enabled: true, url: closed };
  config.correlator.outputs.clickhouse.enabled = false;
  const report = await runSetup(config);
  assert.deepEqual([report.unfinished, report.notes], [[], []]);
});

test('a server that is not CouchDB is named as such, not blamed on the admin password; a wrong password is', async () => {
  const { createServer } = await import('node:http');
  const other = createServer((_req, res) => res.writeHead(404, { 'content-type': 'text/plain' }).end('not here'));
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(other.address() as { port: number }).port}`;
    await assert.rejects(runSetup({ ...stack.config, couchdb: { ...stack.config.couchdb, url } }), /is not a CouchDB server \(GET \/ did not answer/);
  } finally {
    other.close();
  }
  const wrong = structuredClone(stack.config);
  wrong.couchdb.url = stack.couchUrl;
  wrong.couchdb.admin.password = 'not-the-admin-password';
  await assert.rejects(runSetup(wrong), /the admin credentials for user "\w+" are rejected by/);
});
