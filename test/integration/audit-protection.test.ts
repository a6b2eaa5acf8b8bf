// `protection: audit` end to end, on real servers (embedded or CouchDB 3):
//  - setup leaves the validate_doc_update out of an audit app's database,
//    and removes it when an app switches from validate to audit;
//  - the ingress still accepts only new documents there;
//  - `couchlog audit` (the CLI, as an admin runs it) finds every kind of
//    tampering someone holding the writer's password can do straight at
//    CouchDB — an update, a deletion, a second revision branch
//    (new_edits=false) — names the documents, and exits 3; an intact
//    database exits 0;
//  - the correlator signs log_correlated's records, corrections included;
//    a record changed, added or deleted by anyone else fails the audit.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startStack, http, JSON_TYPE, type Stack } from '../helpers/stack.js';
import { until } from '../helpers/correlator-outputs.js';
import { adminClient } from '../../lib/couch/admin-client.js';
import { runSetup } from '../../cli/run-setup.js';
import { runAudit } from '../../cli/audit-command.js';
import { startCorrelator, type RunningCorrelator } from '../../correlator/service.js';
import { createLogger } from '../../lib/logger.js';
import type { DbAudit } from '../../cli/audit-db.js';

const CLI = fileURLToPath(new URL('../../scripts/couchlog.js', import.meta.url));
const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
let stack: Stack;

before(async () => {
  stack = await startStack({
    yaml: {
      apps: { shield: { protection: 'audit' }, guarded: {}, http: { protection: 'audit' }, network: { protection: 'audit' } },
      correlator: {
        enabled: true,
        reorder_slack_ms: 100,
        orphan_policy: { apache_emit_delay_ms: 200 },
        inputs: { poll_interval_ms: 50 },
        outputs: { couchdb: { protection: 'audit', flush_interval_ms: 50 }, clickhouse: { enabled: false } },
        checkpoint_interval_ms: 200,
        metrics: { enabled: false },
      },
    },
  });
});
after(async () => stack?.stop());

const admin = () => ({ authorization: stack.auth.admin, ...JSON_TYPE });
const writer = () => ({ authorization: stack.auth.writer, ...JSON_TYPE });

