// Regression tests for issue 12's defects that are not the role policy
// (role-matrix.test.ts covers 1, 2, 3, 6): lone surrogates in ids (9),
// Expect: 100-continue (10), auto_create only after the request passed and
// its limit under concurrency (11), auto_create while CouchDB is down (12),
// the ingress's own 503 while it shuts down (14), and the writer account
// that outside guesses must not lock out (CouchDB 3.4+ lockout).
import { after, before, describe, test } from 'node:test';
import { deflateSync, gzipSync } from 'node:zlib';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { startStack, http, JSON_TYPE, freePort, couchFlavor, embeddedOnly, type Stack, storedStatus, couchCluster, countDocs } from '../helpers/stack.js';
import { buildApp } from '../../server/app.js';
import { basicAuth } from '../../lib/couch/basic-auth.js';

let stack: Stack;
before(async () => {
  // Many deliberate failed logins below: the per-address limit (auth-rate-limit.test.ts) is off here.
  stack = await startStack({ yaml: { ingress: { auth_failures: { max: 0 } } } });
});
after(async () => {
  await stack?.stop();
});

const admin = () => ({ authorization: stack.auth.admin });
async function allDbs(): Promise<string[]> {
  return (await http(`${stack.couchUrl}/_all_dbs`, { headers: admin() })).json as string[];
}

/**
 * The stored documents of log_appname that carry `probe`, the marker every document of a refused
 * request has: "nothing stored" said by content. A count before and after would compare a "before"
 * read right after earlier writes, which on a cluster may come from a copy those have not reached yet.
 */
async function probed(probe: string): Promise<unknown[]> {
  const res = await http(`${stack.couchUrl}/log_appname/_all_docs?include_docs=true`, { headers: admin() });
  assert.equal(res.status, 200, res.text);
  return (res.json.rows as Array<{ doc: { probe?: string } }>).map((r) => r.doc).filter((d) => d.probe === probe);
}

describe('defect 9: ids that are not valid Unicode', () => {
  for (const [label, path, body] of [
    ['single document', '/log_appname', '{"_id":"\\ud800x","n":1}'],
    ['array', '/log_appname', '[{"_id":"ok-1"},{"_id":"\\udc00"}]'],
    ['_bulk_docs', '/log_appname/_bulk_docs', '{"docs":[{"_id":"a\\ud800"}]}'],
  ] as const) {
    test(`${label}: 400 before anything is written`, async () => {
      const before0 = await countDocs(stack, 'log_appname');
      const res = await http(`${stack.url}${path}`, { method: 'POST', headers: JSON_TYPE, body });
      assert.equal(res.status, 400, res.text);
      assert.equal(res.json.code, 'INGRESS_BAD_ID');
      const after0 = await countDocs(stack, 'log_appname');
      assert.equal(after0, before0);
    });
  }

  test('a well-formed astral character in an id is fine', async () => {
    const res = await http(`${stack.url}/log_appname`, { method: 'POST', headers: JSON_TYPE, body: '{"_id":"emoji-\\ud83d\\ude00"}' });
    assert.equal(storedStatus(res.status), 201, res.text);
    assert.equal(res.json.id, 'emoji-\u{1F600}');
  });
});

/** A request with `Expect: 100-continue` that sends its body only after the 100. */
function expectContinue(url: string, headers: Record<string, string>, body: string): Promise<{ status: number; text: string; continued: boolean }> {
  return new Promise((resolve, reject) => {
    let continued = false;
    const req = httpRequest(
      url,
      { method: 'POST', headers: { ...headers, expect: '100-continue', 'content-length': String(Buffer.byteLength(body)) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, continued }));
      },
    );
    req.on('continue', () => {
      continued = true;
      req.end(body);
    });
    req.on('error', reject);
    req.flushHeaders();
  });
}

