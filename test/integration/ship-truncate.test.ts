// couchlog-ship --truncate against a real ingress while another process
// keeps appending to the log, as fail2ban does (one O_APPEND descriptor, one
// write per line): after every run, each line ever written is either in the
// database or still in the file, never both, never neither. Also: a half
// written last line waits for the next run; refused documents and lines
// that are not JSON go to the reject file and do not block the truncation;
// the copy method on a quiet file.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock } from '../../shipper/lock.js';
import { serverIndependent, startStack, type Stack } from '../helpers/stack.js';
import { allDocs, banLine, contentLines, ship } from '../helpers/shipper.js';

const SKIP = serverIndependent("couchlog-ship --truncate and its reject file; it writes through the ingress, whose writes every server's run tests");

let stack: Stack;
let dir: string;
before(async () => {
  if (SKIP) return;
  stack = await startStack({ yaml: { apps: { appended: {}, partial: {}, rejects: {}, copy: {}, strict: {}, repeated: {} } } });
  dir = mkdtempSync(join(tmpdir(), 'couchlog-ship-truncate-'));
});
after(async () => {
  if (SKIP) return;
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A writer like fail2ban's: opens the log once in append mode and writes
 * one line per write(2), in bursts of 2 about every millisecond (up to
 * 2,000 lines a second: what a slower server stores keeps up, so the runs
 * do not grow with the backlog; with 4, Apache CouchDB 3 under validation
 * took 90 s where the embedded server took 20), until its stdin closes or it has written `cap`
 * lines; then it prints how many it wrote. The test closes stdin once enough
 * runs have truncated while it wrote, so the overlap does not depend on how
 * fast the machine is (a slow CI machine once saw a fixed 12,000 lines end
 * within the first run).
 */
const APPENDER = `
const fs = require('fs');
const [file, cap] = [process.argv[1], Number(process.argv[2])];
const fd = fs.openSync(file, 'a');
let n = 0;
let stop = false;
process.stdin.on('end', () => (stop = true)).resume();
function burst() {
  for (let k = 0; k < 2 && n < cap; k++) fs.writeSync(fd, JSON.stringify({ seq: n++, pad: 'x'.repeat(60) }) + '\\n');
  if (n < cap && !stop) return void setTimeout(burst, 1);
  fs.closeSync(fd);
  process.stdout.write(String(n));
  process.stdin.destroy();
}
burst();
`;

function seqsOf(lines: string[]): number[] {
  return lines.map((l) => (JSON.parse(l) as { seq: number }).seq);
}

describe('--truncate', { skip: SKIP }, () => {
  test('while another process keeps appending: every line is in the file or in the database, none in both, none lost', async (t) => {
    const file = join(dir, 'appended.log');
    writeFileSync(file, '');
    const appender = spawn(process.execPath, ['-e', APPENDER, file, '400000'], { stdio: ['pipe', 'pipe', 'inherit'] });
    t.after(() => void appender.kill());
    let written = '';
    appender.stdout.on('data', (chunk: Buffer) => (written += chunk.toString()));
    const appenderDone = new Promise<number>((ok) => appender.on('exit', () => ok(Number(written))));
    let appending = true;
    void appenderDone.then(() => (appending = false));
    const args = [
      '--url',
      `${stack.url}/log_appended`,
      '--truncate',
      '--truncate-method',
      'collapse',
      '--batch-size',
      '400',
      '-v',
      '--reject-file',
      join(dir, 'rejects-appended.ndjson'),
      file,
    ];
    let runs = 0;
    let runsWhileAppending = 0;
    let removedWhileAppending = 0;
    for (;;) {
      const wasAppending = appending;
      const r = await ship(args);
      runs++;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /removed \d+ bytes(?: and blanked \d+)? \((collapse|none)\)/, 'collapse-range did the truncation (ext4), never copy');
      const removed = /removed (\d+) bytes/.exec(r.stderr);
      if (wasAppending) {
        runsWhileAppending++;
        removedWhileAppending += removed ? Number(removed[1]) : 0;
      }

      // The database first, then the file: a line the run stored must be gone from the file.
      const inDb = (await allDocs(stack, 'log_appended')).map((d) => d.seq as number);
      const inFile = seqsOf(contentLines(readFileSync(file, 'utf8')));
      const db = new Set(inDb);
      assert.equal(db.size, inDb.length, `run ${runs}: no line stored twice`);
      const both = inFile.filter((s) => db.has(s));
      assert.deepEqual(both, [], `run ${runs}: no line both stored and still in the file`);
      const union = [...inDb, ...inFile].sort((a, b) => a - b);
      assert.deepEqual(
        union,
        Array.from({ length: union.length }, (_, i) => i),
        `run ${runs}: no line lost (0..${union.length - 1} all there)`,
      );
      if (wasAppending && runsWhileAppending >= 3 && removedWhileAppending > 0) appender.stdin.end();
      if (!wasAppending && inFile.length === 0) break;
      assert.ok(runs < 200, 'converges');
    }
    const total = await appenderDone;
    assert.ok(total > 0, 'the writer said how many lines it wrote');
    const docs = await allDocs(stack, 'log_appended');
    assert.equal(docs.length, total, 'all lines stored once the writer stopped');
    t.diagnostic(`${runs} runs, ${runsWhileAppending} of them while the writer was appending, removing ${removedWhileAppending} bytes meanwhile`);
    assert.ok(runsWhileAppending >= 3, `${runsWhileAppending} runs overlapped the writer`);
    assert.ok(removedWhileAppending > 0, 'bytes were removed while the writer was appending');
    assert.ok(readFileSync(file).length < 4096, 'what is left is less than one block of blank line');
  });

  test('a last line still being written (no "\\n" yet) is neither sent nor removed; the next run takes it', async () => {
    const file = join(dir, 'partial.log');
    writeFileSync(file, '{"n":1}\n{"n":2}\n{"n":3,"half":');
    const args = ['--url', `${stack.url}/log_partial`, '--truncate', '--reject-file', join(dir, 'rejects-partial.ndjson'), file];
    const r = await ship(args);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await allDocs(stack, 'log_partial')).map((d) => d.n).sort(), [1, 2]);
    assert.deepEqual(contentLines(readFileSync(file, 'utf8')), ['{"n":3,"half":']);
    appendFileSync(file, 'true}\n');
    assert.equal((await ship(args)).code, 0);
    assert.deepEqual((await allDocs(stack, 'log_partial')).map((d) => d.n).sort(), [1, 2, 3]);
    assert.deepEqual(contentLines(readFileSync(file, 'utf8')), []);
  });

  test('refused documents and lines that are not JSON go to the reject file with the reason; the rest is stored and the file truncated', async () => {
    const file = join(dir, 'rejects.log');
    const rejects = join(dir, 'rejects.ndjson');
    const lines = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ i }));
    lines[10] = '{"i":10,"_rev":"1-abc"}';
    lines[500] = 'not json at all';
    lines[700] = JSON.stringify({ i: 700, _deleted: true });
    // Found by a black-box test: a number out of range stopped every run at this line, for good.
    lines[900] = '{"i":900,"n":1e400}';
    writeFileSync(file, `${lines.join('\n')}\n`);
    const r = await ship(['--url', `${stack.url}/log_rejects`, '--truncate', '--batch-size', '1000', '--reject-file', rejects, file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /1 lines did not match and 3 documents were refused: written to .*rejects\.ndjson/);
    assert.match(r.stderr, /rejects\.log:11: refused by the ingress: 403 forbidden INGRESS_DOC_HAS_REV/);
    const stored = (await allDocs(stack, 'log_rejects')).map((d) => d.i as number).sort((a, b) => a - b);
    assert.equal(stored.length, 996, 'the batch was split until only the bad documents were left out');
    assert.ok(!stored.includes(10) && !stored.includes(700) && !stored.includes(900));
    const entries = readFileSync(rejects, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      entries
        .map((e) => [e.line, e.text, /INGRESS_DOC_HAS_REV|INGRESS_DOC_DELETED|INGRESS_UNSAFE_NUMBER|not JSON/.test(e.reason)])
        .sort((a, b) => (a[0] as number) - (b[0] as number)),
      [
        [11, lines[10], true],
        [501, 'not json at all', true],
        [701, lines[700], true],
        [901, lines[900], true],
      ],
    );
    assert.ok(entries.every((e) => e.source.endsWith('rejects.log') && typeof e.offset === 'number'));
    assert.deepEqual(contentLines(readFileSync(file, 'utf8')), [], 'set aside with a reason counts as done');
  });

  test('a line of 9 MiB is sent, refused (413) and set aside whole; one over --max-line-bytes stops the run with the file left as it was', async () => {
    const file = join(dir, 'long-line.log');
    const rejectFile = join(dir, 'rejects-long.ndjson');
    const big = `{"big":"${'x'.repeat(9 * 1024 * 1024)}"}`;
    writeFileSync(file, `{"longline":1}\n${big}\n{"longline":2}\n`);
    const capped = await ship(['--url', `${stack.url}/log_rejects`, '--truncate', '--max-line-bytes', String(1024 * 1024), '--reject-file', rejectFile, file]);
    assert.equal(capped.code, 1, capped.stderr);
    assert.match(capped.stderr, /long-line\.log:2: a line of 9437195 bytes, over --max-line-bytes 1048576: not sent and not set aside/);
    assert.equal(readFileSync(file, 'utf8'), `{"longline":1}\n${big}\n{"longline":2}\n`, 'nothing removed');
    const r = await ship(['--url', `${stack.url}/log_rejects`, '--truncate', '--reject-file', rejectFile, file]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      (await allDocs(stack, 'log_rejects'))
        .map((d) => d.longline)
        .filter((n) => n !== undefined)
        .sort(),
      [1, 2],
    );
    const [entry, ...more] = readFileSync(rejectFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(more, []);
    assert.equal(entry.line, 2);
    assert.match(entry.reason, /413/);
    assert.equal(entry.text, big, 'the whole line');
    assert.deepEqual(contentLines(readFileSync(file, 'utf8')), []);
  });

  test('a reject file that cannot be written: the run fails, the line stays in the log, and nothing claims it was written', async () => {
    const file = join(dir, 'unwritable.log');
    writeFileSync(file, '{"ok":1}\nnot json\n{"ok":2}\n');
    const blocker = join(dir, 'a-file');
    writeFileSync(blocker, '');
    const r = await ship(['--url', `${stack.url}/log_rejects`, '--truncate', '--reject-file', join(blocker, 'rejects.ndjson'), file]);
    assert.equal(r.code, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /written to .* with the reasons/);
    assert.match(r.stderr, /1 lines did not match and 0 documents were refused: 0 of them written to /);
    assert.match(readFileSync(file, 'utf8'), /not json/, 'nothing truncated');
  });

  test('a line repeated after a truncation, at the same offset, is a new document, not "already stored"', async () => {
    const file = join(dir, 'repeated.log');
    const line = JSON.stringify({ msg: 'backup job failed: disk full', host: 'db1' });
    for (let run = 1; run <= 3; run++) {
      writeFileSync(file, `${line}\n`, { flag: 'a' });
      const r = await ship(['--url', `${stack.url}/log_repeated`, '--truncate', '-v', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /1 stored, 0 already stored/, `run ${run}: ${r.stderr}`);
      assert.deepEqual(contentLines(readFileSync(file, 'utf8')), []);
    }
    assert.equal((await allDocs(stack, 'log_repeated')).length, 3, 'one document per run');
    assert.equal(JSON.parse(readFileSync(`${file}.couchlog-ship.generation`, 'utf8')).generation, 3);
    // A run that fails leaves the generation (and the file) as they were: its lines keep their ids.
    writeFileSync(file, `${line}\n`, { flag: 'a' });
    const failed = await ship(['--url', 'http://127.0.0.1:9/log_repeated', '--truncate', '--retry-for', '1', file]);
    assert.notEqual(failed.code, 0);
    assert.equal(JSON.parse(readFileSync(`${file}.couchlog-ship.generation`, 'utf8')).generation, 3);
    assert.equal(contentLines(readFileSync(file, 'utf8')).length, 1);
  });

  test("an account that may not write (the reader's) fails the run: no line rejected, the file left as it was", async () => {
    const file = join(dir, 'wrong-account.log');
    const text = `${Array.from({ length: 50 }, (_, i) => JSON.stringify({ i })).join('\n')}\n`;
    writeFileSync(file, text);
    const rejects = join(dir, 'rejects-wrong-account.ndjson');
    const { user, password } = stack.config.users.reader;
    const url = new URL(`${stack.url}/log_rejects`);
    url.username = user;
    url.password = password ?? '';
    const r = await ship(['--url', url.href, '--truncate', '--reject-file', rejects, file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /refused the request, not a line: 403 forbidden AUTH_ROLE_FORBIDDEN/);
    assert.ok(!r.stderr.includes(password ?? '\u0000'), 'the password is not printed');
    assert.equal(readFileSync(file, 'utf8'), text, 'nothing truncated');
    assert.ok(!existsSync(rejects), 'nothing set aside');
  });

  test('--strict: a line that does not match fails the run (exit 1) and the file is left as it was', async () => {
    const file = join(dir, 'strict.log');
    const text = `${banLine(1)}\n${banLine(2)}\nnot a fail2ban line\n${banLine(3)}\n`;
    writeFileSync(file, text);
    const rejects = join(dir, 'rejects-strict.ndjson');
    const r = await ship(['--url', `${stack.url}/log_strict`, '--preset', 'fail2ban', '--strict', '--truncate', '--reject-file', rejects, file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /strict\.log:3: does not match the schema \(--strict\): not a fail2ban line/);
    assert.equal(readFileSync(file, 'utf8'), text);
    assert.ok(!existsSync(rejects), 'with --strict the line is not set aside');
  });

  test('--truncate-method copy on a quiet file: exactly the acknowledged bytes are removed', async () => {
    const file = join(dir, 'copy.log');
    writeFileSync(file, '{"a":1}\n{"a":2}\n{"a":3');
    const r = await ship([
      '--url',
      `${stack.url}/log_copy`,
      '--truncate',
      '--truncate-method',
      'copy',
      '-v',
      '--reject-file',
      join(dir, 'rejects-copy.ndjson'),
      file,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /removed 16 bytes \(copy\)/);
    assert.equal(readFileSync(file, 'utf8'), '{"a":3', 'the unfinished line, nothing else');
    assert.equal((await allDocs(stack, 'log_copy')).length, 2);
  });

  test('two runs on one file at once: the second refuses to start (lock), the file is not damaged', async () => {
    const file = join(dir, 'locked.log');
    writeFileSync(file, '{"x":1}\n');
    const held = await acquireLock(`${file}.couchlog-ship.lock`, file);
    const r = await ship(['--url', `${stack.url}/log_copy`, '--truncate', file]);
    await held.release();
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`another couchlog ship \\(pid ${process.pid}\\) is working on`));
    assert.equal(readFileSync(file, 'utf8'), '{"x":1}\n');
    // A lock file left by a process that is gone (its pid in it) holds nothing: the kernel's lock went with it.
    writeFileSync(`${file}.couchlog-ship.lock`, '999999999\n');
    const again = await ship(['--url', `${stack.url}/log_copy`, '--truncate', '--reject-file', join(dir, 'rejects-lock.ndjson'), file]);
    assert.equal(again.code, 0, again.stderr);
    const third = await ship(['--url', `${stack.url}/log_copy`, '--truncate', '--reject-file', join(dir, 'rejects-lock.ndjson'), file]);
    assert.equal(third.code, 0, `released at the end: ${third.stderr}`);
  });
});
