// Assembles a running correlator from the configuration: feeds, engine,
// sinks, checkpoint store, metrics/health server, and the instance lease
// (feed/instance-lease.ts): the pipeline runs only while this instance holds
// it; otherwise it waits on standby, and after losing it stops reading and
// waits again. The order of stop() is the contract: stop reading, flush and
// drain sinks, save the checkpoint, release the lease, then close the HTTP
// server and connections.
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { checkpointName, correlatorStateDb, couchUrl, dbName, namedSecret, requirePassword, SIGNING_KEY_NAME, type Config } from '../lib/config/load.js';
import { basicAuth } from '../lib/couch/basic-auth.js';
import { CouchHttp } from '../lib/couch/http.js';
import { ConfigError, OperationError } from '../lib/errors.js';
import { signRecord } from '../lib/audit/record-signature.js';
import type { Logger } from '../lib/logger.js';
import { openClickhouseSink } from './sinks/clickhouse/open-sink.js';
import type { CorrelationEngine } from './engine/engine.js';
import { engineConfig } from './engine-config.js';
import { IpFilter } from './engine/ip-filter.js';
import type { NormalizeRules } from './engine/normalize.js';
import { ChangesFeed } from './feed/changes-feed.js';
import { ConnectionLookup } from './feed/connection-lookup.js';
import { CheckpointStore } from './feed/checkpoint-store.js';
import { InstanceLease, type LeaseAttempt, type LeaseStatus } from './feed/instance-lease.js';
import { buildCorrelatorHttp } from './http-server.js';
import { CorrelatorMetrics } from './metrics.js';
import { CorrelatorPipeline } from './pipeline.js';
import { BatchingSink } from './sinks/batching-sink.js';
import { CouchDbDelivery } from './sinks/couchdb/couchdb-sink.js';
import { DeadLetterFile } from './sinks/dead-letter-file.js';
import { FanOut } from './sinks/fan-out.js';
import { FileSink } from './sinks/file/file-sink.js';
import type { Sink } from './sinks/sink.js';
import { StdoutSink } from './sinks/stdout/stdout-sink.js';
import { HecDelivery } from './sinks/hec/hec-sink.js';

export interface CorrelatorOptions {
  /** False when `up` found no ClickHouse to run: the ClickHouse sink is off. */
  clickhouse: boolean;
  clock?: () => number;
  /** Checkpoint document name: one per correlator instance. */
  instance?: string;
  /** This instance's identity in the lease (default host:pid:nonce; tests run several in one process). */
  holder?: string;
}

export interface RunningCorrelator {
  /** The engine and pipeline of the running instance (an OperationError on standby). */
  readonly engine: CorrelationEngine;
  readonly pipeline: CorrelatorPipeline;
  /** Another instance holds the lease: this one waits to take over. */
  readonly standby: boolean;
  lease(): LeaseStatus;
  http: FastifyInstance | null;
  readonly sinks: Sink[];
  stop(): Promise<void>;
  reopen(): Promise<void>;
}

function rules(c: Config['correlator'], where: NormalizeRules['where']): NormalizeRules {
  let exclude: IpFilter;
  try {
    exclude = new IpFilter(c.exclude_source_ips);
  } catch (err) {
    throw new ConfigError([`correlator.exclude_source_ips: ${(err as Error).message}`]);
  }
  return { exclude, includePorts: new Set(c.include_dest_ports), where, shard: c.shard };
}

/** What the sinks are built from. */
interface SinkContext {
  config: Config;
  http: CouchHttp;
  /** The correlator's account, which writes log_correlated. */
  writer: Record<string, string>;
  metrics: CorrelatorMetrics;
  log: Logger;
  withClickhouse: boolean;
}

async function buildSinks(ctx: SinkContext): Promise<Sink[]> {
  const sinks: Sink[] = [];
  try {
    await addSinks(sinks, ctx);
  } catch (err) {
    // A later sink's configuration is wrong: the ones built before hold timers and connections.
    await Promise.allSettled(sinks.map((s) => s.close()));
    throw err;
  }
  return sinks;
}

