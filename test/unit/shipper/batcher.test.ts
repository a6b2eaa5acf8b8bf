// shipper/batcher.ts: lines into requests bounded by documents and bytes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Batcher } from '../../../shipper/batcher.js';

describe('batches', () => {
  test('closed at the document count or the size, whichever comes first; the rest on flush', () => {
    const b = new Batcher<{ json: string }>(3, 25);
    for (const json of ['aaaa', 'bbbb', 'cccc', 'dddd', 'x'.repeat(30), 'eeee']) b.add({ json });
    assert.deepEqual(
      b.take().map((batch) => batch.map((d) => d.json.length)),
      [
        [4, 4, 4],
        [4, 30],
      ],
    );
    assert.deepEqual(b.take(), []);
    assert.deepEqual(
      b.take(true).map((batch) => batch.length),
      [1],
    );
    assert.deepEqual(b.take(true), []);
  });
});
