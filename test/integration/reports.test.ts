// Reports end to end on the embedded server (or CouchDB 3 when the test
// run names one): fail2ban documents with known counts go in through the
// ingress; the views at group levels 1, 4 and 5, the CSV list, `couchlog
// report` and the HTML page in headless Chromium (playwright-core driving
// Debian's chromium) all show exactly those counts, and the page and the
// CLI say the same caption.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { launchBrowser, type HeadlessBrowser } from '../helpers/browser.js';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startStack, http, type Stack } from '../helpers/stack.js';

const run = promisify(execFile);
const CLI = join(resolve(fileURLToPath(import.meta.url), '../../../..'), 'dist/scripts/couchlog.js');

/** [machine, date, ip, how many bans]: crosses a month and a year boundary. */
const BANS: Array<[string, string, string, number]> = [
  ['server', '2017-06-11', '52.166.126.64', 5],
  ['server', '2017-06-11', '59.45.175.88', 2],
  ['server', '2017-06-12', '52.166.126.64', 1],
  ['server', '2017-06-30', '61.177.172.13', 3],
  ['server', '2017-07-01', '61.177.172.13', 4],
  ['web', '2017-12-31', '185.220.101.4', 2],
  ['web', '2018-01-01', '185.220.101.4', 6],
];

let stack: Stack;
let reader: Record<string, string>;

before(async () => {
  stack = await startStack();
  reader = { authorization: stack.auth.reader };
  const lines: string[] = [];
  for (const [machine, date, ip, n] of BANS) {
    for (let i = 0; i < n; i++) lines.push(JSON.stringify({ date, hour: `0${i}:26:02,022`, process: 'sshd', machine, ip }));
  }
  lines.push(JSON.stringify({ message: 'not a fail2ban document' }));
  const res = await http(`${stack.url}/log_fail2ban`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: lines.join('\n') });
  assert.equal(res.status, 201);
});
after(async () => {
  await stack?.stop();
});

function expected(level: number): Array<[unknown[], number]> {
  const m = new Map<string, [unknown[], number]>();
  for (const [machine, date, ip, n] of BANS) {
    const [y, mo, d] = date.split('-').map(Number);
    const key = [machine, y, mo, d, ip].slice(0, level);
    const id = JSON.stringify(key);
    const g = m.get(id);
    if (g) g[1] += n;
    else m.set(id, [key, n]);
  }
  return [...m.values()];
}

async function view(name: string, level: number): Promise<Array<[unknown[], number]>> {
  const res = await http(`${stack.url}/log_fail2ban/_design/report/_view/${name}?group_level=${level}`, { headers: reader });
  assert.equal(res.status, 200, res.text);
  return res.json.rows.map((r: { key: unknown[]; value: number }) => [r.key, r.value]);
}

