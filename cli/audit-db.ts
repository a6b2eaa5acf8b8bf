// `couchlog audit`: proves that the stored log documents are the ones that
// were written. It is what makes `audit` protection (no validate_doc_update,
// docs/append-only.md) tamper-evident, and it checks `validate` databases
// the same way (an admin's edits show too).
//
// CouchDB keeps the revision tree of every document, compaction included:
// an update makes revision 2-..., a deletion a tombstone, and a revision
// written beside the stored one (new_edits=false) a second leaf. So in a
// log database (append-only), a document is intact when its only leaf
// revision is 1-... and not deleted; `_changes?style=all_docs` lists every
// leaf of every document, in one pass. Any later tampering moves the
// document to the end of the feed, which is why a scan from a saved
// sequence (`since`) still sees it.
//
// log_correlated is different: the correlator corrects its own records
// (revision 2, 3..., deletions), so there what must hold is that every
// current document, tombstones included, carries the correlator's valid
// signature for the revision generation it is stored at
// (lib/audit/record-signature.ts) and has a single leaf: an earlier signed
// version written again lands at a higher generation (bad-signature), and
// put back at its own generation it is a second leaf (branched).
//
// What is checked must not depend on the protection configured now: the
// signatures are checked whenever the key is there (tampering done under
// audit must still show after a switch back to validate), and the
// validation design document is itself checked (`validation`: missing under
// validate, present under audit, or not the one couchlog writes).
import { OperationError } from '../lib/errors.js';
import type { AdminClient } from '../lib/couch/admin-client.js';
import { checkSignature } from '../lib/audit/record-signature.js';
import { sameDesignDoc, VALIDATE_DDOC_ID, type DesignDoc } from '../design-docs/index.js';

export const FINDING_KINDS = ['modified', 'deleted', 'branched', 'unsigned', 'bad-signature', 'old-signature', 'validation'] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];

export interface Finding {
  id: string;
  kind: FindingKind;
  /** The document's leaf revisions. */
  revs: string[];
  /** What is wrong, where the kind alone does not say (the validation design document). */
  detail?: string;
}

export interface DbAudit {
  db: string;
  /** What the database was checked for. */
  rules: AuditRules;
  /** Documents looked at (design documents aside). */
  checked: number;
  /** Per kind, every finding (the list below stops at `maxListed`). */
  counts: Record<FindingKind, number>;
  findings: Finding[];
  /** Where the next incremental audit can start. */
  lastSeq: string;
}

/**
 * append-only: a log database (one first revision per document);
 * signed: log_correlated under audit protection (every revision signed by
 * the correlator); corrections: log_correlated under validate protection,
 * where only the correlator (and admins) can write, and later revisions and
 * deletions are its corrections: only a second branch is a finding.
 */
export type AuditRules = 'append-only' | 'signed' | 'corrections';

export interface AuditOptions {
  /** null: append-only (or corrections) rules; a key: the correlator's signed records. */
  signingKey: string | null;
  /** log_correlated under validate protection (see AuditRules). */
  corrections?: boolean;
  /** The validation design document the database must hold (null: none, under audit); undefined: not checked. */
  validation?: DesignDoc | null;
  since?: string;
  pageSize?: number;
  maxListed?: number;
}

interface ChangeRow {
  id: string;
  deleted?: boolean;
  changes: Array<{ rev: string }>;
  doc?: Record<string, unknown> | null;
}

