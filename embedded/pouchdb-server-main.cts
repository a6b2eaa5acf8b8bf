// Entry point of the embedded server's child process: PouchDB Server 4.2.0
// with fixes. Four are patches applied by `npm ci` (patches/, patch-package):
// pouchdb-validation reads and compiles the design documents once per
// _bulk_docs, not once per document; pouchdb-utils hashes a new revision
// without copying the document first (same revisions); pouchdb-security
// reads the security object once per _bulk_docs and lets only database
// admins write `_local/_security` (where it keeps that object: unpatched,
// a member can make itself a database admin); pouchdb-adapter-leveldb-core
// reads `_changes` metadata ahead. Without them (installed with
// --ignore-scripts) this says so on stderr, which couchlog logs as a warning.
// The fifth, here: its list functions (pouchdb-list) mark every response
// `Transfer-Encoding: chunked` while Express also sets Content-Length: an
// invalid HTTP response that strict clients (undici, hence the ingress's
// proxy) refuse. The body is always complete, so the header is dropped.
// Arguments are PouchDB Server's own (see `pouchdb-server --help`).
/* eslint-disable @typescript-eslint/no-require-imports */
// Every open _changes feed adds a listener to its database's emitters (the
// `Changes` of the database and the PouchDB object's `destroyed`): eleven
// long polls, well within what the ingress allows readers
// (ingress.feeds.max_open, 64) plus couchlog's own followers, made Node warn
// of a "possible memory leak" on stderr, which couchlog logs as a warning.
// The bound stays finite, so a real leak still shows.
require('node:events').EventEmitter.defaultMaxListeners = 1000;

const utils = require('express-pouchdb/lib/utils') as {
  sendCouchDBResp: (res: unknown, err: unknown, couchResp?: { headers?: Record<string, unknown> }) => unknown;
};

const send = utils.sendCouchDBResp;
utils.sendCouchDBResp = function sendWithoutBogusChunking(res, err, couchResp) {
  if (couchResp && couchResp.headers) delete couchResp.headers['Transfer-Encoding'];
  return send(res, err, couchResp);
};

// The fourth: PouchDB Server hashes passwords with crypto-lite's PBKDF2 in
// plain JavaScript (10,000 iterations: 50 ms of its only thread), on every
// Basic-authenticated request. Setup raises the iterations to CouchDB 3's
// default (600,000), so the check is native, on the thread pool, remembered,
// and bounded (./password-hash.cts): done on this thread, a few anonymous
// wrong passwords at once held every other request for seconds.
{
  const { dirname } = require('node:path') as typeof import('node:path');
  const { createPasswordHasher } = require('./password-hash.cjs') as typeof import('./password-hash.cjs');
  const authUtils = require('pouchdb-auth/lib/utils') as { hashPassword: (password: unknown, salt: unknown, iterations: unknown) => Promise<string> };
  // pouchdb-auth's own copy: its login passes errors of this class through (others become 401).
  const PluginError = require(require.resolve('pouchdb-plugin-error', { paths: [dirname(require.resolve('pouchdb-auth'))] })) as new (o: {
    status: number;
    name: string;
    message: string;
  }) => Error;
  const hasher = createPasswordHasher({
    maxRunning: 2,
    maxWaiting: 32,
    memoSize: 1000,
    busy: () => new PluginError({ status: 503, name: 'service_unavailable', message: 'Too many password checks at once; retry shortly.' }),
  });
  authUtils.hashPassword = (password, salt, iterations) => hasher.hash(password, salt, iterations);
}

// The sixth: pouchdb-size walks a database's folder (one lstat per file)
// on every info(), and pouchdb-auth calls info() of _users on every
// Basic-authenticated request: each batch the ingress writes paid a walk
// of _users (7 % of this server's thread under single POSTs). A folder's
// size is kept for a second; GET /db's disk_size may be that old.
{
  type SizedDb = { name?: string; __opts?: { prefix?: string } };
  const size = require('pouchdb-size') as { getDiskSize: (this: SizedDb, callback?: unknown) => Promise<number> };
  const walk = size.getDiskSize;
  const recent = new Map<string, { at: number; size: Promise<number> }>();
  size.getDiskSize = function recentDiskSize(this: SizedDb, callback?: unknown) {
    if (callback !== undefined) return walk.call(this, callback);
    const key = `${this.__opts?.prefix ?? ''}${this.name ?? ''}`;
    const now = Date.now();
    const hit = recent.get(key);
    if (hit !== undefined && now - hit.at < 1000) return hit.size;
    const measured = walk.call(this);
    recent.set(key, { at: now, size: measured });
    if (recent.size > 1000) recent.delete(recent.keys().next().value!);
    measured.catch(() => recent.delete(key));
    return measured;
  };
}

