// Unit tests of cli/report.ts: `couchlog report --url` is checked before
// anything is read, and the value, which may hold a password, is never
// repeated (review finding: `--url http://reader:S3cretPw@127.0.0.1:1` was
// printed back in "cannot reach ...", and `--url notaurl` was exit 1).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { report, type ReportCommandOptions } from '../../../cli/report.js';
import { loadConfig } from '../../../lib/config/load.js';
import { OperationError, UsageError } from '../../../lib/errors.js';
import { ROOT } from '../../helpers/repo-root.js';

const dir = mkdtempSync(join(tmpdir(), 'couchlog-report-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const READER_PASSWORD = 'reader-password-1';
const { config } = loadConfig({ env: { COUCHLOG_READER_PASSWORD: READER_PASSWORD }, cwd: dir });
const options = (url: string): ReportCommandOptions => ({ app: 'fail2ban', format: 'table', url });

test('--url that is not an http(s) URL, holds credentials or has a path: a usage error that does not repeat it', async () => {
  const cases: Array<[string, RegExp]> = [
    ['notaurl', /^--url: not a URL$/],
    ['ftp://127.0.0.1:1', /^--url: must be an http:\/\/ or https:\/\/ URL$/],
    ['http://reader:S3cretPw@127.0.0.1:1', /^--url: must not contain credentials: use COUCHLOG_READER_USER \/ COUCHLOG_READER_PASSWORD$/],
    ['http://:S3cretPw@127.0.0.1:1', /must not contain credentials/],
    ['http://127.0.0.1:1/log_fail2ban', /^--url: must be the server root/],
    ['http://127.0.0.1:1/?S3cretPw', /^--url: must be the server root/],
  ];
  for (const [url, message] of cases) {
    await assert.rejects(
      report(config, 'attacks', options(url)),
      (err: unknown) => err instanceof UsageError && message.test(err.message) && !err.message.includes(url) && !err.message.includes('S3cretPw'),
      url,
    );
  }
});

test('a server root is taken (and is what an unreachable server is named by)', async () => {
  await assert.rejects(
    report(config, 'attacks', options('http://127.0.0.1:1/')),
    (err: unknown) => err instanceof OperationError && /^cannot reach http:\/\/127\.0\.0\.1:1: ECONNREFUSED/.test(err.message),
  );
});

test('couchlog report --url with credentials: exit 2, and the password is not on stderr', () => {
  const run = spawnSync(
    process.execPath,
    [join(ROOT, 'dist/scripts/couchlog.js'), 'report', 'attacks', '--app', 'fail2ban', '--url', 'http://reader:S3cretPw@127.0.0.1:1'],
    { cwd: dir, env: { PATH: process.env.PATH, COUCHLOG_READER_PASSWORD: READER_PASSWORD }, encoding: 'utf8', timeout: 30_000 },
  );
  assert.equal(run.status, 2, run.stderr);
  assert.equal(run.stderr, 'couchlog: --url: must not contain credentials: use COUCHLOG_READER_USER / COUCHLOG_READER_PASSWORD\n');
  assert.ok(!run.stderr.includes('S3cretPw') && !run.stdout.includes('S3cretPw'));
});
