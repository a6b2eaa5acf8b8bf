// Unit tests of server/write/group-commit.ts (GroupCommit) with a fake flush
// function whose batches the test settles by hand. Covered: a lone document
// goes out at once; documents arriving while a batch is in flight are grouped
// into the next one (after maxWaitMs, when maxDocs are queued, or when the
// batch in flight ends); never two documents with the same _id in one batch;
// maxDocs and maxInflight bounds; keys are independent; every caller gets its
// own result; a failing flush rejects exactly the callers of its batch;
// drain(). setTimeout is mocked in every test, so no real time passes.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { GroupCommit, type FlushFn, type GroupCommitOptions } from '../../../../server/write/group-commit.js';
import type { DocResult, WriteTarget, Written } from '../../../../server/write/bulk-writer.js';
import { couchdbRefusal } from '../../../../lib/errors.js';
import { documentTooLarge } from '../../../../server/write/bulk-writer.js';

type IdDoc = { _id: string; [k: string]: unknown };

interface Batch {
  index: number;
  target: WriteTarget;
  docs: IdDoc[];
  ids: string[];
  settled: boolean;
  /** Each doc gets `{ok, id, rev: 'b<batch>-<position>'}`. */
  ok(): void;
  /** `accepted`: CouchDB answered 202 for this batch. */
  resolveWith(results: DocResult[], accepted?: boolean): void;
  fail(err: unknown): void;
}

/** A flush function that records every batch and lets the test settle it. */
class FakeFlush {
  readonly batches: Batch[] = [];
  active = 0;
  maxActive = 0;

  readonly fn: FlushFn = (target, docs) => {
    this.active += 1;
    this.maxActive = Math.max(this.maxActive, this.active);
    const index = this.batches.length;
    return new Promise<Written<DocResult[]>>((resolve, reject) => {
      const batch: Batch = {
        index,
        target,
        docs: [...docs],
        ids: docs.map((d) => d._id),
        settled: false,
        ok: () => batch.resolveWith(docs.map((d, i) => ({ ok: true, id: d._id, rev: revOf(index, i) }))),
        resolveWith: (results, accepted = false) => {
          assert.equal(batch.settled, false, `batch ${index} settled twice`);
          batch.settled = true;
          resolve({ results, accepted });
        },
        fail: (err) => {
          assert.equal(batch.settled, false, `batch ${index} settled twice`);
          batch.settled = true;
          reject(err);
        },
      };
      this.batches.push(batch);
    }).finally(() => {
      this.active -= 1;
    });
  };

  batch(i: number): Batch {
    const b = this.batches[i];
    assert.ok(b, `batch ${i} was not sent (${this.batches.length} sent)`);
    return b;
  }

  sizes(): number[] {
    return this.batches.map((b) => b.docs.length);
  }
}

const revOf = (batch: number, pos: number) => `b${batch}-${pos}`;

/** Lets every pending promise callback run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Tracked<T> {
  state: 'pending' | 'resolved' | 'rejected';
  value?: T;
  error?: unknown;
}
function track<T>(p: Promise<T>): Tracked<T> {
  const t: Tracked<T> = { state: 'pending' };
  p.then(
    (value) => Object.assign(t, { state: 'resolved', value }),
    (error) => Object.assign(t, { state: 'rejected', error }),
  );
  return t;
}

const target = (db = 'log_app'): WriteTarget => ({ db, headers: { authorization: `Basic ${db}` }, asWriter: true });

function setup(t: TestContext, opts: Partial<GroupCommitOptions> = {}) {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const fake = new FakeFlush();
  const gc = new GroupCommit({ maxDocs: 100, maxWaitMs: 50, maxInflight: 4, ...opts }, fake.fn);
  const tgt = target();
  let n = 0;
  /** Submits a fresh document (id given or unique) under key 'k'. */
  const submit = (id = `doc${n++}`, key = 'k', tg: WriteTarget = tgt) => {
    const doc: IdDoc = { _id: id, seq: n++ };
    const written = gc.submit(key, tg, doc);
    return { doc, r: track(written.then((w) => w.results)), accepted: track(written.then((w) => w.accepted)) };
  };
  return { fake, gc, tgt, submit };
}

