// The embedded server's password check: the same hex as crypto-lite (the
// hashes already stored must keep matching), remembered, shared while in
// progress, and bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { createPasswordHasher, liteKey } from '../../../embedded/password-hash.cjs';

const lite = (createRequire(import.meta.url)('crypto-lite') as { crypto: { pbkdf2: (s: string, salt: string, n?: number, len?: number) => string } }).crypto;

class Busy extends Error {}
const hasher = (maxRunning = 2, maxWaiting = 8) => createPasswordHasher({ maxRunning, maxWaiting, memoSize: 100, busy: () => new Busy('busy') });

test('same hex as crypto-lite, for ASCII and for the non-ASCII keys crypto-lite cuts or hashes (by UTF-16 length, not bytes)', async () => {
  const secrets = [
    'p',
    'correct horse battery staple',
    'a'.repeat(64),
    'a'.repeat(65),
    'é',
    'é'.repeat(32), // 64 bytes: used as is
    'é'.repeat(33), // 66 bytes, 33 units: crypto-lite cuts it to 64 bytes
    'é'.repeat(64), // 128 bytes, 64 units: cut as well
    'é'.repeat(65), // 65 units: hashed, as HMAC does
    '🔑'.repeat(20), // surrogate pairs: 40 units, 80 bytes
    '日本語のパスワード'.repeat(3),
  ];
  const h = hasher();
  for (const secret of secrets) {
    for (const [salt, iterations] of [
      ['5f4dcc3b5aa765d61d8327deb882cf99', 3],
      ['0a1b', 10],
      ['é-salt', 2],
    ] as const) {
      assert.equal(await h.hash(secret, salt, iterations), lite.pbkdf2(secret, salt, iterations, 20), `${JSON.stringify(secret)} / ${salt} / ${iterations}`);
    }
  }
  // No count: crypto-lite's 1000.
  assert.equal(await h.hash('x', 'ab', undefined), lite.pbkdf2('x', 'ab', undefined, 20));
  assert.equal(liteKey('é'.repeat(33))!.length, 64);
});

test('what crypto-lite could not hash is refused, and an absent password never hashes as a word', async () => {
  const h = hasher();
  for (const [password, salt, iterations] of [
    ['\ud800', 'ab', 3], // a lone surrogate: crypto-lite threw
    [undefined, 'ab', 3],
    [12345, 'ab', 3],
    ['x', undefined, 3],
    ['x', 'ab', 1.5], // crypto-lite looped forever
    ['x', 'ab', -2],
    ['x', 'ab', 2 ** 31],
  ] as const) {
    await assert.rejects(h.hash(password, salt, iterations), `${String(password)} / ${String(salt)} / ${iterations}`);
  }
  assert.deepEqual(h.load(), { running: 0, waiting: 0 });
});

test('a repeated check is remembered, checks asked at once share one computation', async () => {
  const h = hasher(1, 0);
  const first = h.hash('same', 'ab', 50_000);
  const second = h.hash('same', 'ab', 50_000);
  // One computation running, none waiting: with no waiting place, a second one would have been refused.
  assert.deepEqual(h.load(), { running: 1, waiting: 0 });
  assert.equal(await first, await second);
  const again = h.hash('same', 'ab', 50_000);
  assert.deepEqual(h.load(), { running: 0, waiting: 0 });
  assert.equal(await again, await first);
});

test('at most maxRunning on the pool, maxWaiting waiting; beyond that refused at once with busy()', async () => {
  const h = hasher(1, 2);
  const checks = ['a', 'b', 'c'].map((p) => h.hash(p, 'ab', 20_000));
  assert.deepEqual(h.load(), { running: 1, waiting: 2 });
  await assert.rejects(h.hash('d', 'ab', 20_000), Busy);
  const hexes = await Promise.all(checks);
  assert.deepEqual(
    hexes,
    ['a', 'b', 'c'].map((p) => lite.pbkdf2(p, 'ab', 20_000, 20)),
  );
  assert.deepEqual(h.load(), { running: 0, waiting: 0 });
  // The places are free again.
  assert.equal(await h.hash('d', 'ab', 3), lite.pbkdf2('d', 'ab', 3, 20));
});
