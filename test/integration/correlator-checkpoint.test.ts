// Where the correlator keeps its checkpoint, and who may touch it. Until
// 2026-12-04 it was a _local document of log_correlated, whose members (the
// reader, the writer) could rewrite it straight against CouchDB: a cursor
// moved forward made the next start skip every document before it, and no
// audit would show records that were never made. Now it lives in
// couchlog_state_<app>, where only the correlator's role is a member:
//  - readers and the writer can neither read nor write it there, and a
//    checkpoint they forge in log_correlated is not read;
//  - nothing in the old place is ever read, not even the checkpoint an
//    older couchlog left there: after the upgrade the correlator reads its
//    feeds from the start once, which changes no record;
//  - without the state database the correlator refuses to start and says
//    to run setup, instead of reading everything again at every start.
// Runs on the embedded server and on Apache CouchDB 3.5 (one node, cluster).
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { couchFlavor, freePort, http, JSON_TYPE, onEveryCopy, settled, startStack, type Stack } from '../helpers/stack.js';
import type { Config } from '../../lib/config/load.js';
import { couchDocs, postBulk, until, type Doc } from '../helpers/correlator-outputs.js';
import { startCorrelator, type RunningCorrelator } from '../../correlator/service.js';
import { CorrelationEngine } from '../../correlator/engine/engine.js';
import { engineConfig } from '../../correlator/engine-config.js';
import { createLogger } from '../../lib/logger.js';
import { basicAuth } from '../../lib/couch/basic-auth.js';
import { runSetup } from '../../cli/run-setup.js';
import { STATE_DB_SECURITY } from '../../setup/ensure-correlator-dbs.js';

const STATE = 'couchlog_state_correlated';
const SET = `set ${STATE}/_security (members: roles log_correlator; admins: none) and began a new epoch: checkpoints written before are not read`;
const CHECKPOINT = `${STATE}/_local/correlator`;
const OLD_PLACE = 'log_correlated/_local/correlator';
const CONNECTIONS = 40;
const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

let stack: Stack;
let correlator: RunningCorrelator | null = null;
let admin: Record<string, string>;
let aIds: string[] = [];

before(async () => {
  stack = await startStack({
    yaml: {
      correlator: {
        orphan_policy: { apache_emit_delay_ms: 200, network_emit: true },
        inputs: { poll_interval_ms: 50 },
        outputs: { clickhouse: { enabled: false }, couchdb: { flush_interval_ms: 50 } },
        checkpoint_interval_ms: 100,
        metrics: { enabled: false },
      },
    },
  });
  admin = { authorization: stack.auth.admin };
  // A backlog two minutes old: every A has its B.
  const t0 = Date.now() - 120_000;
  const conn = (c: number) => ({ src_ip: `198.51.100.${c + 1}`, src_port: 40_000 + c, dst_ip: '192.0.2.1' });
  const bs: Doc[] = [];
  const as: Doc[] = [];
  for (let c = 0; c < CONNECTIONS; c++) {
    bs.push({ ...conn(c), dst_port: 443, ja4: `t13d1516h2_${c}`, timestamp: t0 + c * 1000 });
    as.push({ ...conn(c), dst_port: 80, path: `/p${c}`, timestamp: t0 + c * 1000 + 5 });
  }
  const bIds = await postBulk(stack, 'network', bs);
  aIds = await postBulk(stack, 'http', as);
  await onEveryCopy(stack, 'log_network', bIds);
  await onEveryCopy(stack, 'log_http', aIds);
});
after(async () => {
  await correlator?.stop();
  await stack?.stop();
});

const authOf = (who: 'reader' | 'writer' | 'correlator') =>
  who === 'correlator' ? basicAuth(stack.config.users.correlator.user, stack.config.users.correlator.password ?? '') : stack.auth[who];

async function correlatedAs(): Promise<Map<string, Doc>> {
  const docs = await couchDocs(stack, 'log_correlated');
  return new Map([...docs].filter(([id, doc]) => id.startsWith('A-') && doc.correlated === true));
}

async function updateSeq(db: string): Promise<string> {
  const res = await http(`${stack.couchUrl}/${db}`, { headers: admin });
  assert.equal(res.status, 200);
  return String(res.json.update_seq);
}

