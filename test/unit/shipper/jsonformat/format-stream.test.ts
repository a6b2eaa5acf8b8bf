// The jsonformat loop (shipper/jsonformat/format-stream.ts) and the command as
// a process: chunk boundaries anywhere (inside a line, inside a UTF-8
// character), blank lines skipped, non-matching lines counted and reported
// with their line numbers, --strict fails the run, auditd through stdin.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { converterFactory } from '../../../../shipper/jsonformat/converter.js';
import { formatStream } from '../../../../shipper/jsonformat/format-stream.js';
import { OperationError } from '../../../../lib/errors.js';
import { ROOT } from '../../../helpers/repo-root.js';

const JSONFORMAT = join(ROOT, 'dist/scripts/jsonformat.js');
const COUCHLOG = join(ROOT, 'dist/scripts/couchlog.js');
const SEED_SCHEMA = '$date $hour _ _ _ \\[$process\\] _ $ip';
const ban = (i: number) =>
  `2017-06-14 17:16:12,${String(i % 1000).padStart(3, '0')} fail2ban.actions        [1112]: NOTICE  [sshd] Ban 10.0.${(i >> 8) & 255}.${i & 255}`;

async function format(input: Buffer, chunkSize: number, o: { schema?: string; strict?: boolean; reportLimit?: number; format?: 'auditd' } = {}) {
  const chunks: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunkSize) chunks.push(input.subarray(i, i + chunkSize));
  let output = '';
  const sink = new Writable({
    write(chunk, _enc, done) {
      output += chunk.toString();
      done();
    },
  });
  const reports: string[] = [];
  const make = converterFactory({ schema: o.format ? undefined : (o.schema ?? SEED_SCHEMA), format: o.format }, 'schema');
  const stats = await formatStream(Readable.from(chunks), sink, (m) => reports.push(m), make, { strict: o.strict ?? false, reportLimit: o.reportLimit ?? 100 });
  return { output, reports, stats };
}

