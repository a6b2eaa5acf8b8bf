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
