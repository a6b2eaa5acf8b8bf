// Benchmark of the cron pipe's two halves, each next to its baseline in the
// same run on the same machine:
//  (a) jsonformat on a generated fail2ban log (default 100 MB) against awk
//      doing the same split and printing the same JSON (the outputs are
//      compared byte for byte, so both really do the same work); both read
//      the file as stdin and write a file, as `cmd < log > out` would;
//  (b) couchlog-ship of a fail2ban log through the ingress into a CouchDB
//      (the embedded server, or an external one such as Apache CouchDB 3:
//      --couchdb-url), against a direct _bulk_docs load of the very same
//      documents (same ids, same batch size, same concurrency) into the
//      same server. Each run writes to a fresh database, after a warm-up
//      of both paths. A server's speed drifts during a run (PouchDB
//      Server's LevelDB compacts in the background), so the sides
//      alternate direct, ship, ship, direct and each side's figure is its
//      mean.
// Both tools run as the processes a user runs (node dist/scripts/...).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineFormatter } from '../shipper/jsonformat/line-formatter.js';
import { docId, sourceKey, withId } from '../shipper/doc-id.js';
import { runLoad, type LoadResult } from './load.js';
import { startBenchStack, type CouchChoice } from './bench-stack.js';

/** This file runs as dist/bench/ship-bench.js: the compiled scripts are in dist/scripts. */
const SCRIPTS = resolve(fileURLToPath(import.meta.url), '../../scripts');
export const JSONFORMAT = join(SCRIPTS, 'jsonformat.js');
export const SHIP = join(SCRIPTS, 'ship.js');
export const SEED_SCHEMA = '$date $hour _ _ _ \\[$process\\] _ $ip';
/** awk doing the seed schema's split, printing what jsonformat prints. */
const AWK_PROGRAM =
  '{ p = substr($6, 2, length($6) - 2); print "{\\"date\\":\\"" $1 "\\",\\"hour\\":\\"" $2 "\\",\\"process\\":\\"" p "\\",\\"ip\\":\\"" $8 "\\",\\"machine\\":\\"server\\"}" }';

export interface ShipBenchOptions {
  jsonformatMB: number;
  runs: number;
  shipLines: number;
  batchSize: number;
  concurrency: number;
  couchPort: number;
  ingressPort: number;
  /** Embedded (default) or an external CouchDB, for (b). */
  couch?: CouchChoice;
}

export interface ShipRun {
  seconds: number;
  docsPerSecond: number;
}

export interface ToolRun {
  seconds: number;
  mbPerSecond: number;
  outputSha256: string;
}

export interface AwkRun extends ToolRun {
  command: string;
  version: string;
  sameOutput: boolean;
}

export interface ShipBenchReport {
  /** awks[0] is the system's `awk`; the others are mawk and gawk when installed. */
  jsonformat: { mb: number; lines: number; jsonformat: ToolRun; awks: AwkRun[]; ratio: number };
  ship: {
    server: string;
    docs: number;
    direct: { runs: LoadResult[]; docsPerSecond: number };
    ship: { runs: ShipRun[]; docsPerSecond: number };
    ratio: number;
  };
  /** Load averages (1, 5, 15 min) before and after the run: the machine is shared. */
  load: { before: number[]; after: number[] };
}

/** Line n of a generated fail2ban log (distinct IPs, several days, realistic spacing). */
export function fail2banLine(n: number): string {
  const ms = String(n % 1000).padStart(3, '0');
  const s = String(Math.floor(n / 1000) % 60).padStart(2, '0');
  const m = String(Math.floor(n / 60_000) % 60).padStart(2, '0');
  return `2017-06-${10 + (n % 20)} ${String(n % 24).padStart(2, '0')}:${m}:${s},${ms} fail2ban.actions        [1112]: NOTICE  [sshd] Ban ${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}.${1 + (n % 250)}`;
}

/** Writes fail2ban lines to `file` until it holds `bytes`; returns the line count. */
export function writeFail2banLog(file: string, bytes: number): number {
  const fd = openSync(file, 'w');
  let written = 0;
  let n = 0;
  let chunk = '';
  while (written < bytes) {
    const line = `${fail2banLine(n++)}\n`;
    chunk += line;
    written += line.length;
    if (chunk.length > 1 << 20) {
      writeSync(fd, chunk);
      chunk = '';
    }
  }
  writeSync(fd, chunk);
  closeSync(fd);
  return n;
}

/** Runs a command with a file on stdin and stdout to a file (hashed afterwards); wall time. */
async function timeTool(
  command: string,
  args: string[],
  input: string,
  output: string,
): Promise<{ seconds: number; sha256: string; code: number | null; stderr: string }> {
  const inFd = openSync(input, 'r');
  const outFd = openSync(output, 'w');
  try {
    const run = await new Promise<{ seconds: number; code: number | null; stderr: string }>((ok, fail) => {
      let stderr = '';
      const started = process.hrtime.bigint();
      const child = spawn(command, args, { stdio: [inFd, outFd, 'pipe'] });
      child.stderr!.on('data', (d: Buffer) => (stderr += d));
      child.on('error', fail);
      child.on('close', (code) => ok({ seconds: Number(process.hrtime.bigint() - started) / 1e9, code, stderr }));
    });
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(output)) hash.update(chunk as Buffer);
    return { ...run, sha256: hash.digest('hex') };
  } finally {
    closeSync(inFd);
    closeSync(outFd);
    rmSync(output, { force: true });
  }
}

