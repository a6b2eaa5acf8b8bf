// The error registry (lib/errors.ts ERRORS) and its documentation agree,
// both ways, as fastify's test/internals/errors.test.js checks its own;
// and code builds errors only from the registry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { badRequest, couchdbRefusal, couchlogError, ERRORS, tooManyRequests, unauthorized, unavailable, type ErrorCode } from '../../../lib/errors.js';
import { ROOT } from '../../helpers/repo-root.js';

/** The rows of docs/errors.md's table: code, status, error name. */
function documented(): Map<string, { status: number; error: string }> {
  const out = new Map<string, { status: number; error: string }>();
  for (const line of readFileSync(join(ROOT, 'docs/errors.md'), 'utf8').split('\n')) {
    const m = /^\| `([A-Z0-9_]+)` \| (\d{3}) \| `([a-z_]+)` \|/.exec(line);
    if (m) out.set(m[1]!, { status: Number(m[2]), error: m[3]! });
  }
  return out;
}

test('docs/errors.md lists every registered code with its status and error name, and no other', () => {
  const docs = documented();
  const registered = Object.keys(ERRORS) as ErrorCode[];
  assert.deepEqual(
    registered.filter((c) => !docs.has(c)),
    [],
    'registered but not documented',
  );
  assert.deepEqual(
    [...docs.keys()].filter((c) => !(c in ERRORS)),
    [],
    'documented but not registered',
  );
  for (const code of registered) {
    assert.deepEqual(docs.get(code), { status: ERRORS[code].status, error: ERRORS[code].error }, code);
  }
  assert.ok(docs.size >= 40, `the table was read (${docs.size} rows)`);
});

test('every code README names in its error table is registered', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('Errors are CouchDB-style JSON with a stable `code`');
  assert.ok(start > 0);
  const table = readme.slice(start, readme.indexOf('\n\n', readme.indexOf('|', start)));
  const named = [...table.matchAll(/`([A-Z][A-Z0-9]*_[A-Z0-9_]+)`/g)].map((m) => m[1]!);
  assert.ok(named.length >= 10, `codes read from README: ${named.length}`);
  assert.deepEqual(
    named.filter((c) => !(c in ERRORS)),
    [],
  );
});

test('codes are upper snake case, grouped by the part that answers', () => {
  for (const code of Object.keys(ERRORS)) assert.match(code, /^(INGRESS|AUTH|COUCHDB|DASHBOARD)_[A-Z0-9_]+$/);
});

test('an error carries its registered status, CouchDB error name and the headers its status needs', () => {
  const e = couchlogError('INGRESS_DOC_HAS_REV', 'no _rev');
  assert.deepEqual([e.statusCode, e.couchError, e.code], [403, 'forbidden', 'INGRESS_DOC_HAS_REV']);
  assert.deepEqual(e.toBody(), { error: 'forbidden', reason: 'no _rev', code: 'INGRESS_DOC_HAS_REV' });
  assert.equal(badRequest('INGRESS_BAD_ID', 'x').statusCode, 400);
  assert.equal(unauthorized('AUTH_REQUIRED', 'x').headers['WWW-Authenticate'], 'Basic realm="couchlog"');
  assert.equal(tooManyRequests('INGRESS_RATE_LIMITED', 'x', 7).headers['Retry-After'], '7');
  assert.equal(unavailable('COUCHDB_UNAVAILABLE', 'x', 5).headers['Retry-After'], '5');
});

test("CouchDB's refusals map to registered codes by status", () => {
  const cases: Array<[number, ErrorCode]> = [
    [400, 'COUCHDB_BAD_REQUEST'],
    [401, 'COUCHDB_UNAUTHORIZED'],
    [403, 'COUCHDB_FORBIDDEN'],
    [404, 'COUCHDB_NOT_FOUND'],
    [413, 'COUCHDB_TOO_LARGE'],
    [417, 'COUCHDB_BAD_REQUEST'],
  ];
  for (const [status, code] of cases) {
    const e = couchdbRefusal(status, 'refused');
    assert.equal(e.code, code);
    assert.equal(e.statusCode, ERRORS[code].status);
  }
});

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const rel = `${dir}/${name}`;
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...sources(rel));
    else if (name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

test('errors are built from the registry only (no code made up on the spot)', () => {
  const builders = new Set(['lib/errors.ts', 'server/hec/errors.ts']);
  const wrong: string[] = [];
  for (const dir of ['lib', 'setup', 'server', 'correlator', 'shipper', 'forward', 'embedded', 'cli', 'design-docs']) {
    for (const file of sources(dir)) {
      if (builders.has(file)) continue;
      if (/new CouchlogError\(/.test(readFileSync(join(ROOT, file), 'utf8'))) wrong.push(file);
    }
  }
  assert.deepEqual(wrong, []);
});