describe('views through the ingress', () => {
  test('attacks at group level 1: per machine', async () => {
    assert.deepEqual(await view('attacks', 1), [
      [['server'], 15],
      [['web'], 8],
    ]);
  });

  test('attacks at group level 4: per day, true calendar dates', async () => {
    assert.deepEqual(await view('attacks', 4), [
      [['server', 2017, 6, 11], 7],
      [['server', 2017, 6, 12], 1],
      [['server', 2017, 6, 30], 3],
      [['server', 2017, 7, 1], 4],
      [['web', 2017, 12, 31], 2],
      [['web', 2018, 1, 1], 6],
    ]);
  });

  test('attackers at group level 5: each IP with its count', async () => {
    assert.deepEqual(await view('attackers', 5), expected(5));
  });

  test('attackers with reduce=false lists each attack with its process', async () => {
    const res = await http(`${stack.url}/log_fail2ban/_design/report/_view/attackers?reduce=false`, { headers: reader });
    assert.equal(res.json.rows.length, 23);
    assert.ok(res.json.rows.every((r: { value: unknown; id: string }) => r.value === 'sshd' && typeof r.id === 'string'));
  });

  test('by_time is in every log database', async () => {
    const res = await http(`${stack.url}/log_appname/_design/logs/_view/by_time?group_level=3`, { headers: reader });
    assert.equal(res.status, 200);
    const f2b = await http(`${stack.url}/log_fail2ban/_design/logs/_view/by_time?group_level=3`, { headers: reader });
    const total = f2b.json.rows.reduce((s: number, r: { value: number }) => s + r.value, 0);
    assert.equal(total, 24, 'every document counted once, the foreign one by received_at');
  });

  test('the CSV list parses back to the same numbers', async () => {
    const res = await http(`${stack.url}/log_fail2ban/_design/report/_list/csv/attackers?group_level=5`, { headers: reader });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /text\/csv/);
    const [header, ...rows] = res.text.trim().split('\r\n');
    assert.equal(header, 'machine,date,ip,attacks');
    const parsed = rows.map((line) => {
      const c = line.split(',');
      const [y, m, d] = c[1]!.split('-').map(Number);
      return [[c[0], y, m, d, c[2]], Number(c[3])];
    });
    assert.deepEqual(parsed, expected(5));
  });

  test('the CSV list takes top, from and to, as the CLI does', async () => {
    const res = await http(`${stack.url}/log_fail2ban/_design/report/_list/csv/attackers?group_level=5&top=2&from=2017-06-11&to=2017-06-30`, {
      headers: reader,
    });
    assert.equal(res.text, 'machine,date,ip,attacks\r\nserver,2017-06-11,52.166.126.64,5\r\nserver,2017-06-30,61.177.172.13,3\r\n');
  });

  test('anonymous callers cannot read views or lists', async () => {
    assert.equal((await http(`${stack.url}/log_fail2ban/_design/report/_view/attacks?group_level=1`)).status, 401);
    assert.equal((await http(`${stack.url}/log_fail2ban/_design/report/_list/html/attacks?group_level=4`)).status, 401);
  });
});

