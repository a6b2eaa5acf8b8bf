// Reports end to end on the embedded server: fail2ban documents with known
// counts go in through the ingress; the views at group levels 1, 4 and 5,
// the CSV list, `couchlog report` and the HTML page in headless Chromium
// all show exactly those counts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startStack, http, JSON_TYPE, type Stack } from '../helpers/stack.js';

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
    assert.equal(header, 'machine,year,month,day,ip,attacks');
    const parsed = rows.map((line) => {
      const c = line.split(',');
      return [[c[0], Number(c[1]), Number(c[2]), Number(c[3]), c[4]], Number(c[5])];
    });
    assert.deepEqual(parsed, expected(5));
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
    assert.equal(lines.at(-1), '6 rows, total 23');
    const bars = lines.slice(2, 8).map((l) => l.split('  ').at(-1)!);
    assert.ok(bars[0]!.length > bars[1]!.length, 'bars scale with the counts');
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
    const fails = async (args: string[], pattern: RegExp, env: Record<string, string> = {}) => {
      const err = await run(process.execPath, [CLI, ...args], {
        env: { ...process.env, COUCHLOG_DATA: stack.dataDir, COUCHLOG_INGRESS_PORT: String(stack.config.ingress.port), COUCHLOG_CONFIG: '', ...env },
        cwd: stack.dataDir,
      }).then(
        () => assert.fail('should have failed'),
        (e: { code: number; stderr: string }) => e,
      );
      assert.ok(err.code > 0);
      assert.match(err.stderr, pattern);
      assert.equal(err.stderr.trim().split('\n').length, 1, err.stderr);
    };
    await fails(['report', 'attacks', '--app', 'nosuchapp'], /database log_nosuchapp does not exist/);
    await fails(['report', 'attacks', '--app', 'appname'], /log_appname has no view attacks/);
    await fails(['report', 'attacks', '--app', 'fail2ban'], /reader account was refused/, { COUCHLOG_READER_PASSWORD: 'not-the-password' });
    await fails(['report', 'nosuchview', '--app', 'fail2ban'], /unknown view "nosuchview"/);
  });
});

describe('the HTML page in headless Chromium', () => {
  test('renders, with one SVG bar per row, and a screenshot is written', async () => {
    const res = await http(`${stack.url}/log_fail2ban/_design/report/_list/html/attacks?group_level=4`, { headers: reader });
    assert.equal(res.status, 200);
    const dir = mkdtempSync(join(tmpdir(), 'couchlog-html-'));
    try {
      // Self-contained, so the saved page renders exactly as served.
      const page = join(dir, 'attacks.html');
      writeFileSync(page, res.text);
      const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', `--user-data-dir=${join(dir, 'profile')}`];
      const { stdout: dom } = await run('chromium', [...flags, '--dump-dom', `file://${page}`], { maxBuffer: 10 * 1024 * 1024 });
      assert.equal(dom.match(/<rect class="bar"/g)?.length, 6, 'one bar per row');
      assert.match(dom, /<td>server<\/td>/);
      const shot = join(dir, 'attacks.png');
      await run('chromium', [...flags, `--screenshot=${shot}`, '--window-size=1000,400', `file://${page}`]);
      assert.ok(statSync(shot).size > 1000, 'a screenshot was written');
      assert.deepEqual([...readFileSync(shot).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'it is a PNG');
      process.stdout.write(`# screenshot: ${shot}\n`);
    } finally {
      if (!process.env.KEEP_SCREENSHOTS) rmSync(dir, { recursive: true, force: true });
    }
  });
});
