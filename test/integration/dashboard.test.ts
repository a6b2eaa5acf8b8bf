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
      },
    },
  });
  hb = await launchBrowser('dashboard');
});
after(async () => {
  await hb?.close();
  await stack?.stop();
});

/** Today in the browser's (and this machine's) time zone, as fail2ban writes it. */
function today(): string {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

async function post(app: string, docs: object[]): Promise<void> {
  const res = await http(`${stack.url}/log_${app}`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify(docs) });
  assert.equal(res.status, 201, res.text);
}

async function login(page: Page, app: string): Promise<void> {
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
  await page.fill('#name', stack.config.users.reader.user);
  await page.fill('#password', stack.config.users.reader.password!);
  await page.click('#login-form button[type="submit"]');
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'live', undefined, { timeout: 10_000 });
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
      const minutes = Number(await textOf(page, '#this-minute')) + Number(await textOf(page, '#last-minute'));
      assert.equal(minutes, 301, 'this minute and the last hold the 301 documents, each once');
      assert.equal(await page.locator('#latest li', { hasText: '198.51.100.99' }).count(), 1, 'listed once');
      const machines = await page.$$eval('#machines tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(0, 2).map((td) => td.textContent)));
      assert.equal(machines.length, 20, 'the top 20 machines');
      assert.deepEqual(machines[0], ['m000', '3']);
      assert.ok(
        machines.slice(1).every(([, n]) => n === '2'),
        JSON.stringify(machines),
      );
      assert.deepEqual(await page.$$eval('#attackers tr:first-child td', (tds) => tds.slice(0, 2).map((td) => td.textContent)), ['192.0.2.1', '150']);
      assert.equal(views.length, 1, `one view query, not one per machine: ${views.join(' ')}`);
      assert.match(views[0]!, /_view\/bans_by_day\?/);
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
      await login(page, 'bulk');
      await expectText(page, '#doc-count', '100,000', 10_000);
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
      process.stdout.write(`# dashboard with 100,000 documents: live in ${openMs} ms\n`);
    } finally {
      await context.close();
    }
  });
});
