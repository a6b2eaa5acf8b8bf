// Long-polling feeds through the ingress cannot starve everybody else
// (ingress.feeds): before the limit one reader holding 64 long polls on a
// quiet database took every connection of the proxy's pool, and every other
// read, Fauxton and logins included, waited until a change came. Now feeds
// beyond an account's share, or everybody's, get 429 INGRESS_TOO_MANY_FEEDS,
// short requests always find a connection, and a feed whose client goes
// away gives its place back. Runs on the embedded server and on CouchDB 3.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { startStack, http, type Stack } from '../helpers/stack.js';

let stack: Stack;
before(async () => {
  stack = await startStack({ yaml: { ingress: { feeds: { max_open: 3, max_open_per_user: 2, max_requests_per_user: 4 } } } });
});
after(async () => {
  await stack?.stop();
});

/** A long poll on a database nobody writes to; the heartbeat keeps it open on both servers. */
const QUIET_FEED = '/log_fail2ban/_changes?feed=longpoll&since=now&heartbeat=5000';

interface OpenFeed {
  req: ClientRequest;
  /** The answer's status once its headers came (a 429 comes at once; an admitted feed's later or never). */
  status: Promise<number>;
}

function openFeed(auth: string, path = QUIET_FEED): OpenFeed {
  const req = httpRequest(`${stack.url}${path}`, { headers: { authorization: auth }, agent: false });
  const status = new Promise<number>((resolve) => {
    req.on('response', (res: IncomingMessage) => {
      resolve(res.statusCode ?? 0);
      res.resume();
    });
    req.on('error', () => resolve(-1));
  });
  req.end();
  return { req, status };
}

async function metric(name: string): Promise<number> {
  const text = (await http(`${stack.url}/_couchlog/metrics`)).text;
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && !line.startsWith('#')) sum += Number(line.split(' ').pop());
  return sum;
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  // Up to a minute: on a loaded 3-node cluster abandoned requests take seconds to be given back.
  for (let i = 0; i < 1200; i++) {
    if (await check()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting until ${what}`);
}

test('an account beyond its share of feeds gets 429; other reads and logins go on', async () => {
  const held = [openFeed(stack.auth.reader), openFeed(stack.auth.reader)];
  try {
    await until('two feeds are open', async () => (await metric('couchlog_ingress_feeds_open')) === 2);
    const third = await http(`${stack.url}${QUIET_FEED}`, { headers: { authorization: stack.auth.reader } });
    assert.equal(third.status, 429);
    assert.equal(third.json.error, 'too_many_requests');
    assert.equal(third.json.code, 'INGRESS_TOO_MANY_FEEDS');
    assert.ok(Number(third.headers.get('retry-after')) >= 1);
    assert.ok((await metric('couchlog_ingress_feeds_refused_total{reason="user"}')) >= 1);
    // Short requests of the same account and of others are not feeds.
    const started = Date.now();
    assert.equal((await http(`${stack.url}/log_fail2ban/_changes?limit=1`, { headers: { authorization: stack.auth.reader } })).status, 200);
    assert.equal((await http(`${stack.url}/log_appname/_all_docs?limit=1`, { headers: { authorization: stack.auth.admin } })).status, 200);
    assert.equal((await http(`${stack.url}/_session`, { headers: { authorization: stack.auth.reader } })).status, 200);
    // Not queued behind the held feeds (which never end by themselves): seconds at most, even on a loaded cluster.
    assert.ok(Date.now() - started < 30_000, `${Date.now() - started} ms`);
  } finally {
    for (const f of held) f.req.destroy();
  }
  await until('the feeds are given back', async () => (await metric('couchlog_ingress_feeds_open')) === 0);
});

test('beyond max_open in all, every account waits; a feed whose client goes away frees its place', async () => {
  const held = [openFeed(stack.auth.reader), openFeed(stack.auth.reader), openFeed(stack.auth.admin)];
  try {
    await until('three feeds are open', async () => (await metric('couchlog_ingress_feeds_open')) === 3);
    const refused = await http(`${stack.url}${QUIET_FEED}`, { headers: { authorization: stack.auth.admin } });
    assert.equal(refused.status, 429);
    assert.equal(refused.json.code, 'INGRESS_TOO_MANY_FEEDS');
    assert.ok((await metric('couchlog_ingress_feeds_refused_total{reason="total"}')) >= 1);
    held[0]!.req.destroy();
    await until('the abandoned feed is given back', async () => (await metric('couchlog_ingress_feeds_open')) === 2);
    const again = openFeed(stack.auth.admin);
    held.push(again);
    await until('the freed place is taken', async () => (await metric('couchlog_ingress_feeds_open')) === 3);
  } finally {
    for (const f of held) f.req.destroy();
  }
  await until('every feed is given back', async () => (await metric('couchlog_ingress_feeds_open')) === 0);
});

test('an admitted feed works as before: a write ends it with the change, and its place is given back', async () => {
  // On log_appname: the quiet feeds on log_fail2ban must never have a change to hand out (on a cluster a lagging
  // copy can answer since=now with a change written earlier).
  const feed = openFeed(stack.auth.reader, '/log_appname/_changes?feed=longpoll&since=now&heartbeat=5000&include_docs=true');
  let body = '';
  const done = new Promise<void>((resolve) => {
    feed.req.on('response', (res) => {
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve());
    });
  });
  try {
    await until('the feed is open', async () => (await metric('couchlog_ingress_feeds_open')) === 1);
    assert.equal(await feed.status, 200);
    const posted = await http(`${stack.url}/log_appname`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"msg":"wakes the feed"}',
    });
    assert.ok(posted.status === 201 || posted.status === 202, String(posted.status));
    await done;
    const answer = JSON.parse(body.trim()) as { results: Array<{ id: string; doc: { msg: string } }>; last_seq: unknown };
    assert.equal(answer.results.length, 1);
    assert.equal(answer.results[0]!.doc.msg, 'wakes the feed');
    assert.ok(answer.last_seq !== undefined);
  } finally {
    feed.req.destroy();
  }
  await until('the ended feed is given back', async () => (await metric('couchlog_ingress_feeds_open')) === 0);
});

test('a long poll without heartbeat ends after its timeout with no results, as in CouchDB', async () => {
  // A database nobody writes to here: on a cluster, since=now may still hand out a change made a moment ago.
  const started = Date.now();
  const res = await http(`${stack.url}/log_http/_changes?feed=longpoll&since=now&timeout=1000`, { headers: { authorization: stack.auth.reader } });
  const took = Date.now() - started;
  assert.equal(res.status, 200);
  const answer = JSON.parse(res.text.trim()) as { results: unknown[]; last_seq: unknown };
  assert.deepEqual(answer.results, []);
  assert.ok(answer.last_seq !== undefined && answer.last_seq !== null);
  assert.ok(took >= 900 && took < 10_000, `${took} ms`);
  await until('the ended feed is given back', async () => (await metric('couchlog_ingress_feeds_open')) === 0);
});

test('a client that goes away while its credentials are checked does not keep its place', async () => {
  // A fresh session each time: its cookie is not in the credential cache, so the check takes a round trip to CouchDB.
  for (let i = 0; i < 12; i++) {
    const login = await http(`${stack.url}/_session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: stack.config.users.reader.user, password: stack.config.users.reader.password }),
    });
    const cookie = String(login.headers.get('set-cookie')).split(';', 1)[0]!;
    const req = httpRequest(`${stack.url}${QUIET_FEED}`, { headers: { cookie }, agent: false });
    req.on('error', () => undefined);
    req.end();
    setTimeout(() => req.destroy(), i % 3);
    await sleep(20);
  }
  await until('every place given back', async () => (await metric('couchlog_ingress_feeds_open')) === 0);
  // The account still gets its feeds.
  const held = [openFeed(stack.auth.reader), openFeed(stack.auth.reader)];
  try {
    await until('two feeds are open', async () => (await metric('couchlog_ingress_feeds_open')) === 2);
  } finally {
    for (const f of held) f.req.destroy();
  }
  await until('given back', async () => (await metric('couchlog_ingress_feeds_open')) === 0);
});

