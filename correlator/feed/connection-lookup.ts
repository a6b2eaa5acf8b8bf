// Answers the engine's lookups: every stored document of one connection
// from a time on, in both input databases (the `_design/correlator` view
// `by_conn`, keyed [src_ip, src_port], valued with the event time), and what
// log_correlated already holds for the records of those documents (so the
// engine rewrites only what changed). Lookups happen only for late events
// whose partners have left memory; all the connections of a round go in one
// POST .../_view/by_conn {"keys": [...]} per database (chunks of
// KEYS_PER_REQUEST): one index update and one read, on PouchDB Server and
// CouchDB alike.
import type { CouchHttp } from '../../lib/couch/http.js';
import { LOOKUP_DDOC_ID, LOOKUP_VIEW } from '../../design-docs/correlator-lookup.js';
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

const KEYS_PER_REQUEST = 500;

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
    const index = new Map<string, number[]>();
    requests.forEach((r, i) => {
      const k = JSON.stringify([r.src_ip, r.src_port]);
      index.set(k, [...(index.get(k) ?? []), i]);
    });
    const keys = [...index.keys()];
    for (let i = 0; i < keys.length; i += KEYS_PER_REQUEST) {
      const chunk = keys.slice(i, i + KEYS_PER_REQUEST).map((k) => JSON.parse(k) as unknown);
      const res = await this.http.request<{ rows?: Row[] }>('POST', `/${encodeURIComponent(db)}/${LOOKUP_DDOC_ID}/_view/${LOOKUP_VIEW}?include_docs=true`, {
        headers: this.headers,
        body: JSON.stringify({ keys: chunk }),
      });
      if (res.status !== 200) throw new OperationError(`looking up ${chunk.length} connections in ${db}: ${res.status} ${JSON.stringify(res.body)}`);
      for (const row of res.body.rows ?? []) {
        for (const at of index.get(JSON.stringify(row.key)) ?? []) {
          if (typeof row.value === 'number' && row.value >= requests[at]!.from) out[at]!.push(row);
        }
      }
    }
    return out;
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
