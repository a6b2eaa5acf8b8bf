// lib/couch/seq-ahead.ts: only plain sequences are compared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isPlainSeq, seqAhead } from '../../../../lib/couch/seq-ahead.js';

test('a plain sequence past the update_seq is ahead, as a number or as text', () => {
  assert.equal(seqAhead('45', 5), true);
  assert.equal(seqAhead(45, '5'), true);
  assert.equal(seqAhead('6', 5), true);
});

test('at or behind the update_seq, or from the start, is not ahead', () => {
  assert.equal(seqAhead('5', 5), false);
  assert.equal(seqAhead('4', 5), false);
  assert.equal(seqAhead('0', 0), false);
  assert.equal(seqAhead('', 5), false);
});

test("CouchDB 3's opaque sequences, and anything unreadable, are never compared", () => {
  assert.equal(seqAhead('45-g1AAAACreJzLYWBgYMpgTmEQ', '3-g1AAAACreJzLYWBgYMpgTmEQ'), false);
  assert.equal(seqAhead('45', '3-g1AAAACreJzLYWBgYMpgTmEQ'), false);
  assert.equal(seqAhead('45', undefined), false);
  assert.equal(seqAhead('45', null), false);
  assert.equal(seqAhead(-1, 5), false);
  assert.equal(seqAhead(1.5, 0), false);
  assert.equal(seqAhead('1e3', 5), false);
  assert.equal(seqAhead('9'.repeat(20), 5), false);
});

test('isPlainSeq tells which sequences are worth an update_seq look', () => {
  assert.equal(isPlainSeq('45'), true);
  assert.equal(isPlainSeq(45), true);
  assert.equal(isPlainSeq('45-g1AAAACreJzLYWBgYMpgTmEQ'), false);
  assert.equal(isPlainSeq(''), false);
});
