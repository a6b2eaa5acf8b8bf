// isoTime stands in for Date#toISOString on every record the engine makes:
// one wrong digit would give a record a wrong timestamp. Property: equal to
// toISOString for seeded times around one moment (the cache's case), far
// apart, at second boundaries, negative, fractional and out of range.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isoTime } from '../../../../correlator/engine/iso-time.js';
import { mulberry32 } from '../../../../bench/prng.js';

const SPECIAL = [
  0,
  -1,
  999,
  1000,
  1001,
  -999,
  -1000,
  -1001,
  1.5,
  -0.25,
  8.64e15,
  -8.64e15,
  253402300799999,
  253402300800000,
  -62167219200000,
  -62167219200001,
  Date.UTC(2024, 1, 29, 23, 59, 59, 999),
];

test('equals toISOString on 200,000 seeded times and the edges', () => {
  const rnd = mulberry32(7);
  let t = Date.UTC(2024, 0, 1);
  const times: number[] = [...SPECIAL];
  for (let i = 0; i < 200_000; i++) {
    const r = rnd();
    // Mostly small steps (the cache hits), sometimes a jump anywhere or back.
    if (r < 0.8) t += Math.floor(rnd() * 40);
    else if (r < 0.9) t -= Math.floor(rnd() * 3000);
    else t = Math.floor((rnd() * 2 - 1) * 8.64e15);
    times.push(t, SPECIAL[i % SPECIAL.length]!);
  }
  for (const ms of times) assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
});

test('an invalid time throws as Date does', () => {
  for (const ms of [NaN, Infinity, -Infinity, 8.64e15 + 1]) {
    assert.throws(() => new Date(ms).toISOString(), RangeError);
    assert.throws(() => isoTime(ms), RangeError, String(ms));
  }
});
