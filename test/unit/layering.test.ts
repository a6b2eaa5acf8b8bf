// The layers of docs/architecture.md, checked on the sources: a module may
// import from its own layer and the layers below it, never from above. The
// correlator's engine imports nothing outside itself (it is pure: time and
// events come in, decisions go out), and the ingress and the correlator do
// not import each other. A new top-level folder must be given a layer here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { ROOT } from '../helpers/repo-root.js';

/**
 * Bottom to top. A layer may import from itself and any layer listed
 * before it; folders on one line (one layer) may not import each other.
 */
const LAYERS: string[][] = [
  ['correlator/engine'],
  ['lib'],
  ['design-docs'],
  ['setup'],
  ['server', 'correlator', 'shipper', 'forward', 'embedded'],
  ['cli'],
  ['bench'],
  ['scripts'],
  ['test'],
];

/** Imports that cross the layers on purpose, each with its reason. */
const ALLOWED: Array<{ from: string; to: string; why: string }> = [
  { from: 'scripts/test-couchdb3.ts', to: 'test/helpers/couchdb3.ts', why: 'the CouchDB 3 test runner starts the servers the tests use' },
];

/** The layer folder a repository path belongs to (the longest that matches), or null. */
function unitOf(path: string): string | null {
  let best: string | null = null;
  for (const unit of LAYERS.flat()) {
    if ((path === unit || path.startsWith(`${unit}/`)) && (best === null || unit.length > best.length)) best = unit;
  }
  return best;
}

function rankOf(unit: string): number {
  return LAYERS.findIndex((layer) => layer.includes(unit));
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const rel = `${dir}/${name}`;
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...sources(rel));
    else if (/\.(c|m)?ts$/.test(name) && !name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

/** Relative imports of a source file, as repository paths of .ts files. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const target = relative(ROOT, resolve(ROOT, dirname(file), m[1]!))
      .split(sep)
      .join('/');
    out.push(target.replace(/\.(c|m)?js$/, (ext) => ext.replace('js', 'ts')));
  }
  return out;
}

const TOP_LEVEL_SOURCES = readdirSync(ROOT).filter(
  (name) => !name.startsWith('.') && !['node_modules', 'dist', 'docs', 'nginx', 'patches'].includes(name) && statSync(join(ROOT, name)).isDirectory(),
);

test('every top-level source folder has a layer', () => {
  const unplaced = TOP_LEVEL_SOURCES.filter((dir) => sources(dir).length > 0 && unitOf(dir) === null);
  assert.deepEqual(unplaced, [], 'add these folders to LAYERS (and to docs/architecture.md)');
});

/** Why `file` may not import `target`, or null when it may. */
function crossing(file: string, target: string): string | null {
  const from = unitOf(file);
  const to = unitOf(target);
  if (from === null || to === null || to === from) return null;
  if (ALLOWED.some((a) => a.from === file && a.to === target)) return null;
  return rankOf(to) < rankOf(from) ? null : `${file} -> ${target} (${from} may not import ${to})`;
}

test('no module imports from a layer above its own, or from a neighbour in its layer', () => {
  const wrong: string[] = [];
  for (const dir of TOP_LEVEL_SOURCES) {
    for (const file of sources(dir)) {
      for (const target of importsOf(file)) {
        const why = crossing(file, target);
        if (why) wrong.push(why);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

/** Packages the engine may use: pure computation, no I/O, no clock. */
const ENGINE_PACKAGES = new Set(['ipaddr.js']);

test('the engine imports nothing outside itself but pure packages', () => {
  const wrong: string[] = [];
  for (const file of sources('correlator/engine')) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    for (const m of text.matchAll(/\bfrom\s*['"]([^'"]+)['"]/g)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) {
        if (
          unitOf(
            relative(ROOT, resolve(ROOT, dirname(file), spec))
              .split(sep)
              .join('/'),
          ) !== 'correlator/engine'
        )
          wrong.push(`${file} -> ${spec}`);
      } else if (!ENGINE_PACKAGES.has(spec)) {
        wrong.push(`${file} -> ${spec}`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

test('the check itself sees a wrong import', () => {
  assert.ok(crossing('lib/couch/http.ts', 'server/app.ts'), 'a base module reaching up');
  assert.ok(crossing('correlator/pipeline.ts', 'server/write/bulk-writer.ts'), 'the correlator reaching into its neighbour, the ingress');
  assert.ok(crossing('correlator/engine/engine.ts', 'correlator/pipeline.ts'), 'the engine reaching out');
  assert.equal(crossing('server/app.ts', 'lib/couch/http.ts'), null);
  assert.equal(crossing('correlator/pipeline.ts', 'correlator/engine/engine.ts'), null);
  assert.ok(importsOf('correlator/pipeline.ts').includes('correlator/engine/engine.ts'), 'imports are read as repository paths of .ts files');
});

// Review finding: scripts/test-couchdb3.ts, scripts/bench-*.ts and bench/hec-bench.ts read process.env themselves.
test('only the config module reads process.env (tests aside, which may hand it to the processes they start)', () => {
  const wrong: string[] = [];
  for (const dir of TOP_LEVEL_SOURCES.filter((d) => d !== 'test')) {
    for (const file of sources(dir)) {
      if (file.startsWith('lib/config/')) continue;
      const text = readFileSync(join(ROOT, file), 'utf8');
      text.split('\n').forEach((line, i) => {
        if (/\bprocess\.env\b/.test(line)) wrong.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
  }
  assert.deepEqual(wrong, [], 'ask a function of lib/config instead (lib/config/tool-env.ts for the tools)');
});
