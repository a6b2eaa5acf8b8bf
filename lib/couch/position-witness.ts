// A feed position's witness: the id and revision of the last change read
// before it. A database deleted and made again under the same name, or
// restored from a copy older than the position, does not hold that
// revision, whatever its sequences say: PouchDB Server's plain sequences
// only show a database made again while it is still smaller than the
// position (seq-ahead.ts), and a follower reading on from a position the
// new database has already grown past silently skips every document before
// it. `_revs_diff` knows a revision whether it is the winner, superseded,
// deleted or compacted away; only a purge forgets it (then the feed is read
// from the start once: more work, never a wrong result). What it cannot
// tell: a database refilled with the same documents (replicated from the
// one it replaces, or the same lines shipped again with the ingress's
// `received_at` off) holds the same revisions, perhaps in another order,
// since both servers derive a revision from the document's content.
import { OperationError } from '../errors.js';

export interface PositionWitness {
  id: string;
  rev: string;
}

/**
 * The witness of a page's end: its last change with a revision, design
 * documents left out (setup pushes the same ones into a database made
 * again, and both servers derive a revision from the content: the new
 * database would hold it). Null when the page has none.
 */
export function witnessOf(changes: ReadonlyArray<{ id: string; rev: string | null }>): PositionWitness | null {
  for (let i = changes.length - 1; i >= 0; i--) {
    const c = changes[i]!;
    if (c.rev && !c.id.startsWith('_design/')) return { id: c.id, rev: c.rev };
  }
  return null;
}

/** A witness as a checkpoint may hold it (an older checkpoint holds none). */
export function parseWitness(value: unknown): PositionWitness | null {
  if (typeof value !== 'object' || value === null) return null;
  const { id, rev } = value as Record<string, unknown>;
  return typeof id === 'string' && id !== '' && typeof rev === 'string' && rev !== '' ? { id, rev } : null;
}

/** The `_revs_diff` request that asks a database for the witness's revision. */
export function witnessQuery(db: string, w: PositionWitness): { path: string; body: string } {
  return { path: `/${encodeURIComponent(db)}/_revs_diff`, body: JSON.stringify({ [w.id]: [w.rev] }) };
}

/**
 * Whether the database holds the witness's revision, from the answer to
 * witnessQuery. Throws when the answer cannot say (the database missing,
 * refused, a server error): not knowing is never taken as "another database".
 */
export function holdsWitness(db: string, w: PositionWitness, status: number, body: unknown): boolean {
  if (status !== 200 || typeof body !== 'object' || body === null || Array.isArray(body))
    throw new OperationError(`asking ${db} for ${w.id} ${w.rev}: ${status} ${JSON.stringify(body)}`);
  const missing = (body as Record<string, { missing?: unknown } | undefined>)[w.id]?.missing;
  return !(Array.isArray(missing) && missing.includes(w.rev));
}
