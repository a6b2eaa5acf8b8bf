// Verifies a caller's credentials against CouchDB's own `GET /_session`, and
// remembers the answer briefly. The ingress must do this itself before it
// forwards anything: PouchDB Server ignores require_valid_user and _security
// on several routes (`_find`, `_index`, `_all_dbs`) and crashes on others.
import { createHash, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { CouchHttp } from '../../lib/couch/http.js';
import { forbidden, unauthorized, unavailable } from '../../lib/errors.js';
import { credentialHeaders, credentialKey, type Credentials } from './credentials.js';
import type { Metrics } from '../plugins/metrics.js';
import { WRITER_ROLE } from './role-policy.js';

export interface Caller {
  name: string;
  roles: string[];
}

export interface VerifierOptions {
  ttlMs: number;
  negativeTtlMs: number;
  retryAfterS: number;
  maxEntries?: number;
  /**
   * The writer account, whose password only the ingress needs. Credentials
   * naming it are checked here and never sent to CouchDB: CouchDB 3.4+
   * locks an account out after 5 failures from one address, and a few
   * wrong guesses through the ingress would otherwise lock out the writer
   * the ingress itself writes as (every write then answers 503).
   */
  writer?: { user: string; password: string };
  /** Told when credentials from an address are found good (FailureLimiter.verified: they stop holding a guess's place). */
  onVerified?: (clientIp: string, key: string) => void;
}

interface Lookup {
  creds: Credentials;
  clientIp: string | undefined;
}

/** `null` in the cache: these credentials were refused recently. */
/** `locked`: CouchDB 3.4+'s reason when it has locked the account out (the password may be right). */
type Verdict = { caller: Caller | null; locked?: string };

export class CredentialVerifier {
  private readonly cache: LRUCache<string, Verdict, Lookup>;

  constructor(
    private readonly http: CouchHttp,
    private readonly opts: VerifierOptions,
    private readonly metrics: Metrics,
  ) {
    this.cache = new LRUCache<string, Verdict, Lookup>({
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

  /** Whether a login (name, password) names the writer account, and if so whether the password is its own. */
  writerLogin(name: string, password: unknown): 'not-writer' | 'ok' | 'wrong' {
    if (!this.opts.writer || name !== this.opts.writer.user) return 'not-writer';
    return typeof password === 'string' && sameSecret(password, this.opts.writer.password) ? 'ok' : 'wrong';
  }

  /**
   * Basic credentials naming the writer with a wrong password are refused
   * here, never shown to CouchDB (whose lockout would stop every write).
   * For requests forwarded without a check of their own (GET /_session).
   */
  refuseWrongWriter(authorization: string | undefined): void {
    if (!this.opts.writer || authorization === undefined) return;
    const named = basicUser(authorization);
    if (named && named.user === this.opts.writer.user && !sameSecret(named.password, this.opts.writer.password)) {
      this.metrics.authChecks.inc({ result: 'invalid' });
      throw unauthorized('AUTH_INVALID', 'Name or password is incorrect.');
    }
  }

  /** The verified caller; a 401 error when the credentials are refused. */
  async verify(creds: Credentials, clientIp: string): Promise<Caller> {
    if (this.opts.writer && creds.authorization) {
      const named = basicUser(creds.authorization);
      if (named && named.user === this.opts.writer.user) {
        const ok = sameSecret(named.password, this.opts.writer.password) && !creds.cookie;
        this.metrics.authChecks.inc({ result: ok ? 'valid' : 'invalid' });
        if (!ok) throw unauthorized('AUTH_INVALID', 'Name or password is incorrect.');
        return { name: this.opts.writer.user, roles: [WRITER_ROLE] };
      }
    }
    const key = credentialKey(creds);
    const cached = this.cache.has(key);
    const verdict = await this.cache.fetch(key, { context: { creds, clientIp } });
    this.metrics.authChecks.inc({ result: cached ? 'cached' : verdict?.caller ? 'valid' : 'invalid' });
    // Not "incorrect": the caller may hold the right password, and counting it as a guess helps no one.
    // Not kept either: CouchDB locks an address out, and the cache is per credentials, not per address.
    if (verdict?.locked) {
      this.cache.delete(key);
      throw forbidden('AUTH_LOCKED', `CouchDB refuses this account for now: ${verdict.locked}`);
    }
    if (!verdict?.caller) throw unauthorized('AUTH_INVALID', 'Name or password is incorrect.');
    this.opts.onVerified?.(clientIp, key);
    return verdict.caller;
  }

  /**
   * Whether these credentials are known to be good without asking anyone:
   * the writer's own, or found good by CouchDB within the cache's time.
   */
  knownGood(creds: Credentials): boolean {
    if (this.opts.writer && creds.authorization && !creds.cookie) {
      const named = basicUser(creds.authorization);
      if (named && named.user === this.opts.writer.user) return sameSecret(named.password, this.opts.writer.password);
    }
    return Boolean(this.cache.peek(credentialKey(creds))?.caller);
  }

  private async ask({ creds, clientIp }: Lookup): Promise<Verdict> {
    // The caller's address: CouchDB's lockout then counts failures per client.
    const headers = clientIp ? { ...credentialHeaders(creds), 'x-forwarded-for': clientIp } : credentialHeaders(creds);
    const res = await this.http.request<{ userCtx?: { name: string | null; roles: string[] }; reason?: unknown }>('GET', '/_session', { headers });
    if (res.status === 403 && typeof res.body?.reason === 'string' && /locked/i.test(res.body.reason))
      return { caller: null, locked: res.body.reason.slice(0, 200) };
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

/** Name and password of a Basic Authorization value; null for other schemes or garbage. */
export function basicUser(authorization: string): { user: string; password: string } | null {
  // CouchDB's base64 decoding skips whitespace: "Basic d3J p..." names the
  // writer to it, so it must to this check too.
  const m = /^\s*basic\s+([A-Za-z0-9+/=\s]+)$/i.exec(authorization);
  if (!m) return null;
  const text = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return null;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}