export async function auditDatabase(admin: AdminClient, db: string, o: AuditOptions): Promise<DbAudit> {
  const pageSize = o.pageSize ?? 5000;
  const maxListed = o.maxListed ?? 100;
  const audit: DbAudit = {
    db,
    rules: o.signingKey !== null ? 'signed' : o.corrections ? 'corrections' : 'append-only',
    checked: 0,
    counts: Object.fromEntries(FINDING_KINDS.map((k) => [k, 0])) as Record<FindingKind, number>,
    findings: [],
    lastSeq: o.since ?? '0',
  };
  const add = (f: Finding) => {
    audit.counts[f.kind]++;
    if (audit.findings.length < maxListed) audit.findings.push(f);
  };
  if (o.validation !== undefined) {
    const wrong = await validationFinding(admin, db, o.validation);
    if (wrong) add(wrong);
  }
  for (;;) {
    // seq_interval: only last_seq is used, and CouchDB 3 then encodes no sequence for the other changes.
    const qs = new URLSearchParams({ style: 'all_docs', since: audit.lastSeq, limit: String(pageSize), feed: 'normal', seq_interval: String(pageSize) });
    if (o.signingKey !== null) qs.set('include_docs', 'true');
    const res = await admin.call<{ results: ChangeRow[]; last_seq: unknown }>('GET', `/${encodeURIComponent(db)}/_changes?${qs}`);
    // Said as `couchlog report` says it (it was CouchDB's "404 not_found no_db_file").
    if (res.status === 404)
      throw new OperationError(`database ${db} does not exist (is the app in the config's apps:, has couchlog setup run, and is COUCHDB_URL that server?)`);
    if (res.status >= 400) throw new OperationError(`reading ${db}/_changes failed: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    const page = res.body;
    for (const row of page.results) {
      if (row.id.startsWith('_design/')) continue;
      audit.checked++;
      for (const kind of judge(row, o.signingKey, o.corrections)) add({ id: row.id, kind, revs: row.changes.map((c) => c.rev) });
    }
    audit.lastSeq = typeof page.last_seq === 'string' ? page.last_seq : JSON.stringify(page.last_seq);
    if (page.results.length < pageSize) return audit;
  }
}

/**
 * The validation design document against what the configured protection
 * wants: missing, unexpected, or not couchlog's. Under validate its absence
 * means anyone could have written; under audit its presence means the
 * configuration and the database disagree (say, a switch setup did not make).
 */
export async function validationFinding(admin: AdminClient, db: string, want: DesignDoc | null): Promise<Finding | null> {
  const res = await admin.call<Record<string, unknown>>('GET', `/${encodeURIComponent(db)}/${VALIDATE_DDOC_ID}`);
  if (res.status !== 200 && res.status !== 404)
    throw new OperationError(`reading ${db}/${VALIDATE_DDOC_ID} failed: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
  const found = (detail: string): Finding => ({ id: VALIDATE_DDOC_ID, kind: 'validation', revs: res.status === 200 ? [String(res.body._rev)] : [], detail });
  if (res.status === 404) return want === null ? null : found('missing: the configured protection is validate');
  if (want === null) return found('present, but the configured protection is audit');
  return sameDesignDoc(res.body, want) ? null : found("not couchlog's validation for this database");
}

/** What is wrong with one document, by the database's rules (nothing: intact). */
export function judge(row: ChangeRow, signingKey: string | null, corrections = false): FindingKind[] {
  const out: FindingKind[] = [];
  if (row.changes.length > 1) out.push('branched');
  if (signingKey === null && corrections) return out;
  if (signingKey === null) {
    if (row.deleted) out.push('deleted');
    else if (row.changes.some((c) => !c.rev.startsWith('1-'))) out.push('modified');
    return out;
  }
  const doc = row.doc ?? { _id: row.id, _rev: row.changes[0]?.rev, ...(row.deleted ? { _deleted: true } : {}) };
  const check = checkSignature(doc, signingKey);
  if (check === 'missing') out.push('unsigned');
  else if (check === 'invalid') out.push('bad-signature');
  // Unbound (before 2026-12): possibly an earlier version written again; `couchlog audit --resign` once after the upgrade.
  else if (check === 'old-format') out.push('old-signature');
  return out;
}

export function totalFindings(audits: readonly DbAudit[]): number {
  return audits.reduce((n, a) => n + FINDING_KINDS.reduce((m, k) => m + a.counts[k], 0), 0);
}
