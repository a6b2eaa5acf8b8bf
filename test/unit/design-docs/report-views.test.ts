// The report design documents as CouchDB runs them: the serialized map and
// list functions are evaluated with a CouchDB-like emit/getRow/send/start,
// on hand-written documents, date edge cases, other time zones and foreign
// documents (a map function must skip, never throw).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'acorn';
import { fail2banReportDoc, logsDesignDoc, designDocsForApp, VIEW_META } from '../../../design-docs/index.js';

type Emitted = Array<[unknown, unknown]>;
interface Views {
  [name: string]: { map: string; reduce: string };
}

function mapper(src: string): (doc: unknown) => Emitted {
  return (doc) => {
    const out: Emitted = [];
    const fn = new Function('emit', `return (${src});`)((k: unknown, v: unknown) => out.push([k, v])) as (d: unknown) => void;
    fn(doc);
    return out;
  };
}

const report = fail2banReportDoc();
const views = report.views as Views;
const attacks = mapper(views.attacks!.map);
const attackers = mapper(views.attackers!.map);
const attackersByIp = mapper(views.attackers_by_ip!.map);
const bansByDay = mapper(views.bans_by_day!.map);
const byTime = mapper((logsDesignDoc().views as Views).by_time!.map);

/** CouchDB's _count at a group level over the emitted rows of many documents. */
function countAt(rows: Emitted, level: number): Array<[unknown[], number]> {
  const groups = new Map<string, [unknown[], number]>();
  for (const [key] of rows) {
    const k = (key as unknown[]).slice(0, level);
    const id = JSON.stringify(k);
    const g = groups.get(id);
    if (g) g[1]++;
    else groups.set(id, [k, 1]);
  }
  return [...groups.values()].sort((a, b) => (JSON.stringify(a[0]) < JSON.stringify(b[0]) ? -1 : 1));
}

const f2b = (date: string, ip: string, machine = 'server', process = 'sshd') => ({ date, hour: '06:26:02,022', process, machine, ip });

function withTimeZone<T>(tz: string, fn: () => T): T {
  const old = process.env.TZ;
  process.env.TZ = tz;
  try {
    return fn();
  } finally {
    if (old === undefined) delete process.env.TZ;
    else process.env.TZ = old;
  }
}

describe('attacks', () => {
  test('key is [machine, year, month, day] with a 1-based month', () => {
    assert.deepEqual(attacks(f2b('2017-06-11', '52.166.126.64')), [[['server', 2017, 6, 11], null]]);
  });

  test('group levels 1 and 4 count per machine and per day, across month and year boundaries', () => {
    const docs = [
      f2b('2017-06-30', '1.1.1.1'),
      f2b('2017-07-01', '1.1.1.1'),
      f2b('2017-07-01', '2.2.2.2'),
      f2b('2017-12-31', '3.3.3.3'),
      f2b('2018-01-01', '3.3.3.3'),
      f2b('2018-01-01', '4.4.4.4', 'web'),
    ];
    const rows = docs.flatMap(attacks);
    assert.deepEqual(countAt(rows, 1), [
      [['server'], 5],
      [['web'], 1],
    ]);
    assert.deepEqual(countAt(rows, 4), [
      [['server', 2017, 12, 31], 1],
      [['server', 2017, 6, 30], 1],
      [['server', 2017, 7, 1], 2],
      [['server', 2018, 1, 1], 1],
      [['web', 2018, 1, 1], 1],
    ]);
  });

  test('the calendar date does not move with the server time zone (the seed\'s new Date() bug)', () => {
    const seedMap = (doc: { date: string }) => {
      const d = new Date(doc.date);
      return [d.getFullYear(), d.getMonth(), d.getDate()];
    };
    for (const tz of ['America/Los_Angeles', 'UTC', 'Asia/Tokyo', 'Pacific/Kiritimati']) {
      withTimeZone(tz, () => {
        assert.deepEqual(attacks(f2b('2017-06-01', '1.1.1.1'))[0]![0], ['server', 2017, 6, 1], tz);
        assert.deepEqual(attacks(f2b('2018-01-01', '1.1.1.1'))[0]![0], ['server', 2018, 1, 1], tz);
      });
    }
    // What the original map emitted for 1 June 2017 west of UTC: May (4) the 31st.
    withTimeZone('America/Los_Angeles', () => assert.deepEqual(seedMap({ date: '2017-06-01' }), [2017, 4, 31]));
  });

  test('impossible dates, foreign and partial documents are skipped without throwing', () => {
    const foreign: unknown[] = [
      {},
      { foo: 'foo' },
      { date: '2017-02-30', ip: '1.1.1.1' },
      { date: '2017-13-01', ip: '1.1.1.1' },
      { date: '2017-00-10', ip: '1.1.1.1' },
      { date: 'yesterday', ip: '1.1.1.1' },
      { date: 20170611, ip: '1.1.1.1' },
      { date: '2017-06-11' },
      { date: '2017-06-11', ip: '' },
      { date: '2017-06-11', ip: 42 },
      { date: null, ip: null, machine: {} },
    ];
    for (const doc of foreign) {
      assert.deepEqual(attacks(doc), [], JSON.stringify(doc));
      assert.deepEqual(attackers(doc), [], JSON.stringify(doc));
      assert.deepEqual(attackersByIp(doc), [], JSON.stringify(doc));
    }
  });

  test('a leap day is a date, a missing machine is null', () => {
    assert.deepEqual(attacks({ date: '2016-02-29', ip: '1.1.1.1' }), [[[null, 2016, 2, 29], null]]);
    assert.deepEqual(attacks({ date: '2017-02-29', ip: '1.1.1.1' }), []);
    assert.deepEqual(attacks({ date: '2017-06-11T10:00:00Z', ip: '1.1.1.1', machine: 'm' }), [[['m', 2017, 6, 11], null]]);
  });
});

