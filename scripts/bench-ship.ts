#!/usr/bin/env node
// npm run bench:ship [-- --mb N --runs N --lines N --batch-size N --concurrency N --json]
import { Command } from 'commander';
import { benchShip, formatShipBench } from '../lib/bench/ship-bench.js';
import { freePort } from '../lib/bench/free-port.js';

const opts = new Command('bench-ship')
  .option('--mb <n>', 'size of the generated fail2ban log for jsonformat vs awk', Number, 100)
  .option('--runs <n>', 'runs of each tool (the best counts)', Number, 3)
  .option('--lines <n>', 'fail2ban lines shipped (and loaded directly), per run', Number, 100_000)
  .option('--batch-size <n>', 'documents per request, both sides', Number, 1000)
  .option('--concurrency <n>', 'requests in flight, both sides', Number, 4)
  .option('--json', 'print the figures as JSON too')
  .parse()
  .opts<{ mb: number; runs: number; lines: number; batchSize: number; concurrency: number; json?: boolean }>();

const report = await benchShip(
  {
    jsonformatMB: opts.mb,
    runs: opts.runs,
    shipLines: opts.lines,
    batchSize: opts.batchSize,
    concurrency: opts.concurrency,
    couchPort: await freePort(),
    ingressPort: await freePort(),
  },
  (line) => process.stderr.write(`${line}\n`),
);
process.stdout.write(`${formatShipBench(report)}\n`);
if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
