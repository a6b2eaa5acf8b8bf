// The connection key and event time of a log document, written once in
// ES5 so the SAME source runs in the correlator (normalize.ts) and inside
// CouchDB's JavaScript engine as the map function of the input databases'
// `_design/correlator` view (design-docs/correlator-lookup.ts), which the
// correlator queries to find partners of late events. Whatever the engine
// (V8, QuickJS, SpiderMonkey) and the server's time zone, both give the
// same answer: no Date.parse, no locale.
//
// ES5 only: `var`, `function`, no arrows, no template strings; no closures
// over module scope (the function is serialized by its source).

/**
 * [canonical address, port, event time in ms] of a document, or the reason
 * it has none: 'no_key' (no usable src_ip / src_port) or 'no_time'.
 * Address: IPv4 dotted quad; IPv4-mapped IPv6 becomes IPv4; IPv6 in RFC 5952
 * form (lower case, no leading zeros, longest zero run as ::).
 * Time: `timestamp` (epoch number, unit by size: s, ms, µs, ns; finer than
 * ms floored), else `time`, else `received_at` (RFC 3339; no offset = UTC).
 */
export function connKeyOf(doc: Record<string, unknown>): [string, number, number] | 'no_key' | 'no_time' {
  var V4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

  function v6groups(s: string): number[] | null {
    var tail: number[] = [];
    var m = /^(.*:)((?:\d{1,3}\.){3}\d{1,3})$/.exec(s);
    if (m) {
      if (!V4.test(m[2]!)) return null;
      var q = m[2]!.split('.');
      tail = [parseInt(q[0]!, 10) * 256 + parseInt(q[1]!, 10), parseInt(q[2]!, 10) * 256 + parseInt(q[3]!, 10)];
      s = m[1]!.charAt(m[1]!.length - 2) === ':' ? m[1]! : m[1]!.slice(0, -1);
    }
    var halves = s.split('::');
    if (halves.length > 2) return null;
    function parts(h: string): number[] | null {
      if (h === '') return [];
      var p = h.split(':');
      var out: number[] = [];
      for (var i = 0; i < p.length; i++) {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p[i]!)) return null;
        out.push(parseInt(p[i]!, 16));
      }
      return out;
    }
    var head = parts(halves[0]!);
    var rest = halves.length === 2 ? parts(halves[1]!) : [];
    if (head === null || rest === null) return null;
    var known = head.length + rest.length + tail.length;
    if (halves.length === 2 ? known > 7 : known !== 8) return null;
    var groups = head.slice();
    for (var z = 0; z < 8 - known; z++) groups.push(0);
    return groups.concat(rest, tail);
  }

  function canonicalIp(text: string): string | null {
    if (V4.test(text)) return text;
    var s = text.replace(/^\s+|\s+$/g, '');
    if (s.charAt(0) === '[' && s.charAt(s.length - 1) === ']') s = s.slice(1, -1);
    if (V4.test(s)) return s;
    if (s.indexOf(':') === -1 || s.indexOf('%') !== -1) return null;
    var g = v6groups(s);
    if (g === null) return null;
    if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
      return (g[6]! >> 8) + '.' + (g[6]! & 255) + '.' + (g[7]! >> 8) + '.' + (g[7]! & 255);
    }
    var best = -1;
    var bestLen = 1;
    for (var i = 0; i < 8; i++) {
      if (g[i] !== 0) continue;
      var j = i;
      while (j < 8 && g[j] === 0) j++;
      if (j - i > bestLen) {
        best = i;
        bestLen = j - i;
      }
      i = j;
    }
    var hex: string[] = [];
    for (var k = 0; k < 8; k++) hex.push(g[k]!.toString(16));
    if (best === -1) return hex.join(':');
    return hex.slice(0, best).join(':') + '::' + hex.slice(best + bestLen).join(':');
  }

  function toPort(v: unknown): number | null {
    var n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d{1,5}\s*$/.test(v) ? parseInt(v, 10) : NaN;
    return n % 1 === 0 && n >= 1 && n <= 65535 ? n : null;
  }

  function epochMs(n: number): number {
    var a = Math.abs(n);
    if (a < 1e11) return Math.round(n * 1e6) / 1e3;
    if (a < 1e14) return n;
    // Through whole microseconds first: a nanosecond count above 2^53 is not exact in a double.
    if (a < 1e17) return Math.floor(Math.round(n) / 1e3);
    return Math.floor(Math.round(n / 1e3) / 1e3);
  }

  function rfc3339(s: string): number | null {
    var m = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$/.exec(s);
    if (!m) return null;
    var y = parseInt(m[1]!, 10);
    var mo = parseInt(m[2]!, 10);
    var d = parseInt(m[3]!, 10);
    var h = m[4] ? parseInt(m[4], 10) : 0;
    var mi = m[5] ? parseInt(m[5], 10) : 0;
    var sec = m[6] ? parseInt(m[6], 10) : 0;
    var ms = m[7] ? parseInt((m[7] + '00').slice(0, 3), 10) : 0;
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60) return null;
    var t = Date.UTC(y, mo - 1, d, h, mi, sec, ms);
    if (new Date(t).getUTCDate() !== d) return null; // 2026-02-30
    if (m[9]) {
      var off = parseInt(m[10]!, 10) * 60 + parseInt(m[11]!, 10);
      t -= (m[9] === '-' ? -1 : 1) * off * 60000;
    }
    return t;
  }

  var ip = typeof doc.src_ip === 'string' ? canonicalIp(doc.src_ip) : null;
  var port = toPort(doc.src_port);
  if (ip === null || port === null) return 'no_key';
  var ts = doc.timestamp;
  var time: number | null = null;
  if (typeof ts === 'number' && isFinite(ts) && ts > 0) time = epochMs(ts);
  else if (typeof doc.time === 'string' && rfc3339(doc.time) !== null) time = rfc3339(doc.time);
  else if (typeof doc.received_at === 'string') time = rfc3339(doc.received_at);
  if (time === null) return 'no_time';
  return [ip, port, time];
}
