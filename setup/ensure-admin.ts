// The server admin: verified, or created while the server is still in
// "admin party" (a fresh PouchDB Server has no admin at all). CouchDB 3
// refuses to start without one, so there it can only be verified.
import { AdminClient } from '../lib/couch/admin-client.js';
import { OperationError } from '../lib/errors.js';

interface Session {
  userCtx?: { name: string | null; roles: string[] };
}

export async function isAdmin(client: AdminClient): Promise<boolean> {
  const res = await client.call<Session>('GET', '/_session');
  return res.status === 200 && (res.body.userCtx?.roles ?? []).includes('_admin');
}

/** Returns the changes made ([] when the admin already worked). */
export async function ensureAdmin(baseUrl: string, user: string, password: string): Promise<string[]> {
  const admin = new AdminClient(baseUrl, user, password);
  if (await isAdmin(admin)) return [];
  const anonymous = new AdminClient(baseUrl, null, null);
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
