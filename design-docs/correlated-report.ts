// _design/report of log_correlated: the correlator's output records
// (timestamp as ISO 8601 UTC, host, src_ip, ja4, correlated, orphan_side).
// ES5 only (see append-only.ts). Keys are read from the timestamp string,
// so they are UTC calendar dates whatever the server's time zone.

interface CorrelatedDoc {
  timestamp?: unknown;
  host?: unknown;
  header_host?: unknown;
  tls_sni?: unknown;
  src_ip?: unknown;
  ja4?: unknown;
  correlated?: unknown;
  orphan_side?: unknown;
}

/** attacks: requests per [host, year, month, day] (host, else Host header, else SNI), _count. */
export function requestsByHostMap(doc: CorrelatedDoc): void {
  if (typeof doc.timestamp !== 'string') return;
  var m = /^(\d{4})-(\d{2})-(\d{2})T/.exec(doc.timestamp);
  if (!m) return;
  var host = typeof doc.host === 'string' ? doc.host : typeof doc.header_host === 'string' ? doc.header_host : typeof doc.tls_sni === 'string' ? doc.tls_sni : null;
  emit([host, parseInt(m[1]!, 10), parseInt(m[2]!, 10), parseInt(m[3]!, 10)], null);
}

/** attackers: who, by address and TLS fingerprint: [src_ip, ja4], _count. */
export function clientsByJa4Map(doc: CorrelatedDoc): void {
  if (typeof doc.src_ip !== 'string') return;
  emit([doc.src_ip, typeof doc.ja4 === 'string' ? doc.ja4 : null], null);
}

/**
 * by_ja4: [ja4, year, month, day], _count: which fingerprints, how often, when.
 * The live dashboard counts live records by this very function
 * (server/dashboard/view-rules.ts): self-contained, nothing but `doc` and `emit`.
 */
export function byJa4Map(doc: CorrelatedDoc): void {
  if (typeof doc.ja4 !== 'string' || typeof doc.timestamp !== 'string') return;
  var m = /^(\d{4})-(\d{2})-(\d{2})T/.exec(doc.timestamp);
  if (!m) return;
  emit([doc.ja4, parseInt(m[1]!, 10), parseInt(m[2]!, 10), parseInt(m[3]!, 10)], null);
}

/** orphans: [orphan_side, year, month, day], _count: requests without TLS record and the reverse. */
export function orphansMap(doc: CorrelatedDoc): void {
  if (doc.correlated !== false || (doc.orphan_side !== 'A' && doc.orphan_side !== 'B') || typeof doc.timestamp !== 'string') return;
  var m = /^(\d{4})-(\d{2})-(\d{2})T/.exec(doc.timestamp);
  if (!m) return;
  emit([doc.orphan_side, parseInt(m[1]!, 10), parseInt(m[2]!, 10), parseInt(m[3]!, 10)], null);
}
