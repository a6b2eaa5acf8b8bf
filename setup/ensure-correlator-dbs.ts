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
// moved once, so an upgrade continues where it stopped instead of reading
// every feed again; a run with nothing to do changes nothing.
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
  return [...(await ensureAppDatabase(admin, outputApp, ['correlated'], o.protection)), ...(await ensureStateDb(admin, outputApp, o.shards ?? 1))];
}

async function ensureStateDb(admin: AdminClient, outputApp: string, shardCount: number): Promise<string[]> {
  const db = correlatorStateDb(outputApp);
  const changes = [...(await ensureDatabase(admin, db)), ...(await ensureSecurity(admin, db, STATE_DB_SECURITY))];
  for (let index = 0; index < shardCount; index++) {
    changes.push(...(await moveOldCheckpoint(admin, dbName(outputApp), db, checkpointName({ index, count: shardCount }))));
  }
  return changes;
}

/**
 * A checkpoint left in the output database by an earlier couchlog: copied
 * here unless one is here already, then deleted there. On a cluster a read
 * of a _local document may come from a copy that has not seen the latest
 * write yet: a copy that finds one here already, or a deletion of what is
 * already gone, is not an error (the next run sees the settled state).
 */
async function moveOldCheckpoint(admin: AdminClient, outputDb: string, stateDb: string, name: string): Promise<string[]> {
  const doc = `_local/${encodeURIComponent(name)}`;
  const oldPath = `/${encodeURIComponent(outputDb)}/${doc}`;
  const newPath = `/${encodeURIComponent(stateDb)}/${doc}`;
  const old = await admin.call<Record<string, unknown>>('GET', oldPath);
  if (old.status === 404) return [];
  if (old.status !== 200) throw failed(`reading ${outputDb}/_local/${name}`, old);
  const here = await admin.call('GET', newPath);
  if (here.status !== 200 && here.status !== 404) throw failed(`reading ${stateDb}/_local/${name}`, here);
  let moved = false;
  if (here.status === 404) {
    const put = await admin.call('PUT', newPath, Object.fromEntries(Object.entries(old.body).filter(([k]) => k !== '_id' && k !== '_rev')));
    if (put.status >= 300 && put.status !== 409) throw failed(`copying the checkpoint ${outputDb}/_local/${name}`, put);
    moved = put.status < 300;
  }
  // Not moved: the correlator has saved here already, so what is left there is stale (e.g. saved by the old version during an upgrade).
  const del = await admin.call('DELETE', `${oldPath}?rev=${encodeURIComponent(String(old.body._rev))}`);
  if (del.status >= 300 && del.status !== 404 && del.status !== 409) throw failed(`deleting ${outputDb}/_local/${name}`, del);
  if (moved) return [`moved the checkpoint ${outputDb}/_local/${name} to ${stateDb}`];
  return del.status < 300 ? [`deleted the stale checkpoint ${outputDb}/_local/${name} (the correlator's is in ${stateDb})`] : [];
}
