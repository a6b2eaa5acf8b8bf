// The rules the live dashboard counts by are the report views' own map
// functions: the page runs the very source CouchDB indexes (bans_by_day,
// by_ja4), so a live change is counted exactly as the view it is added to
// counts it (a Ban with a date carrying a time counts, an Unban or a Found
// line does not). The page's Content-Security-Policy allows no eval: the
// source goes into the page's script itself, covered by its hash.
//
// What must stay true: the returned source is a self-contained expression
// whose value is `(doc) => keys emitted for doc`; the map sees an `emit` of
// its own (no global), and a map that throws emits nothing, as CouchDB skips
// such a document.
import { fnSource } from '../../design-docs/serialize.js';

/** Source of a function giving the keys `map` emits for a document. */
export function emittedKeysSource(map: (doc: never) => void): string {
  return [
    '(function () {',
    '  var keys = [];',
    '  var emit = function (key) { keys.push(key); };',
    `  var map = ${fnSource(map)};`,
    '  return function (doc) {',
    '    keys = [];',
    '    try { map(doc); } catch (e) { keys = []; }',
    '    return keys;',
    '  };',
    '})()',
  ].join('\n');
}
