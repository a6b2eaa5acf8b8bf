// Unit tests of setup/ensure-correlator-dbs.ts's state database steps, on an
// in-memory CouchDB that can do what a real one cannot be made to do on cue:
// a member's write landing between the database's creation and its
// _security (PouchDB Server lets anyone in until then). Against real servers:
// test/integration/correlator-checkpoint.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ensureCorrelatorStateDb, STATE_DB_SECURITY } from '../../../setup/ensure-correlator-dbs.js';
import { failed, type AdminClient, type Reply } from '../../../lib/couch/admin-client.js';

type Body = Record<string, unknown>;

/** Databases with a _security object and _local documents; `log` records every request. */
class MemoryCouch {
  readonly dbs = new Map<string, { security: Body; local: Map<string, { rev: number; body: Body }> }>();
  readonly log: string[] = [];
  /** Runs right after a database is created (a racing client). */
  onCreate: (db: string) => void = () => undefined;

  put(db: string, name: string, body: Body): void {
    const local = this.dbs.get(db)!.local;
    local.set(name, { rev: (local.get(name)?.rev ?? 0) + 1, body });
  }

  doc(db: string, name: string): Body | undefined {
    return this.dbs.get(db)?.local.get(name)?.body;
  }

  readonly admin: { call: (method: string, path: string, body?: Body) => Promise<Reply> } = {
    call: async (method: string, path: string, body?: Body): Promise<Reply> => {
      this.log.push(`${method} ${path}`);
      const [dbPart, rest = ''] = path.slice(1).split(/\/(.*)/s);
      const dbName = decodeURIComponent(dbPart!);
      const db = this.dbs.get(dbName);
      const reply = (status: number, b: unknown = {}): Reply => ({ status, body: b });
      if (rest === '') {
        if (method === 'DELETE') return reply(this.dbs.delete(dbName) ? 200 : 404);
        if (method !== 'PUT') return reply(db ? 200 : 404);
        if (db) return reply(412);
        this.dbs.set(dbName, { security: {}, local: new Map() });
        this.onCreate(dbName);
        return reply(201);
      }
      if (!db) return reply(404, { error: 'not_found' });
      if (rest === '_security') {
        if (method === 'GET') return reply(200, db.security);
        db.security = body!;
        return reply(200, { ok: true });
      }
      const [docPath, query = ''] = rest.split('?');
      const name = decodeURIComponent(docPath!.replace(/^_local\//, ''));
      const cur = db.local.get(name);
      if (method === 'GET') return cur ? reply(200, { ...cur.body, _id: `_local/${name}`, _rev: `0-${cur.rev}` }) : reply(404, { error: 'not_found' });
      if (method === 'PUT') {
        if (cur && body!._rev !== `0-${cur.rev}`) return reply(409, { error: 'conflict' });
        this.put(dbName, name, Object.fromEntries(Object.entries(body!).filter(([k]) => k !== '_rev')));
        return reply(201, { ok: true });
      }
      if (method === 'DELETE') {
        if (!cur) return reply(404, { error: 'not_found' });
        if (new URLSearchParams(query).get('rev') !== `0-${cur.rev}`) return reply(409, { error: 'conflict' });
        db.local.delete(name);
        return reply(200, { ok: true });
      }
      throw new Error(`unexpected ${method} ${path}`);
    },
  };

  get client(): AdminClient {
    // must() as the real client's: call(), an HTTP error thrown.
    const must = async (what: string, method: string, path: string, body?: Body) => {
      const res = await this.admin.call(method, path, body);
      if (res.status >= 400) throw failed(what, res);
      return res.body;
    };
    return { ...this.admin, must } as unknown as AdminClient;
  }
}

const STATE = 'couchlog_state_correlated';
const OUTPUT = 'log_correlated';
const legit = { feeds: { A: { since: '41' } }, saved_at: 'by the older couchlog' };
const forged = { feeds: { A: { since: '999999' } }, saved_at: 'forged' };
const OLD_DELETED = `deleted the old checkpoint ${OUTPUT}/_local/correlator (the correlator's own is in ${STATE})`;

/** A server as a couchlog from before 2026-12-05 left it: the checkpoint in log_correlated. */
function upgradeFrom(): MemoryCouch {
  const couch = new MemoryCouch();
  couch.dbs.set(OUTPUT, { security: {}, local: new Map() });
  couch.put(OUTPUT, 'correlator', legit);
  return couch;
}

test('the state database is created and locked; the old checkpoint is not taken unless the admin asks; a second run changes nothing', async () => {
  const couch = upgradeFrom();
  const changes = await ensureCorrelatorStateDb(couch.client, 'correlated');
  assert.deepEqual(changes, [`created database ${STATE}`, `set ${STATE}/_security (members: roles log_correlator; admins: none)`]);
  assert.deepEqual(couch.dbs.get(STATE)!.security, STATE_DB_SECURITY);
  assert.equal(couch.doc(STATE, 'correlator'), undefined);
  assert.deepEqual(couch.doc(OUTPUT, 'correlator'), legit, 'left for the admin to move');
  assert.deepEqual(await ensureCorrelatorStateDb(couch.client, 'correlated'), []);
});

test('--move-old-checkpoint moves it while the correlator has none of its own, after the database is locked', async () => {
  const couch = upgradeFrom();
  const changes = await ensureCorrelatorStateDb(couch.client, 'correlated', { moveOldCheckpoint: true });
  assert.ok(changes.includes(`moved the checkpoint ${OUTPUT}/_local/correlator to ${STATE}`), changes.join('\n'));
  assert.deepEqual(couch.doc(STATE, 'correlator'), legit);
  assert.equal(couch.doc(OUTPUT, 'correlator'), undefined);
  const secured = couch.log.indexOf(`PUT /${STATE}/_security`);
  const firstWrite = couch.log.findIndex((l) => l.startsWith(`PUT /${STATE}/_local/`));
  assert.ok(secured >= 0 && secured < firstWrite, couch.log.join('\n'));
  assert.deepEqual(await ensureCorrelatorStateDb(couch.client, 'correlated', { moveOldCheckpoint: true }), []);
});

test('once the correlator has its own checkpoint, one in the old place is deleted, never moved, with or without the option', async () => {
  for (const moveOldCheckpoint of [false, true]) {
    const couch = upgradeFrom();
    await ensureCorrelatorStateDb(couch.client, 'correlated');
    couch.put(STATE, 'correlator', { saved_at: "the correlator's own" });
    couch.put(OUTPUT, 'correlator', forged); // a member, straight against CouchDB
    assert.deepEqual(await ensureCorrelatorStateDb(couch.client, 'correlated', { moveOldCheckpoint }), [OLD_DELETED]);
    assert.deepEqual(couch.doc(STATE, 'correlator'), { saved_at: "the correlator's own" });
    assert.equal(couch.doc(OUTPUT, 'correlator'), undefined);
  }
});

test('a checkpoint written while the state database was open to all is deleted once it is locked, also by the run after one that failed half-way', async () => {
  // Slipped in between the creation and the _security (PouchDB Server lets anyone in until then).
  const couch = upgradeFrom();
  couch.onCreate = (db) => couch.put(db, 'correlator', forged);
  const changes = await ensureCorrelatorStateDb(couch.client, 'correlated', { moveOldCheckpoint: true });
  assert.ok(changes.includes(`deleted ${STATE}/_local/correlator: written while the database was open to all`), changes.join('\n'));
  assert.deepEqual(couch.doc(STATE, 'correlator'), legit, "the older couchlog's is the one moved in");

  // A run died after creating the database: the next one finds it, open, and must still clean it.
  const half = upgradeFrom();
  half.dbs.set(STATE, { security: {}, local: new Map() });
  half.put(STATE, 'correlator', forged);
  await ensureCorrelatorStateDb(half.client, 'correlated');
  assert.equal(half.doc(STATE, 'correlator'), undefined);
  assert.deepEqual(half.doc(OUTPUT, 'correlator'), legit);
});

test("every configured shard's checkpoint, and no other _local document", async () => {
  const couch = upgradeFrom();
  couch.put(OUTPUT, 'correlator-0-of-2', { saved_at: 'shard 0 of 2' });
  couch.put(OUTPUT, 'correlator-1-of-2', { saved_at: 'shard 1 of 2' });
  couch.put(OUTPUT, 'correlator-3-of-4', { saved_at: 'another layout' });
  await ensureCorrelatorStateDb(couch.client, 'correlated', { shards: 2, moveOldCheckpoint: true });
  assert.deepEqual(couch.doc(STATE, 'correlator-0-of-2'), { saved_at: 'shard 0 of 2' });
  assert.deepEqual(couch.doc(STATE, 'correlator-1-of-2'), { saved_at: 'shard 1 of 2' });
  assert.equal(couch.doc(STATE, 'correlator-3-of-4'), undefined, 'only the configured layout');
  assert.equal(couch.doc(STATE, 'correlator'), undefined);
  assert.deepEqual(couch.doc(OUTPUT, 'correlator-3-of-4'), { saved_at: 'another layout' });
});

test('a deletion that meets a lagging cluster copy (404 or 409 for what a read still shows) is tried again', async () => {
  const couch = upgradeFrom();
  await ensureCorrelatorStateDb(couch.client, 'correlated');
  couch.put(STATE, 'correlator', { saved_at: 'own' });
  let conflicts = 2;
  const call = couch.admin.call;
  couch.admin.call = async (method, path, body) =>
    method === 'DELETE' && conflicts-- > 0 ? { status: 409, body: { error: 'conflict' } } : call(method, path, body);
  assert.deepEqual(await ensureCorrelatorStateDb(couch.client, 'correlated'), [OLD_DELETED]);
  assert.equal(couch.doc(OUTPUT, 'correlator'), undefined);
});
