// `couchlog audit --resign`: the one-off upgrade of log_correlated's
// signatures from the unbound form (`hmac-sha256:`, before 2026-12) to the
// one bound to the revision generation (lib/audit/record-signature.ts).
//
// Why an admin's command and not part of setup: re-signing declares what is
// stored now to be the correlator's. An unbound signature verifies wherever
// its body is written again, and every old body stays readable, so a replay
// made before the re-signing cannot be told apart from the correlator's
// write; one made after it can (it shows as `old-signature`). Setup runs at
// every `couchlog up`: re-signing there would launder every replay made
// since the last start. So it is run once, by an admin who chose to, and
// it leaves a marker only an admin can write (a design document) that makes
// a second run refuse.
//
// What must stay true:
//  - only documents whose unbound signature verifies with the key are
//    re-signed: nothing unsigned, badly signed or already bound is touched;
//  - the content is written back as it is, with a signature for the
//    generation the write creates, n+1 over revision n: a live record with
//    its _rev; a tombstone, which neither CouchDB 3 nor PouchDB Server lets
//    anyone write over with or without _rev (both answer conflict), as a
//    revision given with new_edits=false whose history is the tombstone's
//    (it extends that branch: still a single leaf); a write that CouchDB
//    stores elsewhere, or that conflicts (the correlator wrote it meanwhile,
//    bound), is counted, not forced;
//  - the marker is written only after the scan, so a run that failed can be
//    run again.
import { randomBytes } from 'node:crypto';
import type { AdminClient } from '../lib/couch/admin-client.js';
import { checkSignature, revGeneration, signRecord, SIGNATURE_FIELD } from '../lib/audit/record-signature.js';
import { OperationError, UsageError } from '../lib/errors.js';

/** Present once a database's signatures were re-signed: a second run refuses. */
export const RESIGNED_DDOC_ID = '_design/couchlog-resigned';

export interface ResignResult {
  db: string;
  /** Documents looked at (design documents aside). */
  checked: number;
  /** Unbound signatures replaced by bound ones. */
  resigned: number;
  /** Unbound signatures not replaced: the document moved meanwhile, or landed at another generation (see ids). */
  failed: number;
  failedIds: string[];
}

interface Row {
  id: string;
  deleted?: boolean;
  doc?: Record<string, unknown> | null;
}

const PAGE = 1000;
const LISTED = 20;

export async function resignDatabase(admin: AdminClient, db: string, key: string): Promise<ResignResult> {
  const base = `/${encodeURIComponent(db)}`;
  const marker = await admin.call<{ resigned_at?: string }>('GET', `${base}/${RESIGNED_DDOC_ID}`);
  if (marker.status === 200)
    throw new UsageError(
      `${db} was re-signed already (${marker.body.resigned_at ?? 'date unknown'}): an unbound signature seen since was written again by someone ` +
        `(a replay) or restored from before; look into it. To re-sign anyway, an admin deletes ${db}/${RESIGNED_DDOC_ID} first.`,
    );
  const result: ResignResult = { db, checked: 0, resigned: 0, failed: 0, failedIds: [] };
  let since = '0';
  for (;;) {
    const qs = new URLSearchParams({ since, limit: String(PAGE), include_docs: 'true', seq_interval: String(PAGE) });
    const page = await admin.must<{ results: Row[]; last_seq: unknown }>(`reading ${db}/_changes`, 'GET', `${base}/_changes?${qs}`);
    const docs = pageToResign(page.results, key, result);
    if (docs.length > 0) await writeResigned(admin, db, docs, result);
    since = typeof page.last_seq === 'string' ? page.last_seq : JSON.stringify(page.last_seq);
    if (page.results.length < PAGE) break;
  }
  await admin.must(`writing ${db}/${RESIGNED_DDOC_ID}`, 'PUT', `${base}/${RESIGNED_DDOC_ID}`, {
    resigned_at: new Date().toISOString(),
    resigned: result.resigned,
  });
  return result;
}

/** The documents of one page to write again, each with the generation its write creates. */
function pageToResign(rows: readonly Row[], key: string, result: ResignResult): Array<{ doc: Record<string, unknown>; generation: number }> {
  const out: Array<{ doc: Record<string, unknown>; generation: number }> = [];
  for (const row of rows) {
    if (row.id.startsWith('_design/') || !row.doc) continue;
    result.checked++;
    if (checkSignature(row.doc, key) !== 'old-format') continue;
    const generation = (revGeneration(row.doc._rev) ?? 0) + 1;
    const doc: Record<string, unknown> = { ...row.doc };
    // Over the content as stored (`_revisions` below is how the write is placed, not a stored field).
    doc[SIGNATURE_FIELD] = signRecord(doc, generation, key);
    if (row.deleted) {
      // The next revision of the tombstone's branch, named here (see above).
      const id = randomBytes(16).toString('hex');
      doc._revisions = { start: generation, ids: [id, String(doc._rev).slice(String(doc._rev).indexOf('-') + 1)] };
      doc._rev = `${generation}-${id}`;
    }
    out.push({ doc, generation });
  }
  return out;
}

type BulkAnswer = Array<{ id: string; rev?: string; error?: string }>;

async function bulk(admin: AdminClient, db: string, docs: Array<Record<string, unknown>>, newEdits = true): Promise<BulkAnswer> {
  const body = newEdits ? { docs } : { docs, new_edits: false };
  const res = await admin.must<BulkAnswer>(`re-signing ${docs.length} documents of ${db}`, 'POST', `/${encodeURIComponent(db)}/_bulk_docs`, body);
  if (!Array.isArray(res)) throw new OperationError(`re-signing in ${db}: unexpected answer ${JSON.stringify(res).slice(0, 300)}`);
  return res;
}

/** Each tombstone's current revision, as answers: the one written, or (moved meanwhile) another. */
async function readBack(admin: AdminClient, db: string, docs: Array<Record<string, unknown>>): Promise<BulkAnswer> {
  if (docs.length === 0) return [];
  const keys = docs.map((d) => String(d._id));
  const res = await admin.must<{ rows: Array<{ key: string; value?: { rev: string } }> }>(`reading ${db}`, 'POST', `/${encodeURIComponent(db)}/_all_docs`, {
    keys,
  });
  const now = new Map(res.rows.map((r) => [r.key, r.value?.rev]));
  return docs.map((d) => (now.get(String(d._id)) === d._rev ? { id: String(d._id), rev: String(d._rev) } : { id: String(d._id), error: 'moved' }));
}

async function writeResigned(admin: AdminClient, db: string, docs: Array<{ doc: Record<string, unknown>; generation: number }>, result: ResignResult) {
  const wanted = new Map(docs.map((d) => [String(d.doc._id), d.generation]));
  const live = docs.filter((d) => d.doc._deleted !== true).map((d) => d.doc);
  const tombstones = docs.filter((d) => d.doc._deleted === true).map((d) => d.doc);
  const answers = live.length > 0 ? await bulk(admin, db, live) : [];
  if (tombstones.length > 0) await bulk(admin, db, tombstones, false);
  for (const r of [...answers, ...(await readBack(admin, db, tombstones))]) {
    if (!r.error && revGeneration(r.rev) === wanted.get(r.id)) result.resigned++;
    else {
      result.failed++;
      if (result.failedIds.length < LISTED) result.failedIds.push(r.id);
    }
  }
}
