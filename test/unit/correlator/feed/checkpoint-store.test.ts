// Unit tests of correlator/feed/checkpoint-store.ts's stored form: the
// snapshot goes gzipped and comes back equal (awkward ids included), the
// feed positions stay plain JSON, a checkpoint of an older couchlog (the
// snapshot as JSON) is read as it is, a damaged snapshot is an error that
// says what to do, and one too big is refused before anything is sent;
// the store's requests (a conflict, the revision it then sends) against a
// scripted server. Saving and loading through a real server:
// test/integration/correlator.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CheckpointStore, MAX_CHECKPOINT_BYTES, decodeState, encodeCheckpoint, type Checkpoint } from '../../../../correlator/feed/checkpoint-store.js';
import type { CouchHttp } from '../../../../lib/couch/http.js';
import { WriterClaim } from '../../../../correlator/feed/writer-claim.js';
import type { EngineSnapshot } from '../../../../correlator/engine/types.js';
import { mulberry32 } from '../../../../bench/prng.js';

function snapshot(connections: number, seed = 1): EngineSnapshot {
  const rnd = mulberry32(seed);
  const id = () => `${Math.floor(rnd() * 2 ** 32).toString(16)}-\u00e9"\\\u2028-${Math.floor(rnd() * 1e9)}`;
  const keys: EngineSnapshot['keys'] = [];
  for (let i = 0; i < connections; i++) {
    keys.push([
      i % 3 === 0 ? `[2001:db8::${i.toString(16)}]:${1024 + i}` : `203.0.113.${i % 256}:${1024 + i}`,
      i % 5 === 0 ? null : 1_796_000_000_000 + i,
      [
        ['B', id()],
        ['A', id()],
      ],
      i % 7 === 0 ? [[`A-${id()}`, 2, false]] : [],
      ...(i % 11 === 0 ? [true] : []),
      ...(i % 22 === 0 ? [[['B', id(), 1_796_000_000_000 + i, false]], 1_796_000_000_000 + i] : []),
    ] as unknown as EngineSnapshot['keys'][number]);
  }
  return {
    v: 2,
    progress: { A: 1_796_000_000_000, B: null },
    releasedUpTo: 1_795_999_990_000,
    cacheFloor: null,
    lastVersion: 1_796_000_000_123,
    waiting: [['A', id()]],
    keys,
    evicted: [['198.51.100.7:36802', 1_796_000_000_000]],
    disorder: { A: 12.5, B: 0 },
  };
}

const cp = (state: EngineSnapshot): Checkpoint => ({
  feeds: { A: { db: 'log_http', since: '42-g1AAAA', next_index: 43 }, B: { db: 'log_network', since: '7', next_index: 8 } },
  state,
  saved_at: '2026-12-04T00:00:00.000Z',
});

test('the snapshot is stored gzipped and comes back equal; the feed positions stay readable', async () => {
  for (const n of [0, 1, 50, 5_000]) {
    const state = snapshot(n, n + 1);
    const stored = await encodeCheckpoint(cp(state));
    const doc = JSON.parse(JSON.stringify(stored)) as typeof stored;
    assert.equal(doc.state, undefined);
    assert.deepEqual(doc.feeds, cp(state).feeds);
    assert.equal(doc.saved_at, '2026-12-04T00:00:00.000Z');
    assert.deepEqual(await decodeState(doc, 'test'), state);
    if (n >= 50)
      assert.ok(doc.state_gzip!.length < JSON.stringify(state).length, `${n} connections: ${doc.state_gzip!.length} vs ${JSON.stringify(state).length}`);
  }
});

test('a checkpoint written by an older couchlog (the snapshot as JSON) is read as it is', async () => {
  const state = snapshot(20);
  assert.deepEqual(await decodeState({ feeds: cp(state).feeds, saved_at: 'x', state }, 'test'), state);
});

test('a damaged snapshot is an error that names the checkpoint and the way out', async () => {
  const stored = await encodeCheckpoint(cp(snapshot(20)));
  const cut = { ...stored, state_gzip: stored.state_gzip!.slice(0, stored.state_gzip!.length >> 1) };
  await assert.rejects(decodeState(cut, 'log_correlated/_local/correlator'), /log_correlated\/_local\/correlator .*cannot be read.*delete it/);
  const notGzip = { ...stored, state_gzip: Buffer.from('{"v":2}').toString('base64') };
  await assert.rejects(decodeState(notGzip, 'x'), /cannot be read/);
});

