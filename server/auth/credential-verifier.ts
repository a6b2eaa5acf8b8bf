// Verifies a caller's credentials against CouchDB's own `GET /_session`, and
// remembers the answer briefly. The ingress must do this itself before it
// forwards anything: PouchDB Server ignores require_valid_user and _security
// on several routes (`_find`, `_index`, `_all_dbs`) and crashes on others.
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { CouchHttp } from '../../lib/couch/http.js';
import { unauthorized, unavailable } from '../../lib/errors.js';
import { credentialHeaders, type Credentials } from './credentials.js';
import type { Metrics } from '../plugins/metrics.js';

export interface Caller {
  name: string;
  roles: string[];
}

export interface VerifierOptions {
  ttlMs: number;
  negativeTtlMs: number;
  retryAfterS: number;
  maxEntries?: number;
}

/** `null` in the cache: these credentials were refused recently. */
type Verdict = { caller: Caller | null };

export class CredentialVerifier {
  private readonly cache: LRUCache<string, Verdict, Credentials>;

  constructor(
    private readonly http: CouchHttp,
    private readonly opts: VerifierOptions,
    private readonly metrics: Metrics,
  ) {
    this.cache = new LRUCache<string, Verdict, Credentials>({
      max: opts.maxEntries ?? 10_000,
      ttl: Math.max(opts.ttlMs, 1),
      // Concurrent requests with the same credentials share one lookup.
      fetchMethod: async (_key, _stale, { options, context }) => {
        const verdict = await this.ask(context);
        options.ttl = verdict.caller ? Math.max(this.opts.ttlMs, 1) : Math.max(this.opts.negativeTtlMs, 1);
        return verdict;
      },
    });
  }

  /** The verified caller; a 401 error when the credentials are refused. */
  async verify(creds: Credentials): Promise<Caller> {
    const key = createHash('sha256')
      .update(creds.authorization ?? '')
      .update('\n')
      .update(creds.cookie ?? '')
      .digest('base64');
    const cached = this.cache.has(key);
    const verdict = await this.cache.fetch(key, { context: creds });
    this.metrics.authChecks.inc({ result: cached ? 'cached' : verdict?.caller ? 'valid' : 'invalid' });
    if (!verdict?.caller) throw unauthorized('AUTH_INVALID', 'Name or password is incorrect.');
    return verdict.caller;
  }

  private async ask(creds: Credentials): Promise<Verdict> {
    const res = await this.http.request<{ userCtx?: { name: string | null; roles: string[] } }>('GET', '/_session', {
      headers: credentialHeaders(creds),
    });
    // CouchDB 3 answers 400 to credentials it cannot parse (a Basic value
    // that is not base64, a malformed AuthSession cookie): refused, not an outage.
    if (res.status === 400 || res.status === 401 || res.status === 403) return { caller: null };
    if (res.status !== 200) {
      throw unavailable('AUTH_CHECK_FAILED', `CouchDB answered ${res.status} to the credential check`, this.opts.retryAfterS);
    }
    const ctx = res.body?.userCtx;
    // An expired AuthSession cookie yields 200 with an anonymous userCtx.
    if (!ctx || typeof ctx.name !== 'string') return { caller: null };
    return { caller: { name: ctx.name, roles: Array.isArray(ctx.roles) ? ctx.roles : [] } };
  }

  clear(): void {
    this.cache.clear();
  }
}
