// Splunk HEC on the ingress against a real embedded server: every answer
// code of issue 14, the body forms (concatenated, newline-separated, gzip,
// raw), the document shape, tokens on the plain write routes, acks, group
// commit across HEC requests, and 503/code 9 while CouchDB is down.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { connect } from 'node:net';
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { startStack, http, countDocs, freePort, type Stack } from '../helpers/stack.js';

const TOKEN = 'hec-test-token-web-0123456789';
const MULTI = 'hec-test-token-multi-0123456789';
const ACK = 'hec-test-token-ack-0123456789ab';

let stack: Stack;
before(async () => {
  stack = await startStack({
    yaml: {
      apps: {
        web: {
          tokens: [
            { name: 'web', secret: TOKEN },
            { name: 'multi', secret: MULTI },
          ],
        },
        audit: { tokens: [{ name: 'multi', secret: MULTI }] },
        acked: { tokens: [{ name: 'acked', secret: ACK, ack: true }] },
        other: {},
      },
    },
  });
});
after(async () => {
  await stack?.stop();
});

interface Res {
  status: number;
  json: any;
  headers: Headers;
}

async function hec(path: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<Res> {
  const res = await fetch(`${stack.url}${path}`, { method: 'POST', headers, body: typeof body === 'string' ? body : new Uint8Array(body) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

const auth = (token = TOKEN) => ({ authorization: `Splunk ${token}` });

async function allDocs(db: string): Promise<any[]> {
  const res = await http(`${stack.couchUrl}/${db}/_all_docs?include_docs=true`, { headers: { authorization: stack.auth.admin } });
  return (res.json.rows as any[]).filter((r) => !r.id.startsWith('_design/')).map((r) => r.doc);
}

async function docsWith(db: string, key: string, value: unknown): Promise<any[]> {
  return (await allDocs(db)).filter((d) => d[key] === value);
}

describe('HEC event endpoint', () => {
  test('one envelope: Success, stored with the documented shape', async () => {
    const run = randomUUID();
    const res = await hec(
      '/services/collector/event',
      JSON.stringify({
        time: 1721187223.512,
        host: 'web-1',
        source: 'app.log',
        sourcetype: '_json',
        event: { run, msg: 'hello', src_ip: '192.0.2.1' },
        fields: { env: 'prod' },
      }),
      auth(),
    );
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { text: 'Success', code: 0 });
    const [doc] = await docsWith('log_web', 'run', run);
    assert.ok(doc, 'stored');
    assert.equal(doc.time, '2024-07-17T03:33:43.512Z');
    assert.equal(doc.host, 'web-1');
    assert.equal(doc.source, 'app.log');
    assert.equal(doc.sourcetype, '_json');
    assert.equal(doc.env, 'prod');
    assert.equal(doc.msg, 'hello');
    assert.equal(doc.src_ip, '192.0.2.1');
    assert.equal(doc.index, undefined);
    assert.match(doc._id, /^[0-9a-f]{32}$/);
    assert.ok(!Number.isNaN(Date.parse(doc.received_at)));
  });

  test("a string event is stored as message; the event's own fields win over metadata", async () => {
    const run = randomUUID();
    const body =
      JSON.stringify({ event: `text ${run}`, host: 'h1' }) +
      JSON.stringify({ time: '1721187223', host: 'envelope-host', event: { run, host: 'own-host', time: '2020-01-01T00:00:00Z' } });
    const res = await hec('/services/collector', body, auth());
    assert.equal(res.status, 200);
    const [text] = await docsWith('log_web', 'message', `text ${run}`);
    assert.equal(text.host, 'h1');
    assert.equal(text.time, undefined, 'no time given: received_at is the time');
    const [own] = await docsWith('log_web', 'run', run);
    assert.equal(own.host, 'own-host');
    assert.equal(own.time, '2020-01-01T00:00:00Z');
  });

  test('concatenated, newline-separated and /event/1.0 bodies', async () => {
    const run = randomUUID();
    const envs = Array.from({ length: 5 }, (_, i) => JSON.stringify({ event: { run, i, text: 'a } { b "quoted" \\ back' } }));
    assert.equal((await hec('/services/collector/event', envs.slice(0, 2).join(''), auth())).status, 200);
    assert.equal((await hec('/services/collector/event', envs.slice(2, 4).join('\n') + '\n', auth())).status, 200);
    assert.equal((await hec('/services/collector/event/1.0', `  ${envs[4]}\r\n`, auth())).status, 200);
    const docs = await docsWith('log_web', 'run', run);
    assert.deepEqual(docs.map((d) => d.i).sort(), [0, 1, 2, 3, 4]);
    assert.ok(docs.every((d) => d.text === 'a } { b "quoted" \\ back'));
  });

  test('gzip bodies (Content-Encoding: gzip)', async () => {
    const run = randomUUID();
    const body = Array.from({ length: 50 }, (_, i) => JSON.stringify({ event: { run, i } })).join('\n');
    const res = await hec('/services/collector/event', gzipSync(body), { ...auth(), 'content-encoding': 'gzip', 'content-type': 'application/json' });
    assert.equal(res.status, 200);
    assert.equal((await docsWith('log_web', 'run', run)).length, 50);
    const bad = await hec('/services/collector/event', Buffer.from('not gzip at all'), { ...auth(), 'content-encoding': 'gzip' });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.code, 6);
  });

  test("an event's own _id is kept; sent again, it is stored once and answered Success", async () => {
    const id = `hec-own-${randomUUID()}`;
    const body = JSON.stringify({ event: { _id: id, n: 1 } }) + JSON.stringify({ event: { _id: id, n: 2 } });
    assert.deepEqual((await hec('/services/collector/event', body, auth())).json, { text: 'Success', code: 0 });
    assert.deepEqual((await hec('/services/collector/event', body, auth())).json, { text: 'Success', code: 0 });
    const docs = (await allDocs('log_web')).filter((d) => d._id === id);
    assert.equal(docs.length, 1);
    // Twice in one request: one of the two is stored (both batches may be in flight at once).
    assert.ok([1, 2].includes(docs[0].n));
  });

  test('Basic auth with the token as password, and any Content-Type', async () => {
    const run = randomUUID();
    const basic = `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`;
    const res = await hec('/services/collector/event', JSON.stringify({ event: { run } }), { authorization: basic, 'content-type': 'text/plain' });
    assert.equal(res.status, 200);
    assert.equal((await docsWith('log_web', 'run', run)).length, 1);
  });

  test("index picks one of the token's apps; others are code 7", async () => {
    const run = randomUUID();
    const body =
      JSON.stringify({ event: { run, n: 1 } }) +
      JSON.stringify({ index: 'audit', event: { run, n: 2 } }) +
      JSON.stringify({ index: 'log_audit', event: { run, n: 3 } });
    assert.equal((await hec('/services/collector/event', body, auth(MULTI))).status, 200);
    assert.deepEqual(
      (await docsWith('log_web', 'run', run)).map((d) => d.n),
      [1],
    );
    assert.deepEqual((await docsWith('log_audit', 'run', run)).map((d) => d.n).sort(), [2, 3]);

    const wrong = await hec('/services/collector/event', JSON.stringify({ event: { run } }) + JSON.stringify({ index: 'other', event: { run } }), auth());
    assert.equal(wrong.status, 400);
    assert.deepEqual(wrong.json, { text: 'Incorrect index', code: 7, 'invalid-event-number': 1 });
  });
});

describe('HEC error codes (nothing stored on any of them)', () => {
  const cases: Array<[string, string, string | Buffer, Record<string, string>, number, Record<string, unknown>]> = [
    ['no token', '/services/collector/event', '{"event":"x"}', {}, 401, { text: 'Token is required', code: 2 }],
    ['malformed Authorization', '/services/collector/event', '{"event":"x"}', { authorization: 'Splunk' }, 401, { text: 'Invalid authorization', code: 3 }],
    ['unknown scheme', '/services/collector/event', '{"event":"x"}', { authorization: 'Digest abc' }, 401, { text: 'Invalid authorization', code: 3 }],
    [
      'wrong token',
      '/services/collector/event',
      '{"event":"x"}',
      { authorization: 'Splunk not-a-token-of-this-ingress' },
      403,
      { text: 'Invalid token', code: 4 },
    ],
    ['empty body', '/services/collector/event', '', auth(), 400, { text: 'No data', code: 5 }],
    ['blank body', '/services/collector/event', ' \n ', auth(), 400, { text: 'No data', code: 5 }],
    [
      'invalid JSON in the 3rd event',
      '/services/collector/event',
      '{"event":"a"}{"event":"b"}{"event":"c",}',
      auth(),
      400,
      { text: 'Invalid data format', code: 6, 'invalid-event-number': 2 },
    ],
    ['not an object', '/services/collector/event', '{"event":"a"}\n[1,2]', auth(), 400, { text: 'Invalid data format', code: 6, 'invalid-event-number': 1 }],
    ['truncated', '/services/collector/event', '{"event":"a"}{"event":"b"', auth(), 400, { text: 'Invalid data format', code: 6, 'invalid-event-number': 1 }],
    // Found by a black-box test: bad bytes were stored as U+FFFD.
    [
      'not UTF-8',
      '/services/collector/event',
      Buffer.from([...Buffer.from('{"event":"'), 0xff, 0xfe, ...Buffer.from('"}')]),
      auth(),
      400,
      { text: 'Invalid data format', code: 6 },
    ],
    [
      'a number out of range',
      '/services/collector/event',
      '{"event":{"n":1e400}}',
      auth(),
      400,
      { text: 'Invalid data format', code: 6, 'invalid-event-number': 0 },
    ],
    [
      'bad time',
      '/services/collector/event',
      '{"event":"a","time":"yesterday"}',
      auth(),
      400,
      { text: 'Invalid data format', code: 6, 'invalid-event-number': 0 },
    ],
    [
      '_rev in an event',
      '/services/collector/event',
      '{"event":"a"}{"event":{"_rev":"1-x"}}',
      auth(),
      400,
      { text: 'Invalid data format', code: 6, 'invalid-event-number': 1 },
    ],
    [
      'event missing',
      '/services/collector/event',
      '{"event":"a"}{"host":"h"}',
      auth(),
      400,
      { text: 'Event field is required', code: 12, 'invalid-event-number': 1 },
    ],
    ['event blank', '/services/collector/event', '{"event":""}', auth(), 400, { text: 'Event field cannot be blank', code: 13, 'invalid-event-number': 0 }],
    [
      'fields not an object',
      '/services/collector/event',
      '{"event":"a","fields":"x"}',
      auth(),
      400,
      { text: 'Error in handling indexed fields', code: 15, 'invalid-event-number': 0 },
    ],
    [
      'token in the query string',
      '/services/collector/event?token=abc',
      '{"event":"a"}',
      {},
      400,
      { text: 'Query string authorization is not enabled', code: 16 },
    ],
    [
      'ack on a token without ack',
      '/services/collector/ack',
      '{"acks":[0]}',
      { ...auth(), 'x-splunk-request-channel': randomUUID() },
      400,
      { text: 'ACK is disabled', code: 14 },
    ],
    ['ack token without channel', '/services/collector/event', '{"event":"a"}', auth(ACK), 400, { text: 'Data channel is missing', code: 10 }],
    // Found by a black-box test: 500 code 8 (stack overflow), which clients retry for ever.
    [
      'a time nested 250,000 deep',
      '/services/collector/event',
      `{"event":1,"time":${'['.repeat(250_000)}${']'.repeat(250_000)}}`,
      auth(),
      400,
      { text: 'Invalid data format', code: 6, 'invalid-event-number': 0 },
    ],
    [
      'an index nested 250,000 deep',
      '/services/collector/event',
      `{"event":1,"index":${'['.repeat(250_000)}${']'.repeat(250_000)}}`,
      auth(),
      400,
      { text: 'Invalid data format', code: 6, 'invalid-event-number': 0 },
    ],
    [
      'channel that is not a GUID',
      '/services/collector/event',
      '{"event":"a"}',
      { ...auth(ACK), 'x-splunk-request-channel': 'nope' },
      400,
      { text: 'Invalid data channel', code: 11 },
    ],
  ];
  for (const [name, path, body, headers, status, expected] of cases) {
    test(`${name}: ${status} code ${expected.code}`, async () => {
      const before = (await countDocs(stack, 'log_web')) + (await countDocs(stack, 'log_acked'));
      const res = await hec(path, body, headers);
      assert.equal(res.status, status, JSON.stringify(res.json));
      assert.deepEqual(res.json, expected);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/);
      assert.equal((await countDocs(stack, 'log_web')) + (await countDocs(stack, 'log_acked')), before);
    });
  }

  test('a body over the limit is 413', async () => {
    await stack.restartIngress((c) => {
      c.ingress.body_limit_bytes = 4096;
    });
    try {
      const big = JSON.stringify({ event: 'x'.repeat(5000) });
      const res = await hec('/services/collector/event', big, auth());
      assert.equal(res.status, 413);
      assert.equal(res.json.code, 6);
      const bomb = gzipSync(JSON.stringify({ event: 'y'.repeat(100_000) }));
      assert.ok(bomb.length < 4096);
      const res2 = await hec('/services/collector/event', bomb, { ...auth(), 'content-encoding': 'gzip' });
      assert.equal(res2.status, 413, 'the decompressed size counts');
    } finally {
      await stack.restartIngress((c) => {
        c.ingress.body_limit_bytes = 8 * 1024 * 1024;
      });
    }
  });

  test('a body that stalls: 408 with an HEC body (code 9, which clients retry), nothing stored, the connection closed', async () => {
    const was = stack.config.ingress.body_timeout_ms;
    await stack.restartIngress((c) => {
      c.ingress.body_timeout_ms = 1000;
    });
    try {
      const before = await countDocs(stack, 'log_web');
      const answer = await new Promise<string>((resolve, reject) => {
        let text = '';
        const socket = connect(stack.config.ingress.port, '127.0.0.1', () =>
          socket.write(`POST /services/collector/event HTTP/1.1\r\nHost: x\r\nAuthorization: Splunk ${TOKEN}\r\nContent-Length: 100\r\n\r\n{"event":`),
        );
        socket.setEncoding('utf8');
        socket.on('data', (c: string) => (text += c));
        socket.on('error', reject);
        socket.on('close', () => resolve(text));
        socket.setTimeout(10_000, () => socket.destroy(new Error(`no close; got: ${text}`)));
      });
      assert.match(answer, /^HTTP\/1\.1 408 /);
      assert.match(answer, /\r\nConnection: close\r\n/i);
      assert.deepEqual(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)), { text: 'Request timeout', code: 9 });
      assert.equal(await countDocs(stack, 'log_web'), before);
    } finally {
      await stack.restartIngress((c) => {
        c.ingress.body_timeout_ms = was;
      });
    }
  });
});