function runProcess(script: string, args: string[], stdin: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => ok({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe('formatStream', () => {
  test('any chunk size, even inside a UTF-8 character, gives the same output', async () => {
    const lines = Array.from({ length: 300 }, (_, i) => `${i} naïve-€-😀-${i} end`);
    const input = Buffer.from(`${lines.join('\n')}\n`);
    const expected = lines.map((l) => JSON.stringify({ n: l.split(' ')[0], word: l.split(' ')[1], last: 'end' })).join('\n') + '\n';
    for (const size of [1, 2, 3, 7, 64, 4096, input.length]) {
      const { output, stats } = await format(input, size, { schema: '$n $word $last' });
      assert.equal(output, expected, `chunks of ${size} bytes`);
      assert.equal(stats.documents, 300);
    }
  });

  test('a last line without "\\n" is converted too', async () => {
    const { output } = await format(Buffer.from(`${ban(1)}\n${ban(2)}`), 10);
    assert.equal(output.split('\n').filter(Boolean).length, 2);
  });

  test('blank lines are skipped; non-matching lines are counted and reported with their line numbers, never dropped silently', async () => {
    const input = [ban(1), '', 'garbage one', '   ', ban(2), 'garbage two', '\r', ban(3)].join('\n');
    const { output, reports, stats } = await format(Buffer.from(input), 5);
    assert.equal(output.split('\n').filter(Boolean).length, 3);
    assert.deepEqual(stats, { lines: 8, blank: 3, documents: 3, unmatched: 2 });
    assert.deepEqual(reports, ['line 3 does not match the schema: garbage one', 'line 6 does not match the schema: garbage two']);
  });

  test('past --report-limit, non-matching lines are counted in one more line', async () => {
    const input = Array.from({ length: 10 }, (_, i) => `bad ${i}`).join('\n');
    const { reports, stats } = await format(Buffer.from(input), 100, { reportLimit: 3 });
    assert.equal(stats.unmatched, 10);
    assert.equal(reports.length, 4);
    assert.equal(reports[3], '7 more non-matching lines not shown');
  });

  test('--strict stops at the first non-matching line with exit code 1, after writing the lines before it', async () => {
    const input = [ban(1), ban(2), 'garbage', ban(3)].join('\n');
    let output = '';
    const sink = new Writable({ write: (c, _e, done) => ((output += c), done()) });
    const make = converterFactory({ schema: SEED_SCHEMA }, 'schema');
    await assert.rejects(
      formatStream(Readable.from([Buffer.from(input)]), sink, () => {}, make, { strict: true, reportLimit: 100 }),
      (err: unknown) => err instanceof OperationError && /line 3 does not match the schema \(--strict\): garbage/.test(err.message),
    );
    assert.equal(output.split('\n').filter(Boolean).length, 2);
  });

  test('--format auditd: one object per event, in serial order', async () => {
    const a = (s: number, t: string) => `type=${t} msg=audit(100.000:${s}): pid=${s}`;
    const input = [a(2, 'SYSCALL'), a(1, 'SYSCALL'), a(2, 'CWD'), a(2, 'EOE'), a(1, 'PATH'), a(1, 'EOE'), 'not audit'].join('\n');
    const { output, stats, reports } = await format(Buffer.from(input), 13, { format: 'auditd' });
    const events = output
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      events.map((e) => [e.serial, e.types]),
      [
        [1, ['SYSCALL', 'PATH']],
        [2, ['SYSCALL', 'CWD']],
      ],
    );
    assert.equal(stats.unmatched, 1);
    assert.match(reports[0]!, /^line 7 not an audit record/);
  });
});

describe('jsonformat as a process', () => {
  test("the seed's command line gives the seed's output", async () => {
    const seed = '2017-06-14 17:16:12,329 fail2ban.actions        [1112]: NOTICE  [sshd] Ban 59.45.175.88\n';
    for (const cmd of [[JSONFORMAT], [COUCHLOG, 'jsonformat']]) {
      const r = await runProcess(cmd[0]!, [...cmd.slice(1), '--schema', SEED_SCHEMA, '--fields', 'machine=server'], seed);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), { date: '2017-06-14', process: 'sshd', machine: 'server', hour: '17:16:12,329', ip: '59.45.175.88' });
      assert.equal(r.stderr, '');
    }
  });

  test('non-matching lines: exit 0, each reported on stderr with its number, and a count; --strict: exit 1', async () => {
    const input = `${ban(1)}\nnope\n${ban(2)}\n`;
    const r = await runProcess(JSONFORMAT, ['--schema', SEED_SCHEMA], input);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim().split('\n').length, 2);
    assert.match(r.stderr, /jsonformat: line 2 does not match the schema: nope/);
    assert.match(r.stderr, /jsonformat: 1 of 3 lines did not match/);
    const strict = await runProcess(JSONFORMAT, ['--schema', SEED_SCHEMA, '--strict'], input);
    assert.equal(strict.code, 1);
    assert.match(strict.stderr, /line 2 does not match the schema \(--strict\)/);
  });

  test('a bad schema or a missing one is a usage error (exit 2) with a clear message', async () => {
    const bad = await runProcess(JSONFORMAT, ['--schema', '$date [sshd]'], '');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /bad schema .* opens a bracketed capture/);
    const none = await runProcess(JSONFORMAT, [], '');
    assert.equal(none.code, 2);
    assert.match(none.stderr, /give --schema, --preset or --format/);
    const preset = await runProcess(JSONFORMAT, ['--preset', 'iis'], '');
    assert.notEqual(preset.code, 0);
    assert.match(preset.stderr, /Allowed choices are fail2ban/);
  });

  test('--list-presets prints every preset with its sample and output', async () => {
    const r = await runProcess(JSONFORMAT, ['--list-presets'], '');
    assert.equal(r.code, 0);
    for (const name of ['fail2ban', 'nginx-combined', 'apache-combined', 'syslog']) assert.match(r.stdout, new RegExp(`^${name}: `, 'm'));
  });
});