describe('defect 10: Expect: 100-continue', () => {
  test("a reader's large _find through the proxy", async () => {
    const body = JSON.stringify({ selector: { n: { $exists: true } }, padding: 'x'.repeat(1_100_000), limit: 1 });
    const res = await expectContinue(`${stack.url}/log_appname/_find`, { ...JSON_TYPE, authorization: stack.auth.reader }, body);
    assert.ok(res.continued);
    assert.ok(res.status === 200 || res.status === 400, `${res.status} ${res.text.slice(0, 200)}`);
    assert.ok(!res.text.includes('expect header'), res.text.slice(0, 200));
  });

  test('an anonymous write', async () => {
    const res = await expectContinue(`${stack.url}/log_appname`, JSON_TYPE, JSON.stringify({ big: 'y'.repeat(1_100_000) }));
    assert.equal(storedStatus(res.status), 201, res.text.slice(0, 200));
  });
});

describe('defect 11: auto_create', () => {
  before(async () => {
    await stack.restartIngress((c) => {
      c.ingress.auto_create = true;
      c.ingress.auto_create_max = 5;
    });
  });

  test('a refused request (415, 401, 403, 400) creates no database', async () => {
    const refused: Array<[number, Record<string, string>, string]> = [
      [415, { 'content-type': 'text/plain' }, '{}'],
      [401, { ...JSON_TYPE, authorization: basicAuth('nobody', 'wrong') }, '{}'],
      [403, { ...JSON_TYPE, authorization: stack.auth.reader }, '{}'],
      [403, JSON_TYPE, '{"_rev":"1-x"}'],
      [400, JSON_TYPE, '{not json'],
      [400, JSON_TYPE, '{"_id":"\\ud800"}'],
    ];
    for (const [i, [status, headers, body]] of refused.entries()) {
      const res = await http(`${stack.url}/log_refused${i}`, { method: 'POST', headers, body });
      assert.equal(res.status, status, `case ${i}: ${res.text}`);
    }
    const dbs = await allDbs();
    assert.deepEqual(
      dbs.filter((d) => d.startsWith('log_refused')),
      [],
    );
  });

  test('the limit holds under concurrency', async () => {
    const before0 = (await allDbs()).length;
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => http(`${stack.url}/log_burst${i}`, { method: 'POST', headers: JSON_TYPE, body: '{"n":1}' })),
    );
    const created = results.filter((r) => storedStatus(r.status) === 201).length;
    assert.equal(created, 5);
    for (const r of results) if (storedStatus(r.status) !== 201) assert.equal(r.json.code, 'INGRESS_APP_LIMIT');
    assert.equal((await allDbs()).length, before0 + 5);
  });
});

describe('defect 12: auto_create while CouchDB cannot be reached', () => {
  test('503 with code and Retry-After, not 500', async () => {
    const config = structuredClone(stack.config);
    config.ingress.auto_create = true;
    const dead = `http://127.0.0.1:${await freePort()}`;
    config.couchdb.url = dead;
    const app = await buildApp(config);
    try {
      const res = await app.inject({ method: 'POST', url: '/log_brand_new', headers: JSON_TYPE, payload: '{"n":1}' });
      assert.equal(res.statusCode, 503, res.body);
      assert.equal(res.json().error, 'service_unavailable');
      assert.match(res.json().code, /^INGRESS_AUTO_CREATE_FAILED$|^COUCHDB_UNAVAILABLE$/);
      assert.ok(Number(res.headers['retry-after']) >= 1);
    } finally {
      await app.close();
    }
  });
});

