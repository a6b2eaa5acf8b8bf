// lib/config/tool-env.ts: what the benchmarks and the CouchDB 3 test runner
// take from the environment, read by the config module for them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Env } from '../../../../lib/config/load.js';
import { childEnvWithoutCouchdb, couchdb3TestRunnerEnv, toolCouchAdminEnv } from '../../../../lib/config/tool-env.js';

const env: Env = {
  PATH: '/usr/bin',
  COUCHDB_URL: 'http://127.0.0.1:5994',
  COUCHDB_USER: 'admin',
  COUCHDB_PASSWORD: 'admin-password-1',
  COUCHLOG_TEST_CONCURRENCY: '4',
  ERL_EPMD_PORT: '4400',
  COUCHLOG_TEST_COUCHDB_URL: 'http://127.0.0.1:5995',
};

test("the benchmarks' external admin: COUCHDB_USER and COUCHDB_PASSWORD, nothing else", () => {
  assert.deepEqual(toolCouchAdminEnv(env), { COUCHDB_USER: 'admin', COUCHDB_PASSWORD: 'admin-password-1' });
  assert.deepEqual(toolCouchAdminEnv({}), { COUCHDB_USER: undefined, COUCHDB_PASSWORD: undefined });
});

test("a child couchlog's environment: everything but COUCHDB_URL, COUCHDB_USER and COUCHDB_PASSWORD", () => {
  const child = childEnvWithoutCouchdb(env);
  assert.deepEqual(Object.keys(child).sort(), ['COUCHLOG_TEST_CONCURRENCY', 'COUCHLOG_TEST_COUCHDB_URL', 'ERL_EPMD_PORT', 'PATH']);
  assert.equal(child.PATH, '/usr/bin');
  assert.equal('COUCHDB_URL' in env, true, 'the environment itself is left as it is');
});

test("the CouchDB 3 test runner: its concurrency, the port mapper's port and a copy of the environment for the tests", () => {
  const runner = couchdb3TestRunnerEnv(env);
  assert.equal(runner.concurrency, '4');
  assert.equal(runner.epmdPort, 4400);
  assert.deepEqual(runner.childEnv, env);
  runner.childEnv.COUCHLOG_TEST_COUCHDB_RELEASE_CACHE = '/tmp/x';
  assert.equal('COUCHLOG_TEST_COUCHDB_RELEASE_CACHE' in env, false, 'a copy: what the runner adds stays in it');
  assert.deepEqual({ ...couchdb3TestRunnerEnv({}), childEnv: null }, { concurrency: '2', epmdPort: 4369, childEnv: null });
});
