// The pure parts of audit protection: record signatures (lib/audit/
// record-signature.ts), the rules a change row is judged by (audit-db.ts),
// and the config that turns it on (protection, signing key).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkSignature, signRecord, signRecordUnbound, SIGNATURE_FIELD } from '../../../lib/audit/record-signature.js';
import { judge } from '../../../cli/audit-db.js';
import { ensureSecrets, loadConfig } from '../../../lib/config/load.js';
import { ConfigError } from '../../../lib/errors.js';
import { mulberry32 } from '../../../bench/prng.js';

const KEY = 'k'.repeat(40);
const signed = (doc: Record<string, unknown>, key = KEY, generation = 1) => ({ ...doc, [SIGNATURE_FIELD]: signRecord(doc, generation, key) });

test('a signature holds whatever the key order, with or without _rev, and only with the key', () => {
  const doc = { _id: 'A-1', _rev: '1-abc', correlated: true, keepalives: 2, nested: { b: 1, a: [1, 'x', null] }, revision: 2 };
  const s = signed(doc);
  assert.equal(checkSignature(s, KEY), 'valid');
  const reordered = {
    revision: 2,
    nested: { a: [1, 'x', null], b: 1 },
    keepalives: 2,
    correlated: true,
    _id: 'A-1',
    _rev: '1-def',
    [SIGNATURE_FIELD]: s[SIGNATURE_FIELD],
  };
  assert.equal(checkSignature(reordered, KEY), 'valid', "key order and the revision's hash do not matter");
  assert.equal(checkSignature({ ...reordered, _rev: '2-abc' }, KEY), 'invalid', 'its generation does');
  assert.equal(checkSignature(JSON.parse(JSON.stringify(s)), KEY), 'valid', 'a JSON round trip keeps it');
  assert.equal(checkSignature(s, 'x'.repeat(40)), 'invalid', 'another key');
  assert.equal(checkSignature(doc, KEY), 'missing');
  assert.equal(checkSignature({ ...doc, [SIGNATURE_FIELD]: 42 }, KEY), 'missing');
});

test('any change to a signed document breaks its signature (seeded random edits)', () => {
  const rnd = mulberry32(7);
  const base = {
    _id: 'A-9',
    _rev: '1-abc',
    src_ip: '203.0.113.9',
    src_port: 50123,
    correlated: true,
    keepalives: 3,
    ja4: 't13d',
    deep: { list: [1, 2, 3], flag: false },
    decided_at: '2026-12-03T08:00:00.000Z',
  };
  const s = signed(base);
  const edits: Array<(d: Record<string, any>) => void> = [
    (d) => (d._id = 'A-10'),
    (d) => (d.src_port += 1),
    (d) => (d.correlated = false),
    (d) => (d.deep.list[Math.floor(rnd() * 3)] = 9),
    (d) => (d.deep.flag = true),
    (d) => (d.extra = 'x'),
    (d) => delete d.ja4,
    (d) => (d._deleted = true),
    (d) => (d.src_ip = `${d.src_ip} `),
    (d) => (d._rev = '2-abc'),
  ];
  for (let i = 0; i < 200; i++) {
    const d = structuredClone(s) as Record<string, any>;
    edits[Math.floor(rnd() * edits.length)]!(d);
    assert.equal(checkSignature(d, KEY), 'invalid', `edit ${i}: ${JSON.stringify(d)}`);
  }
});

test('append-only rules: only a single first revision, not deleted, is intact', () => {
  assert.deepEqual(judge({ id: 'a', changes: [{ rev: '1-x' }] }, null), []);
  assert.deepEqual(judge({ id: 'a', changes: [{ rev: '2-x' }] }, null), ['modified']);
  assert.deepEqual(judge({ id: 'a', deleted: true, changes: [{ rev: '2-x' }] }, null), ['deleted']);
  assert.deepEqual(judge({ id: 'a', changes: [{ rev: '1-x' }, { rev: '1-y' }] }, null), ['branched']);
  assert.deepEqual(judge({ id: 'a', changes: [{ rev: '2-x' }, { rev: '1-y' }] }, null), ['branched', 'modified']);
});

