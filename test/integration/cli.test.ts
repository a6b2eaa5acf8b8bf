// The couchlog command as a newcomer runs it: `couchlog up` (what npm start
// runs) brings everything up and prints how to try it, the seed's three
// curl checks pass against it, SIGTERM stops it cleanly, and no password
// ever appears in its output. Bad configuration is a clear exit code 2.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { embeddedOnly, freePort, http, JSON_TYPE, serverIndependent } from '../helpers/stack.js';

// `couchlog up` starts the embedded server itself: nothing to learn from it on a CouchDB 3 run.
const UP_SKIP = embeddedOnly('couchlog up (npm start) runs its own embedded server');
const CONFIG_SKIP = serverIndependent('the configuration loader and the command line');
import { loadConfig } from '../../lib/config/load.js';
import { readSecretsFile, SECRET_KEYS } from '../../lib/config/secrets.js';
import { findClickhouseServer } from '../../embedded/clickhouse-server.js';
import { createServer } from 'node:http';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');
const CLI = join(ROOT, 'dist/scripts/couchlog.js');

describe('couchlog up', { skip: UP_SKIP }, () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let child: ChildProcess;
  let outputOf: () => string;
  let ingress: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'couchlog-cli-'));
    ({ env, ingress } = await upEnv(dir));
    ({ child, output: outputOf } = await startUp(dir, env));
  });
  after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  /** Without a terminal the banner is one JSON log line: its text. */
  const banner = (): string => {
    for (const line of outputOf().split('\n')) {
      if (!line.startsWith('{')) continue;
      const parsed = JSON.parse(line) as { banner?: string };
      if (typeof parsed.banner === 'string') return parsed.banner;
    }
    assert.fail(`no JSON line with the banner:\n${outputOf()}`);
  };

  test('prints where everything listens and the curl lines to try', () => {
    assert.match(banner(), new RegExp(`ingress\\s+${ingress}`));
    assert.match(banner(), /curl -X POST http:\/\/127\.0\.0\.1:\d+\/log_appname\/ -d '\{ "foo" : "foo" \}'/);
    assert.match(banner(), /secrets\.env/);
  });

  test('the banner lists Fauxton, the dashboard, health, metrics and the report pages', () => {
    const out = banner();
    assert.match(out, new RegExp(`Fauxton\\s+${ingress}/_utils/`));
    assert.match(out, new RegExp(`dashboard\\s+${ingress}/_couchlog/dashboard/fail2ban`));
    assert.match(out, new RegExp(`health\\s+${ingress}/_couchlog/health`));
    assert.match(out, new RegExp(`metrics\\s+${ingress}/_couchlog/metrics`));
    assert.ok(out.includes(`${ingress}/log_fail2ban/_design/report/_list/html/attackers?group_level=5&top=10`));
    assert.ok(out.includes(`${ingress}/log_appname/_design/logs/_list/html/by_time?group_level=3`));
    assert.match(out, /passwords\s+admin, writer, reader, correlator in \.\/data\/secrets\.env \(mode 0600\)/);
  });

  test('the seed curl checks pass', async () => {
    const post = await http(`${ingress}/log_appname/`, { method: 'POST', headers: JSON_TYPE, body: '{ "foo" : "foo" }' });
    assert.equal(post.status, 201);
    assert.equal((await http(`${ingress}/log_appname/_all_docs`)).status, 401);
    const secrets = readSecretsFile(join(dir, 'data'));
    const auth = `Basic ${Buffer.from(`reader:${secrets.COUCHLOG_READER_PASSWORD}`).toString('base64')}`;
    const read = await http(`${ingress}/log_appname/_all_docs`, { headers: { authorization: auth } });
    assert.equal(read.status, 200);
    assert.ok(read.json.rows.some((r: { id: string }) => r.id === post.json.id));
  });

  test('without a terminal the logs are JSON lines: one per request, one "pid" key', async () => {
    // Each request is told apart by its X-Request-Id (kept by the ingress as reqId).
    const id = (n: number) => ({ 'x-request-id': `jsonlines-${n}` });
    await http(`${ingress}/log_appname/`, { method: 'POST', headers: { ...JSON_TYPE, ...id(1) }, body: '{"n":1}' });
    await http(`${ingress}/log_appname/_all_docs`, {
      headers: { ...id(2), authorization: 'Basic ' + Buffer.from('reader:wrong-password').toString('base64') },
    });
    const secrets = readSecretsFile(join(dir, 'data'));
    const auth = `Basic ${Buffer.from(`reader:${secrets.COUCHLOG_READER_PASSWORD}`).toString('base64')}`;
    await http(`${ingress}/log_appname/_all_docs`, { headers: { ...id(3), authorization: auth } });
    await logged(() => outputOf().includes('"reqId":"jsonlines-3"'));
    const lines = outputOf()
      .split('\n')
      .filter((l) => l.startsWith('{'));
    assert.ok(lines.length > 3);
    // The banner too (found by a newcomer's test: 24 of 68 lines were its plain text).
    assert.ok(
      outputOf()
        .split('\n')
        .filter((l) => l.includes('Ctrl-C stops everything'))
        .every((l) => l.startsWith('{')),
      'the banner is a JSON line',
    );
    for (const line of lines) {
      assert.doesNotThrow(() => JSON.parse(line), `not a JSON line: ${line}`);
      assert.ok((line.match(/"pid":/g) ?? []).length <= 1, `duplicate pid: ${line}`);
    }
    const requests = lines.map((l) => JSON.parse(l)).filter((l) => String(l.reqId).startsWith('jsonlines-'));
    assert.deepEqual(
      requests.map((l) => [l.reqId, l.http.method, l.http.url, l.http.status]),
      [
        ['jsonlines-1', 'POST', '/log_appname/', 201],
        ['jsonlines-2', 'GET', '/log_appname/_all_docs', 401],
        ['jsonlines-3', 'GET', '/log_appname/_all_docs', 200],
      ],
      'exactly one line per request, proxied ones included',
    );
    assert.equal(requests[2].msg, 'GET /log_appname/_all_docs 200 ' + requests[2].http.ms + ' ms');
  });

  test('generated passwords are stored with mode 0600 and never printed', () => {
    const file = join(dir, 'data', 'secrets.env');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const secrets = readSecretsFile(join(dir, 'data'));
    // Every account's, the embedded ClickHouse's, and the key of tagged ids.
    assert.deepEqual(Object.keys(secrets).sort(), [...Object.values(SECRET_KEYS), 'CLICKHOUSE_PASSWORD', 'COUCHLOG_ID_TAG_KEY'].sort());
    for (const value of Object.values(secrets)) assert.ok(!outputOf().includes(value), 'a password appeared in the output');
  });

  test('SIGTERM stops everything cleanly', async () => {
    const code = await new Promise<number | null>((ok) => {
      child.on('exit', (c) => ok(c));
      child.kill('SIGTERM');
    });
    assert.equal(code, 0);
    await assert.rejects(fetch(`${ingress}/_couchlog/health`), 'the ingress is gone');
    const couch = loadConfig({ env, cwd: dir }).config.couchdb.embedded;
    await assert.rejects(fetch(`http://127.0.0.1:${couch.port}/`), 'the embedded server is gone');
  });

  test('a second start reuses the generated passwords', () => {
    const before0 = readSecretsFile(join(dir, 'data'));
    const { config } = loadConfig({ env, cwd: dir });
    assert.equal(config.users.reader.password, before0.COUCHLOG_READER_PASSWORD);
  });
});

