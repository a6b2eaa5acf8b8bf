// The correlator's two databases: its output log_<app> (the correlated
// records, with their report views and append-only protection) and its state
// database couchlog_state_<app> (its checkpoints), out of reach of everyone
// but the correlator's role and admins.
//
// Why a database of its own: a checkpoint is a _local document, which no
// validate_doc_update covers, and any member of a database may write its
// _local documents. Readers and the writer are members of log_correlated, so
// until 2026-12-05 any of them could rewrite the correlator's checkpoint
// there, straight against CouchDB, and make it skip documents on its next
// start. Here only the role log_correlator is a member. What an older
// couchlog left in log_correlated is never taken (a member may have written
// it): the correlator reads its feeds again from the start once.
//
// What must stay true: whenever the state database's _security is not what
// setup wants (a new database, one changed by someone, a run that died
// half-way), the checkpoints in it are deleted while it is closed to all but
// admins, and only then is the correlator's role let in. PouchDB Server lets
// any authenticated user into a database with an empty _security, and
// whoever changed it may have written them. A run with nothing to do
// changes nothing.
import { setTimeout as sleep } from 'node:timers/promises';
import { failed, type AdminClient } from '../lib/couch/admin-client.js';
import { checkpointName, correlatorStateDb } from '../lib/config/load.js';
import { canonical } from '../design-docs/serialize.js';
import { CORRELATOR_ROLE } from './ensure-users.js';
import { ensureAppDatabase, ensureDatabase } from './ensure-app-db.js';
import type { Protection } from '../lib/config/protection.js';

export const STATE_DB_SECURITY = {
  admins: { names: [] as string[], roles: [] as string[] },
  members: { names: [] as string[], roles: [CORRELATOR_ROLE] },
};

/** Admins only (no account has the role _admin without being one): while the checkpoints are cleared. */
const CLOSED_SECURITY = {
  admins: { names: [] as string[], roles: [] as string[] },
  members: { names: [] as string[], roles: ['_admin'] },
};

export interface CorrelatorDbOptions {
  protection?: Protection;
  /** How many instances (correlator.shard.count), each with its checkpoint. */
  shards?: number;
}

/** Both databases of a correlator writing to log_<outputApp>. */
export async function ensureCorrelatorDatabases(admin: AdminClient, outputApp: string, o: CorrelatorDbOptions = {}): Promise<string[]> {
  return [...(await ensureAppDatabase(admin, outputApp, ['correlated'], o.protection)), ...(await ensureCorrelatorStateDb(admin, outputApp, o.shards ?? 1))];
}

/** couchlog_state_<outputApp>: created, and open to the correlator's role only once no checkpoint of unknown origin is left in it. */
export async function ensureCorrelatorStateDb(admin: AdminClient, outputApp: string, shards = 1): Promise<string[]> {
  const db = correlatorStateDb(outputApp);
  const changes = await ensureDatabase(admin, db);
  const path = `/${encodeURIComponent(db)}/_security`;
  const current = await admin.must<Record<string, unknown>>(`reading ${db}/_security`, 'GET', path);
  if (canonical(current) === canonical(STATE_DB_SECURITY)) return changes;
  await admin.must(`closing ${db} to all but admins`, 'PUT', path, CLOSED_SECURITY);
  for (let index = 0; index < shards; index++) {
    const name = checkpointName({ index, count: shards });
    if (await deleteLocal(admin, db, name)) changes.push(`deleted ${db}/_local/${name}, written while its _security was not setup's`);
  }
  await admin.must(`writing ${db}/_security`, 'PUT', path, STATE_DB_SECURITY);
  changes.push(`set ${db}/_security (members: roles ${CORRELATOR_ROLE}; admins: none)`);
  return changes;
}

/**
 * Deletes a _local document if there is one; whether there was. Nobody but
 * admins can write it meanwhile, so a conflict is a cluster copy that had
 * not seen the latest write yet: read again and tried again, a few times.
 */
async function deleteLocal(admin: AdminClient, db: string, name: string): Promise<boolean> {
  const path = `/${encodeURIComponent(db)}/_local/${encodeURIComponent(name)}`;
  for (let attempt = 1; ; attempt++) {
    const doc = await admin.call<{ _rev?: string }>('GET', path);
    if (doc.status === 404) return false;
    if (doc.status !== 200) throw failed(`reading ${db}/_local/${name}`, doc);
    const del = await admin.call('DELETE', `${path}?rev=${encodeURIComponent(String(doc.body._rev))}`);
    if (del.status < 300) return true;
    if ((del.status !== 404 && del.status !== 409) || attempt === 5) throw failed(`deleting ${db}/_local/${name}`, del);
    await sleep(100 * attempt);
  }
}
