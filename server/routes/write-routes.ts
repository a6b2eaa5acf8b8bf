// The write routes: the only requests the ingress answers on behalf of the
// writer account. Bodies are parsed and checked here; nothing reaches
// CouchDB unless every document of the request passed.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../../lib/config/load.js';
import { CouchlogError, unsupportedMediaType, badRequest, tooLarge } from '../../lib/errors.js';
import { BodyEncodingError, decodedBody } from '../write/body-encoding.js';
import { APP_NAME_MAX_LENGTH } from '../../lib/config/schema.js';
import { extractCredentials, credentialHeaders } from '../auth/credentials.js';
import type { CredentialVerifier } from '../auth/credential-verifier.js';
import type { AppRegistry } from '../write/app-registry.js';
import { statusOfError, type BulkWriter, type WriteTarget } from '../write/bulk-writer.js';
import type { GroupCommit } from '../write/group-commit.js';
import { newDocIdAt } from '../write/doc-id.js';
import { parseJson, parseNdjson, utf8Text, valuesAt } from '../write/parse-body.js';
import {
  bulkDocsOf,
  checkCount,
  checkCountBeforeParsing,
  checkDocSizes,
  validateDoc,
  validateDocs,
  type DocRules,
  type LogDoc,
} from '../write/validate-docs.js';
import type { Metrics } from '../plugins/metrics.js';
import { presentedToken, type TokenTable } from '../hec/tokens.js';
import { forbidden, unauthorized } from '../../lib/errors.js';
import { mayWrite } from '../auth/role-policy.js';

export interface WriteRoutesOptions {
  ingress: Config['ingress'];
  verifier: CredentialVerifier;
  registry: AppRegistry;
  writer: BulkWriter;
  group: GroupCommit;
  writerHeaders: Record<string, string>;
  metrics: Metrics;
  /** Write tokens: `Authorization: Bearer <token>` (or `Splunk <token>`) writes as the writer. */
  tokens: TokenTable;
}

/** `log_` + an app name; the router refuses anything else (upper case, encodings). */
export const LOG_DB_PARAM = `:db(^log_[a-z][a-z0-9_-]{0,${APP_NAME_MAX_LENGTH - 1}}$)`;

const NDJSON = 'application/x-ndjson';
/** What Fastify names a serialised object's answer. */
const JSON_UTF8 = 'application/json; charset=utf-8';

declare module 'fastify' {
  interface FastifyRequest {
    writeTarget: WriteTarget | null;
    writeKey: string;
  }
}

type IdDoc = LogDoc & { _id: string };

