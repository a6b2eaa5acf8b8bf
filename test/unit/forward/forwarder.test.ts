// The forwarder against scripted servers: a CouchDB that cannot build pages
// above a size (documents of several MB each) is read in smaller pages, so
// forwarding gets past them; a dead-letter file that cannot be written is
// retried, loudly, without ending the process or moving the checkpoint; a
// target that never answers does not hold stop() beyond its grace; batches
// are cut by UTF-8 bytes; a refused batch is cut at HEC's invalid-event-number.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { batchBounds, Forwarder, readCheckpoint, refusedParts, type ForwarderOptions } from '../../../forward/forwarder.js';
import { OperationError } from '../../../lib/errors.js';
import { startBigDocChanges, type BigDocChanges } from '../../helpers/big-doc-changes.js';
import { createLogger } from '../../../lib/logger.js';

const TOTAL = 60;
let hecMode: 'ok' | 'refuse' | 'hang' | 'splunk' = 'ok';
const received: number[] = [];
/** In 'splunk' mode: events refused as invalid data (by `n`); those before one in a request are indexed anyway, as Splunk is reported to do. */
const badEvents = new Set<number>();
let couch: BigDocChanges;
let hec: Server;
let dir: string;

const listen = async (s: Server) => {
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
};
let hecUrl: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'couchlog-forwarder-'));
  couch = await startBigDocChanges(TOTAL, Infinity);
  hec = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      if (hecMode === 'hang') return; // never answers
      res.setHeader('content-type', 'application/json');
      if (hecMode === 'refuse') {
        res.statusCode = 400;
        return res.end('{"text":"Invalid data format","code":6,"invalid-event-number":0}');
      }
      const events = body
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => (JSON.parse(line) as { event: { n: number } }).event.n);
      const bad = hecMode === 'splunk' ? events.findIndex((n) => badEvents.has(n)) : -1;
      received.push(...(bad === -1 ? events : events.slice(0, bad)));
      if (bad !== -1) {
        res.statusCode = 400;
        return res.end(`{"text":"Invalid data format","code":6,"invalid-event-number":${bad}}`);
      }
      res.end('{"text":"Success","code":0}');
    });
  });
  hecUrl = await listen(hec);
});
after(async () => {
  await couch.close();
  hec.closeAllConnections();
  await new Promise<void>((ok) => hec.close(() => ok()));
  rmSync(dir, { recursive: true, force: true });
});

function options(name: string, over: Partial<ForwarderOptions> = {}): ForwarderOptions {
  return {
    app: 'big',
    couchUrl: couch.url,
    couchHeaders: {},
    checkpointFile: join(dir, `${name}.checkpoint.json`),
    deadLetterFile: join(dir, `${name}.dead-letter.ndjson`),
    hec: { url: hecUrl, token: 't', gzip: false, verifyTls: true, timeoutMs: 60_000, ack: 'off', ackTimeoutMs: 1000, ackPollMs: 50 },
    maxEvents: 16,
    maxBytes: 1_000_000,
    pollMs: 50,
    backoff: { baseMs: 10, maxMs: 50 },
    mapping: { index: null, indexField: null, source: null, sourcetype: '_json', sourcetypeField: null, hostField: null },
    logger: createLogger('silent'),
    ...over,
  };
}

async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

test('pages the server cannot build are read smaller: every event forwarded once, in order', async () => {
  couch.maxPage = 3;
  hecMode = 'ok';
  received.length = 0;
  const f = new Forwarder(options('pages'));
  f.start();
  try {
    await until('every event forwarded', () => received.length >= TOTAL);
  } finally {
    await f.stop();
  }
  assert.deepEqual(
    received,
    Array.from({ length: TOTAL }, (_, i) => i + 1),
  );
  assert.ok(Math.min(...couch.limits) <= 3, `limits asked: ${couch.limits.join(',')}`);
  assert.ok(f.status.retries > 0, 'each page the server could not build is a retry, counted');
  assert.equal(JSON.parse(readFileSync(join(dir, 'pages.checkpoint.json'), 'utf8')).since, String(TOTAL));
  couch.maxPage = Infinity;
});

test('a dead-letter file that cannot be written: retried and reported, the process goes on, the checkpoint stays', async () => {
  hecMode = 'refuse';
  // A file where the dead-letter file's folder should be: every write fails.
  writeFileSync(join(dir, 'blocked'), 'not a folder');
  const f = new Forwarder(options('dead', { deadLetterFile: join(dir, 'blocked', 'dead.ndjson') }));
  f.start();
  try {
    await until('the failure is reported', () => /dead-letter file: .*(ENOTDIR|EEXIST)/.test(f.status.lastError ?? ''));
    await sleep(200);
    assert.equal(f.status.deadLettered, 0);
    assert.ok(f.status.retries > 0, 'the failed writes are retries, counted');
  } finally {
    await f.stop();
  }
  assert.ok(!existsSync(join(dir, 'dead.checkpoint.json')), 'the checkpoint did not move past the events not set aside');
  hecMode = 'ok';
});

test('a target that never answers does not hold stop() beyond its grace', async () => {
  hecMode = 'hang';
  const f = new Forwarder(options('hang'));
  f.start();
  await sleep(300);
  const started = Date.now();
  await f.stop();
  const took = Date.now() - started;
  assert.ok(took < 8000, `stop() took ${took} ms`);
  assert.ok(!existsSync(join(dir, 'hang.checkpoint.json')), 'nothing confirmed, nothing checkpointed');
  hecMode = 'ok';
});

