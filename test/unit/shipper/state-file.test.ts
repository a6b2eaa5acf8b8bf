// shipper/state-file.ts: the state file of --state, written atomically and refused when unreadable.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emptyState, loadState, saveState } from '../../../shipper/state-file.js';
import { OperationError } from '../../../lib/errors.js';

describe('state file', () => {
  test('saved atomically and read back; a missing file is an empty state; a corrupt one a clear error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'couchlog-state-'));
    try {
      const file = join(dir, 'ship.state');
      assert.deepEqual(loadState(file), emptyState());
      const state = emptyState();
      state.files['/var/log/x.log'] = {
        current: { dev: 1, ino: 2, offset: 3, generation: 0, fingerprint: 'f', seen_as: '/var/log/x.log' },
        rotated: [],
        next_generation: 1,
        updated_at: 'now',
      };
      saveState(file, state);
      assert.deepEqual(loadState(file), state);
      writeFileSync(file, '{"nope"');
      assert.throws(
        () => loadState(file),
        (e: unknown) => e instanceof OperationError && /not readable/.test(e.message),
      );
      assert.ok(readFileSync(file, 'utf8').length > 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
