// shipper/doc-id.ts: deterministic document ids, so a line sent twice is stored once.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { docId, sourceKey, withId } from '../../../shipper/doc-id.js';

describe('document ids', () => {
  const key = sourceKey('/var/log/fail2ban.log', 0);

  test('the same line at the same place of the same source: the same id, every time', () => {
    assert.equal(docId(key, 1234, 'a line'), docId(sourceKey('/var/log/fail2ban.log', 0), 1234, 'a line'));
    assert.match(docId(key, 1234, 'a line'), /^[0-9a-f]{40}$/);
  });

  test('any difference (source, generation, offset, content) gives another id', () => {
    const ids = new Set([
      docId(key, 1234, 'a line'),
      docId(sourceKey('/var/log/other.log', 0), 1234, 'a line'),
      docId(sourceKey('/var/log/fail2ban.log', 1), 1234, 'a line'),
      docId(key, 1235, 'a line'),
      docId(key, 1234, 'a line!'),
      docId(key, 1234, ['a line']),
      docId(key, 1234, ['a', 'line']),
    ]);
    assert.equal(ids.size, 7);
  });

  test('ids sort by offset within a source (documents stay in file order in _all_docs)', () => {
    const ids = [5, 100, 4096, 1e9].map((o) => docId(key, o, `line at ${o}`));
    assert.deepEqual([...ids].sort(), ids);
  });

  test('withId puts _id first and keeps the rest of the JSON as written', () => {
    assert.equal(withId('{"a":1,"big":12345678901234567890}', 'x'), '{"_id":"x","a":1,"big":12345678901234567890}');
    assert.equal(withId('{}', 'x'), '{"_id":"x"}');
    assert.equal(withId('{ }', 'x'), '{"_id":"x"}');
    assert.equal(withId('{ "a" : 1 }', 'x'), '{"_id":"x","a" : 1 }');
    assert.deepEqual(JSON.parse(withId('{"q":"\\"}"}', 'i"d')), { _id: 'i"d', q: '"}' });
  });
});
