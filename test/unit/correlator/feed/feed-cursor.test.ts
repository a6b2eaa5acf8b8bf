// FeedCursor numbers the changes of one feed. The numbers go into the
// checkpoint and the engine's snapshot, so a restored cursor must go on
// exactly where the saved one stopped: a gap or a repeat would make the
// engine and the feed disagree about which change is which.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FeedCursor } from '../../../../correlator/feed/feed-cursor.js';

test('indexes are consecutive, and since follows the last change taken', () => {
  const c = new FeedCursor('0');
  assert.equal(c.next, 0);
  assert.equal(c.take('1-a'), 0);
  assert.equal(c.take('2-b'), 1);
  assert.equal(c.since, '2-b');
  assert.equal(c.next, 2);
});

test('the end of a page moves since without taking an index (a page of filtered changes)', () => {
  const c = new FeedCursor('now', 5);
  c.endPage('9-z');
  assert.equal(c.since, '9-z');
  assert.equal(c.next, 5);
  assert.equal(c.take('10-a'), 5);
});

test('a cursor restored from (since, next) continues as the saved one would have', () => {
  const run = new FeedCursor('0');
  const seqs = Array.from({ length: 20 }, (_, i) => `${i + 1}-x`);
  const indexes: number[] = [];
  for (const s of seqs.slice(0, 7)) indexes.push(run.take(s));
  run.endPage('7-x');
  const restored = new FeedCursor(run.since, run.next);
  const continued = new FeedCursor(run.since, run.next);
  for (const s of seqs.slice(7)) {
    const i = restored.take(s);
    assert.equal(i, continued.take(s));
    indexes.push(i);
  }
  assert.deepEqual(
    indexes,
    seqs.map((_, i) => i),
  );
  assert.equal(restored.since, '20-x');
});

test('changes without a sequence (seq_interval) take indexes and leave since to the end of the page', () => {
  const c = new FeedCursor('4-d', 3);
  assert.equal(c.take(null), 3);
  assert.equal(c.take(null), 4);
  assert.equal(c.since, '4-d');
  assert.equal(c.take('7-g'), 5);
  assert.equal(c.since, '7-g');
  c.endPage('7-g');
  assert.equal(c.since, '7-g');
  assert.equal(c.next, 6);
});
