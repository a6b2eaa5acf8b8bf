#!/usr/bin/env node
// npm run bench:correlator [-- --events N --batch-size N --load-chunk N --seed N --sinks clickhouse,couchdb --json]
import { Command } from 'commander';
import { benchCorrelator, formatReport } from '../lib/bench/correlator-bench.js';

const opts = new Command('bench-correlator')
  .description('end to end: a backlog of A + B documents drained by the correlator, next to a plain _changes read')
  .option('--events <n>', 'A documents, and as many B documents', Number, 100_000)
  .option('--batch-size <n>', 'changes per _changes request (plain read and correlator feeds)', Number, 500)
  .option('--load-chunk <n>', 'documents per _bulk_docs when loading the backlog', Number, 2000)
  .option('--seed <n>', 'seed of the generated documents', Number, 1)
  .option('--sinks <list>', 'comma-separated sinks to run: clickhouse, couchdb', 'clickhouse,couchdb')
  .option('--json', 'print the figures as JSON too')
  .parse()
  .opts<{ events: number; batchSize: number; loadChunk: number; seed: number; sinks: string; json?: boolean }>();

const sinks = opts.sinks.split(',').map((s) => s.trim());
for (const s of sinks) if (s !== 'clickhouse' && s !== 'couchdb') throw new Error(`--sinks: unknown sink ${s} (clickhouse, couchdb)`);

const report = await benchCorrelator(
  { events: opts.events, batchSize: opts.batchSize, loadChunk: opts.loadChunk, seed: opts.seed, sinks: sinks as Array<'clickhouse' | 'couchdb'> },
  (line) => process.stderr.write(`${line}\n`),
);
process.stdout.write(`${formatReport(report)}\n`);
if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
