// The CouchDB a benchmark measures, plus the ingress in front of it: the
// same code `couchlog up` runs, on given ports, with request logs written at
// `info` (as in production) but to /dev/null.
//
// startCouchStack is the one sequence tests and benchmarks start a stack
// with: the CouchDB (embedded unless the config names one), setup, and the
// ingress when asked for (test/helpers/stack.ts, startBenchStack below,
// bench:protection and bench:correlator).
//
// The one place where a benchmark chooses its CouchDB: the embedded PouchDB
// Server (started here, in a temporary data folder, stopped at the end), or
// an external CouchDB given by URL (e.g. Apache CouchDB 3), whose admin
// comes from COUCHDB_USER / COUCHDB_PASSWORD, never from the command line.
// On an external server every database a run makes has a name of its own
// (a unique prefix: the apps are `bench<time>_<name>`) and is deleted when
// the run ends; the accounts setup manages (writer, reader, correlator) get
// the run's passwords, so use a server of your own.
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { correlatorStateDb, couchUrl, dbName, ensureSecrets, loadConfig, type Config } from '../lib/config/load.js';
import { httpUrlProblems } from '../lib/config/http-url.js';
import { basicAuth } from '../lib/couch/basic-auth.js';
import { CouchHttp } from '../lib/couch/http.js';
import { startEmbeddedCouch } from '../cli/couchdb.js';
import type { EmbeddedCouch } from '../embedded/pouchdb-server.js';
import { loggerOptions, type Logger } from '../lib/logger.js';
import { runSetup } from '../cli/run-setup.js';
import { startIngress } from '../cli/ingress.js';

/** Which CouchDB a benchmark measures. */
export interface CouchChoice {
  /** An external CouchDB (admin from COUCHDB_USER / COUCHDB_PASSWORD in `env`); null: the embedded server. */
  couchdbUrl: string | null;
  /** Where the external admin's credentials are read (COUCHDB_USER / COUCHDB_PASSWORD: lib/config/tool-env.ts, toolCouchAdminEnv). */
  env: Record<string, string | undefined>;
}

export const EMBEDDED: CouchChoice = { couchdbUrl: null, env: {} };

export interface BenchConfig {
  config: Config;
  external: boolean;
  /** Prefix of every app (and so database) name of this run: '' on the embedded server. */
  prefix: string;
}

/**
 * A benchmark's configuration for the chosen CouchDB, secrets generated in
 * `dataDir`. Apps, ports and the rest are the caller's to set before setup.
 */
export function benchConfig(o: { dataDir: string; couch: CouchChoice; couchPort: number; ingressPort?: number }): BenchConfig {
  const env: Record<string, string | undefined> = { COUCHLOG_DATA: o.dataDir, COUCHLOG_COUCHDB_PORT: String(o.couchPort), COUCHLOG_LOG_LEVEL: 'info' };
  if (o.ingressPort !== undefined) env.COUCHLOG_INGRESS_PORT = String(o.ingressPort);
  const external = o.couch.couchdbUrl !== null;
  if (external) Object.assign(env, { COUCHDB_URL: o.couch.couchdbUrl, COUCHDB_USER: o.couch.env.COUCHDB_USER, COUCHDB_PASSWORD: o.couch.env.COUCHDB_PASSWORD });
  const { config } = loadConfig({ env, cwd: o.dataDir });
  // The correlator's output database is made by setup too: one of the run's own.
  const prefix = external ? `bench${Date.now().toString(36)}${randomBytes(2).toString('hex')}_` : '';
  config.correlator.outputs.couchdb.app = `${prefix}${config.correlator.outputs.couchdb.app}`;
  ensureSecrets(config);
  return { config, external, prefix };
}

export interface CouchStack {
  /** The embedded server, started here; null when the config names an external CouchDB. */
  embedded: EmbeddedCouch | null;
  /** The ingress, listening on the config's host and port; null when not asked for. */
  app: FastifyInstance | null;
  /** Closes the ingress, stops the embedded server. */
  stop(): Promise<void>;
}

