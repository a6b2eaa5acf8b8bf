// validate_doc_update of every log_<app> database. It runs inside CouchDB's
// JavaScript engine (SpiderMonkey 1.8.5 on older CouchDB 3 releases), so it
// must stay ES5: `var`, `function`, no arrows, no template strings.
// test/unit/design-docs/index.test.ts parses the serialized source as ES5.

// A document id that exists already is refused with a reason starting with
// lib/couch/bulk-results.ts's EXISTS_REASON_PREFIX, spelled out below.
export { EXISTS_REASON_PREFIX } from '../lib/couch/bulk-results.js';

interface UserCtx {
  name: string | null;
  roles: string[];
}
interface Doc {
  _id: string;
  _rev?: string;
  _deleted?: boolean;
  [key: string]: unknown;
}

export function appendOnly(newDoc: Doc, oldDoc: Doc | null, userCtx: UserCtx): void {
  // Server and database admins keep full control (retention, GDPR erasure).
  if (userCtx.roles.indexOf('_admin') !== -1) {
    return;
  }
  // Readers are members too (CouchDB has no read-only membership): only the
  // log_writer role may add documents. Keep in step with WRITER_ROLE.
  if (userCtx.roles.indexOf('log_writer') === -1) {
    throw { forbidden: 'only users with the log_writer role may add log documents' };
  }
  if (newDoc._id.indexOf('_design/') === 0) {
    throw { forbidden: 'only admins may write design documents' };
  }
  if (newDoc._deleted) {
    throw { forbidden: 'log databases are append-only: documents cannot be deleted' };
  }
  if (oldDoc) {
    throw { forbidden: 'conflict: document ' + newDoc._id + ' exists and log databases are append-only' };
  }
  // A new document written interactively reaches validation without a
  // revision (CouchDB assigns it afterwards); one with a revision is an
  // update or a replicated write (new_edits=false). The latter gets oldDoc
  // null when its revision history does not meet the stored one, so the
  // check above alone let a forged branch (e.g. 2-fff... over 1-abc...)
  // win over the stored document.
  if (newDoc._rev !== undefined) {
    throw { forbidden: 'log databases are append-only: documents cannot carry a revision (an update, or new_edits=false)' };
  }
}

/**
 * validate_doc_update of log_correlated: the correlator's records. Only the
 * correlator's account (role log_correlator) writes them, and it may update
 * and delete them: a record decided early is provisional and corrected when
 * a late partner arrives. The ingress's writer and readers may not touch them.
 */
export function correlatorOnly(newDoc: Doc, oldDoc: Doc | null, userCtx: UserCtx): void {
  if (userCtx.roles.indexOf('_admin') !== -1) {
    return;
  }
  // Keep in step with CORRELATOR_ROLE.
  if (userCtx.roles.indexOf('log_correlator') === -1) {
    throw { forbidden: 'only the correlator (role log_correlator) may write correlated records' };
  }
  if (newDoc._id.indexOf('_design/') === 0) {
    throw { forbidden: 'only admins may write design documents' };
  }
  if (oldDoc && newDoc._deleted !== true && typeof newDoc.revision === 'number' && typeof oldDoc.revision === 'number' && newDoc.revision < oldDoc.revision) {
    throw { forbidden: 'a correlated record is only replaced by a later revision' };
  }
}
