// Documents an admin deletes or edits (an erasure request, a fix), with a
// running correlator, through the ingress, real servers. The records follow
// what is stored, in CouchDB, ClickHouse (FINAL) and the file sink:
//  - a deleted B: its A becomes an orphan (revision 2); a deleted A: its record is deleted;
//  - an edited A: its record carries the new content and `a_rev`; moved to
//    another connection, it is correlated there and the B's orphan record goes;
//  - an edit of an A's time: ClickHouse, keyed by (time, id), keeps one live row, at the new time;
//  - a deletion after the connection left memory (a cache of 8 events): found
//    again through the lookup view and what log_correlated holds;
//  - a deletion the correlator reads only after the database was compacted:
//    the earlier content is gone, so nothing is taken back; it is counted and the record stays.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { http, JSON_TYPE, type Stack, storedStatus } from '../helpers/stack.js';
import type { TestClickhouse } from '../helpers/clickhouse.js';
import { fileLatest, isQuiet, metricSum, startCorrelatorWithFileSink, until, type Doc } from '../helpers/correlator-outputs.js';
import { startCorrelator, type RunningCorrelator } from '../../correlator/service.js';
import { createLogger } from '../../lib/logger.js';

let ch: TestClickhouse;
let stack: Stack;
let correlator: RunningCorrelator;
let metricsUrl: string;
const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

before(async () => {
  ({ ch, stack, metricsUrl } = await startCorrelatorWithFileSink());
  correlator = await startCorrelator(stack.config, log, { clickhouse: true });
});
after(async () => {
  await correlator?.stop();
  await stack?.stop();
  await ch?.stop();
});

const WAIT = 60_000;
const admin = () => ({ authorization: stack.auth.admin });

async function post(app: string, docs: Doc[]): Promise<string[]> {
  const res = await http(`${stack.url}/log_${app}/_bulk_docs`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ docs }) });
  assert.equal(storedStatus(res.status), 201, res.text);
  return res.json.map((r: { id: string }) => r.id);
}

/** What an admin does by hand: read the document, then delete it or write it back changed. */
async function adminChange(db: string, id: string, change: ((doc: Doc) => Doc) | 'delete'): Promise<string> {
  const url = `${stack.couchUrl}/${db}/${encodeURIComponent(id)}`;
  const cur = await http(url, { headers: admin() });
  assert.equal(cur.status, 200, cur.text);
  const res =
    change === 'delete'
      ? await http(`${url}?rev=${cur.json._rev}`, { method: 'DELETE', headers: admin() })
      : await http(url, { method: 'PUT', headers: { ...admin(), ...JSON_TYPE }, body: JSON.stringify(change(cur.json as Doc)) });
  assert.ok(res.status === 200 || res.status === 201 || res.status === 202, `${change === 'delete' ? 'DELETE' : 'PUT'} ${id}: ${res.status} ${res.text}`);
  return res.json.rev as string;
}

/** A record in log_correlated, null when absent or deleted (read by id: a quorum read on a cluster). */
async function record(id: string): Promise<Doc | null> {
  const res = await http(`${stack.couchUrl}/log_correlated/${encodeURIComponent(id)}`, { headers: admin() });
  return res.status === 200 ? (res.json as Doc) : null;
}

/** ClickHouse's latest row per id (deleted ones included, with deleted = 1). */
async function clickhouseLatest(ids: string[]): Promise<Map<string, Doc>> {
  const text = await ch.query(
    `SELECT id, correlated, revision, deleted, a_rev, note, b_id FROM (SELECT id, correlated, revision, deleted, ` +
      `visitParamExtractString(extra, 'a_rev') AS a_rev, visitParamExtractString(extra, 'note') AS note, b_id FROM couchlog.http_logs FINAL ` +
      `WHERE id IN (${ids.map((id) => `'${id}'`).join(',')})) FORMAT JSONEachRow`,
  );
  const out = new Map<string, Doc>();
  for (const line of text.split('\n')) if (line) out.set((JSON.parse(line) as Doc).id as string, JSON.parse(line) as Doc);
  return out;
}

