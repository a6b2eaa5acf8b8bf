// lib/retry.ts: the retry policy the shipper, the correlator's sinks and
// the forwarder share.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, inHalves, retryAfterMs, RetrySchedule } from '../../../lib/retry.js';
import { mulberry32 } from '../../../bench/prng.js';

test('waits grow with each failure, stay within [ceiling/2, ceiling], and start over after a success', () => {
  let now = 0;
  const r = new RetrySchedule({ baseMs: 100, maxMs: 1000 }, () => now, mulberry32(7));
  const waits: number[] = [];
  for (let i = 0; i < 6; i++) {
    const w = r.failed()!;
    const ceiling = Math.min(1000, 100 * 2 ** i);
    assert.ok(w >= ceiling / 2 && w <= ceiling, `wait ${i}: ${w} not in [${ceiling / 2}, ${ceiling}]`);
    waits.push(w);
    now += w;
  }
  assert.equal(r.failures, 6);
  r.succeeded();
  assert.equal(r.failures, 0);
  assert.equal(r.failingForMs, 0);
  assert.ok(r.failed()! <= 100, 'the backoff starts over');
});

test("the server's Retry-After wins when it is longer", () => {
  const r = new RetrySchedule({ baseMs: 100, maxMs: 1000 }, () => 0);
  assert.equal(r.failed(5000), 5000);
});

test('with a deadline: the last attempt comes at the deadline, then it gives up', () => {
  let now = 1_000;
  const r = new RetrySchedule(
    { baseMs: 400, maxMs: 400, giveUpAfterMs: 1000 },
    () => now,
    () => 1,
  );
  const waits: number[] = [];
  for (;;) {
    const w = r.failed();
    if (w === null) break;
    waits.push(w);
    now += w;
  }
  assert.deepEqual(waits, [400, 400, 200], 'the third wait is cut to end at the deadline');
  assert.equal(r.failingForMs, 1000);
  assert.equal(r.failures, 4);
});

test('without a deadline it never gives up', () => {
  let now = 0;
  const r = new RetrySchedule({ baseMs: 10, maxMs: 60_000 }, () => now);
  for (let i = 0; i < 1000; i++) now += r.failed()!;
  assert.ok(now >= 1000 * 30_000, 'a thousand waits of at least half the ceiling');
});

test('halving narrows a refused batch down to the refused items, in order, each alone', async () => {
  for (let seed = 1; seed <= 100; seed++) {
    const rnd = mulberry32(seed);
    const items = Array.from({ length: 1 + Math.floor(rnd() * 60) }, (_, i) => ({ i, bad: rnd() < 0.1 }));
    const stored: number[] = [];
    const refused: number[] = [];
    // The receiver refuses a batch whole when any item in it is bad.
    const send = async (part: typeof items): Promise<void> => {
      if (!part.some((x) => x.bad)) stored.push(...part.map((x) => x.i));
      else if (part.length === 1) refused.push(part[0]!.i);
      else await inHalves(part, send);
    };
    await send(items);
    assert.deepEqual(
      refused,
      items.filter((x) => x.bad).map((x) => x.i),
      `seed ${seed}`,
    );
    assert.deepEqual(
      stored,
      items.filter((x) => !x.bad).map((x) => x.i),
      `seed ${seed}`,
    );
  }
});

test('halving stops when a half says so (stopping)', async () => {
  const seen: number[][] = [];
  const ok = await inHalves([1, 2, 3, 4], async (part) => {
    seen.push(part);
    return false;
  });
  assert.equal(ok, false);
  assert.deepEqual(seen, [[1, 2]]);
});

describe('backoff', () => {
  test('each delay is between half and all of min(max, base * 2^attempt)', () => {
    const o = { baseMs: 100, maxMs: 5000 };
    for (const [attempt, ceiling] of [
      [0, 100],
      [1, 200],
      [3, 800],
      [6, 5000],
      [60, 5000],
    ] as const) {
      assert.equal(
        backoffDelay(attempt, o, () => 0),
        ceiling / 2,
      );
      assert.equal(
        backoffDelay(attempt, o, () => 1),
        ceiling,
      );
    }
  });

  test('jitter spreads clients that failed together', () => {
    const delays = new Set(Array.from({ length: 50 }, () => Math.round(backoffDelay(4, { baseMs: 100, maxMs: 60_000 }))));
    assert.ok(delays.size > 20);
  });

  test('Retry-After: seconds or an HTTP date; absent or unreadable is null', () => {
    assert.equal(retryAfterMs('5'), 5000);
    assert.equal(retryAfterMs(['2']), 2000);
    assert.equal(retryAfterMs('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT')), 10_000);
    assert.equal(retryAfterMs('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 08:00:00 GMT')), 0);
    assert.equal(retryAfterMs(undefined), null);
    assert.equal(retryAfterMs('soon'), null);
  });
});
