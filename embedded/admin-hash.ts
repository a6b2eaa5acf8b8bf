// The embedded server's admin as PouchDB Server keeps it in the [admins]
// section of its config: "-pbkdf2-<derived key>,<salt>,<iterations>"
// (pouchdb-auth: PBKDF2-HMAC-SHA1, 20 bytes, the salt's hex text itself as
// the salt). couchlog writes it there before the server's first start, so
// the server never runs without an admin: PouchDB Server without one is in
// "admin party", where every anonymous request is an admin's.
import { pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { EMBEDDED_PBKDF2_ITERATIONS } from '../lib/couch/pbkdf2-iterations.js';
import { liteKey } from './password-hash.cjs';

/** pouchdb-auth's own pattern (lib/admins.js): anything else is not an admin to it. */
const ADMIN_HASH = /^-pbkdf2-([\da-f]+),([\da-f]+),([0-9]+)$/;

const derive = promisify(pbkdf2);

/**
 * PBKDF2 exactly as the embedded server computes it (password-hash.cts:
 * crypto-lite's key bytes, non-ASCII passwords included, hashed natively).
 */
async function derivedKey(password: string, salt: string, iterations: number): Promise<string> {
  const key = liteKey(password);
  if (key === null) throw new Error('the admin password is not valid Unicode (lone surrogate)');
  return (await derive(key, salt, iterations, 20, 'sha1')).toString('hex');
}

/** A fresh entry for the [admins] section. */
export async function hashAdminPassword(password: string): Promise<string> {
  const salt = randomBytes(16).toString('hex');
  return `-pbkdf2-${await derivedKey(password, salt, EMBEDDED_PBKDF2_ITERATIONS)},${salt},${EMBEDDED_PBKDF2_ITERATIONS}`;
}

/** Whether `entry` (an [admins] value) is a hash the server reads and `password` matches it. */
export async function adminHashMatches(entry: unknown, password: string): Promise<boolean> {
  const m = typeof entry === 'string' ? ADMIN_HASH.exec(entry) : null;
  if (!m) return false;
  const [, key, salt, iterations] = m;
  const n = Number(iterations);
  // A weaker hash than couchlog writes is replaced (an admin set through
  // /_config gets 10 iterations); so is one that would take minutes to check.
  const wanted = EMBEDDED_PBKDF2_ITERATIONS;
  if (n < wanted || n > 10 * wanted) return false;
  const derived = Buffer.from(await derivedKey(password, salt!, n), 'hex');
  const stored = Buffer.from(key!, 'hex');
  return derived.length === stored.length && timingSafeEqual(derived, stored);
}
