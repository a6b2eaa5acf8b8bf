// The live dashboard (/_couchlog/dashboard/<app>) in headless Chromium
// (playwright-core driving Debian's chromium): a reader logs in, documents
// posted through the ingress show up in the counters and the latest list
// (the time it took is printed), the page recovers after the embedded server is killed (the
// supervisor restarts it) and after the ingress restarts, it fetches
// nothing but its own origin, and with 100,000 documents in the database
// it opens at once and stays live. Screenshots go to a temporary folder.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { startStack, http, JSON_TYPE, type Stack } from '../helpers/stack.js';
import { launchBrowser, type HeadlessBrowser } from '../helpers/browser.js';
import { EmbeddedCouch } from '../../embedded/pouchdb-server.js';

let stack: Stack;
let hb: HeadlessBrowser;

before(async () => {
  stack = await startStack({
    yaml: {
      apps: {
        fail2ban: { reports: ['fail2ban'] },
        web: {},
        bulk: { reports: ['fail2ban'] },
        many: { reports: ['fail2ban'] },
        older: { reports: ['fail2ban'] },
        big: {},
        bans: { reports: ['fail2ban'] },
        feeds: { reports: ['fail2ban'] },
      },
      // Two feeds per account and a short Retry-After: the limit of viewers per account is reached with three pages.
      ingress: { feeds: { max_open_per_user: 2 }, retry_after_s: 2 },
    },
  });
  hb = await launchBrowser('dashboard');
});
after(async () => {
  await hb?.close();
  await stack?.stop();
});

/** Today as the dashboard counts it: the UTC date, whatever the browser's time zone. */
function today(): string {
  return new Date().toISOString().slice(0, 10);
}

async function post(app: string, docs: object[]): Promise<void> {
  const res = await http(`${stack.url}/log_${app}`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify(docs) });
  assert.equal(res.status, 201, res.text);
}

async function login(page: Page, app: string, as?: { user: string; password: string; live: boolean }): Promise<void> {
  await page.goto(`${stack.url}/_couchlog/dashboard/${app}`);
  await page.waitForSelector('#login-form', { state: 'visible', timeout: 10_000 }).catch(async (err: Error) => {
    const why = await page.evaluate(() => [
      document.getElementById('login')?.hidden,
      document.getElementById('board')?.hidden,
      document.getElementById('login-message')?.textContent,
      document.getElementById('status')?.textContent,
    ]);
    throw new Error(`${err.message}\npage state: ${JSON.stringify(why)}`);
  });
  await page.fill('#name', as?.user ?? stack.config.users.reader.user);
  await page.fill('#password', as?.password ?? stack.config.users.reader.password!);
  await page.click('#login-form button[type="submit"]');
  if (as && !as.live) return;
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'live', undefined, { timeout: 10_000 });
  // The page is live before it has read the newest documents (the list and the minutes): wait for them too.
  await page.waitForSelector('#latest:not([aria-busy])', { state: 'attached', timeout: 10_000 });
}

const textOf = (page: Page, sel: string) => page.textContent(sel).then((t) => (t ?? '').trim());

/** Waits until `sel`'s text is `want`, at most `ms`. */
async function expectText(page: Page, sel: string, want: string, ms: number): Promise<void> {
  try {
    await page.waitForFunction(([s, w]) => (document.querySelector(s!)?.textContent ?? '').trim() === w, [sel, want] as const, { timeout: ms, polling: 50 });
  } catch {
    assert.fail(`${sel} should read "${want}" within ${ms} ms; it reads "${await textOf(page, sel)}"`);
  }
}

/** Waits for the page's connection status: `live`, or `down` (reconnecting). */
async function waitStatus(page: Page, want: 'live' | 'down', ms: number): Promise<void> {
  try {
    await page.waitForFunction((w) => document.getElementById('status')?.className === w, want, { timeout: ms, polling: 50 });
  } catch {
    assert.fail(`the status should be ${want} within ${ms} ms; it reads "${await textOf(page, '#status')}"`);
  }
}

