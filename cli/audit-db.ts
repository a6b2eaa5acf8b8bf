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
// signature (lib/audit/record-signature.ts) and has a single leaf.
import { OperationError } from '../lib/errors.js';
import type { AdminClient } from '../lib/couch/admin-client.js';
import { checkSignature } from '../lib/audit/record-signature.js';

export const FINDING_KINDS = ['modified', 'deleted', 'branched', 'unsigned', 'bad-signature'] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];

export interface Finding {
  id: string;
  kind: FindingKind;
  /** The document's leaf revisions. */
  revs: string[];
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
  for (;;) {
    // seq_interval: only last_seq is used, and CouchDB 3 then encodes no sequence for the other changes.
    const qs = new URLSearchParams({ style: 'all_docs', since: audit.lastSeq, limit: String(pageSize), feed: 'normal', seq_interval: String(pageSize) });
    if (o.signingKey !== null) qs.set('include_docs', 'true');
    const res = await admin.call<{ results: ChangeRow[]; last_seq: unknown }>('GET', `/${encodeURIComponent(db)}/_changes?${qs}`);
    // Said as `couchlog report` says it (it was CouchDB's "404 not_found no_db_file").
    if (res.status === 404) throw new OperationError(`database ${db} does not exist (is the app in the config's apps:, and has couchlog setup run?)`);
    if (res.status >= 400) throw new OperationError(`reading ${db}/_changes failed: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    const page = res.body;
    for (const row of page.results) {
      if (row.id.startsWith('_design/')) continue;
      audit.checked++;
      for (const kind of judge(row, o.signingKey, o.corrections)) {
        audit.counts[kind]++;
        if (audit.findings.length < maxListed) audit.findings.push({ id: row.id, kind, revs: row.changes.map((c) => c.rev) });
      }
    }
    audit.lastSeq = typeof page.last_seq === 'string' ? page.last_seq : JSON.stringify(page.last_seq);
    if (page.results.length < pageSize) return audit;
  }
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
  const doc = row.doc ?? { _id: row.id, ...(row.deleted ? { _deleted: true } : {}) };
  const check = checkSignature(doc, signingKey);
  if (check === 'missing') out.push('unsigned');
  else if (check === 'invalid') out.push('bad-signature');
  return out;
}

export function totalFindings(audits: readonly DbAudit[]): number {
  return audits.reduce((n, a) => n + FINDING_KINDS.reduce((m, k) => m + a.counts[k], 0), 0);
}
