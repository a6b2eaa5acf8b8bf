// The signatures `couchlog audit` checks on log_correlated (protection:
// audit). A form that left a field out would let someone change it without
// the audit noticing; a form that changed between releases would flag every
// stored record. Checked: the bound form is pinned, and a signature of the
// form released before 2026-12 (unbound) is recognised as old-format, never
// as valid; the signature holds only at the revision generation it was made
// for (a replayed earlier version lands higher); key order and whitespace do
// not matter; changing, adding or removing any field, at any depth,
// `__proto__` included, does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkSignature, revGeneration, signRecord, signRecordUnbound, SIGNATURE_FIELD } from '../../../../lib/audit/record-signature.js';
import { mulberry32 } from '../../../../bench/prng.js';

const KEY = 'k'.repeat(32);
const DOC = {
  _id: 'A-http-1',
  _rev: '1-abc',
  timestamp: '2024-01-01T00:00:00.123Z',
  src_ip: '203.0.113.7',
  src_port: 51234,
  correlated: true,
  keepalives: 2,
  nested: { z: 1, a: [1, 'x', null] },
  revision: 1,
  decided_at: '2024-01-01T00:00:01.000Z',
};

test('the unbound form released before 2026-12 is recognised as old-format, never as valid', () => {
  // Computed with the form as released until 2026-12: `couchlog audit --resign` must recognise what is stored.
  const old = 'hmac-sha256:X22RrA8fs00bxyNcAz9gW7v-RCEiRSV1a824Dy_Bp-c';
  assert.equal(signRecordUnbound(DOC, KEY), old);
  for (const rev of ['1-abc', '5-abc', undefined]) assert.equal(checkSignature({ ...DOC, _rev: rev, [SIGNATURE_FIELD]: old }, KEY), 'old-format', String(rev));
  assert.equal(checkSignature({ ...DOC, keepalives: 3, [SIGNATURE_FIELD]: old }, KEY), 'invalid', 'changed content');
  // Pinned: a change of the bound form would flag every stored record.
  assert.equal(signRecord(DOC, 1, KEY), 'hmac-sha256-g:jbDweGo8g_K_Ye3BkSzHIq572cWIxGW0q2pxpRHA53w');
});

test('a signature holds only at the revision generation it was made for', () => {
  const at2 = { ...DOC, _rev: '2-abc', [SIGNATURE_FIELD]: signRecord(DOC, 2, KEY) };
  assert.equal(checkSignature(at2, KEY), 'valid');
  assert.equal(checkSignature({ ...at2, _rev: '2-fff' }, KEY), 'valid', 'the hash part is not signed: a sibling at 2 is the audit’s `branched`');
  for (const rev of ['1-abc', '3-abc', '12-abc', undefined, 'x-abc', '02-abc'])
    assert.equal(checkSignature({ ...at2, _rev: rev }, KEY), 'invalid', `stored at ${String(rev)}`);
  assert.deepEqual(['1-a', '42-b', '0-c', 'abc', 7, '1234567890-x'].map(revGeneration), [1, 42, null, null, null, null]);
  assert.throws(() => signRecord(DOC, 0, KEY), RangeError);
});

test('key order, whitespace and the signature field itself do not matter', () => {
  const signed = { ...DOC, _rev: '7-def', [SIGNATURE_FIELD]: signRecord(DOC, 7, KEY) };
  const reordered = JSON.parse(JSON.stringify(Object.fromEntries(Object.entries(signed).reverse()), null, 2)) as Record<string, unknown>;
  assert.equal(checkSignature(reordered, KEY), 'valid');
  assert.equal(checkSignature(DOC, KEY), 'missing');
  assert.equal(checkSignature({ ...signed }, 'x'.repeat(32)), 'invalid');
});

/** A copy as CouchDB would hand it back: parsed JSON, where `__proto__` is an own field. */
const reparsed = (doc: Record<string, unknown>) => JSON.parse(JSON.stringify(doc)) as Record<string, unknown>;
const put = (doc: Record<string, unknown>, field: string, value: unknown) =>
  Object.defineProperty(doc, field, { value, enumerable: true, writable: true, configurable: true });

test('changing, adding or removing any field breaks the signature, __proto__ included (seeded)', () => {
  const withProto = JSON.parse(JSON.stringify(DOC).replace(/}$/, ',"__proto__":{"a":1}}')) as Record<string, unknown>;
  assert.ok(Object.hasOwn(withProto, '__proto__'), 'JSON.parse makes __proto__ an own field');
  const signed = reparsed(put(withProto, SIGNATURE_FIELD, signRecord(withProto, 1, KEY)));
  assert.equal(checkSignature(signed, KEY), 'valid');
  const fields = Object.keys(signed).filter((k) => k !== '_rev' && k !== SIGNATURE_FIELD);
  assert.ok(fields.includes('__proto__'));
  const rnd = mulberry32(11);
  for (let i = 0; i < 300; i++) {
    const doc = reparsed(signed);
    const field = i < fields.length ? fields[i]! : fields[Math.floor(rnd() * fields.length)]!;
    const how = i < fields.length ? 0 : rnd();
    if (how < 0.4) put(doc, field, 'tampered');
    else if (how < 0.6) delete doc[field];
    else if (how < 0.8) put(doc, `extra_${i}`, rnd());
    else if (typeof doc[field] === 'object' && doc[field] !== null) put(doc[field] as Record<string, unknown>, 'a', 'nested change');
    else put(doc, field, JSON.stringify(doc[field]));
    assert.equal(checkSignature(doc, KEY), 'invalid', `step ${i}: ${field}, ${how.toFixed(2)}`);
  }
});