/**
 * The CouchDB (the embedded server, with its admin, unless `config.couchdb.url`
 * is set), `couchlog setup`, then `afterSetup`, then the ingress when asked
 * for. When a step fails, what was started is stopped before the error is thrown.
 */
export async function startCouchStack(config: Config, logger: Logger, o: { ingress: boolean; afterSetup?: () => Promise<unknown> }): Promise<CouchStack> {
  const embedded = config.couchdb.url === null ? await startEmbeddedCouch(config, logger) : null;
  let app: FastifyInstance | null = null;
  try {
    await runSetup(config);
    await o.afterSetup?.();
    if (o.ingress) app = await startIngress(config, logger);
  } catch (err) {
    await embedded?.stop();
    throw err;
  }
  return {
    embedded,
    app,
    async stop() {
      await app?.close();
      await embedded?.stop();
    },
  };
}

/** "embedded PouchDB Server (url)" or "Apache CouchDB 3.5.0 at url", from the server's own welcome. */
export async function describeCouch(url: string, embedded: boolean, admin: Record<string, string>): Promise<string> {
  if (embedded) return `embedded PouchDB Server (${url})`;
  const http = new CouchHttp(url, { timeoutMs: 30_000, retryAfterS: 1 });
  try {
    const info = await http.request<{ couchdb?: string; version?: string; vendor?: { name?: string } }>('GET', '/', { headers: admin });
    const vendor = info.body.vendor?.name ?? '';
    const name = info.body.couchdb !== undefined && /apache/i.test(vendor) ? 'Apache CouchDB' : vendor || 'CouchDB';
    return `${name} ${info.body.version ?? '(version unknown)'} at ${url}`;
  } finally {
    await http.close();
  }
}

export interface BenchStack {
  config: Config;
  /** The CouchDB's URL (embedded or external). */
  couchUrl: string;
  /** What was measured: "embedded PouchDB Server (url)" or "Apache CouchDB 3.5.0 at url". */
  server: string;
  external: boolean;
  app: FastifyInstance;
  ingressUrl: string;
  /** The writer's credentials, for loads straight into CouchDB. */
  writer: Record<string, string>;
  /** The admin's credentials. */
  admin: Record<string, string>;
  /** The real name of a benchmark app (prefixed on an external server). */
  appName(app: string): string;
  /** Its database, log_<real name>. */
  db(app: string): string;
  /**
   * A database of the run's own with no design document, the same
   * _security as the log databases (the writer may write): the bare
   * `_bulk_docs` baseline. Deleted with the stack.
   */
  bareDb(name: string): Promise<string>;
  /** Environment for a couchlog process (e.g. `couchlog forward`) on the same server and data folder. */
  childEnv(): Record<string, string>;
  stop(): Promise<void>;
}

export interface BenchToken {
  name: string;
  secret: string;
  ack?: boolean;
}

export type AppOptions = Config['apps'][string];

