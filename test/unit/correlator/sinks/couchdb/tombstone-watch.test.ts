// correlator/sinks/couchdb/tombstone-watch.ts: each deletion is due once per delay, then forgotten.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TombstoneWatch } from '../../../../../correlator/sinks/couchdb/tombstone-watch.js';
import type { SinkRecord } from '../../../../../correlator/sinks/sink.js';

const del = (id: string): SinkRecord => ({ id, version: 2, deleted: true, record: { revision: 2 } });

test('a deletion is due after each delay, then forgotten; a newer write of the id stops the watch; a failed check comes back at once', () => {
  let now = 1000;
  const w = new TombstoneWatch([100, 500], () => now);
  w.add([del('a'), del('b')]);
  assert.deepEqual(w.takeDue(), []);
  now = 1100;
  assert.deepEqual(
    w.takeDue().map((r) => r.id),
    ['a', 'b'],
  );
  assert.deepEqual(w.takeDue(), [], 'not due again before the next delay');
  w.forget('b');
  now = 1499;
  assert.deepEqual(w.takeDue(), []);
  now = 1500;
  assert.deepEqual(
    w.takeDue().map((r) => r.id),
    ['a'],
  );
  assert.equal(w.size, 0, 'forgotten after the last delay');
  w.retry([del('c')]);
  assert.deepEqual(
    w.takeDue().map((r) => r.id),
    ['c'],
  );
  assert.equal(new TombstoneWatch([]).size, 0);
  const off = new TombstoneWatch([]);
  off.add([del('x')]);
  assert.equal(off.size, 0, 'no delays: nothing watched');
});

test('a check that keeps failing is given up after 60 tries in a row, and says so', () => {
  const w = new TombstoneWatch([100], () => 0);
  const d = del('a');
  let givenUp = 0;
  for (let i = 0; i < 60; i++) givenUp += w.retry([d]);
  assert.equal(givenUp, 0);
  assert.equal(w.size, 1);
  assert.equal(w.retry([d]), 1);
  assert.equal(w.size, 0);
});
