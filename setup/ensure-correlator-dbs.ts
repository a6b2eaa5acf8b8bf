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
// start. Here only the role log_correlator is a member.
//
// What must stay true:
//  - nothing from log_correlated is ever taken without an admin asking for
//    it (`couchlog setup --move-old-checkpoint`): a member may have written
//    it. Without that, an upgrade reads the feeds again from the start (the
//    records keep their ids: nothing is written twice).
//  - a run that had to set the _security object deletes the checkpoints in
//    the state database afterwards: until then (a new database, a run that
//    failed half-way) PouchDB Server let any authenticated user in.
//  - an old checkpoint is deleted only once the correlator has saved its own
//    in the state database (until then the admin may still move it);
//  - a run with nothing to do changes nothing.
import { setTimeout as sleep } from 'node:timers/promises';
import { failed, type AdminClient } from '../lib/couch/admin-client.js';
import { checkpointName, correlatorStateDb, dbName } from '../lib/config/load.js';
import { CORRELATOR_ROLE } from './ensure-users.js';
import { ensureAppDatabase, ensureDatabase, ensureSecurity } from './ensure-app-db.js';
import type { Protection } from '../lib/config/protection.js';

export const STATE_DB_SECURITY = {
  admins: { names: [] as string[], roles: [] as string[] },
  members: { names: [] as string[], roles: [CORRELATOR_ROLE] },
};

export interface CorrelatorDbOptions {
  protection?: Protection;
  /** How many instances (correlator.shard.count), each with its checkpoint. */
  shards?: number;
  /** Take the checkpoints an older couchlog left in log_<app> (the admin vouches for them). */
  moveOldCheckpoint?: boolean;
}

/** Both databases of a correlator writing to log_<outputApp>. */
export async function ensureCorrelatorDatabases(admin: AdminClient, outputApp: string, o: CorrelatorDbOptions = {}): Promise<string[]> {
  return [...(await ensureAppDatabase(admin, outputApp, ['correlated'], o.protection)), ...(await ensureCorrelatorStateDb(admin, outputApp, o))];
}

/** couchlog_state_<outputApp>: created, locked to the correlator's role; what is left of an older couchlog's checkpoints dealt with. */
export async function ensureCorrelatorStateDb(admin: AdminClient, outputApp: string, o: CorrelatorDbOptions = {}): Promise<string[]> {
  const db = correlatorStateDb(outputApp);
  const outputDb = dbName(outputApp);
  const count = o.shards ?? 1;
  const names = Array.from({ length: count }, (_, index) => checkpointName({ index, count }));
  const changes = await ensureDatabase(admin, db);
  const secured = await ensureSecurity(admin, db, STATE_DB_SECURITY);
  changes.push(...secured);
  for (const name of names) {
    if (secured.length > 0) changes.push(...(await deleteLocal(admin, db, name, `deleted ${db}/_local/${name}: written while the database was open to all`)));
    changes.push(...(await oldCheckpoint(admin, outputDb, db, name, o.moveOldCheckpoint === true)));
  }
  return changes;
}

/**
 * The checkpoint an older couchlog left in the output database: moved when
 * the admin asks and the correlator has none of its own yet; deleted once
 * the correlator has one (it is never read again); else left for the admin.
 */
async function oldCheckpoint(admin: AdminClient, outputDb: string, stateDb: string, name: string, move: boolean): Promise<string[]> {
  const old = await readLocal(admin, outputDb, name);
  if (old === null) return [];
  const own = await readLocal(admin, stateDb, name);
  if (own !== null) return deleteLocal(admin, outputDb, name, `deleted the old checkpoint ${outputDb}/_local/${name} (the correlator's own is in ${stateDb})`);
  if (!move) return [];
  const body = Object.fromEntries(Object.entries(old).filter(([k]) => k !== '_id' && k !== '_rev'));
  const put = await admin.call('PUT', localPath(stateDb, name), body);
  if (put.status >= 300) throw failed(`copying the checkpoint ${outputDb}/_local/${name} to ${stateDb}`, put);
  await deleteLocal(admin, outputDb, name, '');
  return [`moved the checkpoint ${outputDb}/_local/${name} to ${stateDb}`];
}

const localPath = (db: string, name: string) => `/${encodeURIComponent(db)}/_local/${encodeURIComponent(name)}`;

async function readLocal(admin: AdminClient, db: string, name: string): Promise<Record<string, unknown> | null> {
  const res = await admin.call<Record<string, unknown>>('GET', localPath(db, name));
  if (res.status === 404) return null;
  if (res.status !== 200) throw failed(`reading ${db}/_local/${name}`, res);
  return res.body;
}

/**
 * Deletes a _local document if there is one; `change` is what setup reports.
 * On a cluster a read may come from a copy that has not seen the latest
 * write: a deletion of what is already gone (404) or has just changed (409)
 * is tried again, reading the document again, a few times.
 */
async function deleteLocal(admin: AdminClient, db: string, name: string, change: string): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    const doc = await readLocal(admin, db, name);
    if (doc === null) return [];
    const del = await admin.call('DELETE', `${localPath(db, name)}?rev=${encodeURIComponent(String(doc._rev))}`);
    if (del.status < 300) return change === '' ? [] : [change];
    if ((del.status !== 404 && del.status !== 409) || attempt === 5) throw failed(`deleting ${db}/_local/${name}`, del);
    await sleep(100 * attempt);
  }
}
