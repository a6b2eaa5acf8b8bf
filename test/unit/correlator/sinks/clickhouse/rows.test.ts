// Unit tests of correlator/sinks/clickhouse/rows.ts: which record field feeds
// which typed column, what goes to `extra`, and the value conversions.
// The fast mapping is also checked against a plain statement of the rule
// (reference below) on thousands of generated records.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { dateTimeSeconds, EXACT_FIELDS, rowTime, toJsonLine, toRow } from '../../../../../correlator/sinks/clickhouse/rows.js';
import { COLUMNS } from '../../../../../correlator/sinks/clickhouse/columns.js';
import { mulberry32 } from '../../../../../bench/prng.js';

/** The rule, stated plainly: fields by normalized name (later wins), first `from` name present wins, the id fills `id`. */
function reference(id: string, record: Record<string, unknown>): { picked: Record<string, unknown>; extra: Record<string, unknown> } {
  const norm = (name: string) => name.toLowerCase().replace(/-/g, '_');
  const fields = new Map<string, [string, unknown]>();
  // The record's own fields feed their columns only when spelled exactly.
  for (const [k, v] of Object.entries(record)) if (!(EXACT_FIELDS.has(norm(k)) && norm(k) !== k)) fields.set(norm(k), [k, v]);
  fields.set('id', ['id', id]);
  const used = new Set<string>();
  const picked: Record<string, unknown> = {};
  for (const col of COLUMNS) {
    if (col.name === 'extra') continue;
    for (const f of col.from) {
      const hit = fields.get(norm(f));
      if (hit !== undefined) {
        picked[col.name] = hit[1];
        used.add(hit[0]);
        break;
      }
    }
  }
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) if (!used.has(k)) extra[k] = v;
  return { picked, extra };
}

const row = (record: Record<string, unknown>, id = 'A-1') => toRow({ id, record, version: 1, deleted: false });

describe('toRow', () => {
  test('every column is present, in table order, extra last', () => {
    assert.deepEqual(
      Object.keys(row({})),
      COLUMNS.map((c) => c.name),
    );
  });

  test('typed columns from the record; the rest goes to extra as JSON', () => {
    const r = row({ timestamp: '2024-01-01T12:00:00.120Z', src_ip: '203.0.113.42', src_port: 52341, ja4: 't13d', status: 200, tags: ['a'] });
    assert.equal(r.id, 'A-1');
    assert.equal(r.time, Date.UTC(2024, 0, 1, 12) / 1000);
    assert.equal(r.log_date, '2024-01-01');
    assert.equal(r.src_ip, '203.0.113.42');
    assert.equal(r.src_port, 52341);
    assert.equal(r.ja4, 't13d');
    assert.equal(r.method, '');
    assert.equal(r.keepalives, 0);
    assert.deepEqual(JSON.parse(r.extra as string), { status: 200, tags: ['a'] });
  });

  test('a field named __proto__ goes to extra like any other (it was taken for the prototype and lost)', () => {
    const record = JSON.parse('{"__proto__": {"x": 1}, "constructor": "c", "status": 200}') as Record<string, unknown>;
    assert.equal(row(record).extra, '{"__proto__":{"x":1},"constructor":"c","status":200}');
  });

  test('header names match case- and dash-insensitively; of two spellings the later counts, the other goes to extra', () => {
    const r = row({ 'header_User-Agent': 'curl/8', header_user_agent: 'Mozilla/5.0' });
    assert.equal(r.header_user_agent, 'Mozilla/5.0');
    assert.deepEqual(JSON.parse(r.extra as string), { 'header_User-Agent': 'curl/8' });
  });

  test('the record id fills `id`, whatever the record says', () => {
    const r = row({ ID: 'from-log', id: 'also-from-log' }, 'B-7');
    assert.equal(r.id, 'B-7');
    assert.deepEqual(JSON.parse(r.extra as string), { ID: 'from-log' });
  });

  test('`deleted` and `version` follow the output, never a record field', () => {
    // A record with deleted: 1 of its own vanished from `deleted = 0` queries (found by a black-box test).
    for (const value of [true, 1, 5, '1']) {
      const r = toRow({ id: 'A-1', record: { deleted: value, version: 99 }, version: 7, deleted: false });
      assert.equal(r.deleted, 0, `deleted: ${JSON.stringify(value)}`);
      assert.equal(r.version, 7);
    }
    assert.equal(toRow({ id: 'B-1', record: { deleted: true }, version: 8, deleted: true }).deleted, 1);
  });

  test("the record's own fields feed their columns only spelled exactly; other spellings go to extra", () => {
    // Found by a code review: a source Correlated / A_ID / Timestamp overwrote the record's own.
    const r = row({
      timestamp: '2026-12-05T10:00:00.000Z',
      correlated: false,
      a_id: 'a1',
      Correlated: true,
      A_ID: 'forged',
      Timestamp: '2030-01-01T00:00:00Z',
      'Orphan-Side': 'X',
    });
    assert.equal(r.correlated, 0);
    assert.equal(r.a_id, 'a1');
    assert.equal(r.time, Date.parse('2026-12-05T10:00:00.000Z') / 1000);
    assert.deepEqual(JSON.parse(r.extra as string), { Correlated: true, A_ID: 'forged', Timestamp: '2030-01-01T00:00:00Z', 'Orphan-Side': 'X' });
    assert.equal(row({ 'Header-User-Agent': 'curl/8' }).header_user_agent, 'curl/8', 'other columns still match case- and dash-insensitively');
  });

  test('numbers are clamped to 0 when out of range, never wrapped; strings and booleans convert', () => {
    const r = row({ src_port: 70000, dst_port: '8443', correlated: true, ip_meta_ttl: -1, syn_to_clienthello_ms: -12, keepalives: 2.9 });
    assert.equal(r.src_port, 0);
    assert.equal(r.dst_port, 8443);
    assert.equal(r.correlated, 1);
    assert.equal(r.ip_meta_ttl, 0);
    assert.equal(r.syn_to_clienthello_ms, -12);
    assert.equal(r.keepalives, 2);
  });

  test('unparsable dates become the epoch; objects in string columns become JSON', () => {
    const r = row({ timestamp: 'yesterday', path: { a: 1 } });
    assert.equal(r.time, 0);
    assert.equal(r.log_date, '1970-01-01');
    assert.equal(r.path, '{"a":1}');
  });

  test('agrees with the plain statement of the rule on generated records', () => {
    const rand = mulberry32(7);
    const names = [
      ...COLUMNS.flatMap((c) => c.from),
      'header_User-Agent',
      'HEADER_ACCEPT',
      'Header-Accept-Language',
      'ID',
      'Id',
      'status',
      'bytes',
      'a_dst_port',
      'b_dst_port',
      'x',
      'Src_IP',
    ];
    const values = [0, 1, 443, 70000, -5, '12', '', 'text', null, true, { k: 1 }, [1, 2], '2024-05-06T07:08:09Z'];
    for (let i = 0; i < 3000; i++) {
      const record: Record<string, unknown> = {};
      const count = Math.floor(rand() * 30);
      for (let j = 0; j < count; j++) record[names[Math.floor(rand() * names.length)]!] = values[Math.floor(rand() * values.length)];
      const id = `A-${i}`;
      const got = row(record, id);
      const want = reference(id, record);
      assert.deepEqual(JSON.parse(got.extra as string), want.extra, `extra of ${JSON.stringify(record)}`);
      for (const col of COLUMNS) {
        if (col.name === 'extra') continue;
        const expected = toRow({ id, record: col.name in want.picked ? { [col.from[0] ?? col.name]: want.picked[col.name] } : {}, version: 1, deleted: false })[
          col.name
        ];
        if (col.name !== 'id') assert.deepEqual(got[col.name], expected, `${col.name} of ${JSON.stringify(record)}`);
      }
      assert.equal(got.id, id);
    }
  });
});

