// The embedded server's admin as PouchDB Server keeps it in the [admins]
// section of its config: "-pbkdf2-<derived key>,<salt>,<iterations>"
// (pouchdb-auth: PBKDF2-HMAC-SHA1, 20 bytes, the salt's hex text itself as
// the salt). couchlog writes it there before the server's first start, so
// the server never runs without an admin: PouchDB Server without one is in
// "admin party", where every anonymous request is an admin's.
import { pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { EMBEDDED_PBKDF2_ITERATIONS } from '../lib/couch/pbkdf2-iterations.js';

/** pouchdb-auth's own pattern (lib/admins.js): anything else is not an admin to it. */
const ADMIN_HASH = /^-pbkdf2-([\da-f]+),([\da-f]+),([0-9]+)$/;
const ASCII = /^[\x00-\x7f]*$/;
/**
 * Iterations of a password that is not ASCII: PouchDB Server's own for
 * admins. Such a password is checked by crypto-lite in plain JavaScript
 * (50 ms per 10,000 iterations) on every request; an ASCII one natively
 * and memoised (pouchdb-server-main.cts).
 */
const SLOW_PATH_ITERATIONS = 10;

const derive = promisify(pbkdf2);
let lite: { pbkdf2: (secret: string, salt: string, count: number, length: number) => string } | null = null;

/** PBKDF2 exactly as the embedded server computes it. */
async function derivedKey(password: string, salt: string, iterations: number): Promise<string> {
  // Node's result equals crypto-lite's for ASCII; for other text crypto-lite
  // differs (some UTF-8 keys longer than a block), and the server uses it.
  if (ASCII.test(password)) return (await derive(password, salt, iterations, 20, 'sha1')).toString('hex');
  if (lite === null) {
    const here = createRequire(import.meta.url);
    lite = (createRequire(here.resolve('pouchdb-auth'))('crypto-lite') as { crypto: NonNullable<typeof lite> }).crypto;
  }
  return lite.pbkdf2(password, salt, iterations, 20);
}

/** A fresh entry for the [admins] section. */
export async function hashAdminPassword(password: string): Promise<string> {
  const salt = randomBytes(16).toString('hex');
  const iterations = ASCII.test(password) ? EMBEDDED_PBKDF2_ITERATIONS : SLOW_PATH_ITERATIONS;
  return `-pbkdf2-${await derivedKey(password, salt, iterations)},${salt},${iterations}`;
}

/** Whether `entry` (an [admins] value) is a hash the server reads and `password` matches it. */
export async function adminHashMatches(entry: unknown, password: string): Promise<boolean> {
  const m = typeof entry === 'string' ? ADMIN_HASH.exec(entry) : null;
  if (!m) return false;
  const [, key, salt, iterations] = m;
  const n = Number(iterations);
  // A weaker hash than couchlog writes is replaced (an admin set through
  // /_config gets 10 iterations); so is one that would take minutes to check.
  const wanted = ASCII.test(password) ? EMBEDDED_PBKDF2_ITERATIONS : SLOW_PATH_ITERATIONS;
  if (n < wanted || n > 10 * wanted) return false;
  const derived = Buffer.from(await derivedKey(password, salt!, n), 'hex');
  const stored = Buffer.from(key!, 'hex');
  return derived.length === stored.length && timingSafeEqual(derived, stored);
}
