// The signatures `couchlog audit` checks on log_correlated (protection:
// audit). A form that left a field out would let someone change it without
// the audit noticing; a form that changed between releases would flag every
// stored record. Checked: a signature made by the released form still
// verifies; key order, whitespace and _rev do not matter; changing, adding
// or removing any field, at any depth, `__proto__` included, does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkSignature, signRecord, SIGNATURE_FIELD } from '../../../../lib/audit/record-signature.js';
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

test('a signature made by the released canonical form still verifies', () => {
  // Computed with the form as released (2026-12): stored records must stay valid.
  assert.equal(signRecord(DOC, KEY), 'hmac-sha256:X22RrA8fs00bxyNcAz9gW7v-RCEiRSV1a824Dy_Bp-c');
});

test('key order, whitespace, _rev and the signature field itself do not matter', () => {
  const signed = { ...DOC, [SIGNATURE_FIELD]: signRecord(DOC, KEY) };
  const reordered = JSON.parse(JSON.stringify(Object.fromEntries(Object.entries(signed).reverse()), null, 2)) as Record<string, unknown>;
  reordered._rev = '7-def';
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
  const signed = reparsed(put(withProto, SIGNATURE_FIELD, signRecord(withProto, KEY)));
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
