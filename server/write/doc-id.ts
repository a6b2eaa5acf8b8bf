// Generated document ids are UUIDv7 without dashes: 32 hex characters like
// CouchDB's own, ordered by creation time (the uuid package keeps them
// monotonic within a millisecond), so _all_docs lists logs in arrival order.
import { v7 as uuidv7 } from 'uuid';

export function newDocId(): string {
  return uuidv7().replace(/-/g, '');
}
