#!/usr/bin/env node
// npm run bench:ingress [-- --singles N --concurrency C --bulk-requests N --bulk-size N --bulk-concurrency C]
import { Command } from 'commander';
import { benchIngress, formatReport } from '../lib/bench/ingress-bench.js';
import { freePort } from '../lib/bench/free-port.js';

const opts = new Command('bench-ingress')
  .option('--singles <n>', 'single-document POSTs per side', Number, 5000)
  .option('--concurrency <n>', 'concurrent clients for single POSTs', Number, 64)
  .option('--bulk-requests <n>', '_bulk_docs requests per side', Number, 40)
  .option('--bulk-size <n>', 'documents per _bulk_docs', Number, 1000)
  .option('--bulk-concurrency <n>', 'concurrent clients for _bulk_docs', Number, 4)
  .option('--json', 'print the figures as JSON too')
  .parse()
  .opts<{ singles: number; concurrency: number; bulkRequests: number; bulkSize: number; bulkConcurrency: number; json?: boolean }>();

const report = await benchIngress(
  {
    singles: opts.singles,
    singleConcurrency: opts.concurrency,
    bulkRequests: opts.bulkRequests,
    bulkSize: opts.bulkSize,
    bulkConcurrency: opts.bulkConcurrency,
    couchPort: await freePort(),
    ingressPort: await freePort(),
  },
  (line) => process.stderr.write(`${line}\n`),
);
process.stdout.write(`${formatReport(report)}\n`);
if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
