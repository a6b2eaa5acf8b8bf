// `npm run test:couchdb3 [-- files...]`: the integration suite (or the given
// compiled test files) against Apache CouchDB 3 instead of the embedded
// server. The server comes from the environment (test/helpers/couchdb3.ts):
//
//   COUCHLOG_TEST_COUCHDB_URL=http://127.0.0.1:5984 COUCHLOG_TEST_COUCHDB_PASSWORD=...
//       any running CouchDB 3 (e.g. Docker's couchdb:3); a throwaway one,
//       since every log_* database is deleted. Test files take turns.
//   COUCHLOG_TEST_COUCHDB_START=../shared/couchdb3/start [COUCHLOG_TEST_COUCHDB_NODES=3]
//       each stack starts its own node or cluster with that script.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { couchdb3TestRunnerEnv } from '../lib/config/tool-env.js';
import { describeTestServer, drainCouchdb3Pool, longestFirst, testServer } from '../test/helpers/couchdb3.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const runner = couchdb3TestRunnerEnv();

function usage(problem: string): never {
  process.stderr.write(
    `test:couchdb3: ${problem}\n` +
      'Set one of:\n' +
      '  COUCHLOG_TEST_COUCHDB_URL=http://127.0.0.1:5984 COUCHLOG_TEST_COUCHDB_USER=admin COUCHLOG_TEST_COUCHDB_PASSWORD=...\n' +
      '      a running CouchDB 3 that may be wiped (every log_* and couchlog_state_* database is deleted)\n' +
      '  COUCHLOG_TEST_COUCHDB_START=path/to/couchdb3/start [COUCHLOG_TEST_COUCHDB_NODES=3]\n' +
      '      every test stack starts its own node (or cluster) with that script\n',
  );
  process.exit(2);
}

function epmdAnswers(): Promise<boolean> {
  const port = runner.epmdPort;
  return new Promise((ok) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      ok(true);
    });
    s.on('error', () => ok(false));
  });
}

let server;
try {
  server = testServer();
} catch (err) {
  usage((err as Error).message);
}
if (server.kind === 'embedded') usage('no CouchDB 3 given (npm test runs the embedded server)');

const integration = join(ROOT, 'dist/test/integration');
const files = process.argv.slice(2);
const targets = longestFirst(
  files.length > 0
    ? files
    : readdirSync(integration)
        .filter((f) => f.endsWith('.test.js'))
        .sort()
        .map((f) => join(integration, f)),
);
const concurrency = runner.concurrency;

const env = runner.childEnv;
let cache: string | undefined;
if (server.kind === 'couchdb3-start' && !env.COUCHLOG_TEST_COUCHDB_RELEASE_CACHE) {
  cache = mkdtempSync(join(tmpdir(), 'couchlog-couchdb3-release-'));
  env.COUCHLOG_TEST_COUCHDB_RELEASE_CACHE = cache;
}
// Nodes handed from one stack to the next (test/helpers/couchdb3.ts, OwnCouchdb3): ended below.
let pool: string | undefined;
if (server.kind === 'couchdb3-start') {
  pool = mkdtempSync(join(tmpdir(), 'couchlog-couchdb3-pool-'));
  env.COUCHLOG_TEST_COUCHDB_POOL = pool;
}
const epmdBefore = server.kind === 'couchdb3-start' ? await epmdAnswers() : true;

process.stderr.write(`test:couchdb3: ${targets.length} test file(s) against ${describeTestServer(server)}\n`);
const started = Date.now();
const child = spawn(process.execPath, ['--test', `--test-concurrency=${concurrency}`, ...targets], { stdio: 'inherit', env, cwd: ROOT });
const forward = (sig: NodeJS.Signals) => child.kill(sig);
process.on('SIGINT', forward);
process.on('SIGTERM', forward);
process.on('SIGHUP', forward);
const code = await new Promise<number>((ok) => child.on('exit', (c, sig) => ok(c ?? (sig ? 128 : 1))));
if (pool && server.kind === 'couchdb3-start') {
  const uses = await drainCouchdb3Pool(pool, server.script, server.nodes);
  process.stderr.write(
    `test:couchdb3: ${uses.started} ${server.nodes === 1 ? 'node' : 'cluster'} start(s) for ${uses.started + uses.reused} stack(s); ` +
      `${uses.reused} stack(s) took one a stack before had left as it found it${uses.unusable ? `; ${uses.unusable} could not be reset` : ''}` +
      `${uses.left ? `; the nodes of ${uses.left} slot(s) could not be ended` : ''}\n`,
  );
}

// The first node of the run started the Erlang port mapper, and the nodes
// that followed kept it alive past that node's stop: end it if it was not
// running before (it refuses while a node is still registered).
if (!epmdBefore && cache && existsSync(join(cache, 'release')) && (await epmdAnswers())) {
  const erts = readdirSync(join(cache, 'release')).find((d) => d.startsWith('erts-'));
  const epmd = erts ? join(cache, 'release', erts, 'bin', 'epmd') : '';
  if (epmd && existsSync(epmd)) spawnSync(epmd, ['-kill'], { stdio: 'ignore' });
}
if (cache) rmSync(cache, { recursive: true, force: true });
process.stderr.write(`test:couchdb3: ${describeTestServer(server)}: exit ${code} after ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
process.exit(code);
