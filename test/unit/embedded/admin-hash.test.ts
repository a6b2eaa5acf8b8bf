// The embedded server's admin entry: what pouchdb-auth reads, checked the
// way the server checks it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pbkdf2Sync } from 'node:crypto';
import { createRequire } from 'node:module';
import { adminHashMatches, hashAdminPassword } from '../../../embedded/admin-hash.js';
import { EMBEDDED_PBKDF2_ITERATIONS } from '../../../lib/couch/pbkdf2-iterations.js';
import { liteKey } from '../../../embedded/password-hash.cjs';

const require = createRequire(import.meta.url);
// pouchdb-auth's own reading of [admins] and its own hashing (crypto-lite), unpatched.
const admins = require('pouchdb-auth/lib/admins.js') as {
  parse: (a: Record<string, string>) => Record<string, { derived_key: string; salt: string; iterations: number }>;
};
const lite = require('crypto-lite').crypto as { pbkdf2: (s: string, salt: string, n: number, len: number) => string };

test("an ASCII password: PBKDF2-SHA1 with CouchDB 3.5's iterations, in the form pouchdb-auth reads", async () => {
  const entry = await hashAdminPassword('s3cret-Admin');
  const parsed = admins.parse({ admin: entry }).admin!;
  assert.equal(parsed.iterations, EMBEDDED_PBKDF2_ITERATIONS);
  assert.equal(pbkdf2Sync('s3cret-Admin', parsed.salt, parsed.iterations, 20, 'sha1').toString('hex'), parsed.derived_key);
  assert.equal(await adminHashMatches(entry, 's3cret-Admin'), true);
  assert.equal(await adminHashMatches(entry, 's3cret-admin'), false);
});

test('a password that is not ASCII: the same iterations, hashed from the key bytes crypto-lite uses (password-hash.test.ts compares those with crypto-lite)', async () => {
  const password = 'é'.repeat(33); // where crypto-lite and a plain UTF-8 PBKDF2 disagree
  const entry = await hashAdminPassword(password);
  const parsed = admins.parse({ admin: entry }).admin!;
  assert.equal(parsed.iterations, EMBEDDED_PBKDF2_ITERATIONS);
  assert.equal(pbkdf2Sync(liteKey(password)!, parsed.salt, parsed.iterations, 20, 'sha1').toString('hex'), parsed.derived_key);
  assert.notEqual(pbkdf2Sync(password, parsed.salt, parsed.iterations, 20, 'sha1').toString('hex'), parsed.derived_key, 'crypto-lite cuts this key');
  // crypto-lite itself at a few iterations: the key bytes agree.
  assert.equal(lite.pbkdf2(password, parsed.salt, 3, 20), pbkdf2Sync(liteKey(password)!, parsed.salt, 3, 20, 'sha1').toString('hex'));
  assert.equal(await adminHashMatches(entry, password), true);
  assert.equal(await adminHashMatches(entry, 'è'.repeat(33)), false);
});

test('not kept: no hash, a plain password, a weaker hash (PUT /_config/admins makes 10 iterations)', async () => {
  assert.equal(await adminHashMatches(undefined, 'pw'), false);
  assert.equal(await adminHashMatches('s3cret-Admin', 's3cret-Admin'), false);
  const salt = 'ab'.repeat(16);
  const weak = `-pbkdf2-${pbkdf2Sync('s3cret-Admin', salt, 10, 20, 'sha1').toString('hex')},${salt},10`;
  assert.equal(await adminHashMatches(weak, 's3cret-Admin'), false);
});
