// buildApp(config) assembles the ingress; it never listens by itself, so
// tests and benchmarks can inject requests or listen on any port.
import { randomBytes, randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { couchUrl, dbName, requirePassword, type Config } from '../lib/config/load.js';
import { basicAuth } from '../lib/couch/basic-auth.js';
import { CouchHttp } from '../lib/couch/http.js';
import { tooManyRequests, unavailable } from '../lib/errors.js';
import { createLogger, loggableUrl, type Logger } from '../lib/logger.js';
import { adminClient } from '../lib/couch/admin-client.js';
import { ensureAppDatabase } from '../setup/ensure-app-db.js';
import { CredentialVerifier } from './auth/credential-verifier.js';
import { FailureLimiter } from './auth/failure-limiter.js';
import { knownCredentials } from './auth/known-credentials.js';
import errorHandler from './plugins/error-handler.js';
import pathGuard from './plugins/path-guard.js';
import hardening from './plugins/hardening.js';
import { Metrics } from './plugins/metrics.js';
import healthRoutes from './routes/health-routes.js';
import dashboardRoutes from './routes/dashboard-routes.js';
import proxyRoutes from './routes/proxy-routes.js';
import { ClaimedIds } from './write/claimed-ids.js';
import writeRoutes from './routes/write-routes.js';
import hecRoutes from './hec/hec-routes.js';
import { tokenTable, type TokenTable } from './hec/tokens.js';
import { AppRegistry } from './write/app-registry.js';
import { BulkWriter } from './write/bulk-writer.js';
import { GroupCommit } from './write/group-commit.js';
import { clientErrorHandler } from './plugins/client-error.js';

export interface AppDeps {
  logger?: Logger;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    metricsRoute?: string;
  }
  interface FastifyInstance {
    metrics: Metrics;
    /** The write tokens in use; `couchlog ingress` replaces them on SIGHUP. */
    writeTokens: TokenTable;
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  const ingress = config.ingress;
  const logger = deps.logger ?? createLogger(config.log_level, 'ingress');
  const upstream = couchUrl(config);
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // One line per request, written by the onResponse hook below.
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: ingress.trust_proxy.length > 0 ? ingress.trust_proxy : false,
    bodyLimit: ingress.body_limit_bytes,
    routerOptions: { ignoreTrailingSlash: true, caseSensitive: true },
    // A caller's X-Request-Id is kept (to follow a request across services) only if it is tame.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // Our own 503 while closing (code, Retry-After): plugins/hardening.ts.
    return503OnClosing: false,
    // What Node's HTTP parser refuses, answered CouchDB-style too.
    clientErrorHandler: clientErrorHandler(logger),
    // A stalled request body: 408 and the connection closed (checked every second).
    requestTimeout: ingress.body_timeout_ms,
    http: { headersTimeout: Math.min(60_000, ingress.body_timeout_ms), connectionsCheckingInterval: Math.min(1000, ingress.body_timeout_ms) },
  });

  const metrics = new Metrics();
  app.decorate('metrics', metrics);
  const http = new CouchHttp(upstream, { timeoutMs: config.couchdb.request_timeout_ms, retryAfterS: ingress.retry_after_s });
  const limiter = new FailureLimiter({ max: ingress.auth_failures.max, windowMs: ingress.auth_failures.window_ms });
  const verifier = new CredentialVerifier(
    http,
    {
      ttlMs: ingress.auth_cache_ttl_ms,
      negativeTtlMs: ingress.auth_cache_negative_ttl_ms,
      retryAfterS: ingress.retry_after_s,
      writer: { user: config.users.writer.user, password: requirePassword(config, 'writer') },
      onVerified: (clientIp, key) => limiter.verified(clientIp, key),
    },
    metrics,
  );
  // Without a configured key (an ingress started without setup's secrets.env), one for this process:
  // a document moved twice across a restart may then be stored twice, never lost.
  const idTagKey = ingress.id_tag_key ?? randomBytes(32).toString('hex');
  if (ingress.id_tag_key === null) logger.warn('ingress.id_tag_key is not set (COUCHLOG_ID_TAG_KEY): using one for this process only');
  const writer = new BulkWriter(http, metrics, ingress.retry_after_s, new ClaimedIds(http, idTagKey, ingress.retry_after_s));
  const group = new GroupCommit(
    { maxDocs: ingress.group_commit.max_docs, maxWaitMs: ingress.group_commit.max_wait_ms, maxInflight: ingress.group_commit.max_inflight },
    (target, docs) => writer.write(target, docs, 'group'),
  );
  const registry = appRegistry(config);
  const tokens = tokenTable(config);
  app.decorate('writeTokens', tokens);
  const writerHeaders = { authorization: basicAuth(config.users.writer.user, requirePassword(config, 'writer')) };

  await app.register(errorHandler);
  await app.register(hardening, {
    retryAfterS: ingress.retry_after_s,
    limiter,
    knownGood: knownCredentials(verifier, tokens),
    shutdownDeadlineMs: ingress.shutdown_deadline_ms,
    corsOrigins: ingress.cors_origins,
  });
  await app.register(pathGuard);
  if (ingress.rate_limit.enabled) {
    await app.register(rateLimit, {
      max: ingress.rate_limit.max,
      timeWindow: ingress.rate_limit.window_ms,
      errorResponseBuilder: (_req, ctx) =>
        tooManyRequests('INGRESS_RATE_LIMITED', `rate limit of ${ctx.max} requests per ${ctx.after} exceeded`, Math.max(1, Math.ceil(ctx.ttl / 1000))),
    });
  }

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.config.metricsRoute ?? 'none';
    metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    const ms = Math.round(reply.elapsedTime * 10) / 10;
    // The fields for machines (JSON lines), the message for people (pretty).
    const url = loggableUrl(request.url);
    request.log.info({ http: { method: request.method, url, status: reply.statusCode, ms, route } }, `${request.method} ${url} ${reply.statusCode} ${ms} ms`);
  });

  await app.register(healthRoutes, { http, metrics, verifier, publicMetrics: ingress.public_metrics });
  await app.register(dashboardRoutes, { apps: dashboardApps(config) });
  await app.register(writeRoutes, {
    ingress,
    verifier,
    registry,
    writer,
    group,
    writerHeaders,
    metrics,
    tokens,
  });
  if (ingress.hec.enabled) await app.register(hecRoutes, { ingress, tokens, registry, group, writerHeaders, metrics });
  await app.register(proxyRoutes, {
    upstream,
    verifier,
    requestTimeoutMs: config.couchdb.request_timeout_ms,
    retryAfterS: ingress.retry_after_s,
    feeds: ingress.feeds,
    metrics,
    corsOrigins: ingress.cors_origins,
  });

  // Shutdown order: the server has stopped taking requests; queued
  // documents are written and answered; then the connections to CouchDB go.
  app.addHook('onClose', async () => {
    await group.drain();
    await http.close();
  });
  return app;
}

