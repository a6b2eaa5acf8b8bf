// Typed errors with a stable code and an HTTP status. Code anywhere throws
// these; the HTTP boundary (server/plugins/error-handler.ts) and the CLI
// (scripts/couchlog.ts) are the only places that turn them into output.

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
  | 'service_unavailable'
  | 'doc_validation'
  | 'internal_server_error';

export interface CouchlogErrorOptions {
  /** Extra response headers (Retry-After, WWW-Authenticate). */
  headers?: Record<string, string>;
  cause?: unknown;
}

export class CouchlogError extends Error {
  override readonly name = 'CouchlogError';
  readonly headers: Record<string, string>;

  constructor(
    /** Stable, documented, machine-readable code, e.g. `INGRESS_DOC_HAS_REV`. */
    readonly code: string,
    readonly statusCode: number,
    readonly couchError: CouchErrorName,
    message: string,
    options: CouchlogErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.headers = options.headers ?? {};
  }

  /** The CouchDB-style body every client of CouchDB already knows how to read. */
  toBody(): { error: CouchErrorName; reason: string; code: string } {
    return { error: this.couchError, reason: this.message, code: this.code };
  }
}

export const badRequest = (code: string, reason: string, cause?: unknown) =>
  new CouchlogError(code, 400, 'bad_request', reason, { cause });

export const docValidation = (code: string, reason: string) =>
  new CouchlogError(code, 400, 'doc_validation', reason);

export const unauthorized = (code: string, reason: string) =>
  new CouchlogError(code, 401, 'unauthorized', reason, {
    headers: { 'WWW-Authenticate': 'Basic realm="couchlog"' },
  });

export const forbidden = (code: string, reason: string) =>
  new CouchlogError(code, 403, 'forbidden', reason);

export const notFound = (code: string, reason: string) =>
  new CouchlogError(code, 404, 'not_found', reason);

export const tooLarge = (code: string, reason: string) =>
  new CouchlogError(code, 413, 'too_large', reason);

export const unsupportedMediaType = (code: string, reason: string) =>
  new CouchlogError(code, 415, 'bad_content_type', reason);

export const tooManyRequests = (code: string, reason: string, retryAfterS: number) =>
  new CouchlogError(code, 429, 'too_many_requests', reason, {
    headers: { 'Retry-After': String(retryAfterS) },
  });

export const unavailable = (code: string, reason: string, retryAfterS: number, cause?: unknown) =>
  new CouchlogError(code, 503, 'service_unavailable', reason, {
    headers: { 'Retry-After': String(retryAfterS) },
    cause,
  });

/** A configuration problem: reported by the CLI with exit code 2, never retried. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

/** A failure of a CLI command that should end it with a one-line message. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
