// An HTTP agent for a server couchlog runs as its own user on loopback
// (the embedded ClickHouse). Such a server cannot be handed a held socket
// as PouchDB Server is (embedded/held-port.ts): while it restarts, its port is free,
// and any local user may bind it and be sent the password of the next
// request. So every new connection first asks /proc whose socket would take
// it (listening-sockets.ts), and one of another user is refused before anything
// is sent: the caller sees a connection error and retries as when the
// server is down. A socket is checked once, when it is made; keep-alive
// sockets die with the server they were made to.
import { Agent, type AgentOptions } from 'node:http';
import type { Duplex } from 'node:stream';
import { portUser } from './listening-sockets.js';

/** The error a refused connection fails with (a code of its own, so logs say why). */
export class PortTakenError extends Error {
  readonly code = 'ECOUCHLOG_PORT_TAKEN';
  constructor(host: string, port: number) {
    super(`${host}:${port} is held by another user's process (the embedded server is restarting, or its port was taken): nothing was sent there`);
  }
}

type ConnectOptions = { host?: string | null; port?: number | string | null };
type Created = (err: Error | null, socket?: Duplex) => void;

export class OwnUserAgent extends Agent {
  constructor(options: AgentOptions = {}) {
    super({ keepAlive: true, ...options });
  }

  // Typed loosely by @types/node; Agent calls it with the request's options and a callback.
  override createConnection(options: ConnectOptions, callback: Created): Duplex | undefined {
    const host = String(options.host ?? '127.0.0.1');
    const port = Number(options.port);
    if (portUser(host, port) === 'other') {
      // Asynchronously, as a failed connect is: the request errors, the caller retries.
      process.nextTick(() => callback(new PortTakenError(host, port)));
      return undefined;
    }
    return (Agent.prototype as unknown as { createConnection: (o: ConnectOptions, cb: Created) => Duplex }).createConnection.call(this, options, callback);
  }
}
