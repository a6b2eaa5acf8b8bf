// Typed errors with a stable code and an HTTP status. Code anywhere throws
// these; the HTTP boundary (server/plugins/error-handler.ts) and the CLI
// (cli/run-cli.ts) are the only places that turn them into output.

/** CouchDB's own error names, used as the `error` field of response bodies. */
export type CouchErrorName =
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'too_large'
  | 'bad_content_type'
  | 'too_many_requests'
  | 'request_timeout'
  | 'service_unavailable'
  | 'doc_validation'
  | 'internal_server_error';

export interface CouchlogErrorOptions {
  /** Extra response headers (Retry-After, WWW-Authenticate). */
  headers?: Record<string, string>;
  cause?: unknown;
}

/** What a code stands for: its HTTP status, CouchDB's error name, and when it is answered. */
export interface ErrorSpec {
  status: number;
  error: CouchErrorName;
  when: string;
}

/**
 * Every code couchlog answers with, in one place. The codes are stable:
 * clients and alerts match them. docs/errors.md lists the same codes
 * (test/unit/lib/errors.test.ts compares both ways); HEC routes answer with
 * Splunk's own codes instead (server/hec/errors.ts).
 */
export const ERRORS = {
  INGRESS_INVALID_JSON: { status: 400, error: 'bad_request', when: 'the body (or one NDJSON line) is not valid JSON' },
  INGRESS_EMPTY_BODY: {
    status: 400,
    error: 'bad_request',
    when: 'the body is empty, or an array or NDJSON body holds no documents (_bulk_docs with "docs": [] is answered 201 [], as CouchDB does)',
  },
  INGRESS_TOO_DEEP: { status: 400, error: 'bad_request', when: 'a document is nested deeper than ingress.max_json_depth' },
  INGRESS_DOC_NOT_OBJECT: { status: 400, error: 'bad_request', when: 'a document is not a JSON object' },
  INGRESS_BAD_ID: {
    status: 400,
    error: 'bad_request',
    when: 'an _id that is empty, not a string, too long, not valid Unicode, or ending in ~ and 24 hex digits (a tagged id)',
  },
  INGRESS_BAD_BULK: { status: 400, error: 'bad_request', when: 'a _bulk_docs body without a docs array, or with other fields than docs and new_edits' },
  INGRESS_BAD_PATH: { status: 400, error: 'bad_request', when: 'a path that is not plain: empty or dot segments, backslashes, control characters' },
  INGRESS_UNSAFE_NUMBER: {
    status: 400,
    error: 'bad_request',
    when: 'a number out of range (1e400): JSON.parse would read it as Infinity, stored as null',
  },
  INGRESS_LOGIN_AMBIGUOUS: { status: 400, error: 'bad_request', when: 'a POST /_session body that gives its name or password twice' },
  INGRESS_BAD_CONTENT_LENGTH: { status: 400, error: 'bad_request', when: 'Content-Length does not match the body' },
  INGRESS_BAD_REQUEST: { status: 400, error: 'bad_request', when: 'any other malformed request the HTTP layer refuses' },
  INGRESS_SPECIAL_FIELD: { status: 400, error: 'doc_validation', when: 'a top-level field starting with "_" that CouchDB does not know' },
  AUTH_REQUIRED: { status: 401, error: 'unauthorized', when: 'no credentials on a route that needs them (reads; writes when anonymous_write is off)' },
  AUTH_INVALID: { status: 401, error: 'unauthorized', when: 'wrong name or password, or an unknown write token' },
  INGRESS_RESERVED_ID: { status: 403, error: 'forbidden', when: 'an _id starting with "_" (design and local documents are admin-only)' },
  INGRESS_DOC_HAS_REV: { status: 403, error: 'forbidden', when: 'a document with _rev: stored documents are never updated' },
  INGRESS_DOC_DELETED: { status: 403, error: 'forbidden', when: 'a document with _deleted: stored documents are never deleted' },
  INGRESS_DOC_ATTACHMENTS: { status: 403, error: 'forbidden', when: 'a document with _attachments' },
  INGRESS_NEW_EDITS: { status: 403, error: 'forbidden', when: 'new_edits:false, which would let a writer inject revisions' },
  INGRESS_RESERVED_APP: { status: 403, error: 'forbidden', when: 'a write to a database couchlog writes itself (log_correlated)' },
  INGRESS_APP_LIMIT: { status: 403, error: 'forbidden', when: 'a new app over ingress.auto_create_max' },
  INGRESS_TOKEN_APP: { status: 403, error: 'forbidden', when: 'a write token used for an app it is not listed under' },
  AUTH_ADMIN_ONLY: { status: 403, error: 'forbidden', when: 'a server-wide route for admins only' },
  AUTH_ROLE_FORBIDDEN: { status: 403, error: 'forbidden', when: 'an authenticated caller reaching for more than its role allows' },
  INGRESS_LOGIN_CROSS_SITE: {
    status: 403,
    error: 'forbidden',
    when: 'a POST /_session from a page of another site (Origin, Sec-Fetch-Site) that is not in ingress.cors_origins: login CSRF',
  },
  AUTH_LOCKED: {
    status: 403,
    error: 'forbidden',
    when: "CouchDB 3.4+ has locked the account out for a while after repeated failed logins (the caller's password may be right)",
  },
  INGRESS_BAD_HTTP: {
    status: 400,
    error: 'bad_request',
    when: "a request Node's HTTP parser refuses (a malformed request line or header, Transfer-Encoding with Content-Length, two Content-Lengths); the connection is closed",
  },
  INGRESS_REQUEST_TIMEOUT: {
    status: 408,
    error: 'request_timeout',
    when: 'headers or a body that stall past ingress.body_timeout_ms; the connection is closed',
  },
  INGRESS_HEADERS_TOO_LARGE: { status: 431, error: 'too_large', when: "request headers over Node's limit (16 KiB); the connection is closed" },
  INGRESS_UNKNOWN_APP: { status: 404, error: 'not_found', when: 'a write to an app that is not configured (and auto_create is off)' },
  INGRESS_NOT_FOUND: { status: 404, error: 'not_found', when: 'a route the ingress does not have' },
  INGRESS_MISSING_LIST: { status: 404, error: 'not_found', when: 'a list function the design document does not have' },
  INGRESS_MISSING_VIEW: { status: 404, error: 'not_found', when: 'a view the design document does not have' },
  DASHBOARD_UNKNOWN_APP: { status: 404, error: 'not_found', when: 'the dashboard of an app that is not configured' },
  INGRESS_BODY_TOO_LARGE: { status: 413, error: 'too_large', when: 'a body over ingress.body_limit_bytes' },
  INGRESS_TOO_MANY_DOCS: { status: 413, error: 'too_large', when: 'more than ingress.max_docs_per_request documents in one request' },
  INGRESS_DOC_TOO_LARGE: { status: 413, error: 'too_large', when: 'a document over ingress.max_document_bytes (as stored: JSON with its _id and received_at)' },
  INGRESS_LOGIN_TOO_LARGE: { status: 413, error: 'too_large', when: 'a POST /_session body over its small limit' },
  INGRESS_LOGIN_ENCODING: { status: 415, error: 'bad_content_type', when: 'a POST /_session body with a Content-Encoding (compressed)' },
  INGRESS_BAD_CONTENT_TYPE: {
    status: 415,
    error: 'bad_content_type',
    when: 'a Content-Type other than application/json or application/x-ndjson (or multipart where it is not allowed)',
  },
  INGRESS_BAD_CONTENT_ENCODING: { status: 415, error: 'bad_content_type', when: 'a Content-Encoding other than gzip (or identity) on a write route' },
  INGRESS_RATE_LIMITED: { status: 429, error: 'too_many_requests', when: 'over the per-address rate limit (Retry-After)' },
  INGRESS_TOO_MANY_FEEDS: {
    status: 429,
    error: 'too_many_requests',
    when: 'a long-polling or continuous feed over ingress.feeds.max_open_per_user for the account, or max_open in all (Retry-After)',
  },
  INGRESS_TOO_MANY_PROXIED: {
    status: 429,
    error: 'too_many_requests',
    when: 'more requests of one account proxied to CouchDB at once than ingress.feeds.max_requests_per_user (Retry-After)',
  },
  AUTH_TOO_MANY_FAILURES: { status: 429, error: 'too_many_requests', when: 'too many failed authentications from one address (Retry-After)' },
  AUTH_TOO_MANY_ATTEMPTS: {
    status: 429,
    error: 'too_many_requests',
    when: 'unverified credentials in flight from one address, with its failures, reach auth_failures.max (Retry-After: 1)',
  },
  INGRESS_INTERNAL: { status: 500, error: 'internal_server_error', when: 'a bug: logged with its stack, answered without internals' },
  COUCHDB_UNAVAILABLE: { status: 503, error: 'service_unavailable', when: 'CouchDB cannot be reached; answered at once (Retry-After)' },
  COUCHDB_ERROR: { status: 503, error: 'service_unavailable', when: 'CouchDB answered a write with a 5xx (Retry-After)' },
  COUCHDB_BAD_ANSWER: { status: 503, error: 'service_unavailable', when: 'CouchDB answered _bulk_docs with something else than a result per document' },
  AUTH_CHECK_FAILED: { status: 503, error: 'service_unavailable', when: 'CouchDB could not check the credentials (Retry-After)' },
  INGRESS_WRITER_REFUSED: {
    status: 503,
    error: 'service_unavailable',
    when: "CouchDB refused the ingress's own writer account: run couchlog setup (Retry-After)",
  },
  INGRESS_AUTO_CREATE_FAILED: { status: 503, error: 'service_unavailable', when: "a new app's database could not be created (Retry-After)" },
  INGRESS_SHUTTING_DOWN: { status: 503, error: 'service_unavailable', when: 'the ingress is stopping (Retry-After)' },
  COUCHDB_BAD_REQUEST: { status: 400, error: 'bad_request', when: "CouchDB refused a caller's write as malformed (its reason is passed on)" },
  COUCHDB_UNAUTHORIZED: { status: 401, error: 'unauthorized', when: "CouchDB refused a caller's own credentials on a write" },
  COUCHDB_FORBIDDEN: { status: 403, error: 'forbidden', when: "CouchDB refused a caller's write (its reason is passed on)" },
  COUCHDB_NOT_FOUND: { status: 404, error: 'not_found', when: 'CouchDB has no such database' },
  COUCHDB_TOO_LARGE: { status: 413, error: 'too_large', when: 'CouchDB refused a write as too large' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** The codes whose CouchDB error name is E: what each typed constructor below accepts. */
export type CodeOf<E extends CouchErrorName> = { [K in ErrorCode]: (typeof ERRORS)[K]['error'] extends E ? K : never }[ErrorCode];

export class CouchlogError extends Error {
  override readonly name = 'CouchlogError';
  readonly headers: Record<string, string>;
  /** Stable, documented, machine-readable code, e.g. `INGRESS_DOC_HAS_REV`. */
  readonly code: string;
  readonly statusCode: number;
  readonly couchError: CouchErrorName;

  /** `spec` comes from ERRORS (couchlogError()), or from HEC's own table (server/hec/errors.ts). */
  constructor(spec: { code: string; status: number; error: CouchErrorName }, message: string, options: CouchlogErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = spec.code;
    this.statusCode = spec.status;
    this.couchError = spec.error;
    this.headers = options.headers ?? {};
  }

  /** The CouchDB-style body every client of CouchDB already knows how to read. */
  toBody(): { error: CouchErrorName; reason: string; code: string } {
    return { error: this.couchError, reason: this.message, code: this.code };
  }
}

/** The error of a registered code, with its status and CouchDB error name. */
export function couchlogError(code: ErrorCode, reason: string, options: CouchlogErrorOptions = {}): CouchlogError {
  const spec = ERRORS[code];
  return new CouchlogError({ code, status: spec.status, error: spec.error }, reason, options);
}

export const badRequest = (code: CodeOf<'bad_request'>, reason: string, cause?: unknown) => couchlogError(code, reason, { cause });

export const docValidation = (code: CodeOf<'doc_validation'>, reason: string) => couchlogError(code, reason);

export const unauthorized = (code: CodeOf<'unauthorized'>, reason: string) =>
  couchlogError(code, reason, { headers: { 'WWW-Authenticate': 'Basic realm="couchlog"' } });

export const forbidden = (code: CodeOf<'forbidden'>, reason: string) => couchlogError(code, reason);

export const notFound = (code: CodeOf<'not_found'>, reason: string) => couchlogError(code, reason);

export const tooLarge = (code: CodeOf<'too_large'>, reason: string) => couchlogError(code, reason);

export const unsupportedMediaType = (code: CodeOf<'bad_content_type'>, reason: string) => couchlogError(code, reason);

export const tooManyRequests = (code: CodeOf<'too_many_requests'>, reason: string, retryAfterS: number) =>
  couchlogError(code, reason, { headers: { 'Retry-After': String(retryAfterS) } });

export const unavailable = (code: CodeOf<'service_unavailable'>, reason: string, retryAfterS: number, cause?: unknown) =>
  couchlogError(code, reason, { headers: { 'Retry-After': String(retryAfterS) }, cause });

/** CouchDB's refusal of a caller's request (a 4xx other than the writer's own 401/403), as a registered code. */
export function couchdbRefusal(status: number, reason: string): CouchlogError {
  switch (status) {
    case 401:
      return couchlogError('COUCHDB_UNAUTHORIZED', reason);
    case 403:
      return couchlogError('COUCHDB_FORBIDDEN', reason);
    case 404:
      return couchlogError('COUCHDB_NOT_FOUND', reason);
    case 413:
      return couchlogError('COUCHDB_TOO_LARGE', reason);
    default:
      return couchlogError('COUCHDB_BAD_REQUEST', reason);
  }
}

/** A configuration problem: reported by the CLI with exit code 2, never retried. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

// The failures of work that is not an HTTP request (setup, the shipper, the
// CLI commands): library code throws these and says only what kind of
// failure it is; the CLI layer alone (cli/run-cli.ts exitCodeOf) turns the
// kind into an exit code and a one-line message. Anything else that reaches
// the CLI is a bug and is shown with its stack.

/** The options, arguments or input a caller gave cannot work: nothing was done (exit code 2). */
export class UsageError extends Error {
  override readonly name: string = 'UsageError';
}

/** The work could not be done, for a reason the message names (a server refused or is unreachable, a file is unreadable): exit code 1. */
export class OperationError extends Error {
  override readonly name: string = 'OperationError';
}

/** The work was stopped by a signal before it finished (exit code 130, as a shell reports SIGINT). */
export class InterruptedError extends Error {
  override readonly name = 'InterruptedError';
  constructor() {
    super('interrupted');
  }
}
