// The embedded server's password check (pouchdb-auth's hashPassword), done
// by Node's native PBKDF2 on libuv's thread pool instead of crypto-lite's
// plain JavaScript on PouchDB Server's only thread. Setup raises the
// iterations to CouchDB 3's 600,000, ~150 ms of CPU per check: hashed on
// the main thread (pbkdf2Sync, as before), 8 anonymous wrong-password
// requests at once held every other request, writes included, for 1.2-9 s.
// What must stay true:
//  - the same hex as crypto-lite for every password it accepts (stored
//    hashes keep working), non-ASCII included: liteKey gives the key bytes
//    crypto-lite really uses;
//  - a repeated check costs nothing (memo), and checks of the same
//    credentials asked at once share one computation;
//  - at most `maxRunning` computations use the pool at a time (it also
//    runs LevelDB's reads and writes: 4 threads by default), at most
//    `maxWaiting` wait for it; beyond that a check fails at once with
//    `busy()` (503), rather than queueing without bound.
import { createHash, pbkdf2 } from 'node:crypto';

/** How many iterations crypto-lite uses when none is given. */
const LITE_DEFAULT_ITERATIONS = 1000;
/** pouchdb-auth's derived keys: 20 bytes (40 hex digits). */
const KEY_BYTES = 20;
/** HMAC-SHA1's block: longer keys are hashed first. */
const BLOCK_BYTES = 64;

/** Whether crypto-lite can encode `text` (it throws on lone surrogates, which fails the check). */
function wellFormed(text: string): boolean {
  try {
    encodeURIComponent(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * The HMAC key crypto-lite uses for `secret`: its UTF-8 bytes, except that
 * crypto-lite decides whether to hash a long key by its length in UTF-16
 * units, so a secret of at most 64 units but more than 64 bytes (non-ASCII)
 * is cut to its first 64 bytes instead of hashed. Null when crypto-lite
 * would throw.
 */
export function liteKey(secret: string): Buffer | null {
  if (!wellFormed(secret)) return null;
  const bytes = Buffer.from(secret, 'utf8');
  return secret.length <= BLOCK_BYTES && bytes.length > BLOCK_BYTES ? bytes.subarray(0, BLOCK_BYTES) : bytes;
}

export interface HasherOptions {
  /** Computations on the thread pool at once. */
  maxRunning: number;
  /** Computations waiting for a place; more fail with busy(). */
  maxWaiting: number;
  /** Results remembered (least recently used dropped first). */
  memoSize: number;
  /** The error of a check refused because too many are in progress. */
  busy: () => Error;
}

export interface PasswordHasher {
  /** pouchdb-auth's hashPassword(password, salt, iterations): the hex of a 20-byte PBKDF2-SHA1 key. */
  hash(password: unknown, salt: unknown, iterations: unknown): Promise<string>;
  /** Computations on the pool now, and waiting for it (for tests). */
  load(): { running: number; waiting: number };
}

export function createPasswordHasher(opts: HasherOptions): PasswordHasher {
  const memo = new Map<string, string>();
  const inFlight = new Map<string, Promise<string>>();
  const waiting: Array<() => void> = [];
  let running = 0;

  const remember = (id: string, hex: string) => {
    memo.set(id, hex);
    if (memo.size > opts.memoSize) memo.delete(memo.keys().next().value!);
  };
  const release = () => {
    running -= 1;
    const next = waiting.shift();
    if (next) next();
  };
  const compute = (key: Buffer, salt: string, iterations: number) =>
    new Promise<string>((resolve, reject) => {
      const start = () => {
        running += 1;
        try {
          pbkdf2(key, salt, iterations, KEY_BYTES, 'sha1', (err, derived) => {
            release();
            if (err) reject(err);
            else resolve(derived.toString('hex'));
          });
        } catch (err) {
          // Started from release() too: a throw must neither escape nor keep the place.
          release();
          reject(err);
        }
      };
      if (running < opts.maxRunning) start();
      else if (waiting.length < opts.maxWaiting) waiting.push(start);
      else reject(opts.busy());
    });

  return {
    hash(password, salt, iterations) {
      // Not strings: crypto-lite threw for most (an absent password must never hash as "undefined").
      if (typeof password !== 'string' || typeof salt !== 'string' || !wellFormed(salt)) return Promise.reject(new Error('not a password'));
      const key = liteKey(password);
      if (key === null) return Promise.reject(new Error('not a password'));
      const count = Number(iterations) || LITE_DEFAULT_ITERATIONS;
      // crypto-lite looped forever on a fraction or a negative count; Node takes at most 2^31-1.
      if (!Number.isInteger(count) || count < 1 || count > 0x7fffffff) return Promise.reject(new Error('not an iteration count'));
      const id = createHash('sha256').update(`${count}\n${salt}\n`).update(key).digest('base64');
      const known = memo.get(id);
      if (known !== undefined) {
        memo.delete(id);
        memo.set(id, known);
        return Promise.resolve(known);
      }
      const shared = inFlight.get(id);
      if (shared) return shared;
      const computed = compute(key, salt, count).then((hex) => {
        remember(id, hex);
        return hex;
      });
      inFlight.set(id, computed);
      const forget = () => inFlight.delete(id);
      computed.then(forget, forget);
      return computed;
    },
    load: () => ({ running, waiting: waiting.length }),
  };
}
