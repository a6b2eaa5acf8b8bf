// The shipper's pure logic: deterministic ids, backoff and Retry-After,
// the acknowledged frontier, how ingress answers are sorted, the target
// URL, the state file, and the rotation planner against a fake filesystem
// (every case: same file, grown, rotated by rename, rotated file still
// written, copytruncate, truncated in place, rewritten past the offset).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckTracker } from '../../../shipper/ack-tracker.js';
import { Batcher } from '../../../shipper/batcher.js';
import { backoffDelay, retryAfterMs } from '../../../lib/retry.js';
import { docId, sourceKey, withId } from '../../../shipper/doc-id.js';
import { classify, parseTarget } from '../../../shipper/ingress-client.js';
import { planPath, type FileStat, type FsView } from '../../../shipper/rotation.js';
import { emptyState, loadState, saveState, type PathState } from '../../../shipper/state-file.js';
import { checkShipOptions } from '../../../shipper/ship.js';
import { UsageError, OperationError } from '../../../lib/errors.js';

describe('document ids', () => {
  const key = sourceKey('/var/log/fail2ban.log', 0);

  test('the same line at the same place of the same source: the same id, every time', () => {
    assert.equal(docId(key, 1234, 'a line'), docId(sourceKey('/var/log/fail2ban.log', 0), 1234, 'a line'));
    assert.match(docId(key, 1234, 'a line'), /^[0-9a-f]{40}$/);
  });

  test('any difference (source, generation, offset, content) gives another id', () => {
    const ids = new Set([
      docId(key, 1234, 'a line'),
      docId(sourceKey('/var/log/other.log', 0), 1234, 'a line'),
      docId(sourceKey('/var/log/fail2ban.log', 1), 1234, 'a line'),
      docId(key, 1235, 'a line'),
      docId(key, 1234, 'a line!'),
      docId(key, 1234, ['a line']),
      docId(key, 1234, ['a', 'line']),
    ]);
    assert.equal(ids.size, 7);
  });

  test('ids sort by offset within a source (documents stay in file order in _all_docs)', () => {
    const ids = [5, 100, 4096, 1e9].map((o) => docId(key, o, `line at ${o}`));
    assert.deepEqual([...ids].sort(), ids);
  });

  test('withId puts _id first and keeps the rest of the JSON as written', () => {
    assert.equal(withId('{"a":1,"big":12345678901234567890}', 'x'), '{"_id":"x","a":1,"big":12345678901234567890}');
    assert.equal(withId('{}', 'x'), '{"_id":"x"}');
    assert.equal(withId('{ }', 'x'), '{"_id":"x"}');
    assert.equal(withId('{ "a" : 1 }', 'x'), '{"_id":"x","a" : 1 }');
    assert.deepEqual(JSON.parse(withId('{"q":"\\"}"}', 'i"d')), { _id: 'i"d', q: '"}' });
  });
});

describe('backoff', () => {
  test('each delay is between half and all of min(max, base * 2^attempt)', () => {
    const o = { baseMs: 100, maxMs: 5000 };
    for (const [attempt, ceiling] of [
      [0, 100],
      [1, 200],
      [3, 800],
      [6, 5000],
      [60, 5000],
    ] as const) {
      assert.equal(
        backoffDelay(attempt, o, () => 0),
        ceiling / 2,
      );
      assert.equal(
        backoffDelay(attempt, o, () => 1),
        ceiling,
      );
    }
  });

  test('jitter spreads clients that failed together', () => {
    const delays = new Set(Array.from({ length: 50 }, () => Math.round(backoffDelay(4, { baseMs: 100, maxMs: 60_000 }))));
    assert.ok(delays.size > 20);
  });

  test('Retry-After: seconds or an HTTP date; absent or unreadable is null', () => {
    assert.equal(retryAfterMs('5'), 5000);
    assert.equal(retryAfterMs(['2']), 2000);
    assert.equal(retryAfterMs('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT')), 10_000);
    assert.equal(retryAfterMs('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 08:00:00 GMT')), 0);
    assert.equal(retryAfterMs(undefined), null);
    assert.equal(retryAfterMs('soon'), null);
  });
});

describe('ack tracker', () => {
  test('the frontier is the end of the longest done prefix, whatever the order acks come in', () => {
    const t = new AckTracker(100);
    assert.equal(t.frontier(), 100);
    const idx = [0, 1, 2, 3].map((i) => t.add(100 + i * 10, 110 + i * 10));
    t.markDone(idx[1]!);
    t.markDone(idx[3]!);
    assert.equal(t.frontier(), 100);
    t.markDone(idx[0]!);
    assert.equal(t.frontier(), 120);
    assert.equal(t.allDone(), false);
    t.markDone(idx[2]!);
    assert.equal(t.frontier(), 140);
    assert.equal(t.allDone(), true);
  });

  test('a done document of non-adjacent lines never straddles the frontier', () => {
    const t = new AckTracker(0);
    const l = [0, 1, 2, 3, 4].map((i) => t.add(i * 10, i * 10 + 10));
    // An audit event made of lines 0 and 3 is done; line 1 (another event) is not.
    t.markDone([l[0]!, l[3]!]);
    t.markDone(l[2]!);
    assert.equal(t.frontier(), 0, 'not 10: reading again from line 1 would see line 3 without line 0, its event cut in two');
    t.markDone(l[1]!);
    assert.equal(t.frontier(), 40);
    // Now an event of lines 4 and a later 6 that is done while 5 is not.
    const l5 = t.add(50, 60);
    const l6 = t.add(60, 70);
    t.markDone([l[4]!, l6]);
    assert.equal(t.frontier(), 40, 'not 50: that would cut the event of lines 4 and 6');
    t.markDone(l5);
    assert.equal(t.frontier(), 70);
  });

  test('a million lines, acked in order: memory is reclaimed and the frontier stays right', () => {
    const t = new AckTracker(0);
    for (let i = 0; i < 1_000_000; i++) t.markDone(t.add(i * 80, i * 80 + 80));
    assert.equal(t.frontier(), 80_000_000);
    assert.equal(t.lastEnd(), 80_000_000);
  });
});

