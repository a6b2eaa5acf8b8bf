// Benchmark of the ingress's Splunk HEC endpoint against a CouchDB (the
// embedded server, or an external one such as Apache CouchDB 3:
// --couchdb-url), in one run: batches of 100 HEC envelopes (as Vector sends them)
// through POST /services/collector/event, next to _bulk_docs of the same
// documents straight into CouchDB (and through the ingress's _bulk_docs).
// Same server, same client, same concurrency, a database per phase. Bulk
// loads are short and a server's speed drifts (PouchDB Server's LevelDB
// compacts),
// so the phases run direct, HEC, HEC, direct, and each side's figure is its
// mean; a gzip variant of the HEC phase runs after.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { combine, runLoad, type LoadResult } from './load.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startBenchStack, type BenchStack, type CouchChoice } from './bench-stack.js';
import { freePort } from './free-port.js';
import { childEnvWithoutCouchdb } from '../lib/config/tool-env.js';

/** This file runs as dist/bench/hec-bench.js: `couchlog` is dist/scripts/couchlog.js. */
export const COUCHLOG_SCRIPT = fileURLToPath(new URL('../scripts/couchlog.js', import.meta.url));

export interface HecBenchOptions {
  /** Documents forwarded in the forwarding phase (0: skip it). */
  forwardDocs: number;
  /** Requests per phase. */
  requests: number;
  /** Envelopes (documents) per request. */
  batch: number;
  concurrency: number;
  couchPort: number;
  ingressPort: number;
  /** Embedded (default) or an external CouchDB (the forwarding target stays an embedded couchlog). */
  couch?: CouchChoice;
}

export interface HecBenchReport {
  /** "embedded PouchDB Server (url)" or "Apache CouchDB 3.5.0 at url". */
  server: string;
  /** Load averages (1, 5, 15 min) before and after the run: the machine is shared. */
  load: { before: number[]; after: number[] };
  direct: LoadResult;
  hec: LoadResult;
  hecGzip: LoadResult;
  ingressBulk: LoadResult;
  ratio: number;
  gzipRatio: number;
  forward: { docs: number; changesDocsPerSecond: number; forwardDocsPerSecond: number; ratio: number } | null;
}

const TOKEN = 'bench-hec-token-0123456789abcdef';
const APPS = ['warmup', 'direct1', 'hec1', 'hec2', 'direct2', 'hec_gzip', 'ingress_bulk', 'fwd_src', 'fwd_dst'];

/** An nginx access log event as a shipper would send it. */
const event = (i: number) => ({
  src_ip: `198.51.${(i >> 8) & 255}.${i & 255}`,
  src_port: 40000 + (i % 20000),
  method: 'GET',
  host: 'www.example.com',
  path: `/item/${i % 997}`,
  status: 200,
  bytes: 512 + (i % 4096),
  user_agent: 'Mozilla/5.0 (X11; Linux x86_64)',
});
const BASE_TIME = 1_721_187_223;
const envelope = (i: number) => ({ time: BASE_TIME + i / 1000, host: 'web-1', source: '/var/log/nginx/access.log', sourcetype: 'nginx', event: event(i) });
/** The document the ingress stores for envelope(i) (received_at included). */
const storedDoc = (i: number) => ({
  ...event(i),
  time: new Date(Math.round((BASE_TIME + i / 1000) * 1000)).toISOString(),
  source: '/var/log/nginx/access.log',
  sourcetype: 'nginx',
  received_at: new Date().toISOString(),
});