describe('GroupCommit: when batches go out', () => {
  test('a lone document with nothing in flight is flushed at once', async (t) => {
    const { fake, tgt, submit } = setup(t);
    const a = submit('a');
    assert.equal(fake.batches.length, 1, 'flushed synchronously, no timer');
    assert.deepEqual(fake.batch(0).ids, ['a']);
    assert.equal(fake.batch(0).docs[0], a.doc);
    assert.equal(fake.batch(0).target, tgt);
    await settle();
    assert.equal(a.r.state, 'pending', 'not settled before its batch');
    fake.batch(0).ok();
    await settle();
    assert.deepEqual(a.r, { state: 'resolved', value: { ok: true, id: 'a', rev: revOf(0, 0) } });
  });

  test('after the queue is idle again, the next lone document is again flushed at once', async (t) => {
    const { fake, submit } = setup(t);
    submit('a');
    fake.batch(0).ok();
    await settle();
    const b = submit('b');
    assert.equal(fake.batches.length, 2);
    fake.batch(1).ok();
    await settle();
    assert.equal(b.r.state, 'resolved');
  });

  test('documents submitted while a batch is in flight form the next batch when it ends', async (t) => {
    const { fake, submit } = setup(t, { maxInflight: 1, maxWaitMs: 50 });
    const a = submit('a');
    const rest = [submit('b'), submit('c'), submit('d')];
    assert.equal(fake.batches.length, 1, 'they wait while the slot is busy');
    t.mock.timers.tick(1000);
    await settle();
    assert.equal(fake.batches.length, 1, 'maxInflight 1: even after maxWaitMs');
    fake.batch(0).ok();
    await settle();
    assert.equal(fake.batches.length, 2);
    assert.deepEqual(fake.batch(1).ids, ['b', 'c', 'd']);
    assert.deepEqual(
      fake.batch(1).docs,
      rest.map((s) => s.doc),
    );
    assert.equal(a.r.state, 'resolved');
    fake.batch(1).ok();
    await settle();
    rest.forEach((s, i) => assert.deepEqual(s.r.value, { ok: true, id: s.doc._id, rev: revOf(1, i) }));
  });

  test('with a free slot, documents queued behind a batch go out after maxWaitMs', async (t) => {
    const { fake, submit } = setup(t, { maxInflight: 4, maxWaitMs: 50 });
    submit('a');
    submit('b');
    submit('c');
    assert.equal(fake.batches.length, 1);
    t.mock.timers.tick(49);
    await settle();
    assert.equal(fake.batches.length, 1, 'not before maxWaitMs');
    submit('d'); // does not restart the wait
    t.mock.timers.tick(1);
    await settle();
    assert.equal(fake.batches.length, 2, 'sent at maxWaitMs while the first is still in flight');
    assert.deepEqual(fake.batch(1).ids, ['b', 'c', 'd']);
    assert.equal(fake.batch(0).settled, false);
    fake.batch(0).ok();
    fake.batch(1).ok();
    await settle();
    t.mock.timers.tick(10_000);
    await settle();
    assert.equal(fake.batches.length, 2, 'nothing else was sent');
  });

  test('when the batch in flight ends first, the queued documents go at once (the timer is dropped)', async (t) => {
    const { fake, submit } = setup(t, { maxInflight: 4, maxWaitMs: 50 });
    submit('a');
    const b = submit('b');
    fake.batch(0).ok();
    await settle();
    assert.equal(fake.batches.length, 2, 'no need to wait for the timer');
    assert.deepEqual(fake.batch(1).ids, ['b']);
    fake.batch(1).ok();
    await settle();
    assert.equal(b.r.state, 'resolved');
    t.mock.timers.tick(1000);
    await settle();
    assert.equal(fake.batches.length, 2, 'the dropped timer sends no empty or extra batch');
  });

  test('reaching maxDocs queued sends a batch at once, without waiting for the timer', (t) => {
    const { fake, submit } = setup(t, { maxDocs: 3, maxInflight: 2, maxWaitMs: 50 });
    submit('a');
    submit('b');
    submit('c');
    assert.equal(fake.batches.length, 1);
    submit('d');
    assert.equal(fake.batches.length, 2);
    assert.deepEqual(fake.batch(1).ids, ['b', 'c', 'd']);
  });
});

