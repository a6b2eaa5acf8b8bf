// Signatures of the correlated records in log_correlated: the correlator
// signs every document it writes (records, corrections and deletion
// tombstones) with a key only it and the admin hold; `couchlog audit` and
// `couchlog backfill` recompute them. Anyone else who writes to the database
// (a member account, or someone with the writer's password) cannot produce
// a valid signature, so a forged or altered record shows.
//
// What must stay true:
//  - the signed bytes are the document's place in its revision tree (the
//    CouchDB revision generation the write creates: the leading number of
//    the `_rev` it is stored under) and a canonical form of its content:
//    keys sorted at every depth (safe-stable-stringify), `_rev` and the
//    signature itself left out, `_id` and `_deleted` included (a record
//    cannot be moved to another id, nor a tombstone turned into a record);
//  - the generation is what stops replays: every earlier signed version of a
//    document stays readable (open_revs, a kept _changes feed), and written
//    again over the current one it lands at a higher generation than it was
//    signed for. Put at its own generation it can only be a second branch,
//    which the audit reports (`branched`). Verifying needs no history: the
//    generation is read from the stored document's own `_rev`;
//  - both sides compute it from parsed JSON, so whitespace and key order as
//    CouchDB returns them do not matter; numbers survive a JSON round trip;
//  - every field is covered, `__proto__` too: JSON.parse makes it an own
//    field, and copying it into a plain object would set the copy's
//    prototype instead (the field would drop out of what is signed);
//  - a signature of the form released before 2026-12 (`hmac-sha256:`, no
//    generation) is recognised as `old-format`, never as valid: it can be
//    replayed anywhere in its document's history.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { stringify } from 'safe-stable-stringify';

/** The field holding a record's signature: `hmac-sha256-g:<base64url>`. */
export const SIGNATURE_FIELD = 'signature';
const PREFIX = 'hmac-sha256-g:';
/** The unbound form (no generation), released until 2026-12. */
const OLD_PREFIX = 'hmac-sha256:';

function canonical(doc: Record<string, unknown>): string {
  // No prototype: `__proto__` is then a field like any other (see above).
  const rest: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const k in doc) if (k !== '_rev' && k !== SIGNATURE_FIELD) rest[k] = doc[k];
  return stringify(rest) ?? '';
}

/** The generation of a CouchDB revision (`3-abc` → 3), or null when it is none. */
export function revGeneration(rev: unknown): number | null {
  const m = typeof rev === 'string' ? /^([1-9]\d{0,8})-/.exec(rev) : null;
  return m ? Number(m[1]) : null;
}

/** The signature of `doc` stored at revision generation `generation` (1 for a new document). */
export function signRecord(doc: Record<string, unknown>, generation: number, key: string): string {
  if (!Number.isSafeInteger(generation) || generation < 1) throw new RangeError(`not a revision generation: ${generation}`);
  // "<generation>\n" before the JSON object: no canonical form starts with a digit, so the two never run together.
  return (
    PREFIX +
    createHmac('sha256', key)
      .update(`${generation}\n${canonical(doc)}`)
      .digest('base64url')
  );
}

/** The old, unbound form: kept to recognise (and re-sign) what was stored before 2026-12. */
export function signRecordUnbound(doc: Record<string, unknown>, key: string): string {
  return OLD_PREFIX + createHmac('sha256', key).update(canonical(doc)).digest('base64url');
}

/**
 * valid: signed by the key for the generation it is stored at (its `_rev`);
 * old-format: an unbound signature that verifies (it may be a replay);
 * missing: no signature; invalid: anything else.
 */
export type SignatureCheck = 'valid' | 'old-format' | 'missing' | 'invalid';

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function checkSignature(doc: Record<string, unknown>, key: string): SignatureCheck {
  const given = doc[SIGNATURE_FIELD];
  if (typeof given !== 'string') return 'missing';
  if (given.startsWith(OLD_PREFIX)) return same(given, signRecordUnbound(doc, key)) ? 'old-format' : 'invalid';
  const generation = revGeneration(doc._rev);
  if (generation === null) return 'invalid';
  return same(given, signRecord(doc, generation, key)) ? 'valid' : 'invalid';
}