test('a checkpoint file that is empty or not a checkpoint (a power cut) is a clear error, never a start from the beginning', () => {
  // Found by a code review: it was written without fsync, and an empty file stopped `couchlog up` with a SyntaxError's stack.
  const dir = mkdtempSync(join(tmpdir(), 'couchlog-fwd-cp-'));
  try {
    const file = join(dir, 'a.checkpoint.json');
    assert.equal(readCheckpoint(file), '', 'none yet: from the start');
    writeFileSync(file, '{"since":"\\"42-abc\\"","at":"2026-12-05T00:00:00Z"}\n');
    assert.equal(readCheckpoint(file), '"42-abc"');
    // '{"since":"abc"}': found by a black-box test (every read then failed on JSON.parse, for ever).
    for (const text of ['', '{ broken', '{}', 'null', '{"since":7}', '{"since":"abc"}', '{"since":"[1]"}']) {
      writeFileSync(file, text);
      assert.throws(
        () => readCheckpoint(file),
        (e: unknown) => e instanceof OperationError && /is not a checkpoint .* delete it to forward the whole database again/.test(e.message),
        JSON.stringify(text),
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('batches are cut by UTF-8 bytes, not string length (non-ASCII pages went over the target limit)', () => {
  const envelopes = Array.from({ length: 40 }, (_, i) => JSON.stringify({ event: { n: i, msg: 'é€😀'.repeat(30 + i) } }));
  const bytes = (e: string) => Buffer.byteLength(e) + 1;
  assert.ok(bytes(envelopes[0]!) > 2 * (envelopes[0]!.length + 1), 'premise: several bytes per character');
  const maxBytes = 2000;
  const bounds = batchBounds(envelopes, 100, maxBytes);
  assert.deepEqual(
    bounds.flatMap(([from, to]) => Array.from({ length: to - from }, (_, i) => from + i)),
    envelopes.map((_, i) => i),
    'every event once, in order',
  );
  for (const [from, to] of bounds) {
    const size = envelopes.slice(from, to).reduce((sum, e) => sum + bytes(e), 0);
    assert.ok(size <= maxBytes || to - from === 1, `batch [${from}, ${to}) is ${size} bytes`);
    if (to < envelopes.length) assert.ok(size + bytes(envelopes[to]!) > maxBytes, `batch [${from}, ${to}) could have taken one more`);
  }
  assert.deepEqual(batchBounds(['x'.repeat(5000), 'y'], 100, 1000), [
    [0, 1],
    [1, 2],
  ]);
  assert.deepEqual(batchBounds(['a', 'b', 'c'], 2, 1000), [
    [0, 2],
    [2, 3],
  ]);
});

test('a refused batch is sent again cut at its invalid-event-number (before, the event alone, after), else in halves', () => {
  assert.deepEqual(refusedParts(10, 4), [
    [0, 4],
    [4, 5],
    [5, 10],
  ]);
  assert.deepEqual(refusedParts(10, 0), [
    [0, 1],
    [1, 10],
  ]);
  assert.deepEqual(refusedParts(10, 9), [
    [0, 9],
    [9, 10],
  ]);
  for (const n of [null, -1, 10, 2.5, NaN])
    assert.deepEqual(refusedParts(10, n), [
      [0, 5],
      [5, 10],
    ]);
});

test('a target that indexes the events before the invalid one (Splunk): every good event arrives, the bad ones are set aside, none arrives more than twice', async () => {
  hecMode = 'splunk';
  received.length = 0;
  badEvents.clear();
  for (const n of [7, 20, 21, 60]) badEvents.add(n);
  const f = new Forwarder(options('splunk'));
  f.start();
  try {
    await until('the bad events set aside', () => f.status.deadLettered === badEvents.size);
    await until('caught up', () => f.status.caughtUpAt !== null);
  } finally {
    await f.stop();
  }
  const good = Array.from({ length: TOTAL }, (_, i) => i + 1).filter((n) => !badEvents.has(n));
  assert.deepEqual(
    [...new Set(received)].sort((a, b) => a - b),
    good,
    'every good event indexed, no bad one',
  );
  assert.equal(f.status.forwarded, good.length);
  const times = new Map<number, number>();
  for (const n of received) times.set(n, (times.get(n) ?? 0) + 1);
  // Batches of 16: 1-16 (7 bad: 1-6 sent again), 17-32 (20 bad: 17-19 again; then 21 bad at the head of 21-32), 49-60 (60 bad: 49-59 again).
  assert.deepEqual(
    [...times].filter(([, k]) => k > 1).map(([n]) => n),
    [1, 2, 3, 4, 5, 6, 17, 18, 19, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59],
    'each event before a bad one is sent once more (halving sent some of them three or four times)',
  );
  assert.ok(Math.max(...times.values()) <= 2);
  const lines = readFileSync(join(dir, 'splunk.dead-letter.ndjson'), 'utf8').trim().split('\n');
  assert.deepEqual(
    lines.map((l) => (JSON.parse(l) as { envelope: { event: { n: number } } }).envelope.event.n),
    [...badEvents],
  );
  badEvents.clear();
  hecMode = 'ok';
});
