// Unit tests of correlator/engine/merge-record.ts: the flat output record of
// the seed (core fields first, then every other field of A and B at the
// root, a_/b_ prefixes only for a field both have with different values),
// orphan records, and the deterministic output ids that make a second write
// of the same output harmless.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { correlatedRecord, orphanRecord, outputId } from '../../../../correlator/engine/merge-record.js';
import type { InputEvent, Side } from '../../../../correlator/engine/types.js';

const NOON = Date.UTC(2024, 0, 1, 12);

function ev(side: Side, id: string, time: number, doc: Record<string, unknown>): InputEvent {
  return { side, index: 0, id, key: '203.0.113.42:52341', time, doc: { src_ip: '203.0.113.42', src_port: 52341, ...doc } };
}

// Shaped like seed 000/001: A from the web server, B from the TLS sensor.
const httpA = ev('A', 'http-1', NOON + 120, {
  dst_ip: '192.168.1.10',
  dst_port: 443,
  timestamp: 1704110400120000000,
  method: 'GET',
  host: 'example.com',
  path: '/api/v1/users',
  'header_User-Agent': 'Mozilla/5.0',
});
const tlsB = ev('B', 'tls-1', NOON, {
  dst_ip: '192.168.1.10',
  dst_port: 443,
  timestamp: NOON,
  ja4: 't13d1516h2_8daaf6152771_b0da82dd1658',
  ja3_hash: 'e7d705a3286e19ea42f587b344ee6865',
  ip_meta_ttl: 64,
  tls_sni: 'example.com',
  conn_id: 'c-77',
});

const CORE_ORDER = [
  'timestamp',
  'src_ip',
  'src_port',
  'dst_ip',
  'dst_port',
  'correlated',
  'orphan_side',
  'keepalives',
  'a_timestamp',
  'b_timestamp',
  'conn_id',
];

