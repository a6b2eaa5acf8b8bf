// The one place where configuration keys and their defaults are named.
// couchlog.example.yml documents the same keys; test/integration/cli.test.ts
// checks that the two agree key by key, both ways, so a key added here must
// be documented there.
import { z } from 'zod';
import { httpUrlWithoutCredentials } from './http-url.js';
import { REPORT_SET_NAMES } from './report-sets.js';
import { proxyAddress } from './ip-or-cidr.js';
import { clickhouseSchema, correlatorSchema } from './correlator-schema.js';
import { protection } from './protection.js';

/** App names become database names `log_<app>`: lowercase, digits, `_`, `-`. */
export const APP_NAME_PATTERN = /^[a-z][a-z0-9_-]*$/;
export const APP_NAME_MAX_LENGTH = 64;

const port = z.number().int().min(1).max(65535);
const host = z.string().min(1);
const userName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[^:\s]+$/, 'must not contain ":" or whitespace');
/** The shortest password an account may have, wherever it is given (the file, the environment, secrets.env). */
export const MIN_PASSWORD = 8;
const password = z.string().min(MIN_PASSWORD, `must be at least ${MIN_PASSWORD} characters`).nullable();

const credentials = (defaultUser: string) =>
  z
    .object({
      user: userName.default(defaultUser),
      /** null: taken from the environment, else from <data_dir>/secrets.env, else generated. */
      password: password.default(null),
    })
    .strict()
    .default({});

const appName = z.string().max(APP_NAME_MAX_LENGTH).regex(APP_NAME_PATTERN, 'app names are lowercase letters, digits, "_" and "-", starting with a letter');

/** Token names become environment variables COUCHLOG_TOKEN_<NAME>: letters, digits, "_". */
export const TOKEN_NAME_PATTERN = /^[a-z][a-z0-9_]{0,63}$/;

// A write token of an app (Splunk HEC `Authorization: Splunk <token>`, or
// `Bearer <token>` on the write routes). The same name under several apps is
// one token allowed to write to each of them (the first app listing it is
// its default, an event's `index` picks another).
const hecToken = z
  .object({
    /** Shown in logs and metrics, never the secret. */
    name: z.string().regex(TOKEN_NAME_PATTERN, 'token names are lowercase letters, digits and "_", starting with a letter'),
    /** null: from COUCHLOG_TOKEN_<NAME> in the environment, else <data_dir>/secrets.env. */
    secret: z.string().min(16, 'must be at least 16 characters').nullable().default(null),
    /** HEC indexer acknowledgment: answers carry an ackId; requests need a channel. */
    ack: z.boolean().default(false),
  })
  .strict();

// `apps: {web: }` (nothing after the name) means an app with the defaults.
const appSchema = z.preprocess(
  (v) => v ?? {},
  z
    .object({
      /** Report design documents pushed to this app's database (see design-docs/index.ts). */
      reports: z.array(z.enum(REPORT_SET_NAMES)).default([]),
      /** Write tokens (HEC and Bearer) allowed to write to this app; see hecToken. */
      tokens: z.array(hecToken).default([]),
      /** How stored documents are kept from being changed: see PROTECTIONS and docs/append-only.md. */
      protection: protection.default('validate'),
    })
    .strict(),
);

const checkCouchUrl = httpUrlWithoutCredentials('COUCHDB_USER / COUCHDB_PASSWORD', { rootOnly: true });

const groupCommit = z
  .object({
    /** A batch is sent as soon as it holds this many documents. */
    max_docs: z.number().int().min(1).max(10_000).default(500),
    /** ...or this long after its first document arrived. */
    max_wait_ms: z.number().int().min(0).max(1000).default(4),
    /** Batches in flight per database before new documents wait for the next batch. */
    max_inflight: z.number().int().min(1).max(64).default(4),
  })
  .strict()
  .default({});

const rateLimit = z
  .object({
    enabled: z.boolean().default(false),
    /** Requests allowed per client IP per window. */
    max: z.number().int().min(1).default(600),
    window_ms: z.number().int().min(100).default(60_000),
  })
  .strict()
  .default({});

/** Failed authentications per client address (401s to requests that presented credentials or a login). */
const authFailures = z
  .object({
    /** Failures allowed per address per window; beyond, credentials from it get 429 until the window ends. 0: no limit. */
    max: z.number().int().min(0).default(20),
    window_ms: z.number().int().min(1000).max(86_400_000).default(60_000),
  })
  .strict()
  .default({});

const hec = z
  .object({
    /** Serve the Splunk HEC endpoints (/services/collector/...). */
    enabled: z.boolean().default(true),
    /** Indexer acknowledgment: channels remembered per token (its least recently used forgotten first). */
    ack_max_channels: z.number().int().min(1).max(1_000_000).default(10_000),
    /** Acks kept per channel until queried (the oldest are forgotten beyond). */
    ack_max_pending_per_channel: z.number().int().min(1).max(1_000_000).default(10_000),
    /**
     * Acks kept per token over all its channels until queried (its oldest are
     * forgotten beyond, counted in couchlog_ingress_hec_acks_forgotten_total):
     * what bounds a token's ack memory (channels x per channel alone is 10^8).
     */
    ack_max_pending_per_token: z.number().int().min(1).max(10_000_000).default(100_000),
    /** A channel neither sent on nor asked about for this long is forgotten with its acks (Splunk's idle cleanup). */
    ack_channel_idle_ms: z.number().int().min(1000).max(86_400_000).default(600_000),
  })
  .strict()
  .default({});

