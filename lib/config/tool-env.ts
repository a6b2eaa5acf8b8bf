// What couchlog's own tools (the benchmarks, the CouchDB 3 test runner)
// take from the environment. Here because only the config module reads
// process.env: the tools ask these functions, by name, for what they use.
import type { Env } from './load.js';

/**
 * COUCHDB_USER / COUCHDB_PASSWORD: the admin of an external CouchDB a
 * benchmark measures (--couchdb-url), never given on the command line.
 * Only these two are returned: nothing else of the environment reaches
 * the benchmark's configuration.
 */
export function toolCouchAdminEnv(env: Env = process.env): Env {
  return { COUCHDB_USER: env.COUCHDB_USER, COUCHDB_PASSWORD: env.COUCHDB_PASSWORD };
}

/**
 * The environment of a couchlog process a tool starts against a server of
 * its own: this one's without COUCHDB_URL, COUCHDB_USER and COUCHDB_PASSWORD,
 * so that a shell's cannot point the child at another server.
 */
export function childEnvWithoutCouchdb(env: Env = process.env): Env {
  const { COUCHDB_URL: _u, COUCHDB_USER: _n, COUCHDB_PASSWORD: _p, ...inherited } = env;
  return inherited;
}

/** What `npm run test:couchdb3` (scripts/test-couchdb3.ts) takes from the environment. */
export interface Couchdb3TestRunnerEnv {
  /** COUCHLOG_TEST_CONCURRENCY: test files run at once (default 2). */
  concurrency: string;
  /** ERL_EPMD_PORT: the port of the Erlang port mapper the CouchDB nodes register with (default 4369). */
  epmdPort: number;
  /**
   * A copy of the whole environment, for the test process: test/helpers/couchdb3.ts
   * reads the COUCHLOG_TEST_COUCHDB_* variables there (the server the tests use),
   * and the runner may add COUCHLOG_TEST_COUCHDB_RELEASE_CACHE.
   */
  childEnv: Env;
}

export function couchdb3TestRunnerEnv(env: Env = process.env): Couchdb3TestRunnerEnv {
  return {
    concurrency: env.COUCHLOG_TEST_CONCURRENCY || '2',
    epmdPort: Number(env.ERL_EPMD_PORT || 4369),
    childEnv: { ...env },
  };
}