describe('GroupCommit: batch contents', () => {
  test('never two documents with the same _id in one batch; each gets its own result', async (t) => {
    const { fake, submit } = setup(t, { maxInflight: 1 });
    submit('z');
    const x1 = submit('x');
    const x2 = submit('x');
    const y = submit('y');
    const x3 = submit('x');
    fake.batch(0).ok();
    await settle();
    assert.deepEqual(fake.batch(1).ids, ['x', 'y']);
    assert.equal(fake.batch(1).docs[0], x1.doc, 'the first x goes first');
    fake.batch(1).ok();
    await settle();
    assert.deepEqual(fake.batch(2).ids, ['x']);
    assert.equal(fake.batch(2).docs[0], x2.doc);
    fake.batch(2).ok();
    await settle();
    assert.deepEqual(fake.batch(3).ids, ['x']);
    assert.equal(fake.batch(3).docs[0], x3.doc);
    fake.batch(3).ok();
    await settle();
    assert.equal(fake.batches.length, 4);
    assert.deepEqual(x1.r.value, { ok: true, id: 'x', rev: revOf(1, 0) });
    assert.deepEqual(y.r.value, { ok: true, id: 'y', rev: revOf(1, 1) });
    assert.deepEqual(x2.r.value, { ok: true, id: 'x', rev: revOf(2, 0) });
    assert.deepEqual(x3.r.value, { ok: true, id: 'x', rev: revOf(3, 0) });
  });

  test('a repeated id that is not taken does not use up room (maxDocs counts sent documents)', async (t) => {
    const { fake, submit } = setup(t, { maxInflight: 1, maxDocs: 2 });
    submit('z');
    submit('x');
    submit('x');
    submit('y');
    fake.batch(0).ok();
    await settle();
    assert.deepEqual(fake.batch(1).ids, ['x', 'y']);
  });

  test('maxDocs bounds every batch; documents keep their order', async (t) => {
    const { fake, submit } = setup(t, { maxDocs: 3, maxInflight: 1 });
    const all = [submit('a')];
    for (let i = 0; i < 10; i++) all.push(submit(`d${i}`));
    for (let i = 0; i < 10 && fake.batches.some((b) => !b.settled); i++) {
      fake.batches.filter((b) => !b.settled).forEach((b) => b.ok());
      await settle();
    }
    assert.deepEqual(fake.sizes(), [1, 3, 3, 3, 1]);
    assert.deepEqual(
      fake.batches.flatMap((b) => b.docs),
      all.map((s) => s.doc),
      'every document sent once, in submit order',
    );
    assert.ok(all.every((s) => s.r.state === 'resolved'));
  });

  test('only documents of the same key share a batch; each batch carries its own target', async (t) => {
    const { fake, submit } = setup(t, { maxInflight: 1 });
    const t1 = target('log_one');
    const t2 = target('log_two');
    submit('a1', 'k1', t1);
    submit('a2', 'k2', t2);
    assert.equal(fake.batches.length, 2, 'a busy key does not hold back another');
    submit('b1', 'k1', t1);
    submit('b2', 'k2', t2);
    submit('c1', 'k1', t1);
    fake.batch(0).ok();
    fake.batch(1).ok();
    await settle();
    const later = fake.batches.slice(2);
    assert.equal(later.length, 2);
    const byDb = Object.fromEntries(later.map((b) => [b.target.db, b.ids]));
    assert.deepEqual(byDb, { log_one: ['b1', 'c1'], log_two: ['b2'] });
    for (const b of later) assert.equal(b.target, b.target.db === 'log_one' ? t1 : t2);
  });
});

