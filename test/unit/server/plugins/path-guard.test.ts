// Unit tests of request-path screening: badPathReason from
// server/plugins/path-guard.ts (dot segments plain and percent-encoded, empty
// segments, backslashes, control characters, paths not starting with "/";
// ordinary CouchDB paths pass; the query string is not screened) and
// isPublic from server/routes/proxy-routes.ts (which requests need no
// credentials), plus how the two combine for /_utils/.. tricks.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { badPathReason } from '../../../../server/plugins/path-guard.js';
import { isPublic } from '../../../../server/routes/proxy-routes.js';

const DOTS = /dot segments/;
const EMPTY_SEGMENT = /empty path segments/;
const BAD_CHARS = /backslashes and control characters/;
const NO_SLASH = /must start with "\/"/;

describe('badPathReason: refused', () => {
  // [url, which reason]
  const refused: Array<[string, RegExp]> = [
    // plain dot segments
    ['/..', DOTS],
    ['/.', DOTS],
    ['/log_app/..', DOTS],
    ['/log_app/.', DOTS],
    ['/log_app/../_users', DOTS],
    ['/log_app/./_bulk_docs', DOTS],
    ['/../_users/_all_docs', DOTS],
    ['/..?x=1', DOTS],
    ['/log_app/..?rev=1', DOTS],
    ['/log_app/../', DOTS],
    // percent-encoded dot segments, any case, mixed with plain dots
    ['/%2e%2e', DOTS],
    ['/%2E%2E', DOTS],
    ['/%2e%2E/_users', DOTS],
    ['/%2e', DOTS],
    ['/log_app/%2e/x', DOTS],
    ['/log_app/%2E./_users', DOTS],
    ['/log_app/.%2e/_users', DOTS],
    ['/log_app/%2e.', DOTS],
    ['/_utils/%2e%2e/_users', DOTS],
    // empty segments
    ['//', EMPTY_SEGMENT],
    ['//log_app', EMPTY_SEGMENT],
    ['/log_app//_bulk_docs', EMPTY_SEGMENT],
    ['/log_app/_bulk_docs//', EMPTY_SEGMENT],
    ['///_users', EMPTY_SEGMENT],
    // backslashes, raw and encoded
    ['/log_app\\..\\_users', BAD_CHARS],
    ['/a\\b', BAD_CHARS],
    ['\\', NO_SLASH],
    ['/log_app%5c..%5c_users', BAD_CHARS],
    ['/log_app%5C_users', BAD_CHARS],
    ['/a%5cb', BAD_CHARS],
    // control characters, raw, and an encoded NUL
    ['/a\x00b', BAD_CHARS],
    ['/a\tb', BAD_CHARS],
    ['/a\nb', BAD_CHARS],
    ['/a\rb', BAD_CHARS],
    ['/a\x1bb', BAD_CHARS],
    ['/a\x1fb', BAD_CHARS],
    ['/a\x7fb', BAD_CHARS],
    ['/log_app%00', BAD_CHARS],
    // not an origin-form path
    ['', NO_SLASH],
    ['log_app', NO_SLASH],
    ['*', NO_SLASH],
    ['http://couchdb:5984/_users', NO_SLASH],
    ['?x=/', NO_SLASH],
  ];
  for (const [url, reason] of refused) {
    test(`${JSON.stringify(url)} is refused (${reason.source})`, () => {
      const got = badPathReason(url);
      assert.notEqual(got, null, 'must be refused');
      assert.match(got!, reason);
    });
  }
});

