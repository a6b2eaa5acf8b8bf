// lib/couch/position-witness.ts: which change witnesses a position, how a database is asked for it, and what its answer says.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { holdsWitness, parseWitness, witnessOf, witnessQuery } from '../../../../lib/couch/position-witness.js';

describe('position witness', () => {
  test("is the page's last change with a revision, never a design document", () => {
    assert.deepEqual(
      witnessOf([
        { id: 'a', rev: '1-x' },
        { id: 'b', rev: '2-y' },
        { id: '_design/log', rev: '1-z' },
        { id: 'c', rev: null },
      ]),
      { id: 'b', rev: '2-y' },
    );
    assert.equal(witnessOf([{ id: '_design/log', rev: '1-z' }]), null);
    assert.equal(witnessOf([]), null);
  });

  test('is read from a checkpoint only when whole', () => {
    assert.deepEqual(parseWitness({ id: 'a', rev: '1-x', extra: 1 }), { id: 'a', rev: '1-x' });
    for (const bad of [undefined, null, 'a', { id: 'a' }, { id: '', rev: '1-x' }, { id: 'a', rev: 3 }]) assert.equal(parseWitness(bad), null);
  });

  test('asks every copy for all branches of its document with their histories, the id encoded', () => {
    assert.equal(witnessQuery('log_a/b', { id: 'x/y', rev: '1-x' }), '/log_a%2Fb/x%2Fy?open_revs=all&revs=true&r=3');
  });

  test('is held when a branch is its revision or has it in its history (superseded, deleted); a missing document is not; an answer that cannot say throws', () => {
    const w = { id: 'a', rev: '2-b' };
    const branch = (rev: string, ids: string[], deleted = false) => ({
      ok: { _id: 'a', _rev: rev, ...(deleted && { _deleted: true }), _revisions: { start: Number.parseInt(rev, 10), ids } },
    });
    assert.equal(holdsWitness('db', w, 200, [branch('2-b', ['b', 'a'])]), true);
    assert.equal(holdsWitness('db', w, 200, [branch('4-d', ['d', 'c', 'b', 'a'], true)]), true, 'edited, then deleted since');
    assert.equal(holdsWitness('db', w, 200, [branch('2-z', ['z', 'a']), branch('3-c', ['c', 'b', 'a'])]), true, 'on another branch');
    assert.equal(holdsWitness('db', w, 200, [branch('2-z', ['z', 'a'])]), false, 'the same id with another history');
    assert.equal(holdsWitness('db', w, 200, [{ missing: '2-b' }]), false);
    assert.equal(holdsWitness('db', w, 404, { error: 'not_found', reason: 'missing' }), false);
    for (const [status, body] of [
      [404, { error: 'not_found', reason: 'Database does not exist.' }],
      [401, { error: 'unauthorized' }],
      [500, {}],
      [200, null],
      [200, {}],
    ] as const)
      assert.throws(() => holdsWitness('db', w, status, body), /asking db for a 2-b/);
  });
});
