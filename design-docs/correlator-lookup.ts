// _design/correlator of the correlator's input databases (log_http and
// log_network by default): the view `by_conn`, keyed by
// [canonical src_ip, src_port, event time ms], so the correlator finds every
// stored document of one connection within a time range — the partners of a
// late event that have left its memory — with one range query per
// connection (batched with /queries where the server has it).
//
// The map function IS correlator/engine/conn-key.ts's connKeyOf, serialized:
// the key is computed by the same source the correlator runs, so a lookup
// finds exactly the documents the correlator would have keyed the same way
// (test/unit/correlator-lookup-view.test.ts checks it on generated documents).
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
    "  if (typeof k !== 'string') emit(k, null);",
    '}',
  ].join('\n');
}

export function lookupDesignDoc(): DesignDoc {
  return { _id: LOOKUP_DDOC_ID, language: 'javascript', views: { [LOOKUP_VIEW]: { map: lookupMapSource() } } };
}
