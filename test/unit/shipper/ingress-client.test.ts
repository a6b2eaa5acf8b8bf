// shipper/ingress-client.ts: how ingress answers are sorted (stored, refused, retry, fatal) and the target URL.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { classify, parseTarget } from '../../../shipper/ingress-client.js';
import { UsageError } from '../../../lib/errors.js';

describe('ingress answers', () => {
  const ids = ['a', 'b', 'c', 'd'];
  test('201: stored, conflict (already stored), unknown (retry), refused document', () => {
    const body = JSON.stringify([
      { ok: true, id: 'a', rev: '1-x' },
      { id: 'b', error: 'conflict', reason: 'Document update conflict.' },
      { id: 'c', error: 'unknown', reason: 'CouchDB gave no result' },
      { id: 'd', error: 'forbidden', reason: 'nope' },
    ]);
    assert.deepEqual(classify(201, body, null, ids), {
      kind: 'results',
      results: [
        { kind: 'stored' },
        { kind: 'exists' },
        { kind: 'retry', reason: 'CouchDB gave no result' },
        { kind: 'rejected', error: 'forbidden', reason: 'nope' },
      ],
    });
  });

  test('results out of order are matched by id; a missing one is retried', () => {
    const body = JSON.stringify([
      { ok: true, id: 'c', rev: '1' },
      { ok: true, id: 'a', rev: '1' },
    ]);
    const r = classify(201, body, null, ['a', 'b', 'c']);
    assert.deepEqual(r, {
      kind: 'results',
      results: [{ kind: 'stored' }, { kind: 'retry', reason: 'the ingress gave no result for this document' }, { kind: 'stored' }],
    });
  });

  test('408 (the ingress timed out a stalled body) is retried, not fatal: nothing was stored', () => {
    assert.deepEqual(classify(408, '{"error":"request_timeout","reason":"the body stalled","code":"INGRESS_REQUEST_TIMEOUT"}', null, ids), {
      kind: 'retry',
      reason: '408 request_timeout INGRESS_REQUEST_TIMEOUT: the body stalled',
      retryAfterMs: null,
    });
    assert.equal(classify(408, '', null, ids).kind, 'retry', 'also without a body (a proxy in front)');
  });

  test('429 and 5xx are retried with Retry-After; 400/403/413 refuse the batch; 401 and 404 are fatal', () => {
    assert.deepEqual(classify(429, '{"error":"too_many_requests","reason":"slow down","code":"INGRESS_RATE_LIMITED"}', 3000, ids), {
      kind: 'retry',
      reason: '429 too_many_requests INGRESS_RATE_LIMITED: slow down',
      retryAfterMs: 3000,
    });
    assert.equal(classify(503, '{"error":"service_unavailable"}', 5000, ids).kind, 'retry');
    assert.equal(classify(502, '<html>bad gateway</html>', null, ids).kind, 'retry');
    // A document's fault: refused (the batch is halved to find it).
    for (const code of ['INGRESS_RESERVED_ID', 'INGRESS_DOC_HAS_REV', 'INGRESS_SPECIAL_FIELD', 'INGRESS_TOO_DEEP', 'INGRESS_UNSAFE_NUMBER']) {
      const status = ['INGRESS_SPECIAL_FIELD', 'INGRESS_TOO_DEEP', 'INGRESS_UNSAFE_NUMBER'].includes(code) ? 400 : 403;
      assert.equal(classify(status, JSON.stringify({ error: 'forbidden', reason: 'x', code }), null, ids).kind, 'refused', code);
    }
    assert.equal(classify(413, '{"error":"too_large","reason":"x","code":"INGRESS_BODY_TOO_LARGE"}', null, ids).kind, 'refused');
    assert.equal(classify(400, '{"error":"bad_request","reason":"x"}', null, ids).kind, 'refused', 'no code: a 400 is taken as a document');
    // The request's, token's or account's fault: every line would be refused alike, so the run stops (nothing rejected, nothing truncated).
    for (const code of [
      'INGRESS_TOKEN_APP',
      'INGRESS_APP_LIMIT',
      'INGRESS_RESERVED_APP',
      'AUTH_ROLE_FORBIDDEN',
      'AUTH_ADMIN_ONLY',
      'INGRESS_NEW_EDITS',
      'INGRESS_BAD_BULK',
      'COUCHDB_FORBIDDEN',
    ]) {
      const status = code === 'INGRESS_BAD_BULK' ? 400 : 403;
      const answer = classify(status, JSON.stringify({ error: 'forbidden', reason: 'x', code }), null, ids);
      assert.equal(answer.kind, 'fatal', code);
      assert.match((answer as { reason: string }).reason, new RegExp(`refused the request, not a line: ${status} \\w+ ${code}`));
    }
    assert.equal(classify(403, '{"error":"forbidden","reason":"x"}', null, ids).kind, 'fatal', "no code: a 403 is taken as the account's");
    assert.match(
      (classify(401, '{"error":"unauthorized","reason":"Name or password is incorrect."}', null, ids) as { reason: string }).reason,
      /refused the credentials/,
    );
    assert.match((classify(404, '{"error":"not_found","reason":"unknown app"}', null, ids) as { reason: string }).reason, /no such log database/);
    assert.equal(classify(201, 'not json', null, ids).kind, 'retry');
  });

  test("a document refused for the account (validate_doc_update's role check) fails the run; one refused for itself is rejected", () => {
    const two = ['id-a', 'id-b'];
    const role = { id: 'id-b', error: 'forbidden', reason: 'only users with the log_writer role may add log documents' };
    const answer = classify(201, JSON.stringify([{ id: 'id-a', ok: true, rev: '1-x' }, role]), null, two);
    assert.equal(answer.kind, 'fatal');
    assert.match((answer as { reason: string }).reason, /CouchDB refused the account, not a line: forbidden: only users with the log_writer role/);
    const own = classify(
      201,
      JSON.stringify([
        { id: 'id-a', ok: true, rev: '1-x' },
        { id: 'id-b', error: 'forbidden', reason: 'only admins may write design documents' },
      ]),
      null,
      two,
    );
    assert.equal(own.kind, 'results');
  });
});

