// Operational endpoints under /_couchlog, a prefix CouchDB never uses.
import type { FastifyInstance } from 'fastify';
import type { CouchHttp } from '../../lib/couch/http.js';
import { CouchlogError } from '../../lib/errors.js';
import { extractCredentials } from '../auth/credentials.js';
import type { CredentialVerifier } from '../auth/credential-verifier.js';
import { unauthorized } from '../../lib/errors.js';
import type { Metrics } from '../plugins/metrics.js';

/** How long health waits for CouchDB before answering 503. */
export const HEALTH_TIMEOUT_MS = 2000;

export interface HealthRoutesOptions {
  http: CouchHttp;
  metrics: Metrics;
  verifier: CredentialVerifier;
  publicMetrics: boolean;
}

export default async function healthRoutes(app: FastifyInstance, opts: HealthRoutesOptions): Promise<void> {
  app.get('/_couchlog/health', { config: { metricsRoute: 'health', rateLimit: false } }, async (_request, reply) => {
    const started = process.hrtime.bigint();
    try {
      // A frozen CouchDB must make health fail fast, not after the 15 s request timeout.
      const res = await opts.http.request('GET', '/', { timeoutMs: HEALTH_TIMEOUT_MS });
      const latencyMs = Number(process.hrtime.bigint() - started) / 1e6;
      const ok = res.status < 500;
      return reply
        .code(ok ? 200 : 503)
        .send({ status: ok ? 'ok' : 'degraded', couchdb: { reachable: true, status: res.status, latency_ms: Math.round(latencyMs * 10) / 10 } });
    } catch (err) {
      const reason = err instanceof CouchlogError ? err.message : String(err);
      return reply
        .code(503)
        .header('retry-after', '5')
        .send({ status: 'unavailable', couchdb: { reachable: false, reason } });
    }
  });

  app.get('/_couchlog/metrics', { config: { metricsRoute: 'metrics', rateLimit: false } }, async (request, reply) => {
    if (!opts.publicMetrics) {
      const creds = extractCredentials(request.headers);
      if (!creds) throw unauthorized('AUTH_REQUIRED', 'Authentication required.');
      // The caller's address goes with the check: CouchDB locks an account out per address, and this
      // route must not let anyone lock the correlator or an admin out at the ingress's own address.
      await opts.verifier.verify(creds, request.ip);
    }
    return reply.type(opts.metrics.registry.contentType).send(await opts.metrics.registry.metrics());
  });
}
