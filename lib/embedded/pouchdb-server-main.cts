// Entry point of the embedded server's child process: PouchDB Server 4.2.0
// with one fix. Its list functions (pouchdb-list) mark every response
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

require('pouchdb-server/lib/index.js');