const fs = require('node:fs') as typeof import('node:fs');
// [file, marker of the patch, what is lost without it, whether that is a security hole]
const patches: Array<[string, string, string, boolean]> = [
  ['pouchdb-validation', 'validationFuncsOfBulk', '_bulk_docs writes cost up to twice as much', false],
  ['pouchdb-utils', 'without copying when there is none', 'writes cost more', false],
  ['pouchdb-security', 'securityOfBulk', 'a database member can rewrite _local/_security and make itself a database admin', true],
  ['pouchdb-security', 'members: {roles: ["_admin"]}', 'a new database is open to every account until its _security is set', true],
  ['express-pouchdb/lib/routes/replicate.js', 'Only server admins may replicate', 'anyone can write any database through _replicate', true],
  ['express-pouchdb/lib/routes/find.js', 'function guard(', 'anyone reads every document with _find and rewrites design documents with _index', true],
  ['express-pouchdb/lib/routes/documents.js', 'var reading =', 'any user can give itself every role', true],
  ['express-pouchdb/lib/routes/bulk-get.js', '_local documents are for admins', 'anyone reads every document with _bulk_get', true],
  [
    'express-pouchdb/lib/index.js',
    "'couchlog-gate'",
    'anyone can reach server routes through /_node/..., run code with _temp_view, write _users and _replicator',
    true,
  ],
  [
    'express-pouchdb/lib/couchlog-gate.js',
    'SERVER_METHODS',
    'anyone kills the server with PUT /_session, a member with a multipart body, and DELETE /_all_dbs hangs every database',
    true,
  ],
  ['express-pouchdb/lib/routes/db.js', 'function openNew(', 'a PUT of a database by a non-admin kills the server', true],
  ['express-pouchdb/lib/create-or-delete-dbs.js', 'the next in line runs', 'one refused database deletion hangs every database request', true],
  ['express-pouchdb/lib/routes/documents.js', "badRequest('invalid_json')", 'a multipart part that is not JSON kills the server', true],
  ['express-pouchdb/lib/index.js', "'couchlog-errors'", 'an error a route throws is answered with its stack trace', false],
  ['express-pouchdb/lib/routes/changes.js', 'longpollTimeout', 'an abandoned or quiet feed stays open until the server stops', false],
  ['pouchdb-adapter-leveldb-core', 'METADATA_AHEAD', '_changes reads are slower', false],
];
// A file the patch adds is missing when the patch is: that is "not patched", not a crash.
const carries = (module: string, marker: string): boolean => {
  try {
    return fs.readFileSync(require.resolve(module), 'utf8').includes(marker);
  } catch {
    return false;
  }
};
const unpatched = patches.filter(([module, marker]) => !carries(module, marker));
if (unpatched.length > 0) {
  const holes = unpatched.some(([, , , security]) => security);
  process.stderr.write(
    `not patched (was npm ci run with --ignore-scripts?): ${unpatched.map(([m, , cost]) => `${m} (${cost})`).join('; ')}; run \`npx patch-package\` in the couchlog folder${holes ? '; not starting with these holes open' : ''}\n`,
  );
  if (holes) process.exit(78); // EX_CONFIG
}

// A request PouchDB Server fails to handle (a rejected promise nobody
// awaits, an 'error' event without a listener: a missing design document
// under _list, an unauthorized continuous feed) must not take the server
// down for every client: it is logged and the server goes on. Anything
// else (a real fault) still ends the process, for the supervisor to restart.
const requestError = (err: unknown): boolean => {
  const status = (err as { status?: unknown } | null)?.status;
  return typeof status === 'number' && status >= 400 && status < 500;
};
process.on('unhandledRejection', (reason) => {
  if (requestError(reason)) {
    process.stderr.write(`unhandled rejection of a request, server goes on: ${String((reason as Error).message).slice(0, 300)}\n`);
    return;
  }
  process.stderr.write(`${(reason as Error)?.stack ?? String(reason)}\n`);
  process.exit(70); // EX_SOFTWARE
});
process.on('uncaughtException', (err) => {
  if (requestError(err)) {
    process.stderr.write(`uncaught request error, server goes on: ${String(err.message).slice(0, 300)}\n`);
    return;
  }
  process.stderr.write(`${err.stack ?? String(err)}\n`);
  process.exit(70); // EX_SOFTWARE
});

// It runs in its own process group (a terminal's Ctrl-C reaches only
// couchlog, which stops it in order): should couchlog itself die without
// stopping it, it must not linger holding the port and the data.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 1000).unref();

require('pouchdb-server/lib/index.js');
