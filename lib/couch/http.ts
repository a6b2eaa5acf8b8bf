// The hot-path HTTP client for CouchDB: one keep-alive undici pool shared by
// the ingress's writes, its credential checks and its proxy. Every failure
// to reach CouchDB becomes a 503 CouchlogError, so callers never hang and
// never turn an outage into a 500.
import { Pool, type Dispatcher } from 'undici';
import { unavailable } from '../errors.js';

export interface CouchHttpOptions {
  timeoutMs: number;
  retryAfterS: number;
  connections?: number;
}

export interface CouchResponse<T = unknown> {
  status: number;
  headers: Dispatcher.ResponseData['headers'];
  body: T;
  /** The body as CouchDB sent it, when the request asked for `keepText`. */
  text?: string;
}

export interface CouchRequest {
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** This request's own time limit (headers and body), below the client's default. */
  timeoutMs?: number;
  /** Return the answer's text too (a caller that can pass it on as is). */
  keepText?: boolean;
}

export class CouchHttp {
  readonly pool: Pool;

  constructor(
    readonly baseUrl: string,
    private readonly options: CouchHttpOptions,
  ) {
    this.pool = new Pool(baseUrl, {
      connections: options.connections ?? 64,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      connect: { timeout: Math.min(options.timeoutMs, 5000) },
      keepAliveTimeout: 30_000,
    });
  }

  async request<T = unknown>(method: Dispatcher.HttpMethod, path: string, req: CouchRequest = {}): Promise<CouchResponse<T>> {
    let res: Dispatcher.ResponseData;
    try {
      res = await this.pool.request({
        method,
        path,
        headers: { accept: 'application/json', ...(req.body !== undefined ? { 'content-type': 'application/json' } : {}), ...req.headers },
        body: req.body,
        ...(req.timeoutMs !== undefined && { headersTimeout: req.timeoutMs, bodyTimeout: req.timeoutMs }),
      });
    } catch (err) {
      throw this.unreachable(err);
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw this.unreachable(err);
    }
    const out: CouchResponse<T> = { status: res.statusCode, headers: res.headers, body: parseJson(text) as T };
    if (req.keepText) out.text = text;
    return out;
  }

  unreachable(err: unknown) {
    const detail = (err as { code?: string }).code ?? (err as Error).message;
    return unavailable('COUCHDB_UNAVAILABLE', `CouchDB is unavailable (${detail}); retry later`, this.options.retryAfterS, err);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

function parseJson(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
