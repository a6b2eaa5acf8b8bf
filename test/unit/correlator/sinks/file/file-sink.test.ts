// The file sink acknowledges a record only once its line is on disk, keeps
// the order of writes (a correction after the line it corrects), and while
// the disk is full holds the records (full: the feeds pause), retries,
// counts the failures, and writes them whole once there is room.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FileSink } from '../../../../../correlator/sinks/file/file-sink.js';
import { CorrelatorMetrics } from '../../../../../correlator/metrics.js';
import { createLogger } from '../../../../../lib/logger.js';
import type { SinkRecord } from '../../../../../correlator/sinks/sink.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'couchlog-file-sink-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const rec = (id: string, revision: number, pad = 0): SinkRecord => ({
  id,
  version: revision,
  deleted: false,
  record: { correlated: revision > 1, revision, pad: 'x'.repeat(pad) },
});

const linesOf = (path: string) =>
  readFileSync(path, 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as { id: string; revision: number });

async function counter(metrics: CorrelatorMetrics, name: string, labels: string): Promise<number> {
  const text = await metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

test('writes in order, each acknowledged once written; the latest line per id is the latest revision', async () => {
  const path = join(dir, 'order.jsonl');
  const metrics = new CorrelatorMetrics();
  const sink = new FileSink(path, metrics, createLogger('silent'));
  const writes: Array<Promise<void>> = [];
  for (let i = 0; i < 200; i++) writes.push(sink.write([rec(`A-${i % 20}`, Math.floor(i / 20) + 1)]));
  await Promise.all(writes);
  assert.equal(sink.backlog, 0);
  const latest = new Map<string, number>();
  const lines = linesOf(path);
  assert.equal(lines.length, 200);
  for (const l of lines) {
    assert.ok((latest.get(l.id) ?? 0) < l.revision, `${l.id}: revision ${l.revision} after ${latest.get(l.id)}`);
    latest.set(l.id, l.revision);
  }
  assert.equal(await counter(metrics, 'couchlog_correlator_sink_writes_total', 'sink="file"'), 200);
  await sink.close();
});

const isRoot = process.getuid?.() === 0;

test(
  'disk full: records held (full, failing, counted), then written whole once there is room',
  { skip: !isRoot && 'needs root to mount a small tmpfs' },
  async () => {
    const mnt = mkdtempSync(join(tmpdir(), 'couchlog-sink-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
    try {
      const path = join(mnt, 'records.jsonl');
      const metrics = new CorrelatorMetrics();
      const sink = new FileSink(path, metrics, createLogger('silent'), { retryInitialMs: 20, retryMaxMs: 50 });
      await sink.write([rec('A-0', 1)]);
      writeFileSync(join(mnt, 'filler'), Buffer.alloc(64 * 1024 - 8 * 1024 - 4096));
      let acked = 0;
      const pending = Array.from({ length: 30 }, (_, i) => sink.write([rec(`A-${i + 1}`, 1, 1000)]).then(() => acked++));
      await sleep(300);
      assert.equal(acked, 0, 'nothing acknowledged while the disk is full');
      assert.ok(sink.failingSince !== null);
      assert.equal(sink.full, true, 'full while failing: the feeds pause');
      assert.ok((await counter(metrics, 'couchlog_correlator_sink_retries_total', 'sink="file"')) >= 2);
      rmSync(join(mnt, 'filler'));
      await Promise.all(pending);
      assert.equal(sink.failingSince, null);
      assert.equal(sink.full, false);
      const ids = linesOf(path).map((l) => l.id);
      assert.deepEqual(
        ids,
        Array.from({ length: 31 }, (_, i) => `A-${i}`),
      );
      await sink.close();
    } finally {
      execFileSync('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  },
);
