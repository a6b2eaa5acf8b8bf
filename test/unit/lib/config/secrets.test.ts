// lib/config/secrets.ts: data/secrets.env read as KEY=value lines; one that cannot be read is a one-line error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSecretsFile, secretsPath } from '../../../../lib/config/secrets.js';
import { OperationError } from '../../../../lib/errors.js';

test('KEY=value lines are read, a missing file is none; one that cannot be read is an OperationError naming it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'couchlog-secrets-'));
  try {
    assert.deepEqual(readSecretsFile(dir), {});
    writeFileSync(secretsPath(dir), "# comment\nCOUCHDB_PASSWORD=abc\nexport COUCHLOG_READER_PASSWORD='x y'\n");
    assert.deepEqual(readSecretsFile(dir), { COUCHDB_PASSWORD: 'abc', COUCHLOG_READER_PASSWORD: 'x y' });
    // Not readable (as root, permissions do not stop a read: a folder in its place does).
    const other = join(dir, 'other');
    mkdirSync(secretsPath(other), { recursive: true });
    assert.throws(
      () => readSecretsFile(other),
      (e: unknown) => e instanceof OperationError && e.message.includes(secretsPath(other)) && /EISDIR/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