/** `couchlog audit` as its own process, with the stack's config and secrets. */
function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const c = stack.config;
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, COUCHLOG_DATA: stack.dataDir, COUCHLOG_COUCHDB_PORT: String(c.couchdb.embedded.port) };
  if (c.couchdb.url) Object.assign(env, { COUCHDB_URL: c.couchdb.url, COUCHDB_USER: c.couchdb.admin.user, COUCHDB_PASSWORD: c.couchdb.admin.password });
  const r = spawnSync(process.execPath, [CLI, 'audit', ...args], { cwd: stack.dataDir, env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const byDb = (audits: DbAudit[], db: string) => audits.find((a) => a.db === db)!;

describe('setup under audit protection', () => {
  test('an audit app has no validate_doc_update; a validate app keeps it', async () => {
    const shield = await http(`${stack.couchUrl}/log_shield/_design/couchlog`, { headers: admin() });
    assert.equal(shield.status, 404);
    const guarded = await http(`${stack.couchUrl}/log_guarded/_design/couchlog`, { headers: admin() });
    assert.equal(guarded.status, 200);
    assert.match(guarded.json.validate_doc_update, /log_writer/);
    // The other design documents are there as usual.
    assert.equal((await http(`${stack.couchUrl}/log_shield/_design/logs`, { headers: admin() })).status, 200);
  });

  test('switching an app from validate to audit removes its validation, once', async () => {
    stack.config.apps.guarded!.protection = 'audit';
    try {
      const first = await runSetup(stack.config);
      assert.ok(first.changes.includes('removed log_guarded/_design/couchlog (protection: audit)'), first.changes.join('\n'));
      assert.equal((await http(`${stack.couchUrl}/log_guarded/_design/couchlog`, { headers: admin() })).status, 404);
      const second = await runSetup(stack.config);
      assert.deepEqual(second.changes, []);
    } finally {
      stack.config.apps.guarded!.protection = 'validate';
      await runSetup(stack.config);
    }
    assert.equal((await http(`${stack.couchUrl}/log_guarded/_design/couchlog`, { headers: admin() })).status, 200);
  });
});

describe('log databases under audit protection', () => {
  const ids: string[] = [];
  before(async () => {
    const bulk = await http(`${stack.url}/log_shield/_bulk_docs`, {
      method: 'POST',
      headers: writer(),
      body: JSON.stringify({ docs: [1, 2, 3, 4, 5].map((n) => ({ n, msg: `line ${n}` })) }),
    });
    assert.equal(bulk.status, 201, bulk.text);
    for (const r of bulk.json as Array<{ id: string; ok?: boolean }>) {
      assert.equal(r.ok, true);
      ids.push(r.id);
    }
  });

  test('the ingress accepts new documents only', async () => {
    const one = await http(`${stack.url}/log_shield`, { method: 'POST', headers: writer(), body: JSON.stringify({ n: 6 }) });
    assert.equal(one.status, 201, one.text);
    ids.push(one.json.id);
    const stored = await http(`${stack.couchUrl}/log_shield/${ids[0]}`, { headers: admin() });
    const update = await http(`${stack.url}/log_shield/_bulk_docs`, {
      method: 'POST',
      headers: writer(),
      body: JSON.stringify({ docs: [{ _id: ids[0], _rev: stored.json._rev, n: 99 }] }),
    });
    assert.equal(update.status, 403, update.text);
    const del = await http(`${stack.url}/log_shield`, { method: 'POST', headers: writer(), body: JSON.stringify({ _id: ids[1], _deleted: true }) });
    assert.equal(del.status, 403, del.text);
  });

  test('an intact database passes: exit 0', async () => {
    const r = cli(['--app', 'shield', 'guarded']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /log_shield \(append-only\): 6 documents, intact/);
    assert.match(r.stdout, /audit: 2 database\(s\) intact/);
  });

  test('an update, a deletion and an injected revision branch are found, by document: exit 3', async () => {
    const doc = async (id: string) => (await http(`${stack.couchUrl}/log_shield/${id}`, { headers: admin() })).json;
    // Straight at CouchDB with the writer's password: nothing stops it under audit protection.
    const d0 = await doc(ids[0]!);
    const upd = await http(`${stack.couchUrl}/log_shield/${ids[0]}`, {
      method: 'PUT',
      headers: writer(),
      body: JSON.stringify({ ...d0, msg: 'nothing happened here' }),
    });
    assert.equal(upd.status, 201, upd.text);
    const d1 = await doc(ids[1]!);
    const del = await http(`${stack.couchUrl}/log_shield/${ids[1]}?rev=${d1._rev}`, { method: 'DELETE', headers: writer() });
    assert.equal(del.status, 200, del.text);
    // A sibling first revision with other content: it may even win, with nothing at depth 2 to show for it.
    const branch = await http(`${stack.couchUrl}/log_shield/_bulk_docs`, {
      method: 'POST',
      headers: writer(),
      body: JSON.stringify({ new_edits: false, docs: [{ _id: ids[2], _rev: '1-ffffffffffffffffffffffffffffffff', n: 3, msg: 'forged' }] }),
    });
    assert.equal(branch.status, 201, branch.text);

    const audits = await runAudit(stack.config, ['shield'], 100);
    const a = byDb(audits, 'log_shield');
    assert.equal(a.checked, 6);
    assert.deepEqual(a.counts, { modified: 1, deleted: 1, branched: 1, unsigned: 0, 'bad-signature': 0, 'old-signature': 0, validation: 0 });
    assert.deepEqual(a.findings.map((f) => `${f.kind} ${f.id}`).sort(), [`branched ${ids[2]}`, `deleted ${ids[1]}`, `modified ${ids[0]}`].sort());
    const r = cli(['--app', 'shield']);
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /log_shield \(append-only\): 6 documents, 1 modified, 1 deleted, 1 branched/);
    assert.match(r.stdout, new RegExp(`modified\\s+${ids[0]}\\s+2-`));
    const json = cli(['--app', 'shield', '--json']);
    assert.equal(json.status, 3);
    assert.equal(JSON.parse(json.stdout)[0].counts.deleted, 1);
  });

  test('bad usage and an unknown app are clear errors', async () => {
    const bad = cli(['--list', 'many']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--list must be a non-negative integer/);
    const missing = cli(['--app', 'nosuchapp']);
    assert.equal(missing.status, 1);
    assert.match(
      missing.stderr,
      /database log_nosuchapp does not exist \(is the app in the config's apps:, has couchlog setup run, and is COUCHDB_URL that server\?\)/,
    );
  });

  test('without --app, a configured app whose database the server lacks fails the audit instead of passing unseen', async () => {
    const all = (await runAudit(stack.config, undefined, 0)).map((a) => a.db);
    for (const db of ['log_shield', 'log_guarded', 'log_http', 'log_network', 'log_correlated']) assert.ok(all.includes(db), `${db} in ${all.join(' ')}`);
    // As if COUCHDB_URL named another server, or the database had been deleted: one configured app it does not hold.
    const config = structuredClone(stack.config);
    config.apps.ghost = structuredClone(config.apps.shield!);
    await assert.rejects(runAudit(config, undefined, 0), /database log_ghost does not exist/);
  });
});

describe('log_correlated under audit protection: signed records', () => {
  let correlator: RunningCorrelator;
  before(async () => {
    correlator = await startCorrelator(stack.config, log, { clickhouse: false });
  });
  after(async () => correlator?.stop());

  const recordsOf = async () => {
    const res = await http(`${stack.couchUrl}/log_correlated/_all_docs?include_docs=true`, { headers: admin() });
    return (res.json.rows as Array<{ id: string; doc: Record<string, unknown> }>).filter((r) => !r.id.startsWith('_design/')).map((r) => r.doc);
  };

  test('records and their corrections are signed; the audit passes', async () => {
    const t = Date.now() - 60_000;
    const a = { time: new Date(t).toISOString(), src_ip: '203.0.113.7', src_port: 51000, dst_ip: '192.0.2.1', dst_port: 443, method: 'GET', path: '/' };
    const posted = await http(`${stack.url}/log_http`, { method: 'POST', headers: writer(), body: JSON.stringify(a) });
    assert.equal(posted.status, 201, posted.text);
    // The A alone: a provisional orphan, revision 1.
    await until('the provisional orphan', async () => ((await recordsOf()).some((d) => d.correlated === false) ? true : null), 20_000);
    // Its B, late: the record is corrected (revision 2), signed again.
    const b = {
      time: new Date(t - 100).toISOString(),
      src_ip: '203.0.113.7',
      src_port: 51000,
      dst_ip: '192.0.2.1',
      dst_port: 443,
      ja4: 't13d1516h2_8daaf6152771_e5627efa2ab1',
    };
    assert.equal((await http(`${stack.url}/log_network`, { method: 'POST', headers: writer(), body: JSON.stringify(b) })).status, 201);
    const corrected = await until(
      'the correction',
      async () => (await recordsOf()).find((d) => d.correlated === true && d.revision === 2) ?? null,
      20_000,
    ).catch(async (e) => {
      console.log(JSON.stringify(correlator.engine.counters), JSON.stringify(correlator.engine.sizes()));
      throw e;
    });
    assert.match(String(corrected.signature), /^hmac-sha256-g:[\w-]{43}$/);
    const audits = await runAudit(stack.config, ['correlated'], 100);
    const c = byDb(audits, 'log_correlated');
    assert.equal(c.rules, 'signed');
    assert.ok(c.checked >= 1);
    assert.deepEqual(c.findings, []);
  });

  test('a record changed, a record added and a record deleted by someone else are found', async () => {
    await correlator.stop();
    const [rec] = (await recordsOf()).filter((d) => d.correlated === true);
    assert.ok(rec);
    const changed = await http(`${stack.couchUrl}/log_correlated/${rec._id}`, {
      method: 'PUT',
      headers: writer(),
      body: JSON.stringify({ ...rec, src_ip: '198.51.100.1' }),
    });
    assert.equal(changed.status, 201, changed.text);
    const added = await http(`${stack.couchUrl}/log_correlated`, {
      method: 'POST',
      headers: writer(),
      body: JSON.stringify({ ...rec, _id: 'A-forged', _rev: undefined }),
    });
    assert.equal(added.status, 201, added.text);
    const extra = await http(`${stack.couchUrl}/log_correlated`, {
      method: 'POST',
      headers: writer(),
      body: JSON.stringify({ correlated: false, note: 'no signature' }),
    });
    assert.equal(extra.status, 201, extra.text);
    const del = await http(`${stack.couchUrl}/log_correlated/${extra.json.id}?rev=${extra.json.rev}`, { method: 'DELETE', headers: writer() });
    assert.equal(del.status, 200, del.text);

    const c = byDb(await runAudit(stack.config, ['correlated'], 100), 'log_correlated');
    const found = c.findings.map((f) => `${f.kind} ${f.id}`).sort();
    // The copied record carries a signature made for another id; the deleted one is a bare tombstone.
    assert.deepEqual(found, [`bad-signature ${rec._id}`, 'bad-signature A-forged', `unsigned ${extra.json.id}`].sort());
    const r = cli(['--app', 'correlated']);
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /log_correlated \(signed records\): \d+ documents, 1 unsigned, 2 bad-signature/);
  });

  test('without the signing key the audit of signed records refuses to guess: exit 2', () => {
    const r = spawnSync(process.execPath, [CLI, 'audit', '--app', 'correlated'], {
      cwd: stack.dataDir,
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        COUCHLOG_DATA: `${stack.dataDir}/elsewhere`,
        COUCHLOG_CONFIG: `${stack.dataDir}/couchlog.yml`,
        COUCHDB_URL: stack.couchUrl,
        COUCHDB_USER: stack.config.couchdb.admin.user,
        COUCHDB_PASSWORD: stack.config.couchdb.admin.password ?? '',
      },
    });
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /no signing key: set COUCHLOG_SIGNING_KEY/);
  });
});

test('the admin client can read every database the audit lists', async () => {
  const dbs = await adminClient(stack.config).must<string[]>('listing', 'GET', '/_all_dbs');
  const audits = await runAudit(stack.config, undefined, 0);
  assert.deepEqual(audits.map((a) => a.db).sort(), dbs.filter((d) => d.startsWith('log_')).sort());
  assert.ok(
    audits.every((a) => a.findings.length === 0),
    'with --list 0 nothing is listed, only counted',
  );
});
