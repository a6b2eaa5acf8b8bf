// Generated ids: UUIDv7 as 32 hex characters, unique and strictly
// increasing even when many are made within one millisecond.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newDocId } from '../../../../server/write/doc-id.js';

test('UUIDv7 without dashes, unique, strictly increasing, carrying the time', () => {
  const before = Date.now();
  const ids = Array.from({ length: 20_000 }, newDocId);
  const after = Date.now();
  for (const id of ids) assert.match(id, /^[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}$/);
  assert.equal(new Set(ids).size, ids.length);
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} then ${ids[i]}`);
  const ms = (id: string) => parseInt(id.slice(0, 12), 16);
  assert.ok(ms(ids[0]!) >= before && ms(ids[0]!) <= after + 1);
  assert.ok(ms(ids.at(-1)!) >= before && ms(ids.at(-1)!) <= after + 1);
});
