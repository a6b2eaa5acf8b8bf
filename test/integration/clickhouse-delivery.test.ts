// The ClickHouse sink's delivery against Debian's ClickHouse 18.16: a batch
// sent as JSONEachRow text (rows.ts toJsonLine) is stored value for value,
// awkward text included; a row the table cannot parse is classified
// permanent (dead-letter), a refusal of our setup (table, columns, account)
// config (retried, for an operator to fix), a server that does not answer retriable;
// a record whose source document an admin edited or deleted gets deletion rows at its former times.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startClickhouse, type TestClickhouse } from '../helpers/clickhouse.js';
import { ClickHouseDelivery, connect } from '../../correlator/sinks/clickhouse/clickhouse-delivery.js';
import { ensureClickhouse } from '../../correlator/sinks/clickhouse/ensure-table.js';
import type { SinkRecord } from '../../correlator/sinks/sink.js';
import { freePort } from '../../bench/free-port.js';

let ch: TestClickhouse;
before(async () => {
  ch = await startClickhouse();
});
after(async () => {
  await ch?.stop();
});

const target = (url: string, table: string) => ({ url, user: 'default', password: '', database: 'couchlog', table, timeoutMs: 5_000 });

function record(i: number, fields: Record<string, unknown> = {}): SinkRecord {
  return {
    id: `A-log_http-${i}`,
    version: 1_764_000_000_000 + i,
    deleted: false,
    record: { timestamp: '2026-12-03T10:00:00.250Z', src_ip: '203.0.113.9', src_port: 40_000 + i, correlated: true, keepalives: 2, revision: 1, ...fields },
  };
}

