// Failed authentications per client address: after `max` failures in a
// window, requests from that address that present credentials (or log in)
// get 429 with Retry-After until the window ends. Successful logins are not
// slowed, and nothing is counted for requests without credentials.
//
// A failure is only known once its answer is out, so guesses sent at once
// would all pass the count before any is made. Credentials not known to be
// good therefore hold one of the address's failures while they are judged
// (`admit`): at most `max` guesses from one address are ever in flight or
// failed within a window. What must stay true: credentials known to be good
// never hold a place (busy clients are never throttled), and the same
// credentials in flight several times hold one place (one guess).
import { LRUCache } from 'lru-cache';
import { tooManyRequests } from '../../lib/errors.js';

export interface FailureLimiterOptions {
  max: number;
  windowMs: number;
  /** Addresses remembered at most (the least recently failing are forgotten). */
  maxAddresses?: number;
}

interface Window {
  start: number;
  failures: number;
}

/** Requests in flight with the same unverified credentials. */
interface Pending {
  requests: number;
}

/** Ends an admitted request: `failed` when its credentials were refused. Calls after the first do nothing. */
export type Release = (failed: boolean) => void;

export class FailureLimiter {
  private readonly windows: LRUCache<string, Window>;
  /** Per address, the unverified credentials being judged. Bounded by the open connections. */
  private readonly pending = new Map<string, Map<string, Pending>>();

  constructor(
    private readonly opts: FailureLimiterOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.windows = new LRUCache<string, Window>({ max: opts.maxAddresses ?? 100_000 });
  }

  get enabled(): boolean {
    return this.opts.max > 0;
  }

  private current(address: string): Window | undefined {
    const w = this.windows.get(address);
    if (w && this.now() - w.start >= this.opts.windowMs) {
      this.windows.delete(address);
      return undefined;
    }
    return w;
  }

  /** Throws the 429 when this address has used up its failures. */
  check(address: string): void {
    if (!this.enabled) return;
    const w = this.current(address);
    if (w && w.failures >= this.opts.max) {
      const retryAfterS = Math.max(1, Math.ceil((w.start + this.opts.windowMs - this.now()) / 1000));
      throw tooManyRequests('AUTH_TOO_MANY_FAILURES', `too many failed authentications from this address; retry in ${retryAfterS} s`, retryAfterS);
    }
  }

  fail(address: string): void {
    if (!this.enabled) return;
    const w = this.current(address);
    if (w) w.failures++;
    else this.windows.set(address, { start: this.now(), failures: 1 });
  }

  /**
   * A request from `address` whose credentials (`key`: their fingerprint,
   * or a key of its own for a login) are not known to be good is about to
   * have them judged. Throws the 429 when the address's failures and the
   * other credentials it has in flight leave no place for one more guess.
   */
  admit(address: string, key: string): Release {
    if (!this.enabled) return () => {};
    this.check(address);
    let inFlight = this.pending.get(address);
    let entry = inFlight?.get(key);
    if (!entry) {
      const failures = this.current(address)?.failures ?? 0;
      if (failures + (inFlight?.size ?? 0) >= this.opts.max)
        throw tooManyRequests('AUTH_TOO_MANY_ATTEMPTS', 'too many authentications from this address are being checked at once; retry in 1 s', 1);
      if (!inFlight) this.pending.set(address, (inFlight = new Map()));
      inFlight.set(key, (entry = { requests: 0 }));
    }
    entry.requests++;
    const held = entry;
    let released = false;
    return (failed) => {
      if (released) return;
      released = true;
      this.drop(address, key, held);
      if (failed) this.fail(address);
    };
  }

  /** These credentials were found good: requests still in flight with them no longer hold a place. */
  verified(address: string, key: string): void {
    const inFlight = this.pending.get(address);
    if (!inFlight?.delete(key)) return;
    if (inFlight.size === 0) this.pending.delete(address);
  }

  private drop(address: string, key: string, held: Pending): void {
    const inFlight = this.pending.get(address);
    // Not the same entry: `verified` removed it (and the key may be back since, with other requests).
    if (!inFlight || inFlight.get(key) !== held) return;
    if (--held.requests > 0) return;
    inFlight.delete(key);
    if (inFlight.size === 0) this.pending.delete(address);
  }

  /** Addresses with unverified credentials in flight (for tests: nothing may stay held). */
  get pendingAddresses(): number {
    return this.pending.size;
  }
}
