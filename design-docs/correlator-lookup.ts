// _design/correlator of the correlator's input databases (log_http and
// log_network by default): the view `by_conn`, keyed by
// [canonical src_ip, src_port] with the event time (ms) as value, so the
// correlator finds every stored document of many connections — the
// partners of late events that have left its memory — with one
// POST .../_view/by_conn {"keys": [...]} per database, on PouchDB Server and
// CouchDB alike (PouchDB Server has no multi-range /queries), and keeps
// those from the lateness horizon on.
//
// The map function IS correlator/engine/conn-key.ts's connKeyOf, serialized:
// the key is computed by the same source the correlator runs, so a lookup
// finds exactly the documents the correlator would have keyed the same way
// (test/unit/design-docs/correlator-lookup.test.ts checks it on generated documents).
import { connKeyOf } from '../correlator/engine/conn-key.js';
import { fnSource, type DesignDoc } from './serialize.js';

export const LOOKUP_DDOC_ID = '_design/correlator';
export const LOOKUP_VIEW = 'by_conn';

/** The map function's source: connKeyOf inlined, design documents skipped. */
export function lookupMapSource(): string {
  return [
    'function (doc) {',
    "  if (doc._id.indexOf('_design/') === 0) return;",
    `  var connKeyOf = ${fnSource(connKeyOf)};`,
    '  var k = connKeyOf(doc);',
    "  if (typeof k !== 'string') emit([k[0], k[1]], k[2]);",
    '}',
  ].join('\n');
}

export function lookupDesignDoc(): DesignDoc {
  return { _id: LOOKUP_DDOC_ID, language: 'javascript', views: { [LOOKUP_VIEW]: { map: lookupMapSource() } } };
}
