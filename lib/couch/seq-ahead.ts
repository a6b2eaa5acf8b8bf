// A checkpoint that is ahead of its database: the database was deleted and
// made again under the same name, or restored from an older copy. Read from
// such a `since`, PouchDB Server's _changes answers nothing until the new
// database has grown past it, and a follower would silently forward or
// correlate nothing. CouchDB 3's opaque sequences carry each shard's
// identity, and CouchDB itself reads a new database's changes from the
// start for them: only plain numbers are compared.

/** A sequence as a number, or null when it is not a plain one (CouchDB 3: "12-g1AAA…"). */
function plainSeq(seq: unknown): number | null {
  if (typeof seq === 'number') return Number.isSafeInteger(seq) && seq >= 0 ? seq : null;
  if (typeof seq === 'string' && /^\d{1,15}$/.test(seq)) return Number(seq);
  return null;
}

/** Whether a sequence is a plain number, the only kind seqAhead compares (no need to ask for update_seq otherwise). */
export function isPlainSeq(seq: unknown): boolean {
  return plainSeq(seq) !== null;
}

/** Whether `since` is past the database's `update_seq`, where both are plain sequences. */
export function seqAhead(since: unknown, updateSeq: unknown): boolean {
  const s = plainSeq(since);
  const u = plainSeq(updateSeq);
  return s !== null && u !== null && s > u;
}
