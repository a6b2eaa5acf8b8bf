// The nginx files with a real nginx: nginx/couchlog.conf in front of the
// ingress and nginx/couchdb-direct.conf straight in front of CouchDB (here
// the embedded PouchDB Server), both on loopback ports with a self-signed
// certificate. Through both, the same anonymous writes and the same leak
// probe as the ingress's own tests: writes succeed, no read and no design
// document write gets through, nothing changes, nothing crashes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { countDocs, freePort, http, JSON_TYPE, startStack, type Stack } from '../helpers/stack.js';
import { MARKER, METHODS, PROBE_BODY, couchSnapshot, isWriteRoute, probePaths } from '../helpers/leak-probe-cases.js';
import {
  mainConfig,
  nginxTest,
  nginxWorkDir,
  rawRequest,
  removeDir,
  renderNginxFile,
  selfSignedCert,
  startNginx,
  writeInto,
  type RawResult,
  type RunningNginx,
} from '../helpers/nginx.js';

let stack: Stack;
let dir: string;
let nginx: RunningNginx;
let id: string;
let snapshot0: string;
const port = { http: 0, https: 0, directHttp: 0, directHttps: 0 };
let ingressTls: string;
let directTls: string;
const checks: Record<string, { status: number | null; output: string }> = {};

// Path tricks of test/integration/ingress-write.test.ts, sent raw: none may
// reach another route as the writer.
const TRICKS = [
  '/LOG_APPNAME',
  '/Log_appname',
  '/log_appname/..%2f_users',
  '/log_appname/%2e%2e/_users',
  '/log_appname//_bulk_docs',
  '/log_appname/./_bulk_docs',
  '/log%5Fappname%2F_bulk_docs',
  '/log_appname%2F_design%2Fx',
];
// More that only matter to a proxy matching paths: a dot segment that
// normalises back onto a write route, an encoded slash, a query string.
const PROXY_TRICKS = [
  '/log_appname/x/..',
  '/_users/../log_appname',
  '/log_appname/_bulk_docs/..',
  '/log_appname%2f',
  '/log_appname/_bulk_docs?new_edits=false',
  '//log_appname',
];
// The ingress builds its upstream request itself and may accept a query
// string on a write route; couchdb-direct.conf forwards the request line
// as it is, so it refuses any.
const DIRECT_TRICKS = [...PROXY_TRICKS, '/log_appname/?x=1', '/log_appname?batch=ok', '/log_appname/_bulk_docs?'];

before(async () => {
  stack = await startStack();
  const stored = await http(`${stack.url}/log_appname`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ secret: MARKER }) });
  assert.equal(stored.status, 201);
  id = stored.json.id;

  dir = nginxWorkDir();
  const { cert, key } = selfSignedCert(dir);
  for (const k of Object.keys(port) as Array<keyof typeof port>) port[k] = await freePort();
  const tls = { COUCHLOG_SERVER_NAME: 'localhost', COUCHLOG_TLS_CERT: cert, COUCHLOG_TLS_KEY: key };
  const ingressFile = writeInto(
    dir,
    'couchlog.conf',
    renderNginxFile('couchlog.conf', {
      vars: { ...tls, COUCHLOG_INGRESS_UPSTREAM: `127.0.0.1:${stack.config.ingress.port}` },
      httpPort: port.http,
      httpsPort: port.https,
    }),
  );
  const directFile = writeInto(
    dir,
    'couchdb-direct.conf',
    renderNginxFile('couchdb-direct.conf', {
      vars: { ...tls, COUCHLOG_COUCHDB_UPSTREAM: new URL(stack.couchUrl).host },
      httpPort: port.directHttp,
      httpsPort: port.directHttps,
    }),
  );
  // The writer's credentials, made from the stack's writer password as docs/deployment.md says.
  writeInto(dir, 'couchlog-writer-auth.conf', `set $couchlog_writer_auth "${stack.auth.writer}";\n`);

  // Each file alone, then both in one nginx (their names must not clash).
  checks['couchlog.conf'] = nginxTest(dir, writeInto(dir, 'only-ingress.conf', mainConfig(dir, [ingressFile])));
  checks['couchdb-direct.conf'] = nginxTest(dir, writeInto(dir, 'only-direct.conf', mainConfig(dir, [directFile])));
  const both = writeInto(dir, 'nginx.conf', mainConfig(dir, [ingressFile, directFile]));
  checks.both = nginxTest(dir, both);
  nginx = await startNginx(dir, both, Object.values(port));
  ingressTls = `https://127.0.0.1:${port.https}`;
  directTls = `https://127.0.0.1:${port.directHttps}`;
  snapshot0 = await couchSnapshot(stack);
});

