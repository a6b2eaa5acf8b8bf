// Splunk HTTP Event Collector endpoints on the ingress, so shippers and
// logging libraries that speak HEC (Vector, Fluent Bit, the OpenTelemetry
// Collector, syslog-ng, Splunk's logging libraries) send without changes:
//   POST /services/collector[/event[/1.0]]   JSON envelopes (gzip allowed)
//   POST /services/collector/raw[/1.0]       one event per line
//   POST /services/collector/ack             indexer acknowledgment
//   GET  /services/collector/health[/1.0]
// Documents take the same write path as POST /log_<app>: checked whole
// first, then written through group commit as the writer account.
import { isUtf8 } from 'node:buffer';
import { BodyEncodingError, decodedBody } from '../write/body-encoding.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../../lib/config/load.js';
import type { AppRegistry } from '../write/app-registry.js';
import type { GroupCommit } from '../write/group-commit.js';
import type { WriteTarget } from '../write/bulk-writer.js';
import { newDocId } from '../write/doc-id.js';
import { checkCount, checkDocSizes, type DocRules, type LogDoc } from '../write/validate-docs.js';
import type { Metrics } from '../plugins/metrics.js';
import { AckRegistry, CHANNEL_PATTERN } from './acks.js';
import { HEC, HecError, toHecError } from './errors.js';
import { envelopeToDoc, rawToDocs, splitEnvelopes, type HecDefaults, type HecDoc } from './envelope.js';
import { presentedToken, type TokenTable, type WriteToken } from './tokens.js';

export interface HecRoutesOptions {
  ingress: Config['ingress'];
  tokens: TokenTable;
  registry: AppRegistry;
  group: GroupCommit;
  writerHeaders: Record<string, string>;
  metrics: Metrics;
}

declare module 'fastify' {
  interface FastifyRequest {
    hecToken: WriteToken | null;
    hecChannel: string | null;
  }
}

const EVENT_PATHS = ['/services/collector', '/services/collector/event', '/services/collector/event/1.0'];
const RAW_PATHS = ['/services/collector/raw', '/services/collector/raw/1.0'];
const HEALTH_PATHS = ['/services/collector/health', '/services/collector/health/1.0'];
const ACK_PATH = '/services/collector/ack';

type IdDoc = LogDoc & { _id: string };