/** A _local document as admin once five reads in a row gave the same revision (a cluster's copies have all seen the last write). */
async function present(path: string): Promise<Record<string, unknown>> {
  let last = '';
  let same = 0;
  return until(
    `${path} read the same five times in a row`,
    async () => {
      const res = await http(`${stack.couchUrl}/${path}`, { headers: admin });
      const key = res.status === 200 ? String(res.json._rev) : `status ${res.status}`;
      same = key === last ? same + 1 : 0;
      last = key;
      return res.status === 200 && same >= 4 ? (res.json as Record<string, unknown>) : null;
    },
    20_000,
  );
}

/** PUT a _local document as admin, over whatever revision is there (a cluster's lagging copy: tried again). */
async function putAsAdmin(path: string, body: Record<string, unknown>): Promise<void> {
  const headers = { ...admin, ...JSON_TYPE };
  await until(
    `PUT ${path}`,
    async () => {
      const current = await http(`${stack.couchUrl}/${path}`, { headers });
      const rev = current.status === 200 ? { _rev: current.json._rev } : {};
      const res = await http(`${stack.couchUrl}/${path}`, { method: 'PUT', headers, body: JSON.stringify({ ...body, ...rev }) });
      if (res.status === 409) return null;
      assert.ok([201, 202].includes(res.status), `PUT ${path}: ${res.status} ${res.text}`);
      return true;
    },
    10_000,
  );
}

/** Each record's revision: a rewrite with the same content would show. */
async function revisions(): Promise<Map<string, string>> {
  const res = await http(`${stack.couchUrl}/log_correlated/_all_docs`, { headers: admin });
  return new Map((res.json.rows as Array<{ id: string; value: { rev: string } }>).map((r) => [r.id, r.value.rev]));
}

/** Starts the correlator, which must read both feeds from the start, save a checkpoint and change no record. */
async function replaysWithoutChange(): Promise<void> {
  // Listings answer from one copy of each shard range: on a cluster, taken once two reads agree, and compared
  // after the replay until they agree (at most 30 s), then asserted.
  const listing = async () => ({ docs: await couchDocs(stack, 'log_correlated'), revs: await revisions() });
  const flat = (l: Awaited<ReturnType<typeof listing>>) => JSON.stringify([[...l.docs].sort(), [...l.revs].sort()]);
  let previous = '';
  const before = await settled(listing, (l) => {
    const same = flat(l) === previous;
    previous = flat(l);
    return same;
  });
  correlator = await startCorrelator(stack.config, logger, { clickhouse: false });
  const read = () => correlator!.engine.counters.eventsIn;
  await until('both feeds read from the start', async () => (read().A >= CONNECTIONS && read().B === CONNECTIONS ? true : null), 30_000);
  await until('a checkpoint of this run saved', async () => (correlator!.pipeline.checkpointSavedAt !== null ? true : null), 30_000);
  await correlator.stop();
  correlator = null;
  const after = await settled(listing, (l) => flat(l) === flat(before));
  assert.deepEqual(after.docs, before.docs, 'the replay changed no record');
  assert.deepEqual(after.revs, before.revs, 'nor rewrote one');
}

