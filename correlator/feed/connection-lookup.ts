// Answers the engine's lookups: every stored document of one connection
// from a time on, in both input databases (the `_design/correlator` view
// `by_conn`, keyed [src_ip, src_port, time]), and what log_correlated
// already holds for the records of those documents (so the engine rewrites
// only what changed). Lookups happen only for late events whose partners
// have left memory; a page's lookups go out together:
//  - CouchDB 3: one POST .../_view/by_conn/queries per database per page
//    (up to QUERIES_PER_REQUEST ranges each);
//  - PouchDB Server has no /queries: one GET per range, a few in flight.
import type { CouchHttp } from '../../lib/couch/http.js';
import { LOOKUP_DDOC_ID, LOOKUP_VIEW } from '../../design-docs/correlator-lookup.js';
import { fingerprint } from '../engine/fingerprint.js';
import { toEvent, type NormalizeRules } from '../engine/normalize.js';
import type { InputEvent, LookupRequest, PriorRecord, Side } from '../engine/types.js';
import { fetchDocs } from './changes-feed.js';

export interface LookupSource {
  db: string;
  rules: NormalizeRules;
}

export interface LookupAnswer {
  request: LookupRequest;
  events: InputEvent[];
  priors: Map<string, PriorRecord> | null;
}

const QUERIES_PER_REQUEST = 100;
const GETS_IN_FLIGHT = 8;

type Row = { id: string; key: unknown; doc?: Record<string, unknown> | null };

export class ConnectionLookup {
  /** null until known: does the server have POST /_view/.../queries? */
  private multiQuery: boolean | null = null;

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
    const priors = this.correlatedDb ? await this.priors(events.flat()) : null;
    return requests.map((request, i) => ({
      request,
      events: events[i]!,
      priors: priors ? new Map(events[i]!.flatMap((e) => { const p = priors.get(`${e.side}-${e.id}`); return p ? [[`${e.side}-${e.id}`, p] as const] : []; })) : null,
    }));
  }

  private query(r: LookupRequest): Record<string, unknown> {
    const from = Number.isFinite(r.from) ? r.from : null;
    return { startkey: [r.src_ip, r.src_port, from], endkey: [r.src_ip, r.src_port, {}], include_docs: true };
  }

  private viewPath(db: string): string {
    return `/${encodeURIComponent(db)}/${LOOKUP_DDOC_ID}/_view/${LOOKUP_VIEW}`;
  }

  /** Rows of each request's range, in request order. */
  private async ranges(db: string, requests: readonly LookupRequest[]): Promise<Row[][]> {
    if (this.multiQuery !== false) {
      const out: Row[][] = [];
      for (let i = 0; i < requests.length; i += QUERIES_PER_REQUEST) {
        const chunk = requests.slice(i, i + QUERIES_PER_REQUEST);
        const res = await this.http.request<{ results?: Array<{ rows?: Row[] }> }>('POST', `${this.viewPath(db)}/queries`, {
          headers: this.headers,
          body: JSON.stringify({ queries: chunk.map((r) => this.query(r)) }),
        });
        if (res.status === 200 && Array.isArray(res.body.results)) {
          this.multiQuery = true;
          for (const r of res.body.results) out.push(r.rows ?? []);
          continue;
        }
        if (this.multiQuery === null && res.status >= 400 && res.status < 500) {
          this.multiQuery = false; // PouchDB Server: no multi-query endpoint
          break;
        }
        throw new Error(`looking up connections in ${db}: ${res.status} ${JSON.stringify(res.body)}`);
      }
      if (this.multiQuery) return out;
    }
    const out: Row[][] = new Array(requests.length);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < requests.length; i = next++) {
        const q = this.query(requests[i]!);
        const qs = new URLSearchParams({ startkey: JSON.stringify(q.startkey), endkey: JSON.stringify(q.endkey), include_docs: 'true' });
        const res = await this.http.request<{ rows?: Row[] }>('GET', `${this.viewPath(db)}?${qs}`, { headers: this.headers });
        if (res.status !== 200) throw new Error(`looking up a connection in ${db}: ${res.status} ${JSON.stringify(res.body)}`);
        out[i] = res.body.rows ?? [];
      }
    };
    await Promise.all(Array.from({ length: Math.min(GETS_IN_FLIGHT, requests.length) }, worker));
    return out;
  }

  /** What log_correlated holds for the records of these events. */
  private async priors(events: readonly InputEvent[]): Promise<Map<string, PriorRecord>> {
    const ids = [...new Set(events.map((e) => `${e.side}-${e.id}`))];
    const docs = await fetchDocs(this.http, this.correlatedDb!, this.headers, ids);
    const out = new Map<string, PriorRecord>();
    for (const [id, doc] of docs) out.set(id, { fingerprint: fingerprint(doc), revision: typeof doc.revision === 'number' ? doc.revision : 1, deleted: false });
    return out;
  }
}