const metric = (name: string) => metricSum(metricsUrl, name);

/** A record without its bookkeeping: what a correction must change. */
const content = ({ _rev, revision, decided_at, ...rest }: Doc) => (void [_rev, revision, decided_at], rest);

const conn = (port: number, t: number, extra: Doc = {}) => ({ src_ip: '198.51.100.91', src_port: port, dst_ip: '192.168.1.10', ...extra, timestamp: t });
const aDoc = (port: number, t: number) => conn(port, t, { dst_port: 8080, method: 'GET', host: 'admin.example', path: `/p${port}` });
const bDoc = (port: number, t: number) => conn(port, t, { dst_port: 443, ja4: 't13d1516h2_8daaf6152771_b0da82dd1658', conn_id: `c${port}` });

describe('records follow documents an admin deletes or edits', () => {
  test('a deleted B turns its A into an orphan, a deleted A takes its record away, in every sink', async () => {
    const t0 = Date.now() - 60_000;
    const [bId] = await post('network', [bDoc(43_001, t0)]);
    const [aId] = await post('http', [aDoc(43_001, t0 + 30)]);
    const A = `A-${aId}`;
    // Revision 1, or 2 when the correlator read the A before the B (a provisional orphan corrected).
    const correlated = await until(
      'the A correlated',
      async () => {
        const r = await record(A);
        return r?.correlated === true ? r : null;
      },
      WAIT,
    );

    await adminChange('log_network', bId!, 'delete');
    const orphan = await until(
      'the A an orphan',
      async () => {
        const r = await record(A);
        return r?.correlated === false ? r : null;
      },
      WAIT,
    );
    assert.equal(orphan.revision, (correlated.revision as number) + 1);
    assert.equal(orphan.b_id, null);
    assert.equal(orphan.ja4, undefined, 'nothing of the deleted B is left in the record');
    await until('ClickHouse to agree', async () => ((await clickhouseLatest([A])).get(A)?.correlated === 0 ? true : null), WAIT);
    assert.deepEqual([fileLatest(stack).get(A)?.correlated, fileLatest(stack).get(A)?.revision], [false, orphan.revision]);

    await adminChange('log_http', aId!, 'delete');
    await until('the record deleted in CouchDB', async () => ((await record(A)) === null ? true : null), WAIT);
    await until('the record deleted in ClickHouse', async () => ((await clickhouseLatest([A])).get(A)?.deleted === 1 ? true : null), WAIT);
    await until('the file sink to say deleted', async () => (fileLatest(stack).get(A)?.deleted === true ? true : null), WAIT);
    assert.ok((await metric('couchlog_correlator_withdrawn_total')) >= 2);
  });

  test('an edited A: the record holds the new content and says which revision; moved to another connection, it is correlated there', async () => {
    const t0 = Date.now() - 50_000;
    const [aId] = await post('http', [aDoc(43_101, t0)]);
    const [bId] = await post('network', [bDoc(43_102, t0 - 20)]);
    const A = `A-${aId}`;
    const B = `B-${bId}`;
    await until('A and B orphans', async () => ((await record(A))?.correlated === false && (await record(B))?.orphan_side === 'B' ? true : null), WAIT);

    const rev2 = await adminChange('log_http', aId!, (d) => ({ ...d, note: 'redacted' }));
    const edited = await until(
      'the new content',
      async () => {
        const r = await record(A);
        return r?.note === 'redacted' ? r : null;
      },
      WAIT,
    );
    assert.equal(edited.a_rev, rev2);
    assert.equal(edited.correlated, false);
    assert.equal(edited.revision, 2);
    await until('ClickHouse to agree', async () => ((await clickhouseLatest([A])).get(A)?.note === 'redacted' ? true : null), WAIT);

    // Moved to the B's connection (a fix of a wrong source port): correlated there, the B's orphan record goes.
    const rev3 = await adminChange('log_http', aId!, (d) => ({ ...d, src_port: 43_102 }));
    const moved = await until(
      'correlated in its new connection',
      async () => {
        const r = await record(A);
        return r?.correlated === true && (await record(B)) === null ? r : null;
      },
      WAIT,
    );
    assert.equal(moved.b_id, bId);
    assert.equal(moved.src_port, 43_102);
    assert.equal(moved.a_rev, rev3);
    assert.equal(moved.note, 'redacted');
    await until(
      'ClickHouse to agree',
      async () => {
        const rows = await clickhouseLatest([A, B]);
        return rows.get(A)?.correlated === 1 && rows.get(A)?.a_rev === rev3 && rows.get(B)?.deleted === 1 ? true : null;
      },
      WAIT,
    );
    const file = fileLatest(stack);
    assert.deepEqual([file.get(A)?.correlated, file.get(A)?.a_rev, file.get(B)?.deleted], [true, rev3, true]);
  });

  test("an edit of an A's time (a fix of its clock): ClickHouse FINAL holds one live row for the record, at the new time", async () => {
    const t0 = Date.now() - 45_000;
    const [aId] = await post('http', [aDoc(43_151, t0)]);
    const A = `A-${aId}`;
    await until('the orphan record', async () => ((await record(A))?.correlated === false ? true : null), WAIT);
    await until('its row in ClickHouse', async () => ((await clickhouseLatest([A])).has(A) ? true : null), WAIT);
    const fixed = t0 - 2 * 3600_000;
    const rev2 = await adminChange('log_http', aId!, (d) => ({ ...d, timestamp: fixed }));
    await until('the record moved', async () => ((await record(A))?.a_rev === rev2 ? true : null), WAIT);
    const liveRows = async (id: string) =>
      (await ch.query(`SELECT toUnixTimestamp(time) FROM couchlog.http_logs FINAL WHERE id = '${id}' AND deleted = 0 FORMAT TSV`))
        .trim()
        .split('\n')
        .filter(Boolean);
    const want = String(Math.floor(fixed / 1000));
    // Before this was fixed, the row at the old time stayed: two live rows, for ever.
    await until('one live row, at the new time', async () => ((await liveRows(A)).join() === want ? true : null), WAIT);
    await adminChange('log_http', aId!, 'delete');
    await until('the record deleted in CouchDB', async () => ((await record(A)) === null ? true : null), WAIT);
    await until('no live row left in ClickHouse', async () => ((await liveRows(A)).length === 0 ? true : null), WAIT);

    // Edited and deleted before the correlator reads either change: the deletion is placed at the
    // edited time, where ClickHouse never held the record, and must still take the first row away.
    const [otherId] = await post('http', [aDoc(43_152, t0)]);
    const O = `A-${otherId}`;
    await until('its row in ClickHouse', async () => ((await liveRows(O)).length === 1 ? true : null), WAIT);
    await correlator.pipeline.pauseReading();
    try {
      await adminChange('log_http', otherId!, (d) => ({ ...d, timestamp: fixed }));
      await adminChange('log_http', otherId!, 'delete');
    } finally {
      correlator.pipeline.paused = false;
    }
    await until('the record deleted in CouchDB', async () => ((await record(O)) === null ? true : null), WAIT);
    await until('no live row left in ClickHouse', async () => ((await liveRows(O)).length === 0 ? true : null), WAIT);
  });

  test('a deletion after the connection left memory is found again through the lookup view', async () => {
    const t0 = Date.now() - 40_000;
    const [bId] = await post('network', [bDoc(43_201, t0)]);
    const aIds = await post('http', [aDoc(43_201, t0 + 10), aDoc(43_201, t0 + 20)]);
    const correlated = await until(
      'both As correlated',
      async () => {
        const rs = await Promise.all(aIds.map((id) => record(`A-${id}`)));
        return rs.every((r) => r?.correlated === true) ? rs : null;
      },
      WAIT,
    );
    // Other traffic pushes the connection out of a cache of 8 events per side.
    await post(
      'network',
      Array.from({ length: 20 }, (_, i) => bDoc(44_000 + i, t0 + 1000 + i)),
    );
    await post(
      'http',
      Array.from({ length: 20 }, (_, i) => aDoc(44_000 + i, t0 + 1010 + i)),
    );
    await until('the other traffic decided', async () => (isQuiet(correlator) ? true : null), WAIT);
    // On a cluster the second A may be read before the first (another shard): a
    // record first seen correlated can still be corrected (its keepalives) before
    // the correlator is quiet. The base is what it holds now; a revision it took
    // since must have changed its content, never rewritten it unchanged.
    const settled = await Promise.all(aIds.map((id) => record(`A-${id}`)));
    settled.forEach((r, i) => {
      assert.equal(r?.correlated, true);
      assert.equal(r!.keepalives, i + 1);
      if (r!.revision !== correlated[i]!.revision) assert.notDeepEqual(content(r!), content(correlated[i]!), 'a rewrite without a change');
    });
    const lookupsBefore = await metric('couchlog_correlator_lookups_total');

    await adminChange('log_network', bId!, 'delete');
    const rs = await until(
      'both As orphans',
      async () => {
        const r = await Promise.all(aIds.map((id) => record(`A-${id}`)));
        return r.every((x) => x?.correlated === false) ? r : null;
      },
      WAIT,
    );
    rs.forEach((r, i) => assert.deepEqual([r!.revision, r!.keepalives], [(settled[i]!.revision as number) + 1, 0]));
    assert.ok((await metric('couchlog_correlator_lookups_total')) > lookupsBefore, 'the connection was looked up');
  });

  test('a deletion read only after the database was compacted: counted as unreadable, the record stays', async () => {
    const t0 = Date.now() - 30_000;
    const [aId] = await post('http', [aDoc(43_301, t0)]);
    const A = `A-${aId}`;
    await until('the orphan record', async () => ((await record(A))?.correlated === false ? true : null), WAIT);
    const before = await metric('couchlog_correlator_withdrawals_unreadable_total');
    const rev1 = (await http(`${stack.couchUrl}/log_http/${aId}`, { headers: admin() })).json._rev as string;
    await correlator.pipeline.pauseReading();
    try {
      await adminChange('log_http', aId!, 'delete');
      const res = await http(`${stack.couchUrl}/log_http/_compact`, { method: 'POST', headers: { ...admin(), ...JSON_TYPE } });
      assert.equal(res.status, 202, res.text);
      // On a cluster every copy of the shard is compacted on its own: the old revision must be gone
      // from all n of them (r=n), read as the correlator reads it (open_revs), or a copy not yet
      // compacted still serves it.
      const n = ((await http(`${stack.couchUrl}/log_http`, { headers: admin() })).json.cluster as { n?: number } | undefined)?.n;
      const oldRev = `${stack.couchUrl}/log_http/${aId}?open_revs=${encodeURIComponent(JSON.stringify([rev1]))}${n ? `&r=${n}` : ''}`;
      await until(
        'the compaction to end',
        async () => {
          const info = await http(`${stack.couchUrl}/log_http`, { headers: admin() });
          const tasks = await http(`${stack.couchUrl}/_active_tasks`, { headers: admin() });
          const compacting = (tasks.json as unknown as Array<{ type?: string; database?: string }>).some(
            (t) => t.type === 'database_compaction' && String(t.database).includes('log_http'),
          );
          const old = await http(oldRev, { headers: { ...admin(), accept: 'application/json' } });
          const gone = Array.isArray(old.json) && (old.json as Array<{ missing?: string }>).every((r) => r.missing !== undefined);
          return info.json.compact_running !== true && !compacting && gone ? true : null;
        },
        WAIT,
      );
    } finally {
      correlator.pipeline.paused = false;
    }
    await until(
      'the unreadable deletion counted',
      async () => ((await metric('couchlog_correlator_withdrawals_unreadable_total')) > before ? true : null),
      WAIT,
    );
    assert.equal((await record(A))?.correlated, false, 'the record stays as it was');
  });
});
