// couchlog setup on a ClickHouse table made before corrections existed
// (ReplacingMergeTree() without version, no revision/decided_at/version/
// deleted columns), on Debian's 18.16: the rows move to a versioned table
// under the same name, the old one is kept aside, a second run changes
// nothing, and FINAL then returns the latest revision of a corrected record.
// A correlator that keeps writing during the migration (docs/production.md
// §4 runs setup before restarting it) loses no acknowledged row.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startClickhouse, type TestClickhouse } from '../helpers/clickhouse.js';
import { connect } from '../../correlator/sinks/clickhouse/clickhouse-delivery.js';
import { ensureClickhouse } from '../../correlator/sinks/clickhouse/ensure-table.js';
import { COLUMNS } from '../../correlator/sinks/clickhouse/columns.js';
import { createTableSql, currentViewSql } from '../../correlator/sinks/clickhouse/schema.js';
import { setupClickhouse } from '../../cli/setup-clickhouse.js';
import { exitCodeOf } from '../../cli/run-cli.js';
import { loadConfig, type Config } from '../../lib/config/load.js';
import { OperationError } from '../../lib/errors.js';

let ch: TestClickhouse;
before(async () => {
  ch = await startClickhouse();
});
after(async () => {
  await ch?.stop();
});

const NEW = new Set(['revision', 'decided_at', 'version', 'deleted']);
const OLD_COLUMNS = COLUMNS.filter((c) => !NEW.has(c.name)).map((c) => `${c.name} ${c.type === 'LowString' ? 'String' : c.type}`);
/** 2023-11-14T22:13:20Z: the filled rows and the live ones share a month, so merges can mix them. */
const T0 = 1_700_000_000;

/** A table as couchlog made it before corrections, holding `rows` records A-0 ... */
async function oldTable(table: string, rows: number): Promise<void> {
  await ch.query('CREATE DATABASE IF NOT EXISTS couchlog');
  await ch.query(
    `CREATE TABLE couchlog.${table} (${OLD_COLUMNS.join(', ')}) ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMM(log_date) ORDER BY (time, id)`,
  );
  if (rows === 0) return;
  await ch.query(
    `INSERT INTO couchlog.${table} (id, time, log_date, src_ip, path, ja4, header_user_agent, extra) SELECT concat('A-', toString(number)), ` +
      `toDateTime(${T0} + number), toDate(toDateTime(${T0} + number)), concat('192.0.2.', toString(number % 250)), concat('/p/', toString(number % 1000)), ` +
      `'t13d1516h2_8daaf6152771_b186095e22b6', 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0)', '{"status":200}' FROM system.numbers LIMIT ${rows}`,
  );
}

async function insert(table: string, row: Record<string, unknown>): Promise<boolean> {
  const res = await fetch(`${ch.url}/`, { method: 'POST', body: `INSERT INTO couchlog.${table} FORMAT JSONEachRow\n${JSON.stringify(row)}\n` });
  await res.text();
  return res.ok;
}

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

/**
 * A correlator still running during setup: a record every 20 ms, written as
 * an older correlator writes it (no version), and every 4th tick a
 * correction (version = now, correlated = 1) of the record before, which
 * the table takes once setup has added the version column. Only what the
 * server acknowledged counts.
 */
function liveWriter(table: string) {
  const acked: string[] = [];
  const corrected: string[] = [];
  let running = true;
  const done = (async () => {
    for (let i = 0; running; i++) {
      const key = { time: T0 + 200_000 + i, log_date: '2023-11-16' };
      if (await insert(table, { id: `W-${i}`, ...key, src_ip: '198.51.100.7', correlated: 0 })) acked.push(`W-${i}`);
      const prev = { time: T0 + 200_000 + i - 1, log_date: '2023-11-16' };
      if (i % 4 === 3 && (await insert(table, { id: `W-${i - 1}`, ...prev, src_ip: '198.51.100.7', correlated: 1, revision: 2, version: Date.now() }))) {
        corrected.push(`W-${i - 1}`);
      }
      await sleep(20);
    }
  })();
  return {
    acked,
    corrected,
    async stop() {
      running = false;
      await done;
    },
  };
}

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

function clientFor(table: string, timeoutMs = 120_000) {
  return connect({ url: ch.url, user: 'default', password: '', database: 'couchlog', table, timeoutMs });
}

