// The live dashboard counts a change by the report view's own map function
// (bans_by_day, by_ja4): on generated documents, what the page's rule gives
// is exactly what the stored view emits, and the page's script carries that
// very source. Unban and Found lines, dates carrying a time, dates that do
// not exist and foreign documents included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { correlatedReportDoc, fail2banReportDoc } from '../../../../design-docs/index.js';
import { bansByDayMap } from '../../../../design-docs/fail2ban-report.js';
import { byJa4Map } from '../../../../design-docs/correlated-report.js';
import { fnSource } from '../../../../design-docs/serialize.js';
import { emittedKeysSource } from '../../../../server/dashboard/view-rules.js';
import { dashboardPage } from '../../../../server/dashboard/page.js';

type Views = Record<string, { map: string }>;

/** The stored view's map as CouchDB runs it: the keys it emits for a document. */
function viewKeys(src: string): (doc: unknown) => unknown[] {
  return (doc) => {
    const keys: unknown[] = [];
    const fn = new Function('emit', `return (${src});`)((k: unknown) => keys.push(k)) as (d: unknown) => void;
    try {
      fn(doc);
    } catch {
      return [];
    }
    return keys;
  };
}

/** The page's rule, evaluated from its source as the browser does. */
function pageKeys(src: string): (doc: unknown) => unknown[] {
  return new Function(`return ${src};`)() as (doc: unknown) => unknown[];
}

/** A deterministic generator (mulberry32), so a failure names a reproducible document. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

const DATES = ['2026-12-07', '2026-12-07 10:00:01', '2026-12-07T10:00:01Z', '2026-02-30', '2026-13-01', '07/12/2026', '', 20261207, null, undefined];
const ACTIONS = ['Ban', 'Unban', 'Found', 'ban', '', 7, undefined];
const IPS = ['192.0.2.1', '2001:db8::1', '', 42, null, undefined];
const MACHINES = ['server', '', 'constructor', null, 3, undefined];

function fail2banDoc(r: () => number): Record<string, unknown> {
  const doc: Record<string, unknown> = { process: pick(r, ['sshd', 'nginx', undefined]) };
  for (const [field, values] of [
    ['date', DATES],
    ['action', ACTIONS],
    ['ip', IPS],
    ['machine', MACHINES],
  ] as const) {
    const v = pick(r, values);
    if (v !== undefined) doc[field] = v;
  }
  return doc;
}

function correlatedDoc(r: () => number): Record<string, unknown> {
  const doc: Record<string, unknown> = { correlated: r() < 0.5 };
  const ja4 = pick(r, ['t13d1516h2_aaa', '', '__proto__', 5, undefined]);
  const ts = pick(r, ['2026-12-07T10:00:01.000Z', '2026-12-07 10:00:01', 1765100000, undefined]);
  if (ja4 !== undefined) doc.ja4 = ja4;
  if (ts !== undefined) doc.timestamp = ts;
  return doc;
}

test('bans_by_day: the page counts a generated document exactly as the stored view does', () => {
  const view = viewKeys((fail2banReportDoc().views as Views).bans_by_day!.map);
  const page = pageKeys(emittedKeysSource(bansByDayMap));
  const r = random(7);
  let bans = 0;
  for (let i = 0; i < 3000; i++) {
    const doc = fail2banDoc(r);
    const want = view(doc);
    assert.deepEqual(page(doc), want, JSON.stringify(doc));
    bans += want.length;
  }
  assert.ok(bans > 50 && bans < 2950, `both kinds generated: ${bans} bans in 3,000`);
});

test('the cases the page used to count differently: Unban, Found, a date carrying a time', () => {
  const page = pageKeys(emittedKeysSource(bansByDayMap));
  const ban = { date: '2026-12-07', ip: '192.0.2.1', machine: 'm' };
  assert.deepEqual(page({ ...ban, action: 'Ban' }), [[2026, 12, 7, 'm', '192.0.2.1']]);
  assert.deepEqual(page({ ...ban, action: 'Unban' }), []);
  assert.deepEqual(page({ ...ban, action: 'Found' }), []);
  assert.deepEqual(page({ ...ban, date: '2026-12-07 06:26:02' }), [[2026, 12, 7, 'm', '192.0.2.1']]);
  assert.deepEqual(page({ ...ban, date: '2026-02-30' }), []);
  // A map that throws emits nothing, as CouchDB skips the document.
  assert.deepEqual(page(null), []);
});

test('by_ja4: the page counts a generated record exactly as the stored view does', () => {
  const view = viewKeys((correlatedReportDoc().views as Views).by_ja4!.map);
  const page = pageKeys(emittedKeysSource(byJa4Map));
  const r = random(11);
  for (let i = 0; i < 1000; i++) {
    const doc = correlatedDoc(r);
    assert.deepEqual(page(doc), view(doc), JSON.stringify(doc));
  }
});

test("the page's script carries the views' own map functions", () => {
  const { html } = dashboardPage({ app: 'fail2ban', db: 'log_fail2ban', kind: 'fail2ban' });
  assert.ok(html.includes(fnSource(bansByDayMap)));
  assert.ok(html.includes(fnSource(byJa4Map)));
  assert.equal((fail2banReportDoc().views as Views).bans_by_day!.map, fnSource(bansByDayMap));
});