describe('ClickHouse delivery', () => {
  test('a batch is stored value for value: quotes, backslashes, newlines, control and non-BMP characters, other fields in extra', async () => {
    const client = connect(target(ch.url, 'http_logs'));
    try {
      await ensureClickhouse(client, 'couchlog', 'http_logs');
      const awkward = 'say "hi"\\ \n\t\u0001 \u2028 🙂 ünïcödé';
      const batch = [record(1, { path: awkward, 'header_User-Agent': awkward, status: 404, tags: ['x', awkward] }), record(2), record(3, { src_port: 70_000 })];
      await new ClickHouseDelivery(client, target(ch.url, 'http_logs')).deliver(batch);
      const rows = (await ch.query('SELECT id, path, header_user_agent, src_port, extra, version FROM couchlog.http_logs ORDER BY id FORMAT JSONEachRow'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.equal(rows.length, 3);
      assert.equal(rows[0]!.path, awkward);
      assert.equal(rows[0]!.header_user_agent, awkward);
      assert.deepEqual(JSON.parse(rows[0]!.extra as string), { status: 404, tags: ['x', awkward] });
      assert.equal(String(rows[0]!.version), String(batch[0]!.version));
      assert.equal(rows[1]!.src_port, 40_002);
      assert.equal(rows[2]!.src_port, 0, 'out of range: clamped to 0');
    } finally {
      await client.close();
    }
  });

  test('lone surrogates (an admin edit or a replication can store them) become U+FFFD: the batch is stored, not refused or retried forever', async () => {
    const client = connect(target(ch.url, 'http_logs'));
    try {
      // Before: ClickHouse refused the whole INSERT (Code: 25, a code neither permanent nor of setup: retried forever, checkpoints stuck).
      const batch = [record(21, { path: 'x\ud800y', 'header_User-Agent': '\udfff', note: 'z\ud83d' }), record(22, { path: '/fine 🙂' })];
      await new ClickHouseDelivery(client, target(ch.url, 'http_logs')).deliver(batch);
      const rows = (
        await ch.query(
          "SELECT id, path, header_user_agent, extra FROM couchlog.http_logs WHERE id IN ('A-log_http-21', 'A-log_http-22') ORDER BY id FORMAT JSONEachRow",
        )
      )
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.equal(rows.length, 2);
      assert.equal(rows[0]!.path, 'x\ufffdy');
      assert.equal(rows[0]!.header_user_agent, '\ufffd');
      assert.deepEqual(JSON.parse(rows[0]!.extra as string), { note: 'z\ud83d' }, 'extra is JSON text: the escape is kept as written');
      assert.equal(rows[1]!.path, '/fine 🙂', 'pairs are left alone');
    } finally {
      await client.close();
    }
  });

  test('a row the table cannot parse is permanent (dead-lettered); a refusal of our setup is retried for an operator to fix', async () => {
    const failure = async (t: ReturnType<typeof target>) => {
      const client = connect(t);
      const delivery = new ClickHouseDelivery(client, t);
      try {
        const err = await delivery.deliver([record(4, { path: '/x' })]).then(
          () => null,
          (e: unknown) => e,
        );
        assert.ok(err instanceof Error, `${t.table}: the insert is refused`);
        return { kind: delivery.classify(err), message: err.message };
      } finally {
        await client.close();
      }
    };
    // A value of the wrong type: only this record is bad.
    await ch.query('CREATE TABLE couchlog.typed AS couchlog.http_logs');
    await ch.query('ALTER TABLE couchlog.typed MODIFY COLUMN path UInt32');
    const typed = await failure(target(ch.url, 'typed'));
    assert.equal(typed.kind, 'permanent', typed.message);
    // Setup problems: every record would be refused the same way, so none is thrown away.
    await ch.query('CREATE TABLE couchlog.narrow (id String) ENGINE = MergeTree() ORDER BY id');
    for (const [what, t] of [
      ['a table without the columns (not migrated)', target(ch.url, 'narrow')],
      ['a missing table', target(ch.url, 'missing_table')],
      ['a wrong password', { ...target(ch.url, 'http_logs'), password: 'rotated' }],
      ['a missing database', { ...target(ch.url, 'http_logs'), database: 'nodb' }],
    ] as const) {
      const f = await failure(t);
      assert.equal(f.kind, 'config', `${what}: ${f.message}`);
    }
    assert.equal((await ch.query('SELECT count() FROM couchlog.narrow')).trim(), '0', 'nothing half-written');
    assert.equal((await ch.query('SELECT count() FROM couchlog.typed')).trim(), '0', 'nothing half-written');
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const down = connect(target(nowhere, 'http_logs'));
    const downDelivery = new ClickHouseDelivery(down, target(nowhere, 'http_logs'));
    try {
      const err = await downDelivery.deliver([record(5)]).then(
        () => null,
        (e: unknown) => e,
      );
      assert.ok(err instanceof Error);
      assert.equal(downDelivery.classify(err), 'retry');
    } finally {
      await down.close();
    }
  });

  test('a record whose source was edited or deleted: deletion rows at its former times, in the same INSERT; FINAL holds one live row', async () => {
    const t = target(ch.url, 'moved');
    const client = connect(t);
    const delivery = new ClickHouseDelivery(client, t);
    const live = async (id: string) =>
      (await ch.query(`SELECT toUnixTimestamp(time) AS t, version FROM couchlog.moved FINAL WHERE id = '${id}' AND deleted = 0 FORMAT JSONEachRow`))
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { t: number | string; version: number | string })
        .map((r) => [Number(r.t), String(r.version)])
        .sort();
    const raw = async () => Number((await ch.query('SELECT count() FROM couchlog.moved')).trim());
    const at = (iso: string) => Date.parse(iso) / 1000;
    const ms = (iso: string) => Date.parse(iso);
    const X = 'A-log_http-x';
    const Y = 'B-log_network-y';
    const Z = 'A-log_http-z';
    const rec = (id: string, version: number, timestamp: string, formerTimes?: string[], deleted = false): SinkRecord => ({
      id,
      version,
      deleted,
      record: { timestamp, src_ip: '203.0.113.9', src_port: 41_000, correlated: false, revision: version, ...(deleted ? { deleted: true } : {}) },
      ...(formerTimes ? { formerTimes: formerTimes.map(ms) } : {}),
    });
    try {
      await ensureClickhouse(client, 'couchlog', 'moved');
      await delivery.deliver([rec(X, 1, '2026-12-03T10:00:00.250Z'), rec(Y, 1, '2026-12-03T10:00:00.250Z')]);
      // The A's clock fixed: the record moves to 11:00; its 10:00 row must not stay live.
      await delivery.deliver([rec(X, 2, '2026-12-03T11:00:00.000Z', ['2026-12-03T10:00:00.250Z'])]);
      assert.deepEqual(await live(X), [[at('2026-12-03T11:00:00Z'), '2']]);
      assert.deepEqual(await live(Y), [[at('2026-12-03T10:00:00Z'), '1']], 'other ids are left alone');
      // And back again: its own key (the same second) gets the record, never a deletion.
      const before = await raw();
      await delivery.deliver([rec(X, 3, '2026-12-03T10:00:00.900Z', ['2026-12-03T10:00:00.250Z', '2026-12-03T11:00:00.000Z'])]);
      assert.equal(await raw(), before + 2, 'the record and one deletion row (11:00)');
      assert.deepEqual(await live(X), [[at('2026-12-03T10:00:00Z'), '3']]);
      // A deletion placed at another time than ClickHouse holds (an edit and a deletion read together).
      await delivery.deliver([rec(Y, 4, '2026-12-03T12:00:00.000Z', ['2026-12-03T10:00:00.250Z', '2026-12-03T12:00:00.000Z'], true)]);
      assert.deepEqual(await live(Y), [], 'no live row left');
      // Both decisions in one batch (a backlog): the later version's deletion row wins at the earlier key.
      await delivery.deliver([rec(Z, 5, '2026-12-03T09:00:00.000Z'), rec(Z, 6, '2026-12-03T09:30:00.000Z', ['2026-12-03T09:00:00.000Z'])]);
      assert.deepEqual(await live(Z), [[at('2026-12-03T09:30:00Z'), '6']]);
      // Times out of DateTime's range are clamped, so a record and its former time there share a key: it stays live.
      await delivery.deliver([rec(Z, 7, '1969-12-31T23:00:00.000Z', ['1969-12-31T22:00:00.000Z', '2026-12-03T09:30:00.000Z'])]);
      assert.deepEqual(await live(Z), [[0, '7']]);
    } finally {
      await client.close();
    }
  });
});
