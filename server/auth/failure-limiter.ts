// Failed authentications per client address: after `max` failures in a
// window, requests from that address that present credentials (or log in)
// get 429 with Retry-After until the window ends. Successful logins are not
// slowed, and nothing is counted for requests without credentials.
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

export class FailureLimiter {
  private readonly windows: LRUCache<string, Window>;

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
}
