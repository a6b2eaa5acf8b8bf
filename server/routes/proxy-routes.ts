// Everything that is not a write route is proxied to CouchDB as it is
// (streamed, never parsed), with the caller's own credentials, and only
// after the ingress has verified those credentials itself. Unauthenticated,
// only the session login/logout and Fauxton's static files get through.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import httpProxy from '@fastify/http-proxy';
import { forbidden, tooLarge, tooManyRequests, unauthorized, unavailable, unsupportedMediaType } from '../../lib/errors.js';
import { extractCredentials } from '../auth/credentials.js';
import { bodyNamesLocal, proxyRefusal, roleOf, segmentsOf } from '../auth/role-policy.js';
import { bufferBody } from '../auth/buffered-body.js';
import { guardLogin } from '../auth/session-login.js';
import { ListGuard } from '../auth/list-guard.js';
import { FeedLimiter, isLiveFeed, proxyPoolSize } from '../auth/feed-limiter.js';
import type { Metrics } from '../plugins/metrics.js';
import { isScriptRequest } from '../plugins/error-handler.js';
import type { CredentialVerifier } from '../auth/credential-verifier.js';

export interface ProxyRoutesOptions {
  upstream: string;
  verifier: CredentialVerifier;
  requestTimeoutMs: number;
  retryAfterS: number;
  feeds: { max_open: number; max_open_per_user: number; max_requests_per_user: number };
  metrics: Metrics;
  /** ingress.cors_origins */
  corsOrigins: string[];
}

/** Requests CouchDB itself serves to anonymous callers and that reveal no data. */
export function isPublic(method: string, path: string): boolean {
  if (path === '/_session') return method === 'GET' || method === 'POST' || method === 'DELETE';
  if (path === '/_utils' || path.startsWith('/_utils/')) return method === 'GET' || method === 'HEAD';
  return false;
}

/** A reader's key list is read whole up to this; larger ones are refused. */
const MAX_IDS_BODY = 4 * 1024 * 1024;

/** POSTs whose body names document ids: _all_docs, _design_docs (and their /queries), _bulk_get; segments decoded as CouchDB reads them. */
function takesIds(path: string): boolean {
  const segs = segmentsOf(path);
  if (segs === null) return true;
  const [, second, third] = segs;
  if (second !== '_all_docs' && second !== '_design_docs' && second !== '_bulk_get') return false;
  return segs.length === 2 || (segs.length === 3 && third === 'queries' && second !== '_bulk_get');
}

/**
 * CouchDB 3 opens any id a key list names, `_local/` ones too: a reader's
 * POST naming one is refused (role-policy.ts refuses the same in a query).
 */
async function refuseLocalIds(request: FastifyRequest): Promise<void> {
  const encoding = String(request.headers['content-encoding'] ?? 'identity')
    .trim()
    .toLowerCase();
  // CouchDB inflates a compressed body; this check would read bytes.
  if (encoding !== 'identity' && encoding !== '') throw unsupportedMediaType('INGRESS_BAD_CONTENT_ENCODING', "a reader's key list is not accepted compressed");
  const raw = await bufferBody(request, MAX_IDS_BODY, () => tooLarge('INGRESS_BODY_TOO_LARGE', `a reader's key list is limited to ${MAX_IDS_BODY} bytes`));
  if (raw === null) return;
  if (bodyNamesLocal(raw.toString('utf8')))
    throw forbidden('AUTH_ROLE_FORBIDDEN', 'a reader may not read _local documents (or send a key list that is not JSON)');
}

/** `PUT /db`, `DELETE /db`, `COPY /db`: creating or dropping a database is for admins only. */
function isDatabaseLevelWrite(method: string, path: string): boolean {
  return (method === 'PUT' || method === 'DELETE' || method === 'COPY') && /^\/[^/]+\/?$/.test(path);
}

