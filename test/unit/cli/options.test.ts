// cli/options.ts: the option parsers every command shares; a bad value is a commander usage error naming the option.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from 'commander';
import { MIN_BACKOFF_MS, MIN_TIMEOUT_MS, msAtLeast, timeoutSeconds } from '../../../cli/options.js';

const refused = (parse: (v: string) => number, value: string, message: RegExp) =>
  assert.throws(
    () => parse(value),
    (e: unknown) => e instanceof InvalidArgumentError && message.test(e.message),
    value,
  );

describe('option parsers', () => {
  test('timeoutSeconds: fractions of a second down to 0.1; 0, less, negative or not a number refused', () => {
    const parse = timeoutSeconds('--timeout');
    assert.equal(MIN_TIMEOUT_MS, 100);
    assert.equal(parse('0.1'), 0.1);
    assert.equal(parse('30'), 30);
    assert.equal(parse('1.5'), 1.5);
    for (const bad of ['0', '0.0', '0.099', '1e-9'])
      refused(parse, bad, new RegExp(`^--timeout must be at least 0\\.1 seconds, got "${bad.replace('.', '\\.')}"$`));
    for (const bad of ['-1', '', 'soon', 'Infinity']) refused(parse, bad, /^--timeout must be a number of seconds$/);
  });

  test('msAtLeast: whole milliseconds from the minimum on', () => {
    const parse = msAtLeast(MIN_BACKOFF_MS, '--backoff-base');
    assert.equal(MIN_BACKOFF_MS, 10);
    assert.equal(parse('10'), 10);
    assert.equal(parse('30_000'), 30_000);
    for (const bad of ['0', '9']) refused(parse, bad, new RegExp(`^--backoff-base must be at least 10 ms, got "${bad}"$`));
    for (const bad of ['-10', '10.5', 'x']) refused(parse, bad, /^--backoff-base must be a non-negative integer/);
  });
});
