// Exit codes are decided in the CLI layer alone, from the kind of error
// library code throws; docs/errors.md lists the same codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { EXIT_CODES, exitCodeOf } from '../../../cli/run-cli.js';
import { ConfigError, couchlogError, InterruptedError, OperationError, UsageError } from '../../../lib/errors.js';
import { SchemaError } from '../../../shipper/jsonformat/schema.js';
import { GiveUpError } from '../../../shipper/sender.js';
import { ROOT } from '../../helpers/repo-root.js';

test('each kind of failure has its exit code; typed ones are told in one line, anything else is a bug with its stack', () => {
  const cases: Array<[unknown, number, boolean]> = [
    [new UsageError('--batch-size must be 1..10000'), 2, true],
    [new ConfigError(['ingress.port: expected a number']), 2, true],
    [new SchemaError('%{x', 2, 'unclosed'), 2, true],
    [new OperationError('cannot reach CouchDB'), 1, true],
    [new GiveUpError('the ingress refused'), 1, true],
    [new InterruptedError(), 130, true],
    [new TypeError('x is undefined'), 1, false],
    [couchlogError('INGRESS_INTERNAL', 'an HTTP error is not a CLI failure'), 1, false],
    [couchlogError('COUCHDB_UNAVAILABLE', 'CouchDB is unavailable (ECONNREFUSED); retry later'), 1, true],
    ['a thrown string', 1, false],
  ];
  for (const [err, code, oneLine] of cases) assert.deepEqual(exitCodeOf(err), { code, oneLine }, String(err));
});

/** What a process that ends with exitOnError('couchlog', <expression>) prints, and its exit code. */
function endWith(expression: string): { status: number | null; stderr: string } {
  const module = (path: string) => JSON.stringify(pathToFileURL(join(ROOT, 'dist', path)).href);
  const code = [
    `import { exitOnError } from ${module('cli/run-cli.js')};`,
    `import { OperationError, UsageError } from ${module('lib/errors.js')};`,
    `exitOnError('couchlog', ${expression});`,
  ].join('\n');
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30_000 });
  return { status: run.status, stderr: run.stderr };
}

test('a URL with credentials in an error is printed without them, in one line or in a stack', () => {
  const refused = endWith(`new OperationError('cannot reach http://reader:S3cretPw@127.0.0.1:1: ECONNREFUSED')`);
  assert.deepEqual(refused, { status: 1, stderr: 'couchlog: cannot reach http://[redacted]@127.0.0.1:1: ECONNREFUSED\n' });
  const usage = endWith(`new UsageError('--url https://u:S3cretPw@h:1/x is wrong')`);
  assert.deepEqual(usage, { status: 2, stderr: 'couchlog: --url https://[redacted]@h:1/x is wrong\n' });
  const bug = endWith(`new TypeError('fetch of http://admin:S3cretPw@127.0.0.1:5984/ failed')`);
  assert.equal(bug.status, 1);
  assert.match(bug.stderr, /^couchlog: TypeError: fetch of http:\/\/\[redacted\]@127\.0\.0\.1:5984\/ failed\n {4}at /);
  for (const r of [refused, usage, bug]) assert.ok(!r.stderr.includes('S3cretPw'), r.stderr);
});

// Review finding: couchlog-ship and jsonformat (runCli) ended a usage error commander found with its own exit 1,
// while `couchlog ship --batch-size abc` and docs/errors.md say 2.
test('every entry point ends a bad option with exit 2 and says which; --help is 0', () => {
  const run = (script: string, ...args: string[]) =>
    spawnSync(process.execPath, [join(ROOT, 'dist/scripts', script), ...args], { input: '', encoding: 'utf8', timeout: 30_000 });
  const cases: Array<[string, string[], RegExp]> = [
    ['ship.js', ['--batch-size', 'abc'], /^error: option '--batch-size <n>' argument 'abc' is invalid\. --batch-size must be a positive integer, got "abc"\n/],
    ['ship.js', ['--no-such-option'], /^error: unknown option '--no-such-option'/],
    [
      'jsonformat.js',
      ['--report-limit', '-1'],
      /^error: option '--report-limit <n>' argument '-1' is invalid\. --report-limit must be a non-negative integer, got "-1"\n/,
    ],
    ['jsonformat.js', ['--preset', 'nosuch'], /^error: option '-p, --preset <name>' argument 'nosuch' is invalid/],
    ['couchlog.js', ['ship', '--batch-size', 'abc'], /^error: option '--batch-size <n>' argument 'abc' is invalid/],
  ];
  for (const [script, args, message] of cases) {
    const r = run(script, ...args);
    assert.equal(r.status, 2, `${script} ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  for (const script of ['ship.js', 'jsonformat.js']) {
    const help = run(script, '--help');
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^Usage: /);
  }
});

test('docs/errors.md lists the exit codes of EXIT_CODES, both ways', () => {
  const text = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
  const documented = new Map([...text.matchAll(/^\| (\d+) \| `([a-zA-Z]+)` \|/gm)].map((m) => [m[2]!, Number(m[1])]));
  assert.deepEqual(Object.fromEntries(documented), { ...EXIT_CODES });
});

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const rel = `${dir}/${name}`;
    if (statSync(join(ROOT, rel)).isDirectory()) return sources(rel);
    return name.endsWith('.ts') ? [rel] : [];
  });
}

test('only the CLI layer ends the process or sets its exit code', () => {
  const wrong: string[] = [];
  for (const dir of ['lib', 'setup', 'server', 'correlator', 'shipper', 'forward', 'embedded', 'design-docs', 'bench']) {
    for (const file of sources(dir)) if (/process\.exit(Code)?\b/.test(readFileSync(join(ROOT, file), 'utf8'))) wrong.push(file);
  }
  assert.deepEqual(wrong, []);
});
