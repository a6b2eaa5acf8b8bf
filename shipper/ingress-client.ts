// One `POST /log_<app>/_bulk_docs` to the ingress, its answer sorted into
// what the sender must do: per-document results, retry later, refused (a
// document in the batch breaks a rule: split the batch to find it), or
// fatal (wrong URL, wrong credentials: retrying cannot help).
import { Pool, errors as undiciErrors } from 'undici';
import { basicAuth } from '../lib/couch/basic-auth.js';
import { UsageError, type ErrorCode } from '../lib/errors.js';
import { retryAfterMs } from '../lib/retry.js';
import { isStoredWrite } from '../lib/couch/write-status.js';

export type DocResult = { kind: 'stored' } | { kind: 'exists' } | { kind: 'retry'; reason: string } | { kind: 'rejected'; error: string; reason: string };

export type BatchAnswer =
  | { kind: 'results'; results: DocResult[] }
  | { kind: 'retry'; reason: string; retryAfterMs: number | null }
  | { kind: 'refused'; status: number; reason: string }
  | { kind: 'fatal'; reason: string };

export interface IngressTarget {
  /** Origin, e.g. http://127.0.0.1:8080 */
  origin: string;
  /** Path of the database, e.g. /log_fail2ban */
  dbPath: string;
  /** Authorization header from credentials in the URL, if any. */
  authorization: string | null;
  /** The URL without credentials, for messages. */
  display: string;
}

const DB_PATH = /^\/log_[a-z][a-z0-9_-]{0,63}$/;

/** `http://host:8080/log_fail2ban`, or a base URL plus an app name. */
export function parseTarget(url: string, app?: string): IngressTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Not repeated: it may hold a password (http://writer:secret@host:80x/...), and this goes to cron mail.
    throw new UsageError('--url: not a URL (expected e.g. http://127.0.0.1:8080/log_fail2ban)');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError('--url must be http:// or https://');
  let path = u.pathname.replace(/\/+$/, '');
  if (path.endsWith('/_bulk_docs')) path = path.slice(0, -'/_bulk_docs'.length);
  if (app !== undefined) {
    if (DB_PATH.test(path) && path !== `/log_${app}`) throw new UsageError(`--url names ${path.slice(1)} but --app is ${app}`);
    if (!DB_PATH.test(path)) path = `${path}/log_${app}`;
  }
  const db = path.slice(path.lastIndexOf('/'));
  if (!DB_PATH.test(db)) throw new UsageError(`--url must end with /log_<app> (e.g. http://127.0.0.1:8080/log_fail2ban), or give --app; got ${u.pathname}`);
  const authorization = u.username ? basicAuth(decodeURIComponent(u.username), decodeURIComponent(u.password)) : null;
  u.username = '';
  u.password = '';
  return { origin: u.origin, dbPath: path, authorization, display: `${u.origin}${path}` };
}

export class IngressClient {
  private readonly pool: Pool;

  constructor(
    readonly target: IngressTarget,
    private readonly o: { timeoutMs: number; connections: number },
  ) {
    this.pool = new Pool(target.origin, {
      connections: o.connections,
      headersTimeout: o.timeoutMs,
      bodyTimeout: o.timeoutMs,
      connect: { timeout: Math.min(o.timeoutMs, 10_000) },
    });
  }

  /** `docs` are complete JSON texts, each with its `_id`. */
  async send(docs: readonly string[], ids: readonly string[], signal?: AbortSignal): Promise<BatchAnswer> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (this.target.authorization) headers.authorization = this.target.authorization;
    let status: number;
    let text: string;
    let retryAfter: number | null;
    try {
      const res = await this.pool.request({
        method: 'POST',
        path: `${this.target.dbPath}/_bulk_docs`,
        headers,
        body: `{"docs":[${docs.join(',')}]}`,
        signal,
      });
      status = res.statusCode;
      retryAfter = retryAfterMs(res.headers['retry-after']);
      text = await res.body.text();
    } catch (err) {
      if (signal?.aborted) throw err;
      return { kind: 'retry', reason: networkReason(err), retryAfterMs: null };
    }
    return classify(status, text, retryAfter, ids);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

function networkReason(err: unknown): string {
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) return 'no answer in time';
  if (err instanceof undiciErrors.ConnectTimeoutError) return 'connect timeout';
  const e = err as { code?: string; message?: string; cause?: { code?: string } };
  return e.cause?.code ?? e.code ?? e.message ?? String(err);
}

/**
 * The ingress's codes that blame a document of the batch: halving the batch
 * finds it, and only it goes to the reject file. Any other 400 or 403 code
 * is about the request, the token or the account (INGRESS_TOKEN_APP,
 * AUTH_ROLE_FORBIDDEN, INGRESS_APP_LIMIT ...): every line would be refused
 * alike, and with --truncate rejecting them would remove them from the log.
 */
