// The correlator's connection lookup (correlator/feed/connection-lookup.ts)
// against a real server: a lookup of a few hours reads those hours, not every
// document its connection key ever had. A busy client (a proxy, a NAT
// gateway) reuses each source port many times a day and a proxy's upstream
// connection has millions of documents: until 2026-12-07 the view was keyed
// by the connection alone, and every lookup read all of them, bodies
// included, to keep those of the last hours. A longer range (the lateness
// horizon) still reads the connection's key: a key per hour costs more than
// it saves for the common connection (design-docs/correlator-lookup.ts).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, type Stack } from '../helpers/stack.js';
import { postBulk, until } from '../helpers/correlator-outputs.js';
import { CouchHttp, type CouchResponse } from '../../lib/couch/http.js';
import { ConnectionLookup } from '../../correlator/feed/connection-lookup.js';
import { IpFilter } from '../../correlator/engine/ip-filter.js';
import { fingerprint } from '../../correlator/engine/fingerprint.js';
import type { LookupRequest } from '../../correlator/engine/types.js';

const HOUR = 3_600_000;
const NOW = Date.now();
const IP = '203.0.113.5';
const PORT = 40_000;
const KEY = `${IP}:${PORT}`;
const RULES = { exclude: new IpFilter([]), includePorts: new Set<number>(), where: null };

/** Rows of every view response, by view. */
const read: Array<{ view: string; rows: number }> = [];

/** The server as the correlator reaches it, counting the view rows it sends back. */
class CountingHttp extends CouchHttp {
  override async request<T = unknown>(...args: Parameters<CouchHttp['request']>): Promise<CouchResponse<T>> {
    const res = await super.request<T>(...args);
    const rows = (res.body as { rows?: unknown[] } | undefined)?.rows;
    const view = /\/_view\/([a-z_]+)/.exec(args[1])?.[1];
    if (view && Array.isArray(rows)) read.push({ view, rows: rows.length });
    return res;
  }
}

let stack: Stack;
let http: CountingHttp;
let lookup: ConnectionLookup;

const doc = (t: number, extra: Record<string, unknown> = {}) => ({ src_ip: IP, src_port: PORT, timestamp: t, ...extra });
/** A lookup as the correlator makes it (admin), of these input databases and, when named, log_correlated's stand-in. */
const lookupIn = (a: string, b: string, correlated: string | null) =>
  new ConnectionLookup(http, { authorization: stack.auth.admin }, { A: { db: a, rules: RULES }, B: { db: b, rules: RULES } }, correlated);
const request = (from: number, until: number): LookupRequest => ({ key: KEY, src_ip: IP, src_port: PORT, from, until });

before(async () => {
  stack = await startStack();
  // Three days ago, 300 requests of another connection that had the same source port; 20 minutes ago, this one.
  const old = Array.from({ length: 300 }, (_, i) => doc(NOW - 72 * HOUR + i * 1000, { path: `/old/${i}` }));
  const recent = Array.from({ length: 5 }, (_, i) => doc(NOW - 20 * 60_000 + i * 1000, { path: `/new/${i}` }));
  await postBulk(stack, 'http', [...old, ...recent]);
  await postBulk(stack, 'network', [doc(NOW - 20 * 60_000 - 50, { ja4: 't13d1516h2_8daaf6152771_b0da82dd1658' })]);
  http = new CountingHttp(stack.couchUrl, { timeoutMs: 30_000, retryAfterS: 1 });
  lookup = lookupIn('log_http', 'log_network', null);
  // A cluster's view answers from one copy of each shard range: wait until every document is seen.
  await until('every document in the view', async () => ((await lookup.run([request(-Infinity, Infinity)]))[0]!.events.length === 306 ? true : null), 60_000);
});

after(async () => {
  await http?.close();
  await stack?.stop();
});