/** Environment for `couchlog up` in `dir`, every port free. */
/**
 * Until `seen()` (the child writes a request's log line after answering it,
 * and a loaded machine may not run it at once), then a moment more for any
 * line that must not be there.
 */
async function logged(seen: () => boolean, timeoutMs = 10_000): Promise<void> {
  for (const until = Date.now() + timeoutMs; !seen() && Date.now() < until;) await new Promise((ok) => setTimeout(ok, 50));
  await new Promise((ok) => setTimeout(ok, 300));
}

async function upEnv(dir: string): Promise<{ env: NodeJS.ProcessEnv; ingress: string }> {
  const ingressPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    COUCHLOG_DATA: join(dir, 'data'),
    COUCHLOG_INGRESS_PORT: String(ingressPort),
    COUCHLOG_COUCHDB_PORT: String(await freePort()),
    // Everything `up` may start gets a port of its own (ClickHouse runs when installed).
    COUCHLOG_CORRELATOR_METRICS_PORT: String(await freePort()),
    COUCHLOG_CLICKHOUSE_HTTP_PORT: String(await freePort()),
    COUCHLOG_CLICKHOUSE_TCP_PORT: String(await freePort()),
  };
  delete env.COUCHLOG_CONFIG;
  return { env, ingress: `http://127.0.0.1:${ingressPort}` };
}

