// The append-only rules of the write routes. A request is refused whole if
// any of its documents breaks one, so nothing is ever half-written. The
// validate_doc_update in every log database enforces the same in CouchDB.
import { badRequest, docValidation, forbidden, tooLarge } from '../../lib/errors.js';
import { TAGGED_ID } from '../../lib/tagged-id.js';
import { isWellFormed } from '../../lib/unicode.js';

export type LogDoc = Record<string, unknown> & { _id?: string };

export interface DocRules {
  maxDepth: number;
  maxDocs: number;
  /** ingress.max_document_bytes: see checkDocSizes. */
  maxDocBytes: number;
}

/** Special fields a writer may set: only `_id` (shippers use it for idempotent retries). */
const MAX_ID_LENGTH = 512;

/** Deepest nesting of arrays/objects in `value`, without recursion. */
export function jsonDepth(value: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth > max) max = depth;
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return max;
}

export function validateDoc(doc: unknown, rules: DocRules, label: string): LogDoc {
  checkDoc(doc, label, -1);
  if (jsonDepth(doc) > rules.maxDepth) {
    throw badRequest('INGRESS_TOO_DEEP', `${label} is nested deeper than ${rules.maxDepth} levels`);
  }
  return doc as LogDoc;
}

/**
 * validateDoc for each of a request's documents, labelled "`what` i". With
 * `depthScanned` the caller's text scan (tooDeepAt) has already bounded
 * every document to `rules.maxDepth` (the body's own levels added to the
 * limit), so the walk of each document's values, which could then never
 * refuse anything, is left out. Labels are only built for an error.
 */
export function validateDocs(values: unknown[], rules: DocRules, what: string, depthScanned: boolean): LogDoc[] {
  for (let i = 0; i < values.length; i++) {
    const doc = values[i];
    checkDoc(doc, what, i);
    if (!depthScanned && jsonDepth(doc) > rules.maxDepth) {
      throw badRequest('INGRESS_TOO_DEEP', `${what} ${i} is nested deeper than ${rules.maxDepth} levels`);
    }
  }
  return values as LogDoc[];
}

/** An object, with no special field but a valid `_id`; named `label`, or "`label` `index`" for an index >= 0. */
function checkDoc(doc: unknown, label: string, index: number): asserts doc is LogDoc {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw badRequest('INGRESS_DOC_NOT_OBJECT', `${labelOf(label, index)} must be a JSON object`);
  }
  const d = doc as LogDoc;
  for (const key of Object.keys(d)) {
    if (key.charCodeAt(0) === 0x5f) checkSpecialField(d, key, label, index);
  }
}

function labelOf(label: string, index: number): string {
  return index < 0 ? label : `${label} ${index}`;
}

function checkSpecialField(d: LogDoc, key: string, label: string, index: number): void {
  switch (key) {
    case '_id': {
      const id = d._id;
      if (typeof id !== 'string' || id === '') throw badRequest('INGRESS_BAD_ID', `${labelOf(label, index)}: _id must be a non-empty string`);
      if (id.length > MAX_ID_LENGTH) throw badRequest('INGRESS_BAD_ID', `${labelOf(label, index)}: _id is longer than ${MAX_ID_LENGTH} characters`);
      // A lone surrogate is no Unicode: CouchDB would store something else
      // than the client sent, and the answer could not be encoded.
      if (!isWellFormed(id)) throw badRequest('INGRESS_BAD_ID', `${labelOf(label, index)}: _id is not valid Unicode (lone surrogate)`);
      if (TAGGED_ID.test(id))
        throw badRequest(
          'INGRESS_BAD_ID',
          `${labelOf(label, index)}: an _id ending in "~" and 24 hex digits is the ingress's own (a document whose id was taken)`,
        );
      if (id.startsWith('_')) {
        throw forbidden('INGRESS_RESERVED_ID', `${labelOf(label, index)}: _id may not start with "_" (design and local documents are admin-only)`);
      }
      return;
    }
    case '_rev':
      throw forbidden('INGRESS_DOC_HAS_REV', `${labelOf(label, index)}: _rev is not allowed: log databases are append-only, documents cannot be updated`);
    case '_deleted':
      throw forbidden('INGRESS_DOC_DELETED', `${labelOf(label, index)}: _deleted is not allowed: log databases are append-only, documents cannot be deleted`);
    case '_attachments':
      throw forbidden('INGRESS_DOC_ATTACHMENTS', `${labelOf(label, index)}: _attachments are not accepted by the ingress`);
    default:
      throw docValidation('INGRESS_SPECIAL_FIELD', `${labelOf(label, index)}: Bad special document member: ${key}`);
  }
}

