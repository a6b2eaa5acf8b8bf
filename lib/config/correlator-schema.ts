// Configuration of the correlator and of ClickHouse, with their defaults.
// Key names follow logcorrelator's (seed 000/001) wherever it has one.
import { z } from 'zod';

const port = z.number().int().min(1).max(65535);
const host = z.string().min(1);
const appRef = z
  .string()
  .max(64)
  .regex(/^[a-z][a-z0-9_-]*$/, 'an app name (its database is log_<app>)');

const feed = (defaultApp: string) =>
  z
    .object({
      /** The app whose log_<app> database this side is read from. */
      app: appRef.default(defaultApp),
      /** Only documents whose `field` equals `equals` (one shared database for both sides). */
      where: z
        .object({ field: z.string().min(1), equals: z.union([z.string(), z.number(), z.boolean()]) })
        .strict()
        .nullable()
        .default(null),
    })
    .strict()
    .default({});

const clickhouseSink = z
  .object({
    enabled: z.boolean().default(true),
    batch_size: z.number().int().min(1).max(100_000).default(500),
    /**
     * Rows per INSERT while a backlog waits (catching up, or ClickHouse slower
     * than the feed): ClickHouse writes one part per INSERT, so a backlog goes
     * in fewer, larger ones. Never less than batch_size.
     */
    max_batch_size: z.number().int().min(1).max(100_000).default(2000),
    /** Batches in flight at once: the next one is on its way while the server stores the last. */
    concurrency: z.number().int().min(1).max(16).default(2),
    flush_interval_ms: z.number().int().min(1).max(60_000).default(200),
    /** Records held while ClickHouse is slow or down; beyond it the correlator stops reading (or drops, below). */
    max_buffer_size: z.number().int().min(1).default(5000),
    /** true: drop (and count) records beyond max_buffer_size instead of applying backpressure. */
    drop_on_overflow: z.boolean().default(false),
    timeout_ms: z.number().int().min(100).max(600_000).default(5000),
    retry_initial_ms: z.number().int().min(1).default(100),
    retry_max_ms: z.number().int().min(1).default(30_000),
    /** Rows ClickHouse refuses for good (schema, bad value), as JSON lines; relative to data_dir. */
    dead_letter_file: z.string().min(1).default('clickhouse-dead-letter.jsonl'),
  })
  .strict()
  .default({});

const couchdbSink = z
  .object({
    enabled: z.boolean().default(true),
    /** Records go to log_<app>, with its report design document. */
    app: appRef.default('correlated'),
    batch_size: z.number().int().min(1).max(10_000).default(500),
    /** _bulk_docs in flight at once. */
    concurrency: z.number().int().min(1).max(16).default(2),
    flush_interval_ms: z.number().int().min(1).max(60_000).default(200),
    max_buffer_size: z.number().int().min(1).default(5000),
    retry_initial_ms: z.number().int().min(1).default(100),
    retry_max_ms: z.number().int().min(1).default(30_000),
  })
  .strict()
  .default({});

/** Correlated records to a Splunk HTTP Event Collector (docs/forwarding.md). */
const splunkHecSink = z
  .object({
    enabled: z.boolean().default(false),
    /** The HEC base URL (https://splunk:8088) or its event URL. */
    url: z.string().url().nullable().default(null),
    /** null: COUCHLOG_CORRELATOR_HEC_TOKEN from the environment, else <data_dir>/secrets.env. */
    token: z.string().min(1).nullable().default(null),
    /** null: the token's default index. */
    index: z.string().min(1).nullable().default(null),
    source: z.string().min(1).default('couchlog:correlated'),
    sourcetype: z.string().min(1).default('couchlog:correlated'),
    gzip: z.boolean().default(true),
    ca_file: z.string().min(1).nullable().default(null),
    verify_tls: z.boolean().default(true),
    timeout_ms: z.number().int().min(100).default(30_000),
    /** Wait for indexer acknowledgment when the target hands out ackIds. */
    ack: z.boolean().default(true),
    ack_timeout_ms: z.number().int().min(100).default(120_000),
    batch_size: z.number().int().min(1).max(100_000).default(500),
    concurrency: z.number().int().min(1).max(16).default(1),
    flush_interval_ms: z.number().int().min(1).max(60_000).default(1000),
    max_buffer_size: z.number().int().min(1).default(100_000),
    retry_initial_ms: z.number().int().min(1).default(500),
    retry_max_ms: z.number().int().min(1).default(30_000),
    /** Records HEC refuses for good (relative to data_dir). */
    dead_letter_file: z.string().min(1).default('splunk-hec-dead-letter.jsonl'),
  })
  .strict()
  .refine((s) => !s.enabled || s.url !== null, { message: 'url is required when enabled', path: ['url'] })
  .default({});

