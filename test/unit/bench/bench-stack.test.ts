// bench/bench-stack.ts: --couchdb-url of the benchmarks is held to the rule
// of couchdb.url, and a refused value is not repeated (review finding:
// `--couchdb-url ftp://admin:S3cretPw@host` printed the password back).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { couchChoice, EMBEDDED } from '../../../bench/bench-stack.js';

const env = { COUCHDB_USER: 'admin', COUCHDB_PASSWORD: 'admin-password-1' };

test('--couchdb-url: refusals name the problem, never the value', () => {
  const cases: Array<[string, RegExp]> = [
    ['S3cretPw', /^--couchdb-url: not a URL$/],
    [
      'ftp://admin:S3cretPw@127.0.0.1:5984',
      /^--couchdb-url: must be an http:\/\/ or https:\/\/ URL; must not contain credentials: use COUCHDB_USER \/ COUCHDB_PASSWORD$/,
    ],
    ['http://admin:S3cretPw@127.0.0.1:5984', /^--couchdb-url: must not contain credentials/],
    ['http://127.0.0.1:5984/S3cretPw', /^--couchdb-url: must be the server root/],
  ];
  for (const [url, message] of cases) {
    const got = couchChoice(url, env);
    assert.equal(typeof got, 'string', url);
    assert.match(got as string, message);
    assert.ok(!(got as string).includes('S3cretPw'), got as string);
  }
});

test('--couchdb-url: a server root with the admin password in the environment is the choice; none is the embedded server', () => {
  assert.deepEqual(couchChoice('http://127.0.0.1:5984/', env), { couchdbUrl: 'http://127.0.0.1:5984', env });
  assert.equal(couchChoice(undefined, env), EMBEDDED);
  assert.match(couchChoice('http://127.0.0.1:5984', {}) as string, /needs the admin password in COUCHDB_PASSWORD/);
});
