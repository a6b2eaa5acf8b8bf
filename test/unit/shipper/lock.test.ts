// The ship lock (shipper/lock.ts) under real races: runs started at the
// same moment, in separate processes, with and without a lock file left by
// a crash. Exactly one holds it; a holder killed with -9 leaves no lock.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireLock } from '../../../shipper/lock.js';

const dir = mkdtempSync(join(tmpdir(), 'couchlog-lock-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const lockModule = fileURLToPath(new URL('../../../shipper/lock.js', import.meta.url));

/**
 * A process that waits for `startAt`, tries the lock and prints GOT or NO;
 * it holds what it got until its stdin closes, which the test does only
 * once every contender has answered (a slow start must not find the lock
 * already released).
 */
function contenders(path: string, n: number): Promise<string[]> {
  const startAt = Date.now() + 400;
  const code = `import { acquireLock } from ${JSON.stringify(lockModule)};
    while (Date.now() < ${startAt}) {}
    let lock = null;
    try { lock = await acquireLock(${JSON.stringify(path)}, 'x'); console.log('GOT'); } catch (e) { console.log('NO ' + e.message); }
    process.stdin.resume();
    process.stdin.on('end', () => lock?.release());`;
  const children = Array.from({ length: n }, () => spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const answers = children.map(
    (child) =>
      new Promise<string>((resolve, reject) => {
        child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()));
        child.once('error', reject);
        child.once('close', (code) => reject(new Error(`contender exited (${code}) without answering`)));
      }),
  );
  const closed = children.map((child) => new Promise((resolve) => child.once('close', resolve)));
  return Promise.all(answers).finally(async () => {
    for (const child of children) child.stdin.end();
    await Promise.all(closed);
  });
}

for (const stale of [false, true]) {
  test(`runs started at once${stale ? ' over a stale lock' : ''}: exactly one holds it, every trial (20 trials of 3)`, async () => {
    for (let trial = 0; trial < 20; trial++) {
      const path = join(dir, `race-${stale}-${trial}.lock`);
      if (stale) writeFileSync(path, '999999999\n');
      const answers = await contenders(path, 3);
      const got = answers.filter((a) => a === 'GOT').length;
      assert.equal(got, 1, `trial ${trial}: ${JSON.stringify(answers)}`);
      for (const a of answers.filter((x) => x !== 'GOT')) assert.match(a, /another couchlog ship( \(pid \d+\))? is working on x/);
    }
    assert.deepEqual(
      readdirSync(dir).filter((f) => !f.endsWith('.lock')),
      [],
      'no other files made',
    );
  });
}

test('a held lock is refused, naming its holder; released, it can be taken again', async () => {
  const path = join(dir, 'simple.lock');
  const lock = await acquireLock(path, 'the file');
  await assert.rejects(acquireLock(path, 'the file'), new RegExp(`another couchlog ship \\(pid ${process.pid}\\) is working on the file`));
  await lock.release();
  await (await acquireLock(path, 'the file')).release();
});

test('a holder killed with -9 leaves no lock behind', async () => {
  const path = join(dir, 'killed.lock');
  const code = `import { acquireLock } from ${JSON.stringify(lockModule)};
    await acquireLock(${JSON.stringify(path)}, 'x'); console.log('GOT'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => child.stdout.once('data', resolve));
  await assert.rejects(acquireLock(path, 'x'), /another couchlog ship \(pid \d+\) is working on x/);
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('close', resolve));
  // flock(1)'s cat sees its stdin close and exits: a moment, not a timeout.
  for (let i = 0; ; i++) {
    try {
      await (await acquireLock(path, 'x')).release();
      break;
    } catch (err) {
      if (i >= 50) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
});

test('an old lock file with a pid in it (a crashed older couchlog) holds nothing', async () => {
  const path = join(dir, 'old.lock');
  writeFileSync(path, '999999999\n');
  await (await acquireLock(path, 'the file')).release();
});
