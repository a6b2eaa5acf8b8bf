// A feed position's witness: the id and revision of a change read before
// it (up to one check older than the position: position-check.ts). A
// database deleted and made again under the same name, or restored from a
// copy older than the witness, does not hold that revision, whatever its
// sequences say: PouchDB Server's plain sequences only show a database made
// again while it is still smaller than the position (seq-ahead.ts), and a
// follower reading on from a position the new database has already grown
// past silently skips every document before it. A document's revision
// history keeps a revision whether it is the winner, superseded, deleted or
// compacted away; a purge forgets it, and so does stemming (more edits of
// the document than `_revs_limit`, 1,000 by default): then the feed is read
// from the start once, more work but never a wrong result. What it cannot
// tell: a database refilled with the same documents (replicated from the
// one it replaces, or the same lines shipped again with the ingress's
// `received_at` off) holds the same revisions, perhaps in another order,
// since both servers derive a revision from the document's content; nor a
// copy restored from between the witness and the position.
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

/**
 * The request that asks a database for the witness: every live and deleted
 * branch of its document with their revision histories, from every copy
 * (r=3; one node, or fewer copies, answer with what they have). A cluster
 * answers `_revs_diff` from the first copy that replies, and a copy that
 * lags behind (a node just restarted) would call a revision written
 * seconds ago missing: the whole feed would be read, or forwarded, again.
 */
export function witnessQuery(db: string, w: PositionWitness): string {
  return `/${encodeURIComponent(db)}/${encodeURIComponent(w.id)}?open_revs=all&revs=true&r=3`;
}

/**
 * Whether the database holds the witness's revision (a branch's, or one in
 * a branch's history), from the answer to witnessQuery. Throws when the
 * answer cannot say (the database missing, refused, a server error): not
 * knowing is never taken as "another database".
 */
export function holdsWitness(db: string, w: PositionWitness, status: number, body: unknown): boolean {
  if (status === 404 && (body as { reason?: unknown } | null)?.reason === 'missing') return false;
  if (status !== 200 || !Array.isArray(body)) throw new OperationError(`asking ${db} for ${w.id} ${w.rev}: ${status} ${JSON.stringify(body)}`);
  return body.some((branch: { ok?: { _rev?: unknown; _revisions?: { start?: unknown; ids?: unknown } } }) => {
    const doc = branch?.ok;
    if (!doc) return false;
    if (doc._rev === w.rev) return true;
    const { start, ids } = doc._revisions ?? {};
    return typeof start === 'number' && Array.isArray(ids) && ids.some((hash, k) => `${start - k}-${String(hash)}` === w.rev);
  });
}
