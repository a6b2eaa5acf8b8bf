// The role policy the ingress enforces itself, on both CouchDB flavours,
// before anything is forwarded (README, "Security model"):
//
//   anonymous, log_writer  -> the write routes only (and the public routes)
//   log_reader             -> read-only routes of log databases (log_<app>):
//                             GET/HEAD on documents, views, lists, _all_docs,
//                             _changes, and the read-only POSTs _find,
//                             _all_docs, _bulk_get, _explain, view queries
//                             (keys); no other database (a correlator's state
//                             database, one an admin made for something else)
//                             even where its _security would let a reader in
//   _admin                 -> everything
//
// CouchDB 3 lets any authenticated user POST _replicate, PouchDB Server
// ignores _security on several routes: neither may decide this for us.
// Paths are judged segment by segment after percent-decoding, as CouchDB
// itself reads them; anything not recognised is refused (allowlist).
import { isLogDb } from '../../lib/config/load.js';
import type { Caller } from './credential-verifier.js';

export type Role = 'admin' | 'reader' | 'writer' | 'none';

export const WRITER_ROLE = 'log_writer';
export const READER_ROLE = 'log_reader';

/** The strongest role a verified caller holds. */
export function roleOf(caller: Caller): Role {
  if (caller.roles.includes('_admin')) return 'admin';
  if (caller.roles.includes(READER_ROLE)) return 'reader';
  if (caller.roles.includes(WRITER_ROLE)) return 'writer';
  return 'none';
}

/** May this caller use the write routes (with their own credentials)? */
export function mayWrite(caller: Caller): boolean {
  return caller.roles.includes('_admin') || caller.roles.includes(WRITER_ROLE);
}

/** Server-level (`/_x`) routes a reader may GET: none of them reveals more than CouchDB shows any member. */
const READER_SERVER_GET = new Set(['_all_dbs', '_uuids', '_up']);

const READ = new Set(['GET', 'HEAD']);

/**
 * null when the caller may make this proxied request; otherwise the reason
 * for the 403. `url` is the raw request URL (path and query).
 */
export function proxyRefusal(method: string, url: string, caller: Caller): string | null {
  const role = roleOf(caller);
  if (role === 'admin') return null;
  if (role !== 'reader') return `${role === 'writer' ? 'the writer account' : 'this account'} may only use the write routes`;
  return readerMayReach(method, url) ? null : `a reader may not ${method} this path (read-only routes only)`;
}

/** Path segments after percent-decoding; null when a segment does not decode. */
export function segmentsOf(path: string): string[] | null {
  const raw = path.split('/').slice(1);
  if (raw.length > 0 && raw[raw.length - 1] === '') raw.pop();
  const out: string[] = [];
  for (const s of raw) {
    try {
      out.push(decodeURIComponent(s));
    } catch {
      return null;
    }
  }
  return out;
}

/**
 * The _changes parameters a reader may send (the live dashboard uses since,
 * limit, descending, include_docs, feed and timeout). No filter of any kind:
 * on PouchDB Server a `filter` naming a missing design document, filter or
 * view (or `_view`, `_doc_ids`, `_selector`) is an unhandled error that
 * kills the process. Keys are compared decoded (`%66ilter` is `filter`),
 * as the server reads them; anything else is refused.
 */
const READER_CHANGES_PARAMS = new Set([
  'since',
  'limit',
  'descending',
  'include_docs',
  'feed',
  'timeout',
  'heartbeat',
  'style',
  'seq_interval',
  'conflicts',
  'attachments',
  'att_encoding_info',
]);
const READER_CHANGES_FEEDS = new Set(['normal', 'longpoll']);

/** A query's parameters as CouchDB reads them ("&" and ";" separate them); null when one does not decode. */
function queryParams(query: string): Array<[string, string]> | null {
  const out: Array<[string, string]> = [];
  for (const part of query.split(/[&;]/)) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    try {
      out.push([
        decodeURIComponent((eq < 0 ? part : part.slice(0, eq)).replace(/\+/g, ' ')),
        eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1).replace(/\+/g, ' ')),
      ]);
    } catch {
      return null;
    }
  }
  return out;
}

function changesQueryAllowed(query: string): boolean {
  // CouchDB separates parameters with ";" as well as "&" (feed=...;filter=... got past a split on "&" alone).
  const params = queryParams(query);
  if (params === null) return false;
  for (const [key, value] of params) {
    if (!READER_CHANGES_PARAMS.has(key)) return false;
    if (key === 'feed' && !READER_CHANGES_FEEDS.has(value)) return false;
  }
  return true;
}

