// lib/own-user-agent.ts: connections to the embedded ClickHouse's port
// go only to a socket of couchlog's own user. A squatter is another local
// user's process listening there (run here as `nobody` through setpriv,
// which needs root: CI runs as root); it must not be sent a byte, so the
// password in the request's header never reaches it. With the client's own
// agent it got the whole request.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { request } from 'node:http';
import { OwnUserAgent, PortTakenError } from '../../../lib/own-user-agent.js';
import { portUser } from '../../../lib/listening-sockets.js';
import { connect } from '../../../correlator/sinks/clickhouse/clickhouse-delivery.js';

const root = process.platform === 'linux' && process.getuid?.() === 0;
const needsRoot = root ? false : 'needs root (to run a listener as another user) on Linux';

/** A listener as user nobody that reports every byte it receives on stdout. */
let squatter: ChildProcess | null = null;
let squatterPort = 0;
let received = '';

before(async () => {
  if (!root) return;
  const code = `
    const net = require('node:net');
    const s = net.createServer((c) => c.on('data', (d) => process.stdout.write('DATA ' + d.toString('base64') + '\\n')));
    s.listen(0, '127.0.0.1', () => process.stdout.write('PORT ' + s.address().port + '\\n'));`;
  squatter = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  squatterPort = await new Promise<number>((resolve, reject) => {
    squatter!.once('exit', (c) => reject(new Error(`the squatter exited (${c})`)));
    squatter!.stdout!.on('data', (d: Buffer) => {
      received += d.toString();
      const m = /PORT (\d+)/.exec(received);
      if (m) resolve(Number(m[1]));
    });
  });
});
after(() => squatter?.kill('SIGKILL'));

const get = (agent: OwnUserAgent | undefined, port: number) =>
  new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent, headers: { authorization: 'Basic c2VjcmV0OnNlY3JldA==' } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.end();
  });

test("a port held by another user's process: the connection is refused before a byte is sent", { skip: needsRoot }, async () => {
  assert.equal(portUser('127.0.0.1', squatterPort), 'other');
  const agent = new OwnUserAgent();
  try {
    await assert.rejects(get(agent, squatterPort), (err: unknown) => err instanceof PortTakenError && /held by another user's process/.test(err.message));
    // The ClickHouse client the correlator and setup use, on the embedded server's terms.
    const client = connect({
      url: `http://127.0.0.1:${squatterPort}`,
      user: 'default',
      password: 'S3cret',
      database: 'couchlog',
      table: 't',
      timeoutMs: 2000,
      ownUser: true,
    });
    try {
      await assert.rejects(client.query({ query: 'SELECT 1' }), /held by another user's process/);
    } finally {
      await client.close();
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.doesNotMatch(received, /DATA/, 'the squatter was sent something');
  } finally {
    agent.destroy();
  }
});

test('a port of our own user: requests go through, over kept-alive sockets', async () => {
  const server: Server = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const agent = new OwnUserAgent();
  let connections = 0;
  server.on('connection', () => connections++);
  try {
    if (process.platform === 'linux') assert.equal(portUser('127.0.0.1', port), 'ours');
    assert.deepEqual([await get(agent, port), await get(agent, port), await get(agent, port)], [200, 200, 200]);
    assert.equal(connections, 1, 'one kept-alive socket');
  } finally {
    agent.destroy();
    await new Promise((r) => server.close(r));
  }
});

test('nothing listening: the usual connection error', async () => {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  const agent = new OwnUserAgent();
  try {
    await assert.rejects(get(agent, port), (err: unknown) => (err as { code?: string }).code === 'ECONNREFUSED');
  } finally {
    agent.destroy();
  }
});
