// The stdout sink against a real pipe: a reader that stalls makes it full
// (no unbounded buffering), a reader that goes away (EPIPE) neither ends
// the process nor gets records acknowledged, and is counted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { StdoutSink } from '../../../../../correlator/sinks/stdout/stdout-sink.js';
import { CorrelatorMetrics } from '../../../../../correlator/metrics.js';
import { createLogger } from '../../../../../lib/logger.js';
import type { SinkRecord } from '../../../../../correlator/sinks/sink.js';

const rec = (i: number, pad = 0): SinkRecord => ({ id: `A-${i}`, version: 1, deleted: false, record: { revision: 1, pad: 'x'.repeat(pad) } });

test('lines reach the reader; a reader that stops reading makes the sink full', async () => {
  // `sleep` never reads its stdin: the pipe fills up.
  const reader = spawn('sleep', ['30'], { stdio: ['pipe', 'ignore', 'ignore'] });
  try {
    const sink = new StdoutSink(new CorrelatorMetrics(), createLogger('silent'), reader.stdin);
    let acked = 0;
    for (let i = 0; i < 200 && !sink.full; i++) void sink.write([rec(i, 10_000)]).then(() => acked++);
    await sleep(100);
    assert.equal(sink.full, true, 'a stalled reader makes the sink full');
    assert.ok(sink.backlog > 0);
    assert.ok(acked < 200);
  } finally {
    reader.kill();
  }
});

test('a reader that went away: the process goes on, nothing more is acknowledged, the failure is counted', async () => {
  const reader = spawn('head', ['-c', '1'], { stdio: ['pipe', 'ignore', 'ignore'] });
  const metrics = new CorrelatorMetrics();
  const sink = new StdoutSink(metrics, createLogger('silent'), reader.stdin);
  await once(reader, 'spawn');
  void sink.write([rec(0)]);
  await once(reader, 'exit');
  let acked = false;
  for (let i = 1; i < 50 && sink.failingSince === null; i++) {
    void sink.write([rec(i, 1000)]).then(() => (acked = true));
    await sleep(20);
  }
  assert.ok(sink.failingSince !== null, 'the sink knows it fails');
  assert.equal(sink.full, true);
  acked = false;
  void sink.write([rec(99)]).then(() => (acked = true));
  await sleep(100);
  assert.equal(acked, false, 'a record written after the failure is never acknowledged');
  const text = await metrics.registry.metrics();
  assert.match(text, /couchlog_correlator_sink_failures_total\{sink="stdout",kind="retry"\} 1/);
});
