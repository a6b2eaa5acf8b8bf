// _design/report for fail2ban-shaped documents ({date, hour, process,
// machine, ip}, as `jsonformat` produces them). ES5 only (see append-only.ts).
//
// Two quirks of the original design are fixed here: it keyed by
// `new Date(doc.date)`, whose getMonth() is zero-based (June showed as 5)
// and which parses 'YYYY-MM-DD' as UTC midnight, so getDate() in a time zone
// west of UTC gave the previous day. Keys here are read from the date string
// itself: true calendar dates, 1-based months, whatever the server's zone.
// Dates that do not exist (2017-02-30) and documents without a date or an
// ip are skipped: a map function never throws on a foreign document. A
// document with an `action` (the fail2ban preset keeps it) counts only when
// it is a Ban: Unban and Found lines shipped without --grep were counted as
// bans.

interface Fail2banDoc {
  action?: unknown;
  date?: unknown;
  ip?: unknown;
  machine?: unknown;
  process?: unknown;
}

/** attacks: key [machine, year, month, day], reduce _count. */
export function attacksMap(doc: Fail2banDoc): void {
  if (typeof doc.date !== 'string' || typeof doc.ip !== 'string' || doc.ip === '') return;
  if (typeof doc.action === 'string' && doc.action !== 'Ban') return;
  var m = /^(\d{4})-(\d{2})-(\d{2})/.exec(doc.date);
  if (!m) return;
  var y = parseInt(m[1]!, 10);
  var mo = parseInt(m[2]!, 10);
  var d = parseInt(m[3]!, 10);
  if (mo < 1 || mo > 12 || d < 1 || d > new Date(Date.UTC(y, mo, 0)).getUTCDate()) return;
  emit([typeof doc.machine === 'string' ? doc.machine : null, y, mo, d], null);
}

/**
 * attackers: key [machine, year, month, day, ip], value the process (jail),
 * reduce _count. group_level=5 lists each IP with its count per day;
 * reduce=false lists each attack with its process. No custom reduce, so it
 * works with CouchDB 3's reduce_limit on.
 */
export function attackersMap(doc: Fail2banDoc): void {
  if (typeof doc.date !== 'string' || typeof doc.ip !== 'string' || doc.ip === '') return;
  if (typeof doc.action === 'string' && doc.action !== 'Ban') return;
  var m = /^(\d{4})-(\d{2})-(\d{2})/.exec(doc.date);
  if (!m) return;
  var y = parseInt(m[1]!, 10);
  var mo = parseInt(m[2]!, 10);
  var d = parseInt(m[3]!, 10);
  if (mo < 1 || mo > 12 || d < 1 || d > new Date(Date.UTC(y, mo, 0)).getUTCDate()) return;
  var machine = typeof doc.machine === 'string' ? doc.machine : null;
  emit([machine, y, mo, d, doc.ip], typeof doc.process === 'string' ? doc.process : null);
}

/**
 * attackers_by_ip: key [machine, ip, year, month, day], reduce _count.
 * group_level=2 gives each IP's total over all time; the same rows as
 * `attackers` in the order an analyst asks "who attacked most".
 */
export function attackersByIpMap(doc: Fail2banDoc): void {
  if (typeof doc.date !== 'string' || typeof doc.ip !== 'string' || doc.ip === '') return;
  if (typeof doc.action === 'string' && doc.action !== 'Ban') return;
  var m = /^(\d{4})-(\d{2})-(\d{2})/.exec(doc.date);
  if (!m) return;
  var y = parseInt(m[1]!, 10);
  var mo = parseInt(m[2]!, 10);
  var d = parseInt(m[3]!, 10);
  if (mo < 1 || mo > 12 || d < 1 || d > new Date(Date.UTC(y, mo, 0)).getUTCDate()) return;
  emit([typeof doc.machine === 'string' ? doc.machine : null, doc.ip, y, mo, d], null);
}

/**
 * bans_by_day: key [year, month, day, machine, ip], value the process,
 * reduce _count. One range query gives a day's bans per machine and per IP
 * (group_level=5 from [y, m, d] to [y, m, d, {}]): the live dashboard's
 * totals, whatever the number of machines (keyed by machine first, that took
 * one query per machine, and anyone who can write can add machines).
 * Each map function repeats the date checks: CouchDB evaluates each one on
 * its own, so they cannot share a helper. The live dashboard runs this very
 * function on each change it counts (server/dashboard/view-rules.ts), so
 * the page and the view agree by construction: it must stay self-contained
 * (ES5, nothing but `doc` and `emit`).
 */
export function bansByDayMap(doc: Fail2banDoc): void {
  if (typeof doc.date !== 'string' || typeof doc.ip !== 'string' || doc.ip === '') return;
  if (typeof doc.action === 'string' && doc.action !== 'Ban') return;
  var m = /^(\d{4})-(\d{2})-(\d{2})/.exec(doc.date);
  if (!m) return;
  var y = parseInt(m[1]!, 10);
  var mo = parseInt(m[2]!, 10);
  var d = parseInt(m[3]!, 10);
  if (mo < 1 || mo > 12 || d < 1 || d > new Date(Date.UTC(y, mo, 0)).getUTCDate()) return;
  var machine = typeof doc.machine === 'string' ? doc.machine : null;
  emit([y, mo, d, machine, doc.ip], typeof doc.process === 'string' ? doc.process : null);
}