describe('the correlator checkpoint', () => {
  // A test that fails while its correlator runs must not leave it running into the next one.
  afterEach(async () => {
    await correlator?.stop();
    correlator = null;
  });

  test('lives in a database only the correlator role uses; one that readers forge in log_correlated is not read', async () => {
    const security = await http(`${stack.couchUrl}/${STATE}/_security`, { headers: admin });
    assert.deepEqual(security.json, STATE_DB_SECURITY);
    for (const who of ['reader', 'writer'] as const) {
      const headers = { authorization: authOf(who), ...JSON_TYPE };
      const put = await http(`${stack.couchUrl}/${CHECKPOINT}`, { method: 'PUT', headers, body: '{"feeds":{}}' });
      assert.ok([401, 403].includes(put.status), `${who} PUT ${CHECKPOINT}: ${put.status} ${put.text}`);
      const get = await http(`${stack.couchUrl}/${CHECKPOINT}`, { headers });
      assert.ok([401, 403].includes(get.status), `${who} GET ${CHECKPOINT}: ${get.status}`);
      const sec = await http(`${stack.couchUrl}/${STATE}/_security`, { method: 'PUT', headers, body: JSON.stringify({ members: { roles: ['log_reader'] } }) });
      assert.ok([401, 403].includes(sec.status), `${who} PUT ${STATE}/_security: ${sec.status}`);
    }
    assert.equal((await http(`${stack.couchUrl}/${CHECKPOINT}`, { headers: admin })).status, 404, 'nothing was written');
    assert.equal((await http(`${stack.couchUrl}/${STATE}`, { headers: { authorization: authOf('correlator') } })).status, 200);

    // What a reader could do to the correlator before: a cursor at the end of both feeds, in the old place.
    // (Members may still write _local documents there: CouchDB has no finer permission. Nobody reads it now.)
    const forged = {
      feeds: {
        A: { db: 'log_http', since: await updateSeq('log_http'), next_index: 1_000_000 },
        B: { db: 'log_network', since: await updateSeq('log_network'), next_index: 1_000_000 },
      },
      saved_at: new Date().toISOString(),
      // What an engine that has seen nothing exports: the old correlator took it as it was.
      state: new CorrelationEngine(engineConfig(stack.config.correlator)).exportState(),
    };
    const put = await http(`${stack.couchUrl}/${OLD_PLACE}`, {
      method: 'PUT',
      headers: { authorization: authOf('reader'), ...JSON_TYPE },
      body: JSON.stringify(forged),
    });
    assert.ok([201, 202].includes(put.status), `premise: a member writes _local documents of log_correlated (${put.status} ${put.text})`);

    correlator = await startCorrelator(stack.config, logger, { clickhouse: false });
    const done = await until('every A correlated', async () => ((await correlatedAs()).size === CONNECTIONS ? true : null), 60_000, 200);
    assert.ok(done);
    assert.deepEqual(correlator.engine.counters.eventsIn, { A: CONNECTIONS, B: CONNECTIONS }, 'read from the start, not from the forged cursor');
    await until('a checkpoint saved', async () => ((await http(`${stack.couchUrl}/${CHECKPOINT}`, { headers: admin })).status === 200 ? true : null), 30_000);
  });

  test('without the state database the correlator does not start; after setup it leaves the old checkpoint unread, reads the feeds from the start and changes no record', async () => {
    // The first test's correlator saved its checkpoint when it stopped (afterEach).
    const saved = await present(CHECKPOINT);
    // As an older couchlog left it: no state database, its checkpoint (here: at the end of both feeds) in log_correlated.
    await putAsAdmin(OLD_PLACE, { feeds: saved.feeds, saved_at: saved.saved_at, state_gzip: saved.state_gzip });
    assert.ok([200, 202].includes((await http(`${stack.couchUrl}/${STATE}`, { method: 'DELETE', headers: admin })).status));
    await assert.rejects(startCorrelator(stack.config, logger, { clickhouse: false }), {
      name: 'OperationError',
      message: new RegExp(`state database ${STATE} does not exist: run couchlog setup`),
    });

    const report = await runSetup(stack.config);
    assert.deepEqual(report.changes, [`created database ${STATE}`, SET]);
    assert.deepEqual((await runSetup(stack.config)).changes, [], 'a second setup changes nothing');
    await present(OLD_PLACE); // left where it is, unread
    await replaysWithoutChange();
  });

  test('a checkpoint written by someone let in through a changed _security is of an old epoch once setup has run: not read', async () => {
    // An admin's slip: the readers made members of the state database.
    const security = `${stack.couchUrl}/${STATE}/_security`;
    const opened = { ...STATE_DB_SECURITY, members: { names: [], roles: ['log_correlator', 'log_reader'] } };
    assert.equal((await http(security, { method: 'PUT', headers: { ...admin, ...JSON_TYPE }, body: JSON.stringify(opened) })).status, 200);
    // A reader reads the epoch and writes a checkpoint of it at the end of both feeds.
    const reader = { authorization: authOf('reader'), ...JSON_TYPE };
    const epoch = await until(
      'the reader let in',
      async () => {
        const res = await http(`${stack.couchUrl}/${STATE}/_local/epoch`, { headers: reader });
        return res.status === 200 ? (res.json.epoch as string) : null;
      },
      10_000,
    );
    const own = await present(CHECKPOINT);
    const forged = {
      ...own,
      epoch,
      feeds: {
        A: { db: 'log_http', since: await updateSeq('log_http'), next_index: 1_000_000 },
        B: { db: 'log_network', since: await updateSeq('log_network'), next_index: 1_000_000 },
      },
    };
    const put = await http(`${stack.couchUrl}/${CHECKPOINT}`, { method: 'PUT', headers: reader, body: JSON.stringify(forged) });
    assert.ok([201, 202].includes(put.status), `premise: the reader could write it (${put.status} ${put.text})`);

    assert.deepEqual((await runSetup(stack.config)).changes, [SET]);
    assert.deepEqual((await http(security, { headers: admin })).json, STATE_DB_SECURITY);
    assert.notEqual((await present(`${STATE}/_local/epoch`)).epoch, epoch, 'a new epoch');
    await replaysWithoutChange();
  });

  test('an event held at the checkpoint that the rules now skip is counted as skipped, not dropped unseen', async () => {
    // Found by a code review: such events (and ones whose document is gone) were left out with a warning only.
    const metricsPort = await freePort();
    const withMetrics = (exclude: string[]): Config => ({
      ...stack.config,
      correlator: {
        ...stack.config.correlator,
        exclude_source_ips: exclude,
        metrics: { ...stack.config.correlator.metrics, enabled: true, port: metricsPort },
      },
    });
    // A B alone, now: its connection stays open (waiting for its A), so the checkpoint holds it.
    await postBulk(stack, 'network', [{ src_ip: '203.0.113.77', src_port: 51_000, dst_ip: '192.0.2.1', dst_port: 443, ja4: 'held', timestamp: Date.now() }]);
    correlator = await startCorrelator(withMetrics([]), logger, { clickhouse: false });
    await until('the lone B read', async () => (correlator!.engine.counters.eventsIn.B >= 1 ? true : null), 30_000);
    const read = Date.now();
    await until('a checkpoint saved since', async () => ((correlator!.pipeline.checkpointSavedAt ?? 0) >= read ? true : null), 30_000);
    await correlator.stop();
    correlator = null;
    correlator = await startCorrelator(withMetrics(['203.0.113.0/24']), logger, { clickhouse: false });
    const text = (await http(`http://127.0.0.1:${metricsPort}/metrics`)).text;
    await correlator.stop();
    correlator = null;
    assert.match(text, /^couchlog_correlator_skipped_total\{side="B",reason="excluded_ip"\} 1$/m);
  });

  test('a checkpoint without a witness (as correlators before 2026-12-06 saved) ahead of its database (log_http deleted and made again): that feed is read from the start, logged and counted', async () => {
    const { config, metricsUrl } = withMetrics(await freePort());
    await readToEndAndStop(config);
    const saved = await present(CHECKPOINT);
    const feeds = saved.feeds as Record<'A' | 'B', Record<string, unknown>>;
    assert.ok(feeds.A.witness, `premise: the checkpoint names the last change read (${JSON.stringify(feeds)})`);
    delete feeds.A.witness;
    const { _id, _rev, ...rest } = saved;
    await putAsAdmin(CHECKPOINT, rest);
    const gone = await http(`${stack.couchUrl}/log_http`, { method: 'DELETE', headers: admin });
    assert.equal(gone.status, 200, gone.text);
    await runSetup(stack.config);
    // A connection of its own, now: its A is the only document of the new log_http.
    const now = Date.now();
    const conn = { src_ip: '203.0.113.99', src_port: 52_000, dst_ip: '192.0.2.1' };
    await postBulk(stack, 'network', [{ ...conn, dst_port: 443, ja4: 'after-recreate', timestamp: now }]);
    const [aId] = await postBulk(stack, 'http', [{ ...conn, dst_port: 80, path: '/after-recreate', timestamp: now + 5 }]);
    correlator = await startCorrelator(config, logger, { clickhouse: false });
    const { record, rewinds, text } = await correlatedThenStop(aId!, metricsUrl);
    assert.equal(record.ja4, 'after-recreate');
    // PouchDB Server's sequences are plain numbers: the checkpoint's is past the new database's, and nothing would
    // ever be read from there. CouchDB 3's carry each shard's identity; CouchDB reads a new database from its start.
    assert.equal(rewinds, couchFlavor === 'embedded' ? 1 : 0, text);
  });

  test('a database made again that has grown past the feed position before the correlator starts: read from the start, not from there', async () => {
    // Found by a review: only a position ahead of update_seq was caught, so on the embedded server every document
    // of the new database up to the old position was skipped, silently.
    const { config, metricsUrl } = withMetrics(await freePort());
    await readToEndAndStop(config);
    const aId = await makeAgainPast('made-again-stopped', 52_001);
    correlator = await startCorrelator(config, logger, { clickhouse: false });
    const { record, rewinds, text } = await correlatedThenStop(aId, metricsUrl);
    assert.equal(record.ja4, 'made-again-stopped');
    assert.equal(rewinds, 1, text);
  });

  test('a database deleted while the correlator reads it, made again and grown past the position before the next read: read from the start', async () => {
    const { config, metricsUrl } = withMetrics(await freePort());
    correlator = await startCorrelator(config, logger, { clickhouse: false });
    await until('log_http read to its end', async () => (correlator!.pipeline.status().A.caughtUp ? true : null), 30_000);
    // Paused but while the deleted database fails a read: the first page read after that is of a database already
    // past the old position (no empty page, where the sequences alone would show it).
    await correlator.pipeline.pauseReading();
    const aId = await makeAgainPast('made-again-running', 52_002, async () => {
      correlator!.pipeline.paused = false;
      await until('the feed failing on the deleted database', async () => (correlator!.pipeline.status().A.failingSince !== null ? true : null), 30_000);
      await correlator!.pipeline.pauseReading();
    });
    correlator.pipeline.paused = false;
    const { record, rewinds, text } = await correlatedThenStop(aId, metricsUrl);
    assert.equal(record.ja4, 'made-again-running');
    assert.equal(rewinds, 1, text);
  });
});

