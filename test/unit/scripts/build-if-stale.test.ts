// scripts/build-if-stale.mjs, which npm start, npm test and test:couchdb3
// run first: it compiles when a source is newer than the last build, a
// source deleted or renamed included, and leaves a current build alone.
// Run on a copy of the script in a small project of its own; times are set
// explicitly around the build stamp, not left to the clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../../helpers/repo-root.js';

function project(): string {
  const dir = mkdtempSync(join(tmpdir(), 'couchlog-build-if-stale-'));
  mkdirSync(join(dir, 'scripts'));
  copyFileSync(join(ROOT, 'scripts/build-if-stale.mjs'), join(dir, 'scripts/build-if-stale.mjs'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const compilerOptions = { outDir: 'dist', module: 'nodenext', target: 'es2022', strict: true, skipLibCheck: true, types: [] };
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: ['lib/**/*.ts'] }));
  mkdirSync(join(dir, 'lib'));
  writeFileSync(join(dir, 'lib/a.ts'), 'export const a = 1;\n');
  writeFileSync(join(dir, 'lib/b.ts'), "import { a } from './a.js';\nexport const b = a + 1;\n");
  return dir;
}

function build(dir: string, ...args: string[]): { status: number | null; compiled: boolean; output: string } {
  const stamp = join(dir, 'dist/.build-stamp');
  const before = existsSync(stamp) ? statSync(stamp).mtimeMs : null;
  const r = spawnSync(process.execPath, [join(dir, 'scripts/build-if-stale.mjs'), ...args], { encoding: 'utf8' });
  // A build that succeeded moves the stamp; one that failed says so on stderr (--force says nothing).
  const after = existsSync(stamp) ? statSync(stamp).mtimeMs : null;
  return { status: r.status, compiled: after !== before || /compiling/.test(r.stderr), output: r.stdout + r.stderr };
}

/** Every source file and folder of the project `s` seconds before the build stamp. */
function sourcesAged(dir: string, s: number): void {
  const at = new Date(statSync(join(dir, 'dist/.build-stamp')).mtimeMs - s * 1000);
  for (const p of ['tsconfig.json', 'lib', 'lib/a.ts', 'lib/b.ts']) if (existsSync(join(dir, p))) utimesSync(join(dir, p), at, at);
}

test('build-if-stale compiles what changed since the last build, and only then', async (t) => {
  const dir = project();
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  const first = build(dir);
  assert.equal(first.status, 0, first.output);
  assert.ok(first.compiled, 'no build yet: compiles');
  assert.ok(existsSync(join(dir, 'dist/b.js')), 'the build is there');

  sourcesAged(dir, 60);
  const current = build(dir);
  assert.equal(current.status, 0, current.output);
  assert.equal(current.compiled, false, `a current build is left alone: ${current.output}`);

  const at = new Date(Date.now() + 60_000);
  utimesSync(join(dir, 'lib/a.ts'), at, at);
  assert.ok(build(dir).compiled, 'an edited source compiles');

  sourcesAged(dir, 60);
  assert.equal(build(dir).compiled, false);
  assert.ok(build(dir, '--force').compiled, '--force always compiles');
});

test('a source deleted, or renamed with its time kept, compiles again: tsc finds what still imports it', async (t) => {
  for (const change of ['deleted', 'renamed'] as const) {
    const dir = project();
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    assert.equal(build(dir).status, 0);
    sourcesAged(dir, 60);
    const aTime = statSync(join(dir, 'lib/a.ts')).mtime;
    if (change === 'deleted') unlinkSync(join(dir, 'lib/a.ts'));
    else {
      renameSync(join(dir, 'lib/a.ts'), join(dir, 'lib/c.ts'));
      utimesSync(join(dir, 'lib/c.ts'), aTime, aTime);
    }
    // Only the folder's time tells; make sure it is after the stamp.
    const now = new Date(Date.now() + 60_000);
    utimesSync(join(dir, 'lib'), now, now);
    const r = build(dir);
    assert.ok(r.compiled, `${change}: compiled again`);
    assert.notEqual(r.status, 0, `${change}: tsc failed on b.ts's import`);
    assert.match(r.output, /a\.js/, r.output);
  }
});

test("the package's commands are executable after a build (tsc writes 0644; npx answered Permission denied)", () => {
  const dir = project();
  try {
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'x', bin: { x: 'dist/b.js' } }));
    assert.equal(build(dir, '--force').status, 0);
    assert.equal(statSync(join(dir, 'dist/b.js')).mode & 0o111, 0o111);
    assert.equal(statSync(join(dir, 'dist/a.js')).mode & 0o111, 0, 'only the commands');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