describe('connection lookups read the hours of their range', () => {
  test('the last hour: the 6 documents of this connection read, not the 300 of the port three days ago', async () => {
    read.length = 0;
    const [answer] = await lookup.run([request(NOW - HOUR, NOW + 5 * 60_000)]);
    assert.deepEqual(answer!.events.map((e) => `${e.side}:${e.doc.path ?? 'tls'}`).sort(), [
      'A:/new/0',
      'A:/new/1',
      'A:/new/2',
      'A:/new/3',
      'A:/new/4',
      'B:tls',
    ]);
    assert.ok(answer!.events.every((e) => e.key === KEY && e.time >= NOW - HOUR));
    // One POST of keys per database (log_http, log_network), 2 or 3 hours each.
    assert.deepEqual(
      read.map((r) => r.view),
      ['by_conn_hour', 'by_conn_hour'],
    );
    assert.equal(
      read.reduce((n, r) => n + r.rows, 0),
      6,
      `rows read: ${JSON.stringify(read)}`,
    );
  });

  test('the lateness horizon (25 hours), or without a bound: by the connection key, everything from `from` on', async () => {
    read.length = 0;
    const [day, all, month] = await lookup.run([
      request(NOW - 25 * HOUR, NOW + 5 * 60_000),
      request(-Infinity, NOW + 5 * 60_000),
      request(NOW - 30 * 24 * HOUR, Infinity),
    ]);
    assert.equal(day!.events.length, 6);
    assert.equal(all!.events.length, 306);
    assert.equal(month!.events.length, 306);
    // One key for the three requests of the connection, in each database.
    assert.deepEqual(
      read.map((r) => [r.view, r.rows]),
      [
        ['by_conn', 305],
        ['by_conn', 1],
      ],
    );
    assert.equal(new Set(all!.events.map((e) => `${e.side}:${e.id}`)).size, 306, 'no document twice');
  });

  test('databases without the view (set up by an older couchlog): the lookup fails, saying to run couchlog setup, instead of reading nothing', async () => {
    const created = await http.request('PUT', '/log_not_set_up', { headers: { authorization: stack.auth.admin } });
    assert.ok(created.status === 201 || created.status === 202, String(created.status));
    const bare = lookupIn('log_not_set_up', 'log_not_set_up', null);
    await assert.rejects(bare.run([request(NOW - HOUR, NOW)]), /no view _design\/correlator_hour\/_view\/by_conn_hour \(run couchlog setup after upgrading\)/);
    await assert.rejects(bare.run([request(NOW - 25 * HOUR, NOW)]), /no view _design\/correlator\/_view\/by_conn \(run couchlog setup after upgrading\)/);
  });

  test('a database that does not exist: said so', async () => {
    const none = lookupIn('log_nowhere', 'log_nowhere', null);
    await assert.rejects(none.run([request(NOW - HOUR, NOW)]), /looking up connections: no database log_nowhere$/);
  });

  test('two requests of one connection, one narrow and one from three days ago: each gets its own range, no document twice', async () => {
    const [narrow, wide] = await lookup.run([request(NOW - HOUR, NOW + 5 * 60_000), request(NOW - 72 * HOUR + 150_000, NOW + 5 * 60_000)]);
    assert.equal(narrow!.events.length, 6);
    // From the 150th old request on: 150 old ones, the 5 recent, the B.
    assert.equal(wide!.events.length, 156);
    assert.equal(new Set(wide!.events.map((e) => `${e.side}:${e.id}`)).size, 156);
  });

  test("what log_correlated holds for the records found: content, revision, place and version (decided_at, which tells a killed run's writes)", async () => {
    const db = 'log_lookup_correlated';
    const admin = { authorization: stack.auth.admin, 'content-type': 'application/json' };
    const created = await http.request('PUT', `/${db}`, { headers: admin });
    assert.ok(created.status === 201 || created.status === 202, String(created.status));
    const [found] = await lookup.run([request(NOW - HOUR, NOW + 5 * 60_000)]);
    const a = found!.events.find((e) => e.side === 'A')!;
    const decidedAt = NOW - 60_000;
    const record = {
      a_id: a.id,
      keepalives: 1,
      correlated: false,
      timestamp: new Date(a.time).toISOString(),
      revision: 2,
      decided_at: new Date(decidedAt).toISOString(),
    };
    const put = await http.request('PUT', `/${db}/A-${encodeURIComponent(a.id)}`, { headers: admin, body: JSON.stringify(record) });
    assert.ok(put.status === 201 || put.status === 202, String(put.status));
    const withPriors = lookupIn('log_http', 'log_network', db);
    const [answer] = await withPriors.run([request(NOW - HOUR, NOW + 5 * 60_000)]);
    assert.equal(answer!.priors?.size, 1, 'only the record that exists');
    assert.deepEqual(answer!.priors!.get(`A-${a.id}`), { fingerprint: fingerprint(record), revision: 2, deleted: false, time: a.time, decidedAt });
  });
});
