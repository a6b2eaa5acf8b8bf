// Who holds a loopback port, from /proc: the supervisor's test of "this is
// my child answering", not "something answers".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { portHolder, socketInodes } from '../../../embedded/port-holder.js';
import { canonical, listenersOn, portUser } from '../../../lib/listening-sockets.js';

const linux = process.platform === 'linux' ? false : 'reads /proc';

async function listening(host: string, port = 0): Promise<{ server: Server; port: number } | null> {
  const server = createServer();
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, host, () => resolve(true));
  });
  return ok ? { server, port: (server.address() as { port: number }).port } : null;
}

const close = (server: Server) => new Promise((resolve) => server.close(resolve));
const mine = () => socketInodes(process.pid);
const nobodys = () => new Set<number>();

test('a listener of this process is ours, of anyone else other; a closed port has none', { skip: linux }, async () => {
  const { server, port } = (await listening('127.0.0.1'))!;
  try {
    assert.equal(portHolder('127.0.0.1', port, mine), 'ours');
    assert.equal(portHolder('127.0.0.1', port, nobodys), 'other');
    assert.deepEqual(
      listenersOn(port)!.map((l) => l.address),
      ['127.0.0.1'],
    );
    // Another loopback address is another socket's business.
    assert.equal(portHolder('127.0.0.2', port, mine), 'none');
  } finally {
    await close(server);
  }
  assert.equal(portHolder('127.0.0.1', port, mine), 'none');
});

test('a wildcard listener takes connections to 127.0.0.1; a specific one wins over it', { skip: linux }, async () => {
  const wildcard = (await listening('0.0.0.0'))!;
  try {
    assert.equal(portHolder('127.0.0.1', wildcard.port, mine), 'ours');
    const specific = await listening('127.0.0.2', wildcard.port);
    if (specific === null) return; // the kernel refused it next to the wildcard (no SO_REUSEADDR there): nothing more to see
    try {
      const onlySpecific = () =>
        new Set(
          listenersOn(wildcard.port)!
            .filter((l) => l.address === '127.0.0.2')
            .map((l) => l.inode),
        );
      assert.equal(portHolder('127.0.0.2', wildcard.port, onlySpecific), 'ours');
      assert.equal(portHolder('127.0.0.1', wildcard.port, onlySpecific), 'other');
    } finally {
      await close(specific.server);
    }
  } finally {
    await close(wildcard.server);
  }
});

test('IPv6: ::1 is read from /proc/net/tcp6; an IPv6 wildcard also takes IPv4 connections', { skip: linux }, async (t) => {
  const v6 = await listening('::1');
  if (v6 === null) return t.skip('no IPv6 loopback here');
  try {
    assert.equal(portHolder('::1', v6.port, mine), 'ours');
    assert.equal(portHolder('[::1]', v6.port, nobodys), 'other');
    assert.equal(portHolder('127.0.0.1', v6.port, mine), 'none');
  } finally {
    await close(v6.server);
  }
  const any = (await listening('::'))!;
  try {
    assert.equal(portHolder('127.0.0.1', any.port, mine), 'ours');
  } finally {
    await close(any.server);
  }
});

test('addresses compare in one form', () => {
  assert.equal(canonical('::ffff:127.0.0.1'), '127.0.0.1');
  assert.equal(canonical('[::1]'), canonical('0:0:0:0:0:0:0:1'));
});

test('by user: a listener of this process is ours; a host name cannot be told (it may resolve to either family)', { skip: linux }, async () => {
  const { server, port } = (await listening('127.0.0.1'))!;
  try {
    assert.equal(portUser('127.0.0.1', port), 'ours');
    assert.equal(portUser('127.0.0.2', port), 'none');
    assert.equal(portUser('localhost', port), 'unknown');
    assert.equal(portHolder('localhost', port, mine), 'unknown');
  } finally {
    await close(server);
  }
  assert.equal(portUser('127.0.0.1', port), 'none');
});