function withMetrics(port: number): { config: Config; metricsUrl: string } {
  const config: Config = {
    ...stack.config,
    correlator: { ...stack.config.correlator, metrics: { ...stack.config.correlator.metrics, enabled: true, port } },
  };
  return { config, metricsUrl: `http://127.0.0.1:${port}/metrics` };
}

async function readToEndAndStop(config: Config): Promise<void> {
  correlator = await startCorrelator(config, logger, { clickhouse: false });
  await until('log_http read to its end', async () => (correlator!.pipeline.status().A.caughtUp ? true : null), 30_000);
  const read = Date.now();
  await until('a checkpoint saved since', async () => ((correlator!.pipeline.checkpointSavedAt ?? 0) >= read ? true : null), 30_000);
  await correlator.stop();
  correlator = null;
}

/**
 * Deletes log_http (then runs `whileGone`), makes it again by setup, and
 * posts a connection's A as its first document, then more than the old
 * database held: the new one is past the old position. Answers that A's id.
 */
async function makeAgainPast(ja4: string, port: number, whileGone: () => Promise<void> = async () => {}): Promise<string> {
  const before = parseInt(await updateSeq('log_http'), 10);
  const gone = await http(`${stack.couchUrl}/log_http`, { method: 'DELETE', headers: admin });
  assert.equal(gone.status, 200, gone.text);
  await whileGone();
  await runSetup(stack.config);
  const now = Date.now();
  const conn = { src_ip: '203.0.113.98', src_port: port, dst_ip: '192.0.2.1' };
  await postBulk(stack, 'network', [{ ...conn, dst_port: 443, ja4, timestamp: now }]);
  const [aId] = await postBulk(stack, 'http', [{ ...conn, dst_port: 80, path: `/${ja4}`, timestamp: now + 5 }]);
  // Other connections' A documents (orphans), enough to carry the new database past the old position.
  const more = Array.from({ length: before + 10 }, (_, i) => ({
    src_ip: '203.0.113.97',
    src_port: 1024 + i,
    dst_ip: '192.0.2.1',
    dst_port: 80,
    path: '/filler',
    timestamp: now,
  }));
  await postBulk(stack, 'http', more);
  // Premises on the embedded server's plain sequences; CouchDB 3's name a position in each shard.
  if (couchFlavor === 'embedded') {
    assert.ok(parseInt(await updateSeq('log_http'), 10) > before, 'premise: the new log_http is past the old position');
    const changes = await http(`${stack.couchUrl}/log_http/_changes`, { headers: admin });
    const seqOfA = (changes.json.results as Array<{ id: string; seq: unknown }>).find((r) => r.id === aId)?.seq;
    assert.ok(Number(seqOfA) <= before, `premise: the A (${String(seqOfA)}) is before the old position (${before})`);
  }
  return aId!;
}

/** Waits for the A's record to be correlated, then stops the running correlator; answers the record and its feed A rewinds. */
async function correlatedThenStop(aId: string, metricsUrl: string): Promise<{ record: Doc; rewinds: number; text: string }> {
  const record = await until(
    `A-${aId} correlated`,
    async () => {
      const doc = (await couchDocs(stack, 'log_correlated')).get(`A-${aId}`);
      return doc?.correlated === true ? doc : null;
    },
    30_000,
  );
  const text = (await http(metricsUrl)).text;
  await correlator!.stop();
  correlator = null;
  const rewinds = Number(/^couchlog_correlator_feed_rewinds_total\{side="A"\} (\d+)$/m.exec(text)?.[1] ?? 0);
  return { record, rewinds, text };
}