async function addSinks(sinks: Sink[], { config, http, writer, metrics, log, withClickhouse }: SinkContext): Promise<void> {
  const out = config.correlator.outputs;
  const retry = (o: { retry_initial_ms: number; retry_max_ms: number }) => ({ retryInitialMs: o.retry_initial_ms, retryMaxMs: o.retry_max_ms });
  if (out.clickhouse.enabled && config.clickhouse.enabled && withClickhouse) {
    sinks.push((await openClickhouseSink(config, metrics, log, resolve(config.data_dir, out.clickhouse.dead_letter_file))).sink);
  } else if (out.clickhouse.enabled) {
    log.warn('the ClickHouse sink is off (no ClickHouse to write to); once it runs, couchlog backfill copies the records decided meanwhile');
  }
  if (out.couchdb.enabled) {
    const o = out.couchdb;
    const key = o.signing_key;
    if (o.protection === 'audit' && key === null)
      throw new ConfigError([
        `correlator.outputs.couchdb.signing_key: required with protection audit: set ${SIGNING_KEY_NAME} (environment or ${resolve(config.data_dir, 'secrets.env')}; couchlog setup generates it)`,
      ]);
    const sign = o.protection === 'audit' ? (doc: Record<string, unknown>) => signRecord(doc, key!) : null;
    sinks.push(
      new BatchingSink(
        'couchdb',
        new CouchDbDelivery(http, dbName(o.app), writer, {
          onCorrection: (n) => metrics.sinkCorrections.inc({ sink: 'couchdb' }, n),
          sign,
          onPartialWrite: (n) => metrics.sinkPartialWrites.inc({ sink: 'couchdb' }, n),
          onResurrection: (n) => {
            metrics.sinkResurrections.inc({ sink: 'couchdb' }, n);
            if (n > 0)
              log.warn({ sink: 'couchdb', records: n }, 'deleted records were live again (a cluster copy applied an earlier write late): deleted again');
          },
          onCheckFailed: (err, givenUp) =>
            log.warn({ sink: 'couchdb', err: (err as Error).message, givenUp }, 'checking deleted records again failed; trying again in a second'),
        }),
        {
          batchSize: o.batch_size,
          maxBatchSize: o.batch_size,
          concurrency: o.concurrency,
          flushIntervalMs: o.flush_interval_ms,
          maxBufferSize: o.max_buffer_size,
          dropOnOverflow: false,
          ...retry(o),
        },
        new DeadLetterFile(resolve(config.data_dir, 'couchdb-dead-letter.jsonl')),
        metrics,
        log,
      ),
    );
  }
  if (out.splunk_hec.enabled) {
    const o = out.splunk_hec;
    const token = o.token ?? namedSecret(config, 'COUCHLOG_CORRELATOR_HEC_TOKEN');
    if (token === null)
      throw new ConfigError([
        `correlator.outputs.splunk_hec: no token: set COUCHLOG_CORRELATOR_HEC_TOKEN (environment or ${resolve(config.data_dir, 'secrets.env')})`,
      ]);
    const hec = {
      url: o.url!,
      token,
      gzip: o.gzip,
      caFile: o.ca_file ?? undefined,
      verifyTls: o.verify_tls,
      timeoutMs: o.timeout_ms,
      ack: o.ack ? ('auto' as const) : ('off' as const),
      ackTimeoutMs: o.ack_timeout_ms,
      ackPollMs: 200,
    };
    sinks.push(
      new BatchingSink(
        'splunk_hec',
        new HecDelivery(hec, { index: o.index, source: o.source, sourcetype: o.sourcetype }),
        {
          batchSize: o.batch_size,
          maxBatchSize: o.batch_size,
          concurrency: o.concurrency,
          flushIntervalMs: o.flush_interval_ms,
          maxBufferSize: o.max_buffer_size,
          dropOnOverflow: false,
          ...retry(o),
        },
        new DeadLetterFile(resolve(config.data_dir, o.dead_letter_file)),
        metrics,
        log,
      ),
    );
  }
  if (out.file.enabled) sinks.push(new FileSink(resolve(config.data_dir, out.file.path), metrics, log));
  if (out.stdout.enabled) sinks.push(new StdoutSink(metrics, log));
}

