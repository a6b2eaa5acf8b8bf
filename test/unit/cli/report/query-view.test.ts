// Unit tests of cli/report/query-view.ts: every message names the server by
// its origin, never by the URL as given (review finding: a URL with
// credentials was repeated in "cannot reach ..." and "was refused by ...").
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { queryView, type ViewQuery } from '../../../../cli/report/query-view.js';
import { OperationError } from '../../../../lib/errors.js';

// Answers every request with the status its path names (/401/..., /500/...).
let server: Server;
let port: number;
before(async () => {
  server = createServer((req, res) => {
    const status = Number(req.url!.split('/')[1]) || 500;
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'e', reason: 'r' }));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  port = (server.address() as AddressInfo).port;
});
after(() => new Promise<void>((ok) => server.close(() => ok())));

const query = (baseUrl: string, db: string): ViewQuery => ({
  baseUrl,
  db,
  ddoc: 'report',
  view: 'attacks',
  user: 'reader',
  password: 'reader-password-1',
  params: {},
});

async function failure(q: ViewQuery): Promise<string> {
  try {
    await queryView(q);
  } catch (err) {
    assert.ok(err instanceof OperationError, String(err));
    return err.message;
  }
  assert.fail('expected a failure');
}

test('an unreachable server is named by its origin: no credentials', async () => {
  const message = await failure(query('http://reader:S3cretPw@127.0.0.1:1', '401'));
  assert.match(message, /^cannot reach http:\/\/127\.0\.0\.1:1: ECONNREFUSED/);
  assert.ok(!message.includes('S3cretPw'), message);
});

test('a refusal and an unexpected answer name the origin: no credentials', async () => {
  const refused = await failure(query(`http://reader:S3cretPw@127.0.0.1:${port}`, '401'));
  assert.match(refused, new RegExp(`^the reader account was refused by http://127\\.0\\.0\\.1:${port} \\(e: r\\)`));
  const answered = await failure(query(`http://reader:S3cretPw@127.0.0.1:${port}`, '500'));
  assert.match(answered, new RegExp(`^http://127\\.0\\.0\\.1:${port} answered 500`));
  for (const m of [refused, answered]) assert.ok(!m.includes('S3cretPw'), m);
});