describe('defect 14: shutting down', () => {
  test('a request arriving while the ingress closes gets a 503 with code and Retry-After', async () => {
    const app = await buildApp(stack.config);
    // Evidence instead of sleeps (a loaded machine may take longer than any fixed pause): the
    // first request has arrived, and the close has begun, before the second request is sent.
    let arrived!: () => void;
    const firstArrived = new Promise<void>((ok) => (arrived = ok));
    let began!: () => void;
    const closeBegan = new Promise<void>((ok) => (began = ok));
    app.addHook('onRequest', async () => arrived());
    app.addHook('preClose', async () => began());
    const port = await freePort();
    await app.listen({ host: '127.0.0.1', port });
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => (received += c));
    const first = '{"n":"first"}';
    // The first request is in flight (its body incomplete) when the close begins.
    socket.write(`POST /log_appname HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${first.length}\r\n\r\n${first.slice(0, 3)}`);
    await firstArrived;
    const closing = app.close();
    await closeBegan;
    socket.write(`${first.slice(3)}GET /_couchlog/health HTTP/1.1\r\nHost: x\r\n\r\n`);
    await closing;
    // Both answers read, or the connection ended (up to 5 s).
    let ended = false;
    socket.once('close', () => (ended = true));
    for (const until = Date.now() + 5000; !ended && (received.match(/HTTP\/1\.1 /g) ?? []).length < 2 && Date.now() < until;) {
      await new Promise((r) => setTimeout(r, 20));
    }
    socket.destroy();
    const answers = received.split(/(?=HTTP\/1\.1 )/);
    assert.match(answers[0] ?? '', couchCluster ? /^HTTP\/1\.1 20[12]/ : /^HTTP\/1\.1 201/);
    assert.equal(answers.length, 2, received);
    assert.match(answers[1]!, /^HTTP\/1\.1 503/);
    assert.match(answers[1]!, /retry-after: \d+/i);
    assert.match(answers[1]!, /"code":"INGRESS_SHUTTING_DOWN"/);
  });
});

describe('the writer account cannot be locked out by outside guesses', () => {
  test('wrong passwords for the writer are refused without asking CouchDB, and writes go on', async () => {
    const wrong = { authorization: basicAuth(stack.config.users.writer.user, 'not-the-password') };
    for (let i = 0; i < 8; i++) {
      const res = await http(`${stack.url}/log_appname/_all_docs?i=${i}`, { headers: wrong });
      assert.equal(res.status, 401);
      const w = await http(`${stack.url}/log_appname`, { method: 'POST', headers: { ...JSON_TYPE, ...wrong }, body: '{}' });
      assert.equal(w.status, 401);
    }
    const writerName = stack.config.users.writer.user;
    for (let i = 0; i < 4; i++) {
      const login = await http(`${stack.url}/_session`, {
        method: 'POST',
        headers: JSON_TYPE,
        body: JSON.stringify({ name: writerName, password: `guess-${i}` }),
      });
      assert.equal(login.status, 401);
      assert.equal(login.json.code, 'AUTH_INVALID', 'refused by the ingress, not by CouchDB');
      const form = await http(`${stack.url}/_session`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `name=${encodeURIComponent(writerName)}&password=guess-${i}`,
      });
      assert.equal(form.status, 401);
      assert.equal(form.json.code, 'AUTH_INVALID');
    }
    // Other logins still reach CouchDB, body unchanged.
    const readerLogin = await http(`${stack.url}/_session`, {
      method: 'POST',
      headers: JSON_TYPE,
      body: JSON.stringify({ name: stack.config.users.reader.user, password: stack.config.users.reader.password }),
    });
    assert.equal(readerLogin.status, 200, readerLogin.text);
    assert.match(readerLogin.headers.get('set-cookie') ?? '', /AuthSession=/);
    const res = await http(`${stack.url}/log_appname`, { method: 'POST', headers: JSON_TYPE, body: '{"after":"guesses"}' });
    assert.equal(storedStatus(res.status), 201, res.text);
    const own = await http(`${stack.url}/log_appname`, {
      method: 'POST',
      headers: { ...JSON_TYPE, authorization: stack.auth.writer },
      body: '{"as":"writer"}',
    });
    assert.equal(storedStatus(own.status), 201, own.text);
    // The writer's session is not checked by CouchDB either: still working there.
    const direct = await http(`${stack.couchUrl}/_session`, { headers: { authorization: stack.auth.writer } });
    assert.equal(direct.status, 200, `CouchDB (${couchFlavor}) still lets the writer in: ${direct.text}`);
  });
});