export default async function writeRoutes(app: FastifyInstance, opts: WriteRoutesOptions): Promise<void> {
  const { ingress, verifier, registry, writer, group, metrics } = opts;
  const rules: DocRules = { maxDepth: ingress.max_json_depth, maxDocs: ingress.max_docs_per_request, maxDocBytes: ingress.max_document_bytes };

  app.decorateRequest('writeTarget', null);
  app.decorateRequest('writeKey', '');

  // Bodies stay raw bytes here: bad UTF-8 and parse errors then become our own typed errors.
  app.removeAllContentTypeParsers();
  for (const type of ['application/json', NDJSON]) {
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit: ingress.body_limit_bytes }, (_req, body, done) => done(null, body));
  }

  // Before the body is read: unknown apps and bad credentials cost nothing.
  app.addHook('onRequest', async (request) => {
    const db = (request.params as { db: string }).db;
    // Unknown or reserved apps are refused here; an auto-created database is
    // created only once the request is authenticated and valid (admit below).
    registry.check(db.slice('log_'.length));
    const creds = extractCredentials(request.headers);
    const presented = presentedToken(creds?.authorization);
    const token = presented.kind === 'token' && presented.scheme !== 'basic' ? opts.tokens.find(presented.secret) : null;
    if (token) {
      // A write token of the config: the ingress writes as the writer, to the apps the token names.
      if (!token.apps.includes(db.slice('log_'.length))) {
        throw forbidden('INGRESS_TOKEN_APP', `this token may not write to ${db}`);
      }
      request.writeTarget = { db, headers: opts.writerHeaders, asWriter: true };
      request.writeKey = `${db}\nwriter`;
    } else if (presented.kind === 'token' && presented.scheme === 'splunk') {
      throw unauthorized('AUTH_INVALID', 'unknown write token');
    } else if (creds) {
      const caller = await verifier.verify(creds, request.ip);
      // The role policy: readers (and accounts with no log role) never write.
      if (!mayWrite(caller)) throw forbidden('AUTH_ROLE_FORBIDDEN', 'only the writer and admins may write with their own credentials');
      request.writeTarget = { db, headers: credentialHeaders(creds), asWriter: false };
      request.writeKey = `${db}\n${creds.authorization ?? ''}\n${creds.cookie ?? ''}`;
    } else {
      if (!ingress.anonymous_write)
        throw unauthorized('AUTH_REQUIRED', 'anonymous writes are off: send a write token (Authorization: Bearer <token>) or credentials');
      request.writeTarget = { db, headers: opts.writerHeaders, asWriter: true };
      request.writeKey = `${db}\nwriter`;
    }
  });

  app.addHook('onError', async (_request, _reply, err) => {
    if (err instanceof CouchlogError && err.statusCode < 500) metrics.rejected.inc({ code: err.code });
  });

  const stamp = (docs: LogDoc[]): IdDoc[] => {
    // One clock reading for the request's ids and received_at.
    const nowMs = Date.now();
    const now = new Date(nowMs).toISOString();
    for (const doc of docs) {
      if (doc._id === undefined) doc._id = newDocIdAt(nowMs);
      if (ingress.received_at && doc.received_at === undefined) doc.received_at = now;
    }
    return docs as IdDoc[];
  };

  const admit = (request: FastifyRequest) => registry.admit(request.writeTarget!.db.slice('log_'.length));

  // `values` come from a text scanned with the depth limit plus the body's
  // own levels (the array, the _bulk_docs object), which bounds every
  // document to rules.maxDepth already.
  const writeMany = async (request: FastifyRequest, reply: FastifyReply, values: unknown[], bodyChars: number) => {
    checkCount(values.length, rules);
    const docs = stamp(validateDocs(values, rules, 'document', Number.isFinite(rules.maxDepth)));
    checkDocSizes(docs, bodyChars, rules);
    await admit(request);
    if (docs.length === 0) return reply.code(201).send([]);
    const { results, accepted } = await writer.writeAnswer(request.writeTarget!, docs, 'bulk');
    reply.code(accepted ? 202 : 201);
    // CouchDB's own text when it is exactly what serialising the results would give.
    if (typeof results === 'string') return reply.type(JSON_UTF8).send(results);
    return reply.send(results);
  };

  app.post(`/${LOG_DB_PARAM}`, { config: { metricsRoute: 'write' } }, async (request, reply) => {
    const text = await bodyText(request, ingress.body_limit_bytes);
    // Depth limits while scanning (a document, or an array of them: one level more).
    if (isNdjson(request)) return writeMany(request, reply, parseNdjson(text, rules.maxDepth, rules.maxDocs), text.length);
    checkCountBeforeParsing(valuesAt(text, 1, rules.maxDocs), rules);
    const value = parseJson(text, 'request body', rules.maxDepth + 1);
    if (Array.isArray(value)) {
      if (value.length === 0) throw badRequest('INGRESS_EMPTY_BODY', 'the array holds no documents');
      return writeMany(request, reply, value, text.length);
    }
    const [doc] = stamp([validateDoc(value, rules, 'the document')]);
    checkDocSizes([doc!], text.length, rules);
    await admit(request);
    const { results: result, accepted } = await group.submit(request.writeKey, request.writeTarget!, doc!);
    if ('ok' in result)
      return reply
        .code(accepted ? 202 : 201)
        .header('location', `/${request.writeTarget!.db}/${encodeURIComponent(result.id)}`)
        .send(result);
    return reply.code(statusOfError(result.error)).send({ error: result.error, reason: result.reason });
  });

  app.post(`/${LOG_DB_PARAM}/_bulk_docs`, { config: { metricsRoute: 'bulk_docs' } }, async (request, reply) => {
    if (isNdjson(request)) throw unsupportedMediaType('INGRESS_BAD_CONTENT_TYPE', '_bulk_docs takes application/json');
    const text = await bodyText(request, ingress.body_limit_bytes);
    checkCountBeforeParsing(valuesAt(text, 2, rules.maxDocs), rules);
    return writeMany(request, reply, bulkDocsOf(parseJson(text, 'request body', rules.maxDepth + 2)), text.length);
  });
}

/** The body as text: inflated when it came gzip-compressed (within the body limit), UTF-8 or refused. */
async function bodyText(request: FastifyRequest, limitBytes: number): Promise<string> {
  if (!Buffer.isBuffer(request.body)) return '';
  try {
    return utf8Text(await decodedBody(request.body, request.headers['content-encoding'], limitBytes));
  } catch (err) {
    if (!(err instanceof BodyEncodingError)) throw err;
    if (err.kind === 'unsupported') throw unsupportedMediaType('INGRESS_BAD_CONTENT_ENCODING', err.message);
    if (err.kind === 'too_large') throw tooLarge('INGRESS_BODY_TOO_LARGE', err.message);
    throw badRequest('INGRESS_INVALID_JSON', err.message);
  }
}

function isNdjson(request: FastifyRequest): boolean {
  return (request.headers['content-type'] ?? '').toLowerCase().startsWith(NDJSON);
}
