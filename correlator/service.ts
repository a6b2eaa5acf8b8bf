// Assembles a running correlator from the configuration: feeds, engine,
// sinks, checkpoint store, metrics/health server. The order of stop() is
// the contract: stop reading, flush and drain sinks, save the checkpoint,
// then close the HTTP server and connections.
import { resolve } from 'node:path';
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
import { buildCorrelatorHttp } from './http-server.js';
import { CorrelatorMetrics } from './metrics.js';
import { CorrelatorPipeline } from './pipeline.js';
import { WriterClaim, type SecondInstanceError } from './feed/writer-claim.js';
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
}

export interface RunningCorrelator {
  readonly engine: CorrelationEngine;
  pipeline: CorrelatorPipeline;
  http: FastifyInstance | null;
  sinks: Sink[];
  stop(): Promise<void>;
  reopen(): Promise<void>;
  /** Resolves when another instance writes the same checkpoint and started first: the caller stops this one (`couchlog correlator` exits 1; `couchlog up` keeps the rest running). */
  readonly superseded: Promise<SecondInstanceError>;
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
    sinks.push((await openClickhouseSink(config, metrics, log, resolve(config.data_dir, out.clickhouse.dead_letter_file), { unreachable: 'start' })).sink);
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
    // Signed whenever there is a key, under validate too: `couchlog audit` checks log_correlated's signatures
    // whenever it has the key, so that tampering done under audit still shows after a switch back to validate.
    const sign = key !== null ? (doc: Record<string, unknown>, generation: number) => signRecord(doc, generation, key) : null;
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
          onCheckFailed: (err, givenUp) => {
            metrics.sinkRechecksGivenUp.inc({ sink: 'couchdb' }, givenUp);
            log.warn({ sink: 'couchdb', err: (err as Error).message, givenUp }, 'checking deleted records again failed; trying again in a second');
          },
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

export async function startCorrelator(config: Config, logger: Logger, opts: CorrelatorOptions): Promise<RunningCorrelator> {
  const c = config.correlator;
  const log = logger.child({ component: 'correlator' });
  const clock = opts.clock ?? Date.now;
  const http = new CouchHttp(couchUrl(config), { timeoutMs: config.couchdb.request_timeout_ms, retryAfterS: 5 });
  // The correlator's own account: reads the inputs, writes and corrects log_correlated (role log_correlator).
  const account = { authorization: basicAuth(config.users.correlator.user, requirePassword(config, 'correlator')) };
  const metrics = new CorrelatorMetrics();
  // Before the sinks: a bad rule is a ConfigError, with nothing open yet.
  const inputRules = { A: rules(c, c.inputs.http.where), B: rules(c, c.inputs.network.where) };
  let sinks: Sink[];
  try {
    sinks = await buildSinks({ config, http, writer: account, metrics, log, withClickhouse: opts.clickhouse });
  } catch (err) {
    await http.close();
    throw err;
  }
  const fanout = new FanOut(sinks);
  const feeds = {
    A: { feed: new ChangesFeed(http, dbName(c.inputs.http.app), account, c.inputs.batch_size), rules: inputRules.A },
    B: { feed: new ChangesFeed(http, dbName(c.inputs.network.app), account, c.inputs.batch_size), rules: inputRules.B },
  };
  const instance = opts.instance ?? checkpointName(c.shard);
  const lookup = new ConnectionLookup(
    http,
    account,
    { A: { db: feeds.A.feed.db, rules: feeds.A.rules }, B: { db: feeds.B.feed.db, rules: feeds.B.rules } },
    c.outputs.couchdb.enabled ? dbName(c.outputs.couchdb.app) : null,
  );
  const stateDb = correlatorStateDb(c.outputs.couchdb.app);
  const claim = new WriterClaim(http, stateDb, instance, account, (other) => {
    metrics.secondInstance.inc({ stopped: 'other' });
    log.error({ other }, `another correlator writes the checkpoint ${stateDb}/_local/${instance} and started after this one: it stops, this one goes on`);
  });
  const checkpoints = new CheckpointStore(http, stateDb, dbName(c.outputs.couchdb.app), instance, account, claim);
  const pipeline = new CorrelatorPipeline(
    engineConfig(c),
    feeds,
    fanout,
    lookup,
    checkpoints,
    metrics,
    log,
    {
      batchSize: c.inputs.batch_size,
      pollIntervalMs: c.inputs.poll_interval_ms,
      checkpointIntervalMs: c.checkpoint_interval_ms,
      drainTimeoutMs: 10_000,
      lookupSink: c.outputs.couchdb.enabled ? 'couchdb' : null,
    },
    clock,
  );
  try {
    await pipeline.start();
  } catch (err) {
    // Nothing was read: the sinks hold nothing, but their timers and connections would keep the process alive.
    await Promise.allSettled(sinks.map((s) => s.close()));
    await http.close();
    throw err;
  }

  let server: FastifyInstance | null = null;
  if (c.metrics.enabled) {
    server = buildCorrelatorHttp({ pipeline, metrics, failingThresholdMs: c.metrics.sink_failing_threshold_ms, clock, logger: log });
    try {
      await server.listen({ host: c.metrics.host, port: c.metrics.port });
    } catch (err) {
      // The port's error is the one to report; a failed stop is only logged.
      await pipeline.stop().catch((stopErr: unknown) => log.warn({ err: (stopErr as Error).message }, 'stopping after the metrics port failed'));
      await http.close();
      throw new OperationError(`the correlator's metrics port ${c.metrics.host}:${c.metrics.port} cannot be used: ${(err as Error).message}`);
    }
  }
  log.info({ sinks: sinks.map((s) => s.name), http: feeds.A.feed.db, network: feeds.B.feed.db }, 'correlator running');
  let stopping: Promise<void> | undefined;
  return {
    /** The engine in use (restored from the checkpoint at start). */
    get engine() {
      return pipeline.engine;
    },
    pipeline,
    http: server,
    sinks,
    // A second stop (a signal during shutdown, a test's cleanup) waits for the first.
    stop() {
      stopping ??= (async () => {
        try {
          await pipeline.stop();
        } finally {
          // A sink that failed to close must not leave the port and the connections open.
          await server?.close();
          await http.close();
        }
      })();
      return stopping;
    },
    reopen: () => fanout.reopen(),
    superseded: pipeline.supersededSignal,
  };
}