export function checkCount(count: number, rules: Pick<DocRules, 'maxDocs'>): void {
  if (count > rules.maxDocs) {
    throw tooLarge('INGRESS_TOO_MANY_DOCS', `${count} documents in one request; the limit is ${rules.maxDocs}`);
  }
}

/**
 * Refuses a request holding a document larger than `rules.maxDocBytes` as
 * stored (its JSON, _id and received_at included): CouchDB 3 would refuse
 * the whole _bulk_docs it is in, a group-commit batch of other callers'
 * documents included. `bodyChars` is the request's text length: a document
 * cannot be larger than its body plus what stamping adds, so the common body
 * costs no serialising here.
 */
export function checkDocSizes(docs: readonly object[], bodyChars: number, rules: Pick<DocRules, 'maxDocBytes'>): void {
  // UTF-8 takes at most 3 bytes per UTF-16 unit; stamping adds an _id (at most MAX_ID_LENGTH) and received_at.
  if (bodyChars * 3 + MAX_ID_LENGTH + 128 <= rules.maxDocBytes) return;
  docs.forEach((doc, i) => {
    const bytes = Buffer.byteLength(JSON.stringify(doc));
    if (bytes > rules.maxDocBytes) {
      const which = docs.length === 1 ? 'the document' : `document ${i + 1}`;
      throw tooLarge('INGRESS_DOC_TOO_LARGE', `${which} is ${bytes} bytes as stored; the limit is ${rules.maxDocBytes} (ingress.max_document_bytes)`);
    }
  });
}

/** As checkCount, for a count that stopped once past the limit (before parsing: see parse-body's valuesAt). */
export function checkCountBeforeParsing(counted: number, rules: Pick<DocRules, 'maxDocs'>): void {
  if (counted > rules.maxDocs) {
    throw tooLarge('INGRESS_TOO_MANY_DOCS', `more than ${rules.maxDocs} documents in one request; the limit is ${rules.maxDocs}`);
  }
}

/** The body of `POST /{db}/_bulk_docs`, as CouchDB defines it, minus what would rewrite history. */
export function bulkDocsOf(body: unknown): unknown[] {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('INGRESS_BAD_BULK', 'the _bulk_docs body must be an object with a "docs" array');
  }
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) {
    if (key === 'docs') continue;
    if (key === 'new_edits') {
      if (b.new_edits === false) {
        throw forbidden('INGRESS_NEW_EDITS', 'new_edits:false is not allowed: it would let a writer inject revisions');
      }
      if (b.new_edits !== true) throw badRequest('INGRESS_BAD_BULK', 'new_edits must be a boolean');
      continue;
    }
    throw badRequest('INGRESS_BAD_BULK', `unsupported _bulk_docs field: ${key}`);
  }
  if (!Array.isArray(b.docs)) throw badRequest('INGRESS_BAD_BULK', 'the _bulk_docs body must have a "docs" array');
  return b.docs;
}

/** A \uD800-\uDFFF escape in JSON text: the only way a lone surrogate gets into a parsed value. */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

/**
 * A string (key or value) of `value`, parsed from `text`, that is not valid
 * Unicode (a lone surrogate), with the key it is the value of, or null.
 * CouchDB 3 refuses the whole _bulk_docs such a string is in ("invalid
 * UTF-8 JSON"), and group commit puts several clients' documents in one:
 * one client's bad string made the others' writes fail with 400, which HEC
 * clients and the shipper take as refused for good. Only text with a
 * surrogate escape is walked.
 */
export function loneSurrogateIn(text: string, value: unknown): { text: string; key: string | null } | null {
  if (!SURROGATE_ESCAPE.test(text)) return null;
  const stack: Array<[unknown, string | null]> = [[value, null]];
  while (stack.length > 0) {
    const [node, key] = stack.pop()!;
    if (typeof node === 'string') {
      if (!isWellFormed(node)) return { text: node, key };
    } else if (node !== null && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if (!isWellFormed(k)) return { text: k, key: null };
        stack.push([v, Array.isArray(node) ? null : k]);
      }
    }
  }
  return null;
}

/** The 400 for a lone surrogate: INGRESS_BAD_ID for an _id (as validateDoc says), else INGRESS_INVALID_JSON. */
export function loneSurrogateError(found: { key: string | null }, where: string) {
  return found.key === '_id'
    ? badRequest('INGRESS_BAD_ID', `${where}: _id is not valid Unicode (lone surrogate)`)
    : badRequest('INGRESS_INVALID_JSON', `${where} holds a string that is not valid Unicode (a lone surrogate \\uD800-\\uDFFF)`);
}