describe('HEC raw and health endpoints', () => {
  test('raw: one event per line, metadata from the query string', async () => {
    const run = randomUUID();
    const q = new URLSearchParams({ host: 'raw-host', source: 'syslog', sourcetype: 'linux', time: '1721187223.5', index: 'audit' });
    const res = await hec(`/services/collector/raw?${q}`, `first ${run}\r\nsecond ${run}\n\n`, auth(MULTI));
    assert.deepEqual([res.status, res.json], [200, { text: 'Success', code: 0 }]);
    const docs = (await allDocs('log_audit')).filter((d) => typeof d.message === 'string' && d.message.endsWith(run));
    assert.deepEqual(docs.map((d) => d.message).sort(), [`first ${run}`, `second ${run}`]);
    for (const d of docs) {
      assert.equal(d.host, 'raw-host');
      assert.equal(d.sourcetype, 'linux');
      assert.equal(d.time, '2024-07-17T03:33:43.500Z');
    }
    const empty = await hec('/services/collector/raw', '\n\n', auth());
    assert.deepEqual([empty.status, empty.json.code], [400, 5]);
  });

  test('health', async () => {
    const res = await http(`${stack.url}/services/collector/health`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { text: 'HEC is healthy', code: 17 });
  });
});

describe('indexer acknowledgment', () => {
  test('ackIds per channel, true once stored, reported once', async () => {
    const channel = randomUUID();
    const headers = { ...auth(ACK), 'x-splunk-request-channel': channel };
    const a = await hec('/services/collector/event', '{"event":"one"}', headers);
    const b = await hec('/services/collector/event', '{"event":"two"}{"event":"three"}', headers);
    assert.deepEqual(a.json, { text: 'Success', code: 0, ackId: 0 });
    assert.deepEqual(b.json, { text: 'Success', code: 0, ackId: 1 });
    const other = await hec(`/services/collector/raw?channel=${randomUUID()}`, 'four', auth(ACK));
    assert.equal(other.json.ackId, 2, "ids come from the token's one counter: never one another channel's client holds");

    const q = await hec('/services/collector/ack', JSON.stringify({ acks: [0, 1, 7] }), headers);
    assert.equal(q.status, 200);
    assert.deepEqual(q.json, { acks: { '0': true, '1': true, '7': false } });
    const again = await hec('/services/collector/ack', JSON.stringify({ acks: [0, 1] }), headers);
    assert.deepEqual(again.json, { acks: { '0': false, '1': false } });
    const bad = await hec('/services/collector/ack', '{"acks":"x"}', headers);
    assert.deepEqual([bad.status, bad.json.code], [400, 6]);
    const noChannel = await hec('/services/collector/ack', '{"acks":[0]}', auth(ACK));
    assert.deepEqual([noChannel.status, noChannel.json.code], [400, 10]);
  });

  test('a channel forgotten (least recently used) and used again gets new ids: its client polling the old ones gets false, not true for other requests', async () => {
    await stack.restartIngress((c) => {
      c.ingress.hec.ack_max_channels = 1;
    });
    try {
      const [a, b] = [randomUUID(), randomUUID()];
      const send = async (channel: string) =>
        (await hec('/services/collector/event', '{"event":"x"}', { ...auth(ACK), 'x-splunk-request-channel': channel })).json.ackId as number;
      const held = [await send(a), await send(a)];
      await send(b); // a is forgotten, with both acks
      const fresh = await send(a);
      assert.ok(!held.includes(fresh), `a new id (${fresh}), not one of ${held.join(', ')}`);
      const q = await hec('/services/collector/ack', JSON.stringify({ acks: [...held, fresh] }), { ...auth(ACK), 'x-splunk-request-channel': a });
      assert.deepEqual(q.json, { acks: { [held[0]!]: false, [held[1]!]: false, [fresh]: true } });
      const metrics = await http(`${stack.url}/_couchlog/metrics`);
      assert.match(metrics.text, /couchlog_ingress_hec_acks_forgotten_total\{reason="channel_evicted"\} 3\b/, 'a: 2, then b: 1');
    } finally {
      await stack.restartIngress((c) => {
        c.ingress.hec.ack_max_channels = 10_000;
      });
    }
  });
});

