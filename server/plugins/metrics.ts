// Prometheus metrics of one ingress instance. Each buildApp() gets its own
// registry, so several apps in one process (tests, benchmarks) never share
// or double-register counters.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();

  readonly requests = new Counter({
    name: 'couchlog_ingress_requests_total',
    help: 'HTTP requests answered, by route and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });

  readonly documents = new Counter({
    name: 'couchlog_ingress_documents_total',
    help: 'Documents sent to CouchDB through write routes, by database and per-document result',
    labelNames: ['db', 'result'] as const,
    registers: [this.registry],
  });

  readonly rejected = new Counter({
    name: 'couchlog_ingress_rejected_requests_total',
    help: 'Write requests refused before anything was written, by error code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  readonly batchSize = new Histogram({
    name: 'couchlog_ingress_batch_documents',
    help: 'Documents per _bulk_docs request sent to CouchDB (group commit and bulk requests)',
    labelNames: ['kind'] as const,
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000],
    registers: [this.registry],
  });

  readonly couchLatency = new Histogram({
    name: 'couchlog_couchdb_request_duration_seconds',
    help: 'Latency of the requests the ingress itself makes to CouchDB',
    labelNames: ['op', 'outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly authChecks = new Counter({
    name: 'couchlog_ingress_auth_checks_total',
    help: 'Credential checks, by result (cached, valid, invalid)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly idsTaken = new Counter({
    name: 'couchlog_ingress_ids_taken_total',
    help: 'Documents whose chosen _id another document already had (taken ahead?), stored under a tagged id instead',
    labelNames: ['db'] as const,
    registers: [this.registry],
  });

  readonly feedsOpen = new Gauge({
    name: 'couchlog_ingress_feeds_open',
    help: 'Long-polling and continuous feeds open through the ingress',
    registers: [this.registry],
  });

  readonly feedsRefused = new Counter({
    name: 'couchlog_ingress_feeds_refused_total',
    help: "Proxied requests refused with 429: feeds over the account's share (user) or everybody's (total), requests over the account's in flight (requests)",
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly hecAcksForgotten = new Counter({
    name: 'couchlog_ingress_hec_acks_forgotten_total',
    help: 'HEC indexer acks forgotten before their client asked (it sends the events again), by reason: channel_limit, token_limit, channel_evicted, channel_idle',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor(defaults = true) {
    if (defaults) collectDefaultMetrics({ register: this.registry, prefix: 'couchlog_ingress_' });
  }
}