describe('the writer account cannot be locked out by other spellings of the same guess', () => {
  // Found by a black-box test on CouchDB 3.5: each of these reached CouchDB, and after 5 every write answered 503.
  test('GET /_session, a form split on ";", a repeated name, a gzip body, Basic with a space: refused here, writes go on', async () => {
    const writerName = stack.config.users.writer.user;
    const basicWithSpace = (password: string) => {
      const b64 = Buffer.from(`${writerName}:${password}`).toString('base64');
      return `Basic ${b64.slice(0, 3)} ${b64.slice(3)}`;
    };
    for (let i = 0; i < 6; i++) {
      const get = await http(`${stack.url}/_session`, { headers: { authorization: basicAuth(writerName, `guess-${i}`) } });
      assert.equal(get.status, 401, get.text);
      assert.equal(get.json.code, 'AUTH_INVALID', 'refused by the ingress, not by CouchDB');
      const username = await http(`${stack.url}/_session`, {
        method: 'POST',
        headers: JSON_TYPE,
        body: JSON.stringify({ username: writerName, password: `guess-${i}` }),
      });
      assert.equal(username.status, 401, username.text);
      const semicolon = await http(`${stack.url}/_session`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `x=1;name=${encodeURIComponent(writerName)}&password=guess-${i}`,
      });
      assert.equal(semicolon.status, 401, semicolon.text);
      const twice = await http(`${stack.url}/_session`, {
        method: 'POST',
        headers: JSON_TYPE,
        body: `{"name":${JSON.stringify(writerName)},"password":"guess-${i}","name":"someone-else"}`,
      });
      assert.equal(twice.status, 400, twice.text);
      assert.equal(twice.json.code, 'INGRESS_LOGIN_AMBIGUOUS');
      const gzip = await http(`${stack.url}/_session`, {
        method: 'POST',
        headers: { ...JSON_TYPE, 'content-encoding': 'gzip' },
        body: gzipSync(JSON.stringify({ name: writerName, password: `guess-${i}` })),
      });
      assert.equal(gzip.status, 415, gzip.text);
      assert.equal(gzip.json.code, 'INGRESS_LOGIN_ENCODING');
      const spaced = await http(`${stack.url}/log_appname/_all_docs`, { headers: { authorization: basicWithSpace(`guess-${i}`) } });
      assert.equal(spaced.status, 401, spaced.text);
      assert.equal(spaced.json.code, 'AUTH_INVALID');
    }
    const res = await http(`${stack.url}/log_appname`, { method: 'POST', headers: JSON_TYPE, body: '{"after":"spelled guesses"}' });
    assert.equal(storedStatus(res.status), 201, res.text);
    const direct = await http(`${stack.couchUrl}/_session`, { headers: { authorization: stack.auth.writer } });
    assert.equal(direct.status, 200, `CouchDB (${couchFlavor}) still lets the writer in: ${direct.text}`);
    // The writer's own password, spelled with a space, still works.
    const own = await http(`${stack.url}/_session`, { headers: { authorization: basicWithSpace(stack.config.users.writer.password!) } });
    assert.equal(own.status, 200, own.text);
  });
});

