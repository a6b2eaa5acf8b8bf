// Failed authentications are limited per client address (issue 12, defect
// 13): 429 with Retry-After once an address has used up its failures, for
// requests with credentials and logins; anonymous writes and other
// addresses go on; successful authentications are never counted.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, http, JSON_TYPE, type Stack } from '../helpers/stack.js';
import { basicAuth } from '../../lib/couch/basic-auth.js';

let stack: Stack;
before(async () => {
  stack = await startStack({ yaml: { ingress: { auth_failures: { max: 4, window_ms: 3000 } } } });
});
after(async () => {
  await stack?.stop();
});

test('successful authentications are not counted nor slowed', async () => {
  const started = Date.now();
  for (let i = 0; i < 30; i++) {
    const res = await http(`${stack.url}/log_appname/_all_docs?limit=1&i=${i}`, { headers: { authorization: stack.auth.reader } });
    assert.equal(res.status, 200);
  }
  assert.ok(Date.now() - started < 15_000, '30 reads at the pace of reads, no delay added');
});

test('after max failures from an address: 429 with Retry-After, then the window ends', async () => {
  const wrong = { authorization: basicAuth(stack.config.couchdb.admin.user, 'guess') };
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await http(`${stack.url}/_all_dbs?i=${i}`, { headers: wrong })).status);
  const login = await http(`${stack.url}/_session`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ name: 'reader', password: 'guess' }) });
  statuses.push(login.status);
  assert.deepEqual(statuses, [401, 401, 401, 401]);

  const limited = await http(`${stack.url}/_all_dbs`, { headers: wrong });
  assert.equal(limited.status, 429);
  assert.equal(limited.json.error, 'too_many_requests');
  assert.equal(limited.json.code, 'AUTH_TOO_MANY_FAILURES');
  const retryAfter = Number(limited.headers.get('retry-after'));
  assert.ok(retryAfter >= 1 && retryAfter <= 3, String(retryAfter));
  // Right credentials from that address wait too; so does a login.
  assert.equal((await http(`${stack.url}/_all_dbs`, { headers: { authorization: stack.auth.admin } })).status, 429);
  assert.equal((await http(`${stack.url}/_session`, { method: 'POST', headers: JSON_TYPE, body: '{"name":"reader","password":"x"}' })).status, 429);
  // A forged X-Forwarded-For (no trusted proxy) changes nothing.
  assert.equal((await http(`${stack.url}/_all_dbs`, { headers: { ...wrong, 'x-forwarded-for': '203.0.113.9' } })).status, 429);
  // Anonymous writes do not authenticate: they go on.
  assert.equal((await http(`${stack.url}/log_appname`, { method: 'POST', headers: JSON_TYPE, body: '{"during":"limit"}' })).status, 201);

  await new Promise((r) => setTimeout(r, retryAfter * 1000 + 100));
  assert.equal((await http(`${stack.url}/_all_dbs`, { headers: { authorization: stack.auth.admin } })).status, 200);
});

test('HEC tokens guessed are failed authentications too: limited per address like passwords', async () => {
  // The window of the test before is over (it waited for it).
  const guess = (i: number) =>
    http(`${stack.url}/services/collector/event`, { method: 'POST', headers: { authorization: `Splunk guess-${i}` }, body: '{"event":{"a":1}}' });
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) statuses.push((await guess(i)).status);
  assert.deepEqual(statuses, [403, 403, 403, 403], 'Invalid token (code 4)');
  const limited = await guess(99);
  assert.equal(limited.status, 503, 'HEC says busy (code 9) with Retry-After, as HEC clients expect');
  assert.equal(limited.json.code, 9);
  assert.ok(Number(limited.headers.get('retry-after')) >= 1);
  // A password from that address waits too: it is the same guesser.
  assert.equal((await http(`${stack.url}/_all_dbs`, { headers: { authorization: stack.auth.admin } })).status, 429);
  await new Promise((r) => setTimeout(r, 3100));
});

test('guesses sent at once: at most max are judged, the rest get 429 at once', async () => {
  // The windows of the tests before are over (each waited for its own).
  const guesses = await Promise.all(
    // Not the reader's name: CouchDB 3.4+ locks a name out after 5 failures from an address.
    Array.from({ length: 40 }, (_, i) => http(`${stack.url}/_all_dbs?i=${i}`, { headers: { authorization: basicAuth('at-once', `guess-${i}`) } })),
  );
  const judged = guesses.filter((r) => r.status === 401).length;
  const limited = guesses.filter((r) => r.status === 429);
  assert.ok(judged >= 1 && judged <= 4, `${judged} guesses judged with auth_failures.max 4 (before: all 40)`);
  assert.equal(judged + limited.length, 40, guesses.map((r) => r.status).join(','));
  for (const r of limited) {
    assert.ok(['AUTH_TOO_MANY_ATTEMPTS', 'AUTH_TOO_MANY_FAILURES'].includes(r.json.code), r.json.code);
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
  }
  // HEC tokens likewise.
  const tokens = await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      http(`${stack.url}/services/collector/event`, { method: 'POST', headers: { authorization: `Splunk at-once-${i}` }, body: '{"event":{"a":1}}' }),
    ),
  );
  assert.equal(tokens.filter((r) => r.status === 403).length, 0, 'the address has used its failures: no token is judged');
  await new Promise((r) => setTimeout(r, 3100));
});

test('a busy client with credentials new to the ingress is never throttled: the same credentials at once hold one place', async () => {
  const login = await http(`${stack.url}/_session`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `name=${encodeURIComponent(stack.config.users.reader.user)}&password=${encodeURIComponent(stack.config.users.reader.password!)}`,
  });
  assert.equal(login.status, 200);
  const cookie = (login.headers.getSetCookie().find((c) => c.startsWith('AuthSession=')) ?? '').split(';', 1)[0]!;
  assert.match(cookie, /^AuthSession=./);
  // 30 requests at once (feeds.max_requests_per_user is 32) with a session the ingress has not checked yet, next to the writer's own.
  const reads = Array.from({ length: 30 }, (_, i) => http(`${stack.url}/log_appname/_all_docs?limit=1&i=${i}`, { headers: { cookie } }));
  const writes = Array.from({ length: 20 }, (_, i) =>
    http(`${stack.url}/log_appname`, { method: 'POST', headers: { ...JSON_TYPE, authorization: stack.auth.writer }, body: JSON.stringify({ busy: i }) }),
  );
  const statuses = (await Promise.all([...reads, ...writes])).map((r) => r.status);
  assert.deepEqual(statuses, [...Array(30).fill(200), ...Array(20).fill(201)]);
});