describe('tokens on the plain write routes', () => {
  test('Bearer token writes to its apps only; anonymous_write: false refuses anonymous writes', async () => {
    const run = randomUUID();
    const ok = await http(`${stack.url}/log_web`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ run }),
    });
    assert.equal(ok.status, 201);
    assert.equal((await docsWith('log_web', 'run', run)).length, 1);
    const bulk = await http(`${stack.url}/log_audit/_bulk_docs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${MULTI}` },
      body: JSON.stringify({ docs: [{ run }, { run }] }),
    });
    assert.equal(bulk.status, 201);
    const denied = await http(`${stack.url}/log_audit`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: '{"a":1}',
    });
    assert.deepEqual([denied.status, denied.json.code], [403, 'INGRESS_TOKEN_APP']);
    const unknown = await http(`${stack.url}/log_web`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Splunk wrong-token-0000000000' },
      body: '{"a":1}',
    });
    assert.equal(unknown.status, 401);

    await stack.restartIngress((c) => {
      c.ingress.anonymous_write = false;
    });
    try {
      const anon = await http(`${stack.url}/log_web`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
      assert.deepEqual([anon.status, anon.json.code], [401, 'AUTH_REQUIRED']);
      const withToken = await http(`${stack.url}/log_web`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body: '{"a":1}',
      });
      assert.equal(withToken.status, 201);
      const asWriter = await http(`${stack.url}/log_web`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: stack.auth.writer },
        body: '{"a":1}',
      });
      assert.equal(asWriter.status, 201, 'real credentials still write');
    } finally {
      await stack.restartIngress((c) => {
        c.ingress.anonymous_write = true;
      });
    }
  });
});

