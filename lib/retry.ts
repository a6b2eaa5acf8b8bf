// The one retry policy of couchlog's senders (the shipper, the correlator's
// sinks, the HEC forwarder): how long to wait between attempts
// (exponential backoff with jitter, or the server's Retry-After, whichever
// is longer), when to give up, and how a batch refused because of some of
// its items is narrowed down. What is retriable is each adapter's call
// (Vector keeps that apart from the policy too); this module only says how.

export interface BackoffOptions {
  /** First delay's ceiling. */
  baseMs: number;
  /** No delay is longer than this. */
  maxMs: number;
}

/**
 * Delay before retry number `attempt` (0 for the first retry): "equal
 * jitter", half of min(max, base * 2^attempt) plus a random part of the
 * other half, so clients that failed together do not retry together and
 * no retry comes immediately.
 */
export function backoffDelay(attempt: number, o: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(o.maxMs, o.baseMs * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + random() * (ceiling / 2);
}

/** Retry-After in ms (delta seconds or an HTTP date), or null when absent or unreadable. */
export function retryAfterMs(header: string | string[] | undefined, now: number = Date.now()): number | null {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value.trim() === '') return null;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

export interface RetryScheduleOptions extends BackoffOptions {
  /** Give up once failures have lasted this long (the last attempt comes at the deadline); none: retry for as long as it takes. */
  giveUpAfterMs?: number;
}

/**
 * One run of failures of one sender: call failed() after each failure for
 * the wait before the next attempt (null: give up), succeeded() after any
 * progress, which starts the backoff over.
 */
export class RetrySchedule {
  private attempt = 0;
  private since: number | null = null;

  constructor(
    private readonly o: RetryScheduleOptions,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {}

  /** The wait before the next attempt, or null when it is time to give up. */
  failed(retryAfterMs: number | null = null): number | null {
    this.since ??= this.now();
    const elapsed = this.now() - this.since;
    this.attempt++;
    const delay = Math.max(retryAfterMs ?? 0, backoffDelay(this.attempt - 1, this.o, this.random));
    if (this.o.giveUpAfterMs === undefined) return delay;
    if (elapsed >= this.o.giveUpAfterMs) return null;
    return Math.min(delay, this.o.giveUpAfterMs - elapsed);
  }

  succeeded(): void {
    this.attempt = 0;
    this.since = null;
  }

  /** Failures since the last success. */
  get failures(): number {
    return this.attempt;
  }

  /** Milliseconds since the first failure of this run, 0 when none. */
  get failingForMs(): number {
    return this.since === null ? 0 : this.now() - this.since;
  }
}

/**
 * A batch refused as a whole because of some of its items (a request
 * rule, one bad event): sends it again in two halves, each through `send`,
 * which retries and halves again as it needs, so the items refused for
 * good end up alone. Resolves false as soon as a half does (stopping).
 */
export async function inHalves<T>(batch: readonly T[], send: (part: T[]) => Promise<boolean | void>): Promise<boolean> {
  const half = Math.ceil(batch.length / 2);
  if ((await send(batch.slice(0, half))) === false) return false;
  return (await send(batch.slice(half))) !== false;
}