describe('bodies that are not UTF-8', () => {
  test('are refused (400 INGRESS_INVALID_JSON) on every write route and store nothing, as CouchDB refuses them', async () => {
    // Found by a black-box test: "\xff\xfe" was stored as two U+FFFD, an id ending in \xc3 as "...\ufffd".
    const bad = (text: string) => Buffer.concat([Buffer.from(text.split('#')[0]!), Buffer.from([0xff, 0xfe]), Buffer.from(text.split('#')[1]!)]);
    for (const [path, type, body] of [
      ['/log_appname', 'application/json', bad('{"_id":"utf8-1","probe":"not-utf-8","m":"#"}')],
      ['/log_appname/_bulk_docs', 'application/json', bad('{"docs":[{"probe":"not-utf-8","m":"ok"},{"probe":"not-utf-8","m":"#"}]}')],
      ['/log_appname', 'application/x-ndjson', bad('{"probe":"not-utf-8","m":"ok"}\n{"probe":"not-utf-8","m":"#"}\n')],
      ['/log_appname', 'application/json; charset=latin1', Buffer.from([...Buffer.from('{"probe":"not-utf-8","m":"'), 0xe9, ...Buffer.from('"}')])],
    ] as const) {
      const res = await http(`${stack.url}${path}`, { method: 'POST', headers: { 'content-type': type }, body });
      assert.equal(res.status, 400, `${path} ${type}: ${res.text}`);
      assert.equal(res.json.code, 'INGRESS_INVALID_JSON');
      assert.match(res.json.reason, /UTF-8/);
    }
    assert.deepEqual(await probed('not-utf-8'), [], 'nothing stored');
    const ok = await http(`${stack.url}/log_appname`, { method: 'POST', headers: JSON_TYPE, body: Buffer.from('{"m":"héllo 🙂"}') });
    assert.equal(storedStatus(ok.status), 201, ok.text);
  });
});

describe("_local documents stay out of readers' reach", () => {
  test('_all_docs and _bulk_get naming a _local id are refused to a reader, in the query or the body; admins are not limited', async () => {
    // Found by a black-box test on CouchDB 3.5: keys=["_local/secret"]&include_docs=true returned the document to the reader.
    const put = await http(`${stack.couchUrl}/log_appname/_local/secret`, {
      method: 'PUT',
      headers: { ...JSON_TYPE, ...admin() },
      body: '{"s":"localsecret"}',
    });
    assert.ok(put.status === 201 || put.status === 200, put.text);
    const reader = { authorization: stack.auth.reader };
    const refused = [
      await http(`${stack.url}/log_appname/_all_docs?keys=${encodeURIComponent('["_local/secret"]')}&include_docs=true`, { headers: reader }),
      await http(`${stack.url}/log_appname/_all_docs`, {
        method: 'POST',
        headers: { ...JSON_TYPE, ...reader },
        body: '{"keys":["_local/secret"],"include_docs":true}',
      }),
      await http(`${stack.url}/log_appname/_all_docs/queries`, {
        method: 'POST',
        headers: { ...JSON_TYPE, ...reader },
        body: '{"queries":[{"keys":["_local/secret"]}]}',
      }),
      await http(`${stack.url}/log_appname/_bulk_get`, { method: 'POST', headers: { ...JSON_TYPE, ...reader }, body: '{"docs":[{"id":"_local/secret"}]}' }),
      // Found by a code review: an encoded path, keys in the URL of /queries, a compressed body, an escaped id.
      await http(`${stack.url}/log_appname/%5Fall_docs`, {
        method: 'POST',
        headers: { ...JSON_TYPE, ...reader },
        body: '{"keys":["_local/secret"],"include_docs":true}',
      }),
      await http(`${stack.url}/log_appname/_all_docs/queries?keys=${encodeURIComponent('["_local/secret"]')}&include_docs=true`, {
        method: 'POST',
        headers: { ...JSON_TYPE, ...reader },
        body: '{"queries":[{}]}',
      }),
      await http(`${stack.url}/log_appname/_all_docs`, {
        method: 'POST',
        headers: { ...JSON_TYPE, ...reader, 'content-encoding': 'gzip' },
        body: gzipSync(Buffer.from('{"keys":["_local/secret"],"include_docs":true}')),
      }),
      await http(`${stack.url}/log_appname/_all_docs`, {
        method: 'POST',
        headers: { ...JSON_TYPE, ...reader },
        body: '{"keys":["\\u005flocal/secret"],"include_docs":true}',
      }),
    ];
    for (const res of refused) {
      assert.ok(res.status === 403 || res.status === 415, res.text);
      assert.doesNotMatch(res.text, /localsecret/);
    }
    const ordinary = await http(`${stack.url}/log_appname/_all_docs`, {
      method: 'POST',
      headers: { ...JSON_TYPE, ...reader },
      body: '{"keys":["nothing"],"include_docs":true}',
    });
    assert.equal(ordinary.status, 200, ordinary.text);
    const asAdmin = await http(`${stack.url}/log_appname/_all_docs?keys=${encodeURIComponent('["_local/secret"]')}`, { headers: admin() });
    assert.equal(asAdmin.status, 200, asAdmin.text);
  });
});