describe('other methods and paths under /services/collector', () => {
  test('HEC-style 405 or 404, credentials not looked at, and no lockout after more than auth_failures.max of them', async () => {
    const cases: Array<[string, string, number, string | null]> = [
      ['GET', '/services/collector/event', 405, 'POST'],
      ['PUT', '/services/collector/event', 405, 'POST'],
      ['DELETE', '/services/collector', 405, 'POST'],
      ['GET', '/services/collector/ack', 405, 'POST'],
      ['POST', '/services/collector/health', 405, 'GET'],
      ['GET', '/services/collector/event/2.0', 404, null],
      ['POST', '/services/collector/nope', 404, null],
    ];
    for (const [method, path, status, allow] of cases) {
      const res = await http(`${stack.url}${path}`, { method, headers: auth(), body: method === 'GET' ? undefined : '{"event":1}' });
      assert.equal(res.status, status, `${method} ${path}: ${res.text}`);
      assert.equal(res.json.code, status);
      assert.equal(typeof res.json.text, 'string');
      assert.equal(res.headers.get('allow'), allow);
    }
    // Found by a black-box test: each of these was a failed login, and 20 locked out every HEC client of the address.
    for (let i = 0; i < stack.config.ingress.auth_failures.max + 5; i++) {
      assert.equal((await http(`${stack.url}/services/collector/event/2.0`, { headers: auth() })).status, 404);
    }
    const ok = await hec('/services/collector/event', '{"event":"still welcome"}', auth());
    assert.deepEqual([ok.status, ok.json.code], [200, 0]);
  });
});

