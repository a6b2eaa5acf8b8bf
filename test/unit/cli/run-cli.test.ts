// Exit codes are decided in the CLI layer alone, from the kind of error
// library code throws; docs/errors.md lists the same codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
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
