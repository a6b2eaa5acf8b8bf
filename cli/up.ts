// `couchlog up` (what `npm start` runs): the embedded CouchDB-compatible
// server unless an external CouchDB is configured, the embedded ClickHouse
// when it is installed (or installable), setup, the ingress and the
// correlator. Shutdown runs in the opposite order: stop intake and flush
// (ingress, then correlator: drain sinks, checkpoint), then the databases.
import { isAbsolute, relative } from 'node:path';
import { CLICKHOUSE_PASSWORD_NAME, clickhouseUrl, couchUrl, dbName, ensureSecrets, type Config } from '../lib/config/load.js';
import { SECRET_KEYS, secretsPath } from '../lib/config/secrets.js';
import { clickhousePasswordSource, passwordSources, type PasswordSource } from '../lib/config/secret-sources.js';
import { startCorrelator, type RunningCorrelator } from '../correlator/service.js';
import { startEmbeddedClickhouse, type EmbeddedClickhouseResult } from './clickhouse.js';
import type { Logger } from '../lib/logger.js';
import { runSetup } from './run-setup.js';
import { startEmbeddedCouch } from './couchdb.js';
import { startIngress } from './ingress.js';
import { forwardersOf } from '../forward/from-config.js';
import { httpUrl } from '../lib/http-url.js';
import { stopInReverse } from './lifecycle.js';

export interface Running {
  stop: () => Promise<void>;
  /**
   * Settles when an embedded server's supervisor gave up because another
   * process holds that server's port: couchlog must stop, since the ingress
   * and the correlator would send credentials there.
   */
  failed: Promise<Error>;
  /** SIGHUP: reopen the correlator's file sink. */
  reopen: () => Promise<void>;
  banner: string;
}

/** A line of the human account of the startup (printed on a terminal; a no-op for JSON logs). */
export type Say = (line: string) => void;

/**
 * Starts everything. `signal` (a Ctrl-C or SIGTERM during startup, which can
 * take a minute) ends the startup between two steps: what has started is
 * stopped, in order, and the call rejects with the signal's AbortError.
 */
