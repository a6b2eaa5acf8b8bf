// One log_<app> database: created, locked down with a _security object, and
// given its design documents. Each step writes only when something differs,
// because rewriting a design document rebuilds every view index.
import { AdminClient } from '../lib/couch/admin-client.js';
import { designDocsForApp, sameDesignDoc, VALIDATE_DDOC_ID, type DesignDoc, type ReportSet } from '../design-docs/index.js';
import type { Protection } from '../lib/config/protection.js';
import { READER_ROLE, WRITER_ROLE } from './ensure-users.js';
import { canonical } from '../design-docs/serialize.js';
import { dbName } from '../lib/config/load.js';

export const LOG_DB_SECURITY = {
  admins: { names: [] as string[], roles: [] as string[] },
  members: { names: [] as string[], roles: [WRITER_ROLE, READER_ROLE] },
};

export async function ensureDatabase(admin: AdminClient, db: string): Promise<string[]> {
  const res = await admin.call('PUT', `/${encodeURIComponent(db)}`);
  if (res.status === 412) return [];
  if (res.status >= 400) await admin.must(`creating database ${db}`, 'PUT', `/${encodeURIComponent(db)}`);
  return [`created database ${db}`];
}

/** Sets a log database's _security to LOG_DB_SECURITY unless it is that already. */
async function ensureLogDbSecurity(admin: AdminClient, db: string): Promise<string[]> {
  const path = `/${encodeURIComponent(db)}/_security`;
  const current = await admin.must<Record<string, unknown>>(`reading ${db}/_security`, 'GET', path);
  if (canonical(current) === canonical(LOG_DB_SECURITY)) return [];
  await admin.must(`writing ${db}/_security`, 'PUT', path, LOG_DB_SECURITY);
  return [`set ${db}/_security (members: roles ${LOG_DB_SECURITY.members.roles.join(', ')}; admins: none)`];
}

export async function pushDesignDoc(admin: AdminClient, db: string, ddoc: DesignDoc): Promise<string[]> {
  const path = `/${encodeURIComponent(db)}/${ddoc._id}`;
  const current = await admin.call<Record<string, unknown>>('GET', path);
  if (current.status === 200 && sameDesignDoc(current.body, ddoc)) return [];
  const body = current.status === 200 ? { ...ddoc, _rev: current.body._rev } : ddoc;
  await admin.must(`writing ${db}/${ddoc._id}`, 'PUT', path, body);
  return [`${current.status === 200 ? 'updated' : 'created'} ${db}/${ddoc._id}`];
}

export async function ensureAppDatabase(
  admin: AdminClient,
  app: string,
  reports: readonly ReportSet[] = [],
  protection: Protection = 'validate',
): Promise<string[]> {
  const db = dbName(app);
  const changes = [...(await ensureDatabase(admin, db)), ...(await ensureLogDbSecurity(admin, db))];
  for (const ddoc of designDocsForApp(reports, protection)) changes.push(...(await pushDesignDoc(admin, db, ddoc)));
  if (protection === 'audit') changes.push(...(await removeDesignDoc(admin, db, VALIDATE_DDOC_ID)));
  return changes;
}

/** A design document that must not be there (the validation of an app switched to audit). */
export async function removeDesignDoc(admin: AdminClient, db: string, id: string): Promise<string[]> {
  const path = `/${encodeURIComponent(db)}/${id}`;
  const current = await admin.call<{ _rev?: string }>('GET', path);
  if (current.status === 404) return [];
  const rev = current.status === 200 ? current.body._rev : undefined;
  if (!rev) await admin.must(`reading ${db}/${id}`, 'GET', path);
  await admin.must(`removing ${db}/${id}`, 'DELETE', `${path}?rev=${encodeURIComponent(rev!)}`);
  return [`removed ${db}/${id} (protection: audit)`];
}
