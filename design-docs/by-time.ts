// by_time, in every log database: documents per [year, month, day, hour],
// reduce _count (group_level=3 per day, 4 per hour). ES5 only.
// The time is the event's own when the document says it, else when the
// ingress received it:
//   timestamp  epoch number, unit from its magnitude (s, ms, µs, ns) -> UTC
//   time       RFC 3339 string -> UTC
//   date+hour  'YYYY-MM-DD' and 'HH:...' (fail2ban, jsonformat) -> as written
//   received_at  set by the ingress (UTC)

interface TimedDoc {
  timestamp?: unknown;
  time?: unknown;
  date?: unknown;
  hour?: unknown;
  received_at?: unknown;
}

export function byTimeMap(doc: TimedDoc): void {
  var ms: number = NaN;
  if (typeof doc.timestamp === 'number' && isFinite(doc.timestamp) && doc.timestamp > 0) {
    var ts = doc.timestamp;
    ms = ts < 1e11 ? ts * 1000 : ts < 1e14 ? ts : ts < 1e17 ? ts / 1000 : ts / 1e6;
  } else if (typeof doc.time === 'string') {
    ms = Date.parse(doc.time);
  } else if (typeof doc.date === 'string') {
    var m = /^(\d{4})-(\d{2})-(\d{2})/.exec(doc.date);
    var h = typeof doc.hour === 'string' ? /^(\d{1,2})(?::|$)/.exec(doc.hour) : null;
    if (m) {
      var mo = parseInt(m[2]!, 10);
      var d = parseInt(m[3]!, 10);
      var y = parseInt(m[1]!, 10);
      if (mo >= 1 && mo <= 12 && d >= 1 && d <= new Date(Date.UTC(y, mo, 0)).getUTCDate()) {
        emit([y, mo, d, h ? parseInt(h[1]!, 10) : null], null);
      }
      return;
    }
  }
  if (isNaN(ms) && typeof doc.received_at === 'string') ms = Date.parse(doc.received_at);
  if (isNaN(ms)) return;
  var t = new Date(ms);
  emit([t.getUTCFullYear(), t.getUTCMonth() + 1, t.getUTCDate(), t.getUTCHours()], null);
}