describe('batches', () => {
  test('closed at the document count or the size, whichever comes first; the rest on flush', () => {
    const b = new Batcher<{ json: string }>(3, 25);
    for (const json of ['aaaa', 'bbbb', 'cccc', 'dddd', 'x'.repeat(30), 'eeee']) b.add({ json });
    assert.deepEqual(
      b.take().map((batch) => batch.map((d) => d.json.length)),
      [
        [4, 4, 4],
        [4, 30],
      ],
    );
    assert.deepEqual(b.take(), []);
    assert.deepEqual(
      b.take(true).map((batch) => batch.length),
      [1],
    );
    assert.deepEqual(b.take(true), []);
  });
});

describe('ingress answers', () => {
  const ids = ['a', 'b', 'c', 'd'];
  test('201: stored, conflict (already stored), unknown (retry), refused document', () => {
    const body = JSON.stringify([
      { ok: true, id: 'a', rev: '1-x' },
      { id: 'b', error: 'conflict', reason: 'Document update conflict.' },
      { id: 'c', error: 'unknown', reason: 'CouchDB gave no result' },
      { id: 'd', error: 'forbidden', reason: 'nope' },
    ]);
    assert.deepEqual(classify(201, body, null, ids), {
      kind: 'results',
      results: [
        { kind: 'stored' },
        { kind: 'exists' },
        { kind: 'retry', reason: 'CouchDB gave no result' },
        { kind: 'rejected', error: 'forbidden', reason: 'nope' },
      ],
    });
  });

  test('results out of order are matched by id; a missing one is retried', () => {
    const body = JSON.stringify([
      { ok: true, id: 'c', rev: '1' },
      { ok: true, id: 'a', rev: '1' },
    ]);
    const r = classify(201, body, null, ['a', 'b', 'c']);
    assert.deepEqual(r, {
      kind: 'results',
      results: [{ kind: 'stored' }, { kind: 'retry', reason: 'the ingress gave no result for this document' }, { kind: 'stored' }],
    });
  });

  test('429 and 5xx are retried with Retry-After; 400/403/413 refuse the batch; 401 and 404 are fatal', () => {
    assert.deepEqual(classify(429, '{"error":"too_many_requests","reason":"slow down","code":"INGRESS_RATE_LIMITED"}', 3000, ids), {
      kind: 'retry',
      reason: '429 too_many_requests INGRESS_RATE_LIMITED: slow down',
      retryAfterMs: 3000,
    });
    assert.equal(classify(503, '{"error":"service_unavailable"}', 5000, ids).kind, 'retry');
    assert.equal(classify(502, '<html>bad gateway</html>', null, ids).kind, 'retry');
    for (const s of [400, 403, 413]) assert.equal(classify(s, '{"error":"forbidden","reason":"x"}', null, ids).kind, 'refused');
    assert.match(
      (classify(401, '{"error":"unauthorized","reason":"Name or password is incorrect."}', null, ids) as { reason: string }).reason,
      /refused the credentials/,
    );
    assert.match((classify(404, '{"error":"not_found","reason":"unknown app"}', null, ids) as { reason: string }).reason, /no such log database/);
    assert.equal(classify(201, 'not json', null, ids).kind, 'retry');
  });
});

describe('target URL', () => {
  test('the seed-style URL, a trailing slash, _bulk_docs, a base URL with --app, credentials', () => {
    assert.deepEqual(parseTarget('http://h:8080/log_fail2ban'), {
      origin: 'http://h:8080',
      dbPath: '/log_fail2ban',
      authorization: null,
      display: 'http://h:8080/log_fail2ban',
    });
    assert.equal(parseTarget('http://h:8080/log_fail2ban/').dbPath, '/log_fail2ban');
    assert.equal(parseTarget('http://h/log_x/_bulk_docs').dbPath, '/log_x');
    assert.equal(parseTarget('https://h/couch', 'web').dbPath, '/couch/log_web');
    const t = parseTarget('http://writer:p%40ss@h:8080/log_web');
    assert.equal(t.authorization, `Basic ${Buffer.from('writer:p@ss').toString('base64')}`);
    assert.ok(!t.display.includes('p%40ss') && !t.display.includes('writer'), 'no credentials in messages');
  });

  test('bad URLs are usage errors', () => {
    for (const [url, app, re] of [
      ['nope', undefined, /not a URL/],
      ['ftp://h/log_x', undefined, /http/],
      ['http://h:8080/', undefined, /must end with \/log_<app>/],
      ['http://h/log_x', 'y', /names log_x but --app is y/],
      ['http://h/log_UPPER', undefined, /must end with/],
    ] as const) {
      assert.throws(
        () => parseTarget(url, app),
        (e: unknown) => e instanceof UsageError && re.test(e.message),
        url,
      );
    }
  });
});

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

  test('rotated but not yet recreated: only the rest of the old file', async () => {
    const old = 'aaaa\nbbbb\n';
    const plan = await planPath(LOG, entry(stream(10, old, 5, 0)), fakeFs({ [`${LOG}.1`]: { ino: 10, content: old } }));
    assert.deepEqual(brief(plan), [['rotated', `${LOG}.1`, 10, 0, 5]]);
  });
});
