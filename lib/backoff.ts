// Waiting between retries: exponential backoff with jitter, or what the
// server asked for with Retry-After (429, 503), whichever is longer.

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