export const correlatorSchema = z
  .object({
    /** `couchlog up` starts the correlator too. */
    enabled: z.boolean().default(true),
    inputs: z
      .object({
        http: feed('http'),
        network: feed('network'),
        /** Changes read per request to CouchDB's _changes. */
        batch_size: z.number().int().min(1).max(10_000).default(500),
        /** Pause between polls of a feed that is caught up. */
        poll_interval_ms: z.number().int().min(10).max(60_000).default(250),
      })
      .strict()
      .default({}),
    time_window: z
      .object({ value: z.number().positive().default(10), unit: z.enum(['s', 'ms']).default('s') })
      .strict()
      .default({}),
    orphan_policy: z
      .object({
        apache_always_emit: z.boolean().default(true),
        apache_emit_delay_ms: z.number().int().min(0).default(500),
        network_emit: z.boolean().default(false),
      })
      .strict()
      .default({}),
    /**
     * Events are decided in event-time order once both feeds are this far past
     * them: events out of order by up to this much (within a feed, or between
     * the feeds, e.g. ingestion delay) are decided the same way live and on replay.
     */
    reorder_slack_ms: z.number().int().min(0).max(600_000).default(1000),
    /**
     * How late a document may arrive (behind the watermark) and still give
     * exact records: within it, provisional records are corrected when
     * their partners arrive; later ones are decided with what is in memory
     * and counted (couchlog_correlator_too_late_total).
     */
    allowed_lateness: z
      .object({ value: z.number().min(0).default(24), unit: z.enum(['ms', 's', 'm', 'h']).default('h') })
      .strict()
      .default({}),
    matching: z
      .object({ mode: z.enum(['one_to_many', 'one_to_one']).default('one_to_many') })
      .strict()
      .default({}),
    buffers: z
      .object({
        max_http_items: z.number().int().min(1).default(50_000),
        max_network_items: z.number().int().min(1).default(50_000),
      })
      .strict()
      .default({}),
    ttl: z
      .object({ network_ttl_s: z.number().positive().default(120) })
      .strict()
      .default({}),
    /** Source IPs and CIDRs (v4 and v6) left out of correlation. */
    exclude_source_ips: z.array(z.string().min(1)).default([]),
    /** When not empty, only these destination ports are correlated. */
    include_dest_ports: z.array(port).default([]),
    outputs: z
      .object({
        clickhouse: clickhouseSink,
        couchdb: couchdbSink,
        file: z
          .object({ enabled: z.boolean().default(false), path: z.string().min(1).default('correlated.jsonl') })
          .strict()
          .default({}),
        stdout: z.object({ enabled: z.boolean().default(false) }).strict().default({}),
        splunk_hec: splunkHecSink,
      })
      .strict()
      .default({}),
    /**
     * Several correlators split the work by connection: instance `index` of
     * `count` takes the keys whose hash modulo count is its index. Each keeps
     * its own checkpoint; all may share the same outputs.
     */
    shard: z
      .object({ index: z.number().int().min(0).default(0), count: z.number().int().min(1).max(1024).default(1) })
      .strict()
      .refine((s) => s.index < s.count, { message: 'shard.index must be below shard.count', path: ['index'] })
      .default({}),
    /** Checkpoints are saved at most this often (and at shutdown). */
    checkpoint_interval_ms: z.number().int().min(10).default(1000),
    metrics: z
      .object({
        enabled: z.boolean().default(true),
        host: host.default('127.0.0.1'),
        port: port.default(8081),
        /** /health answers 503 once a sink has been failing this long. */
        sink_failing_threshold_ms: z.number().int().min(0).default(30_000),
      })
      .strict()
      .default({}),
  })
  .strict()
  .default({});

export const clickhouseSchema = z
  .object({
    /** false: no ClickHouse at all; the correlator's ClickHouse sink is off. */
    enabled: z.boolean().default(true),
    /** An external ClickHouse HTTP endpoint (http://clickhouse:8123). null: the embedded server, if installed. */
    url: z.string().url().nullable().default(null),
    user: z.string().min(1).default('default'),
    password: z.string().nullable().default(null),
    database: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).default('couchlog'),
    table: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).default('http_logs'),
    embedded: z
      .object({
        host: host.default('127.0.0.1'),
        http_port: port.default(8123),
        tcp_port: port.default(9000),
        /** When clickhouse-server is missing and couchlog runs as root, install Debian's package. */
        install: z.boolean().default(true),
        start_timeout_ms: z.number().int().min(1000).default(60_000),
      })
      .strict()
      .default({}),
  })
  .strict()
  .default({});
