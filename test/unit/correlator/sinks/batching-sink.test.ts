// BatchingSink's own rules, with an in-memory delivery standing in for a
// server (the real ClickHouse and CouchDB deliveries are exercised by the
// correlator integration, outage and crash tests): batch sizes, the cap on
// batches in flight, partial batches after the flush interval, retries,
// narrowing a permanent failure down to the bad record, counted drops,
// and close() sending what is left.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchingSink, type BatchingOptions, type Delivery } from '../../../../correlator/sinks/batching-sink.js';
import { DeadLetterFile } from '../../../../correlator/sinks/dead-letter-file.js';
import { PermanentDeliveryError } from '../../../../correlator/sinks/couchdb/couchdb-sink.js';
import type { FailureKind, SinkRecord } from '../../../../correlator/sinks/sink.js';
import { CorrelatorMetrics } from '../../../../correlator/metrics.js';
import { createLogger, type Logger } from '../../../../lib/logger.js';
import { pino } from 'pino';

/** A server that answers when told to, and remembers what it stored. */
class ManualDelivery implements Delivery {
  readonly stored: string[] = [];
  readonly batches: string[][] = [];
  inFlight = 0;
  maxInFlight = 0;
  /** Ids refused for good; `failNext` makes the next n calls fail retriably. */
  refuse = new Set<string>();
  failNext = 0;
  private waiting: Array<() => void> = [];
  auto = true;

  async deliver(batch: SinkRecord[]): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (!this.auto) await new Promise<void>((ok) => this.waiting.push(ok));
      else await new Promise((ok) => setImmediate(ok));
      if (this.failNext > 0) {
        this.failNext--;
        throw new Error('connection refused');
      }
      const bad = batch.filter((r) => this.refuse.has(r.id));
      if (bad.length > 0) throw new PermanentDeliveryError(`refused ${bad.map((r) => r.id).join(',')}`);
      this.batches.push(batch.map((r) => r.id));
      this.stored.push(...batch.map((r) => r.id));
    } finally {
      this.inFlight--;
    }
  }

  classify(err: unknown): FailureKind {
    return err instanceof PermanentDeliveryError ? 'permanent' : 'retry';
  }

  /** Lets every waiting delivery answer. */
  release(): void {
    const w = this.waiting;
    this.waiting = [];
    for (const ok of w) ok();
  }

  get pendingAnswers(): number {
    return this.waiting.length;
  }
}

const records = (from: number, n: number): SinkRecord[] =>
  Array.from({ length: n }, (_, i) => ({ id: `r${from + i}`, record: { n: from + i }, version: from + i + 1, deleted: false }));
const tick = () => new Promise((ok) => setImmediate(ok));

