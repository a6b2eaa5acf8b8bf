// What the benchmarks say about where CPU went: a process's own CPU and its
// main thread's alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { mainThreadCpuSeconds, processCpuSeconds, cpuMeter } from '../../../bench/process-cpu.js';

const linux = process.platform === 'linux' ? false : 'reads /proc';

/**
 * Spins until this process has used `ms` more CPU, whatever the wall time:
 * on a loaded machine a spin timed by the clock got too little CPU for
 * the bounds below. While one thread spins the others are idle, so the
 * process's CPU is that thread's.
 */
function spinCpu(ms: number): void {
  const start = process.cpuUsage();
  for (;;) {
    const d = process.cpuUsage(start);
    if ((d.user + d.system) / 1000 >= ms) return;
  }
}

test('the main thread is measured apart from the process: work on another thread counts only for the process', { skip: linux }, async () => {
  const meter = cpuMeter({ me: process.pid }, { 'me main': process.pid });
  spinCpu(300);
  // A worker spins for 600 ms of CPU on its own thread while this one waits.
  await new Promise<void>((resolve, reject) => {
    const w = new Worker('const s = process.cpuUsage(); for (;;) { const d = process.cpuUsage(s); if (d.user + d.system >= 600000) break; }', { eval: true });
    w.on('exit', () => resolve());
    w.on('error', reject);
  });
  const used = meter();
  assert.ok(used['me main']! >= 0.05, `main ${used['me main']}`);
  assert.ok(used.me! - used['me main']! >= 0.1, `the worker's CPU shows in the process (${used.me}) and not in its main thread (${used['me main']})`);
  assert.ok(mainThreadCpuSeconds(process.pid)! <= processCpuSeconds(process.pid)!);
});

test('a process that is gone, or none, measures as null', { skip: linux }, () => {
  assert.equal(processCpuSeconds(null), null);
  assert.equal(mainThreadCpuSeconds(2 ** 22 + 12345), null);
  assert.deepEqual(cpuMeter({ gone: 2 ** 22 + 12345 })(), { gone: null });
});