describe('target URL', () => {
  test('the seed-style URL, a trailing slash, _bulk_docs, a base URL with --app, credentials', () => {
    assert.deepEqual(parseTarget('http://h:8080/log_fail2ban'), {
      origin: 'http://h:8080',
      dbPath: '/log_fail2ban',
      authorization: null,
      display: 'http://h:8080/log_fail2ban',
    });
    assert.equal(parseTarget('http://h:8080/log_fail2ban/').dbPath, '/log_fail2ban');
    assert.equal(parseTarget('http://h/log_x/_bulk_docs').dbPath, '/log_x');
    assert.equal(parseTarget('https://h/couch', 'web').dbPath, '/couch/log_web');
    const t = parseTarget('http://writer:p%40ss@h:8080/log_web');
    assert.equal(t.authorization, `Basic ${Buffer.from('writer:p@ss').toString('base64')}`);
    assert.ok(!t.display.includes('p%40ss') && !t.display.includes('writer'), 'no credentials in messages');
  });

  test('bad URLs are usage errors', () => {
    for (const [url, app, re] of [
      ['nope', undefined, /not a URL/],
      ['ftp://h/log_x', undefined, /http/],
      ['http://h:8080/', undefined, /must end with \/log_<app>/],
      ['http://h/log_x', 'y', /names log_x but --app is y/],
      ['http://h/log_UPPER', undefined, /must end with/],
    ] as const) {
      assert.throws(
        () => parseTarget(url, app),
        (e: unknown) => e instanceof UsageError && re.test(e.message),
        url,
      );
    }
  });

  test('a URL that does not parse is not repeated: it may carry a password', () => {
    assert.throws(
      () => parseTarget('http://writer:S3cret@host:80x/log_a'),
      (e: unknown) => e instanceof UsageError && /not a URL/.test(e.message) && !e.message.includes('S3cret'),
    );
  });
});
