// Unit tests of server/auth/session-login.ts: every name and password a
// login body can give CouchDB, so none naming the writer gets past the guard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loginOf, topLevelKeys } from '../../../../server/auth/session-login.js';

const FORM = 'application/x-www-form-urlencoded';

test('form bodies split on & and on ; (as mochiweb reads them), + and %-escapes decoded', () => {
  assert.deepEqual(loginOf(FORM, 'name=writer&password=a+b%21'), { names: ['writer'], passwords: ['a b!'], ambiguous: false });
  // Found by a black-box test: URLSearchParams read no name here, CouchDB read "writer".
  assert.deepEqual(loginOf(FORM, 'x=1;name=writer&password=wrong'), { names: ['writer'], passwords: ['wrong'], ambiguous: false });
  assert.equal(loginOf(FORM, 'name=reader&name=writer&password=x').ambiguous, true);
  assert.deepEqual(loginOf(FORM, 'name=%E0%A4&password=x').names, ['%E0%A4'], 'a bad escape is kept as it is, not dropped');
});

test('JSON bodies: a repeated member is ambiguous (CouchDB keeps the first, JSON.parse the last)', () => {
  assert.deepEqual(loginOf('application/json', '{"name":"writer","password":"p"}'), { names: ['writer'], passwords: ['p'], ambiguous: false });
  assert.equal(loginOf('application/json', '{"name":"writer","password":"p","name":"other"}').ambiguous, true);
  assert.equal(loginOf('application/json', '{"n\\u0061me":"writer","password":"p","name":"other"}').ambiguous, true, 'escaped names too');
  assert.equal(loginOf('application/json', '{"name":"writer","x":{"name":"nested"},"password":"p"}').ambiguous, false, 'nested members do not count');
  assert.deepEqual(loginOf('application/json', 'not json'), { names: [], passwords: [], ambiguous: false });
});

test('topLevelKeys: member names at depth 1 only, escapes decoded, strings with brackets and quotes skipped', () => {
  assert.deepEqual(topLevelKeys('{"a":1,"b":{"c":[1,{"d":2}]},"e\\"f":"}{,\\"g\\":","h":[]}'), ['a', 'b', 'e"f', 'h']);
  assert.deepEqual(topLevelKeys(' { "a" : "x" , "a" : "y" } '), ['a', 'a']);
  assert.deepEqual(topLevelKeys('{}'), []);
});

test('`username` is a name too (CouchDB takes it when name is absent); both at once are ambiguous', () => {
  // Found by a code review: {"username":"writer","password":"wrong"} reached CouchDB's lockout.
  assert.deepEqual(loginOf('application/json', '{"username":"writer","password":"p"}'), { names: ['writer'], passwords: ['p'], ambiguous: false });
  assert.deepEqual(loginOf(FORM, 'username=writer&password=p'), { names: ['writer'], passwords: ['p'], ambiguous: false });
  assert.equal(loginOf('application/json', '{"name":"reader","username":"writer","password":"p"}').ambiguous, true);
  assert.equal(loginOf(FORM, 'name=reader;username=writer&password=p').ambiguous, true);
});