describe('GroupCommit: concurrency', () => {
  test('maxInflight bounds the batches in flight per key', async (t) => {
    const { fake, submit } = setup(t, { maxDocs: 1, maxInflight: 2 });
    const all = Array.from({ length: 6 }, (_, i) => submit(`d${i}`));
    assert.equal(fake.batches.length, 2);
    assert.equal(fake.active, 2);
    t.mock.timers.tick(1000);
    await settle();
    assert.equal(fake.batches.length, 2, 'the timer does not exceed the bound');
    fake.batch(0).ok();
    await settle();
    assert.equal(fake.batches.length, 3, 'a finished batch frees one slot');
    while (fake.batches.some((b) => !b.settled)) {
      fake.batches.find((b) => !b.settled)!.ok();
      await settle();
    }
    assert.equal(fake.batches.length, 6);
    assert.equal(fake.maxActive, 2);
    all.forEach((s, i) => assert.deepEqual(s.r.value, { ok: true, id: `d${i}`, rev: revOf(i, 0) }));
  });

  test('maxInflight is per key', (t) => {
    const { fake, submit } = setup(t, { maxDocs: 1, maxInflight: 1 });
    submit('a', 'k1');
    submit('b', 'k1');
    submit('c', 'k2');
    submit('d', 'k3');
    assert.deepEqual(
      fake.batches.map((b) => b.ids[0]),
      ['a', 'c', 'd'],
    );
  });

  test('invariants under a pseudo-random load (ids repeat, batches end out of order)', async (t) => {
    const opts = { maxDocs: 4, maxInflight: 3, maxWaitMs: 5 };
    const { fake, submit } = setup(t, opts);
    let seed = 12345;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 16) % n;
    };
    const subs: Array<ReturnType<typeof submit>> = [];
    for (let step = 0; step < 400; step++) {
      const action = rand(10);
      if (action < 5) subs.push(submit(`id${rand(6)}`));
      else if (action < 8) {
        const open = fake.batches.filter((b) => !b.settled);
        if (open.length > 0) open[rand(open.length)]!.ok();
      } else t.mock.timers.tick(rand(8));
      await settle();
    }
    // Finish everything.
    for (let i = 0; i < 1000 && subs.some((s) => s.r.state === 'pending'); i++) {
      fake.batches.filter((b) => !b.settled).forEach((b) => b.ok());
      t.mock.timers.tick(opts.maxWaitMs);
      await settle();
    }
    assert.ok(subs.length > 100);
    assert.ok(
      fake.batches.some((b) => b.docs.length > 1),
      'some grouping happened',
    );
    assert.ok(fake.maxActive <= opts.maxInflight, `at most ${opts.maxInflight} in flight, saw ${fake.maxActive}`);
    for (const b of fake.batches) {
      assert.ok(b.docs.length >= 1 && b.docs.length <= opts.maxDocs, `batch ${b.index} has ${b.docs.length} docs`);
      assert.equal(new Set(b.ids).size, b.ids.length, `batch ${b.index} repeats an id: ${b.ids.join(',')}`);
    }
    // Each document was sent exactly once and its caller got the result of its own slot.
    const sent = fake.batches.flatMap((b) => b.docs.map((doc, pos) => ({ doc, rev: revOf(b.index, pos) })));
    assert.equal(sent.length, subs.length);
    for (const s of subs) {
      const where = sent.filter((x) => x.doc === s.doc);
      assert.equal(where.length, 1);
      assert.deepEqual(s.r, { state: 'resolved', value: { ok: true, id: s.doc._id, rev: where[0]!.rev } });
    }
  });
});

