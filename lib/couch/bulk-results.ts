// CouchDB's per-document answers to _bulk_docs, matched back to the
// documents sent. Shared by the ingress and the correlator's CouchDB sink.
import { unavailable } from '../errors.js';

export type DocResult = { ok: true; id: string; rev: string } | { id: string; error: string; reason: string };

/**
 * The reason _design/couchlog's validate_doc_update gives when a document
 * id already exists (design-docs/append-only.ts spells it in its ES5
 * source; test/unit/design-docs/index.test.ts checks both agree). The ingress
 * turns a `forbidden` with this prefix into CouchDB's 409 conflict,
 * because PouchDB Server runs validation before its conflict check while
 * CouchDB 3 does the opposite: both then answer a client the same way.
 */
export const EXISTS_REASON_PREFIX = 'conflict:';

export const CONFLICT: { error: string; reason: string } = { error: 'conflict', reason: 'Document update conflict.' };

/**
 * Matches CouchDB's per-document answers to the documents sent. PouchDB
 * Server does not keep the request's order when an id repeats, so results
 * are matched by id (in order of appearance for repeated ids).
 */
export function matchResults(docs: Array<{ _id: string }>, body: unknown): DocResult[] {
  if (!Array.isArray(body)) throw unavailable('COUCHDB_BAD_ANSWER', 'CouchDB gave an unexpected _bulk_docs answer', 5);
  // The usual answer: one result per document, in the documents' order.
  // Matching by position then gives what matching by id would.
  const inOrder = inOrderResults(docs, body as Array<Record<string, unknown>>);
  if (inOrder) return inOrder;
  const byId = new Map<string, DocResult[]>();
  for (const raw of body as Array<Record<string, unknown>>) {
    const id = String(raw.id);
    const r: DocResult =
      raw.ok === true || (raw.rev !== undefined && raw.error === undefined)
        ? { ok: true, id, rev: String(raw.rev) }
        : normalizeError(id, String(raw.error), String(raw.reason ?? ''));
    const list = byId.get(id);
    if (list) list.push(r);
    else byId.set(id, [r]);
  }
  return docs.map((doc) => {
    const r = byId.get(doc._id)?.shift();
    return r ?? { id: doc._id, error: 'unknown', reason: 'CouchDB gave no result for this document' };
  });
}

function inOrderResults(docs: Array<{ _id: string }>, body: Array<Record<string, unknown>>): DocResult[] | null {
  if (body.length !== docs.length) return null;
  const results: DocResult[] = new Array(docs.length);
  for (let i = 0; i < body.length; i++) {
    const raw = body[i]!;
    if (raw === null || typeof raw !== 'object') return null;
    const id = String(raw.id);
    if (id !== docs[i]!._id) return null;
    results[i] =
      raw.ok === true || (raw.rev !== undefined && raw.error === undefined)
        ? { ok: true, id, rev: String(raw.rev) }
        : normalizeError(id, String(raw.error), String(raw.reason ?? ''));
  }
  return results;
}

/** Conflicts read as CouchDB's, whichever way the server found them (PouchDB Server says "conflict" without the full stop). */
function normalizeError(id: string, error: string, reason: string): DocResult {
  if (error === 'conflict' || (error === 'forbidden' && reason.startsWith(EXISTS_REASON_PREFIX))) return { id, ...CONFLICT };
  return { id, error, reason };
}
