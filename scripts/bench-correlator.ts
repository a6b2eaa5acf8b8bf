#!/usr/bin/env node
// npm run bench:correlator [-- --scenario in-order|late-side|both --couchdb-url URL --events N --batch-size N --load-chunk N --seed N --sinks clickhouse,couchdb --backfill --json]
// With --couchdb-url, the admin comes from COUCHDB_USER / COUCHDB_PASSWORD (never from the command line).
import { Command } from 'commander';
import { PROTECTIONS, type Protection } from '../lib/config/protection.js';
import { toolCouchAdminEnv } from '../lib/config/tool-env.js';
import { benchCorrelator, formatReport, type CorrelatorBenchOptions } from '../bench/correlator-bench.js';

const opts = new Command('bench-correlator')
  .description('end to end: a backlog of A + B documents drained by the correlator, next to a plain _changes read (in order, and with the A side an hour late)')
  .option('--scenario <name>', 'in-order, late-side or both', 'both')
  .option('--couchdb-url <url>', 'an external CouchDB (e.g. Apache CouchDB 3); admin from COUCHDB_USER / COUCHDB_PASSWORD. Default: the embedded server')
  .option('--events <n>', 'A documents, and as many B documents', Number, 100_000)
  .option('--batch-size <n>', 'changes per _changes request (plain read and correlator feeds)', Number, 500)
  .option('--load-chunk <n>', 'documents per _bulk_docs when loading the backlog', Number, 2000)
  .option('--seed <n>', 'seed of the generated documents', Number, 1)
  .option('--sinks <list>', 'comma-separated sinks to run: clickhouse, couchdb', 'clickhouse,couchdb')
  .option(
    '--protection <mode>',
    'validate (validate_doc_update) or audit (signed records, no validate_doc_update) for the input databases and log_correlated',
    'validate',
  )
  .option('--backfill', 'in order: then time couchlog backfill of log_correlated into the emptied ClickHouse table, next to a plain read of it')
  .option('--json', 'print the figures as JSON too')
  .parse()
  .opts<{
    protection: string;
    scenario: string;
    couchdbUrl?: string;
    events: number;
    batchSize: number;
    loadChunk: number;
    seed: number;
    sinks: string;
    backfill?: boolean;
    json?: boolean;
  }>();

const sinks = opts.sinks.split(',').map((s) => s.trim());
const unknown = sinks.filter((s) => s !== 'clickhouse' && s !== 'couchdb');
if (unknown.length > 0) {
  process.stderr.write(`bench-correlator: --sinks: unknown sink ${unknown.join(', ')} (clickhouse, couchdb)\n`);
  process.exit(2);
}
if (!(PROTECTIONS as readonly string[]).includes(opts.protection)) {
  process.stderr.write(`bench-correlator: --protection ${opts.protection}: ${PROTECTIONS.join(' or ')}\n`);
  process.exit(2);
}
const scenarios = opts.scenario === 'both' ? (['in-order', 'late-side'] as const) : [opts.scenario];
for (const scenario of scenarios) {
  if (scenario !== 'in-order' && scenario !== 'late-side') {
    process.stderr.write(`bench-correlator: --scenario ${scenario}: in-order, late-side or both\n`);
    process.exit(2);
  }
  const report = await benchCorrelator(
    {
      events: opts.events,
      batchSize: opts.batchSize,
      loadChunk: opts.loadChunk,
      seed: opts.seed,
      sinks: sinks as CorrelatorBenchOptions['sinks'],
      scenario,
      couchdbUrl: opts.couchdbUrl ?? null,
      env: toolCouchAdminEnv(),
      protection: opts.protection as Protection,
      backfill: opts.backfill === true,
    },
    (line) => process.stderr.write(`${line}\n`),
  );
  process.stdout.write(`${formatReport(report)}\n`);
  if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
}