describe('correlatedRecord', () => {
  test('the seed example: core fields first, then A and B fields flat at the root', () => {
    const r = correlatedRecord(httpA, tlsB, 3);
    assert.deepEqual(Object.keys(r).slice(0, CORE_ORDER.length), CORE_ORDER);
    assert.deepEqual(r, {
      timestamp: '2024-01-01T12:00:00.120Z',
      src_ip: '203.0.113.42',
      src_port: 52341,
      dst_ip: '192.168.1.10',
      dst_port: 443,
      correlated: true,
      orphan_side: '',
      keepalives: 3,
      a_timestamp: NOON + 120,
      b_timestamp: NOON,
      conn_id: 'c-77',
      a_id: 'http-1',
      b_id: 'tls-1',
      method: 'GET',
      host: 'example.com',
      path: '/api/v1/users',
      'header_User-Agent': 'Mozilla/5.0',
      ja4: 't13d1516h2_8daaf6152771_b0da82dd1658',
      ja3_hash: 'e7d705a3286e19ea42f587b344ee6865',
      ip_meta_ttl: 64,
      tls_sni: 'example.com',
    });
  });

  test('the record is flat: no nested A/B objects, JSON round-trips unchanged', () => {
    const r = correlatedRecord(httpA, tlsB, 1);
    assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
    for (const [k, v] of Object.entries(r)) assert.ok(v === null || typeof v !== 'object', `${k} is not nested`);
  });

  // Table: A fields, B fields -> the fields expected in the record (beyond the core).
  const collisions: [string, Record<string, unknown>, Record<string, unknown>, Record<string, unknown>, string[]][] = [
    ['equal values are kept once', { host: 'x.test' }, { host: 'x.test' }, { host: 'x.test' }, ['a_host', 'b_host']],
    ['different values become a_ and b_', { tls_version: '1.2' }, { tls_version: '1.3' }, { a_tls_version: '1.2', b_tls_version: '1.3' }, ['tls_version']],
    ['equal objects (by value) are kept once', { tags: { env: 'prod' } }, { tags: { env: 'prod' } }, { tags: { env: 'prod' } }, ['a_tags', 'b_tags']],
    ['different arrays become a_ and b_', { alpn: ['h2'] }, { alpn: ['h2', 'http/1.1'] }, { a_alpn: ['h2'], b_alpn: ['h2', 'http/1.1'] }, ['alpn']],
    ['a number and its string are different values', { status: 200 }, { status: '200' }, { a_status: 200, b_status: '200' }, ['status']],
    ['a field only in A is kept as is', { method: 'POST' }, {}, { method: 'POST' }, ['a_method', 'b_method']],
    ['a field only in B is kept as is', {}, { ja3: 'abc' }, { ja3: 'abc' }, ['a_ja3', 'b_ja3']],
    ['null in both is one null', { referer: null }, { referer: null }, { referer: null }, ['a_referer']],
  ];
  for (const [name, aDoc, bDoc, want, absent] of collisions) {
    test(`field collision: ${name}`, () => {
      const r = correlatedRecord(ev('A', 'a', NOON, aDoc), ev('B', 'b', NOON, bDoc), 1);
      for (const [k, v] of Object.entries(want)) assert.deepEqual(r[k], v, k);
      for (const k of absent) assert.ok(!(k in r), `${k} must not be in the record`);
    });
  }

  test("dst_port differing (443 at the sensor, 8443 at the backend): dst_port is A's, both kept as a_/b_", () => {
    const r = correlatedRecord(ev('A', 'a', NOON, { dst_ip: '10.0.0.5', dst_port: 8443 }), ev('B', 'b', NOON, { dst_ip: '10.0.0.5', dst_port: 443 }), 1);
    assert.equal(r.dst_port, 8443);
    assert.equal(r.a_dst_port, 8443);
    assert.equal(r.b_dst_port, 443);
    assert.equal(r.dst_ip, '10.0.0.5');
    assert.ok(!('a_dst_ip' in r) && !('b_dst_ip' in r), 'equal dst_ip is not duplicated');
  });

  test("conn_id: B's; A's when B has none; both kept as a_/b_ when they differ", () => {
    assert.equal(correlatedRecord(ev('A', 'a', NOON, { conn_id: 'from-a' }), ev('B', 'b', NOON, {}), 1).conn_id, 'from-a');
    const both = correlatedRecord(ev('A', 'a', NOON, { conn_id: 'from-a' }), ev('B', 'b', NOON, { conn_id: 'from-b' }), 1);
    assert.equal(both.conn_id, 'from-b');
    assert.equal(both.a_conn_id, 'from-a');
    assert.equal(both.b_conn_id, 'from-b');
    assert.equal(correlatedRecord(ev('A', 'a', NOON, {}), ev('B', 'b', NOON, {}), 1).conn_id, null);
  });

  // "every other field of A and B at the root": the destination B saw must
  // not vanish because A's log format lacks it.
  test('dst_ip/dst_port only in B are taken from B', () => {
    const r = correlatedRecord(ev('A', 'a', NOON, { method: 'GET' }), ev('B', 'b', NOON, { dst_ip: '192.0.2.10', dst_port: 443 }), 1);
    assert.equal(r.dst_ip, '192.0.2.10');
    assert.equal(r.dst_port, 443);
  });

  test('source fields named like core fields do not overwrite them', () => {
    const r = correlatedRecord(
      ev('A', 'a', NOON, { timestamp: 1704110400000000000, correlated: 'yes', keepalives: 99, orphan_side: 'X' }),
      ev('B', 'b', NOON + 5, { timestamp: 'garbage', a_timestamp: 1, b_timestamp: 2 }),
      2,
    );
    assert.equal(r.timestamp, '2024-01-01T12:00:00.000Z', "the record's own ISO time, from A's event time");
    assert.equal(r.correlated, true);
    assert.equal(r.keepalives, 2);
    assert.equal(r.orphan_side, '');
    assert.equal(r.a_timestamp, NOON);
    assert.equal(r.b_timestamp, NOON + 5);
  });

  test("source fields named like the sinks' bookkeeping are kept as orig_<name>, never passing for it", () => {
    // An HTTP log's request `id` became the file line's id, and `deleted: true` hid the record in ClickHouse.
    const bookkeeping = { id: 'req-42', deleted: true, revision: 9, decided_at: 'x', version: 3 };
    const r = correlatedRecord(ev('A', 'a', NOON, bookkeeping), ev('B', 'b', NOON, { id: 'flow-7' }), 1);
    for (const name of ['id', 'deleted', 'revision', 'decided_at', 'version']) assert.equal(name in r, false, name);
    assert.equal(r.orig_deleted, true);
    assert.equal(r.orig_revision, 9);
    assert.equal(r.orig_decided_at, 'x');
    assert.equal(r.orig_version, 3);
    // A and B disagree: both kept, and the core a_id/b_id (the documents' ids) stay.
    assert.equal(r.a_orig_id, 'req-42');
    assert.equal(r.b_orig_id, 'flow-7');
    assert.equal(r.a_id, 'a');
    assert.equal(r.b_id, 'b');
    const o = orphanRecord(ev('A', 'a', NOON, bookkeeping));
    assert.deepEqual(
      Object.keys(o).filter((k) => k.startsWith('orig_')),
      ['orig_id', 'orig_deleted', 'orig_revision', 'orig_decided_at', 'orig_version'],
    );
    assert.equal('id' in o || 'deleted' in o, false);
    // A source orig_id of its own is kept too, as orig_orig_id (found by a code review: one of the two was lost).
    const both = orphanRecord(ev('A', 'a', NOON, { id: 'x', orig_id: 'y' }));
    assert.equal(both.orig_id, 'x');
    assert.equal(both.orig_orig_id, 'y');
  });

  test('the source events are not modified', () => {
    const a = ev('A', 'a', NOON, { tls_version: '1.2' });
    const b = ev('B', 'b', NOON, { tls_version: '1.3' });
    const before = structuredClone([a, b]);
    correlatedRecord(a, b, 1);
    assert.deepEqual([a, b], before);
  });
});

