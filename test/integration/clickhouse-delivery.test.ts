// The ClickHouse sink's delivery against Debian's ClickHouse 18.16: a batch
// sent as JSONEachRow text (rows.ts toJsonLine) is stored value for value,
// awkward text included; a row the table cannot parse is classified
// permanent (dead-letter), a refusal of our setup (table, columns, account)
// config (retried, for an operator to fix), a server that does not answer retriable.
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
});