describe('badPathReason: allowed', () => {
  const allowed = [
    '/',
    '/log_app',
    '/log_app/',
    '/log_app/_bulk_docs',
    '/log_app/0190a1b2c3d4e5f6a7b8c9d0e1f2a3b4',
    '/db/_design/x/_view/y?group_level=4',
    '/db/_design/x/_view/y?startkey=["a",{}]&endkey=["b"]',
    '/db/_all_docs?include_docs=true&limit=10',
    '/db/_changes?feed=longpoll&since=now',
    '/_utils/',
    '/_utils',
    '/_utils/index.html',
    '/_session',
    '/_up',
    '/_all_dbs',
    '/_couchlog/metrics',
    // "." only inside a segment is not a dot segment
    '/.well-known',
    '/.well-known/security.txt',
    '/log_app/.hidden',
    '/log_app/..x',
    '/log_app/x..',
    '/log_app/...',
    '/log_app/a.b.c',
    '/log_app/%2e%2e%2e',
    '/log_app/a%2eb',
    '/log_app/%2ex',
    // encoded characters CouchDB ids may hold
    '/db/doc%2Fwith%2Fslashes',
    '/db/caf%C3%A9',
    '/db/a%20b',
    '/db/_design%2Fx',
    // the query string is not a path: anything goes there
    '/db?x=..',
    '/db?x=a//b',
    '/db?x=%5c',
    '/db?x=/../',
    '/db/_find?q=\\',
  ];
  for (const url of allowed) {
    test(`${JSON.stringify(url)} is allowed`, () => {
      assert.equal(badPathReason(url), null);
    });
  }
});

describe('isPublic', () => {
  // [method, path, public?]
  const cases: Array<[string, string, boolean]> = [
    ['GET', '/_session', true],
    ['POST', '/_session', true],
    ['DELETE', '/_session', true],
    ['PUT', '/_session', false],
    ['PATCH', '/_session', false],
    ['HEAD', '/_session', false],
    ['GET', '/_session/', false],
    ['GET', '/_sessions', false],
    ['POST', '/_session/x', false],
    ['GET', '/_utils', true],
    ['HEAD', '/_utils', true],
    ['GET', '/_utils/', true],
    ['HEAD', '/_utils/', true],
    ['GET', '/_utils/index.html', true],
    ['GET', '/_utils/dashboard.assets/js/bundle.js', true],
    ['POST', '/_utils/', false],
    ['PUT', '/_utils/x', false],
    ['DELETE', '/_utils', false],
    ['GET', '/_utilsx', false],
    ['GET', '/_utils_evil', false],
    ['GET', '/_utils.html', false],
    ['GET', '/', false],
    ['GET', '/_all_dbs', false],
    ['GET', '/_users', false],
    ['GET', '/_users/_all_docs', false],
    ['GET', '/log_app', false],
    ['GET', '/log_app/_all_docs', false],
    ['POST', '/log_app', false],
    ['POST', '/log_app/_bulk_docs', false],
    ['GET', '/log_app/_utils', false],
    ['GET', '/log_app/_session', false],
    ['GET', '/_config', false],
    ['GET', '/_node/_local/_config', false],
    ['GET', '/_replicate', false],
    ['GET', '/_up', false],
    ['GET', '/_uuids', false],
  ];
  for (const [method, path, expected] of cases) {
    test(`${method} ${path} → ${expected ? 'public' : 'needs credentials'}`, () => {
      assert.equal(isPublic(method, path), expected);
    });
  }
});

describe('path guard + isPublic', () => {
  // isPublic trusts any path under /_utils/: the guard must refuse those that
  // climb out of it before CouchDB resolves them.
  const escapes = [
    '/_utils/../_all_dbs',
    '/_utils/../_users/_all_docs',
    '/_utils/%2e%2e/log_app/_all_docs',
    '/_utils/.%2E/_config',
    '/_utils/%2E%2e/_node/_local/_config',
    '/_utils/./../_users',
    '/_utils\\..\\_users',
    '/_utils/%5c..%5c_users',
    '/_utils//../_users',
  ];
  for (const url of escapes) {
    test(`${url}: public by prefix, refused by the guard`, () => {
      const path = url.split('?', 1)[0]!;
      assert.equal(isPublic('GET', path), path.startsWith('/_utils/'));
      assert.notEqual(badPathReason(url), null);
    });
  }
});
