// Appends are whole lines in the order asked, and a disk that fills up
// half-way through an append leaves nothing a reader could take for a line:
// a tiny tmpfs (root only, as CI runs) makes the write fail part-way.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LineAppender } from '../../../lib/line-appender.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'couchlog-appender-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const line = (i: number, pad = 0) => `${JSON.stringify({ id: `r${i}`, pad: 'x'.repeat(pad) })}\n`;

test('appends asked for at once land whole and in order', async () => {
  const path = join(dir, 'order.jsonl');
  const file = new LineAppender(path, { mode: 0o640, sync: false });
  await Promise.all(Array.from({ length: 500 }, (_, i) => file.append(line(i, i % 7 === 0 ? 5000 : 3))));
  await file.close();
  const ids = readFileSync(path, 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => (JSON.parse(l) as { id: string }).id);
  assert.deepEqual(
    ids,
    Array.from({ length: 500 }, (_, i) => `r${i}`),
  );
  assert.equal(statSync(path).mode & 0o777, 0o640);
});

test('reopen() after the file was moved away: the next append makes a new file', async () => {
  const path = join(dir, 'rotated.jsonl');
  const file = new LineAppender(path, { mode: 0o640, sync: true });
  await file.append(line(1));
  execFileSync('mv', [path, `${path}.1`]);
  await file.reopen();
  await file.append(line(2));
  await file.close();
  assert.equal(readFileSync(`${path}.1`, 'utf8'), line(1));
  assert.equal(readFileSync(path, 'utf8'), line(2));
});

const isRoot = process.getuid?.() === 0;

test(
  'a disk that fills up during an append: nothing of it stays; the retry after space is freed is whole',
  { skip: !isRoot && 'needs root to mount a small tmpfs' },
  async () => {
    const mnt = mkdtempSync(join(tmpdir(), 'couchlog-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
    try {
      const path = join(mnt, 'records.jsonl');
      const file = new LineAppender(path, { mode: 0o640, sync: true });
      await file.append(line(0));
      const before = readFileSync(path, 'utf8');
      // Leave about 12 KB free, then append 40 KB in one go: part of it fits.
      writeFileSync(join(mnt, 'filler'), Buffer.alloc(64 * 1024 - 12 * 1024 - 4096));
      const big = Array.from({ length: 40 }, (_, i) => line(i + 1, 1000)).join('');
      await assert.rejects(file.append(big), /ENOSPC/);
      assert.equal(readFileSync(path, 'utf8'), before, 'the part written before the disk filled up was cut off');
      rmSync(join(mnt, 'filler'));
      await file.append(big);
      await file.close();
      const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
      assert.equal(lines.length, 41);
      assert.deepEqual(
        lines.map((l) => (JSON.parse(l) as { id: string }).id),
        Array.from({ length: 41 }, (_, i) => `r${i}`),
      );
    } finally {
      execFileSync('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  },
);
