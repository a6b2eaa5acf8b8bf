// Answers the engine's lookups: every stored document of one connection
// from a time on, in both input databases (the `_design/correlator` views,
// valued with the event time), and what log_correlated already holds for the
// records of those documents (so the engine rewrites only what changed).
// Lookups happen only for late events whose partners have left memory; all
// the connections of a round go in one POST .../_view/<view> {"keys": [...]}
// per database and view (chunks of KEYS_PER_REQUEST): a request of a few
// hours (HOUR_KEYS at most) as a key per hour of `by_conn_hour`, any other as
// its connection's key of `by_conn` (see design-docs/correlator-lookup.ts
// for why both), on PouchDB Server and CouchDB alike.
import type { CouchHttp } from '../../lib/couch/http.js';
import { LOOKUP_DDOC_ID, LOOKUP_HOUR_DDOC_ID, LOOKUP_HOUR_VIEW, LOOKUP_VIEW, lookupBucket } from '../../design-docs/correlator-lookup.js';
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

/** View keys per POST. */
const KEYS_PER_REQUEST = 1_000;
/** A request spanning more hours than this is read by its connection's key. */
const HOUR_KEYS = 4;

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
    const hourKeys = new Map<string, unknown[]>();
    const connKeys = new Map<string, unknown[]>();
    requests.forEach((r, i) => {
      const conn = JSON.stringify([r.src_ip, r.src_port]);
      byConn.set(conn, [...(byConn.get(conn) ?? []), i]);
      const first = lookupBucket(r.from);
      const last = lookupBucket(r.until);
      if (Number.isFinite(first) && Number.isFinite(last) && last - first < HOUR_KEYS) {
        for (let h = first; h <= last; h++) hourKeys.set(JSON.stringify([r.src_ip, r.src_port, h]), [r.src_ip, r.src_port, h]);
      } else connKeys.set(conn, [r.src_ip, r.src_port]);
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
    for (const [view, keys] of [
      [`${LOOKUP_HOUR_DDOC_ID}/_view/${LOOKUP_HOUR_VIEW}`, [...hourKeys.values()]],
      [`${LOOKUP_DDOC_ID}/_view/${LOOKUP_VIEW}`, [...connKeys.values()]],
    ] as const) {
      for (let i = 0; i < keys.length; i += KEYS_PER_REQUEST) take(await this.query(db, view, keys.slice(i, i + KEYS_PER_REQUEST)));
    }
    return out;
  }

  /** `view`: its path after the database (design document and view). */
  private async query(db: string, view: string, keys: readonly unknown[]): Promise<Row[]> {
    const res = await this.http.request<{ rows?: Row[] }>('POST', `/${encodeURIComponent(db)}/${view}?include_docs=true`, {
      headers: this.headers,
      body: JSON.stringify({ keys }),
    });
    if (res.status === 404) {
      // PouchDB Server says no_db_file, CouchDB 3 "Database does not exist."; a missing design document or view is anything else.
      const reason = String((res.body as { reason?: unknown } | undefined)?.reason ?? '');
      if (/no_db_file|does not exist/i.test(reason)) throw new OperationError(`looking up connections: no database ${db}`);
      throw new OperationError(`looking up connections in ${db}: no view ${view} (run couchlog setup after upgrading): ${JSON.stringify(res.body)}`);
    }
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
      const decidedAt = typeof doc.decided_at === 'string' ? Date.parse(doc.decided_at) : NaN;
      out.set(id, {
        fingerprint: fingerprint(doc),
        revision: typeof doc.revision === 'number' ? doc.revision : 1,
        deleted: false,
        ...(Number.isFinite(time) && { time }),
        ...(Number.isFinite(decidedAt) && { decidedAt }),
        ...(typeof doc.b_id === 'string' && { bId: doc.b_id }),
        ...(typeof doc.a_rev === 'string' && { aRev: doc.a_rev }),
        ...(typeof doc.b_rev === 'string' && { bRev: doc.b_rev }),
      });
    }
    return out;
  }
}