/** Starts `couchlog up` and resolves once it has printed its banner. */
async function startUp(dir: string, env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; output: () => string }> {
  let output = '';
  const child = spawn(process.execPath, [CLI, 'up'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  await new Promise<void>((ok, fail) => {
    // Generous: on a cold machine the first start of each server reads
    // its binaries from disk while other test files load both cores.
    const timer = setTimeout(() => fail(new Error(`no banner after 180 s:\n${output}`)), 180_000);
    const check = () => {
      if (output.includes('Ctrl-C stops everything')) {
        clearTimeout(timer);
        ok();
      }
    };
    child.stdout!.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`exited ${code}:\n${output}`));
    });
  });
  return { child, output: () => output };
}

describe('couchlog up on a terminal (script -qc: a pseudo-terminal)', { skip: UP_SKIP }, () => {
  test('a short human startup ending with the banner, one pretty coloured line per request, Ctrl-C stops it', async (t) => {
    if (spawnSync('script', ['--version']).status !== 0) return t.skip('script(1) from util-linux is not installed');
    const dir = mkdtempSync(join(tmpdir(), 'couchlog-cli-'));
    const { env, ingress } = await upEnv(dir);
    // Every password from the environment: the banner must not send anyone to a secrets file.
    Object.assign(env, {
      COUCHDB_PASSWORD: 'admin-pass-from-env',
      COUCHLOG_WRITER_PASSWORD: 'writer-pass-from-env',
      COUCHLOG_READER_PASSWORD: 'reader-pass-from-env',
      COUCHLOG_CORRELATOR_PASSWORD: 'correlator-pass-from-env',
      CLICKHOUSE_PASSWORD: 'clickhouse-pass-from-env',
      TERM: 'xterm-256color',
    });
    delete env.NO_COLOR;
    let output = '';
    const child = spawn('script', ['-qefc', `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} up`, '/dev/null'], {
      cwd: dir,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    try {
      const started = Date.now();
      while (!/Try it:[\s\S]*--user [^\n]*_all_docs/.test(output)) {
        if (child.exitCode !== null || Date.now() - started > 120_000) assert.fail(`no banner:\n${output}`);
        await new Promise((ok) => setTimeout(ok, 50));
      }
      await new Promise((ok) => setTimeout(ok, 700));
      const startup = output;
      const plain = startup.replace(/\x1b\[[0-9;]*m/g, '').replace(/\r/g, '');
      assert.ok(!plain.includes('{"level"'), `no JSON lines on a terminal:\n${plain}`);
      assert.match(plain, /^couchlog starting \(data in \.\/data\)$/m);
      assert.match(plain, /^ {2}ok {3}CouchDB {5}embedded PouchDB Server on http:\/\/127\.0\.0\.1:\d+$/m);
      assert.match(plain, new RegExp(`^  ok   ingress     ${ingress}$`, 'm'));
      const lines = plain.trimEnd().split('\n');
      assert.ok(lines.length <= 40, `a short startup (${lines.length} lines):\n${plain}`);
      assert.match(lines.at(-1)!, /^ {2}curl --user "reader:\$COUCHLOG_READER_PASSWORD" -X GET \S+\/_all_docs$/, 'the banner ends the output');
      assert.match(plain, /passwords\s+admin, writer, reader, correlator from the environment/);
      assert.ok(!plain.includes('secrets.env'), 'no secrets file is mentioned: none holds these passwords');
      if (findClickhouseServer()) {
        // The embedded ClickHouse has the password: without it, nobody on this machine reads or writes it.
        assert.match(plain, /ClickHouse\s+http:\/\/\S+\s+\(user default, password \$CLICKHOUSE_PASSWORD from the environment\)/);
        const ch = `http://127.0.0.1:${env.COUCHLOG_CLICKHOUSE_HTTP_PORT}/?query=${encodeURIComponent('SELECT count() FROM system.tables')}`;
        const anonymous = await http(ch);
        assert.ok(anonymous.status >= 400, `ClickHouse without a password: ${anonymous.status} ${anonymous.text.slice(0, 200)}`);
        const withPassword = await http(ch, { headers: { authorization: 'Basic ' + Buffer.from('default:clickhouse-pass-from-env').toString('base64') } });
        assert.equal(withPassword.status, 200, withPassword.text.slice(0, 200));
      }
      assert.match(plain, new RegExp(`^  curl --user "reader:\\$COUCHLOG_READER_PASSWORD" -X GET ${ingress}/log_appname/_all_docs`, 'm'));

      await http(`${ingress}/log_appname/`, { method: 'POST', headers: JSON_TYPE, body: '{"n":1}' });
      const read = await http(`${ingress}/log_appname/_all_docs`, {
        headers: { authorization: 'Basic ' + Buffer.from('reader:reader-pass-from-env').toString('base64') },
      });
      assert.equal(read.status, 200);
      await logged(() => (output.slice(startup.length).match(/ingress: GET \/log_appname\/_all_docs/g) ?? []).length >= 1);
      const after0 = output.slice(startup.length);
      assert.match(after0, /\x1b\[\d+m/, 'colour on a terminal');
      const reqLines = after0
        .replace(/\x1b\[[0-9;]*m/g, '')
        .replace(/\r/g, '')
        .split('\n')
        .filter((l) => l.includes('ingress: '));
      assert.equal(reqLines.length, 2, `one line per request:\n${after0}`);
      assert.match(reqLines[0]!, /^\[\d\d:\d\d:\d\d\] INFO: ingress: POST \/log_appname\/ 201 [\d.]+ ms$/);
      assert.match(reqLines[1]!, /^\[\d\d:\d\d:\d\d\] INFO: ingress: GET \/log_appname\/_all_docs 200 [\d.]+ ms$/);

      // Ctrl-C, typed into the terminal.
      const code = await new Promise<number | null>((ok) => {
        child.on('exit', (c) => ok(c));
        child.stdin!.write('\x03');
      });
      assert.equal(code, 0, output);
      await assert.rejects(fetch(`${ingress}/_couchlog/health`), 'the ingress is gone');
    } finally {
      // Killing `script` would leave `couchlog up` (in the terminal's own
      // session) running: type Ctrl-C first, as a user would.
      if (child.exitCode === null) {
        child.stdin!.write('\x03');
        await new Promise<void>((ok) => {
          const t = setTimeout(ok, 15_000);
          child.on('exit', () => {
            clearTimeout(t);
            ok();
          });
        });
      }
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('couchlog up when ClickHouse cannot start', { skip: UP_SKIP }, () => {
  test('intake still comes up, and the banner says why the ClickHouse sink is off', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'couchlog-cli-'));
    const { env, ingress } = await upEnv(dir);
    // Something else already answers on ClickHouse's port.
    const squatter = createServer((_req, res) => res.end('not ClickHouse'));
    await new Promise<void>((ok) => squatter.listen(Number(env.COUCHLOG_CLICKHOUSE_HTTP_PORT), '127.0.0.1', ok));
    const { child, output } = await startUp(dir, env);
    try {
      // Installed (as in CI): its start fails on the taken port. Not
      // installed: it is off for that reason. Either way intake runs.
      const why = findClickhouseServer()
        ? /ClickHouse\s+off: the embedded ClickHouse did not start \(.*already answers.*\): the ClickHouse sink is off/
        : /ClickHouse\s+off: clickhouse-server is not installed/;
      assert.match(output(), why);
      const post = await http(`${ingress}/log_appname/`, { method: 'POST', headers: JSON_TYPE, body: '{ "foo" : "foo" }' });
      assert.equal(post.status, 201);
      const code = await new Promise<number | null>((ok) => {
        child.on('exit', (c) => ok(c));
        child.kill('SIGTERM');
      });
      assert.equal(code, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      squatter.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('configuration errors', { skip: CONFIG_SKIP }, () => {
  test('unknown keys and bad values: exit code 2, every problem with its path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'couchlog-cli-'));
    const file = join(dir, 'bad.yml');
    writeFileSync(file, 'ingress:\n  prot: 8080\n  port: 99999\napps:\n  BadName: {}\n');
    const res = spawnSync(process.execPath, [CLI, '--config', file, 'setup'], { encoding: 'utf8', env: { ...process.env, COUCHLOG_DATA: dir } });
    rmSync(dir, { recursive: true, force: true });
    assert.equal(res.status, 2);
    assert.match(res.stderr, /unknown key: ingress\.prot/);
    assert.match(res.stderr, /ingress\.port: /);
    assert.match(res.stderr, /apps\.BadName/);
  });

  test('an external CouchDB without an admin password is refused before anything runs', () => {
    const res = spawnSync(process.execPath, [CLI, 'setup'], {
      encoding: 'utf8',
      env: { ...process.env, COUCHDB_URL: 'http://127.0.0.1:1', COUCHDB_PASSWORD: '', COUCHLOG_DATA: mkdtempSync(join(tmpdir(), 'couchlog-cli-')) },
    });
    assert.equal(res.status, 2);
    assert.match(res.stderr, /COUCHDB_PASSWORD/);
  });

  test("commander's usage errors exit with 2 like couchlog's own, in every subcommand; --help with 0", () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', input: '' });
    for (const args of [
      ['nosuchcommand'],
      ['ship', '--batch-size', 'abc'],
      ['report', '--top', 'x'],
      ['jsonformat', '--preset', 'nope'],
      ['forward', '--nosuch'],
    ]) {
      const res = run(...args);
      assert.equal(res.status, 2, `${args.join(' ')}: ${res.stderr}`);
      assert.match(res.stderr, /error: /, args.join(' '));
    }
    assert.equal(run('ship', '--help').status, 0);
  });

  test('a timeout of 0 (none at all to undici) or a retry delay under 10 ms is a usage error naming the option, exit 2, in every command', () => {
    // Found by a review: `ship --timeout 0` hung for good on a stalled ingress, holding its lock;
    // `--backoff-base 0 --backoff-max 0` retried hundreds of times a second.
    const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', input: '' });
    const ship = ['ship', '--url', 'http://127.0.0.1:1/log_x'];
    for (const [args, message] of [
      [[...ship, '--timeout', '0'], /--timeout must be at least 0\.1 seconds, got "0"/],
      [[...ship, '--timeout', '0.05'], /--timeout must be at least 0\.1 seconds, got "0\.05"/],
      [[...ship, '--backoff-base', '0'], /--backoff-base must be at least 10 ms, got "0"/],
      [[...ship, '--backoff-max', '5'], /--backoff-max must be at least 10 ms, got "5"/],
      [[...ship, '--format', 'auditd', '--audit-timeout', '0'], /--audit-timeout must be at least 0\.1 seconds/],
      [['jsonformat', '--format', 'auditd', '--audit-timeout', '0'], /--audit-timeout must be at least 0\.1 seconds/],
      [['forward', '--timeout', '0'], /--timeout must be at least 100 ms, got "0"/],
      [['forward', '--ack-timeout', '50'], /--ack-timeout must be at least 100 ms/],
      [['forward', '--backoff-base', '1'], /--backoff-base must be at least 10 ms/],
      [['forward', '--backoff-max', '0'], /--backoff-max must be at least 10 ms/],
    ] as const) {
      const res = run(...args);
      assert.equal(res.status, 2, `${args.join(' ')}: ${res.stderr}`);
      assert.match(res.stderr, message, args.join(' '));
    }
    // The standalone scripts share the options, and exit 2 too (they exited 1 on commander's errors).
    for (const [script, args] of [
      ['ship.js', ['--url', 'http://127.0.0.1:1/log_x', '--timeout', '0']],
      ['jsonformat.js', ['--format', 'auditd', '--audit-timeout', '0']],
    ] as const) {
      const res = spawnSync(process.execPath, [join(ROOT, 'dist/scripts', script), ...args], { encoding: 'utf8', input: '' });
      assert.equal(res.status, 2, `${script}: ${res.stderr}`);
      assert.match(res.stderr, /--(audit-)?timeout must be at least 0\.1 seconds/, script);
    }
    // The smallest values are taken (nothing on stdin: nothing sent).
    const smallest = run(...ship, '--timeout', '0.1', '--backoff-base', '10', '--backoff-max', '10', '--format', 'auditd', '--audit-timeout', '0.1');
    assert.equal(smallest.status, 0, smallest.stderr);
  });

  test('an unreachable CouchDB is a one-line error, exit code 1', () => {
    const res = spawnSync(process.execPath, [CLI, 'setup'], {
      encoding: 'utf8',
      env: {
        ...process.env,
        COUCHDB_URL: 'http://127.0.0.1:1',
        COUCHDB_PASSWORD: 'some-password',
        COUCHLOG_DATA: mkdtempSync(join(tmpdir(), 'couchlog-cli-')),
      },
    });
    assert.equal(res.status, 1);
    assert.match(res.stderr, /^couchlog: cannot reach CouchDB at http:\/\/127\.0\.0\.1:1/);
    assert.equal(res.stderr.trim().split('\n').length, 1);
  });
});

describe('couchlog.example.yml', { skip: CONFIG_SKIP }, () => {
  test('documents exactly the defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'couchlog-cli-'));
    const fromExample = loadConfig({ file: join(ROOT, 'couchlog.example.yml'), env: {}, cwd: dir }).config;
    const defaults = loadConfig({ env: {}, cwd: dir }).config;
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(fromExample, defaults);
  });

  // The test above cannot see a key missing from the file (the default
  // fills it in): the file's own keys are compared with the schema's.
  test('lists every key of the schema, and no other', () => {
    const dir = mkdtempSync(join(tmpdir(), 'couchlog-cli-'));
    const defaults = loadConfig({ env: {}, cwd: dir }).config;
    rmSync(dir, { recursive: true, force: true });
    const written = parseYaml(readFileSync(join(ROOT, 'couchlog.example.yml'), 'utf8')) as unknown;
    const inFile = keyPaths(written);
    const inSchema = keyPaths(defaults);
    assert.deepEqual(
      inSchema.filter((k) => !inFile.includes(k)),
      [],
      'keys of the schema missing from couchlog.example.yml',
    );
    assert.deepEqual(
      inFile.filter((k) => !inSchema.includes(k)),
      [],
      'keys in couchlog.example.yml the schema does not have',
    );
    assert.ok(inSchema.includes('correlator.outputs.clickhouse.batch_size') && inSchema.length > 100, `too few keys seen: ${inSchema.length}`);
  });
});

/** Every key path of a parsed config ("a.b.c"); arrays and scalars are leaves, an app's name is "*". */
function keyPaths(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return prefix ? [prefix] : [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    const name = prefix === 'apps' ? '*' : k;
    out.push(...keyPaths(v, prefix ? `${prefix}.${name}` : name));
  }
  return [...new Set(out)].sort();
}