describe('group commit and outages', () => {
  test('concurrent HEC requests share _bulk_docs writes', async (t) => {
    // A batch waits max_wait_ms (4 ms by default) for more documents: on a
    // loaded machine 40 requests sent at once may reach the ingress further
    // apart than that (CI once: 40 batches of one request each). 250 ms makes
    // the premise "they arrive together" hold; what is tested is the merging.
    const wait = stack.config.ingress.group_commit.max_wait_ms;
    await stack.restartIngress((c) => {
      c.ingress.group_commit.max_wait_ms = 250;
    });
    t.after(() =>
      stack.restartIngress((c) => {
        c.ingress.group_commit.max_wait_ms = wait;
      }),
    );
    const before = await groupBatches();
    const run = randomUUID();
    const requests = Array.from({ length: 40 }, (_, r) =>
      hec('/services/collector/event', Array.from({ length: 10 }, (_, i) => JSON.stringify({ event: { run, r, i } })).join('\n'), auth()),
    );
    const answers = await Promise.all(requests);
    assert.ok(answers.every((a) => a.status === 200 && a.json.code === 0));
    assert.equal((await docsWith('log_web', 'run', run)).length, 400);
    const after = await groupBatches();
    const batches = after.count - before.count;
    const merged = batches - (after.upTo10 - before.upTo10);
    // Each request holds 10 documents: a batch of more holds several requests'.
    assert.ok(merged > 0, `40 requests went out in ${batches} _bulk_docs, ${merged} of them with more than one request's documents`);
  });

  test('CouchDB down: 503 code 9 with Retry-After, then Success again', async () => {
    await stack.couch.stop();
    try {
      const res = await hec('/services/collector/event', '{"event":"while down"}', auth());
      assert.equal(res.status, 503);
      assert.deepEqual(res.json, { text: 'Server is busy', code: 9 });
      assert.ok(Number(res.headers.get('retry-after')) >= 1);
    } finally {
      await stack.couch.start();
    }
    const run = randomUUID();
    const ok = await hec('/services/collector/event', JSON.stringify({ event: { run } }), auth());
    assert.equal(ok.status, 200);
    assert.equal((await docsWith('log_web', 'run', run)).length, 1);
  });
});

