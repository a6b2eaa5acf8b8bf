// A record's content fingerprint: decides whether a re-decided record
// changed (and must be rewritten) without keeping the record itself.
// The bookkeeping fields (revision, decided_at) and CouchDB's own fields
// are left out, so the fingerprint of a record read back from
// log_correlated equals the one the engine computed when it made it.

/** Fields that say when and how often a record was decided, not what it says. */
export const BOOKKEEPING_FIELDS: ReadonlySet<string> = new Set(['revision', 'decided_at']);

/** cyrb53 over the record's JSON, fields in their order: 53 bits as base-36 text. */
export function fingerprint(record: Record<string, unknown>): string {
  let json = '{';
  for (const k in record) {
    if (BOOKKEEPING_FIELDS.has(k) || k.charCodeAt(0) === 95 /* _ */) continue;
    const v = record[k];
    if (v === undefined) continue;
    json += JSON.stringify(k) + ':' + JSON.stringify(v) + ',';
  }
  return cyrb53(json);
}

function cyrb53(s: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36);
}
