// Answers the engine's lookups: every stored document of one connection
// from a time on, in both input databases (the `_design/correlator` view
// `by_conn_hour`, keyed [src_ip, src_port, hour], valued with the event
// time), and what log_correlated already holds for the records of those
// documents (so the engine rewrites only what changed). Lookups happen only
// for late events whose partners have left memory; all the connections of a
// round go in one POST .../_view/by_conn_hour {"keys": [...]} per database
// (a key per connection and hour of its range, chunks of KEYS_PER_REQUEST):
// one index update and one read, on PouchDB Server and CouchDB alike. Only
// a range without bounds (no watermark yet) or longer than MAX_HOURS is read
// as one key range of its own.
import type { CouchHttp } from '../../lib/couch/http.js';
import { LOOKUP_DDOC_ID, LOOKUP_VIEW, lookupBucket } from '../../design-docs/correlator-lookup.js';
import { fingerprint } from '../engine/fingerprint.js';
import { toEvent, type NormalizeRules } from '../engine/normalize.js';
import type { InputEvent, LookupRequest, PriorRecord, Side } from '../engine/types.js';
import { fetchDocs } from './changes-feed.js';
import { OperationError } from '../../lib/errors.js';

export interface LookupSource {
  db: string;
  rules: NormalizeRules;
}

export interface LookupAnswer {
  request: LookupRequest;
  events: InputEvent[];
  priors: Map<string, PriorRecord> | null;
}

/** View keys per POST: the default 24 h horizon is 25 of a connection. */
const KEYS_PER_REQUEST = 2_000;
/** A range of more hours than this (allowed_lateness of weeks) is read as one key range rather than a key per hour. */
const MAX_HOURS = 24 * 7;

type Row = { id: string; key: unknown; value: unknown; doc?: Record<string, unknown> | null };

export class ConnectionLookup {
  constructor(
    private readonly http: CouchHttp,
    private readonly headers: Record<string, string>,
    private readonly sources: Record<Side, LookupSource>,
    /** log_correlated, to read what is stored for the records; null when the CouchDB sink is off. */
    private readonly correlatedDb: string | null,
  ) {}

  async run(requests: readonly LookupRequest[]): Promise<LookupAnswer[]> {
    const events = requests.map(() => [] as InputEvent[]);
    // One shared database for both sides is read once and split by each side's rules.
    const dbs = new Map<string, Side[]>();
    for (const side of ['A', 'B'] as const) dbs.set(this.sources[side].db, [...(dbs.get(this.sources[side].db) ?? []), side]);
    for (const [db, sides] of dbs) {
      const rows = await this.ranges(db, requests);
      rows.forEach((list, i) => {
        for (const row of list) {
          if (!row.doc) continue;
          for (const side of sides) {
            const ev = toEvent({ id: row.id, doc: row.doc }, side, -1, this.sources[side].rules);
            if (!('skip' in ev) && ev.key === requests[i]!.key) events[i]!.push(ev);
          }
        }
      });
    }
    // The records of the events found, and those asked for (of documents withdrawn from the connection).
    const wanted = requests.map((r, i) => [...events[i]!.map((e) => `${e.side}-${e.id}`), ...(r.ids ?? [])]);
    const priors = this.correlatedDb ? await this.priors(wanted.flat()) : null;
    return requests.map((request, i) => ({
      request,
      events: events[i]!,
      priors: priors
        ? new Map(
            wanted[i]!.flatMap((id) => {
              const p = priors.get(id);
              return p ? [[id, p] as const] : [];
            }),
          )
        : null,
    }));
  }

  /** Rows of each request's connection from its `from` on, in request order. */
  private async ranges(db: string, requests: readonly LookupRequest[]): Promise<Row[][]> {
    const out = requests.map(() => [] as Row[]);
    const seen = requests.map(() => new Set<string>());
    // Rows are matched back to the requests of their connection; a row read twice (two requests of one connection) counts once.
    const byConn = new Map<string, number[]>();
    const keys = new Map<string, unknown[]>();
    const wide: number[] = [];
    requests.forEach((r, i) => {
      const conn = JSON.stringify([r.src_ip, r.src_port]);
      byConn.set(conn, [...(byConn.get(conn) ?? []), i]);
      const first = lookupBucket(r.from);
      const last = lookupBucket(r.until);
      if (!Number.isFinite(first) || !Number.isFinite(last) || last - first >= MAX_HOURS) wide.push(i);
      else for (let h = first; h <= last; h++) keys.set(JSON.stringify([r.src_ip, r.src_port, h]), [r.src_ip, r.src_port, h]);
    });
    const take = (rows: readonly Row[]) => {
      for (const row of rows) {
        if (!Array.isArray(row.key) || typeof row.value !== 'number') continue;
        for (const at of byConn.get(JSON.stringify(row.key.slice(0, 2))) ?? []) {
          if (row.value >= requests[at]!.from && !seen[at]!.has(row.id)) {
            seen[at]!.add(row.id);
            out[at]!.push(row);
          }
        }
      }
    };
    const all = [...keys.values()];
    for (let i = 0; i < all.length; i += KEYS_PER_REQUEST) take(await this.query(db, { keys: all.slice(i, i + KEYS_PER_REQUEST) }));
    for (const at of wide) {
      const r = requests[at]!;
      const first = lookupBucket(r.from);
      const last = lookupBucket(r.until);
      // [ip, port] sorts before every [ip, port, hour], and {} after every number.
      const startkey = Number.isFinite(first) ? [r.src_ip, r.src_port, first] : [r.src_ip, r.src_port];
      const endkey = Number.isFinite(last) ? [r.src_ip, r.src_port, last] : [r.src_ip, r.src_port, {}];
      take(await this.query(db, null, `&startkey=${encodeURIComponent(JSON.stringify(startkey))}&endkey=${encodeURIComponent(JSON.stringify(endkey))}`));
    }
    return out;
  }

  /** Keys in a POST body, or a key range in the query string of a GET (as every CouchDB-compatible server reads it). */
  private async query(db: string, body: { keys: unknown[] } | null, range = ''): Promise<Row[]> {
    const path = `/${encodeURIComponent(db)}/${LOOKUP_DDOC_ID}/_view/${LOOKUP_VIEW}?include_docs=true${range}`;
    const res = await this.http.request<{ rows?: Row[] }>(body ? 'POST' : 'GET', path, { headers: this.headers, ...(body && { body: JSON.stringify(body) }) });
    if (res.status === 404)
      throw new OperationError(`looking up connections in ${db}: no view ${LOOKUP_VIEW} (run couchlog setup after upgrading): ${JSON.stringify(res.body)}`);
    if (res.status !== 200) throw new OperationError(`looking up connections in ${db}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.rows ?? [];
  }

  /** What log_correlated holds for these records (live ones only). */
  private async priors(recordIds: readonly string[]): Promise<Map<string, PriorRecord>> {
    const ids = [...new Set(recordIds)];
    const docs = await fetchDocs(this.http, this.correlatedDb!, this.headers, ids);
    const out = new Map<string, PriorRecord>();
    for (const [id, doc] of docs) {
      const time = typeof doc.timestamp === 'string' ? Date.parse(doc.timestamp) : NaN;
      out.set(id, {
        fingerprint: fingerprint(doc),
        revision: typeof doc.revision === 'number' ? doc.revision : 1,
        deleted: false,
        ...(Number.isFinite(time) && { time }),
      });
    }
    return out;
  }
}
