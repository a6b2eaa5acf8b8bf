// A reject entry is written whole or not at all: on a disk that fills up
// half-way through one, the part written is cut off again and the error
// goes up (the run fails; --truncate removes nothing), so the file never
// holds a fragment. A tiny tmpfs (root only, as CI runs) fills up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultRejectPath, RejectFile } from '../../../shipper/reject-file.js';

const isRoot = process.getuid?.() === 0;

test(
  'disk full during an entry: nothing of it stays, the error goes up; the next entry after space is freed is whole',
  { skip: !isRoot && 'needs root to mount a small tmpfs' },
  () => {
    const mnt = mkdtempSync(join(tmpdir(), 'couchlog-rejects-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
    try {
      const path = join(mnt, 'rejects.ndjson');
      const rejects = new RejectFile(path);
      rejects.write({ source: '/var/log/app.log', offset: 0, reason: 'not JSON', text: 'first' });
      const before = readFileSync(path, 'utf8');
      writeFileSync(join(mnt, 'filler'), Buffer.alloc(64 * 1024 - 8 * 1024 - 4096));
      const big = 'x'.repeat(20_000);
      assert.throws(() => rejects.write({ source: '/var/log/app.log', offset: 6, reason: 'not JSON', text: big }), /ENOSPC/);
      assert.equal(readFileSync(path, 'utf8'), before, 'no fragment of the failed entry');
      rmSync(join(mnt, 'filler'));
      rejects.write({ source: '/var/log/app.log', offset: 6, reason: 'not JSON', text: big });
      rejects.close();
      const entries = readFileSync(path, 'utf8')
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as { text: string });
      assert.deepEqual(
        entries.map((e) => e.text.length),
        [5, 20_000],
      );
      assert.equal(rejects.count, 2);
    } finally {
      execFileSync('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  },
);

test('the default reject file: next to --state, else in a named data folder, else in ~/.local/state, never under the working folder', () => {
  // Found by a newcomer's test: with no config, rejects went to ./data/rejects of wherever cron ran the job ($HOME or /).
  const home = '/home/someone';
  assert.equal(
    defaultRejectPath({ stateFile: '/var/lib/ship/f2b.state', dataDir: '/srv/data', db: 'log_fail2ban', home }),
    '/var/lib/ship/f2b.state.rejects.ndjson',
  );
  assert.equal(defaultRejectPath({ stateFile: null, dataDir: '/srv/data', db: 'log_fail2ban', home }), '/srv/data/rejects/log_fail2ban.ndjson');
  assert.equal(
    defaultRejectPath({ stateFile: null, dataDir: null, db: 'log_fail2ban', home }),
    '/home/someone/.local/state/couchlog/rejects/log_fail2ban.ndjson',
  );
  assert.equal(defaultRejectPath({ stateFile: null, dataDir: null, db: 'log_a/b', home }), '/home/someone/.local/state/couchlog/rejects/log_a_b.ndjson');
});
