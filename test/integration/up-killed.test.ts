// `couchlog up` killed outright (kill -9, the OOM killer) must not leave
// its embedded ClickHouse behind (reviewer's finding, 2026-12-07: PouchDB
// Server ended itself within a second, ClickHouse ran on; the next
// `couchlog up` found its port taken, ran with "the ClickHouse sink is
// off", and the orphan outlived that instance's orderly stop too).
// ClickHouse now dies with couchlog (setpriv --pdeathsig), and one left
// anyway is stopped at the next start. And a ClickHouse port taken by
// another process after a crash stops couchlog up instead of being used.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findClickhouseServer } from '../../embedded/clickhouse-server.js';
import { SupervisedProcess } from '../../embedded/supervised-process.js';
import { createLogger } from '../../lib/logger.js';
import { embeddedOnly, freePort } from '../helpers/stack.js';
import { ROOT } from '../helpers/repo-root.js';

const work = mkdtempSync(join(tmpdir(), 'couchlog-up-killed-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Live processes whose command line has `arg` (a zombie has none). */
function processesWith(arg: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(arg)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** `couchlog up` on `env`; resolves with its banner (one JSON line without a terminal). */
async function up(env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; banner: string; output: () => string }> {
  let output = '';
  const child = spawn(process.execPath, [join(ROOT, 'dist/scripts/couchlog.js'), 'up', '--log-format', 'json'], {
    cwd: work,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  let exited: string | null = null;
  child.on('exit', (code, signal) => (exited = `${code} ${signal}`));
  for (const deadline = Date.now() + 120_000; !output.includes('"banner"'); await sleep(50)) {
    if (exited !== null) throw new Error(`couchlog up exited ${exited}:\n${output}`);
    if (Date.now() > deadline) throw new Error(`no banner after 120 s:\n${output}`);
  }
  const line = output.split('\n').find((l) => l.includes('"banner"'))!;
  return { child, banner: (JSON.parse(line) as { banner: string }).banner, output: () => output };
}

test(
  'kill -9 of couchlog up: no ClickHouse of its data folder is left, the next couchlog up gets its ClickHouse sink, and stops when its port is taken',
  {
    skip: embeddedOnly('couchlog up runs its own embedded server') || (findClickhouseServer() === null ? 'clickhouse-server is not installed' : false),
    timeout: 240_000,
  },
  async (t) => {
    const httpPort = await freePort();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      COUCHLOG_DATA: join(work, 'data'),
      COUCHLOG_INGRESS_PORT: String(await freePort()),
      COUCHLOG_COUCHDB_PORT: String(await freePort()),
      COUCHLOG_CORRELATOR_METRICS_PORT: String(await freePort()),
      COUCHLOG_CLICKHOUSE_HTTP_PORT: String(httpPort),
      COUCHLOG_CLICKHOUSE_TCP_PORT: String(await freePort()),
    };
    delete env.COUCHLOG_CONFIG;
    const marker = `--config-file=${join(work, 'data', 'clickhouse', 'config.xml')}`;
    const clickhouseOn = new RegExp(`ClickHouse\\s+http://127\\.0\\.0\\.1:${httpPort}\\s`);
    const running: ChildProcess[] = [];
    try {
      const first = await up(env);
      running.push(first.child);
      assert.match(first.banner, clickhouseOn, first.banner);
      assert.equal(processesWith(marker).length, 1, 'one ClickHouse of this data folder runs');

      first.child.kill('SIGKILL');
      const killedAt = Date.now();
      while (processesWith(marker).length > 0 && Date.now() - killedAt < 5000) await sleep(20);
      const left = processesWith(marker);
      assert.deepEqual(left, [], `ClickHouse still runs ${Date.now() - killedAt} ms after couchlog up was killed`);
      t.diagnostic(`ClickHouse gone ${Date.now() - killedAt} ms after kill -9 of couchlog up`);

      const second = await up(env);
      running.push(second.child);
      assert.match(second.banner, clickhouseOn, second.output().slice(-3000));
      assert.doesNotMatch(second.output(), /ClickHouse sink is off/);
      const [clickhouse] = processesWith(marker);
      assert.ok(clickhouse !== undefined, 'its ClickHouse runs');

      // Its ClickHouse dies and someone takes the port before the restart: couchlog up stops (exit 1), sending it nothing.
      const seen: Array<string | undefined> = [];
      const squatter = createServer((req, res) => {
        seen.push(req.headers.authorization ?? req.headers['x-clickhouse-key']?.toString());
        res.end('Ok.\n');
      });
      const exited = new Promise<string>((ok) => second.child.on('exit', (code, signal) => ok(`${code} ${signal}`)));
      process.kill(clickhouse, 'SIGKILL');
      while (!(await new Promise<boolean>((ok) => squatter.once('error', () => ok(false)).listen(httpPort, '127.0.0.1', () => ok(true))))) await sleep(5);
      try {
        const code = await Promise.race([exited, sleep(15_000).then(() => 'still running after 15 s')]);
        assert.equal(code, '1 null', second.output().slice(-3000));
        assert.match(second.output(), new RegExp(`another process holds port ${httpPort} of the embedded ClickHouse`));
        assert.deepEqual(seen, [], 'the squatter got no request');
      } finally {
        squatter.close();
      }
    } finally {
      for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      // Whatever this test's couchlog started (an old build's ClickHouse outlives it): not left to other test files.
      await sleep(200);
      for (const pid of processesWith(marker)) process.kill(pid, 'SIGKILL');
    }
  },
);

test('a server a killed couchlog left running is killed before the next start; a process without its marker is left alone', { timeout: 30_000 }, async () => {
  const port = await freePort();
  const config = join(work, 'orphan-server.conf');
  const server = `require('http').createServer((q, r) => r.end('{}')).listen(${port}, '127.0.0.1')`;
  const detached = (args: string[]) => {
    const child = spawn(process.execPath, args, { detached: true, stdio: 'ignore' });
    child.unref();
    return child.pid!;
  };
  // What a killed couchlog left: its server (with the marker, holding the port), and its pid file.
  const orphan = detached(['-e', server, config]);
  // A process that took over a recorded pid, or anything else named in a pid file: not ours.
  const stranger = detached(['-e', 'setInterval(() => {}, 1000)', 'not-the-marker']);
  const pidFiles = [join(work, 'server.pid'), join(work, 'status')];
  writeFileSync(pidFiles[0]!, `${orphan}\n`);
  writeFileSync(pidFiles[1]!, `PID: ${stranger}\nStarted at: now\n`);
  for (
    const deadline = Date.now() + 10_000;
    !(await fetch(`http://127.0.0.1:${port}/`).then(
      () => true,
      () => false,
    ));
    await sleep(50)
  ) {
    if (Date.now() > deadline) throw new Error('the orphan never listened');
  }
  const proc = new SupervisedProcess({
    label: 'the test server',
    command: process.execPath,
    args: ['-e', server, config],
    cwd: work,
    probeUrl: `http://127.0.0.1:${port}/`,
    prepare: () => undefined,
    logFile: join(work, 'test-server.log'),
    restartDelayMs: 100,
    restartDelayMaxMs: 100,
    startTimeoutMs: 10_000,
    logger: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent', 'test'),
    orphans: { pidFiles, marker: config },
  });
  try {
    await proc.start();
    assert.notEqual(proc.pid, orphan);
    assert.deepEqual(processesWith(config), [proc.pid], 'the orphan is gone, the new server runs');
    assert.equal(readFileSync(pidFiles[0]!, 'utf8').trim(), String(proc.pid), 'the new pid is recorded');
    assert.deepEqual(processesWith('not-the-marker'), [stranger], 'the stranger still runs');
  } finally {
    await proc.stop(2000);
    process.kill(stranger, 'SIGKILL');
  }
});
