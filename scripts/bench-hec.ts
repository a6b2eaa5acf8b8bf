#!/usr/bin/env node
// npm run bench:hec [-- --requests N --batch N --concurrency C --forward-docs N --json]
import { Command } from 'commander';
import { benchHec, formatHecReport } from '../lib/bench/hec-bench.js';
import { freePort } from '../lib/bench/free-port.js';

const opts = new Command('bench-hec')
  .option('--requests <n>', 'requests per phase', Number, 300)
  .option('--batch <n>', 'envelopes (documents) per request', Number, 100)
  .option('--concurrency <n>', 'concurrent clients', Number, 8)
  .option('--forward-docs <n>', 'documents in the forwarding phase (0: skip it)', Number, 30000)
  .option('--json', 'print the figures as JSON too')
  .parse()
  .opts<{ requests: number; batch: number; concurrency: number; forwardDocs: number; json?: boolean }>();

const report = await benchHec(
  { forwardDocs: opts.forwardDocs, requests: opts.requests, batch: opts.batch, concurrency: opts.concurrency, couchPort: await freePort(), ingressPort: await freePort() },
  (line) => process.stderr.write(`${line}\n`),
);
process.stdout.write(`${formatHecReport(report)}\n`);
if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
