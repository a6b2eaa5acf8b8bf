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
// What must stay true: the security object is set before anything is
// written; a checkpoint of a couchlog from before (in log_correlated) is
// moved only by the run that creates the state database (the upgrade), so
// that continues where it stopped instead of reading every feed again, and
// later runs only delete what a member may have put there; a run with
// nothing to do changes nothing.
import { failed, type AdminClient } from '../lib/couch/admin-client.js';
import { checkpointName, correlatorStateDb, dbName } from '../lib/config/load.js';
import { CORRELATOR_ROLE } from './ensure-users.js';
import { ensureAppDatabase, ensureDatabase, ensureSecurity } from './ensure-app-db.js';
import type { Protection } from '../lib/config/protection.js';

export const STATE_DB_SECURITY = {
  admins: { names: [] as string[], roles: [] as string[] },
  members: { names: [] as string[], roles: [CORRELATOR_ROLE] },
};

/** Both databases of a correlator writing to log_<outputApp>; `shards`: how many instances (correlator.shard.count), each with its checkpoint. */
export async function ensureCorrelatorDatabases(
  admin: AdminClient,
  outputApp: string,
  o: { protection?: Protection; shards?: number } = {},
): Promise<string[]> {
  return [...(await ensureAppDatabase(admin, outputApp, ['correlated'], o.protection)), ...(await ensureCorrelatorStateDb(admin, outputApp, o.shards ?? 1))];
}

/** couchlog_state_<outputApp>: created, locked to the correlator's role, an older couchlog's checkpoints moved in (only when created). */
export async function ensureCorrelatorStateDb(admin: AdminClient, outputApp: string, shardCount: number): Promise<string[]> {
  const db = correlatorStateDb(outputApp);
  const outputDb = dbName(outputApp);
  const created = await ensureDatabase(admin, db);
  const changes = [...created, ...(await ensureSecurity(admin, db, STATE_DB_SECURITY))];
  for (const name of await oldCheckpointNames(admin, outputDb, shardCount)) {
    if (created.length > 0) {
      // PouchDB Server lets anyone in a database whose _security is still empty: whatever came in before it was set goes.
      changes.push(...(await deleteLocal(admin, db, name, `deleted ${db}/_local/${name}, written before the database's _security was set`)));
      changes.push(...(await moveCheckpoint(admin, outputDb, db, name)));
    } else {
      changes.push(
        ...(await deleteLocal(
          admin,
          outputDb,
          name,
          `deleted the checkpoint ${outputDb}/_local/${name} (the correlator's is in ${db}; one there now is stale or forged)`,
        )),
      );
    }
  }
  return changes;
}

const CHECKPOINT_NAME = /^correlator(-\d+-of-\d+)?$/;

/**
 * The checkpoints an older couchlog may have left in the output database:
 * every one CouchDB 3 lists (whatever shard count the instances ran with),
 * or, on PouchDB Server (no _local_docs), the configured instances'.
 */
async function oldCheckpointNames(admin: AdminClient, outputDb: string, shardCount: number): Promise<string[]> {
  const names = new Set(Array.from({ length: shardCount }, (_, index) => checkpointName({ index, count: shardCount })));
  const listed = await admin.call<{ rows?: Array<{ id: string }> }>('GET', `/${encodeURIComponent(outputDb)}/_local_docs`);
  if (listed.status === 200 && Array.isArray(listed.body.rows)) {
    for (const { id } of listed.body.rows) {
      const name = id.replace(/^_local\//, '');
      if (CHECKPOINT_NAME.test(name)) names.add(name);
    }
  }
  return [...names];
}

/**
 * Only when setup creates the state database (the upgrade from a couchlog
 * that kept its checkpoint in the output database): the checkpoint there is
 * copied here and deleted there. It is trusted as the older couchlog trusted
 * it; never again afterwards, or a member could plant a cursor there for
 * the next setup to carry over (after a rebuild, a shard change).
 */
async function moveCheckpoint(admin: AdminClient, outputDb: string, stateDb: string, name: string): Promise<string[]> {
  const oldPath = `/${encodeURIComponent(outputDb)}/_local/${encodeURIComponent(name)}`;
  const old = await admin.call<Record<string, unknown>>('GET', oldPath);
  if (old.status === 404) return [];
  if (old.status !== 200) throw failed(`reading ${outputDb}/_local/${name}`, old);
  const body = Object.fromEntries(Object.entries(old.body).filter(([k]) => k !== '_id' && k !== '_rev'));
  const put = await admin.call('PUT', `/${encodeURIComponent(stateDb)}/_local/${encodeURIComponent(name)}`, body);
  if (put.status >= 300) throw failed(`copying the checkpoint ${outputDb}/_local/${name} to ${stateDb}`, put);
  await deleteLocal(admin, outputDb, name, '');
  return [`moved the checkpoint ${outputDb}/_local/${name} to ${stateDb}`];
}

/**
 * Deletes a _local document if there is one; `change` is what setup reports.
 * On a cluster a read may come from a copy that has not seen the latest
 * write: a deletion of what is already gone (404) or has just changed (409)
 * is left to the next run.
 */
async function deleteLocal(admin: AdminClient, db: string, name: string, change: string): Promise<string[]> {
  const path = `/${encodeURIComponent(db)}/_local/${encodeURIComponent(name)}`;
  const doc = await admin.call<{ _rev?: string }>('GET', path);
  if (doc.status === 404) return [];
  if (doc.status !== 200) throw failed(`reading ${db}/_local/${name}`, doc);
  const del = await admin.call('DELETE', `${path}?rev=${encodeURIComponent(String(doc.body._rev))}`);
  if (del.status === 404 || del.status === 409) return [];
  if (del.status >= 300) throw failed(`deleting ${db}/_local/${name}`, del);
  return change === '' ? [] : [change];
}