test('a document with an action counts only when it is a Ban (Unban and Found lines of the fail2ban preset are no attacks)', () => {
  // Found by a newcomer's test: the preset without --grep stored Unban and Found lines, and the report counted them as bans.
  const line = (action: string) => ({ ...f2b('2017-06-11', '52.166.126.64'), action });
  for (const map of [attacks, attackers, attackersByIp]) {
    assert.equal(map(line('Ban')).length, 1);
    assert.deepEqual(map(line('Unban')), []);
    assert.deepEqual(map(line('Found')), []);
    assert.equal(map(f2b('2017-06-11', '52.166.126.64')).length, 1, 'without an action, as the original cron job stored them');
  }
});

describe('attackers', () => {
  test('group level 5 counts each IP per day; reduce=false gives the process', () => {
    const docs = [f2b('2017-06-11', '1.1.1.1'), f2b('2017-06-11', '1.1.1.1', 'server', 'nginx'), f2b('2017-06-11', '2.2.2.2'), f2b('2017-06-12', '1.1.1.1')];
    const rows = docs.flatMap(attackers);
    assert.deepEqual(countAt(rows, 5), [
      [['server', 2017, 6, 11, '1.1.1.1'], 2],
      [['server', 2017, 6, 11, '2.2.2.2'], 1],
      [['server', 2017, 6, 12, '1.1.1.1'], 1],
    ]);
    assert.deepEqual(rows.map(([, v]) => v), ['sshd', 'nginx', 'sshd', 'sshd']);
  });

  test('attackers_by_ip totals each IP over all days at group level 2', () => {
    const rows = [f2b('2017-06-11', '1.1.1.1'), f2b('2017-06-12', '1.1.1.1'), f2b('2017-06-12', '2.2.2.2')].flatMap(attackersByIp);
    assert.deepEqual(countAt(rows, 2), [
      [['server', '1.1.1.1'], 2],
      [['server', '2.2.2.2'], 1],
    ]);
  });

  test('bans_by_day: one range query gives a day\'s bans per machine and IP; the same bans as attackers', () => {
    const docs = [
      f2b('2017-06-11', '1.1.1.1'),
      f2b('2017-06-11', '1.1.1.1', 'web', 'nginx'),
      f2b('2017-06-11', '2.2.2.2', 'web'),
      f2b('2017-06-12', '1.1.1.1'),
      { ...f2b('2017-06-11', '3.3.3.3'), action: 'Unban' },
      f2b('2017-02-30', '4.4.4.4'),
      { date: '2017-06-11', ip: '5.5.5.5' },
    ];
    const rows = docs.flatMap(bansByDay);
    const day = countAt(rows, 5).filter(([k]) => k[0] === 2017 && k[1] === 6 && k[2] === 11);
    assert.deepEqual(day, [
      [[2017, 6, 11, 'server', '1.1.1.1'], 1],
      [[2017, 6, 11, 'web', '1.1.1.1'], 1],
      [[2017, 6, 11, 'web', '2.2.2.2'], 1],
      [[2017, 6, 11, null, '5.5.5.5'], 1],
    ]);
    // Every ban attackers counts, bans_by_day counts, with the same process.
    const reorder = ([k, v]: [unknown, unknown]) => JSON.stringify([[...(k as unknown[]).slice(1, 4), (k as unknown[])[0], (k as unknown[])[4]], v]);
    assert.deepEqual(docs.flatMap(attackers).map(reorder).sort(), rows.map(([k, v]) => JSON.stringify([k, v])).sort());
  });

  test('no custom reduce anywhere: every view uses the built-in _count (reduce_limit safe)', () => {
    for (const ddoc of designDocsForApp(['fail2ban'])) {
      for (const view of Object.values((ddoc.views ?? {}) as Views)) assert.equal(view.reduce, '_count');
    }
  });
});

