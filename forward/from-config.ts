// The `forward:` section of the config as running Forwarders (what
// `couchlog up` and `couchlog forward` without --app start), and a small
// HTTP endpoint with their metrics and health.
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { Config } from '../lib/config/load.js';
import { couchUrl, namedSecret, requirePassword } from '../lib/config/load.js';
import { basicAuth } from '../lib/couch/basic-auth.js';
import { ConfigError, OperationError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { Forwarder } from './forwarder.js';

export type ForwardEntry = Config['forward'][number];

export function forwardTokenKey(name: string): string {
  return `COUCHLOG_FORWARD_TOKEN_${name.toUpperCase()}`;
}

/** Forwarders for the config's `forward:` entries (not started). */
export function forwardersOf(config: Config, logger: Logger): Forwarder[] {
  if (config.forward.length === 0) return [];
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const f of config.forward) {
    if (seen.has(f.name)) problems.push(`forward: two forwarders are named "${f.name}"`);
    seen.add(f.name);
    if (f.token === null && namedSecret(config, forwardTokenKey(f.name)) === null) {
      problems.push(`forward.${f.name}: no HEC token: set ${forwardTokenKey(f.name)} in the environment or ${join(config.data_dir, 'secrets.env')}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const headers = { authorization: basicAuth(config.users.reader.user, requirePassword(config, 'reader')) };
  const dir = join(config.data_dir, 'forward');
  return config.forward.map(
    (f) =>
      new Forwarder({
        app: f.app,
        couchUrl: couchUrl(config),
        couchHeaders: headers,
        checkpointFile: join(dir, `${f.name}.checkpoint.json`),
        deadLetterFile: join(dir, `${f.name}.dead-letter.ndjson`),
        hec: {
          url: f.hec_url,
          token: f.token ?? namedSecret(config, forwardTokenKey(f.name))!,
          gzip: f.gzip,
          caFile: f.ca_file ?? undefined,
          verifyTls: f.verify_tls,
          timeoutMs: f.timeout_ms,
          ack: f.ack ? 'auto' : 'off',
          ackTimeoutMs: f.ack_timeout_ms,
          ackPollMs: 200,
        },
        maxEvents: f.max_events,
        maxBytes: f.max_bytes,
        inflight: f.inflight,
        pollMs: f.poll_ms,
        backoff: { baseMs: f.backoff_base_ms, maxMs: f.backoff_max_ms },
        mapping: {
          index: f.index,
          indexField: f.index_field,
          source: f.source,
          sourcetype: f.sourcetype,
          sourcetypeField: f.sourcetype_field,
          hostField: f.host_field,
        },
        logger: logger.child({ forwarder: f.name }),
        name: f.name,
      }),
  );
}

/** Prometheus text of the forwarders' counters. */
export function forwardMetrics(forwarders: Forwarder[]): string {
  const lines: string[] = [];
  const metric = (name: string, help: string, type: 'counter' | 'gauge', value: (f: Forwarder) => number) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const f of forwarders) lines.push(`${name}{forwarder="${f.name}",app="${f.status.app}"} ${value(f)}`);
  };
  metric('couchlog_forward_events_total', 'Events HEC accepted (and acknowledged)', 'counter', (f) => f.status.forwarded);
  metric('couchlog_forward_dead_lettered_total', 'Events HEC refused for good (in the dead-letter file)', 'counter', (f) => f.status.deadLettered);
  metric(
    'couchlog_forward_retries_total',
    'Failed attempts that were retried: sends, _changes reads, checkpoint and dead-letter writes',
    'counter',
    (f) => f.status.retries,
  );
  metric('couchlog_forward_skipped_total', 'Changes not forwarded: deletions and design documents', 'counter', (f) => f.status.skipped);
  metric(
    'couchlog_forward_rewinds_total',
    'Times the checkpoint was not in the database any more (made again, or restored from an older copy) and the feed was read from the start',
    'counter',
    (f) => f.status.rewinds,
  );
  metric(
    'couchlog_forward_caught_up_timestamp_seconds',
    'When the forwarder last reached the end of the feed',
    'gauge',
    (f) => (f.status.caughtUpAt ?? 0) / 1000,
  );
  return `${lines.join('\n')}\n`;
}

/** GET /metrics and GET /health (503 while a forwarder's last attempt failed). */
export function serveForwardMetrics(forwarders: Forwarder[], host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(forwardMetrics(forwarders));
    } else if (req.method === 'GET' && req.url === '/health') {
      const failing = forwarders.filter((f) => f.status.lastError !== null);
      const body = { status: failing.length ? 'failing' : 'ok', forwarders: forwarders.map((f) => ({ name: f.name, ...f.status })) };
      res.writeHead(failing.length ? 503 : 200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why =
        err.code === 'EADDRINUSE'
          ? 'the port is in use'
          : err.code === 'ENOTFOUND' || err.code === 'EADDRNOTAVAIL'
            ? 'no such local address'
            : (err.code ?? err.message);
      reject(new OperationError(`cannot serve /metrics and /health on ${host}:${port}: ${why}`));
    });
    server.listen(port, host, () => resolve(server));
  });
}
