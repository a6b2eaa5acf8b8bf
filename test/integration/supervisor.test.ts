// The embedded server's supervision (issue 12, defects 15 and 16): it runs in
// its own process group, so a terminal's Ctrl-C reaches only couchlog, which
// stops it in order; and a server that stops answering (frozen: SIGSTOP) is
// noticed by the liveness probe, killed and restarted.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { EmbeddedCouch } from '../../embedded/pouchdb-server.js';
import { SupervisedProcess } from '../../embedded/supervised-process.js';
import { findClickhouseServer } from '../../embedded/clickhouse-server.js';
import { createLogger, type Logger } from '../../lib/logger.js';
import { pino } from 'pino';
import { embeddedOnly, freePort } from '../helpers/stack.js';

const dir = mkdtempSync(join(tmpdir(), 'couchlog-supervisor-'));
/** The embedded server never runs without an admin. */
const ADMIN = { user: 'admin', password: 'supervisor-test-admin' };
const ADMIN_AUTH = `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}`;
let couch: EmbeddedCouch | null = null;
after(async () => {
  await couch?.stop(2000);
  rmSync(dir, { recursive: true, force: true });
});

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/`, { signal: AbortSignal.timeout(1000) });
    await res.text();
    return res.ok;
  } catch {
    return false;
  }
}

test('own process group; a frozen server is killed and restarted by the liveness probe', { timeout: 60_000 }, async () => {
  couch = new EmbeddedCouch({
    dataDir: dir,
    host: '127.0.0.1',
    port: await freePort(),
    restartDelayMs: 100,
    restartDelayMaxMs: 1000,
    startTimeoutMs: 30_000,
    logger: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent', 'test'),
    liveness: { intervalMs: 300, timeoutMs: 300, failures: 2 },
    admin: ADMIN,
  });
  await couch.start();
  const pid = couch.pid!;
  const pgid = (p: number) => Number(execFileSync('ps', ['-o', 'pgid=', '-p', String(p)], { encoding: 'utf8' }).trim());
  assert.equal(pgid(pid), pid, 'the server leads a process group of its own');
  assert.notEqual(pgid(pid), pgid(process.pid));

  const restarted = new Promise<void>((resolve) => couch!.once('restarted', () => resolve()));
  process.kill(pid, 'SIGSTOP');
  const frozenAt = Date.now();
  await restarted;
  const took = Date.now() - frozenAt;
  assert.notEqual(couch.pid, pid);
  let up = await answers(couch.url);
  for (const until = Date.now() + 10_000; !up && Date.now() < until; up = await answers(couch.url)) await sleep(200);
  assert.ok(up, 'the new server answers');
  assert.ok(took < 45_000, `restarted after ${took} ms`);
  // The frozen one is gone (SIGKILL works on a stopped process).
  await sleep(200);
  assert.throws(() => process.kill(pid, 0));
});

/**
 * A server that answers HTTP on every run but the `hangOn`th, which starts
 * and never answers (a server stuck in its start: a lock, a full disk).
 * Each run appends its number to `runs`.
 */
const FLAKY_SERVER = `
const fs = require('fs');
const [runs, port, hangOn] = process.argv.slice(1);
fs.appendFileSync(runs, 'x');
const n = fs.readFileSync(runs, 'utf8').length;
if (n === Number(hangOn)) setInterval(() => {}, 1000);
else require('http').createServer((q, r) => r.end('{}')).listen(Number(port), '127.0.0.1');
`;

test('a server that does not come back within the start timeout after a restart is killed and restarted again', { timeout: 60_000 }, async () => {
  const port = await freePort();
  const runs = join(dir, 'flaky-runs');
  const proc = new SupervisedProcess({
    label: 'the flaky server',
    command: process.execPath,
    args: ['-e', FLAKY_SERVER, runs, String(port), '2'],
    cwd: dir,
    probeUrl: `http://127.0.0.1:${port}/`,
    prepare: () => undefined,
    logFile: join(dir, 'flaky.log'),
    restartDelayMs: 100,
    restartDelayMaxMs: 500,
    startTimeoutMs: 1500,
    logger: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent', 'test'),
  });
  try {
    await proc.start();
    const first = proc.pid!;
    const restarted = new Promise<void>((ok) => proc.once('restarted', () => ok()));
    // Killed: the second run hangs in its start, past the 1.5 s start timeout.
    process.kill(first, 'SIGKILL');
    await restarted;
    assert.equal(readFileSync(runs, 'utf8').length, 3, 'the hung second run was killed and a third one started');
    assert.equal(proc.restarts, 2);
    assert.ok(await answers(`http://127.0.0.1:${port}`));
  } finally {
    await proc.stop(2000);
  }
});

