// What each answer of a HEC target means for the events: only a refusal of
// the data (400 with a data code, 413) throws them away (RefusedError); a
// busy or down target is retried; anything that is not HEC's answer (a
// redirect, a 404 page, a proxy's 200 page, a token refusal) is retried and
// flagged for the operator, never counted as delivered nor dead-lettered.
// The target is a real HTTP server answering as scripted.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getEventListeners } from 'node:events';
import { HecSender, RefusedError, RetryableSendError } from '../../../../lib/hec/hec-sender.js';

interface Scripted {
  status: number;
  body: string;
  headers?: Record<string, string>;
  /** Instead of body: this many bytes of spaces, in 64 KiB chunks. */
  hugeBytes?: number;
  /** Instead of body: a space every 100 ms, never ending. */
  trickle?: boolean;
}
let next: Scripted = { status: 200, body: '{"text":"Success","code":0}' };
let server: Server;
let url: string;

before(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(next.status, { 'content-type': 'application/json', ...next.headers });
      if (next.trickle) {
        const timer = setInterval(() => res.write(' '), 100);
        res.on('close', () => clearInterval(timer));
        return;
      }
      if (next.hugeBytes !== undefined) {
        let left = next.hugeBytes;
        const chunk = Buffer.alloc(64 * 1024, 32);
        const pump = () => {
          while (left > 0) {
            left -= chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('close', () => (left = 0));
        return pump();
      }
      res.end(next.body);
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  await new Promise<void>((ok) => server.close(() => ok()));
});

const senderFor = (timeoutMs = 5000, indexPerEvent = true) =>
  new HecSender({ url, token: 't', gzip: false, verifyTls: true, timeoutMs, ack: 'off', ackTimeoutMs: 1000, ackPollMs: 10, indexPerEvent });

async function outcome(answer: Scripted, indexPerEvent = true): Promise<'delivered' | RefusedError | RetryableSendError> {
  next = answer;
  const sender = senderFor(5000, indexPerEvent);
  try {
    await sender.send(['{"event":{"n":1}}']);
    return 'delivered';
  } catch (err) {
    assert.ok(err instanceof RefusedError || err instanceof RetryableSendError, String(err));
    return err;
  } finally {
    await sender.close();
  }
}

test("HEC's success is delivered", async () => {
  assert.equal(await outcome({ status: 200, body: '{"text":"Success","code":0}' }), 'delivered');
});

test('a refusal of the data throws the events away (to be narrowed down and dead-lettered)', async () => {
  for (const code of [5, 6, 7, 12, 13, 15]) {
    const r = await outcome({ status: 400, body: JSON.stringify({ text: 'refused', code, 'invalid-event-number': 0 }) });
    assert.ok(r instanceof RefusedError, `code ${code}`);
    assert.equal(r.hecCode, code);
  }
  assert.ok((await outcome({ status: 413, body: '{"text":"Content too large","code":27}' })) instanceof RefusedError);
});

test("code 7 (incorrect index) is the setup's when every event has the configured index: kept and retried for the operator", async () => {
  const r = await outcome({ status: 400, body: '{"text":"Incorrect index","code":7,"invalid-event-number":0}' }, false);
  assert.ok(r instanceof RetryableSendError && r.operatorMustFix, String(r));
  assert.match(r.message, /configured index/);
});

test('a busy or failing target is retried, as long as it asks', async () => {
  const busy = await outcome({ status: 503, body: '{"text":"Server is busy","code":9}', headers: { 'retry-after': '7' } });
  assert.ok(busy instanceof RetryableSendError);
  assert.equal(busy.retryAfterMs, 7000);
  assert.equal(busy.operatorMustFix, false);
  for (const status of [500, 502, 429, 408]) {
    const r = await outcome({ status, body: '<html>busy</html>' });
    assert.ok(r instanceof RetryableSendError && !r.operatorMustFix, String(status));
  }
});

test('anything that is not HEC answering about the data keeps the events and asks the operator', async () => {
  const cases: Scripted[] = [
    { status: 200, body: '<html>maintenance</html>' },
    { status: 200, body: '{"ok":true}' },
    { status: 200, body: '{"text":"Success","code":3}' },
    { status: 301, body: '', headers: { location: 'https://elsewhere.example/services/collector/event' } },
    { status: 404, body: '<html>not found</html>' },
    { status: 405, body: '' },
    { status: 407, body: '' },
    { status: 400, body: '<html>bad request</html>' },
    { status: 400, body: '{"text":"Invalid token","code":4}' },
    { status: 401, body: '{"text":"Token is required","code":2}' },
    { status: 403, body: '{"text":"Invalid token","code":4}' },
  ];
  for (const c of cases) {
    const r = await outcome(c);
    assert.ok(r instanceof RetryableSendError, `${c.status} ${c.body}: ${String(r)}`);
    assert.equal(r.operatorMustFix, true, `${c.status} ${c.body}`);
  }
});

test('a huge answer is not read into memory: not HEC, kept for the operator', async () => {
  const started = process.memoryUsage().rss;
  const r = await outcome({ status: 200, body: '', hugeBytes: 256 * 1024 * 1024 });
  assert.ok(r instanceof RetryableSendError && r.operatorMustFix, String(r));
  assert.ok(process.memoryUsage().rss - started < 128 * 1024 * 1024, 'the answer was not buffered');
});

test('a target that trickles its answer forever: the request ends at its deadline', async () => {
  next = { status: 200, body: '', trickle: true };
  const sender = senderFor(800);
  const started = Date.now();
  try {
    await assert.rejects(
      sender.send(['{"event":1}']),
      (err: unknown) => err instanceof RetryableSendError && /no whole answer within 800 ms/.test(err.message),
    );
    assert.ok(Date.now() - started < 3000, `${Date.now() - started} ms`);
  } finally {
    await sender.close();
  }
});

test('abort() ends a request in flight at once (shutdown)', async () => {
  next = { status: 200, body: '', trickle: true };
  const sender = senderFor(60_000);
  const started = Date.now();
  const sending = sender.send(['{"event":1}']);
  setTimeout(() => sender.abort(), 200);
  await assert.rejects(sending, (err: unknown) => err instanceof RetryableSendError && /stopping/.test(err.message));
  assert.ok(Date.now() - started < 2000);
  await sender.close();
});

test('requests leave nothing behind on the sender’s long-lived stop signal (Node 20 kept one entry per AbortSignal.any call)', async () => {
  next = { status: 200, body: '{"text":"Success","code":0}' };
  const sender = senderFor();
  try {
    for (let i = 0; i < 200; i++) await sender.send(['{"event":1}']);
    const stop = (sender as unknown as { stopping: AbortController }).stopping.signal;
    assert.equal(getEventListeners(stop, 'abort').length, 0, 'abort listeners');
    // Node's own bookkeeping of signals that follow this one (AbortSignal.any), where it keeps one.
    for (const sym of Object.getOwnPropertySymbols(stop)) {
      const held = (stop as unknown as Record<symbol, unknown>)[sym];
      if (sym.description === 'kDependantSignals' && held !== undefined) assert.equal((held as { size: number }).size, 0, 'signals following the stop signal');
    }
  } finally {
    await sender.close();
  }
});
