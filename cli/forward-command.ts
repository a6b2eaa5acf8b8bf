// `couchlog forward`: options defined here; the work is forward/.
import { join } from 'node:path';
import { Command } from 'commander';
import { intAtLeast, MIN_BACKOFF_MS, MIN_TIMEOUT_MS, msAtLeast, port } from './options.js';
import { couchUrl, loadConfig, namedSecret, requirePassword, type Config } from '../lib/config/load.js';
import { httpUrlProblems } from '../lib/config/http-url.js';
import { APP_NAME_MAX_LENGTH, APP_NAME_PATTERN } from '../lib/config/schema.js';
import { basicAuth } from '../lib/couch/basic-auth.js';
import { OperationError, UsageError } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/logger.js';
import { Forwarder } from '../forward/forwarder.js';
import { forwardersOf, serveForwardMetrics } from '../forward/from-config.js';
import { onShutdownSignal } from './lifecycle.js';

export interface ForwardCliOptions {
  app: string;
  name?: string;
  hecUrl: string;
  hecToken?: string;
  hecTokenEnv: string;
  index?: string;
  indexField?: string;
  source?: string;
  sourcetype: string;
  sourcetypeField?: string;
  hostField: string;
  maxEvents: number;
  maxBytes: number;
  inflight: number;
  gzip: boolean;
  caFile?: string;
  verifyTls: boolean;
  timeout: number;
  ack: boolean;
  ackTimeout: number;
  pollMs: number;
  backoffBase: number;
  backoffMax: number;
  checkpoint?: string;
  deadLetter?: string;
  once?: boolean;
  giveUpAfter: number;
  metricsHost: string;
  metricsPort?: number;
}

export function forwardCommand(name: string, configFile: () => string | undefined): Command {
  return new Command(name)
    .description("forward log_<app>'s documents to a Splunk HTTP Event Collector, checkpointed (resumes after a crash)")
    .option('--app <app>', "the app whose log_<app> is forwarded (without it: every forwarder of the config's forward: section)")
    .option('--hec-url <url>', 'the HEC base URL (https://splunk:8088) or its event URL (with --app)')
    .option('--hec-token <token>', 'the HEC token (visible to ps: prefer --hec-token-env)')
    .option('--hec-token-env <NAME>', 'environment variable or secrets.env key holding the HEC token', 'COUCHLOG_FORWARD_HEC_TOKEN')
    .option('--name <name>', 'checkpoint name (default: the app): one checkpoint per forwarder')
    .option('--index <index>', "HEC index of every event (default: the token's)")
    .option('--index-field <field>', 'document field that names the index, when present')
    .option('--source <source>', 'HEC source (default: couchlog:log_<app>)')
    .option('--sourcetype <st>', 'HEC sourcetype', '_json')
    .option('--sourcetype-field <field>', 'document field that names the sourcetype, when present')
    .option('--host-field <field>', 'document field that names the host', 'host')
    .option('--max-events <n>', 'events per HEC request (and per _changes page)', intAtLeast(1, '--max-events'), 500)
    .option('--max-bytes <n>', 'bytes per HEC request (before gzip)', intAtLeast(1, '--max-bytes'), 1_000_000)
    .option('--inflight <n>', 'pages being delivered at once (what a crash may send twice)', intAtLeast(1, '--inflight'), 2)
    .option('--no-gzip', 'send uncompressed bodies')
    .option('--ca-file <pem>', 'CA certificate(s) for an https HEC URL')
    .option('--no-verify-tls', 'accept any TLS certificate (never in production)')
    .option('--timeout <ms>', 'timeout of each request', msAtLeast(MIN_TIMEOUT_MS, '--timeout'), 30_000)
    .option('--no-ack', 'do not wait for indexer acknowledgment even when the target gives ackIds')
    .option('--ack-timeout <ms>', 'resend a batch whose ack is not confirmed within this', msAtLeast(MIN_TIMEOUT_MS, '--ack-timeout'), 120_000)
    .option('--poll-ms <ms>', 'wait between _changes reads once caught up', intAtLeast(1, '--poll-ms'), 1000)
    .option('--backoff-base <ms>', 'first retry delay ceiling', msAtLeast(MIN_BACKOFF_MS, '--backoff-base'), 500)
    .option('--backoff-max <ms>', 'longest retry delay', msAtLeast(MIN_BACKOFF_MS, '--backoff-max'), 30_000)
    .option('--checkpoint <file>', 'checkpoint file (default: <data_dir>/forward/<name>.checkpoint.json)')
    .option('--dead-letter <file>', 'events HEC refuses for good (default: <data_dir>/forward/<name>.dead-letter.ndjson)')
    .option('--once', 'stop once caught up (cron, tests)')
    .option(
      '--give-up-after <ms>',
      'with --once: stop (exit 1, checkpoint at what was delivered) once every attempt has failed for this long',
      intAtLeast(1, '--give-up-after'),
      300_000,
    )
    .option('--metrics-host <host>', 'address of the /metrics and /health endpoint', '127.0.0.1')
    .option('--metrics-port <port>', 'serve /metrics and /health on this port', port('--metrics-port'))
    .action(async (o: ForwardCliOptions) => {
      const { config } = loadConfig({ file: configFile() });
      const logger = createLogger(config.log_level, 'forward');
      let forwarders: Forwarder[];
      if (o.app === undefined) {
        forwarders = forwardersOf(config, logger);
        if (forwarders.length === 0) throw new UsageError('nothing to forward: give --app and --hec-url, or list forwarders under forward: in the config');
      } else {
        forwarders = [single(config, logger, o)];
      }
      const server = o.metricsPort !== undefined ? await serveForwardMetrics(forwarders, o.metricsHost, o.metricsPort) : null;
      const started = process.hrtime.bigint();
      for (const f of forwarders) {
        f.start();
        logger.info({ forwarder: f.name, app: f.status.app, since: f.status.since || '0' }, 'forwarding');
      }
      const stop = async () => {
        await Promise.all(forwarders.map((f) => f.stop()));
        await new Promise((ok) => (server ? server.close(ok) : ok(undefined)));
      };
      if (o.once) {
        // A cron run must end: caught up, or failing for --give-up-after (the next run goes on from the checkpoint).
        const failedTooLong = (f: Forwarder) => f.status.failingSince !== null && Date.now() - f.status.failingSince >= o.giveUpAfter;
        while (forwarders.some((f) => f.status.caughtUpAt === null) && !forwarders.some(failedTooLong)) await new Promise((ok) => setTimeout(ok, 5));
        const gaveUp = forwarders.filter(failedTooLong);
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        await stop();
        for (const f of forwarders) {
          process.stdout.write(
            `${JSON.stringify({ forwarder: f.name, forwarded: f.status.forwarded, dead_lettered: f.status.deadLettered, since: f.status.since, seconds: Math.round(seconds * 1000) / 1000, ...(gaveUp.includes(f) && { gave_up: f.status.lastError }) })}\n`,
          );
        }
        if (gaveUp.length > 0)
          throw new OperationError(
            `gave up after ${Math.round(o.giveUpAfter / 1000)} s of failures: ${gaveUp.map((f) => `${f.name}: ${f.status.lastError}`).join('; ')}; the next run goes on from the checkpoint`,
          );
        return;
      }
      onShutdownSignal(logger, stop);
    });
}