export async function up(config: Config, logger: Logger, say: Say = () => {}, signal?: AbortSignal): Promise<Running> {
  const secrets = ensureSecrets(config);
  // Built (and their tokens checked) before anything starts; started last.
  const forwarders = forwardersOf(config, logger);
  say(`couchlog starting (data in ${displayPath(config.data_dir)})`);
  const stack: Array<{ stop: () => Promise<void> }> = [];
  const stopAll = () => stopInReverse(stack, logger);
  const refusals: Array<Promise<Error>> = [];
  try {
    // ClickHouse starts alongside CouchDB (a cold start of its libraries
    // can take many seconds). It only feeds the correlator's analytics
    // sink, so when it cannot start, intake still comes up and the banner
    // says why the ClickHouse sink is off.
    const starting = startEmbeddedClickhouse(config, logger).catch((err: Error): EmbeddedClickhouseResult => ({
      server: null,
      reason: `the embedded ClickHouse did not start (${err.message}): the ClickHouse sink is off (once it runs, couchlog backfill copies the records decided meanwhile)`,
    }));
    try {
      if (config.couchdb.url === null) {
        const couch = await startEmbeddedCouch(config, logger);
        stack.push(couch);
        refusals.push(couch.refused);
        say(`  ok   CouchDB     embedded PouchDB Server on ${couchUrl(config)}`);
      }
    } finally {
      const started = await starting;
      if (started.server) {
        stack.unshift(started.server);
        refusals.push(started.server.refused);
      }
    }
    const ch = await starting;
    signal?.throwIfAborted();
    if (ch.reason) logger.warn({ component: 'clickhouse' }, ch.reason);
    else if (ch.server) say(`  ok   ClickHouse  embedded on ${ch.server.url}`);
    const report = await runSetup(config);
    signal?.throwIfAborted();
    if (config.couchdb.url !== null) say(`  ok   CouchDB     ${report.flavor} at ${couchUrl(config)}`);
    for (const change of report.changes) logger.info({ component: 'setup' }, change);
    for (const note of [...report.notes, ...report.unfinished]) logger.warn({ component: 'setup' }, note);
    say(
      `  ok   setup       ${report.changes.length === 0 ? 'nothing to change' : `${report.changes.length} change${report.changes.length === 1 ? '' : 's'} (users, databases, security, design documents)`}`,
    );
    let correlator: RunningCorrelator | null = null;
    if (config.correlator.enabled) {
      correlator = await startCorrelator(config, logger, { clickhouse: config.clickhouse.enabled && (ch.server !== null || config.clickhouse.url !== null) });
      stack.push(correlator);
      // A second correlator on this checkpoint that started first: this one stops reading and
      // deciding (its reason is logged), intake and the rest go on. Its metrics and /health stay up
      // (503, status "stopped", the other instance named) until the stack stops, which waits for the same stop.
      const running = correlator;
      void running.superseded.then(async () => {
        logger.error({ component: 'correlator' }, 'the correlator stopped (another one writes its checkpoint): intake and the other parts go on');
        await running.pipeline.stop().then(
          () => logger.warn({ component: 'correlator' }, 'the correlator has stopped; its /health answers 503 "stopped" until couchlog up is restarted'),
          (err: Error) => logger.error({ err: err.message }, 'stopping the correlator failed'),
        );
      });
      signal?.throwIfAborted();
      say(
        `  ok   correlator  ${dbName(config.correlator.inputs.http.app)} x ${dbName(config.correlator.inputs.network.app)} -> ${dbName(config.correlator.outputs.couchdb.app)}`,
      );
    }
    const ingress = await startIngress(config, logger);
    stack.push({ stop: () => ingress.close() });
    signal?.throwIfAborted();
    say(`  ok   ingress     ${ingressUrl(config)}`);
    for (const f of forwarders) {
      f.start();
      stack.push({ stop: () => f.stop() });
      say(`  ok   forward     ${f.name}: ${dbName(f.status.app)} -> Splunk HEC`);
    }
    return {
      stop: stopAll,
      failed: Promise.race(refusals),
      reopen: async () => correlator?.reopen(),
      banner: banner(config, report.flavor, secrets.generated, ch.server?.url ?? (config.clickhouse.url ? clickhouseUrl(config) : null), ch.reason),
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Where a browser or curl on this machine reaches the ingress. */
export function ingressUrl(config: Config): string {
  return httpUrl(config.ingress.host, config.ingress.port, { reachable: true });
}

/** A path as the user would type it from here: ./data rather than /home/me/data. */
function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' ? '.' : rel.startsWith('..') || isAbsolute(rel) ? path : `./${rel}`;
}

/** The report pages of each configured app (and of the correlated records). */
export function reportUrls(config: Config): string[] {
  const base = ingressUrl(config);
  const urls: string[] = [];
  for (const [app, a] of Object.entries(config.apps)) {
    if (a.reports.includes('fail2ban')) urls.push(`${base}/${dbName(app)}/_design/report/_list/html/attackers?group_level=5&top=10`);
    else urls.push(`${base}/${dbName(app)}/_design/logs/_list/html/by_time?group_level=3`);
  }
  if (config.correlator.enabled && config.correlator.outputs.couchdb.enabled) {
    urls.push(`${base}/${dbName(config.correlator.outputs.couchdb.app)}/_design/report/_list/html/by_ja4?group_level=1&top=10`);
  }
  return urls;
}

function banner(config: Config, flavor: string, generated: string[], clickhouse: string | null, noClickhouse: string | null): string {
  const ingress = ingressUrl(config);
  const app = Object.keys(config.apps)[0] ?? 'appname';
  const dashApp = Object.entries(config.apps).find(([, a]) => a.reports.includes('fail2ban'))?.[0] ?? app;
  const file = displayPath(secretsPath(config.data_dir));
  // The truth about each password: where it is, and how the curl line below gets it.
  const sources = passwordSources(config);
  const byPlace = new Map<string, string[]>();
  for (const [role, source] of Object.entries(sources)) {
    const place = source === 'environment' ? 'from the environment' : source === 'file' ? `in ${file} (mode 0600)` : 'from the config file';
    byPlace.set(place, [...(byPlace.get(place) ?? []), role]);
  }
  const passwords = [...byPlace].map(([place, roles]) => `${roles.join(', ')} ${place}`).join('; ');
  const placeOf = (source: PasswordSource) => (source === 'environment' ? 'from the environment' : source === 'file' ? `in ${file}` : 'from the config file');
  const reader = config.users.reader.user;
  const readerCred =
    sources.reader === 'file'
      ? `. ${file} && curl --user "${reader}:$${SECRET_KEYS.reader}"`
      : sources.reader === 'environment'
        ? `curl --user "${reader}:$${SECRET_KEYS.reader}"`
        : `curl --user "${reader}:<users.reader.password from your config>"`;
  const reports = reportUrls(config);
  const lines = [
    '',
    `couchlog is running (Ctrl-C stops everything)`,
    `  ingress     ${ingress}   apps: ${Object.keys(config.apps).map(dbName).join(', ') || '(none)'}${config.ingress.auto_create ? ' (+ auto_create)' : ''}`,
    `  Fauxton     ${ingress}/_utils/   (log in as ${reader}, or ${config.couchdb.admin.user})`,
    `  dashboard   ${ingress}/_couchlog/dashboard/${dashApp}`,
    ...reports.map((u, i) => `  ${i === 0 ? 'reports  ' : '         '}   ${u}`),
    `  health      ${ingress}/_couchlog/health`,
    `  metrics     ${ingress}/_couchlog/metrics${config.correlator.enabled && config.correlator.metrics.enabled ? `, correlator ${httpUrl(config.correlator.metrics.host, config.correlator.metrics.port, { reachable: true })}/metrics` : ''}`,
    `  CouchDB     ${couchUrl(config)}  (${config.couchdb.url === null ? `embedded ${flavor}, data in ${displayPath(config.data_dir)}/couchdb` : flavor})`,
    `  ClickHouse  ${clickhouse === null ? `off: ${noClickhouse ?? 'disabled'}` : config.clickhouse.url === null ? `${clickhouse}  (user ${config.clickhouse.user}, password $${CLICKHOUSE_PASSWORD_NAME} ${placeOf(clickhousePasswordSource(config))})` : clickhouse}`,
    config.correlator.enabled
      ? `  correlator  ${dbName(config.correlator.inputs.http.app)} x ${dbName(config.correlator.inputs.network.app)} -> ${dbName(config.correlator.outputs.couchdb.app)}${clickhouse ? `, ${config.clickhouse.database}.${config.clickhouse.table}` : ''}`
      : '  correlator  off',
    `  passwords   ${passwords}${generated.length ? ` (generated now: ${generated.join(', ')})` : ''}`,
    '',
    'Try it:',
    '  # succeeds, no credentials',
    `  curl -X POST ${ingress}/${dbName(app)}/ -d '{ "foo" : "foo" }' -H 'Content-Type: application/json'`,
    '  # fails: anonymous reads are refused',
    `  curl -X GET ${ingress}/${dbName(app)}/_all_docs`,
    '  # succeeds with a real user',
    `  ${readerCred} -X GET ${ingress}/${dbName(app)}/_all_docs`,
    '',
  ];
  return lines.join('\n');
}
