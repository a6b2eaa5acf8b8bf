// Generated document ids are UUIDv7 without dashes: 32 hex characters like
// CouchDB's own, ordered by creation time and strictly increasing within
// this process (a millisecond's ids count up from a random start, as the
// uuid package does), so _all_docs lists logs in arrival order.
import { randomFillSync } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';

// The random bits come from a pool refilled 256 ids at a time: asking the
// system for 16 bytes per id was the ingress's largest single cost on bulk
// writes. With its own random bytes the uuid package keeps no state, so
// the millisecond and counter are kept here.
const POOL_IDS = 256;
const pool = Buffer.allocUnsafe(16 * POOL_IDS);
let next = pool.length;
let msecs = -Infinity;
let seq = 0;
const bytes = Buffer.alloc(16);

function pooledRandom(): Uint8Array {
  if (next === pool.length) {
    randomFillSync(pool);
    next = 0;
  }
  next += 16;
  return pool.subarray(next - 16, next);
}

export function newDocId(): string {
  return newDocIdAt(Date.now());
}

/**
 * A new id for a clock reading `now` (ms): a request stamps all its
 * documents with one reading (a thousand Date.now() calls were a tenth of
 * a bulk's stamping). Ids stay strictly increasing whatever `now` says.
 */
export function newDocIdAt(now: number): string {
  const random = pooledRandom();
  if (now > msecs) {
    // A new millisecond: a random 31-bit start leaves room to count up.
    seq = ((random[6]! & 0x7f) << 24) | (random[7]! << 16) | (random[8]! << 8) | random[9]!;
    msecs = now;
  } else {
    seq = (seq + 1) | 0;
    if (seq === 0) msecs++;
  }
  uuidv7({ random, msecs, seq }, bytes);
  return bytes.toString('hex');
}
