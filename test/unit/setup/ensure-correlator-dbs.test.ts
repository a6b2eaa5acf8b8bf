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

  constructor(private readonly listsLocalDocs: boolean) {}

  put(db: string, name: string, body: Body): void {
    const local = this.dbs.get(db)!.local;
    local.set(name, { rev: (local.get(name)?.rev ?? 0) + 1, body });
  }

  doc(db: string, name: string): Body | undefined {
    return this.dbs.get(db)?.local.get(name)?.body;
  }

  readonly admin = {
    call: async (method: string, path: string, body?: Body): Promise<Reply> => {
      this.log.push(`${method} ${path}`);
      const [dbPart, rest = ''] = path.slice(1).split(/\/(.*)/s);
      const dbName = decodeURIComponent(dbPart!);
      const db = this.dbs.get(dbName);
      const reply = (status: number, b: unknown = {}): Reply => ({ status, body: b });
      if (rest === '') {
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
      if (rest === '_local_docs')
        return this.listsLocalDocs ? reply(200, { rows: [...db.local.keys()].map((n) => ({ id: `_local/${n}` })) }) : reply(404, { error: 'not_found' });
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

function upgradeFrom(listsLocalDocs: boolean): MemoryCouch {
  const couch = new MemoryCouch(listsLocalDocs);
  couch.dbs.set(OUTPUT, { security: {}, local: new Map() });
  couch.put(OUTPUT, 'correlator', legit);
  return couch;
}

test('the upgrade: the state database is created and locked before the old checkpoint is moved in; a second run changes nothing', async () => {
  const couch = upgradeFrom(false);
  const changes = await ensureCorrelatorStateDb(couch.client, 'correlated', 1);
  assert.deepEqual(changes, [
    `created database ${STATE}`,
    `set ${STATE}/_security (members: roles log_correlator; admins: none)`,
    `moved the checkpoint ${OUTPUT}/_local/correlator to ${STATE}`,
  ]);
  assert.deepEqual(couch.doc(STATE, 'correlator'), legit);
  assert.equal(couch.doc(OUTPUT, 'correlator'), undefined);
  assert.deepEqual(couch.dbs.get(STATE)!.security, STATE_DB_SECURITY);
  const secured = couch.log.indexOf(`PUT /${STATE}/_security`);
  const firstWrite = couch.log.findIndex((l) => l.startsWith(`PUT /${STATE}/_local/`));
  assert.ok(secured >= 0 && secured < firstWrite, couch.log.join('\n'));
  assert.deepEqual(await ensureCorrelatorStateDb(couch.client, 'correlated', 1), []);
});

test("a checkpoint a member slips in before the _security is set is deleted, and the older couchlog's is the one moved in", async () => {
  const couch = upgradeFrom(false);
  couch.onCreate = (db) => couch.put(db, 'correlator', forged);
  const changes = await ensureCorrelatorStateDb(couch.client, 'correlated', 1);
  assert.ok(changes.includes(`deleted ${STATE}/_local/correlator, written before the database's _security was set`), changes.join('\n'));
  assert.deepEqual(couch.doc(STATE, 'correlator'), legit);
});

test('once the state database exists, a checkpoint in the old place is deleted, never moved, even when the state database has none', async () => {
  const couch = upgradeFrom(false);
  await ensureCorrelatorStateDb(couch.client, 'correlated', 1);
  couch.dbs.get(STATE)!.local.delete('correlator'); // the rebuild: the admin deleted it
  couch.put(OUTPUT, 'correlator', forged); // a member, straight against CouchDB
  const changes = await ensureCorrelatorStateDb(couch.client, 'correlated', 1);
  assert.deepEqual(changes, [`deleted the checkpoint ${OUTPUT}/_local/correlator (the correlator's is in ${STATE}; one there now is stale or forged)`]);
  assert.equal(couch.doc(STATE, 'correlator'), undefined);
  assert.equal(couch.doc(OUTPUT, 'correlator'), undefined);
});

test('the checkpoints of every shard count: the configured ones, and on CouchDB 3 every one _local_docs lists (other _local documents stay)', async () => {
  for (const lists of [false, true]) {
    const couch = upgradeFrom(lists);
    couch.put(OUTPUT, 'correlator-0-of-2', { saved_at: 'shard 0 of 2' });
    couch.put(OUTPUT, 'correlator-3-of-4', { saved_at: 'shard 3 of 4' });
    couch.put(OUTPUT, 'replication-checkpoint', { saved_at: 'not ours' });
    await ensureCorrelatorStateDb(couch.client, 'correlated', 2);
    assert.deepEqual(couch.doc(STATE, 'correlator-0-of-2'), { saved_at: 'shard 0 of 2' }, `lists: ${lists}`);
    assert.deepEqual(couch.doc(STATE, 'correlator-3-of-4'), lists ? { saved_at: 'shard 3 of 4' } : undefined, `lists: ${lists}`);
    assert.deepEqual(couch.doc(OUTPUT, 'replication-checkpoint'), { saved_at: 'not ours' });
    assert.deepEqual(couch.doc(STATE, 'correlator'), lists ? legit : undefined, 'count 2 names no "correlator"; only a listing finds it');
  }
});