/** `couchlog up` on free ports in a fresh folder, as a shell runs a job: a process group of its own. */
async function startUp(): Promise<{
  output: () => string;
  exited: Promise<string>;
  couchUrl: string;
  clickhouseUrl: string;
  interrupt: () => void;
  cleanUp: () => void;
}> {
  const root = resolve(fileURLToPath(import.meta.url), '../../../..');
  const work = mkdtempSync(join(tmpdir(), 'couchlog-ctrlc-'));
  const couchPort = await freePort();
  const clickhousePort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    COUCHLOG_DATA: join(work, 'data'),
    COUCHLOG_INGRESS_PORT: String(await freePort()),
    COUCHLOG_COUCHDB_PORT: String(couchPort),
    COUCHLOG_CORRELATOR_METRICS_PORT: String(await freePort()),
    COUCHLOG_CLICKHOUSE_HTTP_PORT: String(clickhousePort),
    COUCHLOG_CLICKHOUSE_TCP_PORT: String(await freePort()),
  };
  delete env.COUCHLOG_CONFIG;
  const child = spawn(process.execPath, [join(root, 'dist/scripts/couchlog.js'), 'up', '--log-format', 'json'], {
    cwd: work,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<string>((ok) => child.on('exit', (code, signal) => ok(`${code} ${signal}`)));
  return {
    output: () => output,
    exited,
    couchUrl: `http://127.0.0.1:${couchPort}`,
    clickhouseUrl: `http://127.0.0.1:${clickhousePort}`,
    // The terminal's Ctrl-C signals the whole foreground group.
    interrupt: () => process.kill(-child.pid!, 'SIGINT'),
    cleanUp: () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      rmSync(work, { recursive: true, force: true });
    },
  };
}

async function until(
  what: string,
  up: { output: () => string; exited: Promise<string> },
  done: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  let exited: string | null = null;
  void up.exited.then((code) => (exited = code));
  for (const deadline = Date.now() + timeoutMs; !(await done()); await sleep(50)) {
    if (exited !== null) throw new Error(`exited ${exited} before ${what}:\n${up.output()}`);
    if (Date.now() > deadline) throw new Error(`no ${what} after ${timeoutMs} ms:\n${up.output()}`);
  }
}

test(
  'Ctrl-C in a terminal (SIGINT to the whole foreground group) stops couchlog up in order',
  { timeout: 240_000, skip: embeddedOnly('couchlog up runs its own embedded server') },
  async () => {
    const up = await startUp();
    try {
      await until('banner', up, () => up.output().includes('Ctrl-C stops everything'), 180_000);
      up.interrupt();
      assert.equal(await up.exited, '0 null', up.output().slice(-3000));
      assert.doesNotMatch(up.output(), /died; restarting/, 'a server died before the orderly stop');
      assert.ok(!(await answers(up.couchUrl)), 'the embedded server is gone');
    } finally {
      up.cleanUp();
    }
  },
);

test(
  'Ctrl-C while couchlog up is still starting stops what has started: nothing is left running',
  { timeout: 240_000, skip: embeddedOnly('couchlog up runs its own embedded server') },
  async () => {
    // Found by a newcomer's test: Node died at once and left the embedded ClickHouse running, holding its port.
    const up = await startUp();
    try {
      await until('the embedded CouchDB', up, () => answers(up.couchUrl), 120_000);
      // Installed, ClickHouse starts alongside: interrupted once it answers too, so "gone" below means stopped.
      if (findClickhouseServer() !== null) await until('the embedded ClickHouse', up, () => answers(up.clickhouseUrl), 120_000);
      up.interrupt();
      assert.equal(await up.exited, '0 null', up.output().slice(-3000));
      assert.doesNotMatch(up.output(), /Ctrl-C stops everything/, 'the startup was interrupted, not completed');
      assert.ok(!(await answers(up.couchUrl)), 'the embedded CouchDB is gone');
      assert.ok(!(await answers(up.clickhouseUrl)), 'the embedded ClickHouse is gone');
    } finally {
      up.cleanUp();
    }
  },
);

test(
  'thirty long polls on one database: no "possible memory leak" warning from the server',
  { skip: embeddedOnly('the embedded server'), timeout: 60_000 },
  async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) }) as unknown as Logger;
    const server = new EmbeddedCouch({
      dataDir: join(dir, 'polls'),
      host: '127.0.0.1',
      port: await freePort(),
      restartDelayMs: 100,
      restartDelayMaxMs: 1000,
      startTimeoutMs: 30_000,
      logger,
      admin: ADMIN,
    });
    try {
      await server.start();
      const made = await fetch(`${server.url}/polls`, { method: 'PUT', headers: { authorization: ADMIN_AUTH } });
      assert.ok(made.status === 201 || made.status === 412, `PUT /polls: ${made.status} ${await made.text()}`);
      const polls = Array.from({ length: 30 }, async () => {
        const res = await fetch(`${server.url}/polls/_changes?feed=longpoll&since=now&timeout=1500`, { headers: { authorization: ADMIN_AUTH } });
        assert.equal(res.status, 200, await res.text());
      });
      await Promise.all(polls);
      // stderr is read asynchronously: give a warning time to arrive.
      await sleep(500);
      assert.deepEqual(
        lines.filter((l) => /MaxListeners|memory leak/.test(l)),
        [],
      );
    } finally {
      await server.stop(2000);
    }
  },
);
