// Which requests are live feeds, and the limiter's counts against a model
// under seeded random sequences of opens and closes (double releases included).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FeedLimiter, isLiveFeed, proxyPoolSize, SHORT_REQUEST_CONNECTIONS } from '../../../../server/auth/feed-limiter.js';
import { mulberry32 } from '../../../../bench/prng.js';

test('live feeds: longpoll, continuous, eventsource on _changes and _db_updates, read decoded', () => {
  const live = [
    '/log_app/_changes?feed=longpoll',
    '/log_app/_changes?since=now&feed=continuous&heartbeat=1000',
    '/log_app/_changes/?feed=eventsource',
    '/_db_updates?feed=longpoll',
    '/log_app/%5Fchanges?feed=longpoll',
    '/log_app/_changes?fe%65d=longpoll',
    '/log_app/_changes?feed=long%70oll',
    '/log_app/_changes?feed=normal&feed=longpoll',
    '/log_app/_changes?feed=longpoll&feed=normal',
    // CouchDB also splits on ";"
    '/log_app/_changes?since=now;feed=longpoll',
    '/log_app/_changes?since=now;feed=continuous;heartbeat=5000',
  ];
  const notLive = [
    '/log_app/_changes',
    '/log_app/_changes?feed=normal',
    '/log_app/_changes?limit=10',
    '/log_app/_changes?xfeed=longpoll',
    '/log_app/_all_docs?feed=longpoll',
    '/log_app/doc?feed=longpoll',
    '/log_app/_design/x/_changes?feed=longpoll',
    '/log_app/_changes%zz?feed=longpoll',
  ];
  for (const url of live) assert.equal(isLiveFeed(url), true, url);
  for (const url of notLive) assert.equal(isLiveFeed(url), false, url);
});

test('the pool always keeps connections that feeds cannot take', () => {
  assert.equal(proxyPoolSize(64) - 64, SHORT_REQUEST_CONNECTIONS);
  assert.ok(SHORT_REQUEST_CONNECTIONS >= 16);
});

test('per account and in all: refused beyond the limits, given back once however often released', () => {
  const limiter = new FeedLimiter({ maxOpen: 3, maxOpenPerUser: 2 });
  const a1 = limiter.acquire('a');
  const a2 = limiter.acquire('a');
  assert.equal(typeof a1, 'function');
  assert.equal(typeof a2, 'function');
  assert.equal(limiter.acquire('a'), 'user');
  const b1 = limiter.acquire('b');
  assert.equal(typeof b1, 'function');
  assert.equal(limiter.acquire('c'), 'total');
  assert.equal(limiter.open, 3);
  (a1 as () => void)();
  (a1 as () => void)();
  assert.equal(limiter.open, 2);
  assert.equal(typeof limiter.acquire('c'), 'function');
  assert.equal(limiter.acquire('d'), 'total');
});

test('property: counts follow a model under random opens and closes', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const rnd = mulberry32(seed);
    const maxOpen = 1 + Math.floor(rnd() * 10);
    const maxOpenPerUser = 1 + Math.floor(rnd() * 5);
    const limiter = new FeedLimiter({ maxOpen, maxOpenPerUser });
    const held: Array<{ user: string; release: () => void; released: boolean }> = [];
    const model = new Map<string, number>();
    const modelTotal = () => [...model.values()].reduce((s, n) => s + n, 0);
    for (let step = 0; step < 300; step++) {
      if (rnd() < 0.55) {
        const user = `u${Math.floor(rnd() * 4)}`;
        const got = limiter.acquire(user);
        const mine = model.get(user) ?? 0;
        const expected = mine >= maxOpenPerUser ? 'user' : modelTotal() >= maxOpen ? 'total' : 'granted';
        assert.equal(typeof got === 'function' ? 'granted' : got, expected, `seed ${seed} step ${step}`);
        if (typeof got === 'function') {
          model.set(user, mine + 1);
          held.push({ user, release: got, released: false });
        }
      } else if (held.length > 0) {
        const h = held[Math.floor(rnd() * held.length)]!;
        h.release();
        if (!h.released) model.set(h.user, model.get(h.user)! - 1);
        h.released = true;
      }
      assert.equal(limiter.open, modelTotal(), `seed ${seed} step ${step}`);
    }
  }
});