function makeSink(delivery: Delivery, opts: Partial<BatchingOptions> = {}, log: Logger = createLogger('silent')) {
  const dir = mkdtempSync(join(tmpdir(), 'couchlog-sink-'));
  const metrics = new CorrelatorMetrics(false);
  const deadLetter = new DeadLetterFile(join(dir, 'dead.jsonl'));
  const options: BatchingOptions = {
    batchSize: 10,
    maxBatchSize: opts.batchSize ?? 10,
    concurrency: 2,
    flushIntervalMs: 20,
    maxBufferSize: 1000,
    dropOnOverflow: false,
    retryInitialMs: 1,
    retryMaxMs: 5,
    ...opts,
  };
  const sink = new BatchingSink('test', delivery, options, deadLetter, metrics, log);
  const counter = async (name: string) => (await metrics.registry.getSingleMetric(name)!.get()).values.reduce((a, v) => a + v.value, 0);
  return { sink, metrics, counter, deadLetterPath: deadLetter.path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('BatchingSink', () => {
  test('full batches go at once, never more than `concurrency` in flight, write() resolves after delivery', async () => {
    const d = new ManualDelivery();
    d.auto = false;
    const { sink, cleanup } = makeSink(d, { batchSize: 10, concurrency: 2 });
    let acked = false;
    const written = sink.write(records(0, 45)).then(() => (acked = true));
    await tick();
    assert.equal(d.pendingAnswers, 2, 'two batches in flight');
    assert.equal(sink.backlog, 45);
    while (d.stored.length < 40) {
      d.release();
      await tick();
      await tick();
      assert.ok(d.inFlight <= 2);
    }
    assert.equal(acked, false, 'the last 5 records are not delivered yet');
    // The 5 left over form a partial batch, sent after the flush interval.
    await new Promise((ok) => setTimeout(ok, 40));
    d.release();
    await written;
    assert.equal(d.maxInFlight, 2);
    assert.deepEqual(
      d.batches.map((b) => b.length),
      [10, 10, 10, 10, 5],
    );
    assert.deepEqual(
      [...d.stored].sort(),
      records(0, 45)
        .map((r) => r.id)
        .sort(),
    );
    assert.equal(sink.backlog, 0);
    cleanup();
  });

  test('concurrency 1 keeps batches strictly one after the other, in order', async () => {
    const d = new ManualDelivery();
    const { sink, cleanup } = makeSink(d, { batchSize: 7, concurrency: 1 });
    await sink.write(records(0, 30));
    assert.equal(d.maxInFlight, 1);
    assert.deepEqual(
      d.stored,
      records(0, 30).map((r) => r.id),
    );
    cleanup();
  });

  test('a second write of the same id waits for the first batch, retries included; other batches do not wait', async () => {
    const d = new ManualDelivery();
    d.auto = false;
    const { sink, cleanup } = makeSink(d, { batchSize: 2, concurrency: 3 });
    d.failNext = 1; // the first batch fails once, then is retried
    const first = sink.write([
      { id: 'x', record: { v: 1 }, version: 1, deleted: false },
      { id: 'y', record: {}, version: 2, deleted: false },
    ]);
    const second = sink.write([
      { id: 'x', record: { v: 2 }, version: 3, deleted: true },
      { id: 'z', record: {}, version: 4, deleted: false },
    ]);
    const other = sink.write(records(100, 2));
    const pending = (): number => d.pendingAnswers;
    await tick();
    assert.equal(pending(), 2, 'the first batch and the unrelated one are in flight; the second waits for x');
    d.release(); // the first attempt fails, the unrelated batch is stored
    await other;
    for (let i = 0; i < 20 && pending() === 0; i++) await new Promise((ok) => setTimeout(ok, 2));
    assert.equal(pending(), 1, 'only the retry of the first batch: the second still waits');
    d.release();
    await first;
    for (let i = 0; i < 20 && pending() === 0; i++) await tick();
    d.release();
    await second;
    assert.deepEqual(d.batches, [
      ['r100', 'r101'],
      ['x', 'y'],
      ['x', 'z'],
    ]);
    await sink.close();
    cleanup();
  });

  test('retriable failures are retried and counted; nothing is lost or stored twice', async () => {
    const d = new ManualDelivery();
    d.failNext = 3;
    const { sink, counter, cleanup } = makeSink(d, { batchSize: 5 });
    await sink.write(records(0, 20));
    assert.equal(d.stored.length, 20);
    assert.equal(new Set(d.stored).size, 20);
    assert.equal(await counter('couchlog_correlator_sink_retries_total'), 3);
    assert.equal(sink.failingSince, null, 'healthy again');
    cleanup();
  });

  test('a permanent failure dead-letters only the bad record', async () => {
    const d = new ManualDelivery();
    d.refuse.add('r3');
    d.refuse.add('r4');
    const { sink, counter, deadLetterPath, cleanup } = makeSink(d, { batchSize: 5 });
    const batch = records(0, 10);
    // A record an admin change moved: a hand replay must delete it at its former times.
    batch[4] = { ...batch[4]!, formerTimes: [1_700_000_000_000, 1_700_000_060_000] };
    await sink.write(batch);
    assert.deepEqual(
      [...d.stored].sort(),
      records(0, 10)
        .map((r) => r.id)
        .filter((id) => id !== 'r3' && id !== 'r4')
        .sort(),
    );
    const dead = readFileSync(deadLetterPath, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .sort((a, b) => a.id.localeCompare(b.id));
    assert.equal(dead.length, 2);
    assert.equal(dead[0].id, 'r3');
    assert.match(dead[0].reason, /refused r3/);
    // Everything the sink was given, so a replay writes the same thing.
    assert.deepEqual(
      { sink: dead[0].sink, version: dead[0].version, deleted: dead[0].deleted, record: dead[0].record, formerTimes: dead[0].formerTimes },
      { sink: 'test', version: 4, deleted: false, record: { n: 3 }, formerTimes: undefined },
    );
    assert.deepEqual(dead[1].formerTimes, [1_700_000_000_000, 1_700_000_060_000]);
    assert.equal(dead[1].version, 5);
    assert.equal(await counter('couchlog_correlator_sink_dead_letters_total'), 2);
    await sink.close();
    cleanup();
  });

  test('a big batch with one bad record is halved down to it: few requests, only that record dead-lettered', async () => {
    const d = new ManualDelivery();
    let calls = 0;
    const deliver = d.deliver.bind(d);
    d.deliver = (batch) => {
      calls++;
      return deliver(batch);
    };
    d.refuse.add('r37');
    const { sink, deadLetterPath, cleanup } = makeSink(d, { batchSize: 64, concurrency: 1 });
    await sink.write(records(0, 64));
    assert.deepEqual(
      [...d.stored].sort(),
      records(0, 64)
        .map((r) => r.id)
        .filter((id) => id !== 'r37')
        .sort(),
    );
    assert.equal(readFileSync(deadLetterPath, 'utf8').trim().split('\n').length, 1);
    // 1 + 2 per halving (64 -> 1 is 6 halvings): 13, where one by one would be 65.
    assert.equal(calls, 13);
    await sink.close();
    cleanup();
  });

  test('records already waiting beyond one batch go together, up to maxBatchSize; a sink that keeps up sends batchSize', async () => {
    const d = new ManualDelivery();
    d.auto = false;
    const { sink, cleanup } = makeSink(d, { batchSize: 10, maxBatchSize: 25, concurrency: 1, flushIntervalMs: 5 });
    const written = sink.write(records(0, 60));
    while (d.stored.length < 60) {
      d.release();
      await new Promise((ok) => setTimeout(ok, 10));
    }
    await written;
    assert.deepEqual(
      d.batches.map((b) => b.length),
      [25, 25, 10],
    );
    assert.deepEqual(
      d.stored,
      records(0, 60).map((r) => r.id),
      'in order',
    );

    d.batches.length = 0;
    d.auto = true;
    for (let i = 0; i < 3; i++) await sink.write(records(100 + 10 * i, 10));
    assert.deepEqual(
      d.batches.map((b) => b.length),
      [10, 10, 10],
    );
    cleanup();
  });

  test('drop_on_overflow drops beyond max_buffer_size and counts every drop; otherwise the sink reports full', async () => {
    const d = new ManualDelivery();
    d.auto = false;
    const dropping = makeSink(d, { batchSize: 10, maxBufferSize: 25, dropOnOverflow: true });
    const written = dropping.sink.write(records(0, 40));
    assert.equal(await dropping.counter('couchlog_correlator_sink_dropped_total'), 15);
    assert.equal(dropping.sink.full, false, 'a dropping sink never stops the reader');
    while (d.stored.length < 25) {
      d.release();
      await new Promise((ok) => setTimeout(ok, 5));
    }
    await written;
    assert.equal(d.stored.length, 25);
    dropping.cleanup();

    const d2 = new ManualDelivery();
    d2.auto = false;
    const holding = makeSink(d2, { batchSize: 10, maxBufferSize: 25 });
    const all = holding.sink.write(records(0, 40));
    assert.equal(holding.sink.full, true);
    while (d2.stored.length < 40) {
      d2.release();
      await new Promise((ok) => setTimeout(ok, 5));
    }
    await all;
    assert.equal(holding.sink.full, false);
    assert.equal(await holding.counter('couchlog_correlator_sink_dropped_total'), 0);
    holding.cleanup();
  });

  test('drop_on_overflow warns once when an overflow starts, not per record, and again for the next overflow', async () => {
    const lines: Array<{ msg: string; sink: string }> = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line) as { msg: string; sink: string }) }) as unknown as Logger;
    const d = new ManualDelivery();
    d.auto = false;
    const s = makeSink(d, { batchSize: 10, maxBufferSize: 5, dropOnOverflow: true }, log);
    const first = s.sink.write(records(0, 8));
    const second = s.sink.write(records(8, 8));
    assert.equal(await s.counter('couchlog_correlator_sink_dropped_total'), 11);
    assert.equal(lines.filter((l) => /dropping records/.test(l.msg)).length, 1, 'one warning for one overflow');
    while (d.stored.length < 5) {
      d.release();
      await new Promise((ok) => setTimeout(ok, 5));
    }
    await Promise.all([first, second]);
    // Taken whole: the overflow is over; the next one is announced again.
    await Promise.race([s.sink.write(records(16, 2)), new Promise((ok) => setTimeout(ok, 1))]);
    void s.sink.write(records(18, 9));
    assert.equal(lines.filter((l) => /dropping records/.test(l.msg)).length, 2);
    assert.equal(lines[0]!.sink, 'test');
    while (d.stored.length < 10) {
      d.release();
      await new Promise((ok) => setTimeout(ok, 5));
    }
    s.cleanup();
  });

  test('close() sends the partial batch at once and waits for everything in flight', async () => {
    const d = new ManualDelivery();
    const { sink, cleanup } = makeSink(d, { batchSize: 100, flushIntervalMs: 60_000 });
    void sink.write(records(0, 7));
    await tick();
    assert.equal(d.stored.length, 0, 'a partial batch waits for its interval');
    await sink.close();
    assert.equal(d.stored.length, 7);
    cleanup();
  });
});