/** Long-polling and continuous feeds proxied to CouchDB (server/auth/feed-limiter.ts). */
const feeds = z
  .object({
    /** Feeds open at once through the ingress; the proxy keeps 32 more connections for everything else. */
    max_open: z.number().int().min(1).max(10_000).default(64),
    /** Feeds one account may hold open at once (429 beyond). */
    max_open_per_user: z.number().int().min(1).max(10_000).default(8),
    /**
     * Requests of one account proxied to CouchDB at once, feeds included
     * (429 beyond): a slow body or a slow reader holds a connection too.
     */
    max_requests_per_user: z.number().int().min(1).max(10_000).default(32),
  })
  .strict()
  .default({});

const ingress = z
  .object({
    host: host.default('127.0.0.1'),
    port: port.default(8080),
    /** Largest request body accepted on write routes (413 above). */
    body_limit_bytes: z
      .number()
      .int()
      .min(1024)
      .max(256 * 1024 * 1024)
      .default(8 * 1024 * 1024),
    /** Most documents in one array, NDJSON or _bulk_docs request (413 above). */
    max_docs_per_request: z.number().int().min(1).max(100_000).default(10_000),
    /**
     * Largest document stored, as JSON bytes with its _id and received_at (413 above): Apache
     * CouchDB 3's default max_document_size. Keep it at or below CouchDB's: a document CouchDB
     * refuses fails the whole _bulk_docs it is in, and costs a resend of the rest of its batch.
     */
    max_document_bytes: z
      .number()
      .int()
      .min(1024)
      .max(256 * 1024 * 1024)
      .default(8_000_000),
    /** Deepest JSON nesting accepted in a document (400 above). */
    max_json_depth: z.number().int().min(2).max(1000).default(32),
    /** Stamp each stored document with `received_at` (ISO 8601) unless it has one. */
    received_at: z.boolean().default(true),
    /** Create `log_<app>` on first write for names not in `apps:`. */
    auto_create: z.boolean().default(false),
    /** Most databases auto_create may create (apps from `apps:` not counted). */
    auto_create_max: z.number().int().min(0).max(10_000).default(100),
    group_commit: groupCommit,
    rate_limit: rateLimit,
    /** How long a verified credential is trusted before asking CouchDB again. */
    auth_cache_ttl_ms: z.number().int().min(0).max(600_000).default(30_000),
    /** How long a rejected credential is remembered (slows password guessing). */
    auth_cache_negative_ttl_ms: z.number().int().min(0).max(600_000).default(2_000),
    /** Addresses/CIDRs of proxies whose X-Forwarded-For is believed. */
    trust_proxy: z.array(proxyAddress).default([]),
    /** Seconds a 503 or 429 asks the client to wait (Retry-After). */
    retry_after_s: z.number().int().min(1).max(3600).default(5),
    /** Serve GET /_couchlog/metrics without credentials. */
    public_metrics: z.boolean().default(true),
    /** Anonymous POSTs to the write routes (false: a token or real credentials are needed). */
    anonymous_write: z.boolean().default(true),
    hec,
    feeds,
    auth_failures: authFailures,
    /** A request (headers and body) must arrive within this long, else 408 and the connection closed. */
    body_timeout_ms: z.number().int().min(1000).max(3_600_000).default(30_000),
    /** Origins (e.g. https://tools.example.org) a browser may call the ingress from with credentials; none by default (CORS off). */
    cors_origins: z.array(z.string().regex(/^https?:\/\/[^/\s]+$/, 'an origin: scheme://host[:port], no path')).default([]),
    /** On shutdown: requests in flight get this long to be answered, then remaining connections are closed. */
    shutdown_deadline_ms: z.number().int().min(0).max(600_000).default(10_000),
    /**
     * Key of the tags of documents whose client-chosen _id another document
     * holds (server/write/claimed-ids.ts). null: COUCHLOG_ID_TAG_KEY from the
     * environment, else <data_dir>/secrets.env (made there once).
     */
    id_tag_key: z.string().min(32, 'must be at least 32 characters').nullable().default(null),
  })
  .strict()
  .default({});

const embedded = z
  .object({
    host: host.default('127.0.0.1'),
    port: port.default(5984),
    /** First restart delay after the embedded server dies; doubles up to the max. */
    restart_delay_ms: z.number().int().min(10).default(500),
    restart_delay_max_ms: z.number().int().min(10).default(30_000),
    /** How long to wait for the server to answer after (re)starting. */
    start_timeout_ms: z.number().int().min(1000).default(30_000),
  })
  .strict()
  .default({});

