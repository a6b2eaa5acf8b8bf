// Signatures of the correlated records, for log_correlated under `audit`
// protection: the correlator signs every document it writes (records,
// corrections and deletion tombstones) with a key only it and the admin
// hold; `couchlog audit` recomputes them. Anyone else who writes to the
// database (a member account, or someone with the writer's password) cannot
// produce a valid signature, so a forged or altered record shows.
//
// What must stay true:
//  - the signed bytes are a canonical form of the stored document: keys
//    sorted at every depth (safe-stable-stringify), CouchDB's `_rev` and the
//    signature itself left out, `_id` and `_deleted` included (a record
//    cannot be moved to another id, nor a tombstone turned into a record);
//  - both sides compute it from parsed JSON, so whitespace and key order as
//    CouchDB returns them do not matter; numbers survive a JSON round trip;
//  - every field is covered, `__proto__` too: JSON.parse makes it an own
//    field, and copying it into a plain object would set the copy's
//    prototype instead (the field would drop out of what is signed).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { stringify } from 'safe-stable-stringify';

/** The field holding a record's signature: `hmac-sha256:<base64url>`. */
export const SIGNATURE_FIELD = 'signature';
const PREFIX = 'hmac-sha256:';

function canonical(doc: Record<string, unknown>): string {
  // No prototype: `__proto__` is then a field like any other (see above).
  const rest: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const k in doc) if (k !== '_rev' && k !== SIGNATURE_FIELD) rest[k] = doc[k];
  return stringify(rest) ?? '';
}

export function signRecord(doc: Record<string, unknown>, key: string): string {
  return PREFIX + createHmac('sha256', key).update(canonical(doc)).digest('base64url');
}

export type SignatureCheck = 'valid' | 'missing' | 'invalid';

export function checkSignature(doc: Record<string, unknown>, key: string): SignatureCheck {
  const given = doc[SIGNATURE_FIELD];
  if (typeof given !== 'string') return 'missing';
  const expected = Buffer.from(signRecord(doc, key));
  const actual = Buffer.from(given);
  return actual.length === expected.length && timingSafeEqual(actual, expected) ? 'valid' : 'invalid';
}
