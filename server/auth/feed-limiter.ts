// Long-polling and continuous feeds (`_changes?feed=longpoll`, `_db_updates`
// and the like) keep a connection to CouchDB open for as long as nothing
// changes: on a quiet database until the client goes away, since PouchDB
// Server never times a long poll out by itself. Every proxied request shares
// one pool of connections to CouchDB, so without a limit one reader holding
// as many feeds open as the pool has connections stalls every other read,
// Fauxton and logins included, for as long as it likes.
//
// What must stay true: feeds never hold more than `maxOpen` connections of
// the pool, and the pool always has SHORT_REQUEST_CONNECTIONS beyond them
// (proxyPoolSize); one account never holds more than `maxOpenPerUser`.
// The same counter (maxOpen unbounded) limits one account's proxied
// requests of any kind in progress (proxy-routes.ts): a body sent a byte
// at a time holds a connection as a feed does.

/** Connections of the proxy's pool that feeds can never take. */
export const SHORT_REQUEST_CONNECTIONS = 32;

/** The proxy's pool: the feeds' share plus the connections kept for everything else. */
export const proxyPoolSize = (maxOpenFeeds: number): number => maxOpenFeeds + SHORT_REQUEST_CONNECTIONS;

export interface FeedLimits {
  maxOpen: number;
  maxOpenPerUser: number;
}

/** Why a feed was refused: the account's own share is used up, or everybody's is. */
export type FeedRefusal = 'user' | 'total';

export class FeedLimiter {
  private total = 0;
  private readonly perUser = new Map<string, number>();

  constructor(private readonly limits: FeedLimits) {}

  /** A function that gives the slot back (once, however often it is called), or why there is none. */
  acquire(user: string): (() => void) | FeedRefusal {
    const mine = this.perUser.get(user) ?? 0;
    if (mine >= this.limits.maxOpenPerUser) return 'user';
    if (this.total >= this.limits.maxOpen) return 'total';
    this.total++;
    this.perUser.set(user, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.perUser.get(user) ?? 1) - 1;
      if (left === 0) this.perUser.delete(user);
      else this.perUser.set(user, left);
    };
  }

  get open(): number {
    return this.total;
  }
}

const LIVE_FEEDS = new Set(['longpoll', 'continuous', 'eventsource', 'websocket']);
const FEED_ROUTE = /^\/(?:[^/]+\/_changes|_db_updates)\/?$/;

function decodedPath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/**
 * Whether a request opens a feed that stays open until something changes.
 * Path and query are read decoded, as CouchDB reads them (`/db/%5Fchanges`
 * and `fe%65d=longpoll` are a feed). Any live `feed` counts, whichever of
 * several a server takes.
 */
export function isLiveFeed(url: string): boolean {
  const q = url.indexOf('?');
  if (q < 0 || !FEED_ROUTE.test(decodedPath(url.slice(0, q)))) return false;
  // CouchDB also separates parameters with ";" (PouchDB Server does not): read both.
  for (const [key, value] of new URLSearchParams(url.slice(q + 1).replace(/;/g, '&'))) if (key === 'feed' && LIVE_FEEDS.has(value)) return true;
  return false;
}
