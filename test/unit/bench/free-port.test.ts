// freePort: ports below the ephemeral range, never the same twice in a row, skipping ports in use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { freePort } from '../../../bench/free-port.js';

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

test('freePort hands out distinct bindable ports below the ephemeral range', async () => {
  const ports = [];
  for (let i = 0; i < 20; i++) ports.push(await freePort());
  assert.equal(new Set(ports).size, ports.length);
  for (const p of ports) assert.ok(p >= 20_000 && p < 32_000, `port ${p}`);
  const srv = await listen(ports[0]!);
  await new Promise((resolve) => srv.close(resolve));
});

test('a port in use is skipped', async () => {
  // The next port of this process's slice, taken by someone else first.
  const probe = await freePort();
  const taken = await listen(probe + 1 < 32_000 ? probe + 1 : probe);
  try {
    const port = await freePort();
    assert.notEqual(port, (taken.address() as { port: number }).port);
    const srv = await listen(port);
    await new Promise((resolve) => srv.close(resolve));
  } finally {
    await new Promise((resolve) => taken.close(resolve));
  }
});
