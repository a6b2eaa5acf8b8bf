// removeAckedPrefix (shipper/truncate.ts) on real files: collapse
// removes whole blocks and blanks the rest of the acknowledged part, the
// bytes after it are untouched; copy removes exactly the acknowledged
// bytes; where the filesystem cannot collapse (tmpfs), auto falls back to
// copy and says why, and collapse alone fails without changing the file.
// Neither touches a file that no longer starts with what was read (it was
// truncated and written again meanwhile), nor copy a file that never stops
// growing.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeAckedPrefix, type TruncateMethod } from '../../../shipper/truncate.js';
import { LinePrefixDigest, type PrefixDigest } from '../../../shipper/prefix-digest.js';

/** Lines of 100 bytes (99 + "\n") numbered from 0. */
function lines(from: number, count: number): string {
  let s = '';
  for (let i = from; i < from + count; i++) s += `${`line ${i} `.padEnd(99, 'x')}\n`;
  return s;
}

/** The digest a run takes of the complete lines it read, in chunks of `chunk` bytes. */
async function digestOf(bytes: string, chunk = 7): Promise<PrefixDigest> {
  const d = new LinePrefixDigest();
  const buf = Buffer.from(bytes);
  const parts = Array.from({ length: Math.ceil(buf.length / chunk) }, (_, i) => buf.subarray(i * chunk, (i + 1) * chunk));
  for await (const _ of d.tap(
    (async function* () {
      yield* parts;
    })(),
  ));
  return d.digest();
}

/** As a run does it: `read` is what the file held when it was read (default: what it holds now). */
async function truncate(file: string, acked: number, method: TruncateMethod, read?: string, tamper?: (fh: FileHandle) => void) {
  const digest = await digestOf((read ?? readFileSync(file, 'utf8')).slice(0, acked));
  const fh = await open(file, 'r+');
  try {
    tamper?.(fh);
    return await removeAckedPrefix(fh, acked, method, digest);
  } finally {
    await fh.close();
  }
}

