// Servers a killed couchlog left running: found through pid files, killed
// only when their command line carries this data folder's marker.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandLine, exited, pidsNamedIn, stopOrphans } from '../../../embedded/orphans.js';

const dir = mkdtempSync(join(tmpdir(), 'couchlog-orphans-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const linux = process.platform === 'linux' ? false : 'reads /proc';

test("pid files: a plain pid (ours) or ClickHouse's status file; anything else names nobody", () => {
  writeFileSync(join(dir, 'a.pid'), '1234\n');
  writeFileSync(join(dir, 'status'), 'PID: 5678\nStarted at: 2026-12-07 04:23:28\nRevision: 54412\n');
  writeFileSync(join(dir, 'junk'), 'not a pid\n');
  assert.deepEqual(pidsNamedIn([join(dir, 'a.pid'), join(dir, 'status'), join(dir, 'junk'), join(dir, 'missing')]), [1234, 5678]);
});

test('only a live process with the marker as an argument is killed', { skip: linux }, async () => {
  const sleeper = (marker: string) => spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', marker], { stdio: 'ignore' });
  const ours = sleeper('/data/clickhouse/config.xml');
  const other = sleeper('/data/clickhouse/config.xml.other');
  try {
    writeFileSync(join(dir, 'ours.pid'), `${ours.pid}\n`);
    writeFileSync(join(dir, 'other.pid'), `${other.pid}\n`);
    const exited = new Promise((resolve) => ours.once('exit', resolve));
    const stopped = await stopOrphans([join(dir, 'ours.pid'), join(dir, 'other.pid')], '/data/clickhouse/config.xml');
    assert.deepEqual(stopped, [ours.pid]);
    await exited;
    assert.equal(commandLine(ours.pid!), null);
    assert.ok(commandLine(other.pid!)?.includes('/data/clickhouse/config.xml.other'), 'the other one runs');
    assert.deepEqual(await stopOrphans([join(dir, 'missing.pid')], '/data/clickhouse/config.xml'), []);
  } finally {
    ours.kill('SIGKILL');
    other.kill('SIGKILL');
  }
});

test('exited: a live process has not; a zombie (its files closed, nobody has reaped it) and a pid nobody has have', { skip: linux }, async () => {
  assert.equal(exited(process.pid), false);
  // A background child of a shell that then execs into a sleep: nobody reaps it when it ends.
  const shell = spawn('sh', ['-c', 'sleep 0.05 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const zombie = await new Promise<number>((resolve) => shell.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    assert.equal(exited(zombie), false, 'still sleeping');
    const deadline = Date.now() + 5000;
    while (!exited(zombie) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(exited(zombie), true);
    // Its command line is gone, but the process is still there: the state, not the command line, says it has ended.
    assert.equal(commandLine(zombie), null);
    assert.equal(exited(shell.pid!), false);
  } finally {
    shell.kill('SIGKILL');
  }
  assert.equal(exited(4_194_304 + 1), true, 'above pid_max: nobody');
});
