// A local user who binds an embedded server's port once the server has
// died must get nothing from couchlog (reviewer's finding, 2026-12-07: a
// fake HTTP server on the crashed PouchDB Server's port was sent, in clear
// text, the Basic credentials of admin, reader, writer and correlator, and
// the supervisor took it for the restarted server). The supervisor only
// takes its own child for the server (the listening socket must be the
// child's, by /proc) and gives up for good on a port held by another
// process; the embedded CouchDB's port is held by couchlog itself between
// a crash and the restart, so nobody else can bind it at all.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SupervisedProcess } from '../../embedded/supervised-process.js';
import type { EmbeddedCouch } from '../../embedded/pouchdb-server.js';
import { createLogger } from '../../lib/logger.js';
import { embeddedOnly, freePort, http, JSON_TYPE, startStack } from '../helpers/stack.js';

const dir = mkdtempSync(join(tmpdir(), 'couchlog-squatter-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent', 'test');

/** A fake server that answers like CouchDB and records every request it gets. */
function squatter(): { server: Server; seen: Array<{ method: string; url: string; authorization?: string }> } {
  const seen: Array<{ method: string; url: string; authorization?: string }> = [];
  const server = createServer((req: IncomingMessage, res) => {
    seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization });
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ couchdb: 'Welcome', ok: true, userCtx: { name: null, roles: ['_admin'] } }));
  });
  return { server, seen };
}

/** Listens on `port`; false when the port is taken (EADDRINUSE). */
function tryListen(server: Server, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const listening = () => {
      server.off('error', failed);
      resolve(true);
    };
    const failed = () => {
      server.off('listening', listening);
      resolve(false);
    };
    server.once('error', failed);
    server.once('listening', listening);
    server.listen(port, '127.0.0.1');
  });
}

test('a port taken after the child died: the supervisor refuses it, sends it nothing and starts no other child', { timeout: 30_000 }, async () => {
  const port = await freePort();
  const proc = new SupervisedProcess({
    label: 'the test server',
    command: process.execPath,
    args: ['-e', `require('http').createServer((q, r) => r.end('{}')).listen(${port}, '127.0.0.1')`],
    cwd: dir,
    probeUrl: `http://127.0.0.1:${port}/`,
    prepare: () => undefined,
    logFile: join(dir, 'test-server.log'),
    // Long enough for the squatter to bind first, as the reviewer's script did.
    restartDelayMs: 500,
    restartDelayMaxMs: 500,
    startTimeoutMs: 10_000,
    logger,
  });
  const fake = squatter();
  try {
    await proc.start();
    let restarted = false;
    proc.on('restarted', () => (restarted = true));
    const died = new Promise<void>((ok) => proc.once('died', () => ok()));
    process.kill(proc.pid!, 'SIGKILL');
    await died;
    assert.ok(await tryListen(fake.server, port), 'the port is free once the child died');
    const outcome = await new Promise<string>((ok) => {
      void proc.refused?.then(() => ok('refused'));
      proc.once('restarted', () => ok('restarted with the squatter taken for the server'));
      setTimeout(() => ok('nothing within 5 s'), 5000).unref();
    });
    assert.equal(outcome, 'refused', `requests the squatter got: ${JSON.stringify(fake.seen)}`);
    assert.match((await proc.refused).message, new RegExp(`another process holds port ${port} .*nothing is sent to it`));
    await sleep(600); // past another restart delay: nothing more may happen
    assert.equal(restarted, false, 'the squatter was taken for the restarted server');
    assert.equal(proc.pid, undefined, 'no child runs');
    assert.deepEqual(fake.seen, [], 'the squatter got no request at all (not even the probe)');
    await assert.rejects(proc.start(), /another process holds port/, 'a refused supervisor does not start again');
  } finally {
    await proc.stop(2000);
    fake.server.close();
  }
});

test(
  'the embedded CouchDB killed: its port cannot be taken, and no credential of the ingress reaches anyone but the restarted server',
  { skip: embeddedOnly('couchlog supervises only the embedded server'), timeout: 90_000 },
  async (t) => {
    const stack = await startStack();
    const couch = stack.couch as EmbeddedCouch;
    const port = stack.config.couchdb.embedded.port;
    const fake = squatter();
    try {
      const restarted = new Promise<void>((ok) => couch.once('restarted', () => ok()));
      const died = new Promise<void>((ok) => couch.once('died', () => ok()));
      process.kill(couch.pid!, 'SIGKILL');
      await died;
      await sleep(100); // the ingress's pool has seen its connections to the dead server close
      // Requests that need CouchDB while it is down: a reader's credential check, an admin's, an anonymous write (as the writer).
      const during = [
        http(`${stack.url}/log_appname/_all_docs`, { headers: { authorization: stack.auth.reader } }),
        http(`${stack.url}/_all_dbs`, { headers: { authorization: stack.auth.admin } }),
        http(`${stack.url}/log_appname/`, { method: 'POST', headers: JSON_TYPE, body: '{"during":"restart"}' }),
      ];
      // The reviewer's script: bind the port as soon as it can, until the server is back.
      let attempts = 0;
      let bound = false;
      let back = false;
      void restarted.then(() => (back = true));
      for (const deadline = Date.now() + 20_000; !back && !bound && Date.now() < deadline; await sleep(5)) {
        attempts += 1;
        bound = await tryListen(fake.server, port);
      }
      // And with each account's credentials once it is back, whoever holds the port then.
      const later = await Promise.all([
        http(`${stack.url}/log_appname/_all_docs?limit=1`, { headers: { authorization: stack.auth.reader } }),
        http(`${stack.url}/_all_dbs`, { headers: { authorization: stack.auth.admin } }),
        http(`${stack.url}/log_appname/`, { method: 'POST', headers: JSON_TYPE, body: '{"after":"restart"}' }),
      ]);
      t.diagnostic(`${attempts} attempts to bind port ${port} while the server restarted; bound: ${bound}`);
      const leaked = fake.seen.filter((r) => r.authorization !== undefined);
      assert.deepEqual(leaked, [], `credentials the squatter got (it bound the port after ${attempts} attempts)`);
      assert.equal(bound, false, `the squatter bound port ${port} after ${attempts} attempts; requests it got: ${JSON.stringify(fake.seen)}`);
      assert.deepEqual(fake.seen, []);
      assert.ok(back, 'the server came back');
      assert.ok(attempts >= 10, `only ${attempts} attempts`);
      assert.deepEqual(
        (await Promise.all(during)).map((a) => a.status),
        [200, 200, 201],
        'the requests made while it was down wait for the restarted server',
      );
      assert.deepEqual(
        later.map((a) => a.status),
        [200, 200, 201],
      );
    } finally {
      fake.server.close();
      await stack.stop();
    }
  },
);