function withDir(base: string, fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(base, 'couchlog-truncate-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const BLANK = /^ *\n$/;

describe('collapse (ext4/XFS)', () => {
  test(
    'whole blocks go, the rest of the acknowledged part becomes one blank line, what follows is intact',
    withDir(tmpdir(), async (dir) => {
      const file = join(dir, 'log');
      writeFileSync(file, lines(0, 100) + lines(100, 50));
      const block = statSync(file).blksize;
      const r = await truncate(file, 100 * 100, 'collapse');
      const removed = Math.floor(10_000 / block) * block;
      assert.deepEqual(r, { method: 'collapse', removed, blanked: 10_000 - removed });
      const after = readFileSync(file, 'utf8');
      const blank = after.slice(0, 10_000 - removed);
      assert.match(blank, BLANK);
      assert.equal(after.slice(10_000 - removed), lines(100, 50), 'the unacknowledged lines, byte for byte');
    }),
  );

  test(
    'everything acknowledged and the size a multiple of the block: one block of blank line stays (the kernel keeps at least a byte)',
    withDir(tmpdir(), async (dir) => {
      const file = join(dir, 'log');
      const block = 4096;
      writeFileSync(file, `${'y'.repeat(block * 2 - 1)}\n`);
      if (statSync(file).blksize !== block) return;
      const r = await truncate(file, block * 2, 'collapse');
      assert.equal(r.removed, block);
      assert.match(readFileSync(file, 'utf8'), BLANK);
      assert.equal(statSync(file).size, block);
    }),
  );

  test(
    'less than a block acknowledged: nothing to collapse, the lines are blanked in place',
    withDir(tmpdir(), async (dir) => {
      const file = join(dir, 'log');
      writeFileSync(file, lines(0, 3) + lines(3, 2));
      const r = await truncate(file, 300, 'collapse');
      assert.deepEqual(r, { method: 'collapse', removed: 0, blanked: 300 });
      const after = readFileSync(file, 'utf8');
      assert.match(after.slice(0, 300), BLANK);
      assert.equal(after.slice(300), lines(3, 2));
    }),
  );

  test(
    'a file shorter than what was acknowledged (someone else truncated it) is left alone',
    withDir(tmpdir(), async (dir) => {
      const file = join(dir, 'log');
      writeFileSync(file, lines(0, 2));
      await assert.rejects(truncate(file, 1000, 'collapse', lines(0, 10)), /truncated by someone else; left alone/);
      assert.equal(readFileSync(file, 'utf8'), lines(0, 2));
    }),
  );
});

describe('a file truncated and written again while it was read', () => {
  for (const method of ['collapse', 'copy'] as const) {
    test(
      `${method}: left alone when it has grown past what was acknowledged with lines nobody read`,
      withDir(tmpdir(), async (dir) => {
        const file = join(dir, 'log');
        const read = lines(0, 100);
        // Truncated after the read (copytruncate, `: > log`), then 150 new lines written.
        writeFileSync(file, lines(1000, 150));
        await assert.rejects(truncate(file, 10_000, method, read), /no longer starts with the 10000 bytes that were shipped/);
        assert.equal(readFileSync(file, 'utf8'), lines(1000, 150), 'every new line kept, byte for byte');
      }),
    );
  }
});

describe('LinePrefixDigest', () => {
  test('the digest of the complete lines, whatever the chunk sizes', async () => {
    const text = lines(0, 3) + 'partial';
    const whole = await digestOf(lines(0, 3), 1000);
    for (const chunk of [1, 2, 99, 100, 101, 1000]) assert.deepEqual(await digestOf(text, chunk), whole, `chunks of ${chunk}`);
    assert.equal(whole.length, 300);
    assert.deepEqual(await digestOf('no newline'), await digestOf(''));
    assert.equal((await digestOf('')).length, 0);
  });
});

/** Runs `act` (with the call's number) each time the file handle is asked its size, before it answers. */
function onStat(act: (call: number) => unknown): (fh: FileHandle) => void {
  return (fh) => {
    const stat = fh.stat.bind(fh);
    let calls = 0;
    fh.stat = (async (...args: Parameters<FileHandle['stat']>) => {
      act(++calls);
      return stat(...args);
    }) as FileHandle['stat'];
  };
}

describe('copy', () => {
  test(
    'a file truncated and refilled while its tail is re-read is left alone',
    withDir(tmpdir(), async (dir) => {
      const file = join(dir, 'log');
      writeFileSync(file, lines(0, 10) + lines(10, 5));
      const original = readFileSync(file, 'utf8');
      // After the first look, someone runs `: > log` and the writer fills it past the old size.
      const refill = onStat((call) => call === 2 && writeFileSync(file, lines(500, 20)));
      await assert.rejects(truncate(file, 1000, 'copy', original, refill), /truncated or rewritten while its tail was copied: left alone/);
      assert.equal(readFileSync(file, 'utf8'), lines(500, 20), 'the new lines, all of them');
    }),
  );

  test(
    'a file that keeps growing while its tail is copied is not truncated',
    withDir(tmpdir(), async (dir) => {
      const file = join(dir, 'log');
      writeFileSync(file, lines(0, 10) + lines(10, 5));
      const original = readFileSync(file, 'utf8');
      // A writer busier than the copy: a line lands between any two looks at the size.
      const grow = onStat(() => appendFileSync(file, 'more\n'));
      await assert.rejects(truncate(file, 1000, 'copy', original, grow), /kept growing while its tail was copied .*not truncated/);
      const after = readFileSync(file, 'utf8');
      assert.ok(after.startsWith(original), 'nothing removed');
      assert.equal(after.slice(original.length), 'more\n'.repeat((after.length - original.length) / 5), 'every appended line kept');
    }),
  );

  test(
    'exactly the acknowledged bytes go',
    withDir(tmpdir(), async (dir) => {
      const file = join(dir, 'log');
      writeFileSync(file, lines(0, 10) + lines(10, 5) + 'partial');
      const r = await truncate(file, 1000, 'copy');
      assert.deepEqual(r, { method: 'copy', removed: 1000, blanked: 0 });
      assert.equal(readFileSync(file, 'utf8'), `${lines(10, 5)}partial`);
    }),
  );
});

describe('a filesystem without collapse-range (tmpfs)', () => {
  const shm = '/dev/shm';
  const available = existsSync(shm);

  test(
    'auto falls back to copy and says why',
    { skip: !available && 'no /dev/shm' },
    withDir(shm, async (dir) => {
      const file = join(dir, 'log');
      writeFileSync(file, lines(0, 100) + lines(100, 1));
      const r = await truncate(file, 10_000, 'auto');
      assert.equal(r.method, 'copy');
      assert.match(r.fallbackReason ?? '', /type 0x1021994\) cannot collapse ranges/);
      assert.equal(readFileSync(file, 'utf8'), lines(100, 1));
    }),
  );

  test(
    'collapse alone fails and changes nothing',
    { skip: !available && 'no /dev/shm' },
    withDir(shm, async (dir) => {
      const file = join(dir, 'log');
      writeFileSync(file, lines(0, 100) + lines(100, 1));
      await assert.rejects(truncate(file, 10_000, 'collapse'), /cannot collapse ranges/);
      assert.equal(readFileSync(file, 'utf8'), lines(0, 100) + lines(100, 1));
    }),
  );
});
