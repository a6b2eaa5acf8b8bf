// The embedded servers' first start and their files (reviewer's findings,
// 2026-12-07): PouchDB Server started without an admin, and setup made one
// only once it answered; in that window (~1.8 s) a local script polling
// GET /_session saw `_admin` and set [httpd] authentication_handlers to
// the special test handler, after which every anonymous request was an
// admin's, kept in config.json across restarts. And config.json (cookie
// secret, admin hash) was 0644 after setup, data/ 0755, ClickHouse's
// users.xml 0644.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { ensureSecrets, loadConfig, type Config } from '../../lib/config/load.js';
import { basicAuth } from '../../lib/couch/basic-auth.js';
import { createLogger } from '../../lib/logger.js';
import { startEmbeddedCouch } from '../../cli/couchdb.js';
import type { EmbeddedCouch } from '../../embedded/pouchdb-server.js';
import { EmbeddedClickhouse, findClickhouseServer } from '../../embedded/clickhouse-server.js';
import { embeddedOnly, freePort, http } from '../helpers/stack.js';

const dir = mkdtempSync(join(tmpdir(), 'couchlog-first-start-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent', 'test');
const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

async function embeddedConfig(dataDir: string): Promise<Config> {
  writeFileSync(join(dir, 'couchlog.yml'), stringifyYaml({ clickhouse: { enabled: false } }));
  const { config } = loadConfig({ env: { COUCHLOG_DATA: dataDir, COUCHLOG_COUCHDB_PORT: String(await freePort()) }, cwd: dir });
  ensureSecrets(config);
  return config;
}

/** Anonymous GET /_session as fast as it answers, until `done`: how many answers, and how many said _admin. */
async function pollSession(url: string, done: () => boolean): Promise<{ answers: number; admin: number; firstAdminAt: number | null }> {
  const started = Date.now();
  const seen = { answers: 0, admin: 0, firstAdminAt: null as number | null };
  while (!done()) {
    try {
      const res = await fetch(`${url}/_session`, { signal: AbortSignal.timeout(2000) });
      const body = (await res.json()) as { userCtx?: { roles?: string[] } };
      seen.answers += 1;
      if (body.userCtx?.roles?.includes('_admin')) {
        seen.admin += 1;
        seen.firstAdminAt ??= Date.now() - started;
      }
    } catch {
      await new Promise((r) => setImmediate(r)); // not listening yet
    }
  }
  return seen;
}

test(
  'first start: an anonymous poller from the first millisecond never sees an admin party',
  { skip: embeddedOnly('the embedded server'), timeout: 60_000 },
  async (t) => {
    const config = await embeddedConfig(join(dir, 'party'));
    let couch: EmbeddedCouch | null = null;
    let stopPolling = false;
    const url = `http://127.0.0.1:${config.couchdb.embedded.port}`;
    // Four at once, as a script hammering the port would.
    const polled = Promise.all(Array.from({ length: 4 }, () => pollSession(url, () => stopPolling))).then((all) => ({
      answers: all.reduce((n, p) => n + p.answers, 0),
      admin: all.reduce((n, p) => n + p.admin, 0),
      firstAdminAt: Math.min(...all.map((p) => p.firstAdminAt ?? Infinity)),
    }));
    try {
      couch = await startEmbeddedCouch(config, logger);
      // And a moment after the admin is known to work, as setup would go on.
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      stopPolling = true;
    }
    const seen = await polled;
    try {
      t.diagnostic(`${seen.answers} anonymous answers to the poller, ${seen.admin} with _admin`);
      assert.ok(seen.answers > 0, 'the poller reached the server');
      assert.equal(seen.admin, 0, `${seen.admin} of ${seen.answers} anonymous answers said _admin (the first ${seen.firstAdminAt} ms after polling began)`);
      const admin = basicAuth(config.couchdb.admin.user, config.couchdb.admin.password!);
      const session = await http(`${url}/_session`, { headers: { authorization: admin } });
      assert.deepEqual(session.json.userCtx.roles, ['_admin'], 'the configured admin works');
    } finally {
      await couch?.stop(2000);
    }
  },
);

test(
  'settings that let anonymous callers in, left in config.json, are reset at the next start; modes 0600/0700 on every start and after PouchDB rewrites its config',
  { skip: embeddedOnly('the embedded server'), timeout: 60_000 },
  async () => {
    const dataDir = join(dir, 'reset');
    const config = await embeddedConfig(dataDir);
    const url = `http://127.0.0.1:${config.couchdb.embedded.port}`;
    const admin = basicAuth(config.couchdb.admin.user, config.couchdb.admin.password!);
    const file = join(dataDir, 'couchdb', 'config.json');
    let couch = await startEmbeddedCouch(config, logger);
    await couch.stop(2000);
    // What an admin (or the window above) could have left: every anonymous request an admin's, and more.
    const left = JSON.parse(readFileSync(file, 'utf8'));
    left.httpd = { ...left.httpd, authentication_handlers: '{couch_httpd_auth, special_test_authentication_handler}' };
    left.vhosts = { 'example.com': '/log_appname/_design/x/_rewrite' };
    left.couch_httpd_auth.authentication_db = 'log_appname';
    left.replicator = { db: 'log_appname' };
    left.pouchdb_server = { level_backend: '/tmp/not-a-module' };
    writeFileSync(file, JSON.stringify(left));
    // As an older couchlog left them.
    chmodSync(file, 0o644);
    chmodSync(join(dataDir, 'couchdb'), 0o755);
    chmodSync(dataDir, 0o755);
    couch = await startEmbeddedCouch(config, logger);
    try {
      const anonymous = await http(`${url}/_session`);
      assert.deepEqual(anonymous.json.userCtx.roles, [], `anonymous: ${anonymous.text}`);
      const httpd = await http(`${url}/_config/httpd`, { headers: { authorization: admin } });
      assert.equal(httpd.status, 200, httpd.text);
      assert.equal(httpd.json.authentication_handlers, undefined);
      assert.deepEqual((await http(`${url}/_config/vhosts`, { headers: { authorization: admin } })).json, {});
      assert.equal((await http(`${url}/_config/couch_httpd_auth/authentication_db`, { headers: { authorization: admin } })).json, '_users');
      assert.equal((await http(`${url}/_config/replicator/db`, { headers: { authorization: admin } })).json, '_replicator');
      assert.equal((await http(`${url}/_config/pouchdb_server`, { headers: { authorization: admin } })).json.level_backend, undefined);
      assert.deepEqual([mode(dataDir), mode(join(dataDir, 'couchdb')), mode(file)], ['700', '700', '600']);
      // PouchDB Server writes a new config.json (temp file, rename) on every /_config change.
      const put = await http(`${url}/_config/couchlog_test/key`, { method: 'PUT', headers: { authorization: admin }, body: '"value"' });
      assert.equal(put.status, 200, put.text);
      await new Promise((r) => setTimeout(r, 200)); // its write is not awaited by the answer
      assert.equal(JSON.parse(readFileSync(file, 'utf8')).couchlog_test?.key, 'value', 'the server rewrote its config');
      assert.equal(mode(file), '600', 'the rewritten config.json is private too');
    } finally {
      await couch.stop(2000);
    }
  },
);

test(
  "the embedded ClickHouse's folder, config and users.xml (its password's hash) are private",
  { skip: findClickhouseServer() === null ? 'clickhouse-server is not installed' : false, timeout: 60_000 },
  async () => {
    const dataDir = join(dir, 'clickhouse-modes');
    const server = new EmbeddedClickhouse({
      binary: findClickhouseServer()!,
      dataDir,
      host: '127.0.0.1',
      httpPort: await freePort(),
      tcpPort: await freePort(),
      startTimeoutMs: 60_000,
      logger,
      password: 'clickhouse-test-password',
    });
    try {
      await server.start();
      const ch = join(dataDir, 'clickhouse');
      assert.deepEqual(
        [mode(dataDir), mode(ch), mode(join(ch, 'users.xml')), mode(join(ch, 'config.xml'))],
        ['700', '700', '600', '600'],
        'data/, data/clickhouse/, users.xml, config.xml',
      );
      // What ClickHouse writes itself (its own copy of users.xml, hash included) is private too.
      assert.equal(mode(join(ch, 'data', 'preprocessed_configs', 'users.xml')), '600');
    } finally {
      await server.stop(0); // killed: 18.16 takes 8 s to stop in order
    }
  },
);
