// Benchmark of the ingress against the embedded server, in one run:
//  (a) single-document POSTs straight to CouchDB vs through the ingress
//      (group commit turns many small writes into few _bulk_docs);
//  (b) _bulk_docs of 1,000 documents straight vs through the ingress
//      (what parsing and checking every document costs).
// Same server, same client, same concurrency; each phase writes to a
// database of its own so no phase pays for another's data. Bulk loads are
// short and PouchDB Server's speed drifts as LevelDB compacts, so (b) runs
// direct, ingress, ingress, direct and each side's figure is its mean.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLoad, type LoadResult } from './load.js';
import { startBenchStack } from './bench-stack.js';

export interface IngressBenchOptions {
  singles: number;
  singleConcurrency: number;
  bulkRequests: number;
  bulkSize: number;
  bulkConcurrency: number;
  couchPort: number;
  ingressPort: number;
}

export interface IngressBenchReport {
  single: { direct: LoadResult; ingress: LoadResult; ratio: number };
  bulk: { direct: LoadResult; ingress: LoadResult; ratio: number };
}

const doc = (i: number) => ({ date: '2017-06-14', hour: '17:16:12,329', process: 'sshd', machine: 'server', ip: `59.45.${(i >> 8) & 255}.${i & 255}`, seq: i });

export async function benchIngress(o: IngressBenchOptions, progress: (line: string) => void): Promise<IngressBenchReport> {
  const dataDir = mkdtempSync(join(tmpdir(), 'couchlog-bench-'));
  const stack = await startBenchStack({ dataDir, apps: ['warmup', 'single_direct', 'single_ingress', 'bulk_direct', 'bulk_ingress', 'bulk_ingress2', 'bulk_direct2'], couchPort: o.couchPort, ingressPort: o.ingressPort });
  const { couch, ingressUrl, writer } = stack;
  try {
    const anon = { 'content-type': 'application/json' };

    const single = (url: string, db: string, headers: Record<string, string>) =>
      runLoad({ url, path: `/${db}`, headers, body: (i) => JSON.stringify(doc(i)), docsPerRequest: 1, total: o.singles, concurrency: o.singleConcurrency, ok: [201, 202] });
    const bulkBody = (i: number) => JSON.stringify({ docs: Array.from({ length: o.bulkSize }, (_, j) => doc(i * o.bulkSize + j)) });
    const bulk = (url: string, db: string, headers: Record<string, string>) =>
      runLoad({ url, path: `/${db}/_bulk_docs`, headers, body: bulkBody, docsPerRequest: o.bulkSize, total: o.bulkRequests, concurrency: o.bulkConcurrency, ok: [201] });

    // Warm both paths (JIT, connection pools, LevelDB) so neither side pays for going first.
    progress('warming up both paths...');
    for (const [url, headers] of [[couch.url, writer], [ingressUrl, anon]] as const) {
      await runLoad({ url, path: '/log_warmup', headers, body: (i) => JSON.stringify(doc(i)), docsPerRequest: 1, total: Math.ceil(o.singles / 5), concurrency: o.singleConcurrency, ok: [201] });
      await runLoad({ url, path: '/log_warmup/_bulk_docs', headers, body: bulkBody, docsPerRequest: o.bulkSize, total: Math.ceil(o.bulkRequests / 5), concurrency: o.bulkConcurrency, ok: [201] });
    }
    progress(`(a) ${o.singles} single-document POSTs, concurrency ${o.singleConcurrency}: CouchDB directly...`);
    const singleDirect = await single(couch.url, 'log_single_direct', writer);
    progress('    ...and through the ingress');
    const singleIngress = await single(ingressUrl, 'log_single_ingress', anon);
    progress(`(b) ${o.bulkRequests} _bulk_docs of ${o.bulkSize} documents, concurrency ${o.bulkConcurrency}: CouchDB directly...`);
    const direct1 = await bulk(couch.url, 'log_bulk_direct', writer);
    progress('    ...through the ingress, twice...');
    const ingress1 = await bulk(ingressUrl, 'log_bulk_ingress', anon);
    const ingress2 = await bulk(ingressUrl, 'log_bulk_ingress2', anon);
    progress('    ...and CouchDB directly again');
    const direct2 = await bulk(couch.url, 'log_bulk_direct2', writer);
    const bulkDirect = combine(direct1, direct2);
    const bulkIngress = combine(ingress1, ingress2);
    return {
      single: { direct: singleDirect, ingress: singleIngress, ratio: singleIngress.docsPerSecond / singleDirect.docsPerSecond },
      bulk: { direct: bulkDirect, ingress: bulkIngress, ratio: bulkIngress.docsPerSecond / bulkDirect.docsPerSecond },
    };
  } finally {
    await stack.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Two runs of one side as one: totals, and the mean of their percentiles. */
function combine(x: LoadResult, y: LoadResult): LoadResult {
  const docs = x.docs + y.docs;
  const seconds = x.seconds + y.seconds;
  return { requests: x.requests + y.requests, docs, seconds, docsPerSecond: docs / seconds, p50ms: (x.p50ms + y.p50ms) / 2, p99ms: (x.p99ms + y.p99ms) / 2, errors: x.errors + y.errors };
}

export function formatReport(r: IngressBenchReport): string {
  const row = (name: string, x: LoadResult) =>
    `  ${name.padEnd(10)} ${x.docsPerSecond.toFixed(0).padStart(8)} docs/s   p50 ${x.p50ms.toFixed(1).padStart(7)} ms   p99 ${x.p99ms.toFixed(1).padStart(7)} ms   errors ${x.errors}`;
  return [
    '(a) single-document POSTs',
    row('direct', r.single.direct),
    row('ingress', r.single.ingress),
    `  ratio ingress/direct: ${r.single.ratio.toFixed(2)}x  (target >= 3x)`,
    '(b) _bulk_docs',
    row('direct', r.bulk.direct),
    row('ingress', r.bulk.ingress),
    `  ratio ingress/direct: ${r.bulk.ratio.toFixed(2)}x  (target >= 0.90x, i.e. at most 10% slower)`,
  ].join('\n');
}
