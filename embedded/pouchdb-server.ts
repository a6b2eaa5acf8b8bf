// The embedded CouchDB-compatible server: PouchDB Server in a supervised
// child process. It must be a child, not a library in our process, because
// some requests crash it outright (an anonymous `PUT /<db>`, `_changes`
// with a `_selector` filter): a crash must cost a restart, not the service.
// couchlog binds its port and hands it over (held-port.ts), so the port is
// never free for another process to take between a crash and the restart.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OperationError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { SupervisedProcess } from './supervised-process.js';
import { httpUrl } from '../lib/http-url.js';
import { adminHashMatches, hashAdminPassword } from './admin-hash.js';
import { keepPrivate } from './private-files.js';

export interface EmbeddedOptions {
  dataDir: string;
  host: string;
  port: number;
  restartDelayMs: number;
  restartDelayMaxMs: number;
  startTimeoutMs: number;
  logger: Logger;
  /** The server admin (couchdb.admin): in its config before its first start, so it never runs without one. */
  admin: { user: string; password: string };
  /** Liveness probe (SupervisedProcess); default 5 s interval, 2 s timeout, 3 misses. */
  liveness?: { intervalMs: number; timeoutMs: number; failures: number };
}

type ServerConfig = Record<string, Record<string, unknown>>;

export class EmbeddedCouch extends SupervisedProcess {
  readonly url: string;
  readonly dir: string;
  private readonly configFile: string;
  private readonly admin: { user: string; password: string };
  /** The admin's [admins] entry, made (or checked) once per start(). */
  private adminEntry: string | null = null;

  constructor(opts: EmbeddedOptions) {
    const dir = join(opts.dataDir, 'couchdb');
    const url = httpUrl(opts.host, opts.port);
    const configFile = join(dir, 'config.json');
    const main = fileURLToPath(new URL('./pouchdb-server-main.cjs', import.meta.url));
    const listen = fileURLToPath(new URL('./listen-on-inherited-socket.cjs', import.meta.url));
    super({
      label: 'embedded CouchDB-compatible server',
      command: process.execPath,
      args: [
        '--require',
        listen,
        main,
        '--host',
        opts.host,
        '--port',
        String(opts.port),
        '--dir',
        dir,
        '--config',
        configFile,
        '--no-stdout-logs',
        '--no-color',
      ],
      cwd: dir,
      probeUrl: `${url}/`,
      prepare: () => prepareConfig(opts.dataDir, dir, configFile, this.admin.user, this.adminEntry!),
      logFile: join(dir, 'pouchdb-server.log'),
      restartDelayMs: opts.restartDelayMs,
      restartDelayMaxMs: opts.restartDelayMaxMs,
      startTimeoutMs: opts.startTimeoutMs,
      logger: opts.logger,
      liveness: opts.liveness,
      holdPort: true,
      // It also ends itself within a second of couchlog's death (pouchdb-server-main.cts).
      orphans: { pidFiles: [join(dir, 'pouchdb-server.pid')], marker: configFile },
    });
    this.url = url;
    this.dir = dir;
    this.configFile = configFile;
    this.admin = opts.admin;
  }

  override async start(): Promise<void> {
    this.adminEntry = await adminEntry(this.configFile, this.admin);
    await super.start();
  }
}

function readConfig(file: string): ServerConfig {
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ServerConfig;
  } catch {
    throw new OperationError(`${file} is not valid JSON; fix or remove it`);
  }
}

/** The configured admin's entry: the one in the config when the password matches it, else a new hash. */
async function adminEntry(file: string, admin: { user: string; password: string }): Promise<string> {
  const current = readConfig(file).admins?.[admin.user];
  return (await adminHashMatches(current, admin.password)) ? (current as string) : hashAdminPassword(admin.password);
}

/**
 * Before every start: couchlog's admin, and couchlog's values for every
 * setting that would let anonymous callers in or load other code (an admin
 * can change them through /_config, and PouchDB Server keeps them in this
 * file across restarts); PouchDB Server's own log in the data folder, quiet.
 * Other admins stay.
 */
function prepareConfig(dataDir: string, dir: string, file: string, adminUser: string, adminEntry: string): void {
  keepPrivate([dataDir, dir], [file]);
  const config = readConfig(file);
  config.log = { level: 'warning', ...config.log, file: join(dir, 'pouchdb-server.log') };
  config.admins = { ...config.admins, [adminUser]: adminEntry };
  // special_test_authentication_handler makes every request without its own header an admin's.
  const { authentication_handlers: _handlers, ...httpd } = config.httpd ?? {};
  config.httpd = httpd;
  // Virtual hosts rewrite a request's path by its Host header: couchlog has none.
  delete config.vhosts;
  // Accounts are in _users, and replication documents (run with admin rights) in _replicator:
  // pointed at a log database, anonymous writes through the ingress would make accounts or jobs.
  config.replicator = { ...config.replicator, db: '_replicator' };
  // Storage is couchlog's choice (its arguments): level_backend loads any module, proxy sends every request elsewhere.
  delete config.pouchdb_server;
  // A session secret of its own, kept across restarts (as CouchDB keeps it
  // in its ini): otherwise PouchDB Server draws a new one at each start and
  // every AuthSession cookie (Fauxton, the live dashboard) dies with a restart.
  const auth = (config.couch_httpd_auth ??= {});
  if (typeof auth.secret !== 'string' || auth.secret === '') auth.secret = randomBytes(32).toString('hex');
  auth.authentication_db = '_users';
  // PouchDB Server answers CORS for any origin, with credentials, by default: any web page open in a
  // browser on this machine could call it as the logged-in user. CouchDB 3 has CORS off; so does this
  // (browsers reach couchlog through the ingress, which has its own cors_origins).
  config.httpd = { ...config.httpd, enable_cors: false };
  writeFileSync(file, JSON.stringify(config, null, 2), { mode: 0o600 });
}