describe('orphanRecord', () => {
  test('an orphan A: correlated false, orphan_side A, no B side, all A fields', () => {
    const r = orphanRecord(httpA);
    assert.deepEqual(Object.keys(r).slice(0, CORE_ORDER.length), CORE_ORDER);
    assert.deepEqual(r, {
      timestamp: '2024-01-01T12:00:00.120Z',
      src_ip: '203.0.113.42',
      src_port: 52341,
      dst_ip: '192.168.1.10',
      dst_port: 443,
      correlated: false,
      orphan_side: 'A',
      keepalives: 0,
      a_timestamp: NOON + 120,
      b_timestamp: null,
      conn_id: null,
      a_id: 'http-1',
      b_id: null,
      method: 'GET',
      host: 'example.com',
      path: '/api/v1/users',
      'header_User-Agent': 'Mozilla/5.0',
    });
  });

  test('an orphan B: orphan_side B, its own time and conn_id, no A side', () => {
    const r = orphanRecord(tlsB);
    assert.equal(r.correlated, false);
    assert.equal(r.orphan_side, 'B');
    assert.equal(r.timestamp, '2024-01-01T12:00:00.000Z');
    assert.equal(r.a_timestamp, null);
    assert.equal(r.b_timestamp, NOON);
    assert.equal(r.a_id, null);
    assert.equal(r.b_id, 'tls-1');
    assert.equal(r.conn_id, 'c-77');
    assert.equal(r.ja4, tlsB.doc.ja4);
    assert.equal(r.keepalives, 0);
  });

  test('an orphan without dst fields has them as null (the columns always exist)', () => {
    const r = orphanRecord(ev('A', 'a', NOON, {}));
    assert.equal(r.dst_ip, null);
    assert.equal(r.dst_port, null);
  });
});

describe('outputId', () => {
  test('derived from the side and the source document id only', () => {
    assert.equal(outputId(httpA), 'A-http-1');
    assert.equal(outputId(tlsB), 'B-tls-1');
    assert.equal(outputId({ ...httpA, index: 999, time: 0, doc: {} }), 'A-http-1', 'not from index, time or content');
  });

  test('an A and a B with the same document id get different output ids', () => {
    assert.notEqual(outputId(ev('A', 'same', NOON, {})), outputId(ev('B', 'same', NOON, {})));
  });
});

describe('records of documents an admin edited', () => {
  test('a_rev / b_rev say which revision a record was built from, only above the first; a source field of that name is kept aside', () => {
    const a = { ...httpA, rev: '2-abc', doc: { ...httpA.doc, a_rev: 'mine' } };
    const r = correlatedRecord(a, tlsB, 1);
    assert.equal(r.a_rev, '2-abc');
    assert.equal('b_rev' in r, false);
    assert.equal(r.orig_a_rev, 'mine');
    assert.equal(orphanRecord({ ...tlsB, rev: '3-d' }).b_rev, '3-d');
    assert.equal('a_rev' in correlatedRecord(httpA, tlsB, 1), false);
  });
});
