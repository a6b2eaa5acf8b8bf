// `couchlog backfill` on real servers (CouchDB embedded or 3, Debian's
// ClickHouse), with log_correlated under audit protection:
//  - a table lost: emptied, then backfilled, it holds row for row what the
//    live sink had written;
//  - a ClickHouse sink that was off while records were corrected: the
//    corrected records arrive and the rows of records deleted meanwhile are
//    deleted (ids with quotes and backslashes among them);
//  - repeated, resumed, filtered by decision time: nothing changes twice;
//  - a document in log_correlated without the correlator's signature is
//    not copied, and is reported (exit code 3);
//  - the command line: JSON result, bad options (exit 2), ClickHouse
//    unreachable (exit 1, naming it).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { startStack, freePort, http, JSON_TYPE, serverIndependent, type Stack } from '../helpers/stack.js';
import { startClickhouse, type TestClickhouse } from '../helpers/clickhouse.js';
import { clickhouseRows, couchDocs, diffMaps, postBulk, until, untilStable, type Doc } from '../helpers/correlator-outputs.js';
import { startCorrelator, type RunningCorrelator } from '../../correlator/service.js';
import { createLogger } from '../../lib/logger.js';
import { generateTraffic } from '../../bench/traffic.js';
import { runBackfill } from '../../cli/backfill-command.js';
import { recordOfStored } from '../../correlator/sinks/couchdb/stored-record.js';
import { toJsonLine } from '../../correlator/sinks/clickhouse/rows.js';
import { connect } from '../../correlator/sinks/clickhouse/clickhouse-delivery.js';
import { ensureClickhouse } from '../../correlator/sinks/clickhouse/ensure-table.js';
import { ROOT } from '../helpers/repo-root.js';

const CLI = join(ROOT, 'dist/scripts/couchlog.js');
const HOUR = 3_600_000;
const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
let ch: TestClickhouse;
let stack: Stack;
let correlator: RunningCorrelator | null = null;

const CORRELATOR = {
  reorder_slack_ms: 200,
  orphan_policy: { apache_emit_delay_ms: 300, network_emit: true },
  time_window: { value: 5, unit: 's' },
  ttl: { network_ttl_s: 20 },
  inputs: { poll_interval_ms: 50, batch_size: 100 },
  outputs: { clickhouse: { flush_interval_ms: 50 }, couchdb: { flush_interval_ms: 50, protection: 'audit' } },
  checkpoint_interval_ms: 200,
};

before(async () => {
  ch = await startClickhouse();
  stack = await startStack({ yaml: { clickhouse: { enabled: true, url: ch.url }, correlator: CORRELATOR } });
  const client = connect({ url: ch.url, user: 'default', password: '', database: 'couchlog', table: 'http_logs_expected', timeoutMs: 10_000 });
  try {
    await ensureClickhouse(client, 'couchlog', 'http_logs_expected');
  } finally {
    await client.close();
  }
});
after(async () => {
  await correlator?.stop();
  await stack?.stop();
  await ch?.stop();
});

async function runCorrelator(withClickhouse: boolean): Promise<void> {
  await correlator?.stop();
  correlator = await startCorrelator(stack.config, log, { clickhouse: withClickhouse });
}

/** The correlator has read every document posted and its sinks hold nothing: log_correlated stands still. */
async function settled(): Promise<Map<string, Doc>> {
  await untilStable(
    'the correlator',
    async () => {
      const s = correlator!.pipeline.status();
      const docs = await couchDocs(stack, 'log_correlated');
      const backlog = correlator!.sinks.reduce((n, k) => n + k.backlog, 0);
      return { key: `${docs.size} ${[...docs.values()].map((d) => d.decided_at).join()}`, ready: s.A.caughtUp && s.B.caughtUp && backlog === 0 };
    },
    1500,
    60_000,
  );
  return couchDocs(stack, 'log_correlated');
}

/**
 * What ClickHouse must show for log_correlated as it stands: each live
 * record as the live sink sends it (toJsonLine), inserted into a table of
 * its own and read back the same way, so both sides are ClickHouse's text.
 */
