// Benchmark of the ingress against a CouchDB (the embedded server, or an
// external one such as Apache CouchDB 3), in one run:
//  (a) single-document POSTs straight to CouchDB vs through the ingress
//      (group commit turns many small writes into few _bulk_docs);
//  (b) _bulk_docs of 1,000 documents into a bare database (no design
//      document at all: the physical anchor, what the server can store),
//      straight into a log database (its validate_doc_update, if any, runs)
//      and through the ingress (what parsing and checking every document
//      costs on top).
// The ingress is compared with the bare rate too: its bulk and its
// concurrent single POSTs, both over bare _bulk_docs of the same documents.
// Same server, same client, same concurrency; each phase writes to a
// database of its own so no phase pays for another's data. Bulk loads are
// short and a server's speed drifts (PouchDB Server's LevelDB compacts in
// the background), so (b) runs bare, direct, ingress, ingress, direct,
// bare, and each side's figure is its mean.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { combine, runLoad, type LoadResult } from './load.js';
import { startBenchStack, type CouchChoice } from './bench-stack.js';
import { httpCeiling } from './http-ceiling.js';

export const PROTECTION_CHOICES = ['validate', 'audit'] as const;
export type ProtectionChoice = (typeof PROTECTION_CHOICES)[number];

export interface IngressBenchOptions {
  singles: number;
  singleConcurrency: number;
  bulkRequests: number;
  bulkSize: number;
  bulkConcurrency: number;
  couchPort: number;
  ingressPort: number;
  /** Embedded (default) or an external CouchDB. */
  couch?: CouchChoice;
  /** apps.<app>.protection of the benchmark's apps; undefined: the config's default. */
  protection?: ProtectionChoice;
}

export interface IngressBenchReport {
  /** "embedded PouchDB Server (url)" or "Apache CouchDB 3.5.0 at url". */
  server: string;
  /** What was asked, and whether setup left a validate_doc_update in the log databases. */
  protection: { asked: ProtectionChoice | 'default'; validateDocUpdate: boolean };
  /** Load averages (1, 5, 15 min) before and after the run: the machine is shared. */
  load: { before: number[]; after: number[] };
  single: { direct: LoadResult; ingress: LoadResult; ratio: number };
  bulk: { bare: LoadResult; direct: LoadResult; ingress: LoadResult; ratio: number };
  /** The ingress against the bare database: bulk over bare bulk, and single POSTs over bare bulk. */
  bare: { bulkRatio: number; singlesRatio: number };
  /** Single POSTs to an empty route (http-ceiling.ts): what the machine's HTTP allows; ingress singles over it. */
  ceiling: { result: LoadResult; ratio: number };
}

export const TARGETS = { single: 3, bulk: 0.9, bareBulk: 0.8, bareSingles: 0.5 };

const doc = (i: number) => ({ date: '2017-06-14', hour: '17:16:12,329', process: 'sshd', machine: 'server', ip: `59.45.${(i >> 8) & 255}.${i & 255}`, seq: i });

const APPS = ['warmup', 'single_direct', 'single_ingress', 'bulk_direct', 'bulk_ingress', 'bulk_ingress2', 'bulk_direct2'];

