// shipper/ship.ts: the option combinations refused before anything is read or sent.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkShipOptions } from '../../../shipper/ship.js';
import { UsageError } from '../../../lib/errors.js';

describe('option checks', () => {
  const base: Parameters<typeof checkShipOptions>[0] = {
    files: ['/f'],
    truncate: null,
    stateFile: null,
    auditd: false,
    batchDocs: 1000,
    batchBytes: 1 << 20,
    concurrency: 4,
  };
  test('conflicting or impossible combinations are refused before anything is read', () => {
    const bad = (o: Partial<Parameters<typeof checkShipOptions>[0]>, re: RegExp) =>
      assert.throws(
        () => checkShipOptions({ ...base, ...o }),
        (e: unknown) => e instanceof UsageError && re.test(e.message),
      );
    bad({ truncate: 'auto', stateFile: '/s' }, /choose one/);
    bad({ truncate: 'auto', files: [] }, /--truncate needs the log file/);
    bad({ stateFile: '/s', files: [] }, /--state needs the log file/);
    bad({ truncate: 'auto', auditd: true }, /use --state/);
    bad({ batchDocs: 20_000 }, /at most 10000/);
    checkShipOptions({ ...base });
  });
});
