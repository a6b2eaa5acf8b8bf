// Reads a report view for `couchlog report`, with the reader's credentials,
// and turns every way it can fail into one clear line.
import { request } from 'undici';
import { basicAuth } from '../../lib/couch/basic-auth.js';
import { OperationError, UsageError } from '../../lib/errors.js';

export interface ViewRowData {
  key: unknown[];
  value: unknown;
  id?: string;
}

export interface ViewQuery {
  /** The server's root (report() refuses anything else); messages name only its origin. */
  baseUrl: string;
  db: string;
  ddoc: string;
  view: string;
  user: string;
  password: string;
  /** Query string parameters, JSON-encoded where CouchDB wants JSON. */
  params: Record<string, string>;
}

export async function queryView(q: ViewQuery): Promise<ViewRowData[]> {
  const qs = new URLSearchParams(q.params).toString();
  const path = `/${encodeURIComponent(q.db)}/_design/${encodeURIComponent(q.ddoc)}/_view/${encodeURIComponent(q.view)}${qs ? `?${qs}` : ''}`;
  const headers = { authorization: basicAuth(q.user, q.password), accept: 'application/json' };
  // Messages name the origin, never the URL as given: credentials in it were printed to the terminal (and to cron mail).
  const origin = originOf(q.baseUrl);
  const res = await get(origin, path, headers);
  if (res.status === 200) {
    const rows = (res.body as { rows?: Array<{ key: unknown; value: unknown; id?: string }> }).rows ?? [];
    return rows.map((r) => ({ ...r, key: Array.isArray(r.key) ? r.key : r.key === null ? [] : [r.key] }));
  }
  if (res.status === 401 || res.status === 403) {
    throw new OperationError(`the ${q.user} account was refused by ${origin} (${reason(res.body)}): check COUCHLOG_READER_PASSWORD`);
  }
  if (res.status === 404) {
    const db = await get(origin, `/${encodeURIComponent(q.db)}`, headers);
    if (db.status === 404) throw new OperationError(`database ${q.db} does not exist (is the app in the config's apps:, and has couchlog setup run?)`);
    throw new OperationError(`${q.db} has no view ${q.view} in _design/${q.ddoc} (add the report set to apps.<app>.reports and run couchlog setup)`);
  }
  throw new OperationError(`${origin} answered ${res.status} (${reason(res.body)}) for ${q.db}/_design/${q.ddoc}/_view/${q.view}`);
}

/** scheme://host:port of `baseUrl`: no credentials, no path. */
function originOf(baseUrl: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new UsageError('--url: not a URL');
  }
  if (!/^https?:$/.test(url.protocol)) throw new UsageError('--url: must be an http:// or https:// URL');
  return url.origin;
}

async function get(origin: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: unknown }> {
  try {
    const res = await request(new URL(path, origin), { headers, headersTimeout: VIEW_TIMEOUT_MS, bodyTimeout: VIEW_TIMEOUT_MS });
    const text = await res.body.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // keep the text
    }
    return { status: res.statusCode, body };
  } catch (err) {
    const code = (err as { code?: string }).code;
    // Found by a black-box test: after 100,000 new documents the first query builds the index for minutes, and the
    // old 60 s timeout blamed the network ("is couchlog running?") while the ingress answered /health at once.
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT')
      throw new OperationError(
        `${origin} gave no answer within ${VIEW_TIMEOUT_MS / 60_000} minutes: CouchDB is likely still building the view's index (the first query after many new documents does); run the report again later`,
      );
    throw new OperationError(`cannot reach ${origin}: ${code ?? (err as Error).message} (is couchlog running?)`);
  }
}

/** A view's first query after many writes builds its index first: minutes on a large database. */
const VIEW_TIMEOUT_MS = 10 * 60_000;

function reason(body: unknown): string {
  const b = body as { error?: string; reason?: string } | null;
  return b && typeof b === 'object' ? `${b.error ?? ''}: ${b.reason ?? ''}` : String(body).slice(0, 200);
}
