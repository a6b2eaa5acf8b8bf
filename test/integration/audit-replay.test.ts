// Signed records in log_correlated cannot be replayed (protection: audit),
// on a real server (embedded or CouchDB 3). The correlator's CouchDB sink
// writes as in production (its account, its signing key); an attacker with a
// member's password (here the writer's, straight at CouchDB) writes back
// earlier signed versions, which anyone can read (open_revs, a kept
// _changes feed):
//  - the sink's normal work — records, corrections, deletions, a record
//    decided again over its tombstone — passes the audit: exit 0;
//  - a correction rolled back, a deleted record resurrected, a signed
//    tombstone replayed over a record decided again: bad-signature, exit 3,
//    by document; backfill copies none of them;
//  - an earlier version put back as a sibling revision, the real leaf then
//    deleted so that the sibling wins: branched;
//  - signatures of the unbound form (before 2026-12): reported as
//    old-signature, re-signed once by `couchlog audit --resign`, and a replay
//    of one after that is reported again (a second --resign refuses);
//  - back under validate protection, the same findings are still reported,
//    and a missing or unexpected validation design document is a finding.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stringify } from 'safe-stable-stringify';
import type { ClickHouseClient } from '@clickhouse/client';
import { startStack, http, JSON_TYPE, type Stack } from '../helpers/stack.js';
import { CouchHttp } from '../../lib/couch/http.js';
import { basicAuth } from '../../lib/couch/basic-auth.js';
import { CouchDbDelivery } from '../../correlator/sinks/couchdb/couchdb-sink.js';
import { ChangesFeed } from '../../correlator/feed/changes-feed.js';
import { backfill } from '../../correlator/sinks/clickhouse/backfill.js';
import { checkSignature, signRecord } from '../../lib/audit/record-signature.js';
import { runAudit } from '../../cli/audit-command.js';
import { runSetup } from '../../cli/run-setup.js';
import type { Sink, SinkRecord } from '../../correlator/sinks/sink.js';
import type { DbAudit } from '../../cli/audit-db.js';

const CLI = fileURLToPath(new URL('../../scripts/couchlog.js', import.meta.url));
const DB = 'log_correlated';
let stack: Stack;
let couch: CouchHttp;
let delivery: CouchDbDelivery;
let key: string;

before(async () => {
  stack = await startStack({
    yaml: { correlator: { outputs: { couchdb: { protection: 'audit' }, clickhouse: { enabled: false } }, metrics: { enabled: false } } },
  });
  key = stack.config.correlator.outputs.couchdb.signing_key!;
  couch = new CouchHttp(stack.couchUrl, { timeoutMs: 30_000, retryAfterS: 1 });
  const c = stack.config.users.correlator;
  delivery = new CouchDbDelivery(
    couch,
    DB,
    { authorization: basicAuth(c.user, c.password!) },
    // As correlator/service.ts signs; no re-check of deletions during the test (it would undo the attacks).
    { sign: (doc, generation) => signRecord(doc, generation, key), recheckDelaysMs: [3_600_000] },
  );
});
after(async () => {
  await delivery?.close();
  await couch?.pool.close();
  await stack?.stop();
});

const admin = () => ({ authorization: stack.auth.admin, ...JSON_TYPE });
const attacker = () => ({ authorization: stack.auth.writer, ...JSON_TYPE });

let clock = Date.parse('2026-12-06T08:00:00.000Z');
/** A decision of the correlator for `id`, later than every one before. */
function decision(id: string, revision: number, o: { correlated?: boolean; deleted?: boolean } = {}): SinkRecord {
  clock += 1000;
  const decided_at = new Date(clock).toISOString();
  const record = o.deleted
    ? { deleted: true, revision, decided_at }
    : {
        timestamp: '2026-12-06T07:59:00.000Z',
        a_id: `a-${id}`,
        b_id: o.correlated ? `b-${id}` : null,
        keepalives: 0,
        correlated: o.correlated ?? false,
        revision,
        decided_at,
      };
  return { id, record, version: clock, deleted: o.deleted === true };
}

