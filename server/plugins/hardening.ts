// What keeps hostile or broken clients from hurting the ingress, and the
// ingress from answering unlike itself while it stops:
// - during shutdown every request gets the ingress's own 503 (code and
//   Retry-After, like every other 503), not Fastify's bare one, and after
//   a deadline the connections still open are closed;
// - failed authentications are limited per client address (429).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { unavailable } from '../../lib/errors.js';
import { extractCredentials } from '../auth/credentials.js';
import { FailureLimiter } from '../auth/failure-limiter.js';

export interface HardeningOptions {
  retryAfterS: number;
  /** ingress.auth_failures */
  authFailures: { max: number; window_ms: number };
  /** After this long in close(), connections still open are closed. */
  shutdownDeadlineMs: number;
}

/** Whether a request asks to be authenticated: credentials, or a login. */
function authenticates(request: FastifyRequest): boolean {
  if (request.method === 'POST' && (request.raw.url ?? '').split('?', 1)[0] === '/_session') return true;
  return extractCredentials(request.headers) !== null;
}

async function hardening(app: FastifyInstance, opts: HardeningOptions): Promise<void> {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
    // In-flight requests are answered until the deadline; then whatever is
    // still open (a stalled body, a slow reader) is cut so the process can end.
    setTimeout(() => app.server.closeAllConnections(), opts.shutdownDeadlineMs).unref();
  });
  app.addHook('onRequest', async (_request, reply) => {
    if (!closing) return;
    reply.header('connection', 'close');
    throw unavailable('INGRESS_SHUTTING_DOWN', 'the ingress is shutting down; retry later', opts.retryAfterS);
  });

  const limiter = new FailureLimiter({ max: opts.authFailures.max, windowMs: opts.authFailures.window_ms });
  if (limiter.enabled) {
    app.addHook('onRequest', async (request) => {
      if (authenticates(request)) limiter.check(request.ip);
    });
    app.addHook('onResponse', async (request, reply) => {
      if (reply.statusCode === 401 && authenticates(request)) limiter.fail(request.ip);
    });
  }
}

export default fp(hardening, { name: 'couchlog-hardening' });