after(async () => {
  await nginx?.stop();
  await stack?.stop();
  if (dir) removeDir(dir);
});

describe('nginx -t', () => {
  for (const name of ['couchlog.conf', 'couchdb-direct.conf', 'both']) {
    test(`passes for ${name}`, () => {
      const res = checks[name]!;
      assert.equal(res.status, 0, res.output);
      assert.match(res.output, /syntax is ok/);
      assert.match(res.output, /test is successful/);
    });
  }
});

async function probe(base: string, path: string, method: string): Promise<RawResult> {
  const hasBody = method === 'POST' || method === 'PUT';
  const headers: Record<string, string> = hasBody ? { ...JSON_TYPE } : {};
  if (method === 'COPY') headers.destination = 'copied-doc';
  return rawRequest(base, { method, path, headers, body: hasBody ? PROBE_BODY.replaceAll('__ID__', id) : undefined });
}

/** Sends bytes as they are over TLS and returns the whole answer. */
function rawTls(p: number, bytes: string): Promise<string> {
  return new Promise((ok, fail) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: p, rejectUnauthorized: false, servername: 'localhost' }, () => socket.end(bytes));
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('utf8')));
    socket.on('end', () => ok(answer));
    socket.on('error', fail);
    socket.setTimeout(30_000, () => socket.destroy(new Error('no answer in 30 s')));
  });
}

function leaks(res: RawResult): boolean {
  return res.text.includes(MARKER) || res.text.includes(id);
}

/** Posts with a raw path; returns the answer and how many documents log_appname gained. */
async function postCounting(base: string, path: string, body: string, headers: Record<string, string> = {}): Promise<{ res: RawResult; added: number }> {
  const before0 = await countDocs(stack, 'log_appname');
  const res = await rawRequest(base, { method: 'POST', path, headers: { ...JSON_TYPE, ...headers }, body });
  return { res, added: (await countDocs(stack, 'log_appname')) - before0 };
}

async function designDocs(): Promise<string[]> {
  const res = await http(`${stack.couchUrl}/log_appname/_all_docs?startkey=%22_design%2F%22&endkey=%22_design0%22`, {
    headers: { authorization: stack.auth.admin },
  });
  return (res.json.rows as Array<{ id: string }>).map((r) => r.id);
}

for (const [name, httpPort, base] of [
  ['nginx/couchlog.conf', () => port.http, () => ingressTls],
  ['nginx/couchdb-direct.conf', () => port.directHttp, () => directTls],
] as const) {
  describe(`${name}: HTTP`, () => {
    test('port 80 redirects to HTTPS, method and body kept (308)', async () => {
      for (const method of ['GET', 'POST']) {
        const res = await rawRequest(`http://127.0.0.1:${httpPort()}`, {
          method,
          path: '/log_appname/_all_docs?limit=1',
          headers: { host: 'log.example.test' },
        });
        assert.equal(res.status, 308, method);
        assert.equal(res.headers.location, 'https://log.example.test/log_appname/_all_docs?limit=1');
      }
    });

    test('nothing is proxied over plain HTTP', async () => {
      const { res, added } = await postCounting(`http://127.0.0.1:${httpPort()}`, '/log_appname', '{"plain":true}');
      assert.equal(res.status, 308);
      assert.equal(added, 0);
    });

    test('HTTPS serves the certificate it was given', async () => {
      const subject = await new Promise<string>((ok, fail) => {
        const req = httpsRequest(
          { host: '127.0.0.1', port: new URL(base()).port, path: '/', rejectUnauthorized: false, servername: 'localhost', agent: false },
          (res) => {
            const cert = (res.socket as TLSSocket).getPeerCertificate();
            res.resume();
            ok(String(cert.subject.CN));
          },
        );
        req.on('error', fail);
        req.end();
      });
      assert.equal(subject, 'localhost');
    });
  });
}

