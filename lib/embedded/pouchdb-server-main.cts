// Entry point of the embedded server's child process: PouchDB Server 4.2.0
// with two fixes. The first is patches/pouchdb-validation+4.2.0.patch
// (applied by `npm ci`): a _bulk_docs reads and compiles the design
// documents once, not once per document. Without it (installed with
// --ignore-scripts) everything still works, only writes cost about twice
// as much, so this says so on stderr, which couchlog logs as a warning.
// The second: its list functions (pouchdb-list) mark every response
// `Transfer-Encoding: chunked` while Express also sets Content-Length: an
// invalid HTTP response that strict clients (undici, hence the ingress's
// proxy) refuse. The body is always complete, so the header is dropped.
// Arguments are PouchDB Server's own (see `pouchdb-server --help`).
/* eslint-disable @typescript-eslint/no-require-imports */
const utils = require('express-pouchdb/lib/utils') as {
  sendCouchDBResp: (res: unknown, err: unknown, couchResp?: { headers?: Record<string, unknown> }) => unknown;
};

const send = utils.sendCouchDBResp;
utils.sendCouchDBResp = function sendWithoutBogusChunking(res, err, couchResp) {
  if (couchResp && couchResp.headers) delete couchResp.headers['Transfer-Encoding'];
  return send(res, err, couchResp);
};

const validationSource = require('node:fs').readFileSync(require.resolve('pouchdb-validation'), 'utf8') as string;
if (!validationSource.includes('validationFuncsOfBulk')) {
  process.stderr.write('pouchdb-validation is not patched (was npm ci run with --ignore-scripts?): _bulk_docs writes cost about twice as much; run `npx patch-package` in the couchlog folder\n');
}

require('pouchdb-server/lib/index.js');