describe('couchlog report', () => {
  const cli = (...args: string[]) =>
    run(process.execPath, [CLI, ...args], {
      env: { ...process.env, COUCHLOG_DATA: stack.dataDir, COUCHLOG_INGRESS_PORT: String(stack.config.ingress.port), COUCHLOG_CONFIG: '' },
      cwd: stack.dataDir,
    });

  test('prints an aligned table with a bar per row', async () => {
    const { stdout } = await cli('report', 'attacks', '--app', 'fail2ban', '--group-level', '4');
    const lines = stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^machine\s+year\s+month\s+day\s+attacks$/);
    assert.match(lines[2]!, /^server\s+2017\s+6\s+11\s+7\s+█+/);
    assert.match(lines[7]!, /^web\s+2018\s+1\s+1\s+6\s+█+/);
    assert.equal(lines.at(-1), '6 rows, 23 bans, 2017-06-11 – 2018-01-01');
    const bars = lines.slice(2, 8).map((l) => l.split('  ').at(-1)!);
    assert.ok(bars[0]!.length > bars[1]!.length, 'bars scale with the counts');
  });

  test('--top: the same caption as the report page', async () => {
    const { stdout } = await cli('report', 'attackers', '--app', 'fail2ban', '--group-level', '5', '--top', '2');
    const caption = 'top 2 of 7 attackers, 23 bans, 2017-06-11 – 2018-01-01';
    assert.equal(stdout.trimEnd().split('\n').at(-1), caption);
    const page = await http(`${stack.url}/log_fail2ban/_design/report/_list/html/attackers?group_level=5&top=2`, { headers: reader });
    assert.ok(page.text.includes(`<p class="caption" id="caption">${caption}</p>`), 'the page says the same');
    assert.ok(page.text.includes('couchlog report attackers --app fail2ban --group-level 5 --top 2</code>'), 'the command line, plain');
  });

  test("the page's command line quotes what the URL gave: a crafted link cannot put a command in it", async () => {
    // Found by a black-box test: ?from=$(touch /tmp/pwned) was shown as --from $(touch /tmp/pwned).
    const q = `group_level=5&from=${encodeURIComponent('$(touch /tmp/pwned)')}&top=${encodeURIComponent('1;id')}&to=${encodeURIComponent("it's")}`;
    const page = await http(`${stack.url}/log_fail2ban/_design/report/_list/html/attackers?${q}`, { headers: reader });
    assert.equal(page.status, 200, page.text.slice(0, 300));
    const line = /The terminal: <code>([^<]*)<\/code>/.exec(page.text)?.[1];
    assert.equal(line, "couchlog report attackers --app fail2ban --group-level 5 --top '1;id' --from '$(touch /tmp/pwned)' --to 'it'\\''s'");
  });

  test('--format csv, --from/--to and --top', async () => {
    const june = await cli('report', 'attacks', '--app', 'fail2ban', '--group-level', '1', '--from', '2017-06-12', '--to', '2017-07-01', '--format', 'csv');
    assert.equal(june.stdout, 'machine,attacks\nserver,8\n');
    const top = await cli('report', 'attackers', '--app', 'fail2ban', '--group-level', '5', '--top', '2', '--format', 'json');
    assert.deepEqual(
      JSON.parse(top.stdout).map((r: { ip: string; attacks: number }) => [r.ip, r.attacks]),
      [
        ['185.220.101.4', 6],
        ['52.166.126.64', 5],
      ],
    );
  });

  test('a missing database, a missing view and bad credentials: one line, non-zero exit', async () => {
    const fails = async (args: string[], pattern: RegExp, env: Record<string, string> = {}, oneLine = true) => {
      const err = await run(process.execPath, [CLI, ...args], {
        env: { ...process.env, COUCHLOG_DATA: stack.dataDir, COUCHLOG_INGRESS_PORT: String(stack.config.ingress.port), COUCHLOG_CONFIG: '', ...env },
        cwd: stack.dataDir,
      }).then(
        () => assert.fail('should have failed'),
        (e: { code: number; stderr: string }) => e,
      );
      assert.ok(err.code > 0);
      assert.match(err.stderr, pattern);
      if (oneLine) assert.equal(err.stderr.trim().split('\n').length, 1, err.stderr);
    };
    await fails(['report', 'attacks', '--app', 'nosuchapp'], /database log_nosuchapp does not exist/);
    await fails(['report', 'attacks', '--app', 'appname'], /log_appname has no view attacks/);
    await fails(['report', 'attacks', '--app', 'fail2ban'], /reader account was refused/, { COUCHLOG_READER_PASSWORD: 'not-the-password' });
    await fails(['report', 'nosuchview', '--app', 'fail2ban'], /unknown view "nosuchview"/);
    // Found by a black-box test: these were checked only after the view answered (minutes on a large
    // database), or blamed the reader's password. With nothing listening at --url, a usage error
    // shows that nothing was asked.
    const dead = ['--url', 'http://127.0.0.1:1'];
    await fails(['report', 'attacks', '--app', 'FAIL2BAN', ...dead], /--app must be an app name/);
    await fails(['report', 'attacks', '--app', '../_users', ...dead], /--app must be an app name/);
    await fails(['report', 'by_time', '--app', 'appname', '--from', '2017-13-45', ...dead], /--from must be a date as YYYY-MM-DD/);
    await fails(['report', 'by_time', '--app', 'appname', '--from', '2018-01-02', '--to', '2018-01-01', ...dead], /is after --to/);
    // Option values commander refuses come with the command's usage.
    await fails(['report', 'attacks', '--app', 'fail2ban', '--top', '0', ...dead], /--top must be a positive integer/, {}, false);
    await fails(['report', 'attacks', '--app', 'fail2ban', '--top', '-3', ...dead], /--top must be a positive integer/, {}, false);
  });
});

