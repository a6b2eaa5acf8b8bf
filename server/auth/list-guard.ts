// PouchDB Server dies (unhandled error) on a `_list` request whose design
// document or list function does not exist, or whose view is missing: any
// reader could stop the embedded server. Before such a request is
// forwarded, the ingress reads the design document(s) with the caller's own
// credentials (cached briefly) and answers 404 itself for what is missing.
// Harmless on CouchDB 3, which answers the same 404 itself.
import { LRUCache } from 'lru-cache';
import { notFound, unavailable } from '../../lib/errors.js';
import { credentialHeaders, type Credentials } from './credentials.js';
import { segmentsOf } from './role-policy.js';

interface DesignFunctions {
  lists: Set<string>;
  views: Set<string>;
}

export interface ListGuardOptions {
  upstream: string;
  timeoutMs: number;
  retryAfterS: number;
  ttlMs?: number;
}

/** The list request's parts: db, design doc, list, and the view's design doc and view; null if not a _list request. */
export function listTarget(url: string): { db: string; ddoc: string; list: string; viewDdoc: string; view: string } | null {
  const segs = segmentsOf(url.split('?', 1)[0]!);
  if (!segs || segs.length < 5 || segs[1] !== '_design' || segs[3] !== '_list') return null;
  const [db, , ddoc, , list, a, b] = segs as string[];
  if (segs.length === 6) return { db: db!, ddoc: ddoc!, list: list!, viewDdoc: ddoc!, view: a! };
  if (segs.length === 7) return { db: db!, ddoc: ddoc!, list: list!, viewDdoc: b === undefined ? ddoc! : a!, view: b! };
  return { db: db!, ddoc: ddoc!, list: list!, viewDdoc: ddoc!, view: '' };
}

export class ListGuard {
  private readonly cache: LRUCache<string, DesignFunctions | 'missing'>;

  constructor(private readonly opts: ListGuardOptions) {
    this.cache = new LRUCache({ max: 1000, ttl: opts.ttlMs ?? 5000 });
  }

  /** Throws 404 when the list, its design document or its view is missing. */
  async check(url: string, creds: Credentials | null): Promise<void> {
    const t = listTarget(url);
    if (!t) return;
    const own = await this.functions(t.db, t.ddoc, creds);
    if (own === 'unchecked') return;
    if (own === 'missing' || !own.lists.has(t.list)) throw notFound('INGRESS_MISSING_LIST', `missing list function ${t.list} on design doc _design/${t.ddoc}`);
    const viewDoc = t.viewDdoc === t.ddoc ? own : await this.functions(t.db, t.viewDdoc, creds);
    if (viewDoc === 'unchecked') return;
    if (viewDoc === 'missing' || !viewDoc.views.has(t.view))
      throw notFound('INGRESS_MISSING_VIEW', `missing view ${t.view} on design doc _design/${t.viewDdoc}`);
  }

  private async functions(db: string, ddoc: string, creds: Credentials | null): Promise<DesignFunctions | 'missing' | 'unchecked'> {
    const key = `${creds?.authorization ?? ''}\n${creds?.cookie ?? ''}\n${db}\n${ddoc}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    let res: Response;
    try {
      res = await fetch(`${this.opts.upstream}/${encodeURIComponent(db)}/_design/${encodeURIComponent(ddoc)}`, {
        headers: { accept: 'application/json', ...(creds ? credentialHeaders(creds) : {}) },
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
    } catch (err) {
      throw unavailable('COUCHDB_UNAVAILABLE', `CouchDB is unavailable (${(err as Error).message}); retry later`, this.opts.retryAfterS, err);
    }
    const body = (await res.json().catch(() => null)) as { lists?: Record<string, unknown>; views?: Record<string, unknown> } | null;
    // Only an answer about the design document is kept: a 404 says it is missing, a 200 what it
    // holds. CouchDB failing for a moment is a 503 to retry, never a cached "missing" (a 404 for a
    // list that exists, which no client retries); a caller it refuses is for CouchDB to answer.
    if (res.status === 401 || res.status === 403) return 'unchecked';
    let value: DesignFunctions | 'missing';
    if (res.status === 200 && body) value = { lists: new Set(Object.keys(body.lists ?? {})), views: new Set(Object.keys(body.views ?? {})) };
    else if (res.status === 404) value = 'missing';
    else throw unavailable('COUCHDB_UNAVAILABLE', `CouchDB answered ${res.status} for _design/${ddoc}; retry later`, this.opts.retryAfterS);
    this.cache.set(key, value);
    return value;
  }
}
