// The embedded CouchDB-compatible server: PouchDB Server in a supervised
// child process. It must be a child, not a library in our process, because
// some requests crash it outright (an anonymous `PUT /<db>`, `_changes`
// with a `_selector` filter): a crash must cost a restart, not the service.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OperationError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { SupervisedProcess } from './supervised-process.js';
import { httpUrl } from '../lib/http-url.js';

export interface EmbeddedOptions {
  dataDir: string;
  host: string;
  port: number;
  restartDelayMs: number;
  restartDelayMaxMs: number;
  startTimeoutMs: number;
  logger: Logger;
  /** Liveness probe (SupervisedProcess); default 5 s interval, 2 s timeout, 3 misses. */
  liveness?: { intervalMs: number; timeoutMs: number; failures: number };
}

export class EmbeddedCouch extends SupervisedProcess {
  readonly url: string;
  readonly dir: string;

  constructor(opts: EmbeddedOptions) {
    const dir = join(opts.dataDir, 'couchdb');
    const url = httpUrl(opts.host, opts.port);
    const configFile = join(dir, 'config.json');
    const main = fileURLToPath(new URL('./pouchdb-server-main.cjs', import.meta.url));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    super({
      label: 'embedded CouchDB-compatible server',
      command: process.execPath,
      args: [main, '--host', opts.host, '--port', String(opts.port), '--dir', dir, '--config', configFile, '--no-stdout-logs', '--no-color'],
      cwd: dir,
      probeUrl: `${url}/`,
      prepare: () => prepareConfig(dir, configFile),
      logFile: join(dir, 'pouchdb-server.log'),
      restartDelayMs: opts.restartDelayMs,
      restartDelayMaxMs: opts.restartDelayMaxMs,
      startTimeoutMs: opts.startTimeoutMs,
      logger: opts.logger,
      liveness: opts.liveness,
    });
    this.url = url;
    this.dir = dir;
  }
}

/** Keeps PouchDB Server's own log in the data folder and quiet; keeps its admins. */
function prepareConfig(dir: string, file: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  let config: Record<string, Record<string, unknown>> = {};
  if (existsSync(file)) {
    try {
      config = JSON.parse(readFileSync(file, 'utf8')) as typeof config;
    } catch {
      throw new OperationError(`${file} is not valid JSON; fix or remove it`);
    }
  }
  config.log = { file: join(dir, 'pouchdb-server.log'), level: 'warning', ...config.log };
  // A session secret of its own, kept across restarts (as CouchDB keeps it
  // in its ini): otherwise PouchDB Server draws a new one at each start and
  // every AuthSession cookie (Fauxton, the live dashboard) dies with a restart.
  const auth = (config.couch_httpd_auth ??= {});
  if (typeof auth.secret !== 'string' || auth.secret === '') auth.secret = randomBytes(32).toString('hex');
  // PouchDB Server answers CORS for any origin, with credentials, by default: any web page open in a
  // browser on this machine could call it as the logged-in user. CouchDB 3 has CORS off; so does this
  // (browsers reach couchlog through the ingress, which has its own cors_origins).
  config.httpd = { ...config.httpd, enable_cors: false };
  writeFileSync(file, JSON.stringify(config, null, 2), { mode: 0o600 });
}
