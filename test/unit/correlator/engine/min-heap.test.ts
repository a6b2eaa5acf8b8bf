// MinHeap orders the engine's release queue and its deadlines: a wrong pop
// would release an event before an earlier one, or miss a deadline.
// Property: any seeded sequence of pushes and pops gives what a sorted
// list gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MinHeap } from '../../../../correlator/engine/min-heap.js';
import { mulberry32 } from '../../../../bench/prng.js';

test('pops in order, for 300 seeded sequences of pushes and pops (duplicates included)', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const rnd = mulberry32(seed);
    const heap = new MinHeap<number>((a, b) => a < b);
    const reference: number[] = [];
    const steps = 1 + Math.floor(rnd() * 400);
    for (let i = 0; i < steps; i++) {
      if (rnd() < 0.6) {
        const v = Math.floor(rnd() * 50); // small range: many equal keys
        heap.push(v);
        reference.push(v);
        reference.sort((a, b) => a - b);
      } else {
        assert.equal(heap.pop(), reference.shift(), `seed ${seed}, step ${i}`);
      }
      assert.equal(heap.size, reference.length, `seed ${seed}, step ${i}`);
      assert.equal(heap.peek(), reference[0], `seed ${seed}, step ${i}`);
    }
    while (reference.length > 0) assert.equal(heap.pop(), reference.shift(), `seed ${seed}, draining`);
    assert.equal(heap.pop(), undefined);
  }
});

test('orders by the comparison it is given (objects, ties broken by a second key)', () => {
  type Ev = { time: number; id: string };
  const heap = new MinHeap<Ev>((a, b) => a.time < b.time || (a.time === b.time && a.id < b.id));
  const evs: Ev[] = [
    { time: 2, id: 'b' },
    { time: 1, id: 'z' },
    { time: 2, id: 'a' },
    { time: 0, id: 'm' },
  ];
  for (const e of evs) heap.push(e);
  assert.deepEqual(
    [heap.pop(), heap.pop(), heap.pop(), heap.pop()].map((e) => `${e!.time}${e!.id}`),
    ['0m', '1z', '2a', '2b'],
  );
  assert.equal(heap.values().length, 0);
});

test('keep() drops what the predicate refuses and the rest still pops in order (200 seeded heaps)', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const rnd = mulberry32(seed);
    const heap = new MinHeap<number>((a, b) => a < b);
    const values = Array.from({ length: Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 100));
    for (const v of values) heap.push(v);
    const cut = Math.floor(rnd() * 100);
    heap.keep((v) => v % 7 !== cut % 7);
    const want = values.filter((v) => v % 7 !== cut % 7).sort((a, b) => a - b);
    const got: number[] = [];
    for (let v = heap.pop(); v !== undefined; v = heap.pop()) got.push(v);
    assert.deepEqual(got, want, `seed ${seed}`);
  }
});
