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
  /** Every _security object written, in order. */
  readonly securityHistory: Body[] = [];
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
        this.securityHistory.push(body!);
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
const forged = { feeds: { A: { since: '999999' } }, saved_at: 'forged' };
const SET = `set ${STATE}/_security (members: roles log_correlator; admins: none)`;
const deleted = (name: string) => `deleted ${STATE}/_local/${name}, written while its _security was not setup's`;

/** A server as a couchlog from before 2026-12-05 left it: the checkpoint in log_correlated. */
function upgradeFrom(): MemoryCouch {
  const couch = new MemoryCouch();
  couch.dbs.set(OUTPUT, { security: {}, local: new Map() });
  couch.put(OUTPUT, 'correlator', { saved_at: 'by the older couchlog' });
  return couch;
}

test('the state database is created and locked to the correlator role; the old place is not touched; a second run changes nothing', async () => {
  const couch = upgradeFrom();
  assert.deepEqual(await ensureCorrelatorStateDb(couch.client, 'correlated'), [`created database ${STATE}`, SET]);
  assert.deepEqual(couch.dbs.get(STATE)!.security, STATE_DB_SECURITY);
  assert.equal(couch.doc(STATE, 'correlator'), undefined, 'nothing taken from the old place');
  assert.deepEqual(couch.doc(OUTPUT, 'correlator'), { saved_at: 'by the older couchlog' });
  assert.deepEqual(await ensureCorrelatorStateDb(couch.client, 'correlated'), []);
});

test('a checkpoint slipped in between the creation and the _security (PouchDB Server lets anyone in) is deleted before the role is let in', async () => {
  const couch = upgradeFrom();
  couch.onCreate = (db) => couch.put(db, 'correlator', forged);
  assert.deepEqual(await ensureCorrelatorStateDb(couch.client, 'correlated'), [`created database ${STATE}`, deleted('correlator'), SET]);
  assert.equal(couch.doc(STATE, 'correlator'), undefined);
  // Closed to all but admins before the deletion, the role let in after it.
  const order = couch.log.filter((l) => l.startsWith('PUT') || l.startsWith('DELETE')).filter((l) => l.includes(STATE));
  assert.deepEqual(order, [`PUT /${STATE}`, `PUT /${STATE}/_security`, `DELETE /${STATE}/_local/correlator?rev=0-1`, `PUT /${STATE}/_security`]);
  assert.deepEqual(couch.securityHistory, [{ members: { names: [], roles: ['_admin'] }, admins: { names: [], roles: [] } }, STATE_DB_SECURITY]);
});

test('a run that died half-way (closed, or never closed) is finished by the next: its checkpoints deleted, then the role let in', async () => {
  for (const left of [{}, { members: { names: [], roles: ['_admin'] }, admins: { names: [], roles: [] } }]) {
    const couch = upgradeFrom();
    couch.dbs.set(STATE, { security: left, local: new Map() });
    couch.put(STATE, 'correlator', forged);
    assert.deepEqual(await ensureCorrelatorStateDb(couch.client, 'correlated'), [deleted('correlator'), SET], JSON.stringify(left));
    assert.equal(couch.doc(STATE, 'correlator'), undefined);
    assert.deepEqual(couch.dbs.get(STATE)!.security, STATE_DB_SECURITY);
  }
});

test("a _security someone changed is set back, and the checkpoints they could write deleted; the correlator's own stays while it is setup's", async () => {
  const couch = upgradeFrom();
  await ensureCorrelatorStateDb(couch.client, 'correlated', 2);
  couch.put(STATE, 'correlator-0-of-2', { saved_at: "the correlator's own" });
  assert.deepEqual(await ensureCorrelatorStateDb(couch.client, 'correlated', 2), []);
  assert.deepEqual(couch.doc(STATE, 'correlator-0-of-2'), { saved_at: "the correlator's own" });
  couch.dbs.get(STATE)!.security = { members: { names: [], roles: ['log_correlator', 'log_reader'] } };
  couch.put(STATE, 'correlator-1-of-2', forged);
  assert.deepEqual(await ensureCorrelatorStateDb(couch.client, 'correlated', 2), [deleted('correlator-0-of-2'), deleted('correlator-1-of-2'), SET]);
  assert.equal(couch.doc(STATE, 'correlator-1-of-2'), undefined);
});

test('a deletion that meets a lagging cluster copy (409 for what a read still shows) is tried again; one that keeps failing fails setup', async () => {
  const couch = upgradeFrom();
  couch.dbs.set(STATE, { security: {}, local: new Map() });
  couch.put(STATE, 'correlator', forged);
  let conflicts = 2;
  const call = couch.admin.call;
  couch.admin.call = async (method, path, body) =>
    method === 'DELETE' && conflicts-- > 0 ? { status: 409, body: { error: 'conflict' } } : call(method, path, body);
  assert.deepEqual(await ensureCorrelatorStateDb(couch.client, 'correlated'), [deleted('correlator'), SET]);

  const stuck = upgradeFrom();
  stuck.dbs.set(STATE, { security: {}, local: new Map() });
  stuck.put(STATE, 'correlator', forged);
  const stuckCall = stuck.admin.call;
  stuck.admin.call = async (method, path, body) => (method === 'DELETE' ? { status: 409, body: { error: 'conflict' } } : stuckCall(method, path, body));
  await assert.rejects(ensureCorrelatorStateDb(stuck.client, 'correlated'), /deleting couchlog_state_correlated\/_local\/correlator failed: 409/);
  assert.deepEqual(stuck.dbs.get(STATE)!.security.members, { names: [], roles: ['_admin'] }, 'left closed, not opened to the role');
});