function single(config: Config, logger: Logger, o: ForwardCliOptions): Forwarder {
  if (o.app.length > APP_NAME_MAX_LENGTH || !APP_NAME_PATTERN.test(o.app))
    throw new UsageError(`--app: app names are lowercase letters, digits, "_" and "-", starting with a letter (at most ${APP_NAME_MAX_LENGTH})`);
  if (!o.hecUrl) throw new UsageError('--app needs --hec-url');
  const urlProblems = httpUrlProblems(o.hecUrl, '--hec-token-env (or --hec-token)');
  if (urlProblems.length > 0) throw new UsageError(`--hec-url: ${urlProblems.join('; ')}`);
  const token = o.hecToken ?? namedSecret(config, o.hecTokenEnv);
  if (!token) throw new UsageError(`no HEC token: set ${o.hecTokenEnv} (environment or ${join(config.data_dir, 'secrets.env')}) or give --hec-token`);
  const name = o.name ?? o.app!;
  if (!/^[a-z][a-z0-9_-]*$/.test(name)) throw new UsageError('--name: lowercase letters, digits, "_" and "-"');
  const dir = join(config.data_dir, 'forward');
  const app = o.app!;
  const forwarder = new Forwarder({
    app,
    name,
    couchUrl: couchUrl(config),
    couchHeaders: { authorization: basicAuth(config.users.reader.user, requirePassword(config, 'reader')) },
    checkpointFile: o.checkpoint ?? join(dir, `${name}.checkpoint.json`),
    deadLetterFile: o.deadLetter ?? join(dir, `${name}.dead-letter.ndjson`),
    hec: {
      url: o.hecUrl,
      token,
      gzip: o.gzip,
      caFile: o.caFile,
      verifyTls: o.verifyTls,
      timeoutMs: o.timeout,
      ack: o.ack ? 'auto' : 'off',
      ackTimeoutMs: o.ackTimeout,
      ackPollMs: 200,
    },
    maxEvents: o.maxEvents,
    maxBytes: o.maxBytes,
    inflight: o.inflight,
    pollMs: o.pollMs,
    backoff: { baseMs: o.backoffBase, maxMs: o.backoffMax },
    mapping: {
      index: o.index ?? null,
      indexField: o.indexField ?? null,
      source: o.source ?? null,
      sourcetype: o.sourcetype,
      sourcetypeField: o.sourcetypeField ?? null,
      hostField: o.hostField,
    },
    logger,
  });
  return forwarder;
}