describe('the live dashboard', () => {
  test('anonymous: the page shows a login form and no data; the data routes stay closed', async () => {
    const res = await http(`${stack.url}/_couchlog/dashboard/fail2ban`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-security-policy')!, /default-src 'none'; script-src 'sha256-[^']+'; .*connect-src 'self'/);
    assert.ok(!/<script src|<link|@import|https?:\/\/(?!127)/i.test(res.text), 'self-contained: no external script, style or font');
    assert.equal((await http(`${stack.url}/log_fail2ban/_changes`)).status, 401);
    // A script's request gets no Basic challenge (no browser dialog over the page's login form), as CouchDB 3 does.
    const xhr = await http(`${stack.url}/log_fail2ban/_changes`, { headers: { 'x-requested-with': 'XMLHttpRequest' } });
    assert.equal(xhr.status, 401);
    assert.equal(xhr.headers.get('www-authenticate'), null);
    assert.ok((await http(`${stack.url}/log_fail2ban/_changes`)).headers.get('www-authenticate'), 'others still get it');
    const session = await http(`${stack.url}/_session`, { headers: { 'x-requested-with': 'XMLHttpRequest' } });
    assert.equal(session.headers.get('www-authenticate'), null);
    assert.equal((await http(`${stack.url}/_couchlog/dashboard/nosuchapp`)).status, 404);
  });

  test('a reader logs in; posted documents show up live; it recovers after the server and the ingress restart', async () => {
    const context = await hb.browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const origins = new Set<string>();
    const problems: string[] = [];
    page.on('request', (r) => origins.add(new URL(r.url()).origin));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/Failed to load resource|net::ERR/.test(m.text())) problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    if (process.env.DEBUG_DASHBOARD) page.on('response', (r) => process.stdout.write(`# ${Date.now() % 100000} ${r.status()} ${r.url().slice(22, 160)}\n`));
    try {
      await login(page, 'fail2ban');
      await expectText(page, '#doc-count', '0', 10_000);
      const day = today();
      await post('fail2ban', [
        { date: day, hour: '10:00:00,000', process: 'sshd', machine: 'server', ip: '100.1.2.3' },
        { date: day, hour: '10:00:01,000', process: 'sshd', machine: 'server', ip: '35.1.2.3' },
        { date: day, hour: '10:00:02,000', process: 'sshd', machine: 'web', ip: '35.1.2.3' },
      ]);
      const posted = Date.now();
      await expectText(page, '#doc-count', '3', 10_000);
      await expectText(page, '#bans-today', '3', 10_000);
      // A latency figure, not a bound: a loaded CI machine is no measure of it.
      process.stdout.write(`# dashboard: posted documents shown after ${Date.now() - posted} ms\n`);
      assert.equal(await page.locator('#latest li').count(), 3);
      // The minute may turn between the post and this read.
      assert.equal(Number(await textOf(page, '#this-minute')) + Number(await textOf(page, '#last-minute')), 3);
      assert.deepEqual(await page.$$eval('#attackers tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(0, 2).map((td) => td.textContent))), [
        ['35.1.2.3', '2'],
        ['100.1.2.3', '1'],
      ]);
      assert.deepEqual(await page.$$eval('#machines tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(0, 2).map((td) => td.textContent))), [
        ['server', '2'],
        ['web', '1'],
      ]);
      await page.screenshot({ path: hb.shot('fail2ban-1280'), fullPage: true });

      // The embedded server dies; the supervisor restarts it; the page reconnects by itself.
      if (stack.couch instanceof EmbeddedCouch) {
        const restarted = new Promise<void>((ok) => (stack.couch as EmbeddedCouch).once('restarted', () => ok()));
        process.kill((stack.couch as EmbeddedCouch).pid!, 'SIGKILL');
        // couchlog holds the port across the restart (embedded/held-port.ts): requests made
        // meanwhile wait for the new server, so the page need not show "down" at all.
        await restarted;
        await waitStatus(page, 'live', 15_000);
        await post('fail2ban', [{ date: day, hour: '10:01:00,000', process: 'sshd', machine: 'server', ip: '9.9.9.9' }]);
        await expectText(page, '#doc-count', '4', 10_000);
        await expectText(page, '#bans-today', '4', 10_000);
      }

      // The ingress restarts.
      await stack.killIngress();
      await waitStatus(page, 'down', 10_000);
      await stack.reviveIngress();
      await waitStatus(page, 'live', 15_000);
      const before0 = Number((await textOf(page, '#doc-count')).replace(/,/g, ''));
      await post('fail2ban', [{ date: day, hour: '10:02:00,000', process: 'sshd', machine: 'server', ip: '9.9.9.9' }]);
      await expectText(page, '#doc-count', String(before0 + 1), 10_000);

      assert.deepEqual([...origins], [stack.url], 'nothing fetched from anywhere else');
      assert.deepEqual(problems, [], 'no script errors, no CSP violations');
    } finally {
      await context.close();
    }
  });

  test("150 machines: the day's totals take one view query; a document written while the page loads counts once", async () => {
    const day = today();
    // Two bans per machine: 300 documents, fewer than the 500 newest changes read at load.
    const docs = Array.from({ length: 300 }, (_, i) => ({
      date: day,
      hour: '08:00:00,000',
      process: 'sshd',
      machine: `m${String(i % 150).padStart(3, '0')}`,
      ip: i < 150 ? '192.0.2.1' : `192.0.2.${(i % 100) + 2}`,
    }));
    await post('many', docs);
    const context = await hb.browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const views: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes('/_view/')) views.push(r.url());
    });
    // Found by a black-box test: a document written after the page read the
    // count but before it read the newest changes was in that read and in
    // the live feed, and counted twice. Written here exactly in that gap.
    let raced = false;
    await page.route(
      (url) => url.pathname === '/log_many/_changes' && url.searchParams.get('descending') === 'true',
      async (route) => {
        if (!raced) {
          raced = true;
          await post('many', [{ date: day, hour: '08:30:00,000', process: 'sshd', machine: 'm000', ip: '198.51.100.99' }]);
        }
        await route.continue();
      },
    );
    try {
      await login(page, 'many');
      assert.ok(raced, 'the document was written while the page loaded');
      await expectText(page, '#bans-today', '301', 10_000);
      await expectText(page, '#doc-count', '301', 10_000);
      // The minutes fill in from the documents read after the page went live.
      const minutesNow = () => page.evaluate(() => ['this-minute', 'last-minute'].reduce((n, id) => n + Number(document.getElementById(id)?.textContent), 0));
      await page.waitForFunction(
        () => ['this-minute', 'last-minute'].reduce((n, id) => n + Number(document.getElementById(id)?.textContent), 0) >= 301,
        undefined,
        {
          timeout: 10_000,
          polling: 50,
        },
      );
      assert.equal(await minutesNow(), 301, 'this minute and the last hold the 301 documents, each once');
      assert.equal(await page.locator('#latest li', { hasText: '198.51.100.99' }).count(), 1, 'listed once');
      const machines = await page.$$eval('#machines tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(0, 2).map((td) => td.textContent)));
      assert.equal(machines.length, 20, 'the top 20 machines');
      assert.deepEqual(machines[0], ['m000', '3']);
      assert.ok(
        machines.slice(1).every(([, n]) => n === '2'),
        JSON.stringify(machines),
      );
      assert.deepEqual(await page.$$eval('#attackers tr:first-child td', (tds) => tds.slice(0, 2).map((td) => td.textContent)), ['192.0.2.1', '150']);
      // The load's query (the page asks the view again, fresh, after changes: not counted here).
      const atLoad = views.filter((u) => u.includes('stale=update_after'));
      assert.equal(atLoad.length, 1, `one view query, not one per machine: ${views.join(' ')}`);
      assert.match(atLoad[0]!, /_view\/bans_by_day\?/);
      // Live after that: a ban on a new machine.
      await post('many', [{ date: day, hour: '09:00:00,000', process: 'sshd', machine: 'm999', ip: '192.0.2.1' }]);
      await expectText(page, '#bans-today', '302', 10_000);
      await expectText(page, '#attackers tr:first-child td:nth-child(2)', '151', 10_000);
    } finally {
      await context.close();
    }
  });

  test('a design document from before bans_by_day: the page says to run setup, and stays live', async () => {
    const url = `${stack.couchUrl}/log_older/_design/report`;
    const admin = { authorization: stack.auth.admin };
    const ddoc = (await http(url, { headers: admin })).json;
    delete ddoc.views.bans_by_day;
    assert.equal((await http(url, { method: 'PUT', headers: { ...admin, ...JSON_TYPE }, body: JSON.stringify(ddoc) })).status, 201);
    const context = await hb.browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    try {
      await login(page, 'older');
      await expectText(page, '#index-note', 'the report views are missing or out of date: an admin runs couchlog setup', 10_000);
      await post('older', [{ date: today(), hour: '08:00:00,000', process: 'sshd', machine: 'a', ip: '192.0.2.7' }]);
      await expectText(page, '#doc-count', '1', 10_000);
      assert.equal(await textOf(page, '#status'), 'live');
    } finally {
      await context.close();
    }
  });

  test('log_correlated: correlated vs orphans and the top JA4 fingerprints, live', async () => {
    const context = await hb.browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    try {
      await login(page, 'correlated');
      await expectText(page, '#correlated', '0', 10_000);
      // The correlator's records (written here as the admin: only the correlator account may write them).
      const now = new Date().toISOString();
      const rec = (i: number, correlated: boolean, ja4: string | null) => ({
        _id: `rec-${i}`,
        timestamp: now,
        received_at: now,
        src_ip: `192.0.2.${i}`,
        correlated,
        ...(correlated ? {} : { orphan_side: 'A' }),
        ...(ja4 ? { ja4 } : {}),
      });
      const docs = [rec(1, true, 't13d1516h2_aaa'), rec(2, true, 't13d1516h2_aaa'), rec(3, true, 't13d0912h1_bbb'), rec(4, false, null)];
      const res = await http(`${stack.couchUrl}/log_correlated/_bulk_docs`, {
        method: 'POST',
        headers: { ...JSON_TYPE, authorization: stack.auth.admin },
        body: JSON.stringify({ docs }),
      });
      assert.equal(res.status, 201, res.text);
      await expectText(page, '#correlated', '3', 10_000);
      await expectText(page, '#orphans', '1', 10_000);
      await expectText(page, '#orphan-share', '25%', 10_000);
      await expectText(page, '#ja4 tr:first-child td:first-child', 't13d1516h2_aaa', 10_000);
      // The feed may hand the four records over in more than one batch: wait for the total.
      await expectText(page, '#ja4 tr:first-child td:nth-child(2)', '2', 10_000);
      await page.screenshot({ path: hb.shot('correlated-1280'), fullPage: true });
    } finally {
      await context.close();
    }
  });

  test('values named like Object members (constructor, __proto__, toString) are counted like any other', async () => {
    const context = await hb.browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    try {
      await login(page, 'correlated');
      const now = new Date().toISOString();
      const names = ['constructor', 'constructor', 'constructor', 'constructor', '__proto__', '__proto__', 'toString', 'evil\u202egnp.exe'];
      const docs = names.map((ja4, i) => ({ _id: `proto-${i}`, timestamp: now, received_at: now, src_ip: `192.0.2.${50 + i}`, correlated: true, ja4 }));
      const res = await http(`${stack.couchUrl}/log_correlated/_bulk_docs`, {
        method: 'POST',
        headers: { ...JSON_TYPE, authorization: stack.auth.admin },
        body: JSON.stringify({ docs }),
      });
      assert.equal(res.status, 201, res.text);
      // The page counts changes as they arrive, and a feed may hand the eight documents
      // over in more than one batch: wait for the totals, not for the first row.
      await expectText(page, '#ja4 tr:first-child td:first-child', 'constructor', 10_000);
      await expectText(page, '#ja4 tr:first-child td:nth-child(2)', '4', 10_000);
      await page.waitForFunction(() => [...document.querySelectorAll('#ja4 tr td:first-child')].some((td) => td.textContent === 'toString'), undefined, {
        timeout: 10_000,
        polling: 50,
      });
      const rows = await page.$$eval('#ja4 tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(0, 2).map((td) => td.textContent)));
      assert.deepEqual(
        rows.filter((r) => r[0] === '__proto__' || r[0] === 'toString'),
        [
          ['__proto__', '2'],
          ['toString', '1'],
        ],
      );
      // A bidi override shows as an escape, not as reversed text.
      assert.ok(
        rows.some((r) => r[0] === 'evil\\u202egnp.exe'),
        JSON.stringify(rows),
      );
      // The latest list follows the feed, which may still be a batch behind the totals (CI, 2026-12-06).
      await page
        .waitForFunction(() => (document.querySelector('#latest')?.textContent ?? '').includes('ja4=evil\\u202egnp.exe'), undefined, {
          timeout: 10_000,
          polling: 50,
        })
        .catch(() => undefined);
      assert.match(await textOf(page, '#latest'), /ja4=evil\\u202egnp\.exe/);
    } finally {
      await context.close();
    }
  });

  test('documents of several MB: the page goes live at once, keeps a bounded summary of each, and its heap stays small', async () => {
    // Anyone may write such documents (under the 8 MB document limit); every reader's page used to keep them whole
    // and rebuild their summaries on each redraw (40 of 6 MB: 105 s to go live, 80 s per redraw, 242 MB of heap).
    const MB = 1024 * 1024;
    const big = (i: number) => ({ note: `big ${i}`, blob: 'x'.repeat(4 * MB), nested: { list: Array.from({ length: 2000 }, (_, j) => `v${j}`.repeat(50)) } });
    for (let i = 0; i < 2; i++) await post('big', [big(i)]);
    const context = await hb.browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    try {
      const opened = Date.now();
      await login(page, 'big');
      await expectText(page, '#doc-count', '2', 10_000);
      await page.waitForFunction(() => document.querySelectorAll('#latest li[data-id]').length === 2, undefined, { timeout: 10_000, polling: 50 });
      const liveMs = Date.now() - opened;
      // Each line is a summary: values cut to 200 characters, the line to about 1 KB.
      const lengths = await page.$$eval('#latest code', (els) => els.map((e) => (e.textContent ?? '').length));
      assert.ok(
        lengths.every((n) => n > 100 && n <= 1100),
        `summary lengths ${lengths.join(', ')}`,
      );
      // A new document adds its line; the lines already there are kept, not made again.
      await page.$eval('#latest li[data-id]', (li) => ((li as HTMLElement).dataset.kept = 'yes'));
      await post('big', [big(2)]);
      await expectText(page, '#doc-count', '3', 10_000);
      await page.waitForFunction(() => document.querySelectorAll('#latest li[data-id]').length === 3, undefined, { timeout: 10_000, polling: 50 });
      assert.equal(await page.locator('#latest li[data-kept="yes"]').count(), 1, 'the existing line was not rebuilt');
      assert.match(await textOf(page, '#latest li:first-child code'), /note=big 2/);
      const cdp = await context.newCDPSession(page);
      await cdp.send('HeapProfiler.collectGarbage');
      const { usedSize } = await cdp.send('Runtime.getHeapUsage');
      // 3 documents of over 4 MB each went through the page: it holds less than one of them.
      assert.ok(usedSize < 4 * MB, `JS heap ${usedSize} bytes after 3 documents of over 4 MB`);
      process.stdout.write(`# dashboard with documents of 4.5 MB: 2 listed ${liveMs} ms after opening, JS heap ${(usedSize / MB).toFixed(1)} MB after 3\n`);
    } finally {
      await context.close();
    }
  });

  test('fail2ban: the live total counts what the view counts (no Unban or Found line, dates with a time), on the UTC day in any time zone', async () => {
    const day = today();
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    // A zone whose date is not the UTC date right now: the page used to total the browser's own date.
    const timezoneId = new Date().getUTCHours() >= 11 ? 'Pacific/Kiritimati' : 'Pacific/Pago_Pago';
    const context = await hb.browser.newContext({ viewport: { width: 1280, height: 800 }, timezoneId });
    const page = await context.newPage();
    try {
      await login(page, 'bans');
      assert.notEqual(await page.evaluate(() => new Date().toLocaleDateString('en-CA')), day, `the browser's date in ${timezoneId} is not the UTC date`);
      await expectText(page, '#day', `${day} (UTC)`, 10_000);
      const ban = { hour: '06:26:02,022', process: 'sshd', machine: 'gw' };
      await post('bans', [
        { ...ban, date: day, action: 'Ban', ip: '198.51.100.1' },
        { ...ban, date: `${day} 06:26:02`, action: 'Ban', ip: '198.51.100.2' },
        { ...ban, date: day, ip: '198.51.100.3' },
        { ...ban, date: day, action: 'Unban', ip: '198.51.100.1' },
        { ...ban, date: day, action: 'Found', ip: '198.51.100.4' },
        { ...ban, date: yesterday, action: 'Ban', ip: '198.51.100.5' },
      ]);
      await expectText(page, '#doc-count', '6', 10_000);
      await expectText(page, '#bans-today', '3', 10_000);
      const [y, m, d] = day.split('-').map(Number);
      const view = await http(
        `${stack.couchUrl}/log_bans/_design/report/_view/bans_by_day?group_level=3&startkey=${encodeURIComponent(JSON.stringify([y, m, d]))}&endkey=${encodeURIComponent(JSON.stringify([y, m, d, {}]))}`,
        { headers: { authorization: stack.auth.admin } },
      );
      assert.deepEqual(
        view.json.rows.map((r: { value: number }) => r.value),
        [3],
        'the view counts the same',
      );
      // A page opened now reads the same from the view.
      await page.reload();
      await page.waitForFunction(() => document.getElementById('status')?.textContent === 'live', undefined, { timeout: 10_000 });
      await expectText(page, '#bans-today', '3', 10_000);
    } finally {
      await context.close();
    }
  });

  test('log_correlated: a corrected or deleted record counts once, even delivered twice; a record sits at its own minute', async () => {
    const now = Date.now();
    const iso = (ms: number) => new Date(ms).toISOString();
    let decided = now - 600_000;
    const rec = (id: string, correlated: boolean, ja4: string | null, ms: number, revision = 1) => ({
      _id: id,
      timestamp: iso(ms),
      src_ip: '192.0.2.200',
      correlated,
      ...(correlated ? {} : { orphan_side: 'A' }),
      ...(ja4 ? { ja4 } : {}),
      revision,
      decided_at: iso((decided += 10)),
    });
    const revs = new Map<string, string>();
    const write = async (docs: Array<Record<string, unknown>>) => {
      const body = docs.map((doc) => (revs.has(doc._id as string) ? { ...doc, _rev: revs.get(doc._id as string) } : doc));
      const res = await http(`${stack.couchUrl}/log_correlated/_bulk_docs`, {
        method: 'POST',
        headers: { ...JSON_TYPE, authorization: stack.auth.admin },
        body: JSON.stringify({ docs: body }),
      });
      assert.equal(res.status, 201, res.text);
      for (const r of res.json) revs.set(r.id, r.rev);
    };
    // Written before the page opens (in the view's figures): the correlator writes no received_at.
    const fiveAgo = now - 5 * 60_000;
    await write([
      rec('A-p1', false, 'rev_jx', now),
      rec('A-p2', true, 'rev_jx', now),
      rec('A-p3', true, 'rev_jx', now),
      rec('A-e1', true, 'rev_old', fiveAgo),
      rec('A-e2', true, 'rev_old', now - 40 * 60_000),
    ]);
    const context = await hb.browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    // As a CouchDB cluster may after a restart, every change is delivered twice, and each answer repeats the previous one's.
    let previous: unknown[] = [];
    await page.route(
      (url) => url.pathname === '/log_correlated/_changes' && url.searchParams.get('descending') !== 'true',
      async (route) => {
        try {
          const res = await route.fetch({ timeout: 60_000 });
          const body = await res.json();
          const results = body.results ?? [];
          body.results = [...previous, ...results, ...results];
          previous = results;
          await route.fulfill({ response: res, json: body });
        } catch {
          await route.abort().catch(() => undefined);
        }
      },
    );
    const ja4 = (name: string) =>
      page.$$eval('#ja4 tr', (trs, n) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)).find((r) => r[0] === n)?.[1] ?? '0', name);
    const expectJa4 = async (name: string, want: string) => {
      try {
        await page.waitForFunction(
          ([n, w]) =>
            ([...document.querySelectorAll('#ja4 tr')].map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)).find((r) => r[0] === n)?.[1] ??
              '0') === w,
          [name, want] as const,
          { timeout: 15_000, polling: 50 },
        );
      } catch {
        assert.fail(`${name} should count ${want}; it counts ${await ja4(name)}`);
      }
    };
    const num = async (sel: string) => Number((await textOf(page, sel)).replace(/,/g, ''));
    try {
      await login(page, 'correlated');
      await expectJa4('rev_jx', '3');
      await expectJa4('rev_old', '2');
      // Five minutes ago is where the record of five minutes ago shows, not this minute (it has no received_at).
      const title = await page.evaluate(
        (m) => {
          const label = new Date(m * 60000).toTimeString().slice(0, 5) + ':';
          return [...document.querySelectorAll('#rate .col')].map((c) => c.getAttribute('title') ?? '').find((t) => t.startsWith(label)) ?? '';
        },
        Math.floor(fiveAgo / 60_000),
      );
      assert.match(title, /: 1 documents, 1 correlated, 0 orphans$/);
      const corr0 = await num('#correlated');
      const orph0 = await num('#orphans');

      // Live: p1 corrected (now correlated, another fingerprint), p2 deleted, n1 written then corrected, n2 written.
      await write([{ ...rec('A-p1', true, 'rev_jy', now, 2) }, { _id: 'A-p2', _deleted: true, revision: 2, decided_at: iso((decided += 10)) }]);
      await write([rec('A-n1', true, 'rev_jy', now)]);
      await expectJa4('rev_jy', '2');
      await write([rec('A-n1', false, null, now, 2), rec('A-n2', true, 'rev_jy', now)]);
      await expectJa4('rev_jy', '2');
      await expectJa4('rev_jx', '1');
      await expectText(page, '#correlated', String(corr0 + 1), 15_000);
      await expectText(page, '#orphans', String(orph0), 15_000);
      // Still so once the page has settled (later answers, the view read again): on a CouchDB cluster, whose
      // sequences tell nothing, a change delivered again may count twice until the view is read again.
      await new Promise((ok) => setTimeout(ok, 1500));
      await expectJa4('rev_jx', '1');
      await expectJa4('rev_jy', '2');
      await expectText(page, '#correlated', String(corr0 + 1), 15_000);
      await expectText(page, '#orphans', String(orph0), 15_000);
    } finally {
      await context.close();
    }
  });

  test('one long poll per page: two dashboards fit an account limited to two feeds; a third waits as Retry-After says, and says why', async () => {
    const contexts = [];
    let refused = 0;
    try {
      const open = async () => {
        const context = await hb.browser.newContext({ viewport: { width: 800, height: 600 } });
        contexts.push(context);
        const page = await context.newPage();
        page.on('response', (r) => {
          if (r.status() === 429) refused++;
        });
        await login(page, 'feeds');
      };
      await Promise.all([open(), open()]);
      await new Promise((ok) => setTimeout(ok, 1000));
      assert.equal(refused, 0, 'two pages hold two feeds, one each');
      const context = await hb.browser.newContext({ viewport: { width: 800, height: 600 } });
      contexts.push(context);
      const page = await context.newPage();
      const polls: number[] = [];
      page.on('request', (r) => {
        if (r.url().includes('feed=longpoll')) polls.push(Date.now());
      });
      await login(page, 'feeds', { user: stack.config.users.reader.user, password: stack.config.users.reader.password!, live: false });
      await page.waitForFunction(() => /too many open dashboards for this account/.test(document.getElementById('status')?.textContent ?? ''), undefined, {
        timeout: 10_000,
        polling: 50,
      });
      const first = polls[0]!;
      await new Promise((ok) => setTimeout(ok, 3000));
      const inWindow = polls.filter((t) => t - first < 3000).length;
      // Retry-After is 2 s here: at most 2 tries in 3 s (it made about 2 a second).
      assert.ok(inWindow <= 2, `${inWindow} long polls in 3 s`);
      // A place frees: the waiting page goes live by itself.
      await contexts.shift()!.close();
      const freed = Date.now();
      await waitStatus(page, 'live', 15_000);
      process.stdout.write(
        `# dashboard: a third page on an account of two feeds tried ${inWindow} times in 3 s, live ${Date.now() - freed} ms after a place freed\n`,
      );
    } finally {
      for (const c of contexts) await c.close();
    }
  });

  test('an account without the reader role is sent back to the login form, told why', async () => {
    const user = 'dashboard-outsider';
    const password = 'outsider-password-123';
    const res = await http(`${stack.couchUrl}/_users/org.couchdb.user:${user}`, {
      method: 'PUT',
      headers: { ...JSON_TYPE, authorization: stack.auth.admin },
      body: JSON.stringify({ name: user, password, roles: [], type: 'user' }),
    });
    assert.equal(res.status, 201, res.text);
    const context = await hb.browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    try {
      await login(page, 'web', { user, password, live: false });
      await page.waitForFunction(() => /cannot read logs/.test(document.getElementById('login-message')?.textContent ?? ''), undefined, {
        timeout: 10_000,
        polling: 50,
      });
      assert.equal(await page.isVisible('#login-form'), true);
      assert.equal(await page.isVisible('#board'), false);
    } finally {
      await context.close();
    }
  });

  test('on a phone: the page fits the screen', async () => {
    const context = await hb.browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    const page = await context.newPage();
    try {
      await post('web', [{ message: 'hello from a phone test' }]);
      await login(page, 'web');
      await page.waitForSelector('#latest li[data-id]');
      const w = await page.evaluate(() => ({ doc: document.documentElement.scrollWidth, view: window.innerWidth }));
      assert.ok(w.doc <= w.view, `fits: ${JSON.stringify(w)}`);
      await page.screenshot({ path: hb.shot('web-phone'), fullPage: true });
    } finally {
      await context.close();
    }
  });

  test('with 100,000 documents in the database it opens at once and stays live', async () => {
    // Written straight into CouchDB as the admin, in big batches: the
    // dashboard is what is measured here, not the ingress.
    const day = today();
    const BATCH = 10_000;
    // Without the append-only validator meanwhile (CouchDB 3 runs it in
    // JavaScript for every document: 100,000 would take most of a minute).
    const ddocUrl = `${stack.couchUrl}/log_bulk/_design/couchlog`;
    const admin = { authorization: stack.auth.admin };
    const validator = (await http(ddocUrl, { headers: admin })).json;
    assert.equal((await http(`${ddocUrl}?rev=${validator._rev}`, { method: 'DELETE', headers: admin })).status, 200);
    for (let b = 0; b < 10; b++) {
      const docs = Array.from({ length: BATCH }, (_, i) => {
        const n = b * BATCH + i;
        return {
          date: day,
          hour: '09:00:00,000',
          process: 'sshd',
          machine: `m${n % 5}`,
          ip: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
          received_at: new Date().toISOString(),
        };
      });
      const res = await http(`${stack.couchUrl}/log_bulk/_bulk_docs`, {
        method: 'POST',
        headers: { ...JSON_TYPE, authorization: stack.auth.admin },
        body: JSON.stringify({ docs }),
      });
      assert.equal(res.status, 201, res.text.slice(0, 200));
    }
    const { _rev: _, ...restored } = validator;
    assert.equal((await http(ddocUrl, { method: 'PUT', headers: { ...admin, ...JSON_TYPE }, body: JSON.stringify(restored) })).status, 201);
    const context = await hb.browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    try {
      const opened = Date.now();
      await login(page, 'bulk', { user: stack.config.users.reader.user, password: stack.config.users.reader.password!, live: false });
      await waitStatus(page, 'live', 30_000);
      await expectText(page, '#doc-count', '100,000', 10_000);
      const liveMs = Date.now() - opened;
      await page.waitForSelector('#latest:not([aria-busy])', { state: 'attached', timeout: 30_000 });
      const openMs = Date.now() - opened;
      assert.ok(openMs < 30_000, `opened in ${openMs} ms`);
      // The main thread is free: a round trip into the page is quick. The best of five, under a
      // second: one slow trip is the machine's load (a CI run of c02df66 had one over 500 ms), a
      // page busy with 100,000 documents is slow every time.
      const trips: number[] = [];
      for (let i = 0; i < 5 && !trips.some((ms) => ms < 1000); i++) {
        const t0 = Date.now();
        await page.evaluate(() => document.querySelectorAll('#latest li').length);
        trips.push(Date.now() - t0);
      }
      assert.ok(
        trips.some((ms) => ms < 1000),
        `the page answers at once: ${trips.join(', ')} ms`,
      );
      // The list fills in once the page is live: only the latest 50.
      await page.waitForFunction(() => document.querySelectorAll('#latest li[data-id]').length === 50, undefined, { timeout: 10_000, polling: 50 });
      assert.equal(await page.locator('#latest li').count(), 50, 'only the latest 50 are shown');
      await post('bulk', [{ date: day, hour: '11:00:00,000', process: 'sshd', machine: 'm0', ip: '203.0.113.7' }]);
      await expectText(page, '#doc-count', '100,001', 10_000);
      assert.match(await textOf(page, '#latest li:first-child code'), /203\.0\.113\.7/);
      // The bulk load's minute (this one, or the last one if the clock turned) was only partly loaded, and says so.
      const minutes = [await textOf(page, '#this-minute'), await textOf(page, '#last-minute')];
      assert.ok(
        minutes.some((m) => /^[\d,]+\+$/.test(m)),
        `a minute only partly loaded says so: ${minutes}`,
      );
      // PouchDB Server indexes slowly: the day's totals wait for its index,
      // and the page says so. CouchDB 3 builds it in seconds: exact totals.
      const note = await textOf(page, '#index-note');
      if (note === '') await expectText(page, '#bans-today', '100,001', 15_000);
      else assert.match(note, /report (index building: [\d,]+ documents behind|totals loading)/);
      await page.screenshot({ path: hb.shot('bulk-100k'), fullPage: true });
      process.stdout.write(`# dashboard with 100,000 documents: live in ${liveMs} ms, the newest 500 documents read in ${openMs} ms\n`);
    } finally {
      await context.close();
    }
  });
});
