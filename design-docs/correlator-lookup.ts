// Two design documents of the correlator's input databases (log_http and
// log_network by default), a view each of the same documents, valued with
// the event time (ms): `_design/correlator/by_conn`, keyed [canonical
// src_ip, src_port], and `_design/correlator_hour/by_conn_hour`, keyed
// [canonical src_ip, src_port, hour of the event time]. Apart, so that adding
// the second (2026-12-07) left the first's index as it was: a correlator
// running during the upgrade goes on looking up while the new one is built. The correlator finds the stored documents of many connections — the
// partners of late events that have left its memory — with one
// POST .../_view/<view> {"keys": [...]} per database, on PouchDB Server and
// CouchDB alike (PouchDB Server has no multi-range /queries): a range of a
// few hours (a late document re-run from a long connection's kept state, or
// from its known segment) as a key per hour, so a busy client's other
// connections on the same source port (a proxy, a NAT gateway: each port
// reused many times a day) are not read; a longer range (the lateness
// horizon, 24 h by default) as one key per connection, reading every
// document the key has and keeping those in range: a key per hour costs
// about 0.5 ms (PouchDB Server) to 1 ms (CouchDB 3) each, 25 of them per
// connection were 8 times slower than the one key for the common
// connection with a few documents.
//
// The map function IS correlator/engine/conn-key.ts's connKeyOf, serialized:
// the key is computed by the same source the correlator runs, so a lookup
// finds exactly the documents the correlator would have keyed the same way
// (test/unit/design-docs/correlator-lookup.test.ts checks it on generated documents).
import { connKeyOf } from '../correlator/engine/conn-key.js';
import { fnSource, type DesignDoc } from './serialize.js';

export const LOOKUP_DDOC_ID = '_design/correlator';
export const LOOKUP_VIEW = 'by_conn';
export const LOOKUP_HOUR_DDOC_ID = '_design/correlator_hour';
export const LOOKUP_HOUR_VIEW = 'by_conn_hour';
/** Width of by_conn_hour's time buckets. */
export const LOOKUP_BUCKET_MS = 3_600_000;

/** The bucket of an event time, as the view keys it. */
export const lookupBucket = (time: number): number => Math.floor(time / LOOKUP_BUCKET_MS);

/** A map function's source: connKeyOf inlined, design documents skipped; `byHour` adds the hour to the key. */
export function lookupMapSource(byHour = false): string {
  const key = byHour ? `[k[0], k[1], Math.floor(k[2] / ${LOOKUP_BUCKET_MS})]` : '[k[0], k[1]]';
  return [
    'function (doc) {',
    "  if (doc._id.indexOf('_design/') === 0) return;",
    `  var connKeyOf = ${fnSource(connKeyOf)};`,
    '  var k = connKeyOf(doc);',
    `  if (typeof k !== 'string') emit(${key}, k[2]);`,
    '}',
  ].join('\n');
}

export function lookupDesignDoc(): DesignDoc {
  return { _id: LOOKUP_DDOC_ID, language: 'javascript', views: { [LOOKUP_VIEW]: { map: lookupMapSource() } } };
}

export function lookupHourDesignDoc(): DesignDoc {
  return { _id: LOOKUP_HOUR_DDOC_ID, language: 'javascript', views: { [LOOKUP_HOUR_VIEW]: { map: lookupMapSource(true) } } };
}
