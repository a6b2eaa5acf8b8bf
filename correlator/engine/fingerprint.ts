// A record's content fingerprint: decides whether a re-decided record
// changed (and must be rewritten) without keeping the record itself.
//
// A record is a pure function of its source documents and its place on the
// connection (merge-record.ts): which A, which B (and which revision of
// them, `a_rev`/`b_rev`, once an admin changed one), the keepalives count
// and whether it is correlated. Source documents are append-only for all
// but admins, so those identities ARE the content: comparing them is exact, costs a few
// string operations instead of serializing every field (a quarter of the
// engine's time when it did), and reads the same from a stored
// log_correlated document as from the engine's record — whatever key order
// or number formatting the server gave it back with. Bookkeeping fields
// (revision, decided_at) and CouchDB's own (_id, _rev) play no part.

/** Fields that say when and how often a record was decided, not what it says. */
export const BOOKKEEPING_FIELDS: ReadonlySet<string> = new Set(['revision', 'decided_at']);

const part = (v: unknown): string => (v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v));

export function fingerprint(record: Record<string, unknown>): string {
  const identity = `${part(record.a_id)}\u0000${part(record.b_id)}\u0000${part(record.keepalives)}\u0000${part(record.correlated)}\u0000${part(record.timestamp)}`;
  return record.a_rev === undefined && record.b_rev === undefined ? identity : `${identity}\u0000${part(record.a_rev)}\u0000${part(record.b_rev)}`;
}