test("corrections rules (log_correlated under validate): the correlator's later revisions and deletions are fine, branches are not", () => {
  // A default install with a correlator made every run of couchlog audit report its corrections as tampering.
  assert.deepEqual(judge({ id: 'A-1', changes: [{ rev: '3-x' }] }, null, true), []);
  assert.deepEqual(judge({ id: 'B-1', deleted: true, changes: [{ rev: '2-x' }] }, null, true), []);
  assert.deepEqual(judge({ id: 'A-2', changes: [{ rev: '2-x' }, { rev: '2-y' }] }, null, true), ['branched']);
});

test('signed rules: later revisions and deletions are fine when signed by the correlator for where they stand', () => {
  const rec = { ...signed({ _id: 'A-1', correlated: true, revision: 3 }, KEY, 3), _rev: '3-x' };
  assert.deepEqual(judge({ id: 'A-1', changes: [{ rev: '3-x' }], doc: rec }, KEY), []);
  assert.deepEqual(judge({ id: 'A-1', changes: [{ rev: '5-x' }], doc: { ...rec, _rev: '5-x' } }, KEY), ['bad-signature'], 'written again later: a replay');
  const tomb = { ...signed({ _id: 'B-1', _deleted: true, revision: 2, decided_at: '2026-12-03T08:00:00.000Z' }, KEY, 2), _rev: '2-x' };
  assert.deepEqual(judge({ id: 'B-1', deleted: true, changes: [{ rev: '2-x' }], doc: tomb }, KEY), []);
  const old = { _id: 'A-7', _rev: '4-x', correlated: true, signature: signRecordUnbound({ _id: 'A-7', correlated: true }, KEY) };
  assert.deepEqual(judge({ id: 'A-7', changes: [{ rev: '4-x' }], doc: old }, KEY), ['old-signature']);
  assert.deepEqual(judge({ id: 'B-2', deleted: true, changes: [{ rev: '2-x' }], doc: { _id: 'B-2', _rev: '2-x', _deleted: true } }, KEY), ['unsigned']);
  assert.deepEqual(judge({ id: 'B-3', deleted: true, changes: [{ rev: '2-x' }] }, KEY), ['unsigned'], 'a tombstone without body');
  assert.deepEqual(judge({ id: 'A-1', changes: [{ rev: '3-x' }, { rev: '1-z' }], doc: rec }, KEY), ['branched']);
  assert.deepEqual(judge({ id: 'A-1', changes: [{ rev: '3-x' }], doc: { ...rec, correlated: false } }, KEY), ['bad-signature']);
});

test('config: protection is validate or audit, per app and for log_correlated; the signing key is generated once', () => {
  const dir = mkdtempSync(join(tmpdir(), 'couchlog-audit-'));
  try {
    const env = { COUCHLOG_DATA: dir };
    const bad = (yaml: Record<string, unknown>) => {
      const file = join(dir, 'bad.yml');
      writeFileSync(file, JSON.stringify(yaml)); // JSON is YAML
      try {
        loadConfig({ env, cwd: dir, file });
        return null;
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.message;
      }
    };
    assert.match(bad({ apps: { web: { protection: 'trust' } } }) ?? '', /apps\.web\.protection: Invalid enum value\. Expected 'validate' \| 'audit'/);
    assert.match(
      bad({ correlator: { outputs: { couchdb: { signing_key: 'short' } } } }) ?? '',
      /correlator\.outputs\.couchdb\.signing_key: must be at least 32 characters/,
    );
    const { config } = loadConfig({ env, cwd: dir });
    assert.equal(config.apps.http!.protection, 'validate', 'the default');
    config.correlator.outputs.couchdb.protection = 'audit';
    ensureSecrets(config);
    const key = config.correlator.outputs.couchdb.signing_key;
    assert.ok(key && key.length >= 32);
    assert.match(readFileSync(join(dir, 'secrets.env'), 'utf8'), new RegExp(`COUCHLOG_SIGNING_KEY='${key}'`));
    assert.equal(loadConfig({ env, cwd: dir }).config.correlator.outputs.couchdb.signing_key, key, 'read back from secrets.env');
    assert.equal(
      loadConfig({ env: { ...env, COUCHLOG_SIGNING_KEY: 'e'.repeat(32) }, cwd: dir }).config.correlator.outputs.couchdb.signing_key,
      'e'.repeat(32),
      'the environment first',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