test('heartbeat and timeout beyond what a timer holds are clamped, not fired at once', async () => {
  // Node fires a timer above 2^31-1 ms after 1 ms: heartbeat=1e10 used to mean a newline every millisecond.
  const feed = openFeed(stack.auth.reader, '/log_fail2ban/_changes?feed=longpoll&since=now&heartbeat=10000000000');
  let bytes = 0;
  feed.req.on('response', (res) => res.on('data', (c: Buffer) => (bytes += c.length)));
  try {
    await sleep(1500);
    assert.ok(bytes < 200, `${bytes} bytes in 1.5 s`);
  } finally {
    feed.req.destroy();
  }
  const started = Date.now();
  const ctl = new AbortController();
  setTimeout(() => ctl.abort(), 1500);
  const answered = await fetch(`${stack.url}/log_fail2ban/_changes?feed=longpoll&since=now&timeout=3000000000`, {
    headers: { authorization: stack.auth.reader },
    signal: ctl.signal,
  })
    .then((r) => r.text())
    .then(
      () => true,
      () => false,
    );
  assert.equal(answered, false, `a timeout of 3e9 ms answered after ${Date.now() - started} ms`);
  await until('given back', async () => (await metric('couchlog_ingress_feeds_open')) === 0);
});

test("requests whose bodies come a byte at a time hold at most an account's share of the connections", async () => {
  const slow: ClientRequest[] = [];
  const checksBefore = await metric('couchlog_ingress_auth_checks_total');
  for (let i = 0; i < 4; i++) {
    const req = httpRequest(`${stack.url}/log_appname/_all_docs`, {
      method: 'POST',
      headers: { authorization: stack.auth.reader, 'content-type': 'application/json', 'content-length': '100' },
      agent: false,
    });
    req.on('error', () => undefined);
    req.write('{"keys":[');
    slow.push(req);
  }
  try {
    // The four are admitted once their credentials are checked (counted), and a probe sent before
    // that would take a slot from them: wait for the evidence, not a fixed time (a loaded machine
    // may take longer than any), then leave the admissions a moment to follow their checks.
    await until('the four slow requests were checked', async () => (await metric('couchlog_ingress_auth_checks_total')) >= checksBefore + 4);
    await sleep(200);
    const refused = await http(`${stack.url}/log_appname/_all_docs?limit=1`, { headers: { authorization: stack.auth.reader } });
    assert.equal(refused.status, 429, refused.text);
    assert.equal(refused.json.code, 'INGRESS_TOO_MANY_PROXIED');
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    // Other accounts are not held up.
    assert.equal((await http(`${stack.url}/log_appname/_all_docs?limit=1`, { headers: { authorization: stack.auth.admin } })).status, 200);
  } finally {
    for (const r of slow) r.destroy();
  }
  await until(
    'the account is served again',
    async () => (await http(`${stack.url}/log_appname/_all_docs?limit=1`, { headers: { authorization: stack.auth.reader } })).status === 200,
  );
});