export default async function hecRoutes(app: FastifyInstance, opts: HecRoutesOptions): Promise<void> {
  const { ingress, tokens, registry, group, metrics } = opts;
  const rules: DocRules = { maxDepth: ingress.max_json_depth, maxDocs: ingress.max_docs_per_request, maxDocBytes: ingress.max_document_bytes };
  const acks = new AckRegistry({
    maxChannels: ingress.hec.ack_max_channels,
    maxPending: ingress.hec.ack_max_pending_per_channel,
    maxPendingPerToken: ingress.hec.ack_max_pending_per_token,
    idleMs: ingress.hec.ack_channel_idle_ms,
    now: () => performance.now(),
    onForgotten: (reason, count) => metrics.hecAcksForgotten.inc({ reason }, count),
  });
  // Idle channels of tokens nobody uses any more are let go of too (the registry only sweeps a token when it is used).
  const sweeper = setInterval(() => acks.sweep(), Math.min(60_000, ingress.hec.ack_channel_idle_ms)).unref();
  app.addHook('onClose', async () => clearInterval(sweeper));

  app.decorateRequest('hecToken', null);
  app.decorateRequest('hecChannel', null);

  // HEC clients send any Content-Type (or none): the body is taken as bytes.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: ingress.body_limit_bytes }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err, request, reply) => {
    const hec = toHecError(err, ingress.retry_after_s);
    metrics.rejected.inc({ code: hec.code });
    if (hec.statusCode >= 500) request.log.warn({ code: hec.code, err: hec.detail ?? (err as Error).message }, 'HEC request failed');
    else request.log.debug({ code: hec.code, detail: hec.detail }, 'HEC request refused');
    return reply.code(hec.statusCode).headers(hec.headers).type('application/json').send(hec.hecBody());
  });

  const authenticate = async (request: FastifyRequest) => {
    const presented = presentedToken(request.headers.authorization);
    if (presented.kind === 'none') {
      const query = request.query as Record<string, unknown>;
      throw new HecError(query.token !== undefined ? 'QUERY_TOKEN_DISABLED' : 'TOKEN_REQUIRED');
    }
    if (presented.kind === 'malformed') throw new HecError('INVALID_AUTHORIZATION');
    const token = tokens.find(presented.secret);
    if (!token) throw new HecError('INVALID_TOKEN');
    request.hecToken = token;
    const query = request.query as Record<string, unknown>;
    const header = request.headers['x-splunk-request-channel'];
    const channel = typeof header === 'string' && header !== '' ? header : typeof query.channel === 'string' ? query.channel : null;
    if (channel !== null && !CHANNEL_PATTERN.test(channel)) throw new HecError('INVALID_CHANNEL');
    request.hecChannel = channel;
  };

  const body = async (request: FastifyRequest): Promise<string> => {
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    try {
      return utf8OrInvalid(await decodedBody(raw, request.headers['content-encoding'], ingress.body_limit_bytes));
    } catch (err) {
      if (!(err instanceof BodyEncodingError)) throw err;
      throw new HecError(err.kind === 'too_large' ? 'TOO_LARGE' : 'INVALID_DATA_FORMAT', undefined, {}, err.message);
    }
  };

  /** JSON is UTF-8: bytes that are not would be stored as U+FFFD, so they are refused as Splunk refuses bad data. */
  const utf8OrInvalid = (raw: Buffer): string => {
    if (!isUtf8(raw)) throw new HecError('INVALID_DATA_FORMAT', undefined, {}, 'the body is not valid UTF-8');
    return raw.toString('utf8');
  };

  const needChannel = (request: FastifyRequest) => {
    if (request.hecToken!.ack && request.hecChannel === null) throw new HecError('CHANNEL_MISSING');
  };

  /** Writes every document (per app, through group commit) and answers as HEC does. */
  const store = async (request: FastifyRequest, reply: FastifyReply, docs: HecDoc[], bodyChars: number) => {
    checkCount(docs.length, rules);
    const now = ingress.received_at ? new Date().toISOString() : null;
    const byApp = new Map<string, IdDoc[]>();
    for (const { app: name, doc } of docs) {
      if (doc._id === undefined) doc._id = newDocId();
      if (now !== null && doc.received_at === undefined) doc.received_at = now;
      let list = byApp.get(name);
      if (!list) byApp.set(name, (list = []));
      list.push(doc as IdDoc);
    }
    checkDocSizes(
      docs.map((d) => d.doc),
      bodyChars,
      rules,
    );
    await Promise.all([...byApp.keys()].map((name) => registry.admit(name)));
    const results = await Promise.all(
      [...byApp].map(([name, list]) => {
        const target: WriteTarget = { db: `log_${name}`, headers: opts.writerHeaders, asWriter: true };
        // HEC has no "accepted" answer: stored on fewer copies than the quorum is still stored.
        return group.submitMany(`${target.db}\nwriter`, target, list).then((w) => w.results);
      }),
    );
    for (const list of results) {
      for (const r of list) {
        // An event's own `_id` already stored: it is there, unchangeable (append-only),
        // so a retried request is not stored twice.
        if ('ok' in r || r.error === 'conflict') continue;
        throw r.error === 'unknown'
          ? new HecError('SERVER_BUSY', undefined, { 'Retry-After': String(ingress.retry_after_s) }, `${r.id}: ${r.error} ${r.reason}`)
          : new HecError('INTERNAL_ERROR', undefined, {}, `${r.id}: ${r.error} ${r.reason}`);
      }
    }
    const [code, , text] = HEC.SUCCESS;
    const answer: { text: string; code: number; ackId?: number } = { text, code };
    if (request.hecToken!.ack) answer.ackId = acks.issue(request.hecToken!.name, request.hecChannel!);
    return reply.code(200).send(answer);
  };

  for (const url of EVENT_PATHS) {
    app.post(url, { onRequest: authenticate, config: { metricsRoute: 'hec_event' } }, async (request, reply) => {
      needChannel(request);
      const text = await body(request);
      if (text.trim() === '') throw new HecError('NO_DATA');
      const token = request.hecToken!;
      const envelopes = splitEnvelopes(text, rules.maxDepth, rules.maxDocs);
      checkCount(envelopes.length, rules);
      const defaults = queryDefaults(request);
      return store(
        request,
        reply,
        envelopes.map((e, i) => envelopeToDoc(e, i, token, rules, defaults)),
        text.length,
      );
    });
  }

  for (const url of RAW_PATHS) {
    app.post(url, { onRequest: authenticate, config: { metricsRoute: 'hec_raw' } }, async (request, reply) => {
      needChannel(request);
      const text = await body(request);
      if (text.trim() === '') throw new HecError('NO_DATA');
      return store(request, reply, rawToDocs(text, request.hecToken!, rules, queryDefaults(request)), text.length);
    });
  }

  app.post(ACK_PATH, { onRequest: authenticate, config: { metricsRoute: 'hec_ack' } }, async (request, reply) => {
    const token = request.hecToken!;
    if (!token.ack) throw new HecError('ACK_DISABLED');
    if (request.hecChannel === null) throw new HecError('CHANNEL_MISSING');
    let ids: unknown;
    try {
      ids = (JSON.parse((await body(request)) || 'null') as { acks?: unknown } | null)?.acks;
    } catch {
      throw new HecError('INVALID_DATA_FORMAT');
    }
    if (!Array.isArray(ids) || !ids.every((id) => Number.isSafeInteger(id) && (id as number) >= 0)) {
      throw new HecError('INVALID_DATA_FORMAT', undefined, {}, 'the body must be {"acks":[ackId, ...]}');
    }
    return reply.code(200).send({ acks: acks.query(token.name, request.hecChannel, ids as number[]) });
  });

  for (const url of HEALTH_PATHS) {
    app.get(url, { config: { metricsRoute: 'hec_health' } }, async (_request, reply) => {
      const [code, , text] = HEC.HEALTHY;
      return reply.code(200).send({ text, code });
    });
  }

  // Any other method or path under /services/collector is answered here, as
  // HEC answers it, without looking at the credentials. (Found by a
  // black-box test: they fell through to the proxy, whose 401 counted as a
  // failed login, so 20 requests with a valid token on a wrong path locked
  // every HEC client of that address out; a token in Basic auth went to
  // CouchDB's _session as a password.)
  const wrongMethod = (allowed: string) => async (_request: FastifyRequest, reply: FastifyReply) =>
    reply
      .code(405)
      .header('allow', allowed)
      .send({ text: `Method not allowed: use ${allowed}`, code: 405 });
  const OTHER_METHODS = ['DELETE', 'PATCH', 'PUT', 'OPTIONS'] as const;
  for (const url of [...EVENT_PATHS, ...RAW_PATHS, ACK_PATH]) {
    app.route({ method: ['GET', 'HEAD', ...OTHER_METHODS], url, config: { metricsRoute: 'hec_other' }, handler: wrongMethod('POST') });
  }
  for (const url of HEALTH_PATHS) app.route({ method: ['POST', ...OTHER_METHODS], url, config: { metricsRoute: 'hec_other' }, handler: wrongMethod('GET') });
  app.all('/services/collector/*', { config: { metricsRoute: 'hec_other' } }, async (_request, reply) =>
    reply.code(404).send({ text: 'The requested URL was not found on this server.', code: 404 }),
  );
}

function queryDefaults(request: FastifyRequest): HecDefaults {
  const q = request.query as Record<string, unknown>;
  const pick = (k: string) => (typeof q[k] === 'string' && q[k] !== '' ? (q[k] as string) : undefined);
  const out: HecDefaults = {};
  for (const k of ['host', 'source', 'sourcetype', 'index', 'time'] as const) {
    const v = pick(k);
    if (v !== undefined) out[k] = v;
  }
  return out;
}