describe('by_time', () => {
  const hour = [2017, 6, 11, 10];
  test('epoch timestamps in s, ms, µs and ns give the same UTC hour', () => {
    // Nanoseconds as a log carries them: beyond 2^53, as JavaScript (and CouchDB's engine) reads them.
    // eslint-disable-next-line no-loss-of-precision
    for (const ts of [1497175200, 1497175200123, 1497175200123456, 1497175200123456789]) {
      assert.deepEqual(byTime({ timestamp: ts }), [[hour, null]], String(ts));
    }
  });

  test('RFC 3339 time with an offset is counted in UTC', () => {
    assert.deepEqual(byTime({ time: '2017-06-11T12:30:00+02:00' }), [[hour, null]]);
  });

  test('date + hour as written, received_at as the fallback, garbage skipped', () => {
    assert.deepEqual(byTime({ date: '2017-06-11', hour: '06:26:02,022' }), [[[2017, 6, 11, 6], null]]);
    assert.deepEqual(byTime({ date: '2017-06-11' }), [[[2017, 6, 11, null], null]]);
    assert.deepEqual(byTime({ received_at: '2017-06-11T10:59:59.999Z' }), [[hour, null]]);
    assert.deepEqual(byTime({ time: 'not a time', received_at: '2017-06-11T10:00:00Z' }), [[hour, null]]);
    for (const doc of [{}, { time: 'never' }, { timestamp: -5 }, { timestamp: 'x' }, { date: 'x' }, { date: '2017-02-30' }]) {
      assert.deepEqual(byTime(doc), [], JSON.stringify(doc));
    }
  });

  test('the hour does not move with the server time zone', () => {
    withTimeZone('Asia/Kolkata', () => assert.deepEqual(byTime({ timestamp: 1497175200 }), [[hour, null]]));
  });
});