describe('compressed bodies on the write routes', () => {
  test('gzip is inflated (within the body limit); other encodings are 415, a cut gzip 400; nothing half-written', async () => {
    // Found by a black-box test: a gzip body was 400 INGRESS_INVALID_JSON with its binary bytes echoed in the reason.
    const gz = (text: string) => gzipSync(Buffer.from(text));
    const one = await http(`${stack.url}/log_appname`, {
      method: 'POST',
      headers: { ...JSON_TYPE, 'content-encoding': 'gzip' },
      body: gz('{"m":"compressed"}'),
    });
    assert.equal(storedStatus(one.status), 201, one.text);
    const stored = await http(`${stack.couchUrl}/log_appname/${one.json.id}`, { headers: admin() });
    assert.equal(stored.json.m, 'compressed');
    const bulk = await http(`${stack.url}/log_appname/_bulk_docs`, {
      method: 'POST',
      headers: { ...JSON_TYPE, 'content-encoding': 'gzip' },
      body: gz('{"docs":[{"m":"a"},{"m":"b"}]}'),
    });
    assert.equal(storedStatus(bulk.status), 201, bulk.text);
    assert.equal(bulk.json.length, 2);
    const deflate = await http(`${stack.url}/log_appname`, {
      method: 'POST',
      headers: { ...JSON_TYPE, 'content-encoding': 'deflate' },
      body: deflateSync(Buffer.from('{"probe":"bad-encoding","m":1}')),
    });
    assert.equal(deflate.status, 415, deflate.text);
    assert.equal(deflate.json.code, 'INGRESS_BAD_CONTENT_ENCODING');
    const cut = gz('{"probe":"bad-encoding","m":"cut"}').subarray(0, 12);
    const broken = await http(`${stack.url}/log_appname`, { method: 'POST', headers: { ...JSON_TYPE, 'content-encoding': 'gzip' }, body: cut });
    assert.equal(broken.status, 400, broken.text);
    assert.equal(broken.json.code, 'INGRESS_INVALID_JSON');
    assert.doesNotMatch(broken.json.reason, /[\u0000-\u0008\ufffd]/, 'no binary in the reason');
    const bomb = gzipSync(Buffer.from(`{"probe":"bad-encoding","m":"${'x'.repeat(stack.config.ingress.body_limit_bytes + 10)}"}`));
    const big = await http(`${stack.url}/log_appname`, { method: 'POST', headers: { ...JSON_TYPE, 'content-encoding': 'gzip' }, body: bomb });
    assert.equal(big.status, 413, big.text.slice(0, 200));
    assert.equal(big.json.code, 'INGRESS_BODY_TOO_LARGE');
    assert.deepEqual(await probed('bad-encoding'), [], 'nothing stored');
  });
});

