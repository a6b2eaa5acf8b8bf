// Unit tests of correlator/sinks/record-line.ts: the JSON line of the file
// and stdout sinks, which readers key by `id`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { recordLine } from '../../../../correlator/sinks/record-line.js';

test('the line is `id` first, then the record, one line', () => {
  const line = recordLine({ id: 'A-1', record: { timestamp: 't', keepalives: 1, revision: 1 }, version: 1, deleted: false });
  assert.equal(line, '{"id":"A-1","timestamp":"t","keepalives":1,"revision":1}\n');
});

test('`id` is the record id even when the record holds an `id` of its own', () => {
  // Two requests logged with "id":"req-42" came out as two lines of one id: one record lost to readers.
  const line = recordLine({ id: 'A-2', record: { id: 'req-42', path: '/' }, version: 1, deleted: false });
  assert.deepEqual(JSON.parse(line), { id: 'A-2', path: '/' });
  assert.ok(line.startsWith('{"id":"A-2",'));
});