export default async function proxyRoutes(app: FastifyInstance, opts: ProxyRoutesOptions): Promise<void> {
  const lists = new ListGuard({ upstream: opts.upstream, timeoutMs: opts.requestTimeoutMs, retryAfterS: opts.retryAfterS });
  const feeds = new FeedLimiter({ maxOpen: opts.feeds.max_open, maxOpenPerUser: opts.feeds.max_open_per_user });
  // Every proxied request holds a connection of the pool while its body comes in and its answer goes out:
  // a reader sending bodies a byte at a time took them all. Counted per account, feeds included.
  const inflight = new FeedLimiter({ maxOpen: Number.POSITIVE_INFINITY, maxOpenPerUser: opts.feeds.max_requests_per_user });
  /** Holds `slot` until the answer is over or the client gone (including gone already, while its credentials were checked). */
  const holdUntilClosed = (request: FastifyRequest, reply: FastifyReply, slot: () => void) => {
    reply.raw.once('close', slot);
    if (request.raw.socket?.destroyed || reply.raw.destroyed) slot();
  };
  const admitRequest = (request: FastifyRequest, reply: FastifyReply, user: string) => {
    const slot = inflight.acquire(user);
    if (typeof slot === 'string') {
      opts.metrics.feedsRefused.inc({ reason: 'requests' });
      throw tooManyRequests(
        'INGRESS_TOO_MANY_PROXIED',
        `Too many requests of this account in progress (at most ${opts.feeds.max_requests_per_user}); retry later`,
        opts.retryAfterS,
      );
    }
    holdUntilClosed(request, reply, slot);
  };
  /** A live feed holds a connection of the pool until it ends: counted from here until the answer is over or the client gone. */
  const admitFeed = (request: FastifyRequest, reply: FastifyReply, user: string) => {
    const slot = feeds.acquire(user);
    if (typeof slot === 'string') {
      opts.metrics.feedsRefused.inc({ reason: slot });
      const whose = slot === 'user' ? `${opts.feeds.max_open_per_user} for one account` : `${opts.feeds.max_open} in all`;
      throw tooManyRequests('INGRESS_TOO_MANY_FEEDS', `Too many long-polling or continuous feeds open (at most ${whose}); retry later`, opts.retryAfterS);
    }
    opts.metrics.feedsOpen.set(feeds.open);
    holdUntilClosed(request, reply, () => {
      slot();
      opts.metrics.feedsOpen.set(feeds.open);
    });
  };
  const loginGuard = { writerLogin: (n: string, p: unknown) => opts.verifier.writerLogin(n, p), corsOrigins: new Set(opts.corsOrigins) };
  const authorize = async (request: FastifyRequest, reply: FastifyReply) => {
    const path = (request.raw.url ?? '/').split('?', 1)[0]!;
    // PouchDB Server parses multipart bodies with multiparty, and a malformed
    // or cut one kills the process (unhandled error): only admins (attachments) send them.
    const multipart = String(request.headers['content-type'] ?? '')
      .trim()
      .toLowerCase()
      .startsWith('multipart/');
    if (multipart && isPublic(request.method, path)) throw unsupportedMediaType('INGRESS_BAD_CONTENT_TYPE', 'multipart bodies are not accepted here');
    if (isPublic(request.method, path)) {
      // Forwarded as they come: a wrong password for the writer must not reach CouchDB's lockout.
      opts.verifier.refuseWrongWriter(request.headers.authorization);
      if (request.method === 'POST' && path === '/_session') await guardLogin(request, loginGuard);
      return;
    }
    const creds = extractCredentials(request.headers);
    if (!creds) throw unauthorized('AUTH_REQUIRED', 'Authentication required.');
    const caller = await opts.verifier.verify(creds, request.ip);
    // PouchDB Server dies on some database-level requests from non-admins;
    // CouchDB refuses them anyway, so refuse them before they get there.
    if (isDatabaseLevelWrite(request.method, path) && !caller.roles.includes('_admin')) {
      throw forbidden('AUTH_ADMIN_ONLY', 'You are not a server admin.');
    }
    // The role policy (server/auth/role-policy.ts), decided before anything is forwarded.
    if (multipart && !caller.roles.includes('_admin')) throw unsupportedMediaType('INGRESS_BAD_CONTENT_TYPE', 'multipart bodies are for admins only');
    const refusal = proxyRefusal(request.method, request.raw.url ?? '/', caller);
    if (refusal) throw forbidden('AUTH_ROLE_FORBIDDEN', refusal);
    // A _list of a missing function kills PouchDB Server: 404 here instead.
    await lists.check(request.raw.url ?? '/', creds);
    if (isLiveFeed(request.raw.url ?? '/')) admitFeed(request, reply, caller.name);
    admitRequest(request, reply, caller.name);
    // After the admission: the per-account limit then bounds what is buffered.
    if (roleOf(caller) === 'reader' && request.method === 'POST' && takesIds(path)) await refuseLocalIds(request);
  };

  await app.register(httpProxy, {
    upstream: opts.upstream,
    preHandler: authorize,
    config: { metricsRoute: 'proxy' },
    // One log line per request (the app's onResponse hook), not three:
    // reply-from would add "fetching from remote server" and "response received".
    disableRequestLogging: true,
    undici: {
      connections: proxyPoolSize(opts.feeds.max_open),
      // Long-polling and continuous _changes feeds keep a response open.
      headersTimeout: Math.max(opts.requestTimeoutMs, 300_000),
      bodyTimeout: 0,
    },
    replyOptions: {
      // The caller's address, so CouchDB's failed-login lockout (3.4+) counts
      // per client, not per ingress; undici cannot send Expect: 100-continue
      // (Node's server already answered 100 Continue to the caller).
      rewriteRequestHeaders: (request, headers) => {
        const { expect: _expect, 'x-forwarded-for': _xff, ...rest } = headers;
        return { ...rest, 'x-forwarded-for': request.ip };
      },
      // As CouchDB 3 does itself: no Basic challenge for a script's request
      // (PouchDB Server sends one regardless), so no browser dialog pops up.
      rewriteHeaders: (headers, request) => {
        if (request && isScriptRequest(request.headers)) delete headers['www-authenticate'];
        return headers;
      },
      onError: (reply, { error }) => {
        reply.send(unavailable('COUCHDB_UNAVAILABLE', `CouchDB is unavailable (${(error as Error).message}); retry later`, opts.retryAfterS, error));
      },
    },
  });
}