/** Parameters of _all_docs that name document ids. */
const ID_PARAMS = new Set(['key', 'keys', 'start_key', 'startkey', 'end_key', 'endkey']);

/**
 * Whether an _all_docs query names a `_local/` id: CouchDB 3 opens any id
 * given as a key, so `?keys=["_local/x"]&include_docs=true` handed a reader
 * the `_local` documents it may not GET. Unreadable queries count as naming one.
 */
export function namesLocalInQuery(query: string): boolean {
  const params = queryParams(query);
  if (params === null) return true;
  return params.some(([key, value]) => ID_PARAMS.has(key) && namesLocal(parseOrText(value)));
}

/**
 * Whether a reader's POST body to a route that takes ids (_all_docs,
 * _design_docs, their /queries, _bulk_get) must be refused, as CouchDB
 * could read it: compressed (CouchDB inflates it), not JSON, or holding a
 * `_local/` id in any string, escaped or not, repeated members included
 * (JSON.parse keeps one of two, a server may keep the other).
 */
export function bodyNamesLocal(raw: string): boolean {
  try {
    JSON.parse(raw);
  } catch {
    return true;
  }
  for (const s of jsonStrings(raw)) if (s.startsWith('_local/')) return true;
  return false;
}

/** Every string token of a valid JSON text, decoded (member names included). */
function* jsonStrings(text: string): Generator<string> {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) !== 0x22) continue;
    let q = i;
    for (;;) {
      q = text.indexOf('"', q + 1);
      let b = q - 1;
      while (text.charCodeAt(b) === 0x5c) b--;
      if (((q - 1 - b) & 1) === 0) break;
    }
    yield JSON.parse(text.slice(i, q + 1)) as string;
    i = q;
  }
}

/** Whether a value (an id, or an array or object holding ids, as in a POST body) names a `_local/` document. */
export function namesLocal(value: unknown): boolean {
  if (typeof value === 'string') return value.startsWith('_local/');
  if (Array.isArray(value)) return value.some(namesLocal);
  if (value !== null && typeof value === 'object') return Object.values(value).some(namesLocal);
  return false;
}

function parseOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function readerMayReach(method: string, url: string): boolean {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q + 1);
  const segs = segmentsOf(path);
  if (!segs) return false;
  const read = READ.has(method);
  if (segs.length === 0) return read; // the welcome
  const [db, second, third, fourth, fifth, sixth] = segs as [string, ...(string | undefined)[]];
  if (db.startsWith('_')) {
    // _users, _replicator, _replicate, _config, _node, _active_tasks, _scheduler ... : never.
    // Not _dbs_info: CouchDB 3 answers its POST for any database named in the keys (_users, a
    // correlator's state) without checking the caller's access to them.
    if (segs.length !== 1) return false;
    return read && READER_SERVER_GET.has(db);
  }
  if (!isLogDb(db)) return false;
  if (second === undefined) return read; // database info
  if (!second.startsWith('_')) return read; // a document or one of its attachments
  switch (second) {
    case '_all_docs':
    case '_design_docs':
      // Keys in the query count for /queries too: CouchDB bases every query of the body on them.
      if (namesLocalInQuery(query)) return false;
      if (segs.length === 2) return read || method === 'POST';
      return segs.length === 3 && third === 'queries' && method === 'POST';
    case '_changes':
      return segs.length === 2 && read && changesQueryAllowed(query);
    case '_find':
    case '_explain':
      return segs.length === 2 && method === 'POST';
    case '_bulk_get':
      return segs.length === 2 && method === 'POST' && !namesLocalInQuery(query);
    case '_index':
      return segs.length === 2 && read;
    case '_design': {
      if (third === undefined) return false;
      if (fourth === undefined) return read; // the design document itself
      if (!fourth.startsWith('_')) return read; // its attachments
      if (fourth === '_info') return segs.length === 4 && read;
      if (fourth === '_view') {
        if (segs.length === 5) return read || method === 'POST';
        return segs.length === 6 && sixth === 'queries' && method === 'POST';
      }
      if (fourth === '_list') return (segs.length === 6 || segs.length === 7) && read && fifth !== undefined;
      if (fourth === '_show') return (segs.length === 5 || segs.length === 6) && read;
      return false; // _update, _rewrite, _search, _nouveau ...
    }
    default:
      // _local, _local_docs, _security, _purge, _compact, _view_cleanup,
      // _bulk_docs, _revs_diff, _missing_revs, _revs_limit, _partition ...
      return false;
  }
}
