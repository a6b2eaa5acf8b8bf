// GET /metrics (Prometheus) and GET /health (JSON; 503 when a sink has been
// failing longer than the threshold or a feed cannot be read, or when the
// correlator stopped because another instance writes its checkpoint).
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from '../lib/logger.js';
import type { CorrelatorMetrics } from './metrics.js';
import type { CorrelatorPipeline } from './pipeline.js';
import type { WriterIdentity } from './feed/writer-claim.js';

export interface HealthDeps {
  pipeline: CorrelatorPipeline;
  metrics: CorrelatorMetrics;
  failingThresholdMs: number;
  clock: () => number;
  logger: Logger;
}

/** Copies the pure engine's counters into the registry just before a scrape. */
function refresh(d: HealthDeps): void {
  const c = d.pipeline.engine.counters;
  const m = d.metrics;
  for (const side of ['A', 'B'] as const) {
    m.eventsIn.set({ side }, c.eventsIn[side]);
    m.orphans.set({ side }, c.orphans[side]);
    m.evictions.set({ side }, c.evictions[side]);
    m.late.set({ side }, c.late[side]);
    m.tooLate.set({ side }, c.tooLate[side]);
    m.future.set({ side }, c.future[side]);
    m.withdrawn.set({ side }, c.withdrawn[side]);
    const pending = d.pipeline.status()[side].pending;
    if (pending !== null) m.feedBacklog.set({ side }, pending);
  }
  m.correlated.set(c.correlated);
  m.corrections.set(c.corrections);
  m.lookups.set(c.lookups);
  m.duplicates.set(c.duplicates);
  for (const [reason, n] of Object.entries(c.dropped)) m.dropped.set({ reason }, n);
  const sizes = d.pipeline.engine.sizes();
  m.bufferSize.set({ buffer: 'waiting' }, sizes.waiting);
  m.bufferSize.set({ buffer: 'http_cached' }, sizes.cachedA);
  m.bufferSize.set({ buffer: 'network_cached' }, sizes.cachedB);
  m.bufferSize.set({ buffer: 'connections' }, sizes.connections);
  m.bufferSize.set({ buffer: 'open_connections' }, sizes.open);
  m.bufferSize.set({ buffer: 'remembered_records' }, sizes.remembered);
  const w = d.pipeline.engine.watermark;
  if (Number.isFinite(w)) m.watermarkLag.set(Math.max(0, (d.clock() - w) / 1000));
  if (d.pipeline.checkpointSavedAt !== null) m.checkpointAge.set((d.clock() - d.pipeline.checkpointSavedAt) / 1000);
  for (const s of d.pipeline.fanout.sinks) m.sinkBacklog.set({ sink: s.name }, s.backlog);
}

/** Who the other instance is, without the claim's bookkeeping (its sequence number, released). */
const identity = ({ instance, host, pid, started_at }: WriterIdentity): WriterIdentity => ({ instance, host, pid, started_at });

export function buildCorrelatorHttp(d: HealthDeps): FastifyInstance {
  // Scrapes every few seconds: no "incoming request"/"request completed" pair per scrape (it filled a terminal in pretty mode).
  const app = Fastify({ loggerInstance: d.logger as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }) });
  app.get('/metrics', async (_req, reply) => {
    refresh(d);
    return reply.type(d.metrics.registry.contentType).send(await d.metrics.registry.metrics());
  });
  app.get('/health', async (_req, reply) => {
    const now = d.clock();
    const failing = (since: number | null) => since !== null && now - since >= d.failingThresholdMs;
    const sinks = Object.fromEntries(
      d.pipeline.fanout.sinks.map((s) => [
        s.name,
        {
          backlog: s.backlog,
          full: s.full,
          failing_since: s.failingSince === null ? null : new Date(s.failingSince).toISOString(),
          unhealthy: failing(s.failingSince),
        },
      ]),
    );
    const feeds = d.pipeline.status();
    const lookupFailing = failing(d.pipeline.lookupFailingSince);
    const superseded = d.pipeline.superseded;
    const unhealthy = Object.values(sinks).some((s) => s.unhealthy) || Object.values(feeds).some((f) => failing(f.failingSince)) || lookupFailing;
    return reply.code(unhealthy || superseded ? 503 : 200).send({
      status: superseded ? 'stopped' : unhealthy ? 'unhealthy' : 'ok',
      // Under `couchlog up` the port stays open after such a stop, so that a monitor sees why nothing is decided.
      ...(superseded && { stopped: { code: superseded.code, reason: superseded.message, other: identity(superseded.other) } }),
      feeds: Object.fromEntries(
        Object.entries(feeds).map(([side, f]) => [side, { ...f, failingSince: f.failingSince === null ? null : new Date(f.failingSince).toISOString() }]),
      ),
      sinks,
      engine: {
        ...d.pipeline.engine.sizes(),
        watermark: Number.isFinite(d.pipeline.engine.watermark) ? new Date(d.pipeline.engine.watermark).toISOString() : null,
      },
      lookups: {
        failing_since: d.pipeline.lookupFailingSince === null ? null : new Date(d.pipeline.lookupFailingSince).toISOString(),
        unhealthy: lookupFailing,
      },
      checkpoint_age_s: d.pipeline.checkpointSavedAt === null ? null : (now - d.pipeline.checkpointSavedAt) / 1000,
    });
  });
  return app;
}
