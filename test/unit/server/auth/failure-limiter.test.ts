import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FailureLimiter } from '../../../../server/auth/failure-limiter.js';
import { CouchlogError } from '../../../../lib/errors.js';

test('failed authentications per address: 429 with Retry-After after max, until the window ends', () => {
  let now = 1_000_000;
  const limiter = new FailureLimiter({ max: 3, windowMs: 60_000 }, () => now);
  for (let i = 0; i < 3; i++) {
    limiter.check('10.0.0.1');
    limiter.fail('10.0.0.1');
  }
  now += 10_000;
  assert.throws(
    () => limiter.check('10.0.0.1'),
    (err: unknown) => err instanceof CouchlogError && err.statusCode === 429 && err.headers['Retry-After'] === '50' && err.code === 'AUTH_TOO_MANY_FAILURES',
  );
  limiter.check('10.0.0.2'); // another address is not affected
  now += 50_000;
  limiter.check('10.0.0.1'); // a new window
});

test('max 0 turns the limit off', () => {
  const limiter = new FailureLimiter({ max: 0, windowMs: 1000 });
  for (let i = 0; i < 100; i++) limiter.fail('a');
  limiter.check('a');
  assert.equal(limiter.enabled, false);
});

const refused = (code: string) => (err: unknown) => err instanceof CouchlogError && err.statusCode === 429 && err.code === code;

test('unverified credentials in flight hold a place: max distinct guesses at once, the same credentials one place', () => {
  const limiter = new FailureLimiter({ max: 3, windowMs: 60_000 }, () => 0);
  const a = limiter.admit('ip', 'k1');
  const b = limiter.admit('ip', 'k2');
  const b2 = limiter.admit('ip', 'k2'); // the same guess again: no new place
  const c = limiter.admit('ip', 'k3');
  assert.throws(() => limiter.admit('ip', 'k4'), refused('AUTH_TOO_MANY_ATTEMPTS'));
  limiter.admit('other', 'k4')(false); // another address is not affected
  b(false);
  assert.throws(() => limiter.admit('ip', 'k4'), refused('AUTH_TOO_MANY_ATTEMPTS'), 'k2 is still in flight once');
  b2(false);
  const d = limiter.admit('ip', 'k4');
  a(true); // a failure keeps its place, as a failure
  c(false);
  d(false);
  d(true); // a second release changes nothing
  limiter.admit('ip', 'k5')(false);
  limiter.admit('ip', 'k6')(false);
  assert.equal(limiter.pendingAddresses, 0);
  const e = limiter.admit('ip', 'k7');
  const f = limiter.admit('ip', 'k8');
  assert.throws(() => limiter.admit('ip', 'k9'), refused('AUTH_TOO_MANY_ATTEMPTS'), 'one failure + two in flight');
  e(true);
  f(true);
  assert.throws(() => limiter.admit('ip', 'k9'), refused('AUTH_TOO_MANY_FAILURES'));
});

test('credentials found good stop holding a place at once; their requests released later free nothing else', () => {
  const limiter = new FailureLimiter({ max: 2, windowMs: 60_000 }, () => 0);
  const first = limiter.admit('ip', 'good');
  const second = limiter.admit('ip', 'good');
  limiter.admit('ip', 'guess');
  limiter.verified('ip', 'good');
  const other = limiter.admit('ip', 'good'); // back in flight (e.g. its cache entry ran out), its own place again
  assert.throws(() => limiter.admit('ip', 'x'), refused('AUTH_TOO_MANY_ATTEMPTS'));
  first(false);
  second(false); // released after `verified`: must not free the new entry's place
  assert.throws(() => limiter.admit('ip', 'x'), refused('AUTH_TOO_MANY_ATTEMPTS'));
  other(false);
  limiter.admit('ip', 'x');
});

test('property: whatever the interleaving, at most max guesses from one address are judged per window', () => {
  for (let seed = 1; seed <= 200; seed++) {
    let s = seed;
    const rnd = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const max = 1 + Math.floor(rnd() * 8);
    const limiter = new FailureLimiter({ max, windowMs: 1e12, maxAddresses: 16 }, () => 0);
    const inFlight: Array<{ release: (failed: boolean) => void; good: boolean; key: string }> = [];
    let wrongAdmitted = 0;
    for (let step = 0; step < 300; step++) {
      if (inFlight.length > 0 && rnd() < 0.45) {
        const [req] = inFlight.splice(Math.floor(rnd() * inFlight.length), 1);
        if (req!.good) limiter.verified('ip', req!.key);
        req!.release(!req!.good);
        continue;
      }
      const good = rnd() < 0.3;
      const key = good ? `good${Math.floor(rnd() * 3)}` : `guess${step}`;
      try {
        inFlight.push({ release: limiter.admit('ip', key), good, key });
        if (!good) wrongAdmitted++;
      } catch (err) {
        assert.ok(err instanceof CouchlogError && err.statusCode === 429, `seed ${seed}`);
      }
    }
    // Every admitted guess is judged (now or when released): never more than max in the window.
    assert.ok(wrongAdmitted <= max, `seed ${seed}: ${wrongAdmitted} wrong guesses judged with max ${max}`);
    for (const req of inFlight) req.release(!req.good);
    assert.equal(limiter.pendingAddresses, 0, `seed ${seed}: nothing stays held`);
  }
});
