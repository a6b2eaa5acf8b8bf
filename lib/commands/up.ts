// `couchlog up` (what `npm start` runs): the embedded server unless an
// external CouchDB is configured, then setup, then the ingress. Shutdown
// runs in the opposite order: stop intake and flush, then the database.
import { relative } from 'node:path';
import { couchUrl, dbName, ensureSecrets, type Config } from '../config/load.js';
import { SECRET_KEYS, readSecretsFile } from '../config/secrets.js';
import type { EmbeddedCouch } from '../embedded/pouchdb-server.js';
import type { Logger } from '../logger.js';
import { runSetup } from '../setup/run-setup.js';
import { startEmbeddedCouch } from './couchdb.js';
import { startIngress } from './ingress.js';

export interface Running {
  stop: () => Promise<void>;
  banner: string;
}

export async function up(config: Config, logger: Logger): Promise<Running> {
  const secrets = ensureSecrets(config);
  let couch: EmbeddedCouch | null = null;
  if (config.couchdb.url === null) couch = await startEmbeddedCouch(config, logger);
  try {
    const report = await runSetup(config);
    for (const change of report.changes) logger.info({ component: 'setup' }, change);
    const ingress = await startIngress(config, logger);
    const stop = async () => {
      await ingress.close();
      await couch?.stop();
    };
    return { stop, banner: banner(config, report.flavor, secrets.generated, secrets.file) };
  } catch (err) {
    await couch?.stop();
    throw err;
  }
}

function banner(config: Config, flavor: string, generated: string[], secretsFile: string): string {
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
