// Starts a real, isolated couchlog stack for a test file: an embedded
// PouchDB Server on a free port with its own data folder, setup, and the
// ingress listening on another free port (bench/bench-stack.ts
// startCouchStack, the sequence the benchmarks start theirs with). Nothing
// is mocked.
// With COUCHLOG_TEST_COUCHDB_START or COUCHLOG_TEST_COUCHDB_URL set, the
// stack runs on Apache CouchDB 3 instead (./couchdb3.ts), through the same
// config loader (COUCHDB_URL and admin) and setup as `couchlog setup`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { stringify as stringifyYaml } from 'yaml';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { loadConfig, ensureSecrets, type Config } from '../../lib/config/load.js';
import { basicAuth } from '../../lib/couch/basic-auth.js';
import { createLogger } from '../../lib/logger.js';
import type { EmbeddedCouch } from '../../embedded/pouchdb-server.js';
import { startIngress } from '../../cli/ingress.js';
import { startCouchStack, type CouchStack } from '../../bench/bench-stack.js';
import { freePort } from '../../bench/free-port.js';
import { describeTestServer, startTestCouchdb3, testServer, type TestCouchdb3 } from './couchdb3.js';

export { freePort };

/** The server the stacks of this run use: 'embedded' (PouchDB Server) or 'couchdb3'. */
export const couchFlavor: 'embedded' | 'couchdb3' = testServer().kind === 'embedded' ? 'embedded' : 'couchdb3';

/** Whether this run's stacks each have a CouchDB 3 cluster (COUCHLOG_TEST_COUCHDB_NODES > 1). */
export const couchCluster: boolean = (() => {
  const server = testServer();
  return server.kind === 'couchdb3-start' && server.nodes > 1;
})();

/** A test's `skip` option for what only applies to the embedded server: false there, the reason elsewhere. */
export function embeddedOnly(reason: string): false | string {
  return couchFlavor === 'embedded' ? false : `embedded server only (this run: ${describeTestServer()}): ${reason}`;
}

/**
 * A test's `skip` option for what does not depend on the CouchDB behind
 * couchlog (its command lines, its own files, its processes' signals, the
 * shipper against the ingress): it runs once, in the embedded run, and not
 * again in the CouchDB 3 runs, which keeps CI within its time (issue 13).
 * What such a test writes through the ingress, the ingress suites test on
 * every server.
 */
export function serverIndependent(reason: string): false | string {
  return couchFlavor === 'embedded' ? false : `runs once, in the embedded run (this run: ${describeTestServer()}): ${reason}`;
}

/** A test's `skip` option for what needs a CouchDB it can stop and start (not a shared COUCHLOG_TEST_COUCHDB_URL). */
export function needsStoppableCouch(reason: string): false | string {
  return testServer().kind === 'couchdb3-url' ? `needs a CouchDB the tests start themselves (this run: ${describeTestServer()}): ${reason}` : false;
}

export interface Stack {
  config: Config;
  /** The embedded server, or the CouchDB 3 of this stack (couchFlavor tells which). */
  couch: EmbeddedCouch | TestCouchdb3;
  app: FastifyInstance;
  /** Ingress base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  /** CouchDB base URL (embedded or CouchDB 3). */
  couchUrl: string;
  auth: { admin: string; writer: string; reader: string };
  dataDir: string;
  /** Rebuilds and restarts the ingress with a changed config (same CouchDB). */
  restartIngress(change?: (c: Config) => void): Promise<void>;
  /**
   * Stops the ingress as a crash would: open connections are cut (answers
   * in flight are lost, though their writes may complete), new ones refused.
   */
  killIngress(): Promise<void>;
  /** Starts the ingress again after killIngress(), on the same port. */
  reviveIngress(): Promise<void>;
  stop(): Promise<void>;
}

