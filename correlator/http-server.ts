// GET /metrics (Prometheus) and GET /health (JSON; 503 when a sink has been
// failing longer than the threshold or a feed cannot be read). On standby
// (another instance holds the lease) /health answers 200 with status
// `standby` and who holds it: a supervisor must not restart a standby.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from '../lib/logger.js';
import type { CorrelatorMetrics } from './metrics.js';
import type { CorrelatorPipeline } from './pipeline.js';
import type { LeaseStatus } from './feed/instance-lease.js';

export interface HealthDeps {
  /** The running pipeline; null on standby. */
  pipeline: () => CorrelatorPipeline | null;
  lease: () => LeaseStatus;
  metrics: CorrelatorMetrics;
  failingThresholdMs: number;
  clock: () => number;
  logger: Logger;
}

/** Copies the pure engine's counters into the registry just before a scrape. */
function refresh(d: HealthDeps, pipeline: CorrelatorPipeline): void {
  const c = pipeline.engine.counters;
  const m = d.metrics;
  for (const side of ['A', 'B'] as const) {
    m.eventsIn.set({ side }, c.eventsIn[side]);
    m.orphans.set({ side }, c.orphans[side]);
    m.evictions.set({ side }, c.evictions[side]);
    m.late.set({ side }, c.late[side]);
    m.tooLate.set({ side }, c.tooLate[side]);
    const pending = pipeline.status()[side].pending;
    if (pending !== null) m.feedBacklog.set({ side }, pending);
  }
  m.correlated.set(c.correlated);
  m.corrections.set(c.corrections);
  m.lookups.set(c.lookups);
  m.duplicates.set(c.duplicates);
  for (const [reason, n] of Object.entries(c.dropped)) m.dropped.set({ reason }, n);
  const sizes = pipeline.engine.sizes();
  m.bufferSize.set({ buffer: 'waiting' }, sizes.waiting);
  m.bufferSize.set({ buffer: 'http_cached' }, sizes.cachedA);
  m.bufferSize.set({ buffer: 'network_cached' }, sizes.cachedB);
  m.bufferSize.set({ buffer: 'connections' }, sizes.connections);
  m.bufferSize.set({ buffer: 'open_connections' }, sizes.open);
  const w = pipeline.engine.watermark;
  if (Number.isFinite(w)) m.watermarkLag.set(Math.max(0, (d.clock() - w) / 1000));
  if (pipeline.checkpointSavedAt !== null) m.checkpointAge.set((d.clock() - pipeline.checkpointSavedAt) / 1000);
  for (const s of pipeline.fanout.sinks) m.sinkBacklog.set({ sink: s.name }, s.backlog);
}

export function buildCorrelatorHttp(d: HealthDeps): FastifyInstance {
  const app = Fastify({ loggerInstance: d.logger as FastifyBaseLogger });
  app.get('/metrics', async (_req, reply) => {
    const pipeline = d.pipeline();
    d.metrics.leaseHeld.set(pipeline === null ? 0 : 1);
    if (pipeline !== null) refresh(d, pipeline);
    return reply.type(d.metrics.registry.contentType).send(await d.metrics.registry.metrics());
  });
  app.get('/health', async (_req, reply) => {
    const pipeline = d.pipeline();
    const lease = d.lease();
    if (pipeline === null) {
      return reply.send({
        status: 'standby',
        lease: { held: false, holder: lease.holder, unchanged_for_s: lease.unchangedForMs === null ? null : lease.unchangedForMs / 1000 },
      });
    }
    const now = d.clock();
    const failing = (since: number | null) => since !== null && now - since >= d.failingThresholdMs;
    const sinks = Object.fromEntries(
      pipeline.fanout.sinks.map((s) => [
        s.name,
        {
          backlog: s.backlog,
          full: s.full,
          failing_since: s.failingSince === null ? null : new Date(s.failingSince).toISOString(),
          unhealthy: failing(s.failingSince),
        },
      ]),
    );
    const feeds = pipeline.status();
    const lookupFailing = failing(pipeline.lookupFailingSince);
    const unhealthy = Object.values(sinks).some((s) => s.unhealthy) || Object.values(feeds).some((f) => failing(f.failingSince)) || lookupFailing;
    return reply.code(unhealthy ? 503 : 200).send({
      status: unhealthy ? 'unhealthy' : 'ok',
      feeds: Object.fromEntries(
        Object.entries(feeds).map(([side, f]) => [side, { ...f, failingSince: f.failingSince === null ? null : new Date(f.failingSince).toISOString() }]),
      ),
      sinks,
      engine: {
        ...pipeline.engine.sizes(),
        watermark: Number.isFinite(pipeline.engine.watermark) ? new Date(pipeline.engine.watermark).toISOString() : null,
      },
      lookups: {
        failing_since: pipeline.lookupFailingSince === null ? null : new Date(pipeline.lookupFailingSince).toISOString(),
        unhealthy: lookupFailing,
      },
      checkpoint_age_s: pipeline.checkpointSavedAt === null ? null : (now - pipeline.checkpointSavedAt) / 1000,
      lease: { held: lease.held, holder: lease.holder },
    });
  });
  return app;
}