describe('numbers out of range', () => {
  test('are refused (400 INGRESS_UNSAFE_NUMBER) on every write route and store nothing; nanosecond timestamps pass', async () => {
    // Found by a black-box test: 1e400 was stored as null, answered 201.
    for (const [path, type, body] of [
      ['/log_appname', 'application/json', '{"probe":"unsafe-number","n":1e400}'],
      ['/log_appname/_bulk_docs', 'application/json', '{"docs":[{"probe":"unsafe-number","n":1},{"probe":"unsafe-number","n":-2e308}]}'],
      ['/log_appname', 'application/x-ndjson', '{"probe":"unsafe-number","n":1}\n{"probe":"unsafe-number","n":1e999}\n'],
    ] as const) {
      const res = await http(`${stack.url}${path}`, { method: 'POST', headers: { 'content-type': type }, body });
      assert.equal(res.status, 400, `${path}: ${res.text}`);
      assert.equal(res.json.code, 'INGRESS_UNSAFE_NUMBER');
    }
    assert.deepEqual(await probed('unsafe-number'), [], 'nothing stored');
    const ok = await http(`${stack.url}/log_appname`, { method: 'POST', headers: JSON_TYPE, body: '{"timestamp":1704110400120000000,"n":"1e400"}' });
    assert.equal(storedStatus(ok.status), 201, ok.text);
  });
});

describe('bodies that kill PouchDB Server never reach it (found by fuzz.test.ts)', () => {
  test('a cut multipart body: 415 to all but admins, the server keeps running', async () => {
    const multipart = { 'content-type': 'multipart/form-data; boundary=x' };
    for (const [path, auth] of [
      ['/_session', {}],
      ['/log_appname/_find', { authorization: stack.auth.reader }],
      ['/log_appname/doc', { authorization: stack.auth.writer }],
    ] as const) {
      const res = await http(`${stack.url}${path}`, {
        method: 'POST',
        headers: { ...multipart, ...auth },
        body: '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\ncut',
      });
      assert.ok(res.status === 415 || res.status === 403, `${path}: ${res.status} ${res.text}`);
    }
    assert.equal((await http(`${stack.url}/_couchlog/health`)).status, 200);
  });
});

describe('defect 16: health of a frozen server', () => {
  test('health answers 503 within a few seconds when CouchDB stops answering', { skip: embeddedOnly('freezes the embedded server (SIGSTOP)') }, async () => {
    const pid = stack.couch.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      const started = Date.now();
      const res = await http(`${stack.url}/_couchlog/health`);
      const took = Date.now() - started;
      assert.equal(res.status, 503);
      assert.ok(took < 4000, `health took ${took} ms`);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    assert.equal((await http(`${stack.url}/_couchlog/health`)).status, 200);
  });
});

