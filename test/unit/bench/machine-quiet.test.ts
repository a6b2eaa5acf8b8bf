import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describeQuiet, parseProcStat, waitForQuiet } from '../../../bench/machine-quiet.js';

test('parseProcStat: busy and total jiffies of all CPUs, iowait counted as idle, guest time not twice', () => {
  // user nice system idle iowait irq softirq steal guest guest_nice
  const text = 'cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 50 2 25 400 20 1 1 0 3 0\nintr 1 2 3\n';
  assert.deepEqual(parseProcStat(text), { busy: 160, total: 1000 });
});

test('parseProcStat: anything else is not read as figures', () => {
  assert.equal(parseProcStat(''), null);
  assert.equal(parseProcStat('cpu0 1 2 3 4 5 6 7 8\n'), null);
  assert.equal(parseProcStat('cpu  1 2 x 4 5 6 7 8\n'), null);
  assert.equal(parseProcStat('cpu  1 2 3\n'), null);
});

const linux = existsSync('/proc/stat');

test('waitForQuiet: returns once enough windows in a row are under the threshold', { skip: !linux && 'no /proc/stat' }, async () => {
  const r = await waitForQuiet({ busyBelow: 1.01, windowMs: 20, windows: 3, timeoutMs: 5_000 });
  assert.equal(r.quiet, true);
  assert.ok(r.waitedSeconds >= 0.05 && r.waitedSeconds < 5, String(r.waitedSeconds));
  assert.ok(r.lastBusy !== null && r.lastBusy >= 0 && r.lastBusy <= 1);
  assert.match(describeQuiet(r), /went quiet after/);
});

test('waitForQuiet: a machine that never gets quiet enough is given up on, and said so', { skip: !linux && 'no /proc/stat' }, async () => {
  const r = await waitForQuiet({ busyBelow: 0, windowMs: 20, windows: 1, timeoutMs: 150 });
  assert.equal(r.quiet, false);
  assert.ok(r.waitedSeconds >= 0.15 && r.waitedSeconds < 2, String(r.waitedSeconds));
  assert.match(describeQuiet(r), /did NOT go quiet .* measured anyway/);
});

test('describeQuiet: without /proc/stat nothing was waited for, and the line says so', () => {
  assert.match(describeQuiet({ quiet: null, waitedSeconds: 0, lastBusy: null }), /unknown .* without waiting/);
});
