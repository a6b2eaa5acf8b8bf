// Unit tests mirror the source tree: the test of a/b/c.ts (or c.mjs) is
// test/unit/a/b/c.test.ts, found without grep. A few tests cover a property
// of several modules; they sit in the folder of those modules and are
// listed here with what they cover. Tests of the whole tree (layering,
// this one) sit at the top.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/repo-root.js';

const ACROSS_MODULES: Record<string, string> = {
  'correlator/engine/arrival-order.test.ts': 'engine.ts under seeded arrival schedules, crashes and lagging sinks, against the reference replay',
  'design-docs/report-views.test.ts': 'the views and list functions of every report set (by-time, fail2ban-report, correlated-report, lists)',
  'server/hec/hec.test.ts': 'the HEC endpoint: envelope.ts, tokens.ts, acks.ts, errors.ts',
  'bench/script-paths.test.ts': 'the compiled scripts ship-bench.ts and hec-bench.ts spawn',
};
const WHOLE_TREE = new Set(['layering.test.ts', 'test-layout.test.ts']);

function testFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, 'test/unit', dir))) {
    const rel = dir ? `${dir}/${name}` : name;
    if (statSync(join(ROOT, 'test/unit', rel)).isDirectory()) out.push(...testFiles(rel));
    else if (name.endsWith('.test.ts')) out.push(rel);
  }
  return out;
}

test('every unit test is named after the module it tests', () => {
  const stray: string[] = [];
  const files = testFiles('');
  for (const file of files) {
    if (WHOLE_TREE.has(file) || file in ACROSS_MODULES) continue;
    // Scripts that run before TypeScript is compiled are .mjs; the embedded server's child process is CommonJS (.cts).
    const module = file.replace(/\.test\.ts$/, '.ts');
    const found = ['.ts', '.mjs', '.cts'].some((ext) => existsSync(join(ROOT, module.replace(/\.ts$/, ext))));
    if (!found) stray.push(`${file}: no ${module}`);
  }
  assert.deepEqual(stray, []);
  assert.ok(files.length > 30, `${files.length} unit tests seen`);
});

test('the tests that cover several modules still exist, in a folder of the source tree', () => {
  for (const file of Object.keys(ACROSS_MODULES)) {
    assert.ok(existsSync(join(ROOT, 'test/unit', file)), file);
    assert.ok(existsSync(join(ROOT, file.slice(0, file.lastIndexOf('/')))), `${file}: no such source folder`);
  }
});