describe('nginx/couchlog.conf -> ingress -> CouchDB', () => {
  test('anonymous writes succeed: one document, an array, _bulk_docs', async () => {
    const one = await postCounting(ingressTls, '/log_appname', '{"via":"nginx"}');
    assert.equal(one.res.status, 201, one.res.text);
    assert.equal(one.res.json.ok, true);
    assert.equal(one.added, 1);
    const many = await postCounting(ingressTls, '/log_appname', '[{"n":1},{"n":2}]');
    assert.equal(many.res.status, 201, many.res.text);
    assert.equal(many.added, 2);
    const bulk = await postCounting(ingressTls, '/log_appname/_bulk_docs', '{"docs":[{"n":3},{"n":4},{"n":5}]}');
    assert.equal(bulk.res.status, 201, bulk.res.text);
    assert.equal(bulk.added, 3);
    const doc = await http(`${stack.couchUrl}/log_appname/${one.res.json.id}`, { headers: { authorization: stack.auth.admin } });
    assert.equal(doc.json.via, 'nginx');
  });

  for (const method of METHODS) {
    test(`leak probe, ${method}: the same answers as the ingress itself, nothing leaked`, async () => {
      const failures: string[] = [];
      for (const raw of probePaths()) {
        const path = raw.replace('__ID__', id);
        if (isWriteRoute(method, path)) continue;
        const direct = await probe(stack.url, path, method);
        const res = await probe(ingressTls, path, method);
        if (leaks(res)) failures.push(`${method} ${path}: leaked a document (${res.status})`);
        if (res.status < 400 || res.status >= 500) failures.push(`${method} ${path}: answered ${res.status}`);
        if (res.status !== direct.status) failures.push(`${method} ${path}: ${res.status} through nginx, ${direct.status} from the ingress`);
      }
      assert.deepEqual(failures, []);
    });
  }

  for (const path of [...TRICKS, ...PROXY_TRICKS]) {
    test(`path trick ${path} writes nothing`, async () => {
      const { res, added } = await postCounting(ingressTls, path, '{"trick":true}');
      assert.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status} ${res.text}`);
      assert.equal(added, 0);
    });
  }

  test('design documents cannot be written anonymously', async () => {
    const before0 = await designDocs();
    const post = await rawRequest(ingressTls, { method: 'POST', path: '/log_appname', headers: JSON_TYPE, body: '{"_id":"_design/evil","views":{}}' });
    assert.equal(post.status, 403);
    const bulk = await rawRequest(ingressTls, {
      method: 'POST',
      path: '/log_appname/_bulk_docs',
      headers: JSON_TYPE,
      body: '{"docs":[{"_id":"_design/evil2","views":{}}]}',
    });
    assert.equal(bulk.status, 403);
    assert.deepEqual(await designDocs(), before0);
  });

  test('garbage credentials are refused by the ingress, not passed on', async () => {
    for (const authorization of ['Basic', 'Basic !!!', `Basic ${Buffer.from('nobody:nothing').toString('base64')}`]) {
      const res = await rawRequest(ingressTls, { path: '/log_appname/_all_docs', headers: { authorization } });
      assert.equal(res.status, 401, authorization);
      assert.ok(!leaks(res));
    }
  });

  test('a reader reads through nginx, gzip-compressed', async () => {
    const res = await new Promise<{ status: number; encoding: string | undefined; body: Buffer }>((ok, fail) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port: port.https,
          path: '/log_appname/_all_docs?include_docs=true',
          rejectUnauthorized: false,
          agent: false,
          headers: { authorization: stack.auth.reader, 'accept-encoding': 'gzip' },
        },
        (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => ok({ status: r.statusCode!, encoding: r.headers['content-encoding'], body: Buffer.concat(chunks) }));
        },
      );
      req.on('error', fail);
      req.end();
    });
    assert.equal(res.status, 200);
    assert.equal(res.encoding, 'gzip');
    assert.match(gunzipSync(res.body).toString('utf8'), new RegExp(MARKER));
  });

  test('a body over the 8 MiB limit is refused by nginx with a JSON 413', async () => {
    const body = `{"big":"${'x'.repeat(8 * 1024 * 1024 + 10)}"}`;
    const { res, added } = await postCounting(ingressTls, '/log_appname', body);
    assert.equal(res.status, 413);
    assert.equal(res.json.error, 'too_large');
    assert.equal(added, 0);
  });

  test('the health endpoint answers through nginx', async () => {
    const res = await rawRequest(ingressTls, { path: '/_couchlog/health' });
    assert.equal(res.status, 200);
    assert.equal(res.json.couchdb.reachable, true);
  });
});

describe('nginx/couchdb-direct.conf -> CouchDB, no Node process', () => {
  test('anonymous writes succeed on POST /log_<app> and /log_<app>/_bulk_docs', async () => {
    const one = await postCounting(directTls, '/log_appname', '{"via":"direct"}');
    assert.equal(one.res.status, 201, one.res.text);
    assert.equal(one.res.json.ok, true);
    assert.equal(one.added, 1);
    // POST /log_<app>/ (the seed's curl) reaches CouchDB as the writer:
    // CouchDB 3 ignores the trailing slash; PouchDB Server answers 400
    // only_multipart_accepted, which still shows nginx let it through.
    const slash = await postCounting(directTls, '/log_appname/', '{"via":"direct/"}');
    if (slash.res.status === 400) assert.equal(slash.res.json.reason, 'only_multipart_accepted');
    else assert.equal(slash.res.status, 201, slash.res.text);
    assert.equal(slash.added, slash.res.status === 201 ? 1 : 0);
    const bulk = await postCounting(directTls, '/log_appname/_bulk_docs', '{"docs":[{"n":1},{"n":2}]}');
    assert.equal(bulk.res.status, 201, bulk.res.text);
    assert.equal(bulk.added, 2);
    // Stored as the writer: the append-only validator lets only log_writer add documents.
    const doc = await http(`${stack.couchUrl}/log_appname/${one.res.json.id}`, { headers: { authorization: stack.auth.admin } });
    assert.equal(doc.json.via, 'direct');
  });

  for (const method of METHODS) {
    test(`leak probe, ${method}: refused with 401 before CouchDB, nothing leaked`, async () => {
      const failures: string[] = [];
      for (const raw of probePaths()) {
        const path = raw.replace('__ID__', id);
        if (isWriteRoute(method, path)) continue;
        const res = await probe(directTls, path, method);
        if (leaks(res)) failures.push(`${method} ${path}: leaked a document (${res.status})`);
        // A write route of an unknown database reaches CouchDB as the
        // writer, which cannot create it; everything else stops at nginx.
        const expected = method === 'POST' && path === '/log_newdb_probe' ? [404] : [401];
        if (!expected.includes(res.status)) failures.push(`${method} ${path}: answered ${res.status} ${res.text.slice(0, 100)}`);
      }
      assert.deepEqual(failures, []);
    });
  }

  test('the 401 asks for credentials, CouchDB-style', async () => {
    const res = await rawRequest(directTls, { path: '/log_appname/_all_docs' });
    assert.equal(res.status, 401);
    assert.equal(res.json.error, 'unauthorized');
    assert.match(String(res.headers['www-authenticate']), /^Basic realm=/);
    assert.match(String(res.headers['content-type']), /application\/json/);
  });

  for (const path of [...TRICKS, ...DIRECT_TRICKS]) {
    test(`path trick ${path} writes nothing`, async () => {
      const { res, added } = await postCounting(directTls, path, '{"trick":true}');
      assert.equal(res.status, 401, `${path}: ${res.status} ${res.text}`);
      assert.equal(added, 0);
    });
  }

  test('lower-case methods and an empty Authorization header get no writer', async () => {
    const before0 = await countDocs(stack, 'log_appname');
    // node:http upper-cases methods, so this one is written by hand.
    const lower = await rawTls(
      port.directHttps,
      'post /log_appname HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{"x":1}',
    );
    assert.match(lower, /^HTTP\/1\.1 (400|401|405) /);
    assert.equal(await countDocs(stack, 'log_appname'), before0);
    const empty = await rawRequest(directTls, {
      method: 'POST',
      path: '/log_appname/_find',
      headers: { ...JSON_TYPE, authorization: '' },
      body: '{"selector":{}}',
    });
    assert.equal(empty.status, 401);
    assert.ok(!leaks(empty));
  });

  test('design documents and updates cannot be written through the write routes', async () => {
    const before0 = await designDocs();
    const post = await rawRequest(directTls, { method: 'POST', path: '/log_appname', headers: JSON_TYPE, body: '{"_id":"_design/evil","views":{}}' });
    assert.ok(post.status === 401 || post.status === 403, `${post.status} ${post.text}`);
    const bulk = await rawRequest(directTls, {
      method: 'POST',
      path: '/log_appname/_bulk_docs',
      headers: JSON_TYPE,
      body: '{"docs":[{"_id":"_design/evil2","views":{}}]}',
    });
    assert.ok(bulk.status >= 400 || (Array.isArray(bulk.json) && bulk.json.every((r: { error?: string }) => r.error)), `${bulk.status} ${bulk.text}`);
    assert.deepEqual(await designDocs(), before0);

    const doc = await http(`${stack.couchUrl}/log_appname/${id}`, { headers: { authorization: stack.auth.admin } });
    const update = await rawRequest(directTls, {
      method: 'POST',
      path: '/log_appname/_bulk_docs',
      headers: JSON_TYPE,
      body: JSON.stringify({ docs: [{ _id: id, _rev: doc.json._rev, _deleted: true }] }),
    });
    assert.equal(update.json[0].error, 'forbidden', update.text);
    const after0 = await http(`${stack.couchUrl}/log_appname/${id}`, { headers: { authorization: stack.auth.admin } });
    assert.equal(after0.json._rev, doc.json._rev);
    assert.equal(after0.json.secret, MARKER);
  });

  test("a caller's own credentials are passed untouched, never swapped for the writer's", async () => {
    const read = await rawRequest(directTls, { path: `/log_appname/${id}`, headers: { authorization: stack.auth.reader } });
    assert.equal(read.status, 200);
    assert.equal(read.json.secret, MARKER);
    // The reader may not write: had nginx injected the writer, this would be 201.
    const asReader = await postCounting(directTls, '/log_appname', '{"as":"reader"}', { authorization: stack.auth.reader });
    assert.equal(asReader.res.status, 403, asReader.res.text);
    assert.equal(asReader.added, 0);
    const wrong = await postCounting(directTls, '/log_appname', '{"as":"nobody"}', {
      authorization: `Basic ${Buffer.from('writer:wrong-password').toString('base64')}`,
    });
    assert.equal(wrong.res.status, 401, wrong.res.text);
    assert.equal(wrong.added, 0);
  });

  test('a body over the 8 MiB limit is refused by nginx with a JSON 413', async () => {
    const { res, added } = await postCounting(directTls, '/log_appname', `{"big":"${'x'.repeat(8 * 1024 * 1024 + 10)}"}`);
    assert.equal(res.status, 413);
    assert.equal(res.json.error, 'too_large');
    assert.equal(added, 0);
  });
});

describe('after both probes', () => {
  test('nothing but the intended writes changed and the embedded server never died', async () => {
    const now = JSON.parse(await couchSnapshot(stack));
    const then = JSON.parse(snapshot0);
    // The write tests above added documents to log_appname, and only there.
    delete now.log_appname;
    delete then.log_appname;
    assert.deepEqual(now, then);
    assert.equal(stack.couch.restarts, 0);
    assert.ok(!/\[(emerg|alert|crit)\]/.test(nginx.output()), nginx.output());
  });
});

// X-Forwarded-For decides the client address (rate limits, logs) only when
// it comes from an address in ingress.trust_proxy; nginx replaces whatever
// a client claims with the address it really sees.
describe('ingress.trust_proxy and X-Forwarded-For', () => {
  // A write per request: the health route is exempt from the rate limit.
  const write = (base: string, xff: string) =>
    rawRequest(base, { method: 'POST', path: '/log_appname', headers: { ...JSON_TYPE, 'x-forwarded-for': xff }, body: '{"rate":"limited"}' });
  const limited = async (trust: string[]) =>
    stack.restartIngress((c) => {
      c.ingress.rate_limit = { enabled: true, max: 2, window_ms: 60_000 };
      c.ingress.trust_proxy = trust;
    });
  after(async () => {
    await stack.restartIngress((c) => {
      c.ingress.rate_limit.enabled = false;
      c.ingress.trust_proxy = [];
    });
  });

  test('without trusted proxies a forged X-Forwarded-For is ignored: one bucket per socket address', async () => {
    await limited([]);
    const statuses = [];
    for (const xff of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) statuses.push((await write(stack.url, xff)).status);
    assert.deepEqual(statuses, [201, 201, 429]);
  });

  test('from a trusted proxy, X-Forwarded-For is the client address', async () => {
    await limited(['127.0.0.1']);
    const statuses = [];
    for (const xff of ['10.0.0.1', '10.0.0.1', '10.0.0.1', '10.0.0.2']) statuses.push((await write(stack.url, xff)).status);
    assert.deepEqual(statuses, [201, 201, 429, 201]);
  });

  test('through nginx a client cannot choose its address: nginx overwrites X-Forwarded-For', async () => {
    await limited(['127.0.0.1']);
    const statuses = [];
    for (const xff of ['10.0.1.1', '10.0.1.2', '10.0.1.3']) statuses.push((await write(ingressTls, xff)).status);
    // All three are 127.0.0.1, the address nginx saw, hence one bucket.
    assert.deepEqual(statuses, [201, 201, 429]);
  });
});