/** The defaults, pointed at the test ClickHouse as an external server. */
function configFor(table: string, setupTimeoutMs?: number): Config {
  const dir = mkdtempSync(join(tmpdir(), 'couchlog-chsetup-'));
  try {
    const config = loadConfig({ env: {}, cwd: dir }).config;
    config.clickhouse = { ...config.clickhouse, url: ch.url, user: 'default', password: '', table };
    if (setupTimeoutMs !== undefined) config.clickhouse.setup_timeout_ms = setupTimeoutMs;
    return config;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the ClickHouse table is migrated to versioned replacement', () => {
  test('an old table keeps its rows, gains the columns and ReplacingMergeTree(version); FINAL keeps the latest revision', async () => {
    await oldTable('http_logs', 0);
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

  test('rows a running correlator writes during the migration are all in the new table; its corrections win over copied rows', async (t) => {
    // Found by a review: 116 of 124 rows acknowledged during the copy of a 1.5 M-row table stayed in the old table only.
    const ROWS = 80_000;
    await oldTable('busy_logs', ROWS);
    const writer = liveWriter('busy_logs');
    await sleep(100);
    const client = clientFor('busy_logs');
    let during = 0;
    const started = Date.now();
    try {
      const ackedBefore = writer.acked.length;
      const changes = await ensureClickhouse(client, 'couchlog', 'busy_logs');
      during = writer.acked.length - ackedBefore;
      assert.ok(
        changes.some((c) => c.startsWith('migrated couchlog.busy_logs')),
        changes.join('\n'),
      );
      await sleep(100);
      await writer.stop();
      assert.deepEqual(await ensureClickhouse(client, 'couchlog', 'busy_logs'), [], 'a second run changes nothing');
    } finally {
      await writer.stop();
      await client.close();
    }
    const migrationMs = Date.now() - started;
    assert.ok(during >= 3, `only ${during} rows were written during the migration: the test shows nothing`);
    const live = new Set(lines(await ch.query("SELECT id FROM couchlog.busy_logs FINAL WHERE id LIKE 'W-%' FORMAT TSV")));
    const missing = writer.acked.filter((id) => !live.has(id));
    assert.deepEqual(missing, [], `${missing.length} of ${writer.acked.length} acknowledged rows (${during} during the migration) are not in the new table`);
    assert.equal((await ch.query("SELECT count() FROM couchlog.busy_logs FINAL WHERE id LIKE 'A-%'")).trim(), String(ROWS));
    const correct = new Set(
      lines(await ch.query("SELECT id FROM couchlog.busy_logs FINAL WHERE id LIKE 'W-%' AND correlated = 1 AND revision = 2 FORMAT TSV")),
    );
    const lost = writer.corrected.filter((id) => !correct.has(id));
    assert.deepEqual(lost, [], `${lost.length} of ${writer.corrected.length} acknowledged corrections lost to a copied row`);
    assert.ok(writer.corrected.length > 0, 'no correction was acknowledged');
    const stored = Number(await ch.query('SELECT count() FROM couchlog.busy_logs'));
    const kept = Number(await ch.query('SELECT count() FROM couchlog.busy_logs_before_version'));
    t.diagnostic(
      `${ROWS} rows, migrated in ${migrationMs} ms; ${writer.acked.length} live rows acknowledged (${during} during the migration), ${writer.corrected.length} corrections; ` +
        `rows stored in the new table before merges: ${stored} (old table: ${kept})`,
    );
  });

  test('a migration interrupted after the swap is finished by the next run: every row copied again, a correction written meanwhile still wins', async () => {
    // The state a failure between the two renames leaves: the new table in use (here with a correction of A-1), the old one under its temporary name.
    await oldTable('resumed_logs_before_version_copying', 1000);
    await ch.query(createTableSql('couchlog', 'resumed_logs', { major: 18, minor: 16 }));
    await ch.query(currentViewSql('couchlog', 'resumed_logs'));
    await insert('resumed_logs', { id: 'A-1', time: T0 + 1, log_date: '2023-11-14', correlated: 1, revision: 2, version: Date.now() });
    const client = clientFor('resumed_logs');
    try {
      const changes = await ensureClickhouse(client, 'couchlog', 'resumed_logs');
      assert.ok(
        changes.some((c) => c.startsWith('finished migrating couchlog.resumed_logs')),
        changes.join('\n'),
      );
      assert.deepEqual(await ensureClickhouse(client, 'couchlog', 'resumed_logs'), []);
    } finally {
      await client.close();
    }
    assert.equal((await ch.query("SELECT count() FROM couchlog.resumed_logs FINAL WHERE id LIKE 'A-%'")).trim(), '1000');
    assert.equal((await ch.query("SELECT correlated, revision FROM couchlog.resumed_logs_current WHERE id = 'A-1' FORMAT TSV")).trim(), '1\t2');
    assert.equal((await ch.query('EXISTS TABLE couchlog.resumed_logs_before_version_copying')).trim(), '0');
    assert.equal((await ch.query('SELECT count() FROM couchlog.resumed_logs_before_version')).trim(), '1000');
  });

  test('a migration that outlasts clickhouse.setup_timeout_ms fails setup (exit 1), not "not reachable"; the next run completes it', async (t) => {
    // Found by a review: the 10 s timeout read as "ClickHouse not reachable" (exit 0 with the
    // embedded server), the server finished the copy, the RENAME never came, and every run began again.
    // An earlier setup added the columns; an analyst's query holds the table for 3 s, and 18.16's
    // RENAME waits for it: longer than the 1 s this setup is given.
    const ROWS = 20_000;
    await oldTable('slow_logs', ROWS);
    for (const column of ['revision UInt32', 'decided_at DateTime', 'version UInt64', 'deleted UInt8'])
      await ch.query(`ALTER TABLE couchlog.slow_logs ADD COLUMN ${column}`);
    const reader = ch.query('SELECT sleep(3) FROM (SELECT id FROM couchlog.slow_logs LIMIT 1)');
    await sleep(100);
    const failed = await setupClickhouse(configFor('slow_logs', 1000)).then(
      (done) => assert.fail(`setup did not fail: ${JSON.stringify(done)}`),
      (err: Error) => err,
    );
    assert.ok(failed instanceof OperationError, String(failed));
    t.diagnostic(failed.message);
    assert.match(
      failed.message,
      /^ClickHouse setup at http:\/\/127\.0\.0\.1:\d+ failed: migrating couchlog\.slow_logs to ReplacingMergeTree\(version\) failed while (copying the rows|renaming): Timeout error; no row is lost: /,
    );
    assert.match(failed.message, /clickhouse\.setup_timeout_ms is 1000: raise it for a large table\)$/);
    assert.doesNotMatch(failed.message, /not reachable/);
    assert.equal(exitCodeOf(failed).code, 1);

    // Run again at once: the server is still busy with the RENAME the failed run left behind.
    const done = await setupClickhouse(configFor('slow_logs'));
    await reader;
    assert.deepEqual([done.notes, done.unfinished], [[], []]);
    assert.ok(
      done.changes.some((c) => /^(migrated|finished migrating) couchlog\.slow_logs/.test(c)),
      done.changes.join('\n'),
    );
    assert.match(await ch.query("SELECT engine_full FROM system.tables WHERE database = 'couchlog' AND name = 'slow_logs'"), /^ReplacingMergeTree\(version\)/);
    assert.equal((await ch.query("SELECT count() FROM couchlog.slow_logs FINAL WHERE id LIKE 'A-%'")).trim(), String(ROWS));
    assert.equal((await ch.query('SELECT count() FROM couchlog.slow_logs_before_version')).trim(), String(ROWS));
    assert.deepEqual((await setupClickhouse(configFor('slow_logs'))).changes, [], 'a third run changes nothing');
  });

  test('a column added by setup is in the view <table>_current too; a view an older setup left without it is made again', async () => {
    const client = clientFor('narrow_logs');
    try {
      await ensureClickhouse(client, 'couchlog', 'narrow_logs');
      // A table from before the extra column, and its view made then.
      await ch.query('DROP TABLE couchlog.narrow_logs_current');
      await ch.query('ALTER TABLE couchlog.narrow_logs DROP COLUMN extra');
      await ch.query(currentViewSql('couchlog', 'narrow_logs'));
      assert.deepEqual(await ensureClickhouse(client, 'couchlog', 'narrow_logs'), [
        'added column extra to couchlog.narrow_logs',
        'recreated view couchlog.narrow_logs_current with the columns of couchlog.narrow_logs',
      ]);
      await insert('narrow_logs', { id: 'A-x', time: T0, log_date: '2023-11-14', extra: '{"status":418}', version: 1 });
      assert.equal((await ch.query("SELECT extra FROM couchlog.narrow_logs_current WHERE id = 'A-x' FORMAT TSV")).trim(), '{"status":418}');
      // An older setup added the column but left the view as it was: the next run repairs it.
      await ch.query('DROP TABLE couchlog.narrow_logs_current');
      await ch.query('CREATE VIEW couchlog.narrow_logs_current AS SELECT id, time FROM couchlog.narrow_logs FINAL WHERE deleted = 0');
      assert.deepEqual(await ensureClickhouse(client, 'couchlog', 'narrow_logs'), [
        'recreated view couchlog.narrow_logs_current with the columns of couchlog.narrow_logs',
      ]);
      assert.equal((await ch.query("SELECT extra FROM couchlog.narrow_logs_current WHERE id = 'A-x' FORMAT TSV")).trim(), '{"status":418}');
      assert.deepEqual(await ensureClickhouse(client, 'couchlog', 'narrow_logs'), []);
    } finally {
      await client.close();
    }
  });
});
