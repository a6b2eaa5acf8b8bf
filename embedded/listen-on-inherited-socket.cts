// Loaded into the embedded server's process ahead of PouchDB Server (node
// --require): its listen on the port couchlog gave it (`--port`) uses the
// socket couchlog bound and handed over as file descriptor 3
// (embedded/held-port.ts), so the port stays couchlog's between a crash and
// the restart. Any other listen is left alone; without a socket on fd 3
// (started by hand) the server binds the port itself, as before.
/* eslint-disable @typescript-eslint/no-require-imports */
const net = require('node:net') as typeof import('node:net');
const fs = require('node:fs') as typeof import('node:fs');

const INHERITED_FD = 3;
const at = process.argv.indexOf('--port');
const port = at > 0 ? Number(process.argv[at + 1]) : NaN;

let inherited = false;
try {
  // bigint: Node 20's fs.realpathSync reads the last plain stat's result
  // from a buffer it shares with fstatSync, and after a socket's it stopped
  // resolving symlinks: modules under a symlinked node_modules were loaded
  // twice, and pouchdb-server-main.cts's native PBKDF2 missed the copy
  // PouchDB Server uses (an admin login took 3 to 6 s instead of 0.1).
  inherited = fs.fstatSync(INHERITED_FD, { bigint: true }).isSocket();
} catch {
  // no fd 3
}

if (inherited && Number.isInteger(port)) {
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function listenOnInheritedSocket(this: import('node:net').Server, ...args: unknown[]) {
    if (Number(args[0]) !== port) return listen.apply(this, args as Parameters<typeof listen>);
    const done = args.find((a) => typeof a === 'function') as (() => void) | undefined;
    return listen.call(this, { fd: INHERITED_FD }, done);
  } as typeof listen;
}
