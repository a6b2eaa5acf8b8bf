// A correlated record as log_correlated stores it, both ways: the CouchDB
// sink writes storedDoc(r); `couchlog backfill` reads the documents back as
// the records the sinks were given (recordOfStored), to send them to
// ClickHouse as the live sink would have.
//
// What must stay true: recordOfStored(storedDoc(r)) gives r back, version
// included (the engine sets decided_at = isoTime(version), so the version
// ClickHouse keeps the latest of is recovered from decided_at to the
// millisecond); CouchDB's own fields and the audit signature are no part of
// the record.
import { SIGNATURE_FIELD } from '../../../lib/audit/record-signature.js';
import type { SinkRecord } from '../sink.js';

/** CouchDB refuses top-level fields starting with "_" other than its own. */
export function storedDoc(r: SinkRecord): Record<string, unknown> {
  const doc: Record<string, unknown> = { _id: r.id };
  const rec = r.record;
  for (const k in rec) if (k.charCodeAt(0) !== 95 /* _ */) doc[k] = rec[k];
  return doc;
}

/** Correlated records are A-<id> and B-<id>; design documents and anything else stored there are not. */
export function isRecordId(id: string): boolean {
  return id.startsWith('A-') || id.startsWith('B-');
}

/**
 * The record a stored document holds, or null when it holds none (not a
 * record id, or no `decided_at` to order it by). A tombstone gives a
 * deletion carrying only what the tombstone keeps (revision, decided_at):
 * the fields that place it in ClickHouse come from the row it deletes.
 */
export function recordOfStored(id: string, doc: Record<string, unknown>, deleted: boolean): SinkRecord | null {
  if (!isRecordId(id)) return null;
  const version = typeof doc.decided_at === 'string' ? Date.parse(doc.decided_at) : NaN;
  if (!Number.isFinite(version)) return null;
  const record: Record<string, unknown> = {};
  for (const k in doc) if (k.charCodeAt(0) !== 95 /* _ */ && k !== SIGNATURE_FIELD) record[k] = doc[k];
  if (deleted) record.deleted = true;
  return { id, record, version, deleted };
}
