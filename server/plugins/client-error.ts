// Requests Node's HTTP parser refuses before Fastify sees them (malformed
// request lines or headers, Transfer-Encoding with Content-Length, stalled
// headers or bodies, oversized headers) are answered like every other
// error: a CouchDB-style JSON body with a stable code (lib/errors.ts), then
// the connection is closed, since the parser cannot know where the next
// request would start. Fastify's default answered {"error":"Bad Request",
// "message":"Client Error"}, which no CouchDB client reads. A request on an
// HEC path whose headers were read (a stalled body) gets HEC's own
// {"text","code"} body instead: Splunk clients read `code`, not `error`.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { couchlogError, type ErrorCode } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { HecError } from '../hec/errors.js';

function codeOf(err: NodeJS.ErrnoException): ErrorCode {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'INGRESS_REQUEST_TIMEOUT';
  if (err.code === 'HPE_HEADER_OVERFLOW') return 'INGRESS_HEADERS_TOO_LARGE';
  return 'INGRESS_BAD_HTTP';
}

const REASONS: Record<string, string> = {
  INGRESS_REQUEST_TIMEOUT: 'the request was not received in time',
  INGRESS_HEADERS_TOO_LARGE: 'the request headers are too large',
  INGRESS_BAD_HTTP: 'the request is not valid HTTP/1.1',
};

const HEC_PATH = /^\/services\/collector(?:[/?]|$)/;

/** The refusal as an HEC client expects it: a stall is worth retrying (code 9), anything else is bad data (code 6). */
function hecRefusal(code: ErrorCode): HecError {
  return new HecError(code === 'INGRESS_REQUEST_TIMEOUT' ? 'REQUEST_TIMEOUT' : 'INVALID_DATA_FORMAT');
}

/**
 * The response bytes for a refused request: status line, JSON headers, a
 * CouchDB-style body, or HEC's for a request known to be on an HEC path
 * (`url`: known only once its headers were read).
 */
export function clientErrorResponse(err: NodeJS.ErrnoException, url?: string): string {
  const code = codeOf(err);
  const error = couchlogError(code, REASONS[code]!);
  const hec = url !== undefined && HEC_PATH.test(url) ? hecRefusal(code) : null;
  const status = hec?.statusCode ?? error.statusCode;
  const body = JSON.stringify(hec ? hec.hecBody() : error.toBody());
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
    `Connection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

/** Node's response in progress on the socket, if any (what `_httpMessage` has been since Node 0.x; `req` since 15.7). */
type SocketWithResponse = Socket & { _httpMessage?: { headersSent?: boolean; req?: { url?: string } } };

export function clientErrorHandler(logger: Logger): (err: NodeJS.ErrnoException, socket: Socket) => void {
  return (err, socket) => {
    const res = (socket as SocketWithResponse)._httpMessage;
    // A reset or a half-written answer cannot be answered again.
    if (err.code === 'ECONNRESET' || !socket.writable || res?.headersSent) {
      socket.destroy();
      return;
    }
    logger.debug({ err: { code: err.code, message: err.message } }, 'refused a request the HTTP parser could not read');
    socket.end(clientErrorResponse(err, res?.req?.url));
  };
}