test('a checkpoint above the document limit is refused before anything is sent', async () => {
  const http = {
    request: () => {
      throw new Error('nothing may be sent');
    },
  } as unknown as CouchHttp;
  const store = new CheckpointStore(http, 'couchlog_state_correlated', 'log_correlated', 'correlator', {});
  // Random ids do not compress: enough of them pass the limit even gzipped.
  const state = snapshot(0);
  const big = Math.ceil(MAX_CHECKPOINT_BYTES / 64) + 1000;
  for (let i = 0; i < big; i++) state.waiting.push(['A', randomBytes(48).toString('base64')]);
  await assert.rejects(store.save(cp(state)), /would be \d+ bytes, above 7500000: lower correlator.buffers/);
});

/** A server that answers from a script and records what it was sent (the store's requests, in order). */
function scripted(answers: Array<{ status: number; body: unknown }>) {
  const sent: Array<{ method: string; path: string; body: Record<string, unknown> | null }> = [];
  const http = {
    request: async (method: string, path: string, req: { body?: string } = {}) => {
      sent.push({ method, path, body: req.body === undefined ? null : (JSON.parse(req.body) as Record<string, unknown>) });
      const next = answers.shift();
      if (!next) throw new Error(`unexpected ${method} ${path}`);
      return { status: next.status, headers: {}, body: next.body };
    },
  } as unknown as CouchHttp;
  return { http, sent };
}

test('save() after a conflict takes the stored revision, whatever that document holds, and writes the gzipped form', async () => {
  const { http, sent } = scripted([
    { status: 409, body: { error: 'conflict' } },
    { status: 200, body: { _id: '_local/correlator', _rev: '0-7', feeds: {}, state_gzip: 'not base64 gzip at all' } },
    { status: 201, body: { ok: true, rev: '0-8' } },
    { status: 201, body: { ok: true, rev: '0-9' } },
  ]);
  const store = new CheckpointStore(http, 'couchlog_state_correlated', 'log_correlated', 'correlator', {});
  const state = snapshot(30);
  await store.save(cp(state));
  assert.deepEqual(
    sent.map((r) => `${r.method} ${r.path}`),
    [
      'PUT /couchlog_state_correlated/_local/correlator',
      'GET /couchlog_state_correlated/_local/correlator',
      'PUT /couchlog_state_correlated/_local/correlator',
    ],
  );
  for (const put of [sent[0]!, sent[2]!]) {
    assert.equal(put.body!.state, undefined);
    assert.deepEqual(await decodeState(put.body as never, 'test'), state);
  }
  assert.equal(sent[0]!.body!._rev, undefined, 'the first save knew no revision');
  assert.equal(sent[2]!.body!._rev, '0-7');
  // The revision it got back is the one the next save sends.
  await store.save(cp(state));
  assert.equal(sent[3]!.body!._rev, '0-8');
});

test('a claim and a save answered 202 (a loaded cluster: fewer copies than the write quorum so far) are written, not failures', async () => {
  const { http, sent } = scripted([
    { status: 404, body: { error: 'not_found' } },
    { status: 202, body: { ok: true, id: '_local/correlator-writer', rev: '0-1' } },
    { status: 202, body: { ok: true, id: '_local/correlator', rev: '0-1' } },
    { status: 200, body: { _id: '_local/correlator-writer', _rev: '0-1', instance: 'x' } },
    { status: 201, body: { ok: true, rev: '0-2' } },
    { status: 201, body: { ok: true, rev: '0-2' } },
  ]);
  const claim = new WriterClaim(http, 'couchlog_state_correlated', 'correlator', {}, () => {});
  const store = new CheckpointStore(http, 'couchlog_state_correlated', 'log_correlated', 'correlator', {}, claim);
  assert.equal(await store.save(cp(snapshot(3))), true);
  await store.save(cp(snapshot(3)));
  // Each next write sends the revision the 202 gave back, and the claim's sequence went on from its own.
  assert.equal(sent[4]!.body!._rev, '0-1');
  assert.equal(sent[5]!.body!._rev, '0-1');
  assert.ok((sent[4]!.body!.seq as number) > (sent[1]!.body!.seq as number));
});

const EPOCH = { status: 200, body: { _id: '_local/epoch', _rev: '0-1', epoch: 'e1' } };

