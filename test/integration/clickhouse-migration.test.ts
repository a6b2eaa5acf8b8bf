// couchlog setup on a ClickHouse table made before corrections existed
// (ReplacingMergeTree() without version, no revision/decided_at/version/
// deleted columns), on Debian's 18.16: the rows move to a versioned table
// under the same name, the old one is kept aside, a second run changes
// nothing, and FINAL then returns the latest revision of a corrected record.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startClickhouse, type TestClickhouse } from '../helpers/clickhouse.js';
import { connect } from '../../correlator/sinks/clickhouse/clickhouse-delivery.js';
import { ensureClickhouse } from '../../correlator/sinks/clickhouse/ensure-table.js';
import { COLUMNS } from '../../correlator/sinks/clickhouse/columns.js';

let ch: TestClickhouse;
before(async () => {
  ch = await startClickhouse();
});
after(async () => {
  await ch?.stop();
});

const NEW = new Set(['revision', 'decided_at', 'version', 'deleted']);

describe('the ClickHouse table is migrated to versioned replacement', () => {
  test('an old table keeps its rows, gains the columns and ReplacingMergeTree(version); FINAL keeps the latest revision', async () => {
    const oldCols = COLUMNS.filter((c) => !NEW.has(c.name)).map((c) => `${c.name} ${c.type === 'LowString' ? 'String' : c.type}`);
    await ch.query('CREATE DATABASE IF NOT EXISTS couchlog');
    await ch.query(`CREATE TABLE couchlog.http_logs (${oldCols.join(', ')}) ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMM(log_date) ORDER BY (time, id)`);
    await ch.query("INSERT INTO couchlog.http_logs (id, time, log_date, src_ip, correlated) VALUES ('A-old', 1700000000, '2023-11-14', '192.0.2.1', 0)");
    const client = connect({ url: ch.url, user: 'default', password: '', database: 'couchlog', table: 'http_logs', timeoutMs: 10_000 });
    try {
      const changes = await ensureClickhouse(client, 'couchlog', 'http_logs');
      assert.ok(
        changes.some((c) => c.includes('migrated couchlog.http_logs')),
        changes.join('\n'),
      );
      assert.deepEqual(await ensureClickhouse(client, 'couchlog', 'http_logs'), [], 'a second run changes nothing');
    } finally {
      await client.close();
    }
    const engine = await ch.query("SELECT engine_full FROM system.tables WHERE database = 'couchlog' AND name = 'http_logs'");
    assert.match(engine, /ReplacingMergeTree\(version\)/);
    assert.equal((await ch.query('SELECT count() FROM couchlog.http_logs_before_version')).trim(), '1', 'the old table is kept');
    assert.equal((await ch.query("SELECT src_ip, version FROM couchlog.http_logs WHERE id = 'A-old' FORMAT TSV")).trim(), '192.0.2.1\t0');
    // A correction of the old row, then an older version arriving late: FINAL keeps the highest version.
    await ch.query(
      "INSERT INTO couchlog.http_logs (id, time, log_date, src_ip, correlated, revision, version) VALUES ('A-old', 1700000000, '2023-11-14', '192.0.2.1', 1, 3, 30)",
    );
    await ch.query(
      "INSERT INTO couchlog.http_logs (id, time, log_date, src_ip, correlated, revision, version) VALUES ('A-old', 1700000000, '2023-11-14', '192.0.2.1', 0, 2, 20)",
    );
    assert.equal((await ch.query("SELECT correlated, revision FROM couchlog.http_logs FINAL WHERE id = 'A-old' FORMAT TSV")).trim(), '1\t3');
    // A deletion hides the record from the _current view.
    await ch.query("INSERT INTO couchlog.http_logs (id, time, log_date, deleted, revision, version) VALUES ('A-old', 1700000000, '2023-11-14', 1, 4, 40)");
    assert.equal((await ch.query("SELECT count() FROM couchlog.http_logs_current WHERE id = 'A-old'")).trim(), '0');
    assert.equal((await ch.query('SELECT count() FROM couchlog.http_logs FINAL WHERE deleted = 0')).trim(), '0');
  });
});