export async function benchHec(o: HecBenchOptions, progress: (line: string) => void): Promise<HecBenchReport> {
  const before = loadavg();
  const dataDir = mkdtempSync(join(tmpdir(), 'couchlog-bench-hec-'));
  const tokens = Object.fromEntries(APPS.map((app) => [app, [{ name: 'bench', secret: TOKEN }]]));
  const stack = await startBenchStack({ dataDir, apps: APPS, couchPort: o.couchPort, ingressPort: o.ingressPort, tokens, couch: o.couch });
  const { couchUrl, ingressUrl, writer, db, appName } = stack;
  try {
    progress(`measuring ${stack.server}`);
    const hecHeaders = { authorization: `Splunk ${TOKEN}`, 'content-type': 'application/json' };
    const hecBody = (app: string) => (r: number) =>
      Array.from({ length: o.batch }, (_, j) => JSON.stringify({ ...envelope(r * o.batch + j), index: appName(app) })).join('\n');
    const bulkBody = (r: number) => JSON.stringify({ docs: Array.from({ length: o.batch }, (_, j) => storedDoc(r * o.batch + j)) });
    const hec = (app: string, total = o.requests) =>
      runLoad({
        url: ingressUrl,
        path: '/services/collector/event',
        headers: hecHeaders,
        body: hecBody(app),
        docsPerRequest: o.batch,
        total,
        concurrency: o.concurrency,
        ok: [200],
      });
    const direct = (app: string, total = o.requests) =>
      runLoad({
        url: couchUrl,
        path: `/${db(app)}/_bulk_docs`,
        headers: writer,
        body: bulkBody,
        docsPerRequest: o.batch,
        total,
        concurrency: o.concurrency,
        ok: [201],
      });

    progress('warming up both paths...');
    await direct('warmup', Math.ceil(o.requests / 5));
    await hec('warmup', Math.ceil(o.requests / 5));
    progress(`${o.requests} requests of ${o.batch} documents, concurrency ${o.concurrency}: _bulk_docs straight to CouchDB...`);
    const d1 = await direct('direct1');
    progress('    ...HEC event batches through the ingress, twice...');
    const h1 = await hec('hec1');
    const h2 = await hec('hec2');
    progress('    ...and _bulk_docs straight to CouchDB again');
    const d2 = await direct('direct2');
    progress("    ...HEC with gzip bodies, and the ingress's own _bulk_docs");
    // Bodies compressed ahead: the client's CPU is not the ingress's cost.
    const gz = new Map<number, Buffer>();
    const gzBody = (r: number) => {
      let b = gz.get(r);
      if (!b) gz.set(r, (b = gzipSync(hecBody('hec_gzip')(r))));
      return b;
    };
    for (let r = 0; r < o.requests; r++) gzBody(r);
    const hecGzip = await runLoad({
      url: ingressUrl,
      path: '/services/collector/event',
      headers: { ...hecHeaders, 'content-encoding': 'gzip' },
      body: gzBody,
      docsPerRequest: o.batch,
      total: o.requests,
      concurrency: o.concurrency,
      ok: [200],
    });
    const ingressBulk = await runLoad({
      url: ingressUrl,
      path: `/${db('ingress_bulk')}/_bulk_docs`,
      headers: hecHeaders,
      body: bulkBody,
      docsPerRequest: o.batch,
      total: o.requests,
      concurrency: o.concurrency,
      ok: [201],
    });
    const forward = o.forwardDocs > 0 ? await benchForward(o, stack, bulkBody, progress) : null;
    const directBoth = combine(d1, d2);
    const hecBoth = combine(h1, h2);
    return {
      server: stack.server,
      load: { before, after: loadavg() },
      direct: directBoth,
      hec: hecBoth,
      hecGzip,
      ingressBulk,
      ratio: hecBoth.docsPerSecond / directBoth.docsPerSecond,
      gzipRatio: hecGzip.docsPerSecond / directBoth.docsPerSecond,
      forward,
    };
  } finally {
    await stack.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * Forwarding: `couchlog forward`'s Forwarder from log_fwd_src into the HEC
 * endpoint of a second couchlog on this machine (gzip), next to a plain
 * read of the same _changes pages (limit = the forwarder's page size,
 * include_docs).
 */
async function benchForward(
  o: HecBenchOptions,
  stack: BenchStack,
  bulkBody: (r: number) => string,
  progress: (line: string) => void,
): Promise<NonNullable<HecBenchReport['forward']>> {
  const pageSize = 500;
  const requests = Math.ceil(o.forwardDocs / o.batch);
  const docs = requests * o.batch;
  const src = stack.db('fwd_src');
  progress(`forwarding: loading ${docs} documents into ${src}...`);
  await runLoad({
    url: stack.couchUrl,
    path: `/${src}/_bulk_docs`,
    headers: stack.writer,
    body: bulkBody,
    docsPerRequest: o.batch,
    total: requests,
    concurrency: 4,
    ok: [201],
  });
  // The target is another couchlog (its own PouchDB Server and ingress), as
  // a SIEM is another machine: the source server serves the reads alone,
  // as in the plain read. It stays embedded when the source is an external
  // server.
  const targetDir = mkdtempSync(join(tmpdir(), 'couchlog-bench-fwd-target-'));
  const target = await startBenchStack({
    dataDir: targetDir,
    apps: ['fwd_dst1', 'fwd_dst2'],
    couchPort: await freePort(),
    ingressPort: await freePort(),
    tokens: { fwd_dst1: [{ name: 'bench', secret: TOKEN }], fwd_dst2: [{ name: 'bench', secret: TOKEN }] },
  });
  const dir = mkdtempSync(join(tmpdir(), 'couchlog-bench-fwd-'));
  try {
    const readers = { authorization: stack.writer.authorization!, accept: 'application/json' };
    const plainRead = async (): Promise<{ n: number; seconds: number }> => {
      let since: unknown = 0;
      let n = 0;
      const t0 = process.hrtime.bigint();
      for (;;) {
        const res = await fetch(
          `${stack.couchUrl}/${src}/_changes?since=${encodeURIComponent(String(since))}&limit=${pageSize}&include_docs=true&seq_interval=${pageSize}`,
          {
            headers: readers,
          },
        );
        const body = (await res.json()) as { results: Array<{ id: string; doc?: Record<string, unknown> }>; last_seq: unknown };
        // What a consumer does at least: look at every document.
        for (const r of body.results) if (r.doc && !r.id.startsWith('_design/')) n++;
        since = body.last_seq;
        if (body.results.length < pageSize) break;
      }
      return { n, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
    };
    // `couchlog forward --once` as its own process, as it runs in production
    // (the target's ingress runs in this process).
    const forward = async (run: number): Promise<{ n: number; seconds: number }> => {
      const args = [
        COUCHLOG_SCRIPT,
        'forward',
        '--app',
        stack.appName('fwd_src'),
        '--name',
        `bench${run}`,
        '--hec-url',
        target.ingressUrl,
        '--index',
        `fwd_dst${run}`,
        '--max-events',
        String(pageSize),
        '--poll-ms',
        '50',
        '--once',
      ];
      // The same server and data folder (secrets) as this stack; nothing of the shell's COUCHDB_*.
      const env = { ...childEnvWithoutCouchdb(), ...stack.childEnv(), COUCHLOG_LOG_LEVEL: 'warn', COUCHLOG_FORWARD_HEC_TOKEN: TOKEN };
      const t1 = process.hrtime.bigint();
      const child = spawn(process.execPath, args, { env, cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      const code = await new Promise<number | null>((ok) => child.once('exit', ok));
      const seconds = Number(process.hrtime.bigint() - t1) / 1e9;
      if (code !== 0) throw new Error(`couchlog forward exited with ${code}`);
      void seconds;
      // The forwarder's own time from start to caught up (not node's start-up).
      const summary = JSON.parse(out) as { forwarded: number; seconds: number };
      return { n: summary.forwarded, seconds: summary.seconds };
    };
    // read, forward, forward, read: each side's mean, so drift hits both alike.
    progress('    ...a plain _changes read of all of it...');
    const r1 = await plainRead();
    progress("    ...couchlog forward (its own process) into another couchlog's HEC endpoint, twice...");
    const f1 = await forward(1);
    const f2 = await forward(2);
    progress('    ...and the plain read again');
    const r2 = await plainRead();
    for (const x of [r1, r2, f1, f2]) if (x.n !== docs) throw new Error(`${x.n} of ${docs} documents`);
    const changesDocsPerSecond = (r1.n + r2.n) / (r1.seconds + r2.seconds);
    const forwardDocsPerSecond = (f1.n + f2.n) / (f1.seconds + f2.seconds);
    return { docs, changesDocsPerSecond, forwardDocsPerSecond, ratio: forwardDocsPerSecond / changesDocsPerSecond };
  } finally {
    await target.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(targetDir, { recursive: true, force: true });
  }
}

export function formatHecReport(r: HecBenchReport): string {
  const row = (name: string, x: LoadResult) =>
    `  ${name.padEnd(24)} ${x.docsPerSecond.toFixed(0).padStart(8)} docs/s   p50 ${x.p50ms.toFixed(1).padStart(7)} ms   p99 ${x.p99ms.toFixed(1).padStart(7)} ms   errors ${x.errors}`;
  const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  return [
    `CouchDB: ${r.server}`,
    'HEC ingest, batches as Vector sends them',
    row('_bulk_docs to CouchDB', r.direct),
    row('HEC /services/collector', r.hec),
    row('HEC, gzip bodies', r.hecGzip),
    row('ingress _bulk_docs', r.ingressBulk),
    `  ratio HEC/_bulk_docs: ${r.ratio.toFixed(2)}x  (target >= 0.90x); gzip: ${r.gzipRatio.toFixed(2)}x`,
    ...(r.forward
      ? [
          `Forwarding ${r.forward.docs} documents into another couchlog's HEC endpoint (gzip, pages of 500)`,
          `  plain _changes read       ${r.forward.changesDocsPerSecond.toFixed(0).padStart(8)} docs/s`,
          `  couchlog forward          ${r.forward.forwardDocsPerSecond.toFixed(0).padStart(8)} docs/s`,
          `  ratio forward/_changes: ${r.forward.ratio.toFixed(2)}x  (target >= 0.50x)`,
        ]
      : []),
    `load average: ${la(r.load.before)} before, ${la(r.load.after)} after`,
  ].join('\n');
}
