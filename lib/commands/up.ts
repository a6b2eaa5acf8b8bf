// `couchlog up` (what `npm start` runs): the embedded CouchDB-compatible
// server unless an external CouchDB is configured, the embedded ClickHouse
// when it is installed (or installable), setup, the ingress and the
// correlator. Shutdown runs in the opposite order: stop intake and flush
// (ingress, then correlator: drain sinks, checkpoint), then the databases.
import { relative } from 'node:path';
import { clickhouseUrl, couchUrl, dbName, ensureSecrets, type Config } from '../config/load.js';
import { SECRET_KEYS, readSecretsFile } from '../config/secrets.js';
import { startCorrelator, type RunningCorrelator } from '../../correlator/service.js';
import { startEmbeddedClickhouse, type EmbeddedClickhouseResult } from './clickhouse.js';
import type { Logger } from '../logger.js';
import { runSetup } from '../setup/run-setup.js';
import { startEmbeddedCouch } from './couchdb.js';
import { startIngress } from './ingress.js';

export interface Running {
  stop: () => Promise<void>;
  /** SIGHUP: reopen the correlator's file sink. */
  reopen: () => Promise<void>;
  banner: string;
}

export async function up(config: Config, logger: Logger): Promise<Running> {
  const secrets = ensureSecrets(config);
  const stack: Array<{ stop: () => Promise<void> }> = [];
  const stopAll = async () => {
    for (const part of stack.reverse()) await part.stop();
  };
  try {
    // ClickHouse starts alongside CouchDB (a cold start of its libraries
    // can take many seconds). It only feeds the correlator's analytics
    // sink, so when it cannot start, intake still comes up and the banner
    // says why the ClickHouse sink is off.
    const starting = startEmbeddedClickhouse(config, logger).catch(
      (err: Error): EmbeddedClickhouseResult => ({ server: null, reason: `the embedded ClickHouse did not start (${err.message}): the ClickHouse sink is off` }),
    );
    try {
      if (config.couchdb.url === null) stack.push(await startEmbeddedCouch(config, logger));
    } finally {
      const started = await starting;
      if (started.server) stack.unshift(started.server);
    }
    const ch = await starting;
    if (ch.reason) logger.warn({ component: 'clickhouse' }, ch.reason);
    const report = await runSetup(config);
    for (const change of report.changes) logger.info({ component: 'setup' }, change);
    for (const note of report.notes) logger.warn({ component: 'setup' }, note);
    let correlator: RunningCorrelator | null = null;
    if (config.correlator.enabled) {
      correlator = await startCorrelator(config, logger, { clickhouse: config.clickhouse.enabled && (ch.server !== null || config.clickhouse.url !== null) });
      stack.push(correlator);
    }
    const ingress = await startIngress(config, logger);
    stack.push({ stop: () => ingress.close() });
    return {
      stop: stopAll,
      reopen: async () => correlator?.reopen(),
      banner: banner(config, report.flavor, secrets.generated, secrets.file, ch.server?.url ?? (config.clickhouse.url ? clickhouseUrl(config) : null), ch.reason),
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

function banner(config: Config, flavor: string, generated: string[], secretsFile: string, clickhouse: string | null, noClickhouse: string | null): string {
  const ingress = `http://${config.ingress.host}:${config.ingress.port}`;
  const app = Object.keys(config.apps)[0] ?? 'appname';
  // Offer to source the secrets file only if it holds the password in force.
  const fromFile = readSecretsFile(config.data_dir)[SECRET_KEYS.reader] === config.users.reader.password;
  const rel = relative(process.cwd(), secretsFile);
  const file = rel.startsWith('..') ? secretsFile : `./${rel}`;
  const source = fromFile ? `. ${file} && ` : '';
  const lines = [
    '',
    'couchlog is running',
    `  CouchDB   ${couchUrl(config)}  (${config.couchdb.url === null ? `embedded ${flavor}, data in ${config.data_dir}/couchdb` : flavor})`,
    `  ingress   ${ingress}  (health: ${ingress}/_couchlog/health, metrics: ${ingress}/_couchlog/metrics)`,
    `  apps      ${Object.keys(config.apps).map(dbName).join(', ') || '(none)'}${config.ingress.auto_create ? ' (+ auto_create)' : ''}`,
    `  ClickHouse ${clickhouse ?? `off: ${noClickhouse ?? 'disabled'}`}`,
    config.correlator.enabled
      ? `  correlator ${dbName(config.correlator.inputs.http.app)} x ${dbName(config.correlator.inputs.network.app)} -> ${dbName(config.correlator.outputs.couchdb.app)}${clickhouse ? `, ${config.clickhouse.database}.${config.clickhouse.table}` : ''}${config.correlator.metrics.enabled ? ` (metrics: http://${config.correlator.metrics.host}:${config.correlator.metrics.port}/metrics)` : ''}`
      : '  correlator off',
    `  passwords ${secretsFile} (mode 0600${generated.length ? `; generated now for: ${generated.join(', ')}` : ''})`,
    '',
    'Try it:',
    '  # succeeds, no credentials',
    `  curl -X POST ${ingress}/${dbName(app)}/ -d '{ "foo" : "foo" }' -H 'Content-Type: application/json'`,
    '  # fails: anonymous reads are refused',
    `  curl -X GET ${ingress}/${dbName(app)}/_all_docs`,
    '  # succeeds with a real user',
    `  ${source}curl --user "${config.users.reader.user}:$${SECRET_KEYS.reader}" -X GET ${ingress}/${dbName(app)}/_all_docs`,
    '',
    'Ctrl-C stops everything.',
    '',
  ];
  return lines.join('\n');
}