async function groupBatches(): Promise<{ count: number; upTo10: number }> {
  const res = await http(`${stack.url}/_couchlog/metrics`);
  const count = /couchlog_ingress_batch_documents_count\{kind="group"\} (\d+)/.exec(res.text);
  const upTo10 = /couchlog_ingress_batch_documents_bucket\{le="10",kind="group"\} (\d+)/.exec(res.text);
  return { count: count ? Number(count[1]) : 0, upTo10: upTo10 ? Number(upTo10[1]) : 0 };
}

describe('token rotation without a restart', () => {
  test('couchlog ingress takes new write tokens on SIGHUP; old and new work together meanwhile', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'couchlog-rotate-'));
    const file = join(dir, 'couchlog.yml');
    const OLD = 'rotation-old-secret-0123456789';
    const NEW = 'rotation-new-secret-0123456789';
    const yaml = (tokens: Array<{ name: string; secret: string }>) =>
      writeFileSync(file, stringifyYaml({ clickhouse: { enabled: false }, correlator: { enabled: false }, apps: { web: { tokens } } }));
    yaml([{ name: 'vector', secret: OLD }]);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const child = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'scripts', 'couchlog.js'), 'ingress'], {
      env: {
        ...process.env,
        COUCHLOG_CONFIG: file,
        COUCHLOG_DATA: stack.dataDir,
        COUCHLOG_COUCHDB_PORT: String(stack.config.couchdb.embedded.port),
        ...(stack.config.couchdb.url ? { COUCHDB_URL: stack.config.couchdb.url } : {}),
        COUCHLOG_INGRESS_PORT: String(port),
        COUCHLOG_LOG_LEVEL: 'silent',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    // Registered at once: a child that exits early must fail the test, not hang its cleanup.
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise((ok) => child.once('exit', ok));
    const send = async (token: string) =>
      (
        await fetch(`${url}/services/collector/event`, {
          method: 'POST',
          headers: { authorization: `Splunk ${token}` },
          body: '{"event":"rotation"}',
          signal: AbortSignal.timeout(10_000),
        })
      ).status;
    const eventually = async (what: string, probe: () => Promise<boolean>, timeoutMs = 15_000) => {
      for (const deadline = Date.now() + timeoutMs; !(await probe().catch(() => false));) {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`couchlog ingress exited (${child.exitCode ?? child.signalCode}) before ${what}: ${stderr}`);
        if (Date.now() > deadline) throw new Error(`timed out: ${what}; stderr: ${stderr}`);
        await new Promise((ok) => setTimeout(ok, 100));
      }
    };
    try {
      await eventually('the ingress', async () => (await send(OLD)) === 200, 60_000);
      assert.equal(await send(NEW), 403);
      yaml([
        { name: 'vector', secret: OLD },
        { name: 'vector_2', secret: NEW },
      ]);
      child.kill('SIGHUP');
      await eventually('the new token', async () => (await send(NEW)) === 200);
      assert.equal(await send(OLD), 200, 'both during the change');
      yaml([{ name: 'vector_2', secret: NEW }]);
      child.kill('SIGHUP');
      await eventually('the old token gone', async () => (await send(OLD)) === 403);
      assert.equal(await send(NEW), 200);
      writeFileSync(file, 'apps: [not valid');
      child.kill('SIGHUP');
      await new Promise((ok) => setTimeout(ok, 500));
      assert.equal(await send(NEW), 200, 'a config that does not load keeps the running tokens');
      assert.equal(child.exitCode, null, 'still running');
    } finally {
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('an event with a lone surrogate is refused alone (code 6, its number), the request stores nothing', async () => {
  const body = `{"event":{"n":"lone-ok-1"}}{"event":{"m":"\\ud800x"}}`;
  const res = await hec('/services/collector/event', body, auth());
  assert.equal(res.status, 400);
  assert.equal(res.json.code, 6);
  assert.equal(res.json['invalid-event-number'], 1);
  assert.deepEqual(await docsWith('log_web', 'n', 'lone-ok-1'), []);
});
