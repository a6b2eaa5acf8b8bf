// The process listening on a loopback port: how bench:correlator measures an
// external CouchDB on this machine as it measures the embedded one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { listeningPid } from '../../../bench/listening-pid.js';

const linux = process.platform === 'linux' ? false : 'reads /proc';

test('the process listening on a loopback port is found; a closed port or a bad URL gives null', { skip: linux }, async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  try {
    assert.equal(listeningPid(`http://127.0.0.1:${port}`), process.pid);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
  assert.equal(listeningPid(`http://127.0.0.1:${port}`), null);
  assert.equal(listeningPid('not a url'), null);
});
