// shipper/ack-tracker.ts: the acknowledged frontier (what a state file or --truncate may take as sent).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AckTracker } from '../../../shipper/ack-tracker.js';

describe('ack tracker', () => {
  test('the frontier is the end of the longest done prefix, whatever the order acks come in', () => {
    const t = new AckTracker(100);
    assert.equal(t.frontier(), 100);
    const idx = [0, 1, 2, 3].map((i) => t.add(100 + i * 10, 110 + i * 10));
    t.markDone(idx[1]!);
    t.markDone(idx[3]!);
    assert.equal(t.frontier(), 100);
    t.markDone(idx[0]!);
    assert.equal(t.frontier(), 120);
    assert.equal(t.allDone(), false);
    t.markDone(idx[2]!);
    assert.equal(t.frontier(), 140);
    assert.equal(t.allDone(), true);
  });

  test('a done document of non-adjacent lines never straddles the frontier', () => {
    const t = new AckTracker(0);
    const l = [0, 1, 2, 3, 4].map((i) => t.add(i * 10, i * 10 + 10));
    // An audit event made of lines 0 and 3 is done; line 1 (another event) is not.
    t.markDone([l[0]!, l[3]!]);
    t.markDone(l[2]!);
    assert.equal(t.frontier(), 0, 'not 10: reading again from line 1 would see line 3 without line 0, its event cut in two');
    t.markDone(l[1]!);
    assert.equal(t.frontier(), 40);
    // Now an event of lines 4 and a later 6 that is done while 5 is not.
    const l5 = t.add(50, 60);
    const l6 = t.add(60, 70);
    t.markDone([l[4]!, l6]);
    assert.equal(t.frontier(), 40, 'not 50: that would cut the event of lines 4 and 6');
    t.markDone(l5);
    assert.equal(t.frontier(), 70);
  });

  test('a million lines, acked in order: memory is reclaimed and the frontier stays right', () => {
    const t = new AckTracker(0);
    for (let i = 0; i < 1_000_000; i++) t.markDone(t.add(i * 80, i * 80 + 80));
    assert.equal(t.frontier(), 80_000_000);
    assert.equal(t.lastEnd(), 80_000_000);
  });
});
