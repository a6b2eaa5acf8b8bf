import { createServer } from 'node:net';

// Ports are handed out below Linux's ephemeral range (32768–60999 by
// default), where listen(0) and every outgoing connection take theirs: a
// port found free there could be taken by another test process's client
// socket before our server listens on it (a fresh-clone CI run lost its
// dashboard suite that way). Each process draws from its own slice of
// 20000–31999, chosen by pid, and never hands out the same port twice in a
// row, so parallel test files rarely meet; binding checks what is in use.
const FIRST = 20_000;
const SLICES = 48;
const SLICE_SIZE = 250;
const sliceStart = FIRST + (process.pid % SLICES) * SLICE_SIZE;
let next = Math.floor(Math.random() * SLICE_SIZE);

/** A TCP port on 127.0.0.1 that was free a moment ago, outside the ephemeral range when one is free there. */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < SLICE_SIZE; tries++) {
    const port = sliceStart + (next++ % SLICE_SIZE);
    if (await portFree(port)) return port;
  }
  return ephemeralPort();
}

/** Whether a listen on 127.0.0.1:port succeeds right now. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

function ephemeralPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