describe("CouchDB 3.4+'s lockout counts per caller, not per ingress", () => {
  test("a guesser's failures (its X-Forwarded-For, via a trusted proxy) do not lock the reader out for others", async () => {
    await stack.restartIngress((c) => {
      c.ingress.trust_proxy = ['127.0.0.1'];
    });
    try {
      const wrong = { authorization: basicAuth(stack.config.users.reader.user, 'guess'), 'x-forwarded-for': '198.51.100.7' };
      for (let i = 0; i < 7; i++) {
        const res = await http(`${stack.url}/log_appname/_all_docs?g=${i}`, { headers: wrong });
        // CouchDB 3.4+ locks the guesser's address out after 5 failures: said as such, not as a wrong password.
        assert.ok(res.status === 401 || (res.status === 403 && res.json.code === 'AUTH_LOCKED'), `${i}: ${res.status} ${res.text}`);
        // A new password each time: a repeated one would be answered from the ingress's cache.
        wrong.authorization = basicAuth(stack.config.users.reader.user, `guess-${i}`);
      }
      // The right password from the locked-out address: CouchDB 3.4+ still refuses it for a while, and the ingress says why.
      const locked = await http(`${stack.url}/log_appname/_all_docs?limit=1`, {
        headers: { authorization: stack.auth.reader, 'x-forwarded-for': '198.51.100.7' },
      });
      if (couchFlavor === 'couchdb3') {
        assert.equal(locked.status, 403, locked.text);
        assert.equal(locked.json.code, 'AUTH_LOCKED');
        assert.match(locked.json.reason, /locked/i);
      } else assert.equal(locked.status, 200, locked.text);
      const other = await http(`${stack.url}/log_appname/_all_docs?limit=1`, {
        headers: { authorization: stack.auth.reader, 'x-forwarded-for': '203.0.113.5' },
      });
      assert.equal(other.status, 200, other.text);
      const direct = await http(`${stack.url}/log_appname/_all_docs?limit=2`, { headers: { authorization: stack.auth.reader } });
      assert.equal(direct.status, 200, direct.text);
    } finally {
      await stack.restartIngress((c) => {
        c.ingress.trust_proxy = [];
      });
    }
  });

  test('guesses at the private metrics route count against the guesser too, not against the ingress for everyone', async () => {
    await stack.restartIngress((c) => {
      c.ingress.trust_proxy = ['127.0.0.1'];
      c.ingress.public_metrics = false;
    });
    try {
      for (let i = 0; i < 7; i++) {
        const wrong = { authorization: basicAuth(stack.config.users.reader.user, `metrics-guess-${i}`), 'x-forwarded-for': '198.51.100.8' };
        const res = await http(`${stack.url}/_couchlog/metrics`, { headers: wrong });
        assert.ok(res.status === 401 || (res.status === 403 && res.json.code === 'AUTH_LOCKED'), `${i}: ${res.status} ${res.text}`);
      }
      // Before 2026-12-07 the metrics route checked without the caller's address: CouchDB 3.4+ locked
      // the reader out at the ingress's own address, so every caller without a proxy got 403 here.
      const direct = await http(`${stack.url}/_couchlog/metrics`, { headers: { authorization: stack.auth.reader } });
      assert.equal(direct.status, 200, direct.text);
      const reads = await http(`${stack.url}/log_appname/_all_docs?limit=3`, { headers: { authorization: stack.auth.reader } });
      assert.equal(reads.status, 200, reads.text);
    } finally {
      await stack.restartIngress((c) => {
        c.ingress.trust_proxy = [];
        c.ingress.public_metrics = true;
      });
    }
  });
});

describe('a small gzip body of a million documents (found by a review: parsed in full, then refused)', () => {
  test('is refused for its count before it is parsed: JSON array, NDJSON, _bulk_docs, HEC events and raw lines', async (t) => {
    const config = structuredClone(stack.config);
    const token = 'amplification-token-0123456789abcdef';
    config.apps.appname!.tokens = [{ name: 'amp', secret: token, ack: false } as never];
    const app = await buildApp(config);
    const million = 1_000_000;
    const max = config.ingress.max_docs_per_request;
    const cases: Array<[string, string, Record<string, string>, string]> = [
      ['JSON array', '/log_appname', JSON_TYPE, `[${'{},'.repeat(million - 1)}{}]`],
      ['NDJSON', '/log_appname', { 'content-type': 'application/x-ndjson' }, '{"a":1}\n'.repeat(million)],
      ['_bulk_docs', '/log_appname/_bulk_docs', JSON_TYPE, `{"docs":[${'{},'.repeat(million - 1)}{}]}`],
      ['HEC events', '/services/collector/event', { authorization: `Splunk ${token}` }, '{"event":"x"}'.repeat(million)],
      ['HEC raw', '/services/collector/raw', { authorization: `Splunk ${token}` }, 'x\n'.repeat(million)],
    ];
    try {
      for (const [what, url, headers, body] of cases) {
        const payload = gzipSync(body);
        assert.ok(payload.length < 64 * 1024, `${what}: ${payload.length} bytes on the wire`);
        const parse = t.mock.method(JSON, 'parse');
        const res = await app.inject({ method: 'POST', url, headers: { ...headers, 'content-encoding': 'gzip' }, payload });
        const parsed = parse.mock.callCount();
        parse.mock.restore();
        assert.equal(res.statusCode, 413, `${what}: ${res.body}`);
        // Each HEC event is parsed on its own until the first one past the limit.
        assert.ok(parsed <= max + 1, `${what}: JSON.parse ran ${parsed} times for a body refused for its count`);
      }
    } finally {
      await app.close();
    }
  });
});
