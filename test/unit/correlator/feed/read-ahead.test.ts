// Unit tests of correlator/feed/read-ahead.ts against an in-memory feed of
// numbered changes: pages come out in order and only from where the cursor
// stands, at most `depth` are asked ahead, a short page or "not allowed"
// stops the chain (which resumes on the next take), failures are values.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { ReadAhead, type PageSource } from '../../../../correlator/feed/read-ahead.js';
import type { FeedPage } from '../../../../correlator/feed/changes-feed.js';

/** A feed of `total` changes with seqs 1..total, answering when told to (or at once). */
class MemoryFeed implements PageSource {
  readonly asked: string[] = [];
  failNext = false;
  constructor(
    private readonly total: number,
    private readonly pageSize: number,
  ) {}

  async poll(since: string): Promise<FeedPage> {
    this.asked.push(since);
    await tick();
    if (this.failNext) {
      this.failNext = false;
      throw new Error('CouchDB is down');
    }
    const from = Number(since);
    const to = Math.min(this.total, from + this.pageSize);
    const changes = [];
    for (let s = from + 1; s <= to; s++) changes.push({ seq: String(s), id: `doc-${s}`, deleted: false, doc: { n: s }, rev: `1-${s}` });
    return { changes, full: changes.length === this.pageSize, lastSeq: String(to), pending: this.total - to };
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await tick();
}

async function page(r: ReadAhead, since: string): Promise<FeedPage> {
  const res = await r.take(since);
  if ('error' in res) throw res.error;
  return res.page;
}

describe('ReadAhead', () => {
  test('hands out consecutive pages and asks the next ones before they are taken', async () => {
    const feed = new MemoryFeed(50, 10);
    const r = new ReadAhead(feed, 2, () => true);
    const first = await page(r, '0');
    assert.deepEqual(
      first.changes.map((c) => c.seq),
      ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10'],
    );
    await settle();
    // Pages 2 and 3 asked while page 1 is being handled; no more (depth 2).
    assert.deepEqual(feed.asked, ['0', '10', '20']);
    let since = first.lastSeq;
    const seen = [...first.changes.map((c) => c.seq)];
    for (;;) {
      const p = await page(r, since);
      seen.push(...p.changes.map((c) => c.seq));
      since = p.lastSeq;
      if (p.changes.length < 10) break;
    }
    assert.deepEqual(
      seen,
      Array.from({ length: 50 }, (_, i) => String(i + 1)),
    );
    // Every page asked exactly once; the short (empty) last page ends the chain.
    await settle();
    assert.deepEqual(feed.asked, ['0', '10', '20', '30', '40', '50']);
  });

  test('a take from elsewhere than the head drops what was asked ahead and asks afresh', async () => {
    const feed = new MemoryFeed(100, 10);
    const r = new ReadAhead(feed, 2, () => true);
    await page(r, '0');
    await settle();
    const p = await page(r, '55');
    assert.equal(p.changes[0]!.seq, '56');
    await settle();
    assert.deepEqual(feed.asked, ['0', '10', '20', '55', '65', '75']);
    assert.equal((await page(r, '65')).changes[0]!.seq, '66');
  });

  test('nothing is asked ahead while not allowed; the chain resumes on the next take', async () => {
    const feed = new MemoryFeed(100, 10);
    let allowed = false;
    const r = new ReadAhead(feed, 2, () => allowed);
    const p1 = await page(r, '0');
    await settle();
    assert.deepEqual(feed.asked, ['0']);
    allowed = true;
    const p2 = await page(r, p1.lastSeq);
    assert.equal(p2.changes[0]!.seq, '11');
    await settle();
    assert.deepEqual(feed.asked, ['0', '10', '20', '30']);
  });

  test('a failed request is a result, in turn; the next take asks again from the cursor', async () => {
    const feed = new MemoryFeed(100, 10);
    const r = new ReadAhead(feed, 2, () => true);
    const p1 = await page(r, '0');
    feed.failNext = true; // the page asked ahead (10) fails
    await settle();
    const failed = await r.take(p1.lastSeq);
    assert.ok('error' in failed && (failed.error as Error).message === 'CouchDB is down');
    const retried = await page(r, p1.lastSeq);
    assert.equal(retried.changes[0]!.seq, '11');
    assert.equal(feed.asked.filter((s) => s === '10').length, 2);
  });

  test('after clear(), answers still in flight do not continue the chain', async () => {
    const feed = new MemoryFeed(100, 10);
    const r = new ReadAhead(feed, 2, () => true);
    const pending = r.take('0');
    r.clear();
    await pending;
    await settle();
    assert.deepEqual(feed.asked, ['0']);
  });
});