const DOCUMENT_CODES = new Set<string>([
  'INGRESS_INVALID_JSON',
  'INGRESS_TOO_DEEP',
  'INGRESS_UNSAFE_NUMBER',
  'INGRESS_DOC_NOT_OBJECT',
  'INGRESS_BAD_ID',
  'INGRESS_SPECIAL_FIELD',
  'INGRESS_RESERVED_ID',
  'INGRESS_DOC_HAS_REV',
  'INGRESS_DOC_DELETED',
  'INGRESS_DOC_ATTACHMENTS',
  'COUCHDB_BAD_REQUEST',
] satisfies ErrorCode[]);

/**
 * A document refused for who sent it, not for what it is: the log
 * databases' validate_doc_update (design-docs/append-only.ts) refuses every
 * document of an account without the log_writer role alike. (CouchDB
 * refusing the whole request, COUCHDB_FORBIDDEN, is the same: the account
 * is not a member of the database.)
 */
const ACCOUNT_REFUSAL = /only users with the log_writer role/;

/** Whether a 400 or 403 blames a document (refused) or the request (fatal). Without a code (not couchlog's ingress), a 400 is taken as a document's, a 403 as the account's. */
function blamesADocument(status: number, body: unknown): boolean {
  const code = body && typeof body === 'object' && !Array.isArray(body) ? (body as { code?: unknown }).code : undefined;
  if (typeof code === 'string') return DOCUMENT_CODES.has(code);
  return status === 400;
}

export function classify(status: number, text: string, retryAfter: number | null, ids: readonly string[]): BatchAnswer {
  const body = parse(text);
  const reason = describe(status, body);
  if (isStoredWrite(status)) {
    if (!Array.isArray(body)) return { kind: 'retry', reason: 'the ingress gave an unexpected answer', retryAfterMs: null };
    const results = matchResults(body as Array<Record<string, unknown>>, ids);
    const account = results.find((r) => r.kind === 'rejected' && ACCOUNT_REFUSAL.test(r.reason));
    if (account?.kind === 'rejected') return { kind: 'fatal', reason: `CouchDB refused the account, not a line: ${account.error}: ${account.reason}` };
    return { kind: 'results', results };
  }
  // 408: the ingress closed a request whose body stalled (INGRESS_REQUEST_TIMEOUT, a slow or
  // congested link): nothing was stored, and the same batch sent again may get through.
  if (status === 408 || status === 429 || status >= 500) return { kind: 'retry', reason, retryAfterMs: retryAfter };
  // Too large: halving makes it fit, or finds the one line that cannot.
  if (status === 413) return { kind: 'refused', status, reason };
  if (status === 400 || status === 403) {
    if (blamesADocument(status, body)) return { kind: 'refused', status, reason };
    return { kind: 'fatal', reason: `the ingress refused the request, not a line: ${reason}` };
  }
  if (status === 401) return { kind: 'fatal', reason: `the ingress refused the credentials: ${reason}` };
  if (status === 404) return { kind: 'fatal', reason: `no such log database at the ingress: ${reason}` };
  return { kind: 'fatal', reason };
}

/** Per-document answers, in order; matched by id when the order does not line up. */
function matchResults(rows: Array<Record<string, unknown>>, ids: readonly string[]): DocResult[] {
  const inOrder = rows.length === ids.length && rows.every((r, i) => r.id === ids[i]);
  const byId = new Map<string, Array<Record<string, unknown>>>();
  if (!inOrder) {
    for (const r of rows) {
      const list = byId.get(String(r.id));
      if (list) list.push(r);
      else byId.set(String(r.id), [r]);
    }
  }
  return ids.map((id, i) => {
    const r = inOrder ? rows[i] : byId.get(id)?.shift();
    if (r === undefined) return { kind: 'retry', reason: 'the ingress gave no result for this document' };
    if (r.ok === true || (r.rev !== undefined && r.error === undefined)) return { kind: 'stored' };
    const error = String(r.error);
    if (error === 'conflict') return { kind: 'exists' };
    if (error === 'unknown') return { kind: 'retry', reason: String(r.reason ?? 'unknown result') };
    return { kind: 'rejected', error, reason: String(r.reason ?? error) };
  });
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function describe(status: number, body: unknown): string {
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    const b = body as { error?: unknown; reason?: unknown; code?: unknown };
    const code = b.code ? ` ${String(b.code)}` : '';
    return `${status} ${String(b.error ?? '')}${code}: ${String(b.reason ?? '')}`.trim();
  }
  return `${status} ${String(body).slice(0, 200)}`.trim();
}