/** A stored revision's body, as anyone who can read the database gets it (open_revs=all, a kept _changes). */
async function body(id: string, rev?: string): Promise<Record<string, unknown>> {
  const path = id.startsWith('_design/') ? id : encodeURIComponent(id); // CouchDB 3 redirects _design%2F…
  const res = await http(`${stack.couchUrl}/${DB}/${path}${rev ? `?rev=${rev}` : ''}`, { headers: admin() });
  assert.equal(res.status, 200, res.text);
  return res.json as Record<string, unknown>;
}

async function currentRev(id: string): Promise<string> {
  const res = await http(`${stack.couchUrl}/${DB}/_all_docs?keys=${encodeURIComponent(JSON.stringify([id]))}`, { headers: admin() });
  return String(res.json.rows[0].value.rev);
}

async function put(id: string, doc: Record<string, unknown>): Promise<string> {
  const res = await http(`${stack.couchUrl}/${DB}/${encodeURIComponent(id)}`, { method: 'PUT', headers: attacker(), body: JSON.stringify(doc) });
  assert.ok(res.status === 200 || res.status === 201, `${res.status} ${res.text}`);
  return String(res.json.rev);
}

/** `couchlog audit` as its own process, with the stack's config and secrets. */
function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const c = stack.config;
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, COUCHLOG_DATA: stack.dataDir, COUCHLOG_COUCHDB_PORT: String(c.couchdb.embedded.port) };
  if (c.couchdb.url) Object.assign(env, { COUCHDB_URL: c.couchdb.url, COUCHDB_USER: c.couchdb.admin.user, COUCHDB_PASSWORD: c.couchdb.admin.password });
  const r = spawnSync(process.execPath, [CLI, 'audit', '--app', 'correlated', ...args], { cwd: stack.dataDir, env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const audit = async (): Promise<DbAudit> => (await runAudit(stack.config, ['correlated'], 1000))[0]!;
const found = (a: DbAudit, ids: readonly string[]) =>
  a.findings
    .filter((f) => ids.includes(f.id))
    .map((f) => `${f.kind} ${f.id}`)
    .sort();

/** The released unbound form (before 2026-12), computed here independently of lib/audit. */
function unboundSignature(doc: Record<string, unknown>): string {
  const rest = Object.fromEntries(Object.entries(doc).filter(([k]) => k !== '_rev' && k !== 'signature'));
  return `hmac-sha256:${createHmac('sha256', key).update(stringify(rest)!).digest('base64url')}`;
}

const ATTACKED = ['A-1', 'A-4', 'B-3'];

/** A stand-in ClickHouse that holds an older, live row of every id looked up: a tombstone let through would delete it. */
const holdingEverything = {
  query: async ({ query }: { query: string }) => ({
    json: async () => [...query.matchAll(/'([^']+)'/g)].map((m) => ({ id: m[1], t: 1, src_ip: '203.0.113.1', src_port: 1, v: 1, d: 0 })),
  }),
} as unknown as ClickHouseClient;
/** Bodies the correlator stored on the way, kept by the attacker. */
const kept: Record<string, Record<string, unknown>> = {};

describe('log_correlated: replaying signed versions', () => {
  test("the correlator's normal work (records, corrections, deletions, a decision over a tombstone) is intact: exit 0", async () => {
    await delivery.deliver([decision('A-1', 1), decision('A-2', 1), decision('B-3', 1), decision('A-4', 1)]);
    kept['A-1 v1'] = await body('A-1');
    kept['A-2 v1'] = await body('A-2');
    kept['A-4 v1'] = await body('A-4');
    await delivery.deliver([decision('A-1', 2, { correlated: true }), decision('A-2', 2, { correlated: true }), decision('B-3', 2, { deleted: true })]);
    await delivery.deliver([decision('A-4', 2, { deleted: true })]);
    kept['B-3 tombstone'] = await body('B-3', await currentRev('B-3'));
    // Decided again as a first revision: written without reading, it lands over the tombstone (3-) and is
    // written again at once, signed for 4.
    await delivery.deliver([decision('B-3', 1)]);
    assert.match(await currentRev('B-3'), /^4-/);
    assert.match(String((await body('B-3')).signature), /^hmac-sha256-g:[\w-]{43}$/);

    const a = await audit();
    assert.equal(a.rules, 'signed');
    assert.equal(a.checked, 4);
    assert.deepEqual(a.findings, []);
    const r = cli([]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /log_correlated \(signed records\): 4 documents, intact/);
  });

  let beforeAttacks = '0';
  test('a rolled-back correction, a resurrected record and a replayed tombstone are found by document: exit 3', async () => {
    beforeAttacks = String((await http(`${stack.couchUrl}/${DB}`, { headers: admin() })).json.update_seq);
    // (a) the corrected A-1 back to its provisional revision 1, over its current revision: stored as 3-.
    assert.match(await put('A-1', { ...kept['A-1 v1'], _rev: await currentRev('A-1') }), /^3-/);
    // (b) the deleted A-4 brought back: its old body without _rev over the tombstone: stored as 3-.
    const { _rev: _old, ...a4 } = kept['A-4 v1']!;
    assert.match(await put('A-4', a4), /^3-/);
    // A decision made after the attacks, for backfill to copy.
    await delivery.deliver([decision('A-5', 1)]);
    // (c) B-3, decided again after its deletion, deleted again with the signed tombstone: stored as 5-.
    assert.match(await put('B-3', { ...kept['B-3 tombstone'], _rev: await currentRev('B-3') }), /^5-/);

    const a = await audit();
    assert.deepEqual(found(a, [...ATTACKED, 'A-5']), ['bad-signature A-1', 'bad-signature A-4', 'bad-signature B-3']);
    const r = cli([]);
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /log_correlated \(signed records\): 5 documents, 3 bad-signature/);
    for (const id of ATTACKED) assert.match(r.stdout, new RegExp(`bad-signature\\s+${id}\\s`));
  });

  test('backfill copies none of the replayed records, and does copy the real one', async () => {
    const copied: SinkRecord[] = [];
    const sink: Sink = { name: 'capture', backlog: 0, full: false, failingSince: null, write: async (rs) => void copied.push(...rs), close: async () => {} };
    const p = await backfill({
      feed: new ChangesFeed(couch, DB, { authorization: stack.auth.admin }, 100),
      sink,
      client: holdingEverything,
      database: 'couchlog',
      table: 'http_logs',
      since: beforeAttacks,
      decidedSince: null,
      checkSignature: (doc) => checkSignature(doc, key),
      giveUpAfterMs: 1000,
      inFlight: 100,
    });
    assert.deepEqual(
      copied.map((r) => `${r.id}${r.deleted ? ' deleted' : ''}`),
      ['A-5'],
    );
    assert.equal(p.unsigned, 3);
    assert.deepEqual([...p.unsignedIds].sort(), ATTACKED);
  });

  test('an earlier version put back beside the current one, the current one then deleted so that it wins: branched', async () => {
    const real = await currentRev('A-2');
    const sibling = await http(`${stack.couchUrl}/${DB}/_bulk_docs`, {
      method: 'POST',
      headers: attacker(),
      body: JSON.stringify({ new_edits: false, docs: [{ ...kept['A-2 v1'], _rev: '1-ffffffffffffffffffffffffffffffff' }] }),
    });
    assert.equal(sibling.status, 201, sibling.text);
    const del = await http(`${stack.couchUrl}/${DB}/A-2?rev=${real}`, { method: 'DELETE', headers: attacker() });
    assert.equal(del.status, 200, del.text);
    const winner = await body('A-2');
    assert.equal(winner._rev, '1-ffffffffffffffffffffffffffffffff', 'the old version is what readers get');
    assert.equal(checkSignature(winner, key), 'valid', 'at its own generation its signature holds');
    const a = await audit();
    assert.deepEqual(found(a, ['A-2']), ['branched A-2']);
    assert.equal(cli([]).status, 3);
  });
});

describe('log_correlated: signatures of the unbound form (before 2026-12)', () => {
  const OLD = ['A-old', 'B-oldgone'];
  const old: Record<string, Record<string, unknown>> = {};

  test('are reported as old-signature, re-signed once by couchlog audit --resign, and reported again when replayed', async () => {
    const c = stack.config.users.correlator;
    const asCorrelator = { authorization: basicAuth(c.user, c.password!), ...JSON_TYPE };
    // As the released correlator wrote them: a record, and a record deleted (its tombstone signed too).
    const rec = { _id: 'A-old', timestamp: '2026-11-30T10:00:00.000Z', correlated: true, keepalives: 1, revision: 1, decided_at: '2026-11-30T10:00:01.000Z' };
    const gone = {
      _id: 'B-oldgone',
      timestamp: '2026-11-30T10:00:00.000Z',
      correlated: false,
      keepalives: 0,
      revision: 1,
      decided_at: '2026-11-30T10:00:01.000Z',
    };
    for (const d of [rec, gone]) {
      const res = await http(`${stack.couchUrl}/${DB}/${d._id}`, {
        method: 'PUT',
        headers: asCorrelator,
        body: JSON.stringify({ ...d, signature: unboundSignature(d) }),
      });
      assert.equal(res.status, 201, res.text);
    }
    old['A-old'] = await body('A-old');
    const tomb = { _id: 'B-oldgone', _deleted: true, revision: 2, decided_at: '2026-11-30T10:00:02.000Z' };
    const del = await http(`${stack.couchUrl}/${DB}/B-oldgone`, {
      method: 'PUT',
      headers: asCorrelator,
      body: JSON.stringify({ ...tomb, _rev: await currentRev('B-oldgone'), signature: unboundSignature(tomb) }),
    });
    assert.ok(del.status === 200 || del.status === 201, del.text);

    assert.deepEqual(found(await audit(), OLD), ['old-signature A-old', 'old-signature B-oldgone']);
    const resign = cli(['--resign']);
    assert.equal(resign.status, 0, resign.stdout + resign.stderr);
    assert.match(resign.stdout, /log_correlated: 7 documents, 2 unbound signature\(s\) re-signed for their revision generation\n/);
    assert.deepEqual(found(await audit(), OLD), [], 're-signed for where they stand');
    assert.deepEqual(found(await audit(), ATTACKED), ['bad-signature A-1', 'bad-signature A-4', 'bad-signature B-3'], 'nothing else touched');

    // The old body written again after the upgrade: its unbound signature is a replay.
    await put('A-old', { ...old['A-old'], _rev: await currentRev('A-old') });
    assert.deepEqual(found(await audit(), OLD), ['old-signature A-old']);
    const again = cli(['--resign']);
    assert.equal(again.status, 2, again.stdout + again.stderr);
    assert.match(again.stderr, /log_correlated was re-signed already .*a replay/);
  });
});

describe('log_correlated back under validate protection', () => {
  test('the findings made under audit are still reported, and the validation design document is checked', async () => {
    const out = stack.config.correlator.outputs.couchdb;
    out.protection = 'validate';
    try {
      await runSetup(stack.config);
      let a = await audit();
      assert.equal(a.rules, 'signed', 'the key is there: signatures are checked');
      assert.deepEqual(found(a, [...ATTACKED, 'A-2', 'A-old']), [
        'bad-signature A-1',
        'bad-signature A-4',
        'bad-signature B-3',
        'branched A-2',
        'old-signature A-old',
      ]);
      assert.equal(a.counts.validation, 0);
      const ddoc = await body('_design/couchlog');
      const removed = await http(`${stack.couchUrl}/${DB}/_design/couchlog?rev=${String(ddoc._rev)}`, { method: 'DELETE', headers: admin() });
      assert.equal(removed.status, 200, removed.text);
      a = await audit();
      assert.deepEqual(
        a.findings.filter((f) => f.kind === 'validation').map((f) => `${f.id} ${f.detail}`),
        ['_design/couchlog missing: the configured protection is validate'],
      );
    } finally {
      out.protection = 'audit';
      await runSetup(stack.config);
    }
    // Under audit, a validation design document left there (setup removes it) says config and database disagree.
    const planted = await http(`${stack.couchUrl}/${DB}/_design/couchlog`, {
      method: 'PUT',
      headers: admin(),
      body: JSON.stringify({ language: 'javascript', validate_doc_update: 'function (newDoc, oldDoc, userCtx) {}' }),
    });
    assert.equal(planted.status, 201, planted.text);
    const a = await audit();
    assert.deepEqual(
      a.findings.filter((f) => f.kind === 'validation').map((f) => `${f.id} ${f.detail}`),
      ['_design/couchlog present, but the configured protection is audit'],
    );
  });
});
