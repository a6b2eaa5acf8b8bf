// `couchlog setup`: brings a CouchDB or PouchDB Server to the state couchlog
// needs. Every step checks before it writes, so a second run changes nothing
// and reports no change.
import { adminClient } from '../lib/couch/admin-client.js';
import { clickhouseInUse, couchUrl, requirePassword, type Config } from '../lib/config/load.js';
import { setupClickhouse } from './setup-clickhouse.js';
import { ensureAdmin } from '../setup/ensure-admin.js';
import { CORRELATOR_ROLE, ensureUser, READER_ROLE, WRITER_ROLE } from '../setup/ensure-users.js';
import { ensureAppDatabase, ensureDatabase, pushDesignDoc } from '../setup/ensure-app-db.js';
import { ensureCorrelatorDatabases } from '../setup/ensure-correlator-dbs.js';
import { EMBEDDED_PBKDF2_ITERATIONS } from '../lib/couch/pbkdf2-iterations.js';
import { lookupDesignDoc, lookupHourDesignDoc } from '../design-docs/correlator-lookup.js';
import { dbName } from '../lib/config/load.js';

export interface SetupReport {
  server: string;
  flavor: string;
  changes: string[];
  /** What setup could not do and why (e.g. ClickHouse not running). */
  notes: string[];
  /**
   * What it could not do on a server the config names (an external
   * ClickHouse that does not answer): `couchlog setup` exits 1 for it, so an
   * upgrade script knows; the embedded ClickHouse not running is a note only
   * (couchlog up starts it and runs setup again).
   */
  unfinished: string[];
}

/** The settings that make CouchDB refuse anonymous requests. */
const REQUIRE_VALID_USER = {
  // PouchDB Server accepts and stores the key but does not enforce it: the
  // ingress's own credential check is what protects the embedded server.
  'pouchdb-server': [['couch_httpd_auth', 'require_valid_user']],
  // CouchDB 3.0/3.1 read [chttpd]; 3.2+ moved authentication to [chttpd_auth].
  couchdb: [
    ['chttpd', 'require_valid_user'],
    ['chttpd_auth', 'require_valid_user'],
  ],
} as const;

export { EMBEDDED_PBKDF2_ITERATIONS };

/** The report pages (list functions) on CouchDB 3: sandboxed, no scripts, but their form works. */
const SHOWLIST_CSP = 'sandbox allow-forms';

export async function runSetup(config: Config): Promise<SetupReport> {
  const url = couchUrl(config);
  const changes: string[] = [];
  changes.push(...(await ensureAdmin(url, config.couchdb.admin.user, requirePassword(config, 'admin'))));
  const admin = adminClient(config);
  const { flavor, version } = await admin.serverInfo();

  // A fresh single-node CouchDB 3 has no system databases until someone makes them.
  for (const db of ['_users', '_replicator']) changes.push(...(await ensureDatabase(admin, db)));

  // PouchDB Server hashes passwords with 10 PBKDF2 iterations by default;
  // CouchDB 3's default is 600,000 (the embedded server's hashing is native
  // and memoised: embedded/pouchdb-server-main.cts). A running server
  // that has used _users applies a changed setting only after a restart, so
  // accounts with weaker hashes are rehashed on a later run (couchlog up
  // restarts the server each time), once the setting is in force.
  let minIterations = 0;
  if (flavor === 'pouchdb-server') {
    const path = await admin.configPath('couch_httpd_auth', 'iterations');
    const current = await admin.call<unknown>('GET', path);
    if (current.status === 200 && Number(current.body) === EMBEDDED_PBKDF2_ITERATIONS) {
      minIterations = EMBEDDED_PBKDF2_ITERATIONS;
    } else {
      await admin.must('setting couch_httpd_auth/iterations', 'PUT', path, String(EMBEDDED_PBKDF2_ITERATIONS));
      changes.push(`set couch_httpd_auth/iterations = ${EMBEDDED_PBKDF2_ITERATIONS}`);
    }
  }

  changes.push(
    ...(await ensureUser(
      admin,
      {
        user: config.users.writer.user,
        password: requirePassword(config, 'writer'),
        roles: [WRITER_ROLE],
      },
      minIterations,
    )),
    ...(await ensureUser(
      admin,
      {
        user: config.users.reader.user,
        password: requirePassword(config, 'reader'),
        roles: [READER_ROLE],
      },
      minIterations,
    )),
    // Reads the input feeds and writes (and corrects) log_correlated.
    ...(await ensureUser(
      admin,
      {
        user: config.users.correlator.user,
        password: requirePassword(config, 'correlator'),
        roles: [READER_ROLE, CORRELATOR_ROLE],
      },
      minIterations,
    )),
  );

  for (const [section, key] of REQUIRE_VALID_USER[flavor]) {
    const path = await admin.configPath(section, key);
    const current = await admin.call<unknown>('GET', path);
    if (current.status === 200 && current.body === 'true') continue;
    await admin.must(`setting ${section}/${key}`, 'PUT', path, 'true');
    changes.push(`set ${section}/${key} = true`);
  }

  // CouchDB 3.2+ serves _list answers under `Content-Security-Policy:
  // sandbox`, which also blocks form submission: the report pages' top /
  // from / to form needs `allow-forms`. Scripts stay blocked.
  if (flavor === 'couchdb') {
    const path = await admin.configPath('csp', 'showlist_header_value');
    const current = await admin.call<unknown>('GET', path);
    if (!(current.status === 200 && current.body === SHOWLIST_CSP)) {
      await admin.must('setting csp/showlist_header_value', 'PUT', path, SHOWLIST_CSP);
      changes.push(`set csp/showlist_header_value = ${SHOWLIST_CSP}`);
    }
  }

  const inputs = new Set([config.correlator.inputs.http.app, config.correlator.inputs.network.app]);
  for (const [app, options] of Object.entries(config.apps)) {
    changes.push(...(await ensureAppDatabase(admin, app, options.reports, options.protection)));
    // The correlator finds partners of late events through these views.
    if (inputs.has(app)) for (const ddoc of [lookupDesignDoc(), lookupHourDesignDoc()]) changes.push(...(await pushDesignDoc(admin, dbName(app), ddoc)));
  }
  // The correlator's output database: not an app (nobody writes to it through the ingress).
  const out = config.correlator.outputs.couchdb;
  changes.push(...(await ensureCorrelatorDatabases(admin, out.app, { protection: out.protection })));

  const notes: string[] = [];
  const unfinished: string[] = [];
  if (clickhouseInUse(config)) {
    const clickhouse = await setupClickhouse(config);
    changes.push(...clickhouse.changes);
    notes.push(...clickhouse.notes);
    unfinished.push(...clickhouse.unfinished);
  }
  return { server: url, flavor: `${flavor} ${version}`, changes, notes, unfinished };
}
