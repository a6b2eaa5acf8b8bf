// What the benchmarks say about where CPU went: a process's own CPU, its
// main thread's alone, and the process listening on a loopback port (an
// external CouchDB on this machine, measured as the embedded one is).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { Worker } from 'node:worker_threads';
import { mainThreadCpuSeconds, processCpuSeconds, cpuMeter } from '../../../bench/process-cpu.js';
import { listeningPid } from '../../../bench/listening-pid.js';

const linux = process.platform === 'linux' ? false : 'reads /proc';

function spin(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end);
}

test('the main thread is measured apart from the process: work on another thread counts only for the process', { skip: linux }, async () => {
  const meter = cpuMeter({ me: process.pid }, { 'me main': process.pid });
  spin(300);
  // A worker spins 600 ms on its own thread while this one waits.
  await new Promise<void>((resolve, reject) => {
    const w = new Worker('const end = Date.now() + 600; while (Date.now() < end);', { eval: true });
    w.on('exit', () => resolve());
    w.on('error', reject);
  });
  const used = meter();
  // Loose bounds: under a loaded CI machine the spins get less CPU than their wall time.
  assert.ok(used['me main']! >= 0.05, `main ${used['me main']}`);
  assert.ok(used.me! - used['me main']! >= 0.1, `the worker's CPU shows in the process (${used.me}) and not in its main thread (${used['me main']})`);
  assert.ok(mainThreadCpuSeconds(process.pid)! <= processCpuSeconds(process.pid)!);
});

test('a process that is gone, or none, measures as null', { skip: linux }, () => {
  assert.equal(processCpuSeconds(null), null);
  assert.equal(mainThreadCpuSeconds(2 ** 22 + 12345), null);
  assert.deepEqual(cpuMeter({ gone: 2 ** 22 + 12345 })(), { gone: null });
});

test('the process listening on a loopback port is found; a closed port or a bad URL gives null', { skip: linux }, async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  try {
    assert.equal(listeningPid(`http://127.0.0.1:${port}`), process.pid);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
  assert.equal(listeningPid(`http://127.0.0.1:${port}`), null);
  assert.equal(listeningPid('not a url'), null);
});
