// Unit tests of lib/config/duration.ts: durations as {value, unit} or as
// the string people type first, and the message for one that is neither.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { duration } from '../../../../lib/config/duration.js';

const schema = z.object({ d: duration(['ms', 's', 'm', 'h'], z.number().min(0), 24, 'h') }).strict();

test('{value, unit}, a string with or without a space, and the default', () => {
  assert.deepEqual(schema.parse({ d: { value: 5, unit: 'm' } }).d, { value: 5, unit: 'm' });
  assert.deepEqual(schema.parse({ d: '24h' }).d, { value: 24, unit: 'h' });
  assert.deepEqual(schema.parse({ d: ' 1.5 s ' }).d, { value: 1.5, unit: 's' });
  assert.deepEqual(schema.parse({ d: '500ms' }).d, { value: 500, unit: 'ms' });
  assert.deepEqual(schema.parse({}).d, { value: 24, unit: 'h' });
  assert.deepEqual(schema.parse({ d: { unit: 'm' } }).d, { value: 24, unit: 'm' });
});

test('a string that is not a duration says what one looks like', () => {
  // Found by a newcomer's test: "24 hours" gave "Expected object, received string".
  for (const bad of ['24 hours', '1d', '2x', '', '-5m']) {
    const r = schema.safeParse({ d: bad });
    assert.equal(r.success, false, bad);
    assert.match(r.error!.issues[0]!.message, /is not a duration: a number and a unit \(ms, s, m, h\), e\.g\. "24h", or \{value: 24, unit: h\}/, bad);
    assert.deepEqual(r.error!.issues[0]!.path, ['d']);
  }
  assert.equal(schema.safeParse({ d: { value: 1, unit: 'd' } }).success, false);
  assert.equal(schema.safeParse({ d: { value: 1, unit: 'h', extra: 1 } }).success, false);
});
