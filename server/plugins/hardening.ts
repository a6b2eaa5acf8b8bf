// What keeps hostile or broken clients from hurting the ingress, and the
// ingress from answering unlike itself while it stops:
// - during shutdown every request gets the ingress's own 503 (code and
//   Retry-After, like every other 503), not Fastify's bare one, and after
//   a deadline the connections still open are closed;
// - failed authentications are limited per client address (429), HEC
//   tokens included;
// - every answer says nosniff and DENY (framing);
// - CORS only for the configured origins (PouchDB Server reflects any
//   Origin with credentials allowed: its CORS headers never pass), and
//   cookies set through the ingress get SameSite=Lax (Secure behind TLS).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { unavailable } from '../../lib/errors.js';
import { credentialKey, extractCredentials } from '../auth/credentials.js';
import type { FailureLimiter, Release } from '../auth/failure-limiter.js';
import { isHec, type KnownGood } from '../auth/known-credentials.js';

export interface HardeningOptions {
  retryAfterS: number;
  /** Failed authentications per address (ingress.auth_failures). */
  limiter: FailureLimiter;
  /** Requests whose credentials need no judging (they hold no place in the limiter). */
  knownGood: KnownGood;
  /** After this long in close(), connections still open are closed. */
  shutdownDeadlineMs: number;
  /** ingress.cors_origins: origins allowed to call with credentials (exact match). */
  corsOrigins: string[];
}

const CORS_METHODS = 'GET, HEAD, POST, PUT, DELETE, OPTIONS';
const CORS_HEADERS = 'accept, authorization, content-type, origin, referer, x-requested-with, x-couch-full-commit';

/** A Set-Cookie value with SameSite=Lax (unless it names one) and Secure when the caller came over TLS. */
export function hardenCookie(cookie: string, secure: boolean): string {
  let out = cookie;
  if (!/;\s*samesite=/i.test(out)) out += '; SameSite=Lax';
  if (secure && !/;\s*secure(\s*;|\s*$)/i.test(out)) out += '; Secure';
  return out;
}

/** Whether a request asks to be authenticated: credentials, a login, or a HEC token (a token guessed is a password guessed). */
function authenticates(request: FastifyRequest): boolean {
  if (isLogin(request)) return true;
  if (extractCredentials(request.headers) !== null) return true;
  return isHec(request) && /^\s*splunk\s/i.test(String(request.headers.authorization ?? ''));
}

/** A refused credential: 401, or HEC's 403 (its only one: "Invalid token"). */
const authFailed = (request: FastifyRequest, status: number) => status === 401 || (status === 403 && isHec(request));

const isLogin = (request: FastifyRequest) => request.method === 'POST' && (request.raw.url ?? '').split('?', 1)[0] === '/_session';

let logins = 0;
/** The guess a request makes: its credentials' fingerprint; every login its own (its name and password are in the body). */
function guessKey(request: FastifyRequest): string {
  if (isLogin(request)) return `login ${++logins}`;
  const creds = extractCredentials(request.headers);
  return creds ? credentialKey(creds) : '';
}

const releases = new WeakMap<FastifyRequest, Release>();

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

  const allowed = new Set(opts.corsOrigins);
  const allowedOrigin = (request: FastifyRequest): string | null => {
    const origin = request.headers.origin;
    return typeof origin === 'string' && allowed.has(origin) ? origin : null;
  };
  // A preflight from an allowed origin is answered here (it carries no credentials).
  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'OPTIONS' || !request.headers['access-control-request-method']) return;
    const origin = allowedOrigin(request);
    if (!origin) return;
    return reply
      .code(204)
      .headers({
        'access-control-allow-origin': origin,
        'access-control-allow-credentials': 'true',
        'access-control-allow-methods': CORS_METHODS,
        'access-control-allow-headers': CORS_HEADERS,
        'access-control-max-age': '600',
        vary: 'Origin',
      })
      .send();
  });
  app.addHook('onSend', async (request, reply, payload) => {
    // Answered before the body was read (refused early): the connection is
    // closed after the answer, so the client stops sending and the socket
    // never waits on a body nobody reads.
    if (!request.raw.complete && !request.raw.readableEnded) reply.header('connection', 'close');
    // Every answer, proxied ones included (Fauxton, _list HTML, documents a
    // browser asks for): no guessing a type from content that writers chose,
    // no framing (clickjacking); pages that set their own policy keep it.
    if (reply.getHeader('x-content-type-options') === undefined) reply.header('x-content-type-options', 'nosniff');
    if (reply.getHeader('x-frame-options') === undefined) reply.header('x-frame-options', 'DENY');
    for (const name of Object.keys(reply.getHeaders())) {
      if (name.toLowerCase().startsWith('access-control-')) reply.removeHeader(name);
    }
    const origin = allowedOrigin(request);
    if (origin) {
      reply.header('access-control-allow-origin', origin);
      reply.header('access-control-allow-credentials', 'true');
      reply.header('access-control-expose-headers', 'content-type, etag, location, retry-after, x-couch-request-id');
      reply.header('vary', 'Origin');
    }
    const cookies = reply.getHeader('set-cookie');
    if (cookies !== undefined) {
      const secure = request.protocol === 'https';
      const list = Array.isArray(cookies) ? cookies.map(String) : [String(cookies)];
      // Fastify appends to set-cookie rather than replacing it: without the removal, CouchDB's
      // unhardened cookie went out next to the hardened one.
      reply.removeHeader('set-cookie');
      reply.header(
        'set-cookie',
        list.map((c) => hardenCookie(c, secure)),
      );
    }
    return payload;
  });

  const { limiter, knownGood } = opts;
  if (limiter.enabled) {
    app.addHook('onRequest', async (request, reply) => {
      if (!authenticates(request)) return;
      limiter.check(request.ip);
      if (knownGood(request)) return;
      const release = limiter.admit(request.ip, guessKey(request));
      releases.set(request, release);
      // An aborted request never reaches onResponse; its place is given back all the same.
      // A finished one is judged here too, by the status sent, so that a failure still
      // counts if 'close' ever comes before the onResponse hooks (another async hook ahead).
      reply.raw.once('close', () => release(reply.raw.writableFinished && authFailed(request, reply.raw.statusCode)));
    });
    app.addHook('onResponse', async (request, reply) => {
      const failed = authFailed(request, reply.statusCode) && authenticates(request);
      const release = releases.get(request);
      if (release) release(failed);
      else if (failed) limiter.fail(request.ip);
    });
  }
}

export default fp(hardening, { name: 'couchlog-hardening' });