async function expectedRows(): Promise<Map<string, string>> {
  const res = await http(`${stack.couchUrl}/log_correlated/_all_docs?include_docs=true`, { headers: { authorization: stack.auth.admin } });
  let lines = '';
  for (const row of res.json.rows as Array<{ id: string; doc: Doc }>) {
    const rec = recordOfStored(row.id, row.doc, false);
    if (rec !== null) lines += toJsonLine(rec);
  }
  await ch.query('TRUNCATE TABLE couchlog.http_logs_expected');
  await ch.query(`INSERT INTO couchlog.http_logs_expected FORMAT JSONEachRow\n${lines}`);
  return clickhouseRows(ch, 'http_logs_expected');
}

/** Two id -> row-text maps are the same, or the assertion says how they differ. */
function assertSameRows(actual: Map<string, string>, expected: Map<string, string>, what: string): void {
  const diff = diffMaps(actual, expected, (x, y) => x === y);
  assert.equal(diff.count, 0, `${what}: ${diff.count} rows differ\n${diff.examples.join('\n')}`);
}

const backfillAll = (since = '0', decidedSince: number | null = null) => runBackfill(stack.config, { since, decidedSince, giveUpAfterMs: 30_000, page: 37 });

const conn = (port: number, t: number, extra: Doc) => ({ src_ip: '203.0.113.9', src_port: port, dst_ip: '192.168.1.10', ...extra, timestamp: t });