async function best(
  runs: number,
  f: () => Promise<{ seconds: number; sha256: string; code: number | null; stderr: string }>,
  mb: number,
  name: string,
): Promise<ToolRun> {
  let bestRun: ToolRun | null = null;
  for (let i = 0; i < runs; i++) {
    const r = await f();
    if (r.code !== 0) throw new Error(`${name} exited ${r.code}: ${r.stderr}`);
    if (!bestRun || r.seconds < bestRun.seconds) bestRun = { seconds: r.seconds, mbPerSecond: mb / r.seconds, outputSha256: r.sha256 };
  }
  return bestRun!;
}

async function awkVersion(command: string): Promise<string | null> {
  for (const args of [['--version'], ['-W', 'version']]) {
    const r = await new Promise<string>((ok) => {
      let out = '';
      const c = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      c.stdout.on('data', (d) => (out += d));
      c.stderr.on('data', (d) => (out += d));
      c.on('close', (code) => ok(code === 0 ? out.split('\n')[0]!.trim() : ''));
      c.on('error', () => ok(''));
    });
    if (r) return r;
  }
  return null;
}

export async function benchShip(o: ShipBenchOptions, progress: (line: string) => void): Promise<ShipBenchReport> {
  const before = loadavg();
  const dir = mkdtempSync(join(tmpdir(), 'couchlog-ship-bench-'));
  try {
    // (a) jsonformat vs awk
    const big = join(dir, 'fail2ban-big.log');
    progress(`writing a ${o.jsonformatMB} MB fail2ban log...`);
    const lines = writeFail2banLog(big, o.jsonformatMB * 1024 * 1024);
    const mb = statSync(big).size / (1024 * 1024);
    progress(`jsonformat, best of ${o.runs}...`);
    const out = join(dir, 'out.json');
    const jf = await best(
      o.runs,
      () => timeTool(process.execPath, [JSONFORMAT, '--schema', SEED_SCHEMA, '--fields', 'machine=server'], big, out),
      mb,
      'jsonformat',
    );
    const awks: AwkRun[] = [];
    const versions = new Set<string>();
    for (const command of ['awk', 'mawk', 'gawk']) {
      const version = await awkVersion(command);
      if (version === null || versions.has(version)) continue;
      versions.add(version);
      progress(`${command} (${version}), best of ${o.runs}...`);
      const run = await best(o.runs, () => timeTool(command, [AWK_PROGRAM], big, out), mb, command);
      awks.push({ ...run, command, version, sameOutput: run.outputSha256 === jf.outputSha256 });
    }
    if (awks.length === 0) throw new Error('no awk found');
    rmSync(big);

    // (b) ship vs direct _bulk_docs
    const shipReport = await benchShipVsDirect(o, dir, progress);
    return {
      jsonformat: { mb, lines, jsonformat: jf, awks, ratio: jf.mbPerSecond / awks[0]!.mbPerSecond },
      ship: shipReport,
      load: { before, after: loadavg() },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function benchShipVsDirect(o: ShipBenchOptions, dir: string, progress: (line: string) => void): Promise<ShipBenchReport['ship']> {
  const stack = await startBenchStack({
    dataDir: join(dir, 'data'),
    apps: ['warmup', 'direct1', 'direct2', 'ship1', 'ship2'],
    couchPort: o.couchPort,
    ingressPort: o.ingressPort,
    couch: o.couch,
  });
  const { couchUrl, ingressUrl, writer, db, appName } = stack;
  try {
    progress(`(b) measuring ${stack.server}`);
    const file = join(dir, 'fail2ban.log');
    const text = Array.from({ length: o.shipLines }, (_, n) => `${fail2banLine(n)}\n`);
    const fd = openSync(file, 'w');
    writeSync(fd, text.join(''));
    closeSync(fd);

    // The documents ship will send, built by the same code (ids included).
    const formatter = new LineFormatter({ schema: SEED_SCHEMA, fields: [['machine', 'server']] });
    const key = sourceKey(resolve(file), 0);
    let offset = 0;
    const docs = text.map((line) => {
      const body = line.slice(0, -1);
      const doc = withId(formatter.format(body)!, docId(key, offset, body));
      offset += Buffer.byteLength(line);
      return doc;
    });
    const requests = Math.ceil(docs.length / o.batchSize);
    const bodyOf = (i: number) => `{"docs":[${docs.slice(i * o.batchSize, (i + 1) * o.batchSize).join(',')}]}`;

    progress('warming up both paths...');
    const warm = Math.min(requests, 5);
    await runLoad({
      url: couchUrl,
      path: `/${db('warmup')}/_bulk_docs`,
      headers: writer,
      body: (i) => bodyOf(i).replaceAll('"_id":"', '"_id":"w'),
      docsPerRequest: o.batchSize,
      total: warm,
      concurrency: o.concurrency,
      ok: [201],
    });
    await runShip(ingressUrl, appName('warmup'), file, o, ['--source-id', 'warmup']);

    const directRuns: LoadResult[] = [];
    const shipRuns: ShipRun[] = [];
    const direct = async (app: string) => {
      progress(`direct _bulk_docs of ${docs.length} documents (${requests} x ${o.batchSize}, concurrency ${o.concurrency}) into ${db(app)}...`);
      const r = await runLoad({
        url: couchUrl,
        path: `/${db(app)}/_bulk_docs`,
        headers: writer,
        body: bodyOf,
        docsPerRequest: o.batchSize,
        total: requests,
        concurrency: o.concurrency,
        ok: [201],
      });
      if (r.errors > 0) throw new Error(`direct load: ${r.errors} requests failed`);
      directRuns.push({ ...r, docs: docs.length, docsPerSecond: docs.length / r.seconds });
    };
    const shipped = async (app: string) => {
      progress(`couchlog-ship of the same lines through the ingress into ${db(app)}...`);
      const r = await runShip(ingressUrl, appName(app), file, o, []);
      if (r.exitCode !== 0) throw new Error(`ship exited ${r.exitCode}: ${r.stderr}`);
      shipRuns.push({ seconds: r.seconds, docsPerSecond: docs.length / r.seconds });
    };
    await direct('direct1');
    await shipped('ship1');
    await shipped('ship2');
    await direct('direct2');
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const directRate = mean(directRuns.map((r) => r.docsPerSecond));
    const shipRate = mean(shipRuns.map((r) => r.docsPerSecond));
    return {
      server: stack.server,
      docs: docs.length,
      direct: { runs: directRuns, docsPerSecond: directRate },
      ship: { runs: shipRuns, docsPerSecond: shipRate },
      ratio: shipRate / directRate,
    };
  } finally {
    await stack.stop();
  }
}

function runShip(
  ingressUrl: string,
  app: string,
  file: string,
  o: ShipBenchOptions,
  extra: string[],
): Promise<{ seconds: number; exitCode: number | null; stderr: string }> {
  return new Promise((ok, fail) => {
    let stderr = '';
    const started = process.hrtime.bigint();
    const child = spawn(
      process.execPath,
      [
        SHIP,
        '--url',
        `${ingressUrl}/log_${app}`,
        '--schema',
        SEED_SCHEMA,
        '--fields',
        'machine=server',
        '--batch-size',
        String(o.batchSize),
        '--concurrency',
        String(o.concurrency),
        '--reject-file',
        join(resolve(file, '..'), 'rejects.ndjson'),
        '-v',
        ...extra,
        file,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', fail);
    child.on('close', (exitCode) => ok({ seconds: Number(process.hrtime.bigint() - started) / 1e9, exitCode, stderr }));
  });
}

export function formatShipBench(r: ShipBenchReport): string {
  const j = r.jsonformat;
  const s = r.ship;
  return [
    `(a) jsonformat vs awk, ${j.mb.toFixed(0)} MB fail2ban log (${j.lines} lines), seed schema + --fields machine=server, best run, wall clock incl. process start`,
    `  jsonformat ${j.jsonformat.mbPerSecond.toFixed(0).padStart(6)} MB/s   (${j.jsonformat.seconds.toFixed(2)} s; one process, single-threaded: MB/s per core)`,
    ...j.awks.map(
      (a) =>
        `  ${a.command.padEnd(10)} ${a.mbPerSecond.toFixed(0).padStart(6)} MB/s   (${a.seconds.toFixed(2)} s; ${a.version}; same output byte for byte: ${a.sameOutput ? 'yes' : 'NO'})`,
    ),
    `  ratio jsonformat/awk (the system's awk): ${j.ratio.toFixed(2)}x  (target >= 1x, and >= 50 MB/s per core)`,
    `(b) ${s.docs} fail2ban lines into ${s.server}`,
    `  direct _bulk_docs   ${s.direct.docsPerSecond.toFixed(0).padStart(6)} docs/s   (runs: ${s.direct.runs.map((r) => r.docsPerSecond.toFixed(0)).join(', ')})`,
    `  couchlog-ship       ${s.ship.docsPerSecond.toFixed(0).padStart(6)} docs/s   (runs: ${s.ship.runs.map((r) => r.docsPerSecond.toFixed(0)).join(', ')}; process start, reading and jsonformat included)`,
    `  ratio ship/direct: ${s.ratio.toFixed(2)}x  (target >= 0.8x)`,
    `load average: ${r.load.before.map((x) => x.toFixed(2)).join(' ')} before, ${r.load.after.map((x) => x.toFixed(2)).join(' ')} after`,
  ].join('\n');
}
