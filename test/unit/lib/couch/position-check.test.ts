// lib/couch/position-check.ts: when a follower checks its position, which witness it saves, and what makes it rewind.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PositionCheck, type PositionProbe } from '../../../../lib/couch/position-check.js';
import type { PositionWitness } from '../../../../lib/couch/position-witness.js';

/** A database as a set of revisions, made again by replacing the set; every request is recorded. */
function fakeDatabase(revs: string[], updateSeq: unknown = 10) {
  const db = { revs: new Set(revs), updateSeq, asked: [] as string[], fail: null as Error | null };
  const probe: PositionProbe = {
    holds: async (w: PositionWitness) => {
      db.asked.push(`holds ${w.id}`);
      if (db.fail) throw db.fail;
      return db.revs.has(`${w.id} ${w.rev}`);
    },
    updateSeq: async () => {
      db.asked.push('update_seq');
      if (db.fail) throw db.fail;
      return db.updateSeq;
    },
  };
  return { db, probe };
}

const page = (...ids: string[]) => ids.map((id) => ({ id, rev: `1-${id}` }));

function setup(revs: string[], witness: PositionWitness | null, updateSeq?: unknown) {
  let now = 1_000_000;
  const unknown: unknown[] = [];
  const { db, probe } = fakeDatabase(revs, updateSeq);
  const check = new PositionCheck(
    probe,
    () => now,
    witness,
    (err) => unknown.push(err),
    30_000,
  );
  return { db, check, unknown, later: (ms: number) => (now += ms) };
}

describe('PositionCheck', () => {
  test('checks the first page, then at most every interval, and the next page after a failed read', async () => {
    const { db, check, later } = setup(['a 1-a'], { id: 'a', rev: '1-a' });
    assert.equal(await check.lost('5', false), null);
    assert.equal(await check.lost('5', false), null);
    later(29_999);
    assert.equal(await check.lost('5', false), null);
    assert.deepEqual(db.asked, ['holds a']);
    later(1);
    await check.lost('5', false);
    check.failed();
    await check.lost('5', false);
    assert.deepEqual(db.asked, ['holds a', 'holds a', 'holds a']);
    assert.equal(await check.lost(null, true), null, 'at the start of the feed there is nothing to check');
    assert.equal(db.asked.length, 3);
  });

  test('a database made again between two checks is found at the next one: a page read meanwhile never becomes the witness unchecked', async () => {
    const { db, check, later } = setup(['a 1-a', 'b 1-b'], null);
    check.read(page('a'));
    assert.deepEqual(check.witness, { id: 'a', rev: '1-a' }, 'no witness yet: the first page gives it');
    assert.equal(await check.lost('1', false), null);
    check.read(page('b'));
    assert.deepEqual(check.witness, { id: 'a', rev: '1-a' }, 'b waits for a check');
    later(30_000);
    assert.equal(await check.lost('2', false), null);
    assert.deepEqual(check.witness, { id: 'b', rev: '1-b' }, 'a held: b was read from this database');
    // Deleted and made again, and read past where it stood before the next check.
    db.revs = new Set(['x 1-x', 'y 1-y']);
    check.read(page('x', 'y'));
    assert.deepEqual(check.witness, { id: 'b', rev: '1-b' });
    later(30_000);
    assert.deepEqual(await check.lost('4', false), { missing: { id: 'b', rev: '1-b' } });
    check.reset();
    assert.equal(check.witness, null);
    check.read(page('x'));
    assert.deepEqual(check.witness, { id: 'x', rev: '1-x' });
  });

  test('a revision called missing is asked for again once the database answers a read: one storage error does not rewind', async () => {
    const { db, check, later } = setup(['a 1-a'], { id: 'a', rev: '1-a' });
    let glitches = 1;
    const holds = db.revs.has.bind(db.revs);
    db.revs.has = (rev: string) => (glitches-- > 0 ? false : holds(rev));
    assert.equal(await check.lost('5', false), null);
    assert.deepEqual(db.asked, ['holds a', 'update_seq', 'holds a']);
    later(30_000);
    db.revs = new Set();
    assert.deepEqual(await check.lost('5', false), { missing: { id: 'a', rev: '1-a' } });
  });

  test('design documents never witness (setup writes the same ones, with the same revisions, into a database made again)', () => {
    const { check } = setup([], null);
    check.read([{ id: '_design/log', rev: '1-d' }]);
    assert.equal(check.witness, null);
    check.read([
      { id: 'a', rev: '1-a' },
      { id: '_design/log', rev: '1-d' },
    ]);
    assert.deepEqual(check.witness, { id: 'a', rev: '1-a' });
  });

  test('a check that cannot be made never rewinds: it is reported and made again at the next interval', async () => {
    const { db, check, unknown, later } = setup([], { id: 'a', rev: '1-a' });
    db.fail = new Error('CouchDB is unavailable');
    assert.equal(await check.lost('5', true), null);
    assert.equal(unknown.length, 1);
    assert.equal(await check.lost('5', true), null);
    assert.equal(unknown.length, 1, 'not before the interval');
    later(30_000);
    db.fail = null;
    assert.deepEqual(await check.lost('5', true), { missing: { id: 'a', rev: '1-a' } });
  });

  test('without a witness (a checkpoint saved before them): a plain position past update_seq on an empty page', async () => {
    const ahead = setup([], null, 3);
    assert.equal(await ahead.check.lost('5', false), null, 'not on a page with changes');
    ahead.later(30_000);
    assert.deepEqual(await ahead.check.lost('5', true), { update_seq: 3 });
    const behind = setup([], null, 9);
    assert.equal(await behind.check.lost('5', true), null);
    const opaque = setup([], null, '3-g1AAA');
    assert.equal(await opaque.check.lost('12-g1AAA', true), null, "CouchDB 3's sequences are not compared");
    assert.deepEqual(opaque.db.asked, []);
  });
});