function appRegistry(config: Config): AppRegistry {
  const apps = Object.keys(config.apps);
  const reserved = [config.correlator.outputs.couchdb.app];
  if (!config.ingress.auto_create) {
    const refuse = async () => {
      throw new Error('auto_create is off');
    };
    return new AppRegistry({ apps, reserved, autoCreate: false, autoCreateMax: 0, createApp: refuse, listApps: refuse });
  }
  // Creating databases takes the admin: fail at start, not on first write.
  const admin = adminClient(config);
  return new AppRegistry({
    apps,
    reserved,
    autoCreate: true,
    autoCreateMax: config.ingress.auto_create_max,
    retryAfterS: config.ingress.retry_after_s,
    createApp: async (app) => {
      try {
        await ensureAppDatabase(admin, app);
      } catch (err) {
        throw unavailable('INGRESS_AUTO_CREATE_FAILED', `log_${app} could not be created: ${(err as Error).message}`, config.ingress.retry_after_s, err);
      }
    },
    listApps: async () => {
      const all = await admin.must<string[]>('listing databases', 'GET', '/_all_dbs');
      return all.filter((db) => db.startsWith(dbName(''))).map((db) => db.slice(dbName('').length));
    },
  });
}

/** The live dashboards: every configured app, and the correlator's records. */
function dashboardApps(config: Config): Record<string, 'fail2ban' | 'correlated' | 'plain'> {
  const apps: Record<string, 'fail2ban' | 'correlated' | 'plain'> = {};
  for (const [name, a] of Object.entries(config.apps))
    apps[name] = a.reports.includes('fail2ban') ? 'fail2ban' : a.reports.includes('correlated') ? 'correlated' : 'plain';
  if (config.correlator.outputs.couchdb.enabled) apps[config.correlator.outputs.couchdb.app] = 'correlated';
  return apps;
}
