// Unit tests of cli/report/build-report.ts: the date bounds of a report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { groupReport } from '../../../../cli/report/build-report.js';
import { VIEW_META } from '../../../../design-docs/index.js';
import { UsageError } from '../../../../lib/errors.js';

const rows = [
  { key: ['server', 2026, 12, 1], value: 3 },
  { key: ['server', 2026, 12, 6], value: 2 },
];

test('--from and --to keep the days between them, both included', () => {
  const got = groupReport(VIEW_META.attacks!, rows, { groupLevel: 4, from: '2026-12-01', to: '2026-12-05' });
  assert.deepEqual(
    got.map((r) => r.count),
    [3],
  );
});

test('--from after --to is a usage error, not an empty report', () => {
  // Found by a newcomer's test: "0 periods ... 2026-12-06 – 2026-12-01", exit 0.
  assert.throws(
    () => groupReport(VIEW_META.attacks!, rows, { groupLevel: 4, from: '2026-12-06', to: '2026-12-01' }),
    (err) => err instanceof UsageError && /--from 2026-12-06 is after --to 2026-12-01/.test(err.message),
  );
});