describe('GroupCommit: results and failures', () => {
  test('a batch CouchDB answered 202 (fewer copies than its write quorum) is accepted for every caller in it, and only for them', async (t) => {
    const { fake, submit, gc, tgt } = setup(t, { maxInflight: 1 });
    const a = submit('a');
    const b = submit('b');
    const c = submit('c');
    fake.batch(0).ok();
    await settle();
    fake.batch(1).resolveWith(
      [
        { ok: true, id: 'b', rev: '1-bbb' },
        { id: 'c', error: 'conflict', reason: 'Document update conflict.' },
      ],
      true,
    );
    await settle();
    assert.deepEqual([a.accepted.value, b.accepted.value, c.accepted.value], [false, true, true]);
    const many = gc.submitMany('k', tgt, [{ _id: 'm1' }, { _id: 'm2' }]);
    await settle();
    fake.batch(2).resolveWith(
      [
        { ok: true, id: 'm1', rev: '1-m' },
        { ok: true, id: 'm2', rev: '1-m' },
      ],
      true,
    );
    const w = await many;
    assert.equal(w.accepted, true);
    assert.deepEqual(
      w.results.map((r) => r.id),
      ['m1', 'm2'],
    );
  });

  test('each caller gets results[i] of its own document, errors included (resolved, not rejected)', async (t) => {
    const { fake, submit } = setup(t, { maxInflight: 1 });
    submit('a');
    const b = submit('b');
    const c = submit('c');
    const d = submit('d');
    fake.batch(0).ok();
    await settle();
    fake.batch(1).resolveWith([
      { ok: true, id: 'b', rev: '1-bbb' },
      { id: 'c', error: 'conflict', reason: 'Document update conflict.' },
      { ok: true, id: 'd', rev: '1-ddd' },
    ]);
    await settle();
    assert.deepEqual(b.r, { state: 'resolved', value: { ok: true, id: 'b', rev: '1-bbb' } });
    assert.deepEqual(c.r, { state: 'resolved', value: { id: 'c', error: 'conflict', reason: 'Document update conflict.' } });
    assert.deepEqual(d.r, { state: 'resolved', value: { ok: true, id: 'd', rev: '1-ddd' } });
  });

  test('a flush that fails rejects exactly the callers of that batch', async (t) => {
    const { fake, submit } = setup(t, { maxDocs: 2, maxInflight: 2 });
    const a = submit('a'); // batch 0
    const b = submit('b');
    const c = submit('c'); // 2 queued = maxDocs: batch 1
    const d = submit('d');
    const e = submit('e'); // batch 2 must wait for a slot
    assert.deepEqual(
      fake.batches.map((x) => x.ids),
      [['a'], ['b', 'c']],
    );
    const boom = new Error('CouchDB unreachable');
    fake.batch(1).fail(boom);
    await settle();
    assert.equal(b.r.state, 'rejected');
    assert.equal(b.r.error, boom);
    assert.equal(c.r.state, 'rejected');
    assert.equal(c.r.error, boom);
    assert.equal(a.r.state, 'pending', 'another batch is not affected');
    assert.deepEqual(fake.batch(2).ids, ['d', 'e'], 'the freed slot is used');
    fake.batch(0).ok();
    fake.batch(2).ok();
    await settle();
    assert.equal(a.r.state, 'resolved');
    assert.equal(d.r.state, 'resolved');
    assert.equal(e.r.state, 'resolved');
  });

  test('a flush that throws synchronously rejects its callers; submit itself does not throw', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let calls = 0;
    const boom = new Error('sync boom');
    const flush: FlushFn = (_target, docs) => {
      calls += 1;
      if (calls === 1) throw boom;
      return Promise.resolve({ results: docs.map((doc) => ({ ok: true as const, id: doc._id, rev: '1-x' })), accepted: false });
    };
    const gc = new GroupCommit({ maxDocs: 10, maxWaitMs: 5, maxInflight: 1 }, flush);
    let p!: Promise<Written<DocResult>>;
    assert.doesNotThrow(() => {
      p = gc.submit('k', target(), { _id: 'a' });
    });
    await assert.rejects(p, (err) => err === boom);
    // The queue is not stuck afterwards.
    assert.deepEqual(await gc.submit('k', target(), { _id: 'b' }), { results: { ok: true, id: 'b', rev: '1-x' }, accepted: false });
    assert.equal(calls, 2);
  });

  test('after a failed batch the key keeps working', async (t) => {
    const { fake, submit } = setup(t);
    const a = submit('a');
    fake.batch(0).fail(new Error('x'));
    await settle();
    assert.equal(a.r.state, 'rejected');
    const b = submit('b');
    assert.equal(fake.batches.length, 2, 'flushed at once: nothing counted in flight any more');
    fake.batch(1).ok();
    await settle();
    assert.equal(b.r.state, 'resolved');
  });
});

