// FanOut.ackedThrough decides which checkpoint may be saved: everything up
// to it must be acknowledged by every sink. Property: under any seeded
// order in which sinks acknowledge batches, ackedThrough is exactly the
// longest acknowledged prefix, never more, and never goes back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FanOut } from '../../../../correlator/sinks/fan-out.js';
import type { Sink, SinkRecord } from '../../../../correlator/sinks/sink.js';
import type { Output } from '../../../../correlator/engine/types.js';
import { mulberry32 } from '../../../../bench/prng.js';

/** A sink whose writes resolve only when the test says so. */
class ManualSink implements Sink {
  readonly backlog = 0;
  readonly full = false;
  readonly failingSince = null;
  readonly waiting: Array<{ records: SinkRecord[]; ack: () => void }> = [];
  constructor(readonly name: string) {}
  write(records: SinkRecord[]): Promise<void> {
    return new Promise((resolve) => this.waiting.push({ records, ack: resolve }));
  }
  async close(): Promise<void> {}
}

const out = (id: string): Output => ({ kind: 'correlated', id, record: { id }, revision: 1, version: 1 });
const ticks = () => new Promise((r) => setImmediate(r));

test('ackedThrough is the longest prefix of batches every sink acknowledged, for 200 seeded ack orders', async () => {
  for (let seed = 1; seed <= 200; seed++) {
    const rnd = mulberry32(seed);
    const sinks = Array.from({ length: 1 + Math.floor(rnd() * 3) }, (_, i) => new ManualSink(`s${i}`));
    const fan = new FanOut(sinks);
    const batches = 1 + Math.floor(rnd() * 12);
    for (let b = 1; b <= batches; b++) fan.write([out(`r${b}`)]);
    assert.equal(fan.lastWrite, batches);
    assert.equal(fan.ackedThrough, 0, `seed ${seed}: nothing acknowledged yet`);
    // Every (sink, batch) acknowledgment, in a seeded random order.
    const acks = sinks.flatMap((s) => s.waiting.map((w, i) => ({ sink: s.name, batch: i + 1, ack: w.ack })));
    for (let i = acks.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [acks[i], acks[j]] = [acks[j]!, acks[i]!];
    }
    const done = new Map<number, number>(); // batch -> sinks that acknowledged it
    let before = 0;
    for (const a of acks) {
      a.ack();
      await ticks();
      done.set(a.batch, (done.get(a.batch) ?? 0) + 1);
      let prefix = 0;
      while (done.get(prefix + 1) === sinks.length) prefix++;
      assert.equal(fan.ackedThrough, prefix, `seed ${seed}: after ${a.sink} acknowledged batch ${a.batch}`);
      assert.ok(fan.ackedThrough >= before, `seed ${seed}: ackedThrough went back`);
      before = fan.ackedThrough;
    }
    assert.equal(fan.ackedThrough, batches);
    assert.equal(fan.pending, 0);
  }
});

test('settled() waits for every sink, and empty batches are not numbered', async () => {
  const a = new ManualSink('a');
  const b = new ManualSink('b');
  const fan = new FanOut([a, b]);
  fan.write([]);
  assert.equal(fan.lastWrite, 0, 'an empty batch takes no number');
  fan.write([out('x')]);
  let settled = false;
  const s = fan.settled().then(() => (settled = true));
  a.waiting[0]!.ack();
  await ticks();
  assert.equal(settled, false, 'one sink of two acknowledged');
  assert.equal(fan.ackedThrough, 0);
  b.waiting[0]!.ack();
  await s;
  assert.equal(fan.ackedThrough, 1);
});

test('every sink gets the same records, deletions marked', async () => {
  const a = new ManualSink('a');
  const b = new ManualSink('b');
  const fan = new FanOut([a, b]);
  fan.write([out('x'), { ...out('y'), kind: 'deleted' } as Output]);
  assert.deepEqual(a.waiting[0]!.records, b.waiting[0]!.records);
  assert.deepEqual(
    a.waiting[0]!.records.map((r) => [r.id, r.deleted]),
    [
      ['x', false],
      ['y', true],
    ],
  );
});

test('without sinks nothing is numbered and nothing waits', async () => {
  const fan = new FanOut([]);
  fan.write([out('x')]);
  assert.equal(fan.lastWrite, 0);
  await fan.settled();
  assert.equal(fan.ackedThrough, 0);
});

test('settled(name) waits for that sink only: another that never acknowledges does not hold it', async () => {
  const couch = new ManualSink('couchdb');
  const down = new ManualSink('clickhouse');
  const fan = new FanOut([couch, down]);
  fan.write([out('r1')]);
  fan.write([out('r2')]);
  let settled = false;
  const waiting = fan.settled('couchdb').then(() => (settled = true));
  couch.waiting[0]!.ack();
  await ticks();
  assert.equal(settled, false, 'r2 is not acknowledged by couchdb yet');
  couch.waiting[1]!.ack();
  await waiting;
  assert.equal(settled, true);
  assert.equal(fan.ackedThrough, 0, 'a checkpoint still waits for every sink');
  // A write after the wait began is waited for too, by a new call.
  fan.write([out('r3')]);
  let again = false;
  const second = fan.settled('couchdb').then(() => (again = true));
  await ticks();
  assert.equal(again, false);
  couch.waiting[2]!.ack();
  await second;
  await fan.settled('no-such-sink');
});
