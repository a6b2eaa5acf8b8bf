// The stored form of a correlated record read back gives the record the
// sinks were given: seeded random records, JSON round trip as CouchDB
// stores them, CouchDB's fields and the signature added on the way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isRecordId, recordOfStored, storedDoc } from '../../../../../correlator/sinks/couchdb/stored-record.js';
import { isoTime } from '../../../../../correlator/engine/iso-time.js';
import { SIGNATURE_FIELD } from '../../../../../lib/audit/record-signature.js';
import { mulberry32 } from '../../../../../bench/prng.js';
import type { SinkRecord } from '../../../../../correlator/sinks/sink.js';

function randomRecord(rnd: () => number, i: number): SinkRecord {
  const version = 1_700_000_000_000 + Math.floor(rnd() * 1e11);
  const record: Record<string, unknown> = {
    timestamp: isoTime(version - Math.floor(rnd() * 1e7)),
    src_ip: rnd() < 0.3 ? '::ffff:192.0.2.7' : `198.51.100.${i % 256}`,
    src_port: Math.floor(rnd() * 65536),
    correlated: rnd() < 0.5,
    keepalives: Math.floor(rnd() * 5),
    'header_User-Agent': rnd() < 0.5 ? 'curl/8' : null,
    nested: { a: [1, 'two', { three: rnd() }] },
    _internal: 'never stored',
    revision: 1 + Math.floor(rnd() * 3),
    decided_at: isoTime(version),
  };
  return { id: `${rnd() < 0.5 ? 'A' : 'B'}-doc${i}'\\"`, record, version, deleted: false };
}

test('recordOfStored(storedDoc(r)) is r without the fields CouchDB refuses, version recovered to the millisecond (500 seeded records)', () => {
  const rnd = mulberry32(2026);
  for (let i = 0; i < 500; i++) {
    const r = randomRecord(rnd, i);
    const stored = JSON.parse(JSON.stringify({ ...storedDoc(r), _rev: '3-abc', [SIGNATURE_FIELD]: 'hmac-sha256:x' })) as Record<string, unknown>;
    const back = recordOfStored(stored._id as string, stored, false);
    const { _internal: _, ...expected } = r.record;
    assert.deepEqual(back, { ...r, record: expected }, `record ${i}`);
  }
});

test('a tombstone reads as a deletion with its revision and version', () => {
  const tomb = { _id: 'B-x', _rev: '2-def', _deleted: true, revision: 2, decided_at: '2026-12-05T09:00:00.123Z', [SIGNATURE_FIELD]: 'hmac-sha256:y' };
  assert.deepEqual(recordOfStored('B-x', tomb, true), {
    id: 'B-x',
    version: Date.parse('2026-12-05T09:00:00.123Z'),
    deleted: true,
    record: { revision: 2, decided_at: '2026-12-05T09:00:00.123Z', deleted: true },
  });
});

test('documents that are no records give null', () => {
  assert.equal(recordOfStored('_design/report', { decided_at: '2026-12-05T09:00:00Z' }, false), null);
  assert.equal(recordOfStored('C-1', { decided_at: '2026-12-05T09:00:00Z' }, false), null);
  assert.equal(recordOfStored('A-1', { correlated: true }, false), null, 'no decided_at: nothing to order it by');
  assert.equal(recordOfStored('A-1', { decided_at: 'yesterday' }, false), null);
  assert.deepEqual(['A-1', 'B-1', 'a-1', 'AB', ''].map(isRecordId), [true, true, false, false, false]);
});
