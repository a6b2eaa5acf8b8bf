// correlator/sinks/couchdb/tombstone-watch.ts: each deletion is checked once per delay, then forgotten;
// a check is taken once until reported back; failures count across stages; a replaced deletion stays replaced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TombstoneWatch } from '../../../../../correlator/sinks/couchdb/tombstone-watch.js';
import type { SinkRecord } from '../../../../../correlator/sinks/sink.js';

const del = (id: string, revision = 2): SinkRecord => ({ id, version: revision, deleted: true, record: { revision } });
const ids = (recs: SinkRecord[]) => recs.map((r) => r.id);

test('a deletion is due after each delay once the check before was made, then forgotten', () => {
  let now = 1000;
  const w = new TombstoneWatch([100, 500], () => now);
  w.add([del('a'), del('b')]);
  assert.deepEqual(w.takeDue(), []);
  now = 1100;
  const first = w.takeDue();
  assert.deepEqual(ids(first), ['a', 'b']);
  assert.deepEqual(w.takeDue(), [], 'taken once while in flight');
  w.checked(first);
  now = 1499;
  assert.deepEqual(w.takeDue(), [], 'not due again before the next delay');
  now = 1500;
  const second = w.takeDue();
  assert.deepEqual(ids(second), ['a', 'b']);
  assert.equal(w.size, 2, 'watched while the last check is in flight');
  w.checked(second);
  assert.equal(w.size, 0, 'forgotten after the last delay');
  const off = new TombstoneWatch([]);
  off.add([del('x')]);
  assert.equal(off.size, 0, 'no delays: nothing watched');
});

test('a failed check comes back at once, at the same stage', () => {
  let now = 0;
  const w = new TombstoneWatch([100, 500], () => now);
  w.add([del('a')]);
  now = 100;
  assert.equal(w.retry(w.takeDue()), 0);
  assert.deepEqual(ids(w.takeDue()), ['a'], 'due again at once');
});

test('a check that keeps failing is given up after 60 tries in a row, at whatever stage, and says so', () => {
  let now = 0;
  const w = new TombstoneWatch([100], () => now);
  w.add([del('a')]);
  now = 100;
  let givenUp = 0;
  for (let i = 0; i < 60; i++) givenUp += w.retry(w.takeDue());
  assert.equal(givenUp, 0);
  assert.equal(w.size, 1);
  assert.equal(w.retry(w.takeDue()), 1);
  assert.equal(w.size, 0);
  // A check that works resets the count.
  const v = new TombstoneWatch([100, 200], () => now);
  v.add([del('b')]);
  now = 200;
  for (let i = 0; i < 59; i++) v.retry(v.takeDue());
  v.checked(v.takeDue());
  now = 1000;
  for (let i = 0; i < 59; i++) assert.equal(v.retry(v.takeDue()), 0);
  assert.equal(v.size, 1);
});

test('a report about a deletion replaced meanwhile (a later deletion of the id) is ignored', () => {
  let now = 0;
  const w = new TombstoneWatch([100, 500], () => now);
  const older = del('a', 2);
  w.add([older]);
  now = 100;
  const taken = w.takeDue();
  const newer = del('a', 4);
  w.add([newer]);
  w.retry(taken);
  w.checked(taken);
  assert.deepEqual(w.takeDue(), [], 'the newer deletion keeps its own first delay');
  now = 200;
  assert.deepEqual(w.takeDue(), [newer]);
});
