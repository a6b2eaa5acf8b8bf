#!/usr/bin/env node
// npm run bench:hec [-- --requests N --batch N --concurrency C --json]
import { Command } from 'commander';
import { benchHec, formatHecReport } from '../lib/bench/hec-bench.js';
import { freePort } from '../lib/bench/free-port.js';

const opts = new Command('bench-hec')
  .option('--requests <n>', 'requests per phase', Number, 300)
  .option('--batch <n>', 'envelopes (documents) per request', Number, 100)
  .option('--concurrency <n>', 'concurrent clients', Number, 8)
  .option('--json', 'print the figures as JSON too')
  .parse()
  .opts<{ requests: number; batch: number; concurrency: number; json?: boolean }>();

const report = await benchHec(
  { requests: opts.requests, batch: opts.batch, concurrency: opts.concurrency, couchPort: await freePort(), ingressPort: await freePort() },
  (line) => process.stderr.write(`${line}\n`),
);
process.stdout.write(`${formatHecReport(report)}\n`);
if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
