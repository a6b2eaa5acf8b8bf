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
const SET = `set ${STATE}/_security (members: roles log_correlator; admins: none) and began a new epoch: checkpoints written before are not read`;
const CLOSED = { members: { names: [], roles: ['_admin'] }, admins: { names: [], roles: [] } };
const epochOf = (couch: MemoryCouch) => couch.doc(STATE, 'epoch')?.epoch as string | undefined;

test('the state database is created, closed, given an epoch, then opened to the correlator role; a second run changes nothing', async () => {
  const couch = new MemoryCouch();
  assert.deepEqual(await ensureCorrelatorStateDb(couch.client, 'correlated'), [`created database ${STATE}`, SET]);
  assert.deepEqual(couch.dbs.get(STATE)!.security, STATE_DB_SECURITY);
  assert.match(epochOf(couch)!, /^[0-9a-f]{32}$/);
  const writes = couch.log.filter((l) => !l.startsWith('GET'));
  assert.deepEqual(writes, [`PUT /${STATE}`, `PUT /${STATE}/_security`, `PUT /${STATE}/_local/epoch`, `PUT /${STATE}/_security`]);
  assert.deepEqual(couch.securityHistory, [CLOSED, STATE_DB_SECURITY]);
  const epoch = epochOf(couch);
  assert.deepEqual(await ensureCorrelatorStateDb(couch.client, 'correlated'), []);
  assert.equal(epochOf(couch), epoch);
});

test('whatever slipped in before the _security (PouchDB Server lets anyone in), an epoch included, is of another epoch', async () => {
  const couch = new MemoryCouch();
  couch.onCreate = (db) => {
    couch.put(db, 'epoch', { epoch: 'planted' });
    couch.put(db, 'correlator-3-of-4', { epoch: 'planted', feeds: { A: { since: '999999' } } });
  };
  await ensureCorrelatorStateDb(couch.client, 'correlated');
  assert.notEqual(epochOf(couch), 'planted');
  assert.match(epochOf(couch)!, /^[0-9a-f]{32}$/);
});

test('a run that died half-way, or a _security someone changed, begins a new epoch; so does a missing epoch', async () => {
  for (const left of [{}, CLOSED, { members: { names: [], roles: ['log_correlator', 'log_reader'] } }, STATE_DB_SECURITY]) {
    const couch = new MemoryCouch();
    couch.dbs.set(STATE, { security: left, local: new Map() });
    if (left !== STATE_DB_SECURITY) couch.put(STATE, 'epoch', { epoch: 'known to whoever got in' });
    assert.deepEqual(await ensureCorrelatorStateDb(couch.client, 'correlated'), [SET], JSON.stringify(left));
    assert.deepEqual(couch.dbs.get(STATE)!.security, STATE_DB_SECURITY);
    assert.match(epochOf(couch)!, /^[0-9a-f]{32}$/);
  }
});

test('two runs never share an epoch', async () => {
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const couch = new MemoryCouch();
    await ensureCorrelatorStateDb(couch.client, 'correlated');
    seen.add(epochOf(couch)!);
  }
  assert.equal(seen.size, 20);
});

test("an epoch write meeting a lagging cluster copy (409) is tried again; an epoch changed behind setup's back fails setup", async () => {
  const couch = new MemoryCouch();
  let conflicts = 2;
  const call = couch.admin.call;
  couch.admin.call = async (method, path, body) =>
    method === 'PUT' && path.endsWith('/_local/epoch') && conflicts-- > 0 ? { status: 409, body: { error: 'conflict' } } : call(method, path, body);
  assert.deepEqual(await ensureCorrelatorStateDb(couch.client, 'correlated'), [`created database ${STATE}`, SET]);

  // A write that passed the security check before the close and lands after setup's epoch.
  const raced = new MemoryCouch();
  const racedCall = raced.admin.call;
  raced.admin.call = async (method, path, body) => {
    const res = await racedCall(method, path, body);
    if (method === 'PUT' && path === `/${STATE}/_security` && (body as { members?: { roles?: string[] } }).members?.roles?.[0] === 'log_correlator')
      raced.put(STATE, 'epoch', { epoch: 'raced' });
    return res;
  };
  await assert.rejects(ensureCorrelatorStateDb(raced.client, 'correlated'), /_local\/epoch changed while setup secured couchlog_state_correlated/);
});

test("setup returns once the _security reads as written (a cluster's copies take it one after the other)", async () => {
  const couch = new MemoryCouch();
  let lagging = 0;
  const call = couch.admin.call;
  couch.admin.call = async (method, path, body) => {
    if (method === 'PUT' && path === `/${STATE}/_security` && (body as { members?: { roles?: string[] } }).members?.roles?.[0] === 'log_correlator')
      lagging = 4;
    if (method === 'GET' && path === `/${STATE}/_security` && lagging-- > 0) return { status: 200, body: CLOSED };
    return call(method, path, body);
  };
  await ensureCorrelatorStateDb(couch.client, 'correlated');
  assert.ok(lagging < 0, 'it read past the lagging copies instead of returning at the first read');
  assert.deepEqual(couch.dbs.get(STATE)!.security, STATE_DB_SECURITY);
});