const couchdb = z
  .object({
    /** An external CouchDB (e.g. http://couchdb:5984). null: run the embedded server. */
    url: z.string().superRefine(checkCouchUrl).nullable().default(null),
    embedded,
    admin: credentials('admin'),
    /** Any single request to CouchDB fails after this long (503 to the client). */
    request_timeout_ms: z.number().int().min(100).max(600_000).default(15_000),
  })
  .strict()
  .default({});

/** A forwarder: log_<app> to a Splunk HTTP Event Collector (`couchlog forward`, run by `couchlog up`). */
const forwarder = z
  .object({
    /** Checkpoint and dead-letter files are named after it; its HEC token is COUCHLOG_FORWARD_TOKEN_<NAME>. */
    name: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'lowercase letters, digits and "_", starting with a letter'),
    app: appName,
    hec_url: z.string().superRefine(httpUrlWithoutCredentials('token (COUCHLOG_FORWARD_TOKEN_<NAME>)')),
    /** null: from COUCHLOG_FORWARD_TOKEN_<NAME> in the environment, else <data_dir>/secrets.env. */
    token: z.string().min(1).nullable().default(null),
    index: z.string().min(1).nullable().default(null),
    index_field: z.string().min(1).nullable().default(null),
    /** null: couchlog:log_<app>. */
    source: z.string().min(1).nullable().default(null),
    sourcetype: z.string().min(1).default('_json'),
    sourcetype_field: z.string().min(1).nullable().default(null),
    host_field: z.string().min(1).nullable().default('host'),
    max_events: z.number().int().min(1).max(100_000).default(500),
    /** Request body per batch, in UTF-8 bytes before gzip (an event larger goes alone). */
    max_bytes: z.number().int().min(1024).default(1_000_000),
    /** Pages being delivered at once; a crash may send these twice. */
    inflight: z.number().int().min(1).max(16).default(2),
    gzip: z.boolean().default(true),
    ca_file: z.string().min(1).nullable().default(null),
    verify_tls: z.boolean().default(true),
    timeout_ms: z.number().int().min(100).default(30_000),
    /** Wait for indexer acknowledgment when the target hands out ackIds. */
    ack: z.boolean().default(true),
    ack_timeout_ms: z.number().int().min(100).default(120_000),
    poll_ms: z.number().int().min(10).default(1000),
    backoff_base_ms: z.number().int().min(10).default(500),
    backoff_max_ms: z.number().int().min(10).default(30_000),
  })
  .strict();

export const configSchema = z
  .object({
    /** Folder for the embedded server's data and generated secrets. */
    data_dir: z.string().min(1).default('./data'),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Log lines: `json` (one object per line), `pretty` (human, colour on a terminal), `auto`: pretty on a terminal, else json. */
    log_format: z.enum(['auto', 'pretty', 'json']).default('auto'),
    couchdb,
    users: z
      .object({ writer: credentials('writer'), reader: credentials('reader'), correlator: credentials('correlator') })
      .strict()
      .default({}),
    /** One `log_<app>` database per key. */
    apps: z.record(appName, appSchema).default({ appname: {}, fail2ban: { reports: ['fail2ban'] }, http: {}, network: {} }),
    ingress,
    correlator: correlatorSchema,
    clickhouse: clickhouseSchema,
    /** Forwarders to Splunk HEC endpoints (several at once). */
    forward: z.array(forwarder).default([]),
  })
  .strict()
  .superRefine(distinctAccounts)
  .superRefine(outputNotAnApp);

/**
 * The correlator's output database is couchlog's own: listed as an app, the
 * ingress would take writes to it (anonymous ones too), and under `validate`
 * every setup would replace its correlator-only validation with the apps'.
 */
function outputNotAnApp(c: { apps: Record<string, unknown>; correlator: { outputs: { couchdb: { app: string } } } }, ctx: z.RefinementCtx): void {
  const output = c.correlator.outputs.couchdb.app;
  if (Object.hasOwn(c.apps, output))
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      path: ['apps', output],
      message: `log_${output} is the correlator's output (correlator.outputs.couchdb.app): couchlog writes it, not the ingress; pick another app name`,
    });
}

/**
 * The four accounts must be four: setup gives each its own roles and
 * password, so two sharing a name would leave one account with the other's
 * rights (a reader named like the writer stops every write; a correlator
 * named like the reader lets readers write records).
 */
function distinctAccounts(
  c: { couchdb: { admin: { user: string } }; users: Record<'writer' | 'reader' | 'correlator', { user: string }> },
  ctx: z.RefinementCtx,
): void {
  const seen = new Map<string, string>([[c.couchdb.admin.user, 'couchdb.admin.user']]);
  for (const role of ['writer', 'reader', 'correlator'] as const) {
    const name = c.users[role].user;
    const other = seen.get(name);
    if (other !== undefined)
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['users', role, 'user'], message: `"${name}" is already ${other}: each account needs its own name` });
    else seen.set(name, `users.${role}.user`);
  }
}

export type RawConfig = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
