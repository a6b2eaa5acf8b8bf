// `couchlog couchdb`: the embedded server alone, supervised, with its admin.
import { ensureSecrets, requirePassword, type Config } from '../lib/config/load.js';
import { EmbeddedCouch } from '../embedded/pouchdb-server.js';
import { OperationError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { ensureAdmin } from '../setup/ensure-admin.js';

export async function startEmbeddedCouch(config: Config, logger: Logger): Promise<EmbeddedCouch> {
  if (config.couchdb.url !== null) {
    throw new OperationError(`couchdb.url is set (${config.couchdb.url}): there is no embedded server to run`);
  }
  ensureSecrets(config);
  const e = config.couchdb.embedded;
  const admin = { user: config.couchdb.admin.user, password: requirePassword(config, 'admin') };
  const couch = new EmbeddedCouch({
    dataDir: config.data_dir,
    host: e.host,
    port: e.port,
    restartDelayMs: e.restart_delay_ms,
    restartDelayMaxMs: e.restart_delay_max_ms,
    startTimeoutMs: e.start_timeout_ms,
    logger: logger.child({ component: 'couchdb' }),
    admin,
  });
  await couch.start();
  try {
    // The admin is in the server's config from its first start; this checks that it logs in.
    for (const change of await ensureAdmin(couch.url, admin.user, admin.password)) {
      logger.info(change);
    }
  } catch (err) {
    await couch.stop();
    throw err;
  }
  return couch;
}
