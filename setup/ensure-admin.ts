// The server admin: verified, or created while the server is still in
// "admin party" (a PouchDB Server started without one: every anonymous
// request is an admin's). couchlog's embedded server never is: its admin
// is written into its config before its first start
// (embedded/pouchdb-server.ts); CouchDB 3 refuses to start without one. So
// creating is only for a PouchDB Server someone else started.
import { AdminClient } from '../lib/couch/admin-client.js';
import { OperationError } from '../lib/errors.js';

interface Session {
  userCtx?: { name: string | null; roles: string[] };
}

export async function isAdmin(client: AdminClient): Promise<boolean> {
  const res = await client.call<Session>('GET', '/_session');
  return res.status === 200 && (res.body.userCtx?.roles ?? []).includes('_admin');
}

/**
 * Whether `GET /` answers as CouchDB or PouchDB Server do: their welcome,
 * or CouchDB's own 401 when require_valid_user (which setup turns on)
 * keeps even `/` from anonymous callers.
 */
async function isCouchDb(client: AdminClient): Promise<boolean> {
  const res = await client.call<Record<string, unknown>>('GET', '/');
  const body = res.body && typeof res.body === 'object' ? res.body : {};
  if (res.status === 401) return body.error === 'unauthorized';
  return res.status === 200 && (body.couchdb === 'Welcome' || typeof body['express-pouchdb'] === 'string');
}

/** Returns the changes made ([] when the admin already worked). */
export async function ensureAdmin(baseUrl: string, user: string, password: string): Promise<string[]> {
  const admin = new AdminClient(baseUrl, user, password);
  if (await isAdmin(admin)) return [];
  const anonymous = new AdminClient(baseUrl, null, null);
  // Any web server refuses the credentials; blaming the password would send the operator the wrong way.
  if (!(await isCouchDb(anonymous)))
    throw new OperationError(`${baseUrl} is not a CouchDB server (GET / did not answer {"couchdb":"Welcome"}): check COUCHDB_URL`);
  // In admin party every anonymous request is an admin request.
  if (!(await isAdmin(anonymous))) {
    throw new OperationError(
      `the admin credentials for user "${user}" are rejected by ${baseUrl} ` +
        '(the server already has an admin with another password: set COUCHDB_USER/COUCHDB_PASSWORD)',
    );
  }
  const path = await anonymous.configPath('admins', user);
  await anonymous.must(`creating the admin "${user}"`, 'PUT', path, password);
  if (!(await isAdmin(admin))) throw new OperationError(`the admin "${user}" was created but cannot log in`);
  return [`created server admin "${user}"`];
}