export async function benchIngress(o: IngressBenchOptions, progress: (line: string) => void): Promise<IngressBenchReport> {
  const before = loadavg();
  const dataDir = mkdtempSync(join(tmpdir(), 'couchlog-bench-'));
  const stack = await startBenchStack({
    dataDir,
    apps: APPS,
    couchPort: o.couchPort,
    ingressPort: o.ingressPort,
    couch: o.couch,
    ...(o.protection && { appOptions: { protection: o.protection } }),
  });
  const { couchUrl, ingressUrl, writer, db } = stack;
  try {
    progress(`measuring ${stack.server}`);
    const validateDocUpdate = await hasValidateDocUpdate(couchUrl, db('bulk_direct'), stack.admin);
    progress(`protection ${o.protection ?? 'default'}: validate_doc_update in the log databases: ${validateDocUpdate ? 'yes' : 'no'}`);
    const anon = { 'content-type': 'application/json' };
    // The ingress's URLs name the app's database, as a client's do.
    const single = (url: string, database: string, headers: Record<string, string>) =>
      runLoad({
        url,
        path: `/${database}`,
        headers,
        body: (i) => JSON.stringify(doc(i)),
        docsPerRequest: 1,
        total: o.singles,
        concurrency: o.singleConcurrency,
        ok: [201, 202],
      });
    const bulkBody = (i: number) => JSON.stringify({ docs: Array.from({ length: o.bulkSize }, (_, j) => doc(i * o.bulkSize + j)) });
    const bulk = (url: string, database: string, headers: Record<string, string>) =>
      runLoad({
        url,
        path: `/${database}/_bulk_docs`,
        headers,
        body: bulkBody,
        docsPerRequest: o.bulkSize,
        total: o.bulkRequests,
        concurrency: o.bulkConcurrency,
        ok: [201],
      });
    const bare1 = await stack.bareDb('1');
    const bare2 = await stack.bareDb('2');

    // Warm both paths (JIT, connection pools, LevelDB, CouchDB's JavaScript processes) so neither side pays for going first.
    progress('warming up both paths...');
    for (const [url, headers] of [
      [couchUrl, writer],
      [ingressUrl, anon],
    ] as const) {
      await runLoad({
        url,
        path: `/${db('warmup')}`,
        headers,
        body: (i) => JSON.stringify(doc(i)),
        docsPerRequest: 1,
        total: Math.ceil(o.singles / 5),
        concurrency: o.singleConcurrency,
        ok: [201, 202],
      });
      await runLoad({
        url,
        path: `/${db('warmup')}/_bulk_docs`,
        headers,
        body: bulkBody,
        docsPerRequest: o.bulkSize,
        total: Math.ceil(o.bulkRequests / 5),
        concurrency: o.bulkConcurrency,
        ok: [201],
      });
    }
    progress(`(a) ${o.singles} single-document POSTs, concurrency ${o.singleConcurrency}: CouchDB directly...`);
    const singleDirect = await single(couchUrl, db('single_direct'), writer);
    progress('    ...and through the ingress');
    const singleIngress = await single(ingressUrl, db('single_ingress'), anon);
    progress('    ...and to an empty HTTP route (the ceiling)');
    const ceiling = await httpCeiling({ total: o.singles, concurrency: o.singleConcurrency, body: (i) => JSON.stringify(doc(i)) });
    progress(`(b) ${o.bulkRequests} _bulk_docs of ${o.bulkSize} documents, concurrency ${o.bulkConcurrency}: a bare database (no design document)...`);
    const b1 = await bulk(couchUrl, bare1, writer);
    progress('    ...the log database directly...');
    const direct1 = await bulk(couchUrl, db('bulk_direct'), writer);
    progress('    ...through the ingress, twice...');
    const ingress1 = await bulk(ingressUrl, db('bulk_ingress'), anon);
    const ingress2 = await bulk(ingressUrl, db('bulk_ingress2'), anon);
    progress('    ...the log database directly again, and the bare database again');
    const direct2 = await bulk(couchUrl, db('bulk_direct2'), writer);
    const b2 = await bulk(couchUrl, bare2, writer);
    const bulkBare = combine(b1, b2);
    const bulkDirect = combine(direct1, direct2);
    const bulkIngress = combine(ingress1, ingress2);
    return {
      server: stack.server,
      protection: { asked: o.protection ?? 'default', validateDocUpdate },
      load: { before, after: loadavg() },
      single: { direct: singleDirect, ingress: singleIngress, ratio: singleIngress.docsPerSecond / singleDirect.docsPerSecond },
      bulk: { bare: bulkBare, direct: bulkDirect, ingress: bulkIngress, ratio: bulkIngress.docsPerSecond / bulkDirect.docsPerSecond },
      bare: { bulkRatio: bulkIngress.docsPerSecond / bulkBare.docsPerSecond, singlesRatio: singleIngress.docsPerSecond / bulkBare.docsPerSecond },
      ceiling: { result: ceiling, ratio: singleIngress.docsPerSecond / ceiling.docsPerSecond },
    };
  } finally {
    await stack.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Whether a design document of `database` has a validate_doc_update (what setup made of --protection). */
async function hasValidateDocUpdate(couchUrl: string, database: string, admin: Record<string, string>): Promise<boolean> {
  const qs = new URLSearchParams({ startkey: '"_design/"', endkey: '"_design0"', include_docs: 'true' });
  const res = await fetch(`${couchUrl}/${database}/_all_docs?${qs}`, { headers: admin });
  if (!res.ok) throw new Error(`design documents of ${database}: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { rows: Array<{ doc?: { validate_doc_update?: unknown } }> };
  return body.rows.some((r) => typeof r.doc?.validate_doc_update === 'string');
}

export function formatReport(r: IngressBenchReport): string {
  const row = (name: string, x: LoadResult) =>
    `  ${name.padEnd(10)} ${x.docsPerSecond.toFixed(0).padStart(8)} docs/s   p50 ${x.p50ms.toFixed(1).padStart(7)} ms   p99 ${x.p99ms.toFixed(1).padStart(7)} ms   errors ${x.errors}`;
  const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  return [
    `CouchDB: ${r.server}`,
    `protection: ${r.protection.asked} (validate_doc_update in the log databases: ${r.protection.validateDocUpdate ? 'yes' : 'no'})`,
    `load average: ${la(r.load.before)} before, ${la(r.load.after)} after`,
    '(a) single-document POSTs',
    row('direct', r.single.direct),
    row('ingress', r.single.ingress),
    `  ratio ingress/direct: ${r.single.ratio.toFixed(2)}x  (target >= ${TARGETS.single}x)`,
    '(b) _bulk_docs',
    row('bare db', r.bulk.bare),
    row('direct', r.bulk.direct),
    row('ingress', r.bulk.ingress),
    `  ratio ingress/direct: ${r.bulk.ratio.toFixed(2)}x  (target >= ${TARGETS.bulk.toFixed(2)}x, i.e. at most 10% slower)`,
    `  ratio direct/bare: ${(r.bulk.direct.docsPerSecond / r.bulk.bare.docsPerSecond).toFixed(2)}x  (what the log database's design documents cost)`,
    '(c) the ingress against bare _bulk_docs (no design document)',
    `  ratio ingress bulk/bare bulk: ${r.bare.bulkRatio.toFixed(2)}x  (target >= ${TARGETS.bareBulk}x on CouchDB 3.5 with protection audit)`,
    `  ratio ingress singles/bare bulk: ${r.bare.singlesRatio.toFixed(2)}x  (target >= ${TARGETS.bareSingles}x)`,
    `(d) single POSTs to an empty HTTP route, same client, same process: ${r.ceiling.result.docsPerSecond.toFixed(0)} requests/s (the machine's ceiling: ${(r.ceiling.result.docsPerSecond / r.bulk.bare.docsPerSecond).toFixed(2)}x bare bulk)`,
    `  ratio ingress singles/ceiling: ${r.ceiling.ratio.toFixed(2)}x`,
  ].join('\n');
}
