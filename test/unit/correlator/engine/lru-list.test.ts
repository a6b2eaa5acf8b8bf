// LruList decides which connection the engine evicts first and which ones a
// checkpoint keeps warm: a wrong order would evict a recent connection (a
// lookup and maybe a correction later) instead of an old one. Property: for
// seeded sequences of touches and removals it keeps the order a Map keeps
// when every touch is delete + set (what the engine used before), also when
// items are removed while walking it oldest first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LruLink, LruList } from '../../../../correlator/engine/lru-list.js';
import { mulberry32 } from '../../../../bench/prng.js';

function oldestFirst<T>(list: LruList<T>): T[] {
  const out: T[] = [];
  for (let l = list.oldest(); l !== null; l = l.next) out.push(l.item);
  return out;
}

test('keeps least-recently-used order like Map delete + set, for 300 seeded sequences', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const rnd = mulberry32(seed);
    const links = Array.from({ length: 1 + Math.floor(rnd() * 30) }, (_, i) => new LruLink(i));
    const list = new LruList<number>();
    const reference = new Map<number, number>();
    for (let step = 0; step < 200; step++) {
      const link = links[Math.floor(rnd() * links.length)]!;
      const r = rnd();
      if (r < 0.6) {
        list.touch(link);
        reference.delete(link.item);
        reference.set(link.item, link.item);
      } else if (r < 0.8) {
        list.remove(link);
        reference.delete(link.item);
      } else {
        // Walk oldest first and drop some on the way, reading `next` before removing.
        for (let l = list.oldest(); l !== null;) {
          const next = l.next;
          if (rnd() < 0.3) {
            list.remove(l);
            reference.delete(l.item);
          }
          l = next;
        }
      }
      const expected = [...reference.keys()];
      assert.deepEqual(oldestFirst(list), expected, `seed ${seed}, step ${step}`);
      assert.deepEqual(list.newestFirst(), [...expected].reverse(), `seed ${seed}, step ${step}`);
      assert.equal(list.size, expected.length, `seed ${seed}, step ${step}`);
    }
  }
});

test('touching the newest item again, or removing an absent one, changes nothing', () => {
  const list = new LruList<string>();
  const [a, b] = [new LruLink('a'), new LruLink('b')];
  list.remove(a);
  list.touch(a);
  list.touch(b);
  list.touch(b);
  assert.deepEqual(oldestFirst(list), ['a', 'b']);
  assert.equal(list.size, 2);
  list.touch(a);
  assert.deepEqual(oldestFirst(list), ['b', 'a']);
});