/** One run of the pipeline while this instance holds its lease: sinks, feeds, engine, checkpoints. */
interface PipelineRun {
  pipeline: CorrelatorPipeline;
  sinks: Sink[];
  fanout: FanOut;
}

interface RunContext {
  config: Config;
  http: CouchHttp;
  account: Record<string, string>;
  metrics: CorrelatorMetrics;
  log: Logger;
  clock: () => number;
  inputRules: Record<'A' | 'B', NormalizeRules>;
  instance: string;
  lease: InstanceLease;
  withClickhouse: boolean;
}

/** Builds the sinks and the pipeline and starts it from the checkpoint; on failure nothing stays open. */
async function startRun(x: RunContext): Promise<PipelineRun> {
  const c = x.config.correlator;
  const sinks = await buildSinks({ config: x.config, http: x.http, writer: x.account, metrics: x.metrics, log: x.log, withClickhouse: x.withClickhouse });
  const fanout = new FanOut(sinks);
  const feeds = {
    A: { feed: new ChangesFeed(x.http, dbName(c.inputs.http.app), x.account, c.inputs.batch_size), rules: x.inputRules.A },
    B: { feed: new ChangesFeed(x.http, dbName(c.inputs.network.app), x.account, c.inputs.batch_size), rules: x.inputRules.B },
  };
  const lookup = new ConnectionLookup(
    x.http,
    x.account,
    { A: { db: feeds.A.feed.db, rules: feeds.A.rules }, B: { db: feeds.B.feed.db, rules: feeds.B.rules } },
    c.outputs.couchdb.enabled ? dbName(c.outputs.couchdb.app) : null,
  );
  const checkpoints = new CheckpointStore(x.http, correlatorStateDb(c.outputs.couchdb.app), dbName(c.outputs.couchdb.app), x.instance, x.account, x.lease);
  const pipeline = new CorrelatorPipeline(
    engineConfig(c),
    feeds,
    fanout,
    lookup,
    checkpoints,
    x.metrics,
    x.log,
    {
      batchSize: c.inputs.batch_size,
      pollIntervalMs: c.inputs.poll_interval_ms,
      checkpointIntervalMs: c.checkpoint_interval_ms,
      drainTimeoutMs: 10_000,
      lookupSink: c.outputs.couchdb.enabled ? 'couchdb' : null,
    },
    x.clock,
  );
  try {
    await pipeline.start();
  } catch (err) {
    // Nothing was read: the sinks hold nothing, but their timers and connections would keep the process alive.
    await Promise.allSettled(sinks.map((s) => s.close()));
    throw err;
  }
  x.log.info({ sinks: sinks.map((s) => s.name), http: feeds.A.feed.db, network: feeds.B.feed.db }, 'correlator running');
  return { pipeline, sinks, fanout };
}

/** The lease's first look, with the errors an operator can act on. */
async function firstLook(lease: InstanceLease, stateDb: string): Promise<LeaseAttempt> {
  try {
    return await lease.tryAcquire();
  } catch (err) {
    if (err instanceof OperationError) throw err;
    throw new OperationError(`the correlator's lease in ${stateDb} cannot be read: ${(err as Error).message}`);
  }
}