export async function startBenchStack(o: {
  dataDir: string;
  apps: string[];
  couchPort: number;
  ingressPort: number;
  /** Embedded (default) or an external CouchDB. */
  couch?: CouchChoice;
  /** Write tokens per app (HEC benchmark). */
  tokens?: Record<string, BenchToken[]>;
  /** Settings of every app on top of the defaults, before setup runs (e.g. protection). */
  appOptions?: { protection?: 'validate' | 'audit' };
}): Promise<BenchStack> {
  const couchChoice = o.couch ?? EMBEDDED;
  const { config, external, prefix } = benchConfig({ dataDir: o.dataDir, couch: couchChoice, couchPort: o.couchPort, ingressPort: o.ingressPort });
  const appName = (app: string) => `${prefix}${app}`;
  config.apps = Object.fromEntries(
    o.apps.map((app) => [
      appName(app),
      {
        reports: [],
        protection: 'validate',
        ...o.appOptions,
        tokens: (o.tokens?.[app] ?? []).map((t) => ({ name: t.name, secret: t.secret, ack: t.ack ?? false })),
      } as AppOptions,
    ]),
  );
  config.clickhouse.enabled = false;
  const logger = pino(loggerOptions('info', 'bench'), pino.destination('/dev/null'));
  const out = config.correlator.outputs.couchdb.app;
  const dbs = [...[...Object.keys(config.apps), out].map(dbName), correlatorStateDb(out)];
  const bare: string[] = [];
  const url = couchUrl(config);
  const http = new CouchHttp(url, { timeoutMs: 120_000, retryAfterS: 1 });
  const admin = { authorization: basicAuth(config.couchdb.admin.user, config.couchdb.admin.password!) };
  // An external server keeps nothing of the run; the embedded one goes with its data folder.
  const cleanUp = async () => {
    if (external) for (const db of [...dbs, ...bare]) await http.request('DELETE', `/${db}`, { headers: admin }).catch(() => undefined);
    await http.close();
  };
  let running: CouchStack | null = null;
  let server: string;
  try {
    running = await startCouchStack(config, logger, { ingress: true });
    server = await describeCouch(url, running.embedded !== null, admin);
  } catch (err) {
    await running?.stop();
    await cleanUp();
    throw err;
  }
  const stack = running;
  const db = (a: string) => `log_${appName(a)}`;
  return {
    config,
    couchUrl: url,
    server,
    external,
    app: stack.app!,
    ingressUrl: `http://127.0.0.1:${o.ingressPort}`,
    writer: { authorization: basicAuth(config.users.writer.user, config.users.writer.password!), 'content-type': 'application/json' },
    admin,
    appName,
    db,
    async bareDb(name: string) {
      const name2 = `${prefix}bench_bare_${name}`;
      bare.push(name2);
      const made = await http.request('PUT', `/${name2}`, { headers: admin });
      if (made.status !== 201) throw new Error(`creating ${name2}: ${made.status} ${JSON.stringify(made.body).slice(0, 200)}`);
      const security = await http.request<unknown>('GET', `/${db(o.apps[0]!)}/_security`, { headers: admin });
      const put = await http.request('PUT', `/${name2}/_security`, { headers: admin, body: JSON.stringify(security.body) });
      if (put.status !== 200) throw new Error(`_security of ${name2}: ${put.status} ${JSON.stringify(put.body).slice(0, 200)}`);
      return name2;
    },
    childEnv() {
      const env: Record<string, string> = { COUCHLOG_DATA: config.data_dir, COUCHLOG_COUCHDB_PORT: String(config.couchdb.embedded.port) };
      if (external) Object.assign(env, { COUCHDB_URL: url, COUCHDB_USER: config.couchdb.admin.user, COUCHDB_PASSWORD: config.couchdb.admin.password! });
      return env;
    },
    async stop() {
      await stack.app!.close();
      await cleanUp();
      await stack.embedded?.stop();
    },
  };
}

export { intAtLeast, usageError, usageErrorsExit2 } from '../cli/options.js';

/**
 * --couchdb-url checked: an http(s) server root without credentials, and the admin
 * password in COUCHDB_PASSWORD. Returns the choice, or the error message.
 */
export function couchChoice(url: string | undefined, env: Record<string, string | undefined>): CouchChoice | string {
  if (url === undefined) return EMBEDDED;
  // The rule of couchdb.url, which the URL becomes; the value is not repeated: "ftp://admin:pw@host" was, password and all.
  const problems = httpUrlProblems(url, 'COUCHDB_USER / COUCHDB_PASSWORD', { rootOnly: true });
  if (problems.length > 0) return `--couchdb-url: ${problems.join('; ')}`;
  if (!env.COUCHDB_PASSWORD) return '--couchdb-url needs the admin password in COUCHDB_PASSWORD (and the admin name in COUCHDB_USER, default admin)';
  return { couchdbUrl: url.replace(/\/+$/, ''), env };
}
