// _design/correlator of the correlator's input databases (log_http and
// log_network by default): the view `by_conn_hour`, keyed by
// [canonical src_ip, src_port, hour of the event time] with the event time
// (ms) as value, so the correlator finds the stored documents of many
// connections within a time range — the partners of late events that have
// left its memory — with one POST .../_view/by_conn_hour {"keys": [...]} per
// database, on PouchDB Server and CouchDB alike (PouchDB Server has no
// multi-range /queries): a key per connection and hour of the range. Until
// 2026-12-07 the view (`by_conn`) was keyed by the connection alone, and a
// lookup read every document the key ever had, with its body: a busy client
// (a proxy, a NAT gateway) reuses each source port many times a day, and a
// long proxy connection has millions of documents.
//
// The map function IS correlator/engine/conn-key.ts's connKeyOf, serialized:
// the key is computed by the same source the correlator runs, so a lookup
// finds exactly the documents the correlator would have keyed the same way
// (test/unit/design-docs/correlator-lookup.test.ts checks it on generated documents).
import { connKeyOf } from '../correlator/engine/conn-key.js';
import { fnSource, type DesignDoc } from './serialize.js';

export const LOOKUP_DDOC_ID = '_design/correlator';
/** A new name with the new key: a correlator newer than `couchlog setup` fails its lookups loudly (missing view), never reads the old keys. */
export const LOOKUP_VIEW = 'by_conn_hour';
/** Width of the view's time buckets: the default lateness horizon (24 h) is 25 keys a connection, a lookup of the last minutes one or two. */
export const LOOKUP_BUCKET_MS = 3_600_000;

/** The bucket of an event time, as the view keys it. */
export const lookupBucket = (time: number): number => Math.floor(time / LOOKUP_BUCKET_MS);

/** The map function's source: connKeyOf inlined, design documents skipped. */
export function lookupMapSource(): string {
  return [
    'function (doc) {',
    "  if (doc._id.indexOf('_design/') === 0) return;",
    `  var connKeyOf = ${fnSource(connKeyOf)};`,
    '  var k = connKeyOf(doc);',
    `  if (typeof k !== 'string') emit([k[0], k[1], Math.floor(k[2] / ${LOOKUP_BUCKET_MS})], k[2]);`,
    '}',
  ].join('\n');
}

export function lookupDesignDoc(): DesignDoc {
  return { _id: LOOKUP_DDOC_ID, language: 'javascript', views: { [LOOKUP_VIEW]: { map: lookupMapSource() } } };
}