describe('GroupCommit: drain', () => {
  test('with nothing queued it resolves at once', async (t) => {
    const { gc } = setup(t);
    await gc.drain();
  });

  test('sends what waits for the timer now and resolves only when every batch has ended', async (t) => {
    const { fake, gc, submit } = setup(t, { maxInflight: 4, maxWaitMs: 1000 });
    const a = submit('a');
    const b = submit('b');
    const c = submit('c');
    assert.equal(fake.batches.length, 1);
    const drained = track(gc.drain());
    assert.equal(fake.batches.length, 2, 'queued documents are sent without waiting for maxWaitMs');
    assert.deepEqual(fake.batch(1).ids, ['b', 'c']);
    await settle();
    assert.equal(drained.state, 'pending');
    fake.batch(1).ok();
    await settle();
    assert.equal(drained.state, 'pending', 'batch 0 is still in flight');
    fake.batch(0).ok();
    await settle();
    assert.equal(drained.state, 'resolved');
    for (const s of [a, b, c]) assert.equal(s.r.state, 'resolved');
  });

  test('waits for queued documents that need a free slot first', async (t) => {
    const { fake, gc, submit } = setup(t, { maxInflight: 1, maxDocs: 2 });
    submit('a');
    const rest = [submit('b'), submit('c'), submit('d'), submit('x'), submit('x')];
    const drained = track(gc.drain());
    assert.equal(fake.batches.length, 1, 'the only slot is busy');
    for (let i = 0; i < 10 && drained.state === 'pending'; i++) {
      fake.batches.filter((x) => !x.settled).forEach((x) => x.ok());
      await settle();
      if (drained.state === 'pending')
        assert.ok(
          fake.batches.some((x) => !x.settled),
          'drain waits only for real work',
        );
    }
    assert.equal(drained.state, 'resolved');
    assert.ok(rest.every((s) => s.r.state === 'resolved'));
    assert.equal(fake.batches.flatMap((x) => x.docs).length, 6);
    assert.ok(fake.batches.every((x) => x.settled));
  });

  test('a failing batch does not make drain reject', async (t) => {
    const { fake, gc, submit } = setup(t);
    const a = submit('a');
    const drained = track(gc.drain());
    fake.batch(0).fail(new Error('down'));
    await settle();
    assert.equal(a.r.state, 'rejected');
    assert.equal(drained.state, 'resolved');
  });
});

describe('a batch CouchDB refuses for one of its documents (413 document_too_large, naming it)', () => {
  test('is sent again without that document, one at a time: only its callers are refused, every other caller gets its own result', async () => {
    const calls: string[][] = [];
    const flush: FlushFn = async (_target, docs) => {
      calls.push(docs.map((d) => d._id));
      await Promise.resolve();
      // CouchDB names the first document over its limit.
      const big = docs.find((d) => d._id.startsWith('big'));
      if (big) throw documentTooLarge(big._id);
      return { results: docs.map((d) => ({ ok: true, id: d._id, rev: '1-x' })), accepted: false };
    };
    const group = new GroupCommit({ maxDocs: 64, maxWaitMs: 5, maxInflight: 1 }, flush);
    const target: WriteTarget = { db: 'log_x', headers: {}, asWriter: true };
    const ids = Array.from({ length: 33 }, (_, i) => (i === 20 ? 'big-1' : i === 7 ? 'big-2' : `d${i}`));
    const settled = await Promise.allSettled(ids.map((id) => group.submit('k', target, { _id: id })));
    await group.drain();
    settled.forEach((s, i) => {
      if (ids[i]!.startsWith('big')) {
        assert.equal(s.status, 'rejected');
        assert.equal((s as PromiseRejectedResult).reason.code, 'COUCHDB_TOO_LARGE');
      } else assert.equal(s.status, 'fulfilled', `${ids[i]}: ${(s as PromiseRejectedResult).reason}`);
    });
    // The first document alone (nothing in flight), then the 32 others: refused for big-2, again for big-1, then stored.
    assert.deepEqual(
      calls.map((c) => c.length),
      [1, 32, 31, 30],
    );
  });

  test('any other refusal (a 413 naming no document of the batch, 400, 401, 503) is not retried: every caller of the batch gets it', async () => {
    for (const err of [documentTooLarge('not-in-the-batch'), couchdbRefusal(400, 'bad'), couchdbRefusal(401, 'name or password is incorrect')]) {
      let calls = 0;
      const flush: FlushFn = async () => {
        calls += 1;
        await Promise.resolve();
        throw err;
      };
      const group = new GroupCommit({ maxDocs: 64, maxWaitMs: 5, maxInflight: 1 }, flush);
      const target: WriteTarget = { db: 'log_x', headers: {}, asWriter: false };
      const settled = await Promise.allSettled(['a', 'b', 'c', 'd'].map((id) => group.submit('k', target, { _id: id })));
      assert.deepEqual(
        settled.map((s) => s.status),
        ['rejected', 'rejected', 'rejected', 'rejected'],
      );
      assert.equal(calls, 2, 'the first document alone, then the other three in one batch');
    }
  });
});
