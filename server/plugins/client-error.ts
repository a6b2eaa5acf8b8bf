// Requests Node's HTTP parser refuses before Fastify sees them (malformed
// request lines or headers, Transfer-Encoding with Content-Length, stalled
// headers or bodies, oversized headers) are answered like every other
// error: a CouchDB-style JSON body with a stable code (lib/errors.ts), then
// the connection is closed, since the parser cannot know where the next
// request would start. Fastify's default answered {"error":"Bad Request",
// "message":"Client Error"}, which no CouchDB client reads.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { couchlogError, type ErrorCode } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';

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

/** The response bytes for a refused request: status line, JSON headers, a CouchDB-style body. */
export function clientErrorResponse(err: NodeJS.ErrnoException): string {
  const error = couchlogError(codeOf(err), REASONS[codeOf(err)]!);
  const body = JSON.stringify(error.toBody());
  return (
    `HTTP/1.1 ${error.statusCode} ${STATUS_CODES[error.statusCode]}\r\n` +
    `Connection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

export function clientErrorHandler(logger: Logger): (err: NodeJS.ErrnoException, socket: Socket) => void {
  return (err, socket) => {
    // A reset or a half-written answer cannot be answered again.
    if (err.code === 'ECONNRESET' || !socket.writable || (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
      socket.destroy();
      return;
    }
    logger.debug({ err: { code: err.code, message: err.message } }, 'refused a request the HTTP parser could not read');
    socket.end(clientErrorResponse(err));
  };
}