test('load() decodes the gzipped form, reads the older one, and rejects a damaged one', async () => {
  const state = snapshot(30);
  const stored = { ...(await encodeCheckpoint(cp(state))), epoch: 'e1' };
  const { http } = scripted([
    EPOCH,
    { status: 200, body: { _rev: '0-3', ...stored } },
    EPOCH,
    { status: 200, body: { _rev: '0-4', feeds: stored.feeds, saved_at: stored.saved_at, state, epoch: 'e1' } },
    EPOCH,
    { status: 200, body: { _rev: '0-5', ...stored, state_gzip: stored.state_gzip!.slice(0, 100) } },
    EPOCH,
    { status: 200, body: { _rev: '0-6', ...stored, state_gzip: null } },
    EPOCH,
    { status: 404, body: { error: 'not_found' } },
  ]);
  const store = new CheckpointStore(http, 'couchlog_state_correlated', 'log_correlated', 'correlator', {});
  assert.deepEqual(await store.load(), { checkpoint: cp(state), ignored: null });
  assert.deepEqual(await store.load(), { checkpoint: cp(state), ignored: null });
  await assert.rejects(store.load(), /couchlog_state_correlated\/_local\/correlator holds a snapshot that cannot be read/);
  await assert.rejects(store.load(), /state_gzip is null, not a string/);
  assert.deepEqual(await store.load(), { checkpoint: null, ignored: null }, 'no checkpoint in a database that exists');
});

test("load() takes only a checkpoint of the state database's epoch, and saves carry that epoch", async () => {
  const stored = await encodeCheckpoint(cp(snapshot(3)));
  const { http, sent } = scripted([
    EPOCH,
    { status: 200, body: { _rev: '0-3', ...stored, epoch: 'e0' } },
    EPOCH,
    { status: 200, body: { _rev: '0-3', ...stored } },
    { status: 201, body: { ok: true, rev: '0-4' } },
  ]);
  const store = new CheckpointStore(http, 'couchlog_state_correlated', 'log_correlated', 'correlator', {});
  const other = await store.load();
  assert.equal(other.checkpoint, null);
  assert.match(other.ignored!, /couchlog_state_correlated\/_local\/correlator is of another epoch .*not read/);
  assert.match((await store.load()).ignored!, /another epoch/, 'none at all (written before epochs, or by hand) is another epoch too');
  await store.save(cp(snapshot(3)));
  assert.equal(sent[4]!.body!.epoch, 'e1');
  assert.equal(sent[4]!.body!._rev, '0-3', 'written over the one not taken');
});

test('load() without the state database, its epoch or access to it is an error that says to run setup, not "no checkpoint"', async () => {
  const { http } = scripted([
    { status: 404, body: { error: 'not_found', reason: 'Database does not exist.' } },
    { status: 404, body: { error: 'not_found', reason: 'Database does not exist.' } },
    { status: 404, body: { error: 'not_found', reason: 'missing' } },
    { status: 200, body: { db_name: 'couchlog_state_correlated' } },
    { status: 403, body: { error: 'forbidden' } },
    { status: 401, body: { error: 'unauthorized' } },
    EPOCH,
    { status: 403, body: { error: 'forbidden' } },
  ]);
  const store = new CheckpointStore(http, 'couchlog_state_correlated', 'log_correlated', 'correlator', {});
  await assert.rejects(store.load(), { name: 'OperationError', message: /state database couchlog_state_correlated does not exist: run couchlog setup/ });
  await assert.rejects(store.load(), { name: 'OperationError', message: /has no epoch \(_local\/epoch\): run couchlog setup/ });
  await assert.rejects(store.load(), { name: 'OperationError', message: /cannot be read with the correlator's account: 403: run couchlog setup/ });
  await assert.rejects(store.load(), { name: 'OperationError', message: /cannot be read with the correlator's account: 401/ });
  await assert.rejects(store.load(), { name: 'OperationError', message: /cannot be read with the correlator's account: 403/ });
});

test('holdsRecords() looks into the output database, not the state database', async () => {
  const { http, sent } = scripted([{ status: 200, body: { rows: [{ id: 'A-1' }] } }]);
  const store = new CheckpointStore(http, 'couchlog_state_correlated', 'log_correlated', 'correlator', {});
  assert.equal(await store.holdsRecords(), true);
  assert.match(sent[0]!.path, /^\/log_correlated\/_all_docs\?/);
});
