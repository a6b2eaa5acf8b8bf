// The embedded server's password hashing (issue 12, defect 13): setup raises
// PouchDB Server's PBKDF2 iterations from 10 to CouchDB 3's default
// (600,000) and rehashes the accounts it manages that are below it; the
// hashing is native and memoised, so logins stay fast.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, http, embeddedOnly, type Stack } from '../helpers/stack.js';
import { runSetup, EMBEDDED_PBKDF2_ITERATIONS } from '../../cli/run-setup.js';

const SKIP = embeddedOnly('CouchDB 3.5 already defaults to 600,000 iterations and upgrades hashes on login');
let stack: Stack;
before(async () => {
  if (!SKIP) stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

test('setup: iterations raised, weaker hashes rewritten, logins still fast, idempotent', { skip: SKIP }, async () => {
  const admin = { authorization: stack.auth.admin, 'content-type': 'application/json' };
  assert.equal((await http(`${stack.couchUrl}/_config/couch_httpd_auth/iterations`, { headers: admin })).json, String(EMBEDDED_PBKDF2_ITERATIONS));
  const userPath = `${stack.couchUrl}/_users/org.couchdb.user:${stack.config.users.reader.user}`;
  assert.equal(Number((await http(userPath, { headers: admin })).json.iterations), EMBEDDED_PBKDF2_ITERATIONS);

  // An older install: 10 iterations (in force after a restart), the reader hashed with them.
  await http(`${stack.couchUrl}/_config/couch_httpd_auth/iterations`, { method: 'PUT', headers: admin, body: '"10"' });
  const restart = async () => {
    await stack.couch.stop();
    await (stack.couch as { start(): Promise<void> }).start();
  };
  await restart();
  const { derived_key: _k, salt: _s, iterations: _i, password_scheme: _p, ...doc } = (await http(userPath, { headers: admin })).json;
  await http(userPath, { method: 'PUT', headers: admin, body: JSON.stringify({ ...doc, password: stack.config.users.reader.password }) });
  assert.equal(Number((await http(userPath, { headers: admin })).json.iterations), 10);

  // Setup raises the setting; after the next restart (couchlog up restarts the server), it rehashes.
  const first = await runSetup(stack.config);
  assert.ok(first.changes.includes(`set couch_httpd_auth/iterations = ${EMBEDDED_PBKDF2_ITERATIONS}`), first.changes.join('\n'));
  await restart();
  const second = await runSetup(stack.config);
  assert.ok(
    second.changes.some((c) => c.includes('password hash (10 -> 600000')),
    second.changes.join('\n'),
  );
  assert.equal(Number((await http(userPath, { headers: admin })).json.iterations), EMBEDDED_PBKDF2_ITERATIONS);
  assert.deepEqual((await runSetup(stack.config)).changes, []);

  const timed = async (authorization: string) => {
    const t = Date.now();
    const res = await http(`${stack.couchUrl}/_session`, { headers: { authorization } });
    return { status: res.status, ms: Date.now() - t };
  };
  await timed(stack.auth.reader);
  // Compared with a full hash measured in the same run (a wrong password is
  // never memoised), so a loaded machine slows both sides alike.
  const again: Array<{ status: number; ms: number }> = [];
  for (let i = 0; i < 5; i++) again.push(await timed(stack.auth.reader));
  for (const a of again) assert.equal(a.status, 200);
  const wrong = await timed('Basic ' + Buffer.from(`${stack.config.users.reader.user}:wrong`).toString('base64'));
  assert.equal(wrong.status, 401);
  const fastest = Math.min(...again.map((a) => a.ms));
  assert.ok(fastest < wrong.ms / 3, `a repeated login took ${fastest} ms at best, a wrong password ${wrong.ms} ms`);
  assert.ok(wrong.ms < 5000, `a wrong password took ${wrong.ms} ms`);
  // Through the ingress as well.
  assert.equal((await http(`${stack.url}/log_appname/_all_docs?limit=1`, { headers: { authorization: stack.auth.reader } })).status, 200);
});