describe('lists', () => {
  function runList(src: string, rows: Array<{ key: unknown; value: unknown; id?: string }>, path: string[], query: Record<string, string> = {}) {
    const queue = [...rows];
    let body = '';
    let headers: Record<string, string> = {};
    const fn = new Function('getRow', 'send', 'start', `return (${src});`)(
      () => queue.shift() ?? null,
      (chunk: string) => (body += chunk),
      (resp: { headers?: Record<string, string> }) => (headers = resp.headers ?? {}),
    ) as (head: unknown, req: unknown) => void;
    fn({}, { path, query });
    return { body, headers };
  }
  const lists = report.lists as Record<string, string>;
  const path = ['log_fail2ban', '_design', 'report', '_list', 'csv', 'attacks'];

  test('csv: a header row named after the view, quoted cells', () => {
    const { body, headers } = runList(lists.csv!, [
      { key: ['server', 2017, 6, 11], value: 4 },
      { key: ['we,b "1"', 2017, 6, 12], value: 2 },
    ], path);
    assert.match(headers['Content-Type']!, /^text\/csv/);
    assert.equal(body, 'machine,date,attacks\r\nserver,2017-06-11,4\r\n"we,b ""1""",2017-06-12,2\r\n');
  });

  test('csv: logged text that starts like a formula stays text (CSV injection); numbers and "-" stay as they are', () => {
    const rows = [
      { key: ['=HYPERLINK("http://x","y")', 2017, 6, 11], value: 4 },
      { key: ['+cmd|calc', 2017, 6, 11], value: 3 },
      { key: ['@SUM(A1)', 2017, 6, 11], value: 2 },
      { key: ['-2+3', 2017, 6, 11], value: 1 },
      { key: ['\tx', 2017, 6, 11], value: 1 },
      { key: ['-', 2017, 6, 11], value: 1 },
      { key: ['-12.5', 2017, 6, 11], value: 1 },
      { key: ['a=b', 2017, 6, 11], value: 1 },
      { key: [' =1+1', 2017, 6, 11], value: 1 },
      { key: ['\u200b=1+1', 2017, 6, 11], value: 1 },
      { key: ['\uff1d1+1', 2017, 6, 11], value: 1 },
      { key: ['\n=1+1', 2017, 6, 11], value: 1 },
    ];
    const lines = runList(lists.csv!, rows, path, { sort: 'attacks', order: 'desc' })
      .body.slice('machine,date,attacks\r\n'.length)
      .split(/\r\n(?=(?:[^"]*"[^"]*")*[^"]*$)/);
    const machines = lines.filter((l) => l !== '').map((l) => l.slice(0, l.lastIndexOf(',', l.lastIndexOf(',') - 1)));
    assert.deepEqual(machines.sort(), [
      '"\'=HYPERLINK(""http://x"",""y"")"',
      "'+cmd|calc",
      "'@SUM(A1)",
      "'-2+3",
      "'\tx",
      '-',
      '-12.5',
      'a=b',
      "' =1+1",
      "'\u200b=1+1",
      "'\uff1d1+1",
      '"\'\n=1+1"',
    ].sort());
  });

  test('csv: group level 1, reduce=false rows with id and process, and no rows at all', () => {
    assert.equal(runList(lists.csv!, [{ key: ['server'], value: 7 }], path).body, 'machine,attacks\r\nserver,7\r\n');
    const mapped = runList(lists.csv!, [{ key: ['s', 2017, 6, 11, '1.1.1.1'], value: 'sshd', id: 'abc' }], [...path.slice(0, -1), 'attackers']).body;
    assert.equal(mapped, 'machine,date,ip,id,process\r\ns,2017-06-11,1.1.1.1,abc,sshd\r\n');
    assert.equal(runList(lists.csv!, [], path).body, 'machine,date,attacks\r\n');
  });

  test('csv: top, from/to and sort, with the names the CLI uses', () => {
    const rows = [
      { key: ['s', 2017, 6, 11], value: 4 },
      { key: ['s', 2017, 6, 12], value: 9 },
      { key: ['s', 2017, 6, 13], value: 1 },
      { key: ['t', 2017, 6, 12], value: 5 },
    ];
    assert.equal(runList(lists.csv!, rows, path, { top: '2' }).body, 'machine,date,attacks\r\ns,2017-06-12,9\r\nt,2017-06-12,5\r\n');
    assert.equal(runList(lists.csv!, rows, path, { from: '2017-06-12', to: '2017-06-12' }).body, 'machine,date,attacks\r\ns,2017-06-12,9\r\nt,2017-06-12,5\r\n');
    assert.equal(runList(lists.csv!, rows, path, { sort: 'attacks', order: 'asc', top: '3' }).body, 'machine,date,attacks\r\ns,2017-06-11,4\r\nt,2017-06-12,5\r\ns,2017-06-12,9\r\n');
  });

  test('html: IPs sorted as addresses, caption, top, no "null", numbers right and text left', () => {
    const ap = ['log_fail2ban', '_design', 'report', '_list', 'html', 'attackers'];
    const rows = [
      { key: ['server', 2026, 2, 27, '100.1.2.3'], value: 3 },
      { key: ['server', 2026, 2, 27, '35.1.2.3'], value: 7 },
      { key: ['server', 2026, 2, 28, '2001:db8::1'], value: 1 },
      { key: [null, 2026, 3, 3, '9.9.9.9'], value: 2 },
    ];
    const ipsOf = (page: string) => [...page.matchAll(/<td class="t">([0-9a-f.:]+)<\/td>\s*<td class="n">/g)].map((m) => m[1]);
    const page = runList(lists.html!, rows, ap, { group_level: '5' }).body;
    assert.deepEqual(ipsOf(page), ['9.9.9.9', '35.1.2.3', '100.1.2.3', '2001:db8::1'], 'key order: machine (none first), date, then the address');
    assert.match(page, /<p class="caption" id="caption">4 attackers, 13 bans, 2026-02-27 – 2026-03-03<\/p>/);
    assert.ok(!/null/.test(page.replace(/<style>.*?<\/style>/s, '')), 'no "null" on the page');
    assert.match(page, /<td class="t none">\(none\)<\/td>/);
    assert.match(page, /<th class="t"[^>]*><a [^>]*>machine<\/a><\/th>\n<th class="t"[^>]*><a [^>]*>date<\/a><\/th>\n<th class="t"[^>]*><a [^>]*>ip<\/a><\/th>\n<th class="n/);
    assert.match(page, /<td class="t">2026-02-27<\/td>/, 'ISO dates');
    const top = runList(lists.html!, rows, ap, { group_level: '5', top: '2' }).body;
    assert.match(top, /id="caption">top 2 of 4 attackers, 13 bans, 2026-02-27 – 2026-03-03</);
    assert.deepEqual([...top.matchAll(/<td class="n">(\d+)<\/td>/g)].map((m) => m[1]), ['7', '3'], 'the highest counts, highest first');
    const asc = runList(lists.html!, rows, ap, { group_level: '5', sort: 'ip', order: 'asc' }).body;
    assert.deepEqual(ipsOf(asc), ['9.9.9.9', '35.1.2.3', '100.1.2.3', '2001:db8::1']);
    const desc = runList(lists.html!, rows, ap, { group_level: '5', sort: 'ip', order: 'desc' }).body;
    assert.deepEqual(ipsOf(desc), ['2001:db8::1', '100.1.2.3', '35.1.2.3', '9.9.9.9']);
    assert.match(asc, /<th class="t sorted asc" data-col="ip"><a href="\?group_level=5&amp;sort=ip&amp;order=desc"/, 'the sorted column links to the other order');
  });

  test('html: control characters and bidi overrides in logged values are shown as escapes', () => {
    const ap = ['log_fail2ban', '_design', 'report', '_list', 'html', 'attackers'];
    const rows = [{ key: ['web\u202egnp.exe', 2026, 2, 27, '\x1b]0;PWNED\x07'], value: 3 }];
    const page = runList(lists.html!, rows, ap, { group_level: '5', note: 'a\u202eb' }).body;
    assert.match(page, /<td class="t">web\\u202egnp\.exe<\/td>/);
    assert.match(page, /<td class="t">\\u001b\]0;PWNED\\u0007<\/td>/);
    assert.ok(!/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u202e]/.test(page.replace(/name="note" value="a\u202eb"/, '')), 'none raw in the page text');
    assert.match(page, /name="note" value="a\u202eb"/, 'form fields keep their value');
  });

  test('html: no group level is one total, not a row called "null"', () => {
    const page = runList(lists.html!, [{ key: null, value: 23 }], [...path.slice(0, -2), 'html', 'attacks']).body;
    assert.match(page, /id="caption">23 bans</);
    assert.ok(!/null|1 rows/.test(page.replace(/<style>.*?<\/style>/s, '')));
  });

  test('html: from/to that the grouping cannot honour are said, not silently dropped', () => {
    const page = runList(lists.html!, [{ key: ['server'], value: 7 }], [...path.slice(0, -2), 'html', 'attacks'], { group_level: '1', from: '2017-06-01' }).body;
    assert.match(page, /<p class="note">from\/to need rows with a whole date: ask group_level=4 or more/);
  });

  test('html: self-contained, one bar per row, keys escaped', () => {
    const rows = [
      { key: ['server', 2017, 6, 11], value: 4 },
      { key: ['<script>alert(1)</script>', 2017, 6, 12], value: 2 },
      { key: ['server', 2017, 6, 13], value: 1 },
    ];
    const { body, headers } = runList(lists.html!, rows, [...path.slice(0, -2), 'html', 'attacks'], { group_level: '4', sort: 'attacks' });
    assert.match(headers['Content-Type']!, /^text\/html/);
    assert.equal(body.match(/<span class="bar"/g)?.length, 3);
    assert.ok(!body.includes('<script>'), 'keys are escaped');
    assert.ok(!/<script|<link|src=|@import|url\(/i.test(body), 'no external scripts, styles or fonts');
    assert.match(body, /<th [^>]*><a [^>]*>machine<\/a><\/th>.*<th [^>]*><a [^>]*>attacks<\/a><\/th>/s);
    const widths = [...body.matchAll(/<span class="bar" style="width:([\d.]+)%"/g)].map((m) => Number(m[1]));
    assert.ok(widths[0]! > widths[1]! && widths[1]! > widths[2]!, `bars scale with the values: ${widths}`);
  });

  test('every serialized view and list function is ES5 (CouchDB 3\'s older JavaScript engine)', () => {
    for (const ddoc of designDocsForApp(['fail2ban'])) {
      const fns = [
        ...Object.values((ddoc.views ?? {}) as Views).map((v) => v.map),
        ...Object.values((ddoc.lists ?? {}) as Record<string, string>),
        ...(typeof ddoc.validate_doc_update === 'string' ? [ddoc.validate_doc_update] : []),
      ];
      for (const src of fns) assert.doesNotThrow(() => parse(`(${src})`, { ecmaVersion: 5 }), src.slice(0, 80));
    }
  });

  test('view metadata covers every view that is pushed', () => {
    for (const ddoc of designDocsForApp(['fail2ban'])) {
      for (const name of Object.keys((ddoc.views ?? {}) as Views)) assert.ok(VIEW_META[name], name);
    }
  });
});