describe('the HTML page in headless Chromium', () => {
  let hb: HeadlessBrowser;
  before(async () => {
    hb = await launchBrowser('reports');
  });
  after(async () => {
    await hb?.close();
  });

  async function open(query: string, viewport = { width: 1280, height: 800 }) {
    const context = await hb.browser.newContext({ viewport, extraHTTPHeaders: { authorization: stack.auth.reader } });
    const page = await context.newPage();
    // Self-contained: nothing but the page itself is fetched.
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    const res = await page.goto(`${stack.url}/log_fail2ban/_design/report/_list/html/${query}`);
    assert.equal(res?.status(), 200);
    return { page, context, requests };
  }
  const column = (page: Page, i: number) => page.$$eval(`tbody tr td:nth-child(${i})`, (tds) => tds.map((td) => td.textContent));

  test('sorting by a column, top and a caption; IPs as addresses; no "null"; numbers right, text left', async () => {
    const { page, context, requests } = await open('attackers?group_level=5');
    try {
      assert.equal(await page.textContent('#caption'), '7 attackers, 23 bans, 2017-06-11 – 2018-01-01');
      assert.deepEqual(requests, [`${stack.url}/log_fail2ban/_design/report/_list/html/attackers?group_level=5`], 'no other request');
      const text = (await page.textContent('body'))!;
      assert.ok(!text.includes('null'), 'no "null" on the page');
      assert.deepEqual(await page.$$eval('th', (ths) => ths.map((th) => th.textContent)), ['machine', 'date', 'ip', 'attacks', '']);
      assert.equal(await page.$eval('tbody td:nth-child(2)', (td) => td.textContent), '2017-06-11', 'ISO dates');
      const align = await page.$$eval('tbody tr:first-child td', (tds) => tds.slice(0, 4).map((td) => getComputedStyle(td).textAlign));
      assert.deepEqual(align, ['left', 'left', 'left', 'right']);
      await page.screenshot({ path: hb.shot('attackers-1280'), fullPage: true });

      // Sort by ip: as addresses (52.x before 185.x), then the other way.
      await page.click('th[data-col="ip"] a');
      const ips = await column(page, 3);
      assert.deepEqual(
        ips,
        [...ips].sort((a, b) => ipNumber(a!) - ipNumber(b!)),
        `ascending as addresses: ${ips}`,
      );
      assert.equal(ips.at(-1), '185.220.101.4');
      await page.click('th[data-col="ip"] a');
      assert.equal((await column(page, 3))[0], '185.220.101.4', 'descending');
      // Sort by count, highest first.
      await page.click('th[data-col="attacks"] a');
      assert.deepEqual(await column(page, 4), ['6', '5', '4', '3', '2', '2', '1']);
    } finally {
      await context.close();
    }
  });

  test('top 2 from the form: the caption says what is shown', async () => {
    const { page, context } = await open('attackers?group_level=5');
    try {
      await page.fill('input[name="top"]', '2');
      await page.click('button[type="submit"]');
      await page.waitForURL(/top=2/);
      assert.equal(await page.textContent('#caption'), 'top 2 of 7 attackers, 23 bans, 2017-06-11 – 2018-01-01');
      assert.deepEqual(await column(page, 4), ['6', '5']);
      await page.fill('input[name="from"]', '2017-06-11');
      await page.fill('input[name="to"]', '2017-06-30');
      await page.click('button[type="submit"]');
      await page.waitForURL(/from=2017-06-11/);
      assert.equal(await page.textContent('#caption'), 'top 2 of 4 attackers, 11 bans, 2017-06-11 – 2017-06-30');
    } finally {
      await context.close();
    }
  });

  test('no group level: one total, not a "null" row', async () => {
    const { page, context } = await open('attacks');
    try {
      assert.equal(await page.textContent('#caption'), '23 bans');
      assert.ok(!(await page.textContent('body'))!.includes('null'));
    } finally {
      await context.close();
    }
  });

  test('readable on a phone: nothing wider than the screen but the table, which scrolls', async () => {
    const { page, context } = await open('attackers?group_level=5', { width: 390, height: 844 });
    try {
      const widths = await page.evaluate(() => ({
        doc: document.documentElement.scrollWidth,
        view: window.innerWidth,
        font: parseFloat(getComputedStyle(document.querySelector('td')!).fontSize),
      }));
      assert.ok(widths.doc <= widths.view, `the page fits the screen: ${JSON.stringify(widths)}`);
      assert.ok(widths.font >= 12, 'text stays readable');
      await page.screenshot({ path: hb.shot('attackers-phone'), fullPage: true });
      assert.ok(statSync(hb.shot('attackers-phone')).size > 1000);
    } finally {
      await context.close();
    }
  });
});

function ipNumber(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}
