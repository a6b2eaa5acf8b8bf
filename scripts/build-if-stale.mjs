#!/usr/bin/env node
// `npm start` runs this before `couchlog up`: it compiles TypeScript only
// when a source file changed since the last build, so a start with a
// current build does not spend seconds in tsc. `--force` always builds
// (npm ci's prepare, npm run build). The stamp records when the last
// successful build started, so an edit made during a build is rebuilt.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const stamp = join(root, 'dist', '.build-stamp');
const SOURCES = ['lib', 'design-docs', 'setup', 'server', 'correlator', 'shipper', 'forward', 'embedded', 'cli', 'bench', 'scripts', 'test'];
const SOURCE_FILE = /\.(c|m)?ts$/;

// A folder's own time counts too: deleting or renaming a source (mv keeps
// its time) changes only its folder's, and tsc must then run to find what
// still imports it.
function newest(dir) {
  let max = mtime(dir);
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) max = Math.max(max, newest(p));
    else if (SOURCE_FILE.test(e.name)) max = Math.max(max, statSync(p).mtimeMs);
  }
  return max;
}

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

const force = process.argv.includes('--force');
const built = mtime(stamp);
const changed = Math.max(mtime(join(root, 'tsconfig.json')), ...SOURCES.map((d) => newest(join(root, d))));
if (!force && built > 0 && changed < built) process.exit(0);

if (!force) process.stderr.write('couchlog: sources changed since the last build: compiling (tsc)...\n');
const started = Date.now();
const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', root], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
// tsc writes 0644: the package's commands (`npx couchlog`, `npx couchlog-ship`,
// what README tells a newcomer to run) must be executable, or sh answers
// "Permission denied".
const pkg = join(root, 'package.json');
const bins = existsSync(pkg) ? (JSON.parse(readFileSync(pkg, 'utf8')).bin ?? {}) : {};
for (const bin of Object.values(bins)) chmodSync(join(root, bin), 0o755);
mkdirSync(dirname(stamp), { recursive: true });
writeFileSync(stamp, `${new Date(started).toISOString()}\n`);
utimesSync(stamp, new Date(started), new Date(started));