export async function startCorrelator(config: Config, logger: Logger, opts: CorrelatorOptions): Promise<RunningCorrelator> {
  const c = config.correlator;
  const log = logger.child({ component: 'correlator' });
  const clock = opts.clock ?? Date.now;
  // Before anything opens: a bad rule is a ConfigError.
  const inputRules = { A: rules(c, c.inputs.http.where), B: rules(c, c.inputs.network.where) };
  const http = new CouchHttp(couchUrl(config), { timeoutMs: config.couchdb.request_timeout_ms, retryAfterS: 5 });
  // The correlator's own account: reads the inputs, writes and corrects log_correlated (role log_correlator).
  const account = { authorization: basicAuth(config.users.correlator.user, requirePassword(config, 'correlator')) };
  const metrics = new CorrelatorMetrics();
  const instance = opts.instance ?? checkpointName(c.shard);
  const stateDb = correlatorStateDb(c.outputs.couchdb.app);
  const lease = new InstanceLease(http, stateDb, instance, account, { ttlMs: c.lease_ttl_ms, holder: opts.holder, log });
  const ctx: RunContext = { config, http, account, metrics, log, clock, inputRules, instance, lease, withClickhouse: opts.clickhouse };

  // Taken at the first look (the common case: no other instance), the
  // pipeline runs before this returns and its setup errors reach the
  // caller; otherwise this instance returns on standby.
  let run: PipelineRun | null = null;
  try {
    if ((await firstLook(lease, stateDb)).taken) run = await startRun(ctx);
  } catch (err) {
    await lease.release();
    await http.close();
    throw err;
  }
  metrics.leaseHeld.set(run === null ? 0 : 1);

  let stopping = false;
  const stopped = new AbortController();
  const wait = (ms: number) => sleep(ms, undefined, { signal: stopped.signal }).catch(() => {});
  // Renews the lease while running; on standby, looks until it can take it.
  const supervise = async (): Promise<void> => {
    while (!stopping) {
      if (run === null) {
        let attempt: LeaseAttempt;
        try {
          attempt = await lease.tryAcquire();
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'reading the lease failed; trying again');
          attempt = { taken: false, retryInMs: lease.renewEveryMs };
        }
        if (!attempt.taken) {
          await wait(attempt.retryInMs);
          continue;
        }
        if (stopping) break;
        try {
          run = await startRun(ctx);
          metrics.leaseHeld.set(1);
        } catch (err) {
          log.error({ err: (err as Error).message }, 'starting after taking over the lease failed: releasing it, trying again later');
          await lease.release();
          lease.reset();
          await wait(lease.ttlMs);
        }
        continue;
      }
      await wait(lease.renewEveryMs);
      if (stopping) break;
      const lost = await lease.renew();
      if (lost === null) continue;
      log.error({ lease: instance, why: lost }, 'lost the lease: this instance stops reading (no checkpoint saved) and waits on standby');
      metrics.leaseLost.inc();
      metrics.leaseHeld.set(0);
      const ending = run;
      run = null;
      await ending.pipeline.stop();
      lease.reset();
    }
  };
  const supervising = supervise();

  let server: FastifyInstance | null = null;
  if (c.metrics.enabled) {
    server = buildCorrelatorHttp({
      pipeline: () => run?.pipeline ?? null,
      lease: () => lease.status(),
      metrics,
      failingThresholdMs: c.metrics.sink_failing_threshold_ms,
      clock,
      logger: log,
    });
    try {
      await server.listen({ host: c.metrics.host, port: c.metrics.port });
    } catch (err) {
      // The port's error is the one to report; a failed stop is only logged.
      stopping = true;
      stopped.abort();
      await supervising;
      await (run as PipelineRun | null)?.pipeline
        .stop()
        .catch((stopErr: unknown) => log.warn({ err: (stopErr as Error).message }, 'stopping after the metrics port failed'));
      await lease.release();
      await http.close();
      throw new OperationError(`the correlator's metrics port ${c.metrics.host}:${c.metrics.port} cannot be used: ${(err as Error).message}`);
    }
  }
  if (run === null) log.warn({ lease: instance }, 'correlator on standby');
  let stopping$: Promise<void> | undefined;
  const current = (): PipelineRun => {
    if (run === null) throw new OperationError(`the correlator is on standby: another instance holds the lease ${instance}`);
    return run;
  };
  return {
    /** The engine in use (restored from the checkpoint at start). */
    get engine() {
      return current().pipeline.engine;
    },
    get pipeline() {
      return current().pipeline;
    },
    get sinks() {
      return run?.sinks ?? [];
    },
    get standby() {
      return run === null;
    },
    lease: () => lease.status(),
    http: server,
    // The contract: stop reading, flush and drain sinks, save the checkpoint (pipeline.stop), then let go of the lease.
    // A second stop (a signal during shutdown, a test's cleanup) waits for the first.
    stop() {
      stopping$ ??= (async () => {
        stopping = true;
        stopped.abort();
        await supervising;
        await (run as PipelineRun | null)?.pipeline.stop();
        await lease.release();
        await server?.close();
        await http.close();
      })();
      return stopping$;
    },
    reopen: async () => run?.fanout.reopen(),
  };
}
