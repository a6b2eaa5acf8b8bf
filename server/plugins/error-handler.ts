// The one place where errors become HTTP answers: CouchlogErrors keep their
// status and code, Fastify's own errors get CouchDB-style bodies, anything
// unexpected is logged and answered 500 without internals.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { CouchlogError, badRequest, couchlogError, tooLarge, unsupportedMediaType, notFound, ERRORS } from '../../lib/errors.js';

function fromFastify(err: FastifyError): CouchlogError | null {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return tooLarge('INGRESS_BODY_TOO_LARGE', 'the request body is larger than the ingress accepts');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_TYPE':
      return unsupportedMediaType('INGRESS_BAD_CONTENT_TYPE', 'Content-Type must be application/json or application/x-ndjson');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return badRequest('INGRESS_EMPTY_BODY', 'request body is empty');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return badRequest('INGRESS_BAD_CONTENT_LENGTH', 'Content-Length does not match the body');
    default:
      break;
  }
  const status = err.statusCode ?? 500;
  if (status === 429) return couchlogError('INGRESS_RATE_LIMITED', err.message, { headers: { 'Retry-After': '1' } });
  if (status >= 400 && status < 500) return badRequest('INGRESS_BAD_REQUEST', err.message);
  return null;
}

export function sendError(reply: FastifyReply, err: CouchlogError): FastifyReply {
  let headers = err.headers;
  // CouchDB's convention: a script's request (X-Requested-With:
  // XMLHttpRequest) gets no Basic challenge, so the browser shows no login
  // dialog of its own over the page's (the live dashboard's, Fauxton's).
  if (isScriptRequest(reply.request?.headers ?? {}) && headers && 'WWW-Authenticate' in headers) {
    headers = { ...headers };
    delete headers['WWW-Authenticate'];
  }
  return reply.code(err.statusCode).headers(headers).type('application/json').send(err.toBody());
}

export function isScriptRequest(headers: Record<string, string | string[] | undefined>): boolean {
  if (headers['x-requested-with'] === 'XMLHttpRequest') return true;
  // A browser's fetch or XHR (Fauxton's included) sends Sec-Fetch-Site and a
  // Sec-Fetch-Mode other than navigate; only a navigation may still show the
  // dialog. (Node's fetch sends Sec-Fetch-Mode alone: not a browser.)
  const mode = headers['sec-fetch-mode'];
  return typeof headers['sec-fetch-site'] === 'string' && typeof mode === 'string' && mode !== 'navigate';
}

async function errorHandler(app: FastifyInstance): Promise<void> {
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const known = err instanceof CouchlogError ? err : fromFastify(err);
    if (known) {
      if (known.statusCode >= 500) request.log.warn({ code: known.code, err: known.message }, 'request failed');
      return sendError(reply, known);
    }
    request.log.error({ err }, 'unexpected error');
    return reply.code(ERRORS.INGRESS_INTERNAL.status).type('application/json').send(couchlogError('INGRESS_INTERNAL', 'internal error').toBody());
  });
  app.setNotFoundHandler((_request, reply) => sendError(reply, notFound('INGRESS_NOT_FOUND', 'missing')));
}

export default fp(errorHandler, { name: 'couchlog-error-handler' });
