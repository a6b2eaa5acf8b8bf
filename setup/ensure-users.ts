// Writer and reader accounts in _users. A user is rewritten only when its
// roles differ or its password no longer logs in, so setup stays idempotent
// and a password changed in the environment takes effect on the next run.
import { AdminClient } from '../lib/couch/admin-client.js';

export const WRITER_ROLE = 'log_writer';
export const READER_ROLE = 'log_reader';
/** The correlator's account: the only non-admin that may update or delete correlated records. */
export const CORRELATOR_ROLE = 'log_correlator';

export interface UserSpec {
  user: string;
  password: string;
  roles: string[];
}

interface UserDoc {
  _id: string;
  _rev?: string;
  name: string;
  type: 'user';
  roles: string[];
  password?: string;
  /** PBKDF2 iterations of the stored hash (PouchDB Server and CouchDB 3). */
  iterations?: number | string;
}

/**
 * `minIterations`: a stored hash with fewer PBKDF2 iterations is rewritten
 * (the server hashes the password again with its current setting). For the
 * embedded server; CouchDB 3.4+ upgrades hashes on login by itself.
 */
export async function ensureUser(admin: AdminClient, spec: UserSpec, minIterations = 0): Promise<string[]> {
  const id = `org.couchdb.user:${spec.user}`;
  const path = `/_users/${encodeURIComponent(id)}`;
  const existing = await admin.call<UserDoc>('GET', path);
  const doc: UserDoc = { _id: id, name: spec.user, type: 'user', roles: spec.roles, password: spec.password };
  if (existing.status === 404) {
    await admin.must(`creating user "${spec.user}"`, 'PUT', path, doc);
    return [`created user "${spec.user}" (roles: ${spec.roles.join(', ')})`];
  }
  if (existing.status >= 400) {
    await admin.must(`reading user "${spec.user}"`, 'GET', path);
  }
  const sameRoles = [...existing.body.roles].sort().join(',') === [...spec.roles].sort().join(',');
  const login = new AdminClient(admin.baseUrl, spec.user, spec.password);
  const session = await login.call<{ userCtx?: { name: string | null } }>('GET', '/_session');
  const passwordWorks = session.status === 200 && session.body.userCtx?.name === spec.user;
  const iterations = Number(existing.body.iterations);
  const weakHash = Number.isFinite(iterations) && iterations < minIterations;
  if (sameRoles && passwordWorks && !weakHash) return [];
  await admin.must(`updating user "${spec.user}"`, 'PUT', path, { ...doc, _rev: existing.body._rev });
  const what = [
    !sameRoles ? 'roles' : '',
    !passwordWorks ? 'password' : '',
    weakHash ? `password hash (${iterations} -> ${minIterations} PBKDF2 iterations)` : '',
  ]
    .filter(Boolean)
    .join(' and ');
  return [`updated user "${spec.user}" (${what})`];
}