describe('BatchingSink when the dead-letter file cannot be written', () => {
  test('the refused record is held and retried until the file can be written, never dropped', async () => {
    const d = new ManualDelivery();
    d.refuse.add('r1');
    const dir = mkdtempSync(join(tmpdir(), 'couchlog-sink-'));
    // A dead-letter path whose parent is a file: mkdir fails until it is removed.
    const blocker = join(dir, 'blocker');
    writeFileSync(blocker, 'x');
    const deadLetter = new DeadLetterFile(join(blocker, 'dead.jsonl'));
    const metrics = new CorrelatorMetrics(false);
    const sink = new BatchingSink(
      'test',
      d,
      { batchSize: 5, maxBatchSize: 5, concurrency: 1, flushIntervalMs: 5, maxBufferSize: 100, dropOnOverflow: false, retryInitialMs: 5, retryMaxMs: 10 },
      deadLetter,
      metrics,
      createLogger('silent'),
    );
    let acked = false;
    const written = sink.write(records(0, 3)).then(() => (acked = true));
    // Until the dead-letter write has failed (file system calls: no fixed time on a loaded machine).
    for (const until = Date.now() + 5000; sink.failingSince === null && Date.now() < until;) await new Promise((ok) => setTimeout(ok, 10));
    assert.notEqual(sink.failingSince, null, '/health sees the failure');
    assert.equal(acked, false, 'not acknowledged while the record is nowhere');
    rmSync(blocker);
    await written;
    assert.equal(JSON.parse(readFileSync(join(blocker, 'dead.jsonl'), 'utf8')).id, 'r1');
    assert.deepEqual([...d.stored].sort(), ['r0', 'r2']);
    assert.equal(sink.failingSince, null);
    rmSync(dir, { recursive: true, force: true });
  });

  test('abandon() at shutdown: retries stop at once, close() returns, nothing is acknowledged', async () => {
    const failing: Delivery = {
      deliver: async () => {
        throw new Error('ClickHouse is down');
      },
      classify: () => 'retry',
    };
    const { sink, counter, cleanup } = makeSink(failing, { retryInitialMs: 50, retryMaxMs: 60_000 });
    let acked = false;
    void sink.write(records(0, 25)).then(() => (acked = true));
    await new Promise((ok) => setTimeout(ok, 200));
    assert.ok((await counter('couchlog_correlator_sink_retries_total')) >= 1);
    const closing = sink.close();
    sink.abandon();
    const started = Date.now();
    await closing;
    assert.ok(Date.now() - started < 1000, `close() took ${Date.now() - started} ms after abandon()`);
    const retries = await counter('couchlog_correlator_sink_retries_total');
    await new Promise((ok) => setTimeout(ok, 300));
    assert.equal(await counter('couchlog_correlator_sink_retries_total'), retries, 'no retry after abandon()');
    assert.equal(acked, false, 'what was not delivered is not acknowledged');
    cleanup();
  });
});
