// The correlator's two databases: its output log_<app> (the correlated
// records, with their report views and append-only protection) and its state
// database couchlog_state_<app> (its checkpoints), out of reach of everyone
// but the correlator's role and admins.
//
// Why a database of its own: a checkpoint is a _local document, which no
// validate_doc_update covers, and any member of a database may write its
// _local documents. Readers and the writer are members of log_correlated, so
// until 2026-12-04 any of them could rewrite the correlator's checkpoint
// there, straight against CouchDB, and make it skip documents on its next
// start. Here only the role log_correlator is a member. What an older
// couchlog left in log_correlated is never taken (a member may have written
// it): the correlator reads its feeds again from the start once.
//
// What must stay true: whenever the state database's _security is not what
// setup wants (one an older couchlog created on an unpatched PouchDB Server,
// which let any authenticated user into a database without _security; one
// changed by someone; a run that died half-way), setup closes it to all but admins, starts a new epoch
// (_local/epoch, a random value nobody outside can read afterwards), and only
// then lets the correlator's role in. The correlator takes only a checkpoint
// of the current epoch, so whatever anyone wrote while they could get in is
// never read, whatever its name. A run with nothing to do changes nothing.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { failed, type AdminClient } from '../lib/couch/admin-client.js';
import { correlatorStateDb, STATE_EPOCH_DOC } from '../lib/config/load.js';
import { OperationError } from '../lib/errors.js';
import { canonical } from '../design-docs/serialize.js';
import { CORRELATOR_ROLE } from './ensure-users.js';
import { ensureAppDatabase, ensureDatabase } from './ensure-app-db.js';
import type { Protection } from '../lib/config/protection.js';

export const STATE_DB_SECURITY = {
  admins: { names: [] as string[], roles: [] as string[] },
  members: { names: [] as string[], roles: [CORRELATOR_ROLE] },
};

/** Admins only (no account has the role _admin without being one): while a new epoch begins. */
const CLOSED_SECURITY = {
  admins: { names: [] as string[], roles: [] as string[] },
  members: { names: [] as string[], roles: ['_admin'] },
};

export interface CorrelatorDbOptions {
  protection?: Protection;
}

/** Both databases of a correlator writing to log_<outputApp>. */
export async function ensureCorrelatorDatabases(admin: AdminClient, outputApp: string, o: CorrelatorDbOptions = {}): Promise<string[]> {
  return [...(await ensureAppDatabase(admin, outputApp, ['correlated'], o.protection)), ...(await ensureCorrelatorStateDb(admin, outputApp))];
}

/** couchlog_state_<outputApp>: created, and open to the correlator's role only in an epoch nobody else could write to. */
export async function ensureCorrelatorStateDb(admin: AdminClient, outputApp: string): Promise<string[]> {
  const db = correlatorStateDb(outputApp);
  const changes = await ensureDatabase(admin, db);
  const path = `/${encodeURIComponent(db)}/_security`;
  const current = await admin.must<Record<string, unknown>>(`reading ${db}/_security`, 'GET', path);
  if (canonical(current) === canonical(STATE_DB_SECURITY) && (await readEpoch(admin, db)) !== null) return changes;
  await admin.must(`closing ${db} to all but admins`, 'PUT', path, CLOSED_SECURITY);
  const epoch = randomBytes(16).toString('hex');
  await writeEpoch(admin, db, epoch);
  await admin.must(`writing ${db}/_security`, 'PUT', path, STATE_DB_SECURITY);
  await untilSecurityReads(admin, db, STATE_DB_SECURITY);
  // A write that passed the security check before the close may land after it (PouchDB Server checks when a request starts).
  if ((await readEpoch(admin, db)) !== epoch)
    throw new OperationError(`${db}/_local/${STATE_EPOCH_DOC} changed while setup secured ${db}: someone else writes there; run setup again`);
  changes.push(`set ${db}/_security (members: roles ${CORRELATOR_ROLE}; admins: none) and began a new epoch: checkpoints written before are not read`);
  return changes;
}

/**
 * On a cluster a _security write reaches the shard copies one after the
 * other: setup returns once reads agree, or the correlator started right
 * after it (couchlog up) could still be refused.
 */
async function untilSecurityReads(admin: AdminClient, db: string, want: object): Promise<void> {
  let agreeing = 0;
  for (let read = 0; read < 100; read++) {
    const current = await admin.must<Record<string, unknown>>(`reading ${db}/_security`, 'GET', `/${encodeURIComponent(db)}/_security`);
    agreeing = canonical(current) === canonical(want) ? agreeing + 1 : 0;
    if (agreeing === 3) return;
    await sleep(100);
  }
  throw new OperationError(`${db}/_security does not read as written 10 s after setup wrote it`);
}

const epochPath = (db: string) => `/${encodeURIComponent(db)}/_local/${STATE_EPOCH_DOC}`;

async function readEpoch(admin: AdminClient, db: string): Promise<string | null> {
  const res = await admin.call<{ epoch?: unknown }>('GET', epochPath(db));
  if (res.status === 404) return null;
  if (res.status !== 200) throw failed(`reading ${db}/_local/${STATE_EPOCH_DOC}`, res);
  return typeof res.body.epoch === 'string' ? res.body.epoch : null;
}

/** Over whatever revision is there; a conflict (a cluster copy behind, nobody else can write now) is read again and tried again. */
async function writeEpoch(admin: AdminClient, db: string, epoch: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const cur = await admin.call<{ _rev?: string }>('GET', epochPath(db));
    if (cur.status !== 200 && cur.status !== 404) throw failed(`reading ${db}/_local/${STATE_EPOCH_DOC}`, cur);
    const put = await admin.call('PUT', epochPath(db), { epoch, ...(cur.status === 200 ? { _rev: cur.body._rev } : {}) });
    if (put.status < 300) return;
    if (put.status !== 409 || attempt === 5) throw failed(`writing ${db}/_local/${STATE_EPOCH_DOC}`, put);
    await sleep(100 * attempt);
  }
}