/** The environment a couchlog command needs to run against this stack's CouchDB with its accounts (secrets as a user gives them). */
export function accountsEnv(stack: Stack): Record<string, string> {
  const c = stack.config;
  return {
    COUCHDB_URL: stack.couchUrl,
    COUCHDB_USER: c.couchdb.admin.user,
    COUCHDB_PASSWORD: c.couchdb.admin.password!,
    COUCHLOG_WRITER_USER: c.users.writer.user,
    COUCHLOG_WRITER_PASSWORD: c.users.writer.password!,
    COUCHLOG_READER_USER: c.users.reader.user,
    COUCHLOG_READER_PASSWORD: c.users.reader.password!,
    COUCHLOG_CORRELATOR_USER: c.users.correlator.user,
    COUCHLOG_CORRELATOR_PASSWORD: c.users.correlator.password!,
  };
}

export interface StackOptions {
  /** Written as the stack's couchlog.yml, so it goes through the real loader and schema. */
  yaml?: Record<string, unknown>;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const dataDir = mkdtempSync(join(tmpdir(), 'couchlog-test-'));
  const couchdb3 = await startTestCouchdb3(dataDir);
  const env = {
    COUCHLOG_DATA: dataDir,
    COUCHLOG_COUCHDB_PORT: String(await freePort()),
    COUCHLOG_INGRESS_PORT: String(await freePort()),
    COUCHLOG_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    // An external CouchDB, exactly as a user configures one.
    ...(couchdb3 && { COUCHDB_URL: couchdb3.url, COUCHDB_USER: couchdb3.admin.user, COUCHDB_PASSWORD: couchdb3.admin.password }),
  };
  // No ClickHouse unless a test asks for one: setup would otherwise look for it.
  const yaml = { clickhouse: { enabled: false }, ...opts.yaml };
  writeFileSync(join(dataDir, 'couchlog.yml'), stringifyYaml(yaml));
  const { config } = loadConfig({ env, cwd: dataDir });
  ensureSecrets(config);
  const logger = createLogger(config.log_level, 'test');
  let running: CouchStack;
  for (let attempt = 1; ; attempt++) {
    try {
      running = await startCouchStack(config, logger, { ingress: true, afterSetup: async () => couchdb3?.settled() });
      break;
    } catch (err) {
      // freePort's port was free a moment ago: another test process can take it while CouchDB starts, before
      // the ingress listens (CI of c4dca80, the dashboard suite). startCouchStack stopped what it started.
      if (attempt < 3 && /already in use/.test((err as Error).message)) {
        config.ingress.port = await freePort();
        continue;
      }
      await couchdb3?.dispose();
      throw err;
    }
  }
  const couch = couchdb3 ?? running.embedded!;
  let app = running.app!;
  let ingressUp = true;
  const pw = (x: string | null) => x ?? '';
  const stack: Stack = {
    config,
    couch,
    app,
    url: `http://127.0.0.1:${config.ingress.port}`,
    couchUrl: couch.url,
    dataDir,
    auth: {
      admin: basicAuth(config.couchdb.admin.user, pw(config.couchdb.admin.password)),
      writer: basicAuth(config.users.writer.user, pw(config.users.writer.password)),
      reader: basicAuth(config.users.reader.user, pw(config.users.reader.password)),
    },
    async restartIngress(change) {
      await app.close();
      change?.(config);
      app = await startIngress(config, logger);
      stack.app = app;
    },
    async killIngress() {
      if (!ingressUp) return;
      ingressUp = false;
      const closing = app.close();
      app.server.closeAllConnections();
      await closing;
    },
    async reviveIngress() {
      if (ingressUp) return;
      app = await startIngress(config, logger);
      stack.app = app;
      ingressUp = true;
    },
    async stop() {
      if (ingressUp) await app.close();
      if (couchdb3) await couchdb3.dispose();
      else await couch.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return stack;
}

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

/** A plain HTTP request (fetch), answering status, headers and parsed JSON body when there is one. */
export async function http(url: string, init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<HttpResult> {
  const res = await fetch(url, { method: init.method ?? 'GET', headers: init.headers, body: init.body as BodyInit | undefined, redirect: 'manual' });
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, text, json };
}

export const JSON_TYPE = { 'content-type': 'application/json' };

/**
 * Number of non-design documents in a database, read as admin directly from
 * CouchDB, once it has stopped moving. On a cluster `_all_docs` reads each
 * shard range from whichever copy answers first, and a copy may not yet hold
 * a write answered a moment ago: a count taken right after a write can be
 * short by it, and a later "nothing was stored" comparison then sees that
 * write arrive. So on a cluster, read until three reads in a row agree.
 */
export async function countDocs(stack: Stack, db: string): Promise<number> {
  const read = async (): Promise<number> => {
    const res = await http(`${stack.couchUrl}/${db}/_all_docs`, { headers: { authorization: stack.auth.admin } });
    if (res.status !== 200) throw new Error(`count ${db}: ${res.status} ${res.text}`);
    return (res.json.rows as Array<{ id: string }>).filter((r) => !r.id.startsWith('_design/')).length;
  };
  let last = await read();
  if (!couchCluster) return last;
  const deadline = Date.now() + 10_000;
  for (let agreeing = 1; agreeing < 3 && Date.now() < deadline;) {
    await new Promise((r) => setTimeout(r, 150));
    const now = await read();
    agreeing = now === last ? agreeing + 1 : 1;
    last = now;
  }
  return last;
}

/**
 * On a cluster a write is answered once a quorum of copies holds it; the
 * other copy catches up a moment later, and `_changes`, views and
 * `_all_docs` without keys may answer from that copy meanwhile. A read
 * with r=3 waits for every copy and repairs those that lack the document
 * before it answers (by id: a listing could come from the copy that lacks
 * some). The repair is itself a quorum write, so the last copy may lack a
 * document a moment longer (CI of 2cc6285): a write that must find it on
 * every copy goes through `onEveryCopyWrite`. One server: nothing to do.
 */
export async function onEveryCopy(stack: Stack, db: string, ids: readonly string[]): Promise<void> {
  if (!couchCluster) return;
  const headers = { authorization: stack.auth.admin };
  let todo = [...ids];
  while (todo.length > 0) {
    const chunk = todo.slice(0, 16);
    todo = todo.slice(16);
    await Promise.all(
      chunk.map(async (id) => {
        const res = await http(`${stack.couchUrl}/${db}/${encodeURIComponent(id)}?r=3`, { headers });
        if (res.status !== 200) throw new Error(`reading ${db}/${id} from every copy: ${res.status} ${res.text}`);
      }),
    );
  }
}

/**
 * A write that must find its document on every copy, such as an update that
 * validation refuses: a copy that lacks the document answers it 409 instead,
 * and CouchDB passes that on. On a cluster, repeats the write while `lacking`
 * says a copy answered so (at most 30 s), then answers the last try for the
 * caller to assert exactly. One server: the write once.
 */
export async function onEveryCopyWrite<T>(write: () => Promise<T>, lacking: (v: T) => boolean): Promise<T> {
  return couchCluster ? settled(write, (v) => !lacking(v)) : write();
}

/**
 * Reads until `enough` holds (at most `ms`, 30 s by default), then answers
 * the last read, for the caller to assert exactly. On a cluster _all_docs
 * without keys, views, _changes and GET /db answer from one copy of each
 * shard range, which may lack writes the others acknowledged (CI of
 * 76dd246: 18 of 20 at the first read); copies converge within seconds.
 */
export async function settled<T>(read: () => Promise<T>, enough: (v: T) => boolean, ms = 30_000): Promise<T> {
  let v = await read();
  for (const deadline = Date.now() + ms; !enough(v) && Date.now() < deadline; v = await read()) await new Promise((r) => setTimeout(r, 200));
  return v;
}

/**
 * A write's status as "stored" (201) when the test is not about its kind:
 * a CouchDB cluster under load answers 202 now and then (stored on fewer
 * copies than its write quorum so far), and the ingress passes that on.
 * One server never answers 202.
 */
export const storedStatus = (status: number): number => (couchCluster && status === 202 ? 201 : status);
