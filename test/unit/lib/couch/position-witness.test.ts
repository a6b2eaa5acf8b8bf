// lib/couch/position-witness.ts: which change witnesses a position, and what an answer to _revs_diff says.
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

  test('asks _revs_diff for exactly its revision, its id encoded in the body only', () => {
    const q = witnessQuery('log_a/b', { id: 'x/y', rev: '1-x' });
    assert.equal(q.path, '/log_a%2Fb/_revs_diff');
    assert.deepEqual(JSON.parse(q.body), { 'x/y': ['1-x'] });
  });

  test('is held unless the answer names its revision missing; an answer that cannot say throws', () => {
    const w = { id: 'a', rev: '1-x' };
    assert.equal(holdsWitness('db', w, 200, {}), true);
    assert.equal(holdsWitness('db', w, 200, { a: { missing: ['1-x'] } }), false);
    assert.equal(holdsWitness('db', w, 200, { a: { missing: ['1-other'] } }), true);
    for (const [status, body] of [
      [404, { error: 'not_found' }],
      [500, {}],
      [200, null],
      [200, []],
    ] as const)
      assert.throws(() => holdsWitness('db', w, status, body), /asking db for a 1-x/);
  });
});
