// shipper/rotation.ts: the rotation planner against a fake filesystem
// (every case: same file, grown, rotated by rename, rotated file still
// written, copytruncate, a copy left part-shipped, truncated in place,
// rewritten past the offset, a file that does not exist).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { planPath, type FileStat, type FsView } from '../../../shipper/rotation.js';
import type { PathState } from '../../../shipper/state-file.js';

describe('rotation planner', () => {
  /** A directory of files: path -> {ino, content}. */
  function fakeFs(files: Record<string, { ino: number; content: string }>): FsView {
    const fp = (content: string, offset: number) =>
      offset === 0 ? '' : content.length < offset ? null : `fp:${content.slice(Math.max(0, offset - 8), offset)}`;
    return {
      async stat(p) {
        const f = files[p];
        return f ? ({ dev: 1, ino: f.ino, size: f.content.length, mtimeMs: f.ino } satisfies FileStat) : null;
      },
      async fingerprint(p, offset) {
        const f = files[p];
        return f ? fp(f.content, offset) : null;
      },
      async neighbours(p) {
        return Object.keys(files).filter((q) => q !== p);
      },
    };
  }
  const LOG = '/var/log/f.log';
  const stream = (ino: number, content: string, offset: number, generation: number, seenAs = LOG) => ({
    dev: 1,
    ino,
    offset,
    generation,
    fingerprint: offset === 0 ? '' : `fp:${content.slice(Math.max(0, offset - 8), offset)}`,
    seen_as: seenAs,
  });
  const entry = (current: ReturnType<typeof stream> | null, rotated: Array<ReturnType<typeof stream>> = [], next = 1): PathState => ({
    current,
    rotated,
    next_generation: next,
    updated_at: '',
  });
  const brief = (plan: Awaited<ReturnType<typeof planPath>>) => plan.reads.map((r) => [r.kind, r.path, r.ino, r.generation, r.from]);

  test('first run: the whole file, generation 0', async () => {
    const plan = await planPath(LOG, undefined, fakeFs({ [LOG]: { ino: 10, content: 'aaaa\nbbbb\n' } }));
    assert.deepEqual(brief(plan), [['current', LOG, 10, 0, 0]]);
    assert.equal(plan.nextGeneration, 1);
  });

  test('same file, grown: from the saved offset', async () => {
    const content = 'aaaa\nbbbb\ncccc\n';
    const plan = await planPath(LOG, entry(stream(10, content, 10, 0)), fakeFs({ [LOG]: { ino: 10, content } }));
    assert.deepEqual(brief(plan), [['current', LOG, 10, 0, 10]]);
    assert.deepEqual(plan.notes, []);
  });

  test('rotated by rename: the rest of the old file (found by inode), then the new one from 0 under a new generation', async () => {
    const old = 'aaaa\nbbbb\ncccc\n';
    const plan = await planPath(
      LOG,
      entry(stream(10, old, 10, 0)),
      fakeFs({ [LOG]: { ino: 11, content: 'dddd\n' }, [`${LOG}.1`]: { ino: 10, content: old }, '/var/log/other.log': { ino: 12, content: 'x' } }),
    );
    assert.deepEqual(brief(plan), [
      ['rotated', `${LOG}.1`, 10, 0, 10],
      ['current', LOG, 11, 1, 0],
    ]);
    assert.equal(plan.nextGeneration, 2);
  });

  test('a rotated file still tracked is read again from where it was left; once gone it is dropped', async () => {
    const old = 'aaaa\nbbbb\ncccc\n';
    const cur = 'dddd\neeee\n';
    const e = entry(stream(11, cur, 5, 1), [stream(10, old, 10, 0, `${LOG}.1`)], 2);
    const plan = await planPath(LOG, e, fakeFs({ [LOG]: { ino: 11, content: cur }, [`${LOG}.2`]: { ino: 10, content: `${old}ffff\n` } }));
    assert.deepEqual(brief(plan), [
      ['rotated', `${LOG}.2`, 10, 0, 10],
      ['current', LOG, 11, 1, 5],
    ]);
    const gone = await planPath(LOG, e, fakeFs({ [LOG]: { ino: 11, content: cur } }));
    assert.deepEqual(brief(gone), [['current', LOG, 11, 1, 5]]);
  });

  test('copytruncate: same inode, shorter; the copy (matching fingerprint) is read from the offset, then the file from 0', async () => {
    const before = 'aaaa\nbbbb\ncccc\n';
    const plan = await planPath(
      LOG,
      entry(stream(10, before, 10, 0)),
      fakeFs({ [LOG]: { ino: 10, content: 'zz\n' }, [`${LOG}.1`]: { ino: 20, content: before }, [`${LOG}.2.gz`]: { ino: 21, content: before } }),
    );
    assert.deepEqual(brief(plan), [
      ['copy', `${LOG}.1`, 20, 0, 10],
      ['current', LOG, 10, 1, 0],
    ]);
    assert.deepEqual(plan.notes, []);
  });

  test('truncated in place with no copy (echo "" > log): from 0 under a new generation, and a note', async () => {
    const before = 'aaaa\nbbbb\ncccc\n';
    const plan = await planPath(LOG, entry(stream(10, before, 15, 3), [], 4), fakeFs({ [LOG]: { ino: 10, content: '\n' } }));
    assert.deepEqual(brief(plan), [['current', LOG, 10, 4, 0]]);
    assert.equal(plan.nextGeneration, 5);
    assert.match(plan.notes[0]!, /truncated or rewritten/);
  });

  test('truncated and rewritten past the offset: the fingerprint tells, from 0', async () => {
    const before = 'aaaa\nbbbb\n';
    const plan = await planPath(LOG, entry(stream(10, before, 10, 0)), fakeFs({ [LOG]: { ino: 10, content: 'xxxxxxxxxxxxxxxxxxxx\n' } }));
    assert.deepEqual(brief(plan), [['current', LOG, 10, 1, 0]]);
  });

  test('the old file gone and the path recreated: a note, the new file from 0', async () => {
    const plan = await planPath(LOG, entry(stream(10, 'aaaa\n', 5, 0)), fakeFs({ [LOG]: { ino: 11, content: 'b\n' } }));
    assert.deepEqual(brief(plan), [['current', LOG, 11, 1, 0]]);
    assert.match(plan.notes[0]!, /previous file \(inode 10\) is gone/);
  });

  test('a rotated file still followed that is gone (deleted, compressed): a note, once, and it leaves the plan', async () => {
    const cur = 'cccc\n';
    const plan = await planPath(
      LOG,
      entry(stream(11, cur, 5, 1), [stream(10, 'aaaa\nbbbb\n', 10, 0, `${LOG}.1`)]),
      fakeFs({ [LOG]: { ino: 11, content: cur } }),
    );
    assert.deepEqual(brief(plan), [['current', LOG, 11, 1, 5]]);
    assert.equal(plan.notes.length, 1);
    assert.match(plan.notes[0]!, /\/var\/log\/f\.log\.1 \(rotated from \/var\/log\/f\.log, inode 10\) is gone or was rewritten/);
  });

  test('a copytruncate copy not shipped whole (a run failed in it) is read again as a copy, found by inode, before the file', async () => {
    const before = 'aaaa\nbbbb\ncccc\n';
    const cur = 'zz\nyy\n';
    const copy = { ...stream(20, before, 10, 0, `${LOG}.1`), copy: true as const };
    // Rotated once more since: the copy is now .2, and a newer copy with other lines is .1.
    const files = { [LOG]: { ino: 10, content: cur }, [`${LOG}.1`]: { ino: 21, content: 'other\n' }, [`${LOG}.2`]: { ino: 20, content: before } };
    const plan = await planPath(LOG, entry(stream(10, cur, 3, 1), [copy], 2), fakeFs(files));
    assert.deepEqual(brief(plan), [
      ['copy', `${LOG}.2`, 20, 0, 10],
      ['current', LOG, 10, 1, 3],
    ]);
    assert.deepEqual(plan.notes, []);
    const gone = await planPath(LOG, entry(stream(10, cur, 3, 1), [copy], 2), fakeFs({ [LOG]: files[LOG]! }));
    assert.deepEqual(brief(gone), [['current', LOG, 10, 1, 3]]);
    assert.equal(gone.notes.length, 1);
    assert.match(
      gone.notes[0]!,
      /\/var\/log\/f\.log\.1 \(copytruncate's copy of \/var\/log\/f\.log, inode 20\) is gone .* from byte 10 on could not be shipped/,
    );
  });

  test('a copy still followed is not taken for a new copy of the file', async () => {
    // The file's own stream (offset 5, "bbbb\n" before it) was truncated again. The old copy's bytes
    // before 5 are the same and its mtime is the later one (the fake's mtime is the inode), but it is
    // planned already: the new copy .1 is the one, or its lines would never be read.
    const copy = { ...stream(22, 'bbbb\nbbbb\nxx\n', 10, 0, `${LOG}.2`), copy: true as const };
    const plan = await planPath(
      LOG,
      entry(stream(10, 'bbbb\n', 5, 1), [copy], 2),
      fakeFs({
        [LOG]: { ino: 10, content: 'c\n' },
        [`${LOG}.1`]: { ino: 21, content: 'bbbb\ndddd\n' },
        [`${LOG}.2`]: { ino: 22, content: 'bbbb\nbbbb\nxx\n' },
      }),
    );
    assert.deepEqual(brief(plan), [
      ['copy', `${LOG}.2`, 22, 0, 10],
      ['copy', `${LOG}.1`, 21, 1, 5],
      ['current', LOG, 10, 2, 0],
    ]);
  });

  test('a file that does not exist, and never did: nothing to read, and a note naming it (a misspelt name ships nothing)', async () => {
    for (const e of [undefined, entry(null)]) {
      const plan = await planPath(LOG, e, fakeFs({ '/var/log/other.log': { ino: 12, content: 'x\n' } }));
      assert.deepEqual(brief(plan), []);
      assert.equal(plan.notes.length, 1);
      assert.match(plan.notes[0]!, /^\/var\/log\/f\.log does not exist \(or is not a file\): nothing shipped from it \(check the name/);
    }
  });

  test('rotated but not yet recreated: only the rest of the old file', async () => {
    const old = 'aaaa\nbbbb\n';
    const plan = await planPath(LOG, entry(stream(10, old, 5, 0)), fakeFs({ [`${LOG}.1`]: { ino: 10, content: old } }));
    assert.deepEqual(brief(plan), [['rotated', `${LOG}.1`, 10, 0, 5]]);
    assert.deepEqual(plan.notes, []);
    // Next run: the old file is still followed, the path still not recreated; nothing to say.
    const later = await planPath(LOG, entry(null, [stream(10, old, 10, 0, `${LOG}.1`)]), fakeFs({ [`${LOG}.1`]: { ino: 10, content: old } }));
    assert.deepEqual(brief(later), [['rotated', `${LOG}.1`, 10, 0, 10]]);
    assert.deepEqual(later.notes, []);
  });
});