describe('toJsonLine', () => {
  test('is exactly the JSONEachRow line of toRow, on generated records with awkward names and values', () => {
    const rand = mulberry32(11);
    const names = [...COLUMNS.flatMap((c) => c.from), 'header_User-Agent', 'ID', 'status', 'x', 'quote"d', 'back\\slash', 'line\nbreak', '\u2028', 'emoji 🙂'];
    const values = [
      0,
      -0,
      1,
      65_535,
      1e21,
      -5,
      2.5,
      NaN,
      Infinity,
      '12',
      '',
      'a "quoted" \\ text\n',
      '\u0000\u001f\u2028',
      '🙂',
      null,
      true,
      false,
      { k: [1, 'two'] },
      [1, 2],
      '2024-05-06T07:08:09Z',
      'not a date',
    ];
    for (let i = 0; i < 3000; i++) {
      const record: Record<string, unknown> = {};
      const count = Math.floor(rand() * 30);
      for (let j = 0; j < count; j++) record[names[Math.floor(rand() * names.length)]!] = values[Math.floor(rand() * values.length)];
      const rec = { id: `A-${i}-"\\`, record, version: Math.floor(rand() * 2 ** 40), deleted: rand() < 0.1 };
      const line = toJsonLine(rec);
      assert.equal(line, `${JSON.stringify(toRow(rec))}\n`, `record ${JSON.stringify(record)}`);
      assert.deepEqual(
        Object.keys(JSON.parse(line)),
        COLUMNS.map((c) => c.name),
      );
    }
  });
});

test('rowTime is the `time` the row is stored under, in epoch seconds (a source field `Timestamp` never moves it)', () => {
  const rec = (record: Record<string, unknown>) => ({ id: 'A-1', version: 1, deleted: false, record });
  for (const record of [
    { timestamp: '2026-12-03T10:00:00.999Z' },
    { timestamp: '2026-12-03T10:00:00.999Z', Timestamp: '1999-01-01T00:00:00Z' },
    { timestamp: 'not a time' },
    {},
  ]) {
    const r = rec(record);
    assert.equal(rowTime(r), toRow(r).time, JSON.stringify(record));
  }
  assert.equal(rowTime(rec({ timestamp: '2026-12-03T10:00:00.999Z' })), Date.parse('2026-12-03T10:00:00Z') / 1000);
});

test('DateTime values are whole seconds clamped to the column range (18.16 would wrap them), so rowTime is the stored key', () => {
  assert.equal(dateTimeSeconds(Date.parse('2026-12-03T10:00:00.999Z')), Date.parse('2026-12-03T10:00:00Z') / 1000);
  assert.equal(dateTimeSeconds(Date.parse('1969-12-31T23:00:00Z')), 0);
  assert.equal(dateTimeSeconds(Date.parse('2200-01-01T00:00:00Z')), 4_294_967_295);
  assert.equal(toRow({ id: 'A-1', version: 1, deleted: false, record: { timestamp: '1900-01-01T00:00:00Z' } }).time, 0);
});