describe('couchlog backfill', () => {
  test('a table emptied and backfilled holds row for row what the live sink wrote', async () => {
    await runCorrelator(true);
    const t = generateTraffic({ seed: 11, aCount: 240, bCount: 160, startMs: Date.now() - 20 * 60_000, spanMs: 60_000 });
    await postBulk(stack, 'network', t.b, 100);
    await postBulk(stack, 'http', t.a, 100);
    const docs = await settled();
    assert.ok(docs.size >= 200, `records: ${docs.size}`);
    const live = await until(
      'ClickHouse to hold every record',
      async () => {
        const rows = await clickhouseRows(ch, 'http_logs');
        return rows.size === [...docs.values()].length ? rows : null;
      },
      30_000,
    );
    assertSameRows(live, await expectedRows(), 'the live sink against log_correlated');

    await ch.query('TRUNCATE TABLE couchlog.http_logs');
    const r = await backfillAll();
    assert.equal(r.done, true);
    assert.equal(r.copied, docs.size);
    assert.equal(r.unsigned, 0);
    assertSameRows(await clickhouseRows(ch, 'http_logs'), live, 'backfilled against the live rows');
  });

  test('records corrected and deleted while the ClickHouse sink was off reach ClickHouse, deletions included', async () => {
    const t0 = Date.now() - HOUR;
    const ports = Array.from({ length: 12 }, (_, i) => 43_000 + i);
    // Client ids with a quote and a backslash: the deletion lookup must quote them.
    const bIds = ports.map((p, i) => (i === 0 ? `b'quote-${p}` : i === 1 ? `b\\slash-${p}` : `b-${p}`));
    await postBulk(
      stack,
      'network',
      ports.map((p, i) => ({ _id: bIds[i], ...conn(p, t0 + i * 1000, { dst_port: 443, ja4: 't13d1516h2_8daaf6152771_b0da82dd1658', conn_id: `k${p}` }) })),
    );
    await until(
      'the provisional orphan Bs in ClickHouse',
      async () => {
        const rows = await clickhouseRows(ch, 'http_logs');
        return bIds.every((id) => rows.has(`B-${id}`)) ? true : null;
      },
      30_000,
    );
    await settled();

    // The sink is off: the As come, correlate, and the orphan Bs are deleted in CouchDB only.
    await runCorrelator(false);
    const aIds = await postBulk(
      stack,
      'http',
      ports.map((p, i) => conn(p, t0 + i * 1000 + 30, { dst_port: 8080, method: 'GET', host: 'backfill.example', path: `/p${p}` })),
    );
    const docs = await settled();
    for (const id of aIds) assert.equal(docs.get(`A-${id}`)?.correlated, true, `A-${id}`);
    for (const id of bIds) assert.ok(!docs.has(`B-${id}`), `B-${id} deleted in CouchDB`);
    const stale = await clickhouseRows(ch, 'http_logs');
    assert.ok(bIds.every((id) => stale.has(`B-${id}`)) && aIds.every((id) => !stale.has(`A-${id}`)), 'ClickHouse missed the corrections');

    const r = await backfillAll();
    assert.equal(r.deleted, bIds.length, 'one deletion row per orphan B ClickHouse held');
    const rows = await clickhouseRows(ch, 'http_logs');
    for (const id of bIds) assert.ok(!rows.has(`B-${id}`), `B-${id} deleted in ClickHouse`);
    assertSameRows(rows, await expectedRows(), 'ClickHouse against log_correlated');
    const deletedRows = await ch.query(`SELECT count() FROM couchlog.http_logs FINAL WHERE deleted = 1 AND src_ip = '203.0.113.9' FORMAT TSV`);
    assert.equal(Number(deletedRows.trim()), bIds.length, 'the deletion rows replaced the orphans at their key');
  });

  test('repeated, resumed or filtered by decision time, it changes nothing', async () => {
    const before = await clickhouseRows(ch, 'http_logs');
    const again = await backfillAll();
    assert.equal(again.deleted, 0, 'deletions already in ClickHouse are not written again');
    assertSameRows(await clickhouseRows(ch, 'http_logs'), before, 'after a second run');
    const resumed = await backfillAll(again.since);
    assert.equal(resumed.read, 0, 'from the position a run printed, nothing is read again');
    const future = await backfillAll('0', Date.now() + HOUR);
    assert.deepEqual([future.copied, future.deleted], [0, 0]);
    assert.ok(future.older >= again.copied, `left out: ${future.older}, records: ${again.copied}`);
  });

  test('a document in log_correlated without the correlator signature is not copied, and is reported', async () => {
    const forged = {
      _id: 'A-forged',
      timestamp: new Date().toISOString(),
      src_ip: '198.51.100.66',
      src_port: 4444,
      correlated: true,
      revision: 1,
      decided_at: new Date().toISOString(),
    };
    const put = await http(`${stack.couchUrl}/log_correlated/A-forged`, {
      method: 'PUT',
      headers: { ...JSON_TYPE, authorization: stack.auth.admin },
      body: JSON.stringify(forged),
    });
    assert.equal(put.status < 300, true, put.text);
    const r = await backfillAll();
    assert.equal(r.unsigned, 1);
    assert.deepEqual(r.unsignedIds, ['A-forged']);
    assert.ok(!(await clickhouseRows(ch, 'http_logs')).has('A-forged'));
  });

  test('a record deleted by hand (an admin erasing it) is deleted in ClickHouse too, where no signature is asked for', async () => {
    const rows = await clickhouseRows(ch, 'http_logs');
    const id = [...rows.keys()].find((k) => k.startsWith('A-') && k !== 'A-forged')!;
    const admin = { authorization: stack.auth.admin };
    const doc = await http(`${stack.couchUrl}/log_correlated/${encodeURIComponent(id)}`, { headers: admin });
    const del = await http(`${stack.couchUrl}/log_correlated/${encodeURIComponent(id)}?rev=${doc.json._rev}`, { method: 'DELETE', headers: admin });
    assert.ok(del.status < 300, del.text);
    const validate = structuredClone(stack.config);
    validate.correlator.outputs.couchdb.protection = 'validate';
    // And no key: with one, signatures are checked whatever the protection (tampering done under audit must
    // not reach ClickHouse after a switch back to validate), and an admin's bare tombstone is left out.
    validate.correlator.outputs.couchdb.signing_key = null;
    const r = await runBackfill(validate, { since: '0', decidedSince: null, giveUpAfterMs: 30_000, page: 500 });
    assert.ok(r.deleted >= 1);
    assert.ok(!(await clickhouseRows(ch, 'http_logs')).has(id), `${id} still in ClickHouse`);
    const again = await runBackfill(validate, { since: '0', decidedSince: null, giveUpAfterMs: 30_000, page: 500 });
    assert.equal(again.deleted, 0, 'a deletion ClickHouse holds already is not written again');
    // A deleted record whose id is too long to look up (only an admin can store one): counted, and the run goes on.
    const long = `A-${'x'.repeat(20_000)}`;
    const made = await http(`${stack.couchUrl}/log_correlated/_bulk_docs`, {
      method: 'POST',
      headers: { ...JSON_TYPE, ...admin },
      body: JSON.stringify({ docs: [{ _id: long, decided_at: new Date().toISOString(), _deleted: true }] }),
    });
    assert.ok(made.status < 300, made.text.slice(0, 200));
    const skipping = await runBackfill(validate, { since: again.since, decidedSince: null, giveUpAfterMs: 30_000, page: 500 });
    assert.equal(skipping.skipped, 1);
    // Under audit protection the same tombstone carries no signature: left out and counted.
    const audited = await backfillAll();
    assert.ok(audited.unsignedIds.includes(id), JSON.stringify(audited.unsignedIds));
  });

  describe('the command line', () => {
    const env = () => {
      const c = stack.config;
      const e: NodeJS.ProcessEnv = {
        ...process.env,
        COUCHLOG_DATA: stack.dataDir,
        COUCHDB_URL: stack.couchUrl,
        COUCHDB_USER: c.couchdb.admin.user,
        COUCHDB_PASSWORD: c.couchdb.admin.password!,
      };
      delete e.COUCHLOG_CONFIG;
      return e;
    };
    const cli = (args: string[], configFile = join(stack.dataDir, 'couchlog.yml')) =>
      spawnSync(process.execPath, [CLI, '--config', configFile, 'backfill', ...args], { encoding: 'utf8', env: env(), input: '', timeout: 120_000 });

    test('prints its result as JSON, and exits 3 while an unsigned document is left out', () => {
      const res = cli(['--json', '--no-progress']);
      assert.equal(res.status, 3, res.stderr);
      const out = JSON.parse(res.stdout) as { done: boolean; copied: number; unsigned: number; since: string; table: string };
      assert.equal(out.done, true);
      assert.equal(out.unsigned, 3, 'the forged record and the tombstones of the two deleted by hand');
      assert.equal(out.table, 'http_logs');
      assert.ok(out.copied > 200);
      const text = cli(['--no-progress', '--since', out.since]);
      assert.equal(text.status, 0, text.stderr);
      assert.match(text.stdout, /^backfill: 0 changes of log_correlated read/);
    });

    test(
      'refuses bad options with exit 2 and stops with exit 1 when ClickHouse cannot be reached',
      { skip: serverIndependent('the command line') },
      async () => {
        const bad = cli(['--decided-since', 'yesterday']);
        assert.equal(bad.status, 2);
        assert.match(bad.stderr, /--decided-since must be an ISO 8601 date/);
        for (const since of ['garbage', '-5', '4000-', '1.5']) {
          const wrong = cli(['--since', since]);
          assert.equal(wrong.status, 2, `--since ${since}: ${wrong.stderr}`);
          assert.match(wrong.stderr, /--since must be a sequence a previous run printed/);
        }
        assert.equal(cli(['--page', '10001']).status, 2);
        const dir = mkdtempSync(join(tmpdir(), 'couchlog-backfill-'));
        try {
          const file = join(dir, 'couchlog.yml');
          writeFileSync(file, stringifyYaml({ clickhouse: { enabled: true, url: `http://127.0.0.1:${await freePort()}` }, correlator: CORRELATOR }));
          const down = cli(['--no-progress'], file);
          assert.equal(down.status, 1, down.stderr);
          assert.match(down.stderr, /^couchlog: ClickHouse at http:\/\/127\.0\.0\.1:\d+ cannot be used/m);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );
  });
});
